//! Custom routes and middleware see every request, in order, and can answer on their own.

use std::net::Ipv4Addr;
use std::time::Duration;

use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Request, Response, Server, ServerConfig, StreamConfig};

fn call(url: &str, method: &str) -> (u16, Option<String>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/sdp")
        .body(b"v=0".to_vec())
        .expect("a valid request");
    let mut response = agent.run(request).expect("the server answers");
    let tag = response
        .headers()
        .get("x-tag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), tag, body)
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
