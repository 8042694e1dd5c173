//! Unsealing: turning shares or a passphrase into an open [`Keystore`].

use crate::location::Location;
use crate::model::Seal;
use crate::store::{Keystore, read_file};
use crate::{KeystoreError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::crypto;
use phivault_core::secret::{SecretBytes, SecretKey};
use phivault_core::shamir::{self, Share};

/// Refuse PBKDF2 counts above this from a file: a hostile file could
/// otherwise make an unseal spin for hours.
pub const MAX_ITERATIONS: u32 = 50_000_000;

/// Progress of a Shamir unseal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Distinct valid shares received.
    pub have: usize,
    /// Shares needed.
    pub need: usize,
}

/// Collects Shamir shares, one per call, as `vault operator unseal` does.
pub struct Unsealer {
    loc: Location,
    set: [u8; 8],
    need: usize,
    shares: Vec<Share>,
}

impl core::fmt::Debug for Unsealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Unsealer({}/{} shares)", self.shares.len(), self.need)
    }
}

fn parse_hex8(s: &str) -> Result<[u8; 8]> {
    let mut out = [0u8; 8];
    if s.len() != 16 || !s.is_ascii() {
        return Err(KeystoreError::Corrupt("bad share set id".into()));
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| KeystoreError::Corrupt("bad share set id".into()))?;
    }
    Ok(out)
}

impl Unsealer {
    /// Starts an unseal of the keystore in `dir`; it must use Shamir.
    pub fn new(loc: impl Into<Location>) -> Result<Self> {
        let loc = loc.into();
        let file = read_file(&loc)?;
        match &file.body.seal {
            Seal::Shamir {
                threshold,
                share_set,
                ..
            } => Ok(Self {
                loc,
                set: parse_hex8(share_set)?,
                need: *threshold as usize,
                shares: Vec::new(),
            }),
            other => Err(KeystoreError::WrongMethod {
                uses: other.name(),
                given: "shamir",
            }),
        }
    }

    /// Current progress.
    pub fn progress(&self) -> Progress {
        Progress {
            have: self.shares.len(),
            need: self.need,
        }
    }

    /// Adds one share. Returns the keystore once enough shares are in; a
    /// wrong share is detected then, and the collected shares are dropped.
    pub fn submit(&mut self, text: &str) -> Result<Option<Keystore>> {
        let share = Share::decode(text, Some(&self.set))?;
        if self.shares.iter().any(|s| s.x == share.x) {
            return Err(shamir::ShamirError::DuplicateShare(share.x).into());
        }
        self.shares.push(share);
        if self.shares.len() < self.need {
            return Ok(None);
        }
        let shares = std::mem::take(&mut self.shares);
        let secret = shamir::combine(&shares)?;
        let key =
            SecretKey::from_slice(secret.expose_secret()).ok_or(KeystoreError::WrongShares)?;
        match Keystore::open_with_unseal_key(&self.loc, &key) {
            Ok(ks) => Ok(Some(ks)),
            Err(KeystoreError::WrongUnsealKey) => Err(KeystoreError::WrongShares),
            Err(e) => Err(e),
        }
    }

    /// Forgets the shares collected so far.
    pub fn reset(&mut self) {
        self.shares.clear();
    }
}

/// Opens a passphrase-sealed keystore.
pub fn open_with_passphrase(
    loc: impl Into<Location>,
    passphrase: &SecretBytes,
) -> Result<Keystore> {
    let loc = loc.into();
    let file = read_file(&loc)?;
    let Seal::Passphrase { iterations, salt } = &file.body.seal else {
        return Err(KeystoreError::WrongMethod {
            uses: file.body.seal.name(),
            given: "passphrase",
        });
    };
    if *iterations > MAX_ITERATIONS {
        return Err(KeystoreError::Corrupt(format!(
            "PBKDF2 iteration count {iterations} is implausibly high"
        )));
    }
    let salt = B64
        .decode(salt)
        .map_err(|_| KeystoreError::Corrupt("bad salt".into()))?;
    let key = crypto::pbkdf2_hmac_sha256(passphrase.expose_secret(), &salt, *iterations)?;
    match Keystore::open_with_unseal_key(&loc, &key) {
        Err(KeystoreError::WrongUnsealKey) => Err(KeystoreError::WrongPassphrase),
        other => other,
    }
}

/// The seal method's public description, for `status` while sealed.
pub fn describe(loc: impl Into<Location>) -> Result<(String, Seal)> {
    let f = read_file(loc)?;
    Ok((f.body.keystore_id, f.body.seal))
}
