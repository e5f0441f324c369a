//! Server settings, ICE servers and stream names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::ServerError;

/// Settings of a [`Server`](crate::Server) that are not about one stream.
///
/// Its `Debug` output hides [`access_token`](ServerConfig::access_token),
/// [`turn_secret`](ServerConfig::turn_secret) and TURN passwords.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on for HTTP and media (default `0.0.0.0`, every interface).
    pub bind: IpAddr,
    /// HTTP port (default 8000, as vidgear's WebGear_RTC); 0 picks a free one.
    pub http_port: u16,
    /// The one UDP port for every viewer's media; `None` (the default) uses the HTTP port's
    /// number, so one firewall rule (TCP and UDP) covers the server. 0 picks a free one.
    pub udp_port: Option<u16>,
    /// How the viewers' browsers trade delay for smoothness (default [`Latency::Balanced`]).
    pub latency: Latency,
    /// ICE over TCP (RFC 6544), for viewers whose UDP is blocked: where the server takes TCP
    /// connections for media (default [`IceTcp::HttpPort`], on the HTTP port, so one TCP rule
    /// and one UDP rule cover the server).
    pub ice_tcp: IceTcp,
    /// Public addresses to announce as extra ICE host candidates (with the media port), for a
    /// host behind NAT that forwards the UDP port, or one with a LAN and a public address.
    /// Announced to every viewer, loopback ones too; addresses of a family the media socket
    /// cannot use are left out with a warning.
    pub public_ips: Vec<IpAddr>,
    /// STUN and TURN servers for the player page (and WHEP `Link` headers). The server asks
    /// the first `stun:` server for its media port's public address once it runs, without
    /// holding up the start, and announces it as a server-reflexive candidate (`typ srflx`,
    /// its local base as `raddr`/`rport`) in the answers it gives from then on. A TURN server
    /// given without credentials needs [`turn_secret`](ServerConfig::turn_secret).
    pub ice_servers: Vec<IceServer>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`, with
    /// `use-auth-secret`): every page and WHEP answer then gets fresh TURN REST credentials
    /// for each TURN server given without credentials, a user name `EXPIRY:rtcgear` (Unix
    /// seconds) and the password base64(HMAC-SHA1(secret, user name)). Never logged.
    pub turn_secret: Option<String>,
    /// How long such TURN credentials stay valid (default 24 h). A page keeps the ones it got
    /// for its reconnections, so this should outlast a page left open.
    pub turn_ttl: Duration,
    /// The most viewers at once over all streams; more get `503` with `Retry-After`.
    pub max_viewers: Option<usize>,
    /// A folder with `templates/` and `static/` that replace the embedded web files (files
    /// missing from it fall back to the embedded ones).
    pub web_dir: Option<PathBuf>,
    /// Origins allowed to call `/whep` and `/offer` from other pages (CORS); `*` allows all.
    /// Empty (the default) allows only the server's own page.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted (default 64 KiB; an SDP offer is a few KiB).
    pub max_body_bytes: usize,
    /// HTTP worker threads (default 4).
    pub http_workers: usize,
    /// RTC threads, over which the viewers are spread, each sending to its own with the
    /// same encoded and packetized frames; 0 (the default) means one per CPU core (see
    /// [`ServerConfig::rtc_thread_count`]), at most 64. A thread that cannot keep up with
    /// its viewers takes no new ones (their offers get `503` with `Retry-After`) until it
    /// does again.
    pub rtc_threads: usize,
    /// How long a viewer may stay silent before it is dropped (default 15 s).
    pub ice_timeout: Duration,
    /// The secret that turns access control on (off, the default, when `None`): WHEP then
    /// needs `Authorization: Bearer SECRET`, and the page and the other routes HTTP basic auth
    /// with the secret as the password, or a signed link (see [`Server::link_token`]). Never
    /// logged.
    ///
    /// [`Server::link_token`]: crate::Server::link_token
    pub access_token: Option<String>,
    /// How long a signed link (and the cookie a browser gets with it) stays valid
    /// (default 24 h).
    pub link_ttl: Duration,
    /// A PEM certificate chain: with [`tls_key`](ServerConfig::tls_key), the server speaks
    /// HTTPS (rustls) instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8 or RSA) of [`tls_cert`](ServerConfig::tls_cert).
    pub tls_key: Option<PathBuf>,
    /// Offers (`POST …/whep` and `…/offer`) allowed per client address and minute, on
    /// average (default 60); more get `429` with `Retry-After`. 0 turns the limit off. IPv6
    /// clients are counted by their /64 network.
    pub offer_rate: u32,
    /// How many offers a client address may make at once before
    /// [`offer_rate`](ServerConfig::offer_rate) paces it (default 20: a page reload or a few
    /// tabs never wait).
    pub offer_burst: u32,
    /// The most HTTP connections open at once (default 1024); more are turned away with `503`.
    pub max_connections: usize,
    /// The most HTTP connections open at once from one client address (IPv6: one /64;
    /// default 64); more are turned away with `503`.
    pub max_connections_per_ip: usize,
    /// How long a client may take to send one whole request, head and body, from its first
    /// byte, and to take a response (default 10 s); slower clients get `408` and are closed.
    pub request_timeout: Duration,
    /// How long a keep-alive connection may sit idle between requests before it is closed
    /// (default 30 s).
    pub idle_timeout: Duration,
    /// The largest request head (request line and headers) accepted (default 16 KiB); larger
    /// ones get `431`.
    pub max_header_bytes: usize,
    /// The most header fields in one request (default 64); more get `431`.
    pub max_headers: usize,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("http_port", &self.http_port)
            .field("udp_port", &self.udp_port)
            .field("ice_tcp", &self.ice_tcp)
            .field("latency", &self.latency)
            .field("public_ips", &self.public_ips)
            .field("ice_servers", &self.ice_servers)
            // The secret itself must never reach a log.
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("turn_ttl", &self.turn_ttl)
            .field("max_viewers", &self.max_viewers)
            .field("web_dir", &self.web_dir)
            .field("cors_origins", &self.cors_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("http_workers", &self.http_workers)
            .field("rtc_threads", &self.rtc_threads)
            .field("ice_timeout", &self.ice_timeout)
            // The secret itself must never reach a log.
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<hidden>"),
            )
            .field("link_ttl", &self.link_ttl)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("offer_rate", &self.offer_rate)
            .field("offer_burst", &self.offer_burst)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_headers", &self.max_headers)
            .finish()
    }
}

impl ServerConfig {
    /// The RTC threads a server with this configuration runs:
    /// [`rtc_threads`](Self::rtc_threads), or with 0 the number of CPU cores the process may
    /// use; at most 64.
    pub fn rtc_thread_count(&self) -> usize {
        let wanted = match self.rtc_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        wanted.clamp(1, usize::from(rtcgear_rtc::Shard::MAX))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: 8000,
            udp_port: None,
            ice_tcp: IceTcp::HttpPort,
            latency: Latency::Balanced,
            public_ips: Vec::new(),
            ice_servers: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(24 * 3600),
            max_viewers: None,
            web_dir: None,
            cors_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            http_workers: 4,
            rtc_threads: 0,
            ice_timeout: Duration::from_secs(15),
            access_token: None,
            link_ttl: Duration::from_secs(24 * 3600),
            tls_cert: None,
            tls_key: None,
            offer_rate: 60,
            offer_burst: 20,
            max_connections: 1024,
            max_connections_per_ip: 64,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
            max_headers: 64,
        }
    }
}

/// How a [`Server`](crate::Server)'s viewers trade delay for smoothness
/// ([`ServerConfig::latency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Latency {
    /// Show each frame as soon as it is decoded: every packet asks for a playout delay of 0
    /// (the RTP playout-delay extension, which Chromium honours), and the page asks its
    /// receiver for no jitter buffer target. On a jittery network frames come as unevenly as
    /// they arrive. Measured in headless Chromium it takes the jitter buffer's 7-8 ms a frame
    /// away but not the latency to the display, whose timing gets less even (BENCHMARKS.md,
    /// "Browser latency"): not the default.
    Low,
    /// The browser's own choice: a jitter buffer sized to the network's jitter, played out
    /// evenly.
    Balanced,
}

