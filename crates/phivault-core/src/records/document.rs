//! A document's stored form, and the way there and back.
//!
//! [`seal`] walks a JSON document along the schema: plain fields stay in a
//! *skeleton* (the document with every protected value taken out, its
//! containers kept); every protected value is sealed under the subject key
//! or tokenized; blind indexes are computed. A record MAC under the
//! subject key covers the skeleton, the tokens and the sealed values
//! together, so no stored byte can change unnoticed (docs/FORMAT.md §11.3).
//! [`open`] checks the MAC, opens the values and renders a [`View`].

use super::field::{IndexKeys, RecordKey};
use super::path::{ConcretePath, Step};
use super::schema::{Class, Node, Schema, Unknown};
use super::{RecordError, SubjectKey, encode_parts};
use crate::keys::{self, DerivedKey};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;
const MAC_LABEL: &[u8] = b"phivault record mac v1";
/// Deepest nesting a document may have.
pub const MAX_NESTING: usize = 32;
/// Most protected values one document may hold.
pub const MAX_PROTECTED: usize = 4096;

/// Which rendering of a record a reader gets (by scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Every field in the clear.
    Full,
    /// Fields with a declared mask are masked; other protected fields absent.
    Masked,
    /// Protected fields absent; plain fields only.
    Redacted,
}

impl View {
    /// The name used in scopes (`records:read`, `records:read-masked`, …).
    pub fn scope_op(self) -> &'static str {
        match self {
            Self::Full => "read",
            Self::Masked => "read-masked",
            Self::Redacted => "read-redacted",
        }
    }
}

/// The stored form of one record: only ciphertext, tokens and plain values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDoc {
    /// The schema version it was sealed under.
    pub v: u32,
    /// The record key's header (nonce ‖ commitment, base64) its sealed
    /// values (field format 2) are under; absent in records of format 1
    /// and in records without sealed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
    /// The skeleton: plain values, and the containers of protected ones.
    pub plain: Value,
    /// Sealed values (PVF, base64) by concrete path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sealed: BTreeMap<String, String>,
    /// FF1 tokens by concrete path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, String>,
    /// Record MAC (base64).
    pub mac: String,
}

/// What [`seal`] produces: the stored form and the index entries.
#[derive(Debug)]
pub struct Sealed {
    /// The stored document.
    pub doc: StoredDoc,
    /// `doc` as JSON (what the store keeps), serialized once.
    pub body: String,
    /// The skeleton as JSON (for filters on plain fields).
    pub plain_json: String,
    /// `(index name, truncated blind index)` pairs.
    pub indexes: Vec<(String, Vec<u8>)>,
}

/// One value the walk found.
struct Item<'v> {
    path: ConcretePath,
    /// The declared field, or `None` for an unknown field (sealed as phi).
    field: Option<usize>,
    value: &'v Value,
}

fn violation(path: &ConcretePath, why: impl Into<String>) -> RecordError {
    RecordError::Violation {
        path: super::path::printable(&path.to_string()),
        why: why.into(),
    }
}

fn walk<'v>(
    schema: &Schema,
    node: &Node,
    value: &'v Value,
    path: &ConcretePath,
    out: &mut Vec<Item<'v>>,
) -> Result<(), RecordError> {
    if path.0.len() > MAX_NESTING {
        return Err(violation(
            path,
            format!("nested deeper than {MAX_NESTING} levels"),
        ));
    }
    if let Some(f) = node.leaf {
        out.push(Item {
            path: path.clone(),
            field: Some(f),
            value,
        });
        return Ok(());
    }
    let unknown = |out: &mut Vec<Item<'v>>, p: ConcretePath, v: &'v Value| match schema
        .decl()
        .unknown_fields
    {
        Unknown::Phi => {
            out.push(Item {
                path: p,
                field: None,
                value: v,
            });
            Ok(())
        }
        Unknown::Reject => Err(violation(
            &p,
            "not in the collection's schema (unknown_fields is \"reject\"); declare it or remove it",
        )),
    };
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let p = path.child(Step::Key(k.clone()));
                match node.keys.get(k) {
                    Some(n) => walk(schema, n, v, &p, out)?,
                    None => unknown(out, p, v)?,
                }
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let p = path.child(Step::Index(i));
                match &node.any {
                    Some(n) => walk(schema, n, v, &p, out)?,
                    None => unknown(out, p, v)?,
                }
            }
        }
        _ => unknown(out, path.clone(), value)?,
    }
    if out.len() > MAX_PROTECTED * 4 {
        return Err(violation(path, "too many fields in one record"));
    }
    Ok(())
}

