//! PHI discovery: finds unencrypted SSNs, medical record numbers, phone
//! numbers, e-mail addresses, dates of birth and names near clinical terms
//! in folders of plain text, CSV/TSV, JSON, JSON Lines and SQLite files.
//!
//! What it must never do: print, store or return a found value. A [`Hit`]
//! holds the masked form only (`***-**-1234`, `j***@example.com`,
//! `1980-**-**`, `J. S.`), and every error and note is written without
//! file content. Paths and column names shown are masked the same way when
//! they themselves contain PHI.
//!
//! # Confidence
//!
//! Every hit has a confidence from 0.0 to 1.0. The shape of a value sets a
//! base (a valid dashed SSN 0.6, a formatted phone number 0.5 to 0.85, an
//! e-mail address 0.9, a bare date 0.3); context moves it:
//!
//! - a label keyword just before the value in the same text ("SSN", "DOB",
//!   "phone", "MRN") raises it to 0.9 to 0.95; a label of another kind
//!   ("order #", "invoice", "visit", "version", "ZIP") lowers it to 0.1 to
//!   0.35;
//! - a column or key name (`ssn`, `dob`, `patient_phone`, `mrn`,
//!   `last_name`, `created_at`) acts as the label of its values;
//! - names count only near a clinical term (patient, diagnosis, mg, an
//!   ICD-10 code…) or in a clinical record; both words in the embedded name
//!   lists give 0.9, one 0.6 to 0.7, an honorific or a "Patient:" label
//!   0.8 and more; "Dr." marks a clinician (0.35).
//!
//! The default threshold, [`Options::min_confidence`] = 0.5, keeps labelled
//! and well-formed values and drops bare dates and bare 9- or 10-digit
//! numbers.
//!
//! # Layout
//!
//! `detect` (the detectors, no I/O), `mask`, `names` (word lists),
//! `sources` (plain text, JSON, JSON Lines), `csv` (a streaming RFC 4180
//! reader), `sqlite` (read-only), `strings` (printable runs of binary
//! and unreadable files), `walk` (folders, globs, file types) and
//! [`corpus`] (the labelled synthetic corpus that measures precision and
//! recall).

pub mod corpus;
mod csv;
mod detect;
mod mask;
mod names;
mod sources;
mod sqlite;
mod strings;
mod walk;

pub use detect::{Candidate, Context, detect};
pub use walk::glob_match;

use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A type of PHI the scanner detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PhiType {
    /// US Social Security number.
    Ssn,
    /// Medical record number.
    Mrn,
    /// NANP telephone or fax number.
    Phone,
    /// E-mail address.
    Email,
    /// Date of birth.
    Dob,
    /// A person's name near clinical terms.
    Name,
}

impl PhiType {
    /// Every type, in report order.
    pub const ALL: [PhiType; 6] = [
        PhiType::Ssn,
        PhiType::Mrn,
        PhiType::Phone,
        PhiType::Email,
        PhiType::Dob,
        PhiType::Name,
    ];

    /// The short name used in flags, JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            PhiType::Ssn => "ssn",
            PhiType::Mrn => "mrn",
            PhiType::Phone => "phone",
            PhiType::Email => "email",
            PhiType::Dob => "dob",
            PhiType::Name => "name",
        }
    }

    /// A human title, e.g. "Social Security number".
    pub fn title(self) -> &'static str {
        match self {
            PhiType::Ssn => "Social Security number",
            PhiType::Mrn => "medical record number",
            PhiType::Phone => "phone number",
            PhiType::Email => "e-mail address",
            PhiType::Dob => "date of birth",
            PhiType::Name => "patient name",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for PhiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PhiType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PhiType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown PHI type '{s}' (use ssn, mrn, phone, email, dob or name)")
            })
    }
}

/// A set of [`PhiType`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Types(u8);

impl Types {
    /// Every type.
    pub fn all() -> Self {
        Types(0x3f)
    }
    /// The given types.
    pub fn of(types: &[PhiType]) -> Self {
        Types(types.iter().fold(0, |a, t| a | t.bit()))
    }
    /// Whether `t` is in the set.
    pub fn contains(self, t: PhiType) -> bool {
        self.0 & t.bit() != 0
    }
}

