//! Watches the kernel's links (rtnetlink's link group, as `ip monitor
//! link` does): every link once at the start, then each change as the
//! kernel announces it (a NIC plugged in or out, carrier gained or lost,
//! a rename). The agent follows its uplinks with it; no polling, so an
//! idle link costs nothing.

use crate::links::runtime;
use crate::LinkError;
use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use std::os::fd::BorrowedFd;

/// What the kernel says of one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSeen {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// False: it is gone.
    pub present: bool,
    /// It has carrier (and is up).
    pub carrier: bool,
    /// Its MAC, if it has one.
    pub mac: Option<[u8; 6]>,
}

fn seen(link: &LinkMessage, present: bool) -> Option<LinkSeen> {
    let mut name = None;
    let mut carrier = None;
    let mut mac = None;
    for attribute in &link.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Carrier(c) => carrier = Some(*c != 0),
            LinkAttribute::Address(a) if a.len() == 6 => {
                mac = <[u8; 6]>::try_from(a.as_slice()).ok();
            }
            _ => {}
        }
    }
    let flags = link.header.flags;
    let up = flags.contains(LinkFlags::Up);
    Some(LinkSeen {
        index: link.header.index,
        name: name?,
        present,
        carrier: present && up && carrier.unwrap_or_else(|| flags.contains(LinkFlags::LowerUp)),
        mac,
    })
}

/// Calls `on` for every link now, then for each change, until `stop`
/// becomes readable.
pub fn watch_links(stop: BorrowedFd<'_>, on: &mut dyn FnMut(LinkSeen)) -> Result<(), LinkError> {
    runtime()?.block_on(async {
        let (connection, handle, mut messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(LinkError::Connect)?;
        tokio::spawn(connection);
        let mut links = handle.link().get().execute();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(crate::links::refused("ip link show".to_owned(), "-"))?
        {
            if let Some(s) = seen(&link, true) {
                on(s);
            }
        }
        // Its own duplicate of the stop's descriptor: owned, so the
        // I/O-safety concern behind `AsyncFd::new`'s deprecation (a raw
        // descriptor closed under it) does not arise.
        let owned = stop.try_clone_to_owned().map_err(LinkError::Connect)?;
        #[allow(deprecated)]
        let stop = tokio::io::unix::AsyncFd::new(owned).map_err(LinkError::Connect)?;
        loop {
            tokio::select! {
                _ = stop.readable() => break,
                message = messages.next() => {
                    let Some((message, _)) = message else { break };
                    match message.payload {
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                            if let Some(s) = seen(&link, true) {
                                on(s);
                            }
                        }
                        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => {
                            if let Some(s) = seen(&link, false) {
                                on(s);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    })
}
