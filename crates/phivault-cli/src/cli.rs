//! Every flag and command, defined once. Help text, completions and the
//! exit-code table all come from here.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const EXIT_CODES: &str = "\
EXIT CODES:
  0  success
  1  any other error
  2  usage error (bad flags or arguments)
  3  the keystore is sealed or not initialized
  4  wrong unseal secret: wrong passphrase, wrong or too few shares, bad share
  5  ciphertext rejected: wrong key, modified, truncated or malformed
  6  key unavailable: unknown, destroyed, disabled or below the minimum version
  7  unsupported format version or algorithm (upgrade phivault)";

/// phivault: encryption of ePHI at rest and in transit, with keys under
/// dual control.
///
/// Try the vault server first: `phivault serve --dev` prints curl commands
/// for its Vault-compatible transit API over mTLS.
///
/// For real data, start with `phivault init`, which creates a sealed
/// keystore in the data dir and prints the unseal shares once. `phivault unseal` (run by share
/// holders, one share each) starts the local key agent; then `phivault keys
/// create` and `phivault encrypt` / `decrypt` work until `phivault seal`.
#[derive(Parser, Debug)]
#[command(name = "phivault", version, after_long_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// TOML config file (keys: data_dir, namespace, threads, and the
    /// [server], [tls] and [auth] sections of `serve`; see README).
    /// Environment variables and flags override it. Default:
    /// ~/.config/phivault/config.toml if it exists.
    #[arg(long, global = true, env = "PHIVAULT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder holding the keystore (and, later, the data).
    #[arg(
        long,
        global = true,
        env = "PHIVAULT_DATA_DIR",
        default_value = "phivault-data"
    )]
    pub data_dir: PathBuf,
    /// Namespace for key ring names given without one (e.g. `billing` →
    /// `default/billing`). Keep production and test keys in separate
    /// namespaces: every ciphertext names its ring's namespace.
    #[arg(
        long,
        global = true,
        env = "PHIVAULT_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// INSECURE dev mode: create or use a keystore whose unseal key is a
    /// plaintext file beside the data. Never for real PHI; phivault warns at
    /// every start.
    #[arg(long = "insecure-dev", global = true, env = "PHIVAULT_INSECURE_DEV", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev: bool,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or notices.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a new sealed keystore in the data dir.
    ///
    /// The default seals the root key under an unseal key split into 5
    /// Shamir shares, any 3 of which unseal it: no single person can. The
    /// shares are printed once; hand each to a different custodian.
    /// `--passphrase` derives the unseal key from a passphrase with
    /// PBKDF2-HMAC-SHA-256 (600 000 iterations) instead; `--insecure-dev` (global)
    /// stores it in a file beside the data, for development only.
    Init(InitArgs),
    /// Give one unseal share (or the passphrase) to the key agent.
    ///
    /// Shamir keystores take one share per call, from each custodian; the
    /// keystore opens when the threshold is reached. Shares are read from
    /// the arguments, or prompted for without echo. Giving several shares in
    /// one call asks for a complete unseal, which fails if they are too few.
    Unseal(UnsealArgs),
    /// Seal: the key agent forgets the root key and exits.
    Seal,
    /// Show the crypto module, FIPS mode, and the keystore's seal state.
    ///
    /// Exits 0 when unsealed (or dev), 3 when sealed or not initialized.
    Status,
    /// Manage key rings: create, list, rotate, destroy, back up, restore.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Encrypt a file or stdin.
    ///
    /// Files use the stream format: 64 KiB segments, each authenticated,
    /// processed on every core. `--envelope` writes the envelope format for
    /// a small value instead, bound to `--context`.
    Encrypt(EncryptArgs),
    /// Decrypt a file or stdin (stream or envelope, detected).
    ///
    /// To a file (`-o`), output appears only after the last segment
    /// authenticates. To stdout, each batch of segments is written only
    /// after it authenticates, and a truncated input exits non-zero.
    Decrypt(DecryptArgs),
    /// Print a ciphertext's header without decrypting it.
    Inspect(InspectArgs),
    /// Run the vault server: HTTPS under the NIST SP 800-52r2 TLS policy,
    /// mTLS, and the Vault-compatible transit API.
    ///
    /// `phivault serve --dev` sets up everything for a first try in the data
    /// dir (an INSECURE dev keystore, a CA, a server certificate, an admin
    /// client certificate, a `billing` key) and prints curl commands to
    /// paste. Without --dev the server starts sealed (only /v1/sys/health
    /// and /v1/sys/unseal answer) unless PHIVAULT_PASSPHRASE(_FILE) opens a
    /// passphrase keystore. SIGHUP reloads the TLS files (they are also
    /// watched); SIGTERM finishes in-flight requests, then exits.
    ///
    /// Settings come from the config file's [server], [tls] and [auth]
    /// sections, then PHIVAULT_* variables, then flags.
    Serve(ServeArgs),
    /// The built-in certificate authority: init, issue, revoke, crl, list.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Field-level encryption of records, through a running server:
    /// declare collections, import, rotate, shred, follow jobs.
    ///
    /// A collection's schema classifies every field of its records (JSON
    /// paths) as phi (encrypted), phi_search (encrypted + blind index),
    /// token (FF1, keeps the shape) or plain; see examples/patients.schema.json
    /// and docs/FORMAT.md §11. Connects to --addr with a client certificate
    /// that has records:admin:COLLECTION (default: the dev admin's).
    Records(RecordsArgs),
    /// Encrypted backups of the whole store to an offline key: keygen,
    /// create, verify, restore.
    ///
    /// A backup holds the keystore document (sealed), every collection's
    /// schemas, records and subject keys, and the audit trail, in one file
    /// encrypted to a backup PUBLIC key (ECDH P-384 + HKDF-SHA-384 +
    /// AES-256-GCM, docs/FORMAT.md §13) and signed with the audit trail's
    /// key. The private key stays offline, away from the data keys: the
    /// server that writes backups cannot read them.
    ///
    ///   phivault backup keygen --out backup.key --public backup.pub   (offline)
    ///   phivault backup create --recipient backup.pub --out nightly.pvb
    ///   phivault backup verify nightly.pvb                 (no key: signature)
    ///   phivault backup verify nightly.pvb --key backup.key (full decryption)
    ///   phivault backup restore nightly.pvb --key backup.key --data-dir NEW
    ///
    /// The store is the data dir's SQLite, or PostgreSQL when storage.url
    /// (or PHIVAULT_STORAGE_URL) is set: restoring a SQLite backup with
    /// storage.url set is the migration path to PostgreSQL.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Examine and verify the audit trail: verify, search, hash, tail,
    /// export, report, prove.
    ///
    /// The trail (DATA/audit) holds one PHI-free entry per API request,
    /// failed handshake and authentication, key lifecycle event, seal,
    /// unseal, reload, start and stop, in an RFC 6962 Merkle tree whose
    /// signed checkpoints (C2SP signed-note, Ed25519) make any change,
    /// deletion, insertion, reordering or truncation detectable.
    /// `verify` needs only the log's public key (`audit pubkey`). Record
    /// and subject ids appear only as HMACs: `--subject ID` and `audit
    /// hash` compute them with the audit key (an unsealed keystore).
    /// Reading works while the server runs.
    Audit(AuditArgs),
    /// Scan: TLS endpoints against NIST SP 800-52r2, a data dir at rest,
    /// or any folder for unencrypted PHI.
    ///
    /// Any failed requirement exits 10, so the scans can gate CI pipelines.
    #[command(subcommand)]
    Scan(ScanCommand),
    /// The compliance evidence report of this deployment: a control matrix
    /// (HIPAA §164.312, §164.308, §164.316; SOC 2; ISO/IEC 27001:2022)
    /// with machine-checked evidence gathered now.
    Evidence(crate::evidence_cmd::EvidenceArgs),
    /// Check the configuration without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Run the key agent in the foreground (`unseal` starts it for you).
    #[command(hide = true)]
    Agent,
}

