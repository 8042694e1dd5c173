//! The writer: one thread owns the files; callers hand it serialized
//! events and wait for their entry to be durable (group commit).
//!
//! ```text
//! audit/
//!   segments/<first seq>.seg   entries (segment.rs); the newest is appended to
//!   leaves                     32-byte leaf hashes, entry i at offset 32·i;
//!                              kept when retention removes old segments, so
//!                              the tree stays verifiable across them
//!   checkpoints.log            every signed checkpoint, framed like entries
//!   checkpoint                 the newest signed checkpoint (atomic replace)
//!   log.pub                    the checkpoint verifier key(s), one a line
//!   torn/                      bytes cut from a torn tail at start, kept
//!   trail-id                   this trail's random id (binds a node name
//!                              to it in a shared database)
//!   journal                    the group-commit journal (journal.rs): each
//!                              batch is made durable here
//!   signing-blocked            why this log signs no more checkpoints, when
//!                              a start found signed entries lost or changed
//!   LOCK                       flock: one writer at a time
//! ```
//!
//! Appends are staged, not sent: the caller serializes its event into a
//! thread-local buffer and copies it into the shared [`Stage`] under a
//! short lock, and waits on the stage's current [`Batch`] (one allocation
//! and one wake-up list per group commit, none per event). The writer
//! takes the whole stage at each group commit.
//!
//! Durability: a batch is written to the segment (page cache) and then,
//! durably (`O_DIRECT | O_DSYNC`), to the journal before any of its
//! callers is told its seq; the segment is synced when the journal is full,
//! when it is sealed, and at close, and at open the journal's entries past
//! the segment's end are appended to it again (a power loss). A batch too
//! large for the journal syncs the segment itself. The leaves file is derived data: it
//! is synced when a segment is sealed and at checkpoints, and rebuilt for
//! the newest segment at every start. A checkpoint is signed only over
//! entries already durable.

use crate::event::{Event, Kind, Severity};
use crate::idle::RuntimeIdle;
use crate::segment::{self, Frames, Torn};
use crate::{LogError, Result};
use phivault_core::audit::merkle::{self, Frontier, Hash};
use phivault_core::audit::note::{Checkpoint, NoteSigner};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// The files that hold signed checkpoints (see [`record_files`]).
pub const CHECKPOINT_FILES: [&str; 2] = ["checkpoint", "checkpoints.log"];

/// Written (atomically) when a start finds signed entries lost or changed;
/// while it exists the log signs no checkpoint (`AuditLog::signing_blocked`).
pub const SIGNING_BLOCKED_FILE: &str = "signing-blocked";

/// Six years: HIPAA's documentation retention (45 CFR 164.316(b)(2)(i)).
pub const SIX_YEARS: Duration = Duration::from_secs(6 * 366 * 24 * 3600);

/// The default bound of a group commit's gather (`LogConfig::group_commit_delay`).
pub const DEFAULT_GROUP_COMMIT_DELAY: Duration = Duration::from_micros(2000);

/// The default size of the group-commit journal: room for about 18 000
/// typical entries between segment syncs, and for any batch of 2 048
/// appenders.
pub const DEFAULT_JOURNAL_BYTES: u64 = 8 << 20;

/// How a log is written.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The audit directory.
    pub dir: PathBuf,
    /// The checkpoint origin line: names this log (C2SP tlog-checkpoint).
    pub origin: String,
    /// A segment is sealed and a new one started past this size.
    pub segment_bytes: u64,
    /// A checkpoint is signed after this many new entries…
    pub checkpoint_every: u64,
    /// …or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Sealed segments older than this are removed (their leaf hashes stay).
    pub retention: Duration,
    /// Folders that receive a copy of every checkpoint (witnesses).
    pub witness_dirs: Vec<PathBuf>,
    /// Under load (the previous group commit had several events), a group
    /// commit gathers events for up to this long before it writes, so
    /// that one fsync covers more of them (PostgreSQL's commit_delay). How
    /// long it actually waits adapts to the load below this bound (see
    /// `Pacer`), and no longer than until the appenders' runtime has run
    /// out of work (`idle`); an idle log writes at once; zero never waits.
    pub group_commit_delay: Duration,
    /// Size of the group-commit journal (`journal.rs`); 0 syncs the
    /// segment at every group commit instead.
    pub journal_bytes: u64,
    /// Tokio runtimes to acknowledge batches on: for each runtime with an
    /// appender waiting on a batch, one task wakes the callers that wait
    /// there (cheap local wake-ups) instead of this thread waking each
    /// caller's task remotely. With several (a server with a single-threaded runtime
    /// per core), each runtime's thread says which one it is with
    /// [`set_ack_slot`]; callers on other threads are woken with the
    /// first runtime's.
    pub ack_runtimes: Vec<tokio::runtime::Handle>,
    /// The appenders' runtime tells when it has run out of work; a gather
    /// then ends at once (see [`crate::idle`]).
    pub idle: Option<Arc<RuntimeIdle>>,
}

impl LogConfig {
    /// Defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            origin: "phivault.local/audit".into(),
            segment_bytes: 64 << 20,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(1),
            retention: SIX_YEARS,
            witness_dirs: Vec::new(),
            group_commit_delay: DEFAULT_GROUP_COMMIT_DELAY,
            journal_bytes: DEFAULT_JOURNAL_BYTES,
            ack_runtimes: Vec::new(),
            idle: None,
        }
    }
}

/// What opening found and repaired.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Entries in the log.
    pub entries: u64,
    /// A torn tail cut from the newest segment (kept under `torn/`).
    pub torn: Option<(String, Torn)>,
    /// A torn tail cut from checkpoints.log.
    pub torn_checkpoints: Option<Torn>,
    /// Leaf hashes (re)written from entries.
    pub leaves_rebuilt: u64,
    /// Entries the newest segment had lost (a power loss took its
    /// unsynced pages), appended to it again from the journal.
    pub journal_replayed: u64,
    /// The journal skips entries: the log continues at the first seq
    /// (what it has), the journal at the second. Entries between them are
    /// lost (a disk that dropped synced writes, or a journal copied from
    /// another trail); the journal is not used past the gap.
    pub journal_gap: Option<(u64, u64)>,
    /// The journal's chain ended at a batch another trail wrote, where
    /// this trail's would have gone on (a journal copied from another node
    /// or folder): none of its entries were taken. This trail's batches
    /// are written from the journal's start again.
    pub journal_foreign: bool,
    /// The log holds fewer entries (the first number) than its last signed
    /// checkpoint covered (the second): signed entries were lost (a disk
    /// that dropped synced writes, files removed or restored from an older
    /// copy). Recorded in the log as `audit.entries_lost`; `phivault audit
    /// verify` reports the truncation. Signing stops (see
    /// [`AuditLog::signing_blocked`]).
    pub short_of_checkpoint: Option<(u64, u64)>,
    /// The log's first entries up to its last signed checkpoint's size (this
    /// number) no longer hash to that checkpoint's root: entries it signed
    /// were changed or replaced. Checked from the segment holding the
    /// checkpoint's last entry (its header's frontier and its leaves);
    /// when that segment is gone (retention) or can't be read, left to
    /// `verify`. Recorded as `audit.checkpoint_mismatch`; signing stops.
    pub checkpoint_mismatch: Option<u64>,
    /// Segments removed by retention.
    pub pruned_segments: Vec<String>,
}

/// A checkpoint that was just signed.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Tree size.
    pub size: u64,
    /// The signed note text.
    pub note: String,
}

type Hook = Box<dyn Fn(&Signed) + Send + Sync>;

/// How a group commit ended, for every append in it.
#[derive(Debug, Clone)]
enum Outcome {
    /// Durable; the batch's first entry has this seq.
    Durable(u64),
    /// The write failed (fail closed): why.
    Failed(String),
    /// The log closed (or its writer stopped) first.
    Closed,
}

