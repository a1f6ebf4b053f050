//! Invariant: the `auditlog` binary does what DESIGN.md's CLI contract says: `append` stores
//! JSON Lines (with receipts once durable, naming a malformed line and keeping the lines before
//! it), `verify` exits 0 only on an intact log, `checkpoint` and `verify --checkpoint` catch a
//! rollback, `stats --json` has the documented shape, and the key comes from the config's
//! `env.` variable with clear errors when it is missing.
#![cfg(feature = "cli")]

mod common;

#[path = "common/cli.rs"]
mod cli_run;
use cli_run::run;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use auditlog::{Checkpoint, HmacKey, Log};
use serde_json::Value;

const KEY: &str = "cli-test-key-0123456789-abcdefghijklmnopq";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env_remove("AUDITLOG_DATA").env_remove("AUDIT_HMAC_KEY");
    c
}

/// `auditlog --data DIR --segment-bytes 65536 ARGS…` with the test key in AUDIT_HMAC_KEY.
///
/// Small segments keep the tests fast: the active segment is preallocated to the segment size
/// (64 MiB by default), and a debug build takes a while to create and to scan that.
fn cli(data: &Path, args: &[&str]) -> Command {
    let mut c = cli_default_size(data, args);
    c.args(["--segment-bytes", "65536"]);
    c
}

/// `auditlog --data DIR ARGS…` with the default segment size.
fn cli_default_size(data: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.env("AUDIT_HMAC_KEY", KEY)
        .arg("--data")
        .arg(data)
        .args(args);
    c
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn key() -> HmacKey {
    HmacKey::from_bytes(KEY.as_bytes()).unwrap()
}

/// `n` events as JSON Lines.
fn lines(seed: u64, n: usize) -> Vec<String> {
    common::events(seed, n)
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect()
}

fn jsonl(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn stats(data: &Path) -> Value {
    let o = run(cli(data, &["stats", "--json"]), "");
    ok(&o);
    serde_json::from_str(&stdout(&o)).expect("stats --json prints JSON")
}

fn append(data: &Path, input: &str, extra: &[&str]) -> Output {
    let mut args = vec!["append"];
    args.extend_from_slice(extra);
    run(cli(data, &args), input)
}

#[test]
fn append_prints_one_receipt_per_event_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut input = lines(1, 5);
    // An event without an id gets one generated, and the receipt says which.
    input
        .push(r#"{"event_type":"authentication","action":"user_login","status":"success"}"#.into());
    // The default segment size, once.
    let o = run(
        cli_default_size(&data, &["append", "--receipts"]),
        &jsonl(&input),
    );
    ok(&o);
    assert!(stderr(&o).contains("appended 6 events"), "{}", stderr(&o));
    let receipts: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each receipt line is JSON"))
        .collect();
    assert_eq!(receipts.len(), 6);

    let log = Log::open_read_only(&data, key()).unwrap();
    let events = common::events(1, 5);
    for (i, r) in receipts.iter().enumerate() {
        let obj = r.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["event_id", "hash", "seq"]);
        assert!(r["seq"].is_u64(), "seq is an integer: {r}");
        assert_eq!(r["seq"].as_u64(), Some(i as u64));
        let stored = log.get(i as u64).unwrap().expect("the record is stored");
        assert_eq!(
            r["hash"].as_str().unwrap(),
            format!("hmac-sha256:{}", auditlog::hex(&stored.hash))
        );
        assert_eq!(
            r["event_id"].as_str(),
            stored.event.event_id.as_deref(),
            "receipt {i}"
        );
        if i < 5 {
            assert_eq!(r["event_id"].as_str(), events[i].event_id.as_deref());
            assert_eq!(stored.event, events[i]);
        }
    }
    let generated = receipts[5]["event_id"].as_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert!(log.verify().unwrap().ok);
}

#[test]
fn malformed_line_is_named_and_earlier_lines_are_kept() {
    for bad in [
        "{not json",
        r#"{"event_type":"authentication","action":""}"#,
        r#"{"event_type":"a","action":"b","severity":"urgent"}"#,
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let mut input = lines(2, 2);
        input.push(bad.to_string());
        input.extend(lines(3, 2));
        let o = append(&data, &jsonl(&input), &["--receipts"]);
        assert!(!o.status.success(), "{bad}: exit 0");
        assert!(stderr(&o).contains("line 3"), "{bad}: {}", stderr(&o));
        // The receipts of the two stored lines were printed.
        assert_eq!(stdout(&o).lines().count(), 2, "{bad}: {}", stdout(&o));

        let s = stats(&data);
        assert_eq!(s["events"], 2, "{s}");
        assert_eq!(s["first_seq"], 0, "{s}");
        assert_eq!(s["last_seq"], 1, "{s}");
        assert!(s["segments"].as_u64().unwrap() >= 1);
        assert!(s["bytes"].as_u64().unwrap() > 0);
        let files = s["segment_files"].as_array().unwrap();
        assert!(!files.is_empty());
        for f in files {
            let f = f.as_str().unwrap();
            assert!(f.ends_with(".seg"), "{f}");
            assert!(!Path::new(f).is_absolute(), "{f}");
            assert!(data.join(f).is_file(), "{f}");
        }
    }
}

#[test]
fn verify_exit_status_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&append(&data, &jsonl(&lines(4, 50)), &[]));

    let o = run(cli(&data, &["verify"]), "");
    ok(&o);
    assert!(stdout(&o).contains("OK"), "{}", stdout(&o));
    let o = run(cli(&data, &["verify", "--json"]), "");
    ok(&o);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["records"], 50, "{r}");
    assert!(r["failure"].is_null(), "{r}");

    // Damage one record in the middle of the segment.
    let seg = common::layouts(&data).pop().unwrap();
    let frame = seg.frames[20];
    common::xor_byte(&seg.path, frame.offset + 50, 0x10);
    let before = common::snapshot(&data);

    let o = run(cli(&data, &["verify"]), "");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("corrupt frame"), "{out}");
    assert!(out.contains(&seg.name), "{out}");
    assert!(out.contains(&format!("seq {}", frame.seq)), "{out}");

    let o = run(cli(&data, &["verify", "--json"]), "");
    assert_eq!(o.status.code(), Some(1));
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["failure"]["kind"], "corrupt_frame", "{r}");
    assert_eq!(r["failure"]["seq"], frame.seq, "{r}");
    assert_eq!(r["failure"]["segment"], seg.name.as_str(), "{r}");
    assert_eq!(r["failure"]["offset"], frame.offset as u64, "{r}");

    // Verify never writes to the data directory.
    assert!(
        before == common::snapshot(&data),
        "verify changed the files"
    );
}

