//! Invariant: `auditlog query` prints the seed's response shape with pages that `--cursor`
//! continues until `next_page` is null, ORs repeated flags, prints one event per line with
//! `--ndjson` and names a bad parameter; `auditlog export` writes every match as RFC 4180 CSV
//! (header row, quoting) or JSON Lines — all beside a process that holds the write lock.
#![cfg(feature = "cli")]

#[path = "common/cli.rs"]
mod cli_run;
use cli_run::{err, ok};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use auditlog::sample::Generator;
use auditlog::{Durability, Event, HmacKey, Log, Options, Resource, Severity, CSV_COLUMNS};
use chrono::{TimeZone, Utc};
use serde_json::Value;

const KEY: &str = "cli-query-export-test-key-0123456789-abcdef";
const USER: &str = "user-cli-042";
const CSV_USER: &str = "user-csv";
/// A value that needs every kind of RFC 4180 quoting.
const TRICKY: &str = "commas, \"quotes\" and\na newline";

fn key() -> HmacKey {
    HmacKey::from_bytes(KEY.as_bytes()).expect("key")
}

/// `auditlog --data DIR --segment-bytes 65536 ARGS…` with the key in AUDIT_HMAC_KEY.
fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .env_remove("AUDITLOG_DATA")
        .env("AUDIT_HMAC_KEY", KEY)
        .arg("--data")
        .arg(data)
        .args(["--segment-bytes", "65536"])
        .args(args)
        .output()
        .expect("run the auditlog binary")
}

fn out(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("stdout is UTF-8")
}

/// The events of the fixture: generated ones, `USER`'s with a mix of severities (several
/// sharing a timestamp), and one whose details and resource id need CSV quoting.
fn fixture_events() -> Vec<Event> {
    let mut evs: Vec<Event> = Generator::standard(42).take(1200).collect();
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 3).unwrap();
    for i in 0..42i64 {
        let mut e = Event::new("authentication", "user_login");
        e.event_id = Some(format!("evt_cli_{i:03}"));
        // Interleaved with the generated events in time; every third shares a timestamp.
        e.timestamp = Some(t0 + chrono::Duration::milliseconds(250 * (i / 3)));
        e.status = if i % 2 == 0 { "failed" } else { "success" }.into();
        e.severity = match i % 4 {
            0 => Severity::Critical,
            1 | 2 => Severity::High,
            _ => Severity::Medium,
        };
        e.actor.user_id = Some(USER.into());
        e.actor.email = Some("Cli.User@Company.com".into());
        e.actor.ip_address = Some(format!("::ffff:198.51.100.{i}").parse().unwrap());
        e.details = serde_json::json!({ "i": i }).into();
        // Spread through the file so they land in several segments.
        evs.insert((i as usize) * 28, e);
    }
    let mut csv = Event::new("data_access", "data_export");
    csv.event_id = Some("evt_csv_001".into());
    csv.timestamp = Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 9).unwrap());
    csv.severity = Severity::High;
    csv.actor.user_id = Some(CSV_USER.into());
    csv.resource = Some(Resource {
        kind: "dataset".into(),
        id: Some(TRICKY.into()),
    });
    csv.details =
        serde_json::json!({ "note": TRICKY, "list": [1, "a,b"], "nested": { "q": "\"" } }).into();
    evs.push(csv);
    evs
}

/// A data directory filled through `auditlog append` from a JSON Lines file.
fn setup(tmp: &Path) -> (PathBuf, Vec<Event>) {
    let data = tmp.join("data");
    let evs = fixture_events();
    let file = tmp.join("events.jsonl");
    let text: String = evs
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(&file, text).unwrap();
    let o = cli(
        &data,
        &["append", file.to_str().unwrap(), "--durability", "buffered"],
    );
    ok(&o);
    assert!(
        err(&o).contains(&format!("appended {} events", evs.len())),
        "{}",
        err(&o)
    );
    (data, evs)
}

/// A writer in this process, holding the directory's lock while the CLI reads.
fn writer(data: &Path) -> Log {
    let log = Log::open(
        data,
        Options::new(key())
            .durability(Durability::Buffered)
            .segment_bytes(65536),
    )
    .expect("open for writing");
    assert!(matches!(
        Log::open(data, Options::new(key())),
        Err(auditlog::Error::Locked { .. })
    ));
    log
}

fn query_json(data: &Path, args: &[&str]) -> Value {
    let mut a = vec!["query"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(&cli(data, &a))).expect("query prints JSON")
}

