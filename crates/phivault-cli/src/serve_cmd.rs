//! `phivault serve`, `phivault config check`, and the `--dev` bootstrap.

use crate::cli::{Global, ServeArgs};
use crate::config::FileConfig;
use crate::ui;
use anyhow::{Context, Result, bail};
use phivault_core::keys::KeyRingName;
use phivault_keystore::model::Seal;
use phivault_keystore::{InitMethod, Keystore, seal, store};
use phivault_server::config::ServerSettings;
use phivault_server::pki::{self, Ca, CertKind, IssueRequest};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Scopes of the dev admin certificate.
const DEV_ADMIN_SCOPES: &[&str] = &[
    "keys:admin",
    "keys:read",
    "transit:*:*",
    "transit:random",
    "sys:metrics",
    "sys:seal",
    "sys:unseal",
    "records:*:*",
    "records:shred",
    "audit:read",
    "audit:hash",
    "witness:submit",
];

/// File < environment/flags: the flags (clap already folded in the
/// environment) override the file's sections.
pub fn settings(g: &Global, a: &ServeArgs, file: &FileConfig) -> Result<ServerSettings> {
    let mut s = file.server.clone();
    let mut t = file.tls.clone();
    let au = file.auth.clone();
    if a.listen.is_some() {
        s.listen = a.listen.clone();
    }
    if a.max_body_bytes.is_some() {
        s.max_body_bytes = a.max_body_bytes;
    }
    if a.tls_profile.is_some() {
        t.profile = a.tls_profile.clone();
    }
    if a.tls_cert.is_some() {
        t.cert = a.tls_cert.clone();
    }
    if a.tls_key.is_some() {
        t.key = a.tls_key.clone();
    }
    if a.client_ca.is_some() {
        t.client_ca = a.client_ca.clone();
    }
    if !a.crl.is_empty() {
        t.crl = Some(a.crl.clone());
    }
    let mut settings =
        ServerSettings::resolve(&g.data_dir, &s, &t, &au).map_err(anyhow::Error::msg)?;
    settings
        .apply_records(&file.records)
        .map_err(anyhow::Error::msg)?;
    settings.audit = phivault_server::config::AuditSettings::resolve(&g.data_dir, &file.audit)
        .map_err(anyhow::Error::msg)?;
    settings.storage = phivault_server::config::StorageSettings::resolve(
        &file.storage,
        std::env::var("PHIVAULT_STORAGE_URL").ok(),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(settings)
}

fn init_logging(a: &ServeArgs) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_new(&a.log).with_context(|| format!("bad --log filter '{}'", a.log))?;
    // Colours only for a person at a terminal, never into a log file.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match a.log_format.as_str() {
        "json" => b.json().flatten_event(true).init(),
        "text" => b.init(),
        other => bail!("--log-format must be text or json, not '{other}'"),
    }
    Ok(())
}

fn client_paths(data_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let d = data_dir.join("clients");
    (d.join(format!("{name}.pem")), d.join(format!("{name}.key")))
}

/// Writes a certificate and its key (0600), creating the folder 0700.
pub fn write_pair(cert: &Path, key: &Path, issued: &pki::IssuedPem) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    for p in [cert, key] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    // write_atomic creates files 0600 (O_TMPFILE/named temp with that mode).
    phivault_keystore::atomic::write_atomic(key, issued.key_pem.as_bytes())
        .with_context(|| format!("writing {}", key.display()))?;
    phivault_keystore::atomic::write_atomic(cert, issued.cert_pem.as_bytes())
        .with_context(|| format!("writing {}", cert.display()))?;
    Ok(())
}