/// Replaces (`Some`) or takes out (`None`: removed from an object, `null`
/// in an array) the value at `path`.
fn set_at(root: &mut Value, path: &ConcretePath, v: Option<Value>) -> Result<(), RecordError> {
    let (last, parents) = path
        .0
        .split_last()
        .ok_or(RecordError::Corrupt("empty path"))?;
    let mut cur = root;
    for s in parents {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k),
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        }
        .ok_or(RecordError::Corrupt("skeleton lacks a container"))?;
    }
    match (last, cur, v) {
        (Step::Key(k), Value::Object(m), Some(v)) => {
            m.insert(k.clone(), v);
        }
        (Step::Key(k), Value::Object(m), None) => {
            m.remove(k);
        }
        (Step::Index(i), Value::Array(a), v) if *i < a.len() => a[*i] = v.unwrap_or(Value::Null),
        _ => return Err(RecordError::Corrupt("skeleton lacks a container")),
    }
    Ok(())
}

/// The string a scalar is indexed and tokenized as. `None` for null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn context(collection: &str, id: &str, path: &str) -> Vec<u8> {
    encode_parts(&[collection.as_bytes(), id.as_bytes(), path.as_bytes()])
}

/// The normalized subject value of a document (or `None` when the schema
/// has no subject field), before any key is needed.
pub fn subject_of(schema: &Schema, doc: &Value) -> Result<Option<String>, RecordError> {
    let Some(f) = schema.subject else {
        return Ok(None);
    };
    let field = &schema.fields[f];
    let mut cur = doc;
    for seg in field.path.segments() {
        let super::path::Segment::Key(k) = seg else {
            unreachable!("subject paths have no [*]")
        };
        cur = cur.get(k).unwrap_or(&Value::Null);
    }
    let p = field.path.to_string();
    match scalar_text(cur) {
        Some(s) if !schema.normalize(f, &s).is_empty() && s.len() <= 256 => {
            Ok(Some(schema.normalize(f, &s)))
        }
        _ => Err(RecordError::Violation {
            path: p,
            why: "the subject field is required: a non-empty string or number of at most 256 bytes"
                .into(),
        }),
    }
}

fn token_numerals(
    alphabet: super::schema::Alphabet,
    s: &str,
    path: &ConcretePath,
) -> Result<Vec<u16>, RecordError> {
    let mut out = Vec::new();
    for c in s.chars() {
        match alphabet.numeral(c) {
            Some(n) => out.push(n),
            None if alphabet.refuses(c) => {
                return Err(violation(
                    path,
                    "a token of alphabet upper_alnum takes 0-9 and A-Z; upper-case the value first",
                ));
            }
            None => {}
        }
    }
    Ok(out)
}

fn tokenize(
    key: &SubjectKey,
    schema: &Schema,
    collection: &str,
    f: usize,
    value: &Value,
    path: &ConcretePath,
    decrypt: bool,
) -> Result<String, RecordError> {
    let field = &schema.fields[f];
    let alphabet = field
        .decl
        .alphabet
        .unwrap_or(super::schema::Alphabet::Digits);
    let Value::String(s) = value else {
        return Err(violation(path, "a token field must be a string"));
    };
    let nums = token_numerals(alphabet, s, path)?;
    let radix = alphabet.radix();
    let min_len = (schema::MIN_TOKEN_DOMAIN.ln() / (radix as f64).ln()).ceil() as usize;
    if nums.len() < min_len {
        return Err(violation(
            path,
            format!(
                "too short to tokenize: FF1 needs at least {min_len} characters of its alphabet (a domain of 10^6)"
            ),
        ));
    }
    let ff1 = key.ff1(collection, &field.path.to_string(), radix)?;
    let out = if decrypt {
        ff1.decrypt(b"", &nums)
    } else {
        ff1.encrypt(b"", &nums)
    }
    .map_err(|_| violation(path, "too long to tokenize"))?;
    let mut it = out.into_iter();
    Ok(s.chars()
        .map(|c| match alphabet.numeral(c) {
            Some(_) => alphabet.char(it.next().expect("same count")),
            None => c,
        })
        .collect())
}

