//! `phivault audit …`: verify, search, hash, tail, export, report, prove.
//! Reads the trail's files directly (while a server writes them); only
//! `hash`, `--subject` and `--record` need the keystore (the audit key).

use crate::cli::{AuditArgs, AuditCommand, AuditFilter, Global};
use anyhow::{Context, Result, bail};
use phivault_audit::query::{self, Entry, Filter};
use phivault_audit::verify::{self, VerifyOptions};
use phivault_audit::{Event, Outcome};
use phivault_core::audit::merkle;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Records a CLI key or CA lifecycle event (and whether it worked) in the
/// data dir's audit trail, through its inbox: a running server appends it
/// within seconds, otherwise the next start does. Never fails the command.
pub fn cli_event<T>(
    g: &Global,
    kind: phivault_audit::Kind,
    op: &str,
    resource: Option<String>,
    detail: Value,
    result: &Result<T>,
) {
    let mut ev = Event::new(kind, op).detail(detail);
    ev.principal = Some(format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    ));
    ev.resource = resource;
    ev.node = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned());
    let high = op.contains("destroy") || op.contains("revoke") || op.contains("restore");
    ev.severity = if high {
        phivault_audit::Severity::High
    } else {
        phivault_audit::Severity::Info
    };
    if result.is_err() {
        ev.outcome = Outcome::Error;
        ev.severity = ev.severity.max(phivault_audit::Severity::Warn);
    }
    let dir = g.data_dir.join("audit");
    if let Err(e) = phivault_audit::inbox::submit(&dir, &ev) {
        eprintln!("phivault: warning: this {op} is not in the audit trail: {e}");
    }
}

/// [`cli_event`] for the agent's seal and unseal; passes the result on.
pub fn seal_event<T>(g: &Global, op: &str, r: Result<T>) -> Result<T> {
    cli_event(g, phivault_audit::Kind::Seal, op, None, json!({}), &r);
    r
}

fn dir(g: &Global, a: &AuditArgs) -> PathBuf {
    a.audit_dir
        .clone()
        .unwrap_or_else(|| g.data_dir.join("audit"))
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Verifier keys from --key (strings or files), else the log's log.pub.
fn keys(dir: &Path, given: &[String]) -> Result<Vec<phivault_core::audit::note::NoteVerifier>> {
    let mut text = String::new();
    if given.is_empty() {
        let p = dir.join("log.pub");
        text = std::fs::read_to_string(&p).with_context(|| {
            format!("reading {} (no key yet: the server writes it when it first unseals); or give --key", p.display())
        })?;
    }
    for k in given {
        if Path::new(k).exists() {
            text += &std::fs::read_to_string(k).with_context(|| format!("reading key file {k}"))?;
        } else {
            text += k;
        }
        text.push('\n');
    }
    Ok(verify::parse_keys(&text)?)
}

/// The audit id key, from the keystore (dev, PHIVAULT_PASSPHRASE, or the agent).
fn id_key(g: &Global, file: &crate::config::FileConfig) -> Result<phivault_core::crypto::HmacKey> {
    let svc = crate::custody::service(g, file)
        .context("--subject, --record and `audit hash` need the audit key from the keystore")?;
    phivault_server::audit::id_key(&phivault_keystore::service::ServiceKeys(svc.as_ref()))
        .map_err(anyhow::Error::msg)
}

fn filter(g: &Global, f: &AuditFilter, file: &crate::config::FileConfig) -> Result<Filter> {
    let now = now_ms();
    let when = |s: &Option<String>, what: &str| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| {
                query::parse_when(v, now).with_context(|| {
                    format!(
                        "{what} '{v}': use RFC 3339, a date (2026-12-01) or a span (90m, 24h, 30d)"
                    )
                })
            })
            .transpose()
    };
    let outcome = match f.outcome.as_deref() {
        None => None,
        Some("ok") => Some(Outcome::Ok),
        Some("denied") => Some(Outcome::Denied),
        Some("error") => Some(Outcome::Error),
        Some(o) => bail!("--outcome must be ok, denied or error, not '{o}'"),
    };
    let mut subject = f.subject_hash.clone();
    let mut record = f.record_hash.clone();
    if f.subject.is_some() || f.record.is_some() {
        let k = id_key(g, file)?;
        if let Some(s) = &f.subject {
            subject = Some(phivault_server::audit::id_hash(&k, "subject", s));
        }
        if let Some(r) = &f.record {
            record = Some(phivault_server::audit::id_hash(&k, "record", r));
        }
    }
    Ok(Filter {
        principal: f.principal.clone(),
        op: f.op.clone(),
        outcome,
        since_ms: when(&f.since, "--since")?,
        until_ms: when(&f.until, "--until")?,
        subject,
        record,
        resource: f.resource.clone(),
        ..Default::default()
    })
}

