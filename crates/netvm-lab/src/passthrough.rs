//! `netvm lab up --vms passthrough`: the ADR's secure scenario on
//! emulated hardware. The host is itself a QEMU virtual machine (q35 with
//! an Intel vIOMMU, interrupt remapping on) whose only NIC, a virtio NIC
//! behind the vIOMMU on a TAP opened in the lab's upstream namespace, is
//! "the physical uplink". Inside it the lab runs, through the host VM's
//! control shell, what an integrator runs on a real host: `netvm host
//! devices`, `passthrough bind`, `host up`, `host audit`, and the Net VM
//! started by a nested QEMU with the arguments `netvm host vmm-args`
//! prints (`-device vfio-pci,host=…`). The Net VM finds its uplink by PCI
//! vendor:device, as on real hardware, drives it with its native driver
//! and leases it from the upstream. The VMs are network namespaces of the
//! host VM on the host's bridge (booting them nested would be too slow).
//!
//! Every command the host VM ran is kept, with its output, status and
//! time, in `host-vm-commands.txt` in the lab's directory; the Net VM's
//! console is `console-net-vm.log` (the host VM's third serial port) and
//! its control shell `ctl-net-vm.sock` (the fourth), so the QEMU mode's
//! readers work unchanged.

use crate::image;
use crate::lab::{wait, Lab};
use crate::netns::{io_error, LabError};
use crate::passthrough_image::{self as pimage, DESCRIPTION, NETVM_IMAGE, NETVM_KERNEL, REPORTS};
use crate::plan::{Expected, UPSTREAM_IP};
use crate::qemu::{self, Boot};
use netvm_description::values::{PciAddress, UsbId};
use netvm_description::{Mode, UplinkDevice};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// The host VM's name (its console and control files).
pub const HOST_VM: &str = "host-vm";
/// The transcript of what ran in the host VM.
pub const TRANSCRIPT: &str = "host-vm-commands.txt";
/// The name of the row that gives the NIC back.
pub const GIVE_BACK: &str = "the NIC goes back to its driver; the audit then fails";

/// The "physical" NIC's vendor:device: a modern virtio NIC.
pub const NIC_ID: &str = "1af4:1041";
/// The USB NIC's vendor:product: QEMU's `usb-net` (CDC Ethernet).
pub const USB_NIC_ID: &str = "0525:a4a2";

/// The host VM's uplink NIC, as the description's uplink asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hardware {
    /// A virtio NIC behind the vIOMMU in this root-bus slot, passed
    /// through with VFIO.
    Pci(PciAddress, u8),
    /// QEMU's `usb-net` on an xHCI controller, passed to the Net VM by
    /// vendor:product (`usb-host`).
    Usb(UsbId),
}

impl Hardware {
    /// The NIC for `system`'s uplink, or why the lab cannot make it.
    pub fn of(system: &netvm_description::System) -> Result<Hardware, LabError> {
        match &system.netvm.uplink().device {
            UplinkDevice::Pci(address) => Ok(Hardware::Pci(*address, nic_slot(address)?)),
            UplinkDevice::Usb(id) if id.to_string() == USB_NIC_ID => Ok(Hardware::Usb(*id)),
            UplinkDevice::Usb(id) => Err(LabError::Lab(format!(
                "the lab's USB NIC is QEMU's usb-net, {USB_NIC_ID}; the description asks for {id}"
            ))),
            _ => Err(LabError::Lab(
                "--vms passthrough needs a PCI or USB uplink (`[netvm.uplink] pci = \"0000:00:03.0\"` or `usb = \"0525:a4a2\"`)"
                    .to_owned(),
            )),
        }
    }

    /// The QEMU arguments that give the host VM this NIC on `netdev`.
    fn qemu_args(&self, netdev: &str, mac: &str) -> Vec<String> {
        match self {
            Hardware::Pci(_, slot) => vec![
                "-device".to_owned(),
                format!(
                    "virtio-net-pci,netdev={netdev},addr=0x{slot:x},disable-legacy=on,iommu_platform=on,ats=on,romfile=,mac={mac}"
                ),
            ],
            Hardware::Usb(_) => vec![
                "-device".to_owned(),
                "qemu-xhci,id=xhci".to_owned(),
                "-device".to_owned(),
                format!("usb-net,bus=xhci.0,netdev={netdev},mac={mac}"),
            ],
        }
    }

