//! The stabilizer: motion estimation, the camera path, smoothing and the warp.

use std::collections::VecDeque;

use rtcgear_capture::Frame;
use tracing::trace;

use crate::motion::{self, Similarity};
use crate::track::{self, Pyramid};
use crate::warp::{self, Affine};
use crate::{Smoothing, StabilizeError, StabilizerConfig};

/// Coarse pictures that differ by more than this many grey levels on average are a scene cut.
const SCENE_CUT: f32 = 40.0;
/// Fewer tracked points than this cannot give a motion worth warping by.
const MIN_INLIERS: usize = 10;

/// The camera's motion from one frame to the next as the stabilizer estimated it: the content
/// of the earlier frame at `p` (relative to the frame centre) shows at
/// `scale * rotate(angle) * p + (dx, dy)` in the later one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Motion {
    /// Horizontal shift of the content in pixels, positive to the right.
    pub dx: f64,
    /// Vertical shift of the content in pixels, positive downwards.
    pub dy: f64,
    /// Rotation of the content about the frame centre in radians, positive clockwise on screen
    /// (y points down).
    pub angle: f64,
    /// Zoom of the content; 1 unless [`StabilizerConfig::estimate_scale`] is on.
    pub scale: f64,
    /// Whether the estimate passed the reliability checks. When it did not, the stabilizer took
    /// the motion as none (the fields are zero) rather than warp by a guess.
    pub reliable: bool,
}

/// Counts of what the stabilizer has seen, for logs and progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames sent.
    pub frames: u64,
    /// Frames whose motion could not be estimated reliably (including each segment's first).
    pub unreliable: u64,
    /// Runs of frames of one size: a size change starts a new one.
    pub segments: u64,
}

/// Steadies a video: send frames in, receive stabilized frames out, in order.
///
/// With [`Smoothing::MovingAverage`] a frame comes out once `smoothing_radius` later frames have
/// gone in (so [`receive_frame`](Self::receive_frame) returning `None` at first is the normal
/// "need more input" state); [`flush`](Self::flush) releases the rest at the end. With
/// [`Smoothing::Causal`] each frame comes out as soon as it goes in.
///
/// Output frames are I420, keep their counter and capture time, and have
/// [`StabilizerConfig::output_size`].
#[derive(Debug)]
pub struct Stabilizer {
    config: StabilizerConfig,
    segment: Option<Segment>,
    ready: VecDeque<Frame>,
    last_motion: Option<Motion>,
    stats: Stats,
}

