//! The lease journal's byte format: what is written for every lease
//! change, and how a file of them is read back. Pure: the driver owns the
//! file, the appends, fsync and compaction.
//!
//! A journal is an 8-byte header (`NVMLJ001`) followed by records:
//!
//! ```text
//! u32 le  length of kind + body (at most MAX_RECORD)
//! u8      kind (1 bound, 2 released, 3 declined; others are carried)
//! ...     body
//! u32 le  CRC-32 of kind + body
//! ```
//!
//! Reading checks the length and the checksum before any field is used.
//! The first record that fails (a torn write at power loss) ends the valid
//! part: it and everything after it is reported, never misread. Records of
//! a kind this version does not know are kept as they are and carried
//! through compaction.

use crate::client::ClientKey;
use crate::time::Timestamp;
use netvm_description::values::MacAddr;
use std::net::Ipv4Addr;

/// The file header.
pub const HEADER: &[u8; 8] = b"NVMLJ001";

/// Largest `kind + body` length accepted.
pub const MAX_RECORD: usize = 1024;

const KIND_BOUND: u8 = 1;
const KIND_RELEASED: u8 = 2;
const KIND_DECLINED: u8 = 3;

/// One lease change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An address was acknowledged to a client until `until`.
    Bound {
        /// The address.
        ip: Ipv4Addr,
        /// The client's hardware address.
        mac: MacAddr,
        /// The lease's owner.
        client: ClientKey,
        /// Expiry.
        until: Timestamp,
        /// Its host name, if any.
        hostname: Option<String>,
    },
    /// The client gave the address back.
    Released {
        /// The address.
        ip: Ipv4Addr,
        /// Who released it.
        client: ClientKey,
    },
    /// A client declined the address: out of use until `until`.
    Declined {
        /// The address.
        ip: Ipv4Addr,
        /// End of probation.
        until: Timestamp,
    },
    /// A record of a kind this version does not know, kept as written.
    Unknown {
        /// Its kind.
        kind: u8,
        /// Its body.
        body: Vec<u8>,
    },
}

fn put_client(out: &mut Vec<u8>, client: &ClientKey) {
    let (tag, bytes): (u8, &[u8]) = match client {
        ClientKey::Mac(mac) => (0, &mac.0),
        ClientKey::Id(id) => (1, id),
    };
    out.push(tag);
    // Client ids come from option 61, at most 255 octets long.
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&bytes[..bytes.len().min(255)]);
}

impl Record {
    /// Appends the record's bytes (length, kind, body, checksum) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(64);
        let kind = match self {
            Record::Bound {
                ip,
                mac,
                client,
                until,
                hostname,
            } => {
                body.extend_from_slice(&ip.octets());
                body.extend_from_slice(&mac.0);
                body.extend_from_slice(&until.0.to_le_bytes());
                put_client(&mut body, client);
                let name = hostname.as_deref().unwrap_or("").as_bytes();
                let name = &name[..name.len().min(255)];
                body.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
                body.extend_from_slice(name);
                KIND_BOUND
            }
            Record::Released { ip, client } => {
                body.extend_from_slice(&ip.octets());
                put_client(&mut body, client);
                KIND_RELEASED
            }
            Record::Declined { ip, until } => {
                body.extend_from_slice(&ip.octets());
                body.extend_from_slice(&until.0.to_le_bytes());
                KIND_DECLINED
            }
            Record::Unknown { kind, body: b } => {
                body.extend_from_slice(b);
                *kind
            }
        };
        let len = u32::try_from(body.len() + 1).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        let start = out.len();
        out.push(kind);
        out.extend_from_slice(&body);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }
}

/// A reader over a body that fails instead of reading past the end.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn ip(&mut self) -> Option<Ipv4Addr> {
        let b = self.take(4)?;
        Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
    }

    fn time(&mut self) -> Option<Timestamp> {
        Some(Timestamp(u64::from_le_bytes(
            self.take(8)?.try_into().ok()?,
        )))
    }

    fn client(&mut self) -> Option<ClientKey> {
        let tag = self.take(1)?[0];
        let len = usize::from(self.take(1)?[0]);
        let bytes = self.take(len)?;
        match tag {
            0 => Some(ClientKey::Mac(MacAddr(bytes.try_into().ok()?))),
            1 => Some(ClientKey::Id(bytes.to_vec())),
            _ => None,
        }
    }
}