    /// What `netvm host devices` shows of it, and the line
    /// `--describe` must print.
    fn listed_as(&self) -> (String, String) {
        match self {
            Hardware::Pci(address, _) => (address.to_string(), format!("pci = \"{address}\"")),
            Hardware::Usb(id) => (id.to_string(), format!("usb = \"{id}\"")),
        }
    }

    /// Whether the kernel needs USB.
    fn usb(&self) -> bool {
        matches!(self, Hardware::Usb(_))
    }
}

/// The Net VM's kernel command line. Beyond the console: no crypto
/// self-tests, no zeroing of every allocated page, no Spectre/Meltdown
/// mitigations, no audit or AppArmor. A nested TCG guest runs a few
/// hundred times slower than the machine, and these are what its boot
/// spends most of that time on; a real Net VM keeps its distribution's
/// defaults.
pub const NETVM_CMDLINE: &str = "console=ttyS0,115200 panic=-1 quiet cryptomgr.notests init_on_alloc=0 mitigations=off audit=0 apparmor=0";

/// How long the host VM may take to boot.
const HOST_BOOT: Duration = Duration::from_secs(120);
/// How long the nested Net VM may take to have its agent ready (TCG in
/// TCG).
const NETVM_BOOT: Duration = Duration::from_secs(600);
/// A command in the host VM.
const COMMAND: Duration = Duration::from_secs(60);

/// The uplink as the lab's hardware needs it: a PCI address on the
/// host VM's root bus, function 0 (the lab puts the NIC in that slot).
pub fn nic_slot(address: &PciAddress) -> Result<u8, LabError> {
    let text = address.to_string();
    let parts: Vec<&str> = text.split([':', '.']).collect();
    match parts.as_slice() {
        ["0000", "00", slot, "0"] => u8::from_str_radix(slot, 16)
            .ok()
            .filter(|s| (1..=0x1f).contains(s))
            .ok_or_else(|| LabError::Lab(format!("{address}: slot out of range"))),
        _ => Err(LabError::Lab(format!(
            "--vms passthrough puts the NIC on the host VM's root bus: the uplink's `pci` must be 0000:00:SS.0, not {address}"
        ))),
    }
}

/// The TSC frequency the guests are told (`tsc_early_khz`): a TCG guest's
/// calibration can hang its boot without it.
pub(crate) fn tsc_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

/// The host VM's control shell, keeping a transcript.
pub struct HostShell<'a> {
    lab: &'a Lab,
    transcript: std::fs::File,
}

impl<'a> HostShell<'a> {
    /// Opens the transcript (appending).
    pub fn open(lab: &'a Lab) -> Result<Self, LabError> {
        let path = lab.dir.join(TRANSCRIPT);
        let transcript = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(Self { lab, transcript })
    }

    /// Runs `command`; its output and status, recorded with its time.
    pub fn run(&mut self, command: &str) -> Result<(String, i32), LabError> {
        let started = Instant::now();
        let (out, status) = qemu::exec(self.lab, HOST_VM, command, COMMAND)?;
        let _ = write!(
            self.transcript,
            "# {:.1} s, exit {status}\n$ {command}\n{out}\n",
            started.elapsed().as_secs_f64()
        );
        Ok((out, status))
    }

    /// Runs `command`, which must succeed.
    pub fn must(&mut self, command: &str) -> Result<String, LabError> {
        let (out, status) = self.run(command)?;
        if status != 0 {
            return Err(LabError::Lab(format!(
                "in the host VM, `{command}` exited {status}:\n{}",
                out.trim_end()
            )));
        }
        Ok(out)
    }
}

/// A stage's time, as `lab up` prints it.
fn stage(name: &str, took: Duration, guest_secs: Option<f64>) -> Boot {
    Boot {
        name: name.to_owned(),
        to_lease: took,
        guest_secs,
    }
}

