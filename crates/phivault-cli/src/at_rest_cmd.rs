//! `phivault scan at-rest`: the at-rest checks of a data dir
//! (`phivault_scan::at_rest`), printed as text, JSON or JUnit.

use crate::cli::Global;
use anyhow::{Context, Result};
use phivault_scan::at_rest;
use phivault_scan::finding::{Finding, Status};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code when any requirement fails (shared by every scan).
pub const EXIT_FAIL: u8 = 10;

const AFTER_HELP: &str = "\
CHECKS (each a finding with a stable id; --json lists them all):
  at-rest/keystore-wrapped      keystore.json holds only AES-KWP-wrapped keys;
                                destroyed versions hold none
  at-rest/unseal-key            no unseal key beside the data (a dev keystore fails)
  at-rest/private-keys          the CA key is sealed; which plaintext private keys
                                the data dir holds (the TLS key is one by design)
  at-rest/records-ciphertext    records.db: every sealed value is a PVF ciphertext,
                                plain values only under schema fields of class plain,
                                tokens only under token fields, handles and blind
                                indexes are short binary HMACs
  at-rest/subject-keys          subject-keys.db: every key is an envelope under
                                records/<collection>
  at-rest/data-files            every other file is phivault's own (by name, per
                                folder), or ciphertext; others go through the PHI
                                detector
  at-rest/phi-scan              the PHI detector (`phivault scan phi`) finds nothing in
                                the data dir's files (the databases are checked
                                structurally above; key files are not read)
  at-rest/key-rotation          every ring's primary version is within its policy
  at-rest/backup-exists         a recent key backup exists (--backup), apart from the data
  at-rest/backup-encrypted      every backup is ciphertext
  at-rest/permissions-data-dir  the data dir is 0700
  at-rest/permissions-key-files key files are 0600 and owned by the data dir's owner
  at-rest/permissions-files     nothing is writable by group or others (a warning
                                when only readable by them)
  at-rest/block-device          the filesystem is on dm-crypt/LUKS (a warning when
                                not: phivault's own encryption covers the PHI)

The scan only reads, works while the server runs, needs no key, and never
prints a value it reads: problems are counted by collection and field path.

EXIT CODES:
  0   every requirement passes (warnings allowed)
  10  at least one requirement fails
  1   the scan could not run";

/// `phivault scan at-rest`: checks a phivault data dir at rest.
#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct AtRestArgs {
    /// A file or folder holding backups (key escrow files from `phivault
    /// keys backup`, encrypted copies); repeatable. DATA/backups is looked
    /// at too when it exists.
    #[arg(long = "backup", value_name = "PATH")]
    pub backups: Vec<PathBuf>,
    /// A newest backup older than this many days is a warning.
    #[arg(long, default_value_t = 30, value_name = "DAYS")]
    pub backup_max_age: u32,
    /// Skip the PHI detector over the data dir's files (at-rest/phi-scan).
    #[arg(long)]
    pub no_phi: bool,
    /// Also write the findings as JUnit XML here (for CI).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// A spinner on stderr for a step that takes a while, only when a person
/// watches (stderr is a terminal, no --quiet or --json).
pub fn spinner(g: &Global) -> Option<indicatif::ProgressBar> {
    if g.quiet || g.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new_spinner();
    b.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(b)
}

/// Prints findings as aligned text: verdict, id, title, then evidence and
/// the fix indented below.
pub fn print_findings(findings: &[Finding]) {
    for f in findings {
        println!(
            "{:<5} {:<30} {}",
            f.status.as_str().to_uppercase(),
            f.id,
            f.title
        );
        println!("      {}", f.evidence);
        if !f.remediation.is_empty() {
            println!("      fix: {}", f.remediation);
        }
    }
}

/// Counts by verdict: "3 pass, 1 warn, 0 fail".
pub fn tally(findings: &[Finding]) -> String {
    let n = |s: Status| findings.iter().filter(|f| f.status == s).count();
    format!(
        "{} pass, {} warn, {} fail, {} info",
        n(Status::Pass),
        n(Status::Warn),
        n(Status::Fail),
        n(Status::Info)
    )
}

/// Runs the at-rest scan on `g.data_dir`.
pub fn run(g: &Global, a: &AtRestArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        g.data_dir.is_dir(),
        "{} is not a folder; point --data-dir (or PHIVAULT_DATA_DIR) at the phivault data dir",
        phivault_scan::phi::mask_text(&g.data_dir.to_string_lossy())
    );
    let mut opts = at_rest::Options::new(&g.data_dir);
    opts.backups = a.backups.clone();
    opts.backup_max_age_days = a.backup_max_age;
    opts.phi_scan = !a.no_phi;
    let bar = spinner(g);
    let report = at_rest::scan(&opts, &|step| {
        if let Some(b) = &bar {
            b.set_message(step.to_owned());
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(p) = &a.junit {
        let x = phivault_scan::finding::junit(&[(
            format!("at-rest {}", report.data_dir),
            report.findings.clone(),
        )]);
        std::fs::write(p, x).with_context(|| {
            format!(
                "writing {}",
                phivault_scan::phi::mask_text(&p.to_string_lossy())
            )
        })?;
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "At-rest scan of {} ({})",
            report.data_dir, report.scanned_at
        );
        print_findings(&report.findings);
        println!("{} in {} ms", tally(&report.findings), report.duration_ms);
    }
    Ok(if report.status() == Status::Fail {
        ExitCode::from(EXIT_FAIL)
    } else {
        ExitCode::SUCCESS
    })
}
