//! A small safe wrapper over libx264: an encoder handle opened from an [`EncoderConfig`] and fed
//! one picture at a time.
//!
//! Everything `unsafe` in the crate is in this file.

use std::ffi::CString;
use std::mem;
use std::os::raw::c_int;
use std::ptr::{self, NonNull};
use std::slice;

use bytes::Bytes;
use rtcgear_capture::Plane;
use x264_sys as sys;

use crate::{EncodeError, EncoderConfig, Profile, RateControl};

/// One I420 picture to encode, borrowed from a frame for the duration of one call.
pub(crate) struct Input<'a> {
    /// The Y, U and V planes of a frame of the configured size.
    pub planes: [&'a Plane; 3],
    /// The presentation timestamp, in frames.
    pub pts: i64,
    /// Whether to force an IDR picture.
    pub idr: bool,
}

/// One encoded picture, as x264 returns it.
pub(crate) struct Output {
    /// The Annex B access unit.
    pub data: Bytes,
    /// Whether the picture is an IDR.
    pub keyframe: bool,
    /// The pts of the input picture this came from.
    pub pts: i64,
}

/// An open x264 encoder, closed on drop.
pub(crate) struct Handle {
    raw: NonNull<sys::x264_t>,
}

// SAFETY: an x264 encoder has no affinity to the thread that opened it: its state lives behind
// the `x264_t` pointer, its worker threads synchronise with the calling thread inside each call,
// and it uses no thread-local storage, so any one thread at a time may call it (FFmpeg calls it
// from whichever thread runs the codec). Every call here goes through `&mut self`, so calls never
// overlap.
unsafe impl Send for Handle {}

impl Handle {
    /// Opens an encoder with the parameters `config` asks for. The config has been validated.
    pub fn open(config: &EncoderConfig) -> Result<Handle, EncodeError> {
        let mut param = parameters(config)?;
        // SAFETY: `param` was filled by x264_param_default_preset and then given values in the
        // ranges x264 documents; x264_encoder_open copies it and keeps no pointer to it.
        let raw = unsafe { sys::x264_encoder_open(&mut param) };
        let Some(raw) = NonNull::new(raw) else {
            tracing::error!(
                width = config.width,
                height = config.height,
                "x264_encoder_open failed"
            );
            return Err(EncodeError::Open {
                width: config.width,
                height: config.height,
            });
        };
        let handle = Handle { raw };
        handle.log_parameters();
        Ok(handle)
    }

    /// Encodes `input`, or with `None` pushes out one delayed picture. Returns the encoded
    /// picture that x264 has ready, if any (not necessarily from this input).
    pub fn encode(&mut self, input: Option<Input<'_>>) -> Result<Option<Output>, EncodeError> {
        // SAFETY: x264_picture_t is plain data (integers, floats, raw pointers and optional
        // function pointers), for which all zeroes is a valid value.
        let mut pic_in: sys::x264_picture_t = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut pic_out: sys::x264_picture_t = unsafe { mem::zeroed() };
        let pic_in_ptr = match &input {
            Some(input) => {
                // SAFETY: `pic_in` is a valid picture to initialise; x264 only writes defaults.
                unsafe { sys::x264_picture_init(&mut pic_in) };
                pic_in.img.i_csp = sys::X264_CSP_I420 as c_int;
                pic_in.img.i_plane = 3;
                for (index, plane) in input.planes.iter().enumerate() {
                    pic_in.img.i_stride[index] = c_int::try_from(plane.stride()).map_err(|_| {
                        EncodeError::InvalidConfig(format!(
                            "plane {index}'s stride of {} bytes is too large for x264",
                            plane.stride()
                        ))
                    })?;
                    // x264 takes `*mut` but only reads the input picture.
                    pic_in.img.plane[index] = plane.data().as_ptr().cast_mut();
                }
                pic_in.i_pts = input.pts;
                pic_in.i_type = if input.idr {
                    sys::X264_TYPE_IDR
                } else {
                    sys::X264_TYPE_AUTO
                } as c_int;
                &mut pic_in as *mut sys::x264_picture_t
            }
            None => ptr::null_mut(),
        };
        let mut nals: *mut sys::x264_nal_t = ptr::null_mut();
        let mut nal_count: c_int = 0;
        // SAFETY: `self.raw` is an open encoder, used by this thread alone (`&mut self`). When
        // there is an input picture, its planes belong to an I420 frame of the configured size,
        // which `Frame` checked to hold every row at its stride. x264 reads those rows (its SIMD
        // copies may read a few bytes past a row's pixels, but copy the last row with plain C, so
        // every read stays inside the plane's buffer) and copies the picture into its own
        // buffers before returning, so the borrow of the frame covers every access. A null
        // `pic_in` asks for a delayed picture. `nals`, `nal_count` and `pic_out` are
        // out-parameters.
        let size = unsafe {
            sys::x264_encoder_encode(
                self.raw.as_ptr(),
                &mut nals,
                &mut nal_count,
                pic_in_ptr,
                &mut pic_out,
            )
        };
        if size < 0 {
            tracing::error!(code = size, "x264_encoder_encode failed");
            return Err(EncodeError::Encode(size));
        }
        if size == 0 || nals.is_null() || nal_count <= 0 {
            return Ok(None);
        }
        // SAFETY: x264 returned `nal_count` > 0 NAL units holding `size` bytes, and documents that
        // "the payloads of all output NALs are guaranteed to be sequential in memory", so the
        // access unit is the `size` bytes from the first NAL's payload. They stay valid until the
        // next x264_encoder_encode call, which needs `&mut self`; they are copied out here.
        let data = unsafe { slice::from_raw_parts((*nals).p_payload, size as usize) };
        Ok(Some(Output {
            data: Bytes::copy_from_slice(data),
            keyframe: pic_out.b_keyframe != 0,
            pts: pic_out.i_pts,
        }))
    }

