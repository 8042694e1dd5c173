//! The HTML form of `phivault audit report`: one self-contained page with
//! a chart of activity over time (allowed vs refused), summaries, and
//! every entry.
//!
//! The chart is a few dozen SVG rectangles written here directly: a
//! plotting crate (plotters) would add a font stack to the binary for one
//! bar chart, and the output would be no easier to check.

use phivault_audit::Outcome;
use phivault_audit::query::Entry;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Buckets entries over time: (bucket start ms, allowed, refused).
fn buckets(v: &[Entry]) -> (i64, Vec<(i64, u64, u64)>) {
    let times: Vec<i64> = v.iter().map(|e| e.event.unix_ms()).collect();
    let (Some(&lo), Some(&hi)) = (times.iter().min(), times.iter().max()) else {
        return (0, Vec::new());
    };
    // Nice widths: minute, 10 minutes, hour, 6 hours, day, week.
    let span = (hi - lo).max(1);
    let width = [
        60_000,
        600_000,
        3_600_000,
        21_600_000,
        86_400_000,
        604_800_000,
    ]
    .into_iter()
    .find(|w| span / w <= 60)
    .unwrap_or(604_800_000);
    let start = lo - lo.rem_euclid(width);
    let n = ((hi - start) / width + 1) as usize;
    let mut b: Vec<(i64, u64, u64)> = (0..n).map(|i| (start + i as i64 * width, 0, 0)).collect();
    for (e, t) in v.iter().zip(times) {
        let i = ((t - start) / width) as usize;
        if e.event.outcome == Outcome::Ok {
            b[i].1 += 1;
        } else {
            b[i].2 += 1;
        }
    }
    (width, b)
}

fn chart(v: &[Entry]) -> String {
    let (width, b) = buckets(v);
    if b.is_empty() {
        return "<p>No activity in range.</p>".into();
    }
    let (w, h, pad) = (900.0, 260.0, 40.0);
    let max = b.iter().map(|x| x.1 + x.2).max().unwrap_or(1).max(1) as f64;
    let bw = (w - 2.0 * pad) / b.len() as f64;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='activity over time'>\
         <line x1='{pad}' y1='{y0}' x2='{x1}' y2='{y0}' stroke='#444'/>\
         <text x='{pad}' y='16' font-size='12'>max {max} per {unit}</text>",
        y0 = h - pad,
        x1 = w - pad,
        unit = match width {
            60_000 => "minute",
            600_000 => "10 minutes",
            3_600_000 => "hour",
            21_600_000 => "6 hours",
            86_400_000 => "day",
            _ => "week",
        }
    );
    for (i, (t, ok, bad)) in b.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let hok = (*ok as f64 / max) * (h - 2.0 * pad);
        let hbad = (*bad as f64 / max) * (h - 2.0 * pad);
        let when = phivault_audit::event::format_unix_ms(*t);
        s += &format!(
            "<rect x='{x:.1}' y='{:.1}' width='{:.1}' height='{hok:.1}' fill='#3b7dd8'><title>{when}: {ok} allowed</title></rect>",
            h - pad - hok,
            (bw - 1.0).max(1.0)
        );
        s += &format!(
            "<rect x='{x:.1}' y='{:.1}' width='{:.1}' height='{hbad:.1}' fill='#d8453b'><title>{when}: {bad} refused or failed</title></rect>",
            h - pad - hok - hbad,
            (bw - 1.0).max(1.0)
        );
    }
    let first = phivault_audit::event::format_unix_ms(b[0].0);
    let last = phivault_audit::event::format_unix_ms(b[b.len() - 1].0);
    s += &format!(
        "<text x='{pad}' y='{}' font-size='11'>{first}</text><text x='{}' y='{}' font-size='11' text-anchor='end'>{last}</text>\
         <rect x='{}' y='6' width='10' height='10' fill='#3b7dd8'/><text x='{}' y='15' font-size='11'>allowed</text>\
         <rect x='{}' y='6' width='10' height='10' fill='#d8453b'/><text x='{}' y='15' font-size='11'>refused / failed</text></svg>",
        h - pad + 16.0,
        w - pad,
        h - pad + 16.0,
        w - 260.0,
        w - 246.0,
        w - 170.0,
        w - 156.0
    );
    s
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