/// The first line of `vm`'s console containing `needle`.
fn console_line(lab: &Lab, vm: &str, needle: &str) -> Option<String> {
    std::fs::read_to_string(qemu::console(lab, vm))
        .unwrap_or_default()
        .lines()
        .find(|l| l.contains(needle))
        .map(str::to_owned)
}

/// Builds the passthrough lab (the upstream is started by the caller);
/// the time of each stage.
pub fn build(lab: &Lab) -> Result<Vec<Boot>, LabError> {
    if lab.plan.mode != Mode::Secure {
        return Err(LabError::Lab(
            "--vms passthrough builds the secure scenario only".to_owned(),
        ));
    }
    let hardware = Hardware::of(&lab.system)?;
    let (kernel, modules) = if hardware.usb() {
        (
            image::find_kernel_with(Some(image::USB_NIC_MODULES[0]))?,
            &image::USB_NIC_MODULES[..],
        )
    } else {
        (image::find_kernel()?, &[][..])
    };
    let text = std::fs::read_to_string(lab.description_file())
        .map_err(io_error(&lab.description_file()))?;
    let netvm_image = image::netvm_image_with(&kernel, &lab.netvm, &text, modules)?;
    let host_image = lab.dir.join("host-vm.cpio");
    std::fs::write(
        &host_image,
        pimage::host_vm_image(&kernel, &lab.netvm, &text, netvm_image, hardware.usb())?,
    )
    .map_err(io_error(&host_image))?;

    // The host VM, its NIC on a TAP opened in the upstream namespace.
    let uplink_tap = qemu::uplink_tap(lab)?;
    let mac = lab
        .system
        .netvm
        .uplink()
        .mac
        .map_or_else(|| "02:ad:00:00:fe:01".to_owned(), |m| m.to_string());
    let sock = |name: &str| lab.dir.join(name).display().to_string();
    let mut extra: Vec<String> = [
        "-smp".to_owned(),
        "2".to_owned(),
        // The vIOMMU comes before the devices it covers.
        "-device".to_owned(),
        "intel-iommu,intremap=on".to_owned(),
        "-serial".to_owned(),
        format!(
            "file:{}",
            qemu::console(lab, lab.system.netvm.name.as_str()).display()
        ),
        "-chardev".to_owned(),
        format!(
            "socket,id=netvmctl,path={},server=on,wait=off",
            sock(&format!("ctl-{}.sock", lab.system.netvm.name))
        ),
        "-serial".to_owned(),
        "chardev:netvmctl".to_owned(),
        "-netdev".to_owned(),
        format!("tap,id=uplink,fd={}", uplink_tap.as_raw_fd()),
    ]
    .into();
    extra.extend(hardware.qemu_args("uplink", &mac));
    let tsc = tsc_khz()
        .map(|k| format!(" tsc_early_khz={k}"))
        .unwrap_or_default();
    let started = Instant::now();
    qemu::start(
        lab,
        &kernel,
        HOST_VM,
        "2048M",
        &host_image.display().to_string(),
        &format!("console=ttyS0 intel_iommu=on panic=-1 quiet cryptomgr.notests{tsc}"),
        &extra,
    )?;
    drop(uplink_tap);
    wait(HOST_BOOT, "the host VM to boot", || {
        console_line(lab, HOST_VM, "netvm-lab: host-vm up at")
    })?;
    // The shell answers cleanly (its banner, and input sent before it
    // read, are behind us).
    wait(Duration::from_secs(30), "the host VM's shell", || {
        qemu::exec(lab, HOST_VM, "echo ok", Duration::from_secs(3))
            .ok()
            .filter(|(out, status)| *status == 0 && out.trim() == "ok")
    })?;
    let mut stages = vec![stage(
        "host VM boot (to its shell)",
        started.elapsed(),
        None,
    )];

    let mut shell = HostShell::open(lab)?;
    integrate(lab, &mut shell, &hardware, &tsc, &mut stages)?;
    Ok(stages)
}

