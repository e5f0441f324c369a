//! The encoder: frames in, Annex B access units out.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;

use rtcgear_capture::{AccessUnit, CaptureTime, Frame, PixelFormat};

use crate::x264::{Handle, Input, Output};
use crate::{EncodeError, EncoderConfig};

/// An H.264 encoder over libx264.
///
/// Send frames with [`Encoder::send_frame`], then call [`Encoder::receive_packet`] until it
/// returns `None`, which means "send more frames": with the default `zerolatency` tune every
/// frame comes out at once, with other tunes x264 may hold a few. At the end of the stream,
/// [`Encoder::flush`] pushes out what x264 holds. See the [crate docs](crate) for an example.
pub struct Encoder {
    config: EncoderConfig,
    handle: Handle,
    /// The counter and capture time of each frame inside x264, by pts.
    in_flight: HashMap<i64, (u64, CaptureTime)>,
    packets: VecDeque<AccessUnit>,
    next_pts: i64,
    keyframe_requested: bool,
    flushed: bool,
}

impl Encoder {
    /// Opens an encoder with `config`, after checking its values.
    pub fn new(config: EncoderConfig) -> Result<Encoder, EncodeError> {
        config.validate()?;
        let handle = Handle::open(&config)?;
        Ok(Encoder {
            config,
            handle,
            in_flight: HashMap::new(),
            packets: VecDeque::new(),
            next_pts: 0,
            keyframe_requested: false,
            flushed: false,
        })
    }

    /// The settings the encoder was made with.
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Encodes one frame of the configured size. Frames in another pixel format are converted
    /// to I420 first, which costs a copy; I420 frames are read in place.
    ///
    /// The encoded picture, and any that x264 held back, become available from
    /// [`Encoder::receive_packet`].
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed);
        }
        let frame = i420_of(frame, (self.config.width, self.config.height))?;

        let pts = self.next_pts;
        let input = Input {
            planes: [frame.plane(0), frame.plane(1), frame.plane(2)],
            pts,
            idr: self.keyframe_requested,
        };
        self.in_flight.insert(pts, (frame.counter(), frame.time()));
        let output = match self.handle.encode(Some(input)) {
            Ok(output) => output,
            Err(err) => {
                self.in_flight.remove(&pts);
                return Err(err);
            }
        };
        self.next_pts += 1;
        self.keyframe_requested = false;
        if let Some(output) = output {
            self.queue(output)?;
        }
        Ok(())
    }

    /// The next encoded picture, in decoding order, or `None` when the encoder needs more frames
    /// (or, after [`Encoder::flush`], when the stream is over).
    pub fn receive_packet(&mut self) -> Option<AccessUnit> {
        self.packets.pop_front()
    }

    /// Ends the stream: encodes every frame x264 still holds, so that
    /// [`Encoder::receive_packet`] returns them. Frames sent afterwards are refused with
    /// [`EncodeError::Flushed`]; flushing again does nothing.
    pub fn flush(&mut self) -> Result<(), EncodeError> {
        self.flushed = true;
        while self.handle.delayed_frames() > 0 {
            if let Some(output) = self.handle.encode(None)? {
                self.queue(output)?;
            }
        }
        Ok(())
    }

    /// Makes the next frame sent an IDR picture, with SPS and PPS in front: for a viewer that
    /// joined or lost packets (an RTCP PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn queue(&mut self, output: Output) -> Result<(), EncodeError> {
        let Some((counter, time)) = self.in_flight.remove(&output.pts) else {
            tracing::error!(pts = output.pts, "x264 returned a pts that was never sent");
            return Err(EncodeError::UnknownPts(output.pts));
        };
        tracing::trace!(
            pts = output.pts,
            counter,
            bytes = output.data.len(),
            keyframe = output.keyframe,
            "encoded"
        );
        self.packets.push_back(AccessUnit::h264(
            output.data,
            output.keyframe,
            counter,
            time,
        ));
        Ok(())
    }
}

impl fmt::Debug for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoder")
            .field("config", &self.config)
            .field("next_pts", &self.next_pts)
            .field("in_flight", &self.in_flight.len())
            .field("packets", &self.packets.len())
            .field("keyframe_requested", &self.keyframe_requested)
            .field("flushed", &self.flushed)
            .finish_non_exhaustive()
    }
}

