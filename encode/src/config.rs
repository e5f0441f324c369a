//! The encoder's settings: size, rate, profile, preset and rate control.

use std::fmt;

use rtcgear_capture::FrameRate;

use crate::EncodeError;

/// The H.264 profile, which caps the coding tools the stream uses and so which decoders play it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Constrained Baseline (`profile-level-id` 42e0xx): no CABAC, no B-frames, no 8x8
    /// transform. Every WebRTC endpoint must decode it, so it is the default.
    #[default]
    ConstrainedBaseline,
    /// Main (4d00xx): adds CABAC, which this crate turns on, for roughly a tenth fewer bits at
    /// the same quality and a little more CPU.
    Main,
    /// High (6400xx): Main plus the 8x8 transform, which this crate turns on.
    High,
}

impl Profile {
    /// The name x264's `x264_param_apply_profile` takes.
    pub(crate) fn x264_name(self) -> &'static std::ffi::CStr {
        match self {
            // x264's "baseline" is constrained baseline: it sets constraint_set1_flag.
            Profile::ConstrainedBaseline => c"baseline",
            Profile::Main => c"main",
            Profile::High => c"high",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::ConstrainedBaseline => "Constrained Baseline",
            Profile::Main => "Main",
            Profile::High => "High",
        })
    }
}

/// How the encoder spends bits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RateControl {
    /// An average bitrate in kbit/s, capped by a VBV of the same rate whose buffer holds a few
    /// frames' worth of bits ([`VBV_FRAMES`]), so that no frame, keyframes included, takes much
    /// longer than a frame interval to cross a link of this rate. This is the setting for live
    /// streaming.
    Bitrate {
        /// Kilobits a second, above zero.
        kbps: u32,
    },
    /// Constant quality (x264's CRF, 0 to 51, lower is better; 23 is x264's default), with no
    /// cap on the bitrate: for recording and tests rather than for a link of fixed capacity.
    Crf(f32),
}

/// How many frames' worth of bits the VBV buffer holds in [`RateControl::Bitrate`].
///
/// One frame would be the lowest latency, but then every keyframe is starved of bits and looks
/// poor for the whole GOP; four frames (133 ms at 30 fps) keeps keyframes clean while a burst
/// still drains in a few frame intervals.
pub const VBV_FRAMES: u32 = 4;

/// The settings of an [`Encoder`](crate::Encoder).
///
/// Make one with [`EncoderConfig::new`], which fills in defaults for live streaming, then change
/// the fields you care about. The encoder checks the values when it is made.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Width in pixels, even, as 4:2:0 chroma needs.
    pub width: u32,
    /// Height in pixels, even.
    pub height: u32,
    /// The nominal frame rate: it sets the time base, the rate control's frame budget and the
    /// default keyframe interval.
    pub fps: FrameRate,
    /// The H.264 profile; [`Profile::ConstrainedBaseline`] by default.
    pub profile: Profile,
    /// The x264 preset: `"ultrafast"` (the default) through `"placebo"`.
    pub preset: String,
    /// The x264 tune, if any; `Some("zerolatency")` by default, which turns off frame threads,
    /// look-ahead and B-frames so that every frame sent comes out at once. Tunes combine with
    /// commas (`"zerolatency,fastdecode"`), with at most one of x264's psychovisual tunes
    /// (`film`, `animation`, `grain`, `stillimage`, `psnr`, `ssim`).
    pub tune: Option<String>,
    /// How bits are spent; by default [`RateControl::Bitrate`] scaled with the pixel rate from
    /// 2500 kbit/s at 1280x720, 30 fps (see [`default_kbps`]).
    pub rate: RateControl,
    /// Frames from one keyframe to the next at most; 2 seconds' worth by default. 0 means
    /// keyframes only on [`Encoder::request_keyframe`](crate::Encoder::request_keyframe) (and the
    /// first frame).
    pub keyframe_interval: u32,
    /// Encoder threads; 0 lets x264 choose from the number of cores. With the `zerolatency` tune
    /// the threads work on slices of one frame, which adds no delay.
    pub threads: u32,
}

impl EncoderConfig {
    /// Defaults for live streaming to browsers at this size and rate: constrained baseline,
    /// `ultrafast` + `zerolatency`, [`default_kbps`], a keyframe every two seconds, threads
    /// chosen by x264.
    pub fn new(width: u32, height: u32, fps: FrameRate) -> EncoderConfig {
        EncoderConfig {
            width,
            height,
            fps,
            profile: Profile::default(),
            preset: "ultrafast".to_owned(),
            tune: Some("zerolatency".to_owned()),
            rate: RateControl::Bitrate {
                kbps: default_kbps(width, height, fps),
            },
            keyframe_interval: keyframes_every_two_seconds(fps),
            threads: 0,
        }
    }

