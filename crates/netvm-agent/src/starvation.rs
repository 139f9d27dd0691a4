//! Notices DHCP starvation: many distinct client MACs asking for leases
//! within a short window (an attacker inventing MACs to empty the pool).
//! Pure; fed the DHCP server's events. Reports once per window, and
//! remembers at most `threshold` MACs, so memory is bounded.

use netvm_description::values::MacAddr;
use netvm_dhcp::Event;
use netvm_events::Kind;
use std::collections::HashSet;

/// The window, in seconds.
pub const WINDOW_SECS: u64 = 10;

/// Distinct MACs seen in the current window.
#[derive(Debug)]
pub struct Starvation {
    threshold: usize,
    window_start: u64,
    macs: HashSet<MacAddr>,
    exhausted: u64,
    reported: bool,
}

impl Starvation {
    /// Reports when `threshold` distinct MACs ask within a window.
    pub fn new(threshold: u32) -> Starvation {
        Starvation {
            threshold: threshold.max(1) as usize,
            window_start: 0,
            macs: HashSet::new(),
            exhausted: 0,
            reported: false,
        }
    }

    /// Takes one DHCP event at `now` (seconds); the starvation event, the
    /// first time the threshold is reached in a window.
    pub fn observe(&mut self, now: u64, event: &Event) -> Option<netvm_events::Event> {
        let mac = match event {
            Event::LeaseGranted { mac, .. } => *mac,
            Event::PoolExhausted { mac } => {
                self.exhausted += 1;
                *mac
            }
            _ => return None,
        };
        if now.saturating_sub(self.window_start) >= WINDOW_SECS {
            self.window_start = now;
            self.macs.clear();
            self.exhausted = 0;
            self.reported = false;
        }
        if self.macs.len() < self.threshold {
            self.macs.insert(mac);
        }
        if self.reported || self.macs.len() < self.threshold {
            return None;
        }
        self.reported = true;
        Some(netvm_events::Event::new(Kind::DhcpStarvation {
            clients: self.macs.len() as u64,
            pool_exhausted: self.exhausted,
            window_secs: WINDOW_SECS,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u32) -> MacAddr {
        let b = i.to_be_bytes();
        MacAddr([0x02, 0x66, b[0], b[1], b[2], b[3]])
    }

    fn exhausted(i: u32) -> Event {
        Event::PoolExhausted { mac: mac(i) }
    }

    #[test]
    fn many_new_macs_in_a_window_are_reported_once() {
        let mut s = Starvation::new(32);
        let reports: Vec<netvm_events::Event> = (0..10_000)
            .filter_map(|i| s.observe(5, &exhausted(i)))
            .collect();
        assert_eq!(reports.len(), 1);
        assert!(
            matches!(reports[0].kind, Kind::DhcpStarvation { clients: 32, .. }),
            "{:?}",
            reports[0]
        );
        assert!(s.macs.len() <= 32);
        // A new window: reported again if it goes on.
        let again: Vec<netvm_events::Event> = (0..100)
            .filter_map(|i| s.observe(16, &exhausted(i)))
            .collect();
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn the_same_client_asking_often_is_not_starvation() {
        let mut s = Starvation::new(3);
        assert!((0..1_000).all(|_| s.observe(1, &exhausted(7)).is_none()));
        let released = Event::LeaseReleased {
            ip: std::net::Ipv4Addr::new(10, 0, 0, 9),
            mac: mac(1),
        };
        assert!(s.observe(1, &released).is_none());
    }
}
