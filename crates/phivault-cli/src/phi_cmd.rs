//! `phivault scan phi PATH...`: finds unencrypted PHI in folders and files
//! and prints masked values only (a table, `--json`, and `--junit FILE`).
//! Exits 10 when anything is found, so it can gate a CI pipeline.

use crate::cli::Global;
use anyhow::{Context as _, Result};
use phivault_scan::finding::{Finding, Status, junit};
use phivault_scan::phi::{self, FileReport, PhiType, Report};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

const PHI_HELP: &str = "\
WHAT IS DETECTED:
  ssn    US Social Security numbers: 219-45-6789, 219 45 6789, or 9 digits
         after an SSN label or in an ssn column (7-8 digits there: an integer
         that lost its leading zeros). SSA rules apply: area 000, 666 and
         9xx, group 00 and serial 0000 are never issued and never reported;
         advertising samples (123-45-6789, 078-05-1120) score 0.3.
  mrn    medical record numbers after a label (MRN, medical record number,
         chart #, patient id) or in an mrn / medical_record_number column:
         5 to 12 digits with up to 3 letters in front.
  phone  NANP numbers: (212) 555-0147, 212-555-0147, 212.555.0147,
         +1 212 555 0147, 1-212-555-0147; 10 bare digits only after a label
         or in a phone column. Area and exchange must start with 2-9.
  email  e-mail addresses (role mailboxes such as support@ score low).
  dob    real calendar dates up to today (2024-01-31, 1/31/1980,
         Jan 31, 1980, 31 January 1980) after a birth label (DOB, birth,
         born) or in a dob / birth_date column. Dates without that context
         score 0.3; visit, order and creation dates and timestamps lower.
  name   First Last, First M. Last, Last, First, near a clinical term
         (patient, diagnosis, mg, a drug, an ICD-10 code…), in a clinical
         record, or in a name column. Embedded lists of common names raise
         the score; 'Dr.' marks a clinician (not reported by default).

  Inputs: any folder (walked; hidden files and symlinks inside it skipped),
  plain text, CSV/TSV (by header: 'column ssn'), JSON (by path:
  $.patients[3].ssn), JSON Lines, SQLite (table.column and rowid, opened
  read-only). Binary files, and SQLite files that do not open, are read
  like `strings` (runs of 6+ printable characters; confidence 0.1 lower).
  phivault's own ciphertexts (stream files, pve: values) hold no
  plaintext and are skipped. File and folder names are scanned too
  (location 'file name'); every path printed is masked.

CONFIDENCE:
  Each hit scores 0.00-1.00. The shape sets a base (valid dashed SSN 0.60,
  formatted phone 0.50-0.85, e-mail 0.90, bare date 0.30); a label just
  before the value or the column/key name moves it: a matching label
  (SSN:, DOB, phone, MRN) gives 0.90-0.95, another kind of label (order #,
  invoice, visit, version, ZIP) 0.05-0.35. --min-confidence (default 0.5)
  drops the rest; 0.3 shows bare dates and low-scoring names too.

OUTPUT:
  Values are never printed, only masked: ***-**-6789, ***-***-0147,
  j***@example.com, 1980-**-** (****-**-** past age 89), ******56, J. S.
  Paths and column names that contain PHI are masked the same way.

EXAMPLES:
  phivault scan phi exports/
  phivault scan phi --types ssn,dob --min-confidence 0.9 dump.csv
  phivault scan phi --exclude '*.log' --exclude 'archive/**' --junit phi.xml .
  phivault --json scan phi clinic.db | jq '.files[].hits[]'

EXIT CODES:
  0   no PHI found at or above --min-confidence
  10  PHI found
  1   the scan could not run (e.g. a PATH does not exist)
  2   usage error";

/// Find unencrypted PHI (SSNs, MRNs, phone numbers, e-mail addresses,
/// dates of birth, patient names) in folders, text, CSV, JSON and SQLite.
///
/// Prints where each hit is (file, line and column, CSV column, JSON path
/// or SQLite table.column and rowid), its type, a confidence and the
/// masked value. Exits 10 when anything is found.
#[derive(clap::Args, Debug)]
#[command(after_long_help = PHI_HELP)]
pub struct PhiArgs {
    /// Files or folders to scan.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Report hits at or above this confidence (0.0 to 1.0).
    #[arg(long, default_value_t = 0.5, value_parser = parse_confidence, value_name = "0.0-1.0")]
    pub min_confidence: f32,
    /// Only these types, comma-separated: ssn, mrn, phone, email, dob, name.
    #[arg(long, value_delimiter = ',', value_name = "TYPES")]
    pub types: Vec<PhiType>,
    /// Read at most this much of each file (K, M, G suffixes are KiB, MiB,
    /// GiB). Larger text files are scanned up to it, with a note; larger
    /// SQLite files are skipped.
    #[arg(long, default_value = "256M", value_parser = parse_size, value_name = "SIZE")]
    pub max_file_size: u64,
    /// Leave out paths matching GLOB (repeatable). Without `/` it matches
    /// any file or folder name (`*.log`, `node_modules`); with `/` the path
    /// under the scanned folder (`archive/**`).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Also scan hidden files and folders (names starting with `.`).
    #[arg(long)]
    pub hidden: bool,
    /// Also write the result as JUnit XML (one failing test per hit).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Hits listed per file at most; the counts stay exact.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_hits_per_file: usize,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_confidence(s: &str) -> Result<f32, String> {
    let v: f32 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mul) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_lowercase();
            let mul = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return Err(format!("unknown size unit in '{s}' (use K, M or G)")),
            };
            (&t[..i], mul)
        }
        None => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size such as 64M or 1G"))?;
    n.checked_mul(mul)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("'{s}' is out of range"))
}

