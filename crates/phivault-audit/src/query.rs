//! Reading the trail back: every entry in order, filters for `audit
//! search` and reports, following the newest segment (`tail -f`), and
//! export as JSON lines or RFC 5424 syslog.

use crate::event::{Event, Kind, Outcome, Severity, parse_time_ms};
use crate::log::list_segments;
use crate::segment::{self, Frames};
use crate::{LogError, Result};
use std::path::Path;

/// An entry read back.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its seq (index in the Merkle tree).
    pub seq: u64,
    /// The event.
    pub event: Event,
}

/// Calls `f` on every entry from `from` on, in order, until it returns
/// false. Entries that don't parse as events are skipped (verify finds
/// tampering; this is for reading).
pub fn for_each(dir: &Path, from: u64, mut f: impl FnMut(Entry) -> bool) -> Result<u64> {
    let segs = list_segments(dir)?;
    let mut next = from;
    for (k, (first, path)) in segs.iter().enumerate() {
        if segs.get(k + 1).is_some_and(|(n, _)| *n <= from) {
            continue;
        }
        let b = std::fs::read(path)
            .map_err(|e| LogError::Io(format!("reading {}", path.display()), e))?;
        let h = segment::parse_header(&b)?;
        let _ = first;
        for fr in Frames::new(&b, h.len) {
            if fr.seq < from {
                continue;
            }
            next = fr.seq + 1;
            if let Ok(event) = serde_json::from_slice::<Event>(fr.json())
                && !f(Entry { seq: fr.seq, event })
            {
                return Ok(next);
            }
        }
    }
    Ok(next)
}

/// Filters, all of which must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Principal, exact.
    pub principal: Option<String>,
    /// Operation: exact, or a prefix ending in `*` (`records.*`).
    pub op: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Kind.
    pub kind: Option<Kind>,
    /// Lowest severity.
    pub min_severity: Option<Severity>,
    /// From (Unix ms, inclusive).
    pub since_ms: Option<i64>,
    /// Until (Unix ms, exclusive).
    pub until_ms: Option<i64>,
    /// A record id HMAC (hex) the event must name.
    pub record: Option<String>,
    /// A subject id HMAC (hex) the event must name.
    pub subject: Option<String>,
    /// Resource (key ring or collection), exact.
    pub resource: Option<String>,
    /// Only break-glass accesses.
    pub break_glass: bool,
    /// Only refusals (outcome denied, or a 401/403).
    pub denied: bool,
}

impl Filter {
    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        let op_ok = match self.op.as_deref() {
            None => true,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => e.op.starts_with(prefix),
                None => e.op == p,
            },
        };
        let t = || e.unix_ms();
        op_ok
            && self
                .principal
                .as_ref()
                .is_none_or(|p| e.principal.as_ref() == Some(p))
            && self.outcome.is_none_or(|o| e.outcome == o)
            && self.kind.is_none_or(|k| e.kind == k)
            && self.min_severity.is_none_or(|s| e.severity >= s)
            && self.since_ms.is_none_or(|s| t() >= s)
            && self.until_ms.is_none_or(|u| t() < u)
            && self.record.as_ref().is_none_or(|r| e.records.contains(r))
            && self.subject.as_ref().is_none_or(|s| e.subjects.contains(s))
            && self
                .resource
                .as_ref()
                .is_none_or(|r| e.resource.as_ref() == Some(r))
            && (!self.break_glass || e.break_glass.is_some())
            && (!self.denied || e.outcome == Outcome::Denied || matches!(e.status, Some(401 | 403)))
    }
}

/// Parses a time for `--since`/`--until`: RFC 3339, a date, or a span
/// before now (`90s`, `15m`, `24h`, `30d`).
pub fn parse_when(s: &str, now_ms: i64) -> Option<i64> {
    if let Some(t) = parse_time_ms(s) {
        return Some(t);
    }
    // The unit is one ASCII letter; anything else (a multi-byte last
    // character included: the fuzzer found one) is not a span.
    let last = s.len().checked_sub(1).filter(|&i| s.is_char_boundary(i))?;
    let (n, unit) = s.split_at(last);
    let n: i64 = n.parse().ok()?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(now_ms - n.checked_mul(mult)?)
}

/// An entry as one RFC 5424 syslog line: facility 13 (log audit),
/// severity from the event, the event JSON as the message, and the seq,
/// op and outcome as structured data under our SD-ID
/// `phivault@32473` (32473 is the example enterprise number of RFC 5612;
/// replace it with your own in a SIEM parser if you need to).
pub fn syslog_line(e: &Entry, host: &str) -> String {
    let sev = match (e.event.severity, e.event.outcome) {
        (Severity::High, _) => 2,
        (_, Outcome::Error) => 3,
        (Severity::Warn, _) | (_, Outcome::Denied) => 4,
        _ => 6,
    };
    let pri = 13 * 8 + sev;
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace(']', "\\]")
    };
    let host = if host.is_empty() { "-" } else { host };
    let json = String::from_utf8(e.event.to_json()).expect("JSON is UTF-8");
    format!(
        "<{pri}>1 {} {host} phivault - {} [phivault@32473 seq=\"{}\" op=\"{}\" outcome=\"{}\"{}] {json}",
        e.event.time,
        esc(&e.event.op).replace(' ', "_"),
        e.seq,
        esc(&e.event.op),
        match e.event.outcome {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        },
        e.event
            .principal
            .as_deref()
            .map(|p| format!(" principal=\"{}\"", esc(p)))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_times() {
        let mut e = Event::new(Kind::Request, "records.read");
        e.principal = Some("spiffe://x/app".into());
        e.subjects = vec!["ab".into()];
        let f = Filter {
            op: Some("records.*".into()),
            subject: Some("ab".into()),
            ..Default::default()
        };
        assert!(f.matches(&e));
        let f = Filter {
            denied: true,
            ..Default::default()
        };
        assert!(!f.matches(&e));
        assert_eq!(parse_when("2h", 10_000_000), Some(10_000_000 - 7_200_000));
        assert_eq!(parse_when("1970-01-01", 0), Some(0));
        assert_eq!(parse_when("soon", 0), None);
        // Regression (cargo-fuzz): a multi-byte last character panicked.
        assert_eq!(parse_when("\u{3dc}", 0), None);
        assert_eq!(parse_when("5\u{e9}", 0), None);
    }

    #[test]
    fn syslog_is_rfc5424_shaped() {
        let mut ev = Event::new(Kind::Request, "transit.encrypt");
        ev.principal = Some("spiffe://x/\"q\"".into());
        let l = syslog_line(&Entry { seq: 7, event: ev }, "h1");
        assert!(l.starts_with("<110>1 "), "{l}");
        assert!(
            l.contains(" h1 phivault - transit.encrypt [phivault@32473 seq=\"7\""),
            "{l}"
        );
        assert!(l.contains("principal=\"spiffe://x/\\\"q\\\"\""), "{l}");
    }
}
