//! `/v1/collections`, `/v1/records`, `/v1/subjects` and `/v1/jobs`: the
//! HTTP face of [`crate::records`].
//!
//! Scopes, per collection `C`:
//! * `records:admin:C`: declare schemas, rotate, watch jobs;
//! * `records:write:C`: create, replace, patch, delete;
//! * `records:read:C` (full view), `records:read-masked:C` (masked),
//!   `records:read-redacted:C` (plain fields only): the strongest one held
//!   decides the view; `?view=` may ask for a weaker one;
//! * `records:shred`: `DELETE /v1/subjects/{id}`.
//!
//! Every read and search needs an HL7 v3 PurposeOfUse code in
//! `X-Purpose-Of-Use` (TREAT, ETREAT, HPAYMT, HOPERAT, HRESCH, …), logged
//! with the access (target `phivault::access`) for the audit trail.

use super::{ApiError, ApiResult, Ctx, authenticate, authorize, keystore, read_json};
use crate::records::{Records, RecordsError};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use phivault_core::records::View;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// HL7 v3 PurposeOfUse codes (value set 2.16.840.1.113883.1.11.20448).
pub const PURPOSES: &[&str] = &[
    "TREAT",
    "ETREAT",
    "BTG",
    "CAREMGT",
    "CLINTRCH",
    "CLINTRL",
    "POPHLTH",
    "HPAYMT",
    "CLMATTCH",
    "COVAUTH",
    "COVERAGE",
    "ELIGDTRM",
    "ELIGVER",
    "ENROLLM",
    "REMITADV",
    "HOPERAT",
    "DONAT",
    "FRAUD",
    "GOV",
    "HACCRED",
    "HCOMPL",
    "HDECD",
    "HDIRECT",
    "HDM",
    "HLEGAL",
    "HOUTCOMS",
    "HPRGRP",
    "HQUALIMP",
    "HSYSADMIN",
    "LABELING",
    "METAMGT",
    "MEMADMIN",
    "MILCDM",
    "PATADMIN",
    "PATSFTY",
    "PERFMSR",
    "RECORDMGT",
    "SYSDEV",
    "HTEST",
    "TRAIN",
    "HMARKT",
    "HRESCH",
    "BIORCH",
    "DSRCH",
    "PATRQT",
    "FAMRQT",
    "PWATRNY",
    "SUPNWK",
    "PUBHLTH",
    "DISASTER",
    "THREAT",
];

impl From<RecordsError> for ApiError {
    fn from(e: RecordsError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        if status.is_server_error() && !matches!(e, RecordsError::Record(_)) {
            tracing::error!(error = %e, "records failure");
        }
        ApiError::new(status, e.to_string())
    }
}

fn service(st: &super::Shared) -> Result<Arc<Records>, ApiError> {
    st.records.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the records store is not open on this server",
        )
    })
}

fn purpose(headers: &HeaderMap, required: bool) -> Result<Option<&'static str>, ApiError> {
    let Some(v) = headers.get("x-purpose-of-use") else {
        return if required {
            Err(ApiError::bad(
                "a purpose of use is required: send header X-Purpose-Of-Use with an HL7 PurposeOfUse code such as TREAT, ETREAT, HPAYMT, HOPERAT or HRESCH",
            ))
        } else {
            Ok(None)
        };
    };
    let code = v.to_str().unwrap_or("").trim().to_ascii_uppercase();
    PURPOSES
        .iter()
        .find(|p| **p == code)
        .map(|p| Some(*p))
        .ok_or_else(|| {
            ApiError::bad(
                "X-Purpose-Of-Use is not an HL7 PurposeOfUse code (e.g. TREAT, ETREAT, HPAYMT, HOPERAT, HRESCH; see docs/openapi.json)",
            )
        })
}

