//! `phivault backup`: keygen, create, verify, restore. The file format is
//! `phivault_core::backup`; what is inside is `phivault_server::backup`.

use crate::cli::{BackupCommand, Global};
use crate::config::FileConfig;
use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::backup::{BackupMeta, BackupReader, verify_integrity};
use phivault_core::crypto::{EcdhP384PrivateKey, EcdhP384PublicKey};
use phivault_core::secret::SecretBytes;
use phivault_keystore::Location;
use phivault_server::backup::Counts;
use phivault_server::config::AuditSettings;
use phivault_store::RecordStore;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(g: &Global, c: &BackupCommand, file: &FileConfig) -> Result<ExitCode> {
    // Keys, backups and restored stores are private to their owner, as
    // everything `serve` creates is.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    match c {
        BackupCommand::Keygen { out, public } => keygen(g, out, public.as_deref()),
        BackupCommand::Create { recipient, out } => create(g, file, recipient, out),
        BackupCommand::Verify {
            file: f,
            key,
            signer,
        } => verify(g, f, key.as_deref(), signer.as_deref()),
        BackupCommand::Restore {
            file: f,
            key,
            signer,
        } => restore(g, file, f, key, signer.as_deref()),
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn unpem(path: &Path, label: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(b, _)| b)
        .with_context(|| {
            format!(
                "{} is not a {label} PEM file; make one with `phivault backup keygen`",
                path.display()
            )
        })?;
    let b64: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    Ok(zeroize::Zeroizing::new(
        B64.decode(b64.as_bytes())
            .with_context(|| format!("{} holds bad base64", path.display()))?,
    ))
}

fn public_key(path: &Path) -> Result<EcdhP384PublicKey> {
    let der = unpem(path, "PUBLIC KEY")?;
    EcdhP384PublicKey::from_spki_der(&der)
        .with_context(|| format!("{} is not a P-384 public key", path.display()))
}

fn private_key(path: &Path) -> Result<EcdhP384PrivateKey> {
    let der = unpem(path, "PRIVATE KEY")?;
    EcdhP384PrivateKey::from_pkcs8(&SecretBytes::new(der.to_vec()))
        .with_context(|| format!("{} is not a P-384 private key", path.display()))
}

