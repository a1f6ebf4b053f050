//! Invariant: the engine keeps its secrets and survives a hostile file system. Data files are
//! created `0600` and directories `0700`; the key never shows in any output, error, panic
//! message or file (raw, hex or base64); keys under 32 bytes and unset `env.` variables are
//! refused with errors that say why; a second writing process is refused; a file inside the
//! data directory that is a symbolic link is refused, not followed (the data directory itself
//! may be one); and a segment truncated or resized underneath an open reader or writer gives
//! an error, never a SIGBUS crash, while a SIGBUS that is not auditlog's still behaves as if
//! auditlog were not there.
//!
//! The SIGBUS cases run in child processes (this test binary re-executed with
//! `SECURITY_CHILD_CASE` set), so a crash shows up as a failed exit status of the child.
#![cfg(feature = "cli")]

#[path = "common/cli.rs"]
mod cli_run;
use cli_run::run;
use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use auditlog::sample::Generator;
use auditlog::{
    AuditConfig, Config, Durability, Error, Event, ExportFormat, HmacKey, HoldScope, Log, Options,
    Query, RedactionScope, WritePath,
};
use chrono::{TimeZone, Utc};

/// A distinctive key: 44 bytes of text no output could contain by accident.
const KEY: &[u8] = b"SECRET-auditlog-KEY-do-not-leak-0123456789!#";
/// Another valid key (the "wrong" one).
const OTHER_KEY: &[u8] = b"a-different-key-for-the-wrong-key-errors-0000";
const SEG: u64 = 64 * 1024;

fn key() -> HmacKey {
    HmacKey::from_bytes(KEY).unwrap()
}

/// `Log::open`, retrying while the directory is locked. A test thread that starts a process
/// (the CLI tests, the SIGBUS children) gives the child copies of every open descriptor, this
/// process's lock files included, until the child execs; a reopen right after a close can
/// find its lock still held by such a child for that moment.
fn open_w(dir: impl AsRef<Path>, o: Options) -> Result<Log, Error> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Log::open(dir.as_ref(), o.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            r => return r,
        }
    }
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(SEG)
}

/// `n` events starting at the given UTC date.
fn events_at(seed: u64, n: usize, y: i32, m: u32, d: u32) -> Vec<Event> {
    let start = Utc
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    let mut g = Generator::new(seed, 50, start);
    (0..n).map(|_| g.next_event()).collect()
}

fn jsonl(evs: &[Event]) -> String {
    evs.iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect()
}

// ---------------------------------------------------------------------------------------
// Scanning for the key.

fn hex(b: &[u8], upper: bool) -> String {
    b.iter()
        .map(|x| {
            if upper {
                format!("{x:02X}")
            } else {
                format!("{x:02x}")
            }
        })
        .collect()
}

fn base64(b: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(alphabet[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The key as raw bytes, lower- and upper-case hex, and the base64 (standard and URL-safe)
/// of the key at each of the three alignments it could have inside a longer encoded blob
/// (the groups touching its neighbours are left out).
fn key_forms() -> Vec<(String, Vec<u8>)> {
    let std_alpha: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let url_alpha: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut forms = vec![
        ("raw".to_string(), KEY.to_vec()),
        ("hex".to_string(), hex(KEY, false).into_bytes()),
        ("HEX".to_string(), hex(KEY, true).into_bytes()),
    ];
    for (name, alpha) in [("base64", std_alpha), ("base64url", url_alpha)] {
        for shift in 0..3 {
            let mut b = vec![0u8; shift];
            b.extend_from_slice(KEY);
            let enc = base64(&b, alpha);
            let start = if shift == 0 { 0 } else { 4 };
            let core = &enc[start..enc.len() - 4];
            forms.push((format!("{name}+{shift}"), core.as_bytes().to_vec()));
        }
    }
    // A recognizable half of the key, in case something prints a prefix.
    forms.push(("raw prefix".to_string(), KEY[..20].to_vec()));
    forms
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len() && hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_key(what: &str, bytes: &[u8]) {
    for (form, needle) in key_forms() {
        assert!(
            !find(bytes, &needle),
            "the key ({form}) appears in {what}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
}

/// Every regular file under `dir`, recursively, not following links.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            // While a log is open its worker renames and removes files (a spare becoming a
            // segment, a temporary taking its name): one listed a moment ago may be gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", p.display()),
        };
        if m.is_dir() {
            out.extend(files_under(&p));
        } else if m.is_file() {
            out.push(p);
        }
    }
    out
}

fn assert_no_key_in_files(dir: &Path) {
    let files = files_under(dir);
    assert!(!files.is_empty());
    for f in files {
        assert_no_key(&format!("file {}", f.display()), &fs::read(&f).unwrap());
    }
}

// ---------------------------------------------------------------------------------------
// The CLI.

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env_remove("AUDITLOG_DATA").env_remove("AUDIT_HMAC_KEY");
    c
}

/// A key as text (every key here is ASCII).
fn s(key: &[u8]) -> &str {
    std::str::from_utf8(key).unwrap()
}

/// `auditlog --data DIR --segment-bytes 65536 ARGS…` with `key` in AUDIT_HMAC_KEY.
fn cli(data: &Path, key: &[u8], args: &[&str]) -> Command {
    let mut c = bin();
    c.env("AUDIT_HMAC_KEY", s(key))
        .arg("--data")
        .arg(data)
        .args(["--segment-bytes", "65536"])
        .args(args);
    c
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs, checks the outcome and that the key is in neither stream; returns the output.
fn run_checked(label: &str, cmd: Command, input: &str, want_ok: bool) -> Output {
    let o = run(cmd, input);
    assert_eq!(o.status.success(), want_ok, "{label}: {}", text(&o));
    assert_no_key(&format!("stdout of `{label}`"), &o.stdout);
    assert_no_key(&format!("stderr of `{label}`"), &o.stderr);
    o
}

// ---------------------------------------------------------------------------------------
// Permissions.

/// Every file under `dir` is 0600 and every directory (`dir` included) 0700.
fn assert_private(dir: &Path) {
    let m = fs::symlink_metadata(dir).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o700,
        "directory {} has mode {:o}",
        dir.display(),
        m.permissions().mode() & 0o7777
    );
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            assert_private(&p);
        } else {
            assert!(m.is_file(), "{} is not a regular file", p.display());
            assert_eq!(
                m.permissions().mode() & 0o7777,
                0o600,
                "file {} has mode {:o}",
                p.display(),
                m.permissions().mode() & 0o7777
            );
        }
    }
}

