//! Per-address limits: the offer rate limiter (a token bucket per client address) and the
//! address key both it and the connection caps count by.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stream::lock;

/// The most addresses the rate limiter remembers; beyond it, the ones that have waited longest
/// since their last offer are forgotten first (a forgotten address starts with a full bucket,
/// which only ever errs towards letting a client in).
const MAX_ADDRESSES: usize = 4096;

/// The address a client is counted by: an IPv4 address as it is (IPv4-mapped IPv6 included),
/// an IPv6 address by its /64, since one host or home usually gets a whole /64.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A token bucket per client address: `burst` tokens at most, refilled at `per_minute`.
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// A limiter of `per_minute` on average and `burst` at once; `None` when `per_minute` is
    /// 0 (no limit).
    pub(crate) fn new(per_minute: u32, burst: u32) -> Option<RateLimiter> {
        (per_minute > 0).then(|| RateLimiter {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token for `ip` at `now`, or says how long until one is there.
    pub(crate) fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = address_key(ip);
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&key) {
            self.prune(&mut buckets, now);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::from_secs_f64(wait))
        }
    }

    /// How many addresses are remembered (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.buckets).len()
    }

    /// Forgets every address whose bucket has refilled (it is as if never seen), and if that
    /// is not enough, the half that has been quiet longest.
    fn prune(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let refill = Duration::from_secs_f64(self.burst / self.per_second);
        buckets.retain(|_, b| now.saturating_duration_since(b.updated) < refill);
        if buckets.len() >= MAX_ADDRESSES {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.updated).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            buckets.retain(|_, b| b.updated > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(60, 3).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip, t0).is_ok());
        }
        let wait = limiter.take(ip, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(
            limiter.take(other, t0).is_ok(),
            "another address has its own bucket"
        );
        assert!(limiter.take(ip, t0 + Duration::from_millis(1100)).is_ok());
        assert!(limiter.take(ip, t0 + Duration::from_millis(1200)).is_err());
        assert!(RateLimiter::new(0, 10).is_none());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let limiter = RateLimiter::new(1, 1).unwrap();
        let now = Instant::now();
        assert!(limiter.take(a, now).is_ok());
        assert!(limiter.take(b, now).is_err(), "same /64, same bucket");
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(1, 5).unwrap();
        let now = Instant::now();
        for n in 0..(3 * MAX_ADDRESSES as u32) {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limiter.take(ip, now + Duration::from_micros(u64::from(n)));
        }
        assert!(limiter.len() <= MAX_ADDRESSES, "{}", limiter.len());
    }
}
