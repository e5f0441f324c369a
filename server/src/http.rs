//! HTTP: the server's own routes (the page, `/offer`, `/whep`, `/close_connection`,
//! `/api/streams`, `/static`), in front of them the access check and the user's middleware,
//! and the reading of a tiny_http request into a [`Request`].

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{RecvTimeoutError, SendTimeoutError, Sender};
use minijinja::context;
use rtcgear_rtc::ViewerId;

use crate::auth::{Access, Decision};
use crate::config::ServerConfig;
use crate::gate::Peers;
use crate::limit::RateLimiter;
use crate::media::{Command, OfferError, Removal};
use crate::message::{Handler, Middleware, Request, Response};
use crate::rtc_threads::{RtcThreads, ShardLoad};
use crate::session::SessionNames;
use crate::stream::{lock, StreamShared};
use crate::turn;
use crate::web::Web;

/// What the HTTP workers share.
pub(crate) struct App {
    pub(crate) config: ServerConfig,
    /// The access check, when access control is on; it runs before any middleware.
    pub(crate) access: Option<Arc<Access>>,
    pub(crate) web: Web,
    pub(crate) streams: Vec<Arc<StreamShared>>,
    /// The RTC threads, to which offers and removals go.
    pub(crate) rtc: RtcThreads,
    pub(crate) routes: HashMap<(String, String), Handler>,
    pub(crate) middleware: Vec<Middleware>,
    /// Offers per client address, when limited.
    pub(crate) offer_limit: Option<RateLimiter>,
    /// The clients behind the gate's loopback connections (`None` when requests come another
    /// way, as in the fuzz harness).
    pub(crate) peers: Option<Arc<Peers>>,
    /// How long a worker waits for the RTC thread, to queue a command and to get its answer
    /// ([`RTC_ANSWER_TIMEOUT`]; shorter in tests).
    pub(crate) rtc_timeout: Duration,
    /// The names of WHEP sessions in their URLs.
    pub(crate) sessions: SessionNames,
}

/// How long an HTTP worker waits for the RTC thread before it answers `503`.
pub(crate) const RTC_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

