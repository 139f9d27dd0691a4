//! Rows 4-8 of the acceptance matrix for `--vms qemu`: the same checks
//! as in namespace mode, acted out inside the guests through their
//! control shells ([`crate::qemu::exec`]) with busybox tools, and read
//! from the host's guard counters and the agent inside the net-vm.

use crate::lab::{wait, Lab};
use crate::matrix::{
    described, events, flood_stopped_at_the_host, guard_counter, in_fresh_port, last_seq,
    policy_with, renewed, reserved, rogue_verdict, two_vms,
};
use crate::netns::LabError;
use crate::plan::{Expected, VmNode, UPSTREAM_HTTP_PORT, UPSTREAM_IP};
use std::time::Duration;

const SHELL: Duration = Duration::from_secs(20);

/// Rows 4 to 8, in order (names in [`crate::matrix::ROWS`]).
pub fn rows(lab: &Lab) -> Vec<Result<String, String>> {
    vec![
        policy(lab),
        spoofing(lab),
        rogue_dhcp(lab),
        starvation(lab),
        restart(lab),
    ]
}

/// Runs `command` in `vm`; its output, whatever its status.
fn sh(lab: &Lab, vm: &str, command: &str) -> Result<String, String> {
    crate::qemu::exec(lab, vm, command, SHELL)
        .map(|(out, _)| out)
        .map_err(|e: LabError| e.to_string())
}

fn policy(lab: &Lab) -> Result<String, String> {
    let connects = |from: &VmNode, to: std::net::Ipv4Addr, port: u16| {
        let out = sh(
            lab,
            &from.name,
            &format!("nc -w 2 {to} {port} </dev/null && echo connected"),
        )?;
        Ok(out.contains("connected"))
    };
    policy_with(lab, &connects).map(|done| format!("in the VMs: {done}"))
}

fn spoofing(lab: &Lab) -> Result<String, String> {
    let (victim, attacker) = two_vms(lab)?;
    let victim_ip = reserved(victim).ok_or("no address")?;
    let netvm_ip = lab.plan.netvm_ip;
    let netvm_mac = lab.system.netvm.endpoint.mac;
    let before = guard_counter(lab, &attacker.name);
    let script = format!(
        "ip addr add {victim_ip}/32 dev eth0; ping -c 6 -W 1 -I {victim_ip} {netvm_ip}; ip addr del {victim_ip}/32 dev eth0; \
         arp -s {netvm_ip} {netvm_mac}; ip link set eth0 address {}; \
         ping -c 6 -W 1 {netvm_ip}; ip link set eth0 address {}; arp -d {netvm_ip} 2>/dev/null",
        victim.mac, attacker.mac
    );
    let said = sh(lab, &attacker.name, &script)?;
    let dropped = guard_counter(lab, &attacker.name).saturating_sub(before);
    if dropped < 10 || said.matches("100% packet loss").count() != 2 {
        return Err(format!(
            "the host's guard counted {dropped} of 12 spoofed pings from {} (10 needed): {said}",
            attacker.name
        ));
    }
    Ok(format!(
        "in {}: 6 pings as {victim_ip} and 6 with {}'s MAC, none answered; the host's guard dropped and counted {dropped} frames",
        attacker.name, victim.name
    ))
}

fn rogue_dhcp(lab: &Lab) -> Result<String, String> {
    let (_, rogue) = two_vms(lab)?;
    let start = "ip addr add 10.66.0.1/24 dev eth0; \
                 printf 'start 10.66.0.10\\nend 10.66.0.20\\ninterface eth0\\nlease_file /tmp/rogue.leases\\n' > /tmp/rogue.conf; \
                 touch /tmp/rogue.leases; udhcpd /tmp/rogue.conf; pidof udhcpd";
    let started = sh(lab, &rogue.name, start)?;
    let said = in_fresh_port(
        lab,
        "p",
        "02:ee:00:00:00:02",
        &["udhcpc", "-i", "eth0", "-n", "-q", "-t", "5", "-T", "1"],
    );
    let _ = sh(
        lab,
        &rogue.name,
        "killall udhcpd; ip addr del 10.66.0.1/24 dev eth0",
    );
    let said = said?;
    if started.trim().is_empty() {
        return Err(format!("udhcpd did not start in {}: {started}", rogue.name));
    }
    rogue_verdict(&said, &rogue.name, "udhcpd")
}

