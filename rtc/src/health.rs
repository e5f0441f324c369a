//! Whether a viewer keeps up with the stream.
//!
//! A viewer whose path cannot carry the stream (too little bandwidth, or loss beyond what
//! retransmission mends) loses pictures and asks for keyframes (PLI or FIR) again and again.
//! Sending it every frame only fills its path's queue, and granting every request would put an
//! IDR into everyone's stream several times a second. So a viewer that asks
//! [`REPEATED_REQUESTS`] times within [`REQUEST_WINDOW`], or whose receiver reports show
//! [`SUSTAINED_LOSS`] [`LOSSY_REPORTS`] times in a row, is *behind*: it gets no delta frames
//! until the next keyframe, so its queue drains, and only one of its requests every
//! [`BEHIND_REQUEST_INTERVAL`] is passed on; the encoder's periodic keyframes serve it in
//! between. A keyframe ends the skip. A viewer that asks again within [`PROBATION`] of that
//! is behind again at once: its path has not got better.
//!
//! Viewers that keep up never notice any of this, and one that is behind costs the others
//! nothing: at most one keyframe every [`BEHIND_REQUEST_INTERVAL`].
//!
//! [`Health`] only decides: it touches no session. What follows from its [`Verdict`] (passing
//! a request on, emptying the viewer's resend cache) is the broadcast's to do.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::output::ViewerId;
use crate::time::later;

/// This many keyframe requests within [`REQUEST_WINDOW`] mean a viewer is behind.
pub(crate) const REPEATED_REQUESTS: usize = 3;

/// See [`REPEATED_REQUESTS`].
pub(crate) const REQUEST_WINDOW: Duration = Duration::from_secs(3);

/// A viewer that is behind has at most one keyframe request a this often passed on.
pub(crate) const BEHIND_REQUEST_INTERVAL: Duration = Duration::from_secs(2);

/// A request this soon after a keyframe ended a skip puts the viewer behind again at once.
pub(crate) const PROBATION: Duration = Duration::from_secs(2);

/// How often each viewer's statistics (with the loss its receiver reports) come.
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Receiver reports of at least this much loss, [`LOSSY_REPORTS`] times in a row, mean a
/// viewer is behind: a browser on a thin path asks again for lost packets (NACK) long before it
/// asks for a keyframe, so its requests alone give it away late.
pub(crate) const SUSTAINED_LOSS: f32 = 0.1;

/// See [`SUSTAINED_LOSS`].
pub(crate) const LOSSY_REPORTS: u32 = 2;

/// What a viewer's [`Health`] says after a keyframe request or a loss report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub(crate) struct Verdict {
    /// Pass the keyframe request on (to the keyframe limiter, which spaces and coalesces
    /// everyone's). Never set for a loss report.
    pub(crate) pass_on: bool,
    /// The viewer has just fallen behind. It should also lose what it could still ask to be
    /// sent again (its session's retransmission cache): it skips those frames anyway, and
    /// retransmitting them would only fill its path.
    pub(crate) fell_behind: bool,
}

/// One viewer's record (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Recent keyframe requests, within [`REQUEST_WINDOW`].
    requests: VecDeque<Instant>,
    /// Skipping delta frames until the next keyframe.
    behind: bool,
    /// When a keyframe last ended a skip.
    resumed: Option<Instant>,
    /// When a request of this viewer, behind, was last passed on.
    passed: Option<Instant>,
    /// Statistics in a row with [`SUSTAINED_LOSS`].
    lossy_reports: u32,
    /// Delta frames skipped, for the log.
    skipped: u64,
}

impl Health {
    /// Notes a keyframe request from viewer `id`: whether to pass it on, and whether the
    /// viewer has just fallen behind.
    pub(crate) fn keyframe_request(&mut self, id: ViewerId, now: Instant) -> Verdict {
        while self
            .requests
            .front()
            .is_some_and(|&t| now >= later(t, REQUEST_WINDOW))
        {
            self.requests.pop_front();
        }
        self.requests.push_back(now);
        let on_probation = self.resumed.is_some_and(|t| now < later(t, PROBATION));
        let fell_behind = (self.requests.len() >= REPEATED_REQUESTS || on_probation)
            && self.fall_behind(id, "asks for keyframes again and again");
        let pass_on = if !self.behind {
            true
        } else if self
            .passed
            .is_some_and(|t| now < later(t, BEHIND_REQUEST_INTERVAL))
        {
            false
        } else {
            self.passed = Some(now);
            true
        };
        Verdict {
            pass_on,
            fell_behind,
        }
    }

