//! Keeps the server's own event log bounded under a flood. Lease events
//! are always written (the pool bounds how many there can be); the events
//! a client can cause at will (a DISCOVER that finds the pool empty, a
//! DECLINE) pass a token bucket, and what it holds back is counted and
//! reported at most once a second as `events_suppressed`.
//! The bucket is the shared one ([`netvm_runtime::Bucket`]).

use netvm_dhcp::Event;
use netvm_runtime::Bucket;
use std::time::{Duration, Instant};

/// Floodable events written per second, sustained.
pub const RATE: f64 = 10.0;
/// Floodable events written in a burst.
pub const BURST: f64 = 50.0;

/// The bucket and what it held back.
#[derive(Debug)]
pub struct LogLimit {
    bucket: Bucket,
    held_back: u64,
    reported: Instant,
}

impl LogLimit {
    /// A full bucket at `now`.
    pub fn new(now: Instant) -> LogLimit {
        LogLimit {
            bucket: Bucket::new(RATE, BURST, now),
            held_back: 0,
            reported: now,
        }
    }

    /// Whether `event` may be written at `now`.
    pub fn allow(&mut self, event: &Event, now: Instant) -> bool {
        if !matches!(
            event,
            Event::PoolExhausted { .. } | Event::AddressDeclined { .. }
        ) {
            return true;
        }
        let allowed = self.bucket.take(now);
        if !allowed {
            self.held_back += 1;
        }
        allowed
    }

    /// How many were held back since the last report, once a second at
    /// most and only when some were.
    pub fn report(&mut self, now: Instant) -> Option<u64> {
        if self.held_back == 0
            || now.saturating_duration_since(self.reported) < Duration::from_secs(1)
        {
            return None;
        }
        self.reported = now;
        Some(std::mem::take(&mut self.held_back))
    }

    /// When [`LogLimit::report`] will have something to say, if it will:
    /// a second after the last report, while some are held back.
    pub fn report_at(&self) -> Option<Instant> {
        (self.held_back > 0).then(|| self.reported + Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::values::MacAddr;

    #[test]
    fn a_flood_of_empty_pool_events_is_cut_to_the_burst_and_counted() {
        let start = Instant::now();
        let mut limit = LogLimit::new(start);
        let exhausted = Event::PoolExhausted {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        let written = (0..10_000)
            .filter(|_| limit.allow(&exhausted, start))
            .count();
        assert_eq!(written, BURST as usize);
        assert_eq!(limit.report(start), None, "not within the first second");
        assert_eq!(limit.report_at(), Some(start + Duration::from_secs(1)));
        let later = start + Duration::from_secs(2);
        assert_eq!(limit.report(later), Some(10_000 - BURST as u64));
        assert_eq!(limit.report(later + Duration::from_secs(2)), None);
        assert_eq!(limit.report_at(), None, "nothing held back: no timer");
        // Two seconds refill 20 more.
        assert_eq!(
            (0..100).filter(|_| limit.allow(&exhausted, later)).count(),
            20
        );
    }

    #[test]
    fn lease_events_always_pass() {
        let now = Instant::now();
        let mut limit = LogLimit::new(now);
        let released = Event::LeaseReleased {
            ip: std::net::Ipv4Addr::new(10, 0, 0, 2),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        assert!((0..1_000).all(|_| limit.allow(&released, now)));
    }
}
