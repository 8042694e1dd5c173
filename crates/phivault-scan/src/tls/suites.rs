//! The cipher-suite registry and what each suite is made of.
//!
//! Names and code points come from rustls' `CipherSuite`, which carries the
//! whole IANA TLS Cipher Suites registry (NULL, EXPORT, RC4, DES, 3DES, CBC,
//! ChaCha20, CCM, ARIA, Camellia, GOST, PSK, SRP...), so the list is kept by
//! a maintained crate instead of by hand here. Properties are read off the
//! IANA name, whose grammar is regular: `TLS_<kex>[_<auth>]_WITH_<cipher>_<mac>`.

use serde::Serialize;

/// TLS 1.3 suites (RFC 8446 §B.4), offered only in TLS 1.3 probes.
pub const TLS13: [u16; 5] = [0x1301, 0x1302, 0x1303, 0x1304, 0x1305];

/// Signalling values that are not suites.
const SCSV: [u16; 2] = [0x00ff, 0x5600];

/// The IANA name of a suite, or `0xABCD` for one the registry doesn't name.
pub fn name(code: u16) -> String {
    // rustls spells the TLS 1.3 suites `TLS13_…`; IANA says `TLS_…`.
    if TLS13.contains(&code) {
        return [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_AES_128_CCM_SHA256",
            "TLS_AES_128_CCM_8_SHA256",
        ][(code - 0x1301) as usize]
            .to_owned();
    }
    rustls::CipherSuite::from(code)
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("0x{code:04X}"))
}

/// Every named suite for TLS 1.2 and below (no TLS 1.3 suites, no SCSVs),
/// in registry order.
pub fn legacy() -> Vec<u16> {
    (0..=0xffffu16)
        .filter(|c| !TLS13.contains(c) && !SCSV.contains(c))
        .filter(|&c| rustls::CipherSuite::from(c).as_str().is_some())
        .collect()
}

/// What a suite is made of, as far as the grading needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Traits {
    /// Ephemeral key exchange (ECDHE or DHE, or any TLS 1.3 suite).
    pub forward_secret: bool,
    /// AEAD bulk cipher (GCM, CCM, ChaCha20-Poly1305).
    pub aead: bool,
    /// AES (any mode).
    pub aes: bool,
    /// AES-GCM or AES-CCM (not CCM_8's shortened tag? it counts: NIST lists it).
    pub aes_aead: bool,
    /// CBC mode.
    pub cbc: bool,
    /// ChaCha20-Poly1305.
    pub chacha: bool,
    /// Broken or forbidden everywhere: NULL, EXPORT, RC4, DES, 3DES, IDEA,
    /// RC2, anonymous key exchange, MD5 MAC.
    pub broken: bool,
    /// Key exchange: ECDHE, DHE, RSA, PSK, ...
    pub kex: &'static str,
    /// Authentication: ECDSA, RSA, anon, PSK, ...
    pub auth: &'static str,
}