impl Latency {
    /// `low` or `balanced`, as the page and the command line name it.
    pub fn name(self) -> &'static str {
        match self {
            Latency::Low => "low",
            Latency::Balanced => "balanced",
        }
    }
}

/// Where a [`Server`](crate::Server) accepts ICE-TCP connections ([`ServerConfig::ice_tcp`]).
///
/// Each answer announces a passive TCP host candidate beside every UDP one, with a lower
/// priority: a browser that can use UDP does, and one whose UDP is blocked connects over TCP
/// and gets the same stream, each packet framed as RFC 4571 says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IceTcp {
    /// No ICE-TCP: media over UDP only.
    Off,
    /// On the HTTP (or HTTPS) port: the first bytes of each connection tell a browser's
    /// RFC 4571-framed STUN request from HTTP and TLS.
    HttpPort,
    /// On a TCP port of its own; 0 picks a free one.
    Port(u16),
}

/// A STUN or TURN server, as the page's `RTCPeerConnection` and WHEP's `Link` header take it.
///
/// Parsed from `stun:HOST[:PORT]`, `turn:[USER:PASS@]HOST[:PORT][?transport=udp|tcp]` or
/// `turns:…` (`turn://…` works too). The credentials are everything before the last `@`, and
/// the password is what follows their last `:`, so a user name may contain `:` (TURN REST user
/// names do: `1733230000:alice`). Percent-escapes are decoded in both: write `%40` for `@`,
/// `%3A` for `:` and `%25` for `%` in a password, and `%40`, `%25` in a user name.
///
/// A TURN server without credentials gets fresh time-limited ones for every page and WHEP
/// answer from [`ServerConfig::turn_secret`], which it then needs. A `turn:` server without a
/// `?transport=` is offered over UDP and TCP both (two URLs).
///
/// Its `Debug` output hides the password, and `Display` shows the URL alone.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct IceServer {
    /// The URL without credentials, e.g. `turn:turn.example.net:3478?transport=udp`.
    pub urls: String,
    /// The TURN user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// Whether this is a STUN server (as opposed to TURN).
    pub fn is_stun(&self) -> bool {
        self.urls.starts_with("stun:") || self.urls.starts_with("stuns:")
    }

    /// Whether this is a TURN server given without credentials, which get made from
    /// [`ServerConfig::turn_secret`].
    pub fn needs_secret(&self) -> bool {
        !self.is_stun() && self.username.is_none()
    }

    /// `host:port` of the server, the port defaulting to 3478.
    pub fn host_port(&self) -> String {
        let rest = self.urls.split_once(':').map_or("", |(_, rest)| rest);
        let rest = rest.split('?').next().unwrap_or(rest);
        if rest.starts_with('[')
            || rest
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            rest.to_string()
        } else {
            format!("{rest}:3478")
        }
    }

    /// The URLs to offer: a `turn:` URL without `?transport=` as two, over UDP and over TCP,
    /// so that a viewer whose UDP is blocked can still reach the server; any other as it is.
    pub fn offered_urls(&self) -> Vec<String> {
        if self.urls.starts_with("turn:") && !self.urls.contains('?') {
            vec![
                format!("{}?transport=udp", self.urls),
                format!("{}?transport=tcp", self.urls),
            ]
        } else {
            vec![self.urls.clone()]
        }
    }

    /// The WHEP `Link` header value for this server (RFC 9725), for its URL as it was given.
    pub fn link_header(&self) -> String {
        link_header(
            &self.urls,
            self.username.as_deref().zip(self.credential.as_deref()),
        )
    }
}

