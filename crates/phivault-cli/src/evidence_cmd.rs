//! `phivault evidence`: gathers machine-checked evidence from the live
//! deployment (TLS scan of its listeners, configuration, FIPS module, key
//! inventory, audit verification and activity, the at-rest scan, backups),
//! judges the control matrix (`phivault_scan::evidence`), writes the
//! report as Markdown, HTML, JSON and OSCAL, records the report's SHA-256
//! in the audit trail, and (`--diff`) shows the drift from an earlier one.
//!
//! Every gatherer turns what it can't reach into failing evidence with a
//! next step; only a configuration that does not resolve stops the report.

use crate::cli::{Global, ServeArgs};
use crate::config::FileConfig;
use anyhow::{Context, Result, bail};
use phivault_audit::{Kind, Outcome};
use phivault_scan::at_rest;
use phivault_scan::evidence::{
    self, Activity, ActivityBucket, Cert, Deployment, Evidence, Gathered, KeyRing, KeyVersion,
    Report, Weakening,
};
use phivault_scan::finding::{Finding, Status};
use phivault_server::config::ServerSettings;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const AFTER_HELP: &str = "\
WHAT IS CHECKED, NOW (each an evidence item; controls rest on them):
  tls-listener/ADDR  TLS scan of each listener ([server] listen, --addr, [evidence]
                     listeners) against NIST SP 800-52r2 with the HIPAA profile
  tls-database       the database connection: a STARTTLS scan of PostgreSQL and
                     phivault's verify-full setting (embedded SQLite: not applicable)
  tls-config         the configured TLS profile and any insecure_* option
  certificates       server, CA and client certificates and the CRL: expiry
  authn              mTLS, client CA, revocation, certificate-bound tokens
  session-limits     token lifetime, connection age, timeouts
  fips-module        the crypto module and whether it runs in FIPS mode
  keys-inventory     key rings and their rotation history (needs an unsealed
                     keystore: the agent, PHIVAULT_PASSPHRASE or --insecure-dev)
  keys-rotation      every ring within its rotation policy
  at-rest, backup    `phivault scan at-rest` of the data dir
  audit-verify       the trail verifies against its signed checkpoints
  audit-checkpoint   the newest signed checkpoint
  audit-activity     handshake failures and refusals over --since
  audit-principals   every allowed request names its principal
  audit-retention    retention of at least six years
  break-glass        the emergency access path and its uses
  risk-decisions     every weakened setting and unmet addressable safeguard has a
                     documented reason ([evidence.decisions] in the config)

CONTROLS: HIPAA 164.312(a)(1), (a)(2)(i)-(iv), (b), (c)(1), (c)(2), (d), (e)(1),
(e)(2)(i), (e)(2)(ii); 164.308(a)(1)(ii)(A) and (D); 164.316(b)(2)(i);
SOC 2 CC6.1, CC6.6, CC6.7, CC7.2; ISO/IEC 27001:2022 A.8.5, A.8.15, A.8.24.
A HIPAA addressable control that is not met passes as a warning only when the
config documents the decision, e.g.

  [evidence.decisions]
  \"164.312(a)(2)(iii)\" = \"machine clients only; connections recycle every 10 min\"

OUTPUT: --out DIR writes evidence.md, evidence.html (charts, no external
assets), evidence.json and evidence.oscal.json (OSCAL 1.1 assessment-results).
The SHA-256 of evidence.json is recorded in the audit trail (op evidence.report).
The report holds no PHI and no key material.

EXAMPLES:
  phivault evidence --out evidence/$(date +%F)
  phivault evidence --diff evidence/2026-11-01/evidence.json
  phivault --insecure-dev evidence --addr 127.0.0.1:8200 --json > evidence.json

EXIT CODES:
  0   every control passes (warnings allowed)
  10  at least one control fails
  1   the report could not be made (e.g. the configuration does not resolve)";

/// `phivault evidence`: the compliance evidence report of this deployment.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct EvidenceArgs {
    /// Write evidence.md, evidence.html, evidence.json and
    /// evidence.oscal.json into this folder (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Listener to scan instead of [server] listen (repeatable).
    #[arg(long = "addr", value_name = "HOST:PORT")]
    pub addrs: Vec<String>,
    /// CA bundle the server's certificate chains to [default: DATA/ca/ca.pem].
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// The audit log's verifier key (a key string or a file), pinned
    /// [default: [evidence] audit_key, else DATA/audit/log.pub].
    #[arg(long, value_name = "KEY")]
    pub audit_key: Option<String>,
    /// Activity window: RFC 3339, a date, or a span back from now (30d, 24h).
    #[arg(long, default_value = "30d", value_name = "WHEN")]
    pub since: String,
    /// More files or folders holding backups (added to [evidence] backups).
    #[arg(long = "backup", value_name = "PATH")]
    pub backups: Vec<PathBuf>,
    /// Compare with an earlier evidence.json and show what drifted.
    #[arg(long, value_name = "OLD.json")]
    pub diff: Option<PathBuf>,
    /// Seconds to wait for a listener's answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The serve settings as `serve` would resolve them from this
/// environment (PHIVAULT_LISTEN and the TLS variables) and the file.
fn deployment_settings(g: &Global, file: &FileConfig) -> Result<ServerSettings> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let a = ServeArgs {
        listen: env("PHIVAULT_LISTEN"),
        tls_profile: env("PHIVAULT_TLS_PROFILE"),
        tls_cert: env("PHIVAULT_TLS_CERT").map(PathBuf::from),
        tls_key: env("PHIVAULT_TLS_KEY").map(PathBuf::from),
        client_ca: env("PHIVAULT_TLS_CLIENT_CA").map(PathBuf::from),
        crl: env("PHIVAULT_TLS_CRL")
            .map(|v| v.split(',').map(PathBuf::from).collect())
            .unwrap_or_default(),
        ..Default::default()
    };
    crate::serve_cmd::settings(g, &a, file)
        .context("the configuration does not resolve; `phivault config check` shows why")
}

/// `host:port` or `[v6]:port` into a scan target; unspecified addresses
/// (0.0.0.0, ::) are scanned on loopback.
fn target(addr: &str) -> Result<phivault_scan::tls::Target> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("listener '{addr}' is not HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("listener '{addr}': bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" => "::1",
        h => h,
    };
    Ok(phivault_scan::tls::Target {
        host: host.to_owned(),
        port,
        sni: None,
        starttls: None,
    })
}

fn tally(findings: &[Finding]) -> String {
    crate::at_rest_cmd::tally(findings)
}

/// Collects evidence items, keeping the time each was collected.
struct Collector {
    items: Vec<Evidence>,
    weakenings: Vec<Weakening>,
    certs: Vec<Cert>,
    bar: Option<indicatif::ProgressBar>,
}