/// Checks one printed page's shape; returns its events.
fn check_page(p: &Value, page: u64, limit: usize) -> Vec<Value> {
    let obj = p.as_object().expect("a page is an object");
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "total_count",
            "returned_count",
            "page",
            "audit_logs",
            "next_page"
        ]),
        "{p}"
    );
    let logs = p["audit_logs"]
        .as_array()
        .expect("audit_logs is an array")
        .clone();
    assert_eq!(p["returned_count"].as_u64(), Some(logs.len() as u64));
    assert_eq!(p["page"].as_u64(), Some(page));
    assert!(logs.len() <= limit);
    assert!(
        p["next_page"].is_string() || p["next_page"].is_null(),
        "{p}"
    );
    for e in &logs {
        let hash = e["verification"]["hash"]
            .as_str()
            .expect("hash is a string");
        let hex = hash
            .strip_prefix("hmac-sha256:")
            .expect("hash starts with hmac-sha256:");
        assert!(
            hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()),
            "{hash}"
        );
        assert_eq!(e["verification"]["verified"], Value::Bool(true));
        assert!(e["seq"].is_u64(), "{e}");
        assert!(
            e["event_id"].is_string() && e["timestamp"].is_string(),
            "{e}"
        );
    }
    logs
}

/// Follows `next_page` through every page of a query, calling `between` after each page;
/// returns the events and the total.
fn all_pages(
    data: &Path,
    args: &[&str],
    limit: usize,
    between: &mut dyn FnMut(),
) -> (Vec<Value>, u64) {
    let limit_s = limit.to_string();
    let mut base: Vec<&str> = args.to_vec();
    base.extend(["--limit", &limit_s]);
    let first = query_json(data, &base);
    let total = first["total_count"].as_u64().expect("total_count");
    let mut events = check_page(&first, 1, limit);
    let mut next = first["next_page"].clone();
    let mut page = 1;
    while let Some(c) = next.as_str() {
        between();
        assert_eq!(
            events.len(),
            page as usize * limit,
            "only the last page is short"
        );
        page += 1;
        assert!(
            page as usize <= total as usize / limit + 1,
            "too many pages"
        );
        let mut a = base.clone();
        a.extend(["--cursor", c]);
        let p = query_json(data, &a);
        assert_eq!(p["total_count"].as_u64(), Some(total));
        events.extend(check_page(&p, page, limit));
        next = p["next_page"].clone();
    }
    assert!(next.is_null(), "the last page ends with next_page null");
    assert_eq!(
        events.len() as u64,
        total,
        "pages concatenated give total_count events"
    );
    (events, total)
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn expected_ids(evs: &[Event], f: impl Fn(&Event) -> bool) -> BTreeSet<String> {
    evs.iter()
        .filter(|e| f(e))
        .map(|e| e.event_id.clone().unwrap())
        .collect()
}

/// Sorted by (timestamp, seq) descending: the default order.
fn assert_desc(events: &[Value]) {
    let key = |e: &Value| {
        let t = chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
        (t, e["seq"].as_u64().unwrap())
    };
    for w in events.windows(2) {
        assert!(
            key(&w[0]) > key(&w[1]),
            "not newest first: {} then {}",
            w[0],
            w[1]
        );
    }
}

#[test]
fn query_pages_filters_and_ndjson_beside_a_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, evs) = setup(tmp.path());
    let log = writer(&data);
    let of_user = |s: Severity| {
        let s = move |e: &Event| e.actor.user_id.as_deref() == Some(USER) && e.severity == s;
        expected_ids(&evs, s)
    };

    // One severity, paged five at a time.
    let (high, total) = all_pages(
        &data,
        &["--user-id", USER, "--severity", "high"],
        5,
        &mut || {},
    );
    assert_eq!(total, 21);
    assert_eq!(
        ids(&high).into_iter().collect::<BTreeSet<_>>(),
        of_user(Severity::High)
    );
    assert_eq!(ids(&high).len(), 21, "no event repeated");
    assert_desc(&high);
    assert!(high
        .iter()
        .all(|e| e["actor"]["user_id"] == USER && e["severity"] == "high"));

    // Repeated flags are OR-ed, and so are comma-separated values.
    let (both, total) = all_pages(
        &data,
        &[
            "--user-id",
            USER,
            "--severity",
            "high",
            "--severity",
            "critical",
        ],
        7,
        &mut || {},
    );
    let mut want = of_user(Severity::High);
    want.extend(of_user(Severity::Critical));
    assert_eq!(total as usize, want.len());
    assert_eq!(ids(&both).into_iter().collect::<BTreeSet<_>>(), want);
    assert_desc(&both);
    let p = query_json(
        &data,
        &[
            "--user-id",
            USER,
            "--severity",
            "critical,high",
            "--limit",
            "100",
        ],
    );
    assert_eq!(p["total_count"].as_u64(), Some(total));
    assert_eq!(ids(p["audit_logs"].as_array().unwrap()), ids(&both));
    let p = query_json(
        &data,
        &[
            "--user-id",
            USER,
            "--user-id",
            CSV_USER,
            "--severity",
            "high",
        ],
    );
    assert_eq!(p["total_count"].as_u64(), Some(22));
    // Filters across flags are AND-ed: IPv4-mapped addresses match their IPv4 range, emails
    // match case-insensitively, and a status narrows it down.
    let p = query_json(
        &data,
        &[
            "--ip",
            "198.51.100.0/28",
            "--email",
            "cli.user@company.com",
            "--status",
            "failed",
            "--order",
            "asc",
        ],
    );
    let want = evs
        .iter()
        .filter(|e| e.actor.user_id.as_deref() == Some(USER) && e.status == "failed")
        .filter(|e| {
            e.actor
                .ip_address
                .unwrap()
                .to_string()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u8>()
                .unwrap()
                < 16
        })
        .count();
    assert_eq!(p["total_count"].as_u64(), Some(want as u64));
    assert!(want > 0);

    // --ndjson: one event per line, totals on stderr.
    let o = cli(
        &data,
        &["query", "--user-id", USER, "--ndjson", "--limit", "1000"],
    );
    let text = ok(&o);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(lines.len(), 42);
    assert!(lines
        .iter()
        .all(|e| e["actor"]["user_id"] == USER && e["verification"]["verified"] == true));
    assert!(!text.contains("total_count"), "ndjson prints events only");
    assert!(err(&o).contains("total_count 42"), "{}", err(&o));
    assert_desc(&lines);

    // --no-details leaves `details` out; without it every event of USER carries its own.
    let p = query_json(&data, &["--user-id", USER, "--limit", "100"]);
    let with: Vec<&Value> = p["audit_logs"].as_array().unwrap().iter().collect();
    assert!(with.iter().all(|e| e["details"]["i"].is_i64()), "{p}");
    let p = query_json(
        &data,
        &["--user-id", USER, "--limit", "100", "--no-details"],
    );
    let without = p["audit_logs"].as_array().unwrap();
    assert_eq!(without.len(), 42);
    assert!(
        without
            .iter()
            .all(|e| e.get("details").is_none_or(Value::is_null)),
        "{p}"
    );

    // Paging again while the writer appends matching events (newer, older and equal in time)
    // between pages: the pages hold exactly the events that matched when the first page was
    // asked for, and a new query sees the new events too.
    let mut appended = 0u64;
    let mut append_between = || {
        let mut evs = Vec::new();
        for (y, s) in [(2030, 0), (2020, 0), (2024, 3)] {
            let mut e = Event::new("authentication", "user_login");
            e.severity = Severity::High;
            e.actor.user_id = Some(USER.into());
            e.timestamp = Some(Utc.with_ymd_and_hms(y, 1, 1, 0, 0, s).unwrap());
            evs.push(e);
        }
        log.append_batch(&evs).unwrap();
        appended += evs.len() as u64;
    };
    let (again, total) = all_pages(
        &data,
        &["--user-id", USER, "--severity", "high"],
        5,
        &mut append_between,
    );
    assert_eq!(total, 21);
    assert_eq!(
        appended,
        4 * 3,
        "appended after each of the first four pages"
    );
    assert_eq!(
        ids(&again),
        ids(&high),
        "the same pages as without the writer"
    );
    let p = query_json(&data, &["--user-id", USER, "--severity", "high"]);
    assert_eq!(p["total_count"].as_u64(), Some(21 + appended));
    let p = query_json(
        &data,
        &[
            "--user-id",
            USER,
            "--severity",
            "high",
            "--start",
            "2021-01-01",
            "--end",
            "2024-12-31",
        ],
    );
    assert_eq!(p["total_count"].as_u64(), Some(21 + appended / 3));
    drop(log);
}

