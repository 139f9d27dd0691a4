//! `netvm`: the command line. It parses arguments, calls the libraries and
//! prints; all logic lives in the library crates.

mod agent;
mod control;
mod describe;
mod dhcp;
mod dns;
mod host;
mod lab;
mod wifi;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// A networking VM for compartmentalised operating systems.
#[derive(Parser)]
#[command(name = "netvm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description and print its address plan.
    Check(describe::CheckArgs),
    /// Print everything the description implies, without touching anything.
    Plan(describe::PlanArgs),
    /// Print the JSON Schema of the system description (or of the
    /// events, or of the agent's control protocol).
    Schema(describe::SchemaArgs),
    /// Make the plan true on this machine (idempotent; a rejected ruleset
    /// leaves the previous one in force).
    Apply(describe::ApplyArgs),
    /// The DHCP server.
    #[command(subcommand)]
    Dhcp(dhcp::DhcpCommand),
    /// List the leases: a running agent's, or a lease journal's (`--file`).
    Leases(dhcp::LeasesArgs),
    /// The DNS server.
    #[command(subcommand)]
    Dns(dns::DnsCommand),
    /// The host's half: bridge and TAPs, VMM arguments, NIC passthrough,
    /// posture audit.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// The Net VM uplink's DHCP client.
    #[command(subcommand)]
    Uplink(agent::UplinkCommand),
    /// Run the Net VM: apply the data plane (exit if that fails), then
    /// serve DHCP and DNS and keep the uplink's lease, until SIGTERM.
    Agent(agent::AgentArgs),
    /// A running agent's state: uplink, VMs and their leases, counters.
    Status(control::StatusArgs),
    /// A running agent's uplinks: each one's state, and which is active.
    Uplinks(control::UplinksArgs),
    /// A running agent's Wi-Fi uplinks: list, scan, connect, forget.
    Wifi(wifi::WifiArgs),
    /// A running agent's events (security, leases, uplink, reloads).
    Events(control::EventsArgs),
    /// Make a running agent read its description again.
    Reload(control::ReloadArgs),
    /// The whole system on this machine in network namespaces, and its
    /// acceptance matrix.
    #[command(subcommand)]
    Lab(lab::LabCommand),
}

/// Commands that print a report and end die quietly when their reader
/// goes (`netvm status | head`), as other command-line tools do, instead
/// of panicking on the next print. Daemons keep ignoring it: a log
/// reader going away must not stop the network.
#[allow(unsafe_code)]
fn end_quietly_on_closed_pipe() {
    // SAFETY: called first in `main`, before any thread exists; it
    // restores the default action and installs no handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let daemon = matches!(
        command,
        Command::Agent(_)
            | Command::Dhcp(_)
            | Command::Dns(_)
            | Command::Uplink(_)
            | Command::Lab(_)
    );
    if !daemon {
        end_quietly_on_closed_pipe();
    }
    let result = match command {
        Command::Check(args) => describe::check(&args),
        Command::Plan(args) => describe::plan(&args),
        Command::Schema(args) => describe::schema(&args),
        Command::Apply(args) => describe::apply(&args),
        Command::Dhcp(command) => dhcp::run(command),
        Command::Leases(args) => dhcp::leases(&args),
        Command::Dns(command) => dns::run(command),
        Command::Host(command) => host::run(command),
        Command::Uplink(command) => agent::run(command),
        Command::Agent(args) => agent::agent(&args),
        Command::Status(args) => control::status(&args),
        Command::Uplinks(args) => control::uplinks(&args),
        Command::Wifi(args) => wifi::run(&args),
        Command::Events(args) => control::events(&args),
        Command::Reload(args) => control::reload(&args),
        Command::Lab(command) => lab::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// `error: outer: cause: root cause`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    format!("error: {}", netvm_runtime::error_chain(error))
}

/// Pretty JSON, or an error message.
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| format!("error: cannot write JSON: {e}"))
}