impl App {
    /// Reads a tiny_http request, runs it through middleware and routes, and answers it.
    pub(crate) fn serve(&self, mut raw: tiny_http::Request) {
        let response = match read_request(&mut raw, self.config.max_body_bytes) {
            Ok(mut request) => {
                // tiny_http sees the gate's end of a loopback connection; the gate knows the
                // client behind it. A request that did not come through the gate (a local
                // process that found the loopback port) is refused.
                if let Some(peers) = &self.peers {
                    request.remote = request.remote.and_then(|inner| peers.client(inner));
                }
                let started = Instant::now();
                let response = if self.peers.is_some() && request.remote.is_none() {
                    Response::text(403, "connect to the server's own port")
                } else {
                    self.handle(&request)
                };
                // `path` has no query string, so a link token never reaches the log.
                tracing::debug!(
                    "{} {} -> {} in {:?}",
                    request.method,
                    request.path,
                    response.status,
                    started.elapsed()
                );
                response
            }
            Err(response) => response,
        };
        let mut out = tiny_http::Response::from_data(response.body)
            .with_status_code(tiny_http::StatusCode(response.status));
        for (name, value) in &response.headers {
            if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                out.add_header(header);
            }
        }
        if let Err(err) = raw.respond(out) {
            tracing::debug!("could not send the response: {err}");
        }
    }

    /// The access check, then middleware (outermost first), then the routes; a panic becomes
    /// a 500 page.
    pub(crate) fn handle(&self, request: &Request) -> Response {
        let cookie = match self
            .access
            .as_ref()
            .map(|a| a.check(request, SystemTime::now()))
        {
            None | Some(Decision::Allow) => None,
            Some(Decision::AllowWithCookie(cookie)) => Some(cookie),
            Some(Decision::Deny(response)) => return response,
        };
        let response = self.handle_allowed(request);
        match cookie {
            Some(cookie) => response.with_header("Set-Cookie", cookie),
            None => response,
        }
    }

    fn handle_allowed(&self, request: &Request) -> Response {
        let run = || self.chain(request, 0);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(response) => response,
            Err(_) => {
                tracing::error!("handler for {} {} panicked", request.method, request.path);
                self.error_page(
                    request,
                    500,
                    "Something went wrong inside the server; the log says more.",
                )
            }
        }
    }

    fn chain(&self, request: &Request, depth: usize) -> Response {
        match self.middleware.get(depth) {
            Some(middleware) => middleware(request, &|req: &Request| self.chain(req, depth + 1)),
            None => self.route(request),
        }
    }

    fn route(&self, request: &Request) -> Response {
        let method = request.method.as_str();
        if let Some(handler) = self.routes.get(&(method.to_string(), request.path.clone())) {
            return handler(request);
        }
        let path = request.path.trim_start_matches('/');
        if let Some(file) = path.strip_prefix("static/") {
            return match (method, self.web.static_file(file)) {
                ("GET" | "HEAD", Some((body, kind))) => Response::new(200, kind, body.into_owned())
                    .with_header("Cache-Control", "no-cache"),
                ("GET" | "HEAD", None) => self.error_page(request, 404, "No such file."),
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        if path == "api/streams" {
            return match method {
                "GET" | "HEAD" => self.api_streams(),
                _ => method_not_allowed("GET, HEAD"),
            };
        }
        // A named stream's routes sit under /<name>/; the default stream's at the top.
        let (stream, rest) = match path.split_once('/') {
            Some((first, rest)) if self.stream_index(first).is_some() && !first.is_empty() => {
                (self.stream_index(first), rest)
            }
            _ if !path.is_empty() && self.stream_index(path).is_some() => {
                // `/name` without the slash: send the browser to `/name/`.
                return Response::text(308, "").with_header("Location", format!("/{path}/"));
            }
            _ => (self.stream_index(""), path),
        };
        let Some(stream) = stream else {
            return self.error_page(
                request,
                404,
                "There is no default stream; pick one of the named streams.",
            );
        };
        match rest {
            "" => match method {
                "GET" | "HEAD" => self.page(request, stream),
                _ => method_not_allowed("GET, HEAD"),
            },
            "offer" => match method {
                "POST" => match self.limit_offers(request) {
                    Ok(()) => self.with_cors(request, self.offer(request, stream)),
                    Err(response) => self.with_cors(request, response),
                },
                "OPTIONS" => self.preflight(request, "POST, OPTIONS"),
                _ => method_not_allowed("POST, OPTIONS"),
            },
            "whep" => match method {
                "POST" => match self.limit_offers(request) {
                    Ok(()) => self.with_cors(request, self.whep_post(request, stream)),
                    Err(response) => self.with_cors(request, response),
                },
                "OPTIONS" => self
                    .preflight(request, "POST, OPTIONS")
                    .with_header("Accept-Post", "application/sdp"),
                _ => method_not_allowed("POST, OPTIONS"),
            },
            "close_connection" => match method {
                "POST" => self.close_connection(request),
                _ => method_not_allowed("POST"),
            },
            _ => match rest.strip_prefix("whep/") {
                Some(id) => match method {
                    "DELETE" => self.with_cors(request, self.whep_delete(stream, id)),
                    // Trickle ICE and ICE restarts are optional in WHEP; every candidate is
                    // in the answer, so a PATCH is refused as the draft says.
                    "PATCH" => self.with_cors(request, method_not_allowed("DELETE, OPTIONS")),
                    "OPTIONS" => self.preflight(request, "DELETE, OPTIONS"),
                    _ => method_not_allowed("DELETE, OPTIONS"),
                },
                None => self.error_page(request, 404, "No such page."),
            },
        }
    }

    /// The offer rate limit of the client's address: `429` with `Retry-After` when it is
    /// spent.
    fn limit_offers(&self, request: &Request) -> Result<(), Response> {
        let (Some(limit), Some(remote)) = (&self.offer_limit, request.remote) else {
            return Ok(());
        };
        limit.take(remote.ip(), Instant::now()).map_err(|wait| {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            tracing::debug!("offer from {} refused by the rate limit", remote.ip());
            Response::text(
                429,
                format!(
                    "too many offers from your address ({} a minute allowed, {} at once); \
                     try again in {seconds} s",
                    self.config.offer_rate, self.config.offer_burst
                ),
            )
            .with_header("Retry-After", seconds.to_string())
        })
    }

    fn stream_index(&self, name: &str) -> Option<usize> {
        self.streams.iter().position(|s| s.name == name)
    }

    fn base_path(&self, stream: usize) -> String {
        match self.streams[stream].name.as_str() {
            "" => "/".to_string(),
            name => format!("/{name}/"),
        }
    }

    fn stream_links(&self) -> Vec<minijinja::Value> {
        if self.streams.len() < 2 {
            return Vec::new();
        }
        self.streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                context! { name => s.name.clone(), label => s.label(), path => self.base_path(i) }
            })
            .collect()
    }

    fn page(&self, request: &Request, stream: usize) -> Response {
        let shared = &self.streams[stream];
        // Fresh TURN credentials for every page.
        let ice_servers = serde_json::to_string(&turn::offered(&self.config, SystemTime::now()))
            .unwrap_or_else(|_| "[]".into());
        let title = if shared.name.is_empty() {
            "Live stream".to_string()
        } else {
            shared.name.clone()
        };
        let rendered = self.web.render(
            "index.html",
            context! {
                title => title,
                base => self.base_path(stream),
                current => shared.name.clone(),
                streams => self.stream_links(),
                ice_servers_json => ice_servers,
                latency => self.config.latency.name(),
            },
        );
        match rendered {
            Ok(html) => Response::new(200, "text/html; charset=utf-8", html)
                .with_header("Cache-Control", "no-cache"),
            Err(err) => {
                tracing::error!("rendering the page: {err:#}");
                self.error_page(
                    request,
                    500,
                    "The page template failed to render; the log says why.",
                )
            }
        }
    }

    /// An error as a page for browsers and as text for everything else.
    pub(crate) fn error_page(&self, request: &Request, status: u16, message: &str) -> Response {
        let wants_html = request
            .header("accept")
            .is_some_and(|accept| accept.contains("text/html"));
        if !wants_html {
            return Response::text(status, message);
        }
        let reason = reason_phrase(status);
        let rendered = self.web.render(
            "error.html",
            context! {
                status => status,
                reason => reason,
                message => message,
                streams => self.stream_links(),
            },
        );
        match rendered {
            Ok(html) => Response::new(status, "text/html; charset=utf-8", html),
            Err(_) => Response::text(status, format!("{status} {reason}: {message}")),
        }
    }

    fn api_streams(&self) -> Response {
        let now = Instant::now();
        let streams: Vec<serde_json::Value> = self
            .streams
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let info = *lock(&s.info);
                let (state, detail) = lock(&s.state).clone();
                let paths = s.paths();
                serde_json::json!({
                    "name": s.name,
                    "path": self.base_path(i),
                    "state": state,
                    "detail": detail,
                    "width": info.width,
                    "height": info.height,
                    "fps": info.fps.as_f64(),
                    "bitrate_kbps": (lock(&s.bitrate).kbps(now) * 10.0).round() / 10.0,
                    "viewers": s.viewers(),
                    "transports": {
                        "udp": paths.udp,
                        "tcp": paths.tcp,
                        "relay": paths.relay,
                    },
                    "frames_encoded": s.frames_encoded.load(Ordering::Relaxed),
                    "codecs": codecs(s),
                    "on_demand": s.on_demand,
                })
            })
            .collect();
        let threads: Vec<serde_json::Value> =
            self.rtc.loads.iter().map(ShardLoad::to_json).collect();
        Response::json(
            200,
            &serde_json::json!({ "streams": streams, "rtc_threads": threads }),
        )
        .with_header("Cache-Control", "no-store")
    }

    /// vidgear's protocol: `{"sdp": ..., "type": "offer"}` in, `{"sdp": ..., "type": "answer"}` out.
    fn offer(&self, request: &Request, stream: usize) -> Response {
        if request.content_type().as_deref() != Some("application/json") {
            return Response::text(
                415,
                "POST /offer takes application/json: {\"sdp\": \"...\", \"type\": \"offer\"}",
            );
        }
        let value: serde_json::Value = match serde_json::from_slice(&request.body) {
            Ok(value) => value,
            Err(err) => return Response::text(400, format!("the body is not valid JSON: {err}")),
        };
        let (Some(sdp), Some(kind)) = (
            value.get("sdp").and_then(|v| v.as_str()),
            value.get("type").and_then(|v| v.as_str()),
        ) else {
            return Response::text(400, "the JSON needs string fields \"sdp\" and \"type\"");
        };
        if kind != "offer" {
            return Response::text(400, format!("\"type\" must be \"offer\", got {kind:?}"));
        }
        match self.submit_offer(request, stream, sdp) {
            Ok((_, answer)) => {
                Response::json(200, &serde_json::json!({ "sdp": answer, "type": "answer" }))
            }
            Err(response) => response,
        }
    }

    /// WHEP: an SDP offer in, `201 Created` with the answer and the session's URL out.
    fn whep_post(&self, request: &Request, stream: usize) -> Response {
        if request.content_type().as_deref() != Some("application/sdp") {
            return Response::text(
                415,
                "WHEP takes an SDP offer with Content-Type: application/sdp",
            );
        }
        let Ok(sdp) = std::str::from_utf8(&request.body) else {
            return Response::text(400, "the SDP offer is not UTF-8 text");
        };
        match self.submit_offer(request, stream, sdp) {
            Ok((viewer, answer)) => {
                let location = format!(
                    "{}whep/{}",
                    self.base_path(stream),
                    self.sessions.name(stream, viewer)
                );
                let mut response = Response::new(201, "application/sdp", answer)
                    .with_header("Location", location)
                    .with_header("ETag", format!("\"{}\"", viewer.get()));
                for server in turn::offered(&self.config, SystemTime::now()) {
                    for link in server.link_headers() {
                        response = response.with_header("Link", link);
                    }
                }
                response
            }
            Err(response) => response,
        }
    }

    /// WHEP: ends a session. A session the server has dropped already (its ICE failed or
    /// timed out, the browser closed it, or this is a repeated DELETE) gets `200` as well:
    /// DELETE is idempotent (RFC 9110 9.2.2), WHEP lets a session end on the server's side,
    /// and what the client asks for, the session gone, holds. A page that tidies up after an
    /// ICE failure then logs no error for nothing. An id this stream never gave out is a
    /// `404`, so a wrong URL is not taken for success, and so is a name this server did not
    /// make (see [`SessionNames`]): a guess, or a URL from before a restart.
    fn whep_delete(&self, stream: usize, id: &str) -> Response {
        let Some(viewer) = self.sessions.parse(stream, id) else {
            return Response::text(404, format!("no WHEP session {id:?}"));
        };
        match self.ask(self.rtc.for_viewer(viewer), |reply| Command::Remove {
            stream,
            viewer,
            reply,
        }) {
            Ok(Removal::Ended) => Response::text(200, "session ended"),
            Ok(Removal::Gone) => Response::text(200, "session already ended"),
            Err(response) => response,
        }
    }

    /// vidgear's reset. rtcgear always broadcasts, like WebGear_RTC with live broadcasting on,
    /// where one viewer cannot reset the stream for the others: so it answers as vidgear does
    /// then, with `DISABLED`.
    fn close_connection(&self, request: &Request) -> Response {
        if !request.body.is_empty()
            && serde_json::from_slice::<serde_json::Value>(&request.body).is_err()
        {
            return Response::text(400, "the body is not valid JSON");
        }
        Response::new(200, "text/plain; charset=utf-8", "DISABLED")
    }

    /// Hands an offer to the RTC thread, with the client's address: its answer's candidates
    /// fit where the client is (see `Candidates::for_viewer`).
    fn submit_offer(
        &self,
        request: &Request,
        stream: usize,
        sdp: &str,
    ) -> Result<(ViewerId, String), Response> {
        if sdp.trim().is_empty() {
            return Err(Response::text(400, "the SDP offer is empty"));
        }
        let Some(thread) = self.rtc.for_offer() else {
            tracing::debug!(
                "offer refused: every RTC thread is at the capacity it learned ({} viewers)",
                self.rtc.viewers()
            );
            return Err(Response::text(
                503,
                "the server is at capacity: its media threads cannot take more viewers \
                 without the others' pictures suffering; try again later",
            )
            .with_header("Retry-After", "10"));
        };
        let answer = self.ask(thread, |reply| Command::Offer {
            stream,
            sdp: sdp.to_string(),
            viewer: request.remote.map(|remote| remote.ip()),
            reply,
        })?;
        match answer {
            Ok(ok) => Ok(ok),
            Err(OfferError::Full { max }) => Err(Response::text(
                503,
                format!("the server has its maximum of {max} viewers; try again later"),
            )
            .with_header("Retry-After", "10")),
            Err(OfferError::Rtc(err)) => {
                Err(Response::text(400, format!("cannot use this offer: {err}")))
            }
        }
    }

    /// Sends a command to the RTC thread and waits for its answer, within
    /// [`RTC_ANSWER_TIMEOUT`] for both waits together. A full command channel (a stalled or
    /// swamped RTC thread) and a late answer both end in `503` with `Retry-After`, so an HTTP
    /// worker is never held for longer, whatever that thread does.
    fn ask<T>(
        &self,
        thread: usize,
        command: impl FnOnce(Sender<T>) -> Command,
    ) -> Result<T, Response> {
        let deadline = Instant::now() + self.rtc_timeout;
        let busy = || {
            Response::text(503, "the media thread is busy; try again")
                .with_header("Retry-After", "1")
        };
        let stopping = || Response::text(503, "the server is shutting down");
        let (reply, answer) = crossbeam_channel::bounded(1);
        match self.rtc.commands[thread].send_deadline(command(reply), deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => return Err(busy()),
            Err(SendTimeoutError::Disconnected(_)) => return Err(stopping()),
        }
        match answer.recv_deadline(deadline) {
            Ok(answer) => Ok(answer),
            Err(RecvTimeoutError::Timeout) => Err(busy()),
            Err(RecvTimeoutError::Disconnected) => Err(stopping()),
        }
    }

    fn allowed_origin(&self, request: &Request) -> Option<String> {
        let origin = request.header("origin")?;
        self.config
            .cors_origins
            .iter()
            .find(|allowed| *allowed == "*" || allowed.eq_ignore_ascii_case(origin))
            .map(|allowed| {
                if allowed == "*" {
                    "*".to_string()
                } else {
                    origin.to_string()
                }
            })
    }

    fn with_cors(&self, request: &Request, response: Response) -> Response {
        match self.allowed_origin(request) {
            Some(origin) => response
                .with_header("Access-Control-Allow-Origin", origin)
                .with_header("Access-Control-Expose-Headers", "Location, Link, ETag")
                .with_header("Vary", "Origin"),
            None => response,
        }
    }

    fn preflight(&self, request: &Request, methods: &str) -> Response {
        let response = Response::text(204, "").with_header("Allow", methods);
        match self.allowed_origin(request) {
            Some(origin) => response
                .with_header("Access-Control-Allow-Origin", origin)
                .with_header("Access-Control-Allow-Methods", methods)
                .with_header(
                    "Access-Control-Allow-Headers",
                    "Content-Type, Authorization, If-Match",
                )
                .with_header("Access-Control-Expose-Headers", "Location, Link, ETag")
                .with_header("Access-Control-Max-Age", "600")
                .with_header("Vary", "Origin"),
            None => response,
        }
    }
}

