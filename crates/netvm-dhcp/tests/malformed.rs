//! Malformed requests, tried as an attacker would (issue 13, hole 5):
//! packets are built byte by byte from option lists, then corrupted in
//! one way each (an empty or wrong-length value, a truncation, no END, a
//! nested overload, a small maximum message size, a wrong UDP source
//! port). The server must never answer a corrupted packet and must always
//! answer the valid one it came from.

use netvm_description::{parse, Format};
use netvm_dhcp::{DropReason, Outcome, Server, ServerConfig, Timestamp};
use proptest::prelude::*;
use std::net::Ipv4Addr;

const T0: Timestamp = Timestamp(1_800_000_000_000);
const RELAY: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 9);

fn server() -> Server {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
         [dhcp]\npool = \"192.168.100.200-192.168.100.250\"\nrelays = [\"192.168.100.9\"]\n";
    let system = parse("test.toml", text, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    Server::new(ServerConfig::from_system(&system))
}

/// One option as it goes on the wire (split over several pieces when
/// `pieces` > 1, RFC 3396).
#[derive(Debug, Clone)]
struct Opt {
    code: u8,
    value: Vec<u8>,
    pieces: usize,
}

impl Opt {
    fn new(code: u8, value: &[u8]) -> Opt {
        Opt {
            code,
            value: value.to_vec(),
            pieces: 1,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let pieces = self.pieces.clamp(1, self.value.len().max(1));
        let size = self.value.len().div_ceil(pieces).max(1);
        let mut chunks: Vec<&[u8]> = self.value.chunks(size).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            out.push(self.code);
            out.push(u8::try_from(chunk.len()).expect("chunks are short"));
            out.extend_from_slice(chunk);
        }
    }
}

/// A client message before encoding.
#[derive(Debug, Clone)]
struct Packet {
    kind: u8,
    mac: u8,
    flags: u16,
    giaddr: Ipv4Addr,
    options: Vec<Opt>,
    /// Options carried in `file` (overload 1) and `sname` (overload 2).
    file: Option<Vec<Opt>>,
    sname: Option<Vec<Opt>>,
    /// END in the option area, in `file`, in `sname`.
    end: [bool; 3],
    /// Cut the encoded packet to this length.
    cut: Option<usize>,
    port: u16,
}

impl Packet {
    fn discover(mac: u8) -> Packet {
        Packet {
            kind: 1,
            mac,
            flags: 0,
            giaddr: Ipv4Addr::UNSPECIFIED,
            options: Vec::new(),
            file: None,
            sname: None,
            end: [true; 3],
            cut: None,
            port: 68,
        }
    }

    fn with(mut self, code: u8, value: &[u8]) -> Packet {
        self.options.push(Opt::new(code, value));
        self
    }

    fn area(options: &[Opt], end: bool, size: usize) -> Vec<u8> {
        let mut area = Vec::new();
        for o in options {
            o.encode(&mut area);
        }
        if end {
            area.push(255);
        }
        area.resize(size.max(area.len()), 0);
        area
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; 236];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&[0xab, 0xcd, 0, self.mac]);
        b[10..12].copy_from_slice(&self.flags.to_be_bytes());
        b[24..28].copy_from_slice(&self.giaddr.octets());
        b[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0x01, self.mac]);
        let overload = u8::from(self.file.is_some()) | (u8::from(self.sname.is_some()) << 1);
        if let Some(sname) = &self.sname {
            let area = Self::area(sname, self.end[2], 64);
            assert!(area.len() <= 64, "sname options fit");
            b[44..108].copy_from_slice(&area);
        }
        if let Some(file) = &self.file {
            let area = Self::area(file, self.end[1], 128);
            assert!(area.len() <= 128, "file options fit");
            b[108..236].copy_from_slice(&area);
        }
        b.extend_from_slice(&[99, 130, 83, 99]);
        let mut options = vec![Opt::new(53, &[self.kind])];
        options.extend(self.options.iter().cloned());
        if overload != 0 {
            options.push(Opt::new(52, &[overload]));
        }
        b.extend(Self::area(&options, self.end[0], 0));
        if let Some(cut) = self.cut {
            b.truncate(cut);
        }
        b
    }

    fn send(&self, server: &mut Server) -> Outcome {
        server.handle_from(T0, self.port, &self.bytes())
    }
}

/// Sends `packet` to a fresh server and returns why it was dropped.
fn dropped(packet: &Packet) -> Option<DropReason> {
    let outcome = packet.send(&mut server());
    assert!(
        outcome.reply.is_none() || outcome.dropped.is_none(),
        "a reply and a drop reason: {outcome:?}"
    );
    if outcome.dropped.is_none() {
        assert!(outcome.reply.is_some(), "neither answered nor dropped");
    }
    outcome.dropped
}