#[test]
fn data_files_are_0600_and_directories_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = opts().retention_days(30).archive_days(1);
    let log = open_w(&data, opts.clone()).unwrap();
    // Old events (expired by retention), then recent ones (archived), over many segments.
    for chunk in events_at(1, 600, 2020, 1, 1).chunks(100) {
        log.append_batch(chunk).unwrap();
    }
    for chunk in events_at(2, 1200, 2024, 5, 20).chunks(100) {
        log.append_batch(chunk).unwrap();
    }
    log.checkpoint().unwrap();
    // While the log is open: active segment, spare, LOCK, meta, checkpoints.
    assert_private(&data);
    // Sealing is asynchronous; a reopen finds every rolled segment sealed.
    drop(log);
    let log = open_w(&data, opts.clone()).unwrap();
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let r = log.apply_retention(now).unwrap();
    assert!(r.removed.is_some(), "{r:?}");
    let hold = log
        .add_hold(
            HoldScope::TimeRange {
                start_ns: 0,
                end_ns: 1,
            },
            "permissions test",
        )
        .unwrap();
    log.remove_hold(&hold.id, "done").unwrap();
    let a = log.archive(now).unwrap();
    assert!(!a.archived.is_empty(), "{a:?}");
    // More sealed segments in the data directory itself (with their index side files).
    for chunk in events_at(3, 600, 2024, 5, 31).chunks(100) {
        log.append_batch(chunk).unwrap();
    }
    let last = log.next_seq() - 1;
    log.redact(last - 5, "permissions test").unwrap();
    // A query loads (and rebuilds where needed) the index side files.
    let q = Query::from_params([("user_id", "user-00007")]).unwrap();
    log.query(&q).unwrap();
    drop(log);
    // Every index side file is rebuilt by a writer that needs it.
    for f in files_under(&data) {
        if f.extension().is_some_and(|e| e == "idx") {
            fs::remove_file(f).unwrap();
        }
    }
    let log = open_w(&data, opts).unwrap();
    log.query(&Query::from_params([("user_id", "user-00003")]).unwrap())
        .unwrap();
    assert!(log.verify().unwrap().ok);
    drop(log);
    let names: Vec<String> = files_under(&data)
        .iter()
        .map(|p| p.strip_prefix(&data).unwrap().display().to_string())
        .collect();
    for want in [
        "LOCK",
        "auditlog.meta",
        "checkpoints.jsonl",
        "policy.log",
        ".idx",
        ".seg",
        "archive/",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no {want} among {names:?}"
        );
    }
    assert_private(&data);
}

// ---------------------------------------------------------------------------------------
// The key stays secret.

/// Collects everything the library says, to scan it for the key.
struct Said(Vec<u8>);

impl Said {
    fn add(&mut self, what: &str, s: impl AsRef<[u8]>) {
        let s = s.as_ref();
        assert_no_key(what, s);
        self.0.extend_from_slice(s);
        self.0.push(b'\n');
    }
    fn err<T>(&mut self, what: &str, r: Result<T, Error>) -> Error {
        let e = r.err().expect(what);
        self.add(what, format!("{e}\n{e:?}"));
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            self.add(what, format!("{s}\n{s:?}"));
            src = s.source();
        }
        e
    }
}

