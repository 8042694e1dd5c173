//! Drift between two reports (`phivault evidence --diff OLD.json`):
//! controls whose status changed, evidence whose status or content
//! changed, key rings added, removed, rotated or re-configured,
//! certificates added, removed or replaced, and decisions changed.

use super::{Cert, KeyRing, Report};
use crate::finding::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A control whose status changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlChange {
    /// Framework.
    pub framework: String,
    /// Control id.
    pub id: String,
    /// Before (`None`: not in the old report).
    pub old: Option<Status>,
    /// After (`None`: not in the new report).
    pub new: Option<Status>,
}

/// An evidence item that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceChange {
    /// Evidence id.
    pub id: String,
    /// Status before.
    pub old_status: Option<Status>,
    /// Status after.
    pub new_status: Option<Status>,
    /// Summary before.
    pub old_summary: Option<String>,
    /// Summary after.
    pub new_summary: Option<String>,
    /// Findings whose status changed: `id: old → new`.
    pub findings: Vec<String>,
}

/// A key ring that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    /// Ring name.
    pub ring: String,
    /// What changed, e.g. `rotated: primary v1 → v2`.
    pub changes: Vec<String>,
}

/// A certificate that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertChange {
    /// Role.
    pub role: String,
    /// What changed.
    pub change: String,
}

/// Everything that drifted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The old report's time.
    pub old_generated: String,
    /// The new report's time.
    pub new_generated: String,
    /// Old overall status.
    pub old_status: Option<Status>,
    /// New overall status.
    pub new_status: Option<Status>,
    /// Controls whose status changed.
    pub controls: Vec<ControlChange>,
    /// Evidence that changed.
    pub evidence: Vec<EvidenceChange>,
    /// Rings only in the new report.
    pub keys_added: Vec<String>,
    /// Rings only in the old report.
    pub keys_removed: Vec<String>,
    /// Rings in both that changed.
    pub keys_changed: Vec<KeyChange>,
    /// When one of the reports had no key inventory (sealed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_note: Option<String>,
    /// Certificate changes.
    pub certificates: Vec<CertChange>,
    /// Decisions added, removed or reworded: `key: what`.
    pub decisions: Vec<String>,
}

impl Drift {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.controls.is_empty()
            && self.evidence.is_empty()
            && self.keys_added.is_empty()
            && self.keys_removed.is_empty()
            && self.keys_changed.is_empty()
            && self.certificates.is_empty()
            && self.decisions.is_empty()
    }

    /// The drift as text for a terminal.
    pub fn to_text(&self) -> String {
        let st = |s: Option<Status>| s.map_or("absent", |s| s.as_str());
        let mut o = format!(
            "Drift from {} to {} (overall {} → {})\n",
            self.old_generated,
            self.new_generated,
            st(self.old_status),
            st(self.new_status)
        );
        if self.is_empty() {
            o += "No changes.\n";
            return o;
        }
        if !self.controls.is_empty() {
            o += "\nControls whose status changed:\n";
            for c in &self.controls {
                o += &format!(
                    "  {} {}: {} → {}\n",
                    c.framework,
                    c.id,
                    st(c.old),
                    st(c.new)
                );
            }
        }
        if !self.evidence.is_empty() {
            o += "\nEvidence that changed:\n";
            for e in &self.evidence {
                if e.old_status != e.new_status {
                    o += &format!("  {}: {} → {}\n", e.id, st(e.old_status), st(e.new_status));
                } else {
                    o += &format!("  {}: ({})\n", e.id, st(e.new_status));
                }
                if e.old_summary != e.new_summary {
                    o += &format!(
                        "    was: {}\n    now: {}\n",
                        e.old_summary.as_deref().unwrap_or("-"),
                        e.new_summary.as_deref().unwrap_or("-")
                    );
                }
                for f in &e.findings {
                    o += &format!("    {f}\n");
                }
            }
        }
        if let Some(n) = &self.keys_note {
            o += &format!("\nKeys: {n}\n");
        }
        if !self.keys_added.is_empty()
            || !self.keys_removed.is_empty()
            || !self.keys_changed.is_empty()
        {
            o += "\nKeys:\n";
            for k in &self.keys_added {
                o += &format!("  + {k}\n");
            }
            for k in &self.keys_removed {
                o += &format!("  - {k}\n");
            }
            for k in &self.keys_changed {
                o += &format!("  ~ {}: {}\n", k.ring, k.changes.join("; "));
            }
        }
        if !self.certificates.is_empty() {
            o += "\nCertificates:\n";
            for c in &self.certificates {
                o += &format!("  {}: {}\n", c.role, c.change);
            }
        }
        if !self.decisions.is_empty() {
            o += "\nRisk decisions:\n";
            for d in &self.decisions {
                o += &format!("  {d}\n");
            }
        }
        o
    }
}

