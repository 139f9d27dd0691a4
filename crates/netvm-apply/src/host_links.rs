//! The host's links through netlink: the internal bridge, one TAP per VM
//! as its port (isolated where planned), and in dev mode the bridge that
//! carries the host's uplink and the net-vm's uplink TAP.
//!
//! None of these links gets an IPv6 address: [`create`] makes them down,
//! the plan's `disable_ipv6` sysctls are written for them next (by
//! `apply_host`), and only then [`wire`] brings them up; a link that was
//! already up loses its IPv6 addresses when the sysctl is written.
//!
//! Links netvm creates carry the alias [`MADE_BY_NETVM`]; `down` deletes
//! exactly those and only detaches the rest (an interface that existed
//! before `up`, such as a test's veth standing in for a TAP).

use crate::links::{
    addresses_of, connect, index_of, link_named, parse_cidr, refused, replace_default_route,
    runtime, set_only_ipv4, set_up,
};
use crate::{tap, LinkError};
use futures::TryStreamExt;
use netvm_plan::host::HostPlan;
use rtnetlink::packet_route::link::{
    BridgeStpState, InfoKind, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};

/// The alias of every link netvm made (`ip link show` prints it).
pub const MADE_BY_NETVM: &str = "made by netvm";

/// What is known of an existing link.
struct Link {
    index: u32,
    kind: Option<InfoKind>,
    ours: bool,
    mac: Option<Vec<u8>>,
}

fn describe(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        kind: None,
        ours: false,
        mac: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.clone());
                    }
                }
            }
            LinkAttribute::IfAlias(alias) => link.ours = alias == MADE_BY_NETVM,
            LinkAttribute::Address(mac) => link.mac = Some(mac.clone()),
            _ => {}
        }
    }
    link
}

async fn find(handle: &Handle, name: &str) -> Result<Option<Link>, LinkError> {
    Ok(link_named(handle, name).await?.as_ref().map(describe))
}

/// Creates the bridge `name` if missing (STP off, forward delay 0,
/// multicast snooping off), or sets those on the bridge that is there;
/// refuses a non-bridge. Snooping is off because a snooping bridge joins
/// the all-snoopers group (224.0.0.106) and reports it from 0.0.0.0 with
/// its own MAC: the secure host would announce itself on the internal
/// network at every start.
async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    mac: Option<Vec<u8>>,
) -> Result<u32, LinkError> {
    let settings = |message: rtnetlink::LinkMessageBuilder<LinkBridge>| {
        message
            .stp_state(BridgeStpState::Disabled)
            .forward_delay(0)
            .mcast_snooping(false)
    };
    match find(handle, name).await? {
        Some(link) if link.kind == Some(InfoKind::Bridge) => {
            let mut message = settings(LinkBridge::new(name)).index(link.index);
            if let Some(mac) = mac.filter(|m| Some(m) != link.mac.as_ref()) {
                message = message.address(mac);
            }
            handle
                .link()
                .set_port(message.build())
                .execute()
                .await
                .map_err(refused(
                    format!(
                    "ip link set {name} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
                ),
                    name,
                ))?;
            Ok(link.index)
        }
        Some(_) => Err(LinkError::NotABridge {
            name: name.to_owned(),
        }),
        None => {
            let mut message = settings(LinkBridge::new(name));
            if let Some(mac) = mac {
                message = message.address(mac);
            }
            handle
                .link()
                .add(message.build())
                .execute()
                .await
                .map_err(refused(format!("ip link add {name} type bridge"), name))?;
            let index = index_of(handle, name).await?;
            mark_ours(handle, name, index).await?;
            Ok(index)
        }
    }
}

/// The alias that tells `down` netvm made this link (the kernel ignores
/// an alias given when a link is created, so it is set afterwards).
async fn mark_ours(handle: &Handle, name: &str, index: u32) -> Result<(), LinkError> {
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .alias(MADE_BY_NETVM)
                .build(),
        )
        .execute()
        .await
        .map_err(refused(
            format!("ip link set {name} alias \"{MADE_BY_NETVM}\""),
            name,
        ))
}