/// What an integrator runs on the host, then the Net VM and the VMs.
fn integrate(
    lab: &Lab,
    shell: &mut HostShell<'_>,
    hardware: &Hardware,
    tsc: &str,
    stages: &mut Vec<Boot>,
) -> Result<(), LabError> {
    let netvm_name = lab.system.netvm.name.to_string();
    // 1. The NIC is there (PCI: with its native driver and an IOMMU
    // group), and can pass.
    let (shown, stanza_line) = hardware.listed_as();
    let listed = shell.must("netvm host devices")?;
    let row = listed.lines().find(|l| l.contains(&shown)).ok_or_else(|| {
        LabError::Lab(format!(
            "`netvm host devices` does not list {shown}:\n{listed}"
        ))
    })?;
    if !row.contains(" yes") {
        return Err(LabError::Lab(format!(
            "`netvm host devices` says {shown} cannot pass:\n{listed}"
        )));
    }
    // What the user pastes into the description names this NIC.
    let stanza = shell.must("netvm host devices --describe")?;
    let mut wanted = vec![stanza_line];
    if let Hardware::Pci(..) = hardware {
        wanted.push(format!("pci_id = \"{NIC_ID}\""));
    }
    for wanted in wanted {
        if !stanza.contains(&wanted) {
            return Err(LabError::Lab(format!(
                "`netvm host devices --describe` lacks `{wanted}`:\n{stanza}"
            )));
        }
    }
    // 2. Hand it to vfio-pci (a USB NIC needs nothing: the VMM takes
    // it by vendor:product, and the host has no driver for it).
    if let Hardware::Pci(address, _) = hardware {
        let at = Instant::now();
        shell.must(&format!("netvm host passthrough bind {address}"))?;
        stages.push(stage("passthrough bind", at.elapsed(), None));
    }
    // 3. The VMs' ports (namespaces on veths named as their TAPs), the
    // bridge, the guards; the undescribed VM's port.
    for vm in &lab.plan.vms {
        let ports: Vec<String> = vm.tcp_ports.iter().map(u16::to_string).collect();
        shell.must(&format!(
            "lab-vm {} {} {} {}",
            vm.name,
            vm.mac,
            vm.host_port,
            if ports.is_empty() {
                "-".to_owned()
            } else {
                ports.join(",")
            }
        ))?;
    }
    shell.must(&format!("netvm host up {DESCRIPTION}"))?;
    for vm in lab.plan.vms.iter().filter(|v| v.expected == Expected::Pool) {
        shell.must(&format!(
            "/usr/sbin/ip link set {0} master {1} && /usr/sbin/ip link set {0} type bridge_slave isolated on",
            vm.host_port, lab.plan.bridge
        ))?;
    }
    // 4. The posture, before anything else runs.
    let audit = shell.must(&format!("netvm host audit {DESCRIPTION}"))?;
    if audit.contains("FAIL") {
        return Err(LabError::Lab(format!("the host audit failed:\n{audit}")));
    }
    // 5. The Net VM, with the arguments netvm generates.
    let args = shell.must(&format!(
        "netvm host vmm-args {DESCRIPTION} --vm {netvm_name} --vmm qemu"
    ))?;
    let args = args.trim();
    let command = format!(
        "qemu-system-x86_64 -accel tcg,tb-size=256 -M q35 -m 512M -nodefaults -no-user-config -display none -no-reboot \
-chardev serial,id=con,path=/dev/ttyS2 -serial chardev:con -chardev serial,id=ctl,path=/dev/ttyS3 -serial chardev:ctl \
-global virtio-net-pci.romfile= -kernel {NETVM_KERNEL} -initrd {NETVM_IMAGE} -append '{NETVM_CMDLINE}{tsc}' {args} \
> {REPORTS}/qemu-{netvm_name}.log 2>&1 &"
    );
    let at = Instant::now();
    shell.must(&command)?;
    let mut polls = 0u32;
    let ready = wait(NETVM_BOOT, "the Net VM's agent to be ready", || {
        if console_line(lab, &netvm_name, "\"event\":\"ready\",\"internal\"").is_some() {
            return Some(Ok(()));
        }
        // QEMU refused to start or stopped (its log says why); asked
        // every few seconds, the host VM's shell is slow.
        polls += 1;
        if !polls.is_multiple_of(50) {
            return None;
        }
        let (out, _) = qemu::exec(
            lab,
            HOST_VM,
            &format!(
                "pidof qemu-system-x86_64 >/dev/null && echo running || cat {REPORTS}/qemu-{netvm_name}.log"
            ),
            COMMAND,
        )
        .ok()?;
        (!out.contains("running")).then(|| {
            Err(LabError::Lab(format!(
                "the nested QEMU stopped: {}",
                out.trim()
            )))
        })
    });
    ready??;
    let up_at = console_line(lab, &netvm_name, "netvm-lab: net-vm up at")
        .and_then(|l| l.rsplit(' ').next().and_then(|s| s.parse().ok()));
    stages.push(stage(
        "Net VM boot (QEMU start to agent ready)",
        at.elapsed(),
        up_at,
    ));
    let netvm_started = at;

    // 6. The VMs' DHCP clients, started while the uplink leases (the
    // checks that need it come after a VM's own lease, and retry).
    let mut names: Vec<String> = lab.plan.vms.iter().filter_map(|v| v.fqdn.clone()).collect();
    names.push(crate::plan::UPSTREAM_NAMES[0].to_owned());
    let at = Instant::now();
    for vm in &lab.plan.vms {
        let ports: Vec<String> = vm.tcp_ports.iter().map(u16::to_string).collect();
        let args = format!(
            "netvm.name={} netvm.ports={} netvm.names={} netvm.domain={} netvm.dns={} netvm.upstream={UPSTREAM_IP}",
            vm.name,
            ports.join(","),
            names.join(","),
            lab.plan.domain,
            lab.plan.netvm_ip
        );
        shell.must(&format!("lab-dhcp {} '{args}'", vm.name))?;
    }
    wait(NETVM_BOOT, "the Net VM's uplink lease", || {
        console_line(lab, &netvm_name, "\"uplink_bound\"")
    })?;
    stages.push(stage(
        "first uplink lease (from QEMU start)",
        netvm_started.elapsed(),
        None,
    ));
    let mut first = None;
    let mut polls = 0u32;
    wait(Duration::from_secs(180), "every VM's checks", || {
        polls += 1;
        if polls % 20 != 1 {
            return None;
        }
        pull_reports(lab).ok()?;
        if first.is_none() {
            first = lab
                .plan
                .vms
                .iter()
                .find(|v| qemu::report(lab, &v.name, "lease").is_some())
                .map(|v| (v.name.clone(), at.elapsed()));
        }
        lab.plan
            .vms
            .iter()
            .all(|v| qemu::report(lab, &v.name, "internet").is_some())
            .then_some(())
    })?;
    if let Some((vm, took)) = first {
        stages.push(stage(
            &format!("first VM lease ({vm}, from its DHCP start)"),
            took,
            None,
        ));
    }
    stages.push(stage(
        "every VM leased and checked (from DHCP start)",
        at.elapsed(),
        None,
    ));
    Ok(())
}

