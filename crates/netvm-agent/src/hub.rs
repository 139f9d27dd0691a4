//! The agent's event stream. Every event it reports (security events,
//! leases, the uplink, reloads) is a typed [`Event`]: numbered, written
//! to the log (stdout, one JSON object per line), kept for `netvm
//! events`, and passed to live followers (`netvm events --follow`).
//!
//! Security events are kept in a history of their own, beside the one
//! for everything else, both bounded: no amount of lease noise can push
//! a `spoofing` or `port_scan` event out of what `netvm events` shows.
//!
//! Security events pass a token bucket first, so an attack cannot flood
//! the log: what the bucket refuses is counted, and one
//! `events_suppressed` event a second says how many. A follower that
//! does not keep up is dropped rather than buffered without bound.

use netvm_events::{Class, Event, Kind};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Instant;

/// Informational events kept for `netvm events`.
pub const RING: usize = 1024;
/// Security events kept for `netvm events`, apart from the others.
pub const SECURITY_RING: usize = 1024;
/// Security events per second, sustained.
pub const SECURITY_RATE: f64 = 20.0;
/// Security events in a burst.
pub const SECURITY_BURST: f64 = 100.0;
/// Events queued for one follower before it is dropped.
const FOLLOWER_QUEUE: usize = 256;
/// Followers at most.
const MAX_FOLLOWERS: usize = 16;

struct Inner {
    seq: u64,
    /// Informational events.
    ring: VecDeque<Event>,
    /// Security events, and the counts of those the bucket refused.
    security: VecDeque<Event>,
    followers: Vec<SyncSender<String>>,
    bucket: netvm_runtime::Bucket,
    emitted: u64,
    suppressed: u64,
    unreported: u64,
}

/// The event stream (shared by every part of the agent).
pub struct Hub {
    inner: Mutex<Inner>,
    /// Rung when the first refused security event since the last report
    /// arrives, so whoever reports ([`Hub::report_suppressed`]) need not
    /// tick while nothing is refused.
    suppressing: netvm_runtime::Bell,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty stream.
    pub fn new() -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                seq: 0,
                ring: VecDeque::with_capacity(RING),
                security: VecDeque::with_capacity(SECURITY_RING),
                followers: Vec::new(),
                bucket: netvm_runtime::Bucket::new(SECURITY_RATE, SECURITY_BURST, Instant::now()),
                emitted: 0,
                suppressed: 0,
                unreported: 0,
            }),
            suppressing: netvm_runtime::Bell::new(),
        }
    }

    /// Reports `event` (security events only as the rate limit lets
    /// them: its class says which it is). `log` false keeps it off stdout
    /// (the DHCP server logs its lease events itself).
    pub fn emit(&self, event: Event, log: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if event.class == Class::Security && !inner.bucket.take(Instant::now()) {
            inner.suppressed += 1;
            inner.unreported += 1;
            if inner.unreported == 1 {
                self.suppressing.ring();
            }
            return;
        }
        let kept = match event.class {
            Class::Security => Kept::Security,
            Class::Info => Kept::Info,
        };
        inner.record(kept, event, log);
    }

    /// Reports how many security events the bucket refused since the last
    /// call, if any (the agent calls this once a second). Kept with the
    /// security events: it says what is missing among them.
    pub fn report_suppressed(&self) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let unreported = std::mem::take(&mut inner.unreported);
        if unreported > 0 {
            inner.record(
                Kept::Security,
                Event::new(Kind::EventsSuppressed {
                    kinds: Vec::new(),
                    count: unreported,
                }),
                true,
            );
        }
    }

    /// Rung when security events start being refused (see
    /// [`Hub::has_unreported`]): the reporter waits on it.
    pub fn suppressing(&self) -> &netvm_runtime::Bell {
        &self.suppressing
    }

    /// Whether security events were refused since the last
    /// [`Hub::report_suppressed`] (so a report is due).
    pub fn has_unreported(&self) -> bool {
        self.inner.lock().is_ok_and(|inner| inner.unreported > 0)
    }

    /// The last `n` events of both histories, oldest first.
    pub fn recent(&self, n: usize) -> Vec<Event> {
        let Ok(inner) = self.inner.lock() else {
            return Vec::new();
        };
        let mut both: Vec<&Event> = inner.ring.iter().chain(inner.security.iter()).collect();
        both.sort_by_key(|e| e.seq);
        let skip = both.len().saturating_sub(n);
        both.into_iter().skip(skip).cloned().collect()
    }

    /// The last `n` security events (and suppression counts), oldest
    /// first.
    pub fn recent_security(&self, n: usize) -> Vec<Event> {
        match self.inner.lock() {
            Ok(inner) => {
                let skip = inner.security.len().saturating_sub(n);
                inner.security.iter().skip(skip).cloned().collect()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Events from now on, one JSON line each; `None` when too many
    /// followers are attached.
    pub fn follow(&self) -> Option<Receiver<String>> {
        let mut inner = self.inner.lock().ok()?;
        if inner.followers.len() >= MAX_FOLLOWERS {
            return None;
        }
        let (sender, receiver) = sync_channel(FOLLOWER_QUEUE);
        inner.followers.push(sender);
        Some(receiver)
    }

    /// Ends every follower's stream (their receivers see the channel
    /// closed): the agent is stopping.
    pub fn close_followers(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.followers.clear();
        }
    }

    /// Events reported and security events suppressed so far.
    pub fn counts(&self) -> (u64, u64) {
        self.inner
            .lock()
            .map(|i| (i.emitted, i.suppressed))
            .unwrap_or((0, 0))
    }
}

/// Which history keeps an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Security,
    Info,
}

