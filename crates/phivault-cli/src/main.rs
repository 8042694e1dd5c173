//! `phivault`: the command-line tool. Thin: it parses arguments, picks the
//! key service (the agent, or in dev mode the keystore in-process), and
//! calls the library crates.
#![forbid(unsafe_code)]

mod at_rest_cmd;
mod audit_cmd;
mod audit_report;
mod backup_cmd;
mod ca_cmd;
mod chart;
mod cli;
mod config;
mod custody;
mod evidence_cmd;
mod evidence_html;
mod files;
mod keys_cmd;
mod phi_cmd;
mod records_cmd;
mod scan_cmd;
mod serve_cmd;
mod ui;

use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Command};
use phivault_core::envelope::EnvelopeError;
use phivault_core::keys::KeyError;
use phivault_core::stream::StreamError;
use phivault_keystore::KeystoreError;
use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the server allocates many small,
/// short-lived JSON values per request; under load glibc's arenas cost
/// about 13% of the server's CPU (`MODE=get scripts/profile-records.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if !matches!(cli.command, Command::Serve(_)) {
        // Ctrl-C or SIGTERM mid-write must not leave a partial file behind
        // (for decrypt, that would be PHI on disk): remove it, then exit.
        // The server handles its own signals (graceful shutdown).
        let _ = ctrlc::set_handler(|| {
            phivault_keystore::atomic::remove_in_flight();
            std::process::exit(130);
        });
    }
    let file = match config::apply(&mut cli, &matches) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("phivault: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let res = match &cli.command {
        Command::Init(a) => custody::init(&cli.global, a),
        Command::Unseal(a) => custody::unseal(&cli.global, a),
        Command::Seal => custody::seal(&cli.global),
        Command::Status => custody::status(&cli.global, &file),
        Command::Agent => custody::agent(&cli.global),
        Command::Keys(k) => keys_cmd::run(&cli.global, k, &file),
        Command::Encrypt(a) => files::encrypt(&cli.global, a, &file),
        Command::Decrypt(a) => files::decrypt(&cli.global, a, &file),
        Command::Inspect(a) => files::inspect(&cli.global, a),
        Command::Serve(a) => serve_cmd::serve(&cli.global, a, &file),
        Command::Ca(c) => ca_cmd::run(&cli.global, c, &file),
        Command::Records(a) => records_cmd::run(&cli.global, a),
        Command::Audit(a) => audit_cmd::run(&cli.global, a, &file),
        Command::Backup(b) => backup_cmd::run(&cli.global, b, &file),
        Command::Scan(cli::ScanCommand::Tls(a)) => scan_cmd::tls(&cli.global, a),
        Command::Scan(cli::ScanCommand::AtRest(a)) => at_rest_cmd::run(&cli.global, a),
        Command::Scan(cli::ScanCommand::Phi(a)) => phi_cmd::run(&cli.global, a),
        Command::Evidence(a) => evidence_cmd::run(&cli.global, a, &file),
        Command::Config(cli::ConfigCommand::Check(a)) => serve_cmd::check(&cli.global, a, &file),
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "phivault",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            let code = exit_code(&e);
            if cli.global.json {
                println!(
                    "{}",
                    serde_json::json!({ "error": format!("{e:#}"), "exit_code": code })
                );
            }
            eprintln!("phivault: error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn key_code(k: &KeyError) -> u8 {
    match k {
        KeyError::Sealed => 3,
        _ => 6,
    }
}

/// Maps an error chain to the documented exit codes (cli::EXIT_CODES).
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<KeystoreError>() {
            return match k {
                KeystoreError::Key(k) => key_code(k),
                // A local error and one relayed by the agent share one code table.
                other => match other.remote_or_own_code() {
                    "sealed" | "not_initialized" => 3,
                    "wrong_secret" | "too_few_shares" | "bad_share" => 4,
                    "key" => 6,
                    _ => 1,
                },
            };
        }
        if let Some(x) = cause.downcast_ref::<EnvelopeError>() {
            return match x {
                EnvelopeError::Key(k) => key_code(k),
                EnvelopeError::UnsupportedVersion(_) | EnvelopeError::UnknownAlgorithm(_) => 7,
                _ => 5,
            };
        }
        if let Some(x) = cause.downcast_ref::<StreamError>() {
            return match x {
                StreamError::Key(k) => key_code(k),
                StreamError::UnsupportedVersion(_) | StreamError::UnknownAlgorithm(_) => 7,
                StreamError::Io(_) => 1,
                _ => 5,
            };
        }
        if cause
            .downcast_ref::<phivault_core::shamir::ShamirError>()
            .is_some()
        {
            return 4;
        }
        if let Some(k) = cause.downcast_ref::<KeyError>() {
            return key_code(k);
        }
    }
    1
}
