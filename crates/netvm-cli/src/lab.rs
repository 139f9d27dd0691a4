//! `netvm lab up|test|verify|generate|down` (and the hidden `serve` and
//! `listen` the lab runs in its namespaces): the whole system on one machine, see docs/lab.md.

use clap::{Args, Subcommand, ValueEnum};
use netvm_lab::lab::{self, UpOptions};
use netvm_lab::upstream::{self, Flavour};
use std::path::PathBuf;

/// `netvm lab …`.
#[derive(Subcommand)]
pub enum LabCommand {
    /// Build the system in network namespaces (the embedded Ghaf-like
    /// default, or FILE), wait for every VM's lease, print what came up.
    Up(UpArgs),
    /// Run the acceptance matrix against a lab that is up.
    Test(IdArgs),
    /// Remove a lab: its processes, namespaces and files (also after a crash).
    Down(DownArgs),
    /// The policy oracle: the reachability the description implies,
    /// measured with real packets in a lab that is up; exit 1 on any
    /// difference.
    Verify(VerifyArgs),
    /// Print the system description generated from a seed (what the
    /// verify tests run; `netvm lab up FILE` takes it).
    Generate(GenerateArgs),
    /// Listen on ports, skipping busy ones (what verify runs on every
    /// destination).
    #[command(hide = true)]
    Listen(ListenArgs),
    /// Serve HTTP and a UDP echo on ports (what the lab runs in its
    /// namespaces).
    #[command(hide = true)]
    Serve(ServeArgs),
    /// Send router advertisements with PREF64 (what the ipv6-only
    /// upstream runs; radvd 2.19 has no PREF64).
    #[command(hide = true)]
    Ra(RaArgs),
}

/// What the upstream offers the net-vm's uplink (docs/lab.md, "Upstream
/// flavours").
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Upstream {
    /// DHCPv4, DNS and HTTP over IPv4 only.
    Ipv4,
    /// IPv4 plus IPv6: SLAAC, RDNSS, DHCPv6 addresses and a delegated /56.
    DualPd,
    /// IPv4 plus IPv6 with SLAAC and RDNSS only (no DHCPv6, no delegation).
    Dual,
    /// No IPv4 on the link: SLAAC, RDNSS, PREF64, DNS64 and NAT64.
    Ipv6Only,
}

impl From<Upstream> for Flavour {
    fn from(u: Upstream) -> Flavour {
        match u {
            Upstream::Ipv4 => Flavour::Ipv4,
            Upstream::DualPd => Flavour::DualPd,
            Upstream::Dual => Flavour::Dual,
            Upstream::Ipv6Only => Flavour::Ipv6Only,
        }
    }
}

/// Secure or development scenario for the embedded default.
#[derive(Clone, Copy, ValueEnum)]
pub enum LabMode {
    /// The host has no address and no uplink.
    Secure,
    /// The host keeps its uplink and bridges it.
    Dev,
}

/// What the net-vm and the VMs are.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Vms {
    /// Network namespaces.
    Namespaces,
    /// QEMU virtual machines (TCG unless NETVM_LAB_ACCEL says otherwise).
    Qemu,
    /// The host as a QEMU VM with a vIOMMU that passes its NIC through
    /// to a nested QEMU Net VM; the VMs are namespaces of the host VM.
    Passthrough,
}

/// The passthrough lab's NIC.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Nic {
    /// A virtio NIC behind the host VM's vIOMMU, bound to vfio-pci.
    Pci,
    /// QEMU's USB NIC (0525:a4a2), passed by vendor:product.
    Usb,
}

/// How `lab up` prints the topology.
#[derive(Clone, Copy, ValueEnum)]
pub enum Picture {
    /// A table and a text picture.
    Table,
    /// Graphviz.
    Dot,
}