fn decode_body(kind: u8, bytes: &[u8]) -> Option<Record> {
    let mut b = Body(bytes);
    let record = match kind {
        KIND_BOUND => {
            let ip = b.ip()?;
            let mac = MacAddr(b.take(6)?.try_into().ok()?);
            let until = b.time()?;
            let client = b.client()?;
            let len = usize::from(b.take(1)?[0]);
            let name = b.take(len)?;
            Record::Bound {
                ip,
                mac,
                client,
                until,
                hostname: (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned()),
            }
        }
        KIND_RELEASED => Record::Released {
            ip: b.ip()?,
            client: b.client()?,
        },
        KIND_DECLINED => Record::Declined {
            ip: b.ip()?,
            until: b.time()?,
        },
        _ => {
            return Some(Record::Unknown {
                kind,
                body: bytes.to_vec(),
            })
        }
    };
    // A known kind with bytes left over is not what this version wrote.
    b.0.is_empty().then_some(record)
}

/// A lease as a journal records it, for listing without a server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JournalLease {
    /// The address.
    pub ip: Ipv4Addr,
    /// `bound` or `declined`.
    pub state: &'static str,
    /// The holder's MAC (bound leases).
    pub mac: Option<MacAddr>,
    /// The holder (bound leases).
    pub client: Option<ClientKey>,
    /// Host name (bound leases).
    pub hostname: Option<String>,
    /// End of the lease or of probation.
    pub until: Timestamp,
}

/// The leases a sequence of records leaves, in address order (ended ones
/// included; filter on `until` for the live ones).
pub fn fold(records: &[Record]) -> Vec<JournalLease> {
    let mut by_ip: std::collections::BTreeMap<Ipv4Addr, JournalLease> = Default::default();
    for record in records {
        match record {
            Record::Bound {
                ip,
                mac,
                client,
                until,
                hostname,
            } => {
                // A client holds one address: a move ends the old lease.
                by_ip.retain(|other, l| other == ip || l.client.as_ref() != Some(client));
                by_ip.insert(
                    *ip,
                    JournalLease {
                        ip: *ip,
                        state: "bound",
                        mac: Some(*mac),
                        client: Some(client.clone()),
                        hostname: hostname.clone(),
                        until: *until,
                    },
                );
            }
            Record::Released { ip, client } => {
                if by_ip
                    .get(ip)
                    .is_some_and(|l| l.client.as_ref() == Some(client))
                {
                    by_ip.remove(ip);
                }
            }
            Record::Declined { ip, until } => {
                by_ip.insert(
                    *ip,
                    JournalLease {
                        ip: *ip,
                        state: "declined",
                        mac: None,
                        client: None,
                        hostname: None,
                        until: *until,
                    },
                );
            }
            Record::Unknown { .. } => {}
        }
    }
    by_ip.into_values().collect()
}

/// What reading a journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    /// The records of the valid part, in order.
    pub records: Vec<Record>,
    /// Length of the valid part (header included); appends go here.
    pub valid_len: usize,
    /// Bytes after the valid part (a torn or damaged tail), ignored.
    pub ignored: usize,
}

/// Why a journal cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The file does not start with the journal header.
    #[error("not a netvm lease journal (bad header)")]
    BadHeader,
}

/// Reads a whole journal. An empty input is an empty journal.
pub fn replay(bytes: &[u8]) -> Result<Replay, JournalError> {
    if bytes.is_empty() {
        return Ok(Replay {
            records: Vec::new(),
            valid_len: 0,
            ignored: 0,
        });
    }
    if bytes.len() < HEADER.len() || &bytes[..HEADER.len()] != HEADER {
        return Err(JournalError::BadHeader);
    }
    let mut at = HEADER.len();
    let mut records = Vec::new();
    while let Some((record, next)) = record_at(bytes, at) {
        records.push(record);
        at = next;
    }
    Ok(Replay {
        records,
        valid_len: at,
        ignored: bytes.len() - at,
    })
}

