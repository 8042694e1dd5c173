//! Findings: one checked requirement, its verdict, the evidence and what to
//! do about it. Shared by the TLS scan, the at-rest scan and the evidence
//! report, and rendered as JUnit XML for CI pipelines.

use serde::{Deserialize, Serialize};

/// The verdict on one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Met.
    Pass,
    /// Informational: nothing to judge (e.g. not applicable).
    Info,
    /// Allowed but worth a look (e.g. a certificate expiring soon).
    Warn,
    /// Not met. Any fail makes `phivault scan` exit non-zero.
    Fail,
}

impl Status {
    /// Lower-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Info => "info",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One checked requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable requirement id, e.g. `NIST-800-52r2-3.1-versions`.
    pub id: String,
    /// One line saying what is required.
    pub title: String,
    /// The verdict.
    pub status: Status,
    /// What was observed (never PHI or key material).
    pub evidence: String,
    /// What to do when the status is not pass; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remediation: String,
}

impl Finding {
    /// A finding with an empty remediation.
    pub fn new(id: &str, title: &str, status: Status, evidence: impl Into<String>) -> Self {
        Finding {
            id: id.to_owned(),
            title: title.to_owned(),
            status,
            evidence: evidence.into(),
            remediation: String::new(),
        }
    }

    /// Adds the remediation (kept only when the status is not pass).
    pub fn fix(mut self, remediation: impl Into<String>) -> Self {
        if self.status != Status::Pass {
            self.remediation = remediation.into();
        }
        self
    }
}

/// The worst status among `findings` (`Pass` when empty).
pub fn worst<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Status {
    findings
        .into_iter()
        .map(|f| f.status)
        .max()
        .unwrap_or(Status::Pass)
}

/// Renders suites of findings as JUnit XML: one `<testsuite>` per suite
/// (e.g. per scanned target), one `<testcase>` per finding; fail is a
/// `<failure>`, warn and info are `<system-out>` notes.
pub fn junit(suites: &[(String, Vec<Finding>)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"phivault scan\">\n",
    );
    for (name, findings) in suites {
        let failures = findings.iter().filter(|f| f.status == Status::Fail).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
            xml_escape(name),
            findings.len(),
            failures
        ));
        for f in findings {
            out.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}: {}\">",
                xml_escape(name),
                xml_escape(&f.id),
                xml_escape(&f.title)
            ));
            match f.status {
                Status::Fail => out.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    xml_escape(&f.evidence),
                    xml_escape(&f.remediation)
                )),
                Status::Pass => {}
                s => out.push_str(&format!(
                    "<system-out>{}: {}</system-out>",
                    s.as_str(),
                    xml_escape(&f.evidence)
                )),
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escapes text for XML content and attribute values. Control characters
/// that XML 1.0 forbids become U+FFFD.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_counts_failures_and_escapes() {
        let f = vec![
            Finding::new("a", "x<y", Status::Pass, "ok"),
            Finding::new("b", "t", Status::Fail, "saw \"SSLv3\" & more").fix("disable it"),
        ];
        let x = junit(&[("h:1".into(), f)]);
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("x&lt;y"));
        assert!(x.contains("saw &quot;SSLv3&quot; &amp; more"));
        assert_eq!(worst(&[]), Status::Pass);
    }
}
