//! The server: binds the sockets, starts the threads, and runs until shut down.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use crossbeam_channel::Sender;
use rtcgear_rtc::Shard;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::Access;

use crate::config::{check_stream_name, IceTcp, ServerConfig};
use crate::gate::{Gate, GateConfig, Peers};
use crate::http::{App, RTC_ANSWER_TIMEOUT};
use crate::ice_tcp::{self, TcpEvent};
use crate::limit::RateLimiter;
use crate::media::{self, Candidates, Media, MediaConfig};
use crate::message::{Handler, Middleware, Request, Response};
use crate::rtc_threads::{RtcThreads, ShardLoad};
use crate::session::SessionNames;
use crate::stream::{self, StreamConfig, StreamShared};
use crate::web::Web;
use crate::ServerError;

/// Builds a [`Server`]: settings, streams, and your own routes and middleware.
pub struct ServerBuilder {
    config: ServerConfig,
    streams: Vec<StreamConfig>,
    routes: HashMap<(String, String), Handler>,
    middleware: Vec<Middleware>,
}

impl ServerBuilder {
    /// Replaces the server-wide settings.
    pub fn config(mut self, config: ServerConfig) -> ServerBuilder {
        self.config = config;
        self
    }

    /// Adds a stream. The one named `""` answers at `/`, `/offer` and `/whep`; a stream named
    /// `yard` at `/yard/`, `/yard/offer` and `/yard/whep`.
    pub fn stream(mut self, stream: StreamConfig) -> ServerBuilder {
        self.streams.push(stream);
        self
    }

    /// Adds a route of your own for `method` (e.g. `"GET"`) and an exact `path`. Your routes
    /// are looked at before the server's own.
    pub fn route(
        mut self,
        method: &str,
        path: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.routes.insert(
            (method.to_ascii_uppercase(), path.to_string()),
            Arc::new(handler),
        );
        self
    }