impl Default for Types {
    fn default() -> Self {
        Types::all()
    }
}

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hits below this confidence are not reported (default 0.5).
    pub min_confidence: f32,
    /// Bytes read per file at most (default 256 MiB); larger text files
    /// are scanned up to it with a note, larger SQLite files are skipped.
    pub max_file_size: u64,
    /// The types to report.
    pub types: Types,
    /// Hits kept per file (default 1000); the counts stay exact.
    pub max_hits_per_file: usize,
    /// Globs of paths to leave out: a glob without `/` matches any path
    /// component (`*.log`, `node_modules`), one with `/` the path under
    /// the scanned folder (`exports/**/old-*.csv`). `**` crosses folders.
    pub exclude: Vec<String>,
    /// Also scan hidden files and folders (names starting with `.`).
    pub hidden: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_confidence: 0.5,
            max_file_size: 256 << 20,
            types: Types::all(),
            max_hits_per_file: 1000,
            exclude: Vec::new(),
            hidden: false,
        }
    }
}

/// Where in a file a hit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Location {
    /// A line of a text file; `column` is the 1-based byte offset.
    Text {
        /// 1-based line number.
        line: u64,
        /// 1-based byte column.
        column: usize,
    },
    /// A CSV cell.
    Csv {
        /// 1-based line number (of the hit, for cells spanning lines).
        line: u64,
        /// 1-based field number.
        field: usize,
        /// The header's name for the field, or `column N`.
        column: String,
    },
    /// A JSON value, or a key when `key` is true.
    Json {
        /// JSON path of the value (`$.patients[3].ssn`).
        path: String,
        /// The line, for JSON Lines files.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<u64>,
        /// The hit is in the key itself, not its value.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        key: bool,
    },
    /// A SQLite cell.
    Sqlite {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// The row's rowid (none for WITHOUT ROWID tables).
        rowid: Option<i64>,
    },
    /// A printable run of a binary or unreadable file (see
    /// [`FileKind::Strings`]).
    Strings {
        /// Byte offset of the run in the file.
        offset: u64,
    },
    /// The file's path itself (a folder or file name in it).
    FileName,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Text { line, column } => write!(f, "line {line}, col {column}"),
            Location::Csv {
                line,
                field,
                column,
            } => write!(f, "line {line}, column {column} (#{field})"),
            Location::Json { path, line, key } => {
                if let Some(l) = line {
                    write!(f, "line {l}, ")?;
                }
                write!(f, "{path}{}", if *key { " (key)" } else { "" })
            }
            Location::Sqlite {
                table,
                column,
                rowid,
            } => match rowid {
                Some(r) => write!(f, "{table}.{column}, rowid {r}"),
                None => write!(f, "{table}.{column}"),
            },
            Location::Strings { offset } => write!(f, "byte {offset} (strings)"),
            Location::FileName => f.write_str("file name"),
        }
    }
}

/// One piece of PHI found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Its type.
    #[serde(rename = "type")]
    pub kind: PhiType,
    /// 0.0 to 1.0 (see the module documentation); JSON gives two decimals.
    #[serde(serialize_with = "two_decimals")]
    pub confidence: f32,
    /// The masked value; the value itself is never kept.
    pub masked: String,
    /// Where it is.
    pub location: Location,
    /// Byte offset in the line, cell or value (the unit) where it starts.
    pub start: usize,
    /// Byte offset in the unit where it ends.
    pub end: usize,
}

fn two_decimals<S: serde::Serializer>(c: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((f64::from(*c) * 100.0).round() / 100.0)
}

/// How a file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Lines of text.
    Text,
    /// CSV or TSV.
    Csv,
    /// One JSON document.
    Json,
    /// JSON Lines (`.jsonl`, `.ndjson`).
    Jsonl,
    /// A SQLite database (opened read-only).
    Sqlite,
    /// The printable runs of a binary file, or of a SQLite file that does
    /// not open, like `strings`; hits score a notch lower.
    Strings,
}

