//! Small networks of Linux network namespaces, for tests that need real routes, NAT and
//! firewalls between a server and a browser: `ip netns`, veth pairs, a bridge and iptables,
//! all inside namespaces of the test's own, removed on drop. Needs root (and `ip`, `iptables`
//! and `sysctl`); [`Topology::new`] says why it cannot when it cannot, so that a test can
//! skip.
//!
//! A [`Topology`] is four namespaces: a router with a bridge for the public segment, the
//! server's host, coturn's host and the viewer's host, placed as its [`Layout`] says. With the
//! viewer behind the router's NAT:
//!
//! ```text
//!                    public segment 203.0.113.0/24 (bridge pub0 in the router)
//!   +-----------+          |                              +-----------+
//!   |  server   |--eth0----+----eth0----------------------|   turn    |
//!   | .10       |          |                              | .20       |
//!   +-----------+          | .1                           +-----------+
//!                     +----------+
//!                     |  router  |  NAT (MASQUERADE) of 192.168.77.0/24 out of pub0,
//!                     |          |  iptables FORWARD rules to cut paths
//!                     +----------+
//!                          | 192.168.77.1
//!                     +----------+
//!                     |  viewer  |  192.168.77.2: Chromium under ChromeDriver
//!                     +----------+
//! ```
//!
//! [`Layout::SameLan`] puts the viewer on the public segment too (203.0.113.30), next to the
//! server; [`Layout::ServerBehindNat`] swaps them: the viewer is on the public segment and the
//! server at 10.77.0.2 behind the router, reachable only through ports the router forwards
//! from its own public address 203.0.113.1.
//!
//! Programs run in a namespace through [`Netns::command`] (`ip netns exec`); the test's own
//! threads reach into one with [`Netns::run`] (`setns(2)` on a thread of its own, as
//! namespaces are per thread). [`Netns::browser`] starts ChromeDriver, and so Chromium, in a
//! namespace and drives it from the test through a loopback [`Forward`].

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::ChildGuard;
use crate::programs::require;
use crate::webdriver::{Browser, Launch};
use crate::Error;

/// The router's address on the public segment (and the address it forwards ports from with
/// [`Layout::ServerBehindNat`]).
pub const ROUTER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The server's address on the public segment (all layouts but [`Layout::ServerBehindNat`]).
pub const SERVER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The TURN server's host, on the public segment.
pub const TURN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
/// The viewer's address on the public segment ([`Layout::SameLan`],
/// [`Layout::ServerBehindNat`]).
pub const VIEWER_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 30);
/// The viewer's address behind the router's NAT ([`Layout::ViewerBehindNat`]).
pub const VIEWER_PRIVATE: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
/// The server's address behind the router's NAT ([`Layout::ServerBehindNat`]).
pub const SERVER_PRIVATE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// The port ChromeDriver listens on inside the viewer's namespace (its own loopback).
const DRIVER_PORT: u16 = 9515;

/// Whether this process can make network namespaces: root, `ip` and `iptables` at hand.
/// `Err` says why not.
pub fn available() -> Result<(), Error> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::new("not root: network namespaces need root"));
    }
    for (program, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
        if crate::programs::find(program).is_none()
            && !PathBuf::from("/usr/sbin").join(program).is_file()
        {
            return Err(Error::new(format!(
                "{program} is missing (Debian's {package}; scripts/deps.sh test installs it)"
            )));
        }
    }
    Ok(())
}

