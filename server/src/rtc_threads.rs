//! The RTC threads: the viewers spread over `rtc-0`, `rtc-1`, ... ([`ServerConfig::rtc_threads`](crate::ServerConfig::rtc_threads)),
//! each owning its viewers' sessions in one [`Broadcast`](rtcgear_rtc::Broadcast) of every
//! stream (a [`Shard`] of it), and what joins them to the rest of the server:
//!
//! - [`FrameOut`]: each stream thread cuts its access units into RTP payloads once
//!   ([`Packetizer`]) and hands the same payloads to every RTC thread;
//! - [`Router`]: the one UDP reader hands each datagram to the thread that owns its viewer,
//!   by the shard tag in the ICE username of the viewer's STUN requests, and then by the
//!   address they came from (ICE-TCP connections are routed by their first packet in
//!   `ice_tcp.rs`);
//! - [`RtcThreads`]: the HTTP side's handle, which sends each offer to the least-loaded thread
//!   that still takes viewers, and each other command to the thread that owns its viewer;
//! - [`ShardLoad`] and [`Meter`]: how busy each thread is and how late its frames go out;
//!   a thread that falls behind takes no more viewers (`503`) until it keeps up again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use rtcgear_capture::AccessUnit;
use rtcgear_rtc::{Packetized, Packetizer, Shard, ViewerId};

use crate::media::Command;

/// An encoded picture on its way to an RTC thread, cut into RTP payloads.
pub(crate) struct StreamFrame {
    pub(crate) stream: usize,
    pub(crate) frame: Packetized,
    /// When the stream thread handed it over: how long it waits for its RTC thread is part of
    /// how far behind that thread runs.
    pub(crate) sent: Instant,
}

/// Why a picture did not reach every RTC thread.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// Some thread's queue was full: that thread is behind, and its viewers miss the picture
    /// (the stream should restart from a keyframe).
    Full,
    /// The RTC threads are gone: the server is stopping.
    Stopped,
}

/// One stream thread's way to the RTC threads: its own [`Packetizer`] (a stream's VP8 picture
/// IDs count up in the thread that encodes them) and a queue to each thread.
pub(crate) struct FrameOut {
    stream: usize,
    queues: Arc<[Sender<StreamFrame>]>,
    packetizer: Packetizer,
}

impl FrameOut {
    pub(crate) fn new(stream: usize, queues: Arc<[Sender<StreamFrame>]>) -> FrameOut {
        FrameOut {
            stream,
            queues,
            packetizer: Packetizer::default(),
        }
    }

    fn frame(&mut self, unit: &AccessUnit) -> Option<Packetized> {
        let frame = self.packetizer.packetize(unit);
        if frame.is_none() {
            tracing::warn!(codec = %unit.codec, "an access unit of a codec no viewer takes");
        }
        frame
    }

    /// Hands `unit` to every RTC thread without waiting: a full queue loses the picture for
    /// that thread's viewers alone.
    pub(crate) fn try_send(&mut self, unit: &AccessUnit) -> Result<(), NotSent> {
        let Some(frame) = self.frame(unit) else {
            return Ok(());
        };
        let sent = Instant::now();
        let (mut full, mut gone) = (false, 0);
        for queue in self.queues.iter() {
            let copy = StreamFrame {
                stream: self.stream,
                frame: frame.clone(),
                sent,
            };
            match queue.try_send(copy) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => full = true,
                Err(TrySendError::Disconnected(_)) => gone += 1,
            }
        }
        if gone == self.queues.len() {
            Err(NotSent::Stopped)
        } else if full {
            Err(NotSent::Full)
        } else {
            Ok(())
        }
    }

    /// Hands `unit` to every RTC thread, waiting for room in steps of 100 ms until `shutdown`
    /// (passed-through H.264, where a lost picture breaks every one up to the next keyframe).
    pub(crate) fn send(&mut self, unit: &AccessUnit, shutdown: &AtomicBool) -> Result<(), NotSent> {
        let Some(frame) = self.frame(unit) else {
            return Ok(());
        };
        let sent = Instant::now();
        for queue in self.queues.iter() {
            let mut copy = StreamFrame {
                stream: self.stream,
                frame: frame.clone(),
                sent,
            };
            loop {
                match queue.send_timeout(copy, Duration::from_millis(100)) {
                    Ok(()) => break,
                    Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                        if shutdown.load(Ordering::Relaxed) {
                            return Err(NotSent::Stopped);
                        }
                        copy = back;
                    }
                    Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                        return Err(NotSent::Stopped)
                    }
                }
            }
        }
        Ok(())
    }
}