/// The result for one file (or one path that could not be scanned).
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The path as given, with any PHI in it masked.
    pub path: String,
    /// How it was read; none when skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FileKind>,
    /// Size in bytes.
    pub bytes: u64,
    /// Hits at or above the threshold, in file order (at most
    /// [`Options::max_hits_per_file`]).
    pub hits: Vec<Hit>,
    /// Hits per type, exact even when `hits` was capped.
    pub counts: BTreeMap<PhiType, usize>,
    /// Why the file was not scanned (phivault ciphertext, symlink…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// A problem that stopped or limited the scan of this path
    /// (unreadable, too large); never holds file content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Other remarks (e.g. "not valid JSON; scanned as text").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl FileReport {
    fn new(path: String, bytes: u64) -> Self {
        FileReport {
            path,
            kind: None,
            bytes,
            hits: Vec::new(),
            counts: BTreeMap::new(),
            skipped: None,
            warning: None,
            notes: Vec::new(),
        }
    }

    /// Number of hits (all of them, not only those kept).
    pub fn total_hits(&self) -> usize {
        self.counts.values().sum()
    }
}

/// Collects the hits of one file: filters by type and confidence, caps
/// the kept hits, counts all.
pub(crate) struct Sink<'o> {
    opts: &'o Options,
    hits: Vec<Hit>,
    counts: BTreeMap<PhiType, usize>,
    /// Subtracted from every confidence (the strings fallback).
    pub(crate) penalty: f32,
}

impl<'o> Sink<'o> {
    pub(crate) fn new(opts: &'o Options) -> Self {
        Sink {
            opts,
            hits: Vec::new(),
            counts: BTreeMap::new(),
            penalty: 0.0,
        }
    }

    /// Detects in one unit (a line, cell or value); `loc` places a hit.
    pub(crate) fn unit(
        &mut self,
        text: &str,
        ctx: &Context<'_>,
        mut loc: impl FnMut(&Candidate) -> Location,
    ) {
        for c in detect(text, ctx) {
            let confidence = (c.confidence - self.penalty).max(0.0);
            if confidence < self.opts.min_confidence || !self.opts.types.contains(c.kind) {
                continue;
            }
            *self.counts.entry(c.kind).or_default() += 1;
            if self.hits.len() < self.opts.max_hits_per_file {
                self.hits.push(Hit {
                    kind: c.kind,
                    confidence,
                    location: loc(&c),
                    masked: c.masked,
                    start: c.start,
                    end: c.end,
                });
            }
        }
    }

    fn into_report(self, r: &mut FileReport) {
        r.hits = self.hits;
        r.counts = self.counts;
    }
}

/// `s` with the separators of file and column names turned into spaces so
/// that the detectors see the words: `_` everywhere, and a `-` or `.`
/// between a letter and a digit (`Roe_Jane_219-45-7777`,
/// `Jane-219-45-7777`). Byte offsets are unchanged.
pub(crate) fn name_words(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = b.to_vec();
    for i in 0..b.len() {
        let (prev, next) = (i.checked_sub(1).map(|j| b[j]), b.get(i + 1).copied());
        let alpha = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphabetic());
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        let split = match b[i] {
            b'_' => true,
            b'-' => (alpha(prev) && digit(next)) || (digit(prev) && alpha(next)),
            b'.' => alpha(prev) && digit(next),
            _ => false,
        };
        if split {
            out[i] = b' ';
        }
    }
    // Only ASCII bytes were replaced by ASCII: still valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// A label (path, table or column name) safe to print: spans that look
/// like PHI, as written or with its separators read as spaces (see
/// [`name_words`]), are replaced by their masked form.
pub(crate) fn safe_label(s: &str) -> String {
    let mut spans = detect::spans_to_mask(s, 0.3);
    let words = name_words(s);
    if words != s {
        spans.extend(detect::spans_to_mask(&words, 0.3));
        spans.sort_by_key(|(a, b, _)| (*a, std::cmp::Reverse(*b)));
    }
    if spans.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (a, b, m) in spans {
        if a < at {
            continue;
        }
        out.push_str(&s[at..a]);
        out.push_str(&m);
        at = b;
    }
    out.push_str(&s[at..]);
    out
}

/// `s` with every span that looks like PHI (confidence 0.3 or more)
/// replaced by its masked form: for printing a path or a name that came
/// from the user or from a file.
pub fn mask_text(s: &str) -> String {
    safe_label(s)
}