/// Makes the TAP `name` unless an interface of that name exists (a TAP
/// from an earlier `up`, or something standing in for one); its index.
async fn ensure_tap(
    handle: &Handle,
    name: &str,
    owner: (Option<u32>, Option<u32>),
) -> Result<u32, LinkError> {
    match find(handle, name).await? {
        Some(link) if link.kind == Some(InfoKind::Tun) => {
            // Ours or not, make sure the VMM's user may open it.
            tap::ensure(name, owner.0, owner.1)?;
            Ok(link.index)
        }
        Some(link) => Ok(link.index),
        None => {
            tap::ensure(name, owner.0, owner.1)?;
            let index = index_of(handle, name).await?;
            mark_ours(handle, name, index).await?;
            Ok(index)
        }
    }
}

/// Port `index` joins `bridge` with the MTU, isolation and state planned.
async fn attach(
    handle: &Handle,
    name: &str,
    index: u32,
    bridge: u32,
    mtu: Option<u16>,
    isolated: bool,
) -> Result<(), LinkError> {
    set_up(handle, name, index, mtu, Some(bridge)).await?;
    handle
        .link()
        .set_port(LinkBridgePort::new(index).isolated(isolated).build())
        .execute()
        .await
        .map_err(refused(
            format!(
                "ip link set {name} type bridge_slave isolated {}",
                if isolated { "on" } else { "off" }
            ),
            name,
        ))
}

/// Creates the links of `plan` (bridges and TAPs), before sysctls are
/// written for them.
pub fn create(plan: &HostPlan, owner: (Option<u32>, Option<u32>)) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let mac = plan.bridge.mac.map(|m| m.0.to_vec());
        ensure_bridge(&handle, &plan.bridge.name, mac).await?;
        for port in &plan.ports {
            ensure_tap(&handle, &port.name, owner).await?;
        }
        if let Some(up) = &plan.uplink_bridge {
            ensure_tap(&handle, &up.netvm_port, owner).await?;
            // The uplink bridge keeps the uplink's MAC, so the host's
            // DHCP lease and neighbours stay valid.
            let uplink =
                find(&handle, &up.host_uplink)
                    .await?
                    .ok_or_else(|| LinkError::Missing {
                        name: up.host_uplink.clone(),
                    })?;
            ensure_bridge(&handle, &up.name, uplink.mac).await?;
        }
        Ok(())
    })
}

/// Wires the links of `plan`: ports on the bridge, isolation, MTU, up,
/// the bridge's address (dev mode) or none, and in dev mode the uplink
/// moved onto its bridge with its IPv4 addresses and default route.
pub fn wire(plan: &HostPlan) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let name = plan.bridge.name.as_str();
        let bridge = index_of(&handle, name).await?;
        set_up(&handle, name, bridge, Some(plan.bridge.mtu), None).await?;
        for port in &plan.ports {
            let index = index_of(&handle, &port.name).await?;
            attach(
                &handle,
                &port.name,
                index,
                bridge,
                Some(plan.bridge.mtu),
                port.isolated,
            )
            .await?;
        }
        let address = match &plan.bridge.address {
            Some(address) => Some(parse_cidr(name, address)?),
            None => None,
        };
        set_only_ipv4(&handle, bridge, name, address).await?;
        if let Some(up) = &plan.uplink_bridge {
            let up_bridge = index_of(&handle, &up.name).await?;
            let tap = index_of(&handle, &up.netvm_port).await?;
            attach(&handle, &up.netvm_port, tap, up_bridge, None, false).await?;
            let uplink = index_of(&handle, &up.host_uplink).await?;
            attach(&handle, &up.host_uplink, uplink, up_bridge, None, false).await?;
            set_up(&handle, &up.name, up_bridge, None, None).await?;
            move_ipv4(&handle, (&up.host_uplink, uplink), (&up.name, up_bridge)).await?;
        }
        Ok(())
    })
}