    /// Wraps every request (vidgear's middleware): the function gets the request and the next
    /// handler, and may answer itself, change the request, or change the response. The first
    /// one added is the outermost.
    pub fn middleware(
        mut self,
        middleware: impl Fn(&Request, &dyn Fn(&Request) -> Response) -> Response + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Checks the settings and binds the HTTP and UDP sockets; nothing runs until
    /// [`Server::run`].
    pub fn build(self) -> Result<Server, ServerError> {
        let ServerBuilder {
            config,
            streams,
            routes,
            middleware,
        } = self;
        if streams.is_empty() {
            return Err(ServerError::Config(
                "a server needs at least one stream".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for stream in &streams {
            check_stream_name(stream.name())?;
            if !names.insert(stream.name().to_string()) {
                return Err(ServerError::Config(format!(
                    "two streams are named {:?}",
                    stream.name()
                )));
            }
        }
        crate::turn::check(&config)?;
        let web = Web::new(config.web_dir.clone())?;
        let http_addr = SocketAddr::new(config.bind, config.http_port);
        let tls = read_tls(&config)?;
        let https = tls.is_some();
        let bind_error = |e: std::io::Error| ServerError::Bind {
            what: if https { "HTTPS" } else { "HTTP" },
            addr: http_addr,
            source: e,
        };
        // Clients connect to the gate (`gate/`), which hands whole requests to tiny_http over
        // loopback.
        let listener = TcpListener::bind(http_addr).map_err(bind_error)?;
        let http_addr = listener.local_addr().map_err(bind_error)?;
        let inner = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .or_else(|_| TcpListener::bind((Ipv6Addr::LOCALHOST, 0)))
            .map_err(|e| ServerError::Io {
                context: "binding the HTTP server's loopback socket".into(),
                source: e,
            })?;
        let inner_addr = inner.local_addr().map_err(|e| ServerError::Io {
            context: "reading the loopback HTTP address".into(),
            source: e,
        })?;
        let http =
            tiny_http::Server::from_listener(inner, None).map_err(|e| ServerError::Bind {
                what: "loopback HTTP",
                addr: inner_addr,
                source: std::io::Error::other(e),
            })?;
        let access = config
            .access_token
            .as_deref()
            .map(|secret| Access::new(secret, config.link_ttl, https));
        if access.is_some() && !https && !config.bind.is_loopback() {
            tracing::warn!(
                "access control is on without TLS on {}: the token, passwords and links cross \
                 the network in the clear; give a TLS certificate and key",
                config.bind
            );
        }
        let udp_port = config.udp_port.unwrap_or(http_addr.port());
        let udp_addr = SocketAddr::new(config.bind, udp_port);
        let udp = UdpSocket::bind(udp_addr).map_err(|e| ServerError::Bind {
            what: "UDP",
            addr: udp_addr,
            source: e,
        })?;
        let udp_addr = udp.local_addr().map_err(|e| ServerError::Io {
            context: "reading the UDP address".into(),
            source: e,
        })?;
        // ICE-TCP: on the HTTP port (the gate tells its connections apart), on a port of its
        // own, or off.
        let (ice_listener, tcp_port) = match config.ice_tcp {
            IceTcp::Off => (None, None),
            IceTcp::HttpPort => (None, Some(http_addr.port())),
            IceTcp::Port(port) => {
                let addr = SocketAddr::new(config.bind, port);
                let bind_error = |e: std::io::Error| ServerError::Bind {
                    what: "ICE-TCP",
                    addr,
                    source: e,
                };
                let listener = TcpListener::bind(addr).map_err(bind_error)?;
                let port = listener.local_addr().map_err(bind_error)?.port();
                (Some(listener), Some(port))
            }
        };
        let candidates =
            Candidates::gather(config.bind, udp_addr.port(), tcp_port, &config.public_ips);
        if candidates.hosts.is_empty() {
            return Err(ServerError::Config(format!(
                "no address to announce to viewers for {}",
                config.bind
            )));
        }
        let shared = streams
            .iter()
            .map(|stream| Arc::new(StreamShared::new(stream, config.rtc_thread_count())))
            .collect();
        Ok(Server {
            config,
            access: access.map(Arc::new),
            https,
            web,
            http: Arc::new(http),
            listener,
            ice_listener,
            inner_addr,
            tls,
            http_addr,
            udp,
            udp_addr,
            candidates,
            streams,
            shared,
            routes,
            middleware,
            shutdown: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// The streaming server: HTTP for the page and signalling, one UDP port for every viewer's
/// media, and a pipeline (capture and encode threads) per stream.
///
/// Threads: `http-N` workers answer requests; `udp-reader` hands datagrams to the `rtc-N`
/// threads, each of which owns its share of the WebRTC sessions and writes to the socket; each
/// stream has `capture-NAME` and `encode-NAME`. They talk over bounded channels; nothing blocks on a slow viewer.
pub struct Server {
    config: ServerConfig,
    access: Option<Arc<Access>>,
    https: bool,
    web: Web,
    /// tiny_http, on loopback behind the gate.
    http: Arc<tiny_http::Server>,
    /// The public HTTP socket, which the gate owns once running.
    listener: TcpListener,
    /// ICE-TCP's own socket, with [`IceTcp::Port`].
    ice_listener: Option<TcpListener>,
    inner_addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    http_addr: SocketAddr,
    udp: UdpSocket,
    udp_addr: SocketAddr,
    candidates: Candidates,
    streams: Vec<StreamConfig>,
    shared: Vec<Arc<StreamShared>>,
    routes: HashMap<(String, String), Handler>,
    middleware: Vec<Middleware>,
    shutdown: Arc<AtomicBool>,
}

/// Stops a running [`Server`] from another thread or a signal handler.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
}

impl ShutdownHandle {
    /// Asks the server to close every session, stop its threads and return from
    /// [`Server::run`].
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// The flag itself, for `signal_hook::flag::register`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }
}

impl Server {
    /// Starts building a server with the default settings and no streams.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            config: ServerConfig::default(),
            streams: Vec::new(),
            routes: HashMap::new(),
            middleware: Vec::new(),
        }
    }

    /// The HTTP address, with the real port when 0 was asked for.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The UDP address for media.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The TCP port of ICE-TCP ([`ServerConfig::ice_tcp`]): the HTTP port's by default, or
    /// `None` when it is off.
    pub fn ice_tcp_port(&self) -> Option<u16> {
        self.candidates.tcp.first().map(SocketAddr::port)
    }

    /// The addresses announced to viewers as ICE host candidates: the media socket's and the
    /// public ones. A viewer whose HTTP request comes from another host gets no loopback
    /// address but a public one; a server-reflexive candidate from STUN is added when known.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates.hosts
    }

    /// URLs to open in a browser: loopback first, then the other announced addresses.
    pub fn urls(&self) -> Vec<String> {
        let port = self.http_addr.port();
        let mut ips: Vec<IpAddr> = if self.http_addr.ip().is_unspecified() {
            let mut ips = vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)];
            ips.extend(
                self.candidates
                    .hosts
                    .iter()
                    .map(SocketAddr::ip)
                    .filter(|ip| !ip.is_loopback()),
            );
            ips
        } else {
            vec![self.http_addr.ip()]
        };
        ips.dedup();
        let scheme = if self.https { "https" } else { "http" };
        ips.into_iter()
            .map(|ip| match ip {
                IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}/"),
                IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}/"),
            })
            .collect()
    }