#[test]
fn bad_parameters_exit_non_zero_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _) = setup(tmp.path());
    let _log = writer(&data);
    for (args, param) in [
        (vec!["query", "--start", "2024-13-01"], "start"),
        (vec!["query", "--end", "2024-01-32"], "end"),
        (vec!["query", "--ip", "203.0.113.0/33"], "ip"),
        (vec!["query", "--severity", "urgent"], "severity"),
        (vec!["query", "--limit", "0"], "limit"),
        (vec!["query", "--limit", "10001"], "limit"),
        (vec!["query", "--cursor", "c1deadbeef"], "cursor"),
        (
            vec!["export", "--format", "csv", "--start", "2024-13-01"],
            "start",
        ),
        (vec!["export", "--format", "xml"], "format"),
    ] {
        let o = cli(&data, &args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let e = err(&o);
        assert!(
            e.contains(&format!("`{param}`")),
            "{args:?}: stderr does not name `{param}`: {e}"
        );
        assert!(o.stdout.is_empty(), "{args:?} printed {}", out(&o));
    }
}

/// Parses RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                assert!(
                    field.is_empty(),
                    "a quote inside an unquoted field: {field:?}"
                );
                quoted = true;
            }
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            '\n' => panic!("a record ends with a bare LF, not CRLF"),
            c => field.push(c),
        }
        if c == '\r' {
            row.push(std::mem::take(&mut field));
            rows.push(std::mem::take(&mut row));
        }
    }
    assert!(!quoted, "unterminated quoted field");
    assert!(
        field.is_empty() && row.is_empty(),
        "the last record lacks its CRLF"
    );
    rows
}

