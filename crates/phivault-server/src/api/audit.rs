//! `/v1/audit/…`: what auditors and witnesses fetch from a running server.
//!
//! * `GET /v1/audit/checkpoint` (scope `audit:read`): the newest signed
//!   checkpoint (C2SP signed note, `text/plain`);
//! * `GET /v1/audit/proof/inclusion/{index}` and
//!   `GET /v1/audit/proof/consistency/{from}` (`audit:read`): RFC 9162
//!   proofs against that checkpoint (or `?size=` an older one), checked
//!   here before they are sent;
//! * `POST /v1/audit/hash` (`audit:hash`): the HMAC under which an id
//!   appears in the trail, like Vault's `sys/audit-hash`. The id is PHI:
//!   it is in no log and no audit entry.
//! * `POST /v1/witness/add-checkpoint` (`witness:submit`): this node as a
//!   c2sp.org/tlog-witness for the logs in `audit.witness_logs`. It keeps
//!   the newest checkpoint it verified per log in `<data dir>/witness/`
//!   (the layout of a witness folder, so `phivault audit verify --witness`
//!   reads it), takes a new one only with a consistency proof from it, and
//!   answers with its cosignature. A refused checkpoint that the log's key
//!   signed is kept beside it as evidence of a fork or rollback.
//!
//! Proofs are computed from the `leaves` file, O(tree size) hashing, on
//! the blocking pool.

use super::{ApiError, ApiResult, Ctx, authorize, read_json};
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use phivault_core::audit::merkle;
use serde::Deserialize;
use serde_json::json;

fn b64(h: &merkle::Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

/// The newest checkpoint: (tree size, root, note).
fn newest(st: &super::Shared) -> Result<(u64, merkle::Hash, String), ApiError> {
    let dir = &st.settings.audit.dir;
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no signed checkpoint yet: the first is signed when the vault unseals",
        )
    };
    let note = std::fs::read_to_string(dir.join("checkpoint")).map_err(|_| unavailable())?;
    let keys = phivault_audit::verify::parse_keys(
        &std::fs::read_to_string(dir.join("log.pub")).map_err(|_| unavailable())?,
    )
    .map_err(|_| unavailable())?;
    let cp = keys
        .iter()
        .find_map(|k| k.open_checkpoint(&note).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit/checkpoint does not verify under audit/log.pub: run `phivault audit verify`",
            )
        })?;
    Ok((cp.size, cp.root, note))
}

async fn checkpoint(c: Ctx) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authorize(&st, &conn, &headers, "audit:read")?;
    let (_, _, note) = newest(&st)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        note,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
struct SizeQuery {
    size: Option<u64>,
}

/// Runs `f` over the first `size` leaf hashes (the newest checkpoint's
/// size unless given, never more) on the blocking pool.
async fn with_leaves<T: Send + 'static>(
    st: &super::Shared,
    size: Option<u64>,
    f: impl FnOnce(&[merkle::Hash], u64, merkle::Hash) -> Result<T, ApiError> + Send + 'static,
) -> Result<(T, String), ApiError> {
    let (latest, latest_root, note) = newest(st)?;
    let size = size.unwrap_or(latest);
    if size == 0 || size > latest {
        return Err(ApiError::bad(format!(
            "size must be 1..={latest} (the newest checkpoint's tree size)"
        )));
    }
    let dir = st.settings.audit.dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        let leaves = phivault_audit::verify::read_leaves(&dir, latest)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if merkle::root(&leaves) != latest_root {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit/leaves does not match the newest checkpoint: run `phivault audit verify`",
            ));
        }
        f(&leaves, size, latest_root)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "proof task failed"))??;
    Ok((out, note))
}

async fn inclusion(c: Ctx, Path(index): Path<u64>, Query(q): Query<SizeQuery>) -> ApiResult {
    let st = c.st.clone();
    authorize(&st, &c.conn, &c.headers, "audit:read")?;
    let ((size, leaf, proof, root), note) = with_leaves(&st, q.size, move |leaves, size, _| {
        if index >= size {
            return Err(ApiError::bad(format!(
                "index must be below the tree size {size}"
            )));
        }
        let proof = merkle::inclusion_proof(leaves, index, size)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let root = merkle::root(&leaves[..size as usize]);
        merkle::verify_inclusion(&leaves[index as usize], index, size, &proof, &root)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok((size, leaves[index as usize], proof, root))
    })
    .await?;
    Ok(axum::Json(json!({
        "type": "inclusion", "index": index, "tree_size": size,
        "leaf_hash": b64(&leaf), "root": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "checkpoint": note,
    }))
    .into_response())
}

