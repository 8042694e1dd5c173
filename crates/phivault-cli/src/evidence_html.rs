//! The evidence report as one self-contained HTML page: the control
//! matrix, three inline-SVG charts (key ages against their rotation
//! policy, a certificate expiry timeline, handshake failures and access
//! denials over time), the documented risk decisions, and every piece of
//! evidence. No scripts, fonts, images or links to load.

use crate::chart::{self, esc};
use phivault_scan::evidence::{Cert, KeyRing, Report};
use phivault_scan::finding::Status;

fn class(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Info => "info",
        Status::Warn => "warn",
        Status::Fail => "fail",
    }
}

fn badge(s: Status) -> String {
    format!(
        "<span class='b {}'>{}</span>",
        class(s),
        match s {
            Status::Info => "N/A".to_string(),
            s => s.as_str().to_uppercase(),
        }
    )
}

/// Each ring's primary age as a share of its rotation policy; the policy
/// is the dashed line at 100%.
fn key_chart(keys: &Option<Vec<KeyRing>>) -> String {
    let Some(keys) = keys else {
        return "<p>No key inventory: the keystore was sealed when the report was made.</p>".into();
    };
    let rings: Vec<&KeyRing> = keys
        .iter()
        .filter(|r| r.primary_version.is_some())
        .collect();
    if rings.is_empty() {
        return "<p>No key rings with a live version.</p>".into();
    }
    let (label_w, bar_w, row_h, top) = (300.0, 540.0, 22.0, 24.0);
    let ratio = |r: &KeyRing| r.primary_age_days as f64 / f64::from(r.max_age_days.max(1));
    let scale = rings.iter().map(|r| ratio(r)).fold(1.25_f64, f64::max);
    let h = top + row_h * rings.len() as f64 + 24.0;
    let w = label_w + bar_w + 20.0;
    let policy_x = label_w + bar_w / scale;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='key ages against rotation policy'>\
         <text x='{label_w}' y='14' font-size='11'>age of the primary version, as a share of the ring's rotation policy</text>"
    );
    for (i, r) in rings.iter().enumerate() {
        let y = top + row_h * i as f64;
        let bw = (ratio(r) / scale * bar_w).max(1.0);
        let colour = if r.overdue {
            "#d8453b"
        } else if ratio(r) > 0.8 {
            "#e0a030"
        } else {
            "#3b7dd8"
        };
        let text = format!(
            "{} v{}: {} of {} days",
            r.name,
            r.primary_version.unwrap_or(0),
            r.primary_age_days,
            r.max_age_days
        );
        s += &format!(
            "<text x='{}' y='{:.1}' font-size='11' text-anchor='end'>{}</text>\
             <rect x='{label_w}' y='{:.1}' width='{bw:.1}' height='{:.1}' fill='{colour}'><title>{}</title></rect>",
            label_w - 6.0,
            y + 14.0,
            esc(&r.name),
            y + 3.0,
            row_h - 6.0,
            esc(&text)
        );
    }
    s += &format!(
        "<line x1='{policy_x:.1}' y1='{}' x2='{policy_x:.1}' y2='{:.1}' stroke='#444' stroke-dasharray='4 3'/>\
         <text x='{policy_x:.1}' y='{:.1}' font-size='11' text-anchor='middle'>policy</text></svg>",
        top - 4.0,
        h - 20.0,
        h - 6.0
    );
    s
}