/// The view the caller's scopes give on `coll`, lowered by `?view=`.
fn view_for(
    st: &super::Shared,
    c: &Ctx,
    coll: &str,
    asked: Option<&str>,
) -> Result<(crate::api::Caller, View), ApiError> {
    let caller = authenticate(st, &c.conn, &c.headers)?;
    let best = [View::Full, View::Masked, View::Redacted]
        .into_iter()
        .find(|v| {
            caller
                .scopes
                .allows(&format!("records:{}:{coll}", v.scope_op()))
        });
    let best = match best {
        Some(b) => Some(b),
        None => match super::break_glass(st, c, &caller) {
            Some(Ok(())) => Some(View::Full),
            Some(Err(e)) => return Err(e),
            None => None,
        },
    };
    let Some(best) = best else {
        super::audit_reason(&c.conn, "scope_denied");
        st.metrics.auth_failed("scope_denied");
        tracing::warn!(peer = %c.conn.peer, principal = %caller.principal, collection = coll, "records read denied");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "permission denied: reading this collection needs scope 'records:read:{coll}', 'records:read-masked:{coll}' or 'records:read-redacted:{coll}'"
            ),
        ));
    };
    let want = match asked {
        None | Some("") => best,
        Some("full") => View::Full,
        Some("masked") => View::Masked,
        Some("redacted") => View::Redacted,
        Some(_) => return Err(ApiError::bad("view must be full, masked or redacted")),
    };
    let rank = |v: View| match v {
        View::Full => 2,
        View::Masked => 1,
        View::Redacted => 0,
    };
    if rank(want) > rank(best) {
        st.metrics.auth_failed("scope_denied");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "permission denied: view {} needs scope 'records:{}:{coll}'",
                want.scope_op(),
                want.scope_op()
            ),
        ));
    }
    Ok((caller, want))
}

/// What every read starts from: who, which view, why, and the keystore.
struct Reader {
    caller: crate::api::Caller,
    view: View,
    purpose: Option<&'static str>,
    ks: Arc<phivault_keystore::Keystore>,
}

fn reader(
    st: &super::Shared,
    c: &Ctx,
    coll: &str,
    asked: Option<&str>,
) -> Result<Reader, ApiError> {
    let (caller, view) = view_for(st, c, coll, asked)?;
    let p = purpose(&c.headers, true)?;
    c.conn.audit.lock().expect("lock").purpose = p;
    Ok(Reader {
        caller,
        view,
        purpose: p,
        ks: keystore(st)?,
    })
}

/// Names the request's operation in its audit record (set first, so a
/// refused request carries it too).
fn op(c: &Ctx, op: &'static str) {
    c.conn.audit.lock().expect("lock").op = Some(op);
}

/// Records an access: in the audit trail (record and subject ids are
/// hashed there under the audit key) and the access log (counts only).
#[allow(clippy::too_many_arguments)]
fn access(
    c: &Ctx,
    principal: &str,
    coll: &str,
    op: &'static str,
    purpose: Option<&'static str>,
    view: Option<View>,
    records: Vec<String>,
    subjects: Vec<String>,
) {
    tracing::info!(target: "phivault::access", principal, collection = coll, op, purpose = purpose.unwrap_or("-"), records = records.len(), view = ?view, "records access");
    let mut a = c.conn.audit.lock().expect("lock");
    a.purpose = purpose;
    a.resource = Some(format!("records/{coll}"));
    a.records = records;
    a.subjects = subjects;
}

