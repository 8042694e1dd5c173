//! Shared by the CLI test binaries.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The real binary with an empty environment (only PATH) and `--data-dir`.
pub fn pv(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_phivault"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--data-dir")
        .arg(dir);
    c
}
