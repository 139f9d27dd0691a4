//! Fuzzes the RFC 7050 probe's reader: any bytes as a DNS server's answer
//! to the AAAA query for `ipv4only.arpa` must give addresses only when
//! they answer our question, never a panic; what it gives must make
//! prefixes the RFC 6052 reader accepts or refuses without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_agent::nat64_probe::answers;

fuzz_target!(|data: &[u8]| {
    let found = answers(0x7050, data);
    let _ = netvm_ndp::nat64_prefixes_from_aaaa(&found);
});
