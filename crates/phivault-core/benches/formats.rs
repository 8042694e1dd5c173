//! Criterion benches for the formats: envelope round trips of a 1 KiB value
//! (including the per-message key derivation), stream throughput on one
//! and on all cores, and backup throughput (writer, decrypting reader, and
//! the keyless verifier) on 256 MiB, and what a push to a tlog witness
//! costs the log. `scripts/bench.sh` runs the side-by-side comparison
//! with openssl, age and gpg; see BENCHMARKS.md.
#![allow(missing_docs)]

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use phivault_core::backup::{self, BackupMeta, BackupReader, BackupWriter};
use phivault_core::crypto::{EcdhP384PrivateKey, SignatureAlgorithm, SigningKey};
use phivault_core::keys::{KeyRingName, StaticKeys};
use phivault_core::{envelope, stream};
use std::hint::black_box;
use std::io::{Read, Write};

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

fn backup_bench(c: &mut Criterion) {
    let len = 256 << 20;
    let pt = vec![0xa5u8; len];
    let key = EcdhP384PrivateKey::generate().unwrap();
    let signer = SigningKey::generate(SignatureAlgorithm::Ed25519).unwrap();
    let meta = BackupMeta {
        created: "2025-06-01T12:00:00Z".into(),
        source: "bench".into(),
        contents: vec!["records".into()],
    };
    let write = |out: &mut Vec<u8>, opts: stream::Options<'_>| {
        out.clear();
        let mut w = BackupWriter::new(out, key.public_key(), &signer, &meta, opts).unwrap();
        w.write_all(&pt).unwrap();
        w.finish().unwrap();
    };
    let mut ct = Vec::with_capacity(len + len / 1024 + 4096);
    write(&mut ct, stream::Options::default());
    let mut g = c.benchmark_group("backup_256MiB");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("verify_integrity", |b| {
        b.iter(|| backup::verify_integrity(&ct[..], None).unwrap())
    });
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let opts = stream::Options {
            pool: Some(&pool),
            ..Default::default()
        };
        let mut out = Vec::with_capacity(ct.len());
        g.bench_function(format!("write_{threads}t"), |b| {
            b.iter(|| write(&mut out, opts))
        });
        let mut buf = vec![0u8; 1 << 20];
        g.bench_function(format!("read_{threads}t"), |b| {
            b.iter(|| {
                let mut r = BackupReader::open(&ct[..], &key, None, opts).unwrap();
                while r.read(&mut buf).unwrap() > 0 {}
            })
        });
    }
    g.finish();
}

/// What a log pays per push to a tlog witness: the consistency proof from
/// the frontier the witness last took over the entries since (10 000, the
/// default `audit.checkpoint_every`), on a tree of a million entries; and
/// the frontier rebuilt over a million leaf hashes, which a restarted log
/// does once to catch up with its witness (here without reading
/// `audit/leaves`).
fn witness_bench(c: &mut Criterion) {
    use phivault_core::audit::merkle::{Frontier, consistency_proof_extending, leaf_hash};
    let leaves: Vec<_> = (0u64..1_010_000)
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect();
    let old = Frontier::from_leaves(&leaves[..1_000_000]);
    let mut g = c.benchmark_group("witness");
    g.sample_size(20);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("proof_1M_plus_10k", |b| {
        b.iter(|| consistency_proof_extending(&old, &leaves[1_000_000..]).unwrap())
    });
    // The same proof from all 1 010 000 leaves (what /v1/audit/proof
    // computes), for the ratio.
    g.sample_size(10);
    g.bench_function("proof_1M_plus_10k_from_all_leaves", |b| {
        b.iter(|| {
            phivault_core::audit::merkle::consistency_proof(&leaves, 1_000_000, 1_010_000).unwrap()
        })
    });
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("frontier_1M", |b| {
        b.iter(|| Frontier::from_leaves(&leaves[..1_000_000]))
    });
    g.finish();
}

criterion_group!(
    benches,
    envelope_bench,
    stream_bench,
    backup_bench,
    witness_bench
);
criterion_main!(benches);