/// One record document: bounded by `records.max_document_bytes` before it
/// is parsed (a bulk request's documents are checked one by one).
async fn read_document(st: &super::Shared, svc: &Records, body: Body) -> Result<Value, ApiError> {
    let max = svc.settings.max_document_bytes;
    let bytes = super::read_bytes(st, body, max, "records.max_document_bytes").await?;
    super::parse_json(&bytes)
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn item_json(id: Option<&str>, r: crate::records::Item) -> Value {
    match r {
        Ok(v) => v,
        Err(e) => json!({ "id": id, "error": e.to_string(), "status": e.status() }),
    }
}

// ------------------------------------------------------------ collections

async fn put_collection(c: Ctx, Path(coll): Path<String>, body: Body) -> ApiResult {
    let st = c.st.clone();
    authorize(&st, &c.conn, &c.headers, &format!("records:admin:{coll}"))?;
    let ks = keystore(&st)?;
    let schema: Value = read_json(&st, body).await?;
    let bytes = serde_json::to_vec(&schema).expect("serializes");
    let svc = service(&st)?;
    let (version, job) = svc.put_collection(&ks, &coll, &bytes).await?;
    let col = svc.collection(&ks, &coll).await?;
    Ok(json_response(
        if version == 1 {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        json!({ "collection": coll, "version": version, "migration_job": job, "indexes": index_plan(&col) }),
    ))
}

fn index_plan(c: &crate::records::Collection) -> Value {
    let s = c.schema();
    Value::Array(
        s.indexes
            .iter()
            .map(|i| {
                json!({
                    "name": i.name,
                    "fields": i.fields.iter().map(|&f| s.fields[f].path.to_string()).collect::<Vec<_>>(),
                    "bits": i.bits,
                    "expected_rows": s.decl().expected_rows,
                    "expected_matches_per_value": (s.decl().expected_rows as f64 / 2f64.powi(i.bits as i32)).max(1.0),
                })
            })
            .collect(),
    )
}

fn may_see(caller: &crate::api::Caller, coll: &str) -> bool {
    ["admin", "read", "read-masked", "read-redacted", "write"]
        .iter()
        .any(|op| caller.scopes.allows(&format!("records:{op}:{coll}")))
}

async fn list_collections(c: Ctx) -> ApiResult {
    let st = c.st.clone();
    let caller = authenticate(&st, &c.conn, &c.headers)?;
    let rows = service(&st)?.list_collections().await?;
    let names: Vec<Value> = rows
        .iter()
        .filter(|r| may_see(&caller, &r.collection))
        .map(|r| json!({ "collection": r.collection, "version": r.version }))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "collections": names }),
    ))
}

async fn get_collection(c: Ctx, Path(coll): Path<String>) -> ApiResult {
    let st = c.st.clone();
    let caller = authenticate(&st, &c.conn, &c.headers)?;
    if !may_see(&caller, &coll) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("permission denied: needs a records scope on '{coll}'"),
        ));
    }
    let ks = keystore(&st)?;
    let col = service(&st)?.collection(&ks, &coll).await?;
    Ok(json_response(
        StatusCode::OK,
        json!({
            "collection": coll, "version": col.version,
            "schema": col.schema().decl(), "indexes": index_plan(&col),
            "versions": col.schemas.keys().collect::<Vec<_>>(),
        }),
    ))
}

#[derive(Deserialize, Default)]
struct RotateReq {
    #[serde(default)]
    destroy_old: bool,
}

async fn rotate(c: Ctx, Path(coll): Path<String>, body: Body) -> ApiResult {
    let st = c.st.clone();
    authorize(&st, &c.conn, &c.headers, &format!("records:admin:{coll}"))?;
    let ks = keystore(&st)?;
    let req: RotateReq = read_json(&st, body).await?;
    let (v, job) = service(&st)?.rotate(&ks, &coll, req.destroy_old).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({ "collection": coll, "version": v, "rewrap_job": job, "destroy_old": req.destroy_old }),
    ))
}

async fn get_job(c: Ctx, Path(id): Path<String>) -> ApiResult {
    let st = c.st.clone();
    let caller = authenticate(&st, &c.conn, &c.headers)?;
    let j = service(&st)?.job(&id).await?;
    let coll = j["collection"].as_str().unwrap_or_default();
    if !caller.scopes.allows(&format!("records:admin:{coll}")) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("permission denied: this request needs scope 'records:admin:{coll}'"),
        ));
    }
    Ok(json_response(StatusCode::OK, j))
}

// ------------------------------------------------------------ records

async fn create(c: Ctx, Path(coll): Path<String>, body: Body) -> ApiResult {
    op(&c, "records.create");
    let st = c.st.clone();
    let caller = authorize(&st, &c.conn, &c.headers, &format!("records:write:{coll}"))?;
    let p = purpose(&c.headers, false)?;
    let ks = keystore(&st)?;
    let svc = service(&st)?;
    let doc = read_document(&st, &svc, body).await?;
    let ids = store_new(&c, &caller, p, &ks, &coll, vec![doc]).await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "id": ids[0], "rev": 1 }),
    ))
}

