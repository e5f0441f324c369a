//! Receive-only str0m viewers on real UDP sockets (or, with [`Transport::Tcp`], ICE-TCP
//! connections to the server's passive TCP candidate), many a worker thread.
//!
//! Each viewer is first prepared (its socket, `Rtc`, DTLS certificate and SDP offer), then a pool
//! of threads does the WHEP exchanges, as fast as it can or on a schedule (a join storm: offer
//! `k` of `n` at `k/n` of a second), so that many offers are in flight at once as from many
//! browsers. An answered viewer (its `Rtc` and its socket) then moves to a worker, which owns it
//! until the end. A worker waits in `epoll(7)` on its sockets with the nearest str0m deadline as
//! the time limit, and reads each ready socket with `recvmmsg(2)`, a batch of datagrams a system
//! call. Most viewers run str0m in RTP mode and only count packets (sequence numbers, marker
//! bits); the sampled ones get depacketized access units, which go to a decoder.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::decode::Unit;

/// What is counted for one viewer. Workers hand out copies on request.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub id: usize,
    /// RTP packets received (for decoded viewers: packets of complete access units).
    pub packets: u64,
    /// Frames completed: marker bits, or access units for decoded viewers.
    pub frames: u64,
    /// Lowest and highest extended sequence number seen.
    pub first_seq: Option<u64>,
    pub max_seq: u64,
    pub offered_at: Option<Instant>,
    pub connected_at: Option<Instant>,
    /// The end of the first frame a decoder can start on: the first marker bit at or after an
    /// IDR, so what a player would show first.
    pub first_frame_at: Option<Instant>,
    /// An IDR has been seen; frames before it cannot be decoded.
    pub idr_seen: bool,
    /// str0m gave up on the session (error, ICE failure, close).
    pub dead: bool,
}

impl Counters {
    /// Packets the sender sent in the sequence range seen so far.
    pub fn expected(&self) -> u64 {
        self.first_seq.map_or(0, |first| self.max_seq + 1 - first)
    }

    fn count_range(&mut self, first: u64, last: u64, now: Instant) {
        if self.first_seq.is_none() {
            self.first_seq = Some(first);
        }
        if self.idr_seen {
            self.first_frame_at.get_or_insert(now);
        }
        self.max_seq = self.max_seq.max(last);
        self.packets += last.saturating_sub(first) + 1;
        self.frames += 1;
    }
}

/// How a bench viewer reaches the server's media.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// UDP, as browsers do when they can.
    #[default]
    Udp,
    /// ICE-TCP to the server's passive TCP candidate (RFC 4571 framing), as a browser whose
    /// UDP is blocked does.
    Tcp,
}

/// A viewer's way to the server.
enum Link {
    Udp(UdpSocket),
    /// The ICE-TCP connection, and bytes read that are not a whole frame yet.
    Tcp {
        stream: TcpStream,
        server: SocketAddr,
        incoming: Vec<u8>,
    },
}

impl Link {
    fn fd(&self) -> libc::c_int {
        match self {
            Link::Udp(socket) => socket.as_raw_fd(),
            Link::Tcp { stream, .. } => stream.as_raw_fd(),
        }
    }
}

/// The address a TCP viewer's candidate names: browsers announce active TCP candidates with
/// the discard port, as the real port is only known once connected.
const TCP_ACTIVE: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 9);

struct Viewer {
    rtc: Rtc,
    link: Link,
    local: SocketAddr,
    timeout: Instant,
    /// Where the sampled viewer's access units go; `None` for counted-only viewers.
    decoder: Option<SyncSender<Unit>>,
    counters: Counters,
}

/// A viewer whose `Rtc`, socket and offer are made (DTLS certificate included), ready to be
/// sent: a browser has all this before it posts its offer.
pub struct Prepared {
    id: usize,
    rtc: Rtc,
    /// The UDP socket; `None` for a TCP viewer, which connects once the answer is in.
    socket: Option<UdpSocket>,
    local: SocketAddr,
    offer: String,
    pending: SdpPendingOffer,
    decoder: Option<SyncSender<Unit>>,
}

/// Makes viewer `id`'s offer. `decoder`, when given, receives every access unit.
pub fn prepare(id: usize, decoder: Option<SyncSender<Unit>>) -> Result<Prepared> {
    prepare_over(id, decoder, Transport::Udp)
}

