//! `netvm dns serve`: the internal network's DNS server.

use crate::describe::load;
use crate::error_chain;
use clap::{Args, Subcommand};
use netvm_description::values::{DnsUpstream, IfName};
use netvm_dns_server::DnsOptions;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `netvm dns …`.
#[derive(Subcommand)]
pub enum DnsCommand {
    /// Serve DNS on the net-vm's internal address (UDP and TCP 53) until
    /// SIGTERM; events as JSON lines on stdout, counters on SIGUSR1.
    Serve(ServeArgs),
}

/// `netvm dns serve FILE --interface IF`.
#[derive(Args)]
pub struct ServeArgs {
    /// The system description.
    file: PathBuf,
    /// The internal interface (the only one served).
    #[arg(long)]
    interface: IfName,
    /// Resolver to forward to instead of the description's (repeat for
    /// more; `IP` or `IP:PORT`).
    #[arg(long = "upstream")]
    upstreams: Vec<DnsUpstream>,
    /// The DHCP server's lease journal: serve the host names its clients
    /// gave while their leases live.
    #[arg(long)]
    leases: Option<PathBuf>,
}

pub fn run(command: DnsCommand) -> Result<(), String> {
    match command {
        DnsCommand::Serve(args) => {
            let system = load(&args.file)?;
            let options = DnsOptions {
                interface: args.interface,
                upstreams: args.upstreams.iter().map(|u| SocketAddr::V4(u.0)).collect(),
                leases: args.leases,
                names: None,
                learned_upstreams: None,
                control: None,
            };
            // What `netvm plan` prints under `dns`.
            let plan = netvm_plan::plan(&system).dns;
            netvm_dns_server::serve(&plan, options).map_err(|e| error_chain(&e))
        }
    }
}
