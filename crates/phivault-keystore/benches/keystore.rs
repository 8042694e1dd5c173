//! The envelope round trip through a real on-disk `Keystore` (what the CLI
//! in dev mode and the key agent use), which adds a stat(2) per key use to
//! notice changes by other processes. Compare with phivault-core's
//! `envelope/roundtrip_1KiB`, which uses an in-memory deriver.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phivault_core::envelope;
use phivault_core::keys::KeyRingName;
use phivault_keystore::{InitMethod, Keystore, store};
use std::hint::black_box;

fn keystore_envelope(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let ks = Keystore::open_dev(d.path()).unwrap();
    let ring = KeyRingName::parse("bench/env").unwrap();
    ks.create_ring(&ring, 30).unwrap();
    let value = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("keystore_envelope");
    g.throughput(Throughput::Elements(1));
    g.bench_function("roundtrip_1KiB", |b| {
        b.iter(|| {
            let ct = envelope::encrypt(&ks, &ring, b"rec/field", black_box(&value)).unwrap();
            envelope::decrypt(&ks, &ct, b"rec/field").unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, keystore_envelope);
criterion_main!(benches);