#[test]
fn checkpoint_and_verify_against_it_catch_a_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ok(&append(&data, &jsonl(&lines(5, 10)), &[]));
    let old = tmp.path().join("old");
    common::copy_dir(&data, &old);
    ok(&append(&data, &jsonl(&lines(6, 5)), &[]));

    let cp_file = tmp.path().join("cp.json");
    let o = run(
        cli(&data, &["checkpoint", "--out", cp_file.to_str().unwrap()]),
        "",
    );
    ok(&o);
    let printed = Checkpoint::from_json(&stdout(&o)).expect("checkpoint prints a checkpoint");
    assert_eq!(printed.seq, 14);
    assert_eq!(printed.count, 15);
    let saved = Checkpoint::from_json(&std::fs::read_to_string(&cp_file).unwrap()).unwrap();
    assert_eq!(saved, printed);
    assert_eq!(
        printed.log_id,
        Log::open_read_only(&data, key()).unwrap().log_id()
    );

    let cp_arg = cp_file.to_str().unwrap();
    let o = run(
        cli(&data, &["verify", "--checkpoint", cp_arg, "--json"]),
        "",
    );
    ok(&o);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["ok"], true);
    assert!(r["checkpoints_checked"].as_u64().unwrap() >= 1);

    // The directory rolled back to the copy taken before the last five events.
    let o = run(cli(&old, &["verify"]), "");
    ok(&o);
    let o = run(cli(&old, &["verify", "--checkpoint", cp_arg]), "");
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("truncated"), "{}", stdout(&o));
    let o = run(cli(&old, &["verify", "--checkpoint", cp_arg, "--json"]), "");
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["failure"]["kind"], "truncated", "{r}");
    assert_eq!(r["failure"]["seq"], 10, "{r}");

    // An edited checkpoint file.
    let edited = tmp.path().join("edited.json");
    let text = std::fs::read_to_string(&cp_file)
        .unwrap()
        .replace("\"seq\":14", "\"seq\":13")
        .replace("\"count\":15", "\"count\":14");
    std::fs::write(&edited, text).unwrap();
    let o = run(
        cli(&data, &["verify", "--checkpoint", edited.to_str().unwrap()]),
        "",
    );
    assert!(!o.status.success());
    assert!(stdout(&o).contains("bad checkpoint"), "{}", stdout(&o));

    // A file that is not a checkpoint at all.
    let junk = tmp.path().join("junk.json");
    std::fs::write(&junk, "hello").unwrap();
    let o = run(
        cli(&data, &["verify", "--checkpoint", junk.to_str().unwrap()]),
        "",
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("junk.json"), "{}", stderr(&o));
}

