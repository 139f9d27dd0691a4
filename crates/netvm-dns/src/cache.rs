//! The answer cache: upstream answers by (name, type), bounded (least
//! recently used out first), each kept as long as its TTL allows, negative
//! answers as long as their SOA says (RFC 2308), and served with the TTLs
//! counted down.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use lru::LruCache;
use std::num::NonZeroUsize;

/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// Longest a positive answer is kept (one day).
const MAX_TTL: u32 = 86_400;
/// Longest a negative answer is kept (RFC 2308 suggests at most 3 hours).
const MAX_NEGATIVE_TTL: u32 = 3_600;

/// The cache key: a lower-case name and a type (class IN only).
pub type Key = (Name, RecordType);

/// A cached answer.
#[derive(Debug, Clone)]
struct Entry {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    stored: Millis,
    expires: Millis,
}

/// An answer from the cache, TTLs counted down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// NOERROR or NXDOMAIN.
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of a negative answer).
    pub authorities: Vec<Record>,
}

/// The cache.
pub struct Cache {
    entries: LruCache<Key, Entry>,
}

impl Cache {
    /// A cache of at most `capacity` answers (at least one).
    pub fn new(capacity: usize) -> Cache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Cache {
            entries: LruCache::new(capacity),
        }
    }

    /// How many answers it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The live answer for `key` at `now`, TTLs reduced by its age.
    pub fn get(&mut self, key: &Key, now: Millis) -> Option<Cached> {
        let entry = self.entries.get(key)?;
        if now >= entry.expires {
            self.entries.pop(key);
            return None;
        }
        let age = u32::try_from((now.saturating_sub(entry.stored)) / 1000).unwrap_or(u32::MAX);
        let aged = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(age);
                    r
                })
                .collect()
        };
        Some(Cached {
            rcode: entry.rcode,
            answers: aged(&entry.answers),
            authorities: aged(&entry.authorities),
        })
    }

    /// Keeps `response` for `key` if it may be cached: NOERROR with
    /// answers (for their smallest TTL), or NXDOMAIN / NOERROR without
    /// answers that carries an SOA (for min(SOA TTL, SOA minimum)).
    pub fn insert(&mut self, key: Key, response: &Message, now: Millis) {
        let Some(ttl) = cache_ttl(response) else {
            return;
        };
        let authorities = if response.answers.is_empty() {
            response
                .authorities
                .iter()
                .filter(|r| r.record_type() == RecordType::SOA)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        self.entries.put(
            key,
            Entry {
                rcode: response.metadata.response_code,
                answers: response.answers.clone(),
                authorities,
                stored: now,
                expires: now + u64::from(ttl) * 1000,
            },
        );
    }
}

/// How long `response` may be cached, or `None`.
fn cache_ttl(response: &Message) -> Option<u32> {
    let rcode = response.metadata.response_code;
    if response.metadata.truncation {
        return None;
    }
    if rcode == ResponseCode::NoError && !response.answers.is_empty() {
        let ttl = response.answers.iter().map(|r| r.ttl).min()?;
        return (ttl > 0).then_some(ttl.min(MAX_TTL));
    }
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return None;
    }
    let soa = response.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some((r.ttl, soa.minimum)),
        _ => None,
    })?;
    let ttl = soa.0.min(soa.1);
    (ttl > 0).then_some(ttl.min(MAX_NEGATIVE_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::OpCode;
    use hickory_proto::rr::rdata::{A, SOA};
    use std::net::Ipv4Addr;

    fn key(name: &str) -> Key {
        (Name::from_ascii(name).expect("name"), RecordType::A)
    }

    fn answer(name: &str, ttl: u32) -> Message {
        let mut m = Message::response(1, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::from_ascii(name).expect("name"),
            ttl,
            RData::A(A(Ipv4Addr::new(203, 0, 113, 7))),
        ));
        m
    }

    fn nxdomain(soa_ttl: u32, minimum: u32) -> Message {
        let mut m = Message::response(1, OpCode::Query);
        m.metadata.response_code = ResponseCode::NXDomain;
        let zone = Name::from_ascii("example.").expect("name");
        m.add_authority(Record::from_rdata(
            zone.clone(),
            soa_ttl,
            RData::SOA(SOA::new(zone.clone(), zone, 1, 1, 1, 1, minimum)),
        ));
        m
    }

    #[test]
    fn answers_age_and_expire_with_their_ttl() {
        let mut cache = Cache::new(10);
        cache.insert(key("a.example."), &answer("a.example.", 30), 0);
        let hit = cache.get(&key("a.example."), 10_500).expect("live");
        assert_eq!(hit.answers[0].ttl, 20);
        assert!(cache.get(&key("a.example."), 30_000).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn negative_answers_live_as_long_as_their_soa_says() {
        let mut cache = Cache::new(10);
        cache.insert(key("n.example."), &nxdomain(300, 45), 0);
        let hit = cache.get(&key("n.example."), 44_000).expect("live");
        assert_eq!(hit.rcode, ResponseCode::NXDomain);
        assert_eq!(hit.authorities.len(), 1);
        assert!(cache.get(&key("n.example."), 45_000).is_none());
        // Without an SOA a negative answer is not cached.
        let mut bare = Message::response(1, OpCode::Query);
        bare.metadata.response_code = ResponseCode::NXDomain;
        cache.insert(key("m.example."), &bare, 0);
        assert!(cache.get(&key("m.example."), 1).is_none());
    }

    #[test]
    fn the_least_recently_used_answer_leaves_first() {
        let mut cache = Cache::new(2);
        cache.insert(key("a."), &answer("a.", 60), 0);
        cache.insert(key("b."), &answer("b.", 60), 0);
        assert!(cache.get(&key("a."), 1).is_some());
        cache.insert(key("c."), &answer("c.", 60), 0);
        assert!(cache.get(&key("b."), 1).is_none());
        assert!(cache.get(&key("a."), 1).is_some());
        assert_eq!(cache.len(), 2);
        // Zero TTL and server failures are never kept.
        cache.insert(key("z."), &answer("z.", 0), 0);
        assert!(cache.get(&key("z."), 1).is_none());
    }
}
