//! Criterion benches for the formats: envelope round trips of a 1 KiB value
//! (including the per-message key derivation) and stream throughput on one
//! and on all cores. `scripts/bench.sh` runs the side-by-side comparison
//! with openssl, age and gpg; see BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phivault_core::keys::{KeyRingName, StaticKeys};
use phivault_core::{envelope, stream};
use std::hint::black_box;

fn envelope_bench(c: &mut Criterion) {
    let keys = StaticKeys::random("bench/env");
    let ring = KeyRingName::parse("bench/env").unwrap();
    let value = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("roundtrip_1KiB", |b| {
        b.iter(|| {
            let ct = envelope::encrypt(&keys, &ring, b"rec/field", black_box(&value)).unwrap();
            envelope::decrypt(&keys, &ct, b"rec/field").unwrap()
        })
    });
    g.finish();
}

fn stream_bench(c: &mut Criterion) {
    let keys = StaticKeys::random("bench/stream");
    let ring = KeyRingName::parse("bench/stream").unwrap();
    let len = 64 << 20;
    let pt = vec![0xa5u8; len];
    let mut ct = Vec::with_capacity(len + len / 4096);
    stream::encrypt(
        &keys,
        &ring,
        &pt[..],
        &mut ct,
        stream::Options::default(),
        &mut |_| {},
    )
    .unwrap();
    let mut g = c.benchmark_group("stream_64MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(len as u64));
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let opts = stream::Options {
            pool: Some(&pool),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(len + len / 1024);
        g.bench_function(format!("encrypt_{threads}t"), |b| {
            b.iter(|| {
                out.clear();
                stream::encrypt(&keys, &ring, &pt[..], &mut out, opts, &mut |_| {}).unwrap()
            })
        });
        g.bench_function(format!("decrypt_{threads}t"), |b| {
            b.iter(|| {
                out.clear();
                stream::decrypt(&keys, &ct[..], &mut out, opts, &mut |_| {}).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, envelope_bench, stream_bench);
criterion_main!(benches);
