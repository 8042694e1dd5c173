//! The report as Markdown (`evidence.md`): the control matrix first, then
//! the documented decisions, the evidence with every finding, the key
//! inventory and the certificates.

use super::Report;
use crate::finding::Status;

/// Escapes text for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn badge(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Info => "N/A",
        Status::Warn => "WARN",
        Status::Fail => "FAIL",
    }
}

/// Renders the whole report.
pub fn render(r: &Report, sha256: Option<&str>) -> String {
    let mut o = String::new();
    let fails = r.failing().count();
    o += &format!("# Compliance evidence: {}\n\n", r.system);
    o += &format!(
        "Generated {} by phivault {} on node `{}` for data dir `{}`.\n\n",
        r.generated, r.deployment.phivault_version, r.deployment.node, r.deployment.data_dir
    );
    o += &format!(
        "**Overall: {}** — {} of {} controls pass{}.\n\n",
        badge(r.status),
        r.controls
            .iter()
            .filter(|c| c.status == Status::Pass)
            .count(),
        r.controls.len(),
        if fails > 0 {
            format!(", {fails} fail")
        } else {
            String::new()
        }
    );
    if let Some(h) = sha256 {
        o += &format!(
            "Report hash (SHA-256 of evidence.json, recorded in the audit trail): `{h}`\n\n"
        );
    }
    o += "Every row is machine-checked evidence gathered when this report was made. \
          HIPAA addressable specifications that the deployment does not implement as \
          specified show the risk decision documented in its configuration.\n\n";
    o += "## Control matrix\n\n| Framework | Control | Type | Mechanism | Status | Checked | Evidence | Note |\n|---|---|---|---|---|---|---|---|\n";
    for c in &r.controls {
        let id = if c.framework == "HIPAA" {
            format!("§{} {}", c.id, c.title)
        } else {
            format!("{} {}", c.id, c.title)
        };
        o += &format!(
            "| {} | {} | {} | {} | **{}** | {} | {} | {} |\n",
            cell(&c.framework),
            cell(&id),
            c.requirement,
            cell(&c.mechanism),
            badge(c.status),
            cell(&c.checked),
            cell(&c.evidence.join(", ")),
            cell(&c.note)
        );
    }
    o += "\n## Documented risk decisions\n\n";
    let missing = super::missing_decisions(r);
    if r.decisions.is_empty() && missing.is_empty() {
        o += "None: no setting weakens a safeguard and every addressable safeguard is implemented.\n";
    } else if r.decisions.is_empty() {
        o += "None documented.\n";
    } else {
        o += "| Covers | Key | Reason | Where |\n|---|---|---|---|\n";
        for d in &r.decisions {
            o += &format!(
                "| {} | `{}` | {} | {} |\n",
                cell(&d.covers),
                cell(&d.key),
                cell(&d.reason),
                cell(&d.source)
            );
        }
    }
    if !missing.is_empty() {
        o += &format!(
            "\n**Missing decisions ({}):** these exceptions are in effect without a documented risk decision.\n\n| Exception | Observed | Remediation |\n|---|---|---|\n",
            missing.len()
        );
        for f in &missing {
            o += &format!(
                "| `{}` | {} | {} |\n",
                cell(&f.id),
                cell(&f.evidence),
                cell(&f.remediation)
            );
        }
    }
    o += "\n## Evidence\n";
    for e in &r.evidence {
        o += &format!(
            "\n### {} — {} (`{}`)\n\nCollected {}. {}\n\n",
            badge(e.status),
            e.title,
            e.id,
            e.collected,
            e.summary
        );
        if !e.findings.is_empty() {
            o += "| Status | Requirement | Observed | Remediation |\n|---|---|---|---|\n";
            for f in &e.findings {
                o += &format!(
                    "| {} | {} (`{}`) | {} | {} |\n",
                    badge(f.status),
                    cell(&f.title),
                    cell(&f.id),
                    cell(&f.evidence),
                    cell(&f.remediation)
                );
            }
        }
    }
    o += "\n## Key inventory\n\n";
    match &r.keys {
        None => o += "Not available: the keystore was sealed when the report was made.\n",
        Some(k) if k.is_empty() => o += "No key rings.\n",
        Some(k) => {
            o += "| Ring | Type | Primary | Age (d) | Policy (d) | Versions (created → destroyed) | State |\n|---|---|---|---|---|---|---|\n";
            for ring in k {
                let hist: Vec<String> = ring
                    .versions
                    .iter()
                    .map(|v| match &v.destroyed {
                        Some(d) => format!("v{} {} → destroyed {}", v.version, v.created, d),
                        None => format!("v{} {}", v.version, v.created),
                    })
                    .collect();
                o += &format!(
                    "| `{}` | {} | {} | {} | {} | {} | {} |\n",
                    cell(&ring.name),
                    ring.kind,
                    ring.primary_version.map_or("-".into(), |v| format!("v{v}")),
                    ring.primary_age_days,
                    ring.max_age_days,
                    cell(&hist.join("; ")),
                    if ring.disabled {
                        "disabled"
                    } else if ring.overdue {
                        "ROTATION OVERDUE"
                    } else {
                        "ok"
                    }
                );
            }
        }
    }
    o += "\n## Certificates\n\n";
    if r.certificates.is_empty() {
        o += "None found.\n";
    } else {
        o += "| Role | Subject | Expires | Days left | SHA-256 |\n|---|---|---|---|---|\n";
        for c in &r.certificates {
            o += &format!(
                "| {} | {} | {} | {} | {} |\n",
                cell(&c.role),
                cell(&c.subject),
                c.not_after,
                c.days_to_expiry,
                if c.sha256.is_empty() {
                    "-".into()
                } else {
                    format!("`{}…`", &c.sha256[..c.sha256.len().min(16)])
                }
            );
        }
    }
    let (h, d) = r.activity.buckets.iter().fold((0, 0), |(h, d), b| {
        (h + b.handshake_failures, d + b.denials)
    });
    o += &format!(
        "\n## Activity review\n\nFrom {} to {}: {h} failed or refused TLS handshake(s), {d} refused request(s) or failed authentication(s).\n",
        r.activity.since, r.activity.until
    );
    o
}