/// `netvm lab up [FILE]`.
#[derive(Args)]
pub struct UpArgs {
    /// The system description (default: the embedded Ghaf-like laptop).
    file: Option<PathBuf>,
    /// Which embedded scenario (with FILE, the file's own mode counts).
    #[arg(long, value_enum, default_value_t = LabMode::Secure)]
    mode: LabMode,
    /// The lab id (default: the first free one).
    #[arg(long)]
    id: Option<u32>,
    /// What the net-vm and the VMs are.
    #[arg(long, value_enum, default_value_t = Vms::Namespaces)]
    vms: Vms,
    /// `--vms passthrough` without FILE: the host VM's NIC (usb needs
    /// linux-image-amd64: the cloud kernel has no USB).
    #[arg(long, value_enum, default_value_t = Nic::Pci)]
    nic: Nic,
    /// How to print the topology.
    #[arg(long, value_enum, default_value_t = Picture::Table)]
    format: Picture,
    /// What the upstream offers the net-vm's uplink.
    #[arg(long, value_enum, default_value = upstream::DEFAULT.as_str())]
    upstream: Upstream,
}

/// `--id`.
#[derive(Args)]
pub struct IdArgs {
    /// The lab (default: the only one up).
    #[arg(long)]
    id: Option<u32>,
}

/// `netvm lab down`.
#[derive(Args)]
pub struct DownArgs {
    /// The lab (default: the only one up).
    #[arg(long, conflicts_with = "all")]
    id: Option<u32>,
    /// Every lab.
    #[arg(long)]
    all: bool,
}

/// How `lab verify` prints.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum VerifyFormat {
    /// One line per difference and check.
    Table,
    /// The whole report as JSON.
    Json,
}

/// `netvm lab verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The lab (default: the only one up).
    #[arg(long)]
    id: Option<u32>,
    /// The seed of the sampled ports (default: NETVM_VERIFY_SEED, else random).
    #[arg(long)]
    seed: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Table)]
    format: VerifyFormat,
}

/// `netvm lab generate --seed N`.
#[derive(Args)]
pub struct GenerateArgs {
    /// The seed.
    #[arg(long)]
    seed: u64,
}

/// `netvm lab listen NAME --ports SPEC [--ipv6]`.
#[derive(Args)]
pub struct ListenArgs {
    name: String,
    /// Ports, like `1-1024,8080`.
    #[arg(long)]
    ports: String,
    /// Listen on IPv6 too.
    #[arg(long)]
    ipv6: bool,
}

/// `netvm lab serve NAME --port P… [--ipv6]`.
#[derive(Args)]
pub struct ServeArgs {
    name: String,
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
    /// Serve on IPv6 too.
    #[arg(long)]
    ipv6: bool,
}

/// `netvm lab ra --interface IF --prefix P …`.
#[derive(Args)]
pub struct RaArgs {
    /// The interface to advertise on.
    #[arg(long)]
    interface: String,
    /// An on-link /64 for SLAAC (L=1, A=1); repeatable.
    #[arg(long = "prefix")]
    prefixes: Vec<std::net::Ipv6Addr>,
    /// A recursive DNS server (RDNSS); repeatable.
    #[arg(long)]
    rdnss: Vec<std::net::Ipv6Addr>,
    /// A search domain (DNSSL); repeatable.
    #[arg(long)]
    dnssl: Vec<String>,
    /// The NAT64 prefix (PREF64), like `2001:db8:64::/96`.
    #[arg(long)]
    pref64: Option<String>,
    /// M: addresses by DHCPv6.
    #[arg(long)]
    managed: bool,
    /// O: other configuration by DHCPv6.
    #[arg(long)]
    other: bool,
    /// Router lifetime, seconds.
    #[arg(long, default_value_t = 1800)]
    lifetime: u16,
    /// Seconds between unsolicited advertisements.
    #[arg(long, default_value_t = 10)]
    interval: u64,
}

fn me() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("error: cannot find the netvm binary: {e}"))
}

