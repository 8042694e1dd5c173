//! One definition of every key-custody operation, as a request/response
//! pair. The key agent serves these over a Unix socket; in dev mode the CLI
//! runs them in-process. Both go through [`handle`], so the two paths can't
//! drift apart.

use crate::escrow;
use crate::seal::Progress;
use crate::store::{Keystore, RingInfo};
use crate::{KeystoreError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use phivault_core::keys::{DerivedKey, KeyDeriver, KeyError, KeyRingName, KeyUse, KeyVersion};
use phivault_core::secret::{SecretBytes, SecretKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A custody request.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Seal state.
    Status,
    /// One Shamir share.
    Unseal {
        /// Share text.
        share: Zeroizing<String>,
    },
    /// The passphrase.
    UnsealPassphrase {
        /// Passphrase.
        passphrase: Zeroizing<String>,
    },
    /// Forget the root key.
    Seal,
    /// Primary version of a ring.
    PrimaryVersion {
        /// Ring.
        ring: String,
    },
    /// Derive a per-message key.
    Derive {
        /// Ring.
        ring: String,
        /// Version.
        version: u32,
        /// true = encrypt.
        encrypt: bool,
        /// base64 fixed info.
        fixed_info: String,
    },
    /// Create a ring.
    CreateRing {
        /// Ring.
        ring: String,
        /// Rotation policy.
        max_age_days: u32,
    },
    /// Rotate a ring.
    Rotate {
        /// Ring.
        ring: String,
    },
    /// Destroy a version.
    Destroy {
        /// Ring.
        ring: String,
        /// Version.
        version: u32,
    },
    /// Set the minimum decryption version.
    SetMinVersion {
        /// Ring.
        ring: String,
        /// Version.
        version: u32,
    },
    /// Enable or disable a ring.
    SetDisabled {
        /// Ring.
        ring: String,
        /// Disabled.
        disabled: bool,
    },
    /// Set the rotation policy.
    SetMaxAge {
        /// Ring.
        ring: String,
        /// Days.
        days: u32,
    },
    /// List rings.
    List {
        /// Namespace filter.
        namespace: Option<String>,
    },
    /// Export an escrow file.
    EscrowExport {
        /// Backup passphrase.
        passphrase: Zeroizing<String>,
        /// Namespace filter.
        namespace: Option<String>,
    },
    /// Import an escrow file.
    EscrowImport {
        /// base64 of the file.
        file: String,
        /// Backup passphrase.
        passphrase: Zeroizing<String>,
    },
}

/// Seal state, as `phivault status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Keystore id.
    pub keystore_id: String,
    /// Seal method.
    pub seal_method: String,
    /// Whether the root key is not in memory.
    pub sealed: bool,
    /// Shamir progress while sealed.
    pub progress: Option<Progress>,
    /// Number of rings (only when unsealed).
    pub rings: Option<usize>,
}

/// A custody response.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Done.
    Ok,
    /// Seal state.
    Status(StatusInfo),
    /// A version number.
    Version {
        /// The version.
        version: u32,
    },
    /// A derived key.
    Derived {
        /// base64 key.
        key: Zeroizing<String>,
        /// base64 commitment.
        commitment: String,
    },
    /// Ring list.
    Rings {
        /// Rings.
        rings: Vec<RingInfo>,
    },
    /// Escrow file, base64.
    Escrow {
        /// File bytes.
        file: String,
    },
    /// Imported rings.
    Imported {
        /// Names.
        rings: Vec<String>,
    },
    /// A failure.
    Error {
        /// Machine code, see [`KeystoreError::code`].
        code: String,
        /// Message for the user.
        message: String,
    },
}

/// Anything that answers custody requests.
pub trait KeyService: Send + Sync {
    /// Runs one request.
    fn call(&self, req: Request) -> Result<Response>;
}

fn ring(s: &str) -> Result<KeyRingName> {
    KeyRingName::parse(s).map_err(|e| KeystoreError::Invalid(e.to_string()))
}

