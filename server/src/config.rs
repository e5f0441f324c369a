//! Server settings, ICE servers and stream names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::ServerError;

/// Settings of a [`Server`](crate::Server) that are not about one stream.
///
/// Its `Debug` output hides [`access_token`](ServerConfig::access_token).
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
    /// A public address to announce as an extra ICE candidate, for a host behind NAT that
    /// forwards the UDP port.
    pub public_ip: Option<IpAddr>,
    /// STUN and TURN servers for the player page (and WHEP `Link` headers). The server asks a
    /// STUN server for its own public address, announced as one more
    /// candidate address (a host candidate, as `public_ip` is).
    pub ice_servers: Vec<IceServer>,
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
            .field("public_ip", &self.public_ip)
            .field("ice_servers", &self.ice_servers)
            .field("max_viewers", &self.max_viewers)
            .field("web_dir", &self.web_dir)
            .field("cors_origins", &self.cors_origins)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("http_workers", &self.http_workers)
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

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            http_port: 8000,
            udp_port: None,
            public_ip: None,
            ice_servers: Vec::new(),
            max_viewers: None,
            web_dir: None,
            cors_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            http_workers: 4,
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

/// A STUN or TURN server, as the page's `RTCPeerConnection` and WHEP's `Link` header take it.
///
/// Parsed from `stun:host[:port]`, `turn:host[:port][?transport=udp|tcp]` or `turns:…`; TURN
/// takes credentials as `turn:user:password@host:port`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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

    /// The WHEP `Link` header value for this server.
    pub fn link_header(&self) -> String {
        let mut link = format!("<{}>; rel=\"ice-server\"", self.urls);
        if let (Some(user), Some(pass)) = (&self.username, &self.credential) {
            link.push_str(&format!(
                "; username=\"{user}\"; credential=\"{pass}\"; credential-type=\"password\""
            ));
        }
        link
    }
}

impl FromStr for IceServer {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ServerError::Config(format!("bad ICE server {s:?}: {why}"));
        let s = s.trim();
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected stun:HOST[:PORT] or turn:USER:PASS@HOST[:PORT]"))?;
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
                Ok(IceServer {
                    urls: format!("{scheme}:{rest}"),
                    username: None,
                    credential: None,
                })
            }
            "turn" | "turns" => {
                let (creds, host) = rest
                    .rsplit_once('@')
                    .ok_or_else(|| bad("TURN needs credentials: turn:USER:PASS@HOST[:PORT]"))?;
                let (user, pass) = creds
                    .split_once(':')
                    .ok_or_else(|| bad("TURN credentials are USER:PASS"))?;
                if user.is_empty() || host.is_empty() {
                    return Err(bad("empty user or host"));
                }
                Ok(IceServer {
                    urls: format!("{scheme}:{host}"),
                    username: Some(user.to_string()),
                    credential: Some(pass.to_string()),
                })
            }
            _ => Err(bad("the scheme must be stun:, stuns:, turn: or turns:")),
        }
    }
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
        assert_eq!(stun.host_port(), "stun.example.net:3478");
        assert_eq!(
            stun.link_header(),
            "<stun:stun.example.net:3478>; rel=\"ice-server\""
        );
        let turn: IceServer = "turn://alice:s3cr:t@turn.example.net?transport=udp"
            .parse()
            .unwrap();
        assert_eq!(turn.urls, "turn:turn.example.net?transport=udp");
        assert_eq!(turn.username.as_deref(), Some("alice"));
        assert_eq!(turn.credential.as_deref(), Some("s3cr:t"));
        assert_eq!(turn.host_port(), "turn.example.net:3478");
        assert!(!turn.to_string().contains("s3cr"));
        assert!(turn.link_header().contains("credential=\"s3cr:t\""));
    }

    #[test]
    fn bad_ice_servers_say_why() {
        for (input, why) in [
            ("turn:turn.example.net", "credentials"),
            ("http://x", "scheme"),
            ("stun:", "no host"),
            ("stun:u:p@host", "no credentials"),
            ("nothing", "expected"),
        ] {
            let err = input.parse::<IceServer>().unwrap_err().to_string();
            assert!(err.contains(why), "{input}: {err}");
        }
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