fn collect(dir: &Path, f: &Filter) -> Result<Vec<Entry>> {
    let mut v = Vec::new();
    query::for_each(dir, 0, |e| {
        if f.matches(&e.event) {
            v.push(e);
        }
        true
    })?;
    Ok(v)
}

fn line(e: &Entry) -> String {
    let ev = &e.event;
    let mut s = format!(
        "{:>7}  {}  {:<6} {:<22} {:<7}",
        e.seq,
        ev.time,
        format!("{:?}", ev.severity).to_lowercase(),
        ev.op,
        format!("{:?}", ev.outcome).to_lowercase()
    );
    for (k, v) in [
        ("by", ev.principal.as_deref()),
        ("on", ev.resource.as_deref()),
        ("purpose", ev.purpose.as_deref()),
        ("reason", ev.reason.as_deref()),
        ("peer", ev.peer.as_deref()),
    ] {
        if let Some(v) = v {
            s += &format!(" {k}={v}");
        }
    }
    if let Some(st) = ev.status {
        s += &format!(" status={st}");
    }
    if !ev.subjects.is_empty() {
        s += &format!(" subjects={}", ev.subjects.len());
    }
    if let Some(b) = &ev.break_glass {
        s += &format!(" BREAK-GLASS=\"{b}\"");
    }
    s
}

fn entry_json(e: &Entry) -> Value {
    let mut v = serde_json::to_value(&e.event).expect("serializes");
    v["seq"] = json!(e.seq);
    v
}

