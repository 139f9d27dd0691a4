//! Per-client query limits: a token bucket per client address in a
//! bounded table (the least recently seen client leaves first), so a
//! flood from many spoofed sources cannot grow memory.

use crate::cache::Millis;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;

/// Most clients tracked at once.
const CLIENTS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// The limiter.
pub struct Limiter {
    rate: f64,
    burst: f64,
    buckets: LruCache<IpAddr, Bucket>,
}

impl Limiter {
    /// `rate` queries per second (0: no limit) with bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> Limiter {
        Limiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            buckets: LruCache::new(NonZeroUsize::new(CLIENTS).unwrap_or(NonZeroUsize::MIN)),
        }
    }

    /// Whether `client` may ask one more query at `now`.
    pub fn allow(&mut self, client: IpAddr, now: Millis) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = self.buckets.get_or_insert_mut(client, || Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_the_rate() {
        let mut limiter = Limiter::new(10, 5);
        let a: IpAddr = "192.168.100.101".parse().expect("ip");
        let b: IpAddr = "192.168.100.102".parse().expect("ip");
        assert_eq!((0..8).filter(|_| limiter.allow(a, 0)).count(), 5);
        assert!(limiter.allow(b, 0), "clients have buckets of their own");
        assert!(!limiter.allow(a, 50));
        assert!(limiter.allow(a, 100), "one token per 100 ms at 10/s");
        let mut off = Limiter::new(0, 1);
        assert!((0..1000).all(|_| off.allow(a, 0)));
    }
}