#[derive(Subcommand, Debug)]
pub enum ScanCommand {
    /// Probe TLS endpoints with hand-built ClientHellos and grade them against
    /// NIST SP 800-52r2 (or another profile).
    ///
    /// For each target the scan finds every protocol version the server
    /// accepts (SSL 2.0 to TLS 1.3) and every cipher suite under each, from
    /// the full IANA list (NULL, EXPORT, RC4, DES, 3DES, CBC, ChaCha20, CCM
    /// included), with the server's preference; the key exchange groups and
    /// finite-field DH size; the certificate chain (validity, key, signature,
    /// SAN and host name, EKU, trust against --ca-file or the system store);
    /// downgrade protection (TLS_FALLBACK_SCSV or the TLS 1.3 sentinel),
    /// secure renegotiation, extended master secret, compression, OCSP
    /// stapling, session resumption, HSTS, and whether a client certificate is
    /// requested and from which CAs. Each requirement of the profile becomes a
    /// finding: pass, warn, fail or info, with evidence and remediation.
    ///
    /// Examples:
    ///
    ///   phivault scan tls example.org:443
    ///
    ///   phivault scan tls 127.0.0.1:8200,sni=localhost --ca-file phivault-data/ca/ca.pem
    ///
    ///   phivault scan tls db.internal:5432,starttls=postgres --profile hipaa
    ///
    ///   phivault scan tls --targets-file hosts.txt --junit scan.xml --json > scan.json
    ///
    /// Exit codes: 0 no requirement failed (warnings allowed), 10 at least one
    /// failed (or a target could not be scanned), 2 bad usage.
    #[command(verbatim_doc_comment)]
    Tls(crate::scan_cmd::ScanTlsArgs),
    /// Check a phivault data dir at rest.
    AtRest(crate::at_rest_cmd::AtRestArgs),
    /// Find PHI in files, CSV, JSON and SQLite under a path.
    Phi(crate::phi_cmd::PhiArgs),
}