/// All results of a scan.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One entry per file scanned or skipped, sorted by path.
    pub files: Vec<FileReport>,
}

impl Report {
    /// Hits per type over all files.
    pub fn counts(&self) -> BTreeMap<PhiType, usize> {
        let mut m = BTreeMap::new();
        for f in &self.files {
            for (k, v) in &f.counts {
                *m.entry(*k).or_default() += v;
            }
        }
        m
    }

    /// Total number of hits.
    pub fn total_hits(&self) -> usize {
        self.files.iter().map(FileReport::total_hits).sum()
    }
}

/// Walks `paths` (files or folders; symlinks inside folders are not
/// followed) and returns the regular files to scan with their sizes, and
/// entries for what was left out with a reason.
pub fn collect(paths: &[PathBuf], opts: &Options) -> (Vec<(PathBuf, u64)>, Vec<FileReport>) {
    walk::collect(paths, opts)
}

/// Scans everything under `paths`, files in parallel. `progress` is called
/// with the size of each file when it is done.
pub fn scan(paths: &[PathBuf], opts: &Options, progress: &(dyn Fn(u64) + Sync)) -> Report {
    let (files, skipped) = collect(paths, opts);
    scan_collected(&files, skipped, opts, progress)
}

/// Scans files returned by [`collect`], in parallel, and merges the
/// entries of skipped paths in.
pub fn scan_collected(
    files: &[(PathBuf, u64)],
    skipped: Vec<FileReport>,
    opts: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Report {
    let mut out: Vec<FileReport> = files
        .par_iter()
        .map(|(p, size)| {
            let r = scan_file(p, opts);
            progress(*size);
            r
        })
        .collect();
    out.extend(skipped);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Report { files: out }
}

/// Bytes sniffed at the start of a file to tell its type.
const SNIFF: usize = 8192;

const BINARY: &str = "binary";

/// A binary file, or a SQLite file that did not open (`why`): scans its
/// printable runs instead (see [`FileKind::Strings`]).
fn strings_fallback(
    path: &Path,
    len: u64,
    opts: &Options,
    sink: &mut Sink<'_>,
    r: &mut FileReport,
    why: Option<String>,
) {
    r.kind = Some(FileKind::Strings);
    match why {
        Some(why) => r.warning = Some(format!("{why}; scanned its printable strings instead")),
        None => r
            .notes
            .push("binary file: scanned its printable strings only".into()),
    }
    let res = std::fs::File::open(path).and_then(|f| {
        let reader = std::io::BufReader::with_capacity(1 << 16, f.take(opts.max_file_size));
        strings::scan(reader, sink)
    });
    if let Err(e) = res {
        r.warning = Some(format!("read failed part-way: {}", io_reason(&e)));
    }
    if len > opts.max_file_size {
        r.notes.push(format!(
            "only the first {} scanned (--max-file-size)",
            human_size(opts.max_file_size)
        ));
    }
}

/// What the first bytes of a file say it is.
fn sniff(head: &[u8]) -> Result<Option<FileKind>, &'static str> {
    if head.starts_with(b"SQLite format 3\0") {
        return Ok(Some(FileKind::Sqlite));
    }
    // phivault's own stream and binary envelope formats (docs/FORMAT.md
    // §3, §4): ciphertext, no PHI.
    if head.len() >= 4 && (head.starts_with(b"PVS") || head.starts_with(b"PVE")) && head[3] == 1 {
        return Err("phivault ciphertext");
    }
    if head.contains(&0) {
        return Err(BINARY);
    }
    Ok(None)
}

fn kind_from_name(name: &str) -> FileKind {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "csv" | "tsv" => FileKind::Csv,
        "json" => FileKind::Json,
        "jsonl" | "ndjson" => FileKind::Jsonl,
        _ => FileKind::Text,
    }
}