#[test]
fn a_plain_discover_is_answered() {
    assert_eq!(dropped(&Packet::discover(1)), None);
}

#[test]
fn empty_values_of_fixed_and_minimum_length_codes_are_dropped() {
    // Codes the server does not read as well as those it does.
    for code in [
        1, 2, 3, 6, 12, 13, 15, 19, 23, 26, 28, 33, 50, 51, 54, 55, 57, 58, 59, 61, 81, 121,
    ] {
        assert_eq!(
            dropped(&Packet::discover(1).with(code, &[])),
            Some(DropReason::BadOptionLength),
            "option {code} of length 0"
        );
    }
}

#[test]
fn wrong_lengths_are_dropped() {
    for (code, len) in [
        (1, 3),
        (2, 5),
        (3, 6),
        (6, 7),
        (21, 12),
        (25, 3),
        (26, 1),
        (51, 8),
        (53, 2),
        (58, 2),
        (59, 3),
        (80, 1),
        (93, 1),
        (94, 2),
        (97, 16),
        (118, 5),
    ] {
        let value = vec![0x11u8; len];
        assert_eq!(
            dropped(&Packet::discover(1).with(code, &value)),
            Some(DropReason::BadOptionLength),
            "option {code} of length {len}"
        );
    }
}

#[test]
fn a_split_option_is_judged_by_its_joined_length() {
    // 51 split into 2 + 2 octets: 4 joined, valid (RFC 3396).
    let mut ok = Packet::discover(1);
    ok.options.push(Opt {
        code: 51,
        value: vec![0, 0, 0x0e, 0x10],
        pieces: 2,
    });
    assert_eq!(dropped(&ok), None);
    // 51 given twice, 4 + 4 octets: 8 joined, invalid.
    let bad = Packet::discover(1)
        .with(51, &[0, 0, 0x0e, 0x10])
        .with(51, &[0, 0, 0x0e, 0x10]);
    assert_eq!(dropped(&bad), Some(DropReason::BadOptionLength));
}

#[test]
fn unknown_and_site_specific_codes_take_any_length() {
    for code in [84, 126, 177, 224, 250, 254] {
        assert_eq!(
            dropped(&Packet::discover(1).with(code, &[])),
            None,
            "{code}"
        );
        assert_eq!(
            dropped(&Packet::discover(1).with(code, &[7; 13])),
            None,
            "{code}"
        );
    }
}

#[test]
fn an_option_area_without_end_is_dropped() {
    let mut p = Packet::discover(1).with(12, b"pc");
    p.end[0] = false;
    assert_eq!(dropped(&p), Some(DropReason::MissingEnd));
    // END in `file` too, when it carries options.
    let mut p = Packet::discover(1);
    p.file = Some(vec![Opt::new(12, b"pc")]);
    p.end[1] = false;
    assert_eq!(dropped(&p), Some(DropReason::MissingEnd));
    let mut p = Packet::discover(1);
    p.sname = Some(vec![Opt::new(12, b"pc")]);
    p.end[2] = false;
    assert_eq!(dropped(&p), Some(DropReason::MissingEnd));
    // Both areas with END: served.
    let mut p = Packet::discover(1);
    p.file = Some(vec![Opt::new(12, b"pc")]);
    p.sname = Some(vec![Opt::new(61, &[1, 2, 3])]);
    assert_eq!(dropped(&p), None);
}

#[test]
fn overload_inside_file_or_sname_is_dropped() {
    let mut p = Packet::discover(1);
    p.file = Some(vec![Opt::new(52, &[2])]);
    assert_eq!(dropped(&p), Some(DropReason::NestedOverload));
    let mut p = Packet::discover(1);
    p.sname = Some(vec![Opt::new(52, &[1])]);
    assert_eq!(dropped(&p), Some(DropReason::NestedOverload));
}

#[test]
fn a_maximum_message_size_below_576_is_dropped() {
    for size in [0u16, 1, 300, 575] {
        assert_eq!(
            dropped(&Packet::discover(1).with(57, &size.to_be_bytes())),
            Some(DropReason::SmallMaxMessageSize),
            "{size}"
        );
    }
    assert_eq!(
        dropped(&Packet::discover(1).with(57, &576u16.to_be_bytes())),
        None
    );
    assert_eq!(
        dropped(&Packet::discover(1).with(57, &1500u16.to_be_bytes())),
        None
    );
}