async fn consistency(c: Ctx, Path(from): Path<u64>, Query(q): Query<SizeQuery>) -> ApiResult {
    let st = c.st.clone();
    authorize(&st, &c.conn, &c.headers, "audit:read")?;
    let ((size, old_root, root, proof), note) = with_leaves(&st, q.size, move |leaves, size, _| {
        if from == 0 || from > size {
            return Err(ApiError::bad(format!("the old size must be 1..={size}")));
        }
        let proof = merkle::consistency_proof(leaves, from, size)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        let old_root = merkle::root(&leaves[..from as usize]);
        let root = merkle::root(&leaves[..size as usize]);
        merkle::verify_consistency(from, size, &old_root, &root, &proof)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok((size, old_root, root, proof))
    })
    .await?;
    Ok(axum::Json(json!({
        "type": "consistency", "old_size": from, "old_root": b64(&old_root),
        "tree_size": size, "root": b64(&root),
        "proof": proof.iter().map(b64).collect::<Vec<_>>(),
        "checkpoint": note,
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
struct HashReq {
    input: Option<String>,
    kind: Option<String>,
}

async fn hash(c: Ctx, body: Body) -> ApiResult {
    let Ctx { st, conn, headers } = c;
    authorize(&st, &conn, &headers, "audit:hash")?;
    let req: HashReq = read_json(&st, body).await?;
    let input = req
        .input
        .filter(|i| !i.is_empty() && i.len() <= 1024)
        .ok_or_else(|| ApiError::bad("give 'input' (1-1024 bytes): the id to hash"))?;
    let kind = req.kind.unwrap_or_else(|| "subject".into());
    if kind != "subject" && kind != "record" {
        return Err(ApiError::bad("kind must be subject or record"));
    }
    let h = st
        .audit
        .hash(&kind, &input)
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"))?;
    Ok(axum::Json(json!({ "kind": kind, "hash": h })).into_response())
}

async fn add_checkpoint(c: Ctx, body: Body) -> ApiResult {
    use phivault_audit::witness::Taken;
    use phivault_core::audit::witness::{self, AddCheckpoint, Refusal};
    let Ctx { st, conn, headers } = c;
    authorize(&st, &conn, &headers, "witness:submit")?;
    let a = &st.settings.audit;
    if a.witness_logs.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this node witnesses no logs: list them in audit.witness_logs",
        ));
    }
    let bytes = super::read_bytes(
        &st,
        body,
        witness::MAX_REQUEST_BYTES,
        "the add-checkpoint limit (64 KiB)",
    )
    .await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::bad("the add-checkpoint body must be UTF-8 text"))?;
    let count = |reason: &'static str| {
        st.metrics
            .witness_checkpoints
            .get_or_create(&crate::metrics::ReasonLabel { reason })
            .inc();
    };
    let req = AddCheckpoint::parse(text).map_err(|e| {
        count("malformed");
        ApiError::bad(e.to_string())
    })?;
    let ks = st
        .keystore
        .load_full()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed"))?;
    let cosigner = crate::audit::cosigner(ks.as_ref(), &a.witness_name)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    let logs = crate::config::trusted_logs(&a.witness_logs);
    let dir = a.witness_state.clone();
    // File reads and an fsync under the witness's lock: off the workers.
    let (taken, req) = tokio::task::spawn_blocking(move || {
        (phivault_audit::witness::take(&dir, &logs, &req), req)
    })
    .await
    .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "witness task failed"))?;
    match taken {
        Ok(Taken::Accepted(_)) => count("accepted"),
        Ok(Taken::Refused { refusal, kept }) => {
            count(refusal.label());
            if let Some(kept) = kept {
                tracing::error!(kept = %kept.display(), "witness: refused a checkpoint signed by the log's key that does not extend the one held (a fork or a rewritten log); kept as evidence");
            }
            let mut resp = (
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST),
                refusal.message(),
            )
                .into_response();
            resp.extensions_mut().insert(super::ProtocolBody);
            if matches!(refusal, Refusal::Conflict { fork: false, .. }) {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(witness::SIZE_CONTENT_TYPE),
                );
            }
            return Ok(resp);
        }
        Err(e) => {
            count("error");
            tracing::error!(error = %e, "witness: its state can't be read or written; refusing every checkpoint for that log");
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the witness's state for this log can't be read or written (see the witness's log)",
            ));
        }
    }
    let text = &req.note[..req.note.rfind("\n\n").map_or(0, |i| i + 1)];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let line = cosigner
        .cosign(text, now)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        line,
    )
        .into_response())
}

/// The handlers for the audit routes in `ROUTES`.
pub(super) fn handler(method: &str, path: &str) -> Option<MethodRouter<super::AppState>> {
    Some(match (method, path) {
        ("GET", "/v1/audit/checkpoint") => get(checkpoint),
        ("GET", "/v1/audit/proof/inclusion/{index}") => get(inclusion),
        ("GET", "/v1/audit/proof/consistency/{from}") => get(consistency),
        ("POST", "/v1/audit/hash") => post(hash),
        ("POST", "/v1/witness/add-checkpoint") => post(add_checkpoint),
        _ => return None,
    })
}
