//! Crash-safe file writes: write to a temporary file in the same folder,
//! fsync it, rename it over the target, then fsync the folder. A reader (or
//! a restart after SIGKILL) sees either the old file or the new one, never
//! a mix, and never a partial file under the final name.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written right now, so that a SIGINT/SIGTERM
/// handler can remove them: a half-decrypted file is PHI on disk.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn forget(p: &Path) {
    if let Ok(mut v) = IN_FLIGHT.lock() {
        v.retain(|x| x != p);
    }
}

/// Removes every temporary file still being written. For signal handlers:
/// call it, then exit.
pub fn remove_in_flight() {
    if let Ok(v) = IN_FLIGHT.lock() {
        for p in v.iter() {
            let _ = fs::remove_file(p);
        }
    }
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 6];
    let _ = phivault_core::crypto::fill_random(&mut rnd);
    let suffix: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    target.with_file_name(format!(".{name}.{suffix}.tmp"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    })?
    .sync_all()
}

/// Opens a file for writing with owner-only permissions (0600).
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Atomically replaces `target` with `bytes`, readable by the owner only.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(bytes)?;
    f.commit()
}

/// A file being written that appears under its final name only when
/// [`AtomicFile::commit`] succeeds. Dropping it uncommitted removes the
/// temporary file.
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing a replacement for `target`.
    pub fn create(target: &Path) -> io::Result<Self> {
        let temp = temp_path(target);
        let file = create_private(&temp)?;
        if let Ok(mut v) = IN_FLIGHT.lock() {
            v.push(temp.clone());
        }
        Ok(Self {
            file: Some(file),
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The temporary file itself, for positional writes (`pwrite`) from
    /// several threads.
    pub fn as_file(&self) -> &File {
        self.file.as_ref().expect("open until committed")
    }

    /// The temporary path (for tests and error messages).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// fsync, rename over the target, fsync the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("not committed twice");
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, &self.target)?;
        forget(&self.temp);
        sync_dir(self.target.parent().unwrap_or(Path::new(".")))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.as_mut().expect("open").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
            forget(&self.temp);
        }
    }
}

/// Removes temporary files left behind by a process killed mid-write.
pub fn clean_stale_temps(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_and_drop_discards() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ks.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
