//! init, unseal, seal, status, and choosing the key service.

use crate::cli::{Global, InitArgs, UnsealArgs};
use crate::config::FileConfig;
use crate::ui;
use anyhow::{Context, Result, bail};
use phivault_core::crypto;
use phivault_core::secret::SecretBytes;
use phivault_keystore::agent::{self, AgentClient};
use phivault_keystore::model::Seal;
use phivault_keystore::service::{self, KeyService, Local, Request, Response};
use phivault_keystore::{InitMethod, Keystore, KeystoreError, seal, store};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The keystore this configuration names: the shared document in
/// PostgreSQL when `[storage] url` (or PHIVAULT_STORAGE_URL) is set and it
/// holds one, else the data dir's file (also before the first `serve` on
/// PostgreSQL has moved the file there).
pub fn location(g: &Global, file: &FileConfig) -> Result<phivault_keystore::Location> {
    let local = phivault_keystore::Location::dir(&g.data_dir);
    let Some(pg) = storage(file)?.postgres else {
        return Ok(local);
    };
    let shared = phivault_keystore::Location::shared(
        &g.data_dir,
        phivault_store::postgres::PgKeystoreDoc::open(&pg)?,
    );
    Ok(if !store::exists(&shared) && store::exists(&local) {
        local
    } else {
        shared
    })
}

/// The `[storage]` settings (PHIVAULT_STORAGE_URL overrides the file).
pub fn storage(file: &FileConfig) -> Result<phivault_server::config::StorageSettings> {
    phivault_server::config::StorageSettings::resolve(
        &file.storage,
        std::env::var("PHIVAULT_STORAGE_URL").ok(),
    )
    .map_err(anyhow::Error::msg)
}

/// The key service for this configuration's keystore ([`location`]): the
/// dev keystore in-process, a passphrase keystore opened in-process from
/// PHIVAULT_PASSPHRASE, or the running agent.
pub fn service(g: &Global, file: &FileConfig) -> Result<Box<dyn KeyService>> {
    service_at(g, &location(g, file)?)
}

/// [`service`] for a keystore at `loc` (a shared one in PostgreSQL opens
/// in-process only: dev, or PHIVAULT_PASSPHRASE).
pub fn service_at(g: &Global, loc: &phivault_keystore::Location) -> Result<Box<dyn KeyService>> {
    let (_, seal) = seal::describe(loc)?;
    match seal {
        Seal::Dev { .. } => {
            if !g.dev {
                bail!(
                    "{} is a dev keystore (its unseal key is a plaintext file); \
                     pass --insecure-dev or set PHIVAULT_INSECURE_DEV=1 to use it, or create a real one with `phivault init`",
                    g.data_dir.display()
                );
            }
            ui::dev_warning(g);
            Ok(Box::new(Local(Keystore::open_dev(loc)?)))
        }
        _ => {
            // For scripts: a passphrase keystore opens in-process when the
            // passphrase is in the environment.
            if let (Seal::Passphrase { .. }, Ok(p)) = (&seal, std::env::var("PHIVAULT_PASSPHRASE"))
            {
                let ks = seal::open_with_passphrase(loc, &SecretBytes::new(p.into_bytes()))?;
                return Ok(Box::new(Local(ks)));
            }
            if loc.is_shared() {
                bail!(
                    "the keystore in {} is sealed; set PHIVAULT_PASSPHRASE (or PHIVAULT_PASSPHRASE_FILE) to open it here",
                    loc.describe()
                );
            }
            match AgentClient::connect(&g.data_dir) {
                Some(a) => Ok(Box::new(a)),
                None => Err(KeystoreError::Sealed.into()),
            }
        }
    }
}

pub fn init(g: &Global, a: &InitArgs) -> Result<ExitCode> {
    let r = init_inner(g, a);
    crate::audit_cmd::cli_event(
        g,
        phivault_audit::Kind::Key,
        "keystore.init",
        None,
        serde_json::json!({ "passphrase": a.passphrase, "dev": g.dev }),
        &r,
    );
    r
}

