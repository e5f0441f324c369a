//! Entry points for `cargo fuzz` (the `fuzzing` feature; not part of the public API): the
//! server's real HTTP handlers and its real RTC thread, in process, without HTTP sockets; and
//! the gate's request framing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rtcgear_capture::{FrameRate, TestPattern};

use crate::gate::{frame, GateConfig};
use crate::http::App;
use crate::{Request, Response, Server, ServerConfig, StreamConfig};

/// A server's HTTP handlers over its RTC thread: two streams (the default one and `yard`) of a
/// test pattern that never starts, so offers are answered as for a real server.
pub struct Harness {
    app: Arc<App>,
    shutdown: Arc<AtomicBool>,
    rtc: Option<JoinHandle<()>>,
}

impl Harness {
    /// Starts the RTC thread on a loopback UDP port. Viewers that never connect are dropped
    /// after a second, so a long fuzzing run does not pile them up.
    pub fn new() -> Harness {
        Harness::with_rtc_timeout(crate::http::RTC_ANSWER_TIMEOUT)
    }

    /// [`Harness::new`] with HTTP workers that wait `rtc_timeout` for the RTC thread.
    pub(crate) fn with_rtc_timeout(rtc_timeout: Duration) -> Harness {
        Harness::with_config(rtc_timeout, |_| {})
    }

    /// A harness whose settings `change` may change (the media socket stays on loopback).
    pub(crate) fn with_config(
        rtc_timeout: Duration,
        change: impl FnOnce(&mut ServerConfig),
    ) -> Harness {
        let mut config = ServerConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 0,
            udp_port: Some(0),
            ice_timeout: Duration::from_secs(1),
            offer_rate: 0,
            ..ServerConfig::default()
        };
        change(&mut config);
        let rate = FrameRate::from_int(15).expect("15 is a frame rate");
        let mut builder = Server::builder().config(config);
        for name in ["", "yard"] {
            let pattern = TestPattern::new(64, 48, rate).expect("64x48 is a valid size");
            builder = builder.stream(StreamConfig::new(name, pattern));
        }
        let server = builder.build().expect("a loopback server builds");
        let (mut app, shutdown, rtc) = server.into_app();
        // The server has not shared its handlers with any thread yet.
        Arc::get_mut(&mut app)
            .expect("the handlers are not shared yet")
            .rtc_timeout = rtc_timeout;
        Harness {
            app,
            shutdown,
            rtc: Some(rtc),
        }
    }

    /// Answers one request as an HTTP worker would, after the gate and tiny_http, from a
    /// client at `192.0.2.1`.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let remote = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 40000));
        self.request_from(remote, method, path, headers, body)
    }

    /// [`Harness::request`] from a client at `remote`.
    pub fn request_from(
        &self,
        remote: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path.to_string(), Some(query.to_string())),
            None => (path.to_string(), None),
        };
        let request = Request {
            method: method.to_ascii_uppercase(),
            path,
            query,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            remote: Some(remote),
        };
        self.app.handle(&request)
    }
}

#[cfg(test)]
impl Harness {
    /// Holds the RTC thread until the returned sender is dropped (or 30 s pass), as if it
    /// were stuck; then fills its command channel, as workers of a busy server would.
    pub(crate) fn stall_rtc(&self) -> crossbeam_channel::Sender<()> {
        let (release, until) = crossbeam_channel::bounded(0);
        let stall = crate::media::Command::Stall { until };
        self.app.rtc.commands[0]
            .send(stall)
            .expect("the RTC thread runs");
        loop {
            let (reply, _) = crossbeam_channel::bounded(1);
            let filler = crate::media::Command::Remove {
                stream: 0,
                viewer: rtcgear_rtc::ViewerId::from_raw(u64::MAX),
                reply,
            };
            if self.app.rtc.commands[0].try_send(filler).is_err() {
                break release;
            }
        }
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        if let Some(rtc) = self.rtc.take() {
            let _ = rtc.join();
        }
    }
}

