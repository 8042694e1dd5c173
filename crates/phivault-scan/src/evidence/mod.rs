//! The compliance evidence report: what was checked (evidence items, each
//! with its findings and the time it was collected), the control matrix
//! that maps phivault's mechanisms to HIPAA, SOC 2 and ISO/IEC 27001
//! controls ([`controls`]), and the verdict on each control.
//!
//! This module does no I/O: the CLI gathers the evidence (TLS scan, key
//! inventory, audit verification, at-rest scan…) and hands it to
//! [`assess`], which applies the matrix and the deployment's documented
//! risk decisions. [`markdown`], [`oscal`] and [`diff`] render and compare
//! reports.
//!
//! A report never holds PHI or key material: evidence items carry counts,
//! names of keys, collections and settings, certificate subjects and
//! fingerprints, and signed checkpoints (which are public).

pub mod controls;
pub mod diff;
pub mod markdown;
pub mod oscal;

use crate::finding::{Finding, Status};
use controls::{CONTROLS, Control, Requirement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `format` member of every report.
pub const FORMAT: &str = "phivault-evidence";
/// The report format's version.
pub const VERSION: u32 = 1;

/// The `[evidence]` section of the config file: where the evidence report
/// looks, and the deployment's documented risk decisions.
///
/// ```toml
/// [evidence]
/// system = "phivault prod (vault-1)"
/// listeners = ["10.0.0.5:8200"]          # scanned besides [server] listen
/// backups = ["/mnt/escrow"]              # key escrow files, encrypted copies
/// audit_key = "/etc/phivault/audit.pub"  # pinned verifier key
/// [evidence.decisions]
/// "164.312(a)(2)(iii)" = "…why this addressable safeguard is not used as specified…"
/// "at-rest/block-device" = "…why the data dir is not on LUKS…"
/// "tls.insecure_allow_x25519" = "…why X25519 is offered…"
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EvidenceConfig {
    /// The system's name in report titles (default: phivault on the host name).
    pub system: Option<String>,
    /// More `host:port` listeners to scan (a load balancer in front).
    #[serde(default)]
    pub listeners: Vec<String>,
    /// Files or folders holding backups.
    #[serde(default)]
    pub backups: Vec<PathBuf>,
    /// A newest backup older than this is a warning (default 30).
    pub backup_max_age_days: Option<u32>,
    /// The audit log's verifier key, pinned: a key string or a file of
    /// them (default: `log.pub` in the audit folder, which whoever can
    /// rewrite the log can replace too).
    pub audit_key: Option<String>,
    /// Documented risk decisions (45 CFR 164.308(a)(1)(ii)(A),
    /// 164.306(d)(3)): key = a control id (`164.312(a)(2)(iii)`), a
    /// finding id (`at-rest/block-device`) or an insecure setting
    /// (`tls.insecure_allow_x25519`); value = the reason.
    #[serde(default)]
    pub decisions: BTreeMap<String, String>,
}

/// One piece of evidence: a check run now, with its findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Stable id, e.g. `audit-verify`, `tls-listener/127.0.0.1:8200`.
    /// Controls name evidence by id or by the part before the `/`.
    pub id: String,
    /// What was checked.
    pub title: String,
    /// The worst status of its findings (info: not applicable).
    pub status: Status,
    /// When it was collected, RFC 3339.
    pub collected: String,
    /// One paragraph for a person.
    pub summary: String,
    /// The checks.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Structured details (counts, names; never PHI or key material).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Evidence {
    /// An item whose status is the worst of `findings`, and whose summary
    /// is `summary`.
    pub fn from_findings(
        id: impl Into<String>,
        title: impl Into<String>,
        collected: &str,
        summary: impl Into<String>,
        findings: Vec<Finding>,
    ) -> Self {
        Evidence {
            id: id.into(),
            title: title.into(),
            status: crate::finding::worst(&findings),
            collected: collected.to_owned(),
            summary: summary.into(),
            findings,
            data: serde_json::Value::Null,
        }
    }

    /// Adds structured details.
    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }

    /// Whether a control's evidence reference `r` names this item.
    pub fn matches(&self, r: &str) -> bool {
        self.id == r
            || self
                .id
                .strip_prefix(r)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// A setting in effect that weakens a safeguard, and its documented reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weakening {
    /// The setting, e.g. `tls.insecure_allow_x25519`, `keystore.dev`.
    pub setting: String,
    /// What it weakens.
    pub effect: String,
    /// The reason given in the setting's own `_reason` option, if it has one.
    pub own_reason: Option<String>,
}

