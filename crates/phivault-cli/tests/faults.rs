//! Crash and fault tests, over real sockets with the real binary, real
//! SQLite and a real PostgreSQL:
//!
//! * `kill -9` while clients create, bulk-create, replace and patch
//!   records, encrypt with transit, and rotate transit and collection keys
//!   (rewrap jobs, some destroying the old versions); restarted on the same
//!   data, 200 times per backend (SQLite, then PostgreSQL). A live cycle
//!   waits for its first acknowledged write, then kills after a random
//!   delay; one cycle in eight kills the node while it starts instead.
//!   Beside it all, `phivault backup create` runs again and again (one run
//!   in three SIGKILLed itself); every finished backup must decrypt whole
//!   and hold every record acknowledged before it began.
//! * PostgreSQL crashed (immediate stop) under load, for ~1 s and for
//!   longer than the pool's 5 s acquire timeout; the server keeps running.
//! * The SQLite data dir's disk (a 16 MiB tmpfs, needs root) filling up
//!   under writes, then space freed.
//!
//! Each ends with the same checks: every acknowledged record reads back
//! with its last acknowledged value (or a later one whose answer was lost),
//! every acknowledged transit ciphertext decrypts, every stored record
//! opens and holds a value that was written, no acknowledged rotation is
//! lost, and the audit trail verifies against the key pinned at the first
//! start. Failures along the way must be clear: 503/507 with a message,
//! never a bare 500, never a hang.
//!
//! `kill -9` kills the process, not the machine: the page cache survives,
//! so these tests can't catch a missing fsync (that needs power-loss
//! testing); they catch acknowledging before the commit, torn state left
//! by a crash, and recovery that loses or breaks data.
//!
//! The tests take turns (one lock): the kill timings and latency bounds
//! assume the cores are not shared with another of them. Kill delays are
//! random; the seed is printed, PHIVAULT_FAULTS_SEED replays it, and
//! PHIVAULT_FAULTS_CYCLES sets the number of kill cycles. Records hold
//! synthetic PHI-like values only (SSNs in the never-issued 9xx area,
//! 555-01xx phone numbers, example.org addresses).

use base64::Engine as _;
use phivault_server::client::ApiClient;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

mod common;
use common::pv;

const COLL: &str = "patients";
const TKEY: &str = "faults";
/// Kill-9 cycles per backend.
const CYCLES: usize = 200;
/// A request taking longer than this is a hang. The PostgreSQL pool gives
/// up acquiring after 5 s, and a request that waited once must fail then:
/// one that went on to wait again (8 s in the 8 s outage) was a bug.
const HANG: Duration = Duration::from_millis(6500);

/// One test at a time: the kill timings and the latency bounds assume the
/// machine's cores are not shared with another of these tests.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

// ------------------------------------------------------------ randomness

use common::Rng;

fn seed(test: &str) -> u64 {
    common::seed("PHIVAULT_FAULTS_SEED", test)
}

fn cycles() -> usize {
    std::env::var("PHIVAULT_FAULTS_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CYCLES)
}

// ------------------------------------------------------------ synthetic PHI

const FAMILY: &[&str] = &[
    "Quillfeather",
    "Ardenholt",
    "Brackwater",
    "Castellane",
    "Dunmorrow",
    "Elsworthy",
    "Fenwright",
    "Galloway",
    "Harrowgate",
    "Ingleby",
];
const GIVEN: &[&str] = &[
    "Ana",
    "Bartholomew",
    "Cecilia",
    "Dmitri",
    "Esperanza",
    "Farid",
    "Greta",
    "Hiroshi",
    "Imelda",
    "Jonah",
];

const GENDER: &[&str] = &["female", "male", "other", "unknown"];

/// A synthetic patient; `w`/`n` make the patient id unique per writer.
fn patient(w: usize, n: usize, r: &mut Rng) -> Value {
    let mut v = json!({
        "patient_id": format!("PT-{w}-{n:06}"),
        "mrn": format!("MRN{w}{n:07}"),
        "ssn": format!("9{:02}-{:02}-{:04}", r.below(100), 1 + r.below(99), 1 + r.below(9999)),
        "name": {
            "family": format!("{}{}", FAMILY[r.below(FAMILY.len())], r.below(1000)),
            "given": GIVEN[r.below(GIVEN.len())],
        },
        "birth_date": format!("{}-{:02}-{:02}", 1930 + r.below(90), 1 + r.below(12), 1 + r.below(28)),
        "gender": GENDER[r.below(4)],
        "active": r.below(2) == 0,
        "managing_org": format!("org-{}", r.below(5)),
        "telecom": {
            "phone": format!("555-01{:02}-{:04}", r.below(100), r.below(10000)),
            "email": format!("pt{w}x{n}@example.org"),
        },
    });
    if r.below(2) == 0 {
        v["note"] = json!(format!(
            "Synthetic visit note {}: follow-up in {} weeks",
            r.next() % 100_000,
            1 + r.below(12)
        ));
    }
    v
}

/// A replacement for `doc`: the same patient, other details.
fn revise(doc: &Value, r: &mut Rng) -> Value {
    let mut v = doc.clone();
    v["name"]["family"] = json!(format!(
        "{}{}",
        FAMILY[r.below(FAMILY.len())],
        r.below(1000)
    ));
    v["telecom"]["phone"] = json!(format!("555-01{:02}-{:04}", r.below(100), r.below(10000)));
    v["note"] = json!(format!("Synthetic revision {}", r.next() % 1_000_000));
    v
}

/// A JSON merge patch (RFC 7386): a patient's given name, or phone, or
/// note removed and active flag set.
fn patch_for(r: &mut Rng) -> Value {
    match r.below(3) {
        0 => json!({"name": {"given": GIVEN[r.below(GIVEN.len())]}}),
        1 => {
            json!({"telecom": {"phone": format!("555-01{:02}-{:04}", r.below(100), r.below(10000))}})
        }
        _ => json!({"note": null, "active": r.below(2) == 0}),
    }
}

/// RFC 7386 applied to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

// ------------------------------------------------------------ server nodes

/// Where a node keeps its data and how it is started.
struct Backend {
    name: &'static str,
    /// The node's data dir (keystore, certificates, audit trail; records
    /// too on SQLite).
    dir: PathBuf,
    config: PathBuf,
    /// `PHIVAULT_STORAGE_URL` (PostgreSQL), or SQLite in `dir`.
    storage_url: Option<String>,
    /// The servers' stderr, appended across restarts.
    log: PathBuf,
    pg: Option<phivault_testpg::PgCluster>,
    _tmp: tempfile::TempDir,
}

/// A running `phivault serve --dev`: SIGKILLed and reaped when dropped
/// (a failed assertion must not leak it).
struct Node {
    child: Child,
    addr: String,
    /// Held open: the server's stdout stays a live pipe.
    _out: Option<BufReader<ChildStdout>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the graceful shutdown (after 30 s the test
    /// fails, and the drop SIGKILLs it).
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `phivault serve --dev` on the backend, not waited for.
fn spawn(b: &Backend) -> Node {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&b.log)
        .unwrap();
    let mut c = Cli::of(b).cmd();
    c.args(common::SERVE_DEV).args(["--log", "warn"]);
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    Node {
        child,
        addr: String::new(),
        _out: None,
    }
}

/// Starts a node and waits for its ready line.
fn start(b: &Backend) -> Node {
    let mut node = spawn(b);
    let mut out = BufReader::new(node.child.stdout.take().unwrap());
    let mut line = String::new();
    let _ = out.read_line(&mut line);
    let Some(addr) = serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| v["listening"].as_str().map(str::to_owned))
    else {
        drop(node);
        panic!(
            "{}: the server did not start: {line}\n{}",
            b.name,
            tail(&b.log)
        )
    };
    node.addr = addr.trim_start_matches("https://").to_string();
    node._out = Some(out);
    node
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn sqlite_backend(config: &str) -> Backend {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    Backend {
        name: "sqlite",
        dir: tmp.path().join("data"),
        config: cfg,
        storage_url: None,
        log: tmp.path().join("server.log"),
        pg: None,
        _tmp: tmp,
    }
}

/// A node on a fresh PostgreSQL whose TLS certificate phivault's own CA
/// issued (TLS required, `sslmode=verify-full` against that CA). `None`:
/// PostgreSQL is not installed (skipped loudly, or a failure in CI).
fn pg_backend(config: &str) -> Option<Backend> {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dir = d.join("data");
    // The first start bootstraps the dev keystore and phivault's CA, which
    // issues PostgreSQL's server certificate.
    let pg = common::postgres_with_phivault_ca(&dir, d)?;
    pg.create_db("phivault");
    for f in ["records.db", "subject-keys.db"] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("{f}{suffix}")));
        }
    }
    let cfg = d.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\nca_file = \"{}\"\n{config}",
            dir.join("ca/ca.pem").display()
        ),
    )
    .unwrap();
    Some(Backend {
        name: "postgres",
        dir,
        config: cfg,
        storage_url: Some(pg.url("phivault", "")),
        log: d.join("server.log"),
        pg: Some(pg),
        _tmp: tmp,
    })
}

