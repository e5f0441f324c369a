//! HTTP messages: the request and response types that routes, middleware and the access check
//! see, and the shapes of a user's route handler and middleware.

use std::net::SocketAddr;
use std::sync::Arc;

/// An HTTP request, body included, as routes and middleware see it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, … in upper case.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (at most the configured limit).
    pub body: Vec<u8>,
    /// The client's address.
    pub remote: Option<SocketAddr>,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the body, without parameters, in lower case.
    pub(crate) fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A plain-text response, as API clients get for errors.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::new(status, "application/json", value.to_string())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A route handler of the library user's.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Middleware: sees every request and decides whether and how to call the next handler.
pub type Middleware =
    Arc<dyn Fn(&Request, &dyn Fn(&Request) -> Response) -> Response + Send + Sync>;