/// [`prepare`] for a viewer that reaches the server over `transport`.
pub fn prepare_over(
    id: usize,
    decoder: Option<SyncSender<Unit>>,
    transport: Transport,
) -> Result<Prepared> {
    let mut rtc = Rtc::builder()
        .set_rtp_mode(decoder.is_none())
        .build(Instant::now());
    let (socket, local) = match transport {
        Transport::Udp => {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a UDP socket")?;
            socket.set_nonblocking(true)?;
            set_receive_buffer(&socket, RECEIVE_BUFFER);
            let local = socket.local_addr()?;
            rtc.add_local_candidate(Candidate::host(local, "udp")?);
            (Some(socket), local)
        }
        Transport::Tcp => {
            let candidate = Candidate::builder()
                .tcp()
                .host(TCP_ACTIVE)
                .tcptype(TcpType::Active)
                .build()?;
            rtc.add_local_candidate(candidate);
            (None, TCP_ACTIVE)
        }
    };
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let Some((offer, pending)) = change.apply() else {
        bail!("str0m made no offer");
    };
    Ok(Prepared {
        id,
        rtc,
        socket,
        local,
        offer: offer.to_sdp_string(),
        pending,
        decoder,
    })
}

/// Each viewer socket's receive buffer: room for a 720p keyframe's burst while its worker is
/// busy with other viewers, so that the load client does not drop what the server sent (the
/// kernel caps it at `net.core.rmem_max`; the run reports the machine's UDP receive-buffer
/// drops over its window).
const RECEIVE_BUFFER: libc::c_int = 1 << 20;

fn set_receive_buffer(socket: &UdpSocket, bytes: libc::c_int) {
    // SAFETY: the descriptor is open and the option value is a c_int of the size given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        eprintln!("SO_RCVBUF: {}", std::io::Error::last_os_error());
    }
}

/// How a batch of prepared viewers makes its offers.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Offers in flight at once at most (threads of the pool).
    pub concurrency: usize,
    /// Offer `k` of `n` goes out `spread * k / n` after the start; `None`: each as soon as a
    /// thread of the pool is free.
    pub spread: Option<Duration>,
}

/// An offer's result, with the session's location when it was answered.
type Outcome = (Result<Offered>, String);

/// One viewer's offer that the server answered.
#[derive(Clone, Copy, Debug)]
pub struct Offered {
    pub id: usize,
    /// When the POST went out.
    pub at: Instant,
    /// When the answer was in.
    pub answered: Instant,
}

