//! The DHCPv6 client's life with the clock moved by hand: what it sends
//! (decoded by `dhcproto`), what it takes and what it refuses.

mod common;

use common::{answer, bind, bound, one_sent, sent, solicit, Grant, MAC};
use dhcproto::v6::{DhcpOption, Message, MessageType, OptionCode};
use netvm_dhcp6::client::{Action, Phase};
use netvm_dhcp6::{Address6, Client, Prefix6};
use std::net::Ipv6Addr;

fn ia_na(m: &Message) -> Option<&dhcproto::v6::IANA> {
    match m.opts().get(OptionCode::IANA) {
        Some(DhcpOption::IANA(ia)) => Some(ia),
        _ => None,
    }
}

fn ia_pd(m: &Message) -> Option<&dhcproto::v6::IAPD> {
    match m.opts().get(OptionCode::IAPD) {
        Some(DhcpOption::IAPD(ia)) => Some(ia),
        _ => None,
    }
}

fn elapsed(m: &Message) -> u16 {
    match m.opts().get(OptionCode::ElapsedTime) {
        Some(DhcpOption::ElapsedTime(t)) => *t,
        other => panic!("no Elapsed Time: {other:?}"),
    }
}

fn server_id(m: &Message) -> Option<Vec<u8>> {
    match m.opts().get(OptionCode::ServerId) {
        Some(DhcpOption::ServerId(id)) => Some(id.clone()),
        _ => None,
    }
}

#[test]
fn a_stateful_solicit_asks_both_ias_with_our_duid_ll() {
    let mut client = Client::new(MAC, true, 1);
    let (sol, _) = solicit(&mut client, 0);
    assert_eq!(sol.msg_type(), MessageType::Solicit);
    assert_eq!(
        sol.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x42]))
    );
    assert_eq!(ia_na(&sol).map(|ia| ia.id), Some(1));
    assert_eq!(ia_pd(&sol).map(|ia| ia.id), Some(2));
    assert_eq!(elapsed(&sol), 0);
    assert!(server_id(&sol).is_none());
    let Some(DhcpOption::ORO(oro)) = sol.opts().get(OptionCode::ORO) else {
        panic!("no ORO");
    };
    assert!(oro.opts.contains(&OptionCode::DomainNameServers));
    assert!(oro.opts.contains(&OptionCode::DomainSearchList));
}

#[test]
fn a_stateless_client_asks_a_prefix_only() {
    let mut client = Client::new(MAC, false, 1);
    let (sol, _) = solicit(&mut client, 0);
    assert!(ia_na(&sol).is_none());
    assert!(ia_pd(&sol).is_some());
}

#[test]
fn binds_exactly_what_the_reply_grants() {
    let mut client = Client::new(MAC, true, 2);
    let g = Grant::both();
    let (lease, _) = bind(&mut client, &g);
    assert_eq!(
        lease.address,
        Some(Address6 {
            address: "2001:db8:1::100".parse().expect("an address"),
            preferred: 40,
            valid: 60
        })
    );
    assert_eq!(
        lease.prefix,
        Some(Prefix6 {
            prefix: "2001:db8:8000:100::".parse().expect("an address"),
            len: 56,
            preferred: 40,
            valid: 60
        })
    );
    assert_eq!(lease.dns, g.dns);
    assert_eq!(lease.search, g.search);
    assert_eq!(lease.server_id, g.server);
    assert_eq!((lease.t1, lease.t2), (20, 32));
    assert_eq!(client.phase(), Phase::Bound);
}

#[test]
fn the_request_names_the_server_and_repeats_what_it_offered() {
    let mut client = Client::new(MAC, true, 3);
    let g = Grant::both();
    let (sol, at) = solicit(&mut client, 0);
    client.handle(at + 1, &answer(MessageType::Advertise, &sol, &g));
    let t = client.next_deadline().expect("present");
    assert!(t > at + 1_000 && t <= at + 1_100, "first RT, RAND > 0");
    let req = one_sent(&client.poll(t));
    assert_ne!(req.xid(), sol.xid(), "a new exchange");
    assert_eq!(server_id(&req), Some(g.server.clone()));
    let Some(DhcpOption::IAAddr(a)) = ia_na(&req).expect("present").opts.get(OptionCode::IAAddr)
    else {
        panic!("no address hint");
    };
    assert_eq!(a.addr, g.address.expect("present").0);
    assert_eq!(elapsed(&req), 0);
}

