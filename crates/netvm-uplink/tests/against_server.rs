//! The uplink client against netvm's own DHCP server engine, in memory:
//! the whole life of a lease (DISCOVER to expiry) with the clock moved by
//! hand. Real servers (dnsmasq) are in the CLI's integration tests.

use netvm_description::{parse, Format};
use netvm_dhcp::{Server, ServerConfig, Timestamp};
use netvm_uplink::{Action, Client, State};
use std::net::Ipv4Addr;

const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x42];
const EPOCH: u64 = 1_800_000_000_000;

fn server() -> Server {
    let text = "[network]\nsubnet = \"10.1.0.0/24\"\n[netvm.uplink]\ninterface = \"eth0\"\n\
                [dhcp]\nlease_time = \"1m\"\nrenew_time = \"20s\"\nrebind_time = \"40s\"\n\
                [dns]\nupstreams = [\"10.1.0.53\"]\n";
    let system = parse("up.toml", text, Format::Toml).expect("valid");
    Server::new(ServerConfig::from_system(&system))
}

/// Delivers the client's messages to the server and the replies back,
/// until nothing moves; returns what the client asked its driver to do
/// besides sending.
fn exchange(
    client: &mut Client,
    server: &mut Server,
    now: u64,
    mut actions: Vec<Action>,
) -> Vec<Action> {
    let mut done = Vec::new();
    while let Some(action) = actions.pop() {
        match action {
            Action::Broadcast(bytes) | Action::Unicast { bytes, .. } => {
                let outcome = server.handle(Timestamp(EPOCH + now), &bytes);
                if let Some(reply) = outcome.reply {
                    actions.extend(client.handle(now, &reply.bytes));
                }
            }
            other => done.push(other),
        }
    }
    done
}