#[test]
fn the_key_never_appears_in_library_output_errors_panics_or_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut said = Said(Vec::new());

    said.add("Debug of HmacKey", format!("{:?}", key()));
    said.add("Debug of Options", format!("{:?}", opts()));
    let literal = AuditConfig {
        hmac_key: s(KEY).to_string(),
        ..AuditConfig::default()
    };
    said.add("Debug of AuditConfig", format!("{literal:?}"));
    said.add(
        "Debug of Config",
        format!(
            "{:?}",
            Config {
                audit_logs: literal.clone(),
                ..Config::default()
            }
        ),
    );
    said.add(
        "Debug of a key from a config",
        format!("{:?}", literal.key()),
    );

    let o = opts().retention_days(30).archive_days(1);
    let log = open_w(&data, o.clone()).unwrap();
    said.add("recovery", format!("{:?}", log.recovery()));
    for chunk in events_at(1, 400, 2020, 1, 1).chunks(100) {
        said.add(
            "receipts",
            format!("{:?}", log.append_batch(chunk).unwrap()),
        );
    }
    for e in events_at(2, 800, 2024, 5, 20) {
        let r = log.append(&e).unwrap();
        said.add("receipt", format!("{r:?} {}", r.hash_string()));
    }
    let cp = log.checkpoint().unwrap();
    said.add("checkpoint", format!("{cp:?}\n{}", cp.to_json()));
    said.add("verify", format!("{:?}", log.verify().unwrap()));
    said.add(
        "verify with checkpoint",
        format!("{:?}", log.verify_with(std::slice::from_ref(&cp)).unwrap()),
    );
    said.add("stats", format!("{:?}", log.stats().unwrap()));
    said.add(
        "stats json",
        serde_json::to_string(&log.stats().unwrap()).unwrap(),
    );
    let q = Query::from_params([("event_type", "authentication"), ("limit", "5")]).unwrap();
    let page = log.query(&q).unwrap();
    said.add("page", format!("{page:?}"));
    said.add("page json", serde_json::to_string(&page).unwrap());
    let next = page.next_page.clone().expect("more than one page");
    let mut q2 = q.clone();
    q2.cursor = Some(next);
    said.add("page 2", format!("{:?}", log.query(&q2).unwrap()));
    for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
        let mut out = Vec::new();
        let sum = log.export(&Query::new(), format, &mut out).unwrap();
        said.add("export", &out);
        said.add("export summary", format!("{sum:?}"));
    }
    said.add(
        "records",
        format!("{:?}", log.iter().take(50).collect::<Vec<_>>()),
    );
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    said.add("plan", format!("{:?}", log.plan_retention(now).unwrap()));
    said.add(
        "retention",
        format!("{:?}", log.apply_retention(now).unwrap()),
    );
    let hold = log.add_hold(HoldScope::Global, "case 1").unwrap();
    said.add("hold", format!("{hold:?} {:?}", log.holds()));
    said.err("redaction under a hold", log.redact(900, "erasure"));
    log.remove_hold(&hold.id, "closed").unwrap();
    said.add(
        "redact",
        format!(
            "{:?}",
            log.redact_seqs(&[900, 901], "erasure", RedactionScope::Personal)
                .unwrap()
        ),
    );
    said.add("archive", format!("{:?}", log.archive(now).unwrap()));
    said.add("last run", format!("{:?}", log.last_retention_run()));

    // Errors.
    said.err("second open", Log::open(&data, o.clone()));
    said.err(
        "wrong key (read-only)",
        Log::open_read_only(&data, HmacKey::from_bytes(OTHER_KEY).unwrap()),
    );
    said.err("short key", HmacKey::from_bytes(&KEY[..31]));
    said.err(
        "short literal key",
        HmacKey::from_config_value(s(&KEY[..31])),
    );
    said.err(
        "unset variable",
        HmacKey::from_config_value("env.AUDITLOG_SECURITY_TEST_UNSET_VARIABLE"),
    );
    said.err(
        "bad option",
        open_w(tmp.path().join("x"), opts().segment_bytes(1)),
    );
    let mut bad = Event::new("", "x");
    bad.status = String::new();
    said.err("invalid event", log.append(&bad));
    let mut q3 = q.clone();
    q3.cursor = Some("bm90IGEgY3Vyc29y".into());
    said.err("bad cursor", log.query(&q3));
    said.err("bad query", Query::from_params([("severity", "urgent")]));
    let ro = Log::open_read_only(&data, key()).unwrap();
    said.err(
        "append to read-only",
        ro.append(&events_at(3, 1, 2024, 5, 21)[0]),
    );
    said.add("read-only verify", format!("{:?}", ro.verify().unwrap()));
    said.add(
        "read-only checkpoint",
        format!("{:?}", ro.checkpoint().unwrap()),
    );
    drop(ro);
    drop(log);
    said.err(
        "wrong key",
        open_w(&data, Options::new(HmacKey::from_bytes(OTHER_KEY).unwrap())),
    );
    // A panic on an error (`unwrap`) shows the error's Debug: capture that message.
    let panicked = std::panic::catch_unwind(|| {
        Log::open_read_only(&data, HmacKey::from_bytes(OTHER_KEY).unwrap()).unwrap();
    })
    .expect_err("unwrap of an error panics");
    let msg = panicked
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panicked.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("WrongKey"), "{msg}");
    said.add("panic message", msg);
    let panicked = std::panic::catch_unwind(|| {
        HmacKey::from_config_value(s(&KEY[..31])).unwrap();
    })
    .expect_err("unwrap of an error panics");
    said.add(
        "panic message",
        panicked
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    );

    assert!(said.0.len() > 10_000, "the scan saw little output");
    assert_no_key_in_files(&data);
}

