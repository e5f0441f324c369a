//! Coalescing and rate limiting of keyframe requests for the one shared encoder.

use std::time::{Duration, Instant};

use crate::time::later;

/// Decides when the driver should ask the encoder for an IDR.
///
/// Every viewer shares one encoder, so a burst of PLIs from many viewers (a loss event on a
/// shared link does that) must not turn into a burst of IDRs. Three rules:
///
/// - While a request is outstanding (emitted, no keyframe since) further requests are folded
///   into it, for at most `retry`: the keyframe on its way serves them all.
/// - Requests from viewers (PLI/FIR) are spaced at least `interval` apart; one that comes too
///   early waits for its slot.
/// - An urgent request (a viewer has just connected and shows nothing yet) ignores the spacing.
#[derive(Debug)]
pub(crate) struct KeyframeLimiter {
    interval: Duration,
    retry: Duration,
    /// When the last request was emitted.
    last: Option<Instant>,
    /// A request was emitted and no keyframe has been written since.
    outstanding: bool,
    /// A rate-limited request waits until `last + interval`.
    pending: bool,
}

impl KeyframeLimiter {
    pub(crate) fn new(interval: Duration, retry: Duration) -> Self {
        KeyframeLimiter {
            interval,
            retry,
            last: None,
            outstanding: false,
            pending: false,
        }
    }

    /// Records a request; `true` means "emit `KeyframeNeeded` now".
    pub(crate) fn request(&mut self, now: Instant, urgent: bool) -> bool {
        if self.is_outstanding(now) {
            return false;
        }
        let spaced = match self.last {
            None => true,
            Some(last) => now >= later(last, self.interval),
        };
        if urgent || spaced {
            self.emit(now);
            true
        } else {
            self.pending = true;
            false
        }
    }

    /// A keyframe went out: every request so far is served.
    pub(crate) fn keyframe_written(&mut self) {
        self.outstanding = false;
        self.pending = false;
    }

    /// `true` if a waiting request's slot has come; it is then emitted.
    pub(crate) fn poll(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if now >= deadline => {
                self.emit(now);
                true
            }
            _ => false,
        }
    }

    /// When [`poll`](Self::poll) will next have something to say.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if !self.pending {
            return None;
        }
        // `pending` is only set when a request came too soon after the last emission, so
        // `last` is set whenever `pending` is.
        self.last.map(|last| later(last, self.interval))
    }

    /// When an outstanding request stops covering new ones (for retries).
    pub(crate) fn outstanding_until(&self) -> Option<Instant> {
        match (self.outstanding, self.last) {
            (true, Some(last)) => Some(later(last, self.retry)),
            _ => None,
        }
    }

    fn is_outstanding(&self, now: Instant) -> bool {
        self.outstanding_until().is_some_and(|until| now < until)
    }

    fn emit(&mut self, now: Instant) {
        self.last = Some(now);
        self.outstanding = true;
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(250);
    const RETRY: Duration = Duration::from_secs(1);

    fn ms(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn first_request_goes_out_at_once() {
        let t0 = Instant::now();
        let mut limiter = KeyframeLimiter::new(INTERVAL, RETRY);
        assert!(limiter.request(t0, false));
        assert_eq!(limiter.deadline(), None);
    }

    #[test]
    fn requests_fold_into_an_outstanding_one() {
        let t0 = Instant::now();
        let mut limiter = KeyframeLimiter::new(INTERVAL, RETRY);
        assert!(limiter.request(t0, false));
        assert!(!limiter.request(ms(t0, 10), false));
        assert!(!limiter.request(ms(t0, 500), true));
        assert_eq!(
            limiter.deadline(),
            None,
            "folded requests do not wait for a slot"
        );
        // The keyframe never came: after `retry` a new request goes out.
        assert!(limiter.request(ms(t0, 1000), false));
    }

    #[test]
    fn viewer_requests_are_spaced() {
        let t0 = Instant::now();
        let mut limiter = KeyframeLimiter::new(INTERVAL, RETRY);
        assert!(limiter.request(t0, false));
        limiter.keyframe_written();
        assert!(!limiter.request(ms(t0, 100), false));
        assert!(!limiter.request(ms(t0, 120), false));
        assert_eq!(limiter.deadline(), Some(ms(t0, 250)));
        assert!(!limiter.poll(ms(t0, 249)));
        assert!(limiter.poll(ms(t0, 250)));
        assert!(!limiter.poll(ms(t0, 300)), "one emission for both requests");
    }

    #[test]
    fn a_keyframe_serves_a_waiting_request() {
        let t0 = Instant::now();
        let mut limiter = KeyframeLimiter::new(INTERVAL, RETRY);
        assert!(limiter.request(t0, false));
        limiter.keyframe_written();
        assert!(!limiter.request(ms(t0, 100), false));
        limiter.keyframe_written();
        assert_eq!(limiter.deadline(), None);
        assert!(!limiter.poll(ms(t0, 400)));
    }

    #[test]
    fn urgent_requests_skip_the_spacing() {
        let t0 = Instant::now();
        let mut limiter = KeyframeLimiter::new(INTERVAL, RETRY);
        assert!(limiter.request(t0, false));
        limiter.keyframe_written();
        assert!(limiter.request(ms(t0, 10), true));
    }
}