/// The gate's framing of the request at the start of `buf`, with the default limits: the
/// head's and the body's lengths, or the refusal's status. `None` while the head is
/// incomplete.
pub fn frame_request(buf: &[u8]) -> Option<Result<(usize, usize), u16>> {
    let config = GateConfig::new(&ServerConfig::default());
    match frame(buf, &config) {
        Ok(None) => None,
        Ok(Some(framing)) => Some(Ok((framing.head_len, framing.body_len))),
        Err(refusal) => Some(Err(refusal.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = include_str!("../../tests/data/chromium-offer.sdp");

    /// The fuzz targets' harness answers as the server does; a fuzz finding becomes a test
    /// here, through the same harness.
    #[test]
    fn the_harness_answers_offers_and_ends_sessions() {
        let harness = Harness::new();
        let sdp = [("Content-Type", "application/sdp")];
        let created = harness.request("POST", "/yard/whep", &sdp, OFFER.as_bytes());
        assert_eq!(created.status, 201);
        let location = created.header("Location").expect("a Location").to_string();
        assert!(location.starts_with("/yard/whep/"), "{location}");
        assert_eq!(harness.request("PATCH", &location, &[], b"").status, 405);
        let deleted = harness.request("DELETE", &location, &[], b"");
        assert_eq!(
            (deleted.status, &deleted.body[..]),
            (200, &b"session ended\n"[..])
        );
        // Idempotent: gone is gone.
        let again = harness.request("DELETE", &location, &[], b"");
        assert_eq!(
            (again.status, &again.body[..]),
            (200, &b"session already ended\n"[..])
        );
        // Ids never given out, or given out on another stream, are not found.
        let id = location.rsplit('/').next().expect("an id");
        for path in [
            "/yard/whep/999999".to_string(),
            "/yard/whep/0".to_string(),
            "/yard/whep/nonsense".to_string(),
            format!("/whep/{id}"),
        ] {
            assert_eq!(
                harness.request("DELETE", &path, &[], b"").status,
                404,
                "{path}"
            );
        }
        let bad = harness.request("POST", "/whep", &sdp, b"v=0\r\nm=");
        assert_eq!(bad.status, 400);
        assert_eq!(frame_request(b"GET / HTTP/1.1\r\n\r\n"), Some(Ok((18, 0))));
        assert_eq!(frame_request(&[b'x'; 17 * 1024]), Some(Err(431)));
    }

    /// After an ICE failure the server drops the session on its own; the page's DELETE that
    /// follows still succeeds.
    #[test]
    fn deleting_a_session_the_server_dropped_succeeds() {
        let harness = Harness::new();
        let sdp = [("Content-Type", "application/sdp")];
        let created = harness.request("POST", "/whep", &sdp, OFFER.as_bytes());
        assert_eq!(created.status, 201);
        let location = created.header("Location").expect("a Location").to_string();
        // Counted once the RTC thread is done with the offer; nobody connects, so the
        // harness's ICE timeout (1 s) then drops the viewer.
        let viewers = || harness.app.streams[0].viewers();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for (count, what) in [(1, "counted"), (0, "dropped")] {
            while viewers() != count {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the viewer was never {what}"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let deleted = harness.request("DELETE", &location, &[], b"");
        assert_eq!(
            deleted.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&deleted.body)
        );
    }

    /// The candidate lines of an answer.
    fn candidates(answer: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(answer)
            .lines()
            .filter(|line| line.starts_with("a=candidate:"))
            .map(str::to_string)
            .collect()
    }

    /// Loopback candidates go to loopback clients only (or to anyone when nothing else is
    /// announced); public addresses go to everyone.
    #[test]
    fn answers_fit_where_the_viewer_is() {
        let sdp = [("Content-Type", "application/sdp")];
        let offer = |harness: &Harness, from: &str| {
            let from: SocketAddr = from.parse().expect("an address");
            let created = harness.request_from(from, "POST", "/whep", &sdp, OFFER.as_bytes());
            assert_eq!(
                created.status,
                201,
                "{:?}",
                String::from_utf8_lossy(&created.body)
            );
            candidates(&created.body)
        };
        let public = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
        let harness = Harness::with_config(crate::http::RTC_ANSWER_TIMEOUT, |config| {
            config.public_ips = vec![public];
        });
        // UDP candidates first, then the same addresses over ICE-TCP (on by default).
        let local = offer(&harness, "127.0.0.1:50000");
        assert_eq!(local.len(), 4, "{local:?}");
        assert!(
            local[0].contains(" udp ") && local[0].contains(" 203.0.113.5 "),
            "{local:?}"
        );
        assert!(
            local[1].contains(" udp ") && local[1].contains(" 127.0.0.1 "),
            "{local:?}"
        );
        assert!(
            local[2].contains(" tcp ") && local[2].contains(" 203.0.113.5 "),
            "{local:?}"
        );
        assert!(
            local[3].contains(" tcp ") && local[3].contains(" 127.0.0.1 "),
            "{local:?}"
        );
        // An IPv4 client of a socket bound to `::` shows up as an IPv4-mapped address.
        let mapped = offer(&harness, "[::ffff:127.0.0.1]:50000");
        assert_eq!(mapped.len(), 4, "{mapped:?}");
        let remote = offer(&harness, "192.0.2.1:50000");
        assert_eq!(remote.len(), 2, "{remote:?}");
        assert!(
            remote.iter().all(|c| c.contains(" 203.0.113.5 ")),
            "{remote:?}"
        );

        // Bound to loopback with nothing else: loopback is all there is, for everyone.
        let harness = Harness::with_config(crate::http::RTC_ANSWER_TIMEOUT, |config| {
            config.ice_tcp = crate::IceTcp::Off;
        });
        let remote = offer(&harness, "192.0.2.1:50000");
        assert_eq!(remote.len(), 1, "{remote:?}");
        assert!(remote[0].contains(" 127.0.0.1 "), "{remote:?}");
    }

    /// An RTC thread busy all the time for two seconds in a row takes no new viewers: offers
    /// get 503 with Retry-After and the reason, and `/api/streams` shows the capacity it
    /// learned (here 0: it was full with nobody watching).
    #[test]
    fn an_rtc_thread_that_falls_behind_turns_new_viewers_away() {
        let harness = Harness::new();
        let sdp = [("Content-Type", "application/sdp")];
        // Queued together: the thread closes its one-second windows between them.
        for _ in 0..4 {
            let spin = crate::media::Command::Spin {
                time: Duration::from_millis(900),
            };
            harness.app.rtc.commands[0]
                .send(spin)
                .expect("the RTC thread runs");
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let capacity = loop {
            let streams = harness.request("GET", "/api/streams", &[], b"");
            let body: serde_json::Value = serde_json::from_slice(&streams.body).expect("JSON");
            let thread = body["rtc_threads"][0].clone();
            if !thread["capacity"].is_null() {
                break thread;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never behind: {thread}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(capacity["capacity"], 0, "{capacity}");
        assert!(capacity["busy"].as_f64().unwrap_or(0.0) > 0.5, "{capacity}");
        let refused = harness.request("POST", "/whep", &sdp, OFFER.as_bytes());
        assert_eq!(refused.status, 503);
        assert_eq!(refused.header("Retry-After"), Some("10"));
        let reason = String::from_utf8_lossy(&refused.body);
        assert!(reason.contains("at capacity"), "{reason}");
    }

    /// A stuck RTC thread costs an HTTP worker its time budget, not its life: offers and
    /// WHEP DELETEs get 503 with Retry-After within the budget, and the server answers again
    /// once the thread is back.
    #[test]
    fn workers_give_up_on_a_stalled_rtc_thread() {
        let budget = Duration::from_millis(300);
        let harness = Harness::with_rtc_timeout(budget);
        let sdp = [("Content-Type", "application/sdp")];
        let release = harness.stall_rtc();
        let json = [("Content-Type", "application/json")];
        let vidgear = serde_json::json!({ "sdp": OFFER, "type": "offer" }).to_string();
        let session = format!(
            "/whep/{}",
            harness
                .app
                .sessions
                .name(0, rtcgear_rtc::ViewerId::from_raw(7))
        );
        for (method, path, headers, body) in [
            ("POST", "/whep", sdp, OFFER.as_bytes()),
            ("DELETE", session.as_str(), sdp, &b""[..]),
            ("POST", "/offer", json, vidgear.as_bytes()),
        ] {
            let started = std::time::Instant::now();
            let response = harness.request(method, path, &headers, body);
            let waited = started.elapsed();
            assert_eq!(response.status, 503, "{method} {path}");
            assert_eq!(response.header("Retry-After"), Some("1"), "{method} {path}");
            assert!(
                waited >= budget && waited < budget * 10,
                "{method} {path} waited {waited:?} for a budget of {budget:?}"
            );
        }
        drop(release);
        let created = harness.request("POST", "/whep", &sdp, OFFER.as_bytes());
        assert_eq!(
            created.status,
            201,
            "{:?}",
            String::from_utf8_lossy(&created.body)
        );
    }
}