fn ring_changes(a: &KeyRing, b: &KeyRing) -> Vec<String> {
    let mut v = Vec::new();
    let pv = |p: Option<u32>| p.map_or("-".into(), |x| format!("v{x}"));
    if a.primary_version != b.primary_version {
        v.push(format!(
            "rotated: primary {} → {}",
            pv(a.primary_version),
            pv(b.primary_version)
        ));
    }
    let destroyed = |r: &KeyRing| -> Vec<u32> {
        r.versions
            .iter()
            .filter(|x| x.state == "destroyed")
            .map(|x| x.version)
            .collect()
    };
    let (da, db) = (destroyed(a), destroyed(b));
    let newly: Vec<String> = db
        .iter()
        .filter(|x| !da.contains(x))
        .map(|x| format!("v{x}"))
        .collect();
    if !newly.is_empty() {
        v.push(format!("destroyed {}", newly.join(", ")));
    }
    if a.max_age_days != b.max_age_days {
        v.push(format!(
            "rotation policy {} d → {} d",
            a.max_age_days, b.max_age_days
        ));
    }
    if a.overdue != b.overdue {
        v.push(if b.overdue {
            "now ROTATION OVERDUE".into()
        } else {
            "no longer overdue".into()
        });
    }
    if a.disabled != b.disabled {
        v.push(if b.disabled { "disabled" } else { "enabled" }.into());
    }
    if a.min_decryption_version != b.min_decryption_version {
        v.push(format!(
            "minimum decryption version {} → {}",
            a.min_decryption_version, b.min_decryption_version
        ));
    }
    v
}

fn cert_key(c: &Cert) -> String {
    format!("{} | {}", c.role, c.subject)
}