/// Seals and stores new documents, counts them and records the access
/// (with their subjects); their new ids.
async fn store_new(
    c: &Ctx,
    caller: &crate::api::Caller,
    p: Option<&'static str>,
    ks: &phivault_keystore::Keystore,
    coll: &str,
    docs: Vec<Value>,
) -> Result<Vec<String>, ApiError> {
    let svc = service(&c.st)?;
    let n = docs.len() as u64;
    let subjects = svc.subjects_of(ks, coll, &docs).await?;
    let ids = svc.create(ks, coll, docs).await?;
    c.st.metrics.records_done(coll, "create", n);
    access(
        c,
        &caller.principal,
        coll,
        "create",
        p,
        None,
        ids.clone(),
        subjects,
    );
    Ok(ids)
}

#[derive(Deserialize, Default)]
struct BulkReq {
    #[serde(default)]
    records: Vec<Value>,
    #[serde(default)]
    ids: Vec<String>,
}

fn check_bulk(st: &super::Shared, n: usize) -> Result<(), ApiError> {
    let max = service(st)?.settings.max_bulk;
    if n == 0 || n > max {
        return Err(ApiError::bad(format!(
            "a bulk request takes 1 to {max} records (records.max_bulk)"
        )));
    }
    Ok(())
}

async fn bulk_create(c: Ctx, Path(coll): Path<String>, body: Body) -> ApiResult {
    op(&c, "records.create");
    let st = c.st.clone();
    let caller = authorize(&st, &c.conn, &c.headers, &format!("records:write:{coll}"))?;
    let p = purpose(&c.headers, false)?;
    let ks = keystore(&st)?;
    let req: BulkReq = read_json(&st, body).await?;
    check_bulk(&st, req.records.len())?;
    let ids = store_new(&c, &caller, p, &ks, &coll, req.records).await?;
    Ok(json_response(StatusCode::CREATED, json!({ "ids": ids })))
}

#[derive(Deserialize, Default)]
struct ReadQuery {
    view: Option<String>,
}

async fn bulk_get(
    c: Ctx,
    Path(coll): Path<String>,
    Query(q): Query<ReadQuery>,
    body: Body,
) -> ApiResult {
    op(&c, "records.read");
    let st = c.st.clone();
    let Reader {
        caller,
        view,
        purpose: p,
        ks,
    } = reader(&st, &c, &coll, q.view.as_deref())?;
    let req: BulkReq = read_json(&st, body).await?;
    check_bulk(&st, req.ids.len())?;
    let ids = req.ids.clone();
    let items = read_ids(&c, &caller, p, &ks, &coll, req.ids, view).await?;
    let out: Vec<Value> = items
        .into_iter()
        .zip(&ids)
        .map(|(r, id)| item_json(Some(id), r))
        .collect();
    Ok(json_response(StatusCode::OK, json!({ "records": out })))
}

/// Reads records by id, counts them and records the access (with the
/// subjects whose records were opened).
async fn read_ids(
    c: &Ctx,
    caller: &crate::api::Caller,
    p: Option<&'static str>,
    ks: &phivault_keystore::Keystore,
    coll: &str,
    ids: Vec<String>,
    view: View,
) -> Result<Vec<crate::records::Item>, ApiError> {
    let (items, subjects) = service(&c.st)?
        .get_seen(ks, coll, ids.clone(), view)
        .await?;
    c.st.metrics.records_done(coll, "read", items.len() as u64);
    access(
        c,
        &caller.principal,
        coll,
        "read",
        p,
        Some(view),
        ids,
        subjects,
    );
    Ok(items)
}

