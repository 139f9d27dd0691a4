//! `netvm lab verify`, the policy oracle, as a user runs it: on the
//! embedded default in secure and dev mode, and on two systems generated
//! from seeds chosen at random per run (printed; `NETVM_VERIFY_SEED=<n>`
//! fixes the first, `NETVM_VERIFY_SEED2=<n>` the second). Runs as root;
//! each test has its own lab id and removes its lab even when it fails.
//! The tests take turns: each verify measures with timing windows.

use std::process::Command;
use std::sync::Mutex;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn netvm(args: &[&str]) -> (bool, String) {
    let out = Command::new(NETVM).args(args).output().expect("netvm runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Removes the lab (and the generated file) even when an assertion failed.
struct Down(&'static str, Option<std::path::PathBuf>);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = netvm(&["lab", "down", "--id", self.0]);
        if let Some(file) = &self.1 {
            let _ = std::fs::remove_file(file);
        }
    }
}

fn random_seed(var: &str) -> u64 {
    if let Ok(text) = std::env::var(var) {
        return text.parse().expect("a seed is a number");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    now ^ (u64::from(std::process::id()) << 20) ^ var.len() as u64
}

fn verify(id: &'static str, up: &[&str], seed: u64, file: Option<std::path::PathBuf>) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let _down = Down(id, file);
    let mut args = vec!["lab", "up", "--id", id];
    args.extend_from_slice(up);
    let (ok, text) = netvm(&args);
    assert!(ok, "lab up {up:?}: {text}");
    let seed = seed.to_string();
    let started = std::time::Instant::now();
    let (ok, report) = netvm(&["lab", "verify", "--id", id, "--seed", &seed]);
    println!(
        "lab verify --id {id} --seed {seed} ({up:?}) took {:.1} s:\n{report}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        ok,
        "verify found differences (replay: NETVM_VERIFY_SEED={seed}):\n{report}"
    );
    assert!(report.contains(" 0 differences, 0 of "), "{report}");
}

#[test]
fn verify_passes_on_the_secure_default() {
    verify(
        "65",
        &["--mode", "secure"],
        random_seed("NETVM_VERIFY_PORTS_SEED"),
        None,
    );
}

#[test]
fn verify_passes_on_the_dev_default() {
    verify(
        "66",
        &["--mode", "dev"],
        random_seed("NETVM_VERIFY_PORTS_SEED"),
        None,
    );
}

fn seeded(id: &'static str, var: &str) {
    let seed = random_seed(var);
    println!("system seed {seed} (replay: {var}={seed})");
    let (ok, text) = netvm(&["lab", "generate", "--seed", &seed.to_string()]);
    assert!(ok, "{text}");
    let file = std::env::temp_dir().join(format!("netvm-verify-{id}-{seed}.toml"));
    std::fs::write(&file, &text).expect("write the description");
    let path = file.display().to_string();
    verify(id, &[path.as_str()], seed, Some(file.clone()));
}

#[test]
fn verify_passes_on_a_seeded_system() {
    seeded("67", "NETVM_VERIFY_SEED");
}

#[test]
fn verify_passes_on_another_seeded_system() {
    seeded("68", "NETVM_VERIFY_SEED2");
}
