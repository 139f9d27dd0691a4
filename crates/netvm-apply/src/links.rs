//! Links, addresses and routes through netlink (rtnetlink): each call
//! built, then executed, with `replace` semantics so that applying twice
//! changes nothing.

use futures::TryStreamExt;
use netvm_plan::datapath::{InterfaceAddress, InterfaceRole, NetVmPlan, Route6Plan};
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressHeaderFlags, AddressMessage, AddressScope,
};
use rtnetlink::packet_route::route::RouteType;
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A netlink step failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No netlink socket.
    #[error("cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    /// The interface does not exist.
    #[error("interface {name} does not exist")]
    Missing {
        /// Its name.
        name: String,
    },
    /// An address or prefix in the plan did not parse.
    #[error("bad address {text:?} for {name}")]
    BadAddress {
        /// The interface.
        name: String,
        /// The text.
        text: String,
    },
    /// The kernel refused a step.
    #[error("{step} on {name}")]
    Netlink {
        /// What was being done (`ip …` equivalent).
        step: String,
        /// The interface.
        name: String,
        /// Why.
        #[source]
        source: rtnetlink::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the netlink runtime")]
    Runtime(#[source] std::io::Error),
    /// An interface that should be a bridge is something else.
    #[error("{name} exists and is not a bridge: rename it or choose another `network.bridge`")]
    NotABridge {
        /// Its name.
        name: String,
    },
    /// A TAP could not be made.
    #[error(transparent)]
    Tap(#[from] crate::tap::TapError),
}

/// Maps a refused netlink step to [`LinkError::Netlink`] naming it.
pub(crate) fn refused(step: String, name: &str) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let name = name.to_owned();
    move |source| LinkError::Netlink { step, name, source }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, LinkError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(LinkError::Runtime)
}

pub(crate) fn connect() -> Result<Handle, LinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(LinkError::Connect)?;
    tokio::spawn(connection);
    Ok(handle)
}

pub(crate) async fn index_of(handle: &Handle, name: &str) -> Result<u32, LinkError> {
    index_of_opt(handle, name)
        .await?
        .ok_or_else(|| LinkError::Missing {
            name: name.to_owned(),
        })
}

/// The index of `name`, `None` when there is no such link.
pub(crate) async fn index_of_opt(handle: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    Ok(link_named(handle, name)
        .await?
        .map(|link| link.header.index))
}

/// The link called `name` (`ip link show NAME`), `None` when there is none.
pub(crate) async fn link_named(
    handle: &Handle,
    name: &str,
) -> Result<Option<rtnetlink::packet_route::link::LinkMessage>, LinkError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(found) => Ok(found),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(refused(format!("ip link show {name}"), name)(e)),
    }
}

pub(crate) fn parse_cidr(name: &str, text: &str) -> Result<(Ipv4Addr, u8), LinkError> {
    let bad = || LinkError::BadAddress {
        name: name.to_owned(),
        text: text.to_owned(),
    };
    let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
    Ok((
        ip.parse().map_err(|_| bad())?,
        prefix.parse().map_err(|_| bad())?,
    ))
}

/// MTU, up and addresses of every interface in the plan but the `absent`
/// uplinks.
pub fn apply_links(plan: &NetVmPlan, absent: &[String]) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        for interface in &plan.interfaces {
            let name = interface.name.as_str();
            if interface.role == InterfaceRole::Uplink && absent.iter().any(|a| a == name) {
                continue;
            }
            let index = index_of(&handle, name).await?;
            set_up(&handle, name, index, interface.mtu, None).await?;
            for address in &interface.addresses6 {
                add_ipv6(&handle, index, name, address.addr(), address.prefix()).await?;
            }
            // The internal side's global IPv6 is ours alone: an address of
            // an earlier prefix goes. The uplink's are the kernel's (SLAAC)
            // or the DHCPv6 client's.
            if interface.role == InterfaceRole::Internal {
                let keep: Vec<(Ipv6Addr, u8)> = interface
                    .addresses6
                    .iter()
                    .map(|a| (a.addr(), a.prefix()))
                    .collect();
                remove_other_global_ipv6(&handle, index, name, &keep).await?;
            }
            let InterfaceAddress::Static(address) = interface.address else {
                continue; // the uplink's DHCP client sets it
            };
            let address = (address.addr(), address.prefix());
            set_only_ipv4(&handle, index, name, Some(address)).await?;
        }
        Ok(())
    })
}