/// A documented risk decision, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The control, finding or setting it covers.
    pub key: String,
    /// What that is (the control's title, the setting's effect…).
    pub covers: String,
    /// The documented reason, verbatim from the config.
    pub reason: String,
    /// Where the reason was written (`[evidence.decisions]` or the setting's `_reason`).
    pub source: String,
}

/// One key version's public description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVersion {
    /// Version number.
    pub version: u32,
    /// Created, RFC 3339.
    pub created: String,
    /// `active` or `destroyed`.
    pub state: String,
    /// Destroyed at, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroyed: Option<String>,
}

/// One key ring of the inventory (metadata only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRing {
    /// `namespace/name`.
    pub name: String,
    /// Key type, e.g. `aes256-gcm96`.
    pub kind: String,
    /// Primary version, if any is live.
    pub primary_version: Option<u32>,
    /// Age of the primary in days.
    pub primary_age_days: i64,
    /// Rotation policy in days.
    pub max_age_days: u32,
    /// Primary older than the policy.
    pub overdue: bool,
    /// Disabled ring.
    pub disabled: bool,
    /// Lowest version that still decrypts.
    pub min_decryption_version: u32,
    /// Every version: the rotation history.
    pub versions: Vec<KeyVersion>,
}

/// A certificate (or CRL) with an expiry, for the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// What it is: `server (served on 127.0.0.1:8200)`, `CA`, `client admin`, `CRL`.
    pub role: String,
    /// Subject (or the name it was issued for).
    pub subject: String,
    /// notAfter (CRL: nextUpdate), RFC 3339.
    pub not_after: String,
    /// The same, Unix seconds.
    pub not_after_unix: i64,
    /// Days left when collected (negative: expired).
    pub days_to_expiry: i64,
    /// SHA-256 of the DER, hex (empty for a CRL).
    #[serde(default)]
    pub sha256: String,
    /// Revoked at, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
}

/// Refusals over time, from the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// Window start, RFC 3339.
    pub since: String,
    /// Window end, RFC 3339.
    pub until: String,
    /// Bucket width in milliseconds.
    pub bucket_ms: i64,
    /// Buckets, oldest first.
    pub buckets: Vec<ActivityBucket>,
}

/// One bucket of [`Activity`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// Bucket start, Unix milliseconds.
    pub start_ms: i64,
    /// Failed or refused TLS handshakes.
    pub handshake_failures: u64,
    /// Refused requests and failed authentications (401, 403, denied).
    pub denials: u64,
}

/// The deployment the report describes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The data dir.
    pub data_dir: String,
    /// The node (host) name.
    pub node: String,
    /// Listeners scanned.
    pub listeners: Vec<String>,
    /// phivault's version.
    pub phivault_version: String,
    /// The config file, if one was read.
    pub config_file: Option<String>,
}

/// The verdict on one control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlResult {
    /// `HIPAA`, `SOC 2` or `ISO/IEC 27001:2022`.
    pub framework: String,
    /// The control's id in its framework, e.g. `164.312(a)(1)`, `CC6.1`, `A.8.5`.
    pub id: String,
    /// The id as an OSCAL token, e.g. `hipaa-164.312-a.1`.
    pub oscal_id: String,
    /// The control's name.
    pub title: String,
    /// `required`, `addressable` (HIPAA) or `criterion`.
    pub requirement: String,
    /// The phivault mechanism that implements it.
    pub mechanism: String,
    /// pass, warn or fail (info when nothing applies).
    pub status: Status,
    /// The evidence items it rests on.
    pub evidence: Vec<String>,
    /// When the evidence was collected, RFC 3339.
    pub checked: String,
    /// Why this status: the failing evidence, or the documented decision.
    pub note: String,
    /// The documented risk decision, when one covers this control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