#[test]
fn config_file_names_the_key_variable() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"audit_logs":{"hmac_key":"env.OTHER_VAR","retention_days":0}}"#,
    )
    .unwrap();
    let other = "another-key-from-OTHER_VAR-0123456789abcdef";
    let with_config = |args: &[&str]| {
        let mut c = bin();
        c.env("OTHER_VAR", other)
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .args(["--segment-bytes", "65536"])
            .args(args);
        c
    };
    ok(&run(with_config(&["append"]), &jsonl(&lines(7, 8))));
    let o = run(with_config(&["verify", "--json"]), "");
    ok(&o);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["records"], 8);
    // The log was written with OTHER_VAR's key…
    let log = Log::open_read_only(&data, HmacKey::from_bytes(other.as_bytes()).unwrap()).unwrap();
    assert_eq!(log.iter().count(), 8);
    // …so AUDIT_HMAC_KEY (the default without the config) is the wrong key for it.
    let o = run(cli(&data, &["verify"]), "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));

    // With OTHER_VAR unset, the error names it.
    let mut c = with_config(&["verify"]);
    c.env_remove("OTHER_VAR");
    let o = run(c, "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("OTHER_VAR"), "{}", stderr(&o));

    // `disabled` refuses appends.
    let disabled = tmp.path().join("disabled.json");
    std::fs::write(
        &disabled,
        r#"{"audit_logs":{"disabled":true,"hmac_key":"env.OTHER_VAR"}}"#,
    )
    .unwrap();
    let mut c = bin();
    c.env("OTHER_VAR", other)
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&disabled)
        .arg("append");
    let o = run(c, &jsonl(&lines(8, 1)));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("disabled"), "{}", stderr(&o));
    assert_eq!(log.iter().count(), 8);
}

#[test]
fn segment_bytes_flag_makes_several_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = run(
        cli_default_size(
            &data,
            &[
                "append",
                "--durability",
                "buffered",
                "--segment-bytes",
                "65536",
            ],
        ),
        &jsonl(&lines(9, 800)),
    );
    ok(&o);
    let s = stats(&data);
    assert_eq!(s["events"], 800);
    assert_eq!(s["first_seq"], 0);
    assert_eq!(s["last_seq"], 799);
    let files: Vec<String> = s["segment_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(s["segments"], files.len());
    let on_disk: Vec<String> = common::segment_paths(&data)
        .iter()
        .map(|p| common::file_name(p))
        .collect();
    assert_eq!(files, on_disk, "oldest first, as on disk");
    assert!(s["bytes"].as_u64().unwrap() >= 3 * 60_000);
    ok(&run(cli(&data, &["verify"]), ""));

    // Global flags may also come before the command.
    let mut c = bin();
    c.env("AUDIT_HMAC_KEY", KEY)
        .args(["--segment-bytes", "65536", "--data"])
        .arg(&data)
        .arg("append");
    ok(&run(c, &jsonl(&lines(10, 10))));
    assert_eq!(stats(&data)["events"], 810);

    // Below the minimum.
    let o = run(
        cli_default_size(
            &tmp.path().join("small"),
            &["append", "--segment-bytes", "4096"],
        ),
        &jsonl(&lines(9, 1)),
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("segment_bytes"), "{}", stderr(&o));
}

#[test]
fn stats_of_an_empty_log_has_null_seqs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = append(&data, "", &[]);
    ok(&o);
    assert!(stderr(&o).contains("appended 0 events"), "{}", stderr(&o));
    let s = stats(&data);
    assert_eq!(s["events"], 0, "{s}");
    assert!(s["first_seq"].is_null(), "{s}");
    assert!(s["last_seq"].is_null(), "{s}");
    assert!(s["segment_files"].is_array(), "{s}");
    ok(&run(cli(&data, &["verify"]), ""));
    // Nothing to checkpoint yet: a clear error, not a panic.
    let o = run(cli(&data, &["checkpoint"]), "");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
}

#[test]
fn missing_or_short_key_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("data");
    for args in [
        &["append"][..],
        &["verify"],
        &["stats", "--json"],
        &["checkpoint"],
    ] {
        let mut c = bin();
        c.arg("--data").arg(&data).args(args);
        let o = run(c, &jsonl(&lines(11, 1)));
        assert!(!o.status.success(), "{args:?}");
        assert!(
            stderr(&o).contains("AUDIT_HMAC_KEY"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!data.exists(), "{args:?} created the data directory");
    }
    let mut c = bin();
    c.env("AUDIT_HMAC_KEY", "short")
        .arg("--data")
        .arg(&data)
        .arg("append");
    let o = run(c, &jsonl(&lines(11, 1)));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("AUDIT_HMAC_KEY"), "{err}");
    assert!(err.contains("32"), "{err}");
    assert!(
        !err.contains("short"),
        "the key must never be printed: {err}"
    );
    assert!(!data.exists());
}