/// `ip -6 addr replace IP/PREFIX dev NAME nodad`: usable at once (the
/// address is the plan's; nobody else on the link may claim it).
pub(crate) async fn add_ipv6(
    handle: &Handle,
    index: u32,
    name: &str,
    ip: Ipv6Addr,
    prefix: u8,
) -> Result<(), LinkError> {
    let mut request = handle
        .address()
        .add(index, IpAddr::V6(ip), prefix)
        .replace();
    request.message_mut().header.flags = AddressHeaderFlags::Nodad;
    request.execute().await.map_err(refused(
        format!("ip -6 addr replace {ip}/{prefix} dev {name}"),
        name,
    ))
}

/// Every global IPv6 address on link `index` but `keep` goes.
async fn remove_other_global_ipv6(
    handle: &Handle,
    index: u32,
    name: &str,
    keep: &[(Ipv6Addr, u8)],
) -> Result<(), LinkError> {
    for (ip, message) in addresses_of(handle, index, name).await? {
        let IpAddr::V6(address) = ip else {
            continue;
        };
        if message.header.scope != AddressScope::Universe
            || keep.contains(&(address, message.header.prefix_len))
        {
            continue;
        }
        let shown = format!("{address}/{}", message.header.prefix_len);
        handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(refused(format!("ip -6 addr del {shown} dev {name}"), name))?;
    }
    Ok(())
}

/// The addresses on link `index` (`ip addr show dev NAME`), each with
/// the address it carries.
pub(crate) async fn addresses_of(
    handle: &Handle,
    index: u32,
    name: &str,
) -> Result<Vec<(IpAddr, AddressMessage)>, LinkError> {
    let listed: Vec<AddressMessage> = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(refused(format!("ip addr show dev {name}"), name))?;
    Ok(listed
        .into_iter()
        .filter_map(|message| {
            let ip = message.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })?;
            Some((ip, message))
        })
        .collect())
}

/// Sets link `index` up, with `mtu` and on bridge `controller` when given
/// (`ip link set NAME [master BR] [mtu N] up`).
pub(crate) async fn set_up(
    handle: &Handle,
    name: &str,
    index: u32,
    mtu: Option<u16>,
    controller: Option<u32>,
) -> Result<(), LinkError> {
    let mut message = LinkUnspec::new_with_index(index).up();
    if let Some(mtu) = mtu {
        message = message.mtu(u32::from(mtu));
    }
    if let Some(bridge) = controller {
        message = message.controller(bridge);
    }
    handle
        .link()
        .set(message.build())
        .execute()
        .await
        .map_err(refused(format!("ip link set {name} up"), name))
}

/// `address` becomes the only IPv4 address on link `index` (the others
/// deleted, then `ip addr replace`); `None` leaves it none.
pub(crate) async fn set_only_ipv4(
    handle: &Handle,
    index: u32,
    name: &str,
    address: Option<(Ipv4Addr, u8)>,
) -> Result<(), LinkError> {
    // The others go first: a new address in the old one's subnet would be
    // a secondary of it, and the kernel removes secondaries with their
    // primary (unless promote_secondaries is set), leaving none at all.
    remove_other_ipv4(handle, index, name, address).await?;
    if let Some((ip, prefix)) = address {
        handle
            .address()
            .add(index, IpAddr::V4(ip), prefix)
            .replace()
            .execute()
            .await
            .map_err(refused(
                format!("ip addr replace {ip}/{prefix} dev {name}"),
                name,
            ))?;
    }
    Ok(())
}

/// `ip route replace default via GATEWAY dev NAME`.
pub(crate) async fn replace_default_route(
    handle: &Handle,
    index: u32,
    name: &str,
    gateway: Ipv4Addr,
) -> Result<(), LinkError> {
    replace_default_route_at(handle, index, name, gateway, 0).await
}

