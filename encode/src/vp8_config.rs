//! The VP8 encoder's settings.

use rtcgear_capture::FrameRate;

use crate::config::{check_picture, keyframes_every_two_seconds, MAX_KBPS, MAX_KEYFRAME_INTERVAL};
use crate::{default_kbps, EncodeError};

/// The settings of a [`Vp8Encoder`](crate::Vp8Encoder).
///
/// Make one with [`Vp8Config::new`], which fills in defaults for live streaming to browsers,
/// then change the fields you care about. The encoder checks the values when it is made.
///
/// What is not here is fixed for live WebRTC (see the [module docs](crate#vp8)): libvpx's
/// realtime deadline, no frames held back (`lag-in-frames` 0) and no alternate reference
/// frames, error-resilient mode, constant-bitrate rate control over a one-second buffer, and
/// every frame sent comes out (no frame dropping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vp8Config {
    /// Width in pixels, even (4:2:0 frames need it) and at most 16382 (VP8 stores 14 bits).
    pub width: u32,
    /// Height in pixels, even and at most 16382.
    pub height: u32,
    /// The nominal frame rate: it sets the time base, the rate control's frame budget and the
    /// default keyframe interval.
    pub fps: FrameRate,
    /// The target bitrate in kbit/s, held constant (libvpx's CBR); by default
    /// [`default_kbps`], the same as for H.264.
    pub kbps: u32,
    /// Frames from one keyframe to the next, exactly; 2 seconds' worth by default. 0 means
    /// keyframes only on [`Vp8Encoder::request_keyframe`](crate::Vp8Encoder::request_keyframe)
    /// (and the first frame).
    pub keyframe_interval: u32,
    /// Encoder threads, each taking rows of macroblocks. 0 (the default) picks as libwebrtc does
    /// for its VP8 encoder ([`Vp8Config::threads_for`]): one thread up to 640x480 or on fewer
    /// than three cores, two or three above. libvpx's threads wait for each other by spinning,
    /// so on a machine with other work, more threads than free cores cost far more CPU and
    /// time than they save: on a busy 2-core machine, two threads at low priority encoded
    /// 1280x720 at 26 fps against one thread's 160 (see BENCHMARKS.md).
    pub threads: u32,
    /// libvpx's speed (`cpu-used`), -16 to 16: higher magnitudes encode faster at lower quality.
    /// Negative values keep the speed fixed; positive ones let libvpx raise it when a frame
    /// takes longer than a frame interval, which makes the output depend on the machine's load.
    /// [`DEFAULT_VP8_SPEED`] (-6) by default.
    pub speed: i32,
}

/// The default [`Vp8Config::speed`]: -6, the speed WebRTC's own VP8 encoder (libwebrtc) uses on
/// desktop machines. At 1280x720 it encodes several times faster than real time on one core of a
/// modest server; -8 to -16 are faster still, at a small cost in quality.
pub const DEFAULT_VP8_SPEED: i32 = -6;

impl Vp8Config {
    /// Defaults for live streaming to browsers at this size and rate: [`default_kbps`], a
    /// keyframe every two seconds, threads as libwebrtc picks them, speed [`DEFAULT_VP8_SPEED`].
    pub fn new(width: u32, height: u32, fps: FrameRate) -> Vp8Config {
        Vp8Config {
            width,
            height,
            fps,
            kbps: default_kbps(width, height, fps),
            keyframe_interval: keyframes_every_two_seconds(fps),
            threads: 0,
            speed: DEFAULT_VP8_SPEED,
        }
    }