thread_local! {
    /// Which of [`LogConfig::ack_runtimes`] runs on this thread.
    static ACK_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Tells the logs that this thread runs `LogConfig::ack_runtimes[slot]`
/// (call it once, first thing on the thread of a single-threaded
/// runtime): appends made here are then woken by that runtime's
/// acknowledgement task. The slot is taken when the append is made (its
/// future created), not when it is polled: await an append on the
/// runtime that made it, or it resumes only once that runtime has run
/// its task (and never, if that runtime's thread blocks on it).
pub fn set_ack_slot(slot: usize) {
    ACK_SLOT.set(slot);
}

/// One group commit, awaited by every append staged into it: async
/// callers through `notify` (one per acknowledging runtime), threads
/// outside a runtime through `cv`.
struct Batch {
    done: OnceLock<Outcome>,
    notify: Box<[tokio::sync::Notify]>,
    cv: (Mutex<()>, Condvar),
}

impl Default for Batch {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Batch {
    fn new(slots: usize) -> Self {
        Self {
            done: OnceLock::new(),
            notify: (0..slots.max(1)).map(|_| Default::default()).collect(),
            cv: Default::default(),
        }
    }

    fn notify_all(&self) {
        for n in &self.notify {
            n.notify_waiters();
        }
    }

    /// Records the outcome (the first one counts) and wakes the blocking
    /// waiters; async waiters are woken by the caller (see `Writer::ack`).
    fn finish(&self, o: Outcome) {
        let _ = self.done.set(o);
        drop(self.cv.0.lock().expect("lock"));
        self.cv.1.notify_all();
    }

    fn result(o: &Outcome, index: u64) -> Result<u64> {
        match o {
            Outcome::Durable(first) => Ok(first + index),
            Outcome::Failed(why) => Err(LogError::Unavailable(why.clone())),
            Outcome::Closed => Err(LogError::Closed),
        }
    }

    /// Waits on the `Notify` of acknowledging runtime `slot` (the one the
    /// append was staged with, which is marked waiting in its stage).
    async fn wait(&self, index: u64, slot: usize) -> Result<u64> {
        let notify = self.notify.get(slot).unwrap_or(&self.notify[0]);
        loop {
            // Created before the check: a `Notified` sees every
            // `notify_waiters` after its creation, polled or not.
            let woken = notify.notified();
            if let Some(o) = self.done.get() {
                return Self::result(o, index);
            }
            woken.await;
        }
    }

    fn wait_blocking(&self, index: u64) -> Result<u64> {
        let mut g = self.cv.0.lock().expect("lock");
        loop {
            if let Some(o) = self.done.get() {
                return Self::result(o, index);
            }
            g = self.cv.1.wait(g).expect("lock");
        }
    }
}

/// Wakes a batch's async waiters when dropped, after recording `Closed`
/// if nothing was recorded (the writer panicked mid-commit): however a
/// commit ends, no appender waits forever.
struct WakeOnDrop(Arc<Batch>, Wake);

/// Whose waiters a [`WakeOnDrop`] wakes.
#[derive(Clone, Copy)]
enum Wake {
    /// Every slot's.
    All,
    /// One acknowledging runtime's.
    Slot(usize),
    /// None: others took over every slot.
    Handed,
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if self.0.done.get().is_none() {
            self.0.finish(Outcome::Closed);
        }
        match self.1 {
            Wake::All => self.0.notify_all(),
            Wake::Slot(i) => self.0.notify.get(i).map_or((), |n| n.notify_waiters()),
            Wake::Handed => {}
        }
    }
}

/// Appends waiting for the next group commit: their JSON bodies end to
/// end, where each ends, the batch they will be acknowledged with, and
/// which acknowledging runtimes have an async appender waiting on it.
struct Stage {
    bodies: Vec<u8>,
    ends: Vec<usize>,
    batch: Arc<Batch>,
    /// One flag per `notify` slot: an async appender waits on it. Only
    /// these runtimes get an acknowledgement task (a task on a runtime
    /// with nobody to wake would only wake its parked thread).
    waiting: Vec<bool>,
    closed: bool,
    /// How many acknowledging runtimes (a batch's `notify` slots).
    slots: usize,
}

impl Stage {
    fn new(slots: usize) -> Self {
        Self {
            bodies: Vec::with_capacity(64 << 10),
            ends: Vec::with_capacity(128),
            batch: Arc::new(Batch::new(slots)),
            waiting: vec![false; slots.max(1)],
            closed: false,
            slots,
        }
    }
}

/// What the writer took from the stage for one group commit.
struct Taken {
    bodies: Vec<u8>,
    ends: Vec<usize>,
    batch: Arc<Batch>,
    /// `Stage::waiting` of this batch.
    waiting: Vec<bool>,
}

impl Taken {
    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let b = &self.bodies[start..end];
            start = end;
            b
        })
    }
}

thread_local! {
    /// Where `append` serializes an event before staging it (reused, so
    /// no allocation per event).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
}

/// Counters, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Entries appended.
    pub appended: AtomicU64,
    /// Group commits.
    pub batches: AtomicU64,
    /// Failed group commits.
    pub write_failures: AtomicU64,
    /// Checkpoints signed.
    pub checkpoints: AtomicU64,
    /// Entries in the log.
    pub size: AtomicU64,
    /// Checkpoints a witness did not take.
    pub witness_failures: AtomicU64,
    /// Acknowledgement tasks spawned on the appenders' runtimes: one per
    /// runtime with an async appender waiting, per group commit…
    pub ack_tasks: AtomicU64,
    /// …of these group commits (the others woke their appenders from the
    /// writer thread: a batch of one, or no runtimes given).
    pub ack_batches: AtomicU64,
}

struct SharedState {
    stage: Mutex<Stage>,
    /// Why this log signs no checkpoint (set once, at open).
    signing_blocked: OnceLock<String>,
    failed: AtomicBool,
    last_error: Mutex<Option<String>>,
    stats: Stats,
    hooks: Mutex<Vec<Hook>>,
    last_witness_error: Mutex<Option<String>>,
}

enum Msg {
    /// The stage went from empty to not: wake up.
    Staged,
    Signer(Option<NoteSigner>, mpsc::Sender<Result<()>>),
    Checkpoint(mpsc::Sender<Result<Option<Signed>>>),
    Close(mpsc::Sender<Result<()>>),
}

/// An open audit log. Appends from any thread; one writer thread.
pub struct AuditLog {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    shared: Arc<SharedState>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.dir).finish()
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LogError {
    let what = what.into();
    move |e| LogError::Io(what, e)
}