#[test]
fn only_port_68_or_a_trusted_relay_on_67_is_served() {
    for port in [0u16, 1, 53, 66, 67, 69, 546, 1067, 65535] {
        let mut p = Packet::discover(1);
        p.port = port;
        assert_eq!(dropped(&p), Some(DropReason::WrongSourcePort), "{port}");
    }
    // A trusted relay sends from 67 ...
    let mut relayed = Packet::discover(1);
    relayed.giaddr = RELAY;
    relayed.port = 67;
    assert_eq!(dropped(&relayed), None);
    // ... never from 68 (a client pretending to be one).
    relayed.port = 68;
    assert_eq!(dropped(&relayed), Some(DropReason::WrongSourcePort));
    // An untrusted relay is refused whatever its port.
    relayed.giaddr = Ipv4Addr::new(192, 168, 100, 10);
    relayed.port = 67;
    assert_eq!(dropped(&relayed), Some(DropReason::Relayed));
}

#[test]
fn reserved_flag_bits_are_ignored() {
    // RFC 2131 section 2: servers ignore the 15 reserved bits.
    let mut p = Packet::discover(1);
    p.flags = 0x7fff;
    assert_eq!(dropped(&p), None);
    p.flags = 0xffff;
    assert_eq!(dropped(&p), None);
}

#[test]
fn drops_are_counted_by_reason_and_zeros_are_listed() {
    let mut s = server();
    let mut p = Packet::discover(1);
    p.port = 1234;
    p.send(&mut s);
    let counters = serde_json::to_value(s.counters()).expect("counters serialise");
    let text = counters.to_string();
    for reason in DropReason::ALL {
        assert!(
            text.contains(reason.name()),
            "{} listed: {text}",
            reason.name()
        );
    }
    assert!(text.contains("\"wrong_source_port\":1"), "{text}");
    assert!(text.contains("\"missing_end\":0"), "{text}");
}

// ---- generated cases ----

/// A valid value for an option code a client might send.
fn valid_option() -> impl Strategy<Value = Opt> {
    let fixed = |code: u8, len: usize| {
        prop::collection::vec(any::<u8>(), len).prop_map(move |v| Opt::new(code, &v))
    };
    let list = |code: u8, unit: usize, max: usize| {
        (1..=max)
            .prop_flat_map(move |n| prop::collection::vec(any::<u8>(), n * unit))
            .prop_map(move |v| Opt::new(code, &v))
    };
    let text = |code: u8, min: usize| {
        prop::collection::vec(any::<u8>(), min..40).prop_map(move |v| Opt::new(code, &v))
    };
    prop_oneof![
        fixed(1, 4),
        fixed(2, 4),
        list(3, 4, 4),
        list(6, 4, 3),
        text(12, 1),
        fixed(26, 2),
        list(33, 8, 2),
        fixed(51, 4),
        text(55, 1),
        (576u16..=u16::MAX).prop_map(|s| Opt::new(57, &s.to_be_bytes())),
        fixed(58, 4),
        fixed(59, 4),
        text(60, 1),
        text(61, 2),
        text(77, 1),
        fixed(80, 0),
        text(81, 3),
        fixed(93, 2),
        fixed(94, 3),
        fixed(97, 17),
        // Codes without a length rule: anything, even nothing.
        (prop_oneof![Just(84u8), Just(126), 224u8..=254], text(0, 0))
            .prop_map(|(code, o)| Opt::new(code, &o.value)),
    ]
}

/// How a valid packet is corrupted.
#[derive(Debug, Clone)]
enum Corruption {
    /// An option whose code has a minimum length, with none.
    EmptyValue(u8),
    /// A fixed-length option one octet too long or too short.
    WrongFixedLength(u8, bool),
    /// The option area cut short before its END.
    Truncate(usize),
    /// No END in the option area.
    NoEnd,
    /// `file` carries options without END.
    NoEndInFile,
    /// Option 52 inside `file`.
    NestedOverload,
    /// Option 57 below 576.
    SmallMaxSize(u16),
    /// A source port other than 68.
    Port(u16),
    /// 51 given twice (8 octets joined).
    SplitTooLong,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let fixed_codes = prop_oneof![
        Just(1u8),
        Just(2),
        Just(13),
        Just(16),
        Just(19),
        Just(26),
        Just(28),
        Just(50),
        Just(51),
        Just(54),
        Just(57),
        Just(58),
        Just(59),
        Just(91),
        Just(118)
    ];
    let min_codes = prop_oneof![
        Just(3u8),
        Just(6),
        Just(12),
        Just(15),
        Just(42),
        Just(55),
        Just(60),
        Just(61),
        Just(81),
        Just(121),
        Just(124),
        Just(125)
    ];
    prop_oneof![
        prop_oneof![fixed_codes.clone(), min_codes].prop_map(Corruption::EmptyValue),
        (fixed_codes, any::<bool>())
            .prop_map(|(c, longer)| Corruption::WrongFixedLength(c, longer)),
        any::<usize>().prop_map(Corruption::Truncate),
        Just(Corruption::NoEnd),
        Just(Corruption::NoEndInFile),
        Just(Corruption::NestedOverload),
        (0u16..576).prop_map(Corruption::SmallMaxSize),
        any::<u16>()
            .prop_filter("not the client port", |p| *p != 68)
            .prop_map(Corruption::Port),
        Just(Corruption::SplitTooLong),
    ]
}

