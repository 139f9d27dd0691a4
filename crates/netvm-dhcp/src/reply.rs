//! Building replies (OFFER, ACK, NAK) with dhcproto, and choosing where
//! each one goes (RFC 2131 section 4.1).
//!
//! Options follow the client's parameter request list (option 55): the
//! message type, server identifier and lease times always, then the
//! options the client asked for that we have, in its order; a client that
//! sends no list gets subnet mask, router, DNS servers and domain name. A
//! reply that would exceed the client's maximum message size (option 57,
//! else 576 octets with IP and UDP headers) loses its least-wanted
//! options until it fits.

use crate::config::ServerConfig;
use crate::request::Request;
use dhcproto::v4::fqdn::{ClientFQDN, FqdnFlags};
use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Encodable, Encoder, Name};
use netvm_description::values::MacAddr;
use std::net::Ipv4Addr;

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// `ff:ff:ff:ff:ff:ff`, 255.255.255.255.
    Broadcast,
    /// A trusted relay agent, at its server port (67).
    Relay {
        /// The relay's address (`giaddr`).
        ip: Ipv4Addr,
    },
    /// One client, by hardware address and IP address, even before the
    /// client has configured that address (the driver writes the frame).
    Unicast {
        /// Destination hardware address.
        mac: MacAddr,
        /// Destination IP address.
        ip: Ipv4Addr,
    },
}

/// The kind of reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// DHCPOFFER.
    Offer,
    /// DHCPACK.
    Ack,
    /// DHCPNAK.
    Nak,
}

/// A reply ready to send: UDP payload from port 67 to port 68.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// What it is.
    pub kind: ReplyKind,
    /// Where it goes.
    pub to: Destination,
    /// The DHCP message.
    pub bytes: Vec<u8>,
}

/// BOOTP's minimum message size (RFC 1542 section 3.3); shorter replies
/// are padded so old clients accept them.
const MIN_MESSAGE: usize = 300;

/// Lease times of an OFFER or ACK (none for an INFORM's ACK).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    pub lease: u32,
    pub renew: u32,
    pub rebind: u32,
}

/// What goes into an OFFER or ACK.
pub(crate) struct Grant<'a> {
    pub kind: ReplyKind,
    pub yiaddr: Ipv4Addr,
    pub times: Option<Times>,
    /// The client's name in our domain, to answer option 81 with.
    pub hostname: Option<&'a str>,
    pub rapid_commit: bool,
}

/// RFC 2131 section 4.1.
fn destination(request: &Request, kind: ReplyKind, yiaddr: Ipv4Addr) -> Destination {
    if !request.giaddr.is_unspecified() {
        Destination::Relay { ip: request.giaddr }
    } else if kind == ReplyKind::Nak {
        Destination::Broadcast
    } else if !request.ciaddr.is_unspecified() {
        Destination::Unicast {
            mac: request.chaddr,
            ip: request.ciaddr,
        }
    } else if request.broadcast || yiaddr.is_unspecified() {
        Destination::Broadcast
    } else {
        Destination::Unicast {
            mac: request.chaddr,
            ip: yiaddr,
        }
    }
}

fn base(config: &ServerConfig, request: &Request, message_type: MessageType) -> Message {
    let mut message = Message::default();
    message
        .set_opcode(Opcode::BootReply)
        .set_htype(HType::Eth)
        .set_xid(request.xid)
        .set_giaddr(request.giaddr)
        .set_chaddr(&request.chaddr.0)
        .set_flags(if request.broadcast {
            Flags::default().set_broadcast()
        } else {
            Flags::default()
        });
    let opts = message.opts_mut();
    opts.insert(DhcpOption::MessageType(message_type));
    opts.insert(DhcpOption::ServerIdentifier(config.server_ip));
    message
}

/// The options we can offer, by code.
fn available(config: &ServerConfig, code: u8) -> Option<DhcpOption> {
    let subnet = config.subnet;
    Some(match code {
        1 => DhcpOption::SubnetMask(subnet.netmask()),
        3 => DhcpOption::Router(vec![config.server_ip]),
        6 => DhcpOption::DomainNameServer(vec![config.server_ip]),
        15 => DhcpOption::DomainName(config.domain.clone()),
        26 => DhcpOption::InterfaceMtu(config.mtu),
        28 => DhcpOption::BroadcastAddr(subnet.broadcast()),
        121 if !config.routes.is_empty() => {
            // A client that takes option 121 ignores option 3 (RFC 3442),
            // so the default route goes in too.
            let default = ipnet::Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).ok()?;
            let mut routes = vec![(default, config.server_ip)];
            for (destination, gateway) in &config.routes {
                let net = ipnet::Ipv4Net::new(destination.addr(), destination.prefix()).ok()?;
                routes.push((net, *gateway));
            }
            DhcpOption::ClasslessStaticRoute(routes)
        }
        _ => return None,
    })
}

