//! The TLS policy: NIST SP 800-52r2 profiles turned into a rustls
//! `ServerConfig`, the files it is built from, and the names of the ways a
//! handshake fails.
//!
//! Profiles (see `../shared/NIST-TLS.md` and SECURITY.md):
//! - `nist` (default): TLS 1.3 + 1.2; TLS 1.3 AES-256-GCM-SHA384 and
//!   AES-128-GCM-SHA256; TLS 1.2 ECDHE-ECDSA/ECDHE-RSA with AES-GCM; P-256
//!   and P-384 only; extended master secret required.
//! - `modern`: the same, TLS 1.3 only.
//!
//! Both: no renegotiation and no compression (rustls implements neither),
//! no 0-RTT (`max_early_data_size = 0`), stateless session tickets whose
//! keys rotate (rustls' `Ticketer`, a new key every 6 hours, the previous
//! one kept for decryption).

use crate::TlsError;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{CertificateError, Error as RustlsError, PeerIncompatible, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A named TLS profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// TLS 1.3 and 1.2, NIST-approved suites and groups.
    #[default]
    Nist,
    /// TLS 1.3 only.
    Modern,
}

impl Profile {
    /// Parses a profile name.
    pub fn parse(s: &str) -> Result<Self, TlsError> {
        match s {
            "nist" => Ok(Self::Nist),
            "modern" => Ok(Self::Modern),
            other => Err(TlsError::Policy(format!(
                "unknown TLS profile '{other}' (known: nist, modern)"
            ))),
        }
    }
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nist => "nist",
            Self::Modern => "modern",
        }
    }
}

/// Where the TLS material comes from, and the policy options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Profile.
    #[serde(default)]
    pub profile: Profile,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM, PKCS#8 or SEC1).
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to (PEM).
    pub client_ca: PathBuf,
    /// CRLs (PEM or DER) checked for every client certificate.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Also offer X25519 key exchange. Not NIST-approved (SP 800-56A).
    #[serde(default)]
    pub insecure_allow_x25519: bool,
    /// Accept a server certificate valid longer than 398 days.
    #[serde(default)]
    pub insecure_allow_long_validity: bool,
    /// Accept client certificates whose revocation status the CRLs don't
    /// cover (an external CA without a CRL).
    #[serde(default)]
    pub insecure_allow_unknown_revocation: bool,
    /// Refuse the handshake itself without a client certificate (then
    /// `/v1/sys/health` needs one too). Default: the handshake completes
    /// and every endpoint but health answers 401.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// The crypto provider restricted to a profile: only the suites and
/// groups it allows. Under `--features fips` rustls' aws-lc-rs provider
/// runs on the FIPS module.
pub fn provider(settings: &TlsSettings) -> CryptoProvider {
    #[cfg(feature = "fips")]
    let base = rustls::crypto::default_fips_provider();
    #[cfg(not(feature = "fips"))]
    let base = rustls::crypto::aws_lc_rs::default_provider();
    let mut suites = vec![cs::TLS13_AES_256_GCM_SHA384, cs::TLS13_AES_128_GCM_SHA256];
    if settings.profile == Profile::Nist {
        suites.extend([
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ]);
    }
    let mut groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup> =
        vec![kx_group::SECP256R1, kx_group::SECP384R1];
    if settings.insecure_allow_x25519 {
        groups.push(kx_group::X25519);
    }
    CryptoProvider {
        cipher_suites: suites,
        kx_groups: groups,
        ..base
    }
}

/// The files, read and parsed.
pub struct Material {
    /// Server chain.
    pub chain: Vec<CertificateDer<'static>>,
    /// Server key.
    pub key: PrivateKeyDer<'static>,
    /// Client trust anchors.
    pub roots: RootCertStore,
    /// CRLs.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// What the server certificate check found.
    pub info: crate::pki::ServerCertInfo,
    /// The earliest `nextUpdate` of the CRLs (Unix seconds), if any.
    pub crl_next_update: Option<i64>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("chain", &self.chain.len())
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn read(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|e| TlsError::File(p.to_path_buf(), e.to_string()))
}

