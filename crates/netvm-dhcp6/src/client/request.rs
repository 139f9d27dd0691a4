//! The messages the client sends (RFC 8415 §18.2), built with
//! `dhcproto`: Solicit, Request, Renew, Rebind, Release.

use super::{IA_NA_ID, IA_PD_ID};
use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, IAPrefix, Message, MessageType, OptionCode, IANA, IAPD, ORO,
};
use dhcproto::{Encodable, Encoder};
use std::net::Ipv6Addr;

/// What goes in one of our messages.
pub(super) struct Build<'a> {
    pub(super) kind: MessageType,
    pub(super) xid: u32,
    pub(super) duid: &'a [u8],
    pub(super) elapsed: u16,
    pub(super) server: Option<&'a [u8]>,
    pub(super) na: bool,
    pub(super) address: Option<Ipv6Addr>,
    pub(super) prefix: Option<(Ipv6Addr, u8)>,
    pub(super) oro: bool,
}

/// One of our messages (§18.2): Client Identifier, Elapsed Time, the
/// Server Identifier when it is addressed to one, our IAs with what we
/// hold or were offered (lifetimes 0: the server decides), and an Option
/// Request for DNS servers, the search list and SOL_MAX_RT (not in a
/// Release, §18.2.7).
pub(super) fn build(b: &Build<'_>) -> Vec<u8> {
    let mut m = Message::new_with_id(b.kind, [0, 0, 0]);
    m.set_xid_num(b.xid);
    let opts = m.opts_mut();
    opts.insert(DhcpOption::ClientId(b.duid.to_vec()));
    opts.insert(DhcpOption::ElapsedTime(b.elapsed));
    if let Some(server) = b.server {
        opts.insert(DhcpOption::ServerId(server.to_vec()));
    }
    if b.na {
        let mut ia = DhcpOptions::new();
        if let Some(addr) = b.address {
            ia.insert(DhcpOption::IAAddr(IAAddr {
                addr,
                preferred_life: 0,
                valid_life: 0,
                opts: DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IANA(IANA {
            id: IA_NA_ID,
            t1: 0,
            t2: 0,
            opts: ia,
        }));
    }
    if b.oro || b.prefix.is_some() {
        let mut ia = DhcpOptions::new();
        if let Some((prefix_ip, prefix_len)) = b.prefix {
            ia.insert(DhcpOption::IAPrefix(IAPrefix {
                preferred_lifetime: 0,
                valid_lifetime: 0,
                prefix_len,
                prefix_ip,
                opts: DhcpOptions::new(),
            }));
        }
        opts.insert(DhcpOption::IAPD(IAPD {
            id: IA_PD_ID,
            t1: 0,
            t2: 0,
            opts: ia,
        }));
    }
    if b.oro {
        opts.insert(DhcpOption::ORO(ORO {
            opts: vec![
                OptionCode::DomainNameServers,
                OptionCode::DomainSearchList,
                OptionCode::SolMaxRt,
            ],
        }));
    }
    let mut out = Vec::with_capacity(128);
    // Encoding a message we built ourselves cannot fail.
    let _ = m.encode(&mut Encoder::new(&mut out));
    out
}
