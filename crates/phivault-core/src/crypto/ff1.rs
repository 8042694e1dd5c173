//! FF1 format-preserving encryption (NIST SP 800-38G Rev. 1, §5.1) over
//! the module's AES, for tokens that must keep an identifier's shape.
//!
//! Written here because no maintained Rust crate runs FF1 on the FIPS
//! module's AES: the `fpe` crate takes a RustCrypto block cipher. The
//! arithmetic uses `u128`, which bounds the length: `radix^ceil(n/2)` must
//! stay below 2^120 (e.g. up to 72 decimal digits). SP 800-38G Rev. 1's
//! domain rule `radix^n ≥ 1 000 000` is enforced.

use super::CryptoError;
use aws_lc_rs::cipher::{AES_128, AES_192, AES_256, EncryptingKey, UnboundCipherKey};

/// Smallest domain SP 800-38G Rev. 1 allows: radix^minlen ≥ 10^6.
pub const MIN_DOMAIN: u128 = 1_000_000;
/// Largest radix^ceil(n/2) this implementation handles.
const MAX_HALF_DOMAIN: u128 = 1 << 120;
/// Rounds (fixed by the standard).
const ROUNDS: u8 = 10;

/// An FF1 key for one radix.
pub struct Ff1 {
    aes: EncryptingKey,
    radix: u32,
}

impl core::fmt::Debug for Ff1 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Ff1(radix {}, <key>)", self.radix)
    }
}

fn pow(radix: u32, e: usize) -> Option<u128> {
    let mut acc: u128 = 1;
    for _ in 0..e {
        acc = acc.checked_mul(radix as u128)?;
    }
    Some(acc)
}

impl Ff1 {
    /// An FF1 key: AES-128, -192 or -256 by the key's length, and a radix
    /// in 2..=65536.
    pub fn new(key: &[u8], radix: u32) -> Result<Self, CryptoError> {
        if !(2..=65_536).contains(&radix) {
            return Err(CryptoError::InvalidInput("FF1 radix must be 2..=65536"));
        }
        let alg = match key.len() {
            16 => &AES_128,
            24 => &AES_192,
            32 => &AES_256,
            _ => {
                return Err(CryptoError::InvalidInput(
                    "FF1 key must be 16, 24 or 32 bytes",
                ));
            }
        };
        let unbound = UnboundCipherKey::new(alg, key)
            .map_err(|_| CryptoError::Internal("FF1 AES key setup"))?;
        let aes =
            EncryptingKey::ecb(unbound).map_err(|_| CryptoError::Internal("FF1 AES key setup"))?;
        Ok(Self { aes, radix })
    }

    fn block(&self, b: &mut [u8; 16]) -> Result<(), CryptoError> {
        self.aes
            .encrypt(b)
            .map(|_| ())
            .map_err(|_| CryptoError::Internal("FF1 AES"))
    }

    /// The PRF of §4.3: CBC-MAC with a zero IV over whole blocks.
    fn prf(&self, data: &[u8]) -> Result<[u8; 16], CryptoError> {
        debug_assert_eq!(data.len() % 16, 0);
        let mut y = [0u8; 16];
        for chunk in data.chunks_exact(16) {
            for (a, b) in y.iter_mut().zip(chunk) {
                *a ^= b;
            }
            self.block(&mut y)?;
        }
        Ok(y)
    }

    fn num(&self, x: &[u16]) -> u128 {
        x.iter()
            .fold(0u128, |acc, &d| acc * self.radix as u128 + d as u128)
    }

    fn str_m(&self, mut v: u128, m: usize) -> Vec<u16> {
        let mut out = vec![0u16; m];
        for slot in out.iter_mut().rev() {
            *slot = (v % self.radix as u128) as u16;
            v /= self.radix as u128;
        }
        out
    }