async fn get_one(
    c: Ctx,
    Path((coll, id)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> ApiResult {
    op(&c, "records.read");
    let st = c.st.clone();
    let Reader {
        caller,
        view,
        purpose: p,
        ks,
    } = reader(&st, &c, &coll, q.view.as_deref())?;
    let item = read_ids(&c, &caller, p, &ks, &coll, vec![id], view)
        .await?
        .pop()
        .expect("one");
    Ok(json_response(StatusCode::OK, item?))
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("if-match")
        .map(|v| {
            v.to_str()
                .ok()
                .map(|s| s.trim().trim_matches('"'))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad("If-Match must be a record revision number"))
        })
        .transpose()
}

async fn update(c: Ctx, coll: String, id: String, body: Body, is_patch: bool) -> ApiResult {
    op(
        &c,
        if is_patch {
            "records.patch"
        } else {
            "records.replace"
        },
    );
    let st = c.st.clone();
    let caller = authorize(&st, &c.conn, &c.headers, &format!("records:write:{coll}"))?;
    let p = purpose(&c.headers, false)?;
    let rev = if_match(&c.headers)?;
    let ks = keystore(&st)?;
    let svc = service(&st)?;
    let doc = read_document(&st, &svc, body).await?;
    let subjects = svc
        .subjects_of(&ks, &coll, std::slice::from_ref(&doc))
        .await?;
    let new_rev = service(&st)?
        .update(&ks, &coll, &id, doc, is_patch, rev)
        .await?;
    st.metrics.records_done(&coll, "update", 1);
    access(
        &c,
        &caller.principal,
        &coll,
        "update",
        p,
        None,
        vec![id.clone()],
        subjects,
    );
    Ok(json_response(
        StatusCode::OK,
        json!({ "id": id, "rev": new_rev }),
    ))
}

async fn replace(c: Ctx, Path((coll, id)): Path<(String, String)>, body: Body) -> ApiResult {
    update(c, coll, id, body, false).await
}

async fn patch_one(c: Ctx, Path((coll, id)): Path<(String, String)>, body: Body) -> ApiResult {
    update(c, coll, id, body, true).await
}

async fn delete_one(c: Ctx, Path((coll, id)): Path<(String, String)>) -> ApiResult {
    op(&c, "records.delete");
    let st = c.st.clone();
    let caller = authorize(&st, &c.conn, &c.headers, &format!("records:write:{coll}"))?;
    let p = purpose(&c.headers, false)?;
    let ks = keystore(&st)?;
    service(&st)?.delete(&ks, &coll, &id).await?;
    st.metrics.records_done(&coll, "delete", 1);
    access(
        &c,
        &caller.principal,
        &coll,
        "delete",
        p,
        None,
        vec![id],
        Vec::new(),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list(
    c: Ctx,
    Path(coll): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    op(&c, "records.list");
    let st = c.st.clone();
    let Reader {
        caller,
        view,
        purpose: p,
        ks,
    } = reader(&st, &c, &coll, q.get("view").map(String::as_str))?;
    let limit: u32 = match q.get("limit") {
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad("limit must be 1-1000"))?,
        None => 100,
    };
    let mut filters = Vec::new();
    for (k, v) in &q {
        if let Some(path) = k.strip_prefix("where.") {
            // JSON if it parses (numbers, booleans, "quoted strings"), else a string.
            let value =
                serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.clone()));
            filters.push((path.to_owned(), value));
        } else if !matches!(k.as_str(), "limit" | "after" | "view") {
            return Err(ApiError::bad(
                "unknown query parameter; use limit, after, view and where.<plain field>=<value>",
            ));
        }
    }
    filters.sort_by(|a, b| a.0.cmp(&b.0));
    let (items, next, subjects) = service(&st)?
        .list(&ks, &coll, filters, q.get("after").cloned(), limit, view)
        .await?;
    st.metrics.records_done(&coll, "read", items.len() as u64);
    let ids = items
        .iter()
        .filter_map(|i| i.as_ref().ok()?.get("id")?.as_str().map(str::to_owned))
        .collect();
    access(
        &c,
        &caller.principal,
        &coll,
        "list",
        p,
        Some(view),
        ids,
        subjects,
    );
    let out: Vec<Value> = items.into_iter().map(|r| item_json(None, r)).collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "records": out, "next": next }),
    ))
}

#[derive(Deserialize, Default)]
struct SearchReq {
    index: Option<String>,
    value: Option<Value>,
    #[serde(default)]
    values: BTreeMap<String, Value>,
    limit: Option<u32>,
}

