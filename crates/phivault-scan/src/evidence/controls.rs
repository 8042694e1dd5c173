//! The control matrix: each control phivault produces evidence for, the
//! mechanism that implements it, and the evidence items it rests on.
//!
//! Sources: 45 CFR 164.308, 164.312, 164.316 (R = required, A =
//! addressable); AICPA Trust Services Criteria (2017, rev. 2022); ISO/IEC
//! 27001:2022 Annex A. See /work/shared/HIPAA-CONTROLS.md for what each
//! asks and what evidence phivault can produce for it.
//!
//! Evidence ids (gathered by `phivault evidence`):
//!
//! | id | what is checked |
//! |---|---|
//! | `tls-listener/ADDR` | TLS scan of a listener against NIST SP 800-52r2 (HIPAA profile) |
//! | `tls-database` | the database connection (embedded SQLite: not applicable) |
//! | `tls-config` | the configured TLS profile and its insecure options |
//! | `certificates` | certificate and CRL expiry |
//! | `authn` | mTLS, client CA, CRL, certificate-bound tokens |
//! | `session-limits` | token lifetime, connection age, timeouts |
//! | `fips-module` | the cryptographic module and FIPS mode |
//! | `keys-inventory`, `keys-rotation` | key rings from the keystore; rotation policy |
//! | `at-rest` | the at-rest scan of the data dir |
//! | `backup` | backups exist and are encrypted |
//! | `audit-verify`, `audit-checkpoint` | the trail verifies; its newest signed checkpoint |
//! | `audit-activity` | refusals and handshake failures over the window (the review) |
//! | `audit-principals` | every allowed request names its principal |
//! | `audit-retention` | retention ≥ six years |
//! | `break-glass` | the emergency access path, its window and its uses |
//! | `risk-decisions` | every exception has a documented reason (added by `assess`) |

/// How a framework ranks a control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// HIPAA required implementation specification (or standard).
    Required,
    /// HIPAA addressable: implement, implement an equivalent, or document
    /// why not (164.306(d)(3)).
    Addressable,
    /// A SOC 2 criterion or an ISO/IEC 27001 Annex A control.
    Criterion,
}

impl Requirement {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::Required => "required",
            Requirement::Addressable => "addressable",
            Requirement::Criterion => "criterion",
        }
    }
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// `HIPAA`, `SOC 2`, `ISO/IEC 27001:2022`.
    pub framework: &'static str,
    /// Id in its framework.
    pub id: &'static str,
    /// The id as an OSCAL token (letters, digits, `.`, `-`, `_`).
    pub oscal_id: &'static str,
    /// The control's name.
    pub title: &'static str,
    /// Required, addressable or a criterion.
    pub requirement: Requirement,
    /// How phivault implements it.
    pub mechanism: &'static str,
    /// Evidence item ids (or id prefixes before `/`).
    pub evidence: &'static [&'static str],
}

const HIPAA: &str = "HIPAA";
const SOC2: &str = "SOC 2";
const ISO: &str = "ISO/IEC 27001:2022";

