//! Framing: where a request's head and body end, within the limits, and the gate's own
//! answers when a request breaks one.

use super::GateConfig;

/// Why the gate answers a request itself.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl Refusal {
    pub(super) fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

/// Where one request ends, from its head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Framing {
    /// The head's length, the blank line included.
    pub(crate) head_len: usize,
    /// The body's length (its `Content-Length`).
    pub(crate) body_len: usize,
    /// Whether the client waits for `100 Continue` before it sends the body.
    pub(crate) expects_continue: bool,
}

/// Frames the request at the start of `buf`: `None` while its head is incomplete, a
/// [`Refusal`] when it breaks a limit or cannot be framed.
pub(crate) fn frame(buf: &[u8], config: &GateConfig) -> Result<Option<Framing>, Refusal> {
    let too_large = || {
        Refusal::new(
            431,
            format!(
                "the request head is larger than the {} bytes allowed",
                config.max_header_bytes
            ),
        )
    };
    let search = &buf[..buf.len().min(config.max_header_bytes + 4)];
    let Some(end) = search.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > config.max_header_bytes {
            return Err(too_large());
        }
        return Ok(None);
    };
    if end > config.max_header_bytes {
        return Err(too_large());
    }
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    if request_line.trim_ascii().is_empty() {
        return Err(Refusal::new(400, "the request line is empty"));
    }
    let mut headers = 0usize;
    let mut content_length: Option<usize> = None;
    let mut expects_continue = false;
    for line in lines {
        headers += 1;
        if headers > config.max_headers {
            return Err(Refusal::new(
                431,
                format!(
                    "the request has more than the {} header fields allowed",
                    config.max_headers
                ),
            ));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue; // tiny_http answers malformed headers with 400 itself.
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| Refusal::new(400, "the Content-Length is not a number"))?;
            if content_length.is_some_and(|earlier| earlier != length) {
                return Err(Refusal::new(
                    400,
                    "the request has two different Content-Lengths",
                ));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Refusal::new(
                411,
                "send the body with a Content-Length; chunked and other transfer codings are \
                 not accepted",
            ));
        } else if name.eq_ignore_ascii_case(b"expect")
            && value.eq_ignore_ascii_case(b"100-continue")
        {
            expects_continue = true;
        }
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > config.max_body_bytes {
        return Err(Refusal::new(
            413,
            format!(
                "the body is larger than the {} bytes allowed",
                config.max_body_bytes
            ),
        ));
    }
    Ok(Some(Framing {
        head_len: end + 4,
        body_len,
        expects_continue: expects_continue && body_len > 0,
    }))
}

/// The head without its `Expect` header fields.
pub(super) fn without_expect(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for line in head.split_inclusive(|&b| b == b'\n') {
        let is_expect = line.len() >= 7 && line[..7].eq_ignore_ascii_case(b"expect:");
        if !is_expect {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The gate's own answer: plain text, and the connection closes after it.
pub(super) fn response_bytes(status: u16, reason: &str, retry_after: Option<u32>) -> Vec<u8> {
    let phrase = match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{reason}\n");
    let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> GateConfig {
        GateConfig {
            max_connections: 10,
            max_connections_per_ip: 2,
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_header_bytes: 100,
            max_headers: 3,
            max_body_bytes: 10,
        }
    }

    #[test]
    fn frames_heads_and_bodies() {
        let config = config();
        assert_eq!(frame(b"GET / HTTP/1.1\r\nHost: x\r\n", &config), Ok(None));
        assert_eq!(
            frame(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", &config),
            Ok(Some(Framing {
                head_len: 27,
                body_len: 0,
                expects_continue: false
            }))
        );
        let post =
            b"POST /whep HTTP/1.1\r\ncontent-length: 5\r\nExpect: 100-continue\r\n\r\nv=0\r\n";
        let framing = frame(post, &config).unwrap().unwrap();
        assert_eq!(framing.body_len, 5);
        assert!(framing.expects_continue);
        assert_eq!(framing.head_len + framing.body_len, post.len());
        assert_eq!(
            without_expect(&post[..framing.head_len]),
            b"POST /whep HTTP/1.1\r\ncontent-length: 5\r\n\r\n"
        );
    }

    #[test]
    fn refuses_what_breaks_a_limit() {
        let config = config();
        let status = |buf: &[u8]| frame(buf, &config).unwrap_err().status;
        assert_eq!(status(&[b'a'; 101]), 431);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(100));
        assert_eq!(status(long.as_bytes()), 431);
        assert_eq!(
            status(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n"),
            431
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(status(b"\r\n\r\n"), 400);
    }

    #[test]
    fn refusals_are_whole_responses() {
        let text = String::from_utf8(response_bytes(431, "too big", None)).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.contains("Content-Length: 8\r\n"));
        assert!(text.ends_with("\r\n\r\ntoo big\n"));
        assert!(String::from_utf8(response_bytes(503, "full", Some(5)))
            .unwrap()
            .contains("Retry-After: 5\r\n"));
    }
}
