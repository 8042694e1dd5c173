//! The JSON files custody reads from disk: the keystore file and escrow files.
#![no_main]
#![forbid(unsafe_code)]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json_check(data);
    let _ = phivault_keystore::escrow::inspect(data);
});

fn serde_json_check(data: &[u8]) -> Option<()> {
    let dir = std::env::temp_dir().join(format!("phivault-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    std::fs::write(dir.join("keystore.json"), data).ok()?;
    let _ = phivault_keystore::store::read_file(&dir);
    let _ = phivault_keystore::seal::Unsealer::new(&dir);
    None
}
