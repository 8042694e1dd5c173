//! `phivault scan tls`: probe TLS endpoints and grade them.

use crate::cli::Global;
use anyhow::{Context, Result};
use phivault_scan::finding::{self, Status};
use phivault_scan::tls::{self, Profile, ScanOptions, Target, TlsReport};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code when any requirement fails.
pub const EXIT_FINDINGS: u8 = 10;

/// `phivault scan tls` arguments (the help text is on `ScanCommand::Tls`).
#[derive(clap::Args, Debug)]
pub struct ScanTlsArgs {
    /// Targets: HOST:PORT or [IPv6]:PORT, optionally followed by
    /// `,sni=NAME` (server name to send and to match the certificate
    /// against) and `,starttls=postgres|smtp`.
    pub targets: Vec<String>,
    /// Read more targets from a file, one per line (# starts a comment).
    #[arg(long, value_name = "FILE")]
    pub targets_file: Option<PathBuf>,
    /// Profile to grade against: nist-800-52r2 (SP 800-52 Rev. 2: TLS 1.2
    /// and 1.3, AES suites with ECDHE/DHE, P-256/P-384/P-521, EMS), hipaa
    /// (nist, plus certificates of at most 398 days, mTLS and HSTS),
    /// mozilla-intermediate, modern (TLS 1.3 only).
    #[arg(long, value_enum, default_value = "nist-800-52r2")]
    pub profile: ProfileArg,
    /// PEM bundle of trusted CAs [default: /etc/ssl/certs/ca-certificates.crt].
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) to present when the server asks for one,
    /// so HSTS and resumption can be checked behind mTLS.
    #[arg(long, value_name = "PEM", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, value_name = "PEM", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Seconds to wait for a connection or a server's answer.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub timeout: f64,
    /// Targets scanned at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Don't send `GET /` after the handshake (skips the HSTS check).
    #[arg(long)]
    pub no_http: bool,
    /// Also write the findings as JUnit XML (one test suite per target).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// `--profile` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ProfileArg {
    /// NIST SP 800-52 Rev. 2.
    #[value(name = "nist-800-52r2", alias = "nist")]
    Nist,
    /// NIST plus ePHI expectations.
    Hipaa,
    /// Mozilla intermediate.
    MozillaIntermediate,
    /// TLS 1.3 only.
    Modern,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Nist => Profile::Nist80052r2,
            ProfileArg::Hipaa => Profile::Hipaa,
            ProfileArg::MozillaIntermediate => Profile::MozillaIntermediate,
            ProfileArg::Modern => Profile::Modern,
        }
    }
}

/// Parses the targets from arguments and the targets file.
fn targets(a: &ScanTlsArgs) -> Result<Vec<Target>> {
    let mut raw: Vec<String> = a.targets.clone();
    if let Some(f) = &a.targets_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read targets file {}", f.display()))?;
        raw.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    anyhow::ensure!(
        !raw.is_empty(),
        "no targets: give HOST:PORT arguments or --targets-file (see --help)"
    );
    raw.iter()
        .map(|t| t.parse::<Target>().map_err(anyhow::Error::from))
        .collect()
}

/// Runs `phivault scan tls`.
pub fn tls(g: &Global, a: &ScanTlsArgs) -> Result<ExitCode> {
    let targets = targets(a)?;
    anyhow::ensure!(
        a.timeout.is_finite() && a.timeout > 0.0 && a.timeout <= 600.0,
        "--timeout must be between 0 and 600 seconds"
    );
    let opts = ScanOptions {
        profile: a.profile.into(),
        ca_bundle: a.ca_file.clone(),
        timeout: Duration::from_secs_f64(a.timeout),
        http: a.no_http.then_some(false),
        client_cert: a.cert.clone().zip(a.key.clone()),
    };
    if let Some(ca) = &opts.ca_bundle {
        anyhow::ensure!(ca.exists(), "CA bundle {} does not exist", ca.display());
    }
    let bar = (targets.len() > 1)
        .then(|| crate::ui::progress(g, None, true))
        .flatten();
    if let Some(b) = &bar {
        b.set_length(targets.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} scanning [{bar:30}] {pos}/{len} {elapsed}",
            )
            .expect("template"),
        );
    }
    let reports = tls::scan_all_with(&targets, &opts, a.concurrency, &|| {
        if let Some(b) = &bar {
            b.inc(1)
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(path) = &a.junit {
        let suites: Vec<(String, Vec<finding::Finding>)> = reports
            .iter()
            .map(|r| (r.target.clone(), r.findings.clone()))
            .collect();
        std::fs::write(path, finding::junit(&suites))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print!("{}", render(r));
        }
    }
    let failed = reports
        .iter()
        .any(|r| finding::worst(&r.findings) == Status::Fail);
    Ok(if failed {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// The human-readable report of one target.
pub fn render(r: &TlsReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== {}  (profile {}, {} ms)",
        r.target,
        serde_json::to_value(r.profile)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        r.duration_ms
    );
    if let Some(o) = &r.observed {
        for v in &o.versions {
            if !v.supported {
                let _ = writeln!(s, "  {:<8} no", v.version);
                continue;
            }
            let order = match v.server_order {
                Some(true) => ", server order",
                Some(false) => ", client order",
                None => "",
            };
            let _ = writeln!(
                s,
                "  {:<8} yes ({} suites{order})",
                v.version,
                v.suites.len()
            );
            for su in &v.suites {
                let _ = writeln!(s, "             {} {}", su.code, su.name);
            }
        }
        if !o.groups.is_empty() {
            let _ = writeln!(s, "  groups   {}", o.groups.join(", "));
        }
        for (i, c) in o.chain.iter().enumerate() {
            let _ = writeln!(
                s,
                "  cert[{i}]  {} | {} | {} | expires in {} days",
                c.subject, c.key, c.signature_algorithm, c.days_to_expiry
            );
        }
    }
    let w = r.findings.iter().map(|f| f.id.len()).max().unwrap_or(0);
    for f in &r.findings {
        let _ = writeln!(
            s,
            "  {:<4} {:<w$}  {}",
            f.status.as_str().to_uppercase(),
            f.id,
            f.evidence
        );
        if !f.remediation.is_empty() && matches!(f.status, Status::Fail | Status::Warn) {
            let _ = writeln!(s, "       {:<w$}  fix: {}", "", f.remediation);
        }
    }
    let count = |st| r.findings.iter().filter(|f| f.status == st).count();
    let _ = writeln!(
        s,
        "  => {} pass, {} warn, {} fail\n",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
    s
}
