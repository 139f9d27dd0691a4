//! `netvm status`, `netvm uplinks`, `netvm events`, `netvm reload` (and `netvm leases`
//! without `--file`): requests to a running agent over its control socket.

use crate::describe::OutputFormat;
use clap::Args;
use netvm_events::control::{LeaseState, Request, Response, UplinkStatus};
use std::fmt::Display;
use std::io::BufRead;
use std::path::PathBuf;

/// The agent's control socket unless `--control` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netvm/agent.sock";

/// `--control PATH`, or `--agent ADDRESS:PORT` from a VM.
#[derive(Args, Clone)]
pub struct Socket {
    /// The agent's control socket.
    #[arg(long = "control", default_value = DEFAULT_SOCKET, global = true)]
    pub path: PathBuf,
    /// From a VM named in `[agent] control_allow` or `control_read`: the
    /// agent's control service on the Net VM (its internal address and
    /// `control_port`, e.g. 192.168.100.1:7071) instead of the socket.
    #[arg(
        long = "agent",
        value_name = "ADDRESS:PORT",
        conflicts_with = "path",
        global = true
    )]
    pub agent: Option<std::net::SocketAddr>,
}

/// `netvm status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    socket: Socket,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// `netvm uplinks`.
#[derive(Args)]
pub struct UplinksArgs {
    #[command(flatten)]
    socket: Socket,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// `netvm events`.
#[derive(Args)]
pub struct EventsArgs {
    #[command(flatten)]
    socket: Socket,
    /// Keep printing events as they happen.
    #[arg(long)]
    follow: bool,
    /// How many past events to print first.
    #[arg(long, default_value_t = 100)]
    last: usize,
    /// Past events from the security history only (kept apart, so lease
    /// noise never pushes them out).
    #[arg(long)]
    security: bool,
}

/// `netvm reload`.
#[derive(Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    socket: Socket,
}

/// Sends one request; the agent's answer (refusals are errors) and the
/// rest of the stream.
pub(crate) fn ask(
    socket: &Socket,
    request: &Request,
) -> Result<(Response, Box<dyn BufRead>), String> {
    let asked = match socket.agent {
        Some(address) => netvm_agent::control::ask_remote(address, request).map(|(a, r)| {
            let r: Box<dyn BufRead> = Box::new(r);
            (a, r)
        }),
        None => netvm_agent::control::ask(&socket.path, request).map(|(a, r)| {
            let r: Box<dyn BufRead> = Box::new(r);
            (a, r)
        }),
    };
    let (answer, reader) = asked.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            format!("error: {e}")
        } else if let Some(address) = socket.agent {
            format!(
                "error: cannot reach the agent's control service at {address}: {e} (does `[agent] control_allow` or `control_read` name this VM, and is that the Net VM's address and `control_port`?)"
            )
        } else {
            format!(
                "error: cannot reach the agent at {}: {e} (is `netvm agent` running? --control names another socket)",
                socket.path.display()
            )
        }
    })?;
    if !answer.ok {
        let why = answer.error.as_deref().unwrap_or("no reason given");
        return Err(format!("error: the agent refused: {why}"));
    }
    Ok((answer, reader))
}

/// An answer without the field its request asks for.
fn missing(what: &str) -> String {
    format!("error: the agent's answer has no `{what}`")
}

/// `-` for nothing.
fn text<T: Display>(value: Option<T>) -> String {
    value.map_or("-".to_owned(), |v| v.to_string())
}

