//! Invariant: the `auditlog` binary's `retention` (dry run and real, with `retention_days`
//! from the seed's config), `hold add|list|remove` and `redact --seq | --user-id` do what the
//! library does — the dry run removes nothing, the real run removes exactly what the dry run
//! named and `stats --json` shows it, holds are listed and lifted, redactions are reported
//! and visible to queries — and `verify` exits 0 after every one of them.
#![cfg(feature = "cli")]

mod common;
mod retention_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use retention_support::*;
use serde_json::Value;

struct Cli {
    data: PathBuf,
    config: PathBuf,
}

impl Cli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
        c.env_remove("AUDITLOG_DATA")
            .env("AUDIT_HMAC_KEY", KEY)
            .arg("--config")
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data)
            .args(["--segment-bytes", "65536"])
            .args(args);
        c
    }

    fn run_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the auditlog binary");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run the auditlog binary")
    }

    /// Runs and expects exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "auditlog {args:?}: exit {:?}\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("auditlog {args:?}: {e}: {out}"))
    }

    fn verify_ok(&self, after: &str) {
        let o = self.run(&["verify"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "verify after {after}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK:"));
    }
}

fn setup(root: &Path) -> (Cli, Vec<auditlog::Event>) {
    let config = root.join("config.json");
    std::fs::write(
        &config,
        r#"{"audit_logs":{"hmac_key":"env.AUDIT_HMAC_KEY","retention_days":10}}"#,
    )
    .unwrap();
    let cli = Cli {
        data: root.join("data"),
        config,
    };
    let evs = spread(1..=20, 48);
    let input: String = evs
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    let o = cli.run_with_input(&["append", "--durability", "buffered"], &input);
    assert!(o.status.success(), "append: {o:?}");
    (cli, evs)
}

