//! [`V4l2H264Source`]: a camera's own H.264, made into access units to pass through.

use std::fmt;
use std::path::Path;

use super::link::Link;
use super::{V4l2Format, V4l2Options};
use crate::encoded::{AccessUnit, EncodedInfo, EncodedSource};
use crate::h264::{self, AccessUnitSplitter, ParameterSets};
use crate::{CaptureError, CaptureTime};

/// Pictures an H.264 camera may send, after opening or reopening, before its first keyframe
/// counts as late: ten seconds at 30 fps.
const MAX_PICTURES_BEFORE_KEYFRAME: usize = 300;

/// A camera's own H.264 (V4L2 format `H264`: UVC 1.5 cameras, some Logitech ones), as an
/// [`EncodedSource`] whose access units go to viewers as they are: no decoding, no encoding.
///
/// It negotiates the nearest H.264 mode to the options as [`V4l2Source`](super::V4l2Source)
/// does, reads one picture per buffer (the UVC way; a buffer with several is cut into
/// pictures), puts the last SPS and PPS the camera sent in front of every IDR picture that
/// lacks them, and starts on a keyframe, after opening and after the camera comes back from an
/// unplug. Opening reads up to the first keyframe, to learn the stream's profile, and refuses
/// ([`CaptureError::NotPassthrough`]) one browsers do not decode; a B slice later ends the
/// stream with the same error. Keyframes come only as the camera sends them: a viewer that
/// loses a picture waits for the next one.
///
/// ```no_run
/// use rtcgear_capture::v4l2::{V4l2H264Source, V4l2Options};
/// use rtcgear_capture::EncodedSource;
///
/// let mut options = V4l2Options::default();
/// options.size = Some((1920, 1080));
/// let camera = V4l2H264Source::open("/dev/video0", options)?;
/// println!("{:?}", camera.info().profile);
/// for unit in camera.take(30) {
///     let unit = unit?;
///     println!("{} bytes, keyframe: {}", unit.data.len(), unit.keyframe);
/// }
/// # Ok::<(), rtcgear_capture::CaptureError>(())
/// ```
pub struct V4l2H264Source {
    link: Link,
    info: EncodedInfo,
    pictures: CameraH264,
    /// The first keyframe, read while opening to learn the profile.
    first: Option<AccessUnit>,
    counter: u64,
    ended: bool,
}

impl V4l2H264Source {
    /// Opens the camera at `path` in its H.264 format (whatever `options.format` says), at the
    /// nearest size and rate to `options`, and waits for its first keyframe.
    pub fn open(
        path: impl AsRef<Path>,
        options: V4l2Options,
    ) -> Result<V4l2H264Source, CaptureError> {
        let mut options = options;
        options.format = Some(V4l2Format::H264);
        let link = Link::open(path.as_ref().to_path_buf(), options)?;
        let mode = link.mode;
        let mut source = V4l2H264Source {
            link,
            info: EncodedInfo {
                width: mode.width,
                height: mode.height,
                fps: mode.fps,
                profile: None,
            },
            pictures: CameraH264::default(),
            first: None,
            counter: 0,
            ended: false,
        };
        match source.next() {
            Some(Ok(unit)) => source.first = Some(unit),
            Some(Err(err)) => return Err(err),
            None => {
                return Err(source
                    .link
                    .device_error("the camera went away before its first keyframe"))
            }
        }
        tracing::info!(
            "{}: passing the camera's H.264 through ({})",
            source.link.path.display(),
            source
                .info
                .profile
                .map_or_else(|| "profile unknown".into(), |p| p.to_string())
        );
        Ok(source)
    }
}

impl Iterator for V4l2H264Source {
    type Item = Result<AccessUnit, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        if self.ended {
            return None;
        }
        // Bounded: each round reads one buffer, and a camera sends a keyframe well within
        // MAX_PICTURES_BEFORE_KEYFRAME pictures.
        for _ in 0..MAX_PICTURES_BEFORE_KEYFRAME {
            match self.pictures.next_picture(&self.link.path) {
                Ok(Some((data, keyframe))) => {
                    if let Some(profile) = self.pictures.sets.profile() {
                        self.info.profile = Some(profile);
                    }
                    let unit = AccessUnit::h264(data, keyframe, self.counter, CaptureTime::now());
                    self.counter += 1;
                    return Some(Ok(unit));
                }
                Ok(None) => {}
                Err(err) => {
                    self.ended = true;
                    return Some(Err(err));
                }
            }
            let pictures = &mut self.pictures;
            match self.link.next_buffer(|data, _| {
                pictures.push(data);
                Ok(())
            })? {
                Ok(()) => {}
                Err(err) => {
                    // After the camera comes back, start again on a keyframe.
                    self.pictures = CameraH264::default();
                    return Some(Err(err));
                }
            }
        }
        Some(Err(self.link.device_error(&format!(
            "no keyframe in {MAX_PICTURES_BEFORE_KEYFRAME} pictures; still waiting"
        ))))
    }
}

impl EncodedSource for V4l2H264Source {
    fn info(&self) -> EncodedInfo {
        self.info
    }
}

impl fmt::Debug for V4l2H264Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("V4l2H264Source")
            .field("path", &self.link.path)
            .field("mode", &self.link.mode)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}
