//! `netvm uplink dhcp`: the Net VM uplink's DHCP client on its own, and
//! `netvm agent`: everything the Net VM runs, together.

use crate::error_chain;
use clap::{Args, Subcommand};
use netvm_description::values::IfName;

/// `netvm uplink …`.
#[derive(Subcommand)]
pub enum UplinkCommand {
    /// Get and keep a DHCP lease on the uplink (address and default
    /// route applied); events as JSON lines on stdout; stops on SIGTERM.
    Dhcp(DhcpArgs),
}

/// `netvm uplink dhcp --interface IF`.
#[derive(Args)]
pub struct DhcpArgs {
    /// The uplink interface.
    #[arg(long)]
    interface: IfName,
}

pub fn run(command: UplinkCommand) -> Result<(), String> {
    match command {
        UplinkCommand::Dhcp(args) => {
            let stop = netvm_agent::uplink::stop_on_signals()
                .map_err(|e| format!("error: cannot handle signals: {e}"))?;
            netvm_agent::uplink::run(&args.interface, &stop, &mut std::io::stdout(), &mut |_| {})
                .map_err(|e| error_chain(&e))
        }
    }
}

/// `netvm agent FILE`.
#[derive(Args)]
pub struct AgentArgs {
    /// The system description.
    file: std::path::PathBuf,
    /// The DHCP lease journal.
    #[arg(long, default_value = "/var/lib/netvm/leases")]
    journal: std::path::PathBuf,
    /// The control socket (mode 0600) for `netvm status|leases|events|reload`.
    #[arg(long, default_value = crate::control::DEFAULT_SOCKET)]
    control: std::path::PathBuf,
    /// Run as this user after setup, keeping only CAP_NET_ADMIN,
    /// CAP_NET_RAW and CAP_NET_BIND_SERVICE.
    #[arg(long)]
    user: Option<String>,
    /// Delete the ruleset when stopping (by default it stays: fail closed).
    #[arg(long)]
    remove_on_exit: bool,
}

pub fn agent(args: &AgentArgs) -> Result<(), String> {
    let system = crate::describe::load(&args.file)?;
    let options = netvm_agent::daemon::AgentOptions {
        file: args.file.clone(),
        journal: args.journal.clone(),
        control: args.control.clone(),
        user: args.user.clone(),
        remove_on_exit: args.remove_on_exit,
    };
    netvm_agent::daemon::run(&system, &options).map_err(|e| error_chain(&e))
}