/// Reads a suite's traits off its IANA name.
pub fn traits(code: u16) -> Traits {
    let n = name(code);
    if TLS13.contains(&code) {
        return Traits {
            forward_secret: true,
            aead: true,
            aes: code != 0x1303,
            aes_aead: code != 0x1303,
            cbc: false,
            chacha: code == 0x1303,
            broken: false,
            kex: "any",
            auth: "any",
        };
    }
    let (head, tail) = n.split_once("_WITH_").unwrap_or((n.as_str(), ""));
    let has = |s: &str| tail.contains(s);
    let kex_auth = head.trim_start_matches("TLS_").trim_start_matches("SSL_");
    let (kex, auth): (&'static str, &'static str) = match kex_auth {
        k if k.starts_with("ECDHE_ECDSA") => ("ECDHE", "ECDSA"),
        k if k.starts_with("ECDHE_RSA") => ("ECDHE", "RSA"),
        k if k.starts_with("ECDHE_PSK") => ("ECDHE", "PSK"),
        k if k.starts_with("ECDH_anon") => ("ECDH", "anon"),
        k if k.starts_with("ECDH_") => ("ECDH", "static"),
        k if k.starts_with("DHE_RSA") || k.starts_with("EDH_RSA") => ("DHE", "RSA"),
        k if k.starts_with("DHE_DSS") || k.starts_with("EDH_DSS") => ("DHE", "DSS"),
        k if k.starts_with("DHE_PSK") => ("DHE", "PSK"),
        k if k.starts_with("DH_anon") => ("DH", "anon"),
        k if k.starts_with("DH_") => ("DH", "static"),
        k if k.starts_with("RSA_PSK") => ("RSA", "PSK"),
        k if k.starts_with("RSA") => ("RSA", "RSA"),
        k if k.starts_with("PSK") => ("PSK", "PSK"),
        k if k.starts_with("SRP") => ("SRP", "SRP"),
        k if k.starts_with("KRB5") => ("KRB5", "KRB5"),
        k if k.starts_with("GOST") => ("GOST", "GOST"),
        k if k.starts_with("ECCPWD") => ("ECCPWD", "ECCPWD"),
        _ => ("other", "other"),
    };
    let export = n.contains("EXPORT");
    let null = tail.starts_with("NULL") || n.contains("NULL_WITH") || tail.is_empty();
    let gcm_ccm = has("_GCM") || has("_CCM");
    let chacha = has("CHACHA20");
    let aes = tail.starts_with("AES");
    let broken = export
        || null
        || has("RC4")
        || has("DES")
        || has("IDEA")
        || has("RC2")
        || auth == "anon"
        || tail.ends_with("_MD5")
        || kex == "KRB5"
        || n.contains("FORTEZZA");
    Traits {
        forward_secret: matches!(kex, "ECDHE" | "DHE"),
        aead: gcm_ccm || chacha,
        aes,
        aes_aead: aes && gcm_ccm,
        cbc: has("_CBC"),
        chacha,
        broken,
        kex,
        auth,
    }
}

/// SSL 2.0 cipher specs (3 bytes each) and their names.
pub const SSL2_SPECS: [([u8; 3], &str); 7] = [
    ([0x01, 0x00, 0x80], "SSL_CK_RC4_128_WITH_MD5"),
    ([0x02, 0x00, 0x80], "SSL_CK_RC4_128_EXPORT40_WITH_MD5"),
    ([0x03, 0x00, 0x80], "SSL_CK_RC2_128_CBC_WITH_MD5"),
    ([0x04, 0x00, 0x80], "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5"),
    ([0x05, 0x00, 0x80], "SSL_CK_IDEA_128_CBC_WITH_MD5"),
    ([0x06, 0x00, 0x40], "SSL_CK_DES_64_CBC_WITH_MD5"),
    ([0x07, 0x00, 0xc0], "SSL_CK_DES_192_EDE3_CBC_WITH_MD5"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_complete_enough() {
        let all = legacy();
        assert!(all.len() > 300, "{}", all.len());
        for c in [0x0004, 0x000a, 0x002f, 0xc02f, 0xcca8, 0xc0ac, 0x0003] {
            assert!(all.contains(&c), "{c:04x}");
        }
        assert!(!all.contains(&0x1301) && !all.contains(&0x00ff));
    }

    #[test]
    fn traits_from_names() {
        let t = traits(0xc02f); // ECDHE_RSA_WITH_AES_128_GCM_SHA256
        assert!(t.forward_secret && t.aead && t.aes_aead && !t.broken && !t.cbc);
        let t = traits(0x000a); // RSA_WITH_3DES_EDE_CBC_SHA
        assert!(t.broken && t.cbc && !t.forward_secret);
        let t = traits(0x0003); // RSA_EXPORT_WITH_RC4_40_MD5
        assert!(t.broken);
        let t = traits(0xcca8);
        assert!(t.chacha && t.aead && !t.aes_aead);
        let t = traits(0xc0ac); // ECDHE_ECDSA_WITH_AES_128_CCM
        assert!(t.aes_aead && t.forward_secret && t.auth == "ECDSA");
        let t = traits(0x0018); // DH_anon_WITH_RC4_128_MD5
        assert!(t.broken);
        let t = traits(0x0002); // RSA_WITH_NULL_SHA
        assert!(t.broken);
        assert!(traits(0x1303).chacha && traits(0x1302).aes_aead);
    }
}