    fn check(&self, x: &[u16]) -> Result<(usize, usize, usize), CryptoError> {
        if x.iter().any(|&d| d as u32 >= self.radix) {
            return Err(CryptoError::InvalidInput(
                "FF1 numeral out of range for the radix",
            ));
        }
        let n = x.len();
        if n < 2 || pow(self.radix, n).is_some_and(|d| d < MIN_DOMAIN) {
            return Err(CryptoError::InvalidInput(
                "FF1 domain too small: radix^length must be at least 1 000 000",
            ));
        }
        let u = n / 2;
        let v = n - u;
        match pow(self.radix, v) {
            Some(d) if d <= MAX_HALF_DOMAIN => {}
            _ => return Err(CryptoError::InvalidInput("FF1 input too long")),
        }
        // b = ceil(ceil(v · log2(radix)) / 8): bytes to hold radix^v − 1.
        let max = pow(self.radix, v).expect("checked") - 1;
        let bits = 128 - max.leading_zeros() as usize;
        let b = bits.div_ceil(8).max(1);
        Ok((u, v, b))
    }

    /// One round's y = NUM(S) mod radix^m (steps 6.i–6.vi).
    fn round_y(
        &self,
        p: &[u8; 16],
        tweak: &[u8],
        i: u8,
        half: &[u16],
        b: usize,
        modulus: u128,
    ) -> Result<u128, CryptoError> {
        let pad = (16 - (tweak.len() + b + 1) % 16) % 16;
        let mut q = Vec::with_capacity(16 + tweak.len() + pad + 1 + b);
        q.extend_from_slice(p);
        q.extend_from_slice(tweak);
        q.extend(std::iter::repeat_n(0u8, pad));
        q.push(i);
        q.extend_from_slice(&self.num(half).to_be_bytes()[16 - b..]);
        let r = self.prf(&q)?;
        let d = 4 * b.div_ceil(4) + 4;
        let mut s = Vec::with_capacity(d.div_ceil(16) * 16);
        s.extend_from_slice(&r);
        for j in 1..d.div_ceil(16) {
            let mut blk = r;
            for (k, x) in (j as u128).to_be_bytes().iter().enumerate() {
                blk[k] ^= x;
            }
            self.block(&mut blk)?;
            s.extend_from_slice(&blk);
        }
        // acc < modulus ≤ 2^120, so acc·256 + 255 fits in u128.
        Ok(s[..d]
            .iter()
            .fold(0u128, |acc, &x| (acc * 256 + x as u128) % modulus))
    }

    fn p_block(&self, u: usize, n: usize, t: usize) -> [u8; 16] {
        let mut p = [0u8; 16];
        p[0] = 1;
        p[1] = 2;
        p[2] = 1;
        p[3..6].copy_from_slice(&self.radix.to_be_bytes()[1..]);
        p[6] = ROUNDS;
        p[7] = (u % 256) as u8;
        p[8..12].copy_from_slice(&(n as u32).to_be_bytes());
        p[12..16].copy_from_slice(&(t as u32).to_be_bytes());
        p
    }

    /// FF1.Encrypt(K, T, X).
    pub fn encrypt(&self, tweak: &[u8], x: &[u16]) -> Result<Vec<u16>, CryptoError> {
        let (u, v, b) = self.check(x)?;
        let p = self.p_block(u, x.len(), tweak.len());
        let (mut a, mut bb) = (x[..u].to_vec(), x[u..].to_vec());
        for i in 0..ROUNDS {
            let m = if i % 2 == 0 { u } else { v };
            let modulus = pow(self.radix, m).expect("checked");
            let y = self.round_y(&p, tweak, i, &bb, b, modulus)?;
            let c = (self.num(&a) % modulus + y) % modulus;
            a = std::mem::replace(&mut bb, self.str_m(c, m));
        }
        a.extend_from_slice(&bb);
        Ok(a)
    }

