//! `phivault keys …`

use crate::cli::{Global, KeysCommand};
use crate::custody::service;
use crate::ui;
use anyhow::{Context, Result, bail};
use phivault_core::keys::KeyRingName;
use phivault_keystore::atomic;
use phivault_keystore::model::VersionState;
use phivault_keystore::service::{Request, Response, check};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

pub fn ring_name(g: &Global, s: &str) -> Result<KeyRingName> {
    KeyRingName::parse_in(s, &g.namespace).with_context(|| format!("bad key ring name '{s}'"))
}

fn print_done(g: &Global, json: serde_json::Value, text: String) {
    if g.json {
        println!("{json}");
    } else {
        println!("{text}");
    }
}

pub fn run(g: &Global, cmd: &KeysCommand, file: &crate::config::FileConfig) -> Result<ExitCode> {
    let r = run_inner(g, cmd, file);
    let ring = |n: &str| ring_name(g, n).map(|r| r.to_string()).unwrap_or_default();
    let (op, resource, detail) = match cmd {
        KeysCommand::List { .. } => return r,
        KeysCommand::Create { name, max_age_days } => (
            "key.create",
            ring(name),
            serde_json::json!({ "max_age_days": max_age_days }),
        ),
        KeysCommand::Rotate { name } => ("key.rotate", ring(name), serde_json::json!({})),
        KeysCommand::Destroy { name, version, .. } => (
            "key.destroy",
            ring(name),
            serde_json::json!({ "version": version }),
        ),
        KeysCommand::MinVersion { name, version } => (
            "key.config",
            ring(name),
            serde_json::json!({ "min_decryption_version": version }),
        ),
        KeysCommand::Disable { name } => ("key.disable", ring(name), serde_json::json!({})),
        KeysCommand::Enable { name } => ("key.enable", ring(name), serde_json::json!({})),
        KeysCommand::Policy { name, max_age_days } => (
            "key.config",
            ring(name),
            serde_json::json!({ "max_age_days": max_age_days }),
        ),
        KeysCommand::Backup { all, .. } => (
            "key.backup",
            if *all {
                "*".into()
            } else {
                format!("{}/*", g.namespace)
            },
            serde_json::json!({}),
        ),
        KeysCommand::Restore { .. } => ("key.restore", "*".into(), serde_json::json!({})),
    };
    crate::audit_cmd::cli_event(g, phivault_audit::Kind::Key, op, Some(resource), detail, &r);
    r
}

