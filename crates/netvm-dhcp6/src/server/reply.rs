//! Building Advertise and Reply messages with dhcproto (RFC 8415
//! sections 18.3.1 to 18.3.8).
//!
//! Every reply echoes the client's transaction-id and Client Identifier
//! and carries our Server Identifier. An IA is answered with its address
//! and lifetimes, or with a Status Code inside it (section 21.13: in
//! RFC 8415 the IA-level status replaces RFC 3315's top-level
//! NoAddrsAvail). Advertise, and Reply to Solicit, Request, Renew, Rebind
//! and Information-request carry the DNS options when configured (sent
//! whether or not the client's ORO names them, as section 21.7 allows).

use super::config::Checked;
use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, Status, StatusCode,
    UnknownOption, IANA, IAPD, IATA,
};
use dhcproto::{Encodable, Encoder};
use std::net::Ipv6Addr;

/// The kind of reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// ADVERTISE (2).
    Advertise,
    /// REPLY (7).
    Reply,
}

/// The answer to one IA of the client's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IaAnswer {
    /// IA_NA with an address and lifetimes, and the other addresses the
    /// client named with lifetimes 0 (section 18.3.4: not to be used).
    Address {
        iaid: u32,
        ip: Ipv6Addr,
        withdrawn: Vec<Ipv6Addr>,
    },
    /// IA_NA with a status and no address.
    NaStatus { iaid: u32, status: Status },
    /// IA_TA: we do not hand out temporary addresses.
    TaRefused { iaid: u32 },
    /// IA_PD: we do not delegate prefixes.
    PdRefused { iaid: u32 },
}

/// Everything a reply says.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub kind: ReplyKind,
    pub xid: [u8; 3],
    pub client_id: Option<Vec<u8>>,
    pub ias: Vec<IaAnswer>,
    /// A top-level Status Code (Confirm, Release, Decline).
    pub status: Option<Status>,
    /// A Reply to a Solicit with Rapid Commit.
    pub rapid_commit: bool,
    /// DNS servers and search list.
    pub dns_options: bool,
}

impl Draft {
    pub fn new(kind: ReplyKind, xid: [u8; 3], client_id: Option<&Vec<u8>>) -> Draft {
        Draft {
            kind,
            xid,
            client_id: client_id.cloned(),
            ias: Vec::new(),
            status: None,
            rapid_commit: false,
            dns_options: false,
        }
    }
}

fn status(status: Status) -> DhcpOption {
    let msg = match status {
        Status::Success => "",
        Status::NoAddrsAvail => "no addresses available",
        Status::NoBinding => "no binding",
        Status::NotOnLink => "not on link",
        Status::NoPrefixAvail => "no prefixes available",
        _ => "",
    };
    DhcpOption::StatusCode(StatusCode {
        status,
        msg: msg.to_owned(),
    })
}

fn ia_option(checked: &Checked, answer: &IaAnswer) -> DhcpOption {
    let c = &checked.config;
    match answer {
        IaAnswer::Address {
            iaid,
            ip,
            withdrawn,
        } => {
            let mut opts = DhcpOptions::new();
            opts.insert(DhcpOption::IAAddr(IAAddr {
                addr: *ip,
                preferred_life: c.preferred_lifetime,
                valid_life: c.valid_lifetime,
                opts: DhcpOptions::new(),
            }));
            for addr in withdrawn {
                opts.insert(DhcpOption::IAAddr(IAAddr {
                    addr: *addr,
                    preferred_life: 0,
                    valid_life: 0,
                    opts: DhcpOptions::new(),
                }));
            }
            DhcpOption::IANA(IANA {
                id: *iaid,
                t1: c.t1,
                t2: c.t2,
                opts,
            })
        }
        IaAnswer::NaStatus { iaid, status: s } => DhcpOption::IANA(IANA {
            id: *iaid,
            t1: 0,
            t2: 0,
            opts: [status(*s)].into_iter().collect(),
        }),
        IaAnswer::TaRefused { iaid } => DhcpOption::IATA(IATA {
            id: *iaid,
            opts: [status(Status::NoAddrsAvail)].into_iter().collect(),
        }),
        IaAnswer::PdRefused { iaid } => DhcpOption::IAPD(IAPD {
            id: *iaid,
            t1: 0,
            t2: 0,
            opts: [status(Status::NoPrefixAvail)].into_iter().collect(),
        }),
    }
}

/// The bytes of `draft`, or `None` if dhcproto cannot encode it.
pub(crate) fn encode(checked: &Checked, draft: &Draft) -> Option<Vec<u8>> {
    let c = &checked.config;
    let msg_type = match draft.kind {
        ReplyKind::Advertise => MessageType::Advertise,
        ReplyKind::Reply => MessageType::Reply,
    };
    let mut message = Message::new_with_id(msg_type, draft.xid);
    let opts = message.opts_mut();
    if let Some(id) = &draft.client_id {
        opts.insert(DhcpOption::ClientId(id.clone()));
    }
    opts.insert(DhcpOption::ServerId(c.server_duid.clone()));
    for answer in &draft.ias {
        opts.insert(ia_option(checked, answer));
    }
    if let Some(s) = draft.status {
        opts.insert(status(s));
    }
    if draft.kind == ReplyKind::Advertise {
        // The highest preference: the client need not wait for others
        // (section 18.2.1).
        opts.insert(DhcpOption::Preference(255));
    }
    if draft.rapid_commit {
        opts.insert(DhcpOption::RapidCommit);
    }
    if draft.dns_options {
        if !c.dns.is_empty() {
            opts.insert(DhcpOption::DomainNameServers(c.dns.clone()));
        }
        if !checked.search_list.is_empty() {
            // Encoded here: dhcproto's encoder may compress names, which
            // RFC 3646 section 4 forbids in this option.
            opts.insert(DhcpOption::Unknown(UnknownOption::new(
                OptionCode::DomainSearchList,
                checked.search_list.clone(),
            )));
        }
    }
    let mut bytes = Vec::with_capacity(256);
    message.encode(&mut Encoder::new(&mut bytes)).ok()?;
    Some(bytes)
}