    /// Notes the loss that viewer `id`'s receiver reports gave in its latest statistics
    /// (`None` when no report came since the last): whether the viewer has just fallen
    /// behind.
    pub(crate) fn loss_report(&mut self, id: ViewerId, loss: Option<f32>) -> Verdict {
        match loss {
            Some(loss) if loss >= SUSTAINED_LOSS => self.lossy_reports += 1,
            Some(_) => self.lossy_reports = 0,
            None => {}
        }
        let fell_behind =
            self.lossy_reports >= LOSSY_REPORTS && self.fall_behind(id, "loses packets steadily");
        Verdict {
            pass_on: false,
            fell_behind,
        }
    }

    /// Whether viewer `id` gets this frame. A keyframe ends a skip.
    pub(crate) fn wants(&mut self, id: ViewerId, keyframe: bool, now: Instant) -> bool {
        if !self.behind {
            return true;
        }
        if !keyframe {
            self.skipped += 1;
            return false;
        }
        debug!(%id, skipped = self.skipped, "a keyframe; the viewer gets every frame again");
        self.behind = false;
        self.resumed = Some(now);
        self.requests.clear();
        self.lossy_reports = 0;
        self.skipped = 0;
        true
    }

    /// Puts the viewer behind; `true` if it was not already.
    fn fall_behind(&mut self, id: ViewerId, why: &str) -> bool {
        if self.behind {
            return false;
        }
        self.behind = true;
        info!(%id, why, "viewer cannot keep up: no delta frames for it until the next keyframe");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    const ID: fn() -> ViewerId = || ViewerId::from_raw(1);

    /// A keyframe request at `now`: whether it is passed on.
    fn ask(health: &mut Health, now: Instant) -> bool {
        health.keyframe_request(ID(), now).pass_on
    }

    /// A loss report: whether the viewer fell behind with it.
    fn report(health: &mut Health, loss: Option<f32>) -> bool {
        let verdict = health.loss_report(ID(), loss);
        assert!(!verdict.pass_on, "a loss report is no keyframe request");
        verdict.fell_behind
    }

    #[test]
    fn occasional_requests_pass_and_frames_flow() {
        let t0 = Instant::now();
        let mut health = Health::default();
        for second in 0..10 {
            assert!(ask(&mut health, ms(t0, second * 1600)));
            assert!(health.wants(ID(), false, ms(t0, second * 1600 + 10)));
        }
    }

    #[test]
    fn repeated_requests_skip_deltas_until_a_keyframe() {
        let t0 = Instant::now();
        let mut health = Health::default();
        assert!(ask(&mut health, t0));
        assert!(ask(&mut health, ms(t0, 500)));
        // The third within 3 s: behind. The first request behind still goes out.
        let verdict = health.keyframe_request(ID(), ms(t0, 1000));
        assert_eq!(
            verdict,
            Verdict {
                pass_on: true,
                fell_behind: true
            }
        );
        assert!(!health.wants(ID(), false, ms(t0, 1010)));
        let verdict = health.keyframe_request(ID(), ms(t0, 1500));
        assert_eq!(verdict, Verdict::default(), "behind already: nothing new");
        assert!(!ask(&mut health, ms(t0, 2999)));
        assert!(ask(&mut health, ms(t0, 3000)), "one every 2 s");
        assert!(!health.wants(ID(), false, ms(t0, 3010)));
        assert!(health.wants(ID(), true, ms(t0, 3100)), "a keyframe ends it");
        assert!(health.wants(ID(), false, ms(t0, 3133)));
    }

    #[test]
    fn sustained_loss_skips_deltas_until_a_keyframe() {
        let t0 = Instant::now();
        let mut health = Health::default();
        assert!(!report(&mut health, Some(0.3)));
        assert!(!report(&mut health, Some(0.02)));
        assert!(!report(&mut health, Some(0.3)));
        assert!(!report(&mut health, None));
        assert!(health.wants(ID(), false, t0), "not two in a row");
        assert!(report(&mut health, Some(0.5)), "two in a row: behind");
        assert!(!report(&mut health, Some(0.5)), "behind already");
        assert!(!health.wants(ID(), false, t0));
        assert!(health.wants(ID(), true, t0));
        assert!(!report(&mut health, Some(0.5)));
        assert!(
            health.wants(ID(), false, t0),
            "counted afresh after the keyframe"
        );
    }

    #[test]
    fn a_request_on_probation_is_behind_at_once() {
        let t0 = Instant::now();
        let mut health = Health::default();
        for t in [0, 100, 200] {
            ask(&mut health, ms(t0, t));
        }
        assert!(health.wants(ID(), true, ms(t0, 300)));
        assert!(health.wants(ID(), false, ms(t0, 333)));
        // Passed on: the last one behind went out at 200 ms, more than 2 s ago by 2.3 s.
        assert!(ask(&mut health, ms(t0, 2250)));
        assert!(!health.wants(ID(), false, ms(t0, 2260)));
        // After probation, requests count afresh.
        assert!(health.wants(ID(), true, ms(t0, 2400)));
        assert!(ask(&mut health, ms(t0, 4500)));
        assert!(health.wants(ID(), false, ms(t0, 4510)));
    }
}