fn client(dir: &Path, addr: &str) -> ApiClient {
    ApiClient::new(
        addr,
        &dir.join("ca/ca.pem"),
        &dir.join("clients/admin.pem"),
        &dir.join("clients/admin.key"),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The admin's client for the test's own (checking) requests.
struct Api {
    rt: tokio::runtime::Runtime,
    c: ApiClient,
}

impl Api {
    fn new(b: &Backend, n: &Node) -> Self {
        Api {
            rt: runtime(),
            c: client(&b.dir, &n.addr),
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let f = self
            .c
            .call(method, path, &[("x-purpose-of-use", "TREAT")], body);
        match self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), f).await })
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("{method} {path}: {e}"),
            Err(_) => panic!("{method} {path}: no answer in 120 s"),
        }
    }
}

/// The `patients` collection (examples/patients.schema.json) and the
/// transit key.
fn setup(api: &mut Api) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("examples/patients.schema.json")).unwrap(),
    )
    .unwrap();
    let (c, v) = api.call("POST", &format!("/v1/collections/{COLL}"), Some(&schema));
    assert_eq!(c, 201, "{v}");
    let (c, v) = api.call(
        "POST",
        &format!("/v1/transit/keys/{TKEY}"),
        Some(&json!({})),
    );
    assert!(c == 200 || c == 204, "{c} {v}");
}

/// The audit trail's public key as of now, pinned for the final check.
fn pin_audit_key(b: &Backend) -> PathBuf {
    let (code, out, err) = common::run(pv(&b.dir).args(["audit", "pubkey"]));
    assert_eq!(code, 0, "{err}");
    let p = b.dir.parent().unwrap().join("audit.pub");
    std::fs::write(&p, out).unwrap();
    p
}

/// `phivault audit verify --key <pinned>` on the node's audit dir.
fn audit_verifies(b: &Backend, key: &Path) {
    let t0 = Instant::now();
    let (code, out, err) = common::run(
        pv(&b.dir)
            .args(["--json", "audit", "verify", "--key"])
            .arg(key),
    );
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    assert!(
        code == 0 && v["ok"] == true,
        "{}: the audit trail does not verify (exit {code}): {out}\n{err}",
        b.name
    );
    eprintln!(
        "{}: audit trail verifies: {} entries, {} checkpoints ({:.1?})",
        b.name,
        v["entries"],
        v["checkpoints"],
        t0.elapsed()
    );
}

// ------------------------------------------------------------ load

/// What one request did.
struct Ev {
    /// The kill cycle (or phase) it started in.
    cycle: usize,
    start: Instant,
    end: Instant,
    op: &'static str,
    /// Whether it writes records (create, bulk create, replace, patch).
    write: bool,
    /// The HTTP status; 0: no answer (connection lost or refused, timeout).
    status: u16,
    /// The error message of a non-2xx answer, or the transport error.
    msg: String,
    /// Records it created (acknowledged creates and bulk creates).
    created: usize,
}

impl Ev {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An acknowledged record: its last acknowledged value, and the values of
/// later writes that got no 2xx (any of which it may hold instead).
struct Rec {
    acked: Value,
    pending: Vec<Value>,
}

/// Everything a load thread wrote and what the server acknowledged.
#[derive(Default)]
struct Book {
    recs: HashMap<String, Rec>,
    /// Every value ever sent, by patient id: what any stored record of
    /// that patient may hold (creates whose answer was lost included).
    sent: HashMap<String, Vec<Value>>,
    /// Acknowledged transit ciphertexts and their plaintexts (base64).
    transit: Vec<(String, String)>,
    transit_rotations: u64,
    jobs: Vec<String>,
    events: Vec<Ev>,
}

impl Book {
    fn merge(&mut self, o: Book) {
        self.recs.extend(o.recs);
        for (k, v) in o.sent {
            self.sent.entry(k).or_default().extend(v);
        }
        self.transit.extend(o.transit);
        self.transit_rotations += o.transit_rotations;
        self.jobs.extend(o.jobs);
        self.events.extend(o.events);
    }

    fn sent(&mut self, doc: &Value) {
        let pid = doc["patient_id"].as_str().unwrap().to_owned();
        self.sent.entry(pid).or_default().push(doc.clone());
    }
}

/// Shared by the test thread and its load threads.
struct Load {
    dir: PathBuf,
    /// The running server, `None` while there is none.
    addr: RwLock<Option<String>>,
    /// The kill cycle (or phase) new requests count under.
    cycle: AtomicUsize,
    /// Record writes acknowledged in the current cycle.
    acked_now: AtomicUsize,
    stop: AtomicBool,
    /// Rotate the collection's ring in cycles where `cycle % n == 3`.
    coll_rotate_every: Option<usize>,
    /// From this cycle on, collection rotations destroy the old versions.
    destroy_from: usize,
}

/// Stops the load threads when dropped (also when an assertion fails).
struct Workers {
    load: Arc<Load>,
    threads: Vec<std::thread::JoinHandle<Book>>,
}

impl Workers {
    fn spawn(load: &Arc<Load>, n: usize, seed: u64) -> Self {
        let threads = (0..n)
            .map(|w| {
                let l = load.clone();
                std::thread::spawn(move || worker(&l, w, seed))
            })
            .collect();
        Workers {
            load: load.clone(),
            threads,
        }
    }