async fn search(
    c: Ctx,
    Path(coll): Path<String>,
    Query(q): Query<ReadQuery>,
    body: Body,
) -> ApiResult {
    op(&c, "records.search");
    let st = c.st.clone();
    let Reader {
        caller,
        view,
        purpose: p,
        ks,
    } = reader(&st, &c, &coll, q.view.as_deref())?;
    let mut req: SearchReq = read_json(&st, body).await?;
    let index = req.index.take().ok_or_else(|| {
        ApiError::bad("give 'index' (a phi_search field or a compound index name)")
    })?;
    if let Some(v) = req.value.take() {
        req.values.insert("value".into(), v);
    }
    let limit = req.limit.unwrap_or(100).clamp(1, 1000);
    let (hits, _candidates, subjects) = service(&st)?
        .search(&ks, &coll, &index, &req.values, limit, view)
        .await?;
    st.metrics.records_done(&coll, "search", 1);
    let ids = hits
        .iter()
        .filter_map(|h| h.get("id")?.as_str().map(str::to_owned))
        .collect();
    access(
        &c,
        &caller.principal,
        &coll,
        "search",
        p,
        Some(view),
        ids,
        subjects,
    );
    Ok(json_response(StatusCode::OK, json!({ "records": hits })))
}

#[derive(Deserialize, Default)]
struct ShredQuery {
    collection: Option<String>,
}

async fn shred(c: Ctx, Path(subject): Path<String>, Query(q): Query<ShredQuery>) -> ApiResult {
    op(&c, "subjects.shred");
    let st = c.st.clone();
    let caller = authorize(&st, &c.conn, &c.headers, "records:shred")?;
    let ks = keystore(&st)?;
    let receipt = service(&st)?
        .shred(&ks, &subject, q.collection.as_deref())
        .await?;
    for e in &receipt.collections {
        st.metrics
            .records_done(&e.collection, "shred", e.records_deleted);
        tracing::info!(target: "phivault::access", principal = %caller.principal, collection = %e.collection, op = "shred", subject_handle = %e.subject_handle, key_destroyed = e.key_destroyed, records = e.records_deleted, receipt = %receipt.receipt_id, "subject shredded");
        let mut ev = phivault_audit::Event::new(phivault_audit::Kind::Key, "key.shred")
            .severity(phivault_audit::Severity::High)
            .detail(json!({
                "key_destroyed": e.key_destroyed,
                "records_deleted": e.records_deleted,
                "receipt": receipt.receipt_id,
            }));
        ev.resource = Some(format!("records/{}", e.collection));
        ev.principal = Some(caller.principal.clone());
        ev.subjects = st.audit.hash("subject", &subject).into_iter().collect();
        st.audit.emit(ev);
    }
    {
        let mut a = c.conn.audit.lock().expect("lock");
        a.subjects = vec![subject.clone()];
    }
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_value(&receipt).expect("serializes"),
    ))
}

/// The handlers for the records routes in `ROUTES`.
pub(super) fn handler(method: &str, path: &str) -> Option<MethodRouter<super::AppState>> {
    Some(match (method, path) {
        ("GET", "/v1/collections") => get(list_collections),
        ("GET", "/v1/collections/{collection}") => get(get_collection),
        ("POST", "/v1/collections/{collection}") => post(put_collection),
        ("POST", "/v1/collections/{collection}/rotate") => post(rotate),
        ("GET", "/v1/jobs/{id}") => get(get_job),
        ("POST", "/v1/records/{collection}") => post(create),
        ("GET", "/v1/records/{collection}") => get(list),
        ("POST", "/v1/records/{collection}/bulk") => post(bulk_create),
        ("POST", "/v1/records/{collection}/bulk-get") => post(bulk_get),
        ("POST", "/v1/records/{collection}/search") => post(search),
        ("GET", "/v1/records/{collection}/{id}") => get(get_one),
        ("PUT", "/v1/records/{collection}/{id}") => put(replace),
        ("PATCH", "/v1/records/{collection}/{id}") => patch(patch_one),
        ("DELETE", "/v1/records/{collection}/{id}") => delete(delete_one),
        ("DELETE", "/v1/subjects/{id}") => delete(shred),
        _ => return None,
    })
}
