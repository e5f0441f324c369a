//! The VP8 encoder: frames in, VP8 frames out, through FFmpeg's libvpx wrapper (`libvpx`).
//!
//! Everything `unsafe` about VP8 is in this file: setting the encoder's options by name, which
//! `ffmpeg-next` has no safe call for.

use std::collections::{HashMap, VecDeque};
use std::ffi::CString;
use std::fmt;
use std::os::raw::c_int;
use std::sync::Once;

use bytes::Bytes;
use ffmpeg_next as ff;
use rtcgear_capture::{AccessUnit, CaptureTime, Codec, Frame};

use crate::config::MAX_KEYFRAME_INTERVAL;
use crate::encoder::i420_of;
use crate::{EncodeError, Vp8Config};

/// The rate control's buffer, in milliseconds of the target bitrate, and its level at the start:
/// libwebrtc's figures for its own VP8 encoder. FFmpeg sets the level libvpx aims for to five
/// sixths of the buffer (libwebrtc: 600 ms).
const BUFFER_MS: u64 = 1000;
const INITIAL_BUFFER_MS: u64 = 500;
/// How far libvpx may undershoot and overshoot the target, in percent (libwebrtc's figures): a
/// quiet scene may spend nothing, a busy one little more than the link carries.
const UNDERSHOOT_PCT: u32 = 100;
const OVERSHOOT_PCT: u32 = 15;
/// The quantiser range, as libwebrtc's (libvpx allows 0 to 63): the top is left out so that
/// a starved frame stays recognisable.
const QMIN: u32 = 2;
const QMAX: u32 = 56;

/// A VP8 encoder over libvpx, with the shape of the H.264 [`Encoder`](crate::Encoder).
///
/// Send frames with [`Vp8Encoder::send_frame`], then call [`Vp8Encoder::receive_packet`] until
/// it returns `None`, which means "send more frames". libvpx runs with no look-ahead, so every
/// frame sent comes out at once, each as an [`AccessUnit`] with [`Codec::Vp8`] and the frame's
/// counter and capture time. [`Vp8Encoder::flush`] ends the stream. See the
/// [crate docs](crate#vp8) for an example.
pub struct Vp8Encoder {
    config: Vp8Config,
    encoder: ff::encoder::Video,
    /// The picture handed to FFmpeg, reused while FFmpeg holds no reference to it.
    picture: ff::frame::Video,
    /// The counter and capture time of each frame inside the encoder, by pts.
    in_flight: HashMap<i64, (u64, CaptureTime)>,
    packets: VecDeque<AccessUnit>,
    next_pts: i64,
    keyframe_requested: bool,
    flushed: bool,
}

impl Vp8Encoder {
    /// Opens libvpx's VP8 encoder with `config`, after checking its values.
    ///
    /// The first call also initialises FFmpeg and, if its log level is above errors (FFmpeg's
    /// default prints libvpx's version on every open), lowers it to errors: process-wide, as
    /// FFmpeg's logging is. Errors come back as [`EncodeError`] instead.
    pub fn new(config: Vp8Config) -> Result<Vp8Encoder, EncodeError> {
        config.validate()?;
        init_ffmpeg();
        let threads = config.effective_threads();
        let encoder = open(&config, threads)?;
        let picture =
            ff::frame::Video::new(ff::format::Pixel::YUV420P, config.width, config.height);
        tracing::debug!(
            width = config.width,
            height = config.height,
            kbps = config.kbps,
            keyframe_interval = config.keyframe_interval,
            threads,
            speed = config.speed,
            "libvpx VP8 encoder open"
        );
        Ok(Vp8Encoder {
            config,
            encoder,
            picture,
            in_flight: HashMap::new(),
            packets: VecDeque::new(),
            next_pts: 0,
            keyframe_requested: false,
            flushed: false,
        })
    }

    /// The settings the encoder was made with.
    pub fn config(&self) -> &Vp8Config {
        &self.config
    }

