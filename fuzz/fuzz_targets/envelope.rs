//! Envelope parser and decryptor on arbitrary bytes and text.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;
use phivault_core::envelope;
use phivault_core::keys::{KeyRingName, KeyVersion, StaticKeys};
use phivault_core::secret::SecretKey;

fuzz_target!(|data: &[u8]| {
    let mut keys = StaticKeys::new();
    keys.insert(KeyRingName::parse("test/vectors").unwrap(), KeyVersion::MIN, SecretKey::from_bytes([0x0f; 32]));
    let _ = envelope::parse_header(data);
    let _ = envelope::decrypt(&keys, data, b"ctx");
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(bytes) = envelope::from_text(s) {
            let _ = envelope::decrypt(&keys, &bytes, b"");
        }
    }
});