/// Makes every described VM renew; those that did not renew their
/// reservation (the agent's own `lease_granted`, newer than the request,
/// of the reserved address to the VM's MAC, and the VM holding it).
fn renew_all(lab: &Lab) -> Result<Vec<String>, String> {
    let before = last_seq(&events(lab));
    for vm in described(lab) {
        sh(lab, &vm.name, "kill -USR1 $(pidof udhcpc)")?;
    }
    // A TCG net-vm still working through a flood answers late; busybox
    // udhcpc then starts over (deconfig, DISCOVER).
    let mut pending: Vec<&VmNode> = described(lab).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let granted = events(lab);
        let mut still = Vec::new();
        for vm in pending {
            let want = reserved(vm).ok_or("no address")?;
            let shown = sh(lab, &vm.name, "ip -4 addr show dev eth0")?;
            if !(shown.contains(&format!("inet {want}/"))
                && renewed(&granted, before, &vm.mac.to_string(), Some(want)))
            {
                still.push(vm);
            }
        }
        pending = still;
    }
    Ok(pending.into_iter().map(|vm| vm.name.clone()).collect())
}

fn starvation(lab: &Lab) -> Result<String, String> {
    let flood = flood_stopped_at_the_host(lab)?;
    let moved = renew_all(lab)?;
    if !moved.is_empty() {
        return Err(format!(
            "after the flood these lost their reservation: {moved:?}"
        ));
    }
    let (vm, _) = two_vms(lab)?;
    let want = reserved(vm).ok_or("no address")?;
    let said = sh(lab, &vm.name, "udhcpc -i eth0 -n -q -t 5 -T 1 -s /bin/true")?;
    if !said.contains(&format!("lease of {want} obtained")) {
        return Err(format!(
            "{} asking again did not get {want}: {said}",
            vm.name
        ));
    }
    if let Some(out) = described(lab).find(|v| v.internet) {
        let body = sh(
            lab,
            &out.name,
            &format!("timeout 5 wget -q -O - http://{UPSTREAM_IP}:{UPSTREAM_HTTP_PORT}/"),
        )?;
        if !body.contains(" saw ") {
            return Err(format!(
                "{} lost the Internet after the flood: {body}",
                out.name
            ));
        }
    }
    Ok(format!(
        "{flood}; every VM renewed its reservation, {} got {want} again from scratch, the Internet still works",
        vm.name
    ))
}

fn restart(lab: &Lab) -> Result<String, String> {
    let netvm = lab.system.netvm.name.to_string();
    let log = crate::qemu::console(lab, &netvm);
    let readies = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"event\":\"ready\",\"internal\"")
            .count()
    };
    let before = readies();
    sh(lab, &netvm, "kill -9 $(pidof netvm)")?;
    wait(Duration::from_secs(60), "the agent to come back", || {
        (readies() > before).then_some(())
    })
    .map_err(|e| e.to_string())?;
    let moved = renew_all(lab)?;
    if !moved.is_empty() {
        return Err(format!(
            "after the restart these lost their reservation: {moved:?}"
        ));
    }
    let listed = sh(
        lab,
        &netvm,
        "netvm leases --control /run/netvm/agent.sock --format json",
    )?;
    let missing: Vec<String> = lab
        .plan
        .vms
        .iter()
        .filter(|vm| vm.expected != Expected::Pool)
        .filter(|vm| !listed.contains(&format!("\"vm\": \"{}\"", vm.name)))
        .map(|vm| vm.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the restarted agent does not list leases of {missing:?}: {listed}"
        ));
    }
    Ok("killed the agent in the net-vm (kill -9), its init started it again; every VM renewed its reserved address and the agent lists them all".to_owned())
}
