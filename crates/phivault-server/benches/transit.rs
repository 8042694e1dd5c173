//! Transit operations without HTTP: what a request costs inside the
//! server (key lookup, KBKDF, AES-GCM, base64). The HTTPS numbers, next to
//! nginx, come from scripts/bench-server.sh.
#![forbid(unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phivault_keystore::{InitMethod, Keystore, store};
use phivault_server::transit::{Binding, CreateOptions, Transit};
use rayon::prelude::*;

fn bench(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    store::init(d.path(), InitMethod::Dev).unwrap();
    let ks = Keystore::open_dev(d.path()).unwrap();
    let t = Transit::new(&ks);
    t.create("billing", &CreateOptions::default()).unwrap();
    let pt = vec![0x42u8; 1024];
    let b = Binding::default();
    let mut g = c.benchmark_group("transit");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encrypt_1k", |x| {
        x.iter(|| t.encrypt("billing", &pt, &b, None).unwrap())
    });
    let ct = t.encrypt("billing", &pt, &b, None).unwrap().ciphertext;
    g.bench_function("decrypt_1k", |x| {
        x.iter(|| t.decrypt("billing", &ct, &b).unwrap())
    });
    g.bench_function("hmac", |x| {
        x.iter(|| t.hmac("billing", "sha2-256", &pt, None).unwrap())
    });
    let r = t.ring_for_encrypt("billing").unwrap();
    let v = t.primary(&r.ring, "billing").unwrap();
    let small = vec![0x42u8; 64];
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_1000x64B_parallel", |x| {
        x.iter(|| {
            (0..1000)
                .into_par_iter()
                .map(|_| t.encrypt_ring(&r, "billing", &small, &b, Some(v)).unwrap())
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
