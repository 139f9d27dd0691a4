//! The RFC 7050 probe: asks the uplink's DNS servers for the AAAA
//! records of `ipv4only.arpa`. On a network with NAT64 and DNS64 the
//! answers are the well-known IPv4 addresses 192.0.0.170 and .171
//! embedded in the NAT64 prefix (RFC 6052), from which the prefix is
//! read back (`netvm_ndp::nat64_prefixes_from_aaaa`). One query per
//! server in turn, each waited for at most [`TIMEOUT`] or until the
//! agent stops; run when a router advertisement carries no PREF64 and
//! the uplink has no IPv4, not periodically.

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use netvm_runtime::Stop;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::str::FromStr;

/// The name RFC 7050 asks for.
pub const IPV4ONLY_ARPA: &str = "ipv4only.arpa.";

/// How long one server may take to answer.
pub const TIMEOUT: std::time::Duration = crate::dns_exchange::TIMEOUT;

/// The query: AAAA of `ipv4only.arpa.`, recursion desired, with `id`.
pub fn query(id: u16) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    if let Ok(name) = Name::from_str(IPV4ONLY_ARPA) {
        message.add_query(Query::query(name, RecordType::AAAA));
    }
    message.to_vec().unwrap_or_default()
}

/// The AAAA addresses of a reply to [`query`] with `id`: only those of
/// answer records owned by `ipv4only.arpa.`, only from a response with
/// the same id and the same single question. Anything else: none.
pub fn answers(id: u16, reply: &[u8]) -> Vec<Ipv6Addr> {
    let Ok(message) = Message::from_vec(reply) else {
        return Vec::new();
    };
    let Ok(expected) = Name::from_str(IPV4ONLY_ARPA) else {
        return Vec::new();
    };
    let asked = message.queries.first();
    if message.metadata.id != id
        || message.metadata.message_type != MessageType::Response
        || message.queries.len() != 1
        || !asked.is_some_and(|q| q.name() == &expected && q.query_type() == RecordType::AAAA)
    {
        return Vec::new();
    }
    message
        .answers
        .iter()
        .filter(|r| r.name == expected)
        .filter_map(|r| match &r.data {
            RData::AAAA(aaaa) => Some(aaaa.0),
            _ => None,
        })
        .collect()
}

/// Asks each of `servers` in turn until one answers with addresses;
/// its AAAA answers (empty when none did, or when `stop` was stopped).
pub fn probe(servers: &[SocketAddr], stop: &Stop, id: u16) -> io::Result<Vec<Ipv6Addr>> {
    for server in servers {
        if stop.is_stopped() {
            break;
        }
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        if let Some(reply) = crate::dns_exchange::exchange(&socket, *server, &query(id), stop)? {
            let found = answers(id, &reply);
            if !found.is_empty() {
                return Ok(found);
            }
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::AAAA;
    use hickory_proto::rr::Record;
    use proptest::prelude::*;

    fn reply(id: u16, name: &str, addresses: &[Ipv6Addr]) -> Vec<u8> {
        let mut message = Message::from_vec(&query(id)).expect("our query parses");
        message.metadata.message_type = MessageType::Response;
        let owner = Name::from_str(name).expect("name");
        for ip in addresses {
            message.add_answer(Record::from_rdata(
                owner.clone(),
                60,
                RData::AAAA(AAAA(*ip)),
            ));
        }
        message.to_vec().expect("encodes")
    }

    #[test]
    fn the_answers_of_our_question_are_read_and_nothing_else() {
        let ip: Ipv6Addr = "64:ff9b::c000:aa".parse().expect("ip");
        assert_eq!(answers(7, &reply(7, IPV4ONLY_ARPA, &[ip])), [ip]);
        // Another id, another owner name: nothing.
        assert!(answers(8, &reply(7, IPV4ONLY_ARPA, &[ip])).is_empty());
        assert!(answers(7, &reply(7, "example.org.", &[ip])).is_empty());
        // Our own query is not a response.
        assert!(answers(7, &query(7)).is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = answers(1, &bytes);
        }
    }
}
