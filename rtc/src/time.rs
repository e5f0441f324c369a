//! Instants and RTP times: the little arithmetic that every part of the state machine shares.

use std::time::{Duration, Instant};

use str0m::media::MediaTime;

/// `t + d`, or a time too far ahead to matter if that overflows (a `Duration::MAX` timeout).
pub(crate) fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).or_else(|| t.checked_add(FAR)).unwrap_or(t)
}

/// "Never", in practice: a hundred years.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `elapsed` on the 90 kHz RTP video clock.
pub(crate) fn media_time(elapsed: Duration) -> MediaTime {
    let ticks = elapsed.as_secs() * 90_000 + u64::from(elapsed.subsec_nanos()) * 9 / 100_000;
    MediaTime::from_90khz(ticks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_saturates_instead_of_overflowing() {
        let t0 = Instant::now();
        assert_eq!(
            later(t0, Duration::from_secs(1)),
            t0 + Duration::from_secs(1)
        );
        assert!(later(t0, Duration::MAX) > t0 + Duration::from_secs(365 * 24 * 3600));
    }

    #[test]
    fn media_time_is_on_the_90khz_clock() {
        assert_eq!(media_time(Duration::ZERO).numer(), 0);
        assert_eq!(media_time(Duration::from_millis(1500)).numer(), 135_000);
        assert_eq!(media_time(Duration::from_nanos(11_112)).numer(), 1);
    }
}
