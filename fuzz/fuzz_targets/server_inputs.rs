//! The server's parsers of untrusted input: scopes, bearer tokens, client
//! certificates (identity and scopes extension), server certificates
//! against the profile, durations, transit HMAC strings, and a backup's
//! contents (the archive's JSON lines). The first
//! byte picks the parser. None may panic.
#![no_main]
#![forbid(unsafe_code)]

use libfuzzer_sys::fuzz_target;
use phivault_server::auth::{Scopes, TokenAuthority};
use phivault_server::pki::{self, PeerIdentity};
use std::sync::OnceLock;
use std::time::Duration;

fn authority() -> &'static TokenAuthority {
    static A: OnceLock<TokenAuthority> = OnceLock::new();
    A.get_or_init(|| TokenAuthority::new("phivault", "phivault", Duration::from_secs(3600)).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match sel % 6 {
        0 => {
            if let Ok(s) = Scopes::parse(text.split_whitespace()) {
                let _ = s.allows("transit:encrypt:billing");
                let _ = s.covers(&s);
            }
        }
        1 => {
            let peer = PeerIdentity {
                principal: "spiffe://t/x".into(),
                scopes: vec![],
                x5t_s256: "AAAA".into(),
                serial: "01".into(),
                not_after: 0,
            };
            let _ = authority().verify(&text, &peer);
        }
        2 => {
            let _ = pki::peer_identity(rest);
        }
        3 => {
            let _ = pki::check_server_cert(rest, false);
        }
        4 => {
            // A backup's decrypted contents (FORMAT.md §14).
            let _ = phivault_server::backup::check(rest);
        }
        _ => {
            let _ = phivault_server::transit::parse_duration(&text);
        }
    }
});
