//! Collection schemas: which fields of a record are PHI, and how each is
//! protected. Parsed once into [`Schema`]; everything downstream works on
//! the parsed form (parse, don't validate).
//!
//! The JSON form is documented in docs/FORMAT.md §11.2; an example:
//!
//! ```json
//! { "expected_rows": 1000000, "unknown_fields": "phi", "subject": "patient_id",
//!   "fields": {
//!     "patient_id":  { "class": "phi_search", "normalize": ["whitespace"] },
//!     "name.family": { "class": "phi_search", "normalize": ["lowercase", "whitespace"], "mask": "initials" },
//!     "ssn":         { "class": "token", "alphabet": "digits", "mask": "last4" },
//!     "gender":      { "class": "plain" } },
//!   "indexes": { "family_dob": { "fields": ["name.family", "birth_date"] } } }
//! ```

use super::RecordError;
use super::path::{FieldPath, Segment};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most fields a schema may declare.
pub const MAX_FIELDS: usize = 512;
/// The most indexes (single-field and compound) a schema may declare.
pub const MAX_INDEXES: usize = 32;
/// The most fields in one compound index.
pub const MAX_COMPOUND: usize = 8;
/// The smallest FF1 domain phivault tokenizes (NIST SP 800-38G Rev. 1).
pub const MIN_TOKEN_DOMAIN: f64 = 1_000_000.0;

/// How a field is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Encrypted, randomized.
    Phi,
    /// Encrypted, plus a blind index for exact-match search.
    PhiSearch,
    /// Format-preserving FF1 token.
    Token,
    /// Not PHI: stored in the clear, filterable.
    Plain,
}

impl Class {
    /// Whether the stored form is ciphertext or a token.
    pub fn protected(self) -> bool {
        self != Self::Plain
    }
}

/// A normalization step applied before blind indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalizer {
    /// Unicode lowercase.
    Lowercase,
    /// Trim, and collapse runs of whitespace to one space.
    Whitespace,
    /// Keep ASCII digits only.
    Digits,
}

impl Normalizer {
    fn apply(self, s: &str) -> String {
        match self {
            Self::Lowercase => s.to_lowercase(),
            Self::Whitespace => s.split_whitespace().collect::<Vec<_>>().join(" "),
            Self::Digits => s.chars().filter(char::is_ascii_digit).collect(),
        }
    }
}

/// What the masked view shows of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Every digit but the last four becomes `*` (`***-**-6789`).
    Last4,
    /// A date's year only (`1970-03-14` → `1970`).
    Year,
    /// Initials (`Mary Ann Smith` → `M. A. S.`).
    Initials,
}

impl Mask {
    /// Applies the mask to a string value.
    pub fn apply(self, s: &str) -> String {
        match self {
            Self::Last4 => {
                let digits = s.chars().filter(char::is_ascii_digit).count();
                let mut seen = 0;
                s.chars()
                    .map(|c| {
                        if c.is_ascii_digit() {
                            seen += 1;
                            if seen + 4 <= digits { '*' } else { c }
                        } else if c.is_alphanumeric() {
                            '*'
                        } else {
                            c
                        }
                    })
                    .collect()
            }
            Self::Year => {
                let y: String = s.chars().take(4).collect();
                if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) {
                    y
                } else {
                    "****".into()
                }
            }
            Self::Initials => s
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .map(|c| format!("{}.", c.to_uppercase()))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// The characters a token field encrypts; others pass through in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alphabet {
    /// `0-9`, radix 10 (SSN, phone, numeric MRN).
    Digits,
    /// `0-9A-Z`, radix 36 (upper-case alphanumeric MRNs); lower-case input
    /// is refused rather than passed through.
    UpperAlnum,
}

impl Alphabet {
    /// The radix.
    pub fn radix(self) -> u32 {
        match self {
            Self::Digits => 10,
            Self::UpperAlnum => 36,
        }
    }
    /// The numeral of a character, if it is in the alphabet.
    pub fn numeral(self, c: char) -> Option<u16> {
        match (self, c) {
            (_, '0'..='9') => Some(c as u16 - '0' as u16),
            (Self::UpperAlnum, 'A'..='Z') => Some(c as u16 - 'A' as u16 + 10),
            _ => None,
        }
    }
    /// The character of a numeral.
    pub fn char(self, n: u16) -> char {
        if n < 10 {
            (b'0' + n as u8) as char
        } else {
            (b'A' + (n - 10) as u8) as char
        }
    }
    /// Whether a character outside the alphabet must be refused (not
    /// passed through): letters, for the alphanumeric alphabet.
    pub fn refuses(self, c: char) -> bool {
        self == Self::UpperAlnum && c.is_alphabetic()
    }
}

/// Unknown-field policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// Fields the schema doesn't name are encrypted as `phi` (default).
    #[default]
    Phi,
    /// Writes with such fields are refused.
    Reject,
}