impl Collector {
    fn step(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    fn now() -> String {
        at_rest::now_rfc3339()
    }

    fn push(
        &mut self,
        id: &str,
        title: &str,
        summary: String,
        findings: Vec<Finding>,
    ) -> &mut Evidence {
        self.items.push(Evidence::from_findings(
            id,
            title,
            &Self::now(),
            summary,
            findings,
        ));
        self.items.last_mut().expect("pushed")
    }

    fn weak(&mut self, setting: &str, effect: &str, own_reason: Option<String>) {
        self.weakenings.push(Weakening {
            setting: setting.to_owned(),
            effect: effect.to_owned(),
            own_reason,
        });
    }
}

fn cert_status(days: i64, warn_days: i64) -> Status {
    if days < 0 {
        Status::Fail
    } else if days < warn_days {
        Status::Warn
    } else {
        Status::Pass
    }
}

fn tls_listeners(c: &mut Collector, targets: &[String], ca: &Path, timeout: f64) {
    for addr in targets {
        c.step(&format!("scanning TLS on {addr}"));
        let id = format!("tls-listener/{addr}");
        let title = format!("TLS on {addr} meets NIST SP 800-52r2 (HIPAA profile)");
        let t = match target(addr) {
            Ok(t) => t,
            Err(e) => {
                c.push(
                    &id,
                    &title,
                    format!("{e:#}"),
                    vec![
                        Finding::new(
                            "TLS-REACHABLE",
                            "The endpoint answers TLS",
                            Status::Fail,
                            format!("{e:#}"),
                        )
                        .fix("give listeners as HOST:PORT"),
                    ],
                );
                continue;
            }
        };
        let opts = phivault_scan::tls::ScanOptions {
            profile: phivault_scan::tls::Profile::Hipaa,
            ca_bundle: ca.exists().then(|| ca.to_path_buf()),
            timeout: Duration::from_secs_f64(timeout.clamp(0.1, 120.0)),
            ..Default::default()
        };
        scan_endpoint(c, &id, &title, &t, &opts, &format!("served on {addr}"));
    }
}

/// Scans one endpoint and records it as evidence `id`.
fn scan_endpoint(
    c: &mut Collector,
    id: &str,
    title: &str,
    t: &phivault_scan::tls::Target,
    opts: &phivault_scan::tls::ScanOptions,
    role: &str,
) {
    let addr = format!("{}:{}", t.host, t.port);
    {
        let r = phivault_scan::tls::scan(t, opts);
        let summary = match &r.error {
            Some(e) => format!(
                "could not scan {addr}: {e}. Is the server running there? Start it (`phivault serve`) or name the listener with --addr"
            ),
            None => format!(
                "{} requirement(s) graded against the hipaa profile: {} ({} ms)",
                r.findings.len(),
                tally(&r.findings),
                r.duration_ms
            ),
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(leaf) = r.chain.first() {
            c.certs.push(Cert {
                role: format!("server ({role})"),
                subject: leaf.subject.clone(),
                not_after: at_rest::rfc3339(leaf.not_after_unix),
                not_after_unix: leaf.not_after_unix,
                days_to_expiry: (leaf.not_after_unix - now).div_euclid(86_400),
                sha256: leaf.sha256.clone(),
                revoked: None,
            });
        }
        let data = json!({
            "target": r.target, "profile": r.profile, "scanned_at": r.scanned_at,
            "duration_ms": r.duration_ms,
            "chain": r.chain.iter().map(|x| json!({"subject": x.subject, "issuer": x.issuer,
                "not_after": at_rest::rfc3339(x.not_after_unix), "key": x.key, "sha256": x.sha256})).collect::<Vec<_>>(),
        });
        let mut findings = r.findings;
        if findings.is_empty() {
            findings.push(Finding::new(
                "TLS-REACHABLE",
                "The endpoint answers TLS",
                if r.error.is_some() {
                    Status::Fail
                } else {
                    Status::Pass
                },
                r.error.clone().unwrap_or_else(|| "answered".into()),
            ));
        }
        c.push(id, title, summary, findings).data = data;
    }
}

fn tls_config(c: &mut Collector, s: &ServerSettings) {
    let t = &s.tls;
    let mut f = vec![Finding::new(
        "tls-config/profile",
        "The TLS profile is nist or modern",
        Status::Pass,
        format!(
            "profile {}: TLS 1.3{}, AES-GCM suites only (AEAD), ECDHE with P-256/P-384, extended master secret; no renegotiation, compression or 0-RTT",
            t.profile.name(),
            if t.profile.name() == "modern" {
                " only"
            } else {
                " and 1.2"
            }
        ),
    )];
    let opt = |on: bool, id: &str, title: &str, what: &str| {
        Finding::new(
            id,
            title,
            if on { Status::Warn } else { Status::Pass },
            if on {
                format!("ON: {what}")
            } else {
                "off".into()
            },
        )
        .fix("turn it off, or document the decision in [evidence.decisions]")
    };
    f.push(opt(
        t.insecure_allow_x25519,
        "tls-config/x25519",
        "X25519 (not NIST-approved) is not offered",
        "X25519 key exchange is offered",
    ));
    f.push(opt(
        t.insecure_allow_long_validity,
        "tls-config/long-validity",
        "Server certificates are limited to 398 days",
        "server certificates longer than 398 days are accepted",
    ));
    if t.insecure_allow_x25519 {
        c.weak(
            "tls.insecure_allow_x25519",
            "X25519 (not approved for FIPS key agreement) is offered",
            None,
        );
    }
    if t.insecure_allow_long_validity {
        c.weak(
            "tls.insecure_allow_long_validity",
            "server certificates longer than 398 days are accepted",
            None,
        );
    }
    let summary = format!("configured profile {}; {}", t.profile.name(), tally(&f));
    c.push(
        "tls-config",
        "The configured TLS policy is NIST SP 800-52r2 without insecure options",
        summary,
        f,
    );
}

/// The database connection: not applicable on SQLite; on PostgreSQL a scan
/// of the server (STARTTLS) and the client's verification setting.
fn tls_database(c: &mut Collector, s: &ServerSettings, timeout: f64) {
    let Some(pg) = &s.storage.postgres else {
        c.push(
            "tls-database",
            "The connection to the database is encrypted",
            "no network database connection: embedded SQLite (records.db and subject-keys.db in the data dir), so there is no connection to scan".into(),
            vec![Finding::new(
                "tls-database/embedded",
                "The database connection is TLS",
                Status::Info,
                "not applicable: no network database connection (embedded SQLite)",
            )],
        );
        return;
    };
    c.step("scanning the database's TLS");
    let title = "The connection to the database is encrypted (NIST SP 800-52r2)";
    let Some((host, port)) = phivault_store::postgres::host_port(&pg.url) else {
        c.push(
            "tls-database",
            title,
            format!("storage.url {} names no TCP host", s.storage.target),
            vec![
                Finding::new(
                    "tls-database/target",
                    "The database is reached over TCP with TLS",
                    Status::Warn,
                    "the URL names a Unix socket (no network, no TLS)",
                )
                .fix(
                    "a Unix socket is local; a remote database needs host and port in storage.url",
                ),
            ],
        );
        return;
    };
    let ca =
        std::env::temp_dir().join(format!("phivault-evidence-dbca-{}.pem", std::process::id()));
    let ca_bundle = pg
        .ca_pem
        .as_ref()
        .and_then(|pem| std::fs::write(&ca, pem).ok().map(|_| ca.clone()));
    let opts = phivault_scan::tls::ScanOptions {
        profile: phivault_scan::tls::Profile::Nist80052r2,
        ca_bundle,
        timeout: Duration::from_secs_f64(timeout.clamp(0.1, 120.0)),
        ..Default::default()
    };
    let t = phivault_scan::tls::Target {
        host,
        port,
        sni: None,
        starttls: Some(phivault_scan::tls::StartTls::Postgres),
    };
    scan_endpoint(c, "tls-database", title, &t, &opts, "the database");
    let _ = std::fs::remove_file(&ca);
    let verify = match &pg.insecure_tls_reason {
        None => Finding::new(
            "tls-database/verify-full",
            "phivault verifies the database's certificate and name, and refuses non-AES-GCM suites",
            Status::Pass,
            format!("sslmode verify-full on {}", s.storage.target),
        ),
        Some(r) => {
            c.weak(
                "storage.insecure_db_tls_reason",
                "the database URL may use an sslmode weaker than verify-full",
                Some(r.clone()),
            );
            Finding::new(
                "tls-database/verify-full",
                "phivault verifies the database's certificate and name",
                Status::Warn,
                format!("storage.url may use a weaker sslmode: {r}"),
            )
            .fix("remove sslmode from storage.url and give storage.ca_file")
        }
    };
    if let Some(e) = c.items.last_mut().filter(|e| e.id == "tls-database") {
        e.findings.push(verify);
        e.status = phivault_scan::finding::worst(&e.findings);
    }
}

fn certificates(c: &mut Collector, s: &ServerSettings) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut f = Vec::new();
    match phivault_server::tls::load(&s.tls) {
        Ok(m) => {
            let days = (m.info.not_after - now).div_euclid(86_400);
            f.push(
                Finding::new(
                    "certificates/server",
                    "The server certificate is valid for 30 days or more",
                    cert_status(days, 30),
                    format!(
                        "{} ({}) expires {} ({days} days)",
                        s.tls.cert.display(),
                        m.info.key,
                        at_rest::rfc3339(m.info.not_after)
                    ),
                )
                .fix("issue a new one: `phivault ca issue server --name HOST` (the server reloads it)"),
            );
            if let Ok(pem) = std::fs::read(&s.tls.cert) {
                for x in evidence::certs_from_pem(&pem, "server (file)", now)
                    .into_iter()
                    .take(1)
                {
                    if !c.certs.iter().any(|y| y.sha256 == x.sha256) {
                        c.certs.push(x);
                    }
                }
            }
            match m.crl_next_update {
                Some(nu) => {
                    let left_h = (nu - now) / 3600;
                    let st = if nu <= now {
                        Status::Fail
                    } else if left_h < 24 {
                        Status::Warn
                    } else {
                        Status::Pass
                    };
                    f.push(
                        Finding::new(
                            "certificates/crl",
                            "The CRL is current (next update in more than a day)",
                            st,
                            format!("next update {} ({left_h} hours)", at_rest::rfc3339(nu)),
                        )
                        .fix("sign a fresh CRL: `phivault ca crl` (daily, from cron)"),
                    );
                    c.certs.push(Cert {
                        role: "CRL".into(),
                        subject: s
                            .tls
                            .crl
                            .first()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        not_after: at_rest::rfc3339(nu),
                        not_after_unix: nu,
                        days_to_expiry: (nu - now).div_euclid(86_400),
                        sha256: String::new(),
                        revoked: None,
                    });
                }
                None => f.push(
                    Finding::new(
                        "certificates/crl",
                        "The CRL is current (next update in more than a day)",
                        Status::Warn,
                        "no CRL configured: revoked client certificates can't be refused",
                    )
                    .fix("configure tls.crl (the built-in CA writes DATA/ca/crl.pem)"),
                ),
            }
        }
        Err(e) => f.push(
            Finding::new(
                "certificates/server",
                "The server certificate is valid for 30 days or more",
                Status::Fail,
                format!("the TLS files don't load: {e}"),
            )
            .fix("`phivault config check` names the problem"),
        ),
    }
    if let Ok(pem) = std::fs::read(&s.tls.client_ca) {
        let cas = evidence::certs_from_pem(&pem, "client CA", now);
        if let Some(ca) = cas.iter().min_by_key(|x| x.not_after_unix) {
            f.push(
                Finding::new(
                    "certificates/ca",
                    "The client CA certificate is valid for 90 days or more",
                    cert_status(ca.days_to_expiry, 90),
                    format!("{} expires {} ({} days)", ca.subject, ca.not_after, ca.days_to_expiry),
                )
                .fix("plan the CA rollover: issue a new CA and re-issue certificates before it expires"),
            );
        }
        c.certs.extend(cas);
    }
    if let Ok(idx) = phivault_server::pki::Ca::read_index(&s.data_dir) {
        let mut issued: Vec<Cert> = idx
            .issued
            .iter()
            .filter_map(|i| {
                let t = time::OffsetDateTime::parse(
                    &i.not_after,
                    &time::format_description::well_known::Rfc3339,
                )
                .ok()?
                .unix_timestamp();
                Some(Cert {
                    role: format!("{} {}", format!("{:?}", i.kind).to_lowercase(), i.name),
                    subject: i.subject.clone(),
                    not_after: i.not_after.clone(),
                    not_after_unix: t,
                    days_to_expiry: (t - now).div_euclid(86_400),
                    sha256: i.sha256.clone(),
                    revoked: i.revoked.clone(),
                })
            })
            .filter(|x| {
                !c.certs
                    .iter()
                    .any(|y| !y.sha256.is_empty() && y.sha256 == x.sha256)
            })
            .collect();
        // The nearest expiries matter; a CA that issued thousands keeps the report readable.
        issued.sort_by_key(|x| (x.revoked.is_some(), x.not_after_unix));
        let n = issued.len();
        issued.truncate(50);
        let live = idx.issued.iter().filter(|i| i.revoked.is_none()).count();
        f.push(Finding::new(
            "certificates/issued",
            "Certificates issued by the built-in CA are inventoried",
            Status::Info,
            format!("{n} issued ({live} not revoked); the 50 nearest expiries are listed"),
        ));
        c.certs.extend(issued);
    }
    let summary = format!(
        "{}; {} certificate(s) and CRL(s) listed",
        tally(&f),
        c.certs.len()
    );
    c.push(
        "certificates",
        "Certificates and the CRL are current",
        summary,
        f,
    );
}

fn authn(c: &mut Collector, s: &ServerSettings) {
    let mut f = Vec::new();
    let builtin = s.tls.client_ca == s.data_dir.join("ca").join("ca.pem");
    f.push(Finding::new(
        "authn/mtls",
        "Client certificates are verified at the handshake on every route but health",
        Status::Pass,
        format!(
            "client CA {} ({}); {}",
            s.tls.client_ca.display(),
            if builtin {
                "the built-in CA"
            } else {
                "an external CA"
            },
            if s.tls.require_client_cert {
                "required at the handshake for every connection"
            } else {
                "without one only /v1/sys/health answers (401 otherwise)"
            }
        ),
    ));
    f.push(match s.validate() {
        Ok(notes) => Finding::new(
            "authn/config",
            "The TLS and authentication configuration loads and validates",
            Status::Pass,
            notes.join("; "),
        ),
        Err(e) => Finding::new(
            "authn/config",
            "The TLS and authentication configuration loads and validates",
            Status::Fail,
            e,
        )
        .fix("`phivault config check` names the problem; fix it before the next restart"),
    });
    let revocation = if s.tls.insecure_allow_unknown_revocation {
        c.weak(
            "tls.insecure_allow_unknown_revocation",
            "client certificates with unknown revocation status are accepted",
            None,
        );
        Finding::new(
            "authn/revocation",
            "Revocation is checked at every handshake",
            Status::Warn,
            "ON: tls.insecure_allow_unknown_revocation accepts certificates whose revocation status is unknown",
        )
        .fix("turn it off, or document the decision in [evidence.decisions]")
    } else if s.tls.crl.is_empty() {
        Finding::new(
            "authn/revocation",
            "Revocation is checked at every handshake",
            Status::Warn,
            "no CRL configured",
        )
        .fix("configure tls.crl")
    } else {
        Finding::new(
            "authn/revocation",
            "Revocation is checked at every handshake",
            Status::Pass,
            format!(
                "{} CRL file(s), re-read on change; resumed sessions re-verified",
                s.tls.crl.len()
            ),
        )
    };
    f.push(revocation);
    let unbound: Vec<&str> = s
        .auth
        .external
        .iter()
        .filter(|e| e.insecure_allow_unbound_tokens)
        .map(|e| e.issuer.as_str())
        .collect();
    for i in &unbound {
        c.weak(
            &format!("auth.external.{i}.insecure_allow_unbound_tokens"),
            "bearer tokens from this issuer need no certificate binding",
            None,
        );
    }
    f.push(
        Finding::new(
            "authn/tokens",
            "Tokens are short-lived and bound to the client certificate",
            if unbound.is_empty() { Status::Pass } else { Status::Warn },
            format!(
                "{} tokens, at most {} minutes, cnf.x5t#S256 bound (RFC 8705); {} external issuer(s){}",
                s.auth.token_algorithm,
                phivault_server::auth::MAX_TOKEN_TTL.as_secs() / 60,
                s.auth.external.len(),
                if unbound.is_empty() {
                    String::new()
                } else {
                    format!("; unbound tokens accepted from {}", unbound.join(", "))
                }
            ),
        )
        .fix("bind tokens to certificates (remove insecure_allow_unbound_tokens) or document the decision"),
    );
    let summary = tally(&f);
    c.push(
        "authn",
        "Every client is authenticated by certificate (mTLS), with revocation",
        summary,
        f,
    );
    let l = &s.limits;
    let age = l.max_connection_age;
    let mut sf = vec![
        Finding::new(
            "session/tokens",
            "Tokens expire within 15 minutes",
            Status::Pass,
            format!(
                "at most {} minutes (exp − iat, enforced for every issuer)",
                phivault_server::auth::MAX_TOKEN_TTL.as_secs() / 60
            ),
        ),
        Finding::new(
            "session/connection-age",
            "Connections end within an hour",
            if age <= Duration::from_secs(3600) {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("server.max_connection_age = {} s", age.as_secs()),
        )
        .fix("set server.max_connection_age to 1h or less (default 10m)"),
    ];
    sf.push(Finding::new(
        "session/timeouts",
        "Idle and slow clients are cut off",
        Status::Pass,
        format!(
            "header {} s, body {} s, handshake {} s; a connection without a client certificate lives at most 10 s",
            l.header_timeout.as_secs(),
            l.read_timeout.as_secs(),
            l.handshake_timeout.as_secs()
        ),
    ));
    let summary = tally(&sf);
    c.push(
        "session-limits",
        "Sessions end automatically (token lifetime, connection age, timeouts)",
        summary,
        sf,
    );
}

fn fips(c: &mut Collector) {
    let m = phivault_core::crypto::module_info();
    let ok = m.fips_build && m.fips_mode;
    let f = Finding::new(
        "fips/module",
        "Cryptography runs in a FIPS 140-3 validated module in approved mode",
        if ok { Status::Pass } else { Status::Fail },
        format!(
            "{} {}; FIPS 140-3 build: {}; FIPS-approved mode: {}",
            m.name,
            m.version,
            if m.fips_build { "yes" } else { "no" },
            if m.fips_mode { "yes" } else { "no" }
        ),
    )
    .fix("build phivault with `--features fips` (AWS-LC FIPS 3.0, certificate #4816): HHS's breach safe harbor asks for FIPS 140-validated encryption");
    let summary = f.evidence.clone();
    c.push(
        "fips-module",
        "The cryptographic module is FIPS 140-3 validated and in approved mode",
        summary,
        vec![f],
    )
    .data = json!({ "name": m.name, "version": m.version, "fips_build": m.fips_build, "fips_mode": m.fips_mode });
}

fn keys(
    c: &mut Collector,
    g: &Global,
    file: &FileConfig,
    lifecycle: &BTreeMap<String, u64>,
) -> Option<Vec<KeyRing>> {
    use phivault_keystore::service::{Request, Response, check};
    let seal = crate::custody::location(g, file)
        .ok()
        .map(|loc| phivault_keystore::seal::describe(&loc))
        .unwrap_or_else(|| phivault_keystore::seal::describe(&g.data_dir));
    if let Ok((_, phivault_keystore::model::Seal::Dev { .. })) = &seal {
        c.weak(
            "keystore.dev",
            "a dev keystore: its unseal key is a plaintext file beside the data",
            None,
        );
    }
    let listed = crate::custody::service(g, file).and_then(|svc| {
        match check(svc.call(Request::List { namespace: None })?)? {
            Response::Rings { rings } => Ok(rings),
            _ => bail!("unexpected response from the key service"),
        }
    });
    let rings = match listed {
        Ok(r) => r,
        Err(e) => {
            let why = format!("{e:#}");
            for (id, title) in [
                (
                    "keys-inventory",
                    "The key inventory is complete and verified",
                ),
                (
                    "keys-rotation",
                    "Every key ring is within its rotation policy",
                ),
            ] {
                c.push(
                    id,
                    title,
                    format!("not verified: the keystore could not be opened ({why})"),
                    vec![Finding::new(
                        &format!("{id}/keystore"),
                        "The keystore is unsealed for the report",
                        Status::Fail,
                        format!("keystore sealed or unavailable: {why}"),
                    )
                    .fix("unseal first (`phivault unseal`), or set PHIVAULT_PASSPHRASE, or pass --insecure-dev for a dev data dir; then run the report again")],
                );
            }
            return None;
        }
    };
    let inventory: Vec<KeyRing> = rings
        .iter()
        .map(|r| KeyRing {
            name: r.name.clone(),
            kind: r.kind.name().to_owned(),
            primary_version: r.primary_version,
            primary_age_days: r.primary_age_days,
            max_age_days: r.max_age_days,
            overdue: r.rotation_overdue,
            disabled: r.disabled,
            min_decryption_version: r.min_decryption_version,
            versions: r
                .versions
                .iter()
                .map(|v| KeyVersion {
                    version: v.version,
                    created: v.created.clone(),
                    state: match v.state {
                        phivault_keystore::model::VersionState::Active => "active".into(),
                        phivault_keystore::model::VersionState::Destroyed => "destroyed".into(),
                    },
                    destroyed: v.destroyed.clone(),
                })
                .collect(),
        })
        .collect();
    let live: usize = inventory
        .iter()
        .map(|r| r.versions.iter().filter(|v| v.state == "active").count())
        .sum();
    let destroyed: usize = inventory
        .iter()
        .map(|r| r.versions.iter().filter(|v| v.state != "active").count())
        .sum();
    let seal_desc = match &seal {
        Ok((id, s)) => format!("keystore {id} ({}) opened and its MAC verified", s.name()),
        Err(e) => format!("keystore: {e}"),
    };
    let events: Vec<String> = lifecycle.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    let f = vec![Finding::new(
        "keys-inventory/listed",
        "Every key ring is listed with its versions",
        Status::Pass,
        format!(
            "{seal_desc}; {} ring(s), {live} live and {destroyed} destroyed version(s); key events in the window: {}",
            inventory.len(),
            if events.is_empty() {
                "none".into()
            } else {
                events.join(", ")
            }
        ),
    )];
    let summary = f[0].evidence.clone();
    c.push(
        "keys-inventory",
        "The key inventory is complete and verified",
        summary,
        f,
    )
    .data = json!({ "lifecycle_events": lifecycle });
    let overdue: Vec<String> = inventory
        .iter()
        .filter(|r| r.overdue && !r.disabled)
        .map(|r| {
            format!(
                "{} ({} d > {} d)",
                r.name, r.primary_age_days, r.max_age_days
            )
        })
        .collect();
    let rf = if overdue.is_empty() {
        Finding::new(
            "keys-rotation/policy",
            "Every ring's primary version is within its rotation policy",
            Status::Pass,
            format!(
                "{} ring(s); oldest primary {} day(s)",
                inventory.len(),
                inventory
                    .iter()
                    .map(|r| r.primary_age_days)
                    .max()
                    .unwrap_or(0)
            ),
        )
    } else {
        Finding::new(
            "keys-rotation/policy",
            "Every ring's primary version is within its rotation policy",
            Status::Fail,
            format!("rotation overdue: {}", overdue.join(", ")),
        )
        .fix("`phivault keys rotate RING` for each (transit keys: the rotate endpoint; collections: `phivault records rotate C`)")
    };
    let summary = rf.evidence.clone();
    c.push(
        "keys-rotation",
        "Every key ring is within its rotation policy",
        summary,
        vec![rf],
    );
    Some(inventory)
}

fn at_rest_evidence(c: &mut Collector, g: &Global, backups: Vec<PathBuf>, max_age: u32) {
    let mut opts = at_rest::Options::new(&g.data_dir);
    opts.backups = backups;
    opts.backup_max_age_days = max_age;
    let bar = c.bar.clone();
    let r = at_rest::scan(&opts, &|s| {
        if let Some(b) = &bar {
            b.set_message(format!("at-rest scan: {s}"));
        }
    });
    let (backup, rest): (Vec<Finding>, Vec<Finding>) = r
        .findings
        .iter()
        .cloned()
        .partition(|f| f.id.starts_with("at-rest/backup"));
    let summary = format!("{}; {}", tally(&rest), r.block_device.note);
    c.push(
        "at-rest",
        "Data at rest: wrapped keys, ciphertext only, tight permissions",
        summary,
        rest,
    )
    .data = json!({ "records": r.records, "block_device": r.block_device, "rings": r.rings, "unknown_files": r.unknown_files.len() });
    let summary = backup
        .iter()
        .map(|f| f.evidence.clone())
        .collect::<Vec<_>>()
        .join("; ");
    c.push("backup", "Backups exist and are encrypted", summary, backup)
        .data = json!({ "files": r.backups });
}

/// Verifier keys: --audit-key, else [evidence] audit_key, else log.pub.
fn verifier_keys(
    dir: &Path,
    given: Option<&str>,
) -> Result<(Vec<phivault_core::audit::note::NoteVerifier>, bool)> {
    let (text, pinned) = match given {
        Some(k) if Path::new(k).exists() => (
            std::fs::read_to_string(k).with_context(|| format!("reading key file {k}"))?,
            true,
        ),
        Some(k) => (k.to_owned(), true),
        None => {
            let p = dir.join("log.pub");
            (
                std::fs::read_to_string(&p).with_context(|| {
                    format!(
                        "reading {} (the server writes it when it first unseals)",
                        p.display()
                    )
                })?,
                false,
            )
        }
    };
    Ok((phivault_audit::verify::parse_keys(&text)?, pinned))
}

/// What one pass over the trail's window found.
#[derive(Default)]
struct TrailScan {
    entries: u64,
    in_window: u64,
    handshake_failures: u64,
    /// Handshake failures during this run's own scan of the listeners
    /// (its probes offer what a strict server refuses): not counted.
    self_scan: u64,
    denials: u64,
    break_glass: u64,
    break_glass_principals: std::collections::BTreeSet<String>,
    unattributed: u64,
    allowed_requests: u64,
    principals: std::collections::BTreeSet<String>,
    oldest: Option<String>,
    lifecycle: BTreeMap<String, u64>,
    points: Vec<(i64, usize)>,
}

/// Reads the trail from `since_ms`; handshake failures inside `exclude`
/// (the evidence run's own TLS scan) are counted apart.
fn scan_trail(dir: &Path, since_ms: i64, exclude: (i64, i64)) -> Result<TrailScan> {
    // Earlier evidence runs' own scans (recorded in their evidence.report
    // entries) are left out as well as this one's.
    let mut windows = vec![exclude];
    phivault_audit::query::for_each(dir, 0, |e| {
        if e.event.op == "evidence.report"
            && let Some(w) = e.event.detail.as_ref().and_then(|d| d.get("self_scan_ms"))
            && let (Some(a), Some(b)) = (w[0].as_i64(), w[1].as_i64())
        {
            windows.push((a, b));
        }
        true
    })?;
    // And those still waiting in the inbox for the server to take them in.
    for f in std::fs::read_dir(dir.join("inbox"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(v) = std::fs::read(f.path())
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|_| ()))
            && v["op"] == "evidence.report"
            && let (Some(a), Some(b)) = (
                v["detail"]["self_scan_ms"][0].as_i64(),
                v["detail"]["self_scan_ms"][1].as_i64(),
            )
        {
            windows.push((a, b));
        }
    }
    let own = |ms: i64| windows.iter().any(|(a, b)| (*a..=*b).contains(&ms));
    let mut t = TrailScan::default();
    phivault_audit::query::for_each(dir, 0, |e| {
        t.entries += 1;
        let ev = &e.event;
        if t.oldest.is_none() {
            t.oldest = Some(ev.time.clone());
        }
        let ms = ev.unix_ms();
        if ms < since_ms {
            return true;
        }
        t.in_window += 1;
        if let Some(p) = &ev.principal {
            t.principals.insert(p.clone());
        }
        if ev.kind == Kind::Handshake && ev.outcome != Outcome::Ok && own(ms) {
            t.self_scan += 1;
        } else if ev.kind == Kind::Handshake && ev.outcome != Outcome::Ok {
            t.handshake_failures += 1;
            t.points.push((ms, 0));
        } else if ev.outcome == Outcome::Denied || matches!(ev.status, Some(401 | 403)) {
            t.denials += 1;
            t.points.push((ms, 1));
        }
        if ev.break_glass.is_some() {
            t.break_glass += 1;
            if let Some(p) = &ev.principal {
                t.break_glass_principals.insert(p.clone());
            }
        }
        if ev.kind == Kind::Request && ev.outcome == Outcome::Ok {
            t.allowed_requests += 1;
            if ev.principal.is_none() && !ev.op.starts_with("sys.health") {
                t.unattributed += 1;
            }
        }
        if ev.kind == Kind::Key {
            *t.lifecycle.entry(ev.op.clone()).or_default() += 1;
        }
        true
    })?;
    Ok(t)
}

/// With tlog witnesses configured: the newest checkpoint one of them
/// cosigned (kept in `audit/witnessed/`), its cosignature checked against
/// `audit.witness_cosigners`.
fn tlog_cosigned(a: &phivault_server::config::AuditSettings) -> Option<Finding> {
    use phivault_core::audit::note::NoteVerifier;
    let tlog = a
        .witness_urls
        .iter()
        .filter(|w| w.path.ends_with("/add-checkpoint"))
        .count();
    if tlog == 0 {
        return None;
    }
    let id = "audit-verify/cosigned";
    let title = "A tlog witness cosigned the trail";
    let cosigners: Vec<NoteVerifier> = a
        .witness_urls
        .iter()
        .flat_map(|w| w.cosigners.iter())
        .filter_map(|k| NoteVerifier::parse(k).ok())
        .collect();
    if cosigners.is_empty() {
        return Some(
            Finding::new(
                id,
                title,
                Status::Warn,
                "tlog witnesses are configured, but their cosignatures are not checked",
            )
            .fix("set audit.witness_cosigners to each witness's witness/witness.pub"),
        );
    }
    // (size, cosignature time) of every checkpoint a configured witness cosigned.
    let mut best: Option<(u64, u64)> = None;
    for e in std::fs::read_dir(a.dir.join("witnessed"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(note) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for k in &cosigners {
            if let Ok((text, Some(t))) = k.verify_timed(&note)
                && let Ok(cp) = phivault_core::audit::note::Checkpoint::parse_body(text)
                && best.is_none_or(|(s, _)| cp.size > s)
            {
                best = Some((cp.size, t));
            }
        }
    }
    Some(match best {
        Some((size, t)) => Finding::new(
            id,
            title,
            Status::Pass,
            format!(
                "{tlog} tlog witness(es); the newest checkpoint cosigned under a configured witness key covers {size} entries, cosigned at Unix time {t} ({})",
                time::OffsetDateTime::from_unix_timestamp(t as i64)
                    .ok()
                    .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
                    .unwrap_or_default()
            ),
        ),
        None => Finding::new(
            id,
            title,
            Status::Warn,
            format!("{tlog} tlog witness(es) configured, but audit/witnessed holds no checkpoint cosigned under audit.witness_cosigners"),
        )
        .fix("check the server's log for `audit witness` errors (unreachable, not following this log, a fork)"),
    })
}

fn audit(
    c: &mut Collector,
    s: &ServerSettings,
    key: Option<&str>,
    trail: &Result<TrailScan>,
    since: &str,
) {
    let a = &s.audit;
    c.step("verifying the audit trail");
    // The checkpoints tlog witnesses cosigned (kept by the pusher) are
    // checked like a witness folder's: the log must extend each.
    let mut witnesses = a.witness_dirs.clone();
    let cosigned = a.dir.join("witnessed");
    if cosigned.is_dir() {
        witnesses.push(cosigned);
    }
    let verified = verifier_keys(&a.dir, key).and_then(|(keys, pinned)| {
        let r = phivault_audit::verify::verify(&phivault_audit::verify::VerifyOptions {
            dir: a.dir.clone(),
            keys,
            witnesses,
        })?;
        Ok((r, pinned))
    });
    match verified {
        Ok((r, pinned)) => {
            let mut f = vec![if r.ok {
                Finding::new(
                    "audit-verify/tree",
                    "Every entry is covered by the signed Merkle tree",
                    Status::Pass,
                    format!(
                        "{} entries ({} pruned by retention), {} checkpoint(s){} verified in {:.2} s; {} newer entries not yet signed",
                        r.entries,
                        r.pruned,
                        r.checkpoints,
                        if r.witness_checkpoints > 0 {
                            format!(" + {} witness", r.witness_checkpoints)
                        } else {
                            String::new()
                        },
                        r.seconds,
                        r.unsigned_tail
                    ),
                )
            } else {
                Finding::new(
                    "audit-verify/tree",
                    "Every entry is covered by the signed Merkle tree",
                    Status::Fail,
                    format!(
                        "FAILED{}: {}",
                        r.first_bad_index
                            .map(|i| format!(" at index {i}"))
                            .unwrap_or_default(),
                        r.findings
                            .iter()
                            .map(|x| x.message.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                )
                .fix("treat it as an incident: keep a copy of the audit folder, compare with a witness (`phivault audit verify --witness`), find who could write it")
            }];
            f.push(if pinned {
                Finding::new(
                    "audit-verify/key",
                    "Verification uses a pinned key",
                    Status::Pass,
                    "the verifier key came from --audit-key or [evidence] audit_key",
                )
            } else {
                Finding::new(
                    "audit-verify/key",
                    "Verification uses a pinned key",
                    Status::Warn,
                    "verified with log.pub from the audit folder itself, which whoever can rewrite the log can replace too",
                )
                .fix("pin the key: `phivault audit pubkey > audit.pub` once, keep it apart, and set [evidence] audit_key (or --audit-key)")
            });
            f.push(if a.witness_dirs.is_empty() && a.witness_urls.is_empty() {
                Finding::new(
                    "audit-verify/witness",
                    "A witness keeps the newest checkpoint elsewhere",
                    Status::Warn,
                    "no witness configured: deleting the whole trail is not detectable from the folder",
                )
                .fix("configure audit.witness_dirs or audit.witness_urls")
            } else {
                Finding::new(
                    "audit-verify/witness",
                    "A witness keeps the newest checkpoint elsewhere",
                    Status::Pass,
                    format!(
                        "{} witness folder(s), {} HTTPS witness(es), of which {} tlog witness(es) that take a checkpoint only with a consistency proof and cosign it",
                        a.witness_dirs.len(),
                        a.witness_urls.len(),
                        a.witness_urls
                            .iter()
                            .filter(|w| w.path.ends_with("/add-checkpoint"))
                            .count()
                    ),
                )
            });
            if let Some(w) = tlog_cosigned(a) {
                f.push(w);
            }
            let summary = f[0].evidence.clone();
            c.push(
                "audit-verify",
                "The audit trail verifies against its signed checkpoints",
                summary,
                f,
            );
            let cp = match &r.latest {
                Some(cp) => Finding::new(
                    "audit-checkpoint/latest",
                    "The newest checkpoint is signed and verifies",
                    Status::Pass,
                    format!(
                        "origin {}, tree size {}, root {}, written {}",
                        cp.origin,
                        cp.size,
                        cp.root,
                        cp.written.as_deref().unwrap_or("?")
                    ),
                ),
                None => Finding::new(
                    "audit-checkpoint/latest",
                    "The newest checkpoint is signed and verifies",
                    Status::Fail,
                    "no signed checkpoint",
                )
                .fix("checkpoints are signed by an unsealed server: unseal it"),
            };
            let summary = cp.evidence.clone();
            c.push(
                "audit-checkpoint",
                "The newest signed checkpoint of the audit trail",
                summary,
                vec![cp],
            )
            .data = json!({ "checkpoint": r.latest });
            let retention_days = a.retention.as_secs() / 86_400;
            let ok = a.retention >= phivault_audit::log::SIX_YEARS && !a.insecure_disable;
            let rf = Finding::new(
                "audit-retention/period",
                "Audit records are kept at least six years",
                if ok { Status::Pass } else { Status::Fail },
                format!(
                    "audit.retention = {retention_days} days (≥ 2196); {} entries pruned so far, their leaf hashes kept; oldest retained entry {}{}",
                    r.pruned,
                    trail
                        .as_ref()
                        .ok()
                        .and_then(|t| t.oldest.clone())
                        .unwrap_or_else(|| "-".into()),
                    if a.insecure_disable {
                        "; audit.insecure_disable is ON: nothing is recorded"
                    } else {
                        ""
                    }
                ),
            )
            .fix("set audit.retention to at least 2196d and turn audit.insecure_disable off");
            let summary = rf.evidence.clone();
            c.push(
                "audit-retention",
                "Audit records are retained six years (164.316(b)(2)(i))",
                summary,
                vec![rf],
            );
        }
        Err(e) => {
            let why = format!("{e:#}");
            for (id, title) in [
                (
                    "audit-verify",
                    "The audit trail verifies against its signed checkpoints",
                ),
                (
                    "audit-checkpoint",
                    "The newest signed checkpoint of the audit trail",
                ),
                (
                    "audit-retention",
                    "Audit records are retained six years (164.316(b)(2)(i))",
                ),
            ] {
                c.push(
                    id,
                    title,
                    format!("could not verify the trail in {}: {why}", a.dir.display()),
                    vec![Finding::new(
                        &format!("{id}/readable"),
                        "The audit trail can be verified",
                        Status::Fail,
                        why.clone(),
                    )
                    .fix("start the server once unsealed (it creates the trail and its key), or give the key with --audit-key")],
                );
            }
        }
    }
    if a.insecure_fail_open {
        c.weak(
            "audit.insecure_fail_open",
            "ePHI is served while the audit trail can't be written",
            a.insecure_fail_open_reason.clone(),
        );
    }
    if a.insecure_disable {
        c.weak(
            "audit.insecure_disable",
            "nothing is recorded in the audit trail",
            None,
        );
    }
    match trail {
        Ok(t) => {
            let act = Finding::new(
                "audit-activity/review",
                "Refusals and handshake failures are recorded and reviewed",
                if t.entries == 0 { Status::Warn } else { Status::Pass },
                format!(
                    "since {since}: {} entries, {} principal(s), {} failed TLS handshake(s), {} refused request(s) or failed authentication(s), {} break-glass access(es){}",
                    t.in_window,
                    t.principals.len(),
                    t.handshake_failures,
                    t.denials,
                    t.break_glass,
                    if t.self_scan > 0 {
                        format!(
                            "; {} failed handshake(s) from the TLS scans of evidence runs (this one and earlier ones) not counted",
                            t.self_scan
                        )
                    } else {
                        String::new()
                    }
                ),
            )
            .fix("no entries at all: is the server writing its trail to this folder (audit.dir)?");
            let summary = act.evidence.clone();
            c.push(
                "audit-activity",
                "Activity review: handshake failures and access denials over time",
                summary,
                vec![act],
            );
            let p = if t.unattributed == 0 {
                Finding::new(
                    "audit-principals/unique",
                    "Every allowed request names its principal",
                    Status::Pass,
                    format!(
                        "{} allowed request(s) since {since}, each with a principal; {} distinct principal(s)",
                        t.allowed_requests,
                        t.principals.len()
                    ),
                )
            } else {
                Finding::new(
                    "audit-principals/unique",
                    "Every allowed request names its principal",
                    Status::Fail,
                    format!(
                        "{} of {} allowed request(s) have no principal",
                        t.unattributed, t.allowed_requests
                    ),
                )
                .fix("report it: every route but health should require a certificate")
            };
            let summary = p.evidence.clone();
            c.push(
                "audit-principals",
                "Unique user identification in the audit trail",
                summary,
                vec![p],
            );
            let w = s.audit.break_glass_window;
            let bg = Finding::new(
                "break-glass/path",
                "Emergency access is available, time-limited and audited",
                Status::Pass,
                format!(
                    "scope break-glass with X-Break-Glass-Reason; window {} min per principal (at most 4 h); each use a high-severity entry; {} use(s) by {} principal(s) since {since}",
                    w.as_secs() / 60,
                    t.break_glass,
                    t.break_glass_principals.len()
                ),
            );
            let summary = bg.evidence.clone();
            c.push(
                "break-glass",
                "Emergency access procedure",
                summary,
                vec![bg],
            )
            .data = json!({ "window_secs": w.as_secs(), "uses": t.break_glass });
        }
        Err(e) => {
            let why = format!("{e:#}");
            for (id, title) in [
                (
                    "audit-activity",
                    "Activity review: handshake failures and access denials over time",
                ),
                (
                    "audit-principals",
                    "Unique user identification in the audit trail",
                ),
                ("break-glass", "Emergency access procedure"),
            ] {
                c.push(
                    id,
                    title,
                    format!("the audit trail could not be read: {why}"),
                    vec![
                        Finding::new(
                            &format!("{id}/readable"),
                            "The audit trail can be read",
                            Status::Fail,
                            why.clone(),
                        )
                        .fix("run as the data dir's owner; check audit.dir"),
                    ],
                );
            }
        }
    }
}

/// Records the report's hash in the audit trail through its inbox (a
/// running server appends it within seconds, otherwise the next start does).
fn record(
    dir: &Path,
    r: &Report,
    sha: &str,
    out: Option<&Path>,
    own_scan: (i64, i64),
) -> Result<()> {
    let failing: Vec<String> = r
        .failing()
        .map(|c| format!("{} {}", c.framework, c.id))
        .collect();
    let mut ev = phivault_audit::Event::new(Kind::Audit, "evidence.report").detail(json!({
        "sha256": sha,
        "status": r.status.as_str(),
        "controls": r.controls.len(),
        "failing": failing,
        "generated": r.generated,
        "out": out.map(|p| p.display().to_string()),
        // The window of this run's own TLS probes, so later reports leave
        // their handshake failures out of the activity review too.
        "self_scan_ms": [own_scan.0, own_scan.1],
    }));
    ev.principal = Some(format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    ));
    ev.node = Some(r.deployment.node.clone());
    ev.resource = Some("evidence".into());
    phivault_audit::inbox::submit(dir, &ev)?;
    Ok(())
}

fn load_report(p: &Path) -> Result<Report> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_slice(&b).with_context(|| format!("{} is not JSON", p.display()))?;
    if v["format"] != evidence::FORMAT {
        bail!(
            "{} is not a phivault evidence report (evidence.json from `phivault evidence --out DIR`)",
            p.display()
        );
    }
    if v["version"].as_u64() != Some(u64::from(evidence::VERSION)) {
        bail!(
            "{} is evidence format version {}, this phivault reads {}",
            p.display(),
            v["version"],
            evidence::VERSION
        );
    }
    serde_json::from_value(v).with_context(|| format!("{} does not parse as a report", p.display()))
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<()> {
    phivault_keystore::atomic::write_atomic(p, bytes)
        .with_context(|| format!("writing {}", p.display()))
}

/// Runs `phivault evidence`.
pub fn run(g: &Global, a: &EvidenceArgs, file: &FileConfig) -> Result<ExitCode> {
    let old = a.diff.as_deref().map(load_report).transpose()?;
    let s = deployment_settings(g, file)?;
    let cfg = &file.evidence;
    let now = now_ms();
    let since_ms = phivault_audit::query::parse_when(&a.since, now).with_context(|| {
        format!(
            "--since '{}': use RFC 3339, a date (2026-12-01) or a span (24h, 30d)",
            a.since
        )
    })?;
    let generated = at_rest::now_rfc3339();
    let listeners: Vec<String> = if a.addrs.is_empty() {
        std::iter::once(s.listen.to_string())
            .chain(cfg.listeners.iter().cloned())
            .collect()
    } else {
        a.addrs.clone()
    };
    let ca =
        a.ca.clone()
            .unwrap_or_else(|| g.data_dir.join("ca").join("ca.pem"));
    let mut c = Collector {
        items: Vec::new(),
        weakenings: Vec::new(),
        certs: Vec::new(),
        bar: crate::at_rest_cmd::spinner(g),
    };
    let scan_started = now_ms();
    tls_listeners(&mut c, &listeners, &ca, a.timeout);
    // The server writes its entries a moment after the probes: 2 s margin.
    let own_scan = (scan_started, now_ms() + 2_000);
    c.step("reading the configuration");
    tls_config(&mut c, &s);
    tls_database(&mut c, &s, a.timeout);
    certificates(&mut c, &s);
    authn(&mut c, &s);
    fips(&mut c);
    c.step("reading the audit trail");
    let trail = scan_trail(&s.audit.dir, since_ms, own_scan);
    c.step("listing keys");
    let lifecycle = trail
        .as_ref()
        .map(|t| t.lifecycle.clone())
        .unwrap_or_default();
    let inventory = keys(&mut c, g, file, &lifecycle);
    let mut backups = cfg.backups.clone();
    backups.extend(a.backups.iter().cloned());
    at_rest_evidence(&mut c, g, backups, cfg.backup_max_age_days.unwrap_or(30));
    audit(
        &mut c,
        &s,
        a.audit_key.as_deref().or(cfg.audit_key.as_deref()),
        &trail,
        &at_rest::rfc3339(since_ms / 1000),
    );
    if let Some(b) = c.bar.take() {
        b.finish_and_clear();
    }
    let points = trail.as_ref().map(|t| t.points.clone()).unwrap_or_default();
    // Up to now, not to the start of the run: today's events are charted.
    let until = now_ms();
    let buckets = crate::chart::bucketize(&points, 2, Some((since_ms, until)));
    c.certs.sort_by_key(|x| x.not_after_unix);
    let report = evidence::assess(Gathered {
        generated,
        system: cfg
            .system
            .clone()
            .unwrap_or_else(|| format!("phivault on {}", s.audit.node)),
        deployment: Deployment {
            data_dir: g.data_dir.display().to_string(),
            node: s.audit.node.clone(),
            listeners,
            phivault_version: env!("CARGO_PKG_VERSION").to_owned(),
            config_file: g.config.as_ref().map(|p| p.display().to_string()),
        },
        evidence: c.items,
        weakenings: c.weakenings,
        decisions: cfg.decisions.clone(),
        keys: inventory,
        certificates: c.certs,
        activity: Activity {
            since: at_rest::rfc3339(since_ms / 1000),
            until: at_rest::rfc3339(until / 1000),
            bucket_ms: buckets.width_ms,
            buckets: buckets
                .rows
                .iter()
                .map(|(t, n)| ActivityBucket {
                    start_ms: *t,
                    handshake_failures: n[0],
                    denials: n[1],
                })
                .collect(),
        },
    });
    let json_bytes = evidence::to_json(&report);
    let sha = evidence::report_hash(&json_bytes);
    let mut written = Vec::new();
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let files: [(&str, Vec<u8>); 4] = [
            ("evidence.json", json_bytes.clone()),
            (
                "evidence.md",
                evidence::markdown::render(&report, Some(&sha)).into_bytes(),
            ),
            (
                "evidence.html",
                crate::evidence_html::render(&report, &sha).into_bytes(),
            ),
            ("evidence.oscal.json", {
                let mut v =
                    serde_json::to_vec_pretty(&evidence::oscal::assessment_results(&report, &sha))?;
                v.push(b'\n');
                v
            }),
        ];
        for (name, bytes) in files {
            let p = dir.join(name);
            write_file(&p, &bytes)?;
            written.push(p);
        }
    }
    let recorded = record(&s.audit.dir, &report, &sha, a.out.as_deref(), own_scan);
    if let Err(e) = &recorded {
        eprintln!("phivault: warning: the report's hash is not in the audit trail: {e:#}");
    }
    let drift = old.as_ref().map(|o| evidence::diff::diff(o, &report));
    if g.json {
        match (&drift, a.out.is_some()) {
            (Some(d), _) => println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "sha256": sha, "status": report.status, "files": written, "drift": d,
                }))?
            ),
            (None, true) => println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "sha256": sha, "status": report.status, "files": written,
                    "failing": report.failing().map(|c| format!("{} {}", c.framework, c.id)).collect::<Vec<_>>(),
                }))?
            ),
            // The report itself: exactly the bytes whose hash was recorded.
            (None, false) => {
                use std::io::Write;
                std::io::stdout().write_all(&json_bytes)?;
            }
        }
    } else {
        if let Some(d) = &drift {
            print!("{}", d.to_text());
            println!();
        }
        println!(
            "Evidence report for {} ({})",
            report.system, report.generated
        );
        for ctl in &report.controls {
            println!(
                "{:<5} {:<20} {:<22} {}",
                ctl.status.as_str().to_uppercase(),
                ctl.framework,
                ctl.id,
                ctl.title
            );
            if matches!(ctl.status, Status::Fail | Status::Warn) {
                println!("      {}", ctl.note);
            }
        }
        let n = |st: Status| report.controls.iter().filter(|c| c.status == st).count();
        println!(
            "{} controls: {} pass, {} warn, {} fail",
            report.controls.len(),
            n(Status::Pass),
            n(Status::Warn),
            n(Status::Fail)
        );
        for p in &written {
            println!("wrote {}", p.display());
        }
        if a.out.is_none() && !g.quiet {
            eprintln!(
                "(no --out DIR: nothing written; the Markdown, HTML, JSON and OSCAL forms go there)"
            );
        }
        println!(
            "report SHA-256 {sha}{}",
            if recorded.is_ok() {
                " (recorded in the audit trail as evidence.report)"
            } else {
                ""
            }
        );
    }
    Ok(if report.status == Status::Fail {
        ExitCode::from(crate::at_rest_cmd::EXIT_FAIL)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_cosigned_checkpoint_is_evidence_only_under_a_configured_witness_key() {
        use phivault_core::audit::note::{Checkpoint, NoteSigner};
        use phivault_core::crypto::{SignatureAlgorithm, SigningKey};
        let d = tempfile::tempdir().unwrap();
        let key = || SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();
        let log = NoteSigner::new("phivault-audit", key()).unwrap();
        let w = NoteSigner::cosigner("w.example/w1", key()).unwrap();
        let stranger = NoteSigner::cosigner("w.example/w1", key()).unwrap();
        let settings = |cosigners: Vec<String>| {
            phivault_server::config::AuditSettings::resolve(
                d.path(),
                &phivault_server::config::AuditFile {
                    node: Some("n".into()),
                    witness_urls: vec!["https://w.example/v1/witness/add-checkpoint".into()],
                    witness_cert: Some("c.pem".into()),
                    witness_key: Some("c.key".into()),
                    witness_cosigners: cosigners,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let a = settings(vec![]);
        assert_eq!(tlog_cosigned(&a).unwrap().status, Status::Warn);
        let a = settings(vec![w.verifier_key()]);
        assert_eq!(tlog_cosigned(&a).unwrap().status, Status::Warn);
        std::fs::create_dir_all(a.dir.join("witnessed")).unwrap();
        let cosigned = |size: u64, by: &NoteSigner| {
            let note = log
                .sign_checkpoint(&Checkpoint {
                    origin: a.origin.clone(),
                    size,
                    root: [size as u8; 32],
                    extensions: vec![],
                })
                .unwrap();
            let text = note[..=note.rfind("\n\n").unwrap()].to_owned();
            format!("{note}{}", by.cosign(&text, 1_764_979_200 + size).unwrap())
        };
        // A larger checkpoint under a key nobody configured does not count.
        std::fs::write(a.dir.join("witnessed/one.checkpoint"), cosigned(40, &w)).unwrap();
        std::fs::write(
            a.dir.join("witnessed/two.checkpoint"),
            cosigned(90, &stranger),
        )
        .unwrap();
        let f = tlog_cosigned(&a).unwrap();
        assert_eq!(f.status, Status::Pass, "{f:?}");
        assert!(f.evidence.contains("covers 40 entries"), "{}", f.evidence);
        assert!(
            f.evidence.contains("2025-12-06T00:00:40Z"),
            "{}",
            f.evidence
        );
    }

    #[test]
    fn listeners_parse_and_unspecified_means_loopback() {
        let t = target("0.0.0.0:8200").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8200));
        assert_eq!(target("[::]:443").unwrap().host, "::1");
        assert_eq!(target("[::1]:8200").unwrap().host, "::1");
        assert_eq!(target("vault.example:8443").unwrap().host, "vault.example");
        assert!(target("nope").is_err());
    }
}