#[test]
fn the_most_preferred_advertise_wins_after_the_first_rt() {
    let mut client = Client::new(MAC, true, 4);
    let (sol, at) = solicit(&mut client, 0);
    let low = Grant {
        preference: Some(10),
        ..Grant::both()
    };
    let high = Grant {
        server: vec![0, 2, 0, 0, 0, 1, 2],
        preference: Some(200),
        ..Grant::both()
    };
    let plain = Grant {
        server: vec![0, 2, 0, 0, 0, 1, 3],
        ..Grant::both()
    };
    for g in [&low, &high, &plain] {
        assert!(client
            .handle(at + 5, &answer(MessageType::Advertise, &sol, g))
            .is_empty());
    }
    let req = one_sent(&client.poll(client.next_deadline().expect("present")));
    assert_eq!(server_id(&req), Some(high.server));
}

#[test]
fn preference_255_is_taken_at_once() {
    let mut client = Client::new(MAC, true, 5);
    let (sol, at) = solicit(&mut client, 0);
    let g = Grant {
        preference: Some(255),
        ..Grant::both()
    };
    let req = one_sent(&client.handle(at + 5, &answer(MessageType::Advertise, &sol, &g)));
    assert_eq!(req.msg_type(), MessageType::Request);
}

#[test]
fn after_the_first_rt_the_first_advertise_is_taken() {
    let mut client = Client::new(MAC, true, 6);
    let (_, at) = solicit(&mut client, 0);
    let sol2 = one_sent(&client.poll(client.next_deadline().expect("present")));
    assert_eq!(sol2.msg_type(), MessageType::Solicit);
    assert!(elapsed(&sol2) >= 100, "a second at least");
    let req = one_sent(&client.handle(
        at + 5_000,
        &answer(MessageType::Advertise, &sol2, &Grant::both()),
    ));
    assert_eq!(req.msg_type(), MessageType::Request);
}

#[test]
fn solicit_retransmits_by_rfc_8415_section_15() {
    let mut client = Client::new(MAC, true, 7);
    let (_, mut at) = solicit(&mut client, 0);
    let mut rt = client.next_deadline().expect("present") - at;
    assert!((1_001..=1_100).contains(&rt), "{rt}");
    for _ in 0..20 {
        at = client.next_deadline().expect("present");
        assert_eq!(one_sent(&client.poll(at)).msg_type(), MessageType::Solicit);
        let next = client.next_deadline().expect("present") - at;
        let doubled = (rt * 19 / 10)..=(rt * 21 / 10);
        assert!(
            doubled.contains(&next) || (3_240_000..=3_960_000).contains(&next),
            "{rt} -> {next}"
        );
        rt = next;
    }
    assert!(rt >= 3_240_000, "capped at SOL_MAX_RT ±10%: {rt}");
}

#[test]
fn a_silent_server_is_given_up_after_ten_requests() {
    let mut client = Client::new(MAC, true, 8);
    let (sol, at) = solicit(&mut client, 0);
    client.handle(at, &answer(MessageType::Advertise, &sol, &Grant::both()));
    let mut requests = 0;
    loop {
        let t = client.next_deadline().expect("present");
        let m = one_sent(&client.poll(t));
        if m.msg_type() == MessageType::Solicit {
            break;
        }
        requests += 1;
        assert!(requests <= 10);
    }
    assert_eq!(requests, 10);
    assert_eq!(client.phase(), Phase::Soliciting);
}