/// `ip route replace default via GATEWAY dev NAME metric METRIC` (no
/// metric attribute at 0, the kernel's default).
pub(crate) async fn replace_default_route_at(
    handle: &Handle,
    index: u32,
    name: &str,
    gateway: Ipv4Addr,
    metric: u32,
) -> Result<(), LinkError> {
    let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(index);
    if metric != 0 {
        builder = builder.priority(metric);
    }
    let route = builder.build();
    handle
        .route()
        .add(route)
        .replace()
        .execute()
        .await
        .map_err(refused(
            format!("ip route replace default via {gateway} dev {name}"),
            name,
        ))
}

/// The interface is ours alone: any IPv4 address on it but `keep` (left
/// by an earlier plan, or added by hand) goes (`ip addr del …`).
pub(crate) async fn remove_other_ipv4(
    handle: &Handle,
    index: u32,
    name: &str,
    keep: Option<(Ipv4Addr, u8)>,
) -> Result<(), LinkError> {
    for (ip, message) in addresses_of(handle, index, name).await? {
        let IpAddr::V4(address) = ip else {
            continue;
        };
        if keep == Some((address, message.header.prefix_len)) {
            continue;
        }
        let shown = format!("{address}/{}", message.header.prefix_len);
        let deleted = handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(refused(format!("ip addr del {shown} dev {name}"), name));
        // A secondary goes with its primary: already gone is done.
        if let Err(e) = deleted {
            let left = addresses_of(handle, index, name).await?;
            if left.iter().any(|(ip, _)| *ip == IpAddr::V4(address)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Routes of the plan (`ip route replace …`, `ip -6 route replace …`).
pub fn apply_routes(plan: &NetVmPlan) -> Result<(), LinkError> {
    if plan.routes.is_empty() && plan.routes6.is_empty() {
        return Ok(());
    }
    runtime()?.block_on(async {
        let handle = connect()?;
        for route in &plan.routes6 {
            apply_route6(&handle, route).await?;
        }
        for route in &plan.routes {
            let name = route.device.as_str();
            let index = index_of(&handle, name).await?;
            let (destination, prefix) = (route.destination.addr(), route.destination.prefix());
            let gateway = route.gateway;
            let message = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(destination, prefix)
                .gateway(gateway)
                .output_interface(index)
                .build();
            handle
                .route()
                .add(message)
                .replace()
                .execute()
                .await
                .map_err(refused(
                    format!(
                        "ip route replace {} via {gateway} dev {name}",
                        route.destination
                    ),
                    name,
                ))?;
        }
        Ok(())
    })
}

/// One IPv6 route of the plan.
async fn apply_route6(handle: &Handle, route: &Route6Plan) -> Result<(), LinkError> {
    let (message, step, name) = match route {
        Route6Plan::Via {
            destination,
            gateway,
            device,
        } => {
            let name = device.as_str();
            let index = index_of(handle, name).await?;
            let message = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(destination.addr(), destination.prefix())
                .gateway(*gateway)
                .output_interface(index)
                .build();
            (
                message,
                format!("ip -6 route replace {destination} via {gateway} dev {name}"),
                name.to_owned(),
            )
        }
        Route6Plan::Unreachable { destination } => {
            let message = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(destination.addr(), destination.prefix())
                .kind(RouteType::Unreachable)
                .build();
            (
                message,
                format!("ip -6 route replace unreachable {destination}"),
                "lo".to_owned(),
            )
        }
    };
    handle
        .route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(refused(step, &name))
}

/// Puts `address/128` on `interface` (`present`), or takes it off: the
/// uplink's DHCPv6 (IA_NA) address. Taking off an address that is not
/// there is fine.
pub fn uplink_address6(interface: &str, address: Ipv6Addr, present: bool) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let index = index_of(&handle, interface).await?;
        if present {
            return add_ipv6(&handle, index, interface, address, 128).await;
        }
        for (ip, message) in addresses_of(&handle, index, interface).await? {
            if ip == IpAddr::V6(address) {
                handle
                    .address()
                    .del(message)
                    .execute()
                    .await
                    .map_err(refused(
                        format!("ip -6 addr del {address}/128 dev {interface}"),
                        interface,
                    ))?;
            }
        }
        Ok(())
    })
}