    fn finish(mut self) -> Book {
        self.load.stop.store(true, Ordering::Release);
        let mut book = Book::default();
        for t in self.threads.drain(..) {
            book.merge(t.join().expect("load thread panicked"));
        }
        book
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.load.stop.store(true, Ordering::Release);
    }
}

enum Op {
    Create(Value),
    Bulk(Vec<Value>),
    Update(String, Value, Option<Value>),
    Encrypt(String),
    RotateTransit,
    RotateCollection(bool),
}

/// One load thread: records it alone creates and updates (so the order of
/// writes to each record is known), transit encryptions, and, on threads
/// 0 and 1, one rotation per cycle.
fn worker(load: &Load, w: usize, seed: u64) -> Book {
    let rt = runtime();
    let mut r = Rng(seed.wrapping_add((w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    let mut book = Book::default();
    let mut mine: Vec<String> = Vec::new();
    let mut n = 0;
    let mut cl: Option<(String, ApiClient)> = None;
    let (mut cur_cycle, mut in_cycle, mut admin_at) = (usize::MAX, 0, 0);
    while !load.stop.load(Ordering::Acquire) {
        let Some(addr) = load.addr.read().unwrap().clone() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let cycle = load.cycle.load(Ordering::Acquire);
        if cycle != cur_cycle {
            (cur_cycle, in_cycle, admin_at) = (cycle, 0, r.below(8));
        }
        in_cycle += 1;
        if cl.as_ref().is_none_or(|(a, _)| *a != addr) {
            cl = Some((addr.clone(), client(&load.dir, &addr)));
        }
        let admin = in_cycle == admin_at + 1;
        let op = if admin && w == 0 {
            Op::RotateTransit
        } else if admin && w == 1 && load.coll_rotate_every.is_some_and(|e| cycle % e == 3) {
            Op::RotateCollection(cycle >= load.destroy_from)
        } else {
            let k = r.below(100);
            let certain: Option<String> = (0..4)
                .filter_map(|_| mine.get(r.below(mine.len())))
                .find(|id| book.recs[*id].pending.is_empty())
                .cloned();
            match (k, certain) {
                (0..22, _) => {
                    n += 1;
                    Op::Create(patient(w, n, &mut r))
                }
                (22..34, _) => Op::Bulk(
                    (0..2 + r.below(7))
                        .map(|_| {
                            n += 1;
                            patient(w, n, &mut r)
                        })
                        .collect(),
                ),
                (34..54, _) if !mine.is_empty() => {
                    let id = mine[r.below(mine.len())].clone();
                    let doc = revise(&book.recs[&id].acked, &mut r);
                    Op::Update(id, doc, None)
                }
                (54..68, Some(id)) => {
                    let patch = patch_for(&mut r);
                    let mut doc = book.recs[&id].acked.clone();
                    merge_patch(&mut doc, &patch);
                    Op::Update(id, doc, Some(patch))
                }
                _ => Op::Encrypt(base64::engine::general_purpose::STANDARD.encode(format!(
                    "MRN{w}{:07} dx E11.9 A1c {}.{}",
                    r.below(10_000_000),
                    5 + r.below(8),
                    r.below(10)
                ))),
            }
        };
        let (name, write, method, path, body) = match &op {
            Op::Create(d) => {
                book.sent(d);
                (
                    "records.create",
                    true,
                    "POST",
                    format!("/v1/records/{COLL}"),
                    d.clone(),
                )
            }
            Op::Bulk(ds) => {
                ds.iter().for_each(|d| book.sent(d));
                (
                    "records.bulk",
                    true,
                    "POST",
                    format!("/v1/records/{COLL}/bulk"),
                    json!({ "records": ds }),
                )
            }
            Op::Update(id, d, patch) => {
                book.sent(d);
                match patch {
                    Some(p) => (
                        "records.patch",
                        true,
                        "PATCH",
                        format!("/v1/records/{COLL}/{id}"),
                        p.clone(),
                    ),
                    None => (
                        "records.replace",
                        true,
                        "PUT",
                        format!("/v1/records/{COLL}/{id}"),
                        d.clone(),
                    ),
                }
            }
            Op::Encrypt(pt) => (
                "transit.encrypt",
                false,
                "POST",
                format!("/v1/transit/encrypt/{TKEY}"),
                json!({ "plaintext": pt }),
            ),
            Op::RotateTransit => (
                "transit.rotate",
                false,
                "POST",
                format!("/v1/transit/keys/{TKEY}/rotate"),
                json!({}),
            ),
            Op::RotateCollection(destroy_old) => (
                "collection.rotate",
                false,
                "POST",
                format!("/v1/collections/{COLL}/rotate"),
                json!({ "destroy_old": destroy_old }),
            ),
        };
        let c = &mut cl.as_mut().expect("client").1;
        let start = Instant::now();
        let res = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                c.call(method, &path, &[], Some(&body)),
            )
            .await
        });
        let end = Instant::now();
        let (status, v, msg) = match res {
            Ok(Ok((s, v))) => {
                let msg = if (200..300).contains(&s) {
                    String::new()
                } else {
                    v["errors"][0]
                        .as_str()
                        .map_or_else(|| v.to_string(), str::to_owned)
                };
                (s, v, msg)
            }
            Ok(Err(e)) => (0, Value::Null, e.to_string()),
            Err(_) => (0, Value::Null, "no answer in 30 s".into()),
        };
        if status == 0 {
            cl = None;
        }
        let ok = (200..300).contains(&status);
        if ok && write && load.cycle.load(Ordering::Acquire) == cycle {
            load.acked_now.fetch_add(1, Ordering::AcqRel);
        }
        let mut created = 0;
        match op {
            Op::Create(d) if ok => {
                created = 1;
                let id = v["id"].as_str().expect("id").to_owned();
                book.recs.insert(
                    id.clone(),
                    Rec {
                        acked: d,
                        pending: Vec::new(),
                    },
                );
                mine.push(id);
            }
            Op::Bulk(ds) if ok => {
                let ids = v["ids"].as_array().expect("ids");
                assert_eq!(ids.len(), ds.len(), "{v}");
                created = ids.len();
                for (id, d) in ids.iter().zip(ds) {
                    let id = id.as_str().expect("id").to_owned();
                    book.recs.insert(
                        id.clone(),
                        Rec {
                            acked: d,
                            pending: Vec::new(),
                        },
                    );
                    mine.push(id);
                }
            }
            Op::Update(id, d, _) => {
                let rec = book.recs.get_mut(&id).expect("own record");
                if ok {
                    rec.acked = d;
                    rec.pending.clear();
                } else {
                    rec.pending.push(d);
                }
            }
            Op::Encrypt(pt) if ok => book.transit.push((
                v["data"]["ciphertext"].as_str().expect("ciphertext").into(),
                pt,
            )),
            Op::RotateTransit if ok => book.transit_rotations += 1,
            Op::RotateCollection(_) if ok => book
                .jobs
                .push(v["rewrap_job"].as_str().expect("job").into()),
            _ => {}
        }
        book.events.push(Ev {
            cycle,
            start,
            end,
            op: name,
            write,
            status,
            msg,
            created,
        });
    }
    book
}

// ------------------------------------------------------------ checks

/// Rewrap jobs not done: "id state error" each.
fn unfinished_jobs(b: &Backend) -> Vec<String> {
    const Q: &str = "SELECT id || ' ' || state || ' ' || COALESCE(error, '') FROM";
    match &b.pg {
        Some(pg) => pg
            .psql("phivault", &format!("{Q} pv_jobs WHERE state <> 'done'"))
            .lines()
            .map(str::to_owned)
            .collect(),
        None => {
            let c = rusqlite::Connection::open_with_flags(
                b.dir.join("records.db"),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .unwrap();
            c.busy_timeout(Duration::from_secs(10)).unwrap();
            let mut s = c
                .prepare(&format!("{Q} jobs WHERE state <> 'done'"))
                .unwrap();
            s.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
    }
}

/// Waits until every rewrap job (resumed by the restarted server from its
/// stored cursor) is done; a failed one fails the test.
fn wait_for_jobs(b: &Backend) {
    let t0 = Instant::now();
    loop {
        let left = unfinished_jobs(b);
        if left.is_empty() {
            eprintln!("{}: rewrap jobs done ({:.1?})", b.name, t0.elapsed());
            return;
        }
        assert!(
            !left.iter().any(|j| j.contains(" failed")),
            "{}: a rewrap job failed: {left:?}\n{}",
            b.name,
            tail(&b.log)
        );
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{}: rewrap jobs still running after 120 s: {left:?}",
            b.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The end-of-test checks against a running server: every acknowledged
/// record reads back with its last acknowledged value (or a later write
/// that got no answer), every stored record opens and holds a value that
/// was written, every acknowledged ciphertext decrypts, and no
/// acknowledged rotation is lost.
fn verify(api: &mut Api, book: &Book, name: &str) {
    let t0 = Instant::now();
    let mut problems = Vec::new();
    let ids: Vec<&String> = book.recs.keys().collect();
    let mut later = 0;
    for chunk in ids.chunks(1000) {
        let (c, v) = api.call(
            "POST",
            &format!("/v1/records/{COLL}/bulk-get"),
            Some(&json!({ "ids": chunk })),
        );
        assert_eq!(c, 200, "{name}: bulk-get: {v}");
        let items = v["records"].as_array().unwrap();
        assert_eq!(items.len(), chunk.len());
        for (id, it) in chunk.iter().zip(items) {
            let rec = &book.recs[*id];
            if let Some(e) = it.get("error") {
                problems.push(format!(
                    "acknowledged record {id} does not read back: {e} (status {})",
                    it["status"]
                ));
            } else if it["data"] == rec.acked {
            } else if rec.pending.contains(&it["data"]) {
                later += 1;
            } else {
                problems.push(format!(
                    "record {id} ({}) holds neither its last acknowledged value nor one of the {} later unacknowledged ones",
                    it["data"]["patient_id"],
                    rec.pending.len()
                ));
            }
        }
    }
    // Every stored record (orphans of lost answers too) opens.
    let mut seen = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/records/{COLL}?limit=1000&after={a}"),
            None => format!("/v1/records/{COLL}?limit=1000"),
        };
        let (c, v) = api.call("GET", &path, None);
        assert_eq!(c, 200, "{name}: list: {v}");
        for it in v["records"].as_array().unwrap() {
            if it.get("error").is_some() {
                problems.push(format!("a stored record does not open: {it}"));
                continue;
            }
            let id = it["id"].as_str().unwrap().to_owned();
            let pid = it["data"]["patient_id"].as_str().unwrap_or_default();
            if !book
                .sent
                .get(pid)
                .is_some_and(|vs| vs.contains(&it["data"]))
            {
                problems.push(format!(
                    "record {id} ({pid}) decrypts to a value that was never written"
                ));
            }
            seen.insert(id);
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    let missing = ids.iter().filter(|id| !seen.contains(**id)).count();
    if missing > 0 {
        problems.push(format!(
            "{missing} acknowledged records are missing from the listing"
        ));
    }
    for chunk in book.transit.chunks(2000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|(ct, _)| json!({ "ciphertext": ct }))
            .collect();
        let (c, v) = api.call(
            "POST",
            &format!("/v1/transit/decrypt/{TKEY}"),
            Some(&json!({ "batch_input": batch })),
        );
        let Some(res) = v["data"]["batch_results"].as_array() else {
            problems.push(format!("transit decrypt: {c} {v}"));
            continue;
        };
        for (i, ((_, pt), r)) in chunk.iter().zip(res).enumerate() {
            if r["plaintext"].as_str() != Some(pt) {
                problems.push(format!(
                    "acknowledged transit ciphertext #{i} does not decrypt: {}",
                    r["error"]
                ));
            }
        }
    }
    let (c, v) = api.call("GET", &format!("/v1/transit/keys/{TKEY}"), None);
    assert_eq!(c, 200, "{v}");
    let latest = v["data"]["latest_version"].as_u64().unwrap();
    if latest < 1 + book.transit_rotations {
        problems.push(format!(
            "transit key at version {latest} after {} acknowledged rotations",
            book.transit_rotations
        ));
    }
    assert!(
        problems.is_empty(),
        "{name}: {} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    eprintln!(
        "{name}: verified {} acknowledged records ({later} hold a later unacknowledged write), {} stored ({} orphans of lost answers), {} ciphertexts, transit key v{latest} after {} acknowledged rotations, {} collection rotations ({:.1?})",
        ids.len(),
        seen.len(),
        seen.len() - (ids.len() - missing),
        book.transit.len(),
        book.transit_rotations,
        book.jobs.len(),
        t0.elapsed()
    );
}

/// Requests and answers by operation and status, for the report.
fn histogram(book: &Book) -> String {
    let mut h: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    let mut lost: BTreeMap<String, usize> = BTreeMap::new();
    for e in &book.events {
        *h.entry((e.op, e.status)).or_default() += 1;
        if e.status == 0 {
            // The address differs per restart; the reason is what counts.
            let why = e.msg.rsplit_once(": ").map_or(e.msg.as_str(), |(_, w)| w);
            *lost.entry(why.chars().take(60).collect()).or_default() += 1;
        }
    }
    let mut s = h
        .iter()
        .map(|((op, s), n)| format!("{op} {s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    for (m, n) in lost {
        s.push_str(&format!("\n  no answer ({n}): {m}"));
    }
    s
}

// ------------------------------------------------------------ kill -9

const WORKERS: usize = 4;

fn kill9_under_load(b: Backend) {
    let seed = seed(&format!("kill9 under load ({})", b.name));
    let mut r = Rng(seed);
    let t_all = Instant::now();
    let first = start(&b);
    let mut api = Api::new(&b, &first);
    setup(&mut api);
    drop(api);
    let key = pin_audit_key(&b);
    let n = cycles();
    // After a cycle's first acknowledged write, the node lives on for a
    // random time below this. PostgreSQL answers writes more slowly (a
    // commit each, fresh pool connections after each restart), so its
    // nodes get a little longer.
    let hi = if b.pg.is_some() { 300 } else { 200 };
    let load = Arc::new(Load {
        dir: b.dir.clone(),
        addr: RwLock::new(None),
        cycle: AtomicUsize::new(0),
        acked_now: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        coll_rotate_every: Some(16),
        destroy_from: n / 2,
    });
    let workers = Workers::spawn(&load, WORKERS, seed);
    let cli = Cli::of(&b);
    let stop_backups = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let backups = backups_beside(
        cli.clone(),
        b.dir.parent().unwrap().join("backups"),
        stop_backups.0.clone(),
        seed,
    );
    let mut node = Some(first);
    let mut kills = Vec::with_capacity(n);
    let mut early = Vec::with_capacity(n);
    let mut starts = Vec::with_capacity(n);
    let t_load = Instant::now();
    for g in 0..n {
        load.cycle.store(g, Ordering::Release);
        load.acked_now.store(0, Ordering::Release);
        early.push(g > 0 && r.below(8) == 0);
        if early[g] {
            // One cycle in eight kills the node as it starts, without
            // clients: during WAL recovery, the audit trail's torn-tail
            // repair, the keystore load, or a resumed rewrap job.
            let starting = spawn(&b);
            std::thread::sleep(r.millis(0, 250));
            kills.push(Instant::now());
            starting.kill9();
            continue;
        }
        let nd = node.take().unwrap_or_else(|| {
            let t = Instant::now();
            let nd = start(&b);
            starts.push(t.elapsed());
            nd
        });
        *load.addr.write().unwrap() = Some(nd.addr.clone());
        let t0 = Instant::now();
        while load.acked_now.load(Ordering::Acquire) == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{}: cycle {g}: no write acknowledged in 20 s:\n{}",
                b.name,
                tail(&b.log)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(r.millis(0, hi));
        *load.addr.write().unwrap() = None;
        kills.push(Instant::now());
        nd.kill9();
    }
    let load_time = t_load.elapsed();
    let book = workers.finish();
    stop_backups.0.store(true, Ordering::Release);
    let backups = backups.join().expect("the backup thread panicked");

    // The kills really landed mid-load: writes were acknowledged in the
    // cycles, and requests were in flight when the server died.
    let (mut acked, mut cut) = (vec![0usize; n], vec![0usize; n]);
    let mut unexpected = Vec::new();
    for e in &book.events {
        let kill = kills[e.cycle];
        if e.write && e.ok() {
            acked[e.cycle] += 1;
        } else if e.status == 0 && e.start < kill && e.end >= kill {
            cut[e.cycle] += 1;
        } else if e.status == 0 && e.start >= kill {
            // Sent as the server was being taken away: refused.
        } else if !(e.ok() || e.op == "collection.rotate" && e.status == 400) {
            // (400: a rewrap job still runs, so the collection can't rotate.)
            unexpected.push(format!(
                "cycle {} {} → {} {}",
                e.cycle, e.op, e.status, e.msg
            ));
        }
    }
    eprintln!("{}: {}", b.name, histogram(&book));
    assert!(
        unexpected.is_empty(),
        "{}: unexpected failures on a live server:\n{}",
        b.name,
        unexpected[..unexpected.len().min(20)].join("\n")
    );
    let live: Vec<usize> = (0..n).filter(|g| !early[*g]).collect();
    let with_acks = live.iter().filter(|g| acked[**g] > 0).count();
    let with_cut = live.iter().filter(|g| cut[**g] > 0).count();
    let m = live.len();
    let mean_start = starts.iter().sum::<Duration>() / starts.len().max(1) as u32;
    eprintln!(
        "{}: {n} kills in {load_time:.1?}, {} of them while starting (restart to ready: mean {mean_start:.1?}, max {:.1?}); acknowledged writes per cycle: mean {:.1}, min {}, max {}; cycles with acknowledged writes {with_acks}/{m}, with requests in flight at the kill {with_cut}/{m}",
        b.name,
        n - m,
        starts.iter().max().copied().unwrap_or_default(),
        live.iter().map(|g| acked[*g]).sum::<usize>() as f64 / m as f64,
        live.iter().map(|g| acked[*g]).min().unwrap(),
        live.iter().map(|g| acked[*g]).max().unwrap(),
    );
    // Each live cycle waited for an acknowledged write before its kill;
    // this checks the bookkeeping agrees.
    assert_eq!(
        with_acks, m,
        "{}: cycles without an acknowledged write",
        b.name
    );
    assert!(
        with_cut * 2 >= m,
        "{}: only {with_cut}/{m} kills caught a request in flight",
        b.name
    );
    assert!(book.transit_rotations > 0 && !book.jobs.is_empty());

    let t_check = Instant::now();
    let node = start(&b);
    wait_for_jobs(&b);
    let mut api = Api::new(&b, &node);
    verify(&mut api, &book, b.name);
    drop(api);
    node.stop();
    audit_verifies(&b, &key);
    check_backups(&cli, &backups, &book, b.name);
    eprintln!(
        "{}: kill -9 test took {:.1?} (load and kills {load_time:.1?}, checks {:.1?})",
        b.name,
        t_all.elapsed(),
        t_check.elapsed()
    );
}

#[test]
fn kill9_under_load_sqlite() {
    let _g = serial();
    kill9_under_load(sqlite_backend(""));
}

#[test]
fn kill9_under_load_postgres() {
    let _g = serial();
    let Some(b) = pg_backend("") else {
        return;
    };
    kill9_under_load(b);
}

// ------------------------------------------------------------ backups

/// What the `phivault` CLI needs to reach a backend: its data dir (the
/// unseal key in dev mode), config and storage URL.
#[derive(Clone)]
struct Cli {
    dir: PathBuf,
    config: PathBuf,
    storage_url: Option<String>,
}

impl Cli {
    fn of(b: &Backend) -> Self {
        Cli {
            dir: b.dir.clone(),
            config: b.config.clone(),
            storage_url: b.storage_url.clone(),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = pv(&self.dir);
        if let Some(u) = &self.storage_url {
            c.env("PHIVAULT_STORAGE_URL", u);
        }
        c.arg("--config").arg(&self.config);
        c
    }
}

/// Sets its flag when dropped: a failed assertion stops the thread.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the backup thread did.
struct Backups {
    dir: PathBuf,
    key: PathBuf,
    /// Runs that finished (exit 0): the file, the records it counted and
    /// when the run started.
    made: Vec<(PathBuf, u64, Instant)>,
    /// Runs SIGKILLed at a random moment: their file names.
    killed: Vec<PathBuf>,
    /// Runs that refused because a collection rotation destroyed a key
    /// version while they read the subject keys (they say to retry).
    raced: usize,
    /// Runs that failed otherwise: their stderr.
    failed: Vec<String>,
}

/// `phivault backup create` again and again beside the load and the kills,
/// as an operator's scheduled job would run it (it reads the store and the
/// keystore itself, not through the server). One run in three is itself
/// SIGKILLed at a random moment.
fn backups_beside(
    cli: Cli,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> std::thread::JoinHandle<Backups> {
    std::thread::spawn(move || {
        let mut r = common::Rng(seed ^ 0x6261_636b);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("backup.key");
        let (code, _, err) = common::run(cli.cmd().args(["backup", "keygen", "--out"]).arg(&key));
        assert_eq!(code, 0, "backup keygen: {err}");
        let public = dir.join("backup.pub");
        let mut bk = Backups {
            dir: dir.clone(),
            key,
            made: Vec::new(),
            killed: Vec::new(),
            raced: 0,
            failed: Vec::new(),
        };
        for i in 0.. {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let file = dir.join(format!("b{i}.pvb"));
            let t0 = Instant::now();
            let mut child = cli
                .cmd()
                .args([
                    "--insecure-dev",
                    "--json",
                    "backup",
                    "create",
                    "--recipient",
                ])
                .arg(&public)
                .arg("--out")
                .arg(&file)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if r.below(3) == 0 {
                std::thread::sleep(r.millis(0, 800));
                let _ = child.kill();
                let _ = child.wait();
                bk.killed.push(file);
                continue;
            }
            let o = child.wait_with_output().unwrap();
            if o.status.success() {
                let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
                let n = v["counts"]["records"].as_u64().expect("counts.records");
                bk.made.push((file, n, t0));
            } else {
                let err = String::from_utf8_lossy(&o.stderr).into_owned();
                if err.contains("was destroyed while the backup ran")
                    && err.contains("run it again")
                {
                    assert!(!file.exists(), "a refused backup left {}", file.display());
                    bk.raced += 1;
                } else {
                    bk.failed.push(err);
                }
            }
            std::thread::sleep(r.millis(100, 600));
        }
        bk
    })
}

/// Every finished backup decrypts whole and holds at least the records
/// acknowledged before it started; a killed run leaves nothing under the
/// backup's name but a whole backup (it was killed after the rename), and
/// at most its `.partial` file beside it.
fn check_backups(cli: &Cli, bk: &Backups, book: &Book, name: &str) {
    assert!(
        bk.failed.is_empty(),
        "{name}: `backup create` failed beside the load:\n{}",
        bk.failed.join("\n")
    );
    assert!(
        bk.made.len() >= 2 && !bk.killed.is_empty(),
        "{name}: too few backups ({} made, {} killed)",
        bk.made.len(),
        bk.killed.len()
    );
    let made: HashSet<&Path> = bk.made.iter().map(|(f, _, _)| f.as_path()).collect();
    let mut partial = 0;
    let mut to_check: Vec<(PathBuf, Option<(u64, Instant)>)> = Vec::new();
    for e in std::fs::read_dir(&bk.dir).unwrap() {
        let p = e.unwrap().path();
        let f = p.file_name().unwrap().to_string_lossy().into_owned();
        if f.starts_with('.') && f.ends_with(".partial") {
            partial += 1;
        } else if f.ends_with(".pvb") && !made.contains(p.as_path()) {
            assert!(bk.killed.contains(&p), "{name}: unexpected file {f}");
            // Killed between the rename and its exit: must be whole.
            to_check.push((p, None));
        } else {
            assert!(
                f.ends_with(".pvb") || f.starts_with("backup."),
                "{name}: unexpected file {f} among the backups"
            );
        }
    }
    assert!(partial <= bk.killed.len());
    // The finished ones: the last three and two others.
    let k = bk.made.len();
    for (i, (f, n, t0)) in bk.made.iter().enumerate() {
        if i + 3 >= k || i % (k / 2).max(1) == 0 {
            to_check.push((f.clone(), Some((*n, *t0))));
        }
    }
    for (f, expect) in &to_check {
        let (code, out, err) = common::run(
            cli.cmd()
                .args(["--json", "backup", "verify", "--key"])
                .arg(&bk.key)
                .arg(f),
        );
        assert_eq!(code, 0, "{name}: {} does not verify: {err}", f.display());
        let v: Value = serde_json::from_str(&out).unwrap();
        let Some((n, t0)) = expect else { continue };
        assert_eq!(v["counts"]["records"].as_u64(), Some(*n), "{out}");
        let acked: u64 = book
            .events
            .iter()
            .filter(|e| e.ok() && e.end < *t0)
            .map(|e| e.created as u64)
            .sum();
        assert!(
            *n >= acked,
            "{name}: {} holds {n} records, but {acked} were acknowledged before it began",
            f.display()
        );
    }
    eprintln!(
        "{name}: {} backups made beside the load, {} runs killed ({partial} left a .partial file), {} refused (a key version destroyed meanwhile); {} verified with the key",
        bk.made.len(),
        bk.killed.len(),
        bk.raced,
        to_check.len()
    );
}

// ------------------------------------------------------------ PostgreSQL down

/// Creates `n` records in bulk (acknowledged: in `book`).
fn seed_records(api: &mut Api, book: &mut Book, r: &mut Rng, n: usize) {
    let mut k = 0;
    while k < n {
        let docs: Vec<Value> = (0..200.min(n - k)).map(|i| patient(99, k + i, r)).collect();
        docs.iter().for_each(|d| book.sent(d));
        let (c, v) = api.call(
            "POST",
            &format!("/v1/records/{COLL}/bulk"),
            Some(&json!({ "records": docs })),
        );
        assert_eq!(c, 201, "{v}");
        for (id, d) in v["ids"].as_array().unwrap().iter().zip(docs) {
            book.recs.insert(
                id.as_str().unwrap().to_owned(),
                Rec {
                    acked: d,
                    pending: Vec::new(),
                },
            );
        }
        k += 200;
    }
}

/// Crashes PostgreSQL (immediate stop) for `down`, then starts it again.
fn pg_outage(pg: &phivault_testpg::PgCluster, down: Duration) -> (Instant, Instant) {
    let t_down = Instant::now();
    pg.stop(false); // immediate: a crash, recovered from the WAL at start
    std::thread::sleep(down.saturating_sub(t_down.elapsed()));
    pg.pg_start();
    (t_down, Instant::now())
}

#[test]
fn postgres_restart_under_load() {
    let _g = serial();
    let Some(b) = pg_backend("") else {
        return;
    };
    let pg = b.pg.as_ref().unwrap();
    let seed = seed("postgres restart under load");
    let t_all = Instant::now();
    let mut node = start(&b);
    let mut api = Api::new(&b, &node);
    setup(&mut api);
    let key = pin_audit_key(&b);
    // Phases (`cycle`): 0 before, 1 a crash of ~1 s, 2 after it, 3 an
    // outage longer than the pool's 5 s acquire timeout, 4 after it.
    let load = Arc::new(Load {
        dir: b.dir.clone(),
        addr: RwLock::new(Some(node.addr.clone())),
        cycle: AtomicUsize::new(0),
        acked_now: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        coll_rotate_every: None,
        destroy_from: usize::MAX,
    });
    let workers = Workers::spawn(&load, 3, seed);
    std::thread::sleep(Duration::from_secs(1));
    load.cycle.store(1, Ordering::Release);
    let (t_down, t_up) = pg_outage(pg, Duration::from_secs(1));
    load.cycle.store(2, Ordering::Release);
    std::thread::sleep(Duration::from_secs(2));
    load.cycle.store(3, Ordering::Release);
    // (8 s: well past the pool's 5 s, even when `pg_ctl stop` is slow.)
    let (t_down2, t_up2) = pg_outage(pg, Duration::from_secs(8));
    load.cycle.store(4, Ordering::Release);
    std::thread::sleep(Duration::from_secs(3));
    let book = workers.finish();
    let t_end = Instant::now();
    assert!(
        node.alive(),
        "the server exited while PostgreSQL was down:\n{}",
        tail(&b.log)
    );
    eprintln!("postgres restart: {}", histogram(&book));

    let mut bad = Vec::new();
    let (mut refused, mut slowest) = (0, Duration::ZERO);
    for e in &book.events {
        let took = e.end.duration_since(e.start);
        slowest = slowest.max(took);
        if took > HANG {
            bad.push(format!(
                "phase {} {} took {took:.1?} (a hang), then {} {}",
                e.cycle, e.op, e.status, e.msg
            ));
        }
        match e.status {
            200..=299 => {}
            // Only a 503 that names the cause: the database (records), or
            // the keystore's document in PostgreSQL (rotations).
            503 if e.msg.contains("database") || e.msg.contains("postgres://") => refused += 1,
            s => bad.push(format!(
                "phase {} {} → {s} {} ({took:.1?})",
                e.cycle, e.op, e.msg
            )),
        }
    }
    let first_ack = |after: Instant| {
        book.events
            .iter()
            .filter(|e| e.write && e.ok() && e.start >= after)
            .map(|e| e.end - after)
            .min()
    };
    let (back1, back2) = (first_ack(t_up), first_ack(t_up2));
    eprintln!(
        "postgres restart: outages of {:.1?} and {:.1?}; {refused} clean 503s; slowest request {slowest:.1?}; first acknowledged write {back1:.1?} and {back2:.1?} after PostgreSQL was back",
        t_up - t_down,
        t_up2 - t_down2,
    );
    assert!(
        bad.is_empty(),
        "failures that are not a clean 503 naming the database, or hangs:\n{}\nthe server's log ends:\n{}",
        bad[..bad.len().min(20)].join("\n"),
        tail(&b.log)
    );
    // The short outage is within the pool's patience: a write it caught
    // either waited for the database and succeeded, or (its connection
    // cut mid-query) got a clean 503. Either way one was caught.
    assert!(
        book.events.iter().any(|e| e.write
            && e.cycle == 1
            && e.start < t_up
            && e.end > t_down
            && (e.status == 503 || e.end >= t_up)),
        "no write was caught by the short outage: it was not exercised"
    );
    assert!(
        book.events
            .iter()
            .any(|e| e.write && e.cycle == 3 && e.status == 503),
        "no write was refused in the long outage: it was not exercised"
    );
    // Requests that arrive while the database is away wait for the pool,
    // then give up cleanly after its 5 s acquire timeout.
    assert!(
        book.events
            .iter()
            .any(|e| e.cycle == 3 && e.status == 503 && e.end - e.start >= Duration::from_secs(4)),
        "no request waited out the long outage"
    );
    for back in [back1, back2] {
        let back = back.expect("no write acknowledged after PostgreSQL came back");
        assert!(
            back < Duration::from_secs(10),
            "writes resumed only {back:.1?} after PostgreSQL was back"
        );
    }
    let late = book
        .events
        .iter()
        .filter(|e| e.start >= t_end - Duration::from_secs(2) && !e.ok())
        .count();
    assert_eq!(
        late, 0,
        "requests still fail 1 s after PostgreSQL came back"
    );

    // The same server, never restarted, serves everything acknowledged.
    verify(&mut api, &book, b.name);
    drop(api);
    node.stop();
    audit_verifies(&b, &key);
    eprintln!("postgres restart test took {:.1?}", t_all.elapsed());
}

/// A rewrap job running when PostgreSQL restarts must finish once it is
/// back (the job runner resumes running jobs every 2 s). It does not yet:
/// the runner marks a job `failed` on any error, a transient
/// `StoreError::Unavailable` included.
#[test]
// Regression: a transient database outage used to mark a running rewrap
// job failed for good (records.rs, run_pending_jobs).
fn postgres_restart_during_a_rewrap_job() {
    let _g = serial();
    // Small, paced rewrap pages: the job is still running at the outage.
    let Some(b) = pg_backend("[records]\njob_batch = 50\njob_pause_ms = 40\n") else {
        return;
    };
    let pg = b.pg.as_ref().unwrap();
    let mut r = Rng(seed("postgres restart during a rewrap job"));
    let node = start(&b);
    let mut api = Api::new(&b, &node);
    setup(&mut api);
    let key = pin_audit_key(&b);
    let mut book = Book::default();
    seed_records(&mut api, &mut book, &mut r, 1000);
    let (c, v) = api.call(
        "POST",
        &format!("/v1/collections/{COLL}/rotate"),
        Some(&json!({ "destroy_old": true })),
    );
    assert_eq!(c, 202, "{v}");
    let job = v["rewrap_job"].as_str().unwrap().to_owned();
    // The server picks new jobs up every 2 s.
    let t0 = Instant::now();
    loop {
        let (c, j) = api.call("GET", &format!("/v1/jobs/{job}"), None);
        assert!(c == 200 && j["state"] == "running", "{c} {j}");
        if j["done"].as_u64() > Some(0) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the job does not run: {j}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pg_outage(pg, Duration::from_secs(1));
    wait_for_jobs(&b);
    verify(&mut api, &book, b.name);
    drop(api);
    node.stop();
    audit_verifies(&b, &key);
}

// ------------------------------------------------------------ disk full

/// A size-limited tmpfs, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` at `at`; `None` (skipped, or a failure under
/// PHIVAULT_REQUIRE_ALL_TESTS) when that is not allowed (needs root).
fn tmpfs(at: &Path, size: &str) -> Option<Tmpfs> {
    std::fs::create_dir_all(at).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("PHIVAULT_REQUIRE_ALL_TESTS").is_none(),
            "mounting a tmpfs failed (CI runs as root); PHIVAULT_REQUIRE_ALL_TESTS forbids skipping"
        );
        eprintln!("SKIPPED disk_full_on_the_sqlite_data_dir: mounting a tmpfs needs root");
        return None;
    }
    Some(Tmpfs(at.to_path_buf()))
}

fn integrity_check(db: &Path) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn disk_full_on_the_sqlite_data_dir() {
    let _g = serial();
    let t_all = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("fs");
    // The trail's group-commit journal is written in full at start (8 MiB
    // by default): a small one leaves this 16 MiB disk to the test.
    std::fs::write(
        tmp.path().join("config.toml"),
        "[audit]\njournal_bytes = 1048576\n",
    )
    .unwrap();
    let b = Backend {
        name: "sqlite on a full disk",
        dir: fs.join("data"),
        config: tmp.path().join("config.toml"),
        storage_url: None,
        log: tmp.path().join("server.log"),
        pg: None,
        _tmp: tmp,
    };
    // Dropped before `b` (which removes the folder), after the node.
    let Some(_mnt) = tmpfs(&fs, "16m") else {
        return;
    };
    let mut r = Rng(seed("disk full"));
    let mut node = start(&b);
    let mut api = Api::new(&b, &node);
    setup(&mut api);
    let key = pin_audit_key(&b);
    // Space to give back later: half the disk, as SQLite needs room to
    // checkpoint its WAL into the database once it can.
    let filler = fs.join("filler");
    std::fs::write(&filler, vec![0u8; 8 << 20]).unwrap();

    let mut book = Book::default();
    let mut n = 0;
    let mut write = |api: &mut Api, book: &mut Book, k: usize| {
        let docs: Vec<Value> = (0..k)
            .map(|_| {
                n += 1;
                patient(7, n, &mut r)
            })
            .collect();
        docs.iter().for_each(|d| book.sent(d));
        let (c, v) = api.call(
            "POST",
            &format!("/v1/records/{COLL}/bulk"),
            Some(&json!({ "records": docs })),
        );
        if c == 201 {
            for (id, d) in v["ids"].as_array().unwrap().iter().zip(docs) {
                book.recs.insert(
                    id.as_str().unwrap().to_owned(),
                    Rec {
                        acked: d,
                        pending: Vec::new(),
                    },
                );
            }
        }
        (c, v["errors"][0].as_str().unwrap_or_default().to_owned())
    };
    // Fill the disk; then keep writing a little (small and large writes).
    let mut failures = Vec::new();
    for i in 0..2000 {
        let k = if failures.is_empty() {
            100
        } else {
            [1, 100][i % 2]
        };
        let (c, msg) = write(&mut api, &mut book, k);
        if c != 201 {
            failures.push((c, msg));
            if failures.len() >= 12 {
                break;
            }
        }
    }
    let acked_full = book.recs.len();
    eprintln!(
        "disk full: {acked_full} records acknowledged before the disk filled; then {:?}",
        failures
    );
    assert!(!failures.is_empty(), "the disk never filled");
    for (c, msg) in &failures {
        let m = msg.to_lowercase();
        assert!(
            (*c == 507 || *c == 503) && (m.contains("disk") || m.contains("space")),
            "a full disk must answer 507 or 503 saying so, got {c}: {msg}"
        );
    }
    assert!(
        node.alive(),
        "the server died on a full disk:\n{}",
        tail(&b.log)
    );
    let (c, v) = api.call("GET", "/v1/sys/health", None);
    assert_eq!(c, 200, "{v}");
    // Reads while full: served, or refused clearly (the audit trail, on
    // the same disk, fails closed).
    let ids: Vec<&String> = book.recs.keys().take(100).collect();
    let (c, v) = api.call(
        "POST",
        &format!("/v1/records/{COLL}/bulk-get"),
        Some(&json!({ "ids": ids })),
    );
    assert!(
        c == 200 || (c == 503 && v.to_string().contains("space")),
        "{c} {v}"
    );
    eprintln!("disk full: a read while full answered {c}");

    // Space again: writes succeed again (the first may still be refused
    // while the audit trail recovers).
    std::fs::remove_file(&filler).unwrap();
    let mut recovered = None;
    for i in 0..30 {
        let (c, msg) = write(&mut api, &mut book, 20);
        if c == 201 {
            recovered = Some(i);
            break;
        }
        assert!(c == 503 || c == 507, "{c} {msg}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered = recovered.expect("writes did not resume after space was freed");
    for _ in 0..3 {
        let (c, msg) = write(&mut api, &mut book, 5);
        assert_eq!(c, 201, "{msg}");
    }
    eprintln!("disk full: writes resumed after {recovered} refusals");
    verify(&mut api, &book, b.name);
    drop(api);
    node.stop();
    for db in ["records.db", "subject-keys.db"] {
        assert_eq!(integrity_check(&b.dir.join(db)), "ok", "{db}");
    }
    audit_verifies(&b, &key);
    eprintln!("disk full test took {:.1?}", t_all.elapsed());
}

// ------------------------------------------------------------ races with rotation

/// Transit encrypt while the key rotates: every request must succeed. It
/// does not yet: `encrypt_ring` reads the primary version, then derives
/// the key for it under a fresh look at the keystore; a rotation in
/// between makes the derive refuse ("version N of 'transit/…' is not the
/// primary", a 400). Found by the kill -9 test above (1 in ~7000
/// encryptions there).
#[test]
// Regression: a transit encrypt racing a rotation used to fail with 400
// "not the primary" (Transit::encrypt_ring now reads the primary again).
fn transit_encrypt_races_rotation() {
    let _g = serial();
    let b = sqlite_backend("");
    let node = start(&b);
    let mut api = Api::new(&b, &node);
    setup(&mut api);
    let stop = Arc::new(AtomicBool::new(false));
    let encrypters: Vec<_> = (0..3)
        .map(|_| {
            let (dir, addr, stop) = (b.dir.clone(), node.addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let rt = runtime();
                let mut c = client(&dir, &addr);
                let mut refused = Vec::new();
                let body = json!({ "plaintext": "UFQtMC0wMDAwMDE=" });
                while !stop.load(Ordering::Acquire) {
                    let (s, v) = rt
                        .block_on(c.call(
                            "POST",
                            &format!("/v1/transit/encrypt/{TKEY}"),
                            &[],
                            Some(&body),
                        ))
                        .unwrap();
                    if s != 200 {
                        refused.push(format!("{s} {v}"));
                    }
                }
                refused
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut rotations = 0;
    while t0.elapsed() < Duration::from_secs(5) {
        let (c, v) = api.call(
            "POST",
            &format!("/v1/transit/keys/{TKEY}/rotate"),
            Some(&json!({})),
        );
        assert_eq!(c, 200, "{v}");
        rotations += 1;
    }
    stop.store(true, Ordering::Release);
    let refused: Vec<String> = encrypters
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        refused.is_empty(),
        "{} of the encryptions during {rotations} rotations failed, e.g. {}",
        refused.len(),
        refused[0]
    );
}