pub fn run(command: LabCommand) -> Result<(), String> {
    match command {
        LabCommand::Up(args) => up(&args),
        LabCommand::Test(args) => test(&args),
        LabCommand::Down(args) => down(&args),
        LabCommand::Verify(args) => verify(&args),
        LabCommand::Generate(args) => {
            print!("{}", netvm_lab::generate::system(args.seed));
            Ok(())
        }
        LabCommand::Listen(args) => {
            let ports =
                netvm_lab::serve::parse_ports(&args.ports).map_err(|e| format!("error: {e}"))?;
            netvm_lab::serve::listen(&args.name, &ports, args.ipv6)
                .map_err(|e| format!("error: {e}"))
        }
        LabCommand::Serve(args) => netvm_lab::serve::serve(&args.name, &args.ports, args.ipv6)
            .map_err(|e| format!("error: {e}")),
        LabCommand::Ra(args) => ra(args),
    }
}

fn ra(args: RaArgs) -> Result<(), String> {
    let pref64 = match &args.pref64 {
        None => None,
        Some(text) => {
            let bad = || format!("error: --pref64 {text}: not PREFIX/LENGTH");
            let (prefix, len) = text.split_once('/').ok_or_else(bad)?;
            Some((
                prefix.parse().map_err(|_| bad())?,
                len.parse().map_err(|_| bad())?,
            ))
        }
    };
    let config = netvm_lab::ra::RaConfig {
        mac: None,
        managed: args.managed,
        other: args.other,
        router_lifetime: args.lifetime,
        prefixes: args.prefixes,
        rdnss: args.rdnss,
        dnssl: args.dnssl,
        pref64,
        interval: std::time::Duration::from_secs(args.interval.max(1)),
    };
    netvm_lab::ra::build(&config).map_err(|e| format!("error: {e}"))?;
    netvm_lab::ra::run(&args.interface, config).map_err(|e| format!("error: {e}"))
}

fn up(args: &UpArgs) -> Result<(), String> {
    let options = UpOptions {
        file: args.file.clone(),
        mode: match args.mode {
            LabMode::Secure => netvm_description::Mode::Secure,
            LabMode::Dev => netvm_description::Mode::Dev,
        },
        id: args.id,
        netvm: me()?,
        qemu: args.vms == Vms::Qemu,
        passthrough: args.vms == Vms::Passthrough,
        usb_nic: args.nic == Nic::Usb,
        upstream: args.upstream.into(),
    };
    if args.nic == Nic::Usb && (args.vms != Vms::Passthrough || args.file.is_some()) {
        return Err(
            "error: --nic usb is for `--vms passthrough` without FILE (with FILE, its uplink decides)"
                .to_owned(),
        );
    }
    let started = std::time::Instant::now();
    let lab = lab::up(&options).map_err(|e| format!("error: lab up: {e}"))?;
    let rows = netvm_lab::report::observe(&lab).map_err(|e| format!("error: {e}"))?;
    match args.format {
        Picture::Dot => print!("{}", netvm_lab::report::dot(&lab.plan, &rows)),
        Picture::Table => {
            let flavour = lab.plan.upstream_flavour;
            let upstream = if flavour == upstream::DEFAULT {
                String::new()
            } else {
                format!(", {flavour} upstream")
            };
            println!(
                "lab {} is up ({} mode{upstream}, {:.1} s); files in {}",
                lab.plan.id,
                lab.system.netvm.mode,
                started.elapsed().as_secs_f64(),
                lab.dir.display()
            );
            println!();
            print!("{}", netvm_lab::report::table(&rows));
            if !lab.boots.is_empty() {
                let width = lab
                    .boots
                    .iter()
                    .map(|b| b.name.len())
                    .max()
                    .unwrap_or(0)
                    .max(26);
                println!();
                println!(
                    "{:<width$} {:>20} {:>14}   (QEMU accelerator: {})",
                    if lab.passthrough { "STAGE" } else { "VM" },
                    if lab.passthrough {
                        "TIME"
                    } else {
                        "BOOT TO FIRST LEASE"
                    },
                    "GUEST UPTIME",
                    netvm_lab::qemu::accelerator()
                );
                for b in &lab.boots {
                    println!(
                        "{:<width$} {:>19.1}s {:>14}",
                        b.name,
                        b.to_lease.as_secs_f64(),
                        b.guest_secs.map_or("-".to_owned(), |s| format!("{s:.1}s"))
                    );
                }
            }
            println!();
            print!(
                "{}",
                netvm_lab::report::picture(&lab.plan, &rows, netvm_lab::report::Machines::of(&lab))
            );
            println!();
            if lab.passthrough {
                println!(
                    "what the host VM ran: {}",
                    lab.dir.join(netvm_lab::passthrough::TRANSCRIPT).display()
                );
            }
            let look = if lab.qemu {
                format!("the consoles in {}/console-*.log", lab.dir.display())
            } else {
                format!("`netvm status --control {}`", lab.control().display())
            };
            println!(
                "next: `netvm lab test --id {0}` (acceptance matrix), {look}, `netvm lab down --id {0}`",
                lab.plan.id
            );
        }
    }
    Ok(())
}

