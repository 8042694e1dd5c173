//! Certificates: summaries of the served chain (x509-parser), and the trust
//! anchors it is judged against.

use super::CertSummary;
use std::path::Path;
use std::sync::Arc;
use x509_parser::prelude::*;

/// The system CA bundle on Debian-family systems.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Loads trust anchors from a PEM bundle (or the system bundle).
pub fn roots(bundle: Option<&Path>) -> Result<Arc<rustls::RootCertStore>, crate::ScanError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let path = bundle.unwrap_or(Path::new(SYSTEM_BUNDLE));
    let shown = path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| crate::ScanError::Io {
            path: shown.clone(),
            source: std::io::Error::other(e.to_string()),
        })?
        .filter_map(Result::ok)
        .collect();
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(crate::ScanError::BadCaBundle(shown));
    }
    Ok(Arc::new(store))
}

/// Summarises one DER certificate. `now` is Unix seconds.
pub fn summarize(der: &[u8], now: i64) -> Result<CertSummary, String> {
    let (_, c) =
        X509Certificate::from_der(der).map_err(|e| format!("unparsable certificate: {e}"))?;
    let not_before = c.validity().not_before.timestamp();
    let not_after = c.validity().not_after.timestamp();
    let mut san = Vec::new();
    let mut eku = Vec::new();
    let mut key_usage = Vec::new();
    let mut ocsp_urls = Vec::new();
    let mut is_ca = false;
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(s) => {
                for n in &s.general_names {
                    match n {
                        GeneralName::DNSName(d) => san.push(format!("DNS:{d}")),
                        GeneralName::IPAddress(ip) => san.push(format!("IP:{}", ip_text(ip))),
                        _ => {}
                    }
                }
            }
            ParsedExtension::KeyUsage(k) => {
                let names = [
                    (k.digital_signature(), "digitalSignature"),
                    (k.non_repudiation(), "nonRepudiation"),
                    (k.key_encipherment(), "keyEncipherment"),
                    (k.data_encipherment(), "dataEncipherment"),
                    (k.key_agreement(), "keyAgreement"),
                    (k.key_cert_sign(), "keyCertSign"),
                    (k.crl_sign(), "cRLSign"),
                ];
                key_usage.extend(names.iter().filter(|n| n.0).map(|n| n.1.to_owned()));
            }
            ParsedExtension::BasicConstraints(b) => is_ca = b.ca,
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in &aia.accessdescs {
                    if d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.1"
                        && let GeneralName::URI(u) = &d.access_location
                    {
                        ocsp_urls.push((*u).to_owned());
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(e) => {
                let pairs = [
                    (e.any, "anyExtendedKeyUsage"),
                    (e.server_auth, "serverAuth"),
                    (e.client_auth, "clientAuth"),
                    (e.code_signing, "codeSigning"),
                    (e.email_protection, "emailProtection"),
                    (e.time_stamping, "timeStamping"),
                    (e.ocsp_signing, "OCSPSigning"),
                ];
                eku.extend(pairs.iter().filter(|p| p.0).map(|p| p.1.to_owned()));
                eku.extend(e.other.iter().map(|o| o.to_id_string()));
            }
            _ => {}
        }
    }
    let spki = c.public_key();
    let key = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => format!("RSA {}", r.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(p)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| match o.to_id_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    other => other.to_owned(),
                })
                .unwrap_or_else(|| format!("{} bits", p.key_size()));
            format!("ECDSA {curve}")
        }
        Ok(x509_parser::public_key::PublicKey::DSA(_)) => "DSA".into(),
        Ok(_) => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => "Ed25519".into(),
            "1.3.101.113" => "Ed448".into(),
            o => o.to_owned(),
        },
        Err(_) => "unparsable key".into(),
    };
    let sig_oid = c.signature_algorithm.algorithm.to_id_string();
    let signature_algorithm = match sig_oid.as_str() {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.2" => "dsaWithSHA256",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.3.101.112" => "Ed25519",
        other => other,
    }
    .to_owned();
    Ok(CertSummary {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        not_before_unix: not_before,
        not_after_unix: not_after,
        days_to_expiry: (not_after - now).div_euclid(86_400),
        key,
        signature_algorithm,
        san,
        eku,
        key_usage,
        ocsp_urls,
        is_ca,
        sha256: hex::encode(phivault_core::crypto::sha256(der)),
    })
}

fn ip_text(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::from([b[0], b[1], b[2], b[3]]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => hex::encode(b),
    }
}

/// A DER distinguished name as text (for the CA names a server lists).
pub fn dn_text(der: &[u8]) -> String {
    match X509Name::from_der(der) {
        Ok((_, n)) => n.to_string(),
        Err(_) => format!("unparsable name ({} bytes)", der.len()),
    }
}
