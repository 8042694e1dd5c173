//! SQLite databases: every text, integer and UTF-8 blob cell of every
//! table, with `table.column` as its context and the rowid as its place.
//!
//! The file is opened read-only (`SQLITE_OPEN_READ_ONLY`, then
//! `query_only`), with `trusted_schema` off so that a hostile schema cannot
//! run functions from views or triggers; if that open fails (a WAL database
//! in a read-only folder) it is retried as `immutable`. Errors are reported
//! by SQLite's error code only: messages can quote SQL or names.

use super::detect::{self, Context};
use super::{Location, Sink, safe_label};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

fn code(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(c) => format!("SQLite error {c:?}"),
        None => "SQLite error".to_string(),
    }
}

fn open(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match Connection::open_with_flags(path, flags) {
        Ok(c)
            if c.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
                .is_ok() =>
        {
            c
        }
        _ => {
            let p = path.to_string_lossy();
            let mut uri = String::from("file:");
            for ch in p.chars() {
                match ch {
                    '%' => uri.push_str("%25"),
                    '?' => uri.push_str("%3f"),
                    '#' => uri.push_str("%23"),
                    c => uri.push(c),
                }
            }
            uri.push_str("?immutable=1");
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(|e| format!("cannot open the database: {}", code(&e)))?
        }
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(2));
    conn.pragma_update(None, "query_only", true)
        .and_then(|_| conn.pragma_update(None, "trusted_schema", false))
        .map_err(|e| format!("cannot open the database: {}", code(&e)))?;
    Ok(conn)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Why a database was not (fully) read.
pub(crate) enum Failure {
    /// It could not be opened or its tables listed (not a database, a
    /// corrupt header or schema): nothing was read.
    Whole(String),
    /// Some tables could not be read; the others were.
    Tables(String),
}

/// Scans every table. An error on one table is noted and the scan goes on
/// with the next.
pub(crate) fn scan(path: &Path, sink: &mut Sink<'_>) -> Result<(), Failure> {
    let conn = open(path).map_err(Failure::Whole)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(|e| Failure::Whole(format!("cannot list tables: {}", code(&e))))?;
    let mut failed = Vec::new();
    for t in &tables {
        if let Err(e) = scan_table(&conn, t, sink) {
            failed.push(format!("{} ({})", safe_label(t), code(&e)));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Tables(format!(
            "cannot read tables: {}",
            failed.join(", ")
        )))
    }
}

fn scan_table(conn: &Connection, table: &str, sink: &mut Sink<'_>) -> rusqlite::Result<()> {
    let q = quote_ident(table);
    let (mut st, has_rowid) = match conn.prepare(&format!("SELECT rowid, * FROM {q}")) {
        Ok(st) => (st, true),
        // WITHOUT ROWID tables and views have no rowid.
        Err(_) => (conn.prepare(&format!("SELECT NULL, * FROM {q}"))?, false),
    };
    let raw_cols: Vec<String> = st.column_names().skip(1).map(|s| s.to_string()).collect();
    let shown_cols: Vec<String> = raw_cols.iter().map(|c| safe_label(c)).collect();
    let shown_table = safe_label(table);
    let clinical =
        detect::is_clinical_name(table) || raw_cols.iter().any(|c| detect::is_clinical_name(c));
    let mut rows = st.query([])?;
    let mut text = String::new();
    while let Some(row) = rows.next()? {
        let rowid = if has_rowid {
            row.get::<_, Option<i64>>(0)?
        } else {
            None
        };
        for (i, col) in raw_cols.iter().enumerate() {
            text.clear();
            match row.get_ref(i + 1)? {
                ValueRef::Text(b) => text.push_str(&String::from_utf8_lossy(b)),
                ValueRef::Integer(n) => text.push_str(&n.to_string()),
                ValueRef::Blob(b) if !b.contains(&0) => match std::str::from_utf8(b) {
                    Ok(s) => text.push_str(s),
                    Err(_) => continue,
                },
                _ => continue,
            }
            let ctx = Context {
                field: Some(col),
                clinical,
            };
            sink.unit(&text, &ctx, |_| Location::Sqlite {
                table: shown_table.clone(),
                column: shown_cols[i].clone(),
                rowid,
            });
        }
    }
    Ok(())
}