    /// Encodes one frame of the configured size. Frames in another pixel format are converted
    /// to I420 first; every frame is copied once into FFmpeg's picture.
    ///
    /// The encoded frame becomes available from [`Vp8Encoder::receive_packet`].
    pub fn send_frame(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed);
        }
        let frame = i420_of(frame, (self.config.width, self.config.height))?;

        self.fill_picture(&frame);
        let pts = self.next_pts;
        self.picture.set_pts(Some(pts));
        // libvpx's wrapper turns an I picture into VPX_EFLAG_FORCE_KF.
        self.picture.set_kind(if self.keyframe_requested {
            ff::picture::Type::I
        } else {
            ff::picture::Type::None
        });
        self.in_flight.insert(pts, (frame.counter(), frame.time()));
        if let Err(err) = self.encoder.send_frame(&self.picture) {
            self.in_flight.remove(&pts);
            return Err(ffmpeg_error("encoding a frame", err));
        }
        self.next_pts += 1;
        self.keyframe_requested = false;
        self.drain()
    }

    /// The next encoded frame, or `None` when the encoder needs more frames (or, after
    /// [`Vp8Encoder::flush`], when the stream is over).
    pub fn receive_packet(&mut self) -> Option<AccessUnit> {
        self.packets.pop_front()
    }

    /// Ends the stream: makes libvpx hand out anything it holds (with no look-ahead, nothing),
    /// so that [`Vp8Encoder::receive_packet`] returns it. Frames sent afterwards are refused
    /// with [`EncodeError::Flushed`]; flushing again does nothing.
    pub fn flush(&mut self) -> Result<(), EncodeError> {
        if self.flushed {
            return Ok(());
        }
        self.flushed = true;
        self.encoder
            .send_eof()
            .map_err(|err| ffmpeg_error("flushing", err))?;
        self.drain()
    }

    /// Makes the next frame sent a key frame: for a viewer that joined or lost packets (an
    /// RTCP PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Copies an I420 frame of the configured size into FFmpeg's picture, first replacing the
    /// picture if FFmpeg still holds a reference to it (it does not once `send_frame` returned,
    /// as libvpx's wrapper encodes inside that call).
    fn fill_picture(&mut self, frame: &Frame) {
        // SAFETY: `self.picture` owns a valid AVFrame with buffers (made by `Video::new`).
        let writable = unsafe { ff::ffi::av_frame_is_writable(self.picture.as_mut_ptr()) } > 0;
        if !writable {
            self.picture =
                ff::frame::Video::new(ff::format::Pixel::YUV420P, frame.width(), frame.height());
        }
        for index in 0..3 {
            let plane = frame.plane(index);
            let stride = self.picture.stride(index);
            let rows = plane.rows();
            let target = self.picture.data_mut(index);
            for y in 0..rows {
                let row = plane.row(y);
                target[y * stride..y * stride + row.len()].copy_from_slice(row);
            }
        }
    }

    /// Moves every packet FFmpeg has ready into the queue.
    fn drain(&mut self) -> Result<(), EncodeError> {
        let mut packet = ff::Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => self.queue(&packet)?,
                Err(ff::Error::Eof) => return Ok(()),
                // "Send more input first".
                Err(ff::Error::Other {
                    errno: ff::error::EAGAIN,
                }) => return Ok(()),
                Err(err) => return Err(ffmpeg_error("receiving a packet", err)),
            }
        }
    }

    fn queue(&mut self, packet: &ff::Packet) -> Result<(), EncodeError> {
        let pts = packet.pts().unwrap_or(i64::MIN);
        let Some((counter, time)) = self.in_flight.remove(&pts) else {
            tracing::error!(pts, "libvpx returned a pts that was never sent");
            return Err(EncodeError::UnknownPts(pts));
        };
        let data = Bytes::copy_from_slice(packet.data().unwrap_or_default());
        let keyframe = packet.is_key();
        tracing::trace!(pts, counter, bytes = data.len(), keyframe, "encoded VP8");
        self.packets.push_back(AccessUnit {
            data,
            keyframe,
            counter,
            time,
            codec: Codec::Vp8,
        });
        Ok(())
    }
}