/// The whole report. Its JSON (as written to `evidence.json`) is what the
/// report's SHA-256 in the audit trail covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// When the report was made, RFC 3339.
    pub generated: String,
    /// The system's name.
    pub system: String,
    /// What was assessed.
    pub deployment: Deployment,
    /// The worst control status.
    pub status: Status,
    /// Every control of the matrix, in matrix order.
    pub controls: Vec<ControlResult>,
    /// Every evidence item.
    pub evidence: Vec<Evidence>,
    /// Documented risk decisions.
    pub decisions: Vec<Decision>,
    /// The key inventory (`None` when the keystore was sealed).
    pub keys: Option<Vec<KeyRing>>,
    /// Certificates and CRLs with their expiry.
    pub certificates: Vec<Cert>,
    /// Refusals over time.
    pub activity: Activity,
}

impl Report {
    /// Controls that fail.
    pub fn failing(&self) -> impl Iterator<Item = &ControlResult> {
        self.controls.iter().filter(|c| c.status == Status::Fail)
    }

    /// An evidence item by exact id.
    pub fn evidence(&self, id: &str) -> Option<&Evidence> {
        self.evidence.iter().find(|e| e.id == id)
    }
}

/// What the CLI gathered, for [`assess`].
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// When gathering started, RFC 3339.
    pub generated: String,
    /// The system's name.
    pub system: String,
    /// The deployment.
    pub deployment: Deployment,
    /// Every evidence item but `risk-decisions` (which [`assess`] adds).
    pub evidence: Vec<Evidence>,
    /// Settings in effect that weaken a safeguard.
    pub weakenings: Vec<Weakening>,
    /// `[evidence.decisions]`.
    pub decisions: BTreeMap<String, String>,
    /// The key inventory.
    pub keys: Option<Vec<KeyRing>>,
    /// Certificates.
    pub certificates: Vec<Cert>,
    /// Refusals over time.
    pub activity: Activity,
}

/// The id of the evidence item [`assess`] adds for 164.308(a)(1)(ii)(A).
pub const RISK_EVIDENCE: &str = "risk-decisions";

/// A reason long enough to be one (the server asks the same of
/// `audit.insecure_fail_open_reason`).
fn documented(r: &str) -> bool {
    r.trim().chars().count() >= 10
}

fn judge(
    c: &Control,
    evidence: &[Evidence],
    decisions: &BTreeMap<String, String>,
    at: &str,
) -> ControlResult {
    let used: Vec<&Evidence> = evidence
        .iter()
        .filter(|e| c.evidence.iter().any(|r| e.matches(r)))
        .collect();
    let missing: Vec<&str> = c
        .evidence
        .iter()
        .copied()
        .filter(|r| !evidence.iter().any(|e| e.matches(r)))
        .collect();
    // Info means "not applicable": it neither passes nor fails a control.
    let mut status = used
        .iter()
        .map(|e| e.status)
        .filter(|s| *s != Status::Info)
        .max()
        .unwrap_or(if used.is_empty() {
            Status::Fail
        } else {
            Status::Info
        });
    // Name the checks that failed or warned, not just their evidence item.
    let mut notes: Vec<String> = used
        .iter()
        .filter(|e| matches!(e.status, Status::Fail | Status::Warn))
        .map(|e| {
            let bad: Vec<String> = e
                .findings
                .iter()
                .filter(|f| matches!(f.status, Status::Fail | Status::Warn))
                .map(|f| format!("{} {}", f.status.as_str(), f.id))
                .collect();
            if bad.is_empty() {
                format!("{} {}", e.status.as_str(), e.id)
            } else {
                format!("{}: {}", e.id, bad.join(", "))
            }
        })
        .collect();
    if !missing.is_empty() {
        status = Status::Fail;
        notes.push(format!("no evidence collected: {}", missing.join(", ")));
    }
    let decision = decisions.get(c.id).filter(|r| documented(r)).cloned();
    if let Some(d) = &decision {
        match (c.requirement, status) {
            (Requirement::Addressable, Status::Fail) => {
                status = Status::Warn;
                notes.push(format!(
                    "not implemented as specified; documented decision (164.306(d)(3)): {d}"
                ));
            }
            (Requirement::Addressable, _) => notes.push(format!("documented decision: {d}")),
            _ => notes.push(format!(
                "a decision is documented, but a required specification can't be waived by one: {d}"
            )),
        }
    }
    if notes.is_empty() {
        notes.push(match status {
            Status::Info => "not applicable".into(),
            _ => "every check passed".into(),
        });
    }
    ControlResult {
        framework: c.framework.to_owned(),
        id: c.id.to_owned(),
        oscal_id: c.oscal_id.to_owned(),
        title: c.title.to_owned(),
        requirement: c.requirement.as_str().to_owned(),
        mechanism: c.mechanism.to_owned(),
        status,
        evidence: used.iter().map(|e| e.id.clone()).collect(),
        checked: used
            .iter()
            .map(|e| e.collected.clone())
            .max()
            .unwrap_or_else(|| at.to_owned()),
        note: notes.join("; "),
        decision,
    }
}