/// Runs `command`; `Err` with its stderr if it fails.
fn run(command: &mut Command) -> Result<(), Error> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(format!("cannot run {command:?}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A network namespace of the test's own (`ip netns add`), deleted on drop with its
/// interfaces and iptables rules. Its processes must have ended by then.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// A new namespace named after this process, a counter and `role`, with its loopback up.
    pub fn new(role: &str) -> Result<Netns, Error> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rtcgear-{}-{}-{role}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Its name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `program` to be run inside the namespace (through `ip netns exec`, which execs it: the
    /// child's id is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `ip ARGS` in the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<(), Error> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// `iptables RULE` in the namespace, the rule's words split at white space.
    pub fn iptables(&self, rule: &str) -> Result<(), Error> {
        run(self.command("iptables").args(rule.split_whitespace()))
    }

    /// `sysctl -w SETTING` in the namespace.
    pub fn sysctl(&self, setting: &str) -> Result<(), Error> {
        run(self.command("sysctl").args(["-q", "-w", setting]))
    }

    /// Runs `f` on a thread of its own that has entered the namespace, and returns what it
    /// returns. Sockets made there stay in the namespace wherever they are used afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let path = self.path();
        thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&path)?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Whether a TCP connection to `addr` from inside the namespace succeeds within `limit`.
    pub fn connects(&self, addr: SocketAddr, limit: Duration) -> bool {
        self.run(|| TcpStream::connect_timeout(&addr, limit).is_ok())
            .unwrap_or(false)
    }

    /// Waits up to `limit` for `addr` to accept TCP connections from inside the namespace.
    pub fn wait_for_tcp(&self, addr: SocketAddr, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        while !self.connects(addr, Duration::from_secs(1)) {
            if Instant::now() > deadline {
                return Err(Error::new(format!(
                    "nothing answered on {addr} in {} within {limit:?}",
                    self.name
                )));
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Starts ChromeDriver inside the namespace and a headless Chromium session under it
    /// (Chromium's own network is the namespace's), driven from the test through a
    /// [`Forward`] from loopback outside.
    ///
    /// # Panics
    ///
    /// If ChromeDriver or Chromium is not installed.
    pub fn browser(&self) -> Result<NsBrowser, Error> {
        let chromedriver = require("chromedriver", "chromium-driver");
        let child = self
            .command(chromedriver)
            .arg(format!("--port={DRIVER_PORT}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::new(format!("cannot start chromedriver in {}: {e}", self.name)))?;
        let driver = ChildGuard::new(child);
        let forward = Forward::start(self, SocketAddr::from((Ipv4Addr::LOCALHOST, DRIVER_PORT)))
            .map_err(|e| Error::new(format!("cannot forward to chromedriver: {e}")))?;
        let base = format!("http://{}", forward.addr());
        let browser = Browser::on_driver(driver, base, Launch::from_path())?;
        Ok(NsBrowser {
            browser,
            _forward: forward,
        })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("(could not remove network namespace {}: {e})", self.name);
        }
    }
}

/// Moves the calling thread into the network namespace mounted at `path`.
fn enter(path: &std::path::Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: a valid descriptor of a namespace file; setns changes only this thread's
    // network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A [`Browser`] whose ChromeDriver and Chromium run in a network namespace, with the
/// forwarder that reaches it; see [`Netns::browser`].
#[derive(Debug)]
pub struct NsBrowser {
    // Dropped first: the session is ended through the forwarder.
    browser: Browser,
    _forward: Forward,
}

impl Deref for NsBrowser {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        &self.browser
    }
}

/// A TCP forwarder from a free loopback port outside to an address inside a namespace: each
/// connection accepted outside is connected from a thread that entered the namespace, and
/// bytes are copied both ways until either side closes. Stops accepting on drop.
#[derive(Debug)]
pub struct Forward {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Forward {
    /// Forwards connections to `target` in `ns`.
    pub fn start(ns: &Netns, target: SocketAddr) -> io::Result<Forward> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let path = ns.path();
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let path = path.clone();
                thread::spawn(move || {
                    let inside = enter(&path)
                        .and_then(|()| TcpStream::connect_timeout(&target, Duration::from_secs(5)));
                    if let Ok(inside) = inside {
                        pipe(client, inside);
                    }
                });
            }
        });
        Ok(Forward {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The loopback address to connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Copies bytes between `a` and `b` both ways until both directions have ended.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(mut a_in), Ok(mut b_out)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut a_in, &mut b_out);
        let _ = b_out.shutdown(Shutdown::Write);
    });
    let (mut b_in, mut a_out) = (b, a);
    let _ = io::copy(&mut b_in, &mut a_out);
    let _ = a_out.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

/// How the viewer's NAT maps its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Linux's MASQUERADE: a source port keeps its mapping whoever it sends to (a port
    /// restricted cone NAT, endpoint-independent mapping).
    Cone,
    /// MASQUERADE `--random-fully`: a random port for every new flow, so each destination
    /// sees the viewer from another port (a symmetric NAT).
    Symmetric,
}

/// Where the server and the viewer are; coturn's host is always on the public segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// The viewer on the public segment next to the server, no router between them.
    SameLan,
    /// The viewer behind the router's NAT.
    ViewerBehindNat(Nat),
    /// The server behind the router's NAT, with these TCP and UDP ports of the router's
    /// public address forwarded to it (DNAT); nothing else reaches the server from outside.
    ServerBehindNat {
        /// TCP ports forwarded.
        tcp: Vec<u16>,
        /// UDP ports forwarded.
        udp: Vec<u16>,
    },
}

/// The four namespaces of a test's network, removed on drop (see the module's drawing).
#[derive(Debug)]
pub struct Topology {
    /// The server's host.
    pub server: Netns,
    /// The viewer's host.
    pub viewer: Netns,
    /// coturn's host.
    pub turn: Netns,
    /// The router with the public segment's bridge.
    pub router: Netns,
    layout: Layout,
}

/// Router-side interface names.
const BRIDGE: &str = "pub0";
const TO_VIEWER: &str = "r-viewer";
const TO_SERVER: &str = "r-server";
const TO_TURN: &str = "r-turn";

impl Topology {
    /// Builds the network of `layout`. `Err` says why it cannot (not root, no `ip`, a
    /// command that failed), for the test to print and skip.
    pub fn new(layout: Layout) -> Result<Topology, Error> {
        available()?;
        let router = Netns::new("router")?;
        let server = Netns::new("server")?;
        let viewer = Netns::new("viewer")?;
        let turn = Netns::new("turn")?;
        router.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        router.ip(&["addr", "add", &format!("{ROUTER_PUBLIC}/24"), "dev", BRIDGE])?;
        router.ip(&["link", "set", BRIDGE, "up"])?;
        router.sysctl("net.ipv4.ip_forward=1")?;
        let public = |ns: &Netns, side: &str, addr: Ipv4Addr| {
            link(&router, side, ns, addr, 24, ROUTER_PUBLIC)?;
            router.ip(&["link", "set", side, "master", BRIDGE])
        };
        public(&turn, TO_TURN, TURN)?;
        match &layout {
            Layout::SameLan => {
                public(&server, TO_SERVER, SERVER_PUBLIC)?;
                public(&viewer, TO_VIEWER, VIEWER_PUBLIC)?;
            }
            Layout::ViewerBehindNat(nat) => {
                public(&server, TO_SERVER, SERVER_PUBLIC)?;
                let gateway = Ipv4Addr::new(192, 168, 77, 1);
                link(&router, TO_VIEWER, &viewer, VIEWER_PRIVATE, 24, gateway)?;
                router.ip(&["addr", "add", &format!("{gateway}/24"), "dev", TO_VIEWER])?;
                let random = if *nat == Nat::Symmetric {
                    " --random-fully"
                } else {
                    ""
                };
                router.iptables(&format!(
                    "-t nat -A POSTROUTING -s 192.168.77.0/24 -o {BRIDGE} -j MASQUERADE{random}"
                ))?;
            }
            Layout::ServerBehindNat { tcp, udp } => {
                public(&viewer, TO_VIEWER, VIEWER_PUBLIC)?;
                let gateway = Ipv4Addr::new(10, 77, 0, 1);
                link(&router, TO_SERVER, &server, SERVER_PRIVATE, 24, gateway)?;
                router.ip(&["addr", "add", &format!("{gateway}/24"), "dev", TO_SERVER])?;
                for (protocol, ports) in [("tcp", tcp), ("udp", udp)] {
                    for port in ports {
                        router.iptables(&format!(
                            "-t nat -A PREROUTING -d {ROUTER_PUBLIC} -p {protocol} --dport {port} \
                             -j DNAT --to-destination {SERVER_PRIVATE}"
                        ))?;
                    }
                }
                router.iptables(&format!(
                    "-t nat -A POSTROUTING -s 10.77.0.0/24 -o {BRIDGE} -j MASQUERADE"
                ))?;
                // Only the forwarded ports (and what the server started) reach the server.
                router.iptables(&format!(
                    "-A FORWARD -o {TO_SERVER} -m conntrack --ctstate ESTABLISHED,RELATED,DNAT \
                     -j ACCEPT"
                ))?;
                router.iptables(&format!("-A FORWARD -o {TO_SERVER} -j DROP"))?;
            }
        }
        Ok(Topology {
            server,
            viewer,
            turn,
            router,
            layout,
        })
    }

    /// The layout it was built with.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The server's address as the viewer reaches it.
    pub fn server_addr(&self) -> Ipv4Addr {
        match self.layout {
            Layout::ServerBehindNat { .. } => ROUTER_PUBLIC,
            _ => SERVER_PUBLIC,
        }
    }

    /// The router drops `protocol` (`udp`, `tcp`) between the NATed viewer and `peer` (every
    /// address if `None`), both ways. Only for [`Layout::ViewerBehindNat`]: elsewhere the
    /// viewer's traffic is bridged, not routed.
    pub fn cut(&self, protocol: &str, peer: Option<Ipv4Addr>) -> Result<(), Error> {
        if !matches!(self.layout, Layout::ViewerBehindNat(_)) {
            return Err(Error::new("only a viewer behind the NAT can be cut off"));
        }
        let peer = |side: &str| peer.map_or(String::new(), |addr| format!("{side} {addr}"));
        for (direction, side) in [("-i", "-d"), ("-o", "-s")] {
            self.router.iptables(&format!(
                "-I FORWARD {direction} {TO_VIEWER} -p {protocol} {} -j DROP",
                peer(side)
            ))?;
        }
        Ok(())
    }
}

/// A veth pair: `side` in the router, `eth0` in `ns` with `addr/prefix`, both up, and `ns`'s
/// default route through `gateway`.
fn link(
    router: &Netns,
    side: &str,
    ns: &Netns,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), Error> {
    router.ip(&[
        "link",
        "add",
        side,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns.name(),
    ])?;
    router.ip(&["link", "set", side, "up"])?;
    ns.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", "eth0"])?;
    ns.ip(&["link", "set", "eth0", "up"])?;
    ns.ip(&["route", "add", "default", "via", &gateway.to_string()])
}