#[test]
fn renews_at_t1_rebinds_at_t2_and_solicits_after_expiry() {
    let mut client = Client::new(MAC, true, 9);
    let g = Grant::both();
    let (_, t0) = bind(&mut client, &g);
    assert_eq!(client.next_deadline(), Some(t0 + 20_000));
    assert!(client.poll(t0 + 19_999).is_empty());
    let renew = one_sent(&client.poll(t0 + 20_000));
    assert_eq!(renew.msg_type(), MessageType::Renew);
    assert_eq!(server_id(&renew), Some(g.server.clone()));
    assert!(ia_pd(&renew)
        .expect("present")
        .opts
        .get(OptionCode::IAPrefix)
        .is_some());
    // Unanswered: Renew again after REN_TIMEOUT, then Rebind at T2.
    let again = client.next_deadline().expect("present");
    assert!((t0 + 29_000..=t0 + 31_000).contains(&again));
    let renew2 = one_sent(&client.poll(again));
    assert_eq!(renew2.xid(), renew.xid());
    assert!(elapsed(&renew2) > 0);
    assert_eq!(client.next_deadline(), Some(t0 + 32_000));
    let rebind = one_sent(&client.poll(t0 + 32_000));
    assert_eq!(rebind.msg_type(), MessageType::Rebind);
    assert!(server_id(&rebind).is_none());
    assert_eq!(client.phase(), Phase::Rebinding);
    // Retransmits until the valid lifetimes end, then starts over.
    let now = loop {
        let now = client.next_deadline().expect("a timer");
        assert!(now <= t0 + 60_000);
        if client.poll(now).contains(&Action::Lost) {
            break now;
        }
    };
    assert_eq!(now, t0 + 60_000);
    assert_eq!(client.phase(), Phase::Soliciting);
    assert!(client.lease(now).is_none());
}

#[test]
fn a_renew_reply_extends_the_lease() {
    let mut client = Client::new(MAC, true, 10);
    let g = Grant::both();
    let (_, t0) = bind(&mut client, &g);
    let renew = one_sent(&client.poll(t0 + 20_000));
    let longer = Grant {
        address: Some(("2001:db8:1::100".parse().expect("an address"), 400, 600)),
        t1: 200,
        t2: 320,
        ..g.clone()
    };
    let actions = client.handle(t0 + 20_010, &answer(MessageType::Reply, &renew, &longer));
    let lease = &bound(&actions)[0];
    assert_eq!(lease.address.as_ref().expect("present").valid, 600);
    // The prefix was granted again too (same values as before).
    assert_eq!(lease.prefix.as_ref().expect("present").valid, 60);
    assert_eq!(
        (lease.t1, lease.t2),
        (30, 48),
        "T2 before the prefix's valid end"
    );
    assert_eq!(client.phase(), Phase::Bound);
}

#[test]
fn a_renew_reply_from_another_server_is_ignored() {
    let mut client = Client::new(MAC, true, 11);
    let (_, t0) = bind(&mut client, &Grant::both());
    let renew = one_sent(&client.poll(t0 + 20_000));
    let other = Grant {
        server: vec![0, 2, 9, 9, 9],
        ..Grant::both()
    };
    assert!(client
        .handle(t0 + 20_010, &answer(MessageType::Reply, &renew, &other))
        .is_empty());
    assert_eq!(client.phase(), Phase::Renewing);
}

#[test]
fn a_rebind_reply_from_another_server_is_taken() {
    let mut client = Client::new(MAC, true, 12);
    let (_, t0) = bind(&mut client, &Grant::both());
    client.poll(t0 + 20_000);
    let rebind = one_sent(&client.poll(t0 + 32_000));
    let other = Grant {
        server: vec![0, 2, 9, 9, 9],
        ..Grant::both()
    };
    let lease =
        &bound(&client.handle(t0 + 32_010, &answer(MessageType::Reply, &rebind, &other)))[0];
    assert_eq!(lease.server_id, other.server);
}

#[test]
fn no_addrs_avail_binds_the_prefix_alone() {
    let mut client = Client::new(MAC, true, 13);
    let g = Grant {
        na_status: Some(2),
        ..Grant::both()
    };
    let (lease, _) = bind(&mut client, &g);
    assert!(lease.address.is_none());
    assert_eq!(lease.prefix.as_ref().expect("present").len, 56);
}

#[test]
fn an_advertise_without_any_usable_ia_is_ignored() {
    let mut client = Client::new(MAC, true, 14);
    let (sol, at) = solicit(&mut client, 0);
    let none = Grant {
        na_status: Some(2),
        pd_status: Some(6),
        ..Grant::both()
    };
    client.handle(at, &answer(MessageType::Advertise, &sol, &none));
    let next = one_sent(&client.poll(client.next_deadline().expect("present")));
    assert_eq!(next.msg_type(), MessageType::Solicit);
}

