//! Which of several uplinks carries the Internet, without I/O or a clock.
//!
//! Each uplink has a state, derived from what the agent observed of it:
//!
//! | state         | meaning                                                 |
//! |---------------|---------------------------------------------------------|
//! | `absent`      | no such interface (unplugged, not yet plugged in)       |
//! | `no_carrier`  | present, no link (cable out, dock gone, radio off)      |
//! | `associating` | Wi-Fi only: link up, not yet associated with a network  |
//! | `addressing`  | link up, no IPv4 address yet (DHCP running)             |
//! | `up`          | addressed, and not failing its reachability probes      |
//! | `failed`      | addressed, but its last `failures_to_fail` probes failed|
//!
//! The active uplink is an `up` one. It stays active while it is `up`,
//! unless an uplink of better (lower) `priority` is `up` *and* has passed
//! a probe since it was addressed (fail-back only to a proven link, so a
//! link that flaps does not take the traffic back each time it blinks).
//! When the active one leaves `up`, the best `up` uplink takes over at
//! once (proven ones first, then by priority, then by order).
//!
//! Probes (the agent's: the gateway's ARP, a DNS query to the learned
//! resolvers) are asked for through [`Choice::probes_due`]: at once when
//! an uplink is addressed, every `interval` while it passes, every
//! `retry` after a failure until it is `failed`, then backing off
//! (doubling up to `backoff_max`) until it passes again.

use serde::Serialize;

/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// An uplink's state (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// No such interface.
    Absent,
    /// Present, without carrier.
    NoCarrier,
    /// Wi-Fi: carrier, not associated.
    Associating,
    /// Link up, no address yet.
    Addressing,
    /// Addressed and reachable as far as the probes tell.
    Up,
    /// Addressed, but its probes fail.
    Failed,
}

impl LinkState {
    /// Its name in events and status (`no_carrier`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Absent => "absent",
            LinkState::NoCarrier => "no_carrier",
            LinkState::Associating => "associating",
            LinkState::Addressing => "addressing",
            LinkState::Up => "up",
            LinkState::Failed => "failed",
        }
    }
}

/// Why the active uplink changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// There was none active; this one came up.
    FirstUp,
    /// The active one left `up` (its new state says why).
    Left(LinkState),
    /// A preferred uplink is up and proven (fail-back).
    Preferred,
}

impl Reason {
    /// A short explanation for events (`first_up`, `absent`,
    /// `no_carrier`, `addressing` (its address was lost), `failed`,
    /// `preferred`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FirstUp => "first_up",
            Reason::Left(state) => state.as_str(),
            Reason::Preferred => "preferred",
        }
    }
}

/// How often to probe, and when probes make an uplink `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Between probes of an uplink that passes.
    pub interval: Millis,
    /// After a failed probe, while not yet `failed`.
    pub retry: Millis,
    /// Consecutive failed probes that make an uplink `failed`.
    pub failures_to_fail: u32,
    /// The longest wait between probes of a `failed` uplink.
    pub backoff_max: Millis,
}

impl Default for ProbePolicy {
    /// 30 s while it passes; 1 s retries; three failures; backing off to
    /// 60 s once failed.
    fn default() -> Self {
        ProbePolicy {
            interval: 30_000,
            retry: 1_000,
            failures_to_fail: 3,
            backoff_max: 60_000,
        }
    }
}

/// What the agent saw of an uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The interface exists (or vanished).
    Present(bool),
    /// It has carrier (or lost it).
    Carrier(bool),
    /// Wi-Fi: it is associated (or is no longer).
    Associated(bool),
    /// It has its IPv4 address (or lost it).
    Addressed(bool),
    /// A probe's result.
    Probe(bool),
}

/// What changed after an observation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changes {
    /// Uplinks whose state changed: name, old, new.
    pub states: Vec<(String, LinkState, LinkState)>,
    /// The active uplink changed.
    pub switched: Option<Switched>,
}

/// A change of the active uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switched {
    /// The one that was active.
    pub from: Option<String>,
    /// The one that is now (none: no uplink is up).
    pub to: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// One uplink's status, for `netvm uplinks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Its interface name.
    pub name: String,
    /// Lower is preferred.
    pub priority: u32,
    /// Its state.
    pub state: LinkState,
    /// Whether it carries the Internet now.
    pub active: bool,
    /// Whether it passed a probe since it was addressed.
    pub proven: bool,
    /// Probes failed in a row.
    pub failures: u32,
}

#[derive(Debug, Clone)]
struct Tracked {
    name: String,
    priority: u32,
    wifi: bool,
    present: bool,
    carrier: bool,
    associated: bool,
    addressed: bool,
    failures: u32,
    proven: bool,
    /// When the next probe is due (`None`: none wanted, or one running).
    next_probe: Option<Millis>,
    /// The current wait between probes of a failed uplink.
    backoff: Millis,
}