/// Copies each VM's reports from the host VM to `console-<vm>.log`, where
/// the QEMU mode's readers find them.
fn pull_reports(lab: &Lab) -> Result<(), LabError> {
    for vm in &lab.plan.vms {
        let (out, _) = qemu::exec(
            lab,
            HOST_VM,
            &format!("cat {REPORTS}/{}.log", vm.name),
            COMMAND,
        )?;
        let path = qemu::console(lab, &vm.name);
        std::fs::write(&path, out).map_err(io_error(&path))?;
    }
    Ok(())
}

/// Row 9 in this lab: the host VM's posture, by `netvm host audit` and
/// what it holds.
pub fn host_posture(lab: &Lab) -> Result<String, String> {
    let mut shell = HostShell::open(lab).map_err(|e| e.to_string())?;
    let mut sh = |c: &str| shell.run(c).map_err(|e| e.to_string());
    let (audit, status) = sh(&format!("netvm host audit {DESCRIPTION}"))?;
    if status != 0 {
        return Err(format!("the host audit failed:\n{audit}"));
    }
    let (addresses, _) = sh("/usr/sbin/ip -4 -o addr show scope global")?;
    let (routes, _) = sh("/usr/sbin/ip -4 route show; /usr/sbin/ip -6 route show default")?;
    if !addresses.trim().is_empty() || !routes.trim().is_empty() {
        return Err(format!(
            "the secure host has addresses {:?} and routes {:?}",
            addresses.trim(),
            routes.trim()
        ));
    }
    let passes = audit.lines().filter(|l| l.starts_with("PASS")).count();
    let address = match Hardware::of(&lab.system).map_err(|e| e.to_string())? {
        Hardware::Usb(id) => {
            let (netdevs, _) = sh(USB_NETDEVS)?;
            if !netdevs.trim().is_empty() {
                return Err(format!("the host has {:?} on a USB NIC", netdevs.trim()));
            }
            return Ok(format!(
                "`netvm host audit`: {passes} checks pass; no address, no route; no netdev for the USB NIC {id} on the host"
            ));
        }
        Hardware::Pci(address, _) => address,
    };
    let (bound, netdevs) = pci_nic(&mut sh, address)?;
    if bound != "vfio-pci" || !netdevs.is_empty() {
        return Err(format!(
            "{address} is with {bound:?} and the host has {netdevs:?} on it"
        ));
    }
    Ok(format!(
        "`netvm host audit`: {passes} checks pass; no address, no route; {address} with vfio-pci and no netdev on the host"
    ))
}

