//! Who may do what: scopes, and the short-lived bearer tokens (JWTs) bound
//! to client certificates (RFC 8705).
//!
//! A request is authenticated by its client certificate (mTLS). It may
//! also carry a token (`Authorization: Bearer` or `X-Vault-Token`); then
//! the token's scopes apply, and the token must be bound to the very
//! certificate presented on the connection (`cnf.x5t#S256`). A token never
//! widens what the certificate may do: phivault issues tokens only for a
//! subset of the certificate's scopes.

use crate::AuthError;
use crate::pki::PeerIdentity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use phivault_core::crypto::{self, SignatureAlgorithm, SigningKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The longest token lifetime phivault issues or accepts.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Clock skew allowed on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;

/// A scope: `area:operation[:resource]`, each segment `[a-z0-9_.-]+` or
/// `*` (which matches any one segment). Examples: `transit:encrypt:billing`,
/// `transit:*:billing`, `keys:admin`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(String);

impl Scope {
    /// Parses a scope.
    pub fn parse(s: &str) -> Result<Self, AuthError> {
        let segs: Vec<&str> = s.split(':').collect();
        let ok = (1..=4).contains(&segs.len())
            && segs.iter().all(|g| {
                *g == "*"
                    || (!g.is_empty()
                        && g.len() <= 64
                        && g.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)
                        }))
            });
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(AuthError::BadScope(s.to_string()))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this (granted) scope allows `required`, which has no wildcards.
    pub fn allows(&self, required: &str) -> bool {
        let mut g = self.0.split(':');
        let mut r = required.split(':');
        loop {
            match (g.next(), r.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == "*" || a == b => {}
                _ => return false,
            }
        }
    }
}

/// A set of granted scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Parses scopes, skipping none: one bad scope fails the whole set.
    pub fn parse<'a>(it: impl IntoIterator<Item = &'a str>) -> Result<Self, AuthError> {
        it.into_iter()
            .map(Scope::parse)
            .collect::<Result<_, _>>()
            .map(Self)
    }
    /// Whether any granted scope allows `required`.
    pub fn allows(&self, required: &str) -> bool {
        self.0.iter().any(|s| s.allows(required))
    }
    /// Whether every scope of `other` is covered by one of ours (a granted
    /// wildcard covers the same wildcard, never a wider one).
    pub fn covers(&self, other: &Scopes) -> bool {
        other
            .0
            .iter()
            .all(|o| self.0.iter().any(|s| s.allows(&o.0)))
    }
    /// The scopes of `self` that `limit` covers.
    pub fn within(&self, limit: &Scopes) -> Scopes {
        Scopes(
            self.0
                .iter()
                .filter(|s| limit.0.iter().any(|l| l.allows(&s.0)))
                .cloned()
                .collect(),
        )
    }

    /// Space-separated, as the `scope` claim.
    pub fn to_claim(&self) -> String {
        self.0
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// The scopes.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }
}

/// RFC 8705 confirmation claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 of the client certificate DER.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// Token claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the principal.
    pub sub: String,
    /// Audience (external issuers may send an array).
    pub aud: Audience,
    /// Issued at.
    pub iat: u64,
    /// Not before (optional from external issuers).
    #[serde(default)]
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
    /// Token id (optional from external issuers).
    #[serde(default)]
    pub jti: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// Certificate binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `aud`: one string (ours), or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// What a verified token grants.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    /// Token id.
    pub jti: String,
    /// Subject.
    pub subject: String,
    /// Issuer.
    pub issuer: String,
    /// Scopes.
    pub scopes: Scopes,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

struct SigningState {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: serde_json::Value,
    created: std::time::Instant,
}

/// An external OIDC issuer whose tokens are accepted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    /// The `iss` value.
    pub issuer: String,
    /// The audience its tokens must carry.
    pub audience: String,
    /// A JWKS file (JSON `{"keys": [...]}`), re-read on reload.
    pub jwks_file: std::path::PathBuf,
    /// Accept its tokens without an RFC 8705 certificate binding. The
    /// request must still come over mTLS, but a stolen token then works
    /// with any valid client certificate.
    #[serde(default)]
    pub insecure_allow_unbound_tokens: bool,
}

struct External {
    cfg: ExternalIssuer,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
}