/// A WHEP `Link` header (RFC 9725) for one ICE server URL, with its credentials if any.
pub(crate) fn link_header(url: &str, credentials: Option<(&str, &str)>) -> String {
    let mut link = format!("<{url}>; rel=\"ice-server\"");
    if let Some((user, pass)) = credentials {
        link.push_str(&format!(
            "; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
            quoted(user),
            quoted(pass)
        ));
    }
    link
}

/// The inside of an HTTP quoted-string: `"` and `\` escaped.
fn quoted(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("username", &self.username)
            // A password must never reach a log.
            .field("credential", &self.credential.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl FromStr for IceServer {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // The input may hold a password: errors show the URL without the credentials.
        let shown = match s.rsplit_once('@') {
            Some((creds, host)) => match creds.split_once(':') {
                Some((scheme, _)) => format!("{scheme}:…@{host}"),
                None => format!("…@{host}"),
            },
            None => s.to_string(),
        };
        let bad = |why: &str| ServerError::Config(format!("bad ICE server {shown:?}: {why}"));
        let (scheme, rest) = s.split_once(':').ok_or_else(|| {
            bad("expected stun:HOST[:PORT], turn:HOST[:PORT] or turn:USER:PASS@HOST[:PORT]")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        // Accept `turn://…` as well as `turn:…`.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        match scheme.as_str() {
            "stun" | "stuns" => {
                if rest.contains('@') {
                    return Err(bad("STUN servers take no credentials"));
                }
                check_host(rest).map_err(|why| bad(&why))?;
                Ok(IceServer {
                    urls: format!("{scheme}:{rest}"),
                    username: None,
                    credential: None,
                })
            }
            "turn" | "turns" => {
                let (credentials, host) = match rest.rsplit_once('@') {
                    Some((creds, host)) => {
                        // The password follows the last `:`, so a user name may hold `:`.
                        let (user, pass) = creds.rsplit_once(':').ok_or_else(|| {
                            bad("TURN credentials are USER:PASS (write ':' in a password as %3A)")
                        })?;
                        let user = percent_decode(user).map_err(|why| bad(&why))?;
                        let pass = percent_decode(pass).map_err(|why| bad(&why))?;
                        if user.is_empty() || pass.is_empty() {
                            return Err(bad("empty TURN user name or password"));
                        }
                        (Some((user, pass)), host)
                    }
                    None => (None, rest),
                };
                check_host(host).map_err(|why| bad(&why))?;
                if let Some((_, query)) = host.split_once('?') {
                    if !matches!(query, "transport=udp" | "transport=tcp") {
                        return Err(bad(
                            "the only query a TURN URL takes is ?transport=udp or ?transport=tcp",
                        ));
                    }
                }
                let (username, credential) = credentials.unzip();
                Ok(IceServer {
                    urls: format!("{scheme}:{host}"),
                    username,
                    credential,
                })
            }
            _ => Err(bad("the scheme must be stun:, stuns:, turn: or turns:")),
        }
    }
}

/// Checks the `HOST[:PORT][?QUERY]` part of a URL: a host, and a port that is a number.
fn check_host(host: &str) -> Result<(), String> {
    let host = host.split('?').next().unwrap_or(host);
    let port = if let Some(bracketed) = host.strip_prefix('[') {
        let (_, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        if bracketed.starts_with(']') {
            return Err("no host".into());
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("expected :PORT after ']'")?),
        }
    } else {
        let (name, port) = match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        };
        if name.is_empty() {
            return Err("no host".into());
        }
        if name.contains(['/', '@', ' ']) {
            return Err(format!("{name:?} is not a host name"));
        }
        port
    };
    match port {
        Some(port) if port.parse::<u16>().map_or(true, |p| p == 0) => {
            Err(format!("port {port:?} is not a number from 1 to 65535"))
        }
        _ => Ok(()),
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8 without control characters (it ends up in
/// a header and a page).
fn percent_decode(text: &str) -> Result<String, String> {
    let bad = || "a '%' must start an escape of two hex digits, such as %40 for '@'".to_string();
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = tail
                .get(..2)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    let decoded =
        String::from_utf8(bytes).map_err(|_| "the credentials decode to invalid UTF-8")?;
    if decoded.chars().any(char::is_control) {
        return Err("the credentials hold a control character".into());
    }
    Ok(decoded)
}

impl fmt::Display for IceServer {
    /// The URL without credentials, so logs never show a TURN password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.urls)
    }
}

/// Path segments that cannot name a stream, because the server's own routes use them.
pub(crate) const RESERVED_NAMES: [&str; 6] = [
    "static",
    "api",
    "offer",
    "whep",
    "close_connection",
    "favicon.ico",
];

/// Checks a stream name: empty for the default stream, otherwise 1 to 64 of `a-z A-Z 0-9 _ -`.
pub(crate) fn check_stream_name(name: &str) -> Result<(), ServerError> {
    if name.is_empty() {
        return Ok(());
    }
    if name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ServerError::Config(format!(
            "stream name {name:?} must be 1 to 64 letters, digits, '_' or '-'"
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(ServerError::Config(format!(
            "stream name {name:?} is taken by the server's own routes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_parse_with_and_without_credentials() {
        let stun: IceServer = "stun:stun.example.net:3478".parse().unwrap();
        assert!(stun.is_stun());
        assert!(!stun.needs_secret());
        assert_eq!(stun.host_port(), "stun.example.net:3478");
        assert_eq!(stun.offered_urls(), ["stun:stun.example.net:3478"]);
        assert_eq!(
            stun.link_header(),
            "<stun:stun.example.net:3478>; rel=\"ice-server\""
        );
        let turn: IceServer = "turn://alice:s3cr%3At@turn.example.net?transport=udp"
            .parse()
            .unwrap();
        assert_eq!(turn.urls, "turn:turn.example.net?transport=udp");
        assert_eq!(turn.username.as_deref(), Some("alice"));
        assert_eq!(turn.credential.as_deref(), Some("s3cr:t"));
        assert!(!turn.needs_secret());
        assert_eq!(turn.host_port(), "turn.example.net:3478");
        assert_eq!(turn.offered_urls(), ["turn:turn.example.net?transport=udp"]);
        assert!(!turn.to_string().contains("s3cr"));
        assert!(!format!("{turn:?}").contains("s3cr"));
        assert!(turn.link_header().contains("credential=\"s3cr:t\""));
    }

    #[test]
    fn turn_user_names_may_hold_colons_and_escapes() {
        // TURN REST user names are `EXPIRY:NAME`: the password follows the last ':'.
        let rest: IceServer = "turn:1733230000:alice:pK915uT4f7M9ZyXSoBocmInu3j0=@[::1]:3478"
            .parse()
            .unwrap();
        assert_eq!(rest.urls, "turn:[::1]:3478");
        assert_eq!(rest.username.as_deref(), Some("1733230000:alice"));
        assert_eq!(
            rest.credential.as_deref(),
            Some("pK915uT4f7M9ZyXSoBocmInu3j0=")
        );
        // The credentials end at the last '@'; escapes decode after splitting.
        let escaped: IceServer = "turns:al%40ice%25:p%40ss%3Aw%2Fd%22@turn.example.net:5349"
            .parse()
            .unwrap();
        assert_eq!(escaped.urls, "turns:turn.example.net:5349");
        assert_eq!(escaped.username.as_deref(), Some("al@ice%"));
        assert_eq!(escaped.credential.as_deref(), Some("p@ss:w/d\""));
        assert!(escaped.link_header().ends_with(
            "username=\"al@ice%\"; credential=\"p@ss:w/d\\\"\"; credential-type=\"password\""
        ));
        let unescaped_at: IceServer = "turn:user@home:pw@turn.example.net".parse().unwrap();
        assert_eq!(unescaped_at.username.as_deref(), Some("user@home"));
        assert_eq!(unescaped_at.credential.as_deref(), Some("pw"));
        // Without credentials: the secret's job, over UDP and TCP both.
        let bare: IceServer = "TURN:turn.example.net:3478".parse().unwrap();
        assert_eq!(bare.urls, "turn:turn.example.net:3478");
        assert!(bare.needs_secret());
        assert_eq!(
            bare.offered_urls(),
            [
                "turn:turn.example.net:3478?transport=udp",
                "turn:turn.example.net:3478?transport=tcp"
            ]
        );
        let tls: IceServer = "turns:turn.example.net:5349".parse().unwrap();
        assert_eq!(tls.offered_urls(), ["turns:turn.example.net:5349"]);
    }

    #[test]
    fn bad_ice_servers_say_why() {
        for (input, why) in [
            ("turn:alice@turn.example.net", "USER:PASS"),
            (
                "turn::pw@turn.example.net",
                "empty TURN user name or password",
            ),
            (
                "turn:alice:@turn.example.net",
                "empty TURN user name or password",
            ),
            ("turn:alice:p%4@turn.example.net", "two hex digits"),
            ("turn:alice:p%+4x@turn.example.net", "two hex digits"),
            ("turn:alice:p%0Aw@turn.example.net", "control character"),
            ("turn:alice:p%FFw@turn.example.net", "UTF-8"),
            ("turn:u:p@", "no host"),
            ("turn:u:p@turn.example.net:34x", "port"),
            ("turn:turn.example.net:0", "port"),
            ("turn:turn.example.net?transport=sctp", "transport=udp"),
            ("turn:[::1", "']'"),
            ("http://x", "scheme"),
            ("stun:", "no host"),
            ("stun:u:p@host", "no credentials"),
            ("nothing", "expected"),
        ] {
            let err = input.parse::<IceServer>().unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
        }
        // An error never shows the password.
        let err = "turn:alice:hunter2@turn.example.net:x"
            .parse::<IceServer>()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("turn.example.net:x"), "{err}");
    }

    #[test]
    fn stream_names() {
        assert!(check_stream_name("").is_ok());
        assert!(check_stream_name("yard-2").is_ok());
        assert!(check_stream_name("whep").is_err());
        assert!(check_stream_name("a/b").is_err());
        assert!(check_stream_name(&"x".repeat(65)).is_err());
    }
}