use super::schema;

fn to_json<T: Serialize>(v: &T) -> Result<String, RecordError> {
    serde_json::to_string(v).map_err(|_| RecordError::Corrupt("serialize"))
}

/// The stored body up to its MAC:
/// `{"v":…,"k":…,"plain":…,"sealed":…,"tokens":…` (`k` only when present).
fn body_prefix(v: u32, k: Option<&str>, plain: &str, sealed: &str, tokens: &str) -> String {
    match k {
        Some(k) => {
            format!(r#"{{"v":{v},"k":"{k}","plain":{plain},"sealed":{sealed},"tokens":{tokens}"#)
        }
        None => format!(r#"{{"v":{v},"plain":{plain},"sealed":{sealed},"tokens":{tokens}"#),
    }
}

const MAC_MEMBER: &str = r#","mac":""#;

/// The record MAC (docs/FORMAT.md §11.3): over the exact stored bytes
/// before the MAC member, so checking it needs no re-serialization (and
/// no canonical JSON).
fn mac_of_prefix(
    key: &SubjectKey,
    collection: &str,
    id: &str,
    prefix: &str,
) -> Result<Vec<u8>, RecordError> {
    let mac = key.mac_key(collection, |secret| {
        Ok(DerivedKey::derive(secret, &keys::fixed_info(MAC_LABEL, collection.as_bytes()))?.key)
    })?;
    Ok(mac.sign(&[&encode_parts(&[
        collection.as_bytes(),
        id.as_bytes(),
        prefix.as_bytes(),
    ])]))
}

/// The body of a (possibly edited) stored document, MACed: for tests that
/// re-MAC a modified document honestly.
#[cfg(test)]
fn remac(key: &SubjectKey, collection: &str, id: &str, doc: &StoredDoc) -> String {
    let prefix = body_prefix(
        doc.v,
        doc.k.as_deref(),
        &to_json(&doc.plain).unwrap(),
        &to_json(&doc.sealed).unwrap(),
        &to_json(&doc.tokens).unwrap(),
    );
    let mac = B64.encode(mac_of_prefix(key, collection, id, &prefix).unwrap());
    format!("{prefix}{MAC_MEMBER}{mac}\"}}")
}

/// A stored body parsed for reading: the ciphertexts and tokens borrowed
/// from the body text (no copies), the skeleton owned (it becomes the
/// output).
#[derive(Deserialize)]
struct StoredRef<'a> {
    #[serde(borrow, default)]
    k: Option<std::borrow::Cow<'a, str>>,
    plain: Value,
    #[serde(borrow, default)]
    sealed: BTreeMap<std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    tokens: BTreeMap<std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>>,
}

/// Checks a stored body's MAC and parses it. The body must be exactly
/// `prefix ‖ ,"mac":"<base64>"}`; any other shape is an integrity failure.
fn verify_body<'a>(
    collection: &str,
    id: &str,
    body: &'a str,
    key: &SubjectKey,
) -> Result<StoredRef<'a>, RecordError> {
    let integrity = || RecordError::Integrity {
        path: "(record)".into(),
    };
    let at = body.rfind(MAC_MEMBER).ok_or_else(integrity)?;
    let (prefix, rest) = body.split_at(at);
    let b64 = rest[MAC_MEMBER.len()..]
        .strip_suffix("\"}")
        .filter(|m| {
            m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        })
        .ok_or_else(integrity)?;
    let mac = B64.decode(b64).map_err(|_| integrity())?;
    let want = mac_of_prefix(key, collection, id, prefix)?;
    if !crate::crypto::constant_time_eq(&mac, &want) {
        return Err(integrity());
    }
    serde_json::from_str(body).map_err(|_| RecordError::Corrupt("stored record is not JSON"))
}

