//! Criterion benches for the formats: envelope round trips of a 1 KiB value
//! (including the per-message key derivation), stream throughput on one
//! and on all cores, and backup throughput (writer, decrypting reader, and
//! the keyless verifier) on 256 MiB. `scripts/bench.sh` runs the side-by-side comparison
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

criterion_group!(benches, envelope_bench, stream_bench, backup_bench);
criterion_main!(benches);