#[test]
fn the_key_never_appears_in_cli_output_or_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut input = jsonl(&events_at(1, 600, 2020, 1, 1));
    input.push_str(&jsonl(&events_at(2, 900, 2024, 5, 20)));
    let k = KEY;
    run_checked(
        "append --receipts",
        cli(&data, k, &["append", "--receipts"]),
        &input,
        true,
    );
    // The key through a config's `env.` reference, and as a literal in the config.
    let cfg_env = tmp.path().join("env.json");
    fs::write(
        &cfg_env,
        r#"{"audit_logs":{"hmac_key":"env.SECURITY_TEST_KEY","retention_days":30}}"#,
    )
    .unwrap();
    let cfg_literal = tmp.path().join("literal.json");
    fs::write(
        &cfg_literal,
        format!(
            r#"{{"audit_logs":{{"hmac_key":"{}","retention_days":30}}}}"#,
            s(KEY)
        ),
    )
    .unwrap();
    let cfg_broken = tmp.path().join("broken.json");
    fs::write(
        &cfg_broken,
        format!(
            r#"{{"audit_logs":{{"hmac_key":"{}","retention_days":"thirty"}}}}"#,
            s(KEY)
        ),
    )
    .unwrap();
    let with_env = |args: &[&str]| {
        let mut c = bin();
        c.env("SECURITY_TEST_KEY", s(KEY))
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&cfg_env)
            .args(args);
        c
    };
    let with_literal = |args: &[&str]| {
        let mut c = bin();
        c.arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&cfg_literal)
            .args(args);
        c
    };
    let cp = tmp.path().join("cp.json");
    let cp_s = cp.to_str().unwrap();
    let export = tmp.path().join("export.csv");
    let export_s = export.to_str().unwrap();
    let ok_runs: Vec<(&str, Command)> = vec![
        ("verify", cli(&data, k, &["verify"])),
        ("verify --json", cli(&data, k, &["verify", "--json"])),
        ("checkpoint", cli(&data, k, &["checkpoint", "--out", cp_s])),
        (
            "verify --checkpoint",
            cli(&data, k, &["verify", "--checkpoint", cp_s]),
        ),
        ("stats", cli(&data, k, &["stats"])),
        ("stats --json", cli(&data, k, &["stats", "--json"])),
        (
            "query",
            cli(&data, k, &["query", "--event-type", "authentication"]),
        ),
        ("query --ndjson", cli(&data, k, &["query", "--ndjson"])),
        ("export", cli(&data, k, &["export"])),
        (
            "export csv",
            cli(&data, k, &["export", "--format", "csv", "--out", export_s]),
        ),
        ("env. config: stats", with_env(&["stats", "--json"])),
        (
            "literal config: verify",
            with_literal(&["verify", "--json"]),
        ),
        (
            "retention --dry-run",
            with_env(&["retention", "--dry-run", "--now", "2024-06-01"]),
        ),
        (
            "hold add",
            with_env(&[
                "hold",
                "add",
                "--start",
                "2000-01-01",
                "--end",
                "2000-01-02",
                "--reason",
                "cli test",
            ]),
        ),
        ("hold list", with_env(&["hold", "list"])),
        ("retention", with_env(&["retention", "--now", "2024-06-01"])),
        (
            "redact",
            with_env(&["redact", "--seq", "1000", "--reason", "erasure"]),
        ),
        (
            "archive",
            with_env(&["archive", "--archive-days", "1", "--now", "2024-06-01"]),
        ),
        ("verify after maintenance", with_literal(&["verify"])),
    ];
    for (label, cmd) in ok_runs {
        run_checked(label, cmd, "", true);
    }
    // Failing commands.
    let wrong = OTHER_KEY;
    let fail_runs: Vec<(&str, Command, &str)> = vec![
        ("verify, wrong key", cli(&data, wrong, &["verify"]), ""),
        ("append, wrong key", cli(&data, wrong, &["append"]), "{}\n"),
        ("stats, wrong key", cli(&data, wrong, &["stats"]), ""),
        ("verify, short key", cli(&data, &KEY[..31], &["verify"]), ""),
        (
            "append, malformed line",
            cli(&data, k, &["append"]),
            "{\"event_type\": \n",
        ),
        (
            "query, bad cursor",
            cli(&data, k, &["query", "--cursor", "garbage"]),
            "",
        ),
        (
            "broken config",
            {
                let mut c = bin();
                c.arg("--data")
                    .arg(&data)
                    .arg("--config")
                    .arg(&cfg_broken)
                    .arg("verify");
                c
            },
            "",
        ),
        (
            "bad segment size",
            {
                let mut c = cli(&tmp.path().join("other"), k, &["append"]);
                c.args(["--segment-bytes", "1"]);
                c
            },
            "",
        ),
    ];
    for (label, cmd, input) in fail_runs {
        run_checked(label, cmd, input, false);
    }
    assert_no_key("checkpoint file", &fs::read(&cp).unwrap());
    assert_no_key("export file", &fs::read(&export).unwrap());
    assert_no_key_in_files(&data);
}

