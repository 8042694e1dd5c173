//! Types that hold secret material.
//!
//! Every key, share and passphrase-derived value in phivault lives in one of
//! these types. They zeroize their memory on drop, are not `Clone`, and their
//! `Debug` prints only a placeholder, so a secret can't reach a log line,
//! an error message or a panic by accident. The only way to read the bytes
//! is [`SecretKey::expose_secret`] / [`SecretBytes::expose_secret`], which
//! makes every such place easy to find in review.

use core::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every symmetric key phivault uses (AES-256, HMAC keys, root keys).
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key. Zeroized on drop; never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// Wraps raw key bytes. The caller's copy should be zeroized by the caller.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Copies a key out of a slice, failing unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// The raw key bytes. Every call site is a place where a secret leaves
    /// its type; keep them few and reviewed.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// An explicit copy. `SecretKey` is deliberately not `Clone`, so copies
    /// are visible in the code.
    pub fn duplicate(&self) -> Self {
        Self(self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Variable-length secret bytes (unwrapped keys of other sizes, PKCS#8
/// documents, passphrases). Zeroized on drop; never printed.
#[derive(Zeroize, ZeroizeOnDrop, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw bytes; see [`SecretKey::expose_secret`].
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_reveals_bytes() {
        let k = SecretKey::from_bytes([0x41; KEY_LEN]);
        let s = format!("{k:?}");
        assert!(
            !s.contains("41") && !s.contains("65") && !s.contains('A'),
            "{s}"
        );
        let b = SecretBytes::new(b"patient-name".to_vec());
        assert!(!format!("{b:?}").contains("patient"));
    }
}
