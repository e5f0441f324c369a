//! The rtcgear streaming server: sources in, WebRTC out, to every browser that asks.
//!
//! This is the crate with the glue: it owns the sockets and the threads, serves the player page
//! and the signalling endpoints over HTTP ([`tiny_http`]), and drives the Sans-IO
//! [`rtcgear_rtc::Broadcast`] with datagrams, encoded frames and time. Everything below it
//! (capture, encode, rtc) does no I/O of its own.
//!
//! For each stream a capture thread pulls frames from its [`rtcgear_capture::Source`] and hands
//! them to an encode thread through a one-frame slot (a newer frame replaces a waiting one, so
//! latency never queues up); each encoded frame is cut into RTP payloads once and goes to every
//! RTC thread ([`ServerConfig::rtc_threads`], one per core by default), each of which writes
//! it to its share of the stream's viewers. Each frame is encoded once, whatever the number of
//! viewers. A stream made with [`StreamConfig::passthrough`] skips both: an ingest thread hands
//! the source's own H.264 access units to the RTC threads, whose GOP caches start new viewers.
//!
//! Media goes over one UDP port for every viewer ([`ServerConfig::udp_port`]), and, for
//! viewers whose UDP is blocked, over ICE-TCP on the HTTP port ([`ServerConfig::ice_tcp`]):
//! the connection gate tells a browser's RFC 4571-framed STUN from HTTP and TLS by the first
//! byte and hands such connections to the RTC thread of their viewer.
//!
//! The HTTP endpoints, for the default stream (a stream named `yard` has them under `/yard/`):
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the player page |
//! | `POST /whep` | WHEP: an `application/sdp` offer in, `201 Created` with the answer and a `Location` out |
//! | `DELETE /whep/ID` | ends that WHEP session |
//! | `POST /offer` | vidgear's JSON: `{"sdp", "type": "offer"}` in, `{"sdp", "type": "answer"}` out |
//! | `POST /close_connection` | vidgear's reset; a broadcast answers `DISABLED`, as vidgear does with live broadcasting |
//! | `GET /api/streams` | JSON: each stream's state, size, rate, bitrate and viewers (by transport), and each RTC thread's load |
//! | `GET /static/...` | the page's scripts and styles |
//!
//! ## Who may watch
//!
//! Off by default, so the local demo needs nothing. Set [`ServerConfig::access_token`] and
//! every request needs a credential, checked before any middleware or route:
//!
//! - WHEP (`POST /whep`, `DELETE /whep/ID`, for every stream) takes `Authorization: Bearer
//!   SECRET`, as the WHEP spec asks of servers and players, or the link cookie below; anything
//!   else gets `401` with `WWW-Authenticate: Bearer`.
//! - The page, `/offer`, `/api/streams`, `/static` and your own routes take HTTP basic auth
//!   (any user name, the secret as the password), the bearer token, a signed link, or the link
//!   cookie; anything else gets `401` with `WWW-Authenticate: Basic realm="rtcgear"`, so a
//!   browser asks for the password.
//! - A signed link is a page URL with `?token=EXPIRY.SIG` ([`Server::link_token`]): the expiry
//!   in Unix seconds and its HMAC-SHA256 under the secret, valid for
//!   [`ServerConfig::link_ttl`] (24 h by default). Share it instead of the secret. A page
//!   opened with a link or basic auth gets the token as a cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Max-Age` to the expiry, `Secure` over HTTPS), so the player's own
//!   WHEP and API requests pass. Changing the secret revokes every link.
//!
//! Secrets and signatures are compared in constant time; tokens never reach the logs (only
//! the path is logged, never the query string). Over plain HTTP the secret crosses the
//! network in the clear: give [`ServerConfig::tls_cert`] and [`ServerConfig::tls_key`] (PEM
//! files) to serve HTTPS through rustls; the server warns when access control is on without
//! TLS on an address other than loopback.
//!
//! ```no_run
//! use rtcgear_capture::{FrameRate, TestPattern};
//! use rtcgear_server::{Server, ServerConfig, StreamConfig};
//!
//! let pattern = TestPattern::new(1280, 720, FrameRate::from_int(30).unwrap())?;
//! let server = Server::builder()
//!     .config(ServerConfig::default())
//!     .stream(StreamConfig::new("", pattern))
//!     .build()?;
//! println!("open {}", server.urls()[0]);
//! server.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A runnable round trip, on a free port, stopped from another thread:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{IpAddr, Ipv4Addr, TcpStream};
//!
//! use rtcgear_capture::{FrameRate, TestPattern};
//! use rtcgear_server::{Server, ServerConfig, StreamConfig};
//!
//! let mut config = ServerConfig::default();
//! config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
//! config.http_port = 0;
//! config.udp_port = Some(0);
//! let pattern = TestPattern::new(320, 240, FrameRate::from_int(15).unwrap())?;
//! let server = Server::builder()
//!     .config(config)
//!     .stream(StreamConfig::new("", pattern))
//!     .build()?;
//! let addr = server.http_addr();
//! let stop = server.shutdown_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let mut http = TcpStream::connect(addr)?;
//! http.write_all(b"GET /api/streams HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
//! let mut reply = String::new();
//! http.read_to_string(&mut reply)?;
//! assert!(reply.starts_with("HTTP/1.1 200"));
//! assert!(reply.contains("\"width\":320"));
//!
//! stop.shutdown();
//! running.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod auth;
mod config;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod http;
mod ice_tcp;
mod limit;
mod media;
mod message;
mod rtc_threads;
mod server;
mod session;
mod stream;
mod stun;
mod turn;
mod udp;
mod web;

pub use config::{IceServer, IceTcp, Latency, ServerConfig};
pub use error::ServerError;
pub use message::{Handler, Middleware, Request, Response};
pub use server::{Server, ServerBuilder, ShutdownHandle};
pub use stream::{StreamConfig, WhenIdle};
pub use web::export_web_files;

pub use rtcgear_capture;