/// Applies the control matrix and the documented decisions to what was
/// gathered: adds the `risk-decisions` evidence (every weakening setting
/// and every addressable safeguard not met needs a documented reason) and
/// judges every control.
pub fn assess(g: Gathered) -> Report {
    let mut evidence = g.evidence;
    let at = g.generated.clone();
    // First pass: every control but the risk analysis, which judges them.
    let first: Vec<ControlResult> = CONTROLS
        .iter()
        .filter(|c| !c.evidence.contains(&RISK_EVIDENCE))
        .map(|c| judge(c, &evidence, &g.decisions, &at))
        .collect();
    let mut decisions = Vec::new();
    let mut findings = Vec::new();
    for w in &g.weakenings {
        let (reason, source) = match (&w.own_reason, g.decisions.get(&w.setting)) {
            (Some(r), _) if documented(r) => (Some(r.clone()), format!("{}_reason", w.setting)),
            (_, Some(r)) if documented(r) => (Some(r.clone()), "[evidence.decisions]".to_string()),
            _ => (None, String::new()),
        };
        let f = match &reason {
            Some(r) => {
                decisions.push(Decision {
                    key: w.setting.clone(),
                    covers: w.effect.clone(),
                    reason: r.clone(),
                    source,
                });
                Finding::new(
                    &format!("risk/{}", w.setting),
                    &format!("{} is documented", w.setting),
                    Status::Pass,
                    format!("{} — reason: {r}", w.effect),
                )
            }
            None => Finding::new(
                &format!("risk/{}", w.setting),
                &format!("{} is documented", w.setting),
                Status::Fail,
                format!("{} is in effect ({}) with no documented reason", w.setting, w.effect),
            )
            .fix(format!(
                "turn it off, or write the risk decision in the config: [evidence.decisions] \"{}\" = \"why, and what compensates\"",
                w.setting
            )),
        };
        findings.push(f);
    }
    let ctl = |id: &str| CONTROLS.iter().find(|c| c.id == id);
    for c in first.iter().filter(|c| c.requirement == "addressable") {
        let title = format!("{} {} {}", c.framework, c.id, c.title);
        let f = match (&c.decision, c.status) {
            (Some(d), _) => {
                decisions.push(Decision {
                    key: c.id.clone(),
                    covers: title.clone(),
                    reason: d.clone(),
                    source: "[evidence.decisions]".into(),
                });
                Finding::new(
                    &format!("risk/{}", c.id),
                    &format!("addressable {} is met or its decision documented", c.id),
                    Status::Pass,
                    format!("{title}: {} — decision: {d}", c.status.as_str()),
                )
            }
            (None, Status::Fail) => Finding::new(
                &format!("risk/{}", c.id),
                &format!("addressable {} is met or its decision documented", c.id),
                Status::Fail,
                format!("{title} is not met and no decision is documented"),
            )
            .fix(format!(
                "meet it (see the control's failing evidence), or document the risk decision: [evidence.decisions] \"{}\" = \"why, and the equivalent measure\"",
                c.id
            )),
            (None, s) => Finding::new(
                &format!("risk/{}", c.id),
                &format!("addressable {} is met or its decision documented", c.id),
                Status::Pass,
                format!("{title}: implemented ({})", s.as_str()),
            ),
        };
        findings.push(f);
    }
    // Decisions about findings (e.g. at-rest/block-device) and anything
    // else the config documents: shown, so the reviewer sees every one.
    for (k, r) in &g.decisions {
        if decisions.iter().any(|d| &d.key == k) {
            continue;
        }
        let covers = ctl(k)
            .map(|c| format!("{} {} {}", c.framework, c.id, c.title))
            .or_else(|| {
                evidence
                    .iter()
                    .flat_map(|e| e.findings.iter())
                    .find(|f| &f.id == k)
                    .map(|f| f.title.clone())
            })
            .unwrap_or_else(|| "(not a known control, finding or setting)".into());
        decisions.push(Decision {
            key: k.clone(),
            covers,
            reason: r.clone(),
            source: "[evidence.decisions]".into(),
        });
        if !documented(r) {
            findings.push(
                Finding::new(
                    &format!("risk/{k}"),
                    &format!("decision {k} states a reason"),
                    Status::Fail,
                    "the documented reason is shorter than 10 characters",
                )
                .fix("write why, and what compensates"),
            );
        }
    }
    let undocumented = findings.iter().filter(|f| f.status == Status::Fail).count();
    let summary = if undocumented == 0 {
        format!(
            "{} weakening setting(s) and {} addressable safeguard(s) reviewed; every exception has a documented reason ({} decision(s))",
            g.weakenings.len(),
            first
                .iter()
                .filter(|c| c.requirement == "addressable")
                .count(),
            decisions.len()
        )
    } else {
        format!("{undocumented} exception(s) without a documented risk decision")
    };
    let risk = Evidence::from_findings(
        RISK_EVIDENCE,
        "Risk decisions for weakened settings and addressable safeguards are documented",
        &at,
        summary,
        findings,
    );
    evidence.push(risk);
    let controls: Vec<ControlResult> = CONTROLS
        .iter()
        .map(|c| {
            first
                .iter()
                .find(|r| r.id == c.id && r.framework == c.framework)
                .cloned()
                .unwrap_or_else(|| judge(c, &evidence, &g.decisions, &at))
        })
        .collect();
    let status = controls
        .iter()
        .map(|c| c.status)
        .filter(|s| *s != Status::Info)
        .max()
        .unwrap_or(Status::Pass);
    Report {
        format: FORMAT.into(),
        version: VERSION,
        generated: g.generated,
        system: g.system,
        deployment: g.deployment,
        status,
        controls,
        evidence,
        decisions,
        keys: g.keys,
        certificates: g.certificates,
        activity: g.activity,
    }
}