// ---------------------------------------------------------------------------------------
// Key rules.

#[test]
fn short_keys_and_unset_variables_are_refused() {
    let e = HmacKey::from_bytes(&KEY[..31]).unwrap_err().to_string();
    assert!(e.contains("31 bytes") && e.contains("minimum is 32"), "{e}");
    HmacKey::from_bytes(&KEY[..32]).unwrap();
    let e = HmacKey::from_config_value("short literal key").unwrap_err();
    assert!(e.to_string().contains("minimum is 32"), "{e}");
    let e = HmacKey::from_config_value("env.AUDITLOG_SECURITY_TEST_UNSET")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("AUDITLOG_SECURITY_TEST_UNSET") && e.contains("not set"),
        "{e}"
    );
    let e = HmacKey::from_env("AUDITLOG_SECURITY_TEST_UNSET")
        .unwrap_err()
        .to_string();
    assert!(e.contains("AUDITLOG_SECURITY_TEST_UNSET"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let line = jsonl(&events_at(1, 1, 2024, 1, 1));
    // A 31-byte key from the environment.
    let o = run(cli(&data, &KEY[..31], &["append"]), &line);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("AUDIT_HMAC_KEY") && err.contains("minimum is 32"),
        "{err}"
    );
    // No key at all.
    let mut c = bin();
    c.arg("--data").arg(&data).arg("append");
    let o = run(c, &line);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err.contains("AUDIT_HMAC_KEY") && err.contains("not set"),
        "{err}"
    );
    // A config naming an unset variable.
    let cfg = tmp.path().join("config.json");
    fs::write(
        &cfg,
        r#"{"audit_logs":{"hmac_key":"env.AUDITLOG_SECURITY_TEST_UNSET"}}"#,
    )
    .unwrap();
    for cmd in [&["append"][..], &["verify"][..]] {
        let mut c = bin();
        c.env("AUDIT_HMAC_KEY", s(KEY))
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .args(cmd);
        let o = run(c, &line);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            err.contains("AUDITLOG_SECURITY_TEST_UNSET") && err.contains("not set"),
            "{err}"
        );
    }
    // A short literal key in the config.
    fs::write(&cfg, r#"{"audit_logs":{"hmac_key":"too short"}}"#).unwrap();
    let mut c = bin();
    c.arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&cfg)
        .arg("append");
    let o = run(c, &line);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("minimum is 32"),
        "{}",
        text(&o)
    );
    // Nothing was created by any of the refused commands.
    assert!(!data.exists());
}

// ---------------------------------------------------------------------------------------
// One writer.