    /// Checks what x264 would reject or misread, so that the error names the value.
    pub(crate) fn validate(&self) -> Result<(), EncodeError> {
        let invalid = |reason: String| Err(EncodeError::InvalidConfig(reason));
        check_picture(
            (self.width, self.height),
            self.fps,
            MAX_SIDE,
            "rtcgear supports",
        )?;
        match self.rate {
            RateControl::Bitrate { kbps } if kbps == 0 || kbps > MAX_KBPS => {
                return invalid(format!(
                    "the bitrate must be 1 to {MAX_KBPS} kbit/s, got {kbps}"
                ));
            }
            RateControl::Crf(crf) if !(0.0..=51.0).contains(&crf) => {
                return invalid(format!("CRF must be 0 to 51, got {crf}"));
            }
            _ => {}
        }
        if self.keyframe_interval > MAX_KEYFRAME_INTERVAL {
            return invalid(format!(
                "the keyframe interval must be at most {MAX_KEYFRAME_INTERVAL} frames (0 for \
                 keyframes only on request), got {}",
                self.keyframe_interval
            ));
        }
        if self.threads > MAX_THREADS {
            return invalid(format!(
                "x264 uses at most {MAX_THREADS} threads, got {}",
                self.threads
            ));
        }
        Ok(())
    }

    /// The VBV buffer in kbit for [`RateControl::Bitrate`]: [`VBV_FRAMES`] frames' worth.
    pub(crate) fn vbv_buffer_kbit(&self, kbps: u32) -> u32 {
        let frames = u64::from(VBV_FRAMES) * u64::from(self.fps.den);
        let kbit = u64::from(kbps) * frames / u64::from(self.fps.num.max(1));
        kbit.clamp(1, u64::from(MAX_KBPS)) as u32
    }
}

/// The default bitrate for a size and rate: 2500 kbit/s at 1280x720 and 30 fps (about 0.09 bits a
/// pixel, which `ultrafast` turns into clean video of moderate motion), scaled with the pixel
/// rate and kept between 100 kbit/s and 50 Mbit/s.
pub fn default_kbps(width: u32, height: u32, fps: FrameRate) -> u32 {
    let pixels_per_second =
        u64::from(width) * u64::from(height) * u64::from(fps.num) / u64::from(fps.den.max(1));
    let kbps = pixels_per_second * 2500 / (1280 * 720 * 30);
    kbps.clamp(100, 50_000) as u32
}

/// The largest width or height accepted, as for capture's frames.
const MAX_SIDE: u32 = 16384;

/// What every encoder needs of its pictures: a size that is not empty, even (4:2:0) and at
/// most `max_side` a side (the limit `whose` is said in the error), and a rate above zero.
pub(crate) fn check_picture(
    (width, height): (u32, u32),
    fps: FrameRate,
    max_side: u32,
    whose: &str,
) -> Result<(), EncodeError> {
    let invalid = |reason: String| Err(EncodeError::InvalidConfig(reason));
    if width == 0 || height == 0 {
        return invalid(format!("the size must not be empty, got {width}x{height}"));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return invalid(format!(
            "4:2:0 frames need an even width and height, got {width}x{height}"
        ));
    }
    if width > max_side || height > max_side {
        return invalid(format!(
            "{width}x{height} is larger than the {max_side}x{max_side} {whose}"
        ));
    }
    if fps.num == 0 || fps.den == 0 {
        return invalid(format!(
            "the frame rate must be above zero, got {}/{}",
            fps.num, fps.den
        ));
    }
    Ok(())
}
/// The largest bitrate accepted, H.264 level 6.2's cap for High profile.
pub(crate) const MAX_KBPS: u32 = 800_000;
/// The largest keyframe interval accepted, below x264's "infinite".
pub(crate) const MAX_KEYFRAME_INTERVAL: u32 = 1 << 29;
/// x264's `X264_THREAD_MAX`.
const MAX_THREADS: u32 = 128;

pub(crate) fn keyframes_every_two_seconds(fps: FrameRate) -> u32 {
    let frames = 2 * u64::from(fps.num) / u64::from(fps.den.max(1));
    frames.clamp(1, u64::from(MAX_KEYFRAME_INTERVAL)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fps(num: u32) -> FrameRate {
        FrameRate { num, den: 1 }
    }

    #[test]
    fn defaults_follow_the_size_and_rate() {
        let config = EncoderConfig::new(1280, 720, fps(30));
        assert_eq!(config.rate, RateControl::Bitrate { kbps: 2500 });
        assert_eq!(config.keyframe_interval, 60);
        assert_eq!(config.profile, Profile::ConstrainedBaseline);
        assert_eq!(config.preset, "ultrafast");
        assert_eq!(config.tune.as_deref(), Some("zerolatency"));
        assert_eq!(config.threads, 0);
        assert_eq!(config.vbv_buffer_kbit(2500), 333);
        assert_eq!(default_kbps(640, 480, fps(30)), 833);
        assert_eq!(default_kbps(16, 16, fps(1)), 100);
        let ntsc = FrameRate {
            num: 30000,
            den: 1001,
        };
        assert_eq!(EncoderConfig::new(1920, 1080, ntsc).keyframe_interval, 59);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let check = |change: fn(&mut EncoderConfig), needle: &str| {
            let mut config = EncoderConfig::new(640, 480, fps(30));
            change(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        };
        check(|c| c.width = 0, "0x480");
        check(|c| c.height = 481, "640x481");
        check(|c| c.width = 20000, "20000x480");
        check(|c| c.fps = FrameRate { num: 0, den: 1 }, "0/1");
        check(|c| c.rate = RateControl::Bitrate { kbps: 0 }, "got 0");
        check(|c| c.rate = RateControl::Crf(60.0), "got 60");
        check(|c| c.rate = RateControl::Crf(f32::NAN), "got NaN");
        check(|c| c.threads = 500, "got 500");
        check(|c| c.keyframe_interval = u32::MAX, "got 4294967295");
    }
}
