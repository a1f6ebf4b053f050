//! Command-line interface: argument parsing and one function per command. No storage logic
//! lives here; every command calls the library.

mod append;
mod demo;
mod report;
mod transparency;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditlog::{Checkpoint, Config, Durability, Error, Log, Options};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "auditlog", version, about = "Tamper-evident audit log storage")]
struct Cli {
    /// Data directory.
    #[arg(
        long,
        global = true,
        env = "AUDITLOG_DATA",
        default_value = "auditlog-data"
    )]
    data: PathBuf,
    /// Config file in the seed's format (`audit_logs` section: disabled, hmac_key,
    /// retention_days). Without it the key comes from env.AUDIT_HMAC_KEY.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Segment size in bytes (minimum 65536) for logs opened for writing.
    #[arg(long, global = true)]
    segment_bytes: Option<u64>,
    /// Create the log forward-secure with this epoch (e.g. `15m`): the chain key evolves every
    /// epoch and every epoch is sealed (needs --fss-key at creation).
    #[arg(long, global = true, value_name = "EPOCH")]
    forward_secure: Option<String>,
    /// The auditor's initial forward-secure key (`env.NAME` or the key itself): creates a
    /// forward-secure log with --forward-secure, and lets `verify` check one.
    #[arg(long, global = true, value_name = "KEY")]
    fss_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Sync,
    Interval,
    Buffered,
}

