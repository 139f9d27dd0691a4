//! `netvm status`, `netvm events`, `netvm reload` (and `netvm leases`
//! without `--file`): requests to a running agent over its control socket.

use crate::describe::OutputFormat;
use clap::Args;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The agent's control socket unless `--control` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netvm/agent.sock";

/// `--control PATH`.
#[derive(Args, Clone)]
pub struct Socket {
    /// The agent's control socket.
    #[arg(long = "control", default_value = DEFAULT_SOCKET)]
    pub path: PathBuf,
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

/// Sends one request; the first answer line and the rest of the stream.
fn ask(
    path: &Path,
    request: &Value,
) -> Result<(Value, std::io::BufReader<std::os::unix::net::UnixStream>), String> {
    let cannot = |e: std::io::Error| {
        format!(
            "error: cannot reach the agent at {}: {e} (is `netvm agent` running? --control names another socket)",
            path.display()
        )
    };
    let mut reader = netvm_agent::control::request(path, request).map_err(cannot)?;
    let mut line = String::new();
    reader.read_line(&mut line).map_err(cannot)?;
    let answer: Value = serde_json::from_str(&line)
        .map_err(|e| format!("error: the agent answered something that is not JSON: {e}"))?;
    if answer["ok"] != json!(true) {
        let why = answer["error"].as_str().unwrap_or("no reason given");
        return Err(format!("error: the agent refused: {why}"));
    }
    Ok((answer, reader))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn status(args: &StatusArgs) -> Result<(), String> {
    let (answer, _) = ask(&args.socket.path, &json!({"command": "status"}))?;
    let status = &answer["status"];
    if let OutputFormat::Json = args.format {
        println!("{status:#}");
        return Ok(());
    }
    let uplink = &status["uplink"];
    println!(
        "uplink: {} {}  (router {}, dns {})",
        text(&uplink["state"]),
        text(&uplink["address"]),
        text(&uplink["router"]),
        text(&uplink["dns"])
    );
    println!(
        "mode: {}  description: {}  up {} s  reloads: {}",
        text(&status["mode"]),
        text(&status["description"]),
        text(&status["uptime_secs"]),
        text(&status["reloads"])
    );
    println!();
    println!(
        "{:<16} {:<16} {:<18} {:<7} {:<10}",
        "VM", "IP", "MAC", "LEASE", "ENDS IN"
    );
    for vm in status["vms"]["described"].as_array().into_iter().flatten() {
        let ends = vm["expires_in_secs"]
            .as_u64()
            .map_or("-".to_owned(), |s| format!("{s}s"));
        println!(
            "{:<16} {:<16} {:<18} {:<7} {:<10}",
            text(&vm["name"]),
            text(&vm["ip"]),
            text(&vm["mac"]),
            text(&vm["lease"]),
            ends
        );
    }
    println!("pool clients: {}", text(&status["vms"]["pool_clients"]));
    let counters = &status["counters"];
    println!();
    for (name, c) in counters["firewall"].as_object().into_iter().flatten() {
        println!("firewall {name}: {} packets", text(&c["packets"]));
    }
    println!(
        "events: {} reported, {} suppressed",
        text(&counters["events"]["reported"]),
        text(&counters["events"]["suppressed"])
    );
    Ok(())
}

/// `netvm leases` through the agent.
pub fn leases(socket: &Socket, format: OutputFormat) -> Result<(), String> {
    let (answer, _) = ask(&socket.path, &json!({"command": "leases"}))?;
    let leases = &answer["leases"];
    if let OutputFormat::Json = format {
        println!("{leases:#}");
        return Ok(());
    }
    println!(
        "{:<16} {:<18} {:<20} {:<16} {:<10}",
        "IP", "MAC", "HOSTNAME", "VM", "ENDS IN"
    );
    for l in leases.as_array().into_iter().flatten() {
        println!(
            "{:<16} {:<18} {:<20} {:<16} {:<10}",
            text(&l["ip"]),
            text(&l["mac"]),
            text(&l["hostname"]),
            text(&l["vm"]),
            format!("{}s", text(&l["expires_in_secs"]))
        );
    }
    Ok(())
}

pub fn events(args: &EventsArgs) -> Result<(), String> {
    let request = json!({
        "command": "events",
        "last": args.last,
        "follow": args.follow,
        "security": args.security,
    });
    let (answer, reader) = ask(&args.socket.path, &request)?;
    for event in answer["events"].as_array().into_iter().flatten() {
        println!("{event}");
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
    let (answer, _) = ask(&args.socket.path, &json!({"command": "reload"}))?;
    println!("{}", answer["reload"]);
    Ok(())
}