impl Tracked {
    fn state(&self, policy: &ProbePolicy) -> LinkState {
        if !self.present {
            LinkState::Absent
        } else if !self.carrier {
            LinkState::NoCarrier
        } else if self.wifi && !self.associated {
            LinkState::Associating
        } else if !self.addressed {
            LinkState::Addressing
        } else if self.failures >= policy.failures_to_fail {
            LinkState::Failed
        } else {
            LinkState::Up
        }
    }

    /// Forgets what the probes said (a new address, or none).
    fn reset_probes(&mut self, now: Millis, policy: &ProbePolicy) {
        self.failures = 0;
        self.proven = false;
        self.backoff = policy.interval;
        self.next_probe = self.addressed.then_some(now);
    }
}

/// One uplink as the description gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its interface name.
    pub name: String,
    /// Lower is preferred.
    pub priority: u32,
    /// Whether it must associate (Wi-Fi) before it is addressed.
    pub wifi: bool,
}

/// The choice among uplinks.
#[derive(Debug, Clone)]
pub struct Choice {
    uplinks: Vec<Tracked>,
    active: Option<usize>,
    policy: ProbePolicy,
}

impl Choice {
    /// All `candidates` start `absent`; none is active.
    pub fn new(candidates: &[Candidate], policy: ProbePolicy) -> Choice {
        Choice {
            uplinks: candidates
                .iter()
                .map(|c| Tracked {
                    name: c.name.clone(),
                    priority: c.priority,
                    wifi: c.wifi,
                    present: false,
                    carrier: false,
                    associated: false,
                    addressed: false,
                    failures: 0,
                    proven: false,
                    next_probe: None,
                    backoff: policy.interval,
                })
                .collect(),
            active: None,
            policy,
        }
    }

    /// The active uplink's name.
    pub fn active(&self) -> Option<&str> {
        self.active.map(|i| self.uplinks[i].name.as_str())
    }

    /// An uplink's state (`None`: not one of them).
    pub fn state(&self, name: &str) -> Option<LinkState> {
        self.find(name).map(|i| self.uplinks[i].state(&self.policy))
    }

    /// Every uplink's status, in the description's order.
    pub fn status(&self) -> Vec<Status> {
        self.uplinks
            .iter()
            .enumerate()
            .map(|(i, u)| Status {
                name: u.name.clone(),
                priority: u.priority,
                state: u.state(&self.policy),
                active: self.active == Some(i),
                proven: u.proven,
                failures: u.failures,
            })
            .collect()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.uplinks.iter().position(|u| u.name == name)
    }

    /// Takes in what was seen of `name` at `now`; what changed. An
    /// observation of an unknown uplink changes nothing.
    pub fn observe(&mut self, name: &str, observation: Observation, now: Millis) -> Changes {
        let Some(i) = self.find(name) else {
            return Changes::default();
        };
        let policy = self.policy;
        let before = self.uplinks[i].state(&policy);
        let u = &mut self.uplinks[i];
        match observation {
            Observation::Present(p) => {
                u.present = p;
                if !p {
                    u.carrier = false;
                    u.associated = false;
                    u.addressed = false;
                    u.reset_probes(now, &policy);
                }
            }
            Observation::Carrier(c) => {
                let regained = c && !u.carrier;
                u.carrier = c;
                if regained {
                    // Perhaps another network (a dock moved): prove it again.
                    u.present = true;
                    u.reset_probes(now, &policy);
                } else if !c {
                    u.associated = false;
                }
            }
            Observation::Associated(a) => {
                u.associated = a;
                if a {
                    u.present = true;
                    u.carrier = true;
                }
            }
            Observation::Addressed(a) => {
                if a != u.addressed {
                    u.addressed = a;
                    u.reset_probes(now, &policy);
                }
            }
            Observation::Probe(ok) => {
                if !u.addressed {
                    // A late answer for an address that is gone.
                } else if ok {
                    u.failures = 0;
                    u.proven = true;
                    u.backoff = policy.interval;
                    u.next_probe = Some(now.saturating_add(policy.interval));
                } else {
                    u.failures = u.failures.saturating_add(1);
                    u.proven = false;
                    let wait = if u.failures < policy.failures_to_fail {
                        policy.retry
                    } else {
                        let wait = u.backoff.min(policy.backoff_max);
                        u.backoff = u.backoff.saturating_mul(2).min(policy.backoff_max);
                        wait
                    };
                    u.next_probe = Some(now.saturating_add(wait));
                }
            }
        }
        let after = self.uplinks[i].state(&policy);
        let mut changes = Changes::default();
        if before != after {
            changes
                .states
                .push((self.uplinks[i].name.clone(), before, after));
        }
        changes.switched = self.choose();
        changes
    }