/// The record at `at` and where the next one starts, if it is whole,
/// its checksum holds and its body reads as its kind.
fn record_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    let len = usize::try_from(len)
        .ok()
        .filter(|l| (1..=MAX_RECORD).contains(l))?;
    let payload = bytes.get(at + 4..at + 4 + len)?;
    let crc = u32::from_le_bytes(bytes.get(at + 4 + len..at + 8 + len)?.try_into().ok()?);
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let record = decode_body(payload[0], &payload[1..])?;
    Some((record, at + 8 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::Bound {
                ip: Ipv4Addr::new(10, 0, 0, 5),
                mac: MacAddr([2, 0, 0, 0, 0, 5]),
                client: ClientKey::Id(vec![1, 2, 0, 0, 0, 0, 5]),
                until: Timestamp(1_700_000_000_000),
                hostname: Some("pc5".to_owned()),
            },
            Record::Released {
                ip: Ipv4Addr::new(10, 0, 0, 5),
                client: ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 5])),
            },
            Record::Declined {
                ip: Ipv4Addr::new(10, 0, 0, 6),
                until: Timestamp(42),
            },
            Record::Unknown {
                kind: 200,
                body: vec![9, 9, 9],
            },
        ]
    }

    fn journal(records: &[Record]) -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        for r in records {
            r.encode(&mut bytes);
        }
        bytes
    }

    #[test]
    fn round_trip_carries_unknown_kinds() {
        let bytes = journal(&sample());
        let replay = replay(&bytes).expect("journal");
        assert_eq!(replay.records, sample());
        assert_eq!((replay.valid_len, replay.ignored), (bytes.len(), 0));
    }

    #[test]
    fn a_torn_tail_is_ignored_at_every_cut() {
        let bytes = journal(&sample());
        let whole = replay(&bytes).expect("journal").records.len();
        for cut in HEADER.len()..bytes.len() {
            let r = replay(&bytes[..cut]).expect("journal");
            assert!(r.records.len() < whole);
            assert_eq!(r.records[..], sample()[..r.records.len()]);
            assert_eq!(r.valid_len + r.ignored, cut);
        }
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let mut bytes = journal(&sample()[..1]);
        let last = bytes.len() - 6;
        bytes[last] ^= 0x10;
        let r = replay(&bytes).expect("journal");
        assert!(r.records.is_empty());
        assert_eq!(r.valid_len, HEADER.len());
    }

    #[test]
    fn fold_keeps_the_last_word_per_address_and_client() {
        // The sample's release comes from another client: .5 stays bound.
        let folded = fold(&sample());
        let states: Vec<(Ipv4Addr, &str)> = folded.iter().map(|l| (l.ip, l.state)).collect();
        assert_eq!(
            states,
            [
                (Ipv4Addr::new(10, 0, 0, 5), "bound"),
                (Ipv4Addr::new(10, 0, 0, 6), "declined")
            ]
        );
        let owner = ClientKey::Id(vec![1, 2, 0, 0, 0, 0, 5]);
        let mut records = sample();
        records.push(Record::Released {
            ip: Ipv4Addr::new(10, 0, 0, 5),
            client: owner,
        });
        assert_eq!(fold(&records).len(), 1, "released by its owner");
        let client = ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 1]));
        let bound = |last: u8| Record::Bound {
            ip: Ipv4Addr::new(10, 0, 0, last),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            client: client.clone(),
            until: Timestamp(1),
            hostname: None,
        };
        let moved = fold(&[bound(1), bound(2)]);
        assert_eq!(
            moved.iter().map(|l| l.ip).collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 2)]
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(replay(b"hello world"), Err(JournalError::BadHeader));
        assert_eq!(replay(b"").map(|r| r.valid_len), Ok(0));
    }
}