#[test]
fn replies_that_are_not_ours_are_ignored() {
    let mut client = Client::new(MAC, true, 15);
    let (sol, at) = solicit(&mut client, 0);
    let g = Grant {
        preference: Some(255),
        ..Grant::both()
    };
    let good = answer(MessageType::Advertise, &sol, &g);
    let mut wrong_xid = good.clone();
    wrong_xid[3] ^= 1;
    assert!(client.handle(at, &wrong_xid).is_empty());
    let mut other_client = sol.clone();
    other_client
        .opts_mut()
        .insert(DhcpOption::ClientId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x43]));
    other_client.opts_mut().remove(OptionCode::ClientId);
    other_client
        .opts_mut()
        .insert(DhcpOption::ClientId(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 0x43]));
    assert!(client
        .handle(at, &answer(MessageType::Advertise, &other_client, &g))
        .is_empty());
    let mut no_client_id = sol.clone();
    no_client_id.opts_mut().remove(OptionCode::ClientId);
    assert!(client
        .handle(at, &answer(MessageType::Advertise, &no_client_id, &g))
        .is_empty());
    // A Reply to a Solicit (no rapid commit asked) and a Reconfigure.
    assert!(client
        .handle(at, &answer(MessageType::Reply, &sol, &g))
        .is_empty());
    assert!(client
        .handle(at, &answer(MessageType::Reconfigure, &sol, &g))
        .is_empty());
    assert_eq!(client.phase(), Phase::Soliciting);
    assert_eq!(
        one_sent(&client.handle(at, &good)).msg_type(),
        MessageType::Request
    );
}

#[test]
fn insane_lifetimes_and_prefixes_are_refused() {
    let ll: Ipv6Addr = "fe80::1".parse().expect("an address");
    let cases = [
        Grant {
            address: Some(("2001:db8::1".parse().expect("an address"), 70, 60)),
            prefix: None,
            ..Grant::both()
        },
        Grant {
            address: Some((ll, 40, 60)),
            prefix: None,
            ..Grant::both()
        },
        Grant {
            address: Some(("ff02::1".parse().expect("an address"), 40, 60)),
            prefix: Some(("2001:db8:8000::".parse().expect("an address"), 65, 40, 60)),
            ..Grant::both()
        },
        Grant {
            address: None,
            prefix: Some(("2001:db8:8000::1".parse().expect("an address"), 56, 40, 60)),
            ..Grant::both()
        },
        Grant {
            address: Some(("2001:db8::1".parse().expect("an address"), 0, 0)),
            prefix: Some(("::".parse().expect("an address"), 1, 40, 60)),
            ..Grant::both()
        },
        Grant {
            t1: 50,
            t2: 40,
            preference: Some(255),
            ..Grant::both()
        },
    ];
    for g in cases {
        let mut client = Client::new(MAC, true, 16);
        let (sol, at) = solicit(&mut client, 0);
        let g = Grant {
            preference: Some(255),
            ..g
        };
        assert!(
            client
                .handle(at, &answer(MessageType::Advertise, &sol, &g))
                .is_empty(),
            "{g:?}"
        );
    }
}

#[test]
fn a_withdrawn_address_goes_and_the_prefix_stays() {
    let mut client = Client::new(MAC, true, 17);
    let (_, t0) = bind(&mut client, &Grant::both());
    let renew = one_sent(&client.poll(t0 + 20_000));
    let withdrawn = Grant {
        address: Some(("2001:db8:1::100".parse().expect("an address"), 0, 0)),
        ..Grant::both()
    };
    let lease =
        &bound(&client.handle(t0 + 20_000, &answer(MessageType::Reply, &renew, &withdrawn)))[0];
    assert!(lease.address.is_none());
    assert!(lease.prefix.is_some());
}

#[test]
fn no_binding_on_renew_requests_again() {
    let mut client = Client::new(MAC, true, 18);
    let g = Grant::both();
    let (_, t0) = bind(&mut client, &g);
    let renew = one_sent(&client.poll(t0 + 20_000));
    let forgot = Grant {
        na_status: Some(3),
        pd_status: Some(3),
        ..g.clone()
    };
    let req = one_sent(&client.handle(t0 + 20_000, &answer(MessageType::Reply, &renew, &forgot)));
    assert_eq!(req.msg_type(), MessageType::Request);
    assert_eq!(client.phase(), Phase::Requesting);
    assert!(client.lease(t0 + 20_000).is_some(), "still held meanwhile");
    let lease = &bound(&client.handle(t0 + 20_010, &answer(MessageType::Reply, &req, &g)))[0];
    assert_eq!(lease.address.as_ref().expect("present").valid, 60);
}

