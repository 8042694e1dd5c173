//! The HTML form of `phivault audit report`: one self-contained page with
//! a chart of activity over time (allowed vs refused), summaries, and
//! every entry.
//!
//! The chart and the escaping come from [`crate::chart`], shared with the
//! evidence report.

use crate::chart::{self, esc};
use phivault_audit::Outcome;
use phivault_audit::query::Entry;

/// Activity over time: allowed vs refused or failed, stacked.
fn chart(v: &[Entry]) -> String {
    let points: Vec<(i64, usize)> = v
        .iter()
        .map(|e| {
            (
                e.event.unix_ms(),
                usize::from(e.event.outcome != Outcome::Ok),
            )
        })
        .collect();
    chart::stacked_bars(
        &chart::bucketize(&points, 2, None),
        &[("allowed", "#3b7dd8"), ("refused / failed", "#d8453b")],
        "activity over time",
        "No activity in range.",
    )
}

/// The whole page.
pub fn html(title: &str, v: &[Entry]) -> String {
    let mut rows = String::new();
    for e in v {
        let ev = &e.event;
        rows += &format!(
            "<tr class='{}'><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if ev.break_glass.is_some() {
                "bg"
            } else if ev.outcome != Outcome::Ok {
                "bad"
            } else {
                ""
            },
            e.seq,
            esc(&ev.time),
            esc(ev.principal.as_deref().unwrap_or("-")),
            esc(&ev.op),
            esc(ev.purpose.as_deref().unwrap_or("-")),
            ev.status
                .map_or_else(|| format!("{:?}", ev.outcome), |s| s.to_string()),
            esc(ev.resource.as_deref().unwrap_or("-")),
            esc(ev
                .break_glass
                .as_deref()
                .or(ev.reason.as_deref())
                .unwrap_or("")),
        );
    }
    let summary = |name: &str, items: Vec<(String, usize)>| {
        let li: String = items
            .iter()
            .take(20)
            .map(|(k, n)| format!("<li>{} — {n}</li>", esc(k)))
            .collect();
        format!("<div><h3>{name}</h3><ul>{li}</ul></div>")
    };
    format!(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{t}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:13px}}\
         td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}}tr.bad td{{color:#a02a22}}tr.bg td{{background:#fde8c8}}\
         .sum{{display:flex;gap:3em}}</style></head><body><h1>{t}</h1>\
         <p>{n} entries from the phivault audit trail, generated {now}. Record and subject ids appear in the trail only as HMACs.</p>\
         {chart}<div class='sum'>{p}{o}{u}</div>\
         <table><tr><th>#</th><th>time</th><th>principal</th><th>operation</th><th>purpose</th><th>result</th><th>resource</th><th>break-glass / reason</th></tr>{rows}</table></body></html>\n",
        t = esc(title),
        n = v.len(),
        now = phivault_audit::event::now_rfc3339(),
        chart = chart(v),
        p = summary(
            "Principals",
            crate::audit_cmd::summary(v, |e| e.principal.clone())
        ),
        o = summary(
            "Operations",
            crate::audit_cmd::summary(v, |e| Some(e.op.clone()))
        ),
        u = summary(
            "Purposes",
            crate::audit_cmd::summary(v, |e| e.purpose.clone())
        ),
    )
}
