//! Terminal output: progress bars, prompts, warnings.

use crate::cli::Global;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use zeroize::Zeroizing;

/// Files smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// A progress bar on stderr, only when a person is watching: stderr is a
/// terminal and output is not piped. A file of known size under 16 MiB gets
/// none; input of unknown size (stdin) gets a byte counter with its rate.
pub fn progress(g: &Global, total: Option<u64>, to_stdout: bool) -> Option<ProgressBar> {
    if g.quiet
        || g.json
        || !std::io::stderr().is_terminal()
        || (to_stdout && !std::io::stdout().is_terminal())
    {
        return None;
    }
    match total {
        Some(t) if t < PROGRESS_MIN_BYTES => None,
        Some(t) => {
            let bar = ProgressBar::new(t);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            Some(bar)
        }
        None => {
            let bar = ProgressBar::no_length();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec} {elapsed}")
                    .expect("template"),
            );
            Some(bar)
        }
    }
}

/// A progress callback that moves `bar`, if there is one.
pub fn ticker(bar: &Option<ProgressBar>) -> impl FnMut(u64) + '_ {
    move |done| {
        if let Some(b) = bar {
            b.set_position(done)
        }
    }
}

/// A secret from the environment: `NAME`, or the file named by
/// `NAME_FILE` (trailing newline dropped), for secrets mounted as files.
pub fn env_secret(env: &str) -> anyhow::Result<Option<Zeroizing<String>>> {
    if let Ok(v) = std::env::var(env) {
        return Ok(Some(Zeroizing::new(v)));
    }
    if let Some(p) = std::env::var_os(format!("{env}_FILE")) {
        let v = Zeroizing::new(std::fs::read_to_string(&p).map_err(|e| {
            anyhow::anyhow!(
                "reading {env}_FILE ({}): {e}",
                std::path::Path::new(&p).display()
            )
        })?);
        return Ok(Some(Zeroizing::new(
            v.trim_end_matches(['\r', '\n']).to_string(),
        )));
    }
    Ok(None)
}

/// Reads a secret: from `env` (or `env_FILE`) if set, else a no-echo
/// prompt on a terminal, else one line of stdin.
pub fn read_secret(prompt: &str, env: &str) -> anyhow::Result<Zeroizing<String>> {
    if let Some(v) = env_secret(env)? {
        return Ok(v);
    }
    if std::io::stdin().is_terminal() {
        return Ok(Zeroizing::new(rpassword::prompt_password(prompt)?));
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line)?;
    let t = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
    anyhow::ensure!(!t.is_empty(), "no input on stdin; {prompt}");
    Ok(t)
}

/// The dev-mode warning, printed at every start of a dev keystore.
pub fn dev_warning(g: &Global) {
    if g.quiet {
        return;
    }
    let mut e = std::io::stderr();
    let (on, off) = if e.is_terminal() {
        ("\x1b[1;31m", "\x1b[0m")
    } else {
        ("", "")
    };
    let _ = writeln!(
        e,
        "{on}WARNING: DEV MODE.{off} The unseal key of {} is stored in plaintext beside the data.\n\
         Anyone who can read that folder can decrypt everything. Never use dev mode for real PHI.",
        g.data_dir.display()
    );
}