/// One field's declaration, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    /// The class.
    pub class: Class,
    /// Normalization before indexing (`phi_search`, or compound members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub normalize: Vec<Normalizer>,
    /// Masked-view rendering; without one the masked view omits the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
    /// Token alphabet (`token` only; default digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabet: Option<Alphabet>,
    /// Estimated entropy of the field's values in bits, which caps its
    /// blind index length (e.g. 16 for a birth date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_bits: Option<u32>,
}

/// A compound index, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDecl {
    /// The member fields, in order.
    pub fields: Vec<String>,
}

/// A schema as written (the JSON document an admin submits).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaDecl {
    /// Expected number of records: sizes blind indexes.
    #[serde(default = "default_rows")]
    pub expected_rows: u64,
    /// Policy for fields the schema doesn't name.
    #[serde(default)]
    pub unknown_fields: Unknown,
    /// The field whose value identifies the data subject (gets its own key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Fields by path.
    pub fields: BTreeMap<String, FieldDecl>,
    /// Compound indexes by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexes: BTreeMap<String, IndexDecl>,
}

fn default_rows() -> u64 {
    1_000_000
}

/// A declared field, parsed.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its path.
    pub path: FieldPath,
    /// The declaration.
    pub decl: FieldDecl,
}

/// A blind index, planned.
#[derive(Debug, Clone)]
pub struct Index {
    /// Name (a `phi_search` field's index is named by its path).
    pub name: String,
    /// Member fields (indexes into [`Schema::fields`]).
    pub fields: Vec<usize>,
    /// Truncated length in bits.
    pub bits: u32,
}

/// The schema trie the document walk follows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    pub(crate) leaf: Option<usize>,
    pub(crate) keys: BTreeMap<String, Node>,
    pub(crate) any: Option<Box<Node>>,
}

/// A parsed, checked schema.
#[derive(Debug, Clone)]
pub struct Schema {
    decl: SchemaDecl,
    /// Fields, sorted by path.
    pub fields: Vec<Field>,
    /// Indexes, single-field first.
    pub indexes: Vec<Index>,
    /// The subject field, if any.
    pub subject: Option<usize>,
    pub(crate) root: Node,
}

fn bad(why: impl Into<String>) -> RecordError {
    RecordError::BadSchema(why.into())
}

fn valid_index_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The index length budget for `rows` records: the largest `L` with
/// `rows / 2^L ≥ 2`, so every index value is expected to be shared by at
/// least two records (CipherSweet's lower bound on coincidences), and at
/// least 8 bits.
pub fn index_budget_bits(rows: u64) -> u32 {
    let log2 = 63 - rows.max(1).leading_zeros();
    log2.saturating_sub(1).clamp(8, 64)
}

impl Schema {
    /// Parses schema JSON.
    pub fn parse_json(bytes: &[u8]) -> Result<Self, RecordError> {
        let decl: SchemaDecl = serde_json::from_slice(bytes)
            .map_err(|e| bad(format!("not a valid schema document: {e}")))?;
        Self::from_decl(decl)
    }

    /// The declaration this was parsed from (what is stored and shown).
    pub fn decl(&self) -> &SchemaDecl {
        &self.decl
    }

    /// The field at a declared path.
    pub fn field(&self, path: &str) -> Option<&Field> {
        let p = FieldPath::parse(path).ok()?;
        self.fields.iter().find(|f| f.path == p)
    }

