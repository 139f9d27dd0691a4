//! Prometheus metrics: the agent's status rendered in the text exposition
//! format ([`render`], pure), served over HTTP on the net-vm's internal
//! address ([`serve`]). Only the VMs in `[agent] metrics_allow` get
//! through the ruleset to it. Connections are served one at a time with
//! short timeouts, so a client cannot hold more than one slot.

use netvm_runtime::{Stop, Wake};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

fn metric_name(path: &[&str]) -> String {
    let mut name = String::from("netvm");
    for part in path {
        name.push('_');
        name.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        }));
    }
    name
}

fn numbers<'a>(value: &'a Value, path: &mut Vec<&'a str>, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                path.push(key);
                numbers(v, path, out);
                path.pop();
            }
        }
        Value::Number(n) => out.push((metric_name(path), n.to_string())),
        Value::Bool(b) => out.push((metric_name(path), u8::from(*b).to_string())),
        _ => {}
    }
}

/// The metrics for a status (as `netvm status` shows it): every number
/// under `counters`, the uplink, the leases and the described VMs.
pub fn render(status: &Value) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    };
    gauge("netvm_up", "The agent is running.", "1".to_owned());
    let uplink_up = status["uplink"]["state"]
        .as_str()
        .is_some_and(|s| s == "bound" || s == "static");
    gauge(
        "netvm_uplink_up",
        "The uplink has an address.",
        u8::from(uplink_up).to_string(),
    );
    let described = status["vms"]["described"].as_array();
    let bound = described
        .into_iter()
        .flatten()
        .filter(|v| v["lease"] == "bound")
        .count();
    gauge(
        "netvm_vms_described",
        "VMs in the description.",
        described.map_or(0, Vec::len).to_string(),
    );
    gauge(
        "netvm_vms_with_lease",
        "Described VMs holding their lease.",
        bound.to_string(),
    );
    gauge(
        "netvm_pool_clients",
        "Leases held by clients the description does not name.",
        status["vms"]["pool_clients"]
            .as_u64()
            .unwrap_or(0)
            .to_string(),
    );
    let mut found = Vec::new();
    numbers(&status["counters"], &mut Vec::new(), &mut found);
    for (name, value) in found {
        out.push_str(&format!("# TYPE {name} counter\n{name} {value}\n"));
    }
    out
}

/// Serves `GET /metrics` on `address` until `stop` is stopped, asleep
/// until a connection comes or the stop.
pub fn serve(
    address: SocketAddr,
    status: Arc<dyn Fn() -> Value + Send + Sync>,
    stop: Stop,
) -> io::Result<()> {
    let listener = TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    while stop.wait_for(listener.as_fd(), None)? == Wake::Ready {
        // A connection that went before it was taken: wait again.
        if let Ok((stream, _)) = listener.accept() {
            let _ = one(stream, status.as_ref());
        }
    }
    Ok(())
}

fn one(
    mut stream: std::net::TcpStream,
    status: &(dyn Fn() -> Value + Send + Sync),
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 1024];
    let mut len = 0;
    while len < request.len() && !request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut request[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&request[..len]);
    let (code, body) = if head.starts_with("GET /metrics ") || head.starts_with("GET / ") {
        ("200 OK", render(&status()))
    } else {
        ("404 Not Found", "only GET /metrics\n".to_owned())
    };
    write!(
        stream,
        "HTTP/1.0 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_counters_uplink_and_leases() {
        let status = json!({
            "uplink": {"state": "bound"},
            "vms": {"described": [{"lease": "bound"}, {"lease": "none"}], "pool_clients": 3},
            "counters": {"dhcp": {"acks": 4, "naks": 0}, "firewall": {"spoofed": {"packets": 5}}},
        });
        let text = render(&status);
        assert!(text.contains("netvm_uplink_up 1\n"));
        assert!(text.contains("netvm_vms_with_lease 1\n"));
        assert!(text.contains("netvm_pool_clients 3\n"));
        assert!(text.contains("netvm_dhcp_acks 4\n"));
        assert!(text.contains("netvm_firewall_spoofed_packets 5\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').expect("name value");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{name}"
            );
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