    /// With access control on, a fresh signed link token, valid for
    /// [`ServerConfig::link_ttl`] from now: add `?token=` and it to a page URL to share the
    /// page without the secret. `None` when access control is off.
    pub fn link_token(&self) -> Option<String> {
        self.access
            .as_ref()
            .map(|access| access.link_token(SystemTime::now()))
    }

    /// A handle that stops the server.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.shutdown.clone(),
        }
    }

    /// Runs until [`ShutdownHandle::shutdown`], then closes every session and joins every
    /// thread.
    pub fn run(self) -> Result<(), ServerError> {
        let Server {
            config,
            access,
            web,
            http,
            listener,
            ice_listener,
            inner_addr,
            tls,
            udp,
            candidates,
            streams,
            shared,
            routes,
            middleware,
            shutdown,
            ..
        } = self;
        let spawn_error = |e: std::io::Error| ServerError::Io {
            context: "starting a thread".into(),
            source: e,
        };
        // The reader wakes up now and then to notice shutdown.
        udp.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| ServerError::Io {
                context: "setting the UDP read timeout".into(),
                source: e,
            })?;
        let reader_socket = udp.try_clone().map_err(|e| ServerError::Io {
            context: "sharing the UDP socket".into(),
            source: e,
        })?;
        // One set of queues for each RTC thread.
        let rtc_threads = config.rtc_thread_count();
        let (mut udp_txs, mut tcp_txs, mut media_txs, mut command_txs) =
            (vec![], vec![], vec![], vec![]);
        let mut receivers = Vec::new();
        for _ in 0..rtc_threads {
            let (udp_tx, udp_rx) = crossbeam_channel::bounded(4096);
            let (tcp_tx, tcp_rx) = crossbeam_channel::bounded::<TcpEvent>(4096);
            let (media_tx, media_rx) = crossbeam_channel::bounded(64);
            let (command_tx, command_rx) = crossbeam_channel::bounded(256);
            udp_txs.push(udp_tx);
            tcp_txs.push(tcp_tx);
            media_txs.push(media_tx);
            command_txs.push(command_tx);
            receivers.push((udp_rx, tcp_rx, media_rx, command_rx));
        }
        let tcp_txs: Arc<[Sender<TcpEvent>]> = tcp_txs.into();
        let media_txs: Arc<[_]> = media_txs.into();
        if let Some(port) = candidates.tcp.first().map(SocketAddr::port) {
            tracing::info!("ICE-TCP for viewers whose UDP is blocked: TCP port {port}");
        }
        tracing::info!("{rtc_threads} RTC thread(s) share the viewers");

        let mut threads = Vec::new();
        {
            let shutdown = shutdown.clone();
            threads.push(
                thread::Builder::new()
                    .name("udp-reader".into())
                    .spawn(move || media::udp_reader(reader_socket, udp_txs, shutdown))
                    .map_err(spawn_error)?,
            );
        }
        // The STUN server, if any, is asked from the media socket itself, so that the NAT
        // mapping found is the media port's; only `stun:` over UDP (`stuns:` is TLS over TCP
        // and cannot speak for a UDP port). Its own thread sends and waits; the first RTC
        // thread (where the UDP reader sends datagrams of no viewer) hands the answer over.
        // Start-up does not wait for it.
        let stun_server = config
            .ice_servers
            .iter()
            .find(|server| server.urls.starts_with("stun:"))
            .cloned();
        let mut stun_thread = None;
        let loads: Arc<[ShardLoad]> = (0..rtc_threads).map(|_| ShardLoad::default()).collect();
        let media_config = MediaConfig::new(&config, candidates, shared.clone());
        for (index, (udp_rx, tcp_rx, media_rx, command_rx)) in receivers.into_iter().enumerate() {
            let shard = Shard::new(index, rtc_threads).ok_or_else(|| {
                ServerError::Config(format!("{rtc_threads} RTC threads are too many"))
            })?;
            let socket = udp.try_clone().map_err(|e| ServerError::Io {
                context: "sharing the UDP socket".into(),
                source: e,
            })?;
            let mut media = Media::new(socket, media_config.clone(), shard, loads.clone());
            if let (0, Some(stun)) = (index, stun_server.clone()) {
                let (replies_tx, replies_rx) = crossbeam_channel::bounded(8);
                media = media.with_stun_replies(replies_tx);
                let commands = command_txs.clone();
                let shutdown = shutdown.clone();
                let socket = udp.try_clone().map_err(|e| ServerError::Io {
                    context: "sharing the UDP socket".into(),
                    source: e,
                })?;
                stun_thread = Some(
                    thread::Builder::new()
                        .name("stun".into())
                        .spawn(move || {
                            media::find_reflexive(socket, stun, replies_rx, commands, shutdown)
                        })
                        .map_err(spawn_error)?,
                );
            }
            let shutdown = shutdown.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("rtc-{index}"))
                    .spawn(move || media.run(udp_rx, tcp_rx, media_rx, command_rx, shutdown))
                    .map_err(spawn_error)?,
            );
        }
        drop(udp);
        for (index, (stream, shared)) in streams.into_iter().zip(shared.iter()).enumerate() {
            let pipeline = stream::start(
                index,
                stream,
                shared.clone(),
                media_txs.clone(),
                shutdown.clone(),
            )
            .map_err(spawn_error)?;
            threads.extend(pipeline.threads);
        }
        drop(media_txs);

        if let Some(ice_listener) = ice_listener {
            let (events, max, shutdown) = (
                tcp_txs.clone(),
                (
                    config.max_connections.max(1),
                    config.max_connections_per_ip.max(1),
                ),
                shutdown.clone(),
            );
            threads.push(
                thread::Builder::new()
                    .name("ice-tcp-accept".into())
                    .spawn(move || ice_tcp::accept(ice_listener, events, max, shutdown))
                    .map_err(spawn_error)?,
            );
        }
        let peers = Arc::new(Peers::default());
        {
            let ice_tcp = (config.ice_tcp == IceTcp::HttpPort).then_some(tcp_txs);
            let gate = Gate::new(
                listener,
                inner_addr,
                tls,
                GateConfig::new(&config),
                peers.clone(),
                ice_tcp,
            );
            let shutdown = shutdown.clone();
            threads.push(
                thread::Builder::new()
                    .name("http-gate".into())
                    .spawn(move || gate.run(shutdown))
                    .map_err(spawn_error)?,
            );
        }

        let workers = config.http_workers.max(1);
        let app = Arc::new(App {
            offer_limit: RateLimiter::new(config.offer_rate, config.offer_burst),
            config,
            access,
            web,
            streams: shared,
            rtc: RtcThreads::new(command_txs, loads),
            routes,
            middleware,
            peers: Some(peers),
            rtc_timeout: RTC_ANSWER_TIMEOUT,
            sessions: SessionNames::new(),
        });
        for n in 0..workers {
            let app = app.clone();
            let http = http.clone();
            let shutdown = shutdown.clone();
            threads.push(
                thread::Builder::new()
                    .name(format!("http-{n}"))
                    .spawn(move || {
                        while !shutdown.load(Ordering::Relaxed) {
                            match http.recv_timeout(Duration::from_millis(200)) {
                                Ok(Some(request)) => app.serve(request),
                                Ok(None) => {}
                                Err(err) => {
                                    tracing::warn!("HTTP accept: {err}");
                                    thread::sleep(Duration::from_millis(50));
                                }
                            }
                        }
                    })
                    .map_err(spawn_error)?,
            );
        }
        drop(app);

        while !shutdown.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
        tracing::info!("shutting down");
        // The `stun` thread ends within its wait, unless the STUN server's name is still
        // being resolved, which nothing can cut short: then it is left to end on its own.
        if let Some(stun) = stun_thread {
            if stun.is_finished() {
                if stun.join().is_err() {
                    tracing::error!("thread stun panicked");
                }
            } else {
                tracing::debug!("not waiting for the STUN server's name to resolve");
            }
        }
        for thread in threads {
            let name = thread.thread().name().unwrap_or("?").to_string();
            if thread.join().is_err() {
                tracing::error!("thread {name} panicked");
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

#[cfg(any(test, feature = "fuzzing"))]
impl Server {
    /// For the fuzz harness: starts only the RTC thread (no HTTP, no pipelines) and gives the
    /// HTTP handlers in front of it, with the stop flag and the thread to join.
    pub(crate) fn into_app(self) -> (Arc<App>, Arc<AtomicBool>, thread::JoinHandle<()>) {
        let Server {
            config,
            access,
            web,
            udp,
            candidates,
            shared,
            routes,
            middleware,
            shutdown,
            ..
        } = self;
        let (_udp_tx, udp_rx) = crossbeam_channel::bounded(1);
        let (_tcp_tx, tcp_rx) = crossbeam_channel::bounded(1);
        let (_media_tx, media_rx) = crossbeam_channel::bounded(1);
        let (command_tx, command_rx) = crossbeam_channel::bounded(16);
        let loads: Arc<[ShardLoad]> = vec![ShardLoad::default()].into();
        let media_config = MediaConfig::new(&config, candidates, shared.clone());
        let media = Media::new(udp, media_config, Shard::default(), loads.clone());
        let stop = shutdown.clone();
        let rtc = thread::spawn(move || {
            // The senders stay alive as long as the thread, so the channels never disconnect.
            let _keep = (_udp_tx, _tcp_tx, _media_tx);
            media.run(udp_rx, tcp_rx, media_rx, command_rx, stop)
        });
        let app = Arc::new(App {
            offer_limit: RateLimiter::new(config.offer_rate, config.offer_burst),
            config,
            access,
            web,
            streams: shared,
            rtc: RtcThreads::new(vec![command_tx], loads),
            routes,
            middleware,
            peers: None,
            rtc_timeout: RTC_ANSWER_TIMEOUT,
            sessions: SessionNames::new(),
        });
        (app, shutdown, rtc)
    }
}

/// Reads the TLS certificate and key files named in the settings, if any, into the gate's
/// rustls settings.
fn read_tls(config: &ServerConfig) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err(ServerError::Config(
                "HTTPS needs both a TLS certificate and its key".into(),
            ))
        }
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServerError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        })
    };
    let certificate = read(cert)?;
    let private_key = read(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&certificate)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(ServerError::Config(format!(
            "{}: no PEM certificate in it",
            cert.display()
        )));
    }
    // PKCS#8, PKCS#1 (RSA) or SEC1 (EC), whichever comes first; encrypted keys are not PEM
    // sections rustls reads, so they end up here too.
    let Ok(key_der) = PrivateKeyDer::from_pem_slice(&private_key) else {
        return Err(ServerError::Config(format!(
            "{}: no unencrypted PKCS#8, RSA or EC PEM key in it (convert one with \
             `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8.pem`)",
            key.display()
        )));
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
        })
        .map_err(|e| {
            ServerError::Config(format!(
                "the TLS certificate {} or key {} is not usable: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    Ok(Some(Arc::new(tls)))
}