fn removed_files(report: &Value) -> Vec<String> {
    report["removed"]["segments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["file"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn retention_holds_and_redaction_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (cli, evs) = setup(tmp.path());
    let ts: Vec<i64> = evs.iter().map(|e| ns(e.timestamp.unwrap())).collect();
    cli.verify_ok("append");
    let before = spans(&cli.data);
    // retention_days 10 from the config, at 2024-01-20 00:00: the cutoff is 2024-01-10.
    let cutoff = ns(at(10, 0));
    let expect = expected_removed(&before, &ts, cutoff);
    assert!(
        !expect.is_empty() && expect.len() + 2 <= before.len(),
        "{before:?}"
    );
    let want: Vec<String> = expect.iter().map(|s| s.name.clone()).collect();

    // Dry run: names what would go, removes nothing.
    let segs = files_with_ext(&cli.data, ".seg");
    let plan = cli.json(&["retention", "--now", "2024-01-20", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["retention_days"], 10);
    assert_eq!(plan["cutoff"], "2024-01-10T00:00:00Z");
    assert_eq!(removed_files(&plan), want);
    assert_eq!(files_with_ext(&cli.data, ".seg"), segs);
    assert!(!cli.data.join(auditlog::POLICY_FILE).exists());
    cli.verify_ok("retention --dry-run");
    let stats = cli.json(&["stats", "--json"]);
    assert!(stats["last_retention"].is_null(), "{stats}");

    // The real run removes exactly that.
    let report = cli.json(&["retention", "--now", "2024-01-20"]);
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["removed"], plan["removed"]);
    for s in &expect {
        assert!(!s.path.exists(), "{} removed", s.name);
    }
    let to = expect.last().unwrap().last;
    assert_eq!(report["removed"]["to_seq"], to);
    cli.verify_ok("retention");
    let stats = cli.json(&["stats", "--json"]);
    assert_eq!(stats["last_retention"]["removed"], report["removed"]);
    assert_eq!(stats["last_retention"]["retention_days"], 10);
    assert_eq!(stats["first_seq"], to + 1);

    // --retention-days overrides the config; --compact drops a straddling prefix.
    let r = cli.json(&[
        "retention",
        "--now",
        "2024-01-20T12:00:00Z",
        "--retention-days",
        "9",
        "--compact",
    ]);
    assert_eq!(r["retention_days"], 9);
    assert_eq!(r["cutoff"], "2024-01-11T12:00:00Z");
    cli.verify_ok("retention --compact");
    let stats = cli.json(&["stats", "--json"]);
    let first = stats["first_seq"].as_u64().unwrap();
    assert!(ts[first as usize] >= ns(at(11, 43_200)), "{stats}");
    assert!(ts[first as usize - 1] < ns(at(11, 43_200)), "{stats}");

    // Holds.
    let hold = cli.json(&[
        "hold",
        "add",
        "--user-id",
        "user-4",
        "--reason",
        "subpoena 7",
    ]);
    let id = hold["id"].as_str().unwrap().to_string();
    assert_eq!(hold["scope"]["type"], "actor");
    assert_eq!(hold["reason"], "subpoena 7");
    let list = cli.json(&["hold", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        cli.json(&["stats", "--json"])["holds"][0]["id"],
        id.as_str()
    );
    cli.verify_ok("hold add");
    // A held actor cannot be redacted.
    let o = cli.run(&["redact", "--user-id", "user-4", "--reason", "erase"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("legal hold"),
        "{o:?}"
    );
    let range = cli.json(&[
        "hold",
        "add",
        "--start",
        "2024-01-15",
        "--end",
        "2024-01-16",
        "--reason",
        "audit",
    ]);
    assert_eq!(range["scope"]["type"], "time_range");
    assert_eq!(range["scope"]["start_ns"], ns(at(15, 0)));
    assert_eq!(
        range["scope"]["end_ns"],
        ns(at(17, 0)) - 1,
        "a bare end date is its whole day"
    );
    let o = cli.run(&[
        "hold",
        "add",
        "--start",
        "2024-01-16",
        "--end",
        "2024-01-15",
        "--reason",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("`end`"),
        "{o:?}"
    );
    cli.ok(&["hold", "remove", &id, "--reason", "released"]);
    cli.ok(&[
        "hold",
        "remove",
        range["id"].as_str().unwrap(),
        "--reason",
        "done",
    ]);
    assert_eq!(cli.json(&["hold", "list"]), serde_json::json!([]));
    let lifted = cli.json(&["query", "--action", "legal_hold_removed"]);
    assert_eq!(lifted["total_count"], 2);
    cli.verify_ok("hold remove");

    // Redaction by seq and by actor.
    let seq = first + 5;
    let r = cli.json(&["redact", "--seq", &seq.to_string(), "--reason", "erasure 1"]);
    assert_eq!(r["redacted"], serde_json::json!([seq]));
    let audit = r["audit_seq"].as_u64().unwrap();
    cli.verify_ok("redact --seq");
    let page = cli.json(&["query", "--action", "record_redacted"]);
    assert_eq!(page["total_count"], 1);
    assert_eq!(page["audit_logs"][0]["seq"], audit);
    assert_eq!(
        page["audit_logs"][0]["details"]["redacted_seqs"],
        serde_json::json!([seq])
    );

    let r = cli.json(&["redact", "--user-id", "user-2", "--reason", "erasure 2"]);
    let n = r["redacted"].as_array().unwrap().len();
    assert!(n > 50, "{r}");
    cli.verify_ok("redact --user-id");
    let page = cli.json(&["query", "--user-id", "user-2"]);
    assert_eq!(page["total_count"], 0);

    let r = cli.json(&[
        "redact",
        "--seq",
        &(seq + 1).to_string(),
        "--reason",
        "content",
        "--content-only",
    ]);
    assert_eq!(r["redacted"], serde_json::json!([seq + 1]));
    let again = cli.json(&["redact", "--seq", &seq.to_string(), "--reason", "twice"]);
    assert_eq!(again["already_redacted"], serde_json::json!([seq]));
    cli.verify_ok("redact --content-only");
    let o = cli.run(&["redact", "--seq", "1", "--reason", "gone"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "seq 1 was removed by retention: {o:?}"
    );
    let v = cli.json(&["verify", "--json"]);
    assert_eq!(v["ok"], true, "{v}");
}
