//! Fuzzes the uplink DHCPv6 client: any bytes as a server's Advertise or
//! Reply, given the transaction id of the client's last message (so the
//! fuzzer gets past that check), through Solicit, Request, Renew and
//! Release, must be taken or ignored without a panic, and anything bound
//! must be sane.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_dhcp6::client::{Action, Client};

fuzz_target!(|data: &[u8]| {
    let mut client = Client::new([2, 0, 0, 0, 0, 0x42], true, 5);
    client.start(0);
    let mut now = 0;
    let mut last: Option<Vec<u8>> = None;
    for round in 0..6 {
        let mut actions = match client.next_deadline() {
            Some(t) => {
                now = t;
                client.poll(now)
            }
            None => Vec::new(),
        };
        if round == 4 {
            actions.extend(client.release(now));
        }
        for action in &actions {
            if let Action::Send(bytes) = action {
                last = Some(bytes.clone());
            }
        }
        let mut reply = data.to_vec();
        if let (Some(sent), true) = (&last, reply.len() >= 4) {
            reply[1..4].copy_from_slice(&sent[1..4]);
        }
        for action in client.handle(now + 1, &reply) {
            match action {
                Action::Send(bytes) => last = Some(bytes),
                Action::Bound(lease) => {
                    if let Some(a) = &lease.address {
                        assert!(a.preferred <= a.valid && a.valid > 0);
                    }
                    if let Some(p) = &lease.prefix {
                        assert!(p.preferred <= p.valid && (1..=64).contains(&p.len));
                    }
                    assert!(lease.t1 <= lease.t2);
                }
                Action::Lost => {}
            }
        }
    }
});
