//! The stabilizer's settings.

use std::fmt;
use std::str::FromStr;

use crate::StabilizeError;

/// How the parts of the output that the input does not cover are filled (vidgear's
/// `border_type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BorderType {
    /// Black (`black`).
    #[default]
    Black,
    /// The edge mirrored, repeating the edge pixel: `fedcba|abcdef` (`reflect`).
    Reflect,
    /// The edge mirrored about the edge pixel: `fedcb|abcdef` (`reflect_101`).
    Reflect101,
    /// The edge pixel repeated: `aaaaaa|abcdef` (`replicate`).
    Replicate,
    /// The opposite edge: `cdef|abcdef` (`wrap`).
    Wrap,
}

impl BorderType {
    /// The name vidgear and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            BorderType::Black => "black",
            BorderType::Reflect => "reflect",
            BorderType::Reflect101 => "reflect_101",
            BorderType::Replicate => "replicate",
            BorderType::Wrap => "wrap",
        }
    }
}

impl fmt::Display for BorderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BorderType {
    type Err = StabilizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let border = match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "black" | "constant" => BorderType::Black,
            "reflect" => BorderType::Reflect,
            "reflect_101" | "reflect101" => BorderType::Reflect101,
            "replicate" => BorderType::Replicate,
            "wrap" => BorderType::Wrap,
            _ => {
                return Err(StabilizeError::InvalidConfig(format!(
                    "unknown border type {s:?} (expected black, reflect, reflect_101, replicate or wrap)"
                )))
            }
        };
        Ok(border)
    }
}

/// How the camera path is smoothed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Smoothing {
    /// vidgear's choice: the mean of the path over `smoothing_radius` frames either side of each
    /// frame. Output lags input by `smoothing_radius` frames; a steady pan is kept exactly.
    /// Within `smoothing_radius` frames of the start and of a [`flush`], where the window cannot
    /// be centred, the path is smoothed by the straight line fitted to the frames there are, so
    /// the first and last frames are steadied too (vidgear pads with the median and drops the
    /// last frames).
    ///
    /// [`flush`]: crate::Stabilizer::flush
    #[default]
    MovingAverage,
    /// No look-ahead, for live streams: a double exponential (level plus trend) filter of the
    /// path, so every frame comes out as soon as it goes in. `smoothing_radius` sets its time
    /// constant. It removes less jitter than the moving average and lags briefly when the camera
    /// starts or stops moving.
    Causal,
}

/// The settings of a [`Stabilizer`](crate::Stabilizer), with vidgear's defaults.
///
/// ```
/// use rtcgear_stabilize::{BorderType, StabilizerConfig};
///
/// let config = StabilizerConfig::new()
///     .smoothing_radius(30)
///     .border_size(20)
///     .crop_zoom(true)
///     .border_type(BorderType::Replicate);
/// assert_eq!(config.output_size(1280, 720), (1280, 720));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StabilizerConfig {
    pub(crate) smoothing_radius: usize,
    pub(crate) smoothing: Smoothing,
    pub(crate) border_size: u32,
    pub(crate) crop_zoom: bool,
    pub(crate) border_type: BorderType,
    pub(crate) tracking_width: u32,
    pub(crate) max_features: usize,
    pub(crate) estimate_scale: bool,
}

impl Default for StabilizerConfig {
    fn default() -> Self {
        StabilizerConfig {
            smoothing_radius: 25,
            smoothing: Smoothing::MovingAverage,
            border_size: 0,
            crop_zoom: false,
            border_type: BorderType::Black,
            tracking_width: 640,
            max_features: 150,
            estimate_scale: false,
        }
    }
}

impl StabilizerConfig {
    /// vidgear's defaults: a moving average over 25 frames either side, no border, no zoom,
    /// black fill.
    pub fn new() -> StabilizerConfig {
        StabilizerConfig::default()
    }

    /// Frames either side of each frame that the moving average covers (vidgear's
    /// `SMOOTHING_RADIUS`, default 25); also the output delay in frames. 0 turns smoothing off.
    pub fn smoothing_radius(mut self, radius: usize) -> Self {
        self.smoothing_radius = radius;
        self
    }

    /// The smoothing filter: [`Smoothing::MovingAverage`] (default) or [`Smoothing::Causal`].
    pub fn smoothing(mut self, smoothing: Smoothing) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Pixels added around the frame, or with [`crop_zoom`](Self::crop_zoom) cropped from it
    /// (vidgear's `BORDER_SIZE`, default 0).
    pub fn border_size(mut self, pixels: u32) -> Self {
        self.border_size = pixels;
        self
    }

    /// Crops `border_size` pixels from every side and scales the rest back to the input size,
    /// hiding most of the edges that the correction uncovers (vidgear's `CROP_N_ZOOM`).
    pub fn crop_zoom(mut self, crop_zoom: bool) -> Self {
        self.crop_zoom = crop_zoom;
        self
    }

    /// How uncovered parts of the output are filled (vidgear's `BORDER_TYPE`, default black).
    pub fn border_type(mut self, border_type: BorderType) -> Self {
        self.border_type = border_type;
        self
    }

    /// The widest picture that features are tracked on (default 640): larger frames are scaled
    /// down by a power of two first, which keeps 1280x720 well above real time.
    pub fn tracking_width(mut self, width: u32) -> Self {
        self.tracking_width = width;
        self
    }

    /// The most corners tracked per frame (default 150), spread over a grid.
    pub fn max_features(mut self, count: usize) -> Self {
        self.max_features = count;
        self
    }

    /// Whether zoom is estimated and smoothed along with shift and rotation (default off, as
    /// hand-held jitter seldom zooms and a noisy scale estimate would add shake).
    pub fn estimate_scale(mut self, estimate_scale: bool) -> Self {
        self.estimate_scale = estimate_scale;
        self
    }

    /// The size of the stabilized frames for `width` x `height` input: the input size, or with
    /// a border and no crop-and-zoom, the input plus the border on every side.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if self.crop_zoom {
            (width, height)
        } else {
            (width + 2 * self.border_size, height + 2 * self.border_size)
        }
    }

    /// Frames that output lags input: `smoothing_radius` for the moving average, 0 for the
    /// causal filter.
    pub fn delay(&self) -> usize {
        match self.smoothing {
            Smoothing::MovingAverage => self.smoothing_radius,
            Smoothing::Causal => 0,
        }
    }

    pub(crate) fn check(&self) -> Result<(), StabilizeError> {
        if self.border_size > 4096 {
            return Err(StabilizeError::InvalidConfig(format!(
                "border size {} is larger than 4096",
                self.border_size
            )));
        }
        if self.tracking_width < 64 {
            return Err(StabilizeError::InvalidConfig(format!(
                "tracking width {} is below 64",
                self.tracking_width
            )));
        }
        if self.max_features < 8 {
            return Err(StabilizeError::InvalidConfig(format!(
                "max features {} is below 8, too few to fit a motion robustly",
                self.max_features
            )));
        }
        if self.smoothing_radius > 1000 {
            return Err(StabilizeError::InvalidConfig(format!(
                "smoothing radius {} is above 1000",
                self.smoothing_radius
            )));
        }
        Ok(())
    }
}
