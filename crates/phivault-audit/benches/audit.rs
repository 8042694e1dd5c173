//! Audit trail micro-benchmarks: the per-event CPU cost on the writer
//! (frame + leaf hash + tree), and durable appends under concurrency.
//! The end-to-end figures in BENCHMARKS.md come from
//! `cargo run --release -p phivault-audit --example audit_load`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phivault_audit::{AuditLog, Event, Kind, LogConfig};
use phivault_core::audit::merkle::{Frontier, leaf_hash};

fn event() -> Event {
    let mut e = Event::new(Kind::Request, "transit.encrypt");
    e.principal = Some("spiffe://phivault.local/billing-app".into());
    e.resource = Some("transit/billing".into());
    e.status = Some(200);
    e.latency_us = Some(312);
    e.scopes = vec!["transit:encrypt:billing".into()];
    e
}

fn per_event(c: &mut Criterion) {
    let json = event().to_json();
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("serialize+frame+leaf+tree", |b| {
        let mut f = Frontier::new();
        let mut buf = Vec::with_capacity(1 << 20);
        let ev = event();
        b.iter(|| {
            if buf.len() > 1 << 20 {
                buf.clear();
            }
            let j = ev.to_json();
            let r = phivault_audit::segment::encode_frame(f.size(), &j, &mut buf);
            f.push(leaf_hash(&buf[r]));
        })
    });
    g.bench_function("leaf_hash", |b| b.iter(|| leaf_hash(&json)));
    g.finish();
}

fn durable(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = AuditLog::open(LogConfig::new(dir.path())).unwrap();
    let json = event().to_json();
    let mut g = c.benchmark_group("audit-durable");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1024));
    g.bench_function("1024 concurrent appends", |b| {
        b.iter(|| {
            rt.block_on(async {
                let futs: Vec<_> = (0..1024).map(|_| log.append_json(&json)).collect();
                for f in futs {
                    f.await.unwrap();
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, per_event, durable);
criterion_main!(benches);
