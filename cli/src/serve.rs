//! `rtcgear serve`: the server's configuration from the flags, a stream for each source, the
//! links printed for the browser, and running until SIGINT or SIGTERM.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context};
use rtcgear_capture::{Opened, OpenedSource};
use rtcgear_server::{IceTcp, Latency, Server, ServerConfig, StreamConfig, WhenIdle};

use crate::args::{LatencyArg, ServeArgs};
use crate::source::open_source;

/// The target of this command's log lines: the crate's, as when they were written in main.rs,
/// so that the lines read as they did (`INFO rtcgear: stream ...`).
const LOG_TARGET: &str = "rtcgear";

/// Serves the streams the flags name until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // The server checks this too, but cannot name the flag.
    if let Some(dir) = args.web_dir.as_ref().filter(|dir| !dir.is_dir()) {
        bail!(
            "--web-dir {}: no such folder (make one with `rtcgear export-web {}`)",
            dir.display(),
            dir.display()
        );
    }
    // The server checks these too, but cannot name the flags.
    if args.turn_secret.as_deref() == Some("") {
        bail!("--turn-secret (or RTCGEAR_TURN_SECRET) is empty");
    }
    if args.turn_secret.is_none() {
        if let Some(server) = args.ice_servers.iter().find(|s| s.needs_secret()) {
            bail!(
                "--ice-server {server}: a TURN server without credentials needs --turn-secret \
                 (or RTCGEAR_TURN_SECRET), the secret it shares with the TURN server, to make \
                 time-limited ones; or give fixed ones as turn:USER:PASS@HOST[:PORT]"
            );
        }
    }
    let config = {
        let mut config = ServerConfig::default();
        config.bind = args.bind;
        config.http_port = args.port;
        config.udp_port = args.udp_port;
        config.latency = match args.latency {
            LatencyArg::Low => Latency::Low,
            LatencyArg::Balanced => Latency::Balanced,
        };
        config.ice_tcp = match (args.no_tcp, args.tcp_port) {
            (true, _) => IceTcp::Off,
            (false, Some(port)) => IceTcp::Port(port),
            (false, None) => IceTcp::HttpPort,
        };
        config.public_ips = args.public_ips.iter().flat_map(|p| p.0.clone()).collect();
        config.ice_servers = args.ice_servers.clone();
        config.turn_secret = args.turn_secret.clone();
        config.turn_ttl = Duration::from_secs(args.turn_ttl * 3600);
        config.max_viewers = args.max_viewers.map(|n| n as usize);
        config.rtc_threads = args.rtc_threads.map_or(0, |n| n as usize);
        config.web_dir = args.web_dir.clone();
        config.cors_origins = args.cors_origins.clone();
        config.access_token = args.token.clone();
        config.link_ttl = Duration::from_secs(args.link_ttl * 3600);
        config.tls_cert = args.tls_cert.clone();
        config.tls_key = args.tls_key.clone();
        config.offer_rate = args.offer_rate;
        config.offer_burst = args.offer_rate.clamp(1, 20);
        config.max_connections = usize::try_from(args.max_connections).unwrap_or(usize::MAX);
        config.max_connections_per_ip =
            usize::try_from(args.max_connections_per_ip).unwrap_or(usize::MAX);
        config.request_timeout = Duration::from_secs(args.request_timeout);
        config.idle_timeout = Duration::from_secs(args.idle_timeout);
        config
    };
    let mut builder = Server::builder().config(config);
    let add = |name: &str, opened: Opened| {
        let Opened { source, live, .. } = opened;
        let label = if name.is_empty() { "default" } else { name };
        let stream = match source {
            OpenedSource::Frames(source) => {
                let info = source.info();
                tracing::info!(
                    target: LOG_TARGET,
                    "stream {label:?}: {}x{} at {} fps, encoded here",
                    info.width,
                    info.height,
                    info.fps
                );
                StreamConfig::new(name, source)
            }
            OpenedSource::Encoded(source) => {
                let info = source.info();
                tracing::info!(
                    target: LOG_TARGET,
                    "stream {label:?}: {}x{} at {} fps, H.264 passed through",
                    info.width,
                    info.height,
                    info.fps
                );
                StreamConfig::passthrough(name, source)
            }
        };
        let mut stream = stream.when_idle(if args.always_live {
            WhenIdle::Encode
        } else {
            WhenIdle::for_source(live)
        });
        if let Some(kbps) = args.bitrate {
            stream = stream.bitrate_kbps(kbps);
        }
        stream
    };
    let opened = open_source("--source", &args.source, &args)?;
    builder = builder.stream(add("", opened));
    for spec in &args.streams {
        let (name, source) = spec
            .split_once('=')
            .with_context(|| format!("--stream {spec:?}: expected NAME=SOURCE, e.g. yard=test"))?;
        if name.is_empty() {
            bail!("--stream {spec:?}: the name is empty (the default stream is --source)");
        }
        let opened = open_source("--stream", source, &args)?;
        builder = builder.stream(add(name, opened));
    }
    let server = builder.build().map_err(|e| {
        anyhow::anyhow!("{e}").context(match e {
            rtcgear_server::ServerError::Bind { .. } => {
                "pick other ports with --port / --udp-port / --tcp-port"
            }
            _ => "cannot start the server",
        })
    })?;
    let stop = server.shutdown_handle();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.flag())
            .context("installing the signal handler")?;
    }
    tracing::info!(
                    target: LOG_TARGET,
        "media on UDP {}{}; ICE candidates {:?}",
        server.udp_addr().port(),
        match server.ice_tcp_port() {
            Some(port) => format!(" and ICE-TCP on TCP {port}"),
            None => String::new(),
        },
        server.candidates()
    );
    let urls = server.urls();
    // With --token, print signed links (never the secret itself).
    let link = server
        .link_token()
        .map(|token| format!("?token={token}"))
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    writeln!(out, "rtcgear is streaming. Open one of these in a browser:")?;
    for url in &urls {
        writeln!(out, "  {url}{link}")?;
    }
    for name in args
        .streams
        .iter()
        .filter_map(|s| s.split_once('=').map(|(n, _)| n))
    {
        writeln!(out, "  {}{name}/{link}", urls[0])?;
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    drop(out);
    server.run().context("the server stopped with an error")?;
    debug_assert!(stop.flag().load(Ordering::Relaxed));
    Ok(())
}