/// Issues and verifies tokens. Signing keys are ECDSA P-256 (ES256), made
/// by the FIPS module, held in memory only and rotated every `rotate`;
/// the previous key stays in the JWKS until every token it signed has
/// expired. A restart therefore invalidates outstanding tokens, which live
/// at most 15 minutes.
pub struct TokenAuthority {
    issuer: String,
    audience: String,
    rotate: Duration,
    alg: Algorithm,
    keys: RwLock<Vec<SigningState>>,
    external: RwLock<Vec<External>>,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_signing_key(alg: Algorithm) -> Result<SigningState, AuthError> {
    if alg == Algorithm::PS256 {
        return new_rsa_signing_key();
    }
    let sk =
        SigningKey::generate(SignatureAlgorithm::EcdsaP256Sha256).map_err(AuthError::Crypto)?;
    let pkcs8 = sk.to_pkcs8().map_err(AuthError::Crypto)?;
    let pubkey = sk.public_key();
    // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
    if pubkey.len() != 65 || pubkey[0] != 4 {
        return Err(AuthError::Internal("unexpected public key encoding".into()));
    }
    let kid = hex::encode(&crypto::sha256(&pubkey)[..8]);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": B64U.encode(&pubkey[1..33]), "y": B64U.encode(&pubkey[33..]),
    });
    Ok(SigningState {
        alg: Algorithm::ES256,
        kid,
        key: EncodingKey::from_ec_der(pkcs8.expose_secret()),
        jwk,
        created: std::time::Instant::now(),
    })
}

/// A PS256 signing key: RSA-2048 from the module. jsonwebtoken takes the
/// PKCS#1 `RSAPrivateKey`, which is the OCTET STRING inside the module's
/// PKCS#8; the JWK's `n` and `e` come from the SubjectPublicKeyInfo.
fn new_rsa_signing_key() -> Result<SigningState, AuthError> {
    use x509_parser::prelude::FromDer;
    let (pkcs8, spki) = crypto::generate_rsa(2048).map_err(AuthError::Crypto)?;
    let bad = || AuthError::Internal("unexpected RSA key encoding".into());
    let (_, info) = x509_parser::der_parser::parse_der(pkcs8.expose_secret()).map_err(|_| bad())?;
    let seq = info.as_sequence().map_err(|_| bad())?;
    let pkcs1 = zeroize::Zeroizing::new(
        seq.get(2)
            .and_then(|o| o.as_slice().ok())
            .ok_or_else(bad)?
            .to_vec(),
    );
    let (_, pk) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).map_err(|_| bad())?;
    let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = pk.parsed() else {
        return Err(bad());
    };
    let trim = |b: &[u8]| {
        let z = b.iter().take_while(|x| **x == 0).count();
        b[z..].to_vec()
    };
    let kid = hex::encode(&crypto::sha256(&spki)[..8]);
    let jwk = serde_json::json!({
        "kty": "RSA", "use": "sig", "alg": "PS256", "kid": kid,
        "n": B64U.encode(trim(rsa.modulus)), "e": B64U.encode(trim(rsa.exponent)),
    });
    Ok(SigningState {
        alg: Algorithm::PS256,
        kid,
        key: EncodingKey::from_rsa_der(&pkcs1),
        jwk,
        created: std::time::Instant::now(),
    })
}

/// Parses the token signing algorithm setting: ES256 (default) or PS256.
pub fn token_algorithm(s: &str) -> Result<Algorithm, AuthError> {
    match s {
        "ES256" => Ok(Algorithm::ES256),
        "PS256" => Ok(Algorithm::PS256),
        other => Err(AuthError::Config(format!(
            "auth.token_algorithm must be ES256 or PS256, not '{other}'"
        ))),
    }
}