/// Each certificate (and the CRL) as a bar from now to its expiry, on one
/// time axis, with a line at now; expired ones end left of it.
fn cert_chart(certs: &[Cert], now: i64) -> String {
    if certs.is_empty() {
        return "<p>No certificates found.</p>".into();
    }
    let (label_w, bar_w, row_h, top) = (300.0, 540.0, 22.0, 24.0);
    let lo = certs
        .iter()
        .map(|c| c.not_after_unix)
        .min()
        .unwrap_or(now)
        .min(now);
    let hi = certs
        .iter()
        .map(|c| c.not_after_unix)
        .max()
        .unwrap_or(now)
        .max(now + 86_400);
    let span = (hi - lo).max(1) as f64;
    let x = |t: i64| label_w + (t - lo) as f64 / span * bar_w;
    let h = top + row_h * certs.len() as f64 + 24.0;
    let w = label_w + bar_w + 20.0;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='certificate expiry timeline'>\
         <text x='10' y='14' font-size='11'>from now to expiry (red: expired or under 7 days, orange: under 30 days; a CRL: under 1 day; grey: revoked)</text>"
    );
    for (i, c) in certs.iter().enumerate() {
        let y = top + row_h * i as f64;
        // A CRL lives 7 days by design: only its last day is a warning.
        let (red, orange) = if c.role == "CRL" { (0, 1) } else { (7, 30) };
        let colour = if c.revoked.is_some() {
            "#999"
        } else if c.days_to_expiry < red {
            "#d8453b"
        } else if c.days_to_expiry < orange {
            "#e0a030"
        } else {
            "#3b8d5a"
        };
        let (x0, x1) = if c.not_after_unix >= now {
            (x(now), x(c.not_after_unix))
        } else {
            (x(c.not_after_unix), x(now))
        };
        let tip = format!(
            "{} — {}: expires {} ({} days){}",
            c.role,
            c.subject,
            c.not_after,
            c.days_to_expiry,
            c.revoked
                .as_deref()
                .map(|r| format!(", revoked {r}"))
                .unwrap_or_default()
        );
        s += &format!(
            "<text x='{}' y='{:.1}' font-size='11' text-anchor='end'>{}</text>\
             <rect x='{x0:.1}' y='{:.1}' width='{:.1}' height='{:.1}' fill='{colour}'><title>{}</title></rect>",
            label_w - 6.0,
            y + 14.0,
            esc(&format!("{} ({} d)", c.role, c.days_to_expiry)),
            y + 3.0,
            (x1 - x0).max(2.0),
            row_h - 6.0,
            esc(&tip)
        );
    }
    let day = |t: i64| {
        phivault_scan::at_rest::rfc3339(t)
            .chars()
            .take(10)
            .collect::<String>()
    };
    s += &format!(
        "<line x1='{nx:.1}' y1='{}' x2='{nx:.1}' y2='{:.1}' stroke='#222'/>\
         <text x='{nx:.1}' y='{:.1}' font-size='11' text-anchor='start' dx='3'>now</text>\
         <text x='{label_w}' y='{:.1}' font-size='11'>{}</text>\
         <text x='{}' y='{:.1}' font-size='11' text-anchor='end'>{}</text></svg>",
        top - 4.0,
        h - 20.0,
        top + 8.0,
        h - 6.0,
        day(lo),
        label_w + bar_w,
        h - 6.0,
        day(hi),
        nx = x(now)
    );
    s
}

fn activity_chart(r: &Report) -> String {
    let b = chart::Buckets {
        width_ms: r.activity.bucket_ms,
        rows: r
            .activity
            .buckets
            .iter()
            .map(|b| (b.start_ms, vec![b.handshake_failures, b.denials]))
            .collect(),
    };
    chart::stacked_bars(
        &b,
        &[
            ("handshake failures", "#d8453b"),
            ("access denials", "#e0a030"),
        ],
        "handshake failures and access denials over time",
        "No audit activity in the window.",
    )
}