/// Scans one file. Never fails: problems become a warning in the report.
pub fn scan_file(path: &Path, opts: &Options) -> FileReport {
    let shown = safe_label(&path.to_string_lossy());
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let mut r = FileReport::new(shown, 0);
            r.warning = Some(format!("cannot read: {}", io_reason(&e)));
            return r;
        }
    };
    let mut r = FileReport::new(shown, meta.len());
    let mut sink = Sink::new(opts);
    path_hits(&path.to_string_lossy(), &mut sink);
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            r.warning = Some(format!("cannot read: {}", io_reason(&e)));
            sink.into_report(&mut r);
            return r;
        }
    };
    let mut head = Vec::with_capacity(SNIFF);
    if let Err(e) = file.take(SNIFF as u64).read_to_end(&mut head) {
        r.warning = Some(format!("cannot read: {}", io_reason(&e)));
        sink.into_report(&mut r);
        return r;
    }
    match sniff(&head) {
        Err(BINARY) => strings_fallback(path, meta.len(), opts, &mut sink, &mut r, None),
        Err(why) => r.skipped = Some(why.to_string()),
        Ok(Some(FileKind::Sqlite)) => {
            r.kind = Some(FileKind::Sqlite);
            if meta.len() > opts.max_file_size {
                r.kind = None;
                r.skipped = Some(format!(
                    "SQLite database larger than the size limit ({})",
                    human_size(opts.max_file_size)
                ));
            } else {
                match sqlite::scan(path, &mut sink) {
                    Ok(()) => {}
                    Err(sqlite::Failure::Tables(why)) => r.warning = Some(why),
                    Err(sqlite::Failure::Whole(why)) => {
                        strings_fallback(path, meta.len(), opts, &mut sink, &mut r, Some(why))
                    }
                }
            }
        }
        Ok(_) => {
            let kind = kind_from_name(&path.to_string_lossy());
            r.kind = Some(kind);
            let res = std::fs::File::open(path).and_then(|f| {
                let reader = std::io::BufReader::with_capacity(1 << 16, f.take(opts.max_file_size));
                sources::scan_stream(
                    kind,
                    &path.to_string_lossy(),
                    reader,
                    &mut sink,
                    &mut r.notes,
                )
            });
            if let Err(e) = res {
                r.warning = Some(format!("read failed part-way: {}", io_reason(&e)));
            }
            if meta.len() > opts.max_file_size {
                r.notes.push(format!(
                    "only the first {} scanned (--max-file-size)",
                    human_size(opts.max_file_size)
                ));
            }
        }
    }
    sink.into_report(&mut r);
    r
}

/// Scans bytes as if they were a file called `name` (its extension picks
/// CSV, JSON, JSON Lines or text). For tests and fuzzing; SQLite needs a
/// file.
pub fn scan_bytes(name: &str, data: &[u8], opts: &Options) -> FileReport {
    let mut r = FileReport::new(safe_label(name), data.len() as u64);
    let mut sink = Sink::new(opts);
    path_hits(name, &mut sink);
    match sniff(&data[..data.len().min(SNIFF)]) {
        Err(BINARY) => {
            r.kind = Some(FileKind::Strings);
            r.notes
                .push("binary file: scanned its printable strings only".into());
            let cut = &data[..data.len().min(opts.max_file_size as usize)];
            if let Err(e) = strings::scan(cut, &mut sink) {
                r.warning = Some(io_reason(&e));
            }
        }
        Err(why) => r.skipped = Some(why.to_string()),
        Ok(Some(FileKind::Sqlite)) => {
            r.skipped = Some("SQLite database (scan it as a file)".into())
        }
        Ok(_) => {
            let kind = kind_from_name(name);
            r.kind = Some(kind);
            let cut = &data[..data.len().min(opts.max_file_size as usize)];
            if let Err(e) = sources::scan_stream(kind, name, cut, &mut sink, &mut r.notes) {
                r.warning = Some(io_reason(&e));
            }
        }
    }
    sink.into_report(&mut r);
    r
}

/// Hits in a file's path itself (`exports/John Smith dx.txt`,
/// `Roe_Jane_219-45-7777.txt`): the folder and file names are read with
/// their separators as spaces (see [`name_words`]).
fn path_hits(path: &str, sink: &mut Sink<'_>) {
    sink.unit(&name_words(path), &Context::default(), |_| {
        Location::FileName
    });
}

/// An I/O error's reason, without the path or any content.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "invalid data".into(),
        k => format!("{k}"),
    }
}

/// `256 MiB`, `1.5 KiB`.
pub fn human_size(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", U[i])
    } else {
        format!("{v:.1} {}", U[i])
    }
}
