//! When the advertiser sends (RFC 4861 §6.2.4 and §6.2.6), without a
//! clock: times are [`Millis`] on the driver's monotonic clock and the
//! randomness is passed in, so every rule is a unit test.
//!
//! * Unsolicited advertisements every MinRtrAdvInterval..MaxRtrAdvInterval
//!   (uniformly random), the first three at most 16 s apart
//!   (MAX_INITIAL_RTR_ADVERT_INTERVAL, MAX_INITIAL_RTR_ADVERTISEMENTS).
//! * A solicitation is answered (to all nodes) after a random 0..500 ms
//!   (MAX_RA_DELAY_TIME), never sooner than 3 s after the last
//!   advertisement (MIN_DELAY_BETWEEN_RAS); every solicitation that
//!   arrives before then is answered by that one advertisement.
//! * One that could not be sent is tried again within 16 s.
//! * A new configuration is sent at once (within the same 3 s rule) and
//!   starts the fast initial series again.

use std::time::Duration;

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// MAX_INITIAL_RTR_ADVERT_INTERVAL.
const MAX_INITIAL_INTERVAL: Millis = 16_000;
/// MAX_INITIAL_RTR_ADVERTISEMENTS.
const INITIAL_ADVERTS: u8 = 3;
/// MIN_DELAY_BETWEEN_RAS.
pub const MIN_DELAY_BETWEEN_RAS: Millis = 3_000;
/// MAX_RA_DELAY_TIME.
const MAX_RA_DELAY: Millis = 500;

/// When the next advertisement is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    min_interval: Millis,
    max_interval: Millis,
    /// When the next advertisement goes out.
    next: Millis,
    /// How many of the fast initial series are still to be sent.
    initial_left: u8,
    /// When the last one went out.
    last_sent: Option<Millis>,
}

impl Schedule {
    /// A schedule whose first advertisement is due at `now`. Intervals are
    /// kept to what RFC 4861 §6.2.1 allows: the minimum at least 3 s, the
    /// maximum at least the minimum.
    pub fn new(now: Millis, min_interval: Duration, max_interval: Duration) -> Schedule {
        let mut schedule = Schedule {
            min_interval: 0,
            max_interval: 0,
            next: now,
            initial_left: INITIAL_ADVERTS,
            last_sent: None,
        };
        schedule.set_intervals(min_interval, max_interval);
        schedule
    }