/// Ensures the keystore ring that seals the CA key exists.
pub fn ensure_ca_ring(ks: &Keystore) -> Result<()> {
    let r = KeyRingName::parse(pki::CA_RING).expect("valid");
    match ks.create_ring(&r, 3650) {
        Ok(()) | Err(phivault_keystore::KeystoreError::RingExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `serve --dev`: the data dir is made ready for a first try.
fn dev_bootstrap(g: &Global, settings: &ServerSettings) -> Result<Keystore> {
    let dir = &g.data_dir;
    let loc = settings.keystore_location();
    if !store::exists(&loc) {
        store::init(&loc, InitMethod::Dev)?;
        eprintln!("Created an INSECURE dev keystore in {}.", loc.describe());
    }
    let (_, seal) = seal::describe(&loc)?;
    if !matches!(seal, Seal::Dev { .. }) {
        bail!(
            "{} holds a real ({}) keystore; `serve --dev` only runs on a dev data dir. \
             Pick another --data-dir, or run `phivault serve` without --dev",
            dir.display(),
            seal.name()
        );
    }
    let ks = Keystore::open_dev(&loc)?;
    ensure_ca_ring(&ks)?;
    let mut ca = if Ca::exists(dir) {
        Ca::open(dir, &ks)?
    } else {
        Ca::init(dir, "dev.phivault.local", &ks)?
    };
    let server_ok = std::fs::read(&settings.tls.cert)
        .ok()
        .and_then(|pem| {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::CertificateDer::from_pem_slice(&pem).ok()
        })
        .and_then(|der| pki::check_server_cert(&der, false).ok())
        .is_some_and(|i| {
            i.not_after - time::OffsetDateTime::now_utc().unix_timestamp() > 7 * 86_400
        });
    if !server_ok {
        let mut sans = vec!["127.0.0.1".to_string(), "::1".to_string()];
        let ip = settings.listen.ip();
        if !ip.is_unspecified() {
            sans.push(ip.to_string());
        }
        let s = ca.issue(&IssueRequest {
            kind: CertKind::Server,
            name: "localhost".into(),
            sans,
            scopes: vec![],
            days: pki::DEFAULT_SERVER_DAYS,
            insecure_long_validity: false,
        })?;
        write_pair(&settings.tls.cert, &settings.tls.key, &s)?;
    }
    let (cc, ck) = client_paths(dir, "admin");
    if !cc.exists() {
        let c = ca.issue(&IssueRequest {
            kind: CertKind::Client,
            name: "admin".into(),
            sans: vec![],
            scopes: DEV_ADMIN_SCOPES.iter().map(|s| s.to_string()).collect(),
            days: pki::DEFAULT_CLIENT_DAYS,
            insecure_long_validity: false,
        })?;
        write_pair(&cc, &ck, &c)?;
    }
    phivault_server::transit::Transit::new(&ks)
        .create("billing", &Default::default())
        .map_err(anyhow::Error::msg)?;
    Ok(ks)
}

fn print_dev_help(g: &Global, addr: std::net::SocketAddr) {
    let d = g.data_dir.display();
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    };
    let url = format!("https://{host}:{}", addr.port());
    let curl = format!(
        "curl -sS --cacert {d}/ca/ca.pem --cert {d}/clients/admin.pem --key {d}/clients/admin.key"
    );
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "listening": url, "ca": format!("{d}/ca/ca.pem"),
                "client_cert": format!("{d}/clients/admin.pem"),
                "client_key": format!("{d}/clients/admin.key"),
            })
        );
        return;
    }
    eprintln!(
        "\nphivault dev server on {url} (TLS profile nist, mTLS required). Try:\n\n\
         # encrypt (plaintext is base64)\n\
         {curl} {url}/v1/transit/encrypt/billing -d '{{\"plaintext\":\"'$(printf 'MRN 12345' | base64)'\"}}'\n\n\
         # decrypt: paste the ciphertext from above\n\
         {curl} {url}/v1/transit/decrypt/billing -d '{{\"ciphertext\":\"pve:...\"}}'\n\n\
         # a 5-minute token bound to this certificate, for encrypt only\n\
         {curl} {url}/v1/auth/token -d '{{\"scopes\":[\"transit:encrypt:billing\"],\"ttl\":\"5m\"}}'\n\n\
         # field-level encryption: declare a collection, write a patient, search it\n\
         {curl} {url}/v1/collections/patients -d @examples/patients.schema.json\n\
         {curl} {url}/v1/records/patients -d @examples/patient.json\n\
         {curl} -H 'X-Purpose-Of-Use: TREAT' {url}/v1/records/patients/search -d '{{\"index\":\"mrn\",\"value\":\"MRN-0012345\"}}'\n\n\
         # health (no certificate needed), metrics, OpenAPI\n\
         curl -sS --cacert {d}/ca/ca.pem {url}/v1/sys/health\n\
         {curl} {url}/v1/sys/metrics\n\
         {curl} {url}/v1/openapi.json\n\n\
         Vault clients: VAULT_ADDR={url} VAULT_CACERT={d}/ca/ca.pem VAULT_CLIENT_CERT={d}/clients/admin.pem VAULT_CLIENT_KEY={d}/clients/admin.key\n\
         Stop with Ctrl-C.\n"
    );
}

