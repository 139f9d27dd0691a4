//! The agent's event stream. Every event it reports (security events,
//! leases, the uplink, reloads) is numbered, stamped, written to the log
//! (stdout, one JSON object per line), kept in a bounded ring for `netvm
//! events`, and passed to live followers (`netvm events --follow`).
//!
//! Security events pass a token bucket first, so an attack cannot flood
//! the log: what the bucket refuses is counted, and one
//! `events_suppressed` event a second says how many. A follower that
//! does not keep up is dropped rather than buffered without bound.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Events kept for `netvm events`.
pub const RING: usize = 1024;
/// Security events per second, sustained.
pub const SECURITY_RATE: f64 = 20.0;
/// Security events in a burst.
pub const SECURITY_BURST: f64 = 100.0;
/// Events queued for one follower before it is dropped.
const FOLLOWER_QUEUE: usize = 256;
/// Followers at most.
const MAX_FOLLOWERS: usize = 16;

/// What kind of event: only security events are rate-limited (the rest
/// are bounded by what causes them: leases, reloads, the uplink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Spoofing, policy drops, scans, rogue servers, starvation.
    Security,
    /// Leases, the uplink, the agent's own life.
    Info,
}

struct Inner {
    seq: u64,
    ring: VecDeque<Value>,
    followers: Vec<SyncSender<String>>,
    bucket: netvm_dhcp_server::log_limit::Bucket,
    emitted: u64,
    suppressed: u64,
    unreported: u64,
}

/// The event stream (shared by every part of the agent).
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hub {
    /// An empty stream.
    pub fn new() -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                seq: 0,
                ring: VecDeque::with_capacity(RING),
                followers: Vec::new(),
                bucket: netvm_dhcp_server::log_limit::Bucket::new(
                    SECURITY_RATE,
                    SECURITY_BURST,
                    Instant::now(),
                ),
                emitted: 0,
                suppressed: 0,
                unreported: 0,
            }),
        }
    }

    /// Reports `event` (an object with an `event` field). `log` false
    /// keeps it off stdout (the DHCP server logs its lease events itself).
    pub fn emit(&self, class: Class, event: Value, log: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if class == Class::Security && !inner.bucket.take(Instant::now()) {
            inner.suppressed += 1;
            inner.unreported += 1;
            return;
        }
        inner.seq += 1;
        inner.emitted += 1;
        let mut event = event;
        if let Value::Object(map) = &mut event {
            map.insert("seq".to_owned(), json!(inner.seq));
            map.insert("time_ms".to_owned(), json!(unix_ms()));
            let class = match class {
                Class::Security => "security",
                Class::Info => "info",
            };
            map.insert("class".to_owned(), json!(class));
        }
        let line = event.to_string();
        if log {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event);
        inner.followers.retain(|f| {
            !matches!(
                f.try_send(line.clone()),
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
            )
        });
    }

    /// Reports how many security events the bucket refused since the last
    /// call, if any (the agent calls this once a second).
    pub fn report_suppressed(&self) {
        let unreported = match self.inner.lock() {
            Ok(mut inner) => std::mem::take(&mut inner.unreported),
            Err(_) => return,
        };
        if unreported > 0 {
            self.emit(
                Class::Info,
                json!({"event": "events_suppressed", "count": unreported}),
                true,
            );
        }
    }

    /// The last `n` events, oldest first.
    pub fn recent(&self, n: usize) -> Vec<Value> {
        match self.inner.lock() {
            Ok(inner) => {
                let skip = inner.ring.len().saturating_sub(n);
                inner.ring.iter().skip(skip).cloned().collect()
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

    /// Events reported and security events suppressed so far.
    pub fn counts(&self) -> (u64, u64) {
        self.inner
            .lock()
            .map(|i| (i.emitted, i.suppressed))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keeps_and_bounds_events() {
        let hub = Hub::new();
        for i in 0..RING + 5 {
            hub.emit(Class::Info, json!({"event": "x", "i": i}), false);
        }
        let recent = hub.recent(RING * 2);
        assert_eq!(recent.len(), RING);
        assert_eq!(recent[0]["seq"], json!(6));
        assert_eq!(recent[RING - 1]["i"], json!(RING + 4));
        assert_eq!(hub.recent(2).len(), 2);
    }

    #[test]
    fn a_flood_of_security_events_is_cut_to_the_burst_and_counted() {
        let hub = Hub::new();
        for _ in 0..10_000 {
            hub.emit(Class::Security, json!({"event": "spoofing"}), false);
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
        assert_eq!(last[0]["event"], json!("events_suppressed"));
        assert_eq!(last[0]["count"], json!(suppressed));
    }

    #[test]
    fn followers_get_new_events_and_slow_ones_are_dropped() {
        let hub = Hub::new();
        let fast = hub.follow().expect("a follower");
        let slow = hub.follow().expect("a follower");
        hub.emit(Class::Info, json!({"event": "one"}), false);
        let line = fast.recv().expect("an event");
        assert!(line.contains("\"one\""));
        for _ in 0..FOLLOWER_QUEUE + 1 {
            hub.emit(Class::Info, json!({"event": "more"}), false);
            let _ = fast.try_recv();
        }
        // The slow one was dropped: its queue ends.
        let received = slow.try_iter().count();
        assert!(received <= FOLLOWER_QUEUE);
        assert!(slow.recv().is_err());
    }
}