    /// FF1.Decrypt(K, T, Y).
    pub fn decrypt(&self, tweak: &[u8], x: &[u16]) -> Result<Vec<u16>, CryptoError> {
        let (u, v, b) = self.check(x)?;
        let p = self.p_block(u, x.len(), tweak.len());
        let (mut a, mut bb) = (x[..u].to_vec(), x[u..].to_vec());
        for i in (0..ROUNDS).rev() {
            let m = if i % 2 == 0 { u } else { v };
            let modulus = pow(self.radix, m).expect("checked");
            let y = self.round_y(&p, tweak, i, &a, b, modulus)?;
            let c = (self.num(&bb) % modulus + modulus - y) % modulus;
            bb = std::mem::replace(&mut a, self.str_m(c, m));
        }
        a.extend_from_slice(&bb);
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(s: &str) -> Vec<u16> {
        s.chars().map(|c| c.to_digit(36).unwrap() as u16).collect()
    }

    fn text(x: &[u16]) -> String {
        x.iter()
            .map(|&d| char::from_digit(d as u32, 36).unwrap())
            .collect()
    }

    /// NIST's published FF1 samples (SP 800-38G examples, FF1 samples 1-9).
    #[test]
    fn nist_samples() {
        let k128 = hex::decode("2B7E151628AED2A6ABF7158809CF4F3C").unwrap();
        let k192 = hex::decode("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F").unwrap();
        let k256 = hex::decode("2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94")
            .unwrap();
        let t1 = hex::decode("39383736353433323130").unwrap();
        let t2 = hex::decode("3737373770717273373737").unwrap();
        // (key, radix, tweak, plaintext, ciphertext)
        type Sample<'a> = (&'a [u8], u32, &'a [u8], &'a str, &'a str);
        let cases: &[Sample] = &[
            (&k128, 10, &[], "0123456789", "2433477484"),
            (&k128, 10, &t1, "0123456789", "6124200773"),
            (&k128, 36, &t2, "0123456789abcdefghi", "a9tv40mll9kdu509eum"),
            (&k192, 10, &[], "0123456789", "2830668132"),
            (&k192, 10, &t1, "0123456789", "2496655549"),
            (&k192, 36, &t2, "0123456789abcdefghi", "xbj3kv35jrawxv32ysr"),
            (&k256, 10, &[], "0123456789", "6657667009"),
            (&k256, 10, &t1, "0123456789", "1001623463"),
            (&k256, 36, &t2, "0123456789abcdefghi", "xs8a0azh2avyalyzuwd"),
        ];
        for (i, (k, radix, t, pt, ct)) in cases.iter().enumerate() {
            // AES-192 is not offered by the FIPS module's ECB; skip it there.
            let Ok(f) = Ff1::new(k, *radix) else {
                assert_eq!(k.len(), 24, "sample {}", i + 1);
                continue;
            };
            let got = f.encrypt(t, &digits(pt)).unwrap();
            assert_eq!(text(&got), *ct, "sample {}", i + 1);
            assert_eq!(text(&f.decrypt(t, &got).unwrap()), *pt, "sample {}", i + 1);
        }
    }

    #[test]
    fn domain_and_input_checks() {
        let f = Ff1::new(&[7u8; 32], 10).unwrap();
        assert!(f.encrypt(b"", &digits("12345")).is_err(), "10^5 < 10^6");
        assert!(f.encrypt(b"", &digits("123456")).is_ok());
        assert!(
            f.encrypt(b"", &[1, 2, 3, 4, 5, 10]).is_err(),
            "numeral >= radix"
        );
        assert!(f.encrypt(b"", &[1u16; 73]).is_err(), "too long");
        assert!(f.encrypt(b"", &[1u16; 72]).is_ok());
        assert!(Ff1::new(&[0u8; 20], 10).is_err());
        assert!(Ff1::new(&[0u8; 32], 1).is_err());
    }

    proptest::proptest! {
        #[test]
        fn round_trips(x in proptest::collection::vec(0u16..10, 6..40), t in proptest::collection::vec(proptest::num::u8::ANY, 0..20)) {
            let f = Ff1::new(&[9u8; 32], 10).unwrap();
            let c = f.encrypt(&t, &x).unwrap();
            proptest::prop_assert_eq!(c.len(), x.len());
            proptest::prop_assert!(c.iter().all(|d| *d < 10));
            proptest::prop_assert_eq!(f.decrypt(&t, &c).unwrap(), x);
        }
    }
}
