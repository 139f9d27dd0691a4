//! The ruleset applier: the whole text in one `nft -f -` transaction.
//! nft commits a file all or nothing, so on any error the ruleset that
//! was loaded before stays in force.

use std::io::Write;
use std::process::{Command, Stdio};

/// nft could not be run or rejected the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started (is the nftables package installed?).
    #[error("cannot run nft")]
    Run(#[source] std::io::Error),
    /// nft rejected the ruleset; nothing changed.
    #[error("nft rejected the ruleset (the previous ruleset stays): {stderr}")]
    Rejected {
        /// What nft said.
        stderr: String,
    },
}

/// Loads `ruleset` (equivalent to `nft -f file`).
pub fn apply(ruleset: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Run)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(ruleset.as_bytes()).map_err(NftError::Run)?;
    }
    let output = child.wait_with_output().map_err(NftError::Run)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NftError::Rejected {
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