#[test]
fn part_of_a_lease_expires_alone() {
    let mut client = Client::new(MAC, true, 19);
    let g = Grant {
        address: Some(("2001:db8:1::100".parse().expect("an address"), 10, 25)),
        t1: 100,
        t2: 160,
        ..Grant::both()
    };
    let (lease, t0) = bind(&mut client, &g);
    assert_eq!(
        (lease.t1, lease.t2),
        (12, 20),
        "T1, T2 within the valid lifetime"
    );
    // Renew and Rebind go unanswered; the address ends at 25 s.
    let mut kinds = Vec::new();
    let (lease, now) = loop {
        let now = client.next_deadline().expect("a timer");
        let actions = client.poll(now);
        kinds.extend(sent(&actions).iter().map(|m| m.msg_type()));
        if let Some(lease) = bound(&actions).pop() {
            break (lease, now);
        }
    };
    assert_eq!(now, t0 + 25_000);
    assert!(lease.address.is_none());
    assert_eq!(lease.prefix.as_ref().expect("present").valid, 35);
    assert_eq!(kinds, [MessageType::Renew, MessageType::Rebind]);
    assert_eq!(client.phase(), Phase::Rebinding);
}

#[test]
fn release_gives_everything_back_and_stops() {
    let mut client = Client::new(MAC, true, 20);
    let g = Grant::both();
    let (_, t0) = bind(&mut client, &g);
    let actions = client.release(t0 + 1_000);
    assert_eq!(actions[0], Action::Lost);
    let rel = one_sent(&actions);
    assert_eq!(rel.msg_type(), MessageType::Release);
    assert_eq!(server_id(&rel), Some(g.server.clone()));
    assert!(rel.opts().get(OptionCode::ORO).is_none());
    assert!(ia_na(&rel)
        .expect("present")
        .opts
        .get(OptionCode::IAAddr)
        .is_some());
    assert!(ia_pd(&rel)
        .expect("present")
        .opts
        .get(OptionCode::IAPrefix)
        .is_some());
    assert_eq!(client.phase(), Phase::Releasing);
    assert!(client
        .handle(t0 + 1_010, &answer(MessageType::Reply, &rel, &g))
        .is_empty());
    assert_eq!(client.phase(), Phase::Idle);
    assert_eq!(client.next_deadline(), None);
}

#[test]
fn an_unanswered_release_is_sent_four_times() {
    let mut client = Client::new(MAC, true, 21);
    let (_, t0) = bind(&mut client, &Grant::both());
    let mut releases = sent(&client.release(t0)).len();
    while let Some(t) = client.next_deadline() {
        releases += sent(&client.poll(t)).len();
    }
    assert_eq!(releases, 4);
    assert_eq!(client.phase(), Phase::Idle);
}

#[test]
fn a_sol_max_rt_option_caps_the_solicit_backoff() {
    let mut client = Client::new(MAC, true, 22);
    let (sol, at) = solicit(&mut client, 0);
    // An Advertise with no IA still sets SOL_MAX_RT (§18.2.9).
    let mut adv = answer(
        MessageType::Advertise,
        &sol,
        &Grant {
            na_status: Some(2),
            pd_status: Some(6),
            ..Grant::both()
        },
    );
    adv.extend_from_slice(&[0, 82, 0, 4, 0, 0, 0, 60]);
    client.handle(at, &adv);
    let mut rt = 0;
    for _ in 0..12 {
        let t = client.next_deadline().expect("present");
        client.poll(t);
        rt = client.next_deadline().expect("present") - t;
    }
    assert!((54_000..=66_000).contains(&rt), "{rt}");
}

#[test]
fn an_address_is_asked_for_from_the_next_message_once_wanted() {
    let mut client = Client::new(MAC, false, 23);
    let pd_only = Grant {
        address: None,
        ..Grant::both()
    };
    let (lease, t0) = bind(&mut client, &pd_only);
    assert!(lease.address.is_none());
    client.set_want_address(true);
    let renew = one_sent(&client.poll(t0 + 20_000));
    assert!(ia_na(&renew).is_some(), "the Renew asks for an address");
    let lease = &bound(&client.handle(
        t0 + 20_000,
        &answer(MessageType::Reply, &renew, &Grant::both()),
    ))[0];
    assert!(lease.address.is_some());
}
