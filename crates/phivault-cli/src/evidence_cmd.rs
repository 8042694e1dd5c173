//! Being written.

use crate::cli::Global;
use std::process::ExitCode;

/// Arguments (being written).
#[derive(clap::Args, Debug)]
pub struct EvidenceArgs {}

pub fn run(_g: &Global, _a: &EvidenceArgs, _file: &crate::config::FileConfig) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet built")
}
