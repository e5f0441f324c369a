//! Who may watch: the optional access check in front of every route.
//!
//! With [`ServerConfig::access_token`](crate::ServerConfig::access_token) set, each request
//! must carry one of these credentials:
//!
//! - WHEP (`POST …/whep`, `…/whep/ID`): `Authorization: Bearer SECRET`, as the WHEP spec has
//!   it, or the link cookie (the player page is same-origin, and a browser sends the cookie
//!   with its `fetch`). Otherwise `401` with `WWW-Authenticate: Bearer`.
//! - Everything else (the page, `/offer`, `/api/streams`, `/static`, your own routes): HTTP
//!   basic auth (any user name, the secret as the password), the bearer token, a signed link
//!   token in `?token=`, or the link cookie. Otherwise `401` with
//!   `WWW-Authenticate: Basic realm="rtcgear"`, so a browser asks for the password.
//!
//! A link token is `EXPIRY.SIGNATURE`: the expiry in Unix seconds and the hex HMAC-SHA256 of
//! it under the secret. A page request that passes with basic auth or a link token gets the
//! link cookie (`HttpOnly`, `SameSite=Strict`, `Max-Age` up to the expiry), so the page's own
//! later requests pass without showing the secret to scripts.
//!
//! Secrets and signatures are compared through HMAC verification, in constant time and
//! whatever their lengths. CORS preflights (`OPTIONS`) pass, since browsers send them without
//! credentials and they change nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;

use crate::message::{Request, Response};

/// The cookie that carries a link token.
const COOKIE: &str = "rtcgear_token";

/// Domain-separation prefixes, so a link signature can never be replayed as a secret check.
const LINK_CONTEXT: &[u8] = b"rtcgear link v1:";
const SECRET_CONTEXT: &[u8] = b"rtcgear secret v1:";

/// The access check, built once from the secret.
pub(crate) struct Access {
    key: hmac::Key,
    /// HMAC of the secret itself: a presented secret is checked by verifying its HMAC against
    /// this tag, which is constant-time and hides the secret's length.
    secret_tag: hmac::Tag,
    link_ttl: Duration,
    secure_cookie: bool,
}

/// What the check decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go on to the routes.
    Allow,
    /// Go on, and add this `Set-Cookie` value to the response.
    AllowWithCookie(String),
    /// Answer with this instead.
    Deny(Response),
}

impl Access {
    /// The check for `secret`; links made by [`Access::link_token`] last `link_ttl`, and
    /// `secure_cookie` marks the cookie `Secure` (when the server speaks HTTPS).
    pub(crate) fn new(secret: &str, link_ttl: Duration, secure_cookie: bool) -> Access {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let secret_tag = hmac::sign(&key, &[SECRET_CONTEXT, secret.as_bytes()].concat());
        Access {
            key,
            secret_tag,
            link_ttl,
            secure_cookie,
        }
    }

    /// A link token valid until `now + link_ttl`.
    pub(crate) fn link_token(&self, now: SystemTime) -> String {
        self.sign(unix(now).saturating_add(self.link_ttl.as_secs()))
    }

    /// The token for an expiry in Unix seconds: `EXPIRY.HEX_SIGNATURE`.
    pub(crate) fn sign(&self, expiry: u64) -> String {
        let message = [LINK_CONTEXT, expiry.to_string().as_bytes()].concat();
        let tag = hmac::sign(&self.key, &message);
        format!("{expiry}.{}", hex(tag.as_ref()))
    }

    /// The expiry of a valid, unexpired link token.
    fn check_link(&self, token: &str, now: u64) -> Option<u64> {
        let (expiry, signature) = token.split_once('.')?;
        // Only canonical digits, so that one signature matches one spelling of the expiry.
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let expiry_value: u64 = expiry.parse().ok()?;
        if expiry_value.to_string() != expiry || expiry_value <= now {
            return None;
        }
        let signature = unhex(signature)?;
        let message = [LINK_CONTEXT, expiry.as_bytes()].concat();
        // `hmac::verify` compares in constant time.
        hmac::verify(&self.key, &message, &signature).ok()?;
        Some(expiry_value)
    }

    /// Whether `presented` is the secret, in constant time (see `secret_tag`).
    fn is_secret(&self, presented: &str) -> bool {
        let message = [SECRET_CONTEXT, presented.as_bytes()].concat();
        hmac::verify(&self.key, &message, self.secret_tag.as_ref()).is_ok()
    }

    /// Decides on a request at wall-clock time `now`.
    pub(crate) fn check(&self, request: &Request, now: SystemTime) -> Decision {
        if request.method == "OPTIONS" {
            return Decision::Allow;
        }
        let now = unix(now);
        let authorization = request.header("authorization").unwrap_or("");
        let (scheme, credentials) = authorization
            .trim()
            .split_once(' ')
            .map_or(("", ""), |(s, c)| (s, c.trim()));
        let bearer = scheme.eq_ignore_ascii_case("bearer") && self.is_secret(credentials);
        let cookie =
            cookie_value(request, COOKIE).is_some_and(|t| self.check_link(t, now).is_some());
        if bearer || cookie {
            return Decision::Allow;
        }
        if is_whep(&request.path) {
            return Decision::Deny(
                Response::text(
                    401,
                    "WHEP needs the access token: Authorization: Bearer TOKEN",
                )
                .with_header("WWW-Authenticate", "Bearer realm=\"rtcgear\""),
            );
        }
        let basic = scheme.eq_ignore_ascii_case("basic")
            && basic_password(credentials).is_some_and(|password| self.is_secret(&password));
        if basic {
            let expiry = now.saturating_add(self.link_ttl.as_secs());
            return Decision::AllowWithCookie(self.cookie(expiry, now));
        }
        let link = request
            .query
            .as_deref()
            .and_then(|query| query_value(query, "token"))
            .and_then(|token| self.check_link(token, now));
        if let Some(expiry) = link {
            return Decision::AllowWithCookie(self.cookie(expiry, now));
        }
        Decision::Deny(
            Response::text(
                401,
                "this server needs a password or a valid link; the link may have expired",
            )
            .with_header(
                "WWW-Authenticate",
                "Basic realm=\"rtcgear\", charset=\"UTF-8\"",
            ),
        )
    }