#[test]
fn export_csv_and_jsonl_match_the_query() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, evs) = setup(tmp.path());
    let _log = writer(&data);

    // CSV of everything: a header row, then one row per event of the query's total.
    let o = cli(&data, &["export", "--format", "csv"]);
    let text = ok(&o);
    assert!(err(&o).contains("verified"), "{}", err(&o));
    assert!(
        text.starts_with("seq,event_id,timestamp,"),
        "{}",
        &text[..80.min(text.len())]
    );
    let rows = parse_csv(&text);
    assert_eq!(rows[0], CSV_COLUMNS.to_vec(), "header row");
    let total = query_json(&data, &["--limit", "1"])["total_count"]
        .as_u64()
        .unwrap();
    assert_eq!(total as usize, evs.len());
    assert_eq!(rows.len() - 1, total as usize, "one row per event");
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for r in &rows[1..] {
        assert_eq!(r.len(), CSV_COLUMNS.len(), "{r:?}");
        assert_eq!(r[col("verification.verified")], "true");
        assert!(r[col("verification.hash")].starts_with("hmac-sha256:"));
    }
    let seqs: BTreeSet<u64> = rows[1..]
        .iter()
        .map(|r| r[col("seq")].parse().unwrap())
        .collect();
    assert_eq!(seqs, (0..evs.len() as u64).collect(), "every seq once");
    // The event whose values need quoting survives the round trip.
    let tricky: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[col("event_id")] == "evt_csv_001")
        .collect();
    assert_eq!(tricky.len(), 1);
    let t = tricky[0];
    assert_eq!(t[col("resource.id")], TRICKY);
    assert_eq!(t[col("resource.type")], "dataset");
    assert_eq!(t[col("actor.user_id")], CSV_USER);
    let details: Value = serde_json::from_str(&t[col("details")]).expect("details is JSON text");
    let want = &evs
        .iter()
        .find(|e| e.event_id.as_deref() == Some("evt_csv_001"))
        .unwrap()
        .details;
    assert_eq!(&details, &want.to_value());
    assert!(
        text.contains("\"commas, \"\"quotes\"\" and\na newline\""),
        "raw RFC 4180 quoting"
    );

    // CSV with filters: as many rows as the same query's total_count.
    let filters = [
        "--user-id",
        USER,
        "--severity",
        "high",
        "--severity",
        "critical",
    ];
    let mut a = vec!["export", "--format", "csv"];
    a.extend(filters);
    let rows = parse_csv(&ok(&cli(&data, &a)));
    let mut q = filters.to_vec();
    q.extend(["--limit", "1"]);
    let total = query_json(&data, &q)["total_count"].as_u64().unwrap();
    assert_eq!(total, 32);
    assert_eq!(rows.len() - 1, total as usize);
    assert!(rows[1..].iter().all(|r| r[col("actor.user_id")] == USER));

    // JSON Lines to a file: nothing on stdout, one event per line in the file.
    let file = tmp.path().join("export.jsonl");
    let mut a = vec![
        "export",
        "--format",
        "jsonl",
        "--out",
        file.to_str().unwrap(),
    ];
    a.extend(filters);
    let o = cli(&data, &a);
    assert!(ok(&o).is_empty(), "stdout: {}", out(&o));
    assert!(err(&o).contains("exported 32 records"), "{}", err(&o));
    let written = std::fs::read_to_string(&file).expect("the export file exists");
    let lines: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 32);
    let got: BTreeSet<String> = ids(&lines).into_iter().collect();
    let want = expected_ids(&evs, |e| {
        e.actor.user_id.as_deref() == Some(USER)
            && matches!(e.severity, Severity::High | Severity::Critical)
    });
    assert_eq!(got, want);
    assert!(lines
        .iter()
        .all(|e| e["verification"]["verified"] == true && e["seq"].is_u64()));
}
