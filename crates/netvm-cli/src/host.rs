//! `netvm host …`: the host's half — bridge and TAPs up and down, VMM
//! arguments, network devices, VFIO passthrough, and the posture audit.

use crate::describe::{load, OutputFormat};
use crate::{error_chain, to_json};
use clap::{Args, Subcommand, ValueEnum};
use netvm_plan::host::HostPlan;
use netvm_plan::vmm::{self, Vmm};
use std::path::{Path, PathBuf};

/// `netvm host …`.
#[derive(Subcommand)]
pub enum HostCommand {
    /// Create the internal bridge, one TAP per VM (isolated unless it is
    /// the net-vm's), the layer-2 guards and, in dev mode, the uplink
    /// bridge. Idempotent.
    Up(FileArgs),
    /// Remove exactly what `up` made (interfaces that were already there
    /// are only detached).
    Down(FileArgs),
    /// Print the network and passthrough arguments of one VM for a VMM.
    VmmArgs(VmmArgs),
    /// List the network devices (PCI, USB and platform) and whether each
    /// can be passed through.
    Devices(DevicesArgs),
    /// Hand a PCI NIC (and its IOMMU group) to vfio-pci, or a platform
    /// (device-tree) NIC to vfio-platform, or give it back.
    #[command(subcommand)]
    Passthrough(PassthroughCommand),
    /// Inspect the live host against the description; exit 1 on any fail.
    Audit(FileArgs),
}

/// A description.
#[derive(Args)]
pub struct FileArgs {
    /// The description (.toml or .json).
    file: PathBuf,
}

impl From<PathBuf> for FileArgs {
    fn from(file: PathBuf) -> FileArgs {
        FileArgs { file }
    }
}

/// `netvm host vmm-args`.
#[derive(Args)]
pub struct VmmArgs {
    /// The description.
    file: PathBuf,
    /// The VM (the net-vm included).
    #[arg(long)]
    vm: String,
    /// The VMM.
    #[arg(long, value_enum)]
    vmm: VmmChoice,
    /// One shell line (table) or a JSON array of arguments.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

/// `netvm host devices`.
#[derive(Args)]
pub struct DevicesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Print the `[netvm.uplink]` stanza of each NIC that can be passed
    /// through (the first live, the others commented) and why the others
    /// cannot; exit 1 when none can.
    #[arg(long)]
    describe: bool,
    /// Read sysfs and procfs under this root instead of `/`.
    #[arg(long, default_value = "/", hide = true)]
    root: PathBuf,
}

/// `netvm host passthrough …`.
#[derive(Subcommand)]
pub enum PassthroughCommand {
    /// Bind the device and every endpoint of its IOMMU group to vfio-pci
    /// (vfio-platform for a platform device).
    Bind(DeviceArgs),
    /// Return them to the drivers they had.
    Unbind(DeviceArgs),
}

/// A PCI or platform device.
#[derive(Args)]
pub struct DeviceArgs {
    /// Its PCI address, e.g. 0000:00:14.3, or its platform device name as
    /// in /sys/bus/platform/devices, e.g. 2490000.ethernet.
    device: netvm_host::passthrough::VfioDevice,
    /// Read and write sysfs under this root instead of `/`.
    #[arg(long, default_value = "/", hide = true)]
    root: PathBuf,
}

/// The VMMs netvm writes arguments for.
#[derive(Clone, Copy, ValueEnum)]
pub enum VmmChoice {
    /// QEMU.
    Qemu,
    /// Cloud Hypervisor.
    CloudHypervisor,
    /// crosvm.
    Crosvm,
}

impl From<VmmChoice> for Vmm {
    fn from(choice: VmmChoice) -> Vmm {
        match choice {
            VmmChoice::Qemu => Vmm::Qemu,
            VmmChoice::CloudHypervisor => Vmm::CloudHypervisor,
            VmmChoice::Crosvm => Vmm::Crosvm,
        }
    }
}

/// Loads a description and plans the host's part.
fn host_plan(file: &Path) -> Result<(netvm_description::System, HostPlan), String> {
    let system = load(file)?;
    let plan = netvm_plan::host::plan(&system).map_err(|e| error_chain(&e))?;
    Ok((system, plan))
}

pub fn run(command: HostCommand) -> Result<(), String> {
    match command {
        HostCommand::Up(args) => up(&args.file),
        HostCommand::Down(args) => down(&args.file),
        HostCommand::VmmArgs(args) => vmm_args(&args),
        HostCommand::Devices(args) => devices(&args),
        HostCommand::Passthrough(command) => passthrough(command),
        HostCommand::Audit(args) => audit(&args.file),
    }
}

fn up(file: &Path) -> Result<(), String> {
    let (_, plan) = host_plan(file)?;
    netvm_apply::apply_host(&plan, Path::new("/proc/sys"), Path::new("/etc"))
        .map_err(|e| error_chain(&e))?;
    println!(
        "{}: host up: bridge {} with {} port(s){}",
        file.display(),
        plan.bridge.name,
        plan.ports.len(),
        plan.uplink_bridge
            .as_ref()
            .map(|u| format!(", uplink {} bridged on {}", u.host_uplink, u.name))
            .unwrap_or_default()
    );
    Ok(())
}

fn down(file: &Path) -> Result<(), String> {
    let (_, plan) = host_plan(file)?;
    let removed = netvm_apply::remove_host(&plan).map_err(|e| error_chain(&e))?;
    println!(
        "{}: host down: deleted [{}], detached [{}]",
        file.display(),
        removed.deleted.join(", "),
        removed.detached.join(", ")
    );
    Ok(())
}