    /// How many pictures x264 holds that it has not returned yet.
    pub fn delayed_frames(&mut self) -> usize {
        // SAFETY: `self.raw` is an open encoder, used by this thread alone.
        let delayed = unsafe { sys::x264_encoder_delayed_frames(self.raw.as_ptr()) };
        usize::try_from(delayed).unwrap_or(0)
    }

    /// Logs the parameters x264 settled on (the level it chose, the threads it started).
    fn log_parameters(&self) {
        // SAFETY: plain data, see `encode`.
        let mut param: sys::x264_param_t = unsafe { mem::zeroed() };
        // SAFETY: `self.raw` is an open encoder; x264 copies its parameters into `param`, whose
        // pointers stay owned by the encoder and are not used here.
        unsafe { sys::x264_encoder_parameters(self.raw.as_ptr(), &mut param) };
        tracing::debug!(
            width = param.i_width,
            height = param.i_height,
            level_idc = param.i_level_idc,
            cabac = param.b_cabac,
            threads = param.i_threads,
            sliced_threads = param.b_sliced_threads,
            keyint = param.i_keyint_max,
            bframes = param.i_bframe,
            bitrate = param.rc.i_bitrate,
            vbv_max_bitrate = param.rc.i_vbv_max_bitrate,
            vbv_buffer_size = param.rc.i_vbv_buffer_size,
            "x264 encoder open"
        );
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: `self.raw` came from x264_encoder_open and is closed exactly once, here.
        unsafe { sys::x264_encoder_close(self.raw.as_ptr()) };
    }
}