/// How long the UDP reader remembers which thread an address belongs to after its last
/// datagram: longer than ICE's consent interval, so a watching viewer is never forgotten.
const ROUTE_IDLE: Duration = Duration::from_secs(60);
/// The most addresses remembered; past that, new ones are routed by their STUN requests alone
/// (their other datagrams go to the first thread) until old ones expire.
const MAX_ROUTES: usize = 1 << 17;

/// The UDP reader's routing of datagrams to RTC threads (only with more than one).
pub(crate) struct Router {
    count: usize,
    by_addr: HashMap<SocketAddr, (usize, Instant)>,
    swept: Instant,
}

impl Router {
    pub(crate) fn new(count: usize, now: Instant) -> Router {
        Router {
            count: count.max(1),
            by_addr: HashMap::new(),
            swept: now,
        }
    }

    /// The thread for a datagram from `source`: the one its ICE username names, or the one
    /// the address's last STUN request named, or else the first (datagrams for nobody: the
    /// STUN server's answers, strays).
    pub(crate) fn route(&mut self, now: Instant, source: SocketAddr, data: &[u8]) -> usize {
        if self.count == 1 {
            return 0;
        }
        // A username always wins: a NAT may give a new viewer an address an old one had.
        if let Some(shard) = Shard::of_packet(data, self.count) {
            if self.by_addr.len() < MAX_ROUTES || self.by_addr.contains_key(&source) {
                self.by_addr.insert(source, (shard, now));
            }
            self.sweep(now);
            return shard;
        }
        match self.by_addr.get_mut(&source) {
            Some((shard, seen)) => {
                *seen = now;
                *shard
            }
            None => 0,
        }
    }

    fn sweep(&mut self, now: Instant) {
        if now.duration_since(self.swept) < Duration::from_secs(10) {
            return;
        }
        self.swept = now;
        self.by_addr
            .retain(|_, (_, seen)| now.duration_since(*seen) < ROUTE_IDLE);
    }
}

/// What the HTTP side and the RTC threads know of each thread's load.
pub(crate) struct ShardLoad {
    /// Viewers of every stream on the thread, connected or connecting.
    pub(crate) viewers: AtomicUsize,
    /// The most viewers it takes while it is behind; `usize::MAX` while it keeps up.
    pub(crate) capacity: AtomicUsize,
    /// The share of the last second it was busy, in thousandths.
    pub(crate) busy_permille: AtomicUsize,
    /// How long its frames waited in the last second (the median), in microseconds.
    pub(crate) late_us: AtomicUsize,
}

impl ShardLoad {
    /// For `/api/streams`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let capacity = self.capacity.load(Ordering::Relaxed);
        serde_json::json!({
            "viewers": self.viewers.load(Ordering::Relaxed),
            "capacity": (capacity != usize::MAX).then_some(capacity),
            "busy": self.busy_permille.load(Ordering::Relaxed) as f64 / 1000.0,
            "frame_wait_ms": (self.late_us.load(Ordering::Relaxed) as f64 / 100.0).round() / 10.0,
        })
    }
}

impl Default for ShardLoad {
    fn default() -> Self {
        ShardLoad {
            viewers: AtomicUsize::new(0),
            capacity: AtomicUsize::new(usize::MAX),
            busy_permille: AtomicUsize::new(0),
            late_us: AtomicUsize::new(0),
        }
    }
}