fn fixed_len(code: u8) -> usize {
    match code {
        13 | 26 | 57 => 2,
        19 => 1,
        _ => 4,
    }
}

fn packet() -> impl Strategy<Value = Packet> {
    (
        1u8..=250,
        any::<u16>(),
        prop::collection::vec((valid_option(), 1usize..4), 0..8),
        prop::option::of(prop::collection::vec(valid_option(), 0..2)),
    )
        .prop_map(|(mac, flags, options, file)| {
            let mut p = Packet::discover(mac);
            p.flags = flags;
            // Codes once each, so joined lengths stay valid.
            let mut seen = std::collections::HashSet::new();
            for (mut o, pieces) in options {
                if seen.insert(o.code) {
                    o.pieces = pieces;
                    p.options.push(o);
                }
            }
            let file: Option<Vec<Opt>> = file.map(|f| {
                f.into_iter()
                    .filter(|o| o.value.len() < 100 && seen.insert(o.code))
                    .collect()
            });
            p.file = file;
            p
        })
}

fn corrupt(mut p: Packet, c: &Corruption) -> Packet {
    match *c {
        Corruption::EmptyValue(code) => {
            p.options.retain(|o| o.code != code);
            if let Some(f) = &mut p.file {
                f.retain(|o| o.code != code);
            }
            p.options.push(Opt::new(code, &[]));
        }
        Corruption::WrongFixedLength(code, longer) => {
            let len = fixed_len(code);
            let len = if longer { len + 1 } else { len - 1 };
            p.options.retain(|o| o.code != code);
            if let Some(f) = &mut p.file {
                f.retain(|o| o.code != code);
            }
            p.options.push(Opt::new(code, &vec![0x22; len]));
        }
        Corruption::Truncate(at) => {
            let mut without_end = p.clone();
            without_end.end[0] = false;
            let end = without_end.bytes().len();
            // Anywhere from inside the header up to just before END.
            p.cut = Some(at % end);
        }
        Corruption::NoEnd => p.end[0] = false,
        Corruption::NoEndInFile => {
            p.file
                .get_or_insert_with(Vec::new)
                .push(Opt::new(250, b"x"));
            p.end[1] = false;
        }
        Corruption::NestedOverload => {
            p.file.get_or_insert_with(Vec::new).push(Opt::new(52, &[2]));
        }
        Corruption::SmallMaxSize(size) => {
            p.options.retain(|o| o.code != 57);
            if let Some(f) = &mut p.file {
                f.retain(|o| o.code != 57);
            }
            p.options.push(Opt::new(57, &size.to_be_bytes()));
        }
        Corruption::Port(port) => p.port = port,
        Corruption::SplitTooLong => {
            p.options.retain(|o| o.code != 51);
            if let Some(f) = &mut p.file {
                f.retain(|o| o.code != 51);
            }
            p.options.push(Opt::new(51, &[0, 0, 1, 0]));
            p.options.push(Opt::new(51, &[0, 0, 1, 0]));
        }
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every valid packet is answered; every corruption of it is dropped,
    /// counted, and changes nothing the valid packet then finds.
    #[test]
    fn valid_packets_are_answered_and_corrupted_ones_never(p in packet(), c in corruption()) {
        let mut s = server();
        let bad = corrupt(p.clone(), &c);
        let outcome = bad.send(&mut s);
        prop_assert!(outcome.reply.is_none(), "answered {c:?}: {:?}", bad);
        prop_assert!(outcome.record.is_none());
        prop_assert!(outcome.dropped.is_some());
        prop_assert_eq!(s.counters().dropped_total(), 1);
        let outcome = p.send(&mut s);
        prop_assert!(outcome.reply.is_some(), "valid packet not answered: {:?} {:?}", outcome.dropped, p);
    }
}
