//! Per-MAC request rate limiting: a token bucket per client MAC, in a
//! table of bounded size so that a flood of invented MACs cannot grow
//! memory without limit.

use crate::time::Timestamp;
use netvm_description::values::MacAddr;
use std::collections::HashMap;

/// Most MACs tracked at once; full buckets are evicted first.
pub const MAX_TRACKED: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens in thousandths.
    milli_tokens: u64,
    updated: Timestamp,
}

/// Token buckets by MAC.
#[derive(Debug)]
pub struct Limiter {
    rate: u64,
    burst: u64,
    buckets: HashMap<MacAddr, Bucket>,
}

impl Limiter {
    /// `rate` requests per second sustained, `burst` at once (both >= 1).
    pub fn new(rate: u32, burst: u32) -> Limiter {
        Limiter {
            rate: u64::from(rate.max(1)),
            burst: u64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Timestamp) {
        let elapsed = now.0.saturating_sub(bucket.updated.0);
        bucket.milli_tokens =
            (bucket.milli_tokens + elapsed.saturating_mul(self.rate)).min(self.burst * 1000);
        bucket.updated = now;
    }

    /// Takes one token for `mac`; false when it has none left. `privileged`
    /// MACs (reservations) are tracked even when the table is full.
    pub fn allow(&mut self, mac: MacAddr, now: Timestamp, privileged: bool) -> bool {
        if !self.buckets.contains_key(&mac) && self.buckets.len() >= MAX_TRACKED {
            self.sweep(now);
            if self.buckets.len() >= MAX_TRACKED && !privileged {
                return false;
            }
        }
        let full = Bucket {
            milli_tokens: self.burst * 1000,
            updated: now,
        };
        let mut bucket = *self.buckets.get(&mac).unwrap_or(&full);
        self.refill(&mut bucket, now);
        let allowed = bucket.milli_tokens >= 1000;
        if allowed {
            bucket.milli_tokens -= 1000;
        }
        self.buckets.insert(mac, bucket);
        allowed
    }

    /// Forgets MACs whose buckets have refilled (they behave as new ones).
    pub fn sweep(&mut self, now: Timestamp) {
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now.0.saturating_sub(b.updated.0);
            b.milli_tokens + elapsed.saturating_mul(rate) < burst * 1000
        });
    }

    /// MACs tracked now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut limiter = Limiter::new(2, 3);
        let t = Timestamp(1_000_000);
        assert!((0..3).all(|_| limiter.allow(mac, t, false)));
        assert!(!limiter.allow(mac, t, false));
        assert!(
            limiter.allow(mac, t.plus_millis(500), false),
            "one token after 0.5 s at 2/s"
        );
        assert!(!limiter.allow(mac, t.plus_millis(500), false));
        limiter.sweep(t.plus_millis(10_000));
        assert_eq!(limiter.tracked(), 0);
    }
}