    /// An index by name.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// Checks a declaration and plans its indexes.
    pub fn from_decl(decl: SchemaDecl) -> Result<Self, RecordError> {
        if decl.fields.len() > MAX_FIELDS {
            return Err(bad(format!("more than {MAX_FIELDS} fields")));
        }
        if decl.expected_rows == 0 {
            return Err(bad("expected_rows must be at least 1"));
        }
        let mut fields = Vec::new();
        let mut root = Node::default();
        for (p, d) in &decl.fields {
            let path = FieldPath::parse(p)?;
            let shown = path.to_string();
            let wants = |ok: bool, what: &str| {
                if ok {
                    Ok(())
                } else {
                    Err(bad(format!("field {shown}: {what}")))
                }
            };
            wants(
                d.normalize.is_empty() || d.class == Class::PhiSearch || d.class == Class::Phi,
                "normalize applies to phi_search fields and compound index members",
            )?;
            wants(
                d.mask.is_none() || d.class.protected(),
                "a plain field is shown as it is; mask applies to protected fields",
            )?;
            wants(
                d.alphabet.is_none() || d.class == Class::Token,
                "alphabet applies to token fields",
            )?;
            wants(
                d.domain_bits.is_none_or(|b| (1..=256).contains(&b)),
                "domain_bits must be 1-256",
            )?;
            fields.push(Field {
                path,
                decl: d.clone(),
            });
        }
        fields.sort_by(|a, b| a.path.cmp(&b.path));
        for (i, f) in fields.iter().enumerate() {
            let mut node = &mut root;
            for seg in f.path.segments() {
                if node.leaf.is_some() {
                    return Err(bad(format!(
                        "field {} lies inside another declared field; a field's class covers its whole value",
                        f.path
                    )));
                }
                node = match seg {
                    Segment::Key(k) => node.keys.entry(k.clone()).or_default(),
                    Segment::AnyIndex => node.any.get_or_insert_with(Default::default),
                };
            }
            if node.leaf.is_some() || !node.keys.is_empty() || node.any.is_some() {
                return Err(bad(format!(
                    "field {} contains other declared fields; a field's class covers its whole value",
                    f.path
                )));
            }
            node.leaf = Some(i);
        }
        let find = |p: &str| -> Result<usize, RecordError> {
            let path = FieldPath::parse(p)?;
            fields
                .iter()
                .position(|f| f.path == path)
                .ok_or_else(|| bad(format!("{path} is not a declared field")))
        };
        let subject = match &decl.subject {
            None => None,
            Some(p) => {
                let i = find(p)?;
                let f = &fields[i];
                if f.path.segments().contains(&Segment::AnyIndex) {
                    return Err(bad("the subject field can't be inside an array"));
                }
                if f.decl.class == Class::Token {
                    return Err(bad(
                        "the subject field can't be a token (its key derives from the subject)",
                    ));
                }
                Some(i)
            }
        };
        // Indexes: one per phi_search field, then the compounds.
        let mut indexes: Vec<Index> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.decl.class == Class::PhiSearch)
            .map(|(i, f)| Index {
                name: f.path.to_string(),
                fields: vec![i],
                bits: 0,
            })
            .collect();
        for (name, d) in &decl.indexes {
            if !valid_index_name(name) {
                return Err(bad(format!(
                    "index name {:?}: use 1-64 characters of a-z, 0-9 and '_'",
                    super::path::printable(name)
                )));
            }
            if d.fields.len() < 2 || d.fields.len() > MAX_COMPOUND {
                return Err(bad(format!(
                    "index {name}: a compound index has 2-{MAX_COMPOUND} fields"
                )));
            }
            let mut members = Vec::new();
            for p in &d.fields {
                let i = find(p)?;
                let f = &fields[i];
                if !matches!(f.decl.class, Class::Phi | Class::PhiSearch) {
                    return Err(bad(format!(
                        "index {name}: member {} must be phi or phi_search",
                        f.path
                    )));
                }
                if f.path.segments().contains(&Segment::AnyIndex) {
                    return Err(bad(format!(
                        "index {name}: member {} is inside an array",
                        f.path
                    )));
                }
                if members.contains(&i) {
                    return Err(bad(format!("index {name}: {} listed twice", f.path)));
                }
                members.push(i);
            }
            indexes.push(Index {
                name: name.clone(),
                fields: members,
                bits: 0,
            });
        }
        if indexes.len() > MAX_INDEXES {
            return Err(bad(format!("more than {MAX_INDEXES} indexes")));
        }
        let mut names: Vec<&str> = indexes.iter().map(|i| i.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("two indexes share a name"));
        }
        plan(&mut indexes, &fields, decl.expected_rows);
        Ok(Self {
            decl,
            fields,
            indexes,
            subject,
            root,
        })
    }

    /// Normalizes a field's value for indexing.
    pub fn normalize(&self, field: usize, value: &str) -> String {
        self.fields[field]
            .decl
            .normalize
            .iter()
            .fold(value.to_owned(), |s, n| n.apply(&s))
    }
}

