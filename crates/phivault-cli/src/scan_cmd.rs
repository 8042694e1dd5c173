//! Being written.

use crate::cli::Global;
use std::process::ExitCode;

/// Arguments (being written).
#[derive(clap::Args, Debug)]
pub struct ScanTlsArgs {}

pub fn tls(_g: &Global, _a: &ScanTlsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet built")
}