#[test]
fn a_second_writing_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = open_w(&data, opts()).unwrap();
    log.append_batch(&events_at(1, 10, 2024, 1, 1)).unwrap();
    log.flush().unwrap();
    let line = jsonl(&events_at(2, 3, 2024, 1, 2));
    let o = run(cli(&data, KEY, &["append"]), &line);
    assert!(!o.status.success(), "{}", text(&o));
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("locked"), "{err}");
    // In-process too.
    match Log::open(&data, opts()) {
        Err(Error::Locked { dir }) => assert_eq!(dir, data),
        Err(e) => panic!("second open: {e}"),
        Ok(_) => panic!("a second writer was let in"),
    }
    // Readers are not writers: they still run beside it.
    let o = run(cli(&data, KEY, &["verify"]), "");
    assert!(o.status.success(), "{}", text(&o));
    // Nothing of the refused append reached the log.
    assert_eq!(log.next_seq(), 10);
    drop(log);
    // Retried while locked: see `open_w`.
    let deadline = Instant::now() + Duration::from_secs(10);
    let o = loop {
        let o = run(cli(&data, KEY, &["append"]), &line);
        if o.status.success()
            || !String::from_utf8_lossy(&o.stderr).contains("locked")
            || Instant::now() > deadline
        {
            break o;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(o.status.success(), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------
// Symbolic links.

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Replaces `path` by a symbolic link to a copy of it outside the data directory; returns
/// the copy.
fn replace_with_link(path: &Path, outside: &Path) -> PathBuf {
    let copy = outside.join(path.file_name().unwrap());
    fs::copy(path, &copy).unwrap();
    fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink(&copy, path).unwrap();
    copy
}

fn restore(path: &Path, copy: &Path) {
    fs::remove_file(path).unwrap();
    fs::copy(copy, path).unwrap();
}

fn assert_refused_link(what: &str, r: Result<Log, Error>, name: &str) {
    let e = match r {
        Ok(_) => panic!("{what}: a symbolic link was followed"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("symbolic link") && e.contains(name),
        "{what}: {e}"
    );
}

#[test]
fn symbolic_links_inside_the_data_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let o = opts().archive_days(1);
    {
        let log = open_w(&real, o.clone()).unwrap();
        for chunk in events_at(1, 1500, 2024, 1, 1).chunks(100) {
            log.append_batch(chunk).unwrap();
        }
    }
    // The data directory itself may be a link.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(
        Log::open_read_only(&link, key())
            .unwrap()
            .verify()
            .unwrap()
            .ok
    );
    drop(open_w(&link, o.clone()).unwrap());

    // A sealed segment replaced by a link.
    let segs = segment_files(&real);
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[1];
    let name = victim.file_name().unwrap().to_str().unwrap().to_string();
    let copy = replace_with_link(victim, &outside);
    assert_refused_link("open", open_w(&real, o.clone()), &name);
    assert_refused_link("read-only open", Log::open_read_only(&real, key()), &name);
    let out = run(cli(&real, KEY, &["verify"]), "");
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("symbolic link") && err.contains(&name),
        "{err}"
    );
    restore(victim, &copy);
    // The active (last) segment too.
    let last = segs.last().unwrap();
    let lname = last.file_name().unwrap().to_str().unwrap().to_string();
    let copy = replace_with_link(last, &outside);
    assert_refused_link("open, active segment", open_w(&real, o.clone()), &lname);
    assert_refused_link(
        "read-only open, active segment",
        Log::open_read_only(&real, key()),
        &lname,
    );
    restore(last, &copy);

    // The meta file.
    let p = real.join(auditlog::META_FILE);
    let copy = replace_with_link(&p, &outside);
    assert_refused_link("meta", open_w(&real, o.clone()), auditlog::META_FILE);
    assert_refused_link(
        "meta",
        Log::open_read_only(&real, key()),
        auditlog::META_FILE,
    );
    restore(&p, &copy);
    // The checkpoint log, which readers read (a writer only appends to it).
    let p = real.join(auditlog::CHECKPOINT_FILE);
    let copy = replace_with_link(&p, &outside);
    assert_refused_link(
        "checkpoints",
        Log::open_read_only(&real, key()),
        auditlog::CHECKPOINT_FILE,
    );
    // A writer never appends through the link: its checkpoint fails, naming the file, and the
    // link's target is unchanged.
    let before = fs::read(&copy).unwrap();
    if let Ok(log) = open_w(&real, o.clone()) {
        let e = log.checkpoint().unwrap_err().to_string();
        assert!(e.contains(auditlog::CHECKPOINT_FILE), "{e}");
        drop(log);
    }
    assert_eq!(fs::read(&copy).unwrap(), before, "written through the link");
    restore(&p, &copy);
    // Nor is the lock file followed.
    let p = real.join(auditlog::LOCK_FILE);
    let target = outside.join("LOCK");
    fs::write(&target, b"").unwrap();
    fs::remove_file(&p).unwrap();
    std::os::unix::fs::symlink(&target, &p).unwrap();
    let e = open_w(&real, o.clone())
        .err()
        .expect("a linked LOCK is refused");
    assert!(e.to_string().contains(auditlog::LOCK_FILE), "{e}");
    fs::remove_file(&p).unwrap();

    // An index side file that is a link is not read (the index is rebuilt from the segment)
    // and its target is never written.
    let idx = victim.with_extension("idx");
    assert!(idx.exists());
    let target = outside.join("bogus.idx");
    fs::write(&target, b"not an index").unwrap();
    fs::remove_file(&idx).unwrap();
    std::os::unix::fs::symlink(&target, &idx).unwrap();
    let q = Query::from_params([("user_id", "user-00007"), ("limit", "10000")]).unwrap();
    let want = {
        let ro = Log::open_read_only(&real, key()).unwrap();
        ro.query(&q).unwrap().total_count
    };
    assert!(want > 0);
    let log = open_w(&real, o.clone()).unwrap();
    assert_eq!(log.query(&q).unwrap().total_count, want);
    drop(log);
    assert_eq!(fs::read(&target).unwrap(), b"not an index");

    // policy.log (created by a hold).
    {
        let log = open_w(&real, o.clone()).unwrap();
        let h = log.add_hold(HoldScope::Global, "link test").unwrap();
        log.remove_hold(&h.id, "done").unwrap();
    }
    let p = real.join(auditlog::POLICY_FILE);
    let copy = replace_with_link(&p, &outside);
    assert_refused_link(
        "policy.log",
        open_w(&real, o.clone()),
        auditlog::POLICY_FILE,
    );
    assert_refused_link(
        "policy.log",
        Log::open_read_only(&real, key()),
        auditlog::POLICY_FILE,
    );
    restore(&p, &copy);

    // Archived segments, and the archive directory.
    {
        let log = open_w(&real, o.clone()).unwrap();
        let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        assert!(!log.archive(now).unwrap().archived.is_empty());
    }
    let adir = real.join("archive");
    let archived: Vec<PathBuf> = fs::read_dir(&adir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let a = &archived[0];
    let aname = a.file_name().unwrap().to_str().unwrap().to_string();
    let copy = replace_with_link(a, &outside);
    assert_refused_link("archived segment", open_w(&real, o.clone()), &aname);
    assert_refused_link(
        "archived segment",
        Log::open_read_only(&real, key()),
        &aname,
    );
    restore(a, &copy);
    let moved = tmp.path().join("archive-elsewhere");
    fs::rename(&adir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &adir).unwrap();
    assert_refused_link("archive directory", open_w(&real, o.clone()), "archive");
    assert_refused_link(
        "archive directory",
        Log::open_read_only(&real, key()),
        "archive",
    );
    fs::remove_file(&adir).unwrap();
    fs::rename(&moved, &adir).unwrap();

    // A FIFO under a segment name neither blocks nor is read.
    let fifo = real.join("00000000000099999999.seg");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let e = Log::open_read_only(&real, key())
            .err()
            .expect("a FIFO segment is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::remove_file(&fifo).unwrap();
    }

    // Everything restored: the log is whole again.
    let log = open_w(&real, o).unwrap();
    assert!(log.verify().unwrap().ok);
}

// ---------------------------------------------------------------------------------------
// SIGBUS: files truncated or resized underneath a reader or the writer.

const CHILD_CASE: &str = "SECURITY_CHILD_CASE";
const CHILD_DIR: &str = "SECURITY_CHILD_DIR";

/// Runs `case` in a child process; returns its output.
fn child(case: &str, dir: &Path) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "security_child", "--nocapture", "--ignored"])
        .env(CHILD_CASE, case)
        .env(CHILD_DIR, dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn child_ok(case: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let o = child(case, tmp.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains(&format!("CHILD {case} OK")),
        "child {case} failed (a signal here is the crash the guard must prevent: {:?}):\n{}",
        o.status.signal(),
        text(&o)
    );
}

#[test]
fn truncated_sealed_segment_under_a_writer_is_an_error_not_a_crash() {
    child_ok("sealed-writer");
}

#[test]
fn truncated_sealed_segment_under_a_read_only_log_is_an_error_not_a_crash() {
    child_ok("sealed-read-only");
}

#[test]
fn resized_sealed_segment_is_an_error() {
    child_ok("sealed-grown");
}

#[test]
fn truncated_active_segment_poisons_the_writer() {
    child_ok("active-mmap");
    child_ok("active-pwrite");
}

#[test]
fn a_sigbus_that_is_not_auditlogs_behaves_as_without_auditlog() {
    let tmp = tempfile::tempdir().unwrap();
    // A fault on a map of someone else's: the process dies of SIGBUS, with or without the
    // guard installed.
    let o = child("foreign-fault-baseline", tmp.path());
    assert_eq!(o.status.signal(), Some(libc::SIGBUS), "{}", text(&o));
    let o = child("foreign-fault", tmp.path());
    assert_eq!(
        o.status.signal(),
        Some(libc::SIGBUS),
        "a foreign SIGBUS must still kill the process:\n{}",
        text(&o)
    );
    // A SIGBUS sent by `raise`: whatever the runtime's own handler makes of it, the same
    // with the guard installed.
    let base = child("foreign-raise-baseline", tmp.path());
    let with = child("foreign-raise", tmp.path());
    assert!(
        with.status.signal().is_none_or(|s| s == libc::SIGBUS),
        "{}",
        text(&with)
    );
    assert_eq!(
        (base.status.code(), base.status.signal()),
        (with.status.code(), with.status.signal()),
        "baseline: {}\nwith auditlog: {}",
        text(&base),
        text(&with)
    );
}

#[test]
fn an_applications_own_sigbus_handler_still_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for case in ["app-handler-fault", "app-handler-raise"] {
        let o = child(case, tmp.path());
        assert_eq!(o.status.code(), Some(42), "child {case}:\n{}", text(&o));
    }
}

