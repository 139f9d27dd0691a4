//! `netvm wifi list|scan|connect|forget`: a running agent's Wi-Fi uplinks,
//! over its control socket (or, from a VM the description lets in, its
//! control service: `--agent`). The passphrase of `connect` is read from
//! a file (`--psk-file`) or from standard input, never from the command
//! line, where other users could read it.

use crate::control::{ask, Socket};
use crate::describe::OutputFormat;
use clap::{Args, Subcommand};
use netvm_events::control::{Passphrase, Request, WifiInfo};
use std::io::Read;
use std::path::PathBuf;

/// `netvm wifi`.
#[derive(Args)]
pub struct WifiArgs {
    #[command(subcommand)]
    command: WifiCommand,
    #[command(flatten)]
    socket: Socket,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    format: OutputFormat,
}

#[derive(Subcommand)]
enum WifiCommand {
    /// Each Wi-Fi uplink: its state, the network it joined, the networks
    /// it may join.
    List,
    /// The networks in range, strongest first.
    Scan,
    /// Save a network and join it now (it survives a restart of the
    /// agent).
    Connect {
        /// The network's name.
        ssid: String,
        /// A file holding the passphrase (one trailing newline is
        /// ignored); without it, standard input.
        #[arg(long)]
        psk_file: Option<PathBuf>,
        /// The Wi-Fi uplink (default: the first).
        #[arg(long)]
        uplink: Option<String>,
    },
    /// Drop a saved network.
    Forget {
        /// The network's name.
        ssid: String,
        /// The Wi-Fi uplink (default: the first).
        #[arg(long)]
        uplink: Option<String>,
    },
}

/// Runs `netvm wifi …`.
pub fn run(args: &WifiArgs) -> Result<(), String> {
    let request = match &args.command {
        WifiCommand::List => Request::WifiList,
        WifiCommand::Scan => Request::WifiScan,
        WifiCommand::Connect {
            ssid,
            psk_file,
            uplink,
        } => Request::WifiConnect {
            ssid: ssid.clone(),
            passphrase: Passphrase(passphrase(psk_file.as_ref())?),
            uplink: uplink.clone(),
        },
        WifiCommand::Forget { ssid, uplink } => Request::WifiForget {
            ssid: ssid.clone(),
            uplink: uplink.clone(),
        },
    };
    let (answer, _) = ask(&args.socket, &request)?;
    let json = matches!(args.format, OutputFormat::Json);
    if let Some(seen) = answer.wifi_scan {
        if json {
            println!("{}", crate::to_json(&seen)?);
            return Ok(());
        }
        println!(
            "{:<10} {:<32} {:<17} {:>6} {:>5} SECURITY",
            "UPLINK", "SSID", "BSSID", "SIGNAL", "MHZ"
        );
        for s in &seen {
            println!(
                "{:<10} {:<32} {:<17} {:>6} {:>5} {}",
                s.uplink, s.ssid, s.bssid, s.signal, s.freq, s.security
            );
        }
        return Ok(());
    }
    let wifi = answer
        .wifi
        .ok_or("error: the agent's answer has no `wifi`")?;
    if json {
        println!("{}", crate::to_json(&wifi)?);
    } else {
        table(&wifi);
    }
    Ok(())
}

fn table(wifi: &[WifiInfo]) {
    for w in wifi {
        println!(
            "{}: {}{}",
            w.uplink,
            w.state,
            w.ssid
                .as_ref()
                .map(|s| format!(" to `{s}` ({})", w.bssid.as_deref().unwrap_or("-")))
                .unwrap_or_default()
        );
        for n in &w.networks {
            println!("  {:<32} {:<9} priority {}", n.ssid, n.source, n.priority);
        }
    }
}

/// The passphrase from `file`, or from standard input; one trailing
/// newline dropped.
fn passphrase(file: Option<&PathBuf>) -> Result<String, String> {
    let mut text = String::new();
    match file {
        Some(path) => {
            text = std::fs::read_to_string(path)
                .map_err(|e| format!("error: {}: {e}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .take(1024)
                .read_to_string(&mut text)
                .map_err(|e| format!("error: reading the passphrase from standard input: {e}"))?;
        }
    }
    let text = netvm_wifi::psk::from_file_text(&text)
        .map_err(|e| format!("error: the passphrase: {e}"))?;
    Ok(text.to_owned())
}