/// The HTTP side's handle on the RTC threads.
pub(crate) struct RtcThreads {
    pub(crate) commands: Vec<Sender<Command>>,
    pub(crate) loads: Arc<[ShardLoad]>,
    /// Where the search for the least-loaded thread starts, turning, so that offers at the
    /// same moment spread over threads with equal loads.
    next: AtomicUsize,
}

impl RtcThreads {
    pub(crate) fn new(commands: Vec<Sender<Command>>, loads: Arc<[ShardLoad]>) -> RtcThreads {
        RtcThreads {
            commands,
            loads,
            next: AtomicUsize::new(0),
        }
    }

    /// The thread for a new viewer: the one with the fewest viewers among those under their
    /// capacity, or `None` when every thread is at capacity.
    pub(crate) fn for_offer(&self) -> Option<usize> {
        let count = self.loads.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count.max(1);
        (0..count)
            .map(|k| (start + k) % count)
            .filter_map(|index| {
                let load = &self.loads[index];
                let viewers = load.viewers.load(Ordering::Relaxed);
                (viewers < load.capacity.load(Ordering::Relaxed)).then_some((viewers, index))
            })
            .min_by_key(|&(viewers, _)| viewers)
            .map(|(_, index)| index)
    }

    /// The thread that owns `viewer`.
    pub(crate) fn for_viewer(&self, viewer: ViewerId) -> usize {
        Shard::of_viewer(viewer, self.commands.len())
    }

    /// Viewers on every thread.
    pub(crate) fn viewers(&self) -> usize {
        total_viewers(&self.loads)
    }
}

/// Viewers on every thread, as each last counted them.
pub(crate) fn total_viewers(loads: &[ShardLoad]) -> usize {
    loads
        .iter()
        .map(|load| load.viewers.load(Ordering::Relaxed))
        .sum()
}

/// Frames that waited longer than this for their RTC thread, over most of a second (the
/// median), mean the thread cannot keep up: a frame interval at 30 fps plus some room for
/// a keyframe's longer sends.
const LATE: Duration = Duration::from_millis(40);
/// So busy a share of each second, the thread has no room left for more viewers, even if
/// its frames are not late yet.
const FULL: f64 = 0.95;
/// Seconds behind in a row before a thread stops taking viewers: a moment's burst (a join
/// storm's handshakes, a keyframe) is not a trend.
const BEHIND_WINDOWS: u32 = 2;
/// Seconds of keeping up with room to spare, in a row, before a thread takes viewers again.
const CALM_WINDOWS: u32 = 10;

/// One RTC thread's measure of how far behind it runs, over windows of one second: the share
/// of the time it was busy, and how long its frames waited between their stream thread and
/// the socket. It learns the thread's capacity from the viewers it had when it fell behind,
/// scaled by how late the frames were.
pub(crate) struct Meter {
    window: Instant,
    busy: Duration,
    lags: Vec<Duration>,
    behind: u32,
    calm: u32,
    capacity: Option<usize>,
    /// The last whole window's busy share and median frame wait.
    pub(crate) last: (f64, Duration),
}

/// A change of a thread's capacity, for the log.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// It fell (further) behind: it takes at most `capacity` viewers now.
    Behind {
        capacity: usize,
        late: Duration,
        busy: f64,
    },
    /// It keeps up again: no limit.
    KeepsUp,
}

impl Meter {
    pub(crate) fn new(now: Instant) -> Meter {
        Meter {
            window: now,
            busy: Duration::ZERO,
            lags: Vec::new(),
            behind: 0,
            calm: 0,
            capacity: None,
            last: (0.0, Duration::ZERO),
        }
    }

    /// Time spent working, not waiting for input.
    pub(crate) fn busy(&mut self, spent: Duration) {
        self.busy += spent;
    }

    /// One frame went out to the thread's viewers `lag` after its stream thread sent it.
    pub(crate) fn frame(&mut self, lag: Duration) {
        if self.lags.len() < 4096 {
            self.lags.push(lag);
        }
    }

