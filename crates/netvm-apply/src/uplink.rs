//! The uplink's address from its DHCP lease: `ip addr replace ADDR/PREFIX
//! dev UPLINK`, no other IPv4 address on it, and `ip route replace
//! default via ROUTER dev UPLINK [metric M]`; or, when the lease is lost,
//! no IPv4 address at all (its routes go with it). With several uplinks
//! each has its default route at a metric of its own (so a socket bound
//! to it, as the agent's probes are, has a way out), and the active one
//! also has the metric-0 default route everything else follows:
//! [`move_default_route`] puts it on another uplink in one replace, or
//! takes it away.

use crate::links::{
    connect, index_of, index_of_opt, refused, replace_default_route_at, runtime, set_only_ipv4,
};
use crate::LinkError;
use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::RouteMessageBuilder;
use std::net::Ipv4Addr;

/// The main routing table's id.
const MAIN_TABLE: u8 = 254;

/// Puts `address`/`prefix` (and a default route via `router`) on
/// `interface`, or with `None` takes every IPv4 address off it.
pub fn set_uplink(
    interface: &str,
    address: Option<(Ipv4Addr, u8)>,
    router: Option<Ipv4Addr>,
) -> Result<(), LinkError> {
    set_uplink_at(interface, address, router, 0)
}

/// [`set_uplink`], with the default route at `metric`.
pub fn set_uplink_at(
    interface: &str,
    address: Option<(Ipv4Addr, u8)>,
    router: Option<Ipv4Addr>,
    metric: u32,
) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        let index = index_of_opt(&handle, interface)
            .await?
            .ok_or_else(|| LinkError::Missing {
                name: interface.to_owned(),
            })?;
        set_only_ipv4(&handle, index, interface, address).await?;
        if let (Some(_), Some(router)) = (address, router) {
            replace_default_route_at(&handle, index, interface, router, metric).await?;
        }
        Ok(())
    })
}

/// Puts the metric-0 default route on `to` (interface, gateway) in one
/// `ip route replace`, or (`None`) removes every metric-0 IPv4 default
/// route of the main table.
pub fn move_default_route(to: Option<(&str, Ipv4Addr)>) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let handle = connect()?;
        match to {
            Some((name, gateway)) => {
                let index = index_of(&handle, name).await?;
                replace_default_route_at(&handle, index, name, gateway, 0).await
            }
            None => {
                let all = RouteMessageBuilder::<Ipv4Addr>::new().build();
                let routes: Vec<RouteMessage> = handle
                    .route()
                    .get(all)
                    .execute()
                    .try_collect()
                    .await
                    .map_err(refused("ip route show".to_owned(), "-"))?;
                for route in routes {
                    let metric = route.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Priority(p) => Some(*p),
                        _ => None,
                    });
                    if route.header.destination_prefix_length == 0
                        && route.header.table == MAIN_TABLE
                        && metric.unwrap_or(0) == 0
                    {
                        handle
                            .route()
                            .del(route)
                            .execute()
                            .await
                            .map_err(refused("ip route del default".to_owned(), "-"))?;
                    }
                }
                Ok(())
            }
        }
    })
}

/// Makes `name` the only element of the ruleset's `uplink_active` set
/// (`None`: empty), in one nft transaction.
pub fn set_active_uplink(name: Option<&str>) -> Result<(), crate::NftError> {
    let table = netvm_plan::ruleset::TABLE;
    let set = netvm_plan::ruleset::ACTIVE_UPLINK_SET;
    let mut text = format!("flush set inet {table} {set}\n");
    if let Some(name) = name {
        text += &format!("add element inet {table} {set} {{ \"{name}\" }}\n");
    }
    crate::nft::apply(&text)
}
