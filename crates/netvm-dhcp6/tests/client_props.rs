//! Properties of the DHCPv6 client: untrusted bytes never panic it and
//! never bind it; a well-formed server conversation binds exactly what it
//! offered; its timers always move forward and its lease never outlives
//! its lifetimes. The fuzz target `dhcp6_client_reply` feeds the same
//! entry point.

mod common;

use common::{answer, bind, bound, sent, solicit, Grant, MAC};
use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode};
use netvm_dhcp6::client::{Action, Phase};
use netvm_dhcp6::{Client, Lease6};
use proptest::prelude::*;
use std::net::Ipv6Addr;

/// A client in each phase that reads server messages, with the last
/// message it sent.
fn clients(seed: u64) -> Vec<(Client, Option<Message>, u64)> {
    let mut out = Vec::new();
    let mut soliciting = Client::new(MAC, true, seed);
    let (sol, at) = solicit(&mut soliciting, 0);
    out.push((soliciting.clone(), Some(sol.clone()), at));
    let mut requesting = soliciting;
    let g = Grant {
        preference: Some(255),
        ..Grant::both()
    };
    let req = sent(&requesting.handle(at, &answer(MessageType::Advertise, &sol, &g)));
    out.push((requesting, req.into_iter().next(), at));
    let mut bound = Client::new(MAC, true, seed);
    let (_, t0) = bind(&mut bound, &Grant::both());
    out.push((bound.clone(), None, t0));
    let mut renewing = bound.clone();
    let renew = sent(&renewing.poll(t0 + 20_000));
    out.push((renewing.clone(), renew.into_iter().next(), t0 + 20_000));
    let mut rebinding = renewing;
    let rebind = sent(&rebinding.poll(t0 + 32_000));
    out.push((rebinding, rebind.into_iter().next(), t0 + 32_000));
    let mut releasing = bound;
    let release = sent(&releasing.release(t0 + 1_000));
    out.push((releasing, release.into_iter().next(), t0 + 1_000));
    out
}

/// The invariants of a held lease.
fn sane(lease: &Lease6) {
    if let Some(a) = &lease.address {
        assert!(a.preferred <= a.valid && a.valid > 0, "{lease:?}");
        assert!(!a.address.is_multicast() && !a.address.is_unicast_link_local());
        assert!(!a.address.is_unspecified() && !a.address.is_loopback());
    }
    if let Some(p) = &lease.prefix {
        assert!(p.preferred <= p.valid && p.valid > 0, "{lease:?}");
        assert!((1..=64).contains(&p.len));
        assert_eq!(u128::from(p.prefix) & (u128::MAX >> p.len), 0);
    }
    assert!(lease.address.is_some() || lease.prefix.is_some());
    assert!(lease.t1 >= 1 && lease.t1 <= lease.t2, "{lease:?}");
    assert!(lease.dns.len() <= 8 && lease.search.len() <= 8);
    assert!(!lease.server_id.is_empty());
}

/// A global unicast address (2000::/3) from random bits.
fn global(bits: u128) -> Ipv6Addr {
    Ipv6Addr::from((bits & (u128::MAX >> 3)) | (1u128 << 125))
}

fn name() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-z0-9][a-z0-9-]{0,10}", 1..4).prop_map(|labels| labels.join("."))
}