/// Seals `doc` for record `id` of `collection` under schema version `v`.
pub fn seal(
    schema: &Schema,
    v: u32,
    collection: &str,
    id: &str,
    doc: &Value,
    key: &SubjectKey,
    index: &IndexKeys,
) -> Result<Sealed, RecordError> {
    if !doc.is_object() {
        return Err(violation(
            &ConcretePath::default(),
            "a record must be a JSON object",
        ));
    }
    let mut items = Vec::new();
    walk(
        schema,
        &schema.root,
        doc,
        &ConcretePath::default(),
        &mut items,
    )?;
    let mut skeleton = doc.clone();
    let mut sealed = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    let mut by_field: BTreeMap<usize, Vec<&Item<'_>>> = BTreeMap::new();
    let mut protected = 0;
    // One record key for all sealed values, made at the first of them;
    // each value gets the next counter as its GCM nonce.
    let mut record_key: Option<RecordKey> = None;
    let mut counter = 0u32;
    for it in &items {
        let class = it.field.map_or(Class::Phi, |f| schema.fields[f].decl.class);
        if class == Class::Plain {
            continue;
        }
        protected += 1;
        if protected > MAX_PROTECTED {
            return Err(violation(
                &it.path,
                "too many protected values in one record",
            ));
        }
        let p = it.path.to_string();
        match class {
            Class::Token => {
                let f = it.field.expect("declared");
                tokens.insert(
                    p.clone(),
                    tokenize(key, schema, collection, f, it.value, &it.path, false)?,
                );
            }
            _ => {
                let pt = serde_json::to_vec(it.value).map_err(|_| RecordError::Corrupt("value"))?;
                let rk = match &mut record_key {
                    Some(rk) => rk,
                    none => none.insert(key.record_key()?),
                };
                let ct = rk.seal(counter, &context(collection, id, &p), &pt)?;
                counter += 1;
                sealed.insert(p, B64.encode(ct));
            }
        }
        set_at(&mut skeleton, &it.path, None)?;
        if let Some(f) = it.field {
            by_field.entry(f).or_default().push(it);
        }
    }
    let mut indexes = Vec::new();
    for ix in &schema.indexes {
        if ix.fields.len() == 1 {
            for it in by_field.get(&ix.fields[0]).into_iter().flatten() {
                if let Some(s) = scalar_text(it.value) {
                    let n = schema.normalize(ix.fields[0], &s);
                    if let Some(b) = index.blind_index(&ix.name, ix.bits, &[&n]) {
                        indexes.push((ix.name.clone(), b));
                    }
                }
            }
        } else {
            let members: Option<Vec<String>> = ix
                .fields
                .iter()
                .map(|f| {
                    let it = by_field.get(f)?.first()?;
                    scalar_text(it.value).map(|s| schema.normalize(*f, &s))
                })
                .collect();
            if let Some(m) = members {
                let refs: Vec<&str> = m.iter().map(String::as_str).collect();
                if let Some(b) = index.blind_index(&ix.name, ix.bits, &refs) {
                    indexes.push((ix.name.clone(), b));
                }
            }
        }
    }
    indexes.sort();
    indexes.dedup();
    // Serialize each member once: for the MAC and for the stored body.
    let plain_json = to_json(&skeleton)?;
    let sealed_json = to_json(&sealed)?;
    let tokens_json = to_json(&tokens)?;
    let k = record_key.map(|rk| B64.encode(rk.header()));
    let prefix = body_prefix(v, k.as_deref(), &plain_json, &sealed_json, &tokens_json);
    let mac = B64.encode(mac_of_prefix(key, collection, id, &prefix)?);
    let body = format!("{prefix}{MAC_MEMBER}{mac}\"}}");
    let out = StoredDoc {
        v,
        k,
        plain: skeleton,
        sealed,
        tokens,
        mac,
    };
    Ok(Sealed {
        doc: out,
        body,
        plain_json,
        indexes,
    })
}