/// The x264 parameters for a validated config: preset and tune first, then our settings, then
/// the profile, which x264 wants applied last.
fn parameters(config: &EncoderConfig) -> Result<sys::x264_param_t, EncodeError> {
    let unknown = || EncodeError::UnknownPreset {
        preset: config.preset.clone(),
        tune: config.tune.clone(),
    };
    // x264 reports unknown names on stderr before our log level applies, so check them here.
    let known_tunes = |tune: &str| {
        let mut tunes = tune.split(TUNE_SEPARATORS);
        // x264 takes any number of tunes but only one of the psychovisual ones, listed first.
        let psy = tunes.clone().filter(|t| TUNES[..6].contains(t)).count();
        psy <= 1 && tunes.all(|t| TUNES.contains(&t))
    };
    if !PRESETS.contains(&config.preset.as_str()) || !config.tune.as_deref().is_none_or(known_tunes)
    {
        return Err(unknown());
    }
    let preset = CString::new(config.preset.as_str()).map_err(|_| unknown())?;
    let tune = match &config.tune {
        Some(tune) => Some(CString::new(tune.as_str()).map_err(|_| unknown())?),
        None => None,
    };
    // SAFETY: plain data, see `Handle::encode`.
    let mut param: sys::x264_param_t = unsafe { mem::zeroed() };
    // SAFETY: `param` is valid for writes; the names are NUL-terminated and outlive the call, and
    // a null tune means none. x264 compares the names and keeps no pointer to them.
    let status = unsafe {
        sys::x264_param_default_preset(
            &mut param,
            preset.as_ptr(),
            tune.as_ref().map_or(ptr::null(), |tune| tune.as_ptr()),
        )
    };
    if status < 0 {
        return Err(unknown());
    }

    // x264 prints to stderr unless told not to; errors come back through return codes instead,
    // and `Handle::open` logs the settings x264 chose through `tracing`.
    param.i_log_level = sys::X264_LOG_NONE;
    param.i_width = to_int(config.width);
    param.i_height = to_int(config.height);
    param.i_csp = sys::X264_CSP_I420 as c_int;
    param.i_fps_num = config.fps.num;
    param.i_fps_den = config.fps.den;
    // Timestamps count frames: the time base is one frame.
    param.i_timebase_num = config.fps.den;
    param.i_timebase_den = config.fps.num;
    param.b_vfr_input = 0;
    // Annex B start codes, and SPS + PPS in front of every IDR, so that a viewer who joins late
    // or lost packets can start decoding at any keyframe.
    param.b_annexb = 1;
    param.b_repeat_headers = 1;
    param.b_aud = 0;
    // Let x264 pick the lowest level that fits the size, rate and bitrate: 3.1 at 720p30, which
    // matches the 42e01f that browsers offer.
    param.i_level_idc = -1;
    param.i_keyint_max = match config.keyframe_interval {
        0 => sys::X264_KEYINT_MAX_INFINITE as c_int,
        frames => to_int(frames),
    };
    // Keyframes are whole IDR pictures; a refresh wave spread over many frames would leave a
    // viewer who joins with a broken picture until it passes.
    param.b_intra_refresh = 0;
    param.b_open_gop = 0;
    param.i_threads = to_int(config.threads);
    match config.rate {
        RateControl::Bitrate { kbps } => {
            param.rc.i_rc_method = sys::X264_RC_ABR as c_int;
            param.rc.i_bitrate = to_int(kbps);
            param.rc.i_vbv_max_bitrate = to_int(kbps);
            param.rc.i_vbv_buffer_size = to_int(config.vbv_buffer_kbit(kbps));
        }
        RateControl::Crf(crf) => {
            param.rc.i_rc_method = sys::X264_RC_CRF as c_int;
            param.rc.f_rf_constant = crf;
        }
    }
    match config.profile {
        // x264_param_apply_profile turns off CABAC, B-frames, the 8x8 transform and weighted
        // prediction for baseline.
        Profile::ConstrainedBaseline => {}
        // x264 writes the lowest profile that covers the tools in use, and `ultrafast` uses none
        // beyond baseline: turn on what the asked-for profile is there for.
        Profile::Main => param.b_cabac = 1,
        Profile::High => {
            param.b_cabac = 1;
            param.analyse.b_transform_8x8 = 1;
        }
    }

    // SAFETY: `param` is initialised; the profile name is a NUL-terminated static string.
    let status =
        unsafe { sys::x264_param_apply_profile(&mut param, config.profile.x264_name().as_ptr()) };
    if status < 0 {
        return Err(EncodeError::Profile(config.profile));
    }
    Ok(param)
}

/// x264's presets, as its header lists them in `x264_preset_names`.
const PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// x264's tunes, as its header lists them in `x264_tune_names`, the six psychovisual ones first.
const TUNES: [&str; 8] = [
    "film",
    "animation",
    "grain",
    "stillimage",
    "psnr",
    "ssim",
    "fastdecode",
    "zerolatency",
];

/// The characters that separate combined tunes, from x264's header.
const TUNE_SEPARATORS: [char; 5] = [',', '.', '/', '-', '+'];

/// A validated config value as a C int; `EncoderConfig::validate` keeps them all far below
/// `c_int::MAX`, so the fallback never applies.
fn to_int(value: u32) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}
