//! The key agent: a local process that holds the unsealed root key in
//! memory and answers [`Request`]s on a Unix socket, so that `phivault
//! unseal` can take one share per call (as `vault operator unseal` does)
//! and later commands can use the keys without ever seeing the root key.
//!
//! The socket lives in `<data-dir>/run/` with mode 0700 on the folder, so
//! only the keystore's owner can talk to it. This is local IPC, not network
//! I/O; `phivault serve` will hold the keystore in-process instead.

use crate::seal::{self, Unsealer};
use crate::service::{KeyService, Request, Response, StatusInfo, handle};
use crate::store::Keystore;
use crate::{KeystoreError, Result};
use phivault_core::secret::SecretBytes;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest request the agent reads; anything longer is refused.
const MAX_REQUEST: u64 = 1 << 20;
/// How long one connection may take to send its request and read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// This process's real uid, from /proc (std has no safe getuid).
fn own_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The agent's folder must be a real directory (not a symlink), owned by
/// us, with no access for group or others: otherwise another local user
/// could plant a fake agent and collect unseal shares and passphrases.
pub fn check_run_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let run = dir.join("run");
    let bad = |why: &str| {
        KeystoreError::Invalid(format!(
            "refusing to use the key agent folder {}: {why}; remove it and run `phivault unseal` again",
            run.display()
        ))
    };
    let m = std::fs::symlink_metadata(&run)
        .map_err(|e| KeystoreError::Io(format!("checking {}", run.display()), e))?;
    if !m.file_type().is_dir() {
        return Err(bad("it is not a directory"));
    }
    if own_uid().is_some_and(|u| u != m.uid()) {
        return Err(bad("it is owned by another user"));
    }
    if m.mode() & 0o077 != 0 {
        return Err(bad("group or others can access it"));
    }
    Ok(())
}

/// The agent's socket path for a data dir.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("run").join("agent.sock")
}

struct AgentState {
    dir: PathBuf,
    unsealer: Option<Unsealer>,
    ks: Option<Keystore>,
}

impl AgentState {
    fn status(&self) -> Result<StatusInfo> {
        let (id, seal) = seal::describe(&self.dir)?;
        Ok(StatusInfo {
            keystore_id: id,
            seal_method: seal.name().into(),
            sealed: self.ks.is_none(),
            progress: self.unsealer.as_ref().map(|u| u.progress()),
            rings: self.ks.as_ref().map(|k| k.body().rings.len()),
        })
    }

    fn handle(&mut self, req: Request) -> (Result<Response>, bool) {
        match req {
            Request::Status => (self.status().map(Response::Status), false),
            Request::Seal => {
                self.ks = None;
                self.unsealer = None;
                (Ok(Response::Ok), true)
            }
            Request::Unseal { share } if self.ks.is_none() => {
                let res = (|| {
                    if self.unsealer.is_none() {
                        self.unsealer = Some(Unsealer::new(&self.dir)?);
                    }
                    let u = self.unsealer.as_mut().expect("set");
                    match u.submit(&share) {
                        Ok(Some(ks)) => {
                            // The agent answers other processes, so it sees their changes at once.
                            ks.set_key_use_recheck(Duration::ZERO);
                            self.ks = Some(ks);
                            self.unsealer = None;
                        }
                        Ok(None) => {}
                        Err(e @ KeystoreError::WrongShares) => {
                            u.reset();
                            return Err(e);
                        }
                        Err(e) => return Err(e),
                    }
                    self.status().map(Response::Status)
                })();
                (res, false)
            }
            Request::UnsealPassphrase { passphrase } if self.ks.is_none() => {
                let res = seal::open_with_passphrase(
                    &self.dir,
                    &SecretBytes::new(passphrase.as_bytes().to_vec()),
                )
                .and_then(|ks| {
                    // The agent answers other processes, so it sees their changes at once.
                    ks.set_key_use_recheck(Duration::ZERO);
                    self.ks = Some(ks);
                    self.status().map(Response::Status)
                });
                (res, false)
            }
            other => match &self.ks {
                Some(ks) => (handle(ks, other), false),
                None => (Err(KeystoreError::Sealed), false),
            },
        }
    }
}