/// Opens a stored record (its body, as the store keeps it) and renders
/// `view`. `schema` must be the version the record was sealed under
/// (`v`). A modified record fails with [`RecordError::Integrity`], never
/// with wrong data.
pub fn open(
    schema: &Schema,
    collection: &str,
    id: &str,
    body: &str,
    key: &SubjectKey,
    view: View,
) -> Result<Value, RecordError> {
    let full = open_full(schema, collection, id, body, key)?;
    project(schema, full, view)
}

/// Opens every value of a stored record, after checking its record MAC
/// (for the server's own use: patches, migrations, views).
pub fn open_full(
    schema: &Schema,
    collection: &str,
    id: &str,
    body: &str,
    key: &SubjectKey,
) -> Result<Value, RecordError> {
    let doc = verify_body(collection, id, body, key)?;
    open_verified(schema, collection, id, doc, key)
}

/// The stored schema version of a body, without checking anything.
pub fn body_version(body: &str) -> Option<u32> {
    let rest = body.strip_prefix(r#"{"v":"#)?;
    let end = rest.find(',')?;
    rest[..end].parse().ok()
}

/// The record key a stored body names in its `k` member (`None` for a
/// format-1 body). A `k` that does not open under `key` is an integrity
/// failure of the record.
fn open_record_key(key: &SubjectKey, k: Option<&str>) -> Result<Option<RecordKey>, RecordError> {
    let Some(k) = k else {
        return Ok(None);
    };
    B64.decode(k.as_bytes())
        .ok()
        .and_then(|h| key.open_record_key(&h))
        .map(Some)
        .ok_or(RecordError::Integrity {
            path: "(record)".into(),
        })
}

/// Opens one sealed value (base64 PVF) at concrete path `path`: format 2
/// under the record's key when the record has one, else format 1.
fn open_sealed(
    key: &SubjectKey,
    record_key: Option<&RecordKey>,
    collection: &str,
    id: &str,
    path: &str,
    b64: &str,
) -> Result<Value, RecordError> {
    let integrity = || RecordError::Integrity {
        path: super::path::printable(path),
    };
    let ct = B64.decode(b64.as_bytes()).map_err(|_| integrity())?;
    let ctx = context(collection, id, path);
    let opened = match (ct.get(3), record_key) {
        // A record is in one format: with a record key, every value is
        // format 2; without, format 1.
        (Some(&super::field::FIELD_VERSION_RECORD_KEY), Some(rk)) => rk.open(&ctx, &ct),
        (Some(&super::field::FIELD_VERSION), None) => key.open(&ctx, &ct),
        _ => None,
    };
    let mut pt = opened.ok_or_else(integrity)?;
    let v: Result<Value, _> = serde_json::from_slice(&pt);
    zeroize::Zeroize::zeroize(&mut pt);
    v.map_err(|_| integrity())
}

/// The sealed values of a stored body, borrowed (no copies, no MAC check).
#[derive(Deserialize)]
struct SealedOnly<'a> {
    #[serde(borrow, default)]
    k: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    sealed: BTreeMap<std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>>,
}

/// Opens only the sealed values of the declared fields `fields`, each
/// checked by its own AEAD (bound to collection, record id and path), but
/// **without** the record MAC: for dropping blind-index false positives
/// cheaply. A record that is then returned must be opened with
/// [`open_full`] (which checks the MAC). Tokens are not opened.
pub fn peek_fields(
    schema: &Schema,
    collection: &str,
    id: &str,
    body: &str,
    key: &SubjectKey,
    fields: &[usize],
) -> Result<Vec<(usize, Value)>, RecordError> {
    let integrity = |path: &str| RecordError::Integrity {
        path: super::path::printable(path),
    };
    let doc: SealedOnly<'_> = serde_json::from_str(body).map_err(|_| integrity("(record)"))?;
    let rk = open_record_key(key, doc.k.as_deref())?;
    let mut out = Vec::new();
    for (p, b64) in &doc.sealed {
        let path = ConcretePath::parse(p)?;
        let Some(f) = field_of(schema, &path).filter(|f| fields.contains(f)) else {
            continue;
        };
        out.push((f, open_sealed(key, rk.as_ref(), collection, id, p, b64)?));
    }
    Ok(out)
}

