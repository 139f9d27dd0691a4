//! `netvm dhcp serve`, `netvm dhcp load`, `netvm leases`: the DHCP server,
//! its load generator, and the lease journal.

use crate::describe::{load, OutputFormat};
use crate::{error_chain, to_json};
use clap::{Args, Subcommand};
use netvm_description::values::IfName;
use netvm_dhcp::Timestamp;
use netvm_dhcp_server::{journal_file, load as load_gen, ServeOptions};
use std::path::PathBuf;
use std::time::Duration;

/// `netvm dhcp …`.
#[derive(Subcommand)]
pub enum DhcpCommand {
    /// Serve DHCP on the internal interface until SIGTERM; events as JSON lines on stdout.
    Serve(ServeArgs),
    /// Load a DHCP server with simulated clients (tests and benchmarks).
    #[command(hide = true)]
    Load(LoadArgs),
}

/// `netvm dhcp serve FILE --interface IF --journal PATH`.
#[derive(Args)]
pub struct ServeArgs {
    /// The system description.
    file: PathBuf,
    /// The internal interface (the only one served).
    #[arg(long)]
    interface: IfName,
    /// The lease journal (created if missing).
    #[arg(long, default_value = "/var/lib/netvm/leases")]
    journal: PathBuf,
}

/// `netvm dhcp load --interface IF`.
#[derive(Args)]
pub struct LoadArgs {
    /// Interface to send on.
    #[arg(long)]
    interface: IfName,
    /// Simulated clients.
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// New exchanges per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Makes the MACs of this run differ from other runs'.
    #[arg(long, default_value_t = 1)]
    seed: u16,
    /// Where each ACK is written as a JSON line.
    #[arg(long)]
    acks: PathBuf,
}

/// `netvm leases --file PATH`.
#[derive(Args)]
pub struct LeasesArgs {
    /// A lease journal to read (without it, the running agent is asked).
    #[arg(long)]
    file: Option<PathBuf>,
    #[command(flatten)]
    socket: crate::control::Socket,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Include leases that have ended.
    #[arg(long)]
    all: bool,
}

pub fn run(command: DhcpCommand) -> Result<(), String> {
    match command {
        DhcpCommand::Serve(args) => serve(&args),
        DhcpCommand::Load(args) => load_clients(&args),
    }
}

fn serve(args: &ServeArgs) -> Result<(), String> {
    let system = load(&args.file)?;
    let options = ServeOptions {
        interface: args.interface.clone(),
        journal: args.journal.clone(),
        sys: PathBuf::from("/sys"),
        control: None,
    };
    let mut out = std::io::stdout();
    // What `netvm plan` prints under `dhcp`.
    let config = netvm_plan::plan(&system).dhcp;
    netvm_dhcp_server::serve(&config, &options, &mut out).map_err(|e| error_chain(&e))
}

fn load_clients(args: &LoadArgs) -> Result<(), String> {
    let options = load_gen::LoadOptions {
        interface: args.interface.clone(),
        clients: args.clients,
        rate: args.rate,
        duration: Duration::from_secs(args.seconds),
        seed: args.seed,
    };
    let mut acks = std::fs::File::create(&args.acks)
        .map_err(|e| format!("error: cannot create {}: {e}", args.acks.display()))?;
    let summary = load_gen::run(&options, &mut acks)
        .map_err(|e| format!("error: load on {}: {e}", args.interface))?;
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| e.to_string())?
    );
    Ok(())
}

pub fn leases(args: &LeasesArgs) -> Result<(), String> {
    let Some(file) = &args.file else {
        return crate::control::leases(&args.socket, args.format);
    };
    let replay = journal_file::read(file).map_err(|e| error_chain(&e))?;
    let now = Timestamp::now();
    let leases: Vec<_> = netvm_dhcp::journal::fold(&replay.records)
        .into_iter()
        .filter(|l| args.all || l.until > now)
        .collect();
    if replay.ignored > 0 {
        eprintln!(
            "warning: {} bytes at the end of {} are damaged (a torn write) and were ignored",
            replay.ignored,
            file.display()
        );
    }
    match args.format {
        OutputFormat::Json => println!("{}", to_json(&leases)?),
        OutputFormat::Table => {
            println!(
                "{:<16} {:<9} {:<18} {:<20} {:<12}",
                "IP", "STATE", "MAC", "HOSTNAME", "ENDS IN"
            );
            for l in &leases {
                let mac = l.mac.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
                let ends = if l.until > now {
                    format!("{}s", now.secs_until(l.until))
                } else {
                    "ended".to_owned()
                };
                println!(
                    "{:<16} {:<9} {:<18} {:<20} {:<12}",
                    l.ip.to_string(),
                    l.state,
                    mac,
                    l.hostname.as_deref().unwrap_or("-"),
                    ends
                );
            }
        }
    }
    Ok(())
}