#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// Server address.
    #[arg(long, env = "PHIVAULT_ADDR", default_value = "127.0.0.1:8200")]
    pub addr: String,
    /// CA certificate the server's certificate chains to [default: DATA/ca/ca.pem].
    #[arg(long, env = "PHIVAULT_CACERT")]
    pub ca: Option<PathBuf>,
    /// Client certificate [default: DATA/clients/admin.pem].
    #[arg(long, env = "PHIVAULT_CLIENT_CERT")]
    pub cert: Option<PathBuf>,
    /// Client key [default: the certificate's path with .key].
    #[arg(long, env = "PHIVAULT_CLIENT_KEY")]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: RecordsCommand,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The audit trail's folder [default: DATA/audit].
    #[arg(long, global = true, env = "PHIVAULT_AUDIT_DIR")]
    pub audit_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Filters shared by search, export and report.
#[derive(Args, Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this principal (e.g. spiffe://phivault.local/app).
    #[arg(long)]
    pub principal: Option<String>,
    /// Only this operation, or a prefix with * (e.g. 'records.*').
    #[arg(long)]
    pub op: Option<String>,
    /// Only this outcome: ok, denied or error.
    #[arg(long)]
    pub outcome: Option<String>,
    /// From this time: RFC 3339, a date (2026-12-01), or a span back from
    /// now (90m, 24h, 30d).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only entries naming this data subject (hashed with the audit key:
    /// needs an unsealed keystore, e.g. --insecure-dev or PHIVAULT_PASSPHRASE).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only entries naming this record id (hashed like --subject).
    #[arg(long)]
    pub record: Option<String>,
    /// Only entries naming this subject HMAC (from `audit hash`; no key needed).
    #[arg(long)]
    pub subject_hash: Option<String>,
    /// Only entries naming this record HMAC.
    #[arg(long)]
    pub record_hash: Option<String>,
    /// Only this key ring or collection (e.g. transit/billing, records/patients).
    #[arg(long)]
    pub resource: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Copy a node's audit trail out of PostgreSQL (where every node on
    /// storage.url mirrors its trail each second) into a folder, to verify
    /// or search it there: `phivault audit pull --node vault-1 --to /tmp/t`
    /// then `phivault audit --audit-dir /tmp/t verify --key …`.
    /// Without --node, lists the nodes.
    Pull {
        /// The node (its `audit.node`, by default its host name).
        #[arg(long)]
        node: Option<String>,
        /// An empty (or new) folder.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Verify the whole trail against its signed checkpoints. Needs no
    /// secret: only the log's public key (--key; by default DATA/audit/log.pub,
    /// which an attacker with write access could replace: pin the key).
    /// Exits 0 when intact, 1 when tampering is found, naming the first
    /// bad index. Entries that a power loss took from the newest segment
    /// are read from the group-commit journal (audit/journal) and checked
    /// too; the server's next start puts them back.
    Verify {
        /// Trusted verifier key: a key string or a file of them.
        #[arg(long)]
        key: Vec<String>,
        /// A witness folder holding copies of the checkpoints (finds a
        /// truncated or deleted log).
        #[arg(long)]
        witness: Vec<PathBuf>,
    },
    /// List entries that match the filters (newest last).
    Search {
        #[command(flatten)]
        filter: AuditFilter,
        /// Show at most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The HMAC under which an id appears in the trail (like Vault's
    /// audit-hash). Needs the keystore (it holds the audit key).
    Hash {
        /// The id (a patient id, a record id).
        value: String,
        /// What the id is: subject or record.
        #[arg(long, default_value = "subject")]
        kind: String,
    },
    /// Print the newest entries; -f keeps following.
    Tail {
        /// Keep printing new entries as they are written.
        #[arg(short, long)]
        follow: bool,
        /// How many of the newest entries to start with.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
    },
    /// Export entries for a SIEM: JSON lines or RFC 5424 syslog.
    Export {
        /// jsonl or syslog.
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        filter: AuditFilter,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Who accessed what, when and why: a table, --json, or --format html
    /// with a chart of activity over time. --subject ID answers "who
    /// accessed this patient's data"; --denied lists refused attempts;
    /// --break-glass lists emergency accesses.
    Report {
        #[command(flatten)]
        filter: AuditFilter,
        /// Only refused attempts (401/403, TLS and auth failures).
        #[arg(long)]
        denied: bool,
        /// Only break-glass accesses.
        #[arg(long)]
        break_glass: bool,
        /// table, json or html.
        #[arg(long, default_value = "table")]
        format: String,
        /// Write here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// An inclusion proof for entry INDEX against the newest checkpoint,
    /// or (--from) a consistency proof between two tree sizes.
    Prove {
        /// Entry index for an inclusion proof.
        #[arg(long)]
        index: Option<u64>,
        /// Old tree size for a consistency proof to the newest checkpoint.
        #[arg(long)]
        from: Option<u64>,
        /// Trusted verifier key (as for verify).
        #[arg(long)]
        key: Vec<String>,
    },
    /// Print the log's public key (C2SP note verifier key): keep a copy
    /// where auditors can get it.
    Pubkey,
    /// Print the newest signed checkpoint.
    Checkpoint,
}

#[derive(Subcommand, Debug)]
pub enum RecordsCommand {
    /// Declare a collection, or a new version of its schema. A field newly
    /// protected or indexed starts a background job that re-seals existing
    /// records (--wait follows it with a progress bar).
    Apply {
        /// Collection name (a-z, 0-9, '_', '-').
        collection: String,
        /// The schema (JSON).
        schema: PathBuf,
        /// Follow the migration job until it completes.
        #[arg(long)]
        wait: bool,
    },
    /// Show a collection's schema and its blind-index plan.
    Show {
        /// Collection.
        collection: String,
    },
    /// List collections.
    List,
    /// Import records from a JSON Lines file (one record per line), in
    /// bulk requests, with a progress bar.
    Import {
        /// Collection.
        collection: String,
        /// JSON Lines file.
        file: PathBuf,
        /// Records per request.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Show a background job's progress (--wait follows it).
    Job {
        /// Job id.
        id: String,
        /// Follow until it completes.
        #[arg(long)]
        wait: bool,
    },
    /// Rotate a collection's key ring and rewrap every subject key (values
    /// are not re-encrypted). --destroy-old then destroys the old versions:
    /// pre-rotation key backups can no longer decrypt anything.
    Rotate {
        /// Collection.
        collection: String,
        /// Destroy older ring versions once every key is rewrapped.
        #[arg(long)]
        destroy_old: bool,
        /// Follow the rewrap job.
        #[arg(long)]
        wait: bool,
    },
    /// Crypto-shred a data subject: destroy their key in every collection
    /// (or --collection) and delete their records. Prints the receipt.
    Shred {
        /// The subject's identifier (the value of the schema's subject field).
        subject: String,
        /// Only this collection.
        #[arg(long)]
        collection: Option<String>,
    },
}

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Dev mode: create (or reuse) a dev data dir with an INSECURE
    /// plaintext unseal key, a CA, certificates and a `billing` key, then
    /// serve. Never for real PHI.
    #[arg(long)]
    pub dev: bool,
    /// Address to listen on [default: 127.0.0.1:8200].
    #[arg(long, env = "PHIVAULT_LISTEN")]
    pub listen: Option<String>,
    /// TLS profile: nist (TLS 1.3 + 1.2) or modern (TLS 1.3 only) [default: nist].
    #[arg(long, env = "PHIVAULT_TLS_PROFILE")]
    pub tls_profile: Option<String>,
    /// Server certificate chain (PEM) [default: DATA/tls/server.pem].
    #[arg(long, env = "PHIVAULT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) [default: DATA/tls/server.key].
    #[arg(long, env = "PHIVAULT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle client certificates must chain to; set it to use an
    /// external CA [default: DATA/ca/ca.pem].
    #[arg(long, env = "PHIVAULT_TLS_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// CRL file(s) checked at every handshake [default: DATA/ca/crl.pem].
    #[arg(long, env = "PHIVAULT_TLS_CRL", value_delimiter = ',')]
    pub crl: Vec<PathBuf>,
    /// Largest request body in bytes [default: 33554432].
    #[arg(long, env = "PHIVAULT_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Log format: text or json.
    #[arg(long, env = "PHIVAULT_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Log filter (tracing EnvFilter syntax), e.g. info or phivault_server=debug.
    #[arg(long, env = "PHIVAULT_LOG", default_value = "info")]
    pub log: String,
}

/// `phivault backup` subcommands.
#[derive(Subcommand, Debug, Clone)]
pub enum BackupCommand {
    /// Create a backup key pair (P-384). Run it where the private key will
    /// live (offline); give the public key to the servers.
    Keygen {
        /// The private key (PKCS#8 PEM), written 0600. Keep it offline,
        /// apart from the data keys and their custodians.
        #[arg(long)]
        out: PathBuf,
        /// The public key (SPKI PEM) [default: OUT with .pub].
        #[arg(long)]
        public: Option<PathBuf>,
    },
    /// Back up the whole store into one encrypted, signed file.
    ///
    /// Needs the unsealed keystore (to sign with the audit key): dev,
    /// PHIVAULT_PASSPHRASE, or the key agent.
    Create {
        /// The backup public key (SPKI PEM from `backup keygen`).
        #[arg(long, env = "PHIVAULT_BACKUP_RECIPIENT")]
        recipient: PathBuf,
        /// The backup file (written atomically; refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup: without --key its signature and structure (anyone
    /// can); with --key also that every byte decrypts.
    Verify {
        /// The backup file.
        file: PathBuf,
        /// The backup private key, for a full check.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The signer's public key (hex), e.g. from `phivault audit
        /// verify --json` (`public_key`); the backup must be signed by it.
        #[arg(long)]
        signer: Option<String>,
    },
    /// Restore a backup into an EMPTY store (new data dir, or an empty
    /// PostgreSQL database with storage.url set).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The backup private key.
        #[arg(long)]
        key: PathBuf,
        /// The signer's public key (hex) the backup must carry.
        #[arg(long)]
        signer: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create the CA: an ECDSA P-256 key sealed under the keystore, and a
    /// self-signed certificate (5 years).
    Init {
        /// SPIFFE trust domain of client principals (spiffe://DOMAIN/NAME).
        #[arg(long, default_value = "phivault.local")]
        trust_domain: String,
    },
    /// Issue a server or client certificate with a fresh P-256 key.
    ///
    /// Client certificates carry the principal as a URI SAN
    /// spiffe://DOMAIN/NAME and the scopes (e.g. transit:encrypt:billing,
    /// transit:*:billing, keys:admin) in an extension. Server certificates
    /// get SANs for --name and each --san, EKU serverAuth, and at most 398
    /// days.
    Issue {
        /// server or client.
        kind: CertKindArg,
        /// Client: the principal's name. Server: the DNS name.
        #[arg(long)]
        name: String,
        /// Server: extra DNS names or IPs.
        #[arg(long, value_delimiter = ',')]
        san: Vec<String>,
        /// Client: scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Validity in days [default: 30 for clients, 90 for servers].
        #[arg(long)]
        days: Option<u32>,
        /// Certificate output [default: DATA/tls/server.pem or DATA/clients/NAME.pem].
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Key output, written 0600 [default: beside the certificate, .key].
        #[arg(long)]
        key: Option<PathBuf>,
        /// Allow a server certificate longer than 398 days.
        #[arg(long)]
        insecure_long_validity: bool,
    },
    /// Revoke certificates (by serial, name or SHA-256) and rewrite the CRL;
    /// a running server picks it up within seconds.
    Revoke {
        /// Serial (hex), name, or SHA-256 fingerprint (hex).
        selector: String,
        /// unspecified, key-compromise, superseded, cessation-of-operation.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// Sign a fresh CRL (valid 7 days); run it daily, e.g. from cron.
    Crl {
        /// Also print the CRL PEM on stdout.
        #[arg(long)]
        print: bool,
    },
    /// List issued certificates.
    List,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum CertKindArg {
    Server,
    Client,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Resolve file, environment and flags; load and check the TLS files
    /// against the profile. Exits 0 when `serve` would start, 2 otherwise.
    Check(ServeArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Number of Shamir shares to create.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(2..=255))]
    pub shares: u8,
    /// Shares needed to unseal.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=255))]
    pub threshold: u8,
    /// Seal with a passphrase instead of shares (prompted, or from
    /// PHIVAULT_PASSPHRASE).
    #[arg(long, conflicts_with_all = ["shares", "threshold"])]
    pub passphrase: bool,
    /// PBKDF2 iterations for `--passphrase` (at least 600 000).
    #[arg(long, default_value_t = 600_000, requires = "passphrase")]
    pub iterations: u32,
}

#[derive(Args, Debug)]
pub struct UnsealArgs {
    /// Unseal share(s). Prompted for if omitted.
    pub shares: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key ring with a fresh version 1.
    Create {
        /// Ring name, `namespace/name` or just `name` (in --namespace).
        name: String,
        /// Rotation policy: rotate when the primary version is older than this.
        #[arg(long, default_value_t = 365)]
        max_age_days: u32,
    },
    /// List key rings with their versions, ages and overdue rotations.
    List {
        /// Every namespace, not just --namespace.
        #[arg(long)]
        all: bool,
    },
    /// Add a new version, which becomes primary; old versions still decrypt.
    Rotate {
        /// Ring name.
        name: String,
    },
    /// Destroy a key version: data encrypted under it can never be recovered.
    Destroy {
        /// Ring name.
        name: String,
        /// Version to destroy (not the primary; rotate first).
        #[arg(long)]
        version: u32,
        /// Don't ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Refuse decryption with versions below N.
    MinVersion {
        /// Ring name.
        name: String,
        /// Minimum decryption version.
        version: u32,
    },
    /// Disable a ring: it neither encrypts nor decrypts until enabled.
    Disable {
        /// Ring name.
        name: String,
    },
    /// Enable a disabled ring.
    Enable {
        /// Ring name.
        name: String,
    },
    /// Change a ring's rotation policy.
    Policy {
        /// Ring name.
        name: String,
        /// Maximum age of the primary version.
        #[arg(long)]
        max_age_days: u32,
    },
    /// Write an encrypted escrow copy of key rings under a backup
    /// passphrase (separate from the unseal secret).
    Backup {
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Every namespace, not just --namespace.
        #[arg(long)]
        all: bool,
    },
    /// Restore key rings from an escrow file into this keystore.
    Restore {
        /// Escrow file.
        input: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// Input file; stdin if omitted or `-`.
    pub input: Option<PathBuf>,
    /// Output file (written atomically); stdout if omitted.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Key ring.
    #[arg(short, long)]
    pub key: String,
    /// Envelope format for a small value (at most 16 MiB) instead of a stream.
    #[arg(long)]
    pub envelope: bool,
    /// Envelope only: context bound into the ciphertext (e.g. record id and
    /// field path); decryption must give the same.
    #[arg(long, requires = "envelope", default_value = "")]
    pub context: String,
    /// Envelope only: write the compact text form (`pve:…`) for JSON.
    #[arg(long, requires = "envelope")]
    pub text: bool,
    /// Stream segment size as a power of two (12 = 4 KiB … 24 = 16 MiB).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(12..=24))]
    pub segment_exp: u8,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// Input file; stdin if omitted or `-`.
    pub input: Option<PathBuf>,
    /// Output file (renamed into place only after full authentication).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Envelope context used at encryption.
    #[arg(long, default_value = "")]
    pub context: String,
    /// Decrypt only plaintext bytes OFFSET:LENGTH (stream files only; reads
    /// just the segments needed).
    #[arg(long, value_parser = parse_range)]
    pub range: Option<(u64, u64)>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or("use OFFSET:LENGTH, e.g. 1048576:4096")?;
    Ok((
        a.parse().map_err(|_| "bad OFFSET")?,
        b.parse().map_err(|_| "bad LENGTH")?,
    ))
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Input file; stdin if omitted or `-`.
    pub input: Option<PathBuf>,
}
