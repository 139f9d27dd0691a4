//! Readable text for a plan: aligned tables, one per part.

use crate::Plan;
use std::fmt::Write;

/// Lays out `rows` under `headers` in left-aligned columns.
fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            let _ = write!(out, "{cell:<w$}");
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

pub(crate) fn addresses(plan: &Plan) -> String {
    let rows: Vec<Vec<String>> = plan
        .addresses
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.role.to_string(),
                r.mac.clone(),
                r.ip.to_string(),
                r.fqdn.clone(),
            ]
        })
        .collect();
    grid(&["NAME", "KIND", "MAC", "IPV4", "FQDN"], &rows)
}

pub(crate) fn full(plan: &Plan) -> String {
    let n = &plan.network;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "network {} (gateway {}, domain {}, mtu {}, bridge {}), mode {}, uplink {}\n",
        n.subnet, n.gateway, n.domain, n.mtu, n.bridge, n.mode, n.uplink
    );
    out += "addresses\n";
    out += &addresses(plan);

    let d = &plan.dhcp;
    let _ = writeln!(
        out,
        "\ndhcp: server {}, pool {}, lease {}s (renew {}s, rebind {}s), at most {} dynamic leases",
        d.server_ip,
        d.pool.map_or_else(|| "none".to_owned(), |p| p.to_string()),
        d.lease_secs,
        d.renew_secs,
        d.rebind_secs,
        d.max_leases
    );

    let dns = &plan.dns;
    let upstreams = if dns.upstreams.is_empty() {
        "learned on the uplink".to_owned()
    } else {
        dns.upstreams
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "\ndns: {} authoritative for {}, upstreams {upstreams}",
        dns.listen, dns.domain
    );
    let rows: Vec<Vec<String>> = dns
        .names
        .iter()
        .map(|r| {
            let ptr = if r.ptr { "yes" } else { "no" };
            vec![r.name.to_string(), r.ip.to_string(), ptr.to_owned()]
        })
        .collect();
    out += &grid(&["NAME", "A", "PTR"], &rows);

    let p = &plan.policy;
    let internet = if p.internet.is_empty() {
        "none".to_owned()
    } else {
        p.internet
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "\npolicy (default deny)\ninternet: {internet}");
    if p.flows.is_empty() {
        out += "vm-to-vm: none\n";
    } else {
        let rows: Vec<Vec<String>> = p
            .flows
            .iter()
            .map(|f| {
                vec![
                    f.from.to_string(),
                    f.to.to_string(),
                    f.proto.to_string(),
                    f.ports.map_or_else(|| "all".to_owned(), |p| p.to_string()),
                ]
            })
            .collect();
        out += &grid(&["FROM", "TO", "PROTO", "PORTS"], &rows);
    }
    if p.forwards.is_empty() {
        out += "port forwards: none\n";
    } else {
        let rows: Vec<Vec<String>> = p
            .forwards
            .iter()
            .map(|f| {
                vec![
                    format!("{}/{}", f.proto, f.uplink_ports),
                    format!("{} ({}:{})", f.to, f.to_ip, f.to_ports),
                ]
            })
            .collect();
        out += &grid(&["UPLINK PORT", "TO"], &rows);
    }
    out
}
