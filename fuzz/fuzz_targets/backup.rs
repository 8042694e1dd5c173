//! Backup header parser, keyless verifier and decrypting reader on
//! arbitrary bytes. The reader holds the backup key of
//! tests/vectors/backup.json, so the seeds reach the key agreement, the
//! commitment and the segments.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;
use phivault_core::backup;
use phivault_core::crypto::EcdhP384PrivateKey;
use phivault_core::secret::SecretBytes;
use phivault_core::stream::Options;
use std::io::Read;
use std::sync::OnceLock;

fn key() -> &'static EcdhP384PrivateKey {
    static KEY: OnceLock<EcdhP384PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        // RFC 5915 ECPrivateKey: version 1, the scalar 0x2a × 48, secp384r1.
        let mut der = vec![0x30, 0x3e, 0x02, 0x01, 0x01, 0x04, 0x30];
        der.extend_from_slice(&[0x2a; 48]);
        der.extend_from_slice(&[0xa0, 0x07, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
        EcdhP384PrivateKey::from_pkcs8(&SecretBytes::new(der)).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = backup::read_header(&mut &data[..]);
    let _ = backup::verify_integrity(data, None);
    if let Ok(mut r) = backup::BackupReader::open(data, key(), None, Options::default()) {
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                let _ = r.into_info();
                break;
            }
        }
    }
});