pub fn status(args: &StatusArgs) -> Result<(), String> {
    let (answer, _) = ask(&args.socket, &Request::Status)?;
    let status = answer.status.ok_or_else(|| missing("status"))?;
    if let OutputFormat::Json = args.format {
        println!("{}", crate::to_json(&status)?);
        return Ok(());
    }
    let (state, address, router, dns) = match &status.uplink {
        UplinkStatus::Static => ("static", None, None, None),
        UplinkStatus::Waiting => ("waiting", None, None, None),
        UplinkStatus::Lost => ("lost", None, None, None),
        UplinkStatus::Bound {
            address,
            router,
            dns,
            ..
        } => {
            let dns: Vec<String> = dns.iter().map(ToString::to_string).collect();
            ("bound", Some(address.clone()), *router, Some(dns.join(",")))
        }
    };
    println!(
        "uplink: {state} {}  (router {}, dns {})",
        text(address),
        text(router),
        text(dns)
    );
    println!(
        "mode: {}  description: {}  up {} s  reloads: {}",
        status.mode,
        status.description.display(),
        status.uptime_secs,
        status.reloads
    );
    println!();
    println!(
        "{:<16} {:<16} {:<18} {:<7} {:<10}",
        "VM", "IP", "MAC", "LEASE", "ENDS IN"
    );
    for vm in &status.vms.described {
        let lease = match vm.lease {
            LeaseState::Bound => "bound",
            LeaseState::None => "none",
        };
        println!(
            "{:<16} {:<16} {:<18} {:<7} {:<10}",
            vm.name,
            vm.ip.to_string(),
            vm.mac.to_string(),
            lease,
            text(vm.expires_in_secs.map(|s| format!("{s}s")))
        );
    }
    println!("pool clients: {}", status.vms.pool_clients);
    let counters = &status.counters;
    println!();
    for (name, c) in &counters.firewall {
        println!("firewall {name}: {} packets", c.packets);
    }
    println!(
        "events: {} reported, {} suppressed",
        counters.events.reported, counters.events.suppressed
    );
    Ok(())
}

/// `netvm leases` through the agent.
pub fn leases(socket: &Socket, format: OutputFormat) -> Result<(), String> {
    let (answer, _) = ask(socket, &Request::Leases)?;
    let leases = answer.leases.ok_or_else(|| missing("leases"))?;
    if let OutputFormat::Json = format {
        println!("{}", crate::to_json(&leases)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<18} {:<20} {:<16} {:<10}",
        "IP", "MAC", "HOSTNAME", "VM", "ENDS IN"
    );
    for l in &leases {
        println!(
            "{:<16} {:<18} {:<20} {:<16} {:<10}",
            l.ip.to_string(),
            l.mac.to_string(),
            text(l.hostname.as_ref()),
            text(l.vm.as_ref()),
            format!("{}s", l.expires_in_secs)
        );
    }
    Ok(())
}

/// `netvm uplinks`: each uplink's state, and which one is active.
pub fn uplinks(args: &UplinksArgs) -> Result<(), String> {
    let (answer, _) = ask(&args.socket, &Request::Uplinks)?;
    let uplinks = answer.uplinks.ok_or_else(|| missing("uplinks"))?;
    if let OutputFormat::Json = args.format {
        println!("{}", crate::to_json(&uplinks)?);
        return Ok(());
    }
    println!(
        "{:<16} {:>8} {:<12} {:<7} {:<16} {:<16}",
        "UPLINK", "PRIORITY", "STATE", "ACTIVE", "ADDRESS", "GATEWAY"
    );
    for u in &uplinks {
        println!(
            "{:<16} {:>8} {:<12} {:<7} {:<16} {:<16}",
            u.name,
            u.priority,
            u.state,
            if u.active { "yes" } else { "no" },
            text(u.address.as_ref()),
            text(u.router.as_ref())
        );
    }
    Ok(())
}

pub fn events(args: &EventsArgs) -> Result<(), String> {
    let request = Request::Events {
        last: args.last,
        follow: args.follow,
        security: args.security,
    };
    let (answer, reader) = ask(&args.socket, &request)?;
    for event in answer.events.ok_or_else(|| missing("events"))? {
        println!("{}", event.to_line());
    }
    if args.follow {
        for line in reader.lines() {
            match line {
                Ok(line) => println!("{line}"),
                Err(_) => break,
            }
        }
    }
    Ok(())
}

pub fn reload(args: &ReloadArgs) -> Result<(), String> {
    let (answer, _) = ask(&args.socket, &Request::Reload)?;
    let reloaded = answer.reload.ok_or_else(|| missing("reload"))?;
    println!("{}", reloaded.to_line());
    Ok(())
}
