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

/// Starts `phivault serve --dev` on a free loopback port with `global`
/// arguments before the command; returns the child and its https:// URL
/// (from the JSON ready line).
pub fn spawn_dev_server(
    dir: &Path,
    global: &[&std::ffi::OsStr],
    log: &str,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = pv(dir)
        .args(global)
        .args([
            "--json",
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--log",
            log,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("ready line: {line}"));
    let url = v["listening"].as_str().unwrap().to_string();
    (child, url)
}