impl fmt::Debug for Vp8Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vp8Encoder")
            .field("config", &self.config)
            .field("next_pts", &self.next_pts)
            .field("in_flight", &self.in_flight.len())
            .field("packets", &self.packets.len())
            .field("keyframe_requested", &self.keyframe_requested)
            .field("flushed", &self.flushed)
            .finish_non_exhaustive()
    }
}

fn ffmpeg_error(action: &'static str, err: ff::Error) -> EncodeError {
    EncodeError::Vp8 {
        action,
        reason: err.to_string(),
    }
}

/// Initialises FFmpeg once and keeps its logging to errors at most (see [`Vp8Encoder::new`]).
fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registers nothing since FFmpeg 4, but is the documented first call; a failure would
        // show when the encoder is looked up.
        let _ = ff::init();
        let error = c_int::from(ff::util::log::Level::Error);
        // SAFETY: reads a global integer.
        if unsafe { ff::ffi::av_log_get_level() } > error {
            ff::util::log::set_level(ff::util::log::Level::Error);
        }
    });
}

/// Opens FFmpeg's `libvpx` encoder for a validated config.
fn open(config: &Vp8Config, threads: u32) -> Result<ff::encoder::Video, EncodeError> {
    let codec = ff::encoder::find_by_name("libvpx").ok_or(EncodeError::Vp8 {
        action: "looking up the encoder",
        reason: "this FFmpeg has no `libvpx` encoder (it was built without --enable-libvpx)"
            .to_owned(),
    })?;
    let context = ff::codec::context::Context::new_with_codec(codec);
    let mut video = context
        .encoder()
        .video()
        .map_err(|err| ffmpeg_error("making the encoder", err))?;
    video.set_width(config.width);
    video.set_height(config.height);
    video.set_format(ff::format::Pixel::YUV420P);
    // Timestamps count frames: the time base is one frame.
    let (num, den) = (to_int(config.fps.num), to_int(config.fps.den));
    video.set_time_base(ff::Rational::new(den, num));
    video.set_frame_rate(Some(ff::Rational::new(num, den)));

    let bits_per_second = u64::from(config.kbps) * 1000;
    let interval = match config.keyframe_interval {
        0 => MAX_KEYFRAME_INTERVAL,
        frames => frames,
    };
    // libwebrtc's cap on a key frame, as a percentage of an average frame: half of its optimal
    // buffer level (600 ms) in frame intervals, 900 % (nine frames' worth) at 30 fps.
    let max_intra_pct = (30 * u64::from(config.fps.num) / u64::from(config.fps.den)).max(100);
    let options: [(&str, String); 20] = [
        // Constant bitrate: libvpx's wrapper picks VPX_CBR when the three rates are equal.
        ("b", bits_per_second.to_string()),
        ("minrate", bits_per_second.to_string()),
        ("maxrate", bits_per_second.to_string()),
        ("bufsize", (bits_per_second * BUFFER_MS / 1000).to_string()),
        (
            "rc_init_occupancy",
            (bits_per_second * INITIAL_BUFFER_MS / 1000).to_string(),
        ),
        ("undershoot-pct", UNDERSHOOT_PCT.to_string()),
        ("overshoot-pct", OVERSHOOT_PCT.to_string()),
        ("max-intra-rate", max_intra_pct.to_string()),
        ("qmin", QMIN.to_string()),
        ("qmax", QMAX.to_string()),
        // Every frame sent is encoded: a dropped frame would leave a gap in the counters.
        ("drop-threshold", "0".to_owned()),
        // Key frames exactly at the interval (a minimum equal to the maximum), not on libvpx's
        // guess of a scene change.
        ("g", interval.to_string()),
        ("keyint_min", interval.to_string()),
        // Live: one frame in, one out, encoded within a frame interval.
        ("deadline", "realtime".to_owned()),
        ("lag-in-frames", "0".to_owned()),
        ("auto-alt-ref", "0".to_owned()),
        ("cpu-used", config.speed.to_string()),
        // A lost frame damages the picture until the next key frame at worst, rather than
        // the probability tables of every later frame.
        ("error-resilient", "default".to_owned()),
        // Skip blocks that did not change, as libwebrtc does.
        ("static-thresh", "1".to_owned()),
        ("threads", threads.to_string()),
    ];
    for (name, value) in &options {
        set_option(&mut video, name, value)?;
    }
    video
        .open_as(codec)
        .map_err(|err| ffmpeg_error("opening the encoder", err))
}

