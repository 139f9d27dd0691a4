//! `netvm check`, `netvm plan`, `netvm schema`: the description and its plan.

use crate::{error_chain, to_json};
use clap::{Args, ValueEnum};
use netvm_description::{LoadError, System};
use std::path::{Path, PathBuf};

/// `netvm check FILE`.
#[derive(Args)]
pub struct CheckArgs {
    /// The description (.toml, or .json with the same structure).
    file: PathBuf,
}

/// `netvm plan FILE`.
#[derive(Args)]
pub struct PlanArgs {
    /// The description (.toml, or .json with the same structure).
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Plan one machine's part: the Net VM's data plane (interfaces,
    /// sysctls, routes, nftables ruleset), or the host's (bridge, TAPs,
    /// layer-2 guards).
    #[arg(long, value_enum)]
    role: Option<Role>,
}

/// `netvm apply FILE --role net-vm`.
#[derive(Args)]
pub struct ApplyArgs {
    /// The description.
    file: PathBuf,
    /// Which machine this is.
    #[arg(long, value_enum)]
    role: Role,
}

/// Which machine a plan is for.
#[derive(Clone, Copy, ValueEnum)]
pub enum Role {
    /// The Net VM.
    NetVm,
    /// The host (the same as `netvm host up`).
    Host,
}

/// Table for people, JSON for programs.
#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// Readable tables.
    Table,
    /// Stable JSON for other programs.
    Json,
}

/// Loads a description; the error is ready to print.
pub fn load(file: &Path) -> Result<System, String> {
    netvm_description::load(file).map_err(|e| match e {
        LoadError::Invalid(error) => error.to_string(),
        other => error_chain(&other),
    })
}

pub fn check(args: &CheckArgs) -> Result<(), String> {
    let plan = netvm_plan::plan(&load(&args.file)?);
    print!("{}", plan.address_table());
    println!("{}: valid", args.file.display());
    Ok(())
}

pub fn plan(args: &PlanArgs) -> Result<(), String> {
    let system = load(&args.file)?;
    let plan = netvm_plan::plan(&system);
    if let Some(Role::Host) = args.role {
        return crate::host::print_plan(&args.file, args.format);
    }
    if let Some(Role::NetVm) = args.role {
        let datapath = netvm_plan::datapath::plan(&system, &[]);
        match args.format {
            OutputFormat::Json => println!("{}", to_json(&datapath)?),
            OutputFormat::Table => {
                println!("interfaces");
                for i in &datapath.interfaces {
                    let mtu = i.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
                    let v6: String = i.addresses6.iter().map(|a| format!(" {a}")).collect();
                    println!(
                        "  {:<10} {:<9} {}{mtu}{v6}",
                        i.name.as_str(),
                        i.role,
                        i.address
                    );
                }
                println!("\nsysctls");
                for (key, value) in &datapath.sysctls {
                    println!("  {key} = {value}");
                }
                println!("\nroutes");
                for r in &datapath.routes {
                    println!("  {} via {} dev {}", r.destination, r.gateway, r.device);
                }
                if datapath.routes.is_empty() {
                    println!("  (default route from the uplink's DHCP lease)");
                }
                for r in &datapath.routes6 {
                    println!("  {r}");
                }
                let d = &datapath.dhcp;
                println!(
                    "\ndhcp on {}: server {}, pool {}, {} reservation(s)",
                    datapath.names.internal,
                    d.server_ip,
                    d.pool.map_or_else(|| "none".to_owned(), |p| p.to_string()),
                    d.reservations.len()
                );
                println!(
                    "dns on {}: {} authoritative for {}, {} name(s)",
                    datapath.names.internal,
                    datapath.dns.listen,
                    datapath.dns.domain,
                    datapath.dns.names.len()
                );
                match &datapath.ipv6 {
                    Some(v6) => println!(
                        "ipv6 on {}: {} {}, net-vm {}, {} reservation(s), router advertisements without prefixes",
                        datapath.names.internal,
                        v6.prefix,
                        v6.mode,
                        v6.netvm_address,
                        v6.dhcp6.reservations.len()
                    ),
                    None => println!("ipv6: off (forwarded IPv6 dropped)"),
                }
                println!("\nevent sets (NFLOG group, prefix)");
                for set in &datapath.event_sets {
                    println!(
                        "  {:<14} {} (group {}, prefix {:?})",
                        set.name,
                        set.key.nft_type(),
                        set.log_group,
                        set.log_prefix
                    );
                }
                println!(
                    "\nnftables ruleset (one nft -f transaction)\n{}",
                    datapath.ruleset
                );
            }
        }
        return Ok(());
    }
    match args.format {
        OutputFormat::Table => print!("{}", plan.to_text()),
        OutputFormat::Json => println!("{}", to_json(&plan)?),
    }
    Ok(())
}

/// `netvm schema`.
#[derive(Args)]
pub struct SchemaArgs {
    /// The events' schema instead: one event line of the agent, the DHCP
    /// or DNS server, or the uplink client.
    #[arg(long, conflicts_with = "control")]
    events: bool,
    /// The agent's control protocol instead: any line on its socket (a
    /// request, an answer, a followed event).
    #[arg(long)]
    control: bool,
}

pub fn schema(args: &SchemaArgs) -> Result<(), String> {
    let schema = if args.events {
        netvm_events::events_schema()
    } else if args.control {
        netvm_events::control::control_schema()
    } else {
        netvm_description::json_schema()
    };
    println!("{}", to_json(&schema)?);
    Ok(())
}

pub fn apply(args: &ApplyArgs) -> Result<(), String> {
    let system = load(&args.file)?;
    match args.role {
        Role::NetVm => {
            let datapath = netvm_plan::datapath::plan(&system, &[]);
            let forbidden = |c: &netvm_plan::policy::Connection| {
                datapath.policy.allows(&system, c) == Some(false)
            };
            let forbidden6 = |c: &netvm_plan::policy::Connection6| {
                datapath.policy.allows6(&system, c) == Some(false)
            };
            let applied = netvm_apply::apply_netvm(
                &datapath,
                Path::new("/proc/sys"),
                &forbidden,
                &forbidden6,
            )
            .map_err(|e| error_chain(&e))?;
            println!(
                "{}: applied (net-vm); {} connection(s) no longer allowed were cut",
                args.file.display(),
                applied.connections_cut
            );
        }
        Role::Host => crate::host::run(crate::host::HostCommand::Up(args.file.clone().into()))?,
    }
    Ok(())
}