fn load_jwks(
    path: &std::path::Path,
) -> Result<HashMap<String, (DecodingKey, Algorithm)>, AuthError> {
    let text = std::fs::read(path)
        .map_err(|e| AuthError::Config(format!("reading JWKS {}: {e}", path.display())))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&text)
        .map_err(|e| AuthError::Config(format!("JWKS {} does not parse: {e}", path.display())))?;
    use jsonwebtoken::jwk::{AlgorithmParameters as P, KeyAlgorithm as K};
    let mut out = HashMap::new();
    for k in &set.keys {
        // Only ES256 and PS256 are accepted: a key's own "alg" must be one
        // of them (or absent, then EC → ES256, RSA → PS256); others
        // (RS256, HS256, …) are skipped.
        let alg = match (&k.algorithm, k.common.key_algorithm) {
            (P::EllipticCurve(_), None | Some(K::ES256)) => Algorithm::ES256,
            (P::RSA(_), None | Some(K::PS256)) => Algorithm::PS256,
            _ => continue,
        };
        let kid = k.common.key_id.clone().unwrap_or_default();
        if kid.is_empty() && set.keys.len() > 1 {
            return Err(AuthError::Config(format!(
                "JWKS {} has several keys, and one without a \"kid\"",
                path.display()
            )));
        }
        let dk = DecodingKey::from_jwk(k)
            .map_err(|e| AuthError::Config(format!("JWKS {}: {e}", path.display())))?;
        out.insert(kid, (dk, alg));
    }
    if out.is_empty() {
        return Err(AuthError::Config(format!(
            "JWKS {} has no ES256 or PS256 keys",
            path.display()
        )));
    }
    Ok(out)
}

impl TokenAuthority {
    /// A new authority with a fresh signing key.
    pub fn new(issuer: &str, audience: &str, rotate: Duration) -> Result<Self, AuthError> {
        Self::with_algorithm(issuer, audience, rotate, Algorithm::ES256)
    }

    /// A new authority signing with `alg` (ES256 or PS256).
    pub fn with_algorithm(
        issuer: &str,
        audience: &str,
        rotate: Duration,
        alg: Algorithm,
    ) -> Result<Self, AuthError> {
        if !matches!(alg, Algorithm::ES256 | Algorithm::PS256) {
            return Err(AuthError::Config(
                "tokens are signed with ES256 or PS256".into(),
            ));
        }
        Ok(Self {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            rotate,
            alg,
            keys: RwLock::new(vec![new_signing_key(alg)?]),
            external: RwLock::new(Vec::new()),
        })
    }

    /// The issuer name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Replaces the external issuers (config load and reload).
    pub fn set_external(&self, issuers: &[ExternalIssuer]) -> Result<(), AuthError> {
        let mut v = Vec::new();
        for cfg in issuers {
            v.push(External {
                keys: load_jwks(&cfg.jwks_file)?,
                cfg: cfg.clone(),
            });
        }
        *self.external.write().expect("lock") = v;
        Ok(())
    }

    /// Rotates the signing key if it is due; drops keys whose tokens have
    /// all expired. Called periodically.
    pub fn maintain(&self) -> Result<(), AuthError> {
        let due = self.keys.read().expect("lock")[0].created.elapsed() >= self.rotate;
        if due {
            self.rotate_now()?;
        }
        let keep = MAX_TOKEN_TTL + Duration::from_secs(LEEWAY_SECS);
        let mut keys = self.keys.write().expect("lock");
        // keys[i] stopped signing when keys[i-1] was made.
        let mut i = 1;
        while i < keys.len() {
            if keys[i - 1].created.elapsed() > keep {
                keys.truncate(i);
                break;
            }
            i += 1;
        }
        Ok(())
    }

    /// Makes a new signing key now; the old one keeps verifying.
    pub fn rotate_now(&self) -> Result<(), AuthError> {
        let k = new_signing_key(self.alg)?;
        self.keys.write().expect("lock").insert(0, k);
        Ok(())
    }