/// Runs the agent for `dir` until a `Seal` request arrives. Call only when
/// no agent is running; a stale socket file is replaced.
pub fn serve(dir: &Path) -> Result<()> {
    let run = dir.join("run");
    if std::fs::symlink_metadata(&run).is_err() {
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&run)
            .map_err(|e| KeystoreError::Io(format!("creating {}", run.display()), e))?;
    }
    check_run_dir(dir)?;
    // One agent per data dir, for the agent's whole life: two custodians
    // running `unseal` at once must not leave an orphan holding shares.
    let lock_path = run.join("agent.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| KeystoreError::Io(format!("opening {}", lock_path.display()), e))?;
    if lock.try_lock().is_err() {
        return Err(KeystoreError::Invalid(
            "a key agent is already running for this data dir".into(),
        ));
    }
    seal::describe(dir)?; // refuse to run for a missing keystore
    let path = socket_path(dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .map_err(|e| KeystoreError::Io(format!("binding {}", path.display()), e))?;
    let mut state = AgentState {
        dir: dir.to_path_buf(),
        unsealer: None,
        ks: None,
    };
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        // One request per connection, bounded in size and time, so a bad
        // client can neither exhaust memory nor hold the agent.
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        let Ok(read_half) = conn.try_clone() else {
            continue;
        };
        let mut reader = BufReader::new(read_half.take(MAX_REQUEST));
        let mut line = zeroize::Zeroizing::new(String::new());
        let (resp, stop) = match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line.ends_with('\n') => {
                match serde_json::from_str::<Request>(&line) {
                    Ok(req) => state.handle(req),
                    Err(_) => (
                        Err(KeystoreError::Invalid("malformed request".into())),
                        false,
                    ),
                }
            }
            _ => (
                Err(KeystoreError::Invalid(
                    "request too long, incomplete or too slow".into(),
                )),
                false,
            ),
        };
        if stop {
            // Unlink before answering: a client that sees the answer must
            // not find (and connect to) a socket that is closing.
            let _ = std::fs::remove_file(&path);
        }
        let resp = resp.unwrap_or_else(|e| Response::Error {
            code: e.code().into(),
            message: e.to_string(),
        });
        let mut out = zeroize::Zeroizing::new(serde_json::to_vec(&resp).expect("serializes"));
        out.push(b'\n');
        let mut writer = conn;
        let _ = writer.write_all(&out);
        if stop {
            drop(lock);
            return Ok(());
        }
    }
    Ok(())
}

/// A client for the agent of one data dir.
pub struct AgentClient {
    path: PathBuf,
}

impl AgentClient {
    /// Connects if an agent is running.
    pub fn connect(dir: &Path) -> Option<Self> {
        check_run_dir(dir).ok()?;
        let path = socket_path(dir);
        UnixStream::connect(&path).ok().map(|_| Self { path })
    }
}

impl KeyService for AgentClient {
    fn call(&self, req: Request) -> Result<Response> {
        let err = |e| KeystoreError::Io("talking to the key agent".into(), e);
        let mut s = UnixStream::connect(&self.path).map_err(err)?;
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(err)?;
        s.set_write_timeout(Some(IO_TIMEOUT)).map_err(err)?;
        let mut msg = zeroize::Zeroizing::new(serde_json::to_vec(&req).expect("serializes"));
        msg.push(b'\n');
        s.write_all(&msg).map_err(err)?;
        let mut line = zeroize::Zeroizing::new(String::new());
        BufReader::new(s).read_line(&mut line).map_err(err)?;
        serde_json::from_str(&line)
            .map_err(|_| KeystoreError::Invalid("malformed agent response".into()))
    }
}