fn vmm_args(args: &VmmArgs) -> Result<(), String> {
    let (system, plan) = host_plan(&args.file)?;
    let argv = vmm::args(&system, &plan, &args.vm, args.vmm.into()).map_err(|e| error_chain(&e))?;
    match args.format {
        OutputFormat::Table => println!("{}", vmm::shell_line(&argv)),
        OutputFormat::Json => println!("{}", to_json(&argv)?),
    }
    Ok(())
}

fn devices(args: &DevicesArgs) -> Result<(), String> {
    let root = netvm_host::HostRoot::new(&args.root);
    let devices = netvm_host::devices::list(&root).map_err(|e| error_chain(&e))?;
    if args.describe {
        return describe_devices(&devices, args.format);
    }
    match args.format {
        OutputFormat::Table => print!("{}", netvm_host::devices::table(&devices)),
        OutputFormat::Json => println!("{}", to_json(&devices)?),
    }
    Ok(())
}

/// `netvm host devices --describe`.
fn describe_devices(
    devices: &[netvm_host::devices::NetDevice],
    format: OutputFormat,
) -> Result<(), String> {
    use netvm_host::describe;
    let described = describe::describe(devices);
    match format {
        OutputFormat::Table => print!("{}", describe::text(&described)),
        OutputFormat::Json => println!("{}", to_json(&described)?),
    }
    match (describe::any_passable(&described), devices.len()) {
        (true, _) => Ok(()),
        (false, 0) => Err("error: no network device found".to_owned()),
        (false, n) => Err(format!(
            "error: none of the {n} network device(s) can be passed through (the reasons are above)"
        )),
    }
}

fn passthrough(command: PassthroughCommand) -> Result<(), String> {
    match command {
        PassthroughCommand::Bind(args) => {
            let root = netvm_host::HostRoot::new(&args.root);
            let bound =
                netvm_host::passthrough::bind(&root, args.device).map_err(|e| error_chain(&e))?;
            println!(
                "{}: IOMMU group {} bound to {}",
                bound.device, bound.iommu_group, bound.vfio_driver
            );
            for m in &bound.members {
                let was = m.previous_driver.as_deref().unwrap_or("no driver");
                let state = if m.changed { "now" } else { "already" };
                let now = m.driver.as_deref().unwrap_or("no driver");
                println!("  {}: was {was}, {state} {now}", m.address);
            }
            print_writes(&bound.writes);
        }
        PassthroughCommand::Unbind(args) => {
            let root = netvm_host::HostRoot::new(&args.root);
            let unbound =
                netvm_host::passthrough::unbind(&root, args.device).map_err(|e| error_chain(&e))?;
            println!("{}: returned to the host", unbound.device);
            for m in &unbound.members {
                let to = m
                    .return_to
                    .as_deref()
                    .unwrap_or("whatever driver probes it");
                let now = m.driver.as_deref().unwrap_or("no driver");
                let note = if m.changed { "" } else { " (nothing to undo)" };
                println!("  {}: back to {to}, now {now}{note}", m.address);
            }
            print_writes(&unbound.writes);
        }
    }
    Ok(())
}

fn print_writes(writes: &[netvm_host::passthrough::SysfsWrite]) {
    if !writes.is_empty() {
        println!("sysfs writes:");
    }
    for write in writes {
        println!("  {write}");
    }
}

fn audit(file: &Path) -> Result<(), String> {
    let (system, plan) = host_plan(file)?;
    let root = netvm_host::HostRoot::live();
    let facts = netvm_host::audit::gather(&root, &system, &plan);
    let findings = netvm_host::audit::check(&system, &plan, &facts);
    print!("{}", netvm_host::audit::report(&findings));
    let failed = findings.iter().filter(|f| !f.passed).count();
    if failed > 0 {
        return Err(format!("error: {failed} posture check(s) failed"));
    }
    Ok(())
}

/// `netvm plan FILE --role host`.
pub fn print_plan(file: &Path, format: OutputFormat) -> Result<(), String> {
    let (_, plan) = host_plan(file)?;
    match format {
        OutputFormat::Json => println!("{}", to_json(&plan)?),
        OutputFormat::Table => {
            let address = plan.bridge.address.as_deref().unwrap_or("no address");
            println!(
                "bridge\n  {:<15} {address}, mtu {}, stp off, forward delay 0, IPv6 off",
                plan.bridge.name, plan.bridge.mtu
            );
            let owner = match (&plan.tap_user, &plan.tap_group) {
                (None, None) => "root".to_owned(),
                (user, group) => format!(
                    "{}:{}",
                    user.as_ref().map(ToString::to_string).unwrap_or_default(),
                    group.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
            };
            println!("\nports (TAPs owned by {owner})");
            for p in &plan.ports {
                let isolation = if p.isolated {
                    "isolated"
                } else {
                    "not isolated"
                };
                println!(
                    "  {:<15} {:<12} {} {:<15} {isolation}",
                    p.name, p.vm, p.mac, p.ip
                );
            }
            if let Some(up) = &plan.uplink_bridge {
                println!(
                    "\nuplink bridge (dev mode)\n  {:<15} {} (its IPv4 addresses and default route move here) + {}",
                    up.name, up.host_uplink, up.netvm_port
                );
            }
            println!("\nsysctls");
            for (key, value) in &plan.sysctls {
                println!("  {key} = {value}");
            }
            println!(
                "\nlayer-2 guards (one nft -f transaction)\n{}",
                plan.ruleset
            );
        }
    }
    Ok(())
}