#[derive(Subcommand)]
enum Command {
    /// Append JSON Lines events from a file or stdin.
    Append {
        /// Input file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "sync")]
        durability: DurabilityArg,
        /// Sync interval in milliseconds for `--durability interval`.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        /// Print `{"seq":…,"event_id":…,"hash":…}` per event once it is durable.
        #[arg(long)]
        receipts: bool,
    },
    /// Verify every record, the whole chain and the checkpoints. Exit 0 when intact.
    Verify {
        /// An externally kept checkpoint (from `auditlog checkpoint`) to check against.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Do not authenticate the index side files (queries never trust them either way).
        #[arg(long)]
        skip_indexes: bool,
    },
    /// Write a signed checkpoint of the latest record and print it for keeping elsewhere.
    Checkpoint {
        /// Also write it to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Instead, sign a C2SP checkpoint of the Merkle tree with the signer key --key.
        #[arg(long, requires = "key")]
        signed: bool,
        /// Signer key file (from `auditlog keygen`).
        #[arg(long, requires = "signed")]
        key: Option<PathBuf>,
        /// Ask this witness to cosign (C2SP tlog-witness): `"URL VKEY"`, the submission
        /// prefix and its cosignature/v1 verifier key (repeatable).
        #[arg(long, requires = "signed")]
        witness: Vec<String>,
        /// Cosignatures needed (default: every --witness); fewer exits 1.
        #[arg(long, requires = "witness")]
        quorum: Option<usize>,
    },
    /// Counts, seqs and files.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Query events (the seed's GET parameters); prints a page in the seed's response shape.
    Query {
        #[command(flatten)]
        filters: Filters,
        /// Events per page (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// `asc` or `desc` by timestamp (ties by seq).
        #[arg(long, default_value = "desc")]
        order: String,
        /// The `next_page` value of the previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Print one event per line instead of the page object (totals go to stderr).
        #[arg(long)]
        ndjson: bool,
    },
    /// Export every matching event (JSON Lines, CSV or a SIEM format), verifying each record.
    Export {
        #[command(flatten)]
        filters: Filters,
        /// `jsonl`, `csv`, `ocsf`, `cef`, `syslog`, `hec` or `elastic`.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Output file (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `asc` (log order, the default) or `desc` (reverse log order).
        #[arg(long, default_value = "asc")]
        order: String,
    },
    /// Apply the retention policy (`retention_days` from the config or `--retention-days`):
    /// remove whole expired segments after a signed record of what goes.
    Retention {
        /// The time to apply the policy at (RFC 3339 or YYYY-MM-DD; default now).
        #[arg(long)]
        now: Option<String>,
        /// Show what would go without removing anything.
        #[arg(long)]
        dry_run: bool,
        /// Also rewrite the first remaining segment without its expired prefix.
        #[arg(long)]
        compact: bool,
        /// Overrides `retention_days` from the config.
        #[arg(long)]
        retention_days: Option<u32>,
    },
    /// Move sealed segments older than `archive_days` (config or `--archive-days`) to the
    /// compressed archive tier; they stay verifiable and queryable.
    Archive {
        #[arg(long)]
        now: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        archive_days: Option<u32>,
    },
    /// Legal holds: suspend deletion and redaction of what they cover.
    Hold {
        #[command(subcommand)]
        action: HoldAction,
    },
    /// Redact records: replace their personal data (or only their details) by a signed
    /// redaction marker; the chain still verifies.
    Redact {
        /// Record seqs to redact (repeatable).
        #[arg(long, required_unless_present = "user_id")]
        seq: Vec<u64>,
        /// Redact every event of this actor (an erasure request).
        #[arg(long, conflicts_with = "seq")]
        user_id: Option<String>,
        /// Why (recorded with the redaction and in the audit event).
        #[arg(long)]
        reason: String,
        /// Remove only `details`, keep the actor.
        #[arg(long)]
        content_only: bool,
    },
    /// Generate a compliance report over a date range (JSON, HTML, CSV or PDF), sealed with a
    /// SHA-256 and an HMAC under the log's key; recorded as a `data_access` event.
    Report(report::ReportArgs),
    /// Check a JSON, HTML or PDF report's SHA-256 and HMAC. Exit 0 when both match.
    VerifyReport {
        file: PathBuf,
        /// Also check the report's Ed25519 signature with this verifier key (the key string,
        /// or a file holding it).
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Serve the seed's REST API (`/api/audit-logs`, `/api/enterprise/audit-logs`) over the
    /// data directory, with the bearer tokens of the config's `server` section. Stops
    /// gracefully on SIGTERM or SIGINT.
    #[cfg(feature = "server")]
    Serve {
        /// `host:port` to listen on (default: `server.listen`, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        #[arg(long, value_enum, default_value = "sync")]
        durability: DurabilityArg,
        /// Sync interval in milliseconds for `--durability interval`.
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
    },
    /// Print the `hmac-sha256:…` value that ingest stores for a secret in a hashed `details`
    /// field (`audit_logs.hmac_fields`), to search for where a known secret was used. Reads
    /// the value from stdin when none is given, so it stays out of shell history.
    AuditHash { value: Option<String> },
    /// Print the SHA-256 of a bearer token read from stdin, for `server.tokens[].sha256`.
    TokenHash,
    /// Run the main job on an embedded default: a mixed workload, verification, throughput,
    /// and a tampered copy being caught.
    Demo {
        /// Events to append.
        #[arg(long, default_value_t = 400_000)]
        events: u64,
        /// Directory for the demo (recreated).
        #[arg(long, default_value = "auditlog-demo")]
        dir: PathBuf,
    },
    #[command(flatten)]
    Tlog(transparency::TlogCommand),
    /// The configured sinks (the config's `sinks` list, docs/SINKS.md).
    Sinks {
        #[command(subcommand)]
        action: SinksAction,
    },
    /// Run the configured sinks beside a writer process (`append`, `serve`): follows the log
    /// read-only (new records and segments picked up from disk, a torn tail left out) and
    /// delivers them, each sink resuming from its cursor file. Stops on SIGTERM or SIGINT;
    /// fails when every sink parked.
    Ship {
        /// How often to check the sinks (parked, read errors), in milliseconds.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Deliver what is in the log now, then exit (1 if a sink parked).
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand)]
enum SinksAction {
    /// Per sink: acknowledged seq, lag, delivered, retried, filtered, parked, last error,
    /// read from the cursor files and the log.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum HoldAction {
    /// Place a hold on everything, one actor, or a time range.
    Add {
        #[arg(long, conflicts_with_all = ["user_id", "start", "end"])]
        global: bool,
        #[arg(long, conflicts_with_all = ["start", "end"])]
        user_id: Option<String>,
        /// Start of a time-range hold (RFC 3339 or YYYY-MM-DD), inclusive.
        #[arg(long, requires = "end")]
        start: Option<String>,
        /// End of a time-range hold (RFC 3339 or YYYY-MM-DD, a bare date is its whole day).
        #[arg(long, requires = "start")]
        end: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// List the holds in force.
    List,
    /// Lift a hold.
    Remove {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// Filters shared by `query` and `export`. Every flag may be repeated (values are OR-ed
/// within a flag, AND-ed across flags) or take comma-separated values.
#[derive(clap::Args)]
struct Filters {
    #[arg(long)]
    event_type: Vec<String>,
    #[arg(long)]
    action: Vec<String>,
    #[arg(long)]
    status: Vec<String>,
    /// info, low, medium, high or critical.
    #[arg(long)]
    severity: Vec<String>,
    #[arg(long)]
    user_id: Vec<String>,
    #[arg(long)]
    email: Vec<String>,
    /// An address or a CIDR range (IPv4 or IPv6).
    #[arg(long)]
    ip: Vec<String>,
    #[arg(long)]
    resource_type: Vec<String>,
    #[arg(long)]
    resource_id: Vec<String>,
    /// RFC 3339 timestamp or YYYY-MM-DD (a bare date is its whole UTC day), inclusive.
    #[arg(long)]
    start: Option<String>,
    /// RFC 3339 timestamp or YYYY-MM-DD (a bare date is its whole UTC day), inclusive.
    #[arg(long)]
    end: Option<String>,
    /// Leave `details` out of each event.
    #[arg(long)]
    no_details: bool,
}

impl Filters {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p: Vec<(&'static str, String)> = Vec::new();
        for (name, vals) in [
            ("event_type", &self.event_type),
            ("action", &self.action),
            ("status", &self.status),
            ("severity", &self.severity),
            ("user_id", &self.user_id),
            ("email", &self.email),
            ("ip", &self.ip),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
        ] {
            p.extend(vals.iter().map(|v| (name, v.clone())));
        }
        if let Some(s) = &self.start {
            p.push(("start", s.clone()));
        }
        if let Some(e) = &self.end {
            p.push(("end", e.clone()));
        }
        if self.no_details {
            p.push(("include_details", "false".into()));
        }
        p
    }
}

fn build_query(
    filters: &Filters,
    extra: Vec<(&'static str, String)>,
) -> Result<auditlog::Query, Error> {
    let mut params = filters.params();
    params.extend(extra);
    auditlog::Query::from_params(params.iter().map(|(k, v)| (*k, v.as_str())))
}

#[cfg(feature = "server")]
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// Runs the CLI and returns the process exit status.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, Error> {
    let mut cfg = match &cli.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    cfg.apply_env()?;
    Ok(cfg)
}

fn read_stdin_value(what: &str) -> Result<String, Error> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::io("reading", "stdin", e))?;
    let v = s.trim_end_matches(['\n', '\r']).to_string();
    if v.is_empty() {
        return Err(Error::Config(format!("no {what} on stdin")));
    }
    Ok(v)
}

fn write_options(cli: &Cli, cfg: &Config) -> Result<Options, Error> {
    // Every CLI writer saves the active index at close: the commands that follow
    // (`query`, `export`) open the log read-only and load it.
    let mut o = Options::new(cfg.audit_logs.key()?)
        .retention_days(cfg.audit_logs.retention_days)
        .archive_days(cfg.audit_logs.archive_days.unwrap_or(0))
        .save_active_index(true);
    if let Some(b) = cli.segment_bytes {
        o = o.segment_bytes(b);
    }
    fss_options(cli, o)
}

/// Adds `--forward-secure` and `--fss-key` to `o`.
fn fss_options(cli: &Cli, mut o: Options) -> Result<Options, Error> {
    if let Some(e) = &cli.forward_secure {
        o = o.forward_secure(auditlog::fss::parse_epoch(e)?);
    }
    if let Some(k) = &cli.fss_key {
        o = o.fss_initial_key(auditlog::HmacKey::from_config_value(k)?);
    }
    Ok(o)
}

fn dispatch(cli: Cli) -> Result<i32, Error> {
    if let Command::Demo { events, dir } = &cli.command {
        return demo::run(dir, *events, cli.segment_bytes);
    }
    let cfg = load_config(&cli)?;
    match &cli.command {
        Command::Append {
            file,
            durability,
            interval_ms,
            receipts,
        } => {
            if cfg.audit_logs.disabled {
                return Err(Error::Config(
                    "audit logging is disabled in the config (audit_logs.disabled = true)".into(),
                ));
            }
            let d = match durability {
                DurabilityArg::Sync => Durability::Sync,
                DurabilityArg::Interval => {
                    Durability::Interval(Duration::from_millis((*interval_ms).max(1)))
                }
                DurabilityArg::Buffered => Durability::Buffered,
            };
            let log = Log::open(&cli.data, write_options(&cli, &cfg)?.durability(d))?;
            let input: Box<dyn Read + Send> = match file.as_deref() {
                None => Box::new(std::io::stdin()),
                Some(p) if p == Path::new("-") => Box::new(std::io::stdin()),
                Some(p) => {
                    Box::new(std::fs::File::open(p).map_err(|e| Error::io("opening input", p, e))?)
                }
            };
            append::run(&log, input, *receipts)
        }
        Command::Verify {
            checkpoint,
            json,
            skip_indexes,
        } => {
            let opts = fss_options(&cli, Options::new(cfg.audit_logs.key()?))?;
            let log = Log::open_read_only_with(&cli.data, opts)?;
            let mut external = Vec::new();
            for p in checkpoint {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::io("reading checkpoint", p, e))?;
                external.push(
                    Checkpoint::from_json(&text)
                        .map_err(|e| Error::BadCheckpoint(format!("{}: {e}", p.display())))?,
                );
            }
            verify(&log, &external, *json, !*skip_indexes)
        }
        Command::Checkpoint {
            out,
            signed: true,
            key: Some(key),
            witness,
            quorum,
        } => transparency::signed_checkpoint(
            &cli.data,
            write_options(&cli, &cfg)?,
            key,
            out.as_deref(),
            witness,
            *quorum,
        ),
        Command::Checkpoint { out, .. } => {
            let log = match Log::open(&cli.data, write_options(&cli, &cfg)?) {
                Ok(l) => l,
                Err(Error::Locked { .. }) => Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?,
                Err(e) => return Err(e),
            };
            let cp = log.checkpoint()?;
            let text = cp.to_json();
            if let Some(p) = out {
                std::fs::write(p, format!("{text}\n")).map_err(|e| Error::io("writing", p, e))?;
            }
            println!("{text}");
            Ok(0)
        }
        Command::Stats { json } => {
            let log = Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?;
            let s = log.stats()?;
            if *json {
                let mut v = serde_json::to_value(&s).expect("stats serialize");
                let sinks =
                    auditlog::sink::statuses_on_disk(&cli.data, &cfg.sinks, log.next_seq())?;
                v["sinks"] = serde_json::to_value(sinks).expect("sink statuses serialize");
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("stats serialize")
                );
            } else {
                println!("log {}", s.log_id);
                println!("events     {}", s.events);
                match (s.first_seq, s.last_seq) {
                    (Some(a), Some(b)) => println!("seqs       {a}..={b}"),
                    _ => println!("seqs       (empty)"),
                }
                println!("segments   {}", s.segments);
                println!("bytes      {} on disk, {} written", s.bytes, s.data_bytes);
            }
            Ok(0)
        }
        Command::Query {
            filters,
            limit,
            order,
            cursor,
            ndjson,
        } => {
            let mut extra = vec![("limit", limit.to_string()), ("order", order.clone())];
            if let Some(c) = cursor {
                extra.push(("cursor", c.clone()));
            }
            let q = build_query(filters, extra)?;
            let log = Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?;
            let page = log.query(&q)?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let w = |e: std::io::Error| Error::io("writing to", "stdout", e);
            if *ndjson {
                for e in &page.audit_logs {
                    serde_json::to_writer(&mut out, e).map_err(|e| w(e.into()))?;
                    writeln!(out).map_err(w)?;
                }
                eprintln!(
                    "total_count {} returned_count {} page {} next_page {}",
                    page.total_count,
                    page.returned_count,
                    page.page,
                    page.next_page.as_deref().unwrap_or("null")
                );
            } else {
                serde_json::to_writer_pretty(&mut out, &page).map_err(|e| w(e.into()))?;
                writeln!(out).map_err(w)?;
            }
            out.flush().map_err(w)?;
            Ok(0)
        }
        Command::Export {
            filters,
            format,
            out,
            order,
        } => {
            let fmt: auditlog::ExportFormat = format.parse()?;
            let q = build_query(filters, vec![("order", order.clone())])?;
            let log = Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?;
            let mut sink: Box<dyn Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(p).map_err(|e| Error::io("creating", p, e))?,
                )),
                None => Box::new(std::io::BufWriter::with_capacity(
                    1 << 20,
                    std::io::stdout().lock(),
                )),
            };
            let summary = if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} exporting: {pos} records ({per_sec})",
                    )
                    .expect("valid template"),
                );
                let r = log.export_with_progress(&q, fmt, &mut sink, &|n| bar.set_position(n));
                bar.finish_and_clear();
                r?
            } else {
                log.export(&q, fmt, &mut sink)?
            };
            drop(sink);
            if summary.unverified_seqs.is_empty() {
                eprintln!(
                    "exported {} records; every record's MAC verified",
                    summary.records
                );
                Ok(0)
            } else {
                eprintln!(
                    "exported {} records; {} FAILED verification (seqs {:?}); run `auditlog verify`",
                    summary.records,
                    summary.records - summary.verified,
                    summary.unverified_seqs
                );
                Ok(1)
            }
        }
        Command::Retention {
            now,
            dry_run,
            compact,
            retention_days,
        } => {
            let mut opts = write_options(&cli, &cfg)?;
            if let Some(d) = retention_days {
                opts = opts.retention_days(*d);
            }
            let now = match now {
                Some(t) => {
                    chrono::DateTime::from_timestamp_nanos(auditlog::parse_time("now", t, false)?)
                }
                None => chrono::Utc::now(),
            };
            let log = open_for_maintenance(&cli.data, opts)?;
            let report = if *dry_run && *compact {
                log.plan_compaction(now)?
            } else if *dry_run {
                log.plan_retention(now)?
            } else if *compact {
                log.compact(now)?
            } else {
                log.apply_retention(now)?
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
            Ok(0)
        }
        Command::Archive {
            now,
            dry_run,
            archive_days,
        } => {
            let mut opts = write_options(&cli, &cfg)?;
            if let Some(d) = archive_days.or(cfg.audit_logs.archive_days) {
                opts = opts.archive_days(d);
            }
            let now = match now {
                Some(t) => {
                    chrono::DateTime::from_timestamp_nanos(auditlog::parse_time("now", t, false)?)
                }
                None => chrono::Utc::now(),
            };
            let log = open_for_maintenance(&cli.data, opts)?;
            let report = if *dry_run {
                log.plan_archive(now)?
            } else {
                log.archive(now)?
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
            Ok(0)
        }
        Command::Report(args) => report::run(&cli.data, &cfg, write_options(&cli, &cfg)?, args),
        Command::VerifyReport { file, public_key } => {
            report::verify_file(file, &cfg.audit_logs.key()?, public_key.as_deref())
        }
        Command::Hold { action } => {
            match action {
                HoldAction::List => {
                    let log = Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&log.holds()).expect("holds serialize")
                    );
                }
                HoldAction::Add {
                    global,
                    user_id,
                    start,
                    end,
                    reason,
                } => {
                    let scope = match (global, user_id, start, end) {
                        (true, _, _, _) => auditlog::HoldScope::Global,
                        (_, Some(u), _, _) => auditlog::HoldScope::Actor { user_id: u.clone() },
                        (_, _, Some(s), Some(e)) => auditlog::HoldScope::TimeRange {
                            start_ns: auditlog::parse_time("start", s, false)?,
                            end_ns: auditlog::parse_time("end", e, true)?,
                        },
                        _ => {
                            return Err(Error::Config(
                                "hold add needs --global, --user-id, or --start and --end".into(),
                            ))
                        }
                    };
                    let log = open_for_maintenance(&cli.data, write_options(&cli, &cfg)?)?;
                    let hold = log.add_hold(scope, reason)?;
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&hold).expect("hold serializes")
                    );
                }
                HoldAction::Remove { id, reason } => {
                    let log = open_for_maintenance(&cli.data, write_options(&cli, &cfg)?)?;
                    log.remove_hold(id, reason)?;
                    eprintln!("lifted legal hold {id}");
                }
            }
            Ok(0)
        }
        Command::Redact {
            seq,
            user_id,
            reason,
            content_only,
        } => {
            let log = open_for_maintenance(&cli.data, write_options(&cli, &cfg)?)?;
            let scope = if *content_only {
                auditlog::RedactionScope::Content
            } else {
                auditlog::RedactionScope::Personal
            };
            let report = match user_id {
                Some(u) if !content_only => log.redact_actor(u, reason)?,
                Some(u) => {
                    let seqs: Vec<u64> = log.export_seqs_of_actor(u)?;
                    log.redact_seqs(&seqs, reason, scope)?
                }
                None => log.redact_seqs(seq, reason, scope)?,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
            Ok(0)
        }
        #[cfg(feature = "server")]
        Command::Serve {
            listen,
            durability,
            interval_ms,
        } => {
            init_tracing();
            let d = match durability {
                DurabilityArg::Sync => Durability::Sync,
                DurabilityArg::Interval => {
                    Durability::Interval(Duration::from_millis((*interval_ms).max(1)))
                }
                DurabilityArg::Buffered => Durability::Buffered,
            };
            let opts =
                auditlog::server::log_options(&cfg, write_options(&cli, &cfg)?.durability(d));
            let listen = listen.clone().unwrap_or_else(|| cfg.server.listen.clone());
            let log = Log::open(&cli.data, opts)?;
            auditlog::server::serve_blocking(log, cfg, &listen)?;
            Ok(0)
        }
        Command::AuditHash { value } => {
            let policy = auditlog::IngestPolicy::from_config(&cfg.audit_logs)?;
            let v = match value {
                Some(v) => v.clone(),
                None => read_stdin_value("value")?,
            };
            println!("{}", policy.field_hash(v.as_bytes())?);
            Ok(0)
        }
        Command::TokenHash => {
            let t = read_stdin_value("token")?;
            println!("{}", auditlog::hex(&auditlog::digest(t.as_bytes())));
            Ok(0)
        }
        Command::Tlog(cmd) => transparency::run(cmd, &cli.data, || {
            Ok((cfg.audit_logs.key()?, write_options(&cli, &cfg)?))
        }),
        Command::Demo { .. } => unreachable!("handled above"),
        Command::Sinks {
            action: SinksAction::Status { json },
        } => {
            let log = Log::open_read_only(&cli.data, cfg.audit_logs.key()?)?;
            let st = auditlog::sink::statuses_on_disk(&cli.data, &cfg.sinks, log.next_seq())?;
            print_sink_statuses(&st, *json);
            Ok(0)
        }
        Command::Ship { poll_ms, once } => {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            watch_for_shutdown(stop.clone());
            let opts = auditlog::sink::ShipOptions {
                poll: Duration::from_millis((*poll_ms).max(10)),
                once: *once,
                alerts: cfg.alerts.clone(),
            };
            let key = cfg.audit_logs.key()?;
            let st = auditlog::sink::ship(&cli.data, &key, &cfg.sinks, &opts, &stop)?;
            print_sink_statuses(&st, false);
            Ok(if st.iter().any(|s| s.parked.is_some()) {
                1
            } else {
                0
            })
        }
    }
}

