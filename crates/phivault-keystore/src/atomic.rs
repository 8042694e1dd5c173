//! Crash-safe file writes: write to a temporary file in the same folder,
//! fsync it, give it its final name with rename(2), then fsync the folder.
//! A reader (or a restart after SIGKILL) sees either the old file or the
//! new one, never a mix, and never a partial file under the final name.
//!
//! Where the filesystem supports it (ext4, xfs, btrfs, tmpfs), the
//! temporary file is created with `O_TMPFILE`: it has no name until the
//! data is complete and synced, so even a SIGKILL mid-write leaves nothing
//! behind — for `decrypt -o`, no partial plaintext on disk. Elsewhere a
//! hidden named temporary file is used, removed on error, on drop, and by
//! the CLI's Ctrl-C/SIGTERM handler ([`remove_in_flight`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Named temporary files being written right now, so that a SIGINT/SIGTERM
/// handler can remove them: a half-decrypted file is PHI on disk.
static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn remember(p: &Path) {
    if let Ok(mut v) = IN_FLIGHT.lock() {
        v.push(p.to_path_buf());
    }
}

fn forget(p: &Path) {
    if let Ok(mut v) = IN_FLIGHT.lock() {
        v.retain(|x| x != p);
    }
}

/// Removes every named temporary file still being written. For signal
/// handlers: call it, then exit.
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

fn parent(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a folder, so that a create, rename or unlink in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
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

/// An unnamed file in `dir` (Linux `O_TMPFILE`), mode 0600.
fn create_unnamed(dir: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Gives an unnamed file the name `at` (which must not exist).
fn link_unnamed(file: &File, at: &Path) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(CWD, proc_path.as_str(), CWD, at, AtFlags::SYMLINK_FOLLOW)?;
    Ok(())
}

/// Atomically replaces `target` with `bytes`, readable by the owner only.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(bytes)?;
    f.commit()
}

/// A file being written that appears under its final name only when
/// [`AtomicFile::commit`] succeeds. Dropping it uncommitted discards it.
pub struct AtomicFile {
    file: Option<File>,
    /// `Some` for a named temporary file; `None` for an unnamed one.
    temp: Option<PathBuf>,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing a replacement for `target`.
    pub fn create(target: &Path) -> io::Result<Self> {
        if let Ok(file) = create_unnamed(parent(target)) {
            return Ok(Self {
                file: Some(file),
                temp: None,
                target: target.to_path_buf(),
            });
        }
        let temp = temp_path(target);
        let file = create_private(&temp)?;
        remember(&temp);
        Ok(Self {
            file: Some(file),
            temp: Some(temp),
            target: target.to_path_buf(),
        })
    }

    /// The file being written, for positional writes (`pwrite`) from
    /// several threads.
    pub fn as_file(&self) -> &File {
        self.file.as_ref().expect("open until committed")
    }

    /// Whether the data is in an unnamed (`O_TMPFILE`) file.
    pub fn is_unnamed(&self) -> bool {
        self.temp.is_none()
    }

    /// fsync, give the file its final name, fsync the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("not committed twice");
        file.sync_all()?;
        let temp = match self.temp.take() {
            Some(t) => t,
            None => {
                // linkat can't replace an existing file, so the complete
                // data gets a hidden name first, then rename(2) replaces
                // the target atomically.
                let t = temp_path(&self.target);
                link_unnamed(&file, &t)?;
                t
            }
        };
        drop(file);
        let renamed = fs::rename(&temp, &self.target);
        forget(&temp);
        if renamed.is_err() {
            let _ = fs::remove_file(&temp);
        }
        renamed?;
        sync_dir(parent(&self.target))
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
        self.file.take();
        if let Some(t) = self.temp.take() {
            let _ = fs::remove_file(&t);
            forget(&t);
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

    #[test]
    fn unnamed_temp_files_have_no_name_until_commit() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("out");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"partial").unwrap();
        if f.is_unnamed() {
            assert_eq!(
                fs::read_dir(d.path()).unwrap().count(),
                0,
                "an unnamed file showed up in the folder"
            );
        }
        f.commit().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"partial");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
