//! Durable append throughput and verification speed of the audit trail,
//! for BENCHMARKS.md:
//!
//! ```sh
//! cargo run --release -p phivault-audit --example audit_load -- [SECONDS] [IN_FLIGHT] [DIR]
//! ```
//!
//! Appends typical request events (about 400 bytes of JSON) from
//! `IN_FLIGHT` concurrent appenders on a tokio runtime for `SECONDS`, each
//! waiting for its entry to be fsynced (group commit), then verifies the
//! whole log with the public key and reports MB/s.
//!
//! `JOURNAL_BYTES=0` syncs the segment at every group commit instead of
//! writing the group-commit journal (the comparison in BENCHMARKS.md).

use phivault_audit::verify::{VerifyOptions, verify};
use phivault_audit::{AuditLog, Event, Kind, LogConfig, TlsInfo};
use phivault_core::audit::note::{NoteSigner, NoteVerifier};
use phivault_core::crypto::{SignatureAlgorithm, SigningKey};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn event(i: u64) -> Event {
    let mut e = Event::new(Kind::Request, "records.read");
    e.request_id = Some(format!("{i:024x}"));
    e.node = Some("node-1".into());
    e.principal = Some("spiffe://phivault.local/ehr-frontend".into());
    e.cert_sha256 = Some("q1Qb0aQpJ0m4m5bQ4m7a2l1yQ2lq3Gq9kYw0bB2dXyE".into());
    e.scopes = vec!["records:read:patients".into()];
    e.purpose = Some("TREAT".into());
    e.resource = Some("records/patients".into());
    e.records = vec!["5f2b7e0c9a1d4e3f8b6a7c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f".into()];
    e.subjects = vec!["0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b".into()];
    e.status = Some(200);
    e.latency_us = Some(850);
    e.tls = Some(TlsInfo {
        version: "TLSv1_3".into(),
        suite: "TLS13_AES_256_GCM_SHA384".into(),
    });
    e.peer = Some("10.0.0.12:51234".into());
    e
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let in_flight: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .get(3)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut cfg = LogConfig::new(&dir);
    if let Some(n) = std::env::var("JOURNAL_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.journal_bytes = n;
    }
    let (log, _) = AuditLog::open(cfg).unwrap();
    let sk = SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();
    let signer = NoteSigner::new("bench", sk).unwrap();
    let vkey = signer.verifier_key();
    log.set_signer(Some(signer)).unwrap();
    let log = Arc::new(log);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let t0 = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..in_flight {
            let (log, done, stop) = (log.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = w as u64;
                while !stop.load(Ordering::Relaxed) {
                    // Serialize on the caller, as the server does.
                    log.append(&event(i)).await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                    i += in_flight as u64;
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    });
    let el = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    let batches = log.stats().batches.load(Ordering::Relaxed);
    log.close().unwrap();
    println!(
        "append: {n} events in {el:.1}s = {:.0} events/s durable ({in_flight} in flight, {batches} group commits, {:.0} events per fsync)",
        n as f64 / el,
        n as f64 / batches.max(1) as f64
    );
    let r = verify(&VerifyOptions {
        dir: dir.clone(),
        keys: vec![NoteVerifier::parse(&vkey).unwrap()],
        witnesses: vec![],
    })
    .unwrap();
    assert!(r.ok, "{r:?}");
    println!(
        "verify: {} entries, {:.1} MB in {:.2}s = {:.0} MB/s ({} checkpoints)",
        r.entries,
        r.bytes as f64 / 1e6,
        r.seconds,
        r.bytes as f64 / 1e6 / r.seconds,
        r.checkpoints
    );
}