/// Compares `old` with `new`.
pub fn diff(old: &Report, new: &Report) -> Drift {
    let mut d = Drift {
        old_generated: old.generated.clone(),
        new_generated: new.generated.clone(),
        old_status: Some(old.status),
        new_status: Some(new.status),
        ..Default::default()
    };
    let key = |framework: &str, id: &str| format!("{framework}\u{0}{id}");
    let oc: BTreeMap<String, Status> = old
        .controls
        .iter()
        .map(|c| (key(&c.framework, &c.id), c.status))
        .collect();
    let nc: BTreeMap<String, Status> = new
        .controls
        .iter()
        .map(|c| (key(&c.framework, &c.id), c.status))
        .collect();
    for c in new.controls.iter().map(|c| (&c.framework, &c.id)).chain(
        old.controls
            .iter()
            .filter(|c| !nc.contains_key(&key(&c.framework, &c.id)))
            .map(|c| (&c.framework, &c.id)),
    ) {
        let k = key(c.0, c.1);
        let (a, b) = (oc.get(&k).copied(), nc.get(&k).copied());
        if a != b {
            d.controls.push(ControlChange {
                framework: c.0.clone(),
                id: c.1.clone(),
                old: a,
                new: b,
            });
        }
    }
    let oe: BTreeMap<&str, &super::Evidence> =
        old.evidence.iter().map(|e| (e.id.as_str(), e)).collect();
    let ne: BTreeMap<&str, &super::Evidence> =
        new.evidence.iter().map(|e| (e.id.as_str(), e)).collect();
    let mut ids: Vec<&str> = ne.keys().copied().collect();
    ids.extend(oe.keys().copied().filter(|k| !ne.contains_key(k)));
    for id in ids {
        let (a, b) = (oe.get(id), ne.get(id));
        let fa: BTreeMap<&str, Status> = a
            .map(|e| {
                e.findings
                    .iter()
                    .map(|f| (f.id.as_str(), f.status))
                    .collect()
            })
            .unwrap_or_default();
        let fb: BTreeMap<&str, Status> = b
            .map(|e| {
                e.findings
                    .iter()
                    .map(|f| (f.id.as_str(), f.status))
                    .collect()
            })
            .unwrap_or_default();
        let mut findings = Vec::new();
        for (fid, s) in &fb {
            match fa.get(fid) {
                Some(o) if o != s => {
                    findings.push(format!("{fid}: {} → {}", o.as_str(), s.as_str()))
                }
                None if a.is_some() => findings.push(format!("{fid}: new ({})", s.as_str())),
                _ => {}
            }
        }
        for fid in fa.keys().filter(|k| !fb.contains_key(*k)) {
            if b.is_some() {
                findings.push(format!("{fid}: no longer checked"));
            }
        }
        let changed = a.map(|e| (e.status, &e.summary)) != b.map(|e| (e.status, &e.summary))
            || !findings.is_empty();
        if changed {
            d.evidence.push(EvidenceChange {
                id: id.to_owned(),
                old_status: a.map(|e| e.status),
                new_status: b.map(|e| e.status),
                old_summary: a.map(|e| e.summary.clone()),
                new_summary: b.map(|e| e.summary.clone()),
                findings,
            });
        }
    }
    match (&old.keys, &new.keys) {
        (Some(ok), Some(nk)) => {
            let om: BTreeMap<&str, &KeyRing> = ok.iter().map(|r| (r.name.as_str(), r)).collect();
            let nm: BTreeMap<&str, &KeyRing> = nk.iter().map(|r| (r.name.as_str(), r)).collect();
            for (n, r) in &nm {
                match om.get(n) {
                    None => d.keys_added.push(format!(
                        "{n} ({}, primary {})",
                        r.kind,
                        r.primary_version.map_or("-".into(), |v| format!("v{v}"))
                    )),
                    Some(o) => {
                        let c = ring_changes(o, r);
                        if !c.is_empty() {
                            d.keys_changed.push(KeyChange {
                                ring: (*n).to_owned(),
                                changes: c,
                            });
                        }
                    }
                }
            }
            for n in om.keys().filter(|n| !nm.contains_key(*n)) {
                d.keys_removed.push((*n).to_owned());
            }
        }
        (None, Some(_)) => {
            d.keys_note =
                Some("the old report has no key inventory (the keystore was sealed)".into())
        }
        (Some(_), None) => {
            d.keys_note =
                Some("the new report has no key inventory (the keystore is sealed)".into())
        }
        (None, None) => {}
    }
    let ocs: BTreeMap<String, &Cert> = old.certificates.iter().map(|c| (cert_key(c), c)).collect();
    let ncs: BTreeMap<String, &Cert> = new.certificates.iter().map(|c| (cert_key(c), c)).collect();
    for (k, c) in &ncs {
        match ocs.get(k) {
            None => d.certificates.push(CertChange {
                role: c.role.clone(),
                change: format!("new: {} (expires {})", c.subject, c.not_after),
            }),
            Some(o) if o.sha256 != c.sha256 || o.not_after != c.not_after => {
                d.certificates.push(CertChange {
                    role: c.role.clone(),
                    change: format!(
                        "replaced: {} expiring {} → expiring {}",
                        c.subject, o.not_after, c.not_after
                    ),
                })
            }
            Some(o) if o.revoked != c.revoked => d.certificates.push(CertChange {
                role: c.role.clone(),
                change: format!(
                    "{}: revoked {}",
                    c.subject,
                    c.revoked.as_deref().unwrap_or("-")
                ),
            }),
            _ => {}
        }
    }
    for (k, c) in &ocs {
        if !ncs.contains_key(k) {
            d.certificates.push(CertChange {
                role: c.role.clone(),
                change: format!("gone: {}", c.subject),
            });
        }
    }
    let od: BTreeMap<&str, &str> = old
        .decisions
        .iter()
        .map(|x| (x.key.as_str(), x.reason.as_str()))
        .collect();
    let nd: BTreeMap<&str, &str> = new
        .decisions
        .iter()
        .map(|x| (x.key.as_str(), x.reason.as_str()))
        .collect();
    for (k, r) in &nd {
        match od.get(k) {
            None => d.decisions.push(format!("{k}: added ({r})")),
            Some(o) if o != r => d.decisions.push(format!("{k}: reworded ({r})")),
            _ => {}
        }
    }
    for k in od.keys().filter(|k| !nd.contains_key(*k)) {
        d.decisions.push(format!("{k}: removed"));
    }
    d
}