/// Writes a log of several sealed segments and closes it; returns a middle sealed segment.
fn sealed_log(dir: &Path) -> PathBuf {
    {
        let log = open_w(dir, opts()).unwrap();
        for chunk in events_at(1, 1500, 2024, 1, 1).chunks(100) {
            log.append_batch(chunk).unwrap();
        }
    }
    let segs = segment_files(dir);
    assert!(segs.len() >= 4, "{segs:?}");
    segs[1].clone()
}

fn set_len(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn expect_truncation_error(what: &str, r: Result<impl std::fmt::Debug, Error>, name: &str) {
    match r {
        Ok(v) => panic!("{what}: no error after a truncation: {v:?}"),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.contains("truncated or resized underneath") && m.contains(name),
                "{what}: {m}"
            );
        }
    }
}

/// Every read path over a log whose segment `victim` was cut to 4 KiB after it was opened.
fn reads_fail_after_truncation(log: &Log, victim: &Path) {
    let name = victim.file_name().unwrap().to_str().unwrap();
    // Load every index while the file is whole, so later reads go through the map.
    let all = Query::from_params([("limit", "10000"), ("order", "asc")]).unwrap();
    let before = log.query(&all).unwrap();
    let victim_seq = {
        let first: u64 = name.trim_end_matches(".seg").parse().unwrap();
        first + 3
    };
    set_len(victim, 4096);
    // The first read that touches the cut pages faults: it must come back as an error.
    let mut out = Vec::new();
    expect_truncation_error(
        "export",
        log.export(&Query::new(), ExportFormat::Jsonl, &mut out),
        name,
    );
    expect_truncation_error("get", log.get(victim_seq), name);
    expect_truncation_error("query", log.query(&all), name);
    expect_truncation_error("verify", log.verify(), name);
    let errs: Vec<String> = log
        .iter()
        .filter_map(|r| r.err())
        .map(|e| e.to_string())
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.contains("truncated or resized underneath") && e.contains(name)),
        "iter: {errs:?}"
    );
    assert!(before.total_count > 0);
}