/// The last row: the Net VM stopped, `passthrough unbind` returns the NIC
/// to its native driver (the host has a netdev for it again), and with
/// an address on it the audit fails, naming the checks.
pub fn give_back(lab: &Lab) -> Result<String, String> {
    let hardware = Hardware::of(&lab.system).map_err(|e| e.to_string())?;
    let mut shell = HostShell::open(lab).map_err(|e| e.to_string())?;
    let mut sh = |c: &str| shell.run(c).map_err(|e| e.to_string());
    // vfio-pci waits for its user before it lets a device go.
    sh("kill $(pidof qemu-system-x86_64) 2>/dev/null; for i in $(seq 50); do pidof qemu-system-x86_64 >/dev/null || break; sleep 0.2; done")?;
    let address = match hardware {
        Hardware::Pci(address, _) => address,
        Hardware::Usb(id) => return usb_back(&mut sh, id),
    };
    let (out, status) = sh(&format!("netvm host passthrough unbind {address}"))?;
    if status != 0 {
        return Err(format!("unbind failed: {out}"));
    }
    let (driver, netdevs) = pci_nic(&mut sh, address)?;
    let Some(netdev) = netdevs.last().filter(|_| driver != "vfio-pci") else {
        return Err(format!(
            "after unbind {address} is with {driver:?} and the host has no netdev for it ({netdevs:?})"
        ));
    };
    let (audit, status, failed) = audit_with_address(&mut sh, netdev)?;
    let names_it = failed.iter().any(|l| l.contains("vfio-pci"))
        && failed.iter().any(|l| l.contains("no host interface"));
    if status == 0 || !names_it {
        return Err(format!(
            "with {netdev} back on the host and addressed, the audit said (exit {status}):\n{audit}"
        ));
    }
    Ok(format!(
        "unbind gave {address} back to {driver} ({netdev}); with an address on it the audit exits {status}: {}",
        failed.join(" | ")
    ))
}

/// The driver of the PCI NIC at `address` in the host VM, and the host's
/// netdevs on it (its own or, for virtio, its `virtioN`'s).
fn pci_nic(
    sh: &mut impl FnMut(&str) -> Result<(String, i32), String>,
    address: PciAddress,
) -> Result<(String, Vec<String>), String> {
    let (seen, _) = sh(&format!(
        "basename $(readlink /sys/bus/pci/devices/{address}/driver); ls /sys/bus/pci/devices/{address}/net /sys/bus/pci/devices/{address}/virtio*/net 2>/dev/null | grep -v :"
    ))?;
    let mut lines = seen.lines().map(str::trim).filter(|l| !l.is_empty());
    let driver = lines.next().unwrap_or_default().to_owned();
    Ok((driver, lines.map(str::to_owned).collect()))
}

