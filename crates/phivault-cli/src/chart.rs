//! Small inline-SVG charts for the self-contained HTML reports
//! (`audit report --format html`, `evidence`): HTML escaping, bucketing
//! events over time, and a stacked bar chart.
//!
//! The charts are a few dozen SVG elements written here directly: a
//! plotting crate (plotters) would add a font stack to the binary for a
//! few bar charts, and the output would be no easier to check.

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Counts per time bucket and series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buckets {
    /// Bucket width in milliseconds.
    pub width_ms: i64,
    /// (bucket start in Unix ms, one count per series), oldest first.
    pub rows: Vec<(i64, Vec<u64>)>,
}

/// Bucket widths, in ms: minute, 10 minutes, hour, 6 hours, day, week.
const WIDTHS: [i64; 6] = [
    60_000,
    600_000,
    3_600_000,
    21_600_000,
    86_400_000,
    604_800_000,
];

/// Buckets `(Unix ms, series index)` points into at most about 60 bars
/// of a "nice" width covering `lo..=hi` (the points' own range when `None`).
pub fn bucketize(points: &[(i64, usize)], series: usize, range: Option<(i64, i64)>) -> Buckets {
    let (lo, hi) = match range {
        Some(r) => r,
        None => {
            let (Some(lo), Some(hi)) = (
                points.iter().map(|p| p.0).min(),
                points.iter().map(|p| p.0).max(),
            ) else {
                return Buckets::default();
            };
            (lo, hi)
        }
    };
    let span = (hi - lo).max(1);
    let width = WIDTHS
        .into_iter()
        .find(|w| span / w <= 60)
        .unwrap_or(WIDTHS[5]);
    let start = lo - lo.rem_euclid(width);
    let n = ((hi - start) / width + 1) as usize;
    let mut rows: Vec<(i64, Vec<u64>)> = (0..n)
        .map(|i| (start + i as i64 * width, vec![0; series]))
        .collect();
    for &(t, s) in points {
        if t < start || t > hi || s >= series {
            continue;
        }
        rows[((t - start) / width) as usize].1[s] += 1;
    }
    Buckets {
        width_ms: width,
        rows,
    }
}

/// The bucket width in words.
pub fn unit(width_ms: i64) -> &'static str {
    match width_ms {
        60_000 => "minute",
        600_000 => "10 minutes",
        3_600_000 => "hour",
        21_600_000 => "6 hours",
        86_400_000 => "day",
        _ => "week",
    }
}

/// A stacked bar chart of `b`: one colour per series (`(label, colour)`),
/// a tooltip per bar segment, the first and last bucket's time under the
/// axis, and a legend. `empty` is shown instead when there are no buckets.
pub fn stacked_bars(b: &Buckets, series: &[(&str, &str)], aria: &str, empty: &str) -> String {
    if b.rows.is_empty() {
        return format!("<p>{}</p>", esc(empty));
    }
    let (w, h, pad) = (900.0, 260.0, 40.0);
    let max = b
        .rows
        .iter()
        .map(|r| r.1.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let bw = (w - 2.0 * pad) / b.rows.len() as f64;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' role='img' aria-label='{aria}'>\
         <line x1='{pad}' y1='{y0}' x2='{x1}' y2='{y0}' stroke='#444'/>\
         <text x='{pad}' y='16' font-size='12'>max {max} per {unit}</text>",
        aria = esc(aria),
        y0 = h - pad,
        x1 = w - pad,
        unit = unit(b.width_ms)
    );
    for (i, (t, counts)) in b.rows.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let when = phivault_audit::event::format_unix_ms(*t);
        let mut y = h - pad;
        for (k, n) in counts.iter().enumerate() {
            let Some((label, colour)) = series.get(k) else {
                continue;
            };
            let bh = (*n as f64 / max) * (h - 2.0 * pad);
            y -= bh;
            s += &format!(
                "<rect x='{x:.1}' y='{y:.1}' width='{:.1}' height='{bh:.1}' fill='{colour}'><title>{when}: {n} {}</title></rect>",
                (bw - 1.0).max(1.0),
                esc(label)
            );
        }
    }
    // Dates for day-wide bars, minutes otherwise; no milliseconds.
    let label = |t: i64| {
        let full = phivault_audit::event::format_unix_ms(t);
        let n = if b.width_ms >= 86_400_000 { 10 } else { 16 };
        format!(
            "{}{}",
            &full[..n.min(full.len())],
            if n == 16 { "Z" } else { "" }
        )
    };
    let first = label(b.rows[0].0);
    let last = label(b.rows[b.rows.len() - 1].0);
    s += &format!(
        "<text x='{pad}' y='{ty}' font-size='11'>{first}</text><text x='{}' y='{ty}' font-size='11' text-anchor='end'>{last}</text>",
        w - pad,
        ty = h - pad + 16.0
    );
    // Legend, right-aligned: each entry gets 150 px.
    let x0 = w - 150.0 * series.len() as f64 - 20.0;
    for (k, (label, colour)) in series.iter().enumerate() {
        let x = x0 + 150.0 * k as f64;
        s += &format!(
            "<rect x='{x}' y='6' width='10' height='10' fill='{colour}'/><text x='{}' y='15' font-size='11'>{}</text>",
            x + 14.0,
            esc(label)
        );
    }
    s += "</svg>";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_the_range_with_nice_widths() {
        let b = bucketize(&[(0, 0), (59_999, 1), (120_000, 0)], 2, None);
        assert_eq!(b.width_ms, 60_000);
        assert_eq!(b.rows.len(), 3);
        assert_eq!(b.rows[0].1, vec![1, 1]);
        assert_eq!(b.rows[2].1, vec![1, 0]);
        let b = bucketize(&[], 2, Some((0, 30 * 86_400_000)));
        assert_eq!(b.width_ms, 86_400_000);
        assert_eq!(b.rows.len(), 31);
        assert!(bucketize(&[], 1, None).rows.is_empty());
        let svg = stacked_bars(&b, &[("a<b", "#111"), ("c", "#222")], "x", "none");
        assert!(svg.starts_with("<svg") && svg.contains("a&lt;b"));
    }
}