/// Per codec a stream sends: its viewers (connected or connecting), frames encoded (for
/// H.264 passed through: frames passed on), and whether its encoder runs now.
fn codecs(stream: &StreamShared) -> serde_json::Value {
    let h264 = serde_json::json!({
        "viewers": stream.h264_viewers(),
        "frames_encoded": stream.frames_encoded.load(Ordering::Relaxed),
    });
    serde_json::json!({
        "H.264": h264,
        "VP8": {
            "viewers": stream.vp8_viewers(),
            "frames_encoded": stream.vp8_frames_encoded.load(Ordering::Relaxed),
            "encoding": stream.vp8_encoding.load(Ordering::Relaxed),
        },
    })
}

fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, format!("method not allowed here; use {allow}")).with_header("Allow", allow)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Reads the request line, headers and body (up to `limit` bytes) into a [`Request`].
fn read_request(raw: &mut tiny_http::Request, limit: usize) -> Result<Request, Response> {
    let url = raw.url().to_string();
    let (path, query) = match url.split_once('?') {
        Some((path, query)) => (path.to_string(), Some(query.to_string())),
        None => (url, None),
    };
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    if raw.body_length().is_some_and(|len| len > limit) {
        return Err(Response::text(
            413,
            format!("the body is larger than the {limit} bytes allowed"),
        ));
    }
    let mut body = Vec::new();
    if let Err(err) = raw
        .as_reader()
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
    {
        return Err(Response::text(
            400,
            format!("could not read the body: {err}"),
        ));
    }
    if body.len() > limit {
        return Err(Response::text(
            413,
            format!("the body is larger than the {limit} bytes allowed"),
        ));
    }
    Ok(Request {
        method: raw.method().as_str().to_ascii_uppercase(),
        path,
        query,
        headers,
        body,
        remote: raw.remote_addr().copied(),
    })
}