pub fn run(g: &Global, a: &PhiArgs) -> Result<ExitCode> {
    for p in &a.paths {
        if std::fs::metadata(p).is_err() {
            anyhow::bail!(
                "{}: no such file or folder (or no permission to read it)",
                phi::mask_text(&p.to_string_lossy())
            );
        }
    }
    let opts = phi::Options {
        min_confidence: a.min_confidence,
        max_file_size: a.max_file_size,
        types: if a.types.is_empty() {
            phi::Types::all()
        } else {
            phi::Types::of(&a.types)
        },
        max_hits_per_file: a.max_hits_per_file,
        exclude: a.exclude.clone(),
        hidden: a.hidden,
    };
    let t0 = std::time::Instant::now();
    let (files, skipped) = phi::collect(&a.paths, &opts);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let bar = crate::ui::progress(g, Some(total), false);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()
        .context("starting worker threads")?;
    let report = pool.install(|| {
        phi::scan_collected(&files, skipped, &opts, &|n| {
            if let Some(b) = &bar {
                b.inc(n)
            }
        })
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    let scanned = files.len();

    if let Some(path) = &a.junit {
        std::fs::write(path, junit(&junit_suites(&report, scanned)))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if g.json {
        println!("{}", to_json(&report, &opts, scanned, total, secs));
    } else {
        print!("{}", table(&report));
        print!("{}", not_scanned(&report));
        if !g.quiet {
            notices(&report);
        }
        println!("{}", summary(&report, &opts, scanned, total, secs));
    }
    Ok(if report.total_hits() > 0 {
        ExitCode::from(10)
    } else {
        ExitCode::SUCCESS
    })
}

/// The hits as an aligned table, one row per hit; empty when none.
fn table(r: &Report) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for f in &r.files {
        for h in &f.hits {
            rows.push([
                f.path.clone(),
                h.location.to_string(),
                h.kind.as_str().to_string(),
                format!("{:.2}", h.confidence),
                h.masked.clone(),
            ]);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let head = ["FILE", "LOCATION", "TYPE", "CONF", "VALUE"];
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |c: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    let mut s = line(head);
    for r in &rows {
        s += &line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    for f in &r.files {
        let n = f.total_hits();
        if n > f.hits.len() {
            s += &format!(
                "{}: {} more hits not listed (--max-hits-per-file)\n",
                f.path,
                n - f.hits.len()
            );
        }
    }
    s.push('\n');
    s
}

/// Files listed at most under "Not scanned".
const NOT_SCANNED_MAX: usize = 50;

/// The files skipped or not (fully) read, with why, one a line (masked
/// paths); empty when none.
fn not_scanned(r: &Report) -> String {
    let rows: Vec<String> = r
        .files
        .iter()
        .filter_map(|f| {
            let why = match (&f.skipped, &f.warning) {
                (Some(s), Some(w)) => format!("{s}; {w}"),
                (Some(s), None) => s.clone(),
                (None, Some(w)) => w.clone(),
                (None, None) => return None,
            };
            Some(format!("  {}: {why}\n", f.path))
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut s = format!("Not scanned or not fully read ({}):\n", rows.len());
    for row in rows.iter().take(NOT_SCANNED_MAX) {
        s += row;
    }
    if rows.len() > NOT_SCANNED_MAX {
        s += &format!(
            "  ... and {} more (--json lists all)\n",
            rows.len() - NOT_SCANNED_MAX
        );
    }
    s.push('\n');
    s
}

/// Warnings, notes and a count of skipped files, on stderr.
fn notices(r: &Report) {
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &r.files {
        if let Some(w) = &f.warning {
            eprintln!("phivault: warning: {}: {w}", f.path);
        }
        for n in &f.notes {
            eprintln!("phivault: note: {}: {n}", f.path);
        }
        if let Some(s) = &f.skipped {
            *skipped.entry(s.as_str()).or_default() += 1;
        }
    }
    if !skipped.is_empty() {
        let parts: Vec<String> = skipped.iter().map(|(k, v)| format!("{v} {k}")).collect();
        eprintln!("phivault: skipped: {}", parts.join(", "));
    }
}

fn counts_text(c: &BTreeMap<PhiType, usize>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(r: &Report, o: &phi::Options, scanned: usize, bytes: u64, secs: f64) -> String {
    let hits = r.total_hits();
    let with = r.files.iter().filter(|f| f.total_hits() > 0).count();
    let size = phi::human_size(bytes);
    if hits == 0 {
        format!(
            "No PHI found in {scanned} files ({size}, {secs:.1} s) at confidence >= {:.2}.",
            o.min_confidence
        )
    } else {
        format!(
            "PHI FOUND: {hits} hits in {with} of {scanned} files ({}); {size} scanned in {secs:.1} s.\n\
             Encrypt these files (phivault encrypt) or their fields (phivault records), or delete them.",
            counts_text(&r.counts())
        )
    }
}

fn to_json(
    r: &Report,
    o: &phi::Options,
    scanned: usize,
    bytes: u64,
    secs: f64,
) -> serde_json::Value {
    let listed: Vec<&FileReport> = r
        .files
        .iter()
        .filter(|f| {
            f.total_hits() > 0 || f.skipped.is_some() || f.warning.is_some() || !f.notes.is_empty()
        })
        .collect();
    json!({
        "phi_found": r.total_hits() > 0,
        "total_hits": r.total_hits(),
        "counts": r.counts(),
        "files_scanned": scanned,
        "bytes_scanned": bytes,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "min_confidence": o.min_confidence,
        "files": listed,
    })
}

fn junit_suites(r: &Report, scanned: usize) -> Vec<(String, Vec<Finding>)> {
    let mut suites = Vec::new();
    for f in &r.files {
        let mut v: Vec<Finding> = f
            .hits
            .iter()
            .map(|h| {
                Finding::new(
                    &format!("PHI-{}", h.kind),
                    &format!("no unencrypted {}", h.kind.title()),
                    Status::Fail,
                    format!("{}: {} (confidence {:.2})", h.location, h.masked, h.confidence),
                )
                .fix("Encrypt the file (phivault encrypt) or the field (phivault records), or delete it.")
            })
            .collect();
        if f.total_hits() > f.hits.len() {
            v.push(Finding::new(
                "PHI-more",
                "hits not listed",
                Status::Fail,
                format!(
                    "{} more hits (--max-hits-per-file)",
                    f.total_hits() - f.hits.len()
                ),
            ));
        }
        if let Some(w) = &f.warning {
            v.push(Finding::new(
                "PHI-unread",
                "file could be read",
                Status::Warn,
                w.clone(),
            ));
        }
        if let Some(why) = &f.skipped {
            v.push(Finding::new(
                "PHI-skipped",
                "file scanned",
                Status::Info,
                format!("not scanned: {why}"),
            ));
        }
        if !v.is_empty() {
            suites.push((f.path.clone(), v));
        }
    }
    if r.total_hits() == 0 {
        suites.push((
            "phivault scan phi".to_string(),
            vec![Finding::new(
                "PHI-none",
                "no unencrypted PHI",
                Status::Pass,
                format!("{scanned} files scanned"),
            )],
        ));
    }
    suites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10kb"), Ok(10 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err() && parse_size("1X").is_err() && parse_size("M").is_err());
        assert!(parse_confidence("1.5").is_err() && parse_confidence("x").is_err());
    }
}