    /// The uplinks whose probe is due at `now`; each is then counted as
    /// running until its result is observed.
    pub fn probes_due(&mut self, now: Millis) -> Vec<String> {
        let mut due = Vec::new();
        for u in &mut self.uplinks {
            if u.addressed && u.next_probe.is_some_and(|t| t <= now) {
                u.next_probe = None;
                due.push(u.name.clone());
            }
        }
        due
    }

    /// When the next probe is due, if any is wanted.
    pub fn next_due(&self) -> Option<Millis> {
        self.uplinks
            .iter()
            .filter(|u| u.addressed)
            .filter_map(|u| u.next_probe)
            .min()
    }

    /// Moves the choice where it should be; the switch, if it moved.
    fn choose(&mut self) -> Option<Switched> {
        let policy = self.policy;
        let up = |u: &Tracked| u.state(&policy) == LinkState::Up;
        let keep = self.active.filter(|&a| up(&self.uplinks[a])).filter(|&a| {
            !self
                .uplinks
                .iter()
                .any(|u| up(u) && u.proven && u.priority < self.uplinks[a].priority)
        });
        let wanted = keep.or_else(|| {
            self.uplinks
                .iter()
                .enumerate()
                .filter(|(_, u)| up(u))
                .min_by_key(|(i, u)| (!u.proven, u.priority, *i))
                .map(|(i, _)| i)
        });
        if wanted == self.active {
            return None;
        }
        let reason = match self.active {
            None => Reason::FirstUp,
            Some(a) => match self.uplinks[a].state(&policy) {
                LinkState::Up => Reason::Preferred,
                other => Reason::Left(other),
            },
        };
        let from = self.active.map(|a| self.uplinks[a].name.clone());
        self.active = wanted;
        Some(Switched {
            from,
            to: self.active().map(str::to_owned),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn two() -> Choice {
        Choice::new(
            &[
                Candidate {
                    name: "wan0".into(),
                    priority: 10,
                    wifi: false,
                },
                Candidate {
                    name: "wan1".into(),
                    priority: 20,
                    wifi: false,
                },
            ],
            ProbePolicy::default(),
        )
    }

    fn bring_up(c: &mut Choice, name: &str, now: Millis) -> Changes {
        c.observe(name, Observation::Carrier(true), now);
        c.observe(name, Observation::Addressed(true), now)
    }

    #[test]
    fn the_first_uplink_up_is_active_at_once() {
        let mut c = two();
        assert_eq!(c.active(), None);
        let changes = bring_up(&mut c, "wan1", 0);
        assert_eq!(
            changes.switched,
            Some(Switched {
                from: None,
                to: Some("wan1".into()),
                reason: Reason::FirstUp
            })
        );
        assert_eq!(
            changes.states,
            vec![("wan1".into(), LinkState::Addressing, LinkState::Up)]
        );
    }

    #[test]
    fn fail_back_waits_for_the_preferred_uplink_to_pass_a_probe() {
        let mut c = two();
        bring_up(&mut c, "wan1", 0);
        let changes = bring_up(&mut c, "wan0", 5);
        assert_eq!(changes.switched, None, "not proven yet");
        assert_eq!(c.probes_due(5), vec!["wan0".to_owned(), "wan1".to_owned()]);
        let changes = c.observe("wan0", Observation::Probe(true), 6);
        let switched = changes.switched.expect("fail-back");
        assert_eq!(switched.reason, Reason::Preferred);
        assert_eq!(switched.to.as_deref(), Some("wan0"));
    }

    #[test]
    fn losing_carrier_fails_over_at_once_and_says_why() {
        let mut c = two();
        bring_up(&mut c, "wan0", 0);
        bring_up(&mut c, "wan1", 0);
        assert_eq!(c.active(), Some("wan0"));
        let switched = c
            .observe("wan0", Observation::Carrier(false), 10)
            .switched
            .expect("fail-over");
        assert_eq!(switched.reason, Reason::Left(LinkState::NoCarrier));
        assert_eq!(switched.to.as_deref(), Some("wan1"));
        let switched = c
            .observe("wan1", Observation::Present(false), 11)
            .switched
            .expect("none left");
        assert_eq!(switched.to, None);
        assert_eq!(switched.reason, Reason::Left(LinkState::Absent));
    }

    #[test]
    fn probes_fail_an_uplink_after_three_tries_then_back_off() {
        let mut c = two();
        bring_up(&mut c, "wan0", 0);
        bring_up(&mut c, "wan1", 0);
        let mut now = 0;
        let mut switched = None;
        for _ in 0..3 {
            assert!(c.probes_due(now).contains(&"wan0".to_owned()));
            c.observe("wan1", Observation::Probe(true), now);
            switched = c.observe("wan0", Observation::Probe(false), now).switched;
            now += 1_000;
        }
        assert_eq!(c.state("wan0"), Some(LinkState::Failed));
        assert_eq!(
            switched.map(|s| s.reason),
            Some(Reason::Left(LinkState::Failed))
        );
        // Backing off: 30 s, 60 s, 60 s.
        let mut waits = Vec::new();
        let mut at = now - 1_000;
        for _ in 0..3 {
            let next = c.uplinks[0].next_probe.expect("scheduled");
            waits.push(next - at);
            at = next;
            let due = c.probes_due(at);
            assert!(due.contains(&"wan0".to_owned()), "{due:?}");
            if due.contains(&"wan1".to_owned()) {
                c.observe("wan1", Observation::Probe(true), at);
            }
            c.observe("wan0", Observation::Probe(false), at);
        }
        assert_eq!(waits, vec![30_000, 60_000, 60_000]);
        // One pass makes it up, proven, and preferred again.
        let switched = c.observe("wan0", Observation::Probe(true), at).switched;
        assert_eq!(switched.map(|s| s.reason), Some(Reason::Preferred));
    }

    #[test]
    fn a_wifi_uplink_associates_before_it_is_addressed() {
        let mut c = Choice::new(
            &[Candidate {
                name: "wlan0".into(),
                priority: 0,
                wifi: true,
            }],
            ProbePolicy::default(),
        );
        c.observe("wlan0", Observation::Carrier(true), 0);
        assert_eq!(c.state("wlan0"), Some(LinkState::Associating));
        c.observe("wlan0", Observation::Associated(true), 0);
        assert_eq!(c.state("wlan0"), Some(LinkState::Addressing));
        c.observe("wlan0", Observation::Addressed(true), 0);
        assert_eq!(c.active(), Some("wlan0"));
        let left = c
            .observe("wlan0", Observation::Associated(false), 1)
            .switched;
        assert_eq!(
            left.map(|s| s.reason),
            Some(Reason::Left(LinkState::Associating))
        );
    }

    #[test]
    fn an_unknown_name_changes_nothing_and_idle_wants_no_probe() {
        let mut c = two();
        assert_eq!(
            c.observe("eth9", Observation::Carrier(true), 0),
            Changes::default()
        );
        assert_eq!(c.next_due(), None);
        assert!(c.probes_due(u64::MAX).is_empty());
    }

    fn observation() -> impl Strategy<Value = Observation> {
        prop_oneof![
            any::<bool>().prop_map(Observation::Present),
            any::<bool>().prop_map(Observation::Carrier),
            any::<bool>().prop_map(Observation::Associated),
            any::<bool>().prop_map(Observation::Addressed),
            any::<bool>().prop_map(Observation::Probe),
        ]
    }

    proptest! {
        /// Whatever is observed, in any order: the active uplink is `up`
        /// whenever there is one, none is active when none is up, every
        /// switch is reported, and a better proven uplink is never left
        /// waiting behind the active one.
        #[test]
        fn the_choice_always_follows_the_states(
            steps in proptest::collection::vec((0usize..3, observation(), 0u64..5_000), 0..200)
        ) {
            let names = ["wan0", "wan1", "wlan0"];
            let mut c = Choice::new(
                &[
                    Candidate { name: names[0].into(), priority: 5, wifi: false },
                    Candidate { name: names[1].into(), priority: 5, wifi: false },
                    Candidate { name: names[2].into(), priority: 1, wifi: true },
                ],
                ProbePolicy::default(),
            );
            let mut now = 0;
            let mut active = None::<String>;
            for (which, obs, dt) in steps {
                now += dt;
                let _ = c.probes_due(now);
                let changes = c.observe(names[which], obs, now);
                if let Some(s) = &changes.switched {
                    prop_assert_eq!(&s.from, &active);
                    prop_assert_ne!(&s.from, &s.to);
                    active = s.to.clone();
                }
                prop_assert_eq!(c.active().map(str::to_owned), active.clone());
                let status = c.status();
                let any_up = status.iter().any(|s| s.state == LinkState::Up);
                match status.iter().find(|s| s.active) {
                    Some(a) => {
                        prop_assert_eq!(a.state, LinkState::Up);
                        prop_assert!(!status.iter().any(|s| s.state == LinkState::Up
                            && s.proven && s.priority < a.priority));
                    }
                    None => prop_assert!(!any_up),
                }
                if let Some(next) = c.next_due() {
                    prop_assert!(next <= now + 60_000);
                }
            }
        }
    }
}