prop_compose! {
    fn grant()(
        server in proptest::collection::vec(any::<u8>(), 1..20),
        preference in proptest::option::of(any::<u8>()),
        address in any::<u128>(),
        address_times in (0u32..100_000, 1u32..100_000),
        with_address in any::<bool>(),
        prefix in any::<u128>(),
        len in 3u8..=64,
        prefix_times in (0u32..100_000, 1u32..100_000),
        with_prefix in any::<bool>(),
        t in (0u32..50_000, 0u32..50_000),
        dns in proptest::collection::vec(any::<u128>(), 0..6),
        search in proptest::collection::vec(name(), 0..6),
    ) -> Grant {
        let mut server_id = vec![0, 2];
        server_id.extend(server);
        let lifetimes = |(a, b): (u32, u32)| (a.min(b), a.max(b));
        let (ap, av) = lifetimes(address_times);
        let (pp, pv) = lifetimes(prefix_times);
        // Within 2000::/3, so never multicast or link-local.
        let prefix = u128::from(global(prefix)) & !(u128::MAX >> len);
        Grant {
            server: server_id,
            preference,
            address: with_address.then(|| (global(address), ap, av)),
            prefix: (with_prefix || !with_address).then(|| (Ipv6Addr::from(prefix), len, pp, pv)),
            na_status: None,
            pd_status: None,
            t1: t.0.min(t.1),
            t2: t.0.max(t.1),
            dns: dns.into_iter().map(global).collect(),
            search,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_bind(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        seed in any::<u64>(),
    ) {
        for (mut client, _, now) in clients(seed) {
            let phase = client.phase();
            let actions = client.handle(now + 1, &bytes);
            prop_assert!(bound(&actions).is_empty());
            prop_assert!(!actions.contains(&Action::Lost));
            if phase != Phase::Soliciting && phase != Phase::Releasing {
                prop_assert_eq!(client.phase(), phase);
            }
        }
    }

    #[test]
    fn arbitrary_options_after_a_right_header_never_panic_and_bind_only_sanely(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        reply in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for (mut client, last, now) in clients(seed) {
            let Some(last) = last else { continue };
            // The right type, xid, Client and Server Identifiers, then noise.
            let kind = if reply { MessageType::Reply } else { MessageType::Advertise };
            let mut g = Grant::both();
            g.address = None;
            g.prefix = None;
            g.dns.clear();
            g.search.clear();
            let mut bytes = answer(kind, &last, &g);
            bytes.extend_from_slice(&tail);
            for action in client.handle(now + 1, &bytes) {
                if let Action::Bound(lease) = action {
                    sane(&lease);
                }
            }
        }
    }

    #[test]
    fn a_well_formed_conversation_binds_exactly_what_was_offered(
        g in grant(),
        stateful in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut client = Client::new(MAC, stateful, seed);
        let usable = (stateful && g.address.is_some()) || g.prefix.is_some();
        let (sol, at) = solicit(&mut client, 0);
        client.handle(at, &answer(MessageType::Advertise, &sol, &g));
        let t = client.next_deadline().expect("a timer");
        let req = sent(&client.poll(t));
        if !usable {
            prop_assert_eq!(req[0].msg_type(), MessageType::Solicit);
            return Ok(());
        }
        prop_assert_eq!(req[0].msg_type(), MessageType::Request);
        let actions = client.handle(t, &answer(MessageType::Reply, &req[0], &g));
        let leases = bound(&actions);
        prop_assert_eq!(leases.len(), 1);
        let lease = &leases[0];
        sane(lease);
        let address = lease.address.as_ref().map(|a| (a.address, a.preferred, a.valid));
        prop_assert_eq!(address, g.address.filter(|_| stateful));
        let prefix = lease.prefix.as_ref().map(|p| (p.prefix, p.len, p.preferred, p.valid));
        prop_assert_eq!(prefix, g.prefix);
        let mut dns = g.dns.clone();
        dns.dedup();
        let mut unique = Vec::new();
        for d in dns {
            if !unique.contains(&d) { unique.push(d); }
        }
        prop_assert_eq!(&lease.dns, &unique);
        let mut search = Vec::new();
        for s in &g.search {
            if !search.contains(s) { search.push(s.clone()); }
        }
        prop_assert_eq!(&lease.search, &search);
        prop_assert_eq!(&lease.server_id, &g.server);
        let valid = address.map(|a| a.2).into_iter().chain(prefix.map(|p| p.3)).min().expect("a part");
        if g.t1 >= 1 && u64::from(g.t2) * 5 <= u64::from(valid) * 4 {
            prop_assert_eq!((lease.t1, lease.t2), (g.t1, g.t2));
        }
        prop_assert!(u64::from(lease.t2) * 5 <= u64::from(valid.max(2)) * 4 || lease.t2 == 1);
    }

    #[test]
    fn timers_move_forward_and_leases_never_outlive_their_lifetimes(
        g in grant(),
        steps in proptest::collection::vec((0u8..4, grant()), 1..40),
        seed in any::<u64>(),
    ) {
        let mut client = Client::new(MAC, true, seed);
        let (sol, at) = solicit(&mut client, 0);
        let server = g.server.clone();
        let adv = Grant { preference: Some(255), ..g };
        let mut last = sent(&client.handle(at, &answer(MessageType::Advertise, &sol, &adv))).pop();
        let mut now = at;
        let mut expires: Option<u64> = None;
        for (what, grant) in steps {
            let actions = match (what, &last) {
                // A server answers the last message.
                (0, Some(m)) => {
                    // From the server it addresses (mostly the same one).
                    let server = match m.opts().get(OptionCode::ServerId) {
                        Some(DhcpOption::ServerId(id)) => id.clone(),
                        _ => server.clone(),
                    };
                    let grant = Grant { server, ..grant };
                    client.handle(now, &answer(MessageType::Reply, m, &grant))
                }
                (1, _) => client.release(now),
                _ => {
                    let Some(t) = client.next_deadline() else { break };
                    prop_assert!(t >= now, "a deadline in the past: {t} < {now}");
                    now = t;
                    let actions = client.poll(now);
                    if let Some(after) = client.next_deadline() {
                        prop_assert!(after > now, "a busy loop at {now}");
                    }
                    actions
                }
            };
            for action in &actions {
                match action {
                    Action::Send(bytes) => {
                        last = Some(sent(&[Action::Send(bytes.clone())]).remove(0));
                    }
                    Action::Bound(lease) => {
                        sane(lease);
                        let end = [lease.address.as_ref().map(|a| a.valid), lease.prefix.as_ref().map(|p| p.valid)]
                            .into_iter().flatten().max().expect("a part");
                        expires = Some(now + u64::from(end) * 1000);
                    }
                    Action::Lost => expires = None,
                }
            }
            match client.lease(now) {
                Some(lease) => {
                    sane(&lease);
                    prop_assert!(expires.is_some_and(|e| now < e));
                }
                None => prop_assert!(client.phase() != Phase::Bound),
            }
            if client.phase() == Phase::Idle {
                prop_assert_eq!(client.next_deadline(), None);
                prop_assert!(client.lease(now).is_none());
            } else {
                prop_assert!(client.next_deadline().is_some());
            }
        }
    }
}
