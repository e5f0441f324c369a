//! Video encoding for rtcgear: H.264 through libx264, and VP8 through libvpx.
//!
//! An [`Encoder`] turns [`Frame`](rtcgear_capture::Frame)s into
//! [`AccessUnit`](rtcgear_capture::AccessUnit)s, the same type capture's passthrough sources
//! deliver: H.264 in Annex B form (NAL units behind start codes), each with the counter and
//! capture time of the frame it came from, so that the RTP side can timestamp packets and measure latency
//! without knowing anything about H.264 encoding. A [`Vp8Encoder`] (cargo feature `vp8`, on by
//! default) does the same in VP8, for browsers without H.264 (Firefox as Debian ships it); see
//! [VP8](#vp8).
//!
//! # Model
//!
//! The encoder has the send/receive shape of rav1e: [`Encoder::send_frame`] takes a frame,
//! [`Encoder::receive_packet`] hands out whatever is ready, and `None` from it means "send more
//! frames", a normal state rather than an error. [`Encoder::flush`] ends the stream and pushes out
//! what x264 held back. With the default `zerolatency` tune x264 holds nothing, so one frame in
//! gives one packet out; with other tunes it may hold several, and the shape stays the same.
//!
//! The encoder spawns no threads of its own and reads no clock; x264 runs its worker threads
//! inside each call.
//!
//! # Defaults for WebRTC
//!
//! [`EncoderConfig::new`] sets up for live streaming to browsers: Constrained Baseline, the
//! profile every WebRTC endpoint decodes; `ultrafast` + `zerolatency`; a bitrate scaled from
//! 2500 kbit/s at 720p30 ([`default_kbps`]) under a VBV of a few frames ([`VBV_FRAMES`]), so that
//! no frame takes long to cross the link; a keyframe every two seconds, each with SPS and PPS in
//! front, and [`Encoder::request_keyframe`] for a viewer's PLI.
//!
//! x264 picks the H.264 level from the size, rate and bitrate: 3.0 up to 640x480 at 30 fps, 3.1
//! at 1280x720 at 30 fps (which is what the `42e01f` of a browser's offer says), 4.0 at
//! 1920x1080. Sizes or rates beyond level 3.1 should be offered with a higher level in the SDP's
//! `profile-level-id` (`42e028` for 4.0); Chromium and Firefox decode them under `42e01f` too, but
//! a strict endpoint may not.
//!
//! # Example
//!
//! ```
//! use rtcgear_capture::{Frame, FrameRate, PixelFormat};
//! use rtcgear_encode::{Encoder, EncoderConfig};
//!
//! let fps = FrameRate::from_int(30).expect("30 is above zero");
//! let mut encoder = Encoder::new(EncoderConfig::new(320, 240, fps))?;
//! let mut packets = Vec::new();
//! for counter in 0..10u64 {
//!     // A grey picture that brightens frame by frame.
//!     let mut frame = Frame::new(320, 240, PixelFormat::I420)?;
//!     frame.plane_mut(0).data_mut().fill(40 + 10 * counter as u8);
//!     frame.set_counter(counter);
//!     encoder.send_frame(&frame)?;
//!     // Drain whatever is ready; `None` means "send the next frame".
//!     while let Some(packet) = encoder.receive_packet() {
//!         packets.push(packet);
//!     }
//! }
//! encoder.flush()?;
//! while let Some(packet) = encoder.receive_packet() {
//!     packets.push(packet);
//! }
//!
//! assert_eq!(packets.len(), 10);
//! assert!(packets[0].keyframe);
//! assert!(packets[0].data.starts_with(&[0, 0, 0, 1]));
//! assert_eq!(packets[9].counter, 9);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # VP8
//!
//! [`Vp8Encoder`] has the shape of [`Encoder`] (`send_frame`, `receive_packet`, `flush`,
//! `request_keyframe`) and [`Vp8Config`] the same defaults where the two codecs share a
//! setting: [`default_kbps`] and a keyframe every two seconds. Its access units carry
//! [`Codec::Vp8`](rtcgear_capture::Codec::Vp8): one VP8 frame each, with no container, ready
//! for an RTP VP8 packetizer (RFC 7741), and `keyframe` set on key frames.
//!
//! The settings that are not in [`Vp8Config`] are fixed for live WebRTC, mostly as libwebrtc
//! (the browsers' own encoder) sets libvpx: the realtime deadline at speed
//! [`DEFAULT_VP8_SPEED`], no look-ahead (`lag-in-frames` 0) and no alternate reference frames,
//! so every frame sent comes out of the same call; error-resilient mode; constant bitrate over
//! a one-second buffer with key frames capped at nine average frames (at 30 fps) and no frame
//! dropped; key frames at the interval exactly, not on libvpx's guess of a scene change.
//! [`Vp8Config::threads`] defaults to as many threads as libwebrtc would run (one on a 2-core
//! machine: libvpx's threads spin while they wait for each other, which on a busy machine costs
//! more than it saves).
//!
//! libvpx is reached through FFmpeg's libavcodec (its `libvpx` encoder) by way of
//! `ffmpeg-next`, which capture already builds on: no other binding, no second system package
//! (Debian's libavcodec already links libvpx; `libvpx-dev` is not needed) and no new licence.
//! The libvpx binding on crates.io, `env-libvpx-sys` (5.1, with `vpx-encode` 0.6 over it), would
//! need `libvpx-dev` for pkg-config, brings a licence (MPL-2.0) that `deny.toml` does not allow
//! yet, and its safe layer `vpx-encode` cannot force a key frame (it passes no flags to
//! `vpx_codec_encode`), so rtcgear would have to keep unsafe libvpx calls of its own. The
//! options are set by name, and an option FFmpeg does not know fails [`Vp8Encoder::new`] with
//! its name, so an FFmpeg that renames one is noticed at once.
//!
//! ```
//! # #[cfg(feature = "vp8")] {
//! use rtcgear_capture::{Codec, Frame, FrameRate, PixelFormat};
//! use rtcgear_encode::{Vp8Config, Vp8Encoder};
//!
//! let fps = FrameRate::from_int(30).expect("30 is above zero");
//! let mut encoder = Vp8Encoder::new(Vp8Config::new(320, 240, fps))?;
//! let mut packets = Vec::new();
//! for counter in 0..10u64 {
//!     let mut frame = Frame::new(320, 240, PixelFormat::I420)?;
//!     frame.plane_mut(0).data_mut().fill(40 + 10 * counter as u8);
//!     frame.set_counter(counter);
//!     if counter == 5 {
//!         // A viewer's PLI: the next frame is a key frame.
//!         encoder.request_keyframe();
//!     }
//!     encoder.send_frame(&frame)?;
//!     while let Some(packet) = encoder.receive_packet() {
//!         packets.push(packet);
//!     }
//! }
//! encoder.flush()?;
//! packets.extend(std::iter::from_fn(|| encoder.receive_packet()));
//!
//! assert_eq!(packets.len(), 10);
//! assert!(packets.iter().all(|p| p.codec == Codec::Vp8));
//! let keyframes: Vec<u64> = packets.iter().filter(|p| p.keyframe).map(|p| p.counter).collect();
//! assert_eq!(keyframes, [0, 5]);
//! // A VP8 key frame: bit 0 of the frame tag clear, then the start code 9d 01 2a.
//! assert_eq!(packets[0].data[0] & 1, 0);
//! assert_eq!(&packets[0].data[3..6], &[0x9d, 0x01, 0x2a]);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod config;
mod encoder;
mod error;
#[cfg(feature = "vp8")]
mod vp8;
#[cfg(feature = "vp8")]
mod vp8_config;
mod x264;

pub use config::{default_kbps, EncoderConfig, Profile, RateControl, VBV_FRAMES};
pub use encoder::Encoder;
pub use error::EncodeError;
#[cfg(feature = "vp8")]
pub use vp8::Vp8Encoder;
#[cfg(feature = "vp8")]
pub use vp8_config::{Vp8Config, DEFAULT_VP8_SPEED};