/// This trail's id: 128 random bits in hex, made (atomically) the first
/// time it is asked for and kept in `dir/trail-id`. Nodes sharing one
/// database bind their node name to it, so two trails never share a name.
pub fn trail_id(dir: &Path) -> Result<String> {
    let p = dir.join("trail-id");
    match fs::read_to_string(&p) {
        Ok(s) if s.trim().len() == 32 && s.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Ok(s.trim().to_owned());
        }
        Ok(_) => {
            return Err(LogError::Format(format!(
                "{} is not a trail id",
                p.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(LogError::Io(format!("reading {}", p.display()), e)),
    }
    fs::create_dir_all(dir).map_err(io("creating the audit folder"))?;
    let id = hex::encode(
        phivault_core::crypto::random_array::<16>().map_err(|e| LogError::Format(e.to_string()))?,
    );
    phivault_keystore::atomic::write_atomic(&p, format!("{id}\n").as_bytes())
        .map_err(io("writing audit/trail-id"))?;
    Ok(id)
}

/// This trail's id as the journal's batches name it (made if missing,
/// like [`trail_id`]).
fn trail_bytes(dir: &Path) -> Result<crate::journal::TrailId> {
    crate::journal::parse_trail_id(&trail_id(dir)?).ok_or_else(|| {
        LogError::Format(format!(
            "{} is not a trail id",
            dir.join("trail-id").display()
        ))
    })
}

/// The files under a trail's folder `dir` that hold its record, relative
/// and sorted (symlinks are not followed; a missing folder has none): what
/// a backup or a mirror of the trail copies. The group-commit journal is
/// left out: node-local scratch, rewritten in place at every commit, whose
/// entries the segments hold.
///
/// A copy of a live trail reads [`CHECKPOINT_FILES`] *before* it lists
/// the rest: a checkpoint covers only entries written before it, so every
/// entry a copied checkpoint covers is then in a listed segment. (Listed
/// first, a segment started between the listing and the checkpoint's read
/// would be missing from a copy whose checkpoint covers it, and the copy
/// would start with signing blocked: `Recovery::short_of_checkpoint`.)
pub fn record_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let rd = match fs::read_dir(dir.join(&rel)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && rel.as_os_str().is_empty() => {
                return Ok(out);
            }
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let ft = e.file_type()?;
            let r = rel.join(e.file_name());
            if ft.is_dir() {
                todo.push(r);
            } else if ft.is_file() && r != Path::new(crate::journal::FILE) {
                out.push(r);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The segments of a log, oldest first: (first seq, path).
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let sd = dir.join("segments");
    let mut v = Vec::new();
    let rd = match fs::read_dir(&sd) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(LogError::Io(format!("reading {}", sd.display()), e)),
    };
    for e in rd {
        let e = e.map_err(io(format!("reading {}", sd.display())))?;
        if let Some(s) = segment::parse_file_name(&e.file_name().to_string_lossy()) {
            v.push((s, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

struct Writer {
    cfg: LogConfig,
    shared: Arc<SharedState>,
    seg: File,
    seg_path: PathBuf,
    seg_len: u64,
    journal: Option<crate::journal::Journal>,
    leaves: File,
    ckpts: File,
    frontier: Frontier,
    signer: Option<NoteSigner>,
    last_ckpt_size: u64,
    last_ckpt_at: Instant,
    buf: Vec<u8>,
    leafbuf: Vec<u8>,
    /// Emptied buffers to give the stage back (their capacity kept).
    spare: (Vec<u8>, Vec<usize>, Vec<bool>),
    _lock: File,
}

impl AuditLog {
    /// Opens (or creates) the log in `cfg.dir`, repairing a torn tail.
    /// Fails if another process has it open.
    pub fn open(cfg: LogConfig) -> Result<(Self, Recovery)> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(dir.join("segments"))
            .map_err(io(format!("creating {}", dir.display())))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io("opening the audit LOCK file"))?;
        if lock.try_lock().is_err() {
            return Err(LogError::Busy(dir.display().to_string()));
        }
        let mut rec = Recovery::default();
        let mut segs = list_segments(&dir)?;
        if segs.is_empty() {
            let p = dir.join("segments").join(segment::file_name(0));
            create_segment(&p, 0, &[])?;
            segs.push((0, p));
        }
        let (first, seg_path) = segs.last().cloned().expect("one segment");
        // The newest segment: read, find a torn tail, cut it (kept aside).
        let bytes = fs::read(&seg_path).map_err(io(format!("reading {}", seg_path.display())))?;
        let header = segment::parse_header(&bytes)?;
        if header.first_seq != first {
            return Err(LogError::Format(format!(
                "{}: header says first entry {}, its name says {first}",
                seg_path.display(),
                header.first_seq
            )));
        }
        let mut frontier = Frontier::from_parts(first, header.frontier.clone())
            .map_err(|e| LogError::Format(format!("{}: {e}", seg_path.display())))?;
        let seg_start = frontier.clone();
        let mut frames = Frames::new(&bytes, header.len);
        let mut leaves_new = Vec::new();
        let mut good = header.len;
        for f in frames.by_ref() {
            if f.seq != first + leaves_new.len() as u64 {
                break;
            }
            let h = merkle::leaf_hash(f.body);
            leaves_new.push(h);
            frontier.push(h);
            good = f.offset + segment::FRAME_OVERHEAD + f.body.len();
        }
        let torn = if good < bytes.len() {
            Some(
                frames
                    .torn
                    .clone()
                    .filter(|t| t.offset == good)
                    .unwrap_or(Torn {
                        offset: good,
                        bytes: bytes.len() - good,
                        reason: "entry out of sequence",
                    }),
            )
        } else {
            None
        };
        if let Some(t) = torn {
            let td = dir.join("torn");
            fs::create_dir_all(&td).map_err(io("creating audit/torn"))?;
            let name = format!(
                "{}-{}-{}.bin",
                seg_path.file_name().unwrap_or_default().to_string_lossy(),
                t.offset,
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs()
            );
            phivault_keystore::atomic::write_atomic(&td.join(name), &bytes[good..])
                .map_err(io("saving a torn tail"))?;
            let f = OpenOptions::new()
                .write(true)
                .open(&seg_path)
                .map_err(io(format!("opening {}", seg_path.display())))?;
            f.set_len(good as u64)
                .map_err(io("truncating a torn tail"))?;
            f.sync_all().map_err(io("syncing a segment"))?;
            rec.torn = Some((
                seg_path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into(),
                t,
            ));
        }
        drop(bytes);
        // Entries the journal holds past the segment's end (a power loss
        // took the segment's unsynced pages): append them again.
        let jpath = dir.join(crate::journal::FILE);
        let trail = trail_bytes(&dir)?;
        let tail = crate::journal::frames_after(&jpath, frontier.size(), Some(&trail))
            .map_err(io("reading audit/journal"))?;
        rec.journal_gap = tail.gap.map(|g| (frontier.size() + tail.count, g));
        rec.journal_foreign = tail.foreign;
        if tail.count > 0 {
            let lost = tail.frames;
            for f in Frames::new(&lost, 0) {
                let h = merkle::leaf_hash(f.body);
                leaves_new.push(h);
                frontier.push(h);
            }
            let mut f = OpenOptions::new()
                .append(true)
                .open(&seg_path)
                .map_err(io(format!("opening {}", seg_path.display())))?;
            f.write_all(&lost)
                .and_then(|()| f.sync_data())
                .map_err(io("appending the journal's entries to the segment"))?;
            rec.journal_replayed = tail.count;
        }
        // Leaf hashes: everything before the newest segment must be there
        // (synced when that segment was sealed); the newest segment's are
        // rewritten from its entries.
        let leaves_path = dir.join("leaves");
        let mut leaves = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&leaves_path)
            .map_err(io("opening audit/leaves"))?;
        let have = leaves.metadata().map_err(io("audit/leaves"))?.len() / 32;
        if have < first {
            rec.leaves_rebuilt += rebuild_leaves(&segs, have, first, &mut leaves)?;
        }
        leaves
            .set_len(first * 32)
            .map_err(io("truncating audit/leaves"))?;
        leaves
            .seek(SeekFrom::End(0))
            .map_err(io("seeking audit/leaves"))?;
        let mut lb = Vec::with_capacity(leaves_new.len() * 32);
        for h in &leaves_new {
            lb.extend_from_slice(h);
        }
        leaves.write_all(&lb).map_err(io("writing audit/leaves"))?;
        leaves.sync_data().map_err(io("syncing audit/leaves"))?;
        rec.leaves_rebuilt += leaves_new.len() as u64;
        rec.entries = frontier.size();
        // Checkpoints: cut a torn tail; the newest gives the last size.
        let cp_path = dir.join("checkpoints.log");
        let mut ckpts = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&cp_path)
            .map_err(io("opening audit/checkpoints.log"))?;
        let mut cb = Vec::new();
        ckpts
            .read_to_end(&mut cb)
            .map_err(io("reading audit/checkpoints.log"))?;
        let mut cf = Frames::new(&cb, 0);
        let mut last_ckpt_size = 0;
        let mut last_root = None;
        for f in cf.by_ref() {
            if let Some(cp) = std::str::from_utf8(f.json())
                .ok()
                .and_then(|n| n.split_once("\n\n"))
                .and_then(|(b, _)| Checkpoint::parse_body(&format!("{b}\n")).ok())
            {
                last_ckpt_size = cp.size;
                last_root = Some(cp.root);
            }
        }
        // Is this still the log its last checkpoint signed?
        if let Some(root) = last_root
            && last_ckpt_size <= frontier.size()
            && let Some(have) = root_at(last_ckpt_size, &segs, seg_start, &leaves_new, &mut leaves)?
            && have != root
        {
            rec.checkpoint_mismatch = Some(last_ckpt_size);
        }
        if let Some(t) = cf.torn.clone() {
            ckpts
                .set_len(t.offset as u64)
                .map_err(io("truncating audit/checkpoints.log"))?;
            ckpts.sync_all().map_err(io("syncing checkpoints.log"))?;
            rec.torn_checkpoints = Some(t);
        }
        let seg = OpenOptions::new()
            .append(true)
            .open(&seg_path)
            .map_err(io(format!("opening {}", seg_path.display())))?;
        let seg_len = seg.metadata().map_err(io("segment"))?.len();
        // The journal starts again at 0, so what the segment holds from the
        // last run (perhaps only in the page cache, after a kill) is synced
        // first.
        seg.sync_data().map_err(io("syncing the audit segment"))?;
        let journal = match cfg.journal_bytes {
            0 => None,
            n => Some(
                crate::journal::Journal::open(&jpath, n, trail)
                    .map_err(io("opening audit/journal"))?,
            ),
        };
        let shared = Arc::new(SharedState {
            stage: Mutex::new(Stage::new(cfg.ack_runtimes.len())),
            signing_blocked: OnceLock::new(),
            failed: AtomicBool::new(false),
            last_error: Mutex::new(None),
            stats: Stats::default(),
            hooks: Mutex::new(Vec::new()),
            last_witness_error: Mutex::new(None),
        });
        shared.stats.size.store(frontier.size(), Ordering::Relaxed);
        let mut w = Writer {
            cfg,
            shared: shared.clone(),
            seg,
            seg_path,
            seg_len,
            journal,
            leaves,
            ckpts,
            frontier,
            signer: None,
            last_ckpt_size,
            last_ckpt_at: Instant::now(),
            buf: Vec::new(),
            leafbuf: Vec::new(),
            spare: (Vec::new(), Vec::new(), Vec::new()),
            _lock: lock,
        };
        rec.pruned_segments = w.prune();
        // A block found at an earlier start stays (retention may since have
        // removed the segment that showed it).
        let marker = dir.join(SIGNING_BLOCKED_FILE);
        if let Ok(why) = fs::read_to_string(&marker) {
            let _ = w.shared.signing_blocked.set(why.trim().to_owned());
        }
        if let Some(size) = rec.checkpoint_mismatch {
            let ev = Event::new(Kind::Audit, "audit.checkpoint_mismatch")
                .severity(Severity::High)
                .reason("the log's entries no longer hash to its last signed checkpoint")
                .detail(
                    serde_json::json!({ "checkpoint_size": size, "entries": w.frontier.size() }),
                );
            w.write_one(&ev)?;
            rec.entries += 1;
            let _ = w.shared.signing_blocked.set(format!(
                "the log's first {size} entries no longer hash to its last signed checkpoint (entries it signed were changed or replaced)"
            ));
        }
        if w.frontier.size() < last_ckpt_size {
            let _ = w.shared.signing_blocked.set(format!(
                "the log holds {} entries, fewer than the {last_ckpt_size} its last signed checkpoint covered (signed entries were lost)",
                w.frontier.size()
            ));
            rec.short_of_checkpoint = Some((w.frontier.size(), last_ckpt_size));
            let ev = Event::new(Kind::Audit, "audit.entries_lost")
                .severity(Severity::High)
                .reason("the log holds fewer entries than its last signed checkpoint")
                .detail(serde_json::json!({
                    "entries": w.frontier.size(), "checkpoint_size": last_ckpt_size,
                    "journal_gap": rec.journal_gap.map(|g| g.1),
                    "journal_foreign": rec.journal_foreign,
                }));
            w.write_one(&ev)?;
            rec.entries += 1;
        }
        if let Some(why) = w.shared.signing_blocked.get()
            && !marker.exists()
        {
            phivault_keystore::atomic::write_atomic(&marker, format!("{why}\n").as_bytes())
                .map_err(io("writing audit/signing-blocked"))?;
        }
        if let Some((seg, t)) = &rec.torn {
            let ev = Event::new(Kind::Audit, "audit.tail_recovered")
                .severity(Severity::High)
                .reason(t.reason)
                .detail(serde_json::json!({
                    "segment": seg, "offset": t.offset, "bytes_cut": t.bytes,
                    "kept_in": "audit/torn/", "entries": rec.entries,
                }));
            w.write_one(&ev)?;
            rec.entries += 1;
        }
        for name in &rec.pruned_segments {
            let ev = Event::new(Kind::Audit, "audit.segment_removed")
                .detail(serde_json::json!({ "segment": name, "reason": "retention" }));
            w.write_one(&ev)?;
            rec.entries += 1;
        }
        let waiting = crate::inbox::pending(&dir);
        if !waiting.is_empty() {
            let mut open_batch = Taken {
                bodies: Vec::new(),
                ends: Vec::new(),
                batch: Arc::default(),
                waiting: Vec::new(),
            };
            for (_, ev) in &waiting {
                ev.write_json(&mut open_batch.bodies);
                open_batch.ends.push(open_batch.bodies.len());
            }
            w.write_batch(&open_batch)?;
            rec.entries += open_batch.ends.len() as u64;
            remove_ingested(&dir, waiting.into_iter().map(|(p, _)| p));
        }
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || w.run(rx))
            .map_err(io("starting the audit writer thread"))?;
        Ok((
            Self {
                tx: Mutex::new(Some(tx)),
                shared,
                thread: Mutex::new(Some(thread)),
                dir,
            },
            rec,
        ))
    }

    fn send(&self, m: Msg) -> Result<()> {
        self.tx
            .lock()
            .expect("lock")
            .as_ref()
            .ok_or(LogError::Closed)?
            .send(m)
            .map_err(|_| LogError::Closed)
    }

    /// Appends an event; resolves to its seq once it is durable.
    pub fn append(&self, ev: &Event) -> impl Future<Output = Result<u64>> + Send + use<> {
        let staged = SCRATCH.with_borrow_mut(|b| {
            b.clear();
            ev.write_json(b);
            self.stage(b, true)
        });
        Self::durable(staged)
    }

    /// Why this log signs no checkpoint, if it doesn't: at open it found
    /// signed entries lost or changed (`Recovery::short_of_checkpoint`,
    /// `Recovery::checkpoint_mismatch`). Any checkpoint of it would fork
    /// from the ones it signed; entries are still appended and durable. It
    /// stays so at every start (the reason is kept in
    /// `audit/signing-blocked`): keep the folder as evidence and start a
    /// new trail (an empty `audit.dir`).
    pub fn signing_blocked(&self) -> Option<String> {
        self.shared.signing_blocked.get().cloned()
    }

    /// Appends an event without waiting for it (nobody is told when it is
    /// durable; a later commit makes it so): no acknowledging runtime is
    /// marked waiting for it.
    pub fn append_detached(&self, ev: &Event) -> Result<()> {
        SCRATCH
            .with_borrow_mut(|b| {
                b.clear();
                ev.write_json(b);
                self.stage(b, false)
            })
            .map(drop)
    }

    /// Appends serialized event JSON (see [`Event::to_json`]).
    pub fn append_json(&self, json: &[u8]) -> impl Future<Output = Result<u64>> + Send + use<> {
        Self::durable(self.stage(json, true))
    }

    async fn durable(staged: Result<(Arc<Batch>, u64, usize)>) -> Result<u64> {
        let (batch, index, slot) = staged?;
        batch.wait(index, slot).await
    }

    /// Appends and waits (for threads outside an async runtime).
    pub fn append_blocking(&self, ev: &Event) -> Result<u64> {
        let (batch, index, _) = self.stage(&ev.to_json(), false)?;
        batch.wait_blocking(index)
    }

    /// Copies `json` into the stage; returns the batch it will be
    /// acknowledged with, its index there and the acknowledging runtime
    /// slot to wait on (this thread's, see [`set_ack_slot`]), marked
    /// waiting when `notified` (an async appender). Wakes the writer when
    /// the stage was empty (later appends find it awake or about to look).
    fn stage(&self, json: &[u8], notified: bool) -> Result<(Arc<Batch>, u64, usize)> {
        if json.len() + 8 > segment::MAX_BODY {
            return Err(LogError::TooLarge);
        }
        let (first, batch, index, slot) = {
            let mut st = self.shared.stage.lock().expect("lock");
            if st.closed {
                return Err(LogError::Closed);
            }
            st.bodies.extend_from_slice(json);
            let end = st.bodies.len();
            st.ends.push(end);
            let index = st.ends.len() as u64 - 1;
            let slot = Some(ACK_SLOT.get())
                .filter(|&s| s < st.waiting.len())
                .unwrap_or(0);
            if notified {
                st.waiting[slot] = true;
            }
            (index == 0, st.batch.clone(), index, slot)
        };
        if first {
            self.send(Msg::Staged)?;
        }
        Ok((batch, index, slot))
    }

    /// Appends the events other processes left in `audit/inbox/` (see
    /// [`crate::inbox`]); returns how many.
    pub fn ingest_inbox(&self) -> Result<usize> {
        let waiting = crate::inbox::pending(&self.dir);
        let n = waiting.len();
        for (p, ev) in waiting {
            self.append_blocking(&ev)?;
            remove_ingested(&self.dir, std::iter::once(p));
        }
        Ok(n)
    }

    /// Sets (or, with `None`, removes) the checkpoint signer. A signer
    /// being replaced signs a last checkpoint first. A new verifier key is
    /// added to `log.pub`.
    pub fn set_signer(&self, signer: Option<NoteSigner>) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Signer(signer, tx))?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Signs a checkpoint now (if there is a signer and new entries).
    pub fn checkpoint(&self) -> Result<Option<Signed>> {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Checkpoint(tx))?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Signs a last checkpoint, syncs everything and stops the writer.
    pub fn close(&self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let r = match self.send(Msg::Close(tx)) {
            Ok(()) => rx.recv().map_err(|_| LogError::Closed)?,
            Err(_) => Ok(()),
        };
        self.tx.lock().expect("lock").take();
        if let Some(t) = self.thread.lock().expect("lock").take() {
            let _ = t.join();
        }
        r
    }

    /// Runs `f` after every signed checkpoint (on the writer thread: keep
    /// it short, hand slow work to another thread).
    pub fn on_checkpoint(&self, f: impl Fn(&Signed) + Send + Sync + 'static) {
        self.shared.hooks.lock().expect("lock").push(Box::new(f));
    }

    /// `Some(why)` while the last write failed (fail closed).
    pub fn failure(&self) -> Option<String> {
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.last_error.lock().expect("lock").clone()
        } else {
            None
        }
    }

    /// Why the last witness push failed, if one did.
    pub fn witness_error(&self) -> Option<String> {
        self.shared.last_witness_error.lock().expect("lock").clone()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The audit directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn remove_ingested(dir: &Path, files: impl Iterator<Item = PathBuf>) {
    for p in files {
        let _ = fs::remove_file(p);
    }
    let _ = phivault_keystore::atomic::sync_dir(&crate::inbox::path(dir));
}

/// The root of the log's first `size` entries, from the frontier in the
/// header of the segment holding entry `size - 1` and that segment's leaf
/// hashes: at most one segment's worth of hashing. `newest` is the newest
/// segment's frontier at its start and `newest_leaves` its leaf hashes;
/// `leaves` (the leaves file) has every older segment's. `None` when that
/// segment is gone (retention) or its header does not say.
fn root_at(
    size: u64,
    segs: &[(u64, PathBuf)],
    newest: Frontier,
    newest_leaves: &[Hash],
    leaves: &mut File,
) -> Result<Option<Hash>> {
    if size >= newest.size() {
        let Some(hs) = newest_leaves.get(..(size - newest.size()) as usize) else {
            return Ok(None);
        };
        let mut f = newest;
        hs.iter().for_each(|h| f.push(*h));
        return Ok(Some(f.root()));
    }
    // The segment holding the checkpoint's last entry (the newest one
    // starting before `size`).
    let Some((first, path)) = segs.iter().rev().find(|(first, _)| *first < size) else {
        return Ok(None);
    };
    // An older segment that can't be read, or whose header is damaged, is
    // not checked here (`verify` reads everything): this check must not
    // stop a start, nor block signing over a bit flip in a header.
    let mut head = Vec::with_capacity(segment::MAX_HEADER);
    let read =
        File::open(path).and_then(|f| f.take(segment::MAX_HEADER as u64).read_to_end(&mut head));
    let Some(h) = read
        .ok()
        .and_then(|_| segment::parse_header(&head).ok())
        .filter(|h| h.first_seq == *first)
    else {
        return Ok(None);
    };
    let Ok(mut f) = Frontier::from_parts(*first, h.frontier) else {
        return Ok(None);
    };
    let hashed = (|| -> std::io::Result<()> {
        leaves.seek(SeekFrom::Start(first * 32))?;
        let mut left = (size - first) * 32;
        let mut b = vec![0u8; 64 << 10];
        while left > 0 {
            let n = left.min(b.len() as u64) as usize;
            leaves.read_exact(&mut b[..n])?;
            b[..n]
                .chunks_exact(32)
                .for_each(|c| f.push(c.try_into().expect("32 bytes")));
            left -= n as u64;
        }
        Ok(())
    })();
    // Later writes append: the cursor goes back to the end either way.
    leaves
        .seek(SeekFrom::End(0))
        .map_err(io("seeking audit/leaves"))?;
    Ok(hashed.ok().map(|()| f.root()))
}

fn create_segment(path: &Path, first: u64, frontier: &[Hash]) -> Result<File> {
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    f.write_all(&segment::encode_header(first, frontier))
        .map_err(io(format!("writing {}", path.display())))?;
    f.sync_all().map_err(io("syncing a new segment"))?;
    if let Some(d) = path.parent() {
        phivault_keystore::atomic::sync_dir(d).map_err(io("syncing audit/segments"))?;
    }
    Ok(f)
}

/// Appends the leaf hashes of entries `from..to` read from the segments.
fn rebuild_leaves(segs: &[(u64, PathBuf)], from: u64, to: u64, leaves: &mut File) -> Result<u64> {
    leaves
        .set_len(from * 32)
        .map_err(io("truncating audit/leaves"))?;
    leaves.seek(SeekFrom::End(0)).map_err(io("audit/leaves"))?;
    let mut next = from;
    for (first, path) in segs {
        if *first >= to {
            break;
        }
        let b = fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        let h = segment::parse_header(&b)?;
        for f in Frames::new(&b, h.len) {
            if f.seq < next {
                continue;
            }
            if f.seq != next || f.seq >= to {
                break;
            }
            leaves
                .write_all(&merkle::leaf_hash(f.body))
                .map_err(io("writing audit/leaves"))?;
            next += 1;
        }
    }
    if next != to {
        return Err(LogError::Format(format!(
            "audit/leaves is short (entries {from}..{to} missing) and the segments holding them are gone; restore audit/leaves from a backup"
        )));
    }
    Ok(to - from)
}

/// How long a group commit gathers events under load: long enough to
/// catch a burst, no longer.
///
/// Clients wait for their event to be durable before they send the next
/// request, so the events of a busy log come in bursts after each
/// commit. A fixed delay is wrong at both ends: a short one splits the
/// bursts of many clients into many fsyncs (CPU), a long one makes a few
/// clients wait for events that will not come (latency). So each paced
/// commit gathers until `gather` after the previous write began, then
/// looks once more a `step` later: if events were still arriving, the
/// burst was cut and the next commit gathers twice as long (up to the
/// configured `group_commit_delay`); if not, a quarter less. A gather
/// also ends as soon as every worker of the appenders' runtime has parked
/// (`LogConfig::idle`): nothing runs then that could add to the batch.
/// (BENCHMARKS.md, audit trail, compares this with fixed delays.)
struct Pacer {
    gather: Duration,
    max: Duration,
}

impl Pacer {
    const MIN: Duration = Duration::from_micros(50);

    fn new(max: Duration) -> Self {
        Self {
            gather: (max / 4).max(Self::MIN).min(max),
            max,
        }
    }

    /// Whether this commit takes the second look: always below the bound;
    /// at the bound (a log busy enough to fill it), one commit in four,
    /// since each look costs a wake-up of this thread.
    fn looks(&self, n: &mut u32) -> bool {
        *n = n.wrapping_add(1);
        self.gather < self.max || n.is_multiple_of(4)
    }

    /// The second look: an eighth of the gather time, 50–250 µs.
    fn step(&self) -> Duration {
        (self.gather / 8).clamp(Self::MIN, Duration::from_micros(250))
    }

    fn learn(&mut self, still_arriving: bool) {
        self.gather = if still_arriving {
            (self.gather * 2).min(self.max)
        } else {
            (self.gather * 3 / 4).max(Self::MIN.min(self.max))
        };
    }
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut last_batch = 0usize;
        let mut last_write = Instant::now();
        let mut pacer = Pacer::new(self.cfg.group_commit_delay);
        let mut looks = 0u32;
        loop {
            let wait = self
                .cfg
                .checkpoint_interval
                .saturating_sub(self.last_ckpt_at.elapsed())
                .max(Duration::from_millis(1));
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.close_stage();
                    let _ = self.finish();
                    return;
                }
            };
            // Under load, pace the group commits (see `Pacer`): each durable
            // write costs 30–120 µs of CPU here (scripts/fsync-cost.py) and
            // wake-ups of this thread that preempt requests, so thousands
            // of tiny batches a second would cost a third of a core.
            // Sleeping, not blocking in recv, also spares each appender a
            // wake-up of this thread.
            let paced = matches!(first, Some(Msg::Staged))
                && last_batch >= 2
                && !self.cfg.group_commit_delay.is_zero();
            if paced {
                let wait = (last_write + pacer.gather).saturating_duration_since(Instant::now());
                // Every appender's request has been served and its
                // runtime has nothing left to run: the burst is over.
                let idle = !wait.is_zero() && self.gather(wait);
                if !idle && pacer.looks(&mut looks) {
                    // Is the burst over? One short look more decides
                    // whether the next batch gathers for longer or shorter.
                    let before = self.staged();
                    self.gather(pacer.step());
                    pacer.learn(self.staged() > before);
                }
            }
            // The first control message waiting, if any (wake-ups for the
            // stage are spent: the stage is taken below whatever they say).
            let mut control = first.filter(|m| !matches!(m, Msg::Staged));
            while control.is_none() {
                match rx.try_recv() {
                    Ok(Msg::Staged) => {}
                    Ok(m) => control = Some(m),
                    Err(_) => break,
                }
            }
            let taken = self.take_stage();
            last_batch = taken.ends.len();
            if !taken.ends.is_empty() {
                last_write = Instant::now();
                self.commit(taken);
            }
            let due = self.frontier.size().saturating_sub(self.last_ckpt_size)
                >= self.cfg.checkpoint_every
                || self.last_ckpt_at.elapsed() >= self.cfg.checkpoint_interval;
            if due {
                if let Err(e) = self.checkpoint() {
                    self.fail(&e);
                }
                self.last_ckpt_at = Instant::now();
            }
            match control {
                None | Some(Msg::Staged) => {}
                Some(Msg::Signer(s, done)) => {
                    let r = self.set_signer(s);
                    let _ = done.send(r);
                }
                Some(Msg::Checkpoint(done)) => {
                    let _ = done.send(self.checkpoint());
                }
                Some(Msg::Close(done)) => {
                    self.close_stage();
                    let _ = done.send(self.finish());
                    return;
                }
            }
        }
    }

    /// Lets appends gather for `d`, less if the appenders' runtime runs
    /// out of work first (then returns true).
    fn gather(&self, d: Duration) -> bool {
        match &self.cfg.idle {
            Some(idle) => idle.sleep(d),
            None => {
                std::thread::sleep(d);
                false
            }
        }
    }

    /// How many appends are staged.
    fn staged(&self) -> usize {
        self.shared.stage.lock().expect("lock").ends.len()
    }

    /// Takes everything staged, leaving empty buffers (with capacity) and
    /// a fresh batch behind.
    fn take_stage(&mut self) -> Taken {
        let (mut bodies, mut ends, mut waiting) = std::mem::take(&mut self.spare);
        let batch = {
            let mut st = self.shared.stage.lock().expect("lock");
            std::mem::swap(&mut st.bodies, &mut bodies);
            std::mem::swap(&mut st.ends, &mut ends);
            waiting.resize(st.waiting.len(), false);
            std::mem::swap(&mut st.waiting, &mut waiting);
            if ends.is_empty() {
                st.batch.clone()
            } else {
                let fresh = Arc::new(Batch::new(st.slots));
                std::mem::replace(&mut st.batch, fresh)
            }
        };
        Taken {
            bodies,
            ends,
            batch,
            waiting,
        }
    }

    /// Writes a taken stage and tells its appenders how it went.
    fn commit(&mut self, taken: Taken) {
        // Armed before the write: a panic in it still answers everyone.
        let mut wake = WakeOnDrop(taken.batch.clone(), Wake::All);
        let outcome = match self.write_batch(&taken) {
            Ok(first) => Outcome::Durable(first),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let Taken {
            mut bodies,
            mut ends,
            batch,
            mut waiting,
        } = taken;
        batch.finish(outcome);
        // Async appenders are woken from a task on the runtime when there
        // are several: wake-ups from a worker thread are cheap local ones,
        // from this thread each is a remote one. A runtime that has shut
        // down drops the task unrun, and with it `wake`, which wakes them
        // from here instead.
        // Only runtimes with an appender waiting get a task: on a machine
        // with many workers, a task for nobody would wake a parked worker
        // (and delay the idle signal of the next gather).
        let rts = &self.cfg.ack_runtimes;
        if ends.len() > 1 && !rts.is_empty() {
            if waiting.iter().take(rts.len()).any(|w| *w) {
                self.shared
                    .stats
                    .ack_batches
                    .fetch_add(1, Ordering::Relaxed);
            }
            for (i, rt) in rts.iter().enumerate() {
                if !waiting.get(i).copied().unwrap_or(false) {
                    continue;
                }
                let w = WakeOnDrop(batch.clone(), Wake::Slot(i));
                drop(rt.spawn(async move { drop(w) }));
                self.shared.stats.ack_tasks.fetch_add(1, Ordering::Relaxed);
            }
            // Each waiting slot has its task now (a runtime that has shut
            // down drops it unrun, which wakes that slot from here); no
            // async appender waits on the others.
            wake.1 = Wake::Handed;
        }
        drop(wake);
        bodies.clear();
        ends.clear();
        waiting.fill(false);
        self.spare = (bodies, ends, waiting);
    }

    /// Closes the stage to new appends and commits what it holds.
    fn close_stage(&mut self) {
        self.shared.stage.lock().expect("lock").closed = true;
        let taken = self.take_stage();
        if !taken.ends.is_empty() {
            self.commit(taken);
        }
    }

    /// Writes one event of the log's own as a batch of one.
    fn write_one(&mut self, ev: &Event) -> Result<u64> {
        let bodies = ev.to_json();
        let ends = vec![bodies.len()];
        self.write_batch(&Taken {
            bodies,
            ends,
            batch: Arc::default(),
            waiting: Vec::new(),
        })
    }

    fn fail(&self, e: &LogError) {
        self.shared.failed.store(true, Ordering::Release);
        *self.shared.last_error.lock().expect("lock") = Some(e.to_string());
        self.shared
            .stats
            .write_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Writes and syncs a batch; returns the first entry's seq. On any
    /// failure the segment is cut back to where it was and nothing of the
    /// batch counts.
    fn write_batch(&mut self, batch: &Taken) -> Result<u64> {
        let first = self.frontier.size();
        let saved = self.frontier.clone();
        self.buf.clear();
        self.leafbuf.clear();
        for (i, j) in batch.entries().enumerate() {
            let r = segment::encode_frame(first + i as u64, j, &mut self.buf);
            let h = merkle::leaf_hash(&self.buf[r]);
            self.frontier.push(h);
            self.leafbuf.extend_from_slice(&h);
        }
        let n = batch.ends.len() as u64;
        let written = self
            .seg
            .write_all(&self.buf)
            .map_err(io("writing the audit segment"))
            .and_then(|()| self.make_durable(first, n))
            .and_then(|()| {
                self.leaves
                    .write_all(&self.leafbuf)
                    .map_err(io("writing audit/leaves"))
            });
        if let Err(e) = written {
            self.frontier = saved;
            self.fail(&e);
            self.repair(first);
            return Err(e);
        }
        self.seg_len += self.buf.len() as u64;
        if self.shared.failed.swap(false, Ordering::AcqRel) {
            *self.shared.last_error.lock().expect("lock") = None;
        }
        let s = &self.shared.stats;
        s.appended.fetch_add(n, Ordering::Relaxed);
        s.batches.fetch_add(1, Ordering::Relaxed);
        s.size.store(first + n, Ordering::Relaxed);
        // The entries are durable; a failed rotation is retried after the
        // next batch.
        if self.seg_len >= self.cfg.segment_bytes
            && let Err(e) = self.rotate()
        {
            self.fail(&e);
        }
        Ok(first)
    }

    /// Makes the batch just written to the segment (`self.buf`, entries
    /// `first..first + n`) durable: in the journal, or, when the journal
    /// is full or the batch too large for it, by syncing the segment (which
    /// then holds everything the journal did, so the journal starts again).
    /// A journal write that fails after reaching the disk leaves a batch
    /// the next one overwrites (it goes to the same offset); until then a
    /// restart would append its entries, whose callers were told the write
    /// failed: more recorded than acknowledged, never less.
    fn make_durable(&mut self, first: u64, n: u64) -> Result<()> {
        match &mut self.journal {
            Some(j) if j.has_room(self.buf.len()) => {
                let n = u32::try_from(n).map_err(|_| LogError::TooLarge)?;
                j.write(first, n, &self.buf)
                    .map_err(io("writing audit/journal"))
            }
            j => {
                self.seg
                    .sync_data()
                    .map_err(io("syncing the audit segment"))?;
                if let Some(j) = j {
                    j.restart();
                }
                Ok(())
            }
        }
    }

    /// After a failed write: cut the files back to the last good state,
    /// through fresh descriptors (a failed fsync may have dropped pages).
    fn repair(&mut self, entries: u64) {
        let _ = self.seg.set_len(self.seg_len);
        if let Ok(f) = OpenOptions::new().append(true).open(&self.seg_path) {
            self.seg = f;
        }
        let _ = self.leaves.set_len(entries * 32);
        let _ = self.leaves.seek(SeekFrom::End(0));
    }

    fn rotate(&mut self) -> Result<()> {
        // The sealed segment is synced: the journal only ever replays into
        // the newest one.
        self.seg
            .sync_data()
            .map_err(io("syncing the audit segment"))?;
        if let Some(j) = &mut self.journal {
            j.restart();
        }
        self.leaves
            .sync_data()
            .map_err(io("syncing audit/leaves"))?;
        let next = self.frontier.size();
        let p = self.cfg.dir.join("segments").join(segment::file_name(next));
        let f = create_segment(&p, next, self.frontier.hashes())?;
        self.seg = f;
        self.seg_len = fs::metadata(&p).map_err(io("segment"))?.len();
        self.seg_path = p;
        let pruned = self.prune();
        for name in pruned {
            let ev = Event::new(Kind::Audit, "audit.segment_removed")
                .detail(serde_json::json!({ "segment": name, "reason": "retention" }));
            self.write_one(&ev)?;
        }
        Ok(())
    }

    /// Removes sealed segments older than the retention period.
    fn prune(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(segs) = list_segments(&self.cfg.dir) else {
            return out;
        };
        for (_, p) in segs.iter().rev().skip(1) {
            let old = fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > self.cfg.retention);
            if old && fs::remove_file(p).is_ok() {
                out.push(p.file_name().unwrap_or_default().to_string_lossy().into());
            }
        }
        if !out.is_empty() {
            let _ = phivault_keystore::atomic::sync_dir(&self.cfg.dir.join("segments"));
        }
        out
    }

    fn set_signer(&mut self, s: Option<NoteSigner>) -> Result<()> {
        if self.signer.is_some() {
            self.checkpoint()?;
        }
        if let Some(s) = &s {
            let vkey = s.verifier_key();
            let p = self.cfg.dir.join("log.pub");
            let cur = fs::read_to_string(&p).unwrap_or_default();
            if !cur.lines().any(|l| l.trim() == vkey) {
                phivault_keystore::atomic::write_atomic(&p, format!("{cur}{vkey}\n").as_bytes())
                    .map_err(io("writing audit/log.pub"))?;
            }
        }
        self.signer = s;
        // The first signer signs at once (covering what came before it).
        if self.signer.is_some() {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<Option<Signed>> {
        let Some(signer) = &self.signer else {
            return Ok(None);
        };
        let size = self.frontier.size();
        // Never a checkpoint of a tree no larger than the last one signed,
        // nor of one that does not extend it (`Recovery::short_of_checkpoint`,
        // `Recovery::checkpoint_mismatch`): that would be a rollback or a
        // fork signed by the log's own key, and a witness that compares
        // sizes only would take it.
        if size == 0 || size <= self.last_ckpt_size || self.shared.signing_blocked.get().is_some() {
            return Ok(None);
        }
        let cp = Checkpoint {
            origin: self.cfg.origin.clone(),
            size,
            root: self.frontier.root(),
            extensions: Vec::new(),
        };
        let note = signer
            .sign(&cp.body())
            .map_err(|e| LogError::Sign(e.to_string()))?;
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let mut b = Vec::new();
        segment::encode_frame(ms, note.as_bytes(), &mut b);
        self.leaves
            .sync_data()
            .map_err(io("syncing audit/leaves"))?;
        self.ckpts
            .write_all(&b)
            .and_then(|()| self.ckpts.sync_data())
            .map_err(io("writing audit/checkpoints.log"))?;
        phivault_keystore::atomic::write_atomic(&self.cfg.dir.join("checkpoint"), note.as_bytes())
            .map_err(io("writing audit/checkpoint"))?;
        for w in &self.cfg.witness_dirs {
            // A witness that can't be written is reported, not fatal: the
            // entries are durable and the checkpoint is in checkpoints.log.
            if let Err(e) = crate::witness::store(w, &self.cfg.origin, &note, size) {
                self.shared
                    .stats
                    .witness_failures
                    .fetch_add(1, Ordering::Relaxed);
                *self.shared.last_witness_error.lock().expect("lock") = Some(e.to_string());
            }
        }
        self.last_ckpt_size = size;
        self.shared
            .stats
            .checkpoints
            .fetch_add(1, Ordering::Relaxed);
        let signed = Signed { size, note };
        for h in self.shared.hooks.lock().expect("lock").iter() {
            h(&signed);
        }
        Ok(Some(signed))
    }

    fn finish(&mut self) -> Result<()> {
        self.checkpoint()?;
        self.leaves.sync_all().map_err(io("syncing audit/leaves"))?;
        self.seg
            .sync_all()
            .map_err(io("syncing the audit segment"))?;
        Ok(())
    }
}

impl Drop for Writer {
    /// However the writer stops (closed, or a panic), no appender waits
    /// forever: the stage is closed and what it holds fails as closed.
    fn drop(&mut self) {
        let batch = {
            let mut st = self.shared.stage.lock().unwrap_or_else(|p| p.into_inner());
            st.closed = true;
            st.batch.clone()
        };
        batch.finish(Outcome::Closed);
        batch.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(i: u64) -> Event {
        Event::new(Kind::Request, format!("op.{i}"))
    }

    /// Every entry in the log, in seq order.
    fn entries(dir: &Path) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (_, p) in list_segments(dir).unwrap() {
            let b = fs::read(p).unwrap();
            let h = segment::parse_header(&b).unwrap();
            out.extend(Frames::new(&b, h.len).map(|f| f.json().to_vec()));
        }
        out
    }

    /// A server with a single-threaded runtime per core: each runtime's
    /// appenders are acknowledged in its own slot, and every one of them
    /// gets the seq of its own entry. Then one runtime stops: the other's
    /// appenders are still acknowledged (the stopped one's task is dropped
    /// unrun, which wakes its slot from the writer).
    #[test]
    fn per_runtime_acknowledgement_slots_wake_every_appender() {
        let d = tempfile::tempdir().unwrap();
        let mut stops = Vec::new();
        let mut threads = Vec::new();
        let mut handles = Vec::new();
        for slot in 0..2 {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            handles.push(rt.handle().clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(Some(stop));
            threads.push(Some(std::thread::spawn(move || {
                set_ack_slot(slot);
                rt.block_on(async move {
                    let _ = stopped.await;
                });
            })));
        }
        let mut cfg = LogConfig::new(d.path());
        cfg.ack_runtimes = handles.clone();
        let (log, _) = AuditLog::open(cfg).unwrap();
        let log = Arc::new(log);
        let round = |runtimes: &[usize], base: u64| {
            let (tx, rx) = std::sync::mpsc::channel();
            for &r in runtimes {
                for t in 0..4u64 {
                    let (log, tx) = (log.clone(), tx.clone());
                    handles[r].spawn(async move {
                        for i in 0..200 {
                            let n = base + r as u64 * 10_000 + t * 1000 + i;
                            tx.send((n, log.append(&marked(n)).await.unwrap())).unwrap();
                        }
                    });
                }
            }
            drop(tx);
            // An appender left unwoken fails here instead of hanging.
            let want = runtimes.len() * 800;
            (0..want)
                .map(|_| {
                    rx.recv_timeout(Duration::from_secs(20))
                        .expect("an appender was not woken")
                })
                .collect::<Vec<_>>()
        };
        let mut got = round(&[0, 1], 0);
        assert_eq!(got.len(), 1600);
        // Slot 1's runtime stops; slot 0 goes on alone, and only slot 0's
        // runtime gets acknowledgement tasks: at most one per commit.
        drop(stops[1].take());
        threads[1].take().unwrap().join().unwrap();
        let (tasks, batches) = (
            || log.stats().ack_tasks.load(Ordering::Relaxed),
            || log.stats().ack_batches.load(Ordering::Relaxed),
        );
        let (t0, b0) = (tasks(), batches());
        got.extend(round(&[0], 100_000));
        assert_eq!(got.len(), 2400);
        assert!(batches() > b0, "no commit was acknowledged by a task");
        assert_eq!(
            tasks() - t0,
            batches() - b0,
            "tasks for commits of one runtime's appenders"
        );
        // Appends staged as slot 1 whose runtime has stopped (awaited on a
        // runtime the log does not know): the unrun task's drop wakes them.
        let late = {
            let log = log.clone();
            std::thread::spawn(move || {
                set_ack_slot(1);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let futs: Vec<_> = (0..64u64)
                        .map(|i| {
                            let n = 200_000 + i;
                            let f = log.append(&marked(n));
                            async move { (n, f.await.unwrap()) }
                        })
                        .collect();
                    let mut out = Vec::new();
                    for f in futs {
                        out.push(f.await);
                    }
                    out
                })
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !late.is_finished() {
            assert!(Instant::now() < deadline, "a slot-1 appender was not woken");
            std::thread::sleep(Duration::from_millis(5));
        }
        got.extend(late.join().unwrap());
        assert_eq!(got.len(), 2464);
        log.close().unwrap();
        let all = entries(d.path());
        for (n, seq) in &got {
            let want = format!("\"op.{n}\"");
            let e = String::from_utf8_lossy(&all[*seq as usize]).into_owned();
            assert!(e.contains(&want), "seq {seq} holds {e}, not op.{n}");
        }
        drop(stops[0].take());
        threads[0].take().unwrap().join().unwrap();
    }

    #[test]
    fn each_append_is_told_the_seq_of_its_own_entry() {
        let d = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let mut cfg = LogConfig::new(d.path());
        cfg.ack_runtimes = vec![rt.handle().clone()];
        let (log, _) = AuditLog::open(cfg).unwrap();
        let log = Arc::new(log);
        // Async appends on the runtime and blocking ones from threads, at
        // once, so batches mix both kinds of waiter.
        let tasks: Vec<_> = (0..8u64)
            .map(|t| {
                let log = log.clone();
                rt.spawn(async move {
                    let mut got = Vec::new();
                    for i in 0..300 {
                        let n = t * 1000 + i;
                        got.push((n, log.append(&marked(n)).await.unwrap()));
                    }
                    got
                })
            })
            .collect();
        let threads: Vec<_> = (8..11u64)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .map(|i| {
                            let n = t * 1000 + i;
                            (n, log.append_blocking(&marked(n)).unwrap())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut acked: Vec<(u64, u64)> = rt.block_on(async {
            let mut v = Vec::new();
            for t in tasks {
                v.extend(t.await.unwrap());
            }
            v
        });
        for t in threads {
            acked.extend(t.join().unwrap());
        }
        log.close().unwrap();
        let all = entries(d.path());
        assert_eq!(acked.len(), 8 * 300 + 3 * 100);
        for (n, seq) in acked {
            let e: serde_json::Value = serde_json::from_slice(&all[seq as usize]).unwrap();
            assert_eq!(e["op"], format!("op.{n}"), "seq {seq}");
        }
        assert!(log.stats().batches.load(Ordering::Relaxed) < all.len() as u64);
    }

    /// Three rounds of ten appends at once from a task on a 2-worker
    /// runtime, with a 2 s gather bound; how long they took.
    fn paced_rounds(idle: Option<Arc<RuntimeIdle>>) -> Duration {
        let d = tempfile::tempdir().unwrap();
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        if let Some(i) = &idle {
            let (p, u) = (i.clone(), i.clone());
            b.on_thread_park(move || p.parked())
                .on_thread_unpark(move || u.unparked());
        }
        let rt = b.build().unwrap();
        let mut cfg = LogConfig::new(d.path());
        // The first paced gather is a quarter of this (`Pacer::new`).
        cfg.group_commit_delay = Duration::from_secs(2);
        cfg.ack_runtimes = vec![rt.handle().clone()];
        cfg.idle = idle;
        let (log, _) = AuditLog::open(cfg).unwrap();
        let log = Arc::new(log);
        let l = log.clone();
        let took = rt.block_on(rt.spawn(async move {
            let at = Instant::now();
            for r in 0..3 {
                let futs: Vec<_> = (0..10).map(|i| l.append(&marked(r * 10 + i))).collect();
                for f in futs {
                    f.await.unwrap();
                }
            }
            at.elapsed()
        }));
        log.close().unwrap();
        took.unwrap()
    }

    #[test]
    fn a_gather_ends_when_the_appenders_runtime_runs_out_of_work() {
        // Without the signal, a round after a batch of several waits out
        // the gather; with it, the workers park as soon as every append
        // is staged, and the commit is written at once.
        assert!(paced_rounds(None) >= Duration::from_millis(500));
        let fast = paced_rounds(Some(Arc::new(RuntimeIdle::new(2))));
        assert!(fast < Duration::from_millis(250), "{fast:?}");
    }

    #[test]
    fn appenders_are_woken_even_when_the_ack_runtime_is_gone() {
        // The runtime the writer acknowledges on has shut down (a server
        // stopping): its tasks are dropped unrun, yet appends waiting on
        // another runtime still complete.
        let gone = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = gone.handle().clone();
        drop(gone);
        let d = tempfile::tempdir().unwrap();
        let mut cfg = LogConfig::new(d.path());
        cfg.ack_runtimes = vec![handle];
        let (log, _) = AuditLog::open(cfg).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let seqs = rt.block_on(async {
            let futs: Vec<_> = (0..200).map(|i| log.append(&marked(i))).collect();
            tokio::time::timeout(Duration::from_secs(20), async {
                let mut v = Vec::new();
                for f in futs {
                    v.push(f.await.unwrap());
                }
                v
            })
            .await
            .expect("appenders left waiting")
        });
        assert_eq!(seqs.len(), 200);
        log.close().unwrap();
    }

    #[test]
    fn appends_after_close_fail_at_once_and_a_stopped_writer_strands_no_one() {
        let d = tempfile::tempdir().unwrap();
        let (log, _) = AuditLog::open(LogConfig::new(d.path())).unwrap();
        assert_eq!(log.append_blocking(&marked(0)).unwrap(), 0);
        log.close().unwrap();
        assert!(matches!(
            log.append_blocking(&marked(1)),
            Err(LogError::Closed)
        ));
        // However the writer stops (here: dropped on its thread, as a
        // panic would unwind), what is staged gets an answer, and so does
        // anything staged after.
        let d = tempfile::tempdir().unwrap();
        let (log, _) = AuditLog::open(LogConfig::new(d.path())).unwrap();
        let shared = log.shared.clone();
        let (tx, rx) = mpsc::channel();
        log.send(Msg::Close(tx)).unwrap();
        rx.recv().unwrap().unwrap();
        // The writer answers `Close`, then returns and drops itself.
        let t = log.thread.lock().unwrap().take().unwrap();
        t.join().unwrap();
        let stranded = shared.stage.lock().unwrap().batch.clone();
        assert!(matches!(stranded.done.get(), Some(Outcome::Closed)));
        assert!(matches!(
            Batch::result(stranded.done.get().unwrap(), 0),
            Err(LogError::Closed)
        ));
        assert!(matches!(log.stage(b"{}", true), Err(LogError::Closed)));
    }

    #[test]
    fn the_pacer_grows_while_bursts_are_cut_and_shrinks_when_they_end() {
        let max = Duration::from_micros(2000);
        let mut p = Pacer::new(max);
        assert_eq!(p.gather, Duration::from_micros(500));
        for _ in 0..10 {
            p.learn(true);
        }
        assert_eq!(p.gather, max, "never past the configured bound");
        let mut n = 0;
        let looked = (0..8).filter(|_| p.looks(&mut n)).count();
        assert_eq!(looked, 2, "at the bound, one commit in four looks again");
        assert_eq!(p.step(), Duration::from_micros(250));
        for _ in 0..40 {
            p.learn(false);
        }
        assert_eq!(p.gather, Pacer::MIN, "a few clients wait little");
        assert!(
            (0..8).all(|_| p.looks(&mut n)),
            "below the bound, every commit looks"
        );
        assert_eq!(p.step(), Pacer::MIN);
        let tiny = Pacer::new(Duration::from_micros(20));
        assert_eq!(
            tiny.gather,
            Duration::from_micros(20),
            "a bound under the minimum is kept"
        );
    }
}