fn keygen(g: &Global, out: &Path, public: Option<&Path>) -> Result<ExitCode> {
    let public = public
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.with_extension("pub"));
    for p in [out, public.as_path()] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let key = EcdhP384PrivateKey::generate()?;
    let pkcs8 = key.to_pkcs8()?;
    let private_pem = zeroize::Zeroizing::new(pem("PRIVATE KEY", pkcs8.expose_secret()));
    // write_atomic creates 0600 files.
    phivault_keystore::atomic::write_atomic(out, private_pem.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    let spki = key.public_key().to_spki_der();
    phivault_keystore::atomic::write_atomic(&public, pem("PUBLIC KEY", &spki).as_bytes())
        .with_context(|| format!("writing {}", public.display()))?;
    let id = hex::encode(phivault_core::backup::key_id(key.public_key()));
    if g.json {
        println!(
            "{}",
            serde_json::json!({"private_key": out, "public_key": public, "key_id": id})
        );
    } else {
        println!(
            "Backup key {id}:\n  {} (private, 0600: keep it OFFLINE, apart from the keystore's custodians)\n  {} (public: give it to `phivault backup create --recipient`)",
            out.display(),
            public.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The store, keystore location and audit folder this configuration names.
async fn target(
    g: &Global,
    file: &FileConfig,
) -> Result<(Arc<dyn RecordStore>, Location, PathBuf, String)> {
    let storage = crate::custody::storage(file)?;
    let audit = AuditSettings::resolve(&g.data_dir, &file.audit).map_err(anyhow::Error::msg)?;
    Ok(match &storage.postgres {
        Some(pg) => {
            let store = phivault_store::postgres::PgStore::connect(pg).await?;
            let doc = phivault_store::postgres::PgKeystoreDoc::open(pg)?;
            (
                Arc::new(store),
                Location::shared(&g.data_dir, doc),
                audit.dir,
                storage.target.clone(),
            )
        }
        None => {
            std::fs::create_dir_all(&g.data_dir)
                .with_context(|| format!("creating {}", g.data_dir.display()))?;
            (
                Arc::new(phivault_store::sqlite::SqliteStore::open(&g.data_dir)?),
                Location::dir(&g.data_dir),
                audit.dir,
                format!("{} (SQLite)", g.data_dir.display()),
            )
        }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn spinner(g: &Global) -> Option<indicatif::ProgressBar> {
    let bar = crate::ui::progress(g, None, false)?;
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

fn show(bar: &Option<indicatif::ProgressBar>, c: &Counts) {
    if let Some(b) = bar {
        b.set_message(format!(
            "{} records, {} subject keys, {} audit files ({} bytes)",
            c.records, c.subject_keys, c.audit_files, c.audit_bytes
        ));
    }
}

fn create(g: &Global, file: &FileConfig, recipient: &Path, out: &Path) -> Result<ExitCode> {
    let recipient = public_key(recipient)?;
    if out.exists() {
        bail!("{} exists; pick a new name for each backup", out.display());
    }
    let rt = runtime()?;
    let (store, loc, audit_dir, source) = rt.block_on(target(g, file))?;
    let svc = crate::custody::service_at(g, &loc)?;
    let signer =
        phivault_server::audit::signing_key(&phivault_keystore::service::ServiceKeys(svc.as_ref()))
            .map_err(anyhow::Error::msg)?;
    let meta = BackupMeta {
        created: phivault_scan::at_rest::now_rfc3339(),
        source: source.clone(),
        contents: ["keystore", "schemas", "records", "subject-keys", "audit"]
            .map(String::from)
            .to_vec(),
    };
    // Written to a temporary file beside OUT and renamed when complete: a
    // crash never leaves a partial backup under the final name.
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Named `.OUT.XXXXXX.partial`, so a run killed midway leaves a file
    // that says what it is (it holds ciphertext only; delete it).
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .context("starting worker threads")?;
    let opts = phivault_core::stream::Options {
        pool: Some(&pool),
        ..Default::default()
    };
    let bar = spinner(g);
    let t0 = std::time::Instant::now();
    let counts = {
        let buf = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        let mut w =
            phivault_core::backup::BackupWriter::new(buf, &recipient, &signer, &meta, opts)?;
        let counts = rt.block_on(phivault_server::backup::write(
            store.as_ref(),
            &loc,
            &audit_dir,
            &mut w,
            &|c| show(&bar, c),
        ))?;
        let buf = w.finish()?;
        buf.into_inner()
            .map_err(|e| e.into_error())
            .context("writing the backup")?
            .sync_all()
            .context("syncing the backup")?;
        counts
    };
    tmp.persist_noclobber(out)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the backup to {}", out.display()))?;
    phivault_keystore::atomic::sync_dir(dir)
        .with_context(|| format!("syncing {}", dir.display()))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    let secs = t0.elapsed().as_secs_f64();
    let signer_hex = hex::encode(signer.public_key());
    crate::audit_cmd::cli_event(
        g,
        phivault_audit::Kind::Key,
        "backup.create",
        None,
        serde_json::json!({"file": out, "bytes": bytes, "records": counts.records,
            "recipient": hex::encode(phivault_core::backup::key_id(&recipient))}),
        &Ok::<(), anyhow::Error>(()),
    );
    if g.json {
        println!(
            "{}",
            serde_json::json!({"file": out, "bytes": bytes, "seconds": secs, "counts": counts,
                "source": source, "signer": signer_hex,
                "recipient_key_id": hex::encode(phivault_core::backup::key_id(&recipient))})
        );
    } else {
        println!(
            "Backed up {source} to {} ({bytes} bytes in {secs:.1} s, {:.0} MB/s): {} records, {} subject keys, {} schema versions, the keystore, {} audit files.\nSigned by {signer_hex}; check it with `phivault backup verify {} --signer {signer_hex}`.",
            out.display(),
            bytes as f64 / 1e6 / secs.max(1e-6),
            counts.records,
            counts.subject_keys,
            counts.schemas,
            counts.audit_files,
            out.display(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn signer_bytes(s: Option<&str>) -> Result<Option<Vec<u8>>> {
    s.map(|h| hex::decode(h.trim()).context("--signer must be the signer's public key in hex"))
        .transpose()
}

fn open_file(f: &Path) -> Result<std::io::BufReader<std::fs::File>> {
    Ok(std::io::BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
    ))
}

/// The progress bar of a restore or a check: bytes of the file, and the
/// archive's counts so far.
const BAR: &str =
    "{spinner} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {msg}";

/// The backup file, read through a progress bar by bytes when one shows
/// (on a terminal, for a file worth one): how far a restore or a check is,
/// with the archive's counts so far as its message.
fn open_with_bar(
    g: &Global,
    f: &Path,
) -> Result<(
    Box<dyn std::io::Read + Send>,
    Option<indicatif::ProgressBar>,
)> {
    let file = open_file(f)?;
    let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    Ok(match crate::ui::progress(g, Some(len), false) {
        Some(bar) => {
            bar.set_style(
                indicatif::ProgressStyle::with_template(BAR)
                    .expect("template")
                    .progress_chars("=> "),
            );
            (Box::new(bar.wrap_read(file)), Some(bar))
        }
        None => (Box::new(file), None),
    })
}

fn verify(g: &Global, f: &Path, key: Option<&Path>, signer: Option<&str>) -> Result<ExitCode> {
    let signer = signer_bytes(signer)?;
    let t0 = std::time::Instant::now();
    let mut counts = None;
    let info = match key {
        None => verify_integrity(open_file(f)?, signer.as_deref()),
        Some(k) => {
            let key = private_key(k)?;
            let (input, bar) = open_with_bar(g, f)?;
            // Decrypt everything, and check what is inside is a whole archive.
            let r = BackupReader::open(input, &key, signer.as_deref(), Default::default())
                .and_then(|r| {
                    let mut br = std::io::BufReader::with_capacity(1 << 20, r);
                    counts = Some(phivault_server::backup::check(&mut br).map_err(|e| {
                        phivault_core::backup::BackupError::Io(std::io::Error::other(e.to_string()))
                    })?);
                    br.into_inner().into_info()
                });
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            r
        }
    }
    .with_context(|| format!("{} did not verify", f.display()))?;
    let h = &info.header;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"file": f, "ok": true, "decrypted": counts.is_some(), "counts": counts, "bytes": info.total_len,
                "plaintext_bytes": info.plaintext_len, "meta": h.meta,
                "recipient_key_id": hex::encode(h.recipient_key_id),
                "signer": hex::encode(&h.signer_public_key), "seconds": t0.elapsed().as_secs_f64()})
        );
    } else {
        println!(
            "{}: OK — signature valid{}; {} bytes, created {} by {}; encrypted to key {}; signed by {}{}",
            f.display(),
            match &counts {
                Some(c) => format!(
                    ", every segment decrypts and the archive is whole ({} records, {} subject keys, {} schema versions, {} audit files)",
                    c.records, c.subject_keys, c.schemas, c.audit_files
                ),
                None => " (no key given: not decrypted)".to_string(),
            },
            info.total_len,
            h.meta.created,
            h.meta.source,
            hex::encode(h.recipient_key_id),
            hex::encode(&h.signer_public_key),
            if signer.is_none() {
                ". Pin the signer with --signer: a forger can sign with their own key"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(
    g: &Global,
    file: &FileConfig,
    f: &Path,
    key: &Path,
    signer: Option<&str>,
) -> Result<ExitCode> {
    let signer = signer_bytes(signer)?;
    let key = private_key(key)?;
    let rt = runtime()?;
    let (store, loc, audit_dir, target_name) = rt.block_on(target(g, file))?;
    let (input, bar) = open_with_bar(g, f)?;
    let t0 = std::time::Instant::now();
    // The plaintext is released only segment batch by batch after they
    // authenticate, and the end only after the signature verifies; the
    // archive's end line must come last. A failure midway leaves a partial
    // store: restore into a fresh one again.
    let reader = BackupReader::open(input, &key, signer.as_deref(), Default::default())?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, reader);
    let counts = rt
        .block_on(phivault_server::backup::restore(
            &mut r,
            store.as_ref(),
            &loc,
            &audit_dir,
            &|c| show(&bar, c),
        ))
        .with_context(|| {
            format!(
                "restoring {} into {target_name} failed; what was restored so far is incomplete: \
                 empty the target before trying again",
                f.display()
            )
        })?;
    // The whole file must have been read and its signature checked.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut rest).context("reading the end of the backup")?;
    if !rest.is_empty() {
        bail!("the backup holds data after its end line");
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    if g.json {
        println!(
            "{}",
            serde_json::json!({"file": f, "target": target_name, "counts": counts, "seconds": secs})
        );
    } else {
        println!(
            "Restored {} into {target_name} in {secs:.1} s: {} records, {} subject keys, {} schema versions, {} keystore, {} audit files.",
            f.display(),
            counts.records,
            counts.subject_keys,
            counts.schemas,
            counts.keystore,
            counts.audit_files
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_bar_template_parses() {
        assert!(indicatif::ProgressStyle::with_template(super::BAR).is_ok());
    }
}