    /// The threads the encoder runs: [`Vp8Config::threads`], or for 0 what
    /// [`Vp8Config::threads_for`] picks for this size and the cores this process may use.
    pub fn effective_threads(&self) -> u32 {
        match self.threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                Vp8Config::threads_for(self.width, self.height, cores)
            }
            threads => threads,
        }
    }

    /// libwebrtc's choice of VP8 encoder threads for a size on a machine with `cores` cores:
    /// 1 up to 640x480 or on fewer than 3 cores; above 640x480, 2 (3 on 6 cores or more); above
    /// 1280x960 on 6 cores or more, 3; from 1920x1080 on more than 8 cores, 8.
    pub fn threads_for(width: u32, height: u32, cores: usize) -> u32 {
        let pixels = u64::from(width) * u64::from(height);
        if pixels >= 1920 * 1080 && cores > 8 {
            8
        } else if pixels > 1280 * 960 && cores >= 6 {
            3
        } else if pixels > 640 * 480 && cores >= 3 {
            if cores >= 6 {
                3
            } else {
                2
            }
        } else {
            1
        }
    }

    /// Checks what libvpx would reject or misread, so that the error names the value.
    pub(crate) fn validate(&self) -> Result<(), EncodeError> {
        let invalid = |reason: String| Err(EncodeError::InvalidConfig(reason));
        check_picture(
            (self.width, self.height),
            self.fps,
            MAX_VP8_SIDE,
            "VP8 can code",
        )?;
        if self.kbps == 0 || self.kbps > MAX_KBPS {
            return invalid(format!(
                "the bitrate must be 1 to {MAX_KBPS} kbit/s, got {}",
                self.kbps
            ));
        }
        if self.keyframe_interval > MAX_KEYFRAME_INTERVAL {
            return invalid(format!(
                "the keyframe interval must be at most {MAX_KEYFRAME_INTERVAL} frames (0 for \
                 keyframes only on request), got {}",
                self.keyframe_interval
            ));
        }
        if self.threads > MAX_VP8_THREADS {
            return invalid(format!(
                "libvpx uses at most {MAX_VP8_THREADS} threads, got {}",
                self.threads
            ));
        }
        if !(-16..=16).contains(&self.speed) {
            return invalid(format!(
                "the VP8 speed must be -16 to 16, got {}",
                self.speed
            ));
        }
        Ok(())
    }
}

/// The largest even width or height VP8's 14-bit size fields hold.
const MAX_VP8_SIDE: u32 = 16382;
/// libvpx's VP8 encoder takes at most 64 threads.
const MAX_VP8_THREADS: u32 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(num: u32) -> FrameRate {
        FrameRate { num, den: 1 }
    }

    #[test]
    fn defaults_follow_the_size_and_rate_as_for_h264() {
        let config = Vp8Config::new(1280, 720, fps(30));
        assert_eq!(config.kbps, 2500);
        assert_eq!(config.keyframe_interval, 60);
        assert_eq!(config.threads, 0);
        assert_eq!(config.speed, DEFAULT_VP8_SPEED);
        assert_eq!(Vp8Config::new(640, 480, fps(30)).kbps, 833);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn threads_follow_libwebrtc() {
        assert_eq!(Vp8Config::threads_for(1280, 720, 2), 1);
        assert_eq!(Vp8Config::threads_for(640, 480, 16), 1);
        assert_eq!(Vp8Config::threads_for(1280, 720, 4), 2);
        assert_eq!(Vp8Config::threads_for(1280, 720, 6), 3);
        assert_eq!(Vp8Config::threads_for(1920, 1080, 6), 3);
        assert_eq!(Vp8Config::threads_for(1920, 1080, 16), 8);
        let mut config = Vp8Config::new(1280, 720, fps(30));
        assert!((1..=3).contains(&config.effective_threads()));
        config.threads = 5;
        assert_eq!(config.effective_threads(), 5);
    }

    #[test]
    fn bad_values_are_named() {
        let check = |change: fn(&mut Vp8Config), needle: &str| {
            let mut config = Vp8Config::new(640, 480, fps(30));
            change(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        };
        check(|c| c.width = 0, "0x480");
        check(|c| c.height = 481, "640x481");
        check(|c| c.width = 16384, "16384x480");
        check(|c| c.fps = FrameRate { num: 30, den: 0 }, "30/0");
        check(|c| c.kbps = 0, "got 0");
        check(|c| c.threads = 65, "got 65");
        check(|c| c.speed = -17, "got -17");
        check(|c| c.keyframe_interval = u32::MAX, "got 4294967295");
    }
}
