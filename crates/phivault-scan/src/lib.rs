//! phivault's scanners and the evidence they produce.
//!
//! - [`tls`]: probes a TLS endpoint with hand-built ClientHellos (so it
//!   sees what rustls itself refuses to speak: SSL 2.0 to TLS 1.1, CBC,
//!   RC4, 3DES, EXPORT, NULL) and grades it against a profile
//!   (`nist-800-52r2` by default).
//! - [`phi`]: finds PHI (SSNs, MRNs, phone numbers, e-mail addresses,
//!   dates of birth, names near clinical terms) in plain files, CSV, JSON
//!   and SQLite, reporting masked values only.
//! - [`at_rest`]: checks a phivault data dir at rest: only wrapped keys,
//!   only ciphertext in the records database's protected columns, key
//!   ages, backups, permissions, and the block device underneath.
//! - [`evidence`]: the compliance evidence report's control matrix
//!   (HIPAA, SOC 2, ISO/IEC 27001), its Markdown and OSCAL renderings,
//!   and the drift between two reports. No I/O.
//! - [`finding`]: the shared result type (requirement id, pass/warn/fail,
//!   evidence, remediation) and its JUnit rendering.
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod evidence;
pub mod finding;
pub mod phi;
pub mod tls;

/// Errors of the scanners. A target that misbehaves (refuses, times out,
/// sends garbage) is not an error but a finding; these are for what stops a
/// scan from running at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A target string that is not `host:port[,sni=NAME][,starttls=postgres|smtp]`.
    #[error("bad target {0:?}: {1}")]
    BadTarget(String, &'static str),
    /// Reading a file to scan (or a CA bundle) failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A CA bundle without any usable certificate.
    #[error("no usable certificate in CA bundle {0}")]
    BadCaBundle(String),
    /// A file the PHI scanner cannot parse as the type its name says.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why (never contains file content).
        reason: String,
    },
}