fn init_inner(g: &Global, a: &InitArgs) -> Result<ExitCode> {
    let method = if g.dev {
        InitMethod::Dev
    } else if a.passphrase {
        let p = ui::read_secret("New passphrase: ", "PHIVAULT_PASSPHRASE")?;
        if std::env::var("PHIVAULT_PASSPHRASE").is_err()
            && std::io::IsTerminal::is_terminal(&std::io::stdin())
        {
            let again = ui::read_secret("Repeat passphrase: ", "PHIVAULT_PASSPHRASE_NONE")?;
            anyhow::ensure!(*again == *p, "the passphrases differ; nothing was created");
        }
        anyhow::ensure!(
            p.chars().count() >= 12,
            "the passphrase must be at least 12 characters"
        );
        InitMethod::Passphrase {
            passphrase: SecretBytes::new(p.as_bytes().to_vec()),
            iterations: a.iterations,
        }
    } else {
        anyhow::ensure!(
            a.threshold <= a.shares,
            "--threshold must not exceed --shares"
        );
        InitMethod::Shamir {
            threshold: a.threshold,
            shares: a.shares,
        }
    };
    let dev = matches!(method, InitMethod::Dev);
    let out = store::init(&g.data_dir, method)?;
    if dev {
        ui::dev_warning(g);
    }
    let shares: Vec<String> = out
        .shares
        .iter()
        .map(|s| String::from_utf8_lossy(s.expose_secret()).into_owned())
        .collect();
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "keystore_id": out.keystore_id, "data_dir": g.data_dir, "unseal_shares": shares, "threshold": a.threshold })
        );
    } else {
        println!(
            "Created keystore {} in {}",
            out.keystore_id,
            g.data_dir.display()
        );
        if !shares.is_empty() {
            println!(
                "\nUnseal shares ({} needed). They are shown ONCE: give each to a different custodian.\n",
                a.threshold
            );
            for (i, s) in shares.iter().enumerate() {
                println!("  share {}: {s}", i + 1);
            }
            println!("\nNext: each custodian runs `phivault unseal` with their share.");
        } else if dev {
            println!("Next: `phivault --insecure-dev keys create test/demo`");
        } else {
            println!("Next: `phivault unseal` with the passphrase.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to the agent, starting it in the background if needed.
fn agent_client(g: &Global) -> Result<AgentClient> {
    if let Some(c) = AgentClient::connect(&g.data_dir) {
        return Ok(c);
    }
    seal::describe(&g.data_dir)?;
    if g.data_dir.join("run").exists() {
        agent::check_run_dir(&g.data_dir)?;
    }
    let exe = std::env::current_exe().context("finding the phivault binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--data-dir")
        .arg(&g.data_dir)
        .arg("--quiet")
        .arg("agent");
    // The agent lives long: it must not keep secrets in its environment.
    for var in [
        "PHIVAULT_PASSPHRASE",
        "PHIVAULT_UNSEAL_SHARE",
        "PHIVAULT_BACKUP_PASSPHRASE",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn().context("starting the key agent")?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Some(c) = AgentClient::connect(&g.data_dir) {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the key agent did not start; run `phivault agent` in the foreground to see why")
}

pub fn unseal(g: &Global, a: &UnsealArgs) -> Result<ExitCode> {
    crate::audit_cmd::seal_event(g, "agent.unseal", unseal_inner(g, a))
}

fn unseal_inner(g: &Global, a: &UnsealArgs) -> Result<ExitCode> {
    let (_, seal) = seal::describe(&g.data_dir)?;
    if let Seal::Dev { .. } = seal {
        bail!("a dev keystore needs no unseal; use --insecure-dev");
    }
    let client = agent_client(g)?;
    let mut last = None;
    match seal {
        Seal::Passphrase { .. } => {
            let p = ui::read_secret("Passphrase: ", "PHIVAULT_PASSPHRASE")?;
            last = Some(service::check(
                client.call(Request::UnsealPassphrase { passphrase: p })?,
            )?);
        }
        _ => {
            if !a.shares.is_empty() && !g.quiet {
                eprintln!(
                    "note: shares given as arguments are visible to other local users in the process list \
                     and in shell history; omit them to be prompted instead"
                );
            }
            let given: Vec<zeroize::Zeroizing<String>> = if a.shares.is_empty() {
                vec![ui::read_secret("Unseal share: ", "PHIVAULT_UNSEAL_SHARE")?]
            } else {
                a.shares
                    .iter()
                    .map(|s| zeroize::Zeroizing::new(s.clone()))
                    .collect()
            };
            for s in &given {
                last = Some(service::check(
                    client.call(Request::Unseal { share: s.clone() })?,
                )?);
            }
            if let (true, Some(Response::Status(st))) = (given.len() > 1, &last)
                && let (true, Some(p)) = (st.sealed, st.progress)
            {
                // Several shares in one call ask for a full unseal.
                let _ = client.call(Request::Seal);
                return Err(phivault_core::shamir::ShamirError::TooFewShares {
                    have: p.have,
                    need: p.need,
                }
                .into());
            }
        }
    }
    let Some(Response::Status(st)) = last else {
        bail!("unexpected agent response")
    };
    if g.json {
        println!("{}", serde_json::to_string(&st)?);
    } else if st.sealed {
        let p = st.progress.expect("shamir progress");
        println!(
            "Sealed: {} of {} shares given; {} more needed.",
            p.have,
            p.need,
            p.need - p.have
        );
    } else {
        println!(
            "Unsealed. Keystore {} is open in the key agent until `phivault seal`.",
            st.keystore_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn seal(g: &Global) -> Result<ExitCode> {
    crate::audit_cmd::seal_event(g, "agent.seal", seal_inner(g))
}

fn seal_inner(g: &Global) -> Result<ExitCode> {
    seal::describe(&g.data_dir)?;
    match AgentClient::connect(&g.data_dir) {
        Some(c) => {
            service::check(c.call(Request::Seal)?)?;
            if !g.quiet {
                eprintln!("Sealed: the key agent forgot the root key and stopped.");
            }
        }
        None => {
            if !g.quiet {
                eprintln!("Already sealed (no key agent is running).");
            }
        }
    }
    if g.json {
        println!("{}", serde_json::json!({ "sealed": true }));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(g: &Global, file: &FileConfig) -> Result<ExitCode> {
    let m = crypto::module_info();
    let mut out = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "crypto_module": { "name": m.name, "version": m.version, "fips_build": m.fips_build, "fips_approved_mode": m.fips_mode },
        "data_dir": g.data_dir,
    });
    let mut code = 3;
    let loc = location(g, file)?;
    let keystore = match seal::describe(&loc) {
        Err(KeystoreError::NotInitialized(_)) => serde_json::json!({ "initialized": false }),
        Err(e) => return Err(e.into()),
        Ok((id, seal)) => {
            let detail = match &seal {
                Seal::Shamir {
                    threshold, shares, ..
                } => format!("{threshold} of {shares} Shamir shares"),
                Seal::Passphrase { iterations, .. } => {
                    format!("passphrase (PBKDF2-HMAC-SHA-256, {iterations} iterations)")
                }
                Seal::Dev { key_file } => format!("DEV key file {key_file}"),
            };
            let (sealed, progress, rings) = match (&seal, AgentClient::connect(&g.data_dir)) {
                (Seal::Dev { .. }, _) => (
                    false,
                    None,
                    Keystore::open_dev(&loc).ok().map(|k| k.body().rings.len()),
                ),
                (_, Some(c)) => match service::check(c.call(Request::Status)?)? {
                    Response::Status(s) => (s.sealed, s.progress, s.rings),
                    _ => (true, None, None),
                },
                (_, None) => (true, None, None),
            };
            if !sealed {
                code = 0;
            }
            serde_json::json!({ "initialized": true, "location": loc.describe(), "keystore_id": id, "seal": seal.name(), "seal_detail": detail,
                "sealed": sealed, "unseal_progress": progress, "key_rings": rings })
        }
    };
    out["keystore"] = keystore;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let yn = |b: bool| if b { "yes" } else { "no" };
        println!("phivault {}", env!("CARGO_PKG_VERSION"));
        println!("crypto module:   {} {}", m.name, m.version);
        println!(
            "FIPS 140-3 build: {}   FIPS-approved mode: {}",
            yn(m.fips_build),
            yn(m.fips_mode)
        );
        println!("data dir:        {}", g.data_dir.display());
        let k = &out["keystore"];
        if k["initialized"] == false {
            println!("keystore:        not initialized (run `phivault init`)");
        } else {
            println!(
                "keystore:        {} sealed with {}",
                k["keystore_id"].as_str().unwrap_or(""),
                k["seal_detail"].as_str().unwrap_or("")
            );
            if k["sealed"] == true {
                match k["unseal_progress"].as_object() {
                    Some(p) => println!(
                        "state:           SEALED ({} of {} shares given)",
                        p["have"], p["need"]
                    ),
                    None => println!("state:           SEALED (run `phivault unseal`)"),
                }
            } else {
                println!("state:           unsealed");
                println!("key rings:       {}", k["key_rings"]);
            }
        }
    }
    Ok(ExitCode::from(code))
}

pub fn agent(g: &Global) -> Result<ExitCode> {
    agent::serve(&g.data_dir)?;
    Ok(ExitCode::SUCCESS)
}