#[test]
#[ignore = "child process of the SIGBUS tests; does nothing unless SECURITY_CHILD_CASE is set"]
fn security_child() {
    let (Ok(case), Some(dir)) = (std::env::var(CHILD_CASE), std::env::var_os(CHILD_DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir).join("data");
    match case.as_str() {
        "sealed-writer" => {
            let victim = sealed_log(&dir);
            let log = open_w(&dir, opts()).unwrap();
            reads_fail_after_truncation(&log, &victim);
            // Appends go to the active segment, which is intact.
            log.append(&events_at(9, 1, 2024, 2, 1)[0]).unwrap();
        }
        "sealed-read-only" => {
            let victim = sealed_log(&dir);
            let log = Log::open_read_only(&dir, key()).unwrap();
            reads_fail_after_truncation(&log, &victim);
            // A fresh reader sees the damage on disk for what it is.
            let fresh = Log::open_read_only(&dir, key()).unwrap();
            assert!(!fresh.verify().unwrap().ok);
        }
        "sealed-grown" => {
            let victim = sealed_log(&dir);
            let name = victim.file_name().unwrap().to_str().unwrap().to_string();
            let log = Log::open_read_only(&dir, key()).unwrap();
            let len = fs::metadata(&victim).unwrap().len();
            set_len(&victim, len + 4096);
            expect_truncation_error("verify", log.verify(), &name);
            expect_truncation_error("query", log.query(&Query::new()), &name);
            // Cut below the map, before anything was read through it: verify faults.
            set_len(&victim, len);
            let log = Log::open_read_only(&dir, key()).unwrap();
            assert!(log.verify().unwrap().ok);
            set_len(&victim, 0);
            expect_truncation_error("verify", log.verify(), &name);
        }
        "active-mmap" | "active-pwrite" => {
            let path = if case == "active-mmap" {
                WritePath::Mmap
            } else {
                WritePath::Pwrite
            };
            let durability = if case == "active-mmap" {
                Durability::Buffered
            } else {
                Durability::Sync
            };
            let log = open_w(&dir, opts().durability(durability).write_path(path)).unwrap();
            log.append_batch(&events_at(1, 60, 2024, 1, 1)).unwrap();
            log.flush().unwrap();
            let active = segment_files(&dir).pop().unwrap();
            let name = active.file_name().unwrap().to_str().unwrap().to_string();
            set_len(&active, 4096);
            let mut first_err = None;
            for e in events_at(2, 20, 2024, 1, 2) {
                if let Err(err) = log.append(&e).and_then(|_| log.flush()) {
                    first_err = Some(err);
                    break;
                }
            }
            let e = first_err.expect("an append after the truncation fails");
            let m = e.to_string();
            assert!(
                m.contains("truncated underneath the writer") && m.contains(&name),
                "{m}"
            );
            // Poisoned: nothing more is acknowledged.
            let again = log.append(&events_at(3, 1, 2024, 1, 3)[0]).unwrap_err();
            assert!(matches!(again, Error::Poisoned(_)), "{again}");
            // Readers of the writer's own map fail too (the mmap case faulted already).
            if case == "active-mmap" {
                let mut out = Vec::new();
                expect_truncation_error(
                    "export",
                    log.export(&Query::new(), ExportFormat::Jsonl, &mut out),
                    &name,
                );
            }
        }
        "foreign-fault" | "foreign-fault-baseline" | "app-handler-fault" => {
            if case == "app-handler-fault" {
                install_exit_42_handler();
            }
            // The guard is installed by the first map.
            let _log = (case != "foreign-fault-baseline").then(|| open_w(&dir, opts()).unwrap());
            let f = tempfile::tempfile().unwrap();
            f.set_len(8192).unwrap();
            // SAFETY: maps a private file of this test read-only, then reads it after cutting
            // it: the point is the SIGBUS, which must not be swallowed by auditlog's handler.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    8192,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    std::os::unix::io::AsRawFd::as_raw_fd(&f),
                    0,
                );
                assert_ne!(p, libc::MAP_FAILED);
                f.set_len(0).unwrap();
                let v = std::ptr::read_volatile((p as *const u8).add(4096));
                println!("read {v} after the truncation: no SIGBUS");
            }
            return;
        }
        "foreign-raise" | "foreign-raise-baseline" | "app-handler-raise" => {
            if case == "app-handler-raise" {
                install_exit_42_handler();
            }
            let _log = (case != "foreign-raise-baseline").then(|| open_w(&dir, opts()).unwrap());
            // SAFETY: raise has no preconditions.
            unsafe {
                libc::raise(libc::SIGBUS);
            }
            println!("survived a raised SIGBUS");
            return;
        }
        other => panic!("unknown child case {other}"),
    }
    println!("CHILD {case} OK");
}

extern "C" fn exit_42(_: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(42) }
}

fn install_exit_42_handler() {
    // SAFETY: installs a plain handler for SIGBUS in this child process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = exit_42 as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()), 0);
    }
}