/// Opens the keystore at start when that needs no person: dev, or a
/// passphrase keystore with PHIVAULT_PASSPHRASE(_FILE) set.
fn open_at_start(g: &Global, loc: &phivault_keystore::Location) -> Result<Option<Keystore>> {
    let (_, seal) = seal::describe(loc)?;
    match seal {
        Seal::Dev { .. } => {
            if !g.dev {
                bail!(
                    "{} is a dev keystore; serve it with --dev (or --insecure-dev), never with real PHI",
                    g.data_dir.display()
                );
            }
            Ok(Some(Keystore::open_dev(loc)?))
        }
        Seal::Passphrase { .. } => match ui::env_secret("PHIVAULT_PASSPHRASE")? {
            Some(p) => {
                let p = phivault_core::secret::SecretBytes::new(p.as_bytes().to_vec());
                Ok(Some(seal::open_with_passphrase(loc, &p)?))
            }
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// On PostgreSQL the keystore document lives in the database, shared by
/// every node. A keystore file still in the data dir (the embedded
/// default, or a fresh `phivault init`) is moved there on the first start.
fn shared_keystore(
    g: &Global,
    settings: &ServerSettings,
) -> Result<Option<phivault_keystore::Location>> {
    let Some(pg) = &settings.storage.postgres else {
        return Ok(None);
    };
    let doc = phivault_store::postgres::PgKeystoreDoc::open(pg)
        .map_err(|e| anyhow::anyhow!("storage: {e}"))?;
    let loc = phivault_keystore::Location::shared(&g.data_dir, doc);
    if !store::exists(&loc) && store::exists(&g.data_dir) {
        store::move_to_shared(&g.data_dir, &loc)?;
        eprintln!(
            "Moved the keystore of {} into {}; the local file is deleted.",
            g.data_dir.display(),
            loc.describe()
        );
    }
    Ok(Some(loc))
}

pub fn serve(g: &Global, a: &ServeArgs, file: &FileConfig) -> Result<ExitCode> {
    let mut g = g.clone();
    if a.dev {
        g.dev = true;
    }
    // Everything the server creates (records database, audit trail, CA
    // and TLS files, sockets) is private to its user, whatever the
    // shell's umask: `phivault scan at-rest` checks exactly this.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    init_logging(a)?;
    let mut settings = settings(&g, a, file)?;
    let shared = shared_keystore(&g, &settings)?;
    settings.storage.keystore = shared.clone();
    let ks = if a.dev {
        ui::dev_warning(&g);
        let ks = dev_bootstrap(&g, &settings)?;
        // The bootstrap may have created the CA and its CRL.
        settings = self::settings(&g, a, file)?;
        settings.storage.keystore = shared;
        Some(ks)
    } else {
        let loc = settings.keystore_location();
        if !store::exists(&loc) {
            bail!(
                "no keystore in {}; create one with `phivault init` (on PostgreSQL: init one locally, then start \
                 `phivault serve` with storage.url once: it moves the keystore into the database), or try `phivault serve --dev`",
                loc.describe()
            );
        }
        if g.dev {
            ui::dev_warning(&g);
        }
        open_at_start(&g, &loc)?
    };
    for n in settings.validate().map_err(anyhow::Error::msg)? {
        tracing::info!("{n}");
    }
    if ks.is_none() {
        tracing::warn!(
            "starting SEALED: only /v1/sys/health and /v1/sys/unseal answer until unsealed"
        );
    }
    let dev = a.dev;
    phivault_server::server::run_blocking(settings, ks, |r| {
        if dev {
            print_dev_help(&g, r.addr);
        } else if g.json {
            println!(
                "{}",
                serde_json::json!({ "listening": format!("https://{}", r.addr) })
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn check(g: &Global, a: &ServeArgs, file: &FileConfig) -> Result<ExitCode> {
    let settings = match settings(g, a, file) {
        Ok(s) => s,
        Err(e) => {
            report(g, false, &[e.to_string()], None);
            return Ok(ExitCode::from(2));
        }
    };
    match settings.validate() {
        Ok(notes) => {
            report(g, true, &notes, Some(&settings));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            report(g, false, &[e], Some(&settings));
            Ok(ExitCode::from(2))
        }
    }
}

fn report(g: &Global, ok: bool, notes: &[String], s: Option<&ServerSettings>) {
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "ok": ok, "notes": notes, "settings": s })
        );
        return;
    }
    println!(
        "{}",
        if ok {
            "configuration OK"
        } else {
            "configuration INVALID"
        }
    );
    for n in notes {
        println!("  {n}");
    }
}