    /// The `Set-Cookie` value carrying a token that expires at `expiry`.
    fn cookie(&self, expiry: u64, now: u64) -> String {
        let mut cookie = format!(
            "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict",
            self.sign(expiry),
            expiry.saturating_sub(now)
        );
        if self.secure_cookie {
            cookie.push_str("; Secure");
        }
        cookie
    }
}

/// WHEP's routes: `/whep`, `/NAME/whep` and the sessions under them. No stream may be named
/// `whep`, so this never catches a page.
fn is_whep(path: &str) -> bool {
    path == "/whep" || path.ends_with("/whep") || path.contains("/whep/")
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn cookie_value<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The password of `Basic BASE64(user:password)`.
fn basic_password(credentials: &str) -> Option<String> {
    let decoded = base64_decode(credentials)?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Lower-case hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of hex digits (either case); `None` for anything else, a sign included.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Standard base64 with optional padding; `None` for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, PAD_INDIFFERENT};
    use base64::Engine;
    const BASE64: GeneralPurpose =
        GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_INDIFFERENT);
    BASE64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, query: Option<&str>, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: query.map(str::to_string),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            remote: None,
        }
    }

    fn access() -> Access {
        Access::new("s3cret", Duration::from_secs(3600), false)
    }

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn base64_and_basic_passwords() {
        assert_eq!(base64_decode("dXNlcjpzM2NyZXQ=").unwrap(), b"user:s3cret");
        assert_eq!(basic_password("dXNlcjpzM2NyZXQ").as_deref(), Some("s3cret"));
        assert_eq!(base64_decode("a$b"), None);
    }

    #[test]
    fn links_verify_until_they_expire_and_not_when_tampered() {
        let access = access();
        let token = access.link_token(at(NOW));
        assert_eq!(access.check_link(&token, NOW), Some(NOW + 3600));
        assert_eq!(access.check_link(&token, NOW + 3600), None);
        let (expiry, signature) = token.split_once('.').unwrap();
        let later = format!("{}.{signature}", expiry.parse::<u64>().unwrap() + 1);
        assert_eq!(access.check_link(&later, NOW), None);
        assert_eq!(
            access.check_link(&format!("0{expiry}.{signature}"), NOW),
            None
        );
        assert_eq!(
            access.check_link(&format!("{expiry}.{}", &signature[1..]), NOW),
            None
        );
        let other = Access::new("other", Duration::from_secs(3600), false);
        assert_eq!(other.check_link(&token, NOW), None);
    }

    #[test]
    fn whep_takes_the_bearer_or_the_cookie_only() {
        let access = access();
        let deny = |d: Decision| {
            matches!(d, Decision::Deny(r) if r.status == 401
            && r.header("www-authenticate").unwrap().starts_with("Bearer"))
        };
        assert!(deny(
            access.check(&request("POST", "/whep", None, &[]), at(NOW))
        ));
        let wrong = [("authorization", "Bearer nope")];
        assert!(deny(
            access.check(&request("POST", "/yard/whep", None, &wrong), at(NOW))
        ));
        let basic = [("authorization", "Basic dXNlcjpzM2NyZXQ=")];
        assert!(deny(
            access.check(&request("DELETE", "/whep/7", None, &basic), at(NOW))
        ));
        let right = [("authorization", "Bearer s3cret")];
        assert_eq!(
            access.check(&request("POST", "/whep", None, &right), at(NOW)),
            Decision::Allow
        );
        let cookie = format!("a=b; {COOKIE}={}", access.link_token(at(NOW)));
        let with_cookie = [("cookie", cookie.as_str())];
        assert_eq!(
            access.check(&request("DELETE", "/whep/7", None, &with_cookie), at(NOW)),
            Decision::Allow
        );
        assert_eq!(
            access.check(&request("OPTIONS", "/whep", None, &[]), at(NOW)),
            Decision::Allow
        );
    }

    #[test]
    fn pages_take_basic_auth_or_a_link_and_set_the_cookie() {
        let access = access();
        let denied = access.check(&request("GET", "/", None, &[]), at(NOW));
        assert!(matches!(denied, Decision::Deny(r) if r.status == 401
            && r.header("www-authenticate").unwrap().starts_with("Basic realm=\"rtcgear\"")));
        let basic = [("authorization", "Basic YW55b25lOnMzY3JldA==")];
        let Decision::AllowWithCookie(cookie) =
            access.check(&request("GET", "/", None, &basic), at(NOW))
        else {
            panic!("basic auth with the secret passes");
        };
        assert!(cookie.contains("HttpOnly; SameSite=Strict") && cookie.contains("Max-Age=3600"));
        let token = access.sign(NOW + 60);
        let query = format!("x=1&token={token}");
        let Decision::AllowWithCookie(cookie) =
            access.check(&request("GET", "/", Some(&query), &[]), at(NOW))
        else {
            panic!("a valid link passes");
        };
        assert!(cookie.starts_with(&format!("{COOKIE}={token}; Path=/; Max-Age=60;")));
        assert!(matches!(
            access.check(&request("GET", "/", Some(&query), &[]), at(NOW + 60)),
            Decision::Deny(_)
        ));
    }
}