/// Sets one of the encoder's options (FFmpeg's generic codec options or libvpx's own) by name,
/// failing when FFmpeg does not know the name or refuses the value, so that a renamed option
/// shows as an error rather than as a silently different stream.
fn set_option(
    video: &mut ff::codec::encoder::video::Video,
    name: &'static str,
    value: &str,
) -> Result<(), EncodeError> {
    let option = |reason: String| EncodeError::Vp8 {
        action: "setting an option",
        reason,
    };
    let c_name = CString::new(name).map_err(|_| option(format!("bad option name {name:?}")))?;
    let c_value = CString::new(value).map_err(|_| option(format!("bad value {value:?}")))?;
    // SAFETY: the context is a valid AVCodecContext made for the libvpx encoder, not yet open,
    // so its private options (libvpx's) are allocated; AV_OPT_SEARCH_CHILDREN looks the name up
    // in the context's options and then in those. Both strings are NUL-terminated and outlive
    // the call; FFmpeg copies the value.
    let status = unsafe {
        ff::ffi::av_opt_set(
            video.as_mut_ptr().cast(),
            c_name.as_ptr(),
            c_value.as_ptr(),
            ff::ffi::AV_OPT_SEARCH_CHILDREN as c_int,
        )
    };
    if status < 0 {
        return Err(option(format!(
            "{name}={value}: {}",
            ff::Error::from(status)
        )));
    }
    Ok(())
}

/// A validated config value as a C int; `Vp8Config::validate` keeps them far below `c_int::MAX`.
fn to_int(value: u32) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}

#[cfg(test)]
mod tests {
    use rtcgear_capture::{FrameRate, PixelFormat};

    use super::*;

    const FPS: FrameRate = FrameRate { num: 30, den: 1 };

    #[test]
    fn the_encoder_moves_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Vp8Encoder>();
    }

    #[test]
    fn every_option_is_known_to_ffmpeg() {
        // `open` fails on an option FFmpeg does not know, naming it.
        let mut config = Vp8Config::new(64, 48, FPS);
        config.keyframe_interval = 0;
        config.threads = 2;
        let encoder = Vp8Encoder::new(config).expect("every option is known");
        assert_eq!(encoder.config().threads, 2);
    }

    #[test]
    fn an_unknown_option_is_an_error_naming_it() {
        init_ffmpeg();
        let codec = ff::encoder::find_by_name("libvpx").expect("FFmpeg has libvpx");
        let mut video = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .expect("a video encoder");
        let err = set_option(&mut video, "warp-speed", "9").unwrap_err();
        assert!(err.to_string().contains("warp-speed=9"), "{err}");
        let err = set_option(&mut video, "deadline", "yesterday").unwrap_err();
        assert!(err.to_string().contains("deadline=yesterday"), "{err}");
    }

    #[test]
    fn other_formats_are_converted_and_keep_their_meta() {
        let mut encoder = Vp8Encoder::new(Vp8Config::new(64, 48, FPS)).expect("a valid config");
        for (counter, format) in PixelFormat::ALL.into_iter().enumerate() {
            let frame = Frame::new(64, 48, format)
                .expect("a valid size")
                .with_meta(counter as u64, CaptureTime::now());
            encoder
                .send_frame(&frame)
                .expect("every format converts to I420");
            let packet = encoder.receive_packet().expect("no look-ahead");
            assert!(encoder.receive_packet().is_none());
            assert_eq!(packet.counter, counter as u64);
            assert_eq!(packet.time, frame.time());
            assert_eq!(packet.codec, Codec::Vp8);
            assert_eq!(packet.keyframe, counter == 0);
        }
    }

    #[test]
    fn a_flushed_encoder_refuses_frames() {
        let mut encoder = Vp8Encoder::new(Vp8Config::new(64, 48, FPS)).expect("a valid config");
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
}
