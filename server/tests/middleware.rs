//! Custom routes and middleware see every request, in order, and can answer on their own.

use std::net::Ipv4Addr;

use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Request, Response, Server, ServerConfig, StreamConfig};
use rtcgear_test_support::http;

/// `(status, X-Tag header, body)` of one request with an SDP-looking body.
fn call(url: &str, method: &str) -> (u16, Option<String>, String) {
    let (status, headers, body) =
        http::request(url, method, Some(("application/sdp", b"v=0")), &[]);
    let tag = headers
        .into_iter()
        .find(|(name, _)| name == "x-tag")
        .map(|(_, value)| value);
    let body = match body {
        serde_json::Value::String(text) => text,
        json => json.to_string(),
    };
    (status, tag, body)
}

#[test]
fn routes_and_middleware_wrap_the_servers_own_endpoints() {
    let mut config = ServerConfig::default();
    config.bind = Ipv4Addr::LOCALHOST.into();
    config.http_port = 0;
    config.udp_port = Some(0);
    let pattern =
        TestPattern::new(320, 240, FrameRate::from_int(10).expect("10 > 0")).expect("a valid size");
    let server = Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern))
        .route("GET", "/health", |_: &Request| Response::text(200, "ok"))
        .middleware(|request: &Request, next: &dyn Fn(&Request) -> Response| {
            next(request).with_header("X-Tag", "outer")
        })
        .middleware(|request: &Request, next: &dyn Fn(&Request) -> Response| {
            if request.path == "/whep" && request.header("authorization").is_none() {
                return Response::text(401, "token please");
            }
            next(request)
        })
        .build()
        .expect("the server starts");
    let base = format!("http://{}", server.http_addr());
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run());

    assert_eq!(
        call(&format!("{base}/health"), "GET"),
        (200, Some("outer".into()), "ok\n".into())
    );
    let (status, tag, body) = call(&format!("{base}/whep"), "POST");
    assert_eq!((status, tag.as_deref()), (401, Some("outer")));
    assert!(body.contains("token please"));
    // The server's own routes still answer through the middleware.
    let (status, tag, _) = call(&format!("{base}/api/streams"), "GET");
    assert_eq!((status, tag.as_deref()), (200, Some("outer")));

    stop.shutdown();
    running.join().expect("no panic").expect("a clean stop");
}