/// Runs a request against an unsealed keystore.
pub fn handle(ks: &Keystore, req: Request) -> Result<Response> {
    Ok(match req {
        Request::Status => {
            let body = ks.body();
            Response::Status(StatusInfo {
                keystore_id: body.keystore_id,
                seal_method: body.seal.name().into(),
                sealed: false,
                progress: None,
                rings: Some(body.rings.len()),
            })
        }
        Request::Unseal { .. } | Request::UnsealPassphrase { .. } => {
            return Err(KeystoreError::Invalid(
                "the keystore is already unsealed".into(),
            ));
        }
        Request::Seal => Response::Ok,
        Request::PrimaryVersion { ring: r } => Response::Version {
            version: ks.primary_version(&ring(&r)?)?.get(),
        },
        Request::Derive {
            ring: r,
            version,
            encrypt,
            fixed_info,
        } => {
            let info = B64
                .decode(fixed_info)
                .map_err(|_| KeystoreError::Invalid("fixed_info".into()))?;
            let v = KeyVersion::new(version).ok_or(KeystoreError::Invalid("version 0".into()))?;
            let usage = if encrypt {
                KeyUse::Encrypt
            } else {
                KeyUse::Decrypt
            };
            let d = ks.derive(&ring(&r)?, v, usage, &info)?;
            Response::Derived {
                key: Zeroizing::new(B64.encode(d.key.expose_secret())),
                commitment: B64.encode(d.commitment),
            }
        }
        Request::CreateRing {
            ring: r,
            max_age_days,
        } => {
            ks.create_ring(&ring(&r)?, max_age_days)?;
            Response::Version { version: 1 }
        }
        Request::Rotate { ring: r } => Response::Version {
            version: ks.rotate(&ring(&r)?)?,
        },
        Request::Destroy { ring: r, version } => {
            ks.destroy(&ring(&r)?, version)?;
            Response::Ok
        }
        Request::SetMinVersion { ring: r, version } => {
            ks.set_min_decryption_version(&ring(&r)?, version)?;
            Response::Ok
        }
        Request::SetDisabled { ring: r, disabled } => {
            ks.set_disabled(&ring(&r)?, disabled)?;
            Response::Ok
        }
        Request::SetMaxAge { ring: r, days } => {
            ks.set_max_age(&ring(&r)?, days)?;
            Response::Ok
        }
        Request::List { namespace } => Response::Rings {
            rings: ks.list(namespace.as_deref())?,
        },
        Request::EscrowExport {
            passphrase,
            namespace,
        } => {
            let pw = SecretBytes::new(passphrase.as_bytes().to_vec());
            Response::Escrow {
                file: B64.encode(escrow::export(ks, &pw, namespace.as_deref())?),
            }
        }
        Request::EscrowImport { file, passphrase } => {
            let bytes = B64
                .decode(file)
                .map_err(|_| KeystoreError::Invalid("escrow file".into()))?;
            let pw = SecretBytes::new(passphrase.as_bytes().to_vec());
            Response::Imported {
                rings: escrow::import(ks, &bytes, &pw)?,
            }
        }
    })
}

/// The in-process service (dev mode, tests).
pub struct Local(pub Keystore);

impl KeyService for Local {
    fn call(&self, req: Request) -> Result<Response> {
        handle(&self.0, req)
    }
}

/// Turns an error response into an error.
pub fn check(resp: Response) -> Result<Response> {
    match resp {
        Response::Error { code, message } => Err(KeystoreError::from_remote(&code, message)),
        r => Ok(r),
    }
}

/// A [`KeyDeriver`] over any [`KeyService`]; the keys stay with the service,
/// only per-message keys come back.
pub struct ServiceKeys<'a>(pub &'a dyn KeyService);

fn key_err(e: KeystoreError) -> KeyError {
    match e {
        KeystoreError::Key(k) => k,
        KeystoreError::Sealed => KeyError::Sealed,
        other => KeyError::Service(other.to_string()),
    }
}

impl KeyDeriver for ServiceKeys<'_> {
    fn primary_version(&self, ring: &KeyRingName) -> std::result::Result<KeyVersion, KeyError> {
        match self
            .0
            .call(Request::PrimaryVersion {
                ring: ring.to_string(),
            })
            .and_then(check)
            .map_err(key_err)?
        {
            Response::Version { version } => {
                KeyVersion::new(version).ok_or(KeyError::Service("version 0".into()))
            }
            _ => Err(KeyError::Service("unexpected response".into())),
        }
    }

    fn derive(
        &self,
        ring: &KeyRingName,
        version: KeyVersion,
        usage: KeyUse,
        fixed_info: &[u8],
    ) -> std::result::Result<DerivedKey, KeyError> {
        let req = Request::Derive {
            ring: ring.to_string(),
            version: version.get(),
            encrypt: usage == KeyUse::Encrypt,
            fixed_info: B64.encode(fixed_info),
        };
        match self.0.call(req).and_then(check).map_err(key_err)? {
            Response::Derived { key, commitment } => {
                let raw = Zeroizing::new(
                    B64.decode(key.as_bytes())
                        .map_err(|_| KeyError::Service("bad key".into()))?,
                );
                let key = SecretKey::from_slice(&raw).ok_or(KeyError::Service("bad key".into()))?;
                let commitment = B64
                    .decode(commitment)
                    .ok()
                    .and_then(|c| c.try_into().ok())
                    .ok_or(KeyError::Service("bad commitment".into()))?;
                Ok(DerivedKey { key, commitment })
            }
            _ => Err(KeyError::Service("unexpected response".into())),
        }
    }
}

/// `.keys()` on any service: its [`KeyDeriver`] view.
pub trait AgentKeysExt {
    /// The deriver.
    fn keys(&self) -> ServiceKeys<'_>;
}

impl<S: KeyService> AgentKeysExt for S {
    fn keys(&self) -> ServiceKeys<'_> {
        ServiceKeys(self)
    }
}
