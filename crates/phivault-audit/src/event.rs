//! The audit event: what one entry of the trail says.
//!
//! An event names who (principal, certificate fingerprint, token id), what
//! (operation, resource, scopes used), why (purpose of use, break-glass
//! reason), on what (record and subject ids, only as HMACs under the audit
//! key), and how it ended (outcome, status, latency), over which TLS.
//! It never holds a PHI value or key material: the types have no field for
//! request or response bodies, and the server fills `detail` only with
//! counts, versions and names of keys, collections and settings.

use serde::{Deserialize, Serialize};

/// What kind of activity an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// An API request (every routed or refused request).
    Request,
    /// A TLS handshake that failed or was refused.
    Handshake,
    /// A failed authentication (no certificate, bad token).
    Auth,
    /// A key lifecycle event: create, rotate, destroy, shred, backup.
    Key,
    /// Seal and unseal.
    Seal,
    /// Server start, stop and configuration reloads.
    Server,
    /// The audit trail's own events (a torn tail recovered at start).
    Audit,
}

/// How much attention an event needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Routine activity.
    #[default]
    Info,
    /// Refusals and failures.
    Warn,
    /// Break-glass access, destruction of keys, tampering found.
    High,
}

/// How the activity ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    #[default]
    Ok,
    /// Refused: authentication, authorization, TLS policy.
    Denied,
    /// Failed: bad input or a server-side error.
    Error,
}

/// The TLS session a request came over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub suite: String,
}

/// One audit event. Field order is the JSON order (stable, for readers
/// that grep); absent fields are omitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Kind.
    pub kind: Kind,
    /// Severity.
    #[serde(default)]
    pub severity: Severity,
    /// Operation, e.g. `transit.encrypt`, `records.read`, `key.rotate`.
    pub op: String,
    /// Outcome.
    #[serde(default)]
    pub outcome: Outcome,
    /// The request id (also sent to the client as `X-Request-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The node that wrote the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The authenticated principal (certificate identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// SHA-256 of the client certificate (RFC 8705 `x5t#S256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The bearer token's id (`jti`), when one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The scopes the request was checked against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// HL7 PurposeOfUse code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The key ring or collection, e.g. `transit/billing`, `records/patients`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Record ids, as HMAC-SHA-256 under the audit key (hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
    /// Data-subject ids, as HMAC-SHA-256 under the audit key (hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Time from request to response, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// TLS session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsInfo>,
    /// Peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why it was refused or failed: a bounded reason code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Break-glass: the reason the caller stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<String>,
    /// Counts, versions, names: never a value from a request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl Event {
    /// A new event of `kind` for `op`, stamped now.
    pub fn new(kind: Kind, op: impl Into<String>) -> Self {
        Self {
            time: now_rfc3339(),
            kind,
            severity: Severity::Info,
            op: op.into(),
            outcome: Outcome::Ok,
            request_id: None,
            node: None,
            principal: None,
            cert_sha256: None,
            token_id: None,
            scopes: Vec::new(),
            purpose: None,
            resource: None,
            records: Vec::new(),
            subjects: Vec::new(),
            status: None,
            latency_us: None,
            tls: None,
            peer: None,
            reason: None,
            break_glass: None,
            detail: None,
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, d: serde_json::Value) -> Self {
        self.detail = Some(d);
        self
    }

    /// Sets a reason code.
    pub fn reason(mut self, r: impl Into<String>) -> Self {
        self.reason = Some(r.into());
        self
    }

    /// The event's time as Unix milliseconds (0 if it does not parse).
    pub fn unix_ms(&self) -> i64 {
        parse_time_ms(&self.time).unwrap_or(0)
    }

    /// The JSON bytes written to the log.
    pub fn to_json(&self) -> Vec<u8> {
        // A request's event is 500–800 bytes: one allocation, no regrowth
        // (serde_json's own start is 128 bytes, then three copies).
        let mut v = Vec::with_capacity(1024);
        self.write_json(&mut v);
        v
    }

    /// Appends [`Self::to_json`]'s bytes to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("an event always serializes");
    }
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    thread_local! {
        /// The last second formatted, `YYYY-MM-DDTHH:MM:SS`: every event
        /// has a timestamp, and formatting a whole date costs more than
        /// the rest of a small event's serialization.
        static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    let (secs, ms) = (now.unix_timestamp(), now.millisecond());
    SECOND.with_borrow_mut(|(at, text)| {
        if *at != secs {
            let mut full = format_ms(now);
            full.truncate(19);
            *text = full;
            *at = secs;
        }
        let mut s = String::with_capacity(24);
        s.push_str(text);
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!(".{ms:03}Z"));
        s
    })
}

fn format_ms(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).expect("formats")
}

/// Parses an RFC 3339 time (or a bare date, `YYYY-MM-DD`, as midnight
/// UTC) to Unix milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &f)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Formats Unix milliseconds as RFC 3339 UTC.
pub fn format_unix_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(format_ms)
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_from_the_cached_second_match_a_full_format() {
        for _ in 0..3 {
            let before = time::OffsetDateTime::now_utc();
            let s = now_rfc3339();
            let after = time::OffsetDateTime::now_utc();
            assert_eq!(s.len(), 24, "{s}");
            assert!(s.ends_with('Z'));
            let ms = parse_time_ms(&s).expect("RFC 3339");
            let lo = (before.unix_timestamp_nanos() / 1_000_000) as i64;
            let hi = (after.unix_timestamp_nanos() / 1_000_000) as i64;
            assert!((lo..=hi).contains(&ms), "{s} not in {lo}..={hi}");
            assert_eq!(s, format_unix_ms(ms));
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }

    #[test]
    fn round_trips_and_omits_empty_fields() {
        let mut e = Event::new(Kind::Request, "transit.encrypt");
        e.principal = Some("spiffe://phivault.local/app".into());
        let j = String::from_utf8(e.to_json()).unwrap();
        assert!(j.starts_with("{\"time\":\""), "{j}");
        assert!(!j.contains("records"), "{j}");
        let back: Event = serde_json::from_str(&j).unwrap();
        assert_eq!(back, e);
        assert!(back.unix_ms() > 1_700_000_000_000);
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(format_unix_ms(1500), "1970-01-01T00:00:01.500Z");
        assert_eq!(parse_time_ms("yesterday"), None);
    }
}
