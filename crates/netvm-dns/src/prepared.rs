//! Replies already encoded: the common answers (internal names, cache
//! hits) are encoded once by hickory-proto and then reused for every
//! client that asks the same question, with only the client's ID and the
//! client's spelling of the question copied in. The encoder writes the
//! question name in full at offset 12, so a question of the same name in
//! another letter case has the same length and every compression pointer
//! stays valid. A cached answer's copy is kept for one second of its TTL
//! countdown at most.

use crate::cache::Millis;
use hickory_proto::rr::{Name, RecordType};
use std::collections::HashMap;

/// What makes two queries get byte-identical replies (but for the ID and
/// the question's letter case): name, type, RD and whether EDNS was used.
pub type PreparedKey = (Name, RecordType, bool, bool);

/// Where a prepared reply came from (for the counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The internal zone.
    Local,
    /// The cache.
    Cache,
}

#[derive(Debug, Clone)]
struct Prepared {
    bytes: Vec<u8>,
    source: Source,
    /// Usable until (ms): the end of the second it was encoded in for a
    /// cached answer, forever (until the zone changes) for a local one.
    until: Millis,
}

/// The prepared replies, bounded.
#[derive(Debug)]
pub struct PreparedReplies {
    replies: HashMap<PreparedKey, Prepared>,
    limit: usize,
}

impl PreparedReplies {
    /// At most `limit` replies (the table is emptied when it is full).
    pub fn new(limit: usize) -> PreparedReplies {
        PreparedReplies {
            replies: HashMap::new(),
            limit: limit.max(16),
        }
    }

    /// Forgets every reply from the zone (it changed).
    pub fn forget_local(&mut self) {
        self.replies.retain(|_, p| p.source != Source::Local);
    }

    /// Keeps `bytes`, the reply to `key` from `source`.
    pub fn keep(&mut self, key: PreparedKey, bytes: &[u8], source: Source, now: Millis) {
        if self.replies.len() >= self.limit {
            self.replies.clear();
        }
        let until = match source {
            Source::Local => Millis::MAX,
            Source::Cache => (now / 1000 + 1) * 1000,
        };
        self.replies.insert(
            key,
            Prepared {
                bytes: bytes.to_vec(),
                source,
                until,
            },
        );
    }

    /// The reply to `query` (its bytes) with its `id`, if one is prepared,
    /// still good at `now` and no longer than `payload`.
    pub fn reply(
        &self,
        key: &PreparedKey,
        query: &[u8],
        id: u16,
        payload: usize,
        now: Millis,
    ) -> Option<(Vec<u8>, Source)> {
        let prepared = self.replies.get(key)?;
        if now >= prepared.until || prepared.bytes.len() > payload {
            return None;
        }
        let question = question_len(query)?;
        let end = 12 + question;
        let stored = prepared.bytes.get(12..end)?;
        let asked = query.get(12..end)?;
        if !stored.eq_ignore_ascii_case(asked) {
            return None;
        }
        let mut bytes = prepared.bytes.clone();
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        bytes[12..end].copy_from_slice(asked);
        Some((bytes, prepared.source))
    }
}

/// The length of the first question (an uncompressed name, type and
/// class) of a message, if it is well formed.
fn question_len(message: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let label = usize::from(*message.get(at)?);
        if label == 0 {
            break;
        }
        if label > 63 {
            return None; // a compression pointer or an extended label
        }
        at += 1 + label;
    }
    let len = at + 1 + 4 - 12;
    (message.len() >= 12 + len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_measured_only_when_whole() {
        let mut query = vec![0u8; 12];
        query.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        assert_eq!(question_len(&query), Some(17));
        assert_eq!(question_len(&query[..query.len() - 1]), None);
        let mut pointer = vec![0u8; 12];
        pointer.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(question_len(&pointer), None);
    }
}