/// `frame` as I420, converted (a copy) unless it is I420 already, once its size is checked to
/// be the encoder's `(width, height)`.
pub(crate) fn i420_of(
    frame: &Frame,
    (width, height): (u32, u32),
) -> Result<Cow<'_, Frame>, EncodeError> {
    if frame.width() != width || frame.height() != height {
        return Err(EncodeError::FrameSize {
            width,
            height,
            got_width: frame.width(),
            got_height: frame.height(),
        });
    }
    if frame.format() == PixelFormat::I420 {
        return Ok(Cow::Borrowed(frame));
    }
    frame
        .to_format(PixelFormat::I420)
        .map(Cow::Owned)
        .map_err(|source| EncodeError::Conversion {
            format: frame.format(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use rtcgear_capture::FrameRate;

    use super::*;
    use crate::{Profile, RateControl};

    const FPS: FrameRate = FrameRate { num: 30, den: 1 };

    fn encoder(width: u32, height: u32) -> Encoder {
        Encoder::new(EncoderConfig::new(width, height, FPS)).expect("a valid config")
    }

    #[test]
    fn the_encoder_moves_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Encoder>();
        let mut encoder = encoder(64, 64);
        let frame = Frame::new(64, 64, PixelFormat::I420).expect("a valid size");
        let packet = std::thread::spawn(move || {
            encoder.send_frame(&frame).expect("the frame fits");
            encoder.receive_packet()
        })
        .join()
        .expect("the thread does not panic");
        assert!(packet.is_some_and(|p| p.keyframe));
    }

    #[test]
    fn a_frame_of_another_size_is_refused() {
        let mut encoder = encoder(64, 48);
        for (width, height) in [(48, 64), (64, 50), (66, 48)] {
            let frame = Frame::new(width, height, PixelFormat::I420).expect("a valid size");
            let err = encoder.send_frame(&frame).unwrap_err();
            assert!(
                matches!(err, EncodeError::FrameSize { got_width, got_height, .. }
                    if (got_width, got_height) == (width, height)),
                "{err:?}"
            );
            assert!(
                err.to_string().contains(&format!("{width}x{height}")),
                "{err}"
            );
        }
        assert!(encoder.receive_packet().is_none());
        // The encoder still works after refusing frames: the frame sent comes out.
        let frame = Frame::new(64, 48, PixelFormat::I420).expect("a valid size");
        encoder.send_frame(&frame).expect("the frame fits");
        let packet = encoder
            .receive_packet()
            .expect("zerolatency holds nothing back");
        assert_eq!(packet.counter, frame.counter());
        assert!(packet.keyframe);
    }

    #[test]
    fn bad_configs_are_errors() {
        for (width, height) in [(0, 480), (640, 0), (641, 480), (640, 479), (1, 1)] {
            let err = Encoder::new(EncoderConfig::new(width, height, FPS)).unwrap_err();
            assert!(matches!(err, EncodeError::InvalidConfig(_)), "{err:?}");
            assert!(
                err.to_string().contains(&format!("{width}x{height}")),
                "{err}"
            );
        }
        let mut config = EncoderConfig::new(64, 64, FPS);
        config.preset = "warp-speed".to_owned();
        let err = Encoder::new(config.clone()).unwrap_err();
        assert!(err.to_string().contains("warp-speed"), "{err}");
        config.preset = "ultra\0fast".to_owned();
        assert!(matches!(
            Encoder::new(config.clone()),
            Err(EncodeError::UnknownPreset { .. })
        ));
        config.preset = "ultrafast".to_owned();
        config.tune = Some("cartoonish".to_owned());
        let err = Encoder::new(config.clone()).unwrap_err();
        assert!(err.to_string().contains("cartoonish"), "{err}");
        config.tune = Some("film,grain".to_owned());
        assert!(Encoder::new(config.clone()).is_err());
        config.tune = Some("zerolatency,fastdecode,psnr".to_owned());
        assert!(Encoder::new(config.clone()).is_ok());
        config.tune = None;
        config.rate = RateControl::Crf(-1.0);
        assert!(Encoder::new(config).is_err());
    }

    #[test]
    fn other_formats_are_converted() {
        let mut encoder = encoder(64, 48);
        for (counter, format) in PixelFormat::ALL.into_iter().enumerate() {
            let frame = Frame::new(64, 48, format)
                .expect("a valid size")
                .with_meta(counter as u64, CaptureTime::now());
            encoder
                .send_frame(&frame)
                .expect("every format converts to I420");
            let packet = encoder
                .receive_packet()
                .expect("zerolatency returns every frame");
            assert_eq!(packet.counter, counter as u64);
            assert_eq!(packet.time, frame.time());
        }
    }

    #[test]
    fn a_flushed_encoder_refuses_frames() {
        let mut encoder = encoder(64, 48);
        let frame = Frame::new(64, 48, PixelFormat::I420).expect("a valid size");
        encoder.send_frame(&frame).expect("the frame fits");
        encoder.flush().expect("flushing works");
        encoder.flush().expect("flushing twice works");
        assert!(encoder.receive_packet().is_some());
        assert!(encoder.receive_packet().is_none());
        assert!(matches!(
            encoder.send_frame(&frame),
            Err(EncodeError::Flushed)
        ));
    }

    #[test]
    fn crf_and_every_profile_encode() {
        for profile in [Profile::ConstrainedBaseline, Profile::Main, Profile::High] {
            let mut config = EncoderConfig::new(128, 96, FPS);
            config.profile = profile;
            config.rate = RateControl::Crf(23.0);
            config.threads = 1;
            let mut encoder = Encoder::new(config).expect("a valid config");
            assert_eq!(encoder.config().profile, profile);
            let frame = Frame::new(128, 96, PixelFormat::I420).expect("a valid size");
            encoder.send_frame(&frame).expect("the frame fits");
            let packet = encoder
                .receive_packet()
                .expect("zerolatency returns every frame");
            assert!(packet.keyframe);
            assert!(packet.data.starts_with(&[0, 0, 0, 1]));
        }
    }
}