impl Inner {
    /// Numbers, logs, keeps and passes on one event.
    fn record(&mut self, kept: Kept, mut event: Event, log: bool) {
        self.seq += 1;
        self.emitted += 1;
        event.seq = Some(self.seq);
        let line = event.to_line();
        if log {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        let (history, bound) = match kept {
            Kept::Security => (&mut self.security, SECURITY_RING),
            Kept::Info => (&mut self.ring, RING),
        };
        if history.len() == bound {
            history.pop_front();
        }
        history.push_back(event);
        self.followers.retain(|f| {
            !matches!(
                f.try_send(line.clone()),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::values::MacAddr;
    use std::net::Ipv4Addr;

    /// An informational event carrying `i`.
    fn info(i: usize) -> Event {
        Event::new(Kind::JournalCompacted {
            before: i as u64,
            after: 0,
        })
    }

    fn number(event: &Event) -> Option<u64> {
        match event.kind {
            Kind::JournalCompacted { before, .. } => Some(before),
            _ => None,
        }
    }

    fn spoofing() -> Event {
        Event::new(Kind::Spoofing {
            source_ip: Ipv4Addr::new(192, 168, 100, 9).into(),
            source_mac: MacAddr([2, 0, 0, 0, 0, 9]),
            mac_of: None,
            ip_of: None,
        })
    }

    fn port_scan() -> Event {
        Event::new(Kind::PortScan {
            source: Ipv4Addr::new(203, 0, 113, 9).into(),
            ports: 20,
            window_secs: 10,
        })
    }

    #[test]
    fn numbers_keeps_and_bounds_events() {
        let hub = Hub::new();
        for i in 0..RING + 5 {
            hub.emit(info(i), false);
        }
        let recent = hub.recent(RING * 2);
        assert_eq!(recent.len(), RING);
        assert_eq!(recent[0].seq, Some(6));
        assert_eq!(number(&recent[RING - 1]), Some(RING as u64 + 4));
        assert_eq!(hub.recent(2).len(), 2);
    }

    #[test]
    fn no_amount_of_other_events_pushes_security_events_out() {
        let hub = Hub::new();
        hub.emit(spoofing(), false);
        hub.emit(port_scan(), false);
        for i in 0..RING * 10 {
            hub.emit(info(i), false);
        }
        let security = hub.recent_security(10);
        let kinds: Vec<&str> = security.iter().map(Event::name).collect();
        assert_eq!(kinds, ["spoofing", "port_scan"]);
        // Both histories, in order, through `recent` too.
        let all = hub.recent(RING + SECURITY_RING);
        assert_eq!(all.len(), RING + 2);
        assert_eq!(all[0].name(), "spoofing");
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(number(&hub.recent(1)[0]), Some(RING as u64 * 10 - 1));
    }

    #[test]
    fn a_flood_of_security_events_is_cut_to_the_burst_and_counted() {
        let hub = Hub::new();
        for _ in 0..10_000 {
            hub.emit(spoofing(), false);
        }
        let (emitted, suppressed) = hub.counts();
        // The burst, plus what the rate refilled while the loop ran.
        assert!(
            emitted >= SECURITY_BURST as u64 && emitted < 10_000,
            "{emitted}"
        );
        assert_eq!(emitted + suppressed, 10_000);
        hub.report_suppressed();
        let last = hub.recent(1);
        assert_eq!(
            last[0].kind,
            Kind::EventsSuppressed {
                kinds: Vec::new(),
                count: suppressed
            }
        );
        assert_eq!(hub.recent_security(1), last, "kept with security events");
    }

    #[test]
    fn followers_get_new_events_and_slow_ones_are_dropped() {
        let hub = Hub::new();
        let fast = hub.follow().expect("a follower");
        let slow = hub.follow().expect("a follower");
        hub.emit(Event::new(Kind::AgentStopped), false);
        let line = fast.recv().expect("an event");
        assert!(line.contains("\"agent_stopped\""), "{line}");
        for i in 0..FOLLOWER_QUEUE + 1 {
            hub.emit(info(i), false);
            let _ = fast.try_recv();
        }
        // The slow one was dropped: its queue ends.
        let received = slow.try_iter().count();
        assert!(received <= FOLLOWER_QUEUE);
        assert!(slow.recv().is_err());
    }

    #[test]
    fn the_first_refusal_rings_the_bell_once() {
        let hub = Hub::new();
        assert!(!hub.suppressing().take(), "nothing refused yet");
        for _ in 0..SECURITY_BURST as usize {
            hub.emit(spoofing(), false);
        }
        assert!(!hub.suppressing().take(), "the burst is allowed");
        hub.emit(spoofing(), false);
        hub.emit(spoofing(), false);
        assert!(hub.has_unreported());
        assert!(hub.suppressing().take(), "rung by the first refusal");
        assert!(!hub.suppressing().take(), "once");
        hub.report_suppressed();
        assert!(!hub.has_unreported());
    }
}
