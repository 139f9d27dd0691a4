//! A DHCPv6 server in a few lines, built with `dhcproto` (not the
//! client's own parser, so the two check each other): answers a client
//! message with an Advertise or Reply carrying what a [`Grant`] says.

#![allow(dead_code)]

use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, IAPrefix, Message, MessageType, OptionCode, Status,
    StatusCode, IANA, IAPD,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_dhcp6::client::{Action, Millis};
use netvm_dhcp6::Client;
use std::net::Ipv6Addr;

/// The client's MAC.
pub const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

/// What a server offers or grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Its DUID.
    pub server: Vec<u8>,
    /// The Preference option.
    pub preference: Option<u8>,
    /// IA_NA: address, preferred, valid.
    pub address: Option<(Ipv6Addr, u32, u32)>,
    /// IA_PD: prefix, length, preferred, valid.
    pub prefix: Option<(Ipv6Addr, u8, u32, u32)>,
    /// A Status Code in the IA_NA (then it carries no address).
    pub na_status: Option<u16>,
    /// A Status Code in the IA_PD.
    pub pd_status: Option<u16>,
    /// T1 and T2 of both IAs.
    pub t1: u32,
    /// See `t1`.
    pub t2: u32,
    /// Option 23.
    pub dns: Vec<Ipv6Addr>,
    /// Option 24.
    pub search: Vec<String>,
}

impl Grant {
    /// Server 1: an address, a /56, T1 20 s, T2 32 s, lifetimes 40/60.
    pub fn both() -> Grant {
        Grant {
            server: vec![0, 2, 0, 0, 0x09, 0xbf, 1],
            preference: None,
            address: Some(("2001:db8:1::100".parse().expect("an address"), 40, 60)),
            prefix: Some((
                "2001:db8:8000:100::".parse().expect("an address"),
                56,
                40,
                60,
            )),
            na_status: None,
            pd_status: None,
            t1: 20,
            t2: 32,
            dns: vec!["2001:db8:1::53".parse().expect("an address")],
            search: vec!["example.test".into()],
        }
    }
}

/// The messages among `actions`, decoded.
pub fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(bytes) => {
                Some(Message::decode(&mut Decoder::new(bytes)).expect("we send valid messages"))
            }
            _ => None,
        })
        .collect()
}

/// The one message among `actions`.
pub fn one_sent(actions: &[Action]) -> Message {
    let mut all = sent(actions);
    assert_eq!(all.len(), 1, "one message expected: {actions:?}");
    all.remove(0)
}

/// The leases among `actions`.
pub fn bound(actions: &[Action]) -> Vec<netvm_dhcp6::Lease6> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Bound(lease) => Some(lease.clone()),
            _ => None,
        })
        .collect()
}

/// Raw option 24 for `names`.
pub fn search_option(names: &[String]) -> Vec<u8> {
    let mut body = Vec::new();
    for name in names {
        for label in name.split('.') {
            body.push(label.len() as u8);
            body.extend_from_slice(label.as_bytes());
        }
        body.push(0);
    }
    let mut out = 24u16.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The server's answer of `kind` to `to`.
pub fn answer(kind: MessageType, to: &Message, g: &Grant) -> Vec<u8> {
    let mut m = Message::new_with_id(kind, to.xid());
    let opts = m.opts_mut();
    if let Some(DhcpOption::ClientId(id)) = to.opts().get(OptionCode::ClientId) {
        opts.insert(DhcpOption::ClientId(id.clone()));
    }
    opts.insert(DhcpOption::ServerId(g.server.clone()));
    if let Some(p) = g.preference {
        opts.insert(DhcpOption::Preference(p));
    }
    let status = |code: u16| {
        DhcpOption::StatusCode(StatusCode {
            status: Status::from(code),
            msg: "no".into(),
        })
    };
    if to.opts().get(OptionCode::IANA).is_some() {
        let mut ia = DhcpOptions::new();
        if let Some(code) = g.na_status {
            ia.insert(status(code));
        } else if let Some((addr, preferred_life, valid_life)) = g.address {
            ia.insert(DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life,
                valid_life,
                opts: DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IANA(IANA {
            id: 1,
            t1: g.t1,
            t2: g.t2,
            opts: ia,
        }));
    }
    if to.opts().get(OptionCode::IAPD).is_some() {
        let mut ia = DhcpOptions::new();
        if let Some(code) = g.pd_status {
            ia.insert(status(code));
        } else if let Some((prefix_ip, prefix_len, preferred_lifetime, valid_lifetime)) = g.prefix {
            ia.insert(DhcpOption::IAPrefix(IAPrefix {
                preferred_lifetime,
                valid_lifetime,
                prefix_len,
                prefix_ip,
                opts: DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IAPD(IAPD {
            id: 2,
            t1: g.t1,
            t2: g.t2,
            opts: ia,
        }));
    }
    if !g.dns.is_empty() {
        opts.insert(DhcpOption::DomainNameServers(g.dns.clone()));
    }
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).expect("encodes");
    if !g.search.is_empty() {
        out.extend(search_option(&g.search));
    }
    out
}

/// Starts `client` at `now` and returns its first Solicit and when it went.
pub fn solicit(client: &mut Client, now: Millis) -> (Message, Millis) {
    client.start(now);
    let at = client.next_deadline().expect("a Solicit is due");
    assert!(at >= now && at <= now + 1_000, "SOL_MAX_DELAY");
    (one_sent(&client.poll(at)), at)
}

/// A whole Solicit / Advertise / Request / Reply with one server; returns
/// the lease and the time it was bound.
pub fn bind(client: &mut Client, g: &Grant) -> (netvm_dhcp6::Lease6, Millis) {
    let (sol, at) = solicit(client, 0);
    assert!(client
        .handle(at + 10, &answer(MessageType::Advertise, &sol, g))
        .is_empty());
    let t = client.next_deadline().expect("present");
    let req = one_sent(&client.poll(t));
    assert_eq!(req.msg_type(), MessageType::Request);
    let actions = client.handle(t + 5, &answer(MessageType::Reply, &req, g));
    let mut leases = bound(&actions);
    assert_eq!(leases.len(), 1, "{actions:?}");
    (leases.remove(0), t + 5)
}
