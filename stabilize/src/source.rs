//! The stabilizer as an adapter over any [`Source`].

use rtcgear_capture::{CaptureError, Frame, PixelFormat, Source, SourceInfo};

use crate::{StabilizeError, Stabilizer, StabilizerConfig};

/// A [`Source`] whose frames come out stabilized; the output lags the input by the
/// stabilizer's [`delay`](Stabilizer::delay), and the held frames come out when the input ends.
///
/// It buffers rather than implementing [`rtcgear_capture::Transform`], because the moving
/// average needs frames that have not arrived yet.
#[derive(Debug)]
pub struct Stabilized<S> {
    source: S,
    stabilizer: Stabilizer,
    ended: bool,
}

impl<S: Source> Stabilized<S> {
    /// `source` stabilized with `config`.
    pub fn new(source: S, config: StabilizerConfig) -> Result<Stabilized<S>, StabilizeError> {
        Ok(Stabilized {
            source,
            stabilizer: Stabilizer::new(config)?,
            ended: false,
        })
    }

    /// The stabilizer, for its statistics and last motion.
    pub fn stabilizer(&self) -> &Stabilizer {
        &self.stabilizer
    }

    /// The source inside.
    pub fn into_inner(self) -> S {
        self.source
    }
}

impl<S: Source> Iterator for Stabilized<S> {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(frame) = self.stabilizer.receive_frame() {
                return Some(Ok(frame));
            }
            if self.ended {
                return None;
            }
            match self.source.next() {
                None => {
                    self.stabilizer.flush();
                    self.ended = true;
                }
                Some(Err(err)) => return Some(Err(err)),
                Some(Ok(frame)) => {
                    if let Err(err) = self.stabilizer.send_frame(frame) {
                        return Some(Err(match err {
                            StabilizeError::Capture(err) => err,
                            other => CaptureError::InvalidArgument(other.to_string()),
                        }));
                    }
                }
            }
        }
    }
}

impl<S: Source> Source for Stabilized<S> {
    fn info(&self) -> SourceInfo {
        let input = self.source.info();
        let (width, height) = self
            .stabilizer
            .config()
            .output_size(input.width, input.height);
        SourceInfo {
            width,
            height,
            format: PixelFormat::I420,
            ..input
        }
    }
}