    /// Changes MinRtrAdvInterval and MaxRtrAdvInterval (from the next
    /// advertisement on), kept to what RFC 4861 §6.2.1 allows.
    pub fn set_intervals(&mut self, min_interval: Duration, max_interval: Duration) {
        let millis = |d: Duration| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX);
        self.min_interval = millis(min_interval).max(MIN_DELAY_BETWEEN_RAS);
        self.max_interval = millis(max_interval).max(self.min_interval);
    }

    /// When the next advertisement is due.
    pub fn poll_at(&self) -> Millis {
        self.next
    }

    /// Whether it is due at `now`.
    pub fn is_due(&self, now: Millis) -> bool {
        now >= self.next
    }

    /// An advertisement went out at `now`; `random` picks the interval to
    /// the next.
    pub fn sent(&mut self, now: Millis, random: u64) {
        self.last_sent = Some(now);
        self.initial_left = self.initial_left.saturating_sub(1);
        let span = self.max_interval - self.min_interval;
        let mut interval = self.min_interval + random % (span + 1);
        if self.initial_left > 0 {
            interval = interval.min(MAX_INITIAL_INTERVAL);
        }
        self.next = now.saturating_add(interval.max(MIN_DELAY_BETWEEN_RAS));
    }

    /// Sending failed at `now` (say the link-local address is not usable
    /// yet): try again as the fast initial series would, without using
    /// up one of its advertisements. While it keeps failing that is one
    /// wake every 16 s at most.
    pub fn failed(&mut self, now: Millis, random: u64) {
        let span = self.max_interval - self.min_interval;
        let interval = (self.min_interval + random % (span + 1)).min(MAX_INITIAL_INTERVAL);
        self.next = now.saturating_add(interval.max(MIN_DELAY_BETWEEN_RAS));
    }

    /// The earliest an advertisement may go out: 3 s after the last.
    fn allowed(&self, now: Millis) -> Millis {
        self.last_sent
            .map_or(now, |last| now.max(last + MIN_DELAY_BETWEEN_RAS))
    }

    /// A valid solicitation arrived at `now`; `random` picks the delay.
    pub fn solicited(&mut self, now: Millis, random: u64) {
        let at = self.allowed(now) + random % (MAX_RA_DELAY + 1);
        self.next = self.next.min(at);
    }

    /// The configuration changed at `now`: announce it as soon as allowed
    /// and start the initial series again.
    pub fn changed(&mut self, now: Millis) {
        self.initial_left = INITIAL_ADVERTS;
        self.next = self.next.min(self.allowed(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: Millis = 1000;

    fn default() -> Schedule {
        Schedule::new(0, Duration::from_secs(200), Duration::from_secs(600))
    }

    #[test]
    fn three_fast_then_one_per_interval() {
        let mut s = default();
        assert!(s.is_due(0));
        s.sent(0, 0);
        assert_eq!(s.poll_at(), 16 * SECS, "second of the initial series");
        s.sent(16 * SECS, u64::MAX);
        assert_eq!(s.poll_at(), 32 * SECS, "third");
        s.sent(32 * SECS, 0);
        assert_eq!(s.poll_at(), 232 * SECS, "then MinRtrAdvInterval at least");
        s.sent(232 * SECS, 400 * SECS);
        assert_eq!(s.poll_at(), 832 * SECS, "and MaxRtrAdvInterval at most");
        s.sent(832 * SECS, 400 * SECS + 1);
        assert_eq!(s.poll_at(), 1032 * SECS);
    }

    #[test]
    fn solicitations_are_answered_soon_but_not_within_3_s() {
        let mut s = default();
        for at in [0, 16 * SECS, 32 * SECS] {
            s.sent(at, 0);
        }
        // Long after the last: within MAX_RA_DELAY_TIME.
        s.solicited(100 * SECS, 499);
        assert_eq!(s.poll_at(), 100 * SECS + 499);
        // A second one before then may bring it forward; it adds none.
        s.solicited(100 * SECS + 10, 0);
        assert_eq!(s.poll_at(), 100 * SECS + 10);
        s.sent(100 * SECS + 10, 0);
        // One right after an advertisement waits for the 3 s to pass.
        s.solicited(100 * SECS + 20, 100);
        assert_eq!(s.poll_at(), 103 * SECS + 10 + 100);
        // Many more in the meantime: still that one advertisement.
        for n in 0..100 {
            s.solicited(101 * SECS + n, 500);
        }
        assert_eq!(s.poll_at(), 103 * SECS + 10 + 100);
    }

    #[test]
    fn a_change_is_sent_at_once_and_restarts_the_fast_series() {
        let mut s = default();
        for at in [0, 16 * SECS, 32 * SECS] {
            s.sent(at, 0);
        }
        s.sent(232 * SECS, 0);
        assert_eq!(s.poll_at(), 432 * SECS);
        s.changed(300 * SECS);
        assert_eq!(s.poll_at(), 300 * SECS);
        s.sent(300 * SECS, 1_000 * SECS);
        assert_eq!(s.poll_at(), 316 * SECS, "fast again");
        // A change right after an advertisement waits the 3 s.
        s.changed(301 * SECS);
        assert_eq!(s.poll_at(), 303 * SECS);
    }

    #[test]
    fn a_failed_send_is_tried_again_soon_and_keeps_the_series() {
        let mut s = default();
        s.failed(0, 0);
        assert_eq!(s.poll_at(), 16 * SECS);
        s.failed(16 * SECS, 0);
        s.sent(32 * SECS, 0);
        s.sent(48 * SECS, 0);
        assert_eq!(s.poll_at(), 64 * SECS, "still one fast one left");
    }

    #[test]
    fn intervals_are_kept_to_what_the_rfc_allows() {
        let mut s = Schedule::new(0, Duration::from_millis(10), Duration::ZERO);
        s.sent(0, 12345);
        assert_eq!(s.poll_at(), MIN_DELAY_BETWEEN_RAS);
    }
}
