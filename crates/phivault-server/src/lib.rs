//! phivault's vault server: the TLS policy, the built-in CA, token
//! authentication and the Vault-compatible transit API.
//!
//! Layers, from the inside out:
//! - [`pki`], [`auth`], [`transit`]: logic with no network I/O;
//! - [`tls`]: the NIST SP 800-52r2 policy as a rustls `ServerConfig`;
//! - [`api`]: HTTP routes (axum) over those;
//! - [`server`]: the TLS accept loop, reload, metrics and shutdown.
#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod client;
pub mod config;
pub mod metrics;
pub mod pki;
pub mod records;
pub mod server;
pub mod tls;
pub mod transit;
pub mod workers;

use std::path::PathBuf;

/// Errors from the built-in CA.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// No CA in the data dir.
    #[error("no CA in {0}; create one with `phivault ca init`")]
    NoCa(PathBuf),
    /// Filesystem.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// Bad argument or file.
    #[error("{0}")]
    Invalid(String),
    /// rcgen failed.
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    /// The CA key could not be unsealed or sealed.
    #[error("the CA key: {0}")]
    Envelope(#[from] phivault_core::envelope::EnvelopeError),
    /// Crypto module.
    #[error(transparent)]
    Crypto(phivault_core::crypto::CryptoError),
    /// A scope was malformed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// Errors from token and scope handling. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A malformed scope.
    #[error(
        "bad scope '{0}': scopes are area:operation[:resource], lowercase, '*' for any one segment"
    )]
    BadScope(String),
    /// Requested scopes exceed the certificate's.
    #[error("the client certificate does not grant: {0}")]
    ScopeNotGranted(String),
    /// A token lived longer than the maximum.
    #[error("token lifetime {0}s exceeds the 900 s maximum")]
    TtlTooLong(u64),
    /// A requested TTL outside 1..=900 s.
    #[error("token ttl {0}s is outside 1..=900 s (15 minutes at most)")]
    BadTtl(u64),
    /// Malformed or badly signed token.
    #[error("invalid token")]
    BadToken,
    /// Expired.
    #[error("token expired; request a new one at POST /v1/auth/token")]
    Expired,
    /// nbf in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// Wrong audience.
    #[error("token audience is not this server")]
    WrongAudience,
    /// Issuer not trusted.
    #[error("token issuer is not trusted here")]
    ForeignIssuer,
    /// kid unknown (rotated out, or never ours).
    #[error("token signing key is unknown (rotated out or foreign)")]
    UnknownKey,
    /// Bound to another certificate.
    #[error("token is bound to a different client certificate")]
    WrongCertificate,
    /// No cnf.
    #[error("token is not bound to a client certificate (RFC 8705 cnf.x5t#S256 missing)")]
    Unbound,
    /// Configuration problem (external issuers).
    #[error("{0}")]
    Config(String),
    /// Crypto module.
    #[error(transparent)]
    Crypto(phivault_core::crypto::CryptoError),
    /// Unexpected.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Errors from the TLS policy and its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file is missing or malformed.
    #[error("{path}: {1}", path = .0.display())]
    File(PathBuf, String),
    /// The settings would weaken the profile, or rustls refused them.
    #[error("TLS policy: {0}")]
    Policy(String),
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// TLS files or policy.
    #[error(transparent)]
    Tls(TlsError),
    /// Token settings.
    #[error(transparent)]
    Auth(AuthError),
    /// The port.
    #[error("cannot listen on {0}: {1} (pick another with --listen)")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    /// The audit trail could not be opened (the server does not run
    /// without one).
    #[error("audit trail: {0}")]
    Audit(String),
    /// The records database could not be opened.
    #[error("storage: {0}")]
    Storage(String),
}
