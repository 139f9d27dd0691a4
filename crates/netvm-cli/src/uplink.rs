//! `netvm uplink dhcp`: the Net VM uplink's DHCP client on its own (the
//! agent will run it together with the rest).

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
            netvm_agent::uplink::run(&args.interface, &stop, &mut std::io::stdout())
                .map_err(|e| error_chain(&e))
        }
    }
}