/// A camera's H.264 buffers made into access units fit to pass through.
#[derive(Debug, Default)]
struct CameraH264 {
    splitter: AccessUnitSplitter,
    /// Whole pictures not passed on yet.
    ready: std::collections::VecDeque<Vec<u8>>,
    /// The last SPS and PPS seen.
    sets: ParameterSets,
    /// Whether a keyframe has been passed on: until then pictures are dropped.
    started: bool,
}

impl CameraH264 {
    /// Takes one filled buffer: one picture (UVC fills one a buffer), several, or only
    /// parameter sets.
    fn push(&mut self, buffer: &[u8]) {
        self.sets.update(buffer);
        self.splitter.push(buffer);
        while let Some(unit) = self.splitter.next_unit() {
            self.ready.push_back(unit);
        }
        // The buffer ends its last picture; what holds no slice (parameter sets alone) is
        // remembered above and dropped here.
        self.ready.extend(self.splitter.finish());
    }

    /// The next picture to pass on and whether it is a keyframe; `None` until more buffers
    /// come. Pictures before the first keyframe (with parameter sets known) are dropped.
    fn next_picture(&mut self, path: &Path) -> Result<Option<(Vec<u8>, bool)>, CaptureError> {
        let refuse = |why: String| {
            Err(CaptureError::NotPassthrough(format!(
                "{}: {why}",
                path.display()
            )))
        };
        while let Some(unit) = self.ready.pop_front() {
            if let Some(profile) = self.sets.profile().filter(|p| !p.browsers_decode()) {
                return refuse(format!("browsers do not decode its profile, {profile}"));
            }
            if h264::has_b_slices(&unit) {
                return refuse(
                    "the camera sends B-frames, which browsers' WebRTC decoders do not expect"
                        .into(),
                );
            }
            let keyframe = h264::is_keyframe(&unit);
            if !keyframe {
                if self.started {
                    return Ok(Some((unit, false)));
                }
                continue;
            }
            if !self.sets.is_complete() {
                // A keyframe no decoder can start on: wait for the parameter sets.
                continue;
            }
            let data = self.sets.complete(unit);
            self.started = true;
            return Ok(Some((data, true)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter()
            .flat_map(|nal| [&[0u8, 0, 0, 1][..], nal].concat())
            .collect()
    }

    const SPS: &[u8] = &[0x67, 0x42, 0xe0, 0x1f, 0xac]; // Constrained Baseline 3.1
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00]; // first_mb 0, slice_type 7 (I)
    const P: &[u8] = &[0x41, 0x9a, 0x21]; // first_mb 0, slice_type 5 (P)
    const B: &[u8] = &[0x01, 0x9c, 0x21]; // first_mb 0, slice_type 6 (B)

    /// Feeds buffers to a `CameraH264` and collects every picture it passes on.
    fn pictures(buffers: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, bool)>, CaptureError> {
        let mut camera = CameraH264::default();
        let mut out = Vec::new();
        for buffer in buffers {
            camera.push(buffer);
            while let Some(picture) = camera.next_picture(Path::new("/dev/video0"))? {
                out.push(picture);
            }
        }
        Ok(out)
    }

    #[test]
    fn camera_h264_starts_on_a_keyframe_with_its_parameter_sets() {
        // One picture a buffer, parameter sets with the first keyframe only, as many UVC
        // cameras do; the pictures before it cannot be decoded.
        let out = pictures(&[
            annexb(&[P]),
            annexb(&[SPS, PPS, IDR]),
            annexb(&[P]),
            annexb(&[IDR]),
            annexb(&[P]),
        ])
        .unwrap();
        let keyframes: Vec<bool> = out.iter().map(|(_, k)| *k).collect();
        assert_eq!(keyframes, [true, false, true, false]);
        assert_eq!(out[0].0, annexb(&[SPS, PPS, IDR]));
        assert_eq!(out[2].0, annexb(&[SPS, PPS, IDR]), "the sets go in front");
        assert_eq!(out[3].0, annexb(&[P]));

        // Parameter sets in a buffer of their own, and a keyframe before any: the first
        // keyframe no decoder could start on is dropped.
        let out = pictures(&[
            annexb(&[IDR]),
            annexb(&[P]),
            annexb(&[SPS, PPS]),
            annexb(&[IDR]),
            annexb(&[P]),
        ])
        .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], (annexb(&[SPS, PPS, IDR]), true));
        assert_eq!(out[1], (annexb(&[P]), false));

        // A buffer with two pictures is cut in two.
        let out = pictures(&[annexb(&[SPS, PPS, IDR, P])]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], (annexb(&[P]), false));
    }

    #[test]
    fn camera_h264_refuses_b_frames_and_profiles_browsers_lack() {
        let err = pictures(&[annexb(&[SPS, PPS, IDR]), annexb(&[P]), annexb(&[B])]).unwrap_err();
        match err {
            CaptureError::NotPassthrough(why) => {
                assert!(why.starts_with("/dev/video0: "), "{why}");
                assert!(why.contains("B-frames"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let high10 = [0x67, 110, 0x00, 40, 0xac];
        let err = pictures(&[annexb(&[&high10, PPS, IDR])]).unwrap_err();
        assert!(err.to_string().contains("High 10"), "{err}");
    }
}