fn run_inner(g: &Global, cmd: &KeysCommand, file: &crate::config::FileConfig) -> Result<ExitCode> {
    let svc = service(g, file)?;
    let call = |r: Request| -> Result<Response> { Ok(check(svc.call(r)?)?) };
    match cmd {
        KeysCommand::Create { name, max_age_days } => {
            let r = ring_name(g, name)?;
            call(Request::CreateRing {
                ring: r.to_string(),
                max_age_days: *max_age_days,
            })?;
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "version": 1 }),
                format!("Created key ring {r} (version 1)."),
            );
        }
        KeysCommand::List { all } => {
            let ns = (!all).then(|| g.namespace.clone());
            let Response::Rings { rings } = call(Request::List { namespace: ns })? else {
                bail!("unexpected response")
            };
            if g.json {
                println!("{}", serde_json::to_string_pretty(&rings)?);
            } else if rings.is_empty() {
                println!(
                    "No key rings{}. Create one with `phivault keys create NAME`.",
                    if *all {
                        String::new()
                    } else {
                        format!(" in namespace '{}' (try --all)", g.namespace)
                    }
                );
            } else {
                println!(
                    "{:<32} {:>7} {:>9} {:>8} {:>8}  STATUS",
                    "RING", "PRIMARY", "LIVE/ALL", "AGE(d)", "MAX(d)"
                );
                for r in rings {
                    let live = r
                        .versions
                        .iter()
                        .filter(|v| v.state == VersionState::Active)
                        .count();
                    let status = if r.disabled {
                        "DISABLED".to_string()
                    } else if r.rotation_overdue {
                        format!("ROTATION OVERDUE (run `phivault keys rotate {}`)", r.name)
                    } else {
                        "ok".to_string()
                    };
                    println!(
                        "{:<32} {:>7} {:>9} {:>8} {:>8}  {status}",
                        r.name,
                        r.primary_version
                            .map(|v| format!("v{v}"))
                            .unwrap_or("-".into()),
                        format!("{live}/{}", r.versions.len()),
                        r.primary_age_days,
                        r.max_age_days
                    );
                }
            }
        }
        KeysCommand::Rotate { name } => {
            let r = ring_name(g, name)?;
            let Response::Version { version } = call(Request::Rotate {
                ring: r.to_string(),
            })?
            else {
                bail!("unexpected response")
            };
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "primary_version": version }),
                format!(
                    "Rotated {r}: version {version} is now primary; older versions still decrypt."
                ),
            );
        }
        KeysCommand::Destroy { name, version, yes } => {
            let r = ring_name(g, name)?;
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!(
                        "destroying a key version is irreversible; pass --yes to confirm non-interactively"
                    );
                }
                eprint!(
                    "Destroying {r} version {version} crypto-shreds everything encrypted under it: \
                     it can NEVER be decrypted again.\nType the ring name ({r}) to confirm: "
                );
                std::io::stderr().flush()?;
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if line.trim() != r.as_str() {
                    bail!("not confirmed; nothing was destroyed");
                }
            }
            call(Request::Destroy {
                ring: r.to_string(),
                version: *version,
            })?;
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "destroyed_version": version }),
                format!(
                    "Destroyed {r} version {version}. Data encrypted under it is unrecoverable."
                ),
            );
        }
        KeysCommand::MinVersion { name, version } => {
            let r = ring_name(g, name)?;
            call(Request::SetMinVersion {
                ring: r.to_string(),
                version: *version,
            })?;
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "min_decryption_version": version }),
                format!("{r}: versions below {version} no longer decrypt."),
            );
        }
        KeysCommand::Disable { name } | KeysCommand::Enable { name } => {
            let disabled = matches!(cmd, KeysCommand::Disable { .. });
            let r = ring_name(g, name)?;
            call(Request::SetDisabled {
                ring: r.to_string(),
                disabled,
            })?;
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "disabled": disabled }),
                format!(
                    "{r} is now {}.",
                    if disabled { "disabled" } else { "enabled" }
                ),
            );
        }
        KeysCommand::Policy { name, max_age_days } => {
            let r = ring_name(g, name)?;
            call(Request::SetMaxAge {
                ring: r.to_string(),
                days: *max_age_days,
            })?;
            print_done(
                g,
                serde_json::json!({ "ring": r.as_str(), "max_age_days": max_age_days }),
                format!("{r}: rotate when the primary is older than {max_age_days} days."),
            );
        }
        KeysCommand::Backup { output, all } => {
            let p = ui::read_secret(
                "Backup passphrase (keep it apart from the unseal shares): ",
                "PHIVAULT_BACKUP_PASSPHRASE",
            )?;
            let ns = (!all).then(|| g.namespace.clone());
            let Response::Escrow { file } = call(Request::EscrowExport {
                passphrase: p,
                namespace: ns,
            })?
            else {
                bail!("unexpected response")
            };
            let bytes = base64_decode(&file)?;
            if std::fs::metadata(output).is_ok_and(|m| !m.file_type().is_file()) {
                bail!(
                    "{} is not a regular file; write the escrow to a file",
                    output.display()
                );
            }
            atomic::write_atomic(output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            let meta = phivault_keystore::escrow::inspect(&bytes)?;
            print_done(
                g,
                serde_json::json!({ "file": output, "rings": meta.rings }),
                format!(
                    "Wrote key escrow {} with {} ring(s). Store it apart from the data and the unseal shares.",
                    output.display(),
                    meta.rings.len()
                ),
            );
        }
        KeysCommand::Restore { input } => {
            let bytes =
                std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
            phivault_keystore::escrow::inspect(&bytes)?;
            let p = ui::read_secret("Backup passphrase: ", "PHIVAULT_BACKUP_PASSPHRASE")?;
            let Response::Imported { rings } = call(Request::EscrowImport {
                file: base64_encode(&bytes),
                passphrase: p,
            })?
            else {
                bail!("unexpected response")
            };
            print_done(
                g,
                serde_json::json!({ "restored": rings }),
                format!("Restored {} key ring(s): {}", rings.len(), rings.join(", ")),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