/// The whole page.
pub fn render(r: &Report, sha256: &str) -> String {
    let now =
        time::OffsetDateTime::parse(&r.generated, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp())
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc().unix_timestamp());
    let mut rows = String::new();
    for c in &r.controls {
        rows += &format!(
            "<tr class='{}'><td>{}</td><td><b>{}</b> {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            class(c.status),
            esc(&c.framework),
            esc(&if c.framework == "HIPAA" {
                format!("§{}", c.id)
            } else {
                c.id.clone()
            }),
            esc(&c.title),
            esc(&c.requirement),
            esc(&c.mechanism),
            badge(c.status),
            esc(&c.checked),
            esc(&c.evidence.join(", ")),
            esc(&c.note)
        );
    }
    let missing = phivault_scan::evidence::missing_decisions(r);
    let mut decisions = if r.decisions.is_empty() && missing.is_empty() {
        "<p>None: no setting weakens a safeguard and every addressable safeguard is implemented.</p>".to_string()
    } else if r.decisions.is_empty() {
        "<p>None documented.</p>".to_string()
    } else {
        let mut t = String::from(
            "<table><tr><th>covers</th><th>key</th><th>documented reason</th><th>where</th></tr>",
        );
        for d in &r.decisions {
            t += &format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&d.covers),
                esc(&d.key),
                esc(&d.reason),
                esc(&d.source)
            );
        }
        t + "</table>"
    };
    if !missing.is_empty() {
        decisions += &format!(
            "<p><strong>Missing decisions ({}):</strong> these exceptions are in effect without a documented risk decision.</p>\
             <table><tr><th>exception</th><th>observed</th><th>remediation</th></tr>",
            missing.len()
        );
        for f in &missing {
            decisions += &format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&f.id),
                esc(&f.evidence),
                esc(&f.remediation)
            );
        }
        decisions += "</table>";
    }
    let mut ev = String::new();
    for e in &r.evidence {
        ev += &format!(
            "<section id='{}'><h3>{} {} <code>{}</code></h3><p class='meta'>collected {}</p><p>{}</p>",
            esc(&e.id),
            badge(e.status),
            esc(&e.title),
            esc(&e.id),
            esc(&e.collected),
            esc(&e.summary)
        );
        if !e.findings.is_empty() {
            ev += "<table><tr><th>status</th><th>requirement</th><th>observed</th><th>remediation</th></tr>";
            for f in &e.findings {
                ev += &format!(
                    "<tr class='{}'><td>{}</td><td>{} <code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    class(f.status),
                    badge(f.status),
                    esc(&f.title),
                    esc(&f.id),
                    esc(&f.evidence),
                    esc(&f.remediation)
                );
            }
            ev += "</table>";
        }
        ev += "</section>";
    }
    let keys = match &r.keys {
        None => "<p>Not available: the keystore was sealed.</p>".to_string(),
        Some(k) => {
            let mut t = String::from(
                "<table><tr><th>ring</th><th>type</th><th>primary</th><th>age (d)</th><th>policy (d)</th><th>versions: created → destroyed</th><th>state</th></tr>",
            );
            for ring in k {
                let hist: Vec<String> = ring
                    .versions
                    .iter()
                    .map(|v| match &v.destroyed {
                        Some(d) => format!("v{} {} → {}", v.version, v.created, d),
                        None => format!("v{} {}", v.version, v.created),
                    })
                    .collect();
                t += &format!(
                    "<tr class='{}'><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if ring.overdue { "fail" } else { "" },
                    esc(&ring.name),
                    esc(&ring.kind),
                    ring.primary_version.map_or("-".into(), |v| format!("v{v}")),
                    ring.primary_age_days,
                    ring.max_age_days,
                    esc(&hist.join("; ")),
                    if ring.disabled {
                        "disabled"
                    } else if ring.overdue {
                        "ROTATION OVERDUE"
                    } else {
                        "ok"
                    }
                );
            }
            t + "</table>"
        }
    };
    let mut certs = String::from(
        "<table><tr><th>role</th><th>subject</th><th>expires</th><th>days left</th><th>SHA-256</th></tr>",
    );
    for c in &r.certificates {
        certs += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&c.role),
            esc(&c.subject),
            esc(&c.not_after),
            c.days_to_expiry,
            esc(&c.sha256)
        );
    }
    certs += "</table>";
    let n = |s: Status| r.controls.iter().filter(|c| c.status == s).count();
    format!(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}}\
         table{{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}}\
         td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}}\
         .b{{display:inline-block;padding:1px 6px;border-radius:3px;color:#fff;font-size:12px;font-weight:600}}\
         .b.pass{{background:#3b8d5a}}.b.warn{{background:#c98a14}}.b.fail{{background:#c0392b}}.b.info{{background:#888}}\
         tr.fail td{{background:#fdecea}}tr.warn td{{background:#fff6e0}}\
         .meta{{color:#666;font-size:12px}}code{{font-size:12px}}section{{margin-bottom:1em}}</style></head><body>\
         <h1>{t}</h1>\
         <p>{overall} Generated {gen} by phivault {ver} on node <code>{node}</code>, data dir <code>{dd}</code>, listeners <code>{ls}</code>.</p>\
         <p>{pass} pass, {warn} warn, {fail} fail of {total} controls. Report hash (SHA-256 of evidence.json, recorded in the audit trail): <code>{sha}</code></p>\
         <p>Every row is machine-checked evidence gathered when the report was made. A HIPAA addressable specification the deployment does not implement as specified shows the risk decision documented in its configuration. The report holds no PHI and no key material.</p>\
         <h2>Control matrix</h2><table><tr><th>framework</th><th>control</th><th>type</th><th>mechanism</th><th>status</th><th>checked</th><th>evidence</th><th>note</th></tr>{rows}</table>\
         <h2>Key ages against rotation policy</h2>{kc}\
         <h2>Certificate expiry</h2>{cc}\
         <h2>Handshake failures and access denials</h2><p class='meta'>{since} to {until}, from the audit trail</p>{ac}\
         <h2>Documented risk decisions</h2>{decisions}\
         <h2>Evidence</h2>{ev}\
         <h2>Key inventory and rotation history</h2>{keys}\
         <h2>Certificates</h2>{certs}</body></html>\n",
        t = esc(&format!("Compliance evidence: {}", r.system)),
        overall = badge(r.status),
        gen = esc(&r.generated),
        ver = esc(&r.deployment.phivault_version),
        node = esc(&r.deployment.node),
        dd = esc(&r.deployment.data_dir),
        ls = esc(&r.deployment.listeners.join(", ")),
        pass = n(Status::Pass),
        warn = n(Status::Warn),
        fail = n(Status::Fail),
        total = r.controls.len(),
        sha = esc(sha256),
        kc = key_chart(&r.keys),
        cc = cert_chart(&r.certificates, now),
        since = esc(&r.activity.since),
        until = esc(&r.activity.until),
        ac = activity_chart(r),
    )
}