    /// The public JWKS.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .read()
            .expect("lock")
            .iter()
            .map(|k| k.jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Issues a token for `peer`, for `requested` scopes (a subset of what
    /// `granted` allows) and `ttl` (≤ 15 minutes).
    pub fn issue(
        &self,
        peer: &PeerIdentity,
        granted: &Scopes,
        requested: &Scopes,
        ttl: Duration,
    ) -> Result<(String, Claims), AuthError> {
        self.issue_at(peer, granted, requested, ttl, now_secs())
    }

    /// [`Self::issue`] as if at Unix time `now`, for tests of expiry.
    #[doc(hidden)]
    pub fn issue_at(
        &self,
        peer: &PeerIdentity,
        granted: &Scopes,
        requested: &Scopes,
        ttl: Duration,
        now: u64,
    ) -> Result<(String, Claims), AuthError> {
        if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
            return Err(AuthError::BadTtl(ttl.as_secs()));
        }
        if !granted.covers(requested) {
            return Err(AuthError::ScopeNotGranted(requested.to_claim()));
        }
        let jti: [u8; 16] = crypto::random_array().map_err(AuthError::Crypto)?;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: peer.principal.clone(),
            aud: Audience::One(self.audience.clone()),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: hex::encode(jti),
            scope: requested.to_claim(),
            cnf: Some(Confirmation {
                x5t_s256: peer.x5t_s256.clone(),
            }),
        };
        let keys = self.keys.read().expect("lock");
        let mut header = Header::new(keys[0].alg);
        header.kid = Some(keys[0].kid.clone());
        header.typ = Some("at+jwt".into());
        let token = jsonwebtoken::encode(&header, &claims, &keys[0].key)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies a token presented on a connection authenticated as `peer`.
    pub fn verify(&self, token: &str, peer: &PeerIdentity) -> Result<TokenGrant, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::BadToken)?;
        let kid = header.kid.clone().unwrap_or_default();
        // Peek at the issuer (unverified) only to pick the key set.
        let iss = unverified_issuer(token).ok_or(AuthError::BadToken)?;
        let (key, alg, audience, unbound_ok) = if iss == self.issuer {
            let keys = self.keys.read().expect("lock");
            let k = keys
                .iter()
                .find(|k| k.kid == kid)
                .ok_or(AuthError::UnknownKey)?;
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(k.jwk.clone()).map_err(|_| AuthError::BadToken)?;
            (
                DecodingKey::from_jwk(&jwk).map_err(|_| AuthError::BadToken)?,
                k.alg,
                self.audience.clone(),
                false,
            )
        } else {
            let ext = self.external.read().expect("lock");
            let e = ext
                .iter()
                .find(|e| e.cfg.issuer == iss)
                .ok_or(AuthError::ForeignIssuer)?;
            let (k, alg) = e.keys.get(&kid).ok_or(AuthError::UnknownKey)?;
            (
                k.clone(),
                *alg,
                e.cfg.audience.clone(),
                e.cfg.insecure_allow_unbound_tokens,
            )
        };
        if header.alg != alg {
            return Err(AuthError::BadToken);
        }
        let mut v = Validation::new(alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_audience(&[audience]);
        v.set_issuer(std::slice::from_ref(&iss));
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => AuthError::Expired,
                K::InvalidAudience => AuthError::WrongAudience,
                K::InvalidIssuer => AuthError::ForeignIssuer,
                K::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::BadToken,
            }
        })?;
        let c = data.claims;
        if c.iat > now_secs() + LEEWAY_SECS {
            return Err(AuthError::NotYetValid);
        }
        if c.exp.saturating_sub(c.iat) > MAX_TOKEN_TTL.as_secs() {
            return Err(AuthError::TtlTooLong(c.exp.saturating_sub(c.iat)));
        }
        match &c.cnf {
            Some(cnf)
                if crypto::constant_time_eq(cnf.x5t_s256.as_bytes(), peer.x5t_s256.as_bytes()) => {}
            Some(_) => return Err(AuthError::WrongCertificate),
            None if unbound_ok => {}
            None => return Err(AuthError::Unbound),
        }
        Ok(TokenGrant {
            jti: c.jti,
            subject: c.sub,
            issuer: c.iss,
            scopes: Scopes::parse(c.scope.split_whitespace())?,
            exp: c.exp,
        })
    }
}

fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = B64U.decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

