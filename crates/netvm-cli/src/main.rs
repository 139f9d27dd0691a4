//! `netvm`: the command line. It parses arguments, calls the libraries and
//! prints; all logic lives in the library crates.

use clap::{Parser, Subcommand, ValueEnum};
use netvm_description::LoadError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A networking VM for compartmentalised operating systems.
#[derive(Parser)]
#[command(name = "netvm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description and print its address plan.
    Check {
        /// The description (.toml, or .json with the same structure).
        file: PathBuf,
    },
    /// Print everything the description implies, without touching anything.
    Plan {
        /// The description (.toml, or .json with the same structure).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print the JSON Schema of the system description.
    Schema,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    /// Readable tables.
    Table,
    /// Stable JSON for other programs.
    Json,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Check { file } => {
            let system = load(&file)?;
            let plan = netvm_plan::plan(&system);
            print!("{}", plan.address_table());
            println!("{}: valid", file.display());
        }
        Command::Plan { file, format } => {
            let plan = netvm_plan::plan(&load(&file)?);
            match format {
                OutputFormat::Table => print!("{}", plan.to_text()),
                OutputFormat::Json => println!("{}", to_json(&plan)?),
            }
        }
        Command::Schema => println!("{}", to_json(&netvm_description::json_schema())?),
    }
    Ok(())
}

fn load(file: &Path) -> Result<netvm_description::System, String> {
    netvm_description::load(file).map_err(|e| match e {
        LoadError::Invalid(error) => error.to_string(),
        other => error_chain(&other),
    })
}

fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| format!("error: cannot write JSON: {e}"))
}

/// `error: outer: cause: root cause`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}