/// Whether peeked values satisfy an index query (normalized `want`, one
/// per member, in the index's order).
pub fn peek_matches(
    schema: &Schema,
    index: &schema::Index,
    peeked: &[(usize, Value)],
    want: &[String],
) -> bool {
    let norm = |f: usize| -> Vec<String> {
        peeked
            .iter()
            .filter(|(g, _)| *g == f)
            .filter_map(|(_, v)| scalar_text(v).map(|s| schema.normalize(f, &s)))
            .collect()
    };
    match index.fields.as_slice() {
        [f] => want.len() == 1 && norm(*f).contains(&want[0]),
        members => {
            members.len() == want.len()
                && members
                    .iter()
                    .zip(want)
                    .all(|(&f, w)| norm(f).first() == Some(w))
        }
    }
}

fn open_verified(
    schema: &Schema,
    collection: &str,
    id: &str,
    doc: StoredRef<'_>,
    key: &SubjectKey,
) -> Result<Value, RecordError> {
    let integrity = |path: &str| RecordError::Integrity {
        path: super::path::printable(path),
    };
    let rk = open_record_key(key, doc.k.as_deref())?;
    let mut out = doc.plain;
    if !out.is_object() {
        return Err(RecordError::Corrupt("skeleton is not an object"));
    }
    for (p, b64) in &doc.sealed {
        let path = ConcretePath::parse(p)?;
        let v = open_sealed(key, rk.as_ref(), collection, id, p, b64)?;
        set_at(&mut out, &path, Some(v))?;
    }
    for (p, tok) in &doc.tokens {
        let path = ConcretePath::parse(p)?;
        let f = field_of(schema, &path)
            .filter(|&f| schema.fields[f].decl.class == Class::Token)
            .ok_or(RecordError::Corrupt(
                "token at a path that is not a token field",
            ))?;
        let v = tokenize(
            key,
            schema,
            collection,
            f,
            &Value::String(tok.to_string()),
            &path,
            true,
        )
        .map_err(|_| integrity(p))?;
        set_at(&mut out, &path, Some(Value::String(v)))?;
    }
    Ok(out)
}

/// The declared field a concrete path falls in.
fn field_of(schema: &Schema, path: &ConcretePath) -> Option<usize> {
    let mut node = &schema.root;
    for s in &path.0 {
        if node.leaf.is_some() {
            break;
        }
        node = match s {
            Step::Key(k) => node.keys.get(k)?,
            Step::Index(_) => node.any.as_deref()?,
        };
    }
    node.leaf
}

/// Renders a fully opened document as `view`.
pub fn project(schema: &Schema, mut full: Value, view: View) -> Result<Value, RecordError> {
    if view == View::Full {
        return Ok(full);
    }
    let mut items = Vec::new();
    let snapshot = full.clone();
    walk(
        schema,
        &schema.root,
        &snapshot,
        &ConcretePath::default(),
        &mut items,
    )?;
    for it in items {
        let decl = it.field.map(|f| &schema.fields[f].decl);
        if decl.is_some_and(|d| d.class == Class::Plain) {
            continue;
        }
        let masked = match (view, decl.and_then(|d| d.mask), it.value) {
            (View::Masked, Some(m), Value::String(s)) => Some(Value::String(m.apply(s))),
            (View::Masked, Some(m), Value::Number(n)) => {
                Some(Value::String(m.apply(&n.to_string())))
            }
            _ => None,
        };
        set_at(&mut full, &it.path, masked)?;
    }
    Ok(full)
}

#[cfg(test)]
mod tests;