impl Stabilizer {
    /// A stabilizer with these settings.
    pub fn new(config: StabilizerConfig) -> Result<Stabilizer, StabilizeError> {
        config.check()?;
        Ok(Stabilizer {
            config,
            segment: None,
            ready: VecDeque::new(),
            last_motion: None,
            stats: Stats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &StabilizerConfig {
        &self.config
    }

    /// Takes the next frame of the video. Any pixel format is accepted and converted to I420;
    /// a frame of a new size first releases every frame of the old size, then starts afresh.
    pub fn send_frame(&mut self, frame: Frame) -> Result<(), StabilizeError> {
        let frame = frame.into_i420()?;
        let (width, height) = (frame.width(), frame.height());
        let (out_width, out_height) = self.config.output_size(width, height);
        if out_width > 16384 || out_height > 16384 {
            return Err(StabilizeError::InvalidConfig(format!(
                "a border of {} makes {width}x{height} frames {out_width}x{out_height}, above 16384",
                self.config.border_size
            )));
        }
        self.stats.frames += 1;
        let pyramid = Pyramid::new(frame.plane(0), width, height, self.config.tracking_width);
        let corners = pyramid.corners(self.config.max_features);
        let segment = match self.segment.take() {
            Some(mut segment) if (segment.width, segment.height) == (width, height) => {
                let motion = match segment.estimate(&pyramid, &self.config) {
                    Ok(model) => Motion {
                        dx: model.tx,
                        dy: model.ty,
                        angle: model.angle(),
                        scale: model.scale(),
                        reliable: true,
                    },
                    Err(reason) => {
                        trace!(
                            frame = frame.counter(),
                            reason,
                            "motion unreliable: taking it as none rather than warp by a guess"
                        );
                        self.stats.unreliable += 1;
                        Motion {
                            dx: 0.0,
                            dy: 0.0,
                            angle: 0.0,
                            scale: 1.0,
                            reliable: false,
                        }
                    }
                };
                self.last_motion = Some(motion);
                segment.advance(&motion);
                segment
            }
            previous => {
                if let Some(mut previous) = previous {
                    trace!(
                        frame = frame.counter(),
                        from = %format!("{}x{}", previous.width, previous.height),
                        to = %format!("{width}x{height}"),
                        "frame size changed: releasing the old frames and starting afresh"
                    );
                    previous.release(&self.config, &mut self.ready, true);
                }
                self.stats.unreliable += 1;
                self.stats.segments += 1;
                self.last_motion = None;
                Segment::new(width, height)
            }
        };
        let mut segment = segment;
        segment.previous = Some((pyramid, corners));
        segment.pending.push_back(frame);
        segment.release(&self.config, &mut self.ready, false);
        self.segment = Some(segment);
        Ok(())
    }

    /// The next stabilized frame, or `None` until more frames are sent (or [`flush`](Self::flush)
    /// is called).
    pub fn receive_frame(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Ends the video: every frame still held for look-ahead becomes ready, smoothed over the
    /// frames there are. Frames sent afterwards start a new video.
    pub fn flush(&mut self) {
        if let Some(mut segment) = self.segment.take() {
            segment.release(&self.config, &mut self.ready, true);
        }
        self.last_motion = None;
    }

    /// The motion estimated between the last two frames sent; `None` after the first frame of
    /// a video or of a new size.
    pub fn last_motion(&self) -> Option<Motion> {
        self.last_motion
    }

    /// Counts of frames seen and of unreliable estimates.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Frames that output lags input (see [`StabilizerConfig::delay`]).
    pub fn delay(&self) -> usize {
        self.config.delay()
    }
}

/// A run of frames of one size: the camera path and the frames waiting for look-ahead.
#[derive(Debug)]
struct Segment {
    width: u32,
    height: u32,
    /// The last frame's pyramid and corners, to track from.
    previous: Option<(Pyramid, Vec<(f32, f32)>)>,
    /// The camera pose of the newest frame: where the first frame's content is in it.
    pose: Similarity,
    /// The path as (x, y, unwrapped angle, log scale) per frame, from `first` on.
    path: VecDeque<[f64; 4]>,
    first: usize,
    /// Frames from `next_out` on, waiting for their smoothed pose.
    pending: VecDeque<Frame>,
    next_out: usize,
    /// Level and trend of each path parameter, for the causal filter.
    holt: Option<[(f64, f64); 4]>,
}

impl Segment {
    fn new(width: u32, height: u32) -> Segment {
        Segment {
            width,
            height,
            previous: None,
            pose: Similarity::IDENTITY,
            path: VecDeque::from([[0.0; 4]]),
            first: 0,
            pending: VecDeque::new(),
            next_out: 0,
            holt: None,
        }
    }

    /// The newest frame's index in the segment.
    fn newest(&self) -> usize {
        self.first + self.path.len() - 1
    }

    /// The motion from the previous frame to the one whose pyramid this is, in full-size pixels
    /// about the frame centre, or why it cannot be trusted.
    fn estimate(
        &self,
        next: &Pyramid,
        config: &StabilizerConfig,
    ) -> Result<Similarity, &'static str> {
        let Some((previous, corners)) = &self.previous else {
            return Err("no previous frame");
        };
        if corners.len() < MIN_INLIERS {
            return Err("too few corners (flat or low-texture picture)");
        }
        if previous.difference(next) > SCENE_CUT {
            return Err("scene cut");
        }
        let tracks = track::track(previous, next, corners);
        if tracks.len() < MIN_INLIERS {
            return Err("too few points tracked");
        }
        let factor = previous.factor as f64;
        let (cx, cy) = (
            (f64::from(self.width) - 1.0) / 2.0,
            (f64::from(self.height) - 1.0) / 2.0,
        );
        let full = |(x, y): (f32, f32)| {
            (
                (f64::from(x) + 0.5) * factor - 0.5 - cx,
                (f64::from(y) + 0.5) * factor - 0.5 - cy,
            )
        };
        let pairs: Vec<_> = tracks.iter().map(|&(p, q)| (full(p), full(q))).collect();
        let Some(fit) = motion::estimate(&pairs, 0.6 * factor, config.estimate_scale) else {
            return Err("no consistent motion");
        };
        let size = f64::from(self.width.min(self.height));
        if fit.inliers < MIN_INLIERS || fit.inliers * 2 < pairs.len() {
            return Err("too few points agree on one motion");
        }
        if fit.rms > 0.4 * factor {
            return Err("points fit the motion loosely");
        }
        if fit.spread < 0.1 * size {
            return Err("agreeing points bunched together");
        }
        let model = fit.model;
        if model.angle().abs() > 0.2
            || model.tx.abs() > 0.3 * f64::from(self.width)
            || model.ty.abs() > 0.3 * f64::from(self.height)
        {
            return Err("implausibly large motion");
        }
        Ok(model)
    }

    /// Adds the newest frame's motion to the path.
    fn advance(&mut self, motion: &Motion) {
        let step = Similarity::from_parts(motion.angle, motion.scale, motion.dx, motion.dy);
        self.pose = step.compose(&self.pose);
        let last = self.path[self.path.len() - 1];
        self.path.push_back([
            self.pose.tx,
            self.pose.ty,
            last[2] + motion.angle,
            last[3] + motion.scale.ln(),
        ]);
    }

    /// Warps and queues every frame whose smoothed pose is known; with `end`, all of them.
    fn release(&mut self, config: &StabilizerConfig, ready: &mut VecDeque<Frame>, end: bool) {
        let newest = self.newest();
        match config.smoothing {
            Smoothing::MovingAverage => {
                let radius = config.smoothing_radius;
                while !self.pending.is_empty() {
                    let t = self.next_out;
                    if !end && newest < t + radius {
                        break;
                    }
                    let lo = t.saturating_sub(radius);
                    let hi = newest.min(t + radius);
                    let smoothed = local_line(&self.path, self.first, lo, hi, t);
                    let actual = self.path[t - self.first];
                    if let Some(frame) = self.pending.pop_front() {
                        ready.push_back(self.correct(frame, actual, smoothed, config));
                    }
                    self.next_out += 1;
                    while self.first + radius < self.next_out && self.path.len() > 1 {
                        self.path.pop_front();
                        self.first += 1;
                    }
                }
            }
            Smoothing::Causal => {
                let actual = self.path[self.path.len() - 1];
                let smoothed = self.causal(actual, config);
                while let Some(frame) = self.pending.pop_front() {
                    ready.push_back(self.correct(frame, actual, smoothed, config));
                    self.next_out += 1;
                }
                while self.path.len() > 1 {
                    self.path.pop_front();
                    self.first += 1;
                }
            }
        }
    }

    /// The double exponential (Holt) filter, with the correction kept within bounds.
    fn causal(&mut self, actual: [f64; 4], config: &StabilizerConfig) -> [f64; 4] {
        let alpha = 2.0 / (config.smoothing_radius as f64 + 1.0);
        let beta = alpha * alpha / (2.0 - alpha);
        let limits = [
            0.08 * f64::from(self.width),
            0.08 * f64::from(self.height),
            3f64.to_radians(),
            0.05,
        ];
        let state = self.holt.get_or_insert(actual.map(|x| (x, 0.0)));
        let mut smoothed = [0.0; 4];
        for i in 0..4 {
            let (level, trend) = state[i];
            let predicted = level + trend;
            let mut new_level = alpha * actual[i] + (1.0 - alpha) * predicted;
            // When the correction would be too large (a fast pan starting), follow the camera.
            new_level = new_level.clamp(actual[i] - limits[i], actual[i] + limits[i]);
            let new_trend = beta * (new_level - level) + (1.0 - beta) * trend;
            state[i] = (new_level, new_trend);
            smoothed[i] = new_level;
        }
        smoothed
    }

    /// `frame` moved from its pose `actual` to the smoothed pose `smoothed`.
    fn correct(
        &self,
        frame: Frame,
        actual: [f64; 4],
        smoothed: [f64; 4],
        config: &StabilizerConfig,
    ) -> Frame {
        let pose = |p: [f64; 4]| Similarity::from_parts(p[2], p[3].exp(), p[0], p[1]);
        // Output position q shows the content that the smoothed camera puts there: the first
        // frame's point Q^-1 q, which this frame shows at P Q^-1 q.
        let map = pose(actual).compose(&pose(smoothed).inverse());
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let (cx, cy) = ((w - 1.0) / 2.0, (h - 1.0) / 2.0);
        let centred = Affine([
            map.a,
            -map.b,
            map.tx + cx - (map.a * cx - map.b * cy),
            map.b,
            map.a,
            map.ty + cy - (map.b * cx + map.a * cy),
        ]);
        let border = f64::from(config.border_size);
        let (out_width, out_height) = config.output_size(self.width, self.height);
        let zoom = if config.crop_zoom {
            let crop = border.min(w / 4.0).min(h / 4.0);
            let (sx, sy) = ((w - 2.0 * crop) / w, (h - 2.0 * crop) / h);
            Affine([
                sx,
                0.0,
                crop + 0.5 * sx - 0.5,
                0.0,
                sy,
                crop + 0.5 * sy - 0.5,
            ])
        } else {
            Affine([1.0, 0.0, -border, 0.0, 1.0, -border])
        };
        let map = centred.compose(&zoom);
        if (out_width, out_height) == (self.width, self.height)
            && map.is_identity(self.width, self.height)
        {
            return frame;
        }
        match warp::warp_frame(&frame, &map, out_width, out_height, config.border_type) {
            Ok(out) => out,
            Err(err) => {
                // send_frame checked the output size, so this cannot happen; pass the frame on.
                trace!(%err, "cannot make the output frame: passing the input through");
                frame
            }
        }
    }
}

/// The path at `t` smoothed over frames `lo..=hi` (of a path that starts at frame `first`): the
/// mean where the window is symmetric about `t`, as vidgear's moving average; near the ends of
/// the video, where it cannot be, the value at `t` of the straight line fitted to the window, so
/// that a steady pan stays steady there too and the first and last frames are smoothed as well.
fn local_line(path: &VecDeque<[f64; 4]>, first: usize, lo: usize, hi: usize, t: usize) -> [f64; 4] {
    let n = (hi - lo + 1) as f64;
    let (mut su, mut suu) = (0.0, 0.0);
    let (mut sp, mut sup) = ([0.0; 4], [0.0; 4]);
    for i in lo..=hi {
        let u = i as f64 - t as f64;
        su += u;
        suu += u * u;
        for (k, p) in path[i - first].iter().enumerate() {
            sp[k] += p;
            sup[k] += u * p;
        }
    }
    let det = n * suu - su * su;
    let mut out = [0.0; 4];
    for k in 0..4 {
        out[k] = if det.abs() < 1e-9 {
            sp[k] / n
        } else {
            (sp[k] * suu - su * sup[k]) / det
        };
    }
    out
}
