//! Stream header parser, decryptor and range decryptor on arbitrary bytes.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;
use phivault_core::keys::{KeyRingName, KeyVersion, StaticKeys};
use phivault_core::secret::SecretKey;
use phivault_core::stream;

fuzz_target!(|data: &[u8]| {
    let mut keys = StaticKeys::new();
    keys.insert(KeyRingName::parse("test/vectors").unwrap(), KeyVersion::new(3).unwrap(), SecretKey::from_bytes([0x0f; 32]));
    if let Ok(h) = stream::read_header(&mut &data[..]) {
        let _ = stream::layout(&h, data.len() as u64);
    }
    let mut out = Vec::new();
    let _ = stream::decrypt(&keys, data, &mut out, stream::Options::default(), &mut |_| {});
    let _ = stream::decrypt_range(&keys, std::io::Cursor::new(data), 4000, 200, Vec::new());
});
