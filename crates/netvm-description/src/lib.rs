//! The netvm system description: one file (TOML, or JSON of the same
//! structure) that describes the whole device — internal network, Net VM
//! and its uplink, host, VMs and what they may reach, DHCP and DNS.
//!
//! [`parse`] and [`load`] are the only ways in. They read the text into a
//! spanned tree (`source`), the tree into the file format (`raw`), and
//! validate that into a [`System`] (`validate`, `addressing`), or return a
//! [`DescriptionError`] listing every problem with its line, column and a
//! hint. Pure: no I/O except [`load`] reading the file; never panics on any
//! input.

#![forbid(unsafe_code)]

mod addressing;
mod diagnostic;
mod model;
mod raw;
mod read;
mod source;
mod validate;
pub mod values;

pub use diagnostic::{DescriptionError, Diagnostic, Location, Problem};
pub use model::{
    derived_ula, Agent, DevUplink, DevUplinkMode, Dhcp, Dns, Endpoint, Flow, Host, InternalIpv6,
    Metrics, Mode, NetVm, Network, Origin, PortForward, Record, RemoteControl, Role, Route, System,
    Uplink, UplinkAddressing, UplinkDevice, UplinkIpv6, Vm, VmKind, Wifi, WifiNetwork,
    DEFAULT_CONTROL_PORT, HOST_NAME, IPV6_POOL_IID_BASE,
};
pub use raw::WifiSecurity;
pub use source::{FieldPath, Format, Segment};

use source::Node;
use std::path::{Path, PathBuf};

/// Descriptions larger than this are refused before parsing (a real one
/// with hundreds of VMs is well under 1 MiB).
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024 * 1024;

/// Parses and validates a description. `origin` names it in messages
/// (usually the file name).
pub fn parse(origin: &str, text: &str, format: Format) -> Result<System, DescriptionError> {
    let error = |diagnostics| DescriptionError {
        origin: origin.to_owned(),
        text: text.to_owned(),
        diagnostics,
    };
    if text.len() > MAX_DESCRIPTION_BYTES {
        return Err(error(vec![Diagnostic {
            problem: Problem::Syntax {
                message: format!("the file is larger than {MAX_DESCRIPTION_BYTES} bytes"),
            },
            path: FieldPath::root(),
            location: None,
        }]));
    }
    let root = Node::parse(text, format).map_err(|errors| {
        error(
            errors
                .into_iter()
                .map(|e| {
                    Diagnostic::at_span(
                        text,
                        Problem::Syntax { message: e.message },
                        FieldPath::root(),
                        e.span,
                    )
                })
                .collect(),
        )
    })?;
    let read::Reading {
        raw,
        mut diagnostics,
        checkable,
    } = read::read(text, &root);
    let checked = match raw {
        Some(raw) if checkable => validate::validate(text, &root, raw),
        _ => Err(Vec::new()),
    };
    match checked {
        Ok(system) if diagnostics.is_empty() => Ok(system),
        Ok(_) => Err(error(diagnostics)),
        Err(found) => {
            diagnostics.extend(found);
            diagnostics.sort_by_key(|d| d.location.as_ref().map(|l| l.span.start));
            Err(error(diagnostics))
        }
    }
}

/// Why [`load`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid description.
    #[error(transparent)]
    Invalid(#[from] Box<DescriptionError>),
}

/// Reads and validates the description at `path`; the format follows the
/// file extension (`.json` is JSON, anything else TOML).
pub fn load(path: &Path) -> Result<System, LoadError> {
    let read_error = |source| LoadError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_DESCRIPTION_BYTES as u64 {
        let message = format!("file is {size} bytes, more than {MAX_DESCRIPTION_BYTES}");
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            message,
        )));
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let origin = path.display().to_string();
    parse(&origin, &text, Format::from_file_name(&origin))
        .map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// The JSON Schema of the description format.
pub fn json_schema() -> serde_json::Value {
    read::SCHEMA.clone()
}