/// Reads and checks the TLS files.
pub fn load(settings: &TlsSettings) -> Result<Material, TlsError> {
    let bad = |p: &Path, what: &str| TlsError::File(p.to_path_buf(), what.to_string());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&settings.cert)?)
            .collect::<Result<_, _>>()
            .map_err(|_| bad(&settings.cert, "not a PEM certificate chain"))?;
    if chain.is_empty() {
        return Err(bad(&settings.cert, "holds no certificate"));
    }
    let info = crate::pki::check_server_cert(&chain[0], settings.insecure_allow_long_validity)
        .map_err(|e| TlsError::Policy(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&settings.key)?)
        .map_err(|_| bad(&settings.key, "not a PEM private key"))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&settings.client_ca)?) {
        let c = c.map_err(|_| bad(&settings.client_ca, "not a PEM CA bundle"))?;
        roots
            .add(c)
            .map_err(|e| bad(&settings.client_ca, &format!("bad CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad(&settings.client_ca, "holds no CA certificate"));
    }
    let mut crls = Vec::new();
    for p in &settings.crl {
        let bytes = read(p)?;
        if bytes.starts_with(b"-----") {
            for c in CertificateRevocationListDer::pem_slice_iter(&bytes) {
                crls.push(c.map_err(|_| bad(p, "not a PEM CRL"))?);
            }
        } else {
            crls.push(CertificateRevocationListDer::from(bytes));
        }
    }
    if !settings.crl.is_empty() && crls.is_empty() {
        return Err(TlsError::Policy(
            "the configured CRL files hold no CRL; refusing to run without revocation checks"
                .into(),
        ));
    }
    let crl_next_update = crls
        .iter()
        .filter_map(|c| {
            use x509_parser::prelude::FromDer;
            x509_parser::revocation_list::CertificateRevocationList::from_der(c)
                .ok()
                .and_then(|(_, crl)| crl.next_update().map(|t| t.timestamp()))
        })
        .min();
    Ok(Material {
        chain,
        key,
        roots,
        crls,
        info,
        crl_next_update,
    })
}

/// A built config and the client verifier inside it. The verifier is kept
/// so that a *resumed* session's client certificate can be checked again
/// against the current trust anchors and CRL: rustls restores the chain
/// from the ticket without re-verifying it.
pub struct Built {
    /// The rustls config.
    pub config: Arc<ServerConfig>,
    /// Its client-certificate verifier.
    pub verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Built")
    }
}

/// Builds the rustls config for a profile. `ticketer` is shared across
/// reloads so that resumption survives them.
pub fn server_config(
    settings: &TlsSettings,
    m: &Material,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Built, TlsError> {
    let provider = Arc::new(provider(settings));
    let versions: &[&'static rustls::SupportedProtocolVersion] = match settings.profile {
        Profile::Nist => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Profile::Modern => &[&rustls::version::TLS13],
    };
    // An expired CRL fails every handshake (fail-closed): a stale CRL may
    // miss newer revocations.
    let mut vb =
        WebPkiClientVerifier::builder_with_provider(Arc::new(m.roots.clone()), provider.clone())
            .with_crls(m.crls.clone())
            .enforce_revocation_expiration();
    if !settings.require_client_cert {
        // Health checks come without a certificate; every other endpoint
        // refuses a connection that has none (api.rs). A certificate that
        // is presented must verify, or the handshake fails.
        vb = vb.allow_unauthenticated();
    }
    if settings.insecure_allow_unknown_revocation || m.crls.is_empty() {
        vb = vb.allow_unknown_revocation_status();
    }
    let verifier = vb
        .build()
        .map_err(|e| TlsError::Policy(format!("client verifier: {e}")))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Policy(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(m.chain.clone(), m.key.clone_key())
        .map_err(|e| TlsError::Policy(format!("server certificate and key: {e}")))?;
    cfg.require_ems = true;
    cfg.max_early_data_size = 0;
    cfg.ticketer = ticketer;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    Ok(Built {
        config: Arc::new(cfg),
        verifier,
    })
}

/// A ticketer with rotating keys.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, TlsError> {
    rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| TlsError::Policy(format!("ticketer: {e}")))
}

/// A stable, bounded label for why a handshake failed (metrics and logs).
pub fn failure_reason(e: &RustlsError) -> &'static str {
    match e {
        RustlsError::PeerIncompatible(p) => match p {
            PeerIncompatible::NoCipherSuitesInCommon => "no_shared_cipher",
            PeerIncompatible::NoKxGroupsInCommon => "no_shared_group",
            PeerIncompatible::ExtendedMasterSecretExtensionRequired => "ems_required",
            PeerIncompatible::NoSignatureSchemesInCommon => "no_shared_sigalg",
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::Tls12NotOfferedOrEnabled
            | PeerIncompatible::Tls13RequiredForQuic
            | PeerIncompatible::SupportedVersionsExtensionRequired
            // Only pre-TLS-1.2 hellos omit signature_algorithms.
            | PeerIncompatible::SignatureAlgorithmsExtensionRequired => "protocol_version",
            _ => "peer_incompatible",
        },
        RustlsError::NoCertificatesPresented => "client_cert_missing",
        RustlsError::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "client_cert_expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "client_cert_not_yet_valid"
            }
            CertificateError::Revoked => "client_cert_revoked",
            CertificateError::UnknownIssuer => "client_cert_unknown_ca",
            CertificateError::UnknownRevocationStatus => "client_cert_revocation_unknown",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "client_cert_wrong_purpose"
            }
            CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => "crl_expired",
            _ => "client_cert_invalid",
        },
        RustlsError::InvalidMessage(_) => "bad_message",
        RustlsError::AlertReceived(_) => "alert_received",
        RustlsError::PeerMisbehaved(_) => "peer_misbehaved",
        _ => "other",
    }
}