fn print_sink_statuses(st: &[auditlog::sink::SinkStatus], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(st).expect("sink statuses serialize")
        );
        return;
    }
    if st.is_empty() {
        println!("no sinks configured");
    }
    for s in st {
        let acked = s.acked_seq.map_or("-".to_string(), |a| a.to_string());
        println!(
            "{:<20} acked {acked:<10} lag {:<8} delivered {:<8} retried {:<6} filtered {:<8} {}",
            s.name,
            s.lag,
            s.delivered,
            s.retried,
            s.filtered,
            match (&s.parked, &s.last_error) {
                (Some(p), _) => format!("PARKED: {p}"),
                (None, Some(e)) => format!("ok (last error: {e})"),
                (None, None) => "ok".to_string(),
            }
        );
    }
}

/// Sets `stop` on SIGTERM or SIGINT (with the `server` feature's signal handling; without
/// it those signals end the process, which the sinks' durable cursors make safe).
fn watch_for_shutdown(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    #[cfg(feature = "server")]
    {
        let _ = std::thread::Builder::new()
            .name("ship-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(auditlog::server::shutdown_signal());
                stop.store(true, std::sync::atomic::Ordering::Release);
            });
    }
    #[cfg(not(feature = "server"))]
    let _ = stop;
}

/// Opens for writing, explaining what to do when a writer already holds the directory.
fn open_for_maintenance(dir: &Path, opts: Options) -> Result<Log, Error> {
    Log::open(dir, opts).map_err(|e| match e {
        Error::Locked { dir } => Error::Config(format!(
            "{} is held by a running writer; retention, holds and redaction need the write lock: run them from that process (the library API) or stop it first",
            dir.display()
        )),
        other => other,
    })
}

fn verify(
    log: &Log,
    external: &[Checkpoint],
    json: bool,
    check_indexes: bool,
) -> Result<i32, Error> {
    let tty = std::io::stderr().is_terminal() && !json;
    let report = if tty && check_indexes {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} verifying: {pos} records ({per_sec})",
            )
            .expect("valid template"),
        );
        let r = log.verify_with_progress(external, &|n| bar.set_position(n));
        bar.finish_and_clear();
        r?
    } else {
        log.verify_with_options(external, check_indexes)?
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        match &report.failure {
            None => println!(
                "OK: {} records in {} segments verified{}; {} checkpoints checked",
                report.records,
                report.segments,
                report.last_seq.map_or(String::new(), |l| format!(
                    " (seq {}..={l})",
                    report.first_seq.unwrap_or(0)
                )),
                report.checkpoints_checked
            ),
            Some(f) => println!("FAILED: {f}"),
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}