/// Sizes every index (docs/FORMAT.md §11.4): the budget for the expected
/// rows is split between the indexes that cover the same field, so that
/// intersecting them doesn't single out a record either, and capped by the
/// members' declared entropy less one bit.
fn plan(indexes: &mut [Index], fields: &[Field], rows: u64) {
    let budget = index_budget_bits(rows);
    let cover: Vec<u32> = (0..fields.len())
        .map(|f| indexes.iter().filter(|i| i.fields.contains(&f)).count() as u32)
        .collect();
    for ix in indexes.iter_mut() {
        let share = ix
            .fields
            .iter()
            .map(|&f| budget / cover[f].max(1))
            .min()
            .unwrap_or(budget);
        let entropy: Option<u32> = ix
            .fields
            .iter()
            .map(|&f| fields[f].decl.domain_bits)
            .sum::<Option<u32>>();
        let cap = entropy.map_or(u32::MAX, |e| e.saturating_sub(1).max(1));
        ix.bits = share.min(cap).clamp(1, 256);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const PATIENT: &str = r#"{
      "expected_rows": 1000000, "subject": "patient_id",
      "fields": {
        "patient_id": {"class": "phi_search", "normalize": ["whitespace"]},
        "name[*].family": {"class": "phi_search", "normalize": ["lowercase", "whitespace"], "mask": "initials"},
        "name[*].given": {"class": "phi", "mask": "initials"},
        "family": {"class": "phi", "normalize": ["lowercase"]},
        "birth_date": {"class": "phi", "mask": "year", "domain_bits": 15},
        "ssn": {"class": "token", "mask": "last4"},
        "gender": {"class": "plain"}
      },
      "indexes": {"family_dob": {"fields": ["family", "birth_date"]}}
    }"#;

    #[test]
    fn parses_and_plans() {
        let s = Schema::parse_json(PATIENT.as_bytes()).unwrap();
        assert_eq!(s.indexes.len(), 3);
        // 1M rows: budget floor(log2 1e6) - 1 = 18.
        assert_eq!(index_budget_bits(1_000_000), 18);
        assert_eq!(s.index("patient_id").unwrap().bits, 18);
        // birth_date has 15 bits of entropy; the compound is not capped by
        // it alone because family is unbounded.
        assert_eq!(s.index("family_dob").unwrap().bits, 18);
        assert_eq!(index_budget_bits(10), 8);
    }

    #[test]
    fn entropy_caps_and_shared_fields_split_the_budget() {
        let s = Schema::parse_json(
            br#"{"expected_rows": 65536, "fields": {
                "a": {"class": "phi_search", "domain_bits": 6},
                "b": {"class": "phi_search"},
                "c": {"class": "phi"}},
              "indexes": {"bc": {"fields": ["b", "c"]}}}"#,
        )
        .unwrap();
        assert_eq!(s.index("a").unwrap().bits, 5);
        assert_eq!(s.index("b").unwrap().bits, 7);
        assert_eq!(s.index("bc").unwrap().bits, 7);
    }

    #[test]
    fn refuses_bad_schemas_by_name() {
        let cases = [
            (r#"{"fields": {"a": {"class": "secret"}}}"#, "valid schema"),
            (
                r#"{"fields": {"a": {"class": "plain", "mask": "last4"}}}"#,
                "field a",
            ),
            (
                r#"{"fields": {"a": {"class": "phi"}, "a.b": {"class": "phi"}}}"#,
                "another declared field",
            ),
            (
                r#"{"subject": "x", "fields": {"a": {"class": "phi"}}}"#,
                "x is not a declared",
            ),
            (
                r#"{"fields": {"a": {"class": "phi"}}, "indexes": {"i": {"fields": ["a"]}}}"#,
                "2-8 fields",
            ),
            (r#"{"fields": {"a b": {"class": "phi"}}}"#, "each segment"),
            (r#"{"fields": {}, "extra": 1}"#, "unknown field"),
            (
                r#"{"fields": {"t": {"class": "token"}}, "subject": "t"}"#,
                "token",
            ),
        ];
        for (doc, want) in cases {
            let e = Schema::parse_json(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    #[test]
    fn masks_and_normalizers() {
        assert_eq!(Mask::Last4.apply("123-45-6789"), "***-**-6789");
        assert_eq!(Mask::Last4.apply("12"), "12");
        assert_eq!(Mask::Year.apply("1970-03-14"), "1970");
        assert_eq!(Mask::Year.apply("March"), "****");
        assert_eq!(Mask::Initials.apply(" mary  ann Smith"), "M. A. S.");
        assert_eq!(Normalizer::Whitespace.apply("  a \t b "), "a b");
        assert_eq!(Normalizer::Digits.apply("(555) 010-2000"), "5550102000");
        assert_eq!(Normalizer::Lowercase.apply("ÉCOLE"), "école");
    }
}
