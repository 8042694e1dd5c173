//! Layered configuration: defaults → config file → environment → flags.
//!
//! The file is TOML, from `--config`/`PHIVAULT_CONFIG`, else
//! `$XDG_CONFIG_HOME/phivault/config.toml` (or `~/.config/phivault/config.toml`)
//! when it exists. A value from the file is used only where neither a flag
//! nor an environment variable gave one. Unknown keys are warned about, not
//! ignored silently. Options that weaken security (`--insecure-dev`) are not
//! accepted from the file: they must be asked for on each run.

use crate::cli::{Cli, Command};
use anyhow::{Context, Result};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;
use std::path::PathBuf;

/// What the file may set.
#[derive(Debug, Default, Deserialize)]
pub struct FileConfig {
    /// Like `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// Like `--namespace`.
    pub namespace: Option<String>,
    /// Like `--threads` on encrypt/decrypt.
    pub threads: Option<usize>,
    /// `serve`: listener, limits, timeouts.
    #[serde(default)]
    pub server: phivault_server::config::ServerFile,
    /// `serve`: TLS profile and files.
    #[serde(default)]
    pub tls: phivault_server::config::TlsFile,
    /// `serve`: tokens, external issuers, principals.
    #[serde(default)]
    pub auth: phivault_server::config::AuthFile,
    /// `serve`: the records service.
    #[serde(default)]
    pub records: phivault_server::config::RecordsFile,
    /// `serve`: the audit trail.
    #[serde(default)]
    pub audit: phivault_server::config::AuditFile,
    /// `serve`: where records live (PostgreSQL for several nodes).
    #[serde(default)]
    pub storage: phivault_server::config::StorageFile,
    /// `evidence`: extra listeners, backup locations, the pinned audit key,
    /// and the documented risk decisions.
    #[serde(default)]
    pub evidence: phivault_scan::evidence::EvidenceConfig,
}

fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("phivault").join("config.toml")).filter(|p| p.exists())
}

fn from_default(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), None | Some(ValueSource::DefaultValue))
}

/// Loads the file (if any) and fills in what flags and environment left at
/// their defaults. Returns the file's contents for `serve`.
pub fn apply(cli: &mut Cli, m: &ArgMatches) -> Result<FileConfig> {
    let Some(path) = cli.global.config.clone().or_else(default_path) else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let mut unknown = Vec::new();
    let de = toml::Deserializer::parse(&text)
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let file: FileConfig = serde_ignored::deserialize(de, |p| unknown.push(p.to_string()))
        .with_context(|| format!("config file {} is not valid", path.display()))?;
    for key in unknown {
        eprintln!(
            "phivault: warning: unknown key '{key}' in {} (known: data_dir, namespace, threads, [server], [tls], [auth], [records], [audit], [storage], [evidence]; see README)",
            path.display()
        );
    }
    if let (Some(d), true) = (&file.data_dir, from_default(m, "data_dir")) {
        cli.global.data_dir = d.clone();
    }
    if let (Some(n), true) = (&file.namespace, from_default(m, "namespace")) {
        cli.global.namespace = n.clone();
    }
    if let Some(t) = file.threads {
        match &mut cli.command {
            Command::Encrypt(a) if a.threads.is_none() => a.threads = Some(t),
            Command::Decrypt(a) if a.threads.is_none() => a.threads = Some(t),
            _ => {}
        }
    }
    Ok(file)
}