    /// The capacity learned, if the thread is behind.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    /// Closes the window when a second has passed; `viewers` is how many the thread has now.
    pub(crate) fn tick(&mut self, now: Instant, viewers: usize) -> Option<Verdict> {
        let span = now.duration_since(self.window);
        if span < Duration::from_secs(1) {
            return None;
        }
        let busy = (self.busy.as_secs_f64() / span.as_secs_f64()).min(1.0);
        self.lags.sort_unstable();
        let late = self
            .lags
            .get(self.lags.len() / 2)
            .copied()
            .unwrap_or_default();
        self.window = now;
        self.busy = Duration::ZERO;
        self.lags.clear();
        self.last = (busy, late);

        if late >= LATE || busy >= FULL {
            self.calm = 0;
            self.behind += 1;
            if self.behind < BEHIND_WINDOWS {
                return None;
            }
            // The later the frames, the further below today's viewers the thread's capacity.
            let factor = if late >= LATE {
                (LATE.as_secs_f64() / late.as_secs_f64()).clamp(0.5, 0.9)
            } else {
                0.9
            };
            let learned = (viewers as f64 * factor).round() as usize;
            let capacity = self.capacity.map_or(learned, |c| c.min(learned));
            if self.capacity == Some(capacity) {
                return None;
            }
            self.capacity = Some(capacity);
            return Some(Verdict::Behind {
                capacity,
                late,
                busy,
            });
        }
        self.behind = 0;
        if late < LATE / 2 && busy < FULL * 0.75 {
            self.calm += 1;
            if self.calm >= CALM_WINDOWS && self.capacity.is_some() {
                self.capacity = None;
                return Some(Verdict::KeepsUp);
            }
        } else {
            self.calm = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs one window of `busy` time and 30 frames `late`.
    fn window(
        meter: &mut Meter,
        now: &mut Instant,
        busy: f64,
        late: Duration,
        viewers: usize,
    ) -> Option<Verdict> {
        meter.busy(Duration::from_secs_f64(busy));
        for _ in 0..30 {
            meter.frame(late);
        }
        *now += Duration::from_secs(1);
        meter.tick(*now, viewers)
    }

    #[test]
    fn a_thread_that_keeps_up_has_no_limit() {
        let mut now = Instant::now();
        let mut meter = Meter::new(now);
        for _ in 0..20 {
            assert_eq!(window(&mut meter, &mut now, 0.7, 15 * MS, 400), None);
        }
        assert_eq!(meter.capacity(), None);
        // Half a second is no window yet.
        meter.busy(Duration::from_secs(1));
        assert_eq!(meter.tick(now + 500 * MS, 400), None);
    }

    #[test]
    fn late_frames_for_two_seconds_set_a_capacity_below_the_viewers_then_calm_lifts_it() {
        let mut now = Instant::now();
        let mut meter = Meter::new(now);
        // One late second (a join storm's handshakes) is not enough.
        assert_eq!(window(&mut meter, &mut now, 0.9, 80 * MS, 500), None);
        assert_eq!(window(&mut meter, &mut now, 0.5, 10 * MS, 500), None);
        assert_eq!(window(&mut meter, &mut now, 0.9, 80 * MS, 500), None);
        let verdict = window(&mut meter, &mut now, 0.9, 80 * MS, 500);
        // 40 ms allowed of 80 ms late: half of 500.
        assert_eq!(
            verdict,
            Some(Verdict::Behind {
                capacity: 250,
                late: 80 * MS,
                busy: 0.9
            })
        );
        // Still behind with fewer viewers: the limit only goes down.
        assert!(matches!(
            window(&mut meter, &mut now, 0.9, 50 * MS, 260),
            Some(Verdict::Behind { capacity: 208, .. })
        ));
        assert_eq!(window(&mut meter, &mut now, 0.9, 50 * MS, 400), None);
        assert_eq!(meter.capacity(), Some(208));
        // Nine calm seconds keep it, the tenth lifts it; a busy second restarts the count.
        for _ in 0..5 {
            assert_eq!(window(&mut meter, &mut now, 0.5, 10 * MS, 200), None);
        }
        assert_eq!(window(&mut meter, &mut now, 0.8, 25 * MS, 200), None);
        for _ in 0..9 {
            assert_eq!(window(&mut meter, &mut now, 0.5, 10 * MS, 200), None);
        }
        assert_eq!(
            window(&mut meter, &mut now, 0.5, 10 * MS, 200),
            Some(Verdict::KeepsUp)
        );
        assert_eq!(meter.capacity(), None);
    }

    #[test]
    fn a_thread_busy_all_the_time_is_behind_even_without_frames() {
        let mut now = Instant::now();
        let mut meter = Meter::new(now);
        meter.busy(Duration::from_secs(1));
        now += Duration::from_secs(1);
        assert_eq!(meter.tick(now, 0), None);
        meter.busy(Duration::from_secs(1));
        now += Duration::from_secs(1);
        assert!(matches!(
            meter.tick(now, 0),
            Some(Verdict::Behind { capacity: 0, .. })
        ));
    }

    #[test]
    fn offers_go_to_the_least_loaded_thread_under_capacity() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let loads: Arc<[ShardLoad]> = (0..3).map(|_| ShardLoad::default()).collect();
        let threads = RtcThreads::new(vec![tx.clone(), tx.clone(), tx], loads.clone());
        loads[0].viewers.store(5, Ordering::Relaxed);
        loads[1].viewers.store(3, Ordering::Relaxed);
        loads[2].viewers.store(4, Ordering::Relaxed);
        assert_eq!(threads.for_offer(), Some(1));
        loads[1].capacity.store(3, Ordering::Relaxed);
        assert_eq!(threads.for_offer(), Some(2));
        loads[0].capacity.store(5, Ordering::Relaxed);
        loads[2].capacity.store(0, Ordering::Relaxed);
        assert_eq!(threads.for_offer(), None);
        assert_eq!(threads.viewers(), 12);
        // Equal loads: successive offers take turns.
        let loads: Arc<[ShardLoad]> = (0..2).map(|_| ShardLoad::default()).collect();
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let threads = RtcThreads::new(vec![tx.clone(), tx], loads);
        let picks: Vec<_> = (0..4).map(|_| threads.for_offer().unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(threads.for_viewer(ViewerId::from_raw(4)), 1);
    }

    #[test]
    fn datagrams_follow_the_stun_request_that_named_their_thread() {
        let now = Instant::now();
        let mut router = Router::new(2, now);
        let viewer: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        // Before any STUN request: the first thread.
        assert_eq!(router.route(now, viewer, &[0x80, 0x60]), 0);
        let check = binding_request("Bq7x:browser");
        assert_eq!(router.route(now, viewer, &check), 1);
        assert_eq!(router.route(now, viewer, &[0x80, 0x60]), 1);
        // Another viewer on the same address (a NAT's reuse) takes it over.
        assert_eq!(router.route(now, viewer, &binding_request("Azz9:b")), 0);
        assert_eq!(router.route(now, viewer, &[0x16, 0xfe]), 0);
        // Forgotten after a minute of silence.
        router.route(now, viewer, &check);
        let later = now + ROUTE_IDLE + Duration::from_secs(11);
        router.route(
            later,
            "192.0.2.8:1".parse().unwrap(),
            &binding_request("Bk:x"),
        );
        assert_eq!(router.route(later, viewer, &[0x80, 0x60]), 0);
        // One thread: everything to it, nothing remembered.
        let mut one = Router::new(1, now);
        assert_eq!(one.route(now, viewer, &check), 0);
        assert!(one.by_addr.is_empty());
    }

    /// A STUN Binding request with this USERNAME.
    fn binding_request(username: &str) -> Vec<u8> {
        let mut body = vec![0x00, 0x06];
        body.extend_from_slice(&(username.len() as u16).to_be_bytes());
        body.extend_from_slice(username.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&body);
        message
    }
}
