//! Sans-IO WebRTC broadcast: one H.264 stream to many browsers, on [str0m], and VP8 to those
//! without H.264.
//!
//! # Model
//!
//! A [`Broadcast`] holds one str0m `Rtc` per viewer (browser session). It does no I/O: it
//! opens no sockets, starts no threads and never reads the clock. The driver (the `server`
//! crate) owns the UDP socket and the threads and feeds everything in:
//!
//! - SDP offers from the signalling side (WHEP `POST`) go to
//!   [`handle_offer`](Broadcast::handle_offer), which returns the answer;
//! - datagrams from the socket go to [`handle_receive`](Broadcast::handle_receive), which
//!   routes them to their viewer: by the sender's address once it is known, before that by
//!   the ICE username of the browser's STUN request (so many viewers share one socket);
//! - with [`BroadcastConfig::tcp_candidates`] (ICE-TCP, for viewers whose UDP is blocked),
//!   packets read from TCP connections go to
//!   [`handle_receive_over`](Broadcast::handle_receive_over) with [`Transport::Tcp`], and
//!   [`Output::Transmit`] says over which [`Transport`] each packet goes back;
//! - encoded access units from the one shared encoder go to
//!   [`handle_frame`](Broadcast::handle_frame), which cuts each into RTP payloads once and
//!   writes the same payloads to every connected viewer (str0m's RTP mode: each session adds
//!   only its own header and encryption);
//! - time goes to [`handle_timeout`](Broadcast::handle_timeout).
//!
//! Out of [`poll_output`](Broadcast::poll_output) come datagrams to send, events
//! ([`BroadcastEvent`]) and finally the deadline for the next `handle_timeout`.
//!
//! The encoder runs once, outside; this crate sees only its output, the
//! [`AccessUnit`](rtcgear_capture::AccessUnit) that capture's passthrough sources deliver too:
//! bytes, a keyframe flag and a capture time. It reads the H.264 inside with
//! [`rtcgear_capture::h264`], the one bitstream reader of the workspace. A viewer's video starts on a keyframe, never on a P frame. So that it need not wait
//! for the next periodic one, every viewer that connects, and every keyframe request
//! (PLI/FIR) from a viewer, leads to [`BroadcastEvent::KeyframeNeeded`]: coalesced (one IDR
//! serves everyone waiting) and rate limited (see [`BroadcastConfig::keyframe_interval`]).
//! The driver passes it to the encoder. For H.264 whose keyframes cannot be asked for (passed
//! through from a file or a camera), [`BroadcastConfig::gop_cache`] keeps the frames since the
//! last keyframe and sends them to each viewer as it connects.
//!
//! A browser whose offer has no usable H.264 (Firefox without its OpenH264 plugin) is answered
//! with VP8 when [`BroadcastConfig::vp8`] is on: the driver then encodes the same pictures in
//! VP8 too, while [`viewer_counts`](Broadcast::viewer_counts) says anyone watches in it,
//! and hands those access units in as well; each viewer gets the units of its own codec, and
//! [`BroadcastEvent::KeyframeNeeded`] names the encoder to ask.
//!
//! A viewer that vanishes without a word (closed laptop) is dropped after
//! [`BroadcastConfig::ice_timeout`] of silence; the others carry on.
//!
//! A driver with several threads runs one `Broadcast` of each stream per thread, each with its
//! [`Shard`] in [`BroadcastConfig::shard`]: a shard's viewer ids and ICE ufrags say which
//! shard they belong to ([`Shard::of_viewer`], [`Shard::of_packet`]), so the driver routes
//! commands and datagrams without asking. It cuts each access unit into RTP payloads once with
//! a [`Packetizer`] and hands the same [`Packetized`] frame to every shard's
//! [`handle_packetized`](Broadcast::handle_packetized).
//!
//! # Why this shape
//!
//! Keeping time and I/O outside makes the whole protocol testable in memory, faster than
//! real time (the tests connect str0m clients to a `Broadcast` without sockets), and leaves
//! threads and sockets to the one crate that glues things together. It is str0m's own design,
//! one level up.
//!
//! # Order of calls
//!
//! 1. Do one thing: `handle_offer`, `handle_receive`, `handle_frame`, `handle_timeout` or
//!    `remove_viewer`.
//! 2. Call `poll_output` until it returns [`Output::Timeout`]: send each
//!    [`Output::Transmit`], act on each [`Output::Event`].
//! 3. Wait for a datagram, a frame, an offer or the deadline, whichever comes first; go to 1.
//!
//! Doing several things before polling is allowed (output is then queued inside), but
//! polling after each keeps the queues empty.
//!
//! # Example
//!
//! A single-threaded driver. Encoding and signalling are left out here; the crate's
//! `examples/whep.rs` is the same loop made whole (WHEP over plain HTTP, one UDP socket on
//! 127.0.0.1, rtcgear's test pattern encoded live), runnable with
//! `cargo run -p rtcgear-rtc --example whep -- --seconds 60`, and `server` is the real driver.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant};
//!
//! use rtcgear_rtc::{Broadcast, BroadcastConfig, BroadcastEvent, Output};
//!
//! fn drive(socket: UdpSocket, offer: &str) -> std::io::Result<()> {
//!     let local = socket.local_addr()?;
//!     let mut broadcast = Broadcast::new(Instant::now(), BroadcastConfig::new(vec![local]));
//!     let (viewer, answer) = broadcast.handle_offer(Instant::now(), offer).expect("a good offer");
//!     println!("{viewer}: send this answer back: {answer}");
//!
//!     let mut buf = vec![0; 2000];
//!     loop {
//!         let deadline = loop {
//!             match broadcast.poll_output() {
//!                 Output::Transmit { destination, contents, .. } => {
//!                     socket.send_to(&contents, destination)?;
//!                 }
//!                 Output::Event(BroadcastEvent::KeyframeNeeded(_codec)) => { /* encoder.request_keyframe() */ }
//!                 Output::Event(event) => println!("{event:?}"),
//!                 Output::Timeout(deadline) => break deadline,
//!             }
//!         };
//!         let wait = deadline.saturating_duration_since(Instant::now());
//!         socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
//!         match socket.recv_from(&mut buf) {
//!             Ok((n, source)) => {
//!                 broadcast.handle_receive(Instant::now(), source, local, &buf[..n]);
//!             }
//!             Err(_) => broadcast.handle_timeout(Instant::now()),
//!         }
//!         // And for every encoded picture (an rtcgear_capture::AccessUnit):
//!         // broadcast.handle_frame(Instant::now(), &access_unit);
//!     }
//! }
//! ```
//!
//! Bad offers are errors, never panics:
//!
//! ```
//! use std::time::Instant;
//!
//! use rtcgear_rtc::{Broadcast, BroadcastConfig, RtcError};
//!
//! let now = Instant::now();
//! let mut broadcast = Broadcast::new(now, BroadcastConfig::new(vec!["192.0.2.1:4000".parse().unwrap()]));
//! let result = broadcast.handle_offer(now, "this is not SDP");
//! assert!(matches!(result, Err(RtcError::MalformedSdp { .. })));
//! assert_eq!(broadcast.viewer_count(), 0);
//! ```
//!
//! [str0m]: https://docs.rs/str0m

#![deny(missing_docs)]

mod broadcast;
mod codec;
mod config;
mod error;
mod gop;
mod health;
mod keyframe;
mod offer;
mod output;
mod packetize;
mod shard;
mod stun;
mod time;
mod viewer;
mod vp8;

pub use broadcast::Broadcast;
pub use config::{BroadcastConfig, LocalCandidate};
pub use error::RtcError;
pub use gop::{GOP_CACHE_MAX_BYTES, GOP_CACHE_MAX_FRAMES};
pub use output::{BroadcastEvent, DisconnectReason, Output, Transport, ViewerId, ViewerPaths};
pub use shard::{Packetized, Packetizer, Shard};