fn test(args: &IdArgs) -> Result<(), String> {
    let lab = lab::find(args.id, &me()?).map_err(|e| format!("error: {e}"))?;
    let checks = netvm_lab::matrix::run(&lab);
    println!("{:<4} {:<50} {:<6} DETAIL", "ROW", "CHECK", "RESULT");
    for c in &checks {
        println!(
            "{:<4} {:<50} {:<6} {}",
            c.row,
            c.name,
            if c.pass { "pass" } else { "FAIL" },
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.pass).count();
    if failed > 0 {
        return Err(format!("error: {failed} of {} checks failed", checks.len()));
    }
    println!("all {} checks passed", checks.len());
    Ok(())
}

/// The seed: given, else `NETVM_VERIFY_SEED`, else from the clock.
fn seed(given: Option<u64>) -> Result<u64, String> {
    if let Some(s) = given {
        return Ok(s);
    }
    if let Ok(text) = std::env::var("NETVM_VERIFY_SEED") {
        return text
            .parse()
            .map_err(|_| format!("error: NETVM_VERIFY_SEED={text} is not a number"));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Ok(now ^ u64::from(std::process::id()))
}

fn verify(args: &VerifyArgs) -> Result<(), String> {
    let lab = lab::find(args.id, &me()?).map_err(|e| format!("error: {e}"))?;
    let seed = seed(args.seed)?;
    eprintln!(
        "verify: lab {} with seed {seed} (replay: netvm lab verify --id {} --seed {seed})",
        lab.plan.id, lab.plan.id
    );
    let report = netvm_lab::verify::verify(&lab, seed).map_err(|e| format!("error: {e}"))?;
    if args.format == VerifyFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| format!("error: {e}"))?
        );
    } else {
        for d in &report.differences {
            println!("DIFF  {d}");
        }
        for c in &report.checks {
            println!(
                "{}  {}: {}",
                if c.pass { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!(
            "{} rows measured ({} must answer), {} differences, {} of {} checks failed; seed {}; {:.1} s",
            report.rows,
            report.allowed,
            report.differences.len(),
            report.checks.iter().filter(|c| !c.pass).count(),
            report.checks.len(),
            report.seed,
            report.seconds
        );
    }
    if report.pass() {
        Ok(())
    } else {
        Err(format!(
            "error: verify found {} differences and {} failed checks",
            report.differences.len(),
            report.checks.iter().filter(|c| !c.pass).count()
        ))
    }
}

fn down(args: &DownArgs) -> Result<(), String> {
    let ids = if args.all {
        lab::existing()
    } else if let Some(id) = args.id {
        vec![id]
    } else {
        match lab::existing().as_slice() {
            [one] => vec![*one],
            [] => {
                println!("no lab is up");
                return Ok(());
            }
            many => {
                return Err(format!(
                    "error: labs {many:?} are up: say which with --id or --all"
                ))
            }
        }
    };
    for id in ids {
        let removed = lab::down(id);
        println!("lab {id}: removed {} namespaces and files", removed.len());
    }
    Ok(())
}