/// An offer the server refused with 503 Service Unavailable: it sheds load past its capacity.
/// Not a failure of the bench; find it with `error.downcast_ref::<Refused>()`.
#[derive(Debug)]
pub struct Refused {
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "POST /whep answered 503")?;
        if let Some(retry) = &self.retry_after {
            write!(f, " (Retry-After: {retry})")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for Refused {}

/// Whether `error` is an offer the server refused with 503.
pub fn is_refused(error: &anyhow::Error) -> bool {
    error.downcast_ref::<Refused>().is_some()
}

enum Command {
    Add(Box<Viewer>),
    /// The viewer leaves: its session and socket are dropped, as a closed tab's would be.
    Remove(usize),
    Snapshot(Sender<Vec<Counters>>),
    Stop,
}

/// The worker threads and the viewers they run.
pub struct Load {
    workers: Vec<(Sender<Command>, JoinHandle<()>)>,
    agent: ureq::Agent,
    pub whep_url: String,
    /// Viewers whose offer was refused or failed, with the reason.
    pub refused: Vec<String>,
    /// Each viewer's worker and WHEP session URL, for [`Load::remove_viewer`].
    sessions: HashMap<usize, (usize, String)>,
}

impl Load {
    pub fn new(threads: usize, whep_url: String, limit: Duration) -> Load {
        let stop_at = Instant::now() + limit;
        let workers = (0..threads.max(1))
            .map(|n| {
                let (tx, rx) = mpsc::channel();
                let handle = std::thread::Builder::new()
                    .name(format!("viewers-{n}"))
                    .spawn(move || worker(&rx, stop_at))
                    // A thread that cannot start leaves nothing to measure.
                    .expect("spawn a worker thread");
                (tx, handle)
            })
            .collect();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .build()
            .into();
        Load {
            workers,
            agent,
            whep_url,
            refused: Vec::new(),
            sessions: HashMap::new(),
        }
    }

    /// Offers one viewer to the server and hands it to a worker. `decoder`, when given,
    /// receives every access unit. Returns the time of the offer.
    pub fn add_viewer(&mut self, id: usize, decoder: Option<SyncSender<Unit>>) -> Result<Instant> {
        let prepared = prepare(id, decoder)?;
        let schedule = Schedule {
            concurrency: 1,
            spread: None,
        };
        self.add_viewers(vec![prepared], schedule, false)
            .pop()
            .context("one offer made")?
            .map(|offered| offered.at)
    }

    /// Offers the prepared viewers from a pool of threads, as `schedule` says, and hands each
    /// answered one to a worker (by id, so a viewer's worker is known). With `progress`, says on
    /// stderr how far it is every second. Returns one result per viewer, in their order.
    pub fn add_viewers(
        &mut self,
        prepared: Vec<Prepared>,
        schedule: Schedule,
        progress: bool,
    ) -> Vec<Result<Offered>> {
        let n = prepared.len();
        let ids: Vec<usize> = prepared.iter().map(|p| p.id).collect();
        let queue: Mutex<VecDeque<(usize, Prepared)>> =
            Mutex::new(prepared.into_iter().enumerate().collect());
        let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..n).map(|_| None).collect());
        let done = AtomicUsize::new(0);
        let senders: Vec<Sender<Command>> = self.workers.iter().map(|w| w.0.clone()).collect();
        // A little lead, so that every thread of the pool is up before the first offer.
        let start = Instant::now() + Duration::from_millis(20);
        let (agent, url) = (&self.agent, self.whep_url.as_str());
        std::thread::scope(|scope| {
            for t in 0..schedule.concurrency.clamp(1, n.max(1)) {
                let (queue, results, done, senders) = (&queue, &results, &done, &senders);
                let spawned = std::thread::Builder::new()
                    .name(format!("offers-{t}"))
                    .spawn_scoped(scope, move || loop {
                        // A poisoned lock means another offer thread panicked: stop.
                        let Some((k, viewer)) = queue.lock().ok().and_then(|mut q| q.pop_front())
                        else {
                            return;
                        };
                        if let Some(spread) = schedule.spread {
                            let at = start + spread.mul_f64(k as f64 / n as f64);
                            std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        }
                        let id = viewer.id;
                        let outcome = offer(agent, url, viewer).and_then(|(v, location, o)| {
                            senders[id % senders.len()]
                                .send(Command::Add(Box::new(v)))
                                .map_err(|_| anyhow!("a worker thread has stopped"))?;
                            Ok((o, location))
                        });
                        let entry = match outcome {
                            Ok((offered, location)) => (Ok(offered), location),
                            Err(e) => (Err(e), String::new()),
                        };
                        if let Ok(mut results) = results.lock() {
                            results[k] = Some(entry);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                if let Err(e) = spawned {
                    eprintln!("cannot start an offer thread: {e}");
                    break;
                }
            }
            if progress && n > 1 {
                let mut next = Instant::now() + Duration::from_secs(1);
                // Ends once every offer is done; the threads' HTTP timeouts bound that.
                while done.load(Ordering::Relaxed) < n {
                    std::thread::sleep(Duration::from_millis(20));
                    if Instant::now() >= next {
                        next += Duration::from_secs(1);
                        eprintln!("  offers: {} of {n} answered", done.load(Ordering::Relaxed));
                    }
                }
            }
        });
        let results = results.into_inner().unwrap_or_default();
        let mut out = Vec::with_capacity(n);
        for (id, entry) in ids.into_iter().zip(results) {
            let (result, location) =
                entry.unwrap_or_else(|| (Err(anyhow!("no offer thread ran it")), String::new()));
            match &result {
                Ok(_) => {
                    self.sessions
                        .insert(id, (id % self.workers.len(), location));
                }
                Err(e) => self.refused.push(format!("viewer {id}: {e:#}")),
            }
            out.push(result);
        }
        out
    }

    /// Viewer `id` leaves: with `delete`, it ends its session with WHEP's `DELETE` first (a
    /// player's stop button); without, it just goes silent (a closed laptop), and the server
    /// times the session out. Returns the DELETE's status.
    pub fn remove_viewer(&mut self, id: usize, delete: bool) -> Result<Option<u16>> {
        let Some((worker, location)) = self.sessions.remove(&id) else {
            bail!("no viewer {id}");
        };
        let mut status = None;
        if delete {
            let base = self.whep_url.split("/whep").next().unwrap_or("");
            let origin = base
                .find("://")
                .and_then(|scheme| {
                    base[scheme + 3..]
                        .find('/')
                        .map(|p| &base[..scheme + 3 + p])
                })
                .unwrap_or(base);
            let request = ureq::http::Request::builder()
                .method("DELETE")
                .uri(format!("{origin}{location}"))
                .body(())?;
            let response = self.agent.run(request)?;
            status = Some(response.status().as_u16());
        }
        self.workers[worker]
            .0
            .send(Command::Remove(id))
            .map_err(|_| anyhow!("a worker thread has stopped"))?;
        Ok(status)
    }

    /// Every viewer's counters, sorted by id.
    pub fn snapshot(&self) -> Vec<Counters> {
        let mut all = Vec::new();
        for (tx, _) in &self.workers {
            let (reply, answer) = mpsc::channel();
            if tx.send(Command::Snapshot(reply)).is_ok() {
                if let Ok(counters) = answer.recv_timeout(Duration::from_secs(5)) {
                    all.extend(counters);
                }
            }
        }
        all.sort_by_key(|c| c.id);
        all
    }

    /// Stops the workers; their viewers' sessions end with them (the server times them out).
    pub fn stop(self) {
        for (tx, _) in &self.workers {
            let _ = tx.send(Command::Stop);
        }
        for (_, handle) in self.workers {
            let _ = handle.join();
        }
    }
}

/// Posts a prepared viewer's offer to WHEP and applies the answer. Returns the viewer, its
/// session's location and the offer's times.
fn offer(agent: &ureq::Agent, url: &str, prepared: Prepared) -> Result<(Viewer, String, Offered)> {
    let Prepared {
        id,
        mut rtc,
        socket,
        local,
        offer,
        pending,
        decoder,
    } = prepared;
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/sdp")
        .body(offer.into_bytes())?;
    let at = Instant::now();
    let mut response = agent.run(request).context("POST /whep")?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let answered = Instant::now();
    if status == 503 {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        return Err(Refused {
            retry_after,
            reason: body.trim().to_string(),
        }
        .into());
    }
    if status != 201 {
        bail!("POST /whep answered {status}: {}", body.trim());
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let link = match socket {
        Some(socket) => Link::Udp(socket),
        None => {
            let server = tcp_candidate(&body).context("the answer has no TCP candidate")?;
            let stream = TcpStream::connect(server)
                .with_context(|| format!("connecting to the ICE-TCP candidate {server}"))?;
            stream.set_nodelay(true)?;
            Link::Tcp {
                stream,
                server,
                incoming: Vec::new(),
            }
        }
    };
    let answer = SdpAnswer::from_sdp_string(&body).context("the answer parses")?;
    rtc.sdp_api().accept_answer(pending, answer)?;
    let viewer = Viewer {
        rtc,
        link,
        local,
        timeout: answered,
        decoder,
        counters: Counters {
            id,
            offered_at: Some(at),
            ..Counters::default()
        },
    };
    Ok((viewer, location, Offered { id, at, answered }))
}

/// The first loopback passive TCP candidate of an answer.
fn tcp_candidate(answer: &str) -> Option<SocketAddr> {
    answer.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        match fields.as_slice() {
            [_, _, proto, _, ip, port, "typ", "host", "tcptype", "passive", ..]
                if proto.eq_ignore_ascii_case("tcp") && *ip == "127.0.0.1" =>
            {
                Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
            }
            _ => None,
        }
    })
}

/// Datagrams read by one `recvmmsg` call.
const BATCH: usize = 32;
/// Room for one datagram; the server's are at most its MTU (about 1200 bytes).
const DATAGRAM: usize = 2048;

/// One worker's receive buffers for `recvmmsg`.
struct Batch {
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bufs: vec![0; BATCH * DATAGRAM],
            // SAFETY: sockaddr_in, iovec and mmsghdr are plain C structs for which all zero
            // bytes are a valid value (null pointers, zero lengths).
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: vec![unsafe { std::mem::zeroed() }; BATCH],
            msgs: vec![unsafe { std::mem::zeroed() }; BATCH],
        }
    }

    /// Reads up to `BATCH` datagrams from `fd` without blocking; returns how many.
    fn receive(&mut self, fd: libc::c_int) -> usize {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * DATAGRAM..].as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            };
            // SAFETY: as in `new`, all zero bytes are a valid msghdr.
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            header.msg_iov = std::ptr::from_mut(&mut self.iovs[i]);
            header.msg_iovlen = 1;
            self.msgs[i] = libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            };
        }
        // SAFETY: `msgs` holds BATCH headers whose name and iovec pointers point into `addrs`,
        // `iovs` and `bufs`, all alive and unmoved for the duration of the call, with the sizes
        // given.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        usize::try_from(got).unwrap_or(0)
    }

    /// Datagram `i` of the last `receive`: its bytes and sender.
    fn datagram(&self, i: usize) -> (&[u8], SocketAddr) {
        let len = (self.msgs[i].msg_len as usize).min(DATAGRAM);
        let addr = &self.addrs[i];
        let source = SocketAddr::from((
            Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        ));
        (&self.bufs[i * DATAGRAM..i * DATAGRAM + len], source)
    }
}

