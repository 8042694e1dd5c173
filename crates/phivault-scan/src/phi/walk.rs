//! Folders: which files to scan. Symlinks found inside a folder are not
//! followed (a link out of the tree would scan someone else's files, and a
//! loop would never end); a path given by the user is followed, as `find
//! -H` does. Only regular files are opened: a FIFO or a device would block
//! or never end.

use super::{FileReport, Options, io_reason, safe_label};
use std::path::{Path, PathBuf};

/// Matches `path` (with `/` separators) against a glob: `*` matches within
/// one path component, `**` across components, `?` one character.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = path.chars().collect();
    // dp[j]: pattern[..i] matches path[..j].
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; s.len() + 1];
        if p[i] == '*' {
            let double = i + 1 < p.len() && p[i + 1] == '*';
            if double && i + 2 < p.len() && p[i + 2] == '/' {
                // "**/": zero or more whole components (`a/**/b` matches `a/b`).
                let mut any = false;
                for j in 0..=s.len() {
                    next[j] = dp[j] || (j > 0 && any && s[j - 1] == '/');
                    any |= dp[j];
                }
                dp = next;
                i += 3;
                continue;
            }
            // `*` extends a match by any run without `/`; `**` by any run.
            let mut run = false;
            for j in 0..=s.len() {
                if j > 0 && !double && s[j - 1] == '/' {
                    run = false;
                }
                run |= dp[j];
                next[j] = run;
            }
            i += if double { 2 } else { 1 };
        } else {
            for j in 0..s.len() {
                if dp[j] && (p[i] == s[j] || (p[i] == '?' && s[j] != '/')) {
                    next[j + 1] = true;
                }
            }
            i += 1;
        }
        dp = next;
    }
    dp[s.len()]
}

fn excluded(opts: &Options, rel: &str, name: &str) -> bool {
    opts.exclude.iter().any(|g| {
        if g.contains('/') {
            glob_match(g.trim_start_matches("./"), rel)
        } else {
            glob_match(g, name)
        }
    })
}

fn skipped(path: &Path, why: &str) -> FileReport {
    let mut r = FileReport::new(safe_label(&path.to_string_lossy()), 0);
    r.skipped = Some(why.to_string());
    r
}

fn warned(path: &Path, why: String) -> FileReport {
    let mut r = FileReport::new(safe_label(&path.to_string_lossy()), 0);
    r.warning = Some(why);
    r
}

pub(crate) fn collect(paths: &[PathBuf], opts: &Options) -> (Vec<(PathBuf, u64)>, Vec<FileReport>) {
    let mut files = Vec::new();
    let mut other = Vec::new();
    for root in paths {
        // The user's own path is followed even when it is a symlink.
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                other.push(warned(root, format!("cannot read: {}", io_reason(&e))));
                continue;
            }
        };
        if meta.is_file() {
            files.push((root.clone(), meta.len()));
            continue;
        }
        if !meta.is_dir() {
            other.push(skipped(root, "not a regular file"));
            continue;
        }
        let mut stack = vec![(root.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) => {
                    other.push(warned(
                        &dir,
                        format!("cannot list folder: {}", io_reason(&e)),
                    ));
                    continue;
                }
            };
            let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for e in entries {
                let name = e.file_name().to_string_lossy().into_owned();
                let path = e.path();
                let rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                if (!opts.hidden && name.starts_with('.')) || excluded(opts, &rel, &name) {
                    continue;
                }
                let ft = match e.file_type() {
                    Ok(t) => t,
                    Err(err) => {
                        other.push(warned(&path, format!("cannot read: {}", io_reason(&err))));
                        continue;
                    }
                };
                if ft.is_symlink() {
                    other.push(skipped(&path, "symlink (not followed)"));
                } else if ft.is_dir() {
                    subdirs.push((path, rel));
                } else if ft.is_file() {
                    match e.metadata() {
                        Ok(m) => files.push((path, m.len())),
                        Err(err) => {
                            other.push(warned(&path, format!("cannot read: {}", io_reason(&err))))
                        }
                    }
                } else {
                    other.push(skipped(&path, "not a regular file"));
                }
            }
            // Depth first, in name order.
            stack.extend(subdirs.into_iter().rev());
        }
    }
    (files, other)
}

#[cfg(test)]
mod tests {
    use super::glob_match as g;

    #[test]
    fn globs() {
        assert!(g("*.csv", "a.csv"));
        assert!(!g("*.csv", "a.csv.bak"));
        assert!(!g("*.csv", "d/a.csv"));
        assert!(g("**/*.csv", "d/e/a.csv"));
        assert!(g("**/*.csv", "a.csv"));
        assert!(g("exports/**/old-?.csv", "exports/old-1.csv"));
        assert!(g("exports/**/old-?.csv", "exports/x/y/old-1.csv"));
        assert!(!g("exports/*/old-?.csv", "exports/x/y/old-1.csv"));
        assert!(g("node_modules", "node_modules"));
        assert!(g("a**", "a/b/c"));
        assert!(!g("a*", "a/b"));
    }
}