#[test]
fn a_lease_is_taken_renewed_rebound_and_lost() {
    let mut server = server();
    let mut client = Client::new(MAC, 7);
    let start = client.start(0);
    let done = exchange(&mut client, &mut server, 0, start);
    let [Action::Configure(lease)] = done.as_slice() else {
        panic!("no lease: {done:?}");
    };
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.router, Some(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(
        (lease.lease_secs, lease.renew_secs, lease.rebind_secs),
        (60, 20, 40)
    );
    assert_eq!(*client.state(), State::Bound);
    assert_eq!(client.due(), 20_000);

    // T1: renewed by unicast to the server, same address.
    let renew = client.poll(20_000);
    assert!(
        matches!(renew.as_slice(), [Action::Unicast { server, .. }] if *server == Ipv4Addr::new(10, 1, 0, 1))
    );
    let done = exchange(&mut client, &mut server, 20_000, renew);
    assert!(matches!(done.as_slice(), [Action::Configure(l)] if l.address == lease.address));
    assert_eq!(*client.state(), State::Bound);

    // The server goes quiet: renewing from T1, rebinding from T2 by
    // broadcast, and at the end of the lease it is taken off the uplink.
    let mut now = 40_000;
    let mut seen_rebinding = false;
    let mut lost = false;
    while now <= 100_000 && !lost {
        now = client.due().max(now);
        for action in client.poll(now) {
            match action {
                Action::Broadcast(_) if *client.state() == State::Rebinding => {
                    seen_rebinding = true
                }
                Action::Deconfigure => lost = true,
                _ => {}
            }
        }
        now += 1;
    }
    assert!(seen_rebinding, "never rebound");
    assert!(lost, "lease never ended");
    assert_eq!(now - 1, 80_000, "ends exactly when the renewed lease does");
    assert_eq!(*client.state(), State::Selecting, "back to DISCOVER");
}

#[test]
fn retransmissions_back_off_and_strangers_are_ignored() {
    let mut client = Client::new(MAC, 9);
    client.start(0);
    let mut gaps = Vec::new();
    let mut last = 0;
    for _ in 0..6 {
        let due = client.due();
        gaps.push(due - last);
        last = due;
        assert_eq!(client.poll(due).len(), 1);
    }
    for (gap, base) in gaps
        .iter()
        .zip([4_000u64, 8_000, 16_000, 32_000, 64_000, 64_000])
    {
        assert!(gap.abs_diff(base) <= 1_000, "{gaps:?}");
    }
    // Garbage, and a reply for another transaction, change nothing.
    assert!(client.handle(0, b"\x02\x01garbage").is_empty());
    let mut server = server();
    let mut other = Client::new([2, 0, 0, 0, 0, 9], 1);
    let discover = other.start(0);
    let Action::Broadcast(bytes) = &discover[0] else {
        panic!("discover")
    };
    let offer = server.handle(Timestamp(EPOCH), bytes).reply.expect("offer");
    assert!(client.handle(0, &offer.bytes).is_empty());
    assert_eq!(*client.state(), State::Selecting);
}

mod untrusted {
    //! Replies on the uplink come from anyone on that network: no bytes
    //! may make the client panic.
    use super::*;
    use proptest::prelude::*;

    /// A real OFFER for `client`'s DISCOVER, from netvm's server.
    fn offer_for(client: &mut Client) -> Vec<u8> {
        let mut server = server();
        let discover = client.start(0);
        let Action::Broadcast(bytes) = &discover[0] else {
            panic!("discover")
        };
        server
            .handle(Timestamp(EPOCH), bytes)
            .reply
            .expect("offer")
            .bytes
    }

    /// The fuzzer's finds (fuzz/seeds/uplink_reply): two 4-byte pieces of
    /// option 155, which dhcproto joins into one 8-byte value and then
    /// asserts is 4 long; option 94 joined the same way; an empty option
    /// 81 apart from its other pieces, which dhcproto decodes on its own.
    #[test]
    fn split_fixed_length_options_found_by_the_fuzzer_are_refused() {
        for bytes in [
            &include_bytes!("../../../fuzz/seeds/uplink_reply/regression-option155-concat")[..],
            &include_bytes!("../../../fuzz/seeds/uplink_reply/regression-option94-concat")[..],
            &include_bytes!("../../../fuzz/seeds/uplink_reply/regression-option81-apart")[..],
            &include_bytes!("../../../fuzz/seeds/uplink_reply/regression-option81-split-by-pad")[..],
            &include_bytes!("../../../fuzz/seeds/uplink_reply/regression-option155-split-by-pad")[..],
        ] {
            let mut client = Client::new(MAC, 3);
            client.start(0);
            assert_eq!(client.handle(1, bytes), Vec::new());
            assert_eq!(client.handle(2, bytes), Vec::new());
        }
    }

    /// `offer` with `pieces` of option `code` put before its END, with a
    /// PAD between them when `apart`.
    fn with_pieces(mut offer: Vec<u8>, code: u8, pieces: &[u8], apart: bool) -> Vec<u8> {
        let end = offer.iter().rposition(|b| *b == 255).expect("END");
        let mut extra = Vec::new();
        for (i, len) in pieces.iter().enumerate() {
            if apart && i > 0 {
                extra.push(0);
            }
            extra.push(code);
            extra.push(*len);
            extra.extend(std::iter::repeat_n(i as u8, usize::from(*len)));
        }
        offer.splice(end..end, extra);
        offer
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Options whose length dhcproto asserts, in pieces of any length
        /// (RFC 3396 joins them), next to each other or apart (a PAD or
        /// another option between them): refused or read, never a panic.
        #[test]
        fn options_in_pieces_never_panic(
            code in prop::sample::select(vec![80u8, 81, 94, 152, 153, 154, 155]),
            pieces in proptest::collection::vec(0u8..9, 1..4),
            apart in any::<bool>(),
        ) {
            let mut client = Client::new(MAC, 3);
            let offer = with_pieces(offer_for(&mut client), code, &pieces, apart);
            let _ = client.handle(1, &offer);
            let _ = client.handle(2, &offer);
            let _ = client.poll(10_000_000);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut client = Client::new(MAC, 3);
            client.start(0);
            let _ = client.handle(1, &bytes);
            let _ = client.poll(100_000);
        }

        #[test]
        fn mutated_offers_never_panic(flips in proptest::collection::vec((0usize..400, any::<u8>()), 1..12)) {
            let mut client = Client::new(MAC, 3);
            let mut offer = offer_for(&mut client);
            for (at, value) in flips {
                let len = offer.len();
                offer[at % len] ^= value;
            }
            for action in client.handle(1, &offer) {
                if let Action::Configure(lease) = action {
                    prop_assert!(lease.renew_secs <= lease.rebind_secs && lease.rebind_secs <= lease.lease_secs);
                }
            }
            let _ = client.poll(10_000_000);
        }
    }
}