pub fn run(g: &Global, a: &AuditArgs, file: &crate::config::FileConfig) -> Result<ExitCode> {
    let d = dir(g, a);
    match &a.command {
        AuditCommand::Pull { node, to } => pull(g, file, node.as_deref(), to.as_deref()),
        AuditCommand::Verify { key, witness } => verify_cmd(g, &d, key, witness),
        AuditCommand::Search { filter: f, limit } => {
            let f = filter(g, f, file)?;
            let v = collect(&d, &f)?;
            let shown = &v[v.len().saturating_sub(*limit)..];
            if g.json {
                for e in shown {
                    println!("{}", entry_json(e));
                }
            } else {
                for e in shown {
                    println!("{}", line(e));
                }
                if !g.quiet {
                    eprintln!(
                        "{} matching entries{}",
                        v.len(),
                        if v.len() > shown.len() {
                            format!(" ({} shown; --limit)", shown.len())
                        } else {
                            String::new()
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Hash { value, kind } => {
            if kind != "subject" && kind != "record" {
                bail!("--kind must be subject or record");
            }
            let h = phivault_server::audit::id_hash(&id_key(g, file)?, kind, value);
            if g.json {
                println!("{}", json!({ "kind": kind, "hash": h }));
            } else {
                println!("{h}");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Tail { follow, lines } => tail(g, &d, *follow, *lines),
        AuditCommand::Export {
            format,
            filter: f,
            output,
        } => {
            let f = filter(g, f, file)?;
            let mut out: Box<dyn Write> = match output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            let mut n = 0u64;
            let mut err = None;
            query::for_each(&d, 0, |e| {
                if !f.matches(&e.event) {
                    return true;
                }
                let l = match format.as_str() {
                    "syslog" => query::syslog_line(&e, &host),
                    _ => entry_json(&e).to_string(),
                };
                n += 1;
                match writeln!(out, "{l}") {
                    Ok(()) => true,
                    Err(e) => {
                        err = Some(e);
                        false
                    }
                }
            })?;
            if !matches!(format.as_str(), "jsonl" | "syslog") {
                bail!("--format must be jsonl or syslog");
            }
            if let Some(e) = err {
                return Err(e).context("writing the export");
            }
            out.flush()?;
            if !g.quiet {
                eprintln!("exported {n} entries ({format})");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Report {
            filter: f,
            denied,
            break_glass,
            format,
            output,
        } => {
            let mut fl = filter(g, f, file)?;
            fl.denied = *denied;
            fl.break_glass = *break_glass;
            let v = collect(&d, &fl)?;
            let title = if let Some(s) = &f.subject {
                format!("Access to data subject {}", mask(s))
            } else if *denied {
                "Refused attempts".into()
            } else if *break_glass {
                "Break-glass (emergency) accesses".into()
            } else {
                "Audit activity".into()
            };
            let text = match (format.as_str(), g.json) {
                ("json", _) | (_, true) => report_json(&title, &v).to_string(),
                ("table", _) => report_table(&title, &v),
                ("html", _) => crate::audit_report::html(&title, &v),
                (other, _) => bail!("--format must be table, json or html, not '{other}'"),
            };
            match output {
                Some(p) => {
                    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
                    if !g.quiet {
                        eprintln!("wrote {} ({} entries)", p.display(), v.len());
                    }
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Prove { index, from, key } => prove(g, &d, *index, *from, key),
        AuditCommand::Pubkey => {
            let p = d.join("log.pub");
            let k = std::fs::read_to_string(&p).with_context(|| {
                format!(
                    "reading {} (written when the server first unseals)",
                    p.display()
                )
            })?;
            print!("{k}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Checkpoint => {
            let p = d.join("checkpoint");
            let n = std::fs::read_to_string(&p).with_context(|| {
                format!("reading {} (signed once the server unseals)", p.display())
            })?;
            print!("{n}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Shows a subject id without revealing it in a report heading.
fn mask(s: &str) -> String {
    let n = s.chars().count();
    let tail: String = s.chars().skip(n.saturating_sub(2)).collect();
    format!("{}{tail}", "*".repeat(n.saturating_sub(2)))
}

fn report_json(title: &str, v: &[Entry]) -> Value {
    json!({
        "title": title,
        "entries": v.len(),
        "principals": summary(v, |e| e.principal.clone()),
        "purposes": summary(v, |e| e.purpose.clone()),
        "operations": summary(v, |e| Some(e.op.clone())),
        "events": v.iter().map(entry_json).collect::<Vec<_>>(),
    })
}

/// Counts by a key, largest first.
pub fn summary(v: &[Entry], key: impl Fn(&Event) -> Option<String>) -> Vec<(String, usize)> {
    let mut m = std::collections::BTreeMap::<String, usize>::new();
    for e in v {
        if let Some(k) = key(&e.event) {
            *m.entry(k).or_default() += 1;
        }
    }
    let mut out: Vec<_> = m.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

fn report_table(title: &str, v: &[Entry]) -> String {
    let mut s = format!("{title}: {} entries\n\n", v.len());
    s += &format!(
        "{:<24}  {:<34}  {:<16}  {:<8}  {:<7}  {}\n",
        "TIME", "PRINCIPAL", "OPERATION", "PURPOSE", "RESULT", "RESOURCE"
    );
    for e in v {
        let ev = &e.event;
        s += &format!(
            "{:<24}  {:<34}  {:<16}  {:<8}  {:<7}  {}{}\n",
            ev.time,
            ev.principal.as_deref().unwrap_or("-"),
            ev.op,
            ev.purpose.as_deref().unwrap_or("-"),
            ev.status.map_or_else(
                || format!("{:?}", ev.outcome).to_lowercase(),
                |c| c.to_string()
            ),
            ev.resource.as_deref().unwrap_or("-"),
            ev.break_glass
                .as_deref()
                .map(|b| format!("  BREAK-GLASS: {b}"))
                .unwrap_or_default()
        );
    }
    s
}

/// `audit pull`: a node's mirrored trail from PostgreSQL into a folder.
fn pull(
    g: &Global,
    file: &crate::config::FileConfig,
    node: Option<&str>,
    to: Option<&Path>,
) -> Result<ExitCode> {
    let storage = crate::custody::storage(file)?;
    let Some(pg) = &storage.postgres else {
        anyhow::bail!(
            "audit pull reads the trails that nodes on PostgreSQL mirror; set storage.url or PHIVAULT_STORAGE_URL"
        );
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = phivault_store::postgres::PgStore::connect(pg).await?;
        let nodes = phivault_store::postgres::audit_nodes(store.pool()).await?;
        let (Some(node), Some(to)) = (node, to) else {
            if g.json {
                println!("{}", serde_json::json!({ "nodes": nodes }));
            } else {
                for n in &nodes {
                    println!("{n}");
                }
                if nodes.is_empty() {
                    eprintln!("no node has mirrored an audit trail into {} yet", storage.target);
                } else {
                    eprintln!("pull one with: phivault audit pull --node NODE --to FOLDER");
                }
            }
            return Ok(ExitCode::SUCCESS);
        };
        if !nodes.iter().any(|n| n == node) {
            anyhow::bail!(
                "no audit trail of node '{node}' in {}; nodes: {}",
                storage.target,
                nodes.join(", ")
            );
        }
        if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!("{} is not empty; pull into a new folder", to.display());
        }
        std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        let n = phivault_store::postgres::pull_audit(store.pool(), node, to).await?;
        if g.json {
            println!("{}", serde_json::json!({ "node": node, "to": to, "files": n }));
        } else {
            println!(
                "Pulled {n} files of node {node}'s audit trail into {}; verify it with `phivault audit --audit-dir {} verify --key <the log's key>`",
                to.display(),
                to.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn verify_cmd(g: &Global, d: &Path, key: &[String], witness: &[PathBuf]) -> Result<ExitCode> {
    let keys = keys(d, key)?;
    if key.is_empty() && !g.quiet && !g.json {
        eprintln!(
            "note: verifying with the key in {}; an attacker who can rewrite the log can rewrite that file too: pin the key with --key",
            d.join("log.pub").display()
        );
    }
    let r = verify::verify(&VerifyOptions {
        dir: d.to_path_buf(),
        keys,
        witnesses: witness.to_vec(),
    })?;
    if g.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let mbps = r.bytes as f64 / 1e6 / r.seconds.max(1e-9);
        println!(
            "{} entries ({} pruned by retention), {} checkpoints{} checked in {:.2}s ({mbps:.0} MB/s)",
            r.entries,
            r.pruned,
            r.checkpoints,
            if r.witness_checkpoints > 0 {
                format!(" + {} witness", r.witness_checkpoints)
            } else {
                String::new()
            },
            r.seconds
        );
        if r.journal > 0 {
            println!(
                "{} of them read from the group-commit journal: a power loss took them from the newest segment after they were acknowledged; the server's next start appends them to it again",
                r.journal
            );
        }
        if r.journal_foreign {
            println!(
                "the group-commit journal holds batches of another trail (a journal copied from another node or folder): none of them were read"
            );
        }
        if let Some(c) = &r.latest {
            println!(
                "latest checkpoint: size {} root {} ({}){}",
                c.size,
                &c.root[..16],
                c.written.as_deref().unwrap_or("?"),
                if r.unsigned_tail > 0 {
                    format!("; {} newer entries not yet signed", r.unsigned_tail)
                } else {
                    String::new()
                }
            );
        }
        for f in &r.findings {
            println!("{:?}: {}", f.kind, f.message);
        }
        if let Some(i) = r.first_bad_index {
            println!("FIRST BAD INDEX: {i}");
        }
        println!(
            "{}",
            if r.ok {
                "OK: the audit trail verifies"
            } else {
                "FAILED: the audit trail does not verify"
            }
        );
    }
    Ok(if r.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn tail(g: &Global, d: &Path, follow: bool, n: usize) -> Result<ExitCode> {
    let mut ring = std::collections::VecDeque::with_capacity(n + 1);
    let mut next = query::for_each(d, 0, |e| {
        ring.push_back(e);
        if ring.len() > n {
            ring.pop_front();
        }
        true
    })?;
    let show = |e: &Entry| {
        if g.json {
            println!("{}", entry_json(e));
        } else {
            println!("{}", line(e));
        }
    };
    ring.iter().for_each(show);
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        next = query::for_each(d, next, |e| {
            show(&e);
            true
        })?;
        let _ = std::io::stdout().flush();
    }
}

fn prove(
    g: &Global,
    d: &Path,
    index: Option<u64>,
    from: Option<u64>,
    key: &[String],
) -> Result<ExitCode> {
    let keys = keys(d, key)?;
    let (cp, note) = verify::latest_checkpoint(d, &keys)?;
    let leaves = verify::read_leaves(d, cp.size)?;
    let b64 = |h: &merkle::Hash| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(h)
    };
    let out = match (index, from) {
        (Some(i), None) => {
            if i >= cp.size {
                bail!(
                    "entry {i} is not covered by the newest checkpoint (size {}); wait for the next one",
                    cp.size
                );
            }
            let proof = merkle::inclusion_proof(&leaves, i, cp.size)?;
            merkle::verify_inclusion(&leaves[i as usize], i, cp.size, &proof, &cp.root)?;
            json!({
                "type": "inclusion", "index": i, "tree_size": cp.size,
                "leaf_hash": b64(&leaves[i as usize]),
                "proof": proof.iter().map(b64).collect::<Vec<_>>(),
                "checkpoint": note,
            })
        }
        (None, Some(m)) => {
            if m == 0 || m > cp.size {
                bail!("--from must be 1..={}", cp.size);
            }
            let proof = merkle::consistency_proof(&leaves, m, cp.size)?;
            let old_root = merkle::root(&leaves[..m as usize]);
            merkle::verify_consistency(m, cp.size, &old_root, &cp.root, &proof)?;
            json!({
                "type": "consistency", "old_size": m, "old_root": b64(&old_root),
                "tree_size": cp.size,
                "proof": proof.iter().map(b64).collect::<Vec<_>>(),
                "checkpoint": note,
            })
        }
        _ => bail!("give --index I (inclusion) or --from SIZE (consistency)"),
    };
    if g.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
        eprintln!("the proof verifies against the newest signed checkpoint");
    }
    Ok(ExitCode::SUCCESS)
}