/// Shared handle.
pub type Authority = Arc<TokenAuthority>;

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(fp: &str) -> PeerIdentity {
        PeerIdentity {
            principal: "spiffe://t/app".into(),
            scopes: vec![],
            x5t_s256: fp.into(),
            serial: "01".into(),
            not_after: 0,
        }
    }

    proptest::proptest! {
        #[test]
        fn scope_parse_never_panics_and_exact_scopes_allow_themselves(s in "[a-z*:.-]{0,40}") {
            if let Ok(sc) = Scope::parse(&s) {
                if !s.contains('*') {
                    proptest::prop_assert!(sc.allows(&s));
                }
                let wild = s.split(':').map(|_| "*").collect::<Vec<_>>().join(":");
                proptest::prop_assert!(Scope::parse(&wild).unwrap().allows(&s.replace('*', "x")));
            }
        }

        #[test]
        fn verify_never_panics(t in ".{0,300}") {
            let ta = authority();
            proptest::prop_assert!(ta.verify(&t, &peer("AAA")).is_err());
        }
    }

    fn authority() -> &'static TokenAuthority {
        static A: std::sync::OnceLock<TokenAuthority> = std::sync::OnceLock::new();
        A.get_or_init(|| {
            TokenAuthority::new("phivault", "phivault", Duration::from_secs(3600)).unwrap()
        })
    }

    #[test]
    fn ps256_tokens_round_trip() {
        let ta = TokenAuthority::with_algorithm(
            "phivault",
            "phivault",
            Duration::from_secs(3600),
            Algorithm::PS256,
        )
        .unwrap();
        let s = Scopes::parse(["transit:encrypt:billing"]).unwrap();
        let (t, _) = ta
            .issue(&peer("AAA"), &s, &s, Duration::from_secs(60))
            .unwrap();
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert!(ta.verify(&t, &peer("AAA")).is_ok());
        let jwk = &ta.jwks()["keys"][0];
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(B64U.decode(jwk["n"].as_str().unwrap()).unwrap().len(), 256);
        // An ES256 authority's token does not verify here, and vice versa.
        let es = TokenAuthority::new("phivault", "phivault", Duration::from_secs(3600)).unwrap();
        let (t2, _) = es
            .issue(&peer("AAA"), &s, &s, Duration::from_secs(60))
            .unwrap();
        assert!(ta.verify(&t2, &peer("AAA")).is_err());
        assert!(token_algorithm("RS256").is_err());
    }

    #[test]
    fn scope_matching() {
        let s = Scopes::parse(["transit:*:billing", "keys:admin"]).unwrap();
        assert!(s.allows("transit:encrypt:billing"));
        assert!(!s.allows("transit:encrypt:payroll"));
        assert!(!s.allows("transit:encrypt"));
        assert!(s.allows("keys:admin"));
        assert!(!s.allows("keys:admin:x"));
        assert!(Scope::parse("Transit:x").is_err());
        assert!(Scope::parse("a::b").is_err());
        let narrow = Scopes::parse(["transit:encrypt:billing"]).unwrap();
        assert!(s.covers(&narrow));
        assert!(!narrow.covers(&s));
    }

    #[test]
    fn token_round_trip_and_binding() {
        let ta =
            TokenAuthority::new("phivault", "phivault-api", Duration::from_secs(3600)).unwrap();
        let granted = Scopes::parse(["transit:*:billing"]).unwrap();
        let req = Scopes::parse(["transit:encrypt:billing"]).unwrap();
        let (t, _) = ta
            .issue(&peer("AAA"), &granted, &req, Duration::from_secs(60))
            .unwrap();
        let g = ta.verify(&t, &peer("AAA")).unwrap();
        assert!(g.scopes.allows("transit:encrypt:billing"));
        assert!(matches!(
            ta.verify(&t, &peer("BBB")),
            Err(AuthError::WrongCertificate)
        ));
        // Wider than granted, or too long: refused.
        let wide = Scopes::parse(["keys:admin"]).unwrap();
        assert!(
            ta.issue(&peer("AAA"), &granted, &wide, Duration::from_secs(60))
                .is_err()
        );
        assert!(
            ta.issue(&peer("AAA"), &granted, &req, Duration::from_secs(901))
                .is_err()
        );
        // After rotation the old token still verifies; a foreign authority's does not.
        ta.rotate_now().unwrap();
        assert!(ta.verify(&t, &peer("AAA")).is_ok());
        assert_eq!(ta.jwks()["keys"].as_array().unwrap().len(), 2);
        let other =
            TokenAuthority::new("phivault", "phivault-api", Duration::from_secs(3600)).unwrap();
        assert!(other.verify(&t, &peer("AAA")).is_err());
        // A tampered payload fails.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64U.encode(br#"{"iss":"phivault","sub":"x","aud":"phivault-api","iat":1,"nbf":1,"exp":99999999999,"jti":"1","scope":"keys:admin","cnf":{"x5t#S256":"AAA"}}"#);
        parts[1] = &forged;
        assert!(ta.verify(&parts.join("."), &peer("AAA")).is_err());
    }
}
