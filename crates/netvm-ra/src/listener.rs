//! The uplink's Router Advertisements, read strictly and reported one by
//! one: the agent takes the DNS servers, search domains, NAT64 prefix and
//! M/O flags from them. The kernel configures addresses and the default
//! route from the same advertisements itself (`accept_ra=2`); this only
//! reads.
//!
//! At start it solicits (RFC 4861 §6.3.7: up to 3 Router Solicitations
//! 4 s apart, until an advertisement is heard), then sleeps until one
//! arrives or it is stopped.

use crate::socket::{mac_of, NdSocket};
use crate::RaError;
use netvm_description::values::{IfName, MacAddr};
use netvm_ndp::{parse_router_advert, ParseError, RouterAdvert, RouterSolicit, ALL_ROUTERS};
use netvm_runtime::Stop;
use std::io;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// MAX_RTR_SOLICITATIONS.
const SOLICITATIONS: u32 = 3;
/// RTR_SOLICITATION_INTERVAL.
const SOLICITATION_INTERVAL: Duration = Duration::from_secs(4);

/// One message heard on the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A valid Router Advertisement from router `from` (link-local).
    Advert {
        /// The router's address.
        from: Ipv6Addr,
        /// What it advertised.
        advert: RouterAdvert,
    },
    /// One the parser refused, and why.
    Refused {
        /// Its source.
        from: Ipv6Addr,
        /// Why.
        reason: ParseError,
    },
}

/// Listens for Router Advertisements on one interface.
#[derive(Debug)]
pub struct Listener {
    interface: IfName,
    socket: NdSocket,
    mac: Option<MacAddr>,
}

impl Listener {
    /// Opens a raw ICMPv6 socket on `interface` that hears only Router
    /// Advertisements, with the hop limit of each. Needs `CAP_NET_RAW`.
    pub fn open(interface: &IfName) -> Result<Listener, RaError> {
        let socket =
            NdSocket::open(interface, netvm_ndp::ROUTER_ADVERT, None).map_err(|source| {
                RaError::Open {
                    interface: interface.clone(),
                    source,
                }
            })?;
        Ok(Listener {
            interface: interface.clone(),
            socket,
            mac: mac_of(interface),
        })
    }

    /// Sends one Router Solicitation to all routers, with our link-layer
    /// address. Fails while the interface has no usable link-local
    /// address (duplicate address detection still running).
    pub fn solicit(&self) -> io::Result<()> {
        let solicit = RouterSolicit {
            source_mac: self.mac,
        };
        self.socket.send(ALL_ROUTERS, &solicit.build())
    }

    /// Reports every Router Advertisement that arrives to `on`, until
    /// `stop`. Solicits first (a failed solicitation is tried again at
    /// the next of the three times). Ends early only if the socket or the
    /// wait fails.
    pub fn run(&mut self, stop: &Stop, mut on: impl FnMut(Heard)) -> Result<(), RaError> {
        let mut solicited = 0;
        let mut next_solicit = Some(Instant::now());
        let mut heard_one = false;
        loop {
            if let Some(at) = next_solicit.filter(|at| Instant::now() >= *at) {
                let _ = self.solicit();
                solicited += 1;
                next_solicit = (solicited < SOLICITATIONS).then(|| at + SOLICITATION_INTERVAL);
            }
            let Some(ready) = stop
                .wait_any(&[self.socket.fd()], next_solicit)
                .map_err(RaError::Wait)?
            else {
                return Ok(());
            };
            if ready.is_ready(0) {
                heard_one |= self.read(&mut on)?;
                if heard_one {
                    next_solicit = None;
                }
            }
        }
    }

    /// Reports every queued message; whether one was a valid
    /// advertisement.
    fn read(&mut self, on: &mut impl FnMut(Heard)) -> Result<bool, RaError> {
        let mut valid = false;
        loop {
            let received = self.socket.receive().map_err(|source| RaError::Receive {
                interface: self.interface.clone(),
                source,
            })?;
            let Some(message) = received else {
                return Ok(valid);
            };
            let from = message.source;
            match parse_router_advert(from, message.hop_limit, message.bytes) {
                Ok(advert) => {
                    valid = true;
                    on(Heard::Advert { from, advert });
                }
                Err(reason) => on(Heard::Refused { from, reason }),
            }
        }
    }
}