/// The exceptions without a documented risk decision: the failing
/// findings of the `risk-decisions` evidence (a weakening setting in
/// effect, an addressable safeguard not met, a decision without a reason).
pub fn missing_decisions(r: &Report) -> Vec<&Finding> {
    r.evidence
        .iter()
        .filter(|e| e.id == RISK_EVIDENCE)
        .flat_map(|e| e.findings.iter())
        .filter(|f| f.status == Status::Fail)
        .collect()
}

/// The SHA-256 of a report's JSON bytes, hex: what the audit trail records.
pub fn report_hash(json: &[u8]) -> String {
    hex::encode(phivault_core::crypto::sha256(json))
}

/// A report as the bytes of `evidence.json` (pretty JSON and a newline).
pub fn to_json(r: &Report) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(r).expect("a report serializes");
    v.push(b'\n');
    v
}

/// Certificates in a PEM bundle, summarised for the timeline. Blocks that
/// are not certificates, or don't parse, are skipped.
pub fn certs_from_pem(pem: &[u8], role: &str, now_unix: i64) -> Vec<Cert> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .flatten()
        .filter_map(|der| {
            let (_, c) = x509_parser::parse_x509_certificate(&der).ok()?;
            let na = c.validity().not_after.timestamp();
            Some(Cert {
                role: role.to_owned(),
                subject: c.subject().to_string(),
                not_after: crate::at_rest::rfc3339(na),
                not_after_unix: na,
                days_to_expiry: (na - now_unix).div_euclid(86_400),
                sha256: hex::encode(phivault_core::crypto::sha256(&der)),
                revoked: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