/// Gives the host `netdev` an address and runs the audit: its output,
/// exit status and `FAIL` lines.
fn audit_with_address(
    sh: &mut impl FnMut(&str) -> Result<(String, i32), String>,
    netdev: &str,
) -> Result<(String, i32, Vec<String>), String> {
    sh(&format!(
        "/usr/sbin/ip addr add 198.51.100.2/24 dev {netdev} && /usr/sbin/ip link set {netdev} up"
    ))?;
    let (audit, status) = sh(&format!("netvm host audit {DESCRIPTION}"))?;
    let failed = audit
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect();
    Ok((audit, status, failed))
}

/// The host's netdevs on USB devices, one a line.
const USB_NETDEVS: &str = "ls /sys/bus/usb/devices/*/net 2>/dev/null | grep -v -e : -e '^$'";

/// [`give_back`] for a USB NIC: with the Net VM's QEMU gone, the host's
/// own driver (loaded now) makes an interface of it, and the audit,
/// given an address on it, fails naming the check.
fn usb_back(
    sh: &mut impl FnMut(&str) -> Result<(String, i32), String>,
    id: UsbId,
) -> Result<String, String> {
    let (netdev, _) = sh(&format!(
        "modprobe cdc_ether; for i in $(seq 40); do n=$({USB_NETDEVS} | head -1); [ -n \"$n\" ] && break; sleep 0.5; done; echo $n"
    ))?;
    let netdev = netdev.trim().to_owned();
    if netdev.is_empty() {
        return Err(format!(
            "the USB NIC {id} got no interface on the host after its driver loaded"
        ));
    }
    let (audit, status, failed) = audit_with_address(sh, &netdev)?;
    if status == 0 || !failed.iter().any(|l| l.contains("has no host interface")) {
        return Err(format!(
            "with {netdev} on the host and addressed, the audit said (exit {status}):\n{audit}"
        ));
    }
    Ok(format!(
        "the Net VM's QEMU gone, the host's cdc_ether made {netdev} of {id}; with an address on it the audit exits {status}: {}",
        failed.join(" | ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_names_the_host_vms_nic_by_address_and_id() {
        let usb = crate::lab::passthrough_default(true);
        let usb = netvm_description::parse("usb", &usb, netvm_description::Format::Toml)
            .expect("the USB passthrough default parses");
        assert_eq!(
            Hardware::of(&usb).ok(),
            Some(Hardware::Usb(USB_NIC_ID.parse().expect("id")))
        );
        let text = crate::lab::passthrough_default(false);
        let system = netvm_description::parse(
            "passthrough default",
            &text,
            netvm_description::Format::Toml,
        )
        .expect("the passthrough default parses");
        let UplinkDevice::Pci(address) = &system.netvm.uplink().device else {
            panic!("not a PCI uplink: {text}");
        };
        assert_eq!(nic_slot(address).ok(), Some(3));
        assert_eq!(
            system
                .netvm
                .uplink()
                .pci_id
                .map(|i| i.to_string())
                .as_deref(),
            Some(NIC_ID)
        );
        assert_eq!(
            system.netvm.uplink().mac,
            None,
            "found by its id, not its MAC"
        );
        assert_eq!(system.netvm.mode, Mode::Secure);
    }

    #[test]
    fn the_nic_goes_in_a_root_bus_slot() {
        let slot = |a: &str| nic_slot(&a.parse().expect("address"));
        assert_eq!(slot("0000:00:03.0").ok(), Some(3));
        assert_eq!(slot("0000:00:1f.0").ok(), Some(0x1f));
        assert!(slot("0000:01:00.0").is_err());
        assert!(slot("0000:00:03.1").is_err());
        assert!(slot("0000:00:00.0").is_err());
    }
}
