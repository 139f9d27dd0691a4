//! A token bucket over the monotonic clock, for the events a flood could
//! cause (the DHCP server's log, the agent's security events).

use std::time::Instant;

/// `rate` tokens a second, at most `burst` saved.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            refilled: now,
        }
    }

    /// Takes a token at `now`, if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10.0, 5.0, start);
        assert_eq!((0..100).filter(|_| bucket.take(start)).count(), 5);
        let later = start + Duration::from_secs(1);
        // A second refills ten, but no more than the burst is saved.
        assert_eq!((0..100).filter(|_| bucket.take(later)).count(), 5);
        let soon = later + Duration::from_millis(300);
        assert_eq!((0..100).filter(|_| bucket.take(soon)).count(), 3);
    }
}