/// One worker: waits in `epoll` on its viewers' sockets and runs their str0m sessions until
/// told to stop or `stop_at`.
fn worker(commands: &Receiver<Command>, stop_at: Instant) {
    // SAFETY: epoll_create1 takes a flag and returns a new descriptor or -1.
    let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if raw < 0 {
        eprintln!("epoll_create1: {}", std::io::Error::last_os_error());
        return;
    }
    // SAFETY: `raw` is a descriptor we just opened and own; OwnedFd closes it at the end.
    let epoll = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut slots: Vec<Option<Viewer>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut batch = Batch::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while Instant::now() < stop_at {
        loop {
            match commands.try_recv() {
                Ok(Command::Add(viewer)) => {
                    let mut viewer = *viewer;
                    drain(&mut viewer, Instant::now());
                    let slot = free.pop().unwrap_or(slots.len());
                    let mut event = libc::epoll_event {
                        events: libc::EPOLLIN as u32,
                        u64: slot as u64,
                    };
                    // SAFETY: both descriptors are open; `event` is a valid epoll_event.
                    let added = unsafe {
                        libc::epoll_ctl(
                            epoll.as_raw_fd(),
                            libc::EPOLL_CTL_ADD,
                            viewer.link.fd(),
                            &mut event,
                        )
                    };
                    if added < 0 {
                        eprintln!("epoll_ctl: {}", std::io::Error::last_os_error());
                        viewer.counters.dead = true;
                    }
                    if slot == slots.len() {
                        slots.push(Some(viewer));
                    } else {
                        slots[slot] = Some(viewer);
                    }
                }
                Ok(Command::Remove(id)) => {
                    let found = slots
                        .iter()
                        .position(|s| s.as_ref().is_some_and(|v| v.counters.id == id));
                    if let Some(slot) = found {
                        // Closing the socket takes it out of the epoll set.
                        slots[slot] = None;
                        free.push(slot);
                    }
                }
                Ok(Command::Snapshot(reply)) => {
                    let counters = slots.iter().flatten().map(|v| v.counters.clone());
                    let _ = reply.send(counters.collect());
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        // Wake up for the nearest str0m deadline, and at least every 5 ms for commands.
        let now = Instant::now();
        let next = slots
            .iter()
            .flatten()
            .filter(|v| !v.counters.dead)
            .map(|v| v.timeout)
            .min()
            .unwrap_or(now + Duration::from_millis(5));
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(5));
        // Round up so that a deadline 0.3 ms away does not spin.
        let wait_ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: `events` is a live array of `events.len()` epoll_event.
        let ready = unsafe {
            libc::epoll_wait(
                epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                wait_ms,
            )
        };
        let now = Instant::now();
        for event in &events[..usize::try_from(ready).unwrap_or(0)] {
            if let Some(Some(viewer)) = slots.get_mut(event.u64 as usize) {
                receive(viewer, &mut batch, now);
            }
        }
        for viewer in slots.iter_mut().flatten() {
            if !viewer.counters.dead && viewer.timeout <= now {
                if viewer.rtc.handle_input(Input::Timeout(now)).is_err() {
                    viewer.counters.dead = true;
                    continue;
                }
                drain(viewer, now);
            }
        }
    }
}

/// Reads what is waiting on the viewer's socket, a batch of datagrams a system call (at most
/// 8 batches, so one busy viewer cannot starve the others; the rest wakes the next
/// `epoll_wait`), and feeds it to str0m.
fn receive(viewer: &mut Viewer, batch: &mut Batch, now: Instant) {
    if matches!(viewer.link, Link::Tcp { .. }) {
        return receive_tcp(viewer, &mut batch.bufs, now);
    }
    let fd = viewer.link.fd();
    for _ in 0..8 {
        let got = batch.receive(fd);
        for i in 0..got {
            if viewer.counters.dead {
                break;
            }
            let (datagram, source) = batch.datagram(i);
            if !feed(viewer, Protocol::Udp, source, datagram, now) {
                break;
            }
        }
        if got < BATCH {
            return;
        }
    }
}

/// Reads what is waiting on a TCP viewer's connection (at most 8 reads, as `receive` does) and
/// feeds each whole RFC 4571 frame to str0m.
fn receive_tcp(viewer: &mut Viewer, buf: &mut [u8], now: Instant) {
    for _ in 0..8 {
        let Link::Tcp {
            stream,
            server,
            incoming,
        } = &mut viewer.link
        else {
            return;
        };
        let server = *server;
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let got = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        // Nothing more now (EAGAIN), or an error that the next read sees again.
        let Ok(got) = usize::try_from(got) else {
            return;
        };
        if got == 0 {
            viewer.counters.dead = true;
            return;
        }
        incoming.extend_from_slice(&buf[..got]);
        let mut packets = Vec::new();
        let mut at = 0;
        while let Some(header) = incoming.get(at..at + 2) {
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            let Some(packet) = incoming.get(at + 2..at + 2 + len) else {
                break;
            };
            packets.push(packet.to_vec());
            at += 2 + len;
        }
        incoming.drain(..at);
        for packet in packets {
            if !feed(viewer, Protocol::Tcp, server, &packet, now) {
                return;
            }
        }
    }
}

/// Hands one packet from `source` to the viewer's str0m and drains it; `false` once the viewer
/// is dead. Packets str0m cannot classify are not ours to count, and are skipped.
fn feed(
    viewer: &mut Viewer,
    protocol: Protocol,
    source: SocketAddr,
    packet: &[u8],
    now: Instant,
) -> bool {
    let Ok(receive) = Receive::new(protocol, source, viewer.local, packet) else {
        return true;
    };
    if viewer
        .rtc
        .handle_input(Input::Receive(now, receive))
        .is_err()
    {
        viewer.counters.dead = true;
        return false;
    }
    drain(viewer, now);
    true
}

/// Runs str0m's output until its next deadline: sends datagrams, counts media.
fn drain(viewer: &mut Viewer, now: Instant) {
    // str0m ends each drain with a timeout; the bound only guards against a bug.
    for _ in 0..100_000 {
        match viewer.rtc.poll_output() {
            Ok(Output::Transmit(transmit)) => match &mut viewer.link {
                Link::Udp(socket) => {
                    let _ = socket.send_to(&transmit.contents, transmit.destination);
                }
                Link::Tcp { stream, .. } => {
                    // Whole frames only: a blocking write (a few small packets a second, on
                    // loopback).
                    let len = u16::try_from(transmit.contents.len()).unwrap_or(u16::MAX);
                    let mut frame = len.to_be_bytes().to_vec();
                    frame.extend_from_slice(&transmit.contents);
                    if stream.write_all(&frame).is_err() {
                        viewer.counters.dead = true;
                    }
                }
            },
            Ok(Output::Timeout(timeout)) => {
                viewer.timeout = timeout;
                return;
            }
            Ok(Output::Event(event)) => match event {
                Event::Connected => viewer.counters.connected_at = Some(now),
                Event::RtpPacket(packet) => {
                    let seq = *packet.seq_no;
                    let c = &mut viewer.counters;
                    if c.first_seq.is_none() {
                        c.first_seq = Some(seq);
                    }
                    c.max_seq = c.max_seq.max(seq);
                    c.packets += 1;
                    if !c.idr_seen {
                        c.idr_seen = rtp_has_idr(&packet.payload);
                    }
                    if packet.header.marker {
                        c.frames += 1;
                        if c.idr_seen {
                            c.first_frame_at.get_or_insert(now);
                        }
                    }
                }
                Event::MediaData(data) => {
                    let first = **data.seq_range.start();
                    let last = **data.seq_range.end();
                    if !viewer.counters.idr_seen {
                        viewer.counters.idr_seen = annex_b_has_idr(&data.data);
                    }
                    viewer.counters.count_range(first, last, now);
                    // Access units before the first IDR cannot be decoded.
                    if let Some(decoder) =
                        viewer.decoder.as_ref().filter(|_| viewer.counters.idr_seen)
                    {
                        let unit = Unit {
                            arrived: now,
                            data: data.data,
                        };
                        // A decoder that falls behind loses frames rather than stalling us.
                        let _ = decoder.try_send(unit);
                    }
                }
                Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected)
                | Event::Closed => viewer.counters.dead = true,
                _ => {}
            },
            Err(_) => {
                viewer.counters.dead = true;
                return;
            }
        }
    }
}

/// Whether an H.264 RTP payload (RFC 6184) carries the start of an IDR slice: a single NAL
/// unit of type 5, a STAP-A holding one, or the first fragment of an FU-A of one.
fn rtp_has_idr(payload: &[u8]) -> bool {
    match payload.first().map(|b| b & 0x1f) {
        Some(5) => true,
        Some(24) => {
            let mut rest = &payload[1..];
            // Each aggregated unit: a 16-bit size, then the unit. Bounded by the payload.
            while rest.len() > 2 {
                let size = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if rest.get(2).is_some_and(|b| b & 0x1f == 5) {
                    return true;
                }
                rest = rest.get(2 + size..).unwrap_or(&[]);
            }
            false
        }
        Some(28) => payload
            .get(1)
            .is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
        _ => false,
    }
}

/// Whether an Annex B access unit holds an IDR slice.
fn annex_b_has_idr(au: &[u8]) -> bool {
    au.windows(4)
        .any(|w| w[0] == 0 && w[1] == 0 && w[2] == 1 && w[3] & 0x1f == 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idrs_are_found_in_every_packetization() {
        assert!(rtp_has_idr(&[0x65, 0x88]));
        assert!(!rtp_has_idr(&[0x41, 0x9a]));
        // STAP-A of SPS (3 bytes), PPS (2 bytes), IDR (2 bytes).
        let stap = [24, 0, 3, 0x67, 1, 2, 0, 2, 0x68, 1, 0, 2, 0x65, 9];
        assert!(rtp_has_idr(&stap));
        assert!(!rtp_has_idr(&stap[..8]));
        assert!(rtp_has_idr(&[0x7c, 0x85, 1]));
        assert!(!rtp_has_idr(&[0x7c, 0x05, 1]), "not the first fragment");
        assert!(!rtp_has_idr(&[]));
        assert!(annex_b_has_idr(&[0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65, 2]));
        assert!(!annex_b_has_idr(&[0, 0, 0, 1, 0x41, 1]));
    }

    #[test]
    fn recvmmsg_reads_datagrams_in_batches_with_their_senders() {
        let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        receiver.set_nonblocking(true).expect("non-blocking");
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let to = receiver.local_addr().expect("address");
        for i in 0..40u8 {
            sender.send_to(&[i; 3], to).expect("send");
        }
        let mut batch = Batch::new();
        let mut got = Vec::new();
        // Loopback delivers at once, but give a slow machine a few tries; bounded.
        for _ in 0..100 {
            let n = batch.receive(receiver.as_raw_fd());
            assert!(n <= BATCH);
            for i in 0..n {
                let (bytes, source) = batch.datagram(i);
                assert_eq!(source, sender.local_addr().expect("address"));
                got.push(bytes.to_vec());
            }
            if got.len() == 40 {
                break;
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let expected: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 3]).collect();
        assert_eq!(got, expected);
        assert_eq!(
            batch.receive(receiver.as_raw_fd()),
            0,
            "nothing left, no blocking"
        );
    }
}
