//! H.264 encoding for rtcgear, through libx264.
//!
//! An [`Encoder`] turns [`Frame`](rtcgear_capture::Frame)s into
//! [`AccessUnit`](rtcgear_capture::AccessUnit)s, the same type capture's passthrough sources
//! deliver: H.264 in Annex B form (NAL units behind start codes), each with the counter and
//! capture time of the frame it came from, so that the RTP side can timestamp packets and measure latency
//! without knowing anything about H.264 encoding.
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
#![deny(missing_docs)]

mod config;
mod encoder;
mod error;
mod x264;

pub use config::{default_kbps, EncoderConfig, Profile, RateControl, VBV_FRAMES};
pub use encoder::Encoder;
pub use error::EncodeError;
