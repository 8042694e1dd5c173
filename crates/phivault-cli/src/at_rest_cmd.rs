//! Being written.

use crate::cli::Global;
use std::process::ExitCode;

/// Arguments (being written).
#[derive(clap::Args, Debug)]
pub struct AtRestArgs {}

pub fn run(_g: &Global, _a: &AtRestArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet built")
}
