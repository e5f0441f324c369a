//! Your own routes and middleware around rtcgear's server (vidgear's custom routes and
//! middleware).
//!
//! ```sh
//! cargo run -p rtcgear-server --example custom_routes
//! curl http://127.0.0.1:8000/health
//! curl -i -X POST http://127.0.0.1:8000/whep      # 401: no token
//! ```
//!
//! It adds a `/health` route, a middleware that asks WHEP and `/offer` callers for a bearer
//! token (the page is left open in this example: a real deployment would protect it too), and
//! one that adds a header to every response.

use std::net::{IpAddr, Ipv4Addr};

use rtcgear_capture::{FrameRate, TestPattern};
use rtcgear_server::{Request, Response, Server, ServerConfig, StreamConfig};

const TOKEN: &str = "let-me-watch";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ServerConfig::default();
    config.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let pattern = TestPattern::new(640, 480, FrameRate::from_int(30).ok_or("bad fps")?)?;
    let server = Server::builder()
        .config(config)
        .stream(StreamConfig::new("", pattern))
        .route("GET", "/health", |_: &Request| Response::text(200, "ok"))
        // Outermost: tag every response.
        .middleware(|request: &Request, next: &dyn Fn(&Request) -> Response| {
            next(request).with_header("X-Served-By", "rtcgear example")
        })
        // Then: signalling needs a bearer token.
        .middleware(|request: &Request, next: &dyn Fn(&Request) -> Response| {
            let signalling = request.path.ends_with("/whep") || request.path.ends_with("/offer");
            let authorised = request.header("authorization") == Some(&format!("Bearer {TOKEN}"));
            if signalling && request.method == "POST" && !authorised {
                return Response::text(401, "a bearer token is required")
                    .with_header("WWW-Authenticate", "Bearer");
            }
            next(request)
        })
        .build()?;
    let stop = server.shutdown_handle();
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.flag())?;
    println!("open {} (Ctrl-C stops)", server.urls()[0]);
    server.run()?;
    Ok(())
}
