//! One HTTP call at a time, its body read as JSON: the servers under test, and ChromeDriver.

use std::time::Duration;

use serde_json::Value;

use crate::Error;

/// An HTTP reply: the status, the headers (lower-case names), and the body as JSON (a JSON
/// string when it is not JSON).
pub type Reply = (u16, Vec<(String, String)>, Value);

/// How long one call may take, from connecting to the end of the body.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP call: `method` to `url`, with `body` as `(content type, bytes)` and extra
/// `headers`. Any status is a reply, errors included.
///
/// # Panics
///
/// If there is no reply at all (no server, a broken connection, [`TIMEOUT`]), naming the
/// call.
pub fn request(
    url: &str,
    method: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> Reply {
    try_request(url, method, body, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`request`], but no reply at all is an error rather than a panic: for polling a
/// server that is starting.
pub fn try_request(
    url: &str,
    method: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> Result<Reply, Error> {
    send(url, method, body, headers, TIMEOUT)
}

/// One call within `timeout`.
pub(crate) fn send(
    url: &str,
    method: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Reply, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::new(format!("{method} {url}: {e}"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let result = match body {
        Some((content_type, bytes)) => {
            let request = request
                .header("content-type", content_type)
                .body(bytes.to_vec())
                .map_err(|e| fail(&e))?;
            agent.run(request)
        }
        None => agent.run(request.body(()).map_err(|e| fail(&e))?),
    };
    let mut response = result.map_err(|e| fail(&e))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, headers, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_server_is_an_error_that_names_the_call() {
        let port = crate::ports::free_tcp_port();
        let url = format!("http://127.0.0.1:{port}/api/streams");
        let err = try_request(&url, "GET", None, &[]).expect_err("nobody listens");
        assert!(
            err.to_string().starts_with(&format!("GET {url}: ")),
            "{err}"
        );
    }
}
