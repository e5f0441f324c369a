//! Receive-only str0m viewers on real UDP sockets, many a worker thread.
//!
//! The main thread makes each viewer's offer and does the WHEP exchange; the viewer (its `Rtc`
//! and its socket) then moves to a worker, which owns it until the end. A worker waits in
//! `poll(2)` on all its sockets with the nearest str0m deadline as the time limit. Most viewers
//! run str0m in RTP mode and only count packets (sequence numbers, marker bits); the sampled
//! ones get depacketized access units, which go to a decoder.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

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

struct Viewer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    timeout: Instant,
    /// Where the sampled viewer's access units go (Annex B); `None` for counted-only viewers.
    decoder: Option<SyncSender<Vec<u8>>>,
    counters: Counters,
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
    next: usize,
    agent: ureq::Agent,
    pub whep_url: String,
    /// Viewers whose offer was refused or failed, with the reason.
    pub refused: Vec<String>,
    /// Each viewer's worker and WHEP session URL, for [`Load::remove_viewer`].
    sessions: std::collections::HashMap<usize, (usize, String)>,
}

/// Four bytes of an access unit delimiter; appended to each access unit so that a decoder
/// reading the stream sees the end of a picture as soon as its last byte arrives.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

impl Load {
    pub fn new(threads: usize, whep_url: String, limit: Duration) -> Load {
        let stop_at = Instant::now() + limit;
        let workers = (0..threads.max(1))
            .map(|n| {
                let (tx, rx) = mpsc::channel();
                let handle = std::thread::Builder::new()
                    .name(format!("viewers-{n}"))
                    .spawn(move || worker(rx, stop_at))
                    // A thread that cannot start leaves nothing to measure.
                    .expect("spawn a worker thread");
                (tx, handle)
            })
            .collect();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Load {
            workers,
            next: 0,
            agent,
            whep_url,
            refused: Vec::new(),
            sessions: std::collections::HashMap::new(),
        }
    }

    /// Offers one viewer to the server and hands it to a worker. `decoder`, when given,
    /// receives every access unit. Returns the time of the offer.
    pub fn add_viewer(
        &mut self,
        id: usize,
        decoder: Option<SyncSender<Vec<u8>>>,
    ) -> Result<Instant> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("bind a UDP socket")?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let offered_at = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(decoder.is_none())
            .build(offered_at);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut change = rtc.sdp_api();
        change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let Some((offer, pending)) = change.apply() else {
            bail!("str0m made no offer");
        };
        let request = ureq::http::Request::builder()
            .method("POST")
            .uri(&self.whep_url)
            .header("content-type", "application/sdp")
            .body(offer.to_sdp_string().into_bytes())?;
        let mut response = match self.agent.run(request) {
            Ok(response) => response,
            Err(e) => {
                self.refused.push(format!("viewer {id}: {e}"));
                bail!("POST /whep: {e}");
            }
        };
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        if status != 201 {
            self.refused.push(format!("viewer {id}: {status}"));
            bail!("POST /whep answered {status}: {body}");
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let answer = SdpAnswer::from_sdp_string(&body).context("the answer parses")?;
        rtc.sdp_api().accept_answer(pending, answer)?;
        let viewer = Viewer {
            rtc,
            socket,
            local,
            timeout: offered_at,
            decoder,
            counters: Counters {
                id,
                offered_at: Some(offered_at),
                ..Counters::default()
            },
        };
        let worker = self.next % self.workers.len();
        self.next += 1;
        self.workers[worker]
            .0
            .send(Command::Add(Box::new(viewer)))
            .map_err(|_| anyhow::anyhow!("a worker thread has stopped"))?;
        self.sessions.insert(id, (worker, location));
        Ok(offered_at)
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
            .map_err(|_| anyhow::anyhow!("a worker thread has stopped"))?;
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

/// One worker: polls its sockets and runs its viewers until told to stop or `stop_at`.
fn worker(commands: Receiver<Command>, stop_at: Instant) {
    let mut viewers: Vec<Viewer> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut buf = vec![0u8; 2048];
    while Instant::now() < stop_at {
        loop {
            match commands.try_recv() {
                Ok(Command::Add(viewer)) => {
                    let mut viewer = *viewer;
                    drain(&mut viewer, Instant::now());
                    fds.push(libc::pollfd {
                        fd: viewer.socket.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    viewers.push(viewer);
                }
                Ok(Command::Remove(id)) => {
                    if let Some(index) = viewers.iter().position(|v| v.counters.id == id) {
                        viewers.swap_remove(index);
                        fds.swap_remove(index);
                    }
                }
                Ok(Command::Snapshot(reply)) => {
                    let _ = reply.send(viewers.iter().map(|v| v.counters.clone()).collect());
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => break,
            }
        }
        // Wake up for the nearest str0m deadline, and at least every 5 ms for commands.
        let now = Instant::now();
        let next = viewers
            .iter()
            .filter(|v| !v.counters.dead)
            .map(|v| v.timeout)
            .min()
            .unwrap_or(now + Duration::from_millis(5));
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(5));
        // Round up so that a deadline 0.3 ms away does not spin.
        let wait_ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        for fd in &mut fds {
            fd.revents = 0;
        }
        // SAFETY: `fds` is a live, correctly sized array of pollfd for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms) };
        let now = Instant::now();
        if ready > 0 {
            for (viewer, fd) in viewers.iter_mut().zip(&fds) {
                if fd.revents & libc::POLLIN != 0 {
                    receive(viewer, &mut buf, now);
                }
            }
        }
        for viewer in &mut viewers {
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

/// Reads what is waiting on the viewer's socket (at most 256 datagrams, so one busy viewer
/// cannot starve the others) and feeds it to str0m.
fn receive(viewer: &mut Viewer, buf: &mut [u8], now: Instant) {
    for _ in 0..256 {
        let (len, source) = match viewer.socket.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => return,
        };
        if viewer.counters.dead {
            continue;
        }
        // Datagrams str0m cannot classify are not ours to count.
        let Ok(receive) = Receive::new(Protocol::Udp, source, viewer.local, &buf[..len]) else {
            continue;
        };
        let input = Input::Receive(now, receive);
        if viewer.rtc.handle_input(input).is_err() {
            viewer.counters.dead = true;
            return;
        }
        drain(viewer, now);
    }
}

/// Runs str0m's output until its next deadline: sends datagrams, counts media.
fn drain(viewer: &mut Viewer, now: Instant) {
    // str0m ends each drain with a timeout; the bound only guards against a bug.
    for _ in 0..100_000 {
        match viewer.rtc.poll_output() {
            Ok(Output::Transmit(transmit)) => {
                let _ = viewer
                    .socket
                    .send_to(&transmit.contents, transmit.destination);
            }
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
                    // Access units before the first IDR cannot be decoded: ffmpeg would drop
                    // them, and then its pictures would no longer pair with what was written.
                    if let Some(decoder) =
                        viewer.decoder.as_ref().filter(|_| viewer.counters.idr_seen)
                    {
                        let mut au = Vec::with_capacity(data.data.len() + AUD.len());
                        au.extend_from_slice(&data.data);
                        au.extend_from_slice(&AUD);
                        // A decoder that falls behind loses frames rather than stalling us.
                        let _ = decoder.try_send(au);
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
}