/// Encodes `message` with `mandatory` options and as many of `optional`
/// (most wanted first) as fit in `limit` octets.
fn encode_within(
    mut message: Message,
    mandatory: Vec<DhcpOption>,
    optional: Vec<DhcpOption>,
    limit: usize,
) -> Vec<u8> {
    for option in mandatory {
        message.opts_mut().insert(option);
    }
    let mut keep = optional.len();
    loop {
        let mut candidate = message.clone();
        for option in &optional[..keep] {
            candidate.opts_mut().insert(option.clone());
        }
        let mut bytes = Vec::with_capacity(MIN_MESSAGE);
        let encoded = candidate.encode(&mut Encoder::new(&mut bytes)).is_ok();
        if encoded && (bytes.len() <= limit || keep == 0) {
            if bytes.len() < MIN_MESSAGE {
                bytes.resize(MIN_MESSAGE, 0);
            }
            return bytes;
        }
        if keep == 0 {
            // Only dhcproto could fail here, on values we built ourselves.
            return bytes;
        }
        keep -= 1;
    }
}

fn size_limit(request: &Request) -> usize {
    // Option 57 counts the IP and UDP headers (28 octets).
    usize::from(request.max_message_size.unwrap_or(576)).saturating_sub(28)
}

/// An OFFER or ACK.
pub(crate) fn grant(config: &ServerConfig, request: &Request, grant: &Grant<'_>) -> Reply {
    let message_type = match grant.kind {
        ReplyKind::Offer => MessageType::Offer,
        _ => MessageType::Ack,
    };
    let mut message = base(config, request, message_type);
    message.set_yiaddr(grant.yiaddr);
    if grant.kind == ReplyKind::Ack {
        message.set_ciaddr(request.ciaddr);
    }
    let mut mandatory = Vec::new();
    if let Some(t) = grant.times {
        mandatory.push(DhcpOption::AddressLeaseTime(t.lease));
        mandatory.push(DhcpOption::Renewal(t.renew));
        mandatory.push(DhcpOption::Rebinding(t.rebind));
    }
    if grant.rapid_commit {
        mandatory.push(DhcpOption::RapidCommit);
    }
    if let (Some(fqdn), Some(name)) = (&request.fqdn, grant.hostname) {
        // S: we update the A record ourselves; O: we overrode a client
        // that asked to do it; E: the encoding the client used.
        let flags = 0x01 | if fqdn.flags & 0x01 == 0 { 0x02 } else { 0 } | (fqdn.flags & 0x04);
        if let Ok(domain) = Name::from_ascii(format!("{name}.{}.", config.domain)) {
            mandatory.push(DhcpOption::ClientFQDN(ClientFQDN::new(
                FqdnFlags::new(flags),
                domain,
            )));
        }
    }
    let wanted: Vec<u8> = if request.parameters.is_empty() {
        vec![1, 3, 6, 15]
    } else {
        request.parameters.clone()
    };
    let mut optional = Vec::new();
    for code in wanted {
        let already = optional
            .iter()
            .any(|o: &DhcpOption| u8::from(OptionCode::from(o)) == code);
        if let (false, Some(option)) = (already, available(config, code)) {
            optional.push(option);
        }
    }
    Reply {
        kind: grant.kind,
        to: destination(request, grant.kind, grant.yiaddr),
        bytes: encode_within(message, mandatory, optional, size_limit(request)),
    }
}

/// A NAK.
pub(crate) fn nak(config: &ServerConfig, request: &Request, why: &str) -> Reply {
    let message = base(config, request, MessageType::Nak);
    let mandatory = vec![DhcpOption::Message(why.to_owned())];
    Reply {
        kind: ReplyKind::Nak,
        to: destination(request, ReplyKind::Nak, Ipv4Addr::UNSPECIFIED),
        bytes: encode_within(message, mandatory, Vec::new(), size_limit(request)),
    }
}