/// The labels [`failure_reason`] can return, plus those the accept loop
/// adds, so that metrics list every reason from the start.
pub const FAILURE_REASONS: &[&str] = &[
    "protocol_version",
    "no_shared_cipher",
    "no_shared_group",
    "no_shared_sigalg",
    "ems_required",
    "peer_incompatible",
    "client_cert_missing",
    "client_cert_expired",
    "client_cert_not_yet_valid",
    "client_cert_revoked",
    "client_cert_unknown_ca",
    "client_cert_revocation_unknown",
    "client_cert_wrong_purpose",
    "client_cert_invalid",
    "crl_expired",
    "bad_message",
    "alert_received",
    "peer_misbehaved",
    "plaintext_http",
    "connection_limit",
    "timeout",
    "io",
    "other",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_offer_only_approved_algorithms() {
        let s = TlsSettings {
            profile: Profile::Nist,
            cert: "x".into(),
            key: "x".into(),
            client_ca: "x".into(),
            crl: vec![],
            insecure_allow_x25519: false,
            insecure_allow_long_validity: false,
            insecure_allow_unknown_revocation: false,
            require_client_cert: false,
        };
        let p = provider(&s);
        let names: Vec<String> = p
            .cipher_suites
            .iter()
            .map(|c| format!("{:?}", c.suite()))
            .collect();
        assert_eq!(names.len(), 6);
        assert!(
            names.iter().all(|n| n.contains("AES") && n.contains("GCM")),
            "{names:?}"
        );
        assert!(names.iter().all(|n| !n.contains("CHACHA")));
        let groups: Vec<String> = p
            .kx_groups
            .iter()
            .map(|g| format!("{:?}", g.name()))
            .collect();
        assert_eq!(groups, ["secp256r1", "secp384r1"]);
        let modern = provider(&TlsSettings {
            profile: Profile::Modern,
            ..s
        });
        assert_eq!(modern.cipher_suites.len(), 2);
    }
}
