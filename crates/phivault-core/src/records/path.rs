//! Field paths: how a schema names a place in a JSON document.
//!
//! Syntax (docs/FORMAT.md §11): an optional `$.` then segments separated by
//! `.`; a segment is an object key of `[A-Za-z0-9_-]` (1-64 characters),
//! optionally followed by `[*]` to mean "every element of this array".
//! Examples: `ssn`, `name.family`, `$.name[*].given`, `telecom[*].value`.
//!
//! A [`FieldPath`] is the declared pattern; a [`ConcretePath`] is one place
//! in one document (`name[0].given`), and is what ciphertexts bind.

use super::RecordError;
use core::fmt;

/// The most segments a path may have (keys plus `[*]`s).
pub const MAX_DEPTH: usize = 16;
/// The longest key segment.
pub const MAX_KEY_LEN: usize = 64;

/// One step of a declared path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// An object key.
    Key(String),
    /// Every element of an array.
    AnyIndex,
}

/// A declared field path, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<Segment>);

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FieldPath {
    /// Parses `a.b[*].c` (optionally prefixed `$.`).
    pub fn parse(s: &str) -> Result<Self, RecordError> {
        let bad = |why: &'static str| RecordError::BadPath {
            path: printable(s),
            why,
        };
        let body = s.strip_prefix("$.").unwrap_or(s);
        if body.is_empty() {
            return Err(bad("empty path"));
        }
        let mut segs = Vec::new();
        for part in body.split('.') {
            let (key, arrays) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !valid_key(key) {
                return Err(bad(
                    "each segment must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'",
                ));
            }
            segs.push(Segment::Key(key.to_owned()));
            let mut rest = arrays;
            while !rest.is_empty() {
                rest = rest
                    .strip_prefix("[*]")
                    .ok_or_else(|| bad("only [*] may follow a key"))?;
                segs.push(Segment::AnyIndex);
            }
        }
        if segs.len() > MAX_DEPTH {
            return Err(bad("more than 16 segments"));
        }
        Ok(Self(segs))
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            match s {
                Segment::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::AnyIndex => f.write_str("[*]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// One step of a concrete path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// An object key (any string the document used).
    Key(String),
    /// An array index.
    Index(usize),
}

/// A place in one document, e.g. `name[0].given`. Object keys that are not
/// plain identifiers are written JSON-quoted (`["a.b"]`), so two different
/// places never print the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConcretePath(pub Vec<Step>);

impl ConcretePath {
    /// A child path.
    pub fn child(&self, step: Step) -> Self {
        let mut v = self.0.clone();
        v.push(step);
        Self(v)
    }

    /// Parses the printed form back (the stored documents key by it).
    pub fn parse(s: &str) -> Result<Self, RecordError> {
        let bad = || RecordError::Corrupt("bad stored field path");
        let b = s.as_bytes();
        let mut i = 0;
        let mut steps = Vec::new();
        while i < b.len() {
            match b[i] {
                b'[' if b.get(i + 1) == Some(&b'"') => {
                    // A JSON string up to the closing `"]`.
                    let mut de = serde_json::Deserializer::from_str(&s[i + 1..]).into_iter();
                    let key: String = match de.next() {
                        Some(Ok(serde_json::Value::String(k))) => k,
                        _ => return Err(bad()),
                    };
                    i += 1 + de.byte_offset();
                    if b.get(i) != Some(&b']') {
                        return Err(bad());
                    }
                    i += 1;
                    steps.push(Step::Key(key));
                }
                b'[' => {
                    let end = s[i..].find(']').ok_or_else(bad)? + i;
                    let n: usize = s[i + 1..end].parse().map_err(|_| bad())?;
                    steps.push(Step::Index(n));
                    i = end + 1;
                }
                b'.' if !steps.is_empty() => i += 1,
                _ => {
                    let end = s[i..].find(['.', '[']).map(|e| e + i).unwrap_or(b.len());
                    let k = &s[i..end];
                    if !valid_key(k) {
                        return Err(bad());
                    }
                    steps.push(Step::Key(k.to_owned()));
                    i = end;
                }
            }
        }
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(Self(steps))
    }
}

impl fmt::Display for ConcretePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in self.0.iter().enumerate() {
            match s {
                Step::Key(k) if valid_key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Key(k) => {
                    write!(f, "[{}]", serde_json::Value::String(k.clone()))?;
                }
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A path string safe to put in an error: its first 80 characters with
/// control characters replaced. (A path is schema text, never a value.)
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn declared_paths() {
        let p = FieldPath::parse("$.name[*].given").unwrap();
        assert_eq!(p.to_string(), "name[*].given");
        assert_eq!(p.segments().len(), 3);
        assert_eq!(FieldPath::parse("ssn").unwrap().to_string(), "ssn");
        for bad in [
            "", "$.", "a..b", "a.", ".a", "a[0]", "a[*", "a b", "a[*]x", "é",
        ] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?}");
        }
        let deep = vec!["a"; 17].join(".");
        assert!(FieldPath::parse(&deep).is_err());
    }

    #[test]
    fn concrete_paths_round_trip() {
        let p = ConcretePath(vec![
            Step::Key("name".into()),
            Step::Index(0),
            Step::Key("a.b\"]".into()),
            Step::Key("given".into()),
        ]);
        let s = p.to_string();
        assert_eq!(s, r#"name[0]["a.b\"]"].given"#);
        assert_eq!(ConcretePath::parse(&s).unwrap(), p);
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            "[a-z_]{1,8}".prop_map(Step::Key),
            ".{0,8}".prop_map(Step::Key),
            (0usize..1000).prop_map(Step::Index),
        ]
    }

    proptest! {
        #[test]
        fn concrete_round_trip(first in "[a-z]{1,8}", rest in proptest::collection::vec(step(), 0..6)) {
            let mut steps = vec![Step::Key(first)];
            steps.extend(rest);
            let p = ConcretePath(steps);
            prop_assert_eq!(ConcretePath::parse(&p.to_string()).unwrap(), p);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = FieldPath::parse(&s);
            let _ = ConcretePath::parse(&s);
        }
    }
}
