//! TURN REST credentials: time-limited user names and passwords made from a secret shared with
//! the TURN server (what coturn's `use-auth-secret` checks), and the ICE servers offered to a
//! page or a WHEP client with them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine;

use crate::config::{link_header, ServerConfig};
use crate::ServerError;

/// The name after the expiry in the user names made here (`EXPIRY:rtcgear`); coturn reads
/// only the expiry, and logs the whole user name.
pub(crate) const USER_NAME: &str = "rtcgear";

/// The TURN REST credentials valid until `expiry` (Unix seconds): the user name
/// `EXPIRY:rtcgear` and the password base64(HMAC-SHA1(secret, user name)).
pub(crate) fn rest_credentials(secret: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{USER_NAME}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
    (username, password)
}

/// One ICE server as offered at one moment: the page's `RTCIceServer` (its JSON), or one
/// `Link` header per URL.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Offered {
    urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
}

impl Offered {
    /// The WHEP `Link` header values (RFC 9725), one per URL.
    pub(crate) fn link_headers(&self) -> impl Iterator<Item = String> + '_ {
        let credentials = self.username.as_deref().zip(self.credential.as_deref());
        self.urls
            .iter()
            .map(move |url| link_header(url, credentials))
    }
}

/// The configured ICE servers as offered `now`: a TURN server without credentials gets fresh
/// ones valid for `turn_ttl`, and a `turn:` URL without a transport is offered over UDP and TCP.
pub(crate) fn offered(config: &ServerConfig, now: SystemTime) -> Vec<Offered> {
    let expiry = (now + config.turn_ttl)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    config
        .ice_servers
        .iter()
        .map(|server| {
            let (username, credential) = match (&server.username, &config.turn_secret) {
                (None, Some(secret)) if server.needs_secret() => {
                    let (user, pass) = rest_credentials(secret, expiry);
                    (Some(user), Some(pass))
                }
                _ => (server.username.clone(), server.credential.clone()),
            };
            Offered {
                urls: server.offered_urls(),
                username,
                credential,
            }
        })
        .collect()
}

/// Checks that every TURN server has credentials or a secret to make them; warns about a
/// secret that nothing uses.
pub(crate) fn check(config: &ServerConfig) -> Result<(), ServerError> {
    if config.turn_secret.as_deref() == Some("") {
        return Err(ServerError::Config("the TURN secret is empty".into()));
    }
    let needing: Vec<String> = config
        .ice_servers
        .iter()
        .filter(|server| server.needs_secret())
        .map(|server| server.urls.clone())
        .collect();
    match (&config.turn_secret, needing.is_empty()) {
        (None, false) => Err(ServerError::Config(format!(
            "the TURN server {} has no credentials: give them in the URL \
             (turn:USER:PASS@HOST) or a TURN secret shared with the server to make \
             time-limited ones",
            needing.join(", ")
        ))),
        (Some(_), true) => {
            tracing::warn!(
                "a TURN secret is set, but no TURN server without credentials uses it \
                 (give one as turn:HOST[:PORT])"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed outside Rust:
    /// `python3 -c 'import hmac,hashlib,base64; u=b"1733230000:rtcgear";
    /// print(base64.b64encode(hmac.new(b"north-wind", u, hashlib.sha1).digest()).decode())'`
    const VECTOR: (&str, u64, &str, &str) = (
        "north-wind",
        1_733_230_000,
        "1733230000:rtcgear",
        "pK915uT4f7M9ZyXSoBocmInu3j0=",
    );

    #[test]
    fn credentials_match_an_outside_computation() {
        let (secret, expiry, user, password) = VECTOR;
        assert_eq!(
            rest_credentials(secret, expiry),
            (user.to_string(), password.to_string())
        );
    }

    fn config(servers: &[&str], secret: Option<&str>) -> ServerConfig {
        ServerConfig {
            ice_servers: servers.iter().map(|s| s.parse().unwrap()).collect(),
            turn_secret: secret.map(str::to_string),
            turn_ttl: Duration::from_secs(3600),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn servers_without_credentials_get_fresh_ones_and_both_transports() {
        let config = config(
            &[
                "stun:stun.example.net:3478",
                "turn:turn.example.net",
                "turns:turn.example.net:5349?transport=tcp",
                "turn:bob:pw@static.example.net?transport=udp",
            ],
            Some("north-wind"),
        );
        check(&config).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_733_226_400);
        let offered = offered(&config, now);
        let json = serde_json::to_value(&offered).unwrap();
        let (user, password) = rest_credentials("north-wind", 1_733_230_000);
        assert_eq!(
            json,
            serde_json::json!([
                { "urls": ["stun:stun.example.net:3478"] },
                {
                    "urls": [
                        "turn:turn.example.net?transport=udp",
                        "turn:turn.example.net?transport=tcp"
                    ],
                    "username": user,
                    "credential": password,
                },
                {
                    "urls": ["turns:turn.example.net:5349?transport=tcp"],
                    "username": user,
                    "credential": password,
                },
                {
                    "urls": ["turn:static.example.net?transport=udp"],
                    "username": "bob",
                    "credential": "pw",
                },
            ])
        );
        let links: Vec<String> = offered.iter().flat_map(Offered::link_headers).collect();
        assert_eq!(links.len(), 5);
        assert_eq!(links[0], "<stun:stun.example.net:3478>; rel=\"ice-server\"");
        assert_eq!(
            links[2],
            format!(
                "<turn:turn.example.net?transport=tcp>; rel=\"ice-server\"; \
                 username=\"{user}\"; credential=\"{password}\"; credential-type=\"password\""
            )
        );
        // Later, later credentials.
        let later = super::offered(&config, now + Duration::from_secs(60));
        assert_eq!(later[1].username.as_deref(), Some("1733230060:rtcgear"));
    }

    #[test]
    fn a_turn_server_without_credentials_needs_the_secret() {
        let err = check(&config(&["turn:turn.example.net"], None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("turn:turn.example.net"), "{err}");
        assert!(err.contains("no credentials"), "{err}");
        assert!(check(&config(&["turn:u:p@turn.example.net"], None)).is_ok());
        assert!(check(&config(&["stun:stun.example.net"], None)).is_ok());
        assert!(check(&config(&["turn:turn.example.net"], Some(""))).is_err());
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let config = config(&["turn:u:hunter2@turn.example.net"], Some("north-wind"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("north-wind"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("turn_secret: Some(\"<hidden>\")"), "{debug}");
    }
}