/// Moves every IPv4 address and default route from one link to another
/// (`ip addr add` on `to`, `ip addr del` on `from`, `ip route replace
/// default … dev to`). Nothing to move on a second run.
async fn move_ipv4(handle: &Handle, from: (&str, u32), to: (&str, u32)) -> Result<(), LinkError> {
    let (from_name, from_index) = from;
    let (to_name, to_index) = to;
    let gateways = default_gateways(handle, from_index, from_name).await?;
    for (ip, message) in addresses_of(handle, from_index, from_name).await? {
        let IpAddr::V4(ip) = ip else {
            continue;
        };
        let prefix = message.header.prefix_len;
        handle
            .address()
            .add(to_index, IpAddr::V4(ip), prefix)
            .replace()
            .execute()
            .await
            .map_err(refused(
                format!("ip addr replace {ip}/{prefix} dev {to_name}"),
                to_name,
            ))?;
        handle
            .address()
            .del(message)
            .execute()
            .await
            .map_err(refused(
                format!("ip addr del {ip}/{prefix} dev {from_name}"),
                from_name,
            ))?;
    }
    for gateway in gateways {
        replace_default_route(handle, to_index, to_name, gateway).await?;
    }
    Ok(())
}

/// Gateways of the IPv4 default routes out of `index` (main table).
async fn default_gateways(
    handle: &Handle,
    index: u32,
    name: &str,
) -> Result<Vec<Ipv4Addr>, LinkError> {
    let routes: Vec<_> = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute()
        .try_collect()
        .await
        .map_err(refused("ip route show default".to_owned(), name))?;
    Ok(routes
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0)
        .filter(|r| r.attributes.contains(&RouteAttribute::Oif(index)))
        .filter_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(gateway)) => Some(*gateway),
                _ => None,
            })
        })
        .collect())
}

/// What `down` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Links deleted (netvm had made them).
    pub deleted: Vec<String>,
    /// Links only taken off the bridge (they were there before `up`).
    pub detached: Vec<String>,
}

/// Undoes `wire` and `create`: the uplink's addresses and default route
/// go back to it, links netvm made are deleted, others detached.
pub fn remove(plan: &HostPlan) -> Result<Removed, LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let mut removed = Removed::default();
        if let Some(up) = &plan.uplink_bridge {
            if let (Some(bridge), Some(uplink)) = (
                find(&handle, &up.name).await?,
                find(&handle, &up.host_uplink).await?,
            ) {
                detach(&handle, &up.host_uplink, uplink.index).await?;
                move_ipv4(
                    &handle,
                    (&up.name, bridge.index),
                    (&up.host_uplink, uplink.index),
                )
                .await?;
                removed.detached.push(up.host_uplink.clone());
            }
        }
        let mut names: Vec<&str> = plan.ports.iter().map(|p| p.name.as_str()).collect();
        if let Some(up) = &plan.uplink_bridge {
            names.push(&up.netvm_port);
            names.push(&up.name);
        }
        names.push(&plan.bridge.name);
        for name in names {
            let Some(link) = find(&handle, name).await? else {
                continue;
            };
            if link.ours {
                handle
                    .link()
                    .del(link.index)
                    .execute()
                    .await
                    .map_err(refused(format!("ip link del {name}"), name))?;
                removed.deleted.push(name.to_owned());
            } else if link.kind != Some(InfoKind::Bridge) {
                detach(&handle, name, link.index).await?;
                removed.detached.push(name.to_owned());
            }
        }
        Ok(removed)
    })
}

async fn detach(handle: &Handle, name: &str, index: u32) -> Result<(), LinkError> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).nocontroller().build())
        .execute()
        .await
        .map_err(refused(format!("ip link set {name} nomaster"), name))
}
