//! What runs inside the Net VM: [`daemon`] (`netvm agent`) applies the
//! data plane and runs the DHCP server, the DNS server and the uplink's
//! DHCP client ([`uplink`]) together ([`parts`]), with a control socket
//! ([`control`]), security events ([`hub`], [`watch`], [`starvation`]),
//! Prometheus metrics ([`metrics`]) and reduced privileges
//! ([`privileges`]).

#![forbid(unsafe_code)]

pub mod control;
pub mod daemon;
pub mod dns_exchange;
pub mod endpoints;
pub mod hub;
pub mod ipv6_uplink;
pub mod metrics;
pub mod nat64_probe;
pub mod parts;
pub mod privileges;
pub mod remote_control;
pub mod starvation;
pub mod state;
pub mod uplink;
pub mod uplinks;
pub mod watch;
pub mod wifi;
pub mod wifi_control;