/// The matrix, in report order.
pub const CONTROLS: &[Control] = &[
    Control {
        framework: HIPAA,
        id: "164.312(a)(1)",
        oscal_id: "hipaa-164.312-a.1",
        title: "Access control",
        requirement: Requirement::Required,
        mechanism: "mTLS on every route but health; deny-by-default scopes per operation and key; a 0700 data dir; refused attempts recorded in the audit trail",
        evidence: &["authn", "audit-activity", "at-rest"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(a)(2)(i)",
        oscal_id: "hipaa-164.312-a.2.i",
        title: "Unique user identification",
        requirement: Requirement::Required,
        mechanism: "every client certificate names one principal (spiffe:// URI SAN); tokens carry it as sub; every audit entry names it",
        evidence: &["audit-principals", "authn"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(a)(2)(ii)",
        oscal_id: "hipaa-164.312-a.2.ii",
        title: "Emergency access procedure",
        requirement: Requirement::Required,
        mechanism: "break-glass scope with a stated reason, limited to a window per principal, each use a high-severity audit entry",
        evidence: &["break-glass"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(a)(2)(iii)",
        oscal_id: "hipaa-164.312-a.2.iii",
        title: "Automatic logoff",
        requirement: Requirement::Addressable,
        mechanism: "tokens live at most 15 minutes; connections close after server.max_connection_age; header, body and handshake timeouts",
        evidence: &["session-limits"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(a)(2)(iv)",
        oscal_id: "hipaa-164.312-a.2.iv",
        title: "Encryption and decryption",
        requirement: Requirement::Addressable,
        mechanism: "AES-256-GCM with key commitment for every stored PHI value (records, transit, files); keys wrapped under the root key; the AWS-LC (FIPS 140-3) module",
        evidence: &["at-rest", "fips-module", "keys-inventory", "keys-rotation"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(b)",
        oscal_id: "hipaa-164.312-b",
        title: "Audit controls",
        requirement: Requirement::Required,
        mechanism: "one PHI-free entry per request, handshake failure, key event, seal and reload; RFC 6962 Merkle tree with Ed25519-signed checkpoints; fail closed",
        evidence: &["audit-verify", "audit-checkpoint"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(c)(1)",
        oscal_id: "hipaa-164.312-c.1",
        title: "Integrity",
        requirement: Requirement::Required,
        mechanism: "AEAD on every value and a MAC on every record and on the keystore; a tamper-evident audit trail; encrypted backups",
        evidence: &["at-rest", "audit-verify", "backup"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(c)(2)",
        oscal_id: "hipaa-164.312-c.2",
        title: "Mechanism to authenticate electronic protected health information",
        requirement: Requirement::Addressable,
        mechanism: "GCM tags and record MACs checked on every read (a modified value is an integrity error, never data); escrow files authenticated",
        evidence: &["at-rest", "backup"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(d)",
        oscal_id: "hipaa-164.312-d",
        title: "Person or entity authentication",
        requirement: Requirement::Required,
        mechanism: "client certificates verified against the CA and the CRL at every handshake; tokens bound to the certificate (RFC 8705)",
        evidence: &["authn", "tls-listener"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(e)(1)",
        oscal_id: "hipaa-164.312-e.1",
        title: "Transmission security",
        requirement: Requirement::Required,
        mechanism: "TLS 1.3/1.2 under NIST SP 800-52r2 on every listener; plaintext gets an alert; no network database connection",
        evidence: &["tls-listener", "tls-database", "tls-config", "certificates"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(e)(2)(i)",
        oscal_id: "hipaa-164.312-e.2.i",
        title: "Integrity controls (transmission)",
        requirement: Requirement::Addressable,
        mechanism: "AEAD-only cipher suites (AES-GCM)",
        evidence: &["tls-listener", "tls-config"],
    },
    Control {
        framework: HIPAA,
        id: "164.312(e)(2)(ii)",
        oscal_id: "hipaa-164.312-e.2.ii",
        title: "Encryption (transmission)",
        requirement: Requirement::Addressable,
        mechanism: "TLS on every listener and on the database connection, in the FIPS module",
        evidence: &["tls-listener", "tls-database", "fips-module"],
    },
    Control {
        framework: HIPAA,
        id: "164.308(a)(1)(ii)(A)",
        oscal_id: "hipaa-164.308-a.1.ii.a",
        title: "Risk analysis",
        requirement: Requirement::Required,
        mechanism: "every setting that weakens a safeguard and every addressable safeguard not used needs a documented reason in the config, shown in this report",
        evidence: &["risk-decisions"],
    },
    Control {
        framework: HIPAA,
        id: "164.308(a)(1)(ii)(D)",
        oscal_id: "hipaa-164.308-a.1.ii.d",
        title: "Information system activity review",
        requirement: Requirement::Required,
        mechanism: "this report: refusals and handshake failures over time from a verified audit trail; `phivault audit report` for detail",
        evidence: &["audit-activity", "audit-verify"],
    },
    Control {
        framework: HIPAA,
        id: "164.316(b)(2)(i)",
        oscal_id: "hipaa-164.316-b.2.i",
        title: "Documentation retention (six years)",
        requirement: Requirement::Required,
        mechanism: "audit segments kept at least 2196 days (audit.retention), leaf hashes for ever; each evidence report's hash recorded in the trail",
        evidence: &["audit-retention"],
    },
    Control {
        framework: SOC2,
        id: "CC6.1",
        oscal_id: "soc2-cc6.1",
        title: "Logical access security, including encryption and key management",
        requirement: Requirement::Criterion,
        mechanism: "scoped mTLS access; keys wrapped under a Shamir-split root key, rotated by policy; PHI encrypted at rest",
        evidence: &[
            "keys-inventory",
            "keys-rotation",
            "at-rest",
            "authn",
            "fips-module",
        ],
    },
    Control {
        framework: SOC2,
        id: "CC6.6",
        oscal_id: "soc2-cc6.6",
        title: "Protection against threats from outside system boundaries",
        requirement: Requirement::Criterion,
        mechanism: "only TLS with client certificates crosses the boundary; limits and timeouts; refusals recorded",
        evidence: &["tls-listener", "authn", "audit-activity"],
    },
    Control {
        framework: SOC2,
        id: "CC6.7",
        oscal_id: "soc2-cc6.7",
        title: "Restricts transmission, movement and removal of information",
        requirement: Requirement::Criterion,
        mechanism: "TLS in transit; backups and key escrow leave only encrypted",
        evidence: &["tls-listener", "tls-database", "backup"],
    },
    Control {
        framework: SOC2,
        id: "CC7.2",
        oscal_id: "soc2-cc7.2",
        title: "Monitoring of system components for anomalies",
        requirement: Requirement::Criterion,
        mechanism: "audit trail of refusals, handshake failures and key events; verified and signed; metrics",
        evidence: &["audit-activity", "audit-verify", "audit-checkpoint"],
    },
    Control {
        framework: ISO,
        id: "A.8.5",
        oscal_id: "iso27001-a.8.5",
        title: "Secure authentication",
        requirement: Requirement::Criterion,
        mechanism: "mutual TLS with certificates from the CA, revocation at every handshake, short certificate-bound tokens",
        evidence: &["authn", "session-limits"],
    },
    Control {
        framework: ISO,
        id: "A.8.15",
        oscal_id: "iso27001-a.8.15",
        title: "Logging",
        requirement: Requirement::Criterion,
        mechanism: "logs produced for every operation, protected by a signed Merkle tree, kept six years, analysed in reports",
        evidence: &["audit-verify", "audit-checkpoint", "audit-retention"],
    },
    Control {
        framework: ISO,
        id: "A.8.24",
        oscal_id: "iso27001-a.8.24",
        title: "Use of cryptography",
        requirement: Requirement::Criterion,
        mechanism: "approved algorithms only, one crypto module (AWS-LC, FIPS 140-3), key lifecycle with rotation and crypto-shredding",
        evidence: &[
            "fips-module",
            "keys-inventory",
            "keys-rotation",
            "at-rest",
            "tls-listener",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_oscal_tokens() {
        let mut seen = std::collections::HashSet::new();
        for c in CONTROLS {
            assert!(seen.insert(c.oscal_id), "duplicate {}", c.oscal_id);
            let mut ch = c.oscal_id.chars();
            assert!(ch.next().is_some_and(|x| x.is_ascii_alphabetic()));
            assert!(
                ch.all(|x| x.is_ascii_alphanumeric() || ".-_".contains(x)),
                "{}",
                c.oscal_id
            );
            assert!(!c.evidence.is_empty());
        }
        assert_eq!(CONTROLS.len(), 22);
    }
}
