//! `phivault ca …`: the built-in certificate authority.

use crate::cli::{CaCommand, CertKindArg, Global};
use crate::custody::service;
use crate::serve_cmd::write_pair;
use anyhow::{Result, bail};
use phivault_keystore::service::{Request, ServiceKeys, check};
use phivault_server::pki::{self, Ca, CertKind, IssueRequest};
use std::process::ExitCode;

pub fn run(g: &Global, cmd: &CaCommand, cfg: &crate::config::FileConfig) -> Result<ExitCode> {
    let r = run_inner(g, cmd, cfg);
    let (op, resource, detail) = match cmd {
        CaCommand::List => return r,
        CaCommand::Init { trust_domain } => (
            "ca.init",
            "ca".to_owned(),
            serde_json::json!({ "trust_domain": trust_domain }),
        ),
        CaCommand::Issue {
            kind,
            name,
            scopes,
            days,
            ..
        } => (
            "ca.issue",
            format!("ca/{name}"),
            serde_json::json!({ "kind": format!("{kind:?}").to_lowercase(), "scopes": scopes, "days": days }),
        ),
        CaCommand::Revoke { selector, reason } => (
            "ca.revoke",
            format!("ca/{selector}"),
            serde_json::json!({ "reason": reason }),
        ),
        CaCommand::Crl { .. } => ("ca.crl", "ca".to_owned(), serde_json::json!({})),
    };
    crate::audit_cmd::cli_event(g, phivault_audit::Kind::Key, op, Some(resource), detail, &r);
    r
}

fn run_inner(g: &Global, cmd: &CaCommand, cfg: &crate::config::FileConfig) -> Result<ExitCode> {
    if let CaCommand::List = cmd {
        let idx = Ca::read_index(&g.data_dir)?;
        if g.json {
            println!("{}", serde_json::to_string_pretty(&idx)?);
        } else {
            println!(
                "{:<34} {:<7} {:<24} {:<21} STATUS",
                "SERIAL", "KIND", "NAME", "NOT AFTER"
            );
            for i in &idx.issued {
                let status = match &i.revoked {
                    Some(t) => format!("revoked {t}"),
                    None => "valid".into(),
                };
                println!(
                    "{:<34} {:<7} {:<24} {:<21} {status}",
                    i.serial,
                    format!("{:?}", i.kind).to_lowercase(),
                    i.name,
                    i.not_after
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let svc = service(g, cfg)?;
    let keys = ServiceKeys(&*svc);
    match cmd {
        CaCommand::Init { trust_domain } => {
            match check(svc.call(Request::CreateRing {
                ring: pki::CA_RING.into(),
                max_age_days: 3650,
            })?) {
                Ok(_) | Err(phivault_keystore::KeystoreError::RingExists(_)) => {}
                Err(phivault_keystore::KeystoreError::Remote(code, _)) if code == "ring_exists" => {
                }
                Err(e) => return Err(e.into()),
            }
            let ca = Ca::init(&g.data_dir, trust_domain, &keys)?;
            let path = pki::ca_dir(&g.data_dir).join("ca.pem");
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({ "ca": path, "trust_domain": trust_domain })
                );
            } else {
                println!(
                    "Created the CA for trust domain {trust_domain}: {} (its key is sealed under the keystore).\n\
                     Next: `phivault ca issue server --name HOSTNAME` and `phivault ca issue client --name APP --scopes …`.",
                    path.display()
                );
            }
            let _ = ca;
        }
        CaCommand::Issue {
            kind,
            name,
            san,
            scopes,
            days,
            cert,
            key,
            insecure_long_validity,
        } => {
            let kind = match kind {
                CertKindArg::Server => CertKind::Server,
                CertKindArg::Client => CertKind::Client,
            };
            if kind == CertKind::Server && !scopes.is_empty() {
                bail!("--scopes is for client certificates");
            }
            let mut ca = Ca::open(&g.data_dir, &keys)?;
            let issued = ca.issue(&IssueRequest {
                kind,
                name: name.clone(),
                sans: san.clone(),
                scopes: scopes.clone(),
                days: days.unwrap_or(match kind {
                    CertKind::Server => pki::DEFAULT_SERVER_DAYS,
                    CertKind::Client => pki::DEFAULT_CLIENT_DAYS,
                }),
                insecure_long_validity: *insecure_long_validity,
            })?;
            let cert = cert.clone().unwrap_or_else(|| match kind {
                CertKind::Server => phivault_server::config::default_tls_paths(&g.data_dir).0,
                CertKind::Client => g.data_dir.join("clients").join(format!("{name}.pem")),
            });
            let key = key.clone().unwrap_or_else(|| cert.with_extension("key"));
            write_pair(&cert, &key, &issued)?;
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({ "cert": cert, "key": key, "entry": issued.entry })
                );
            } else {
                println!(
                    "Issued {} certificate for {} (serial {}, until {}):\n  {}\n  {} (private key, 0600)",
                    format!("{:?}", kind).to_lowercase(),
                    issued.entry.subject,
                    issued.entry.serial,
                    issued.entry.not_after,
                    cert.display(),
                    key.display()
                );
            }
        }
        CaCommand::Revoke { selector, reason } => {
            if !matches!(
                reason.as_str(),
                "unspecified" | "key-compromise" | "superseded" | "cessation-of-operation"
            ) {
                bail!(
                    "--reason must be unspecified, key-compromise, superseded or cessation-of-operation"
                );
            }
            let mut ca = Ca::open(&g.data_dir, &keys)?;
            let revoked = ca.revoke(selector, reason)?;
            if g.json {
                println!("{}", serde_json::json!({ "revoked": revoked }));
            } else {
                for r in &revoked {
                    println!("Revoked {} ({}, serial {}).", r.subject, r.name, r.serial);
                }
                println!("The CRL was rewritten; a running server reloads it within seconds.");
            }
        }
        CaCommand::Crl { print } => {
            let mut ca = Ca::open(&g.data_dir, &keys)?;
            let path = ca.write_crl()?;
            if *print {
                print!("{}", std::fs::read_to_string(&path)?);
            } else if g.json {
                println!(
                    "{}",
                    serde_json::json!({ "crl": path, "valid_days": pki::CRL_DAYS })
                );
            } else {
                println!(
                    "Wrote {} (valid {} days; sign a new one before then).",
                    path.display(),
                    pki::CRL_DAYS
                );
            }
        }
        CaCommand::List => unreachable!(),
    }
    Ok(ExitCode::SUCCESS)
}
