//! Invariant: a bad query (invalid date, reversed range, bad CIDR, limit out of range, unknown
//! severity or parameter, a malformed, forged, foreign-query or foreign-log cursor) is refused
//! with `Error::InvalidQuery` naming the offending parameter, and nothing on disk changes.

use std::fs;
use std::path::Path;

use auditlog::sample::Generator;
use auditlog::{Durability, Error, HmacKey, Log, Options, Query, Severity};

fn key() -> HmacKey {
    HmacKey::from_bytes(&[7u8; 32]).expect("32-byte key")
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
}

/// A closed log of `n` generated events (several 64 KiB segments for n in the thousands).
fn write_log(dir: &Path, seed: u64, n: usize) {
    let log = Log::open(dir, opts()).expect("open for writing");
    let evs: Vec<_> = Generator::standard(seed).take(n).collect();
    for chunk in evs.chunks(200) {
        log.append_batch(chunk).expect("append");
    }
}

/// Every file of `dir` with its bytes, sorted by name.
fn dir_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().expect("file type").is_file())
        .map(|e| {
            let bytes = fs::read(e.path()).expect("read file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

/// The `param` of an `InvalidQuery` error; panics on success or on any other error.
fn param_of<T: std::fmt::Debug>(r: auditlog::Result<T>, what: &str) -> String {
    match r {
        Err(Error::InvalidQuery { param, message }) => {
            assert!(!message.is_empty(), "{what}: empty message");
            param
        }
        Err(other) => panic!("{what}: expected InvalidQuery, got {other:?}"),
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
    }
}

/// `(name, value, expected param)` triples that `Query::from_params` must refuse.
fn bad_params() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        // Invalid dates and timestamps.
        ("start", "2024-13-01", "start"),
        ("start", "2024-02-30", "start"),
        ("start", "yesterday", "start"),
        ("start", "", "start"),
        ("start", "2024-01-15T25:00:00Z", "start"),
        ("start", "2024-01-15 10:30", "start"),
        ("start_date", "2024-13-01", "start_date"),
        ("end", "2024-13-01", "end"),
        ("end_date", "31/01/2024", "end_date"),
        ("end", "9999-01-01", "end"),
        // Bad CIDR ranges and addresses.
        ("ip", "203.0.113.0/33", "ip"),
        ("ip", "203.0.113.1/24", "ip"),
        ("ip", "203.0.113.0/", "ip"),
        ("ip", "203.0.113.0/x", "ip"),
        ("ip", "300.1.2.3", "ip"),
        ("ip", "2001:db8::/129", "ip"),
        ("ip", "2001:db8::1/32", "ip"),
        ("ip", "::ffff:203.0.113.0/80", "ip"),
        ("ip", "not-an-ip", "ip"),
        ("ip_address", "10.0.0.1/8", "ip_address"),
        // Limits out of range or not numbers.
        ("limit", "0", "limit"),
        ("limit", "10001", "limit"),
        ("limit", "-1", "limit"),
        ("limit", "ten", "limit"),
        // Unknown severities.
        ("severity", "urgent", "severity"),
        ("severity", "high,urgent", "severity"),
        // Other values and unknown parameters.
        ("order", "sideways", "order"),
        ("include_details", "maybe", "include_details"),
        ("bogus", "1", "bogus"),
        ("user", "alice", "user"),
    ]
}

#[test]
fn bad_parameters_name_themselves() {
    for (name, value, want) in bad_params() {
        let got = param_of(
            Query::from_params([(name, value)]),
            &format!("{name}={value:?}"),
        );
        assert_eq!(got, want, "{name}={value:?}");
        // The same parameter among good ones is still the one named.
        let got = param_of(
            Query::from_params([
                ("user_id", "user-00001"),
                (name, value),
                ("severity", "high"),
            ]),
            &format!("{name}={value:?} among good ones"),
        );
        assert_eq!(got, want, "{name}={value:?} among good ones");
    }
    // The edges of the valid ranges are accepted.
    for (name, value) in [
        ("limit", "1"),
        ("limit", "10000"),
        ("ip", "0.0.0.0/0"),
        ("ip", "203.0.113.0/32"),
        ("ip", "::/0"),
        ("ip", "::ffff:203.0.113.0/120"),
        ("severity", "HIGH"),
        ("end", "2024-01-31"),
        ("start", "2024-01-31T23:59:59.999999999Z"),
    ] {
        Query::from_params([(name, value)]).unwrap_or_else(|e| panic!("{name}={value}: {e}"));
    }
}

#[test]
fn reversed_range_names_a_bound() {
    for (s, e) in [
        ("2024-02-01", "2024-01-31"),
        ("2024-01-15T10:30:00.000000001Z", "2024-01-15T10:30:00Z"),
    ] {
        let p = param_of(Query::from_params([("start", s), ("end", e)]), "reversed");
        assert!(p == "end" || p == "start", "reversed range names {p:?}");
    }
    // Equal bounds are a valid (one-instant) range, and a bare date is its whole day.
    Query::from_params([
        ("start", "2024-01-15T10:30:00Z"),
        ("end", "2024-01-15T10:30:00Z"),
    ])
    .unwrap();
    Query::from_params([("start", "2024-01-15"), ("end", "2024-01-15")]).unwrap();
}

#[test]
fn bad_queries_and_cursors_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 3000);
    // Another log: same key, same events, different log_id.
    write_log(other_dir.path(), 5, 3000);

    for writable in [false, true] {
        let log = if writable {
            Log::open(dir.path(), opts()).unwrap()
        } else {
            Log::open_read_only(dir.path(), key()).unwrap()
        };
        let other = Log::open_read_only(other_dir.path(), key()).unwrap();
        let next_seq = log.next_seq();
        let before = dir_state(dir.path());

        // Limits and ranges set directly on the struct are checked by `query` too.
        for limit in [0, 10_001, usize::MAX] {
            let q = Query {
                limit,
                ..Query::new()
            };
            assert_eq!(param_of(log.query(&q), &format!("limit {limit}")), "limit");
        }
        let q = Query {
            start: Some(2_000),
            end: Some(1_999),
            ..Query::new()
        };
        let p = param_of(log.query(&q), "reversed struct range");
        assert!(p == "end" || p == "start", "{p}");

        // A real cursor, from a query with more than one page.
        let base = Query::from_params([
            ("severity", "high"),
            ("severity", "critical"),
            ("limit", "7"),
        ])
        .unwrap();
        let first = log.query(&base).unwrap();
        assert!(first.total_count > 14, "the fixture needs several pages");
        let cursor = first.next_page.clone().expect("a next page");
        assert!(
            cursor.chars().all(|c| c.is_ascii_alphanumeric()),
            "{cursor}"
        );
        let with = |q: &Query, c: &str| Query {
            cursor: Some(c.to_string()),
            ..q.clone()
        };
        // Sanity: the cursor continues its own query (also with another limit or details).
        let second = log.query(&with(&base, &cursor)).unwrap();
        assert_eq!(second.page, 2);
        assert_eq!(second.audit_logs.len(), 7);
        let relimited = Query {
            limit: 3,
            include_details: false,
            ..with(&base, &cursor)
        };
        let r = log.query(&relimited).unwrap();
        assert_eq!(
            r.audit_logs.iter().map(|e| e.seq).collect::<Vec<_>>(),
            second.audit_logs[..3]
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        );
        // The same filters given in another order and with repeats are the same query.
        let same = Query::from_params([
            ("severity", "critical,high"),
            ("severity", "high"),
            ("limit", "7"),
        ])
        .unwrap();
        assert_eq!(log.query(&with(&same, &cursor)).unwrap(), second);

        // Malformed cursors.
        let truncated = &cursor[..cursor.len() - 2];
        let longer = format!("{cursor}00");
        let no_prefix = &cursor[2..];
        let non_hex = format!("{}zz", &cursor[..cursor.len() - 2]);
        let upper_prefix = format!("C1{}", &cursor[2..]);
        for bad in [
            "",
            "garbage",
            "c1",
            "c1abc",
            truncated,
            &longer,
            no_prefix,
            &non_hex,
            &upper_prefix,
            "c1é",
        ] {
            let p = param_of(
                log.query(&with(&base, bad)),
                &format!("malformed cursor {bad:?}"),
            );
            assert_eq!(p, "cursor", "malformed cursor {bad:?}");
            let q = Query::from_params([
                ("severity", "high"),
                ("severity", "critical"),
                ("page", bad),
            ])
            .unwrap();
            assert_eq!(
                param_of(log.query(&q), "malformed cursor as `page`"),
                "cursor"
            );
        }

        // Forged cursors: any single hex digit changed, anywhere after the prefix.
        let bytes = cursor.as_bytes();
        for i in 2..bytes.len() {
            let mut f = bytes.to_vec();
            f[i] = if f[i] == b'0' { b'f' } else { b'0' };
            let forged = String::from_utf8(f).unwrap();
            let p = param_of(log.query(&with(&base, &forged)), &format!("forged at {i}"));
            assert_eq!(p, "cursor", "forged at digit {i}");
        }

        // A cursor of another query: other filters, another order, a time range added.
        for other_q in [
            Query::from_params([("severity", "high"), ("limit", "7")]).unwrap(),
            Query::from_params([("severity", "high,critical"), ("user_id", "user-00001")]).unwrap(),
            Query::from_params([("severity", "high,critical"), ("order", "asc")]).unwrap(),
            Query::from_params([("severity", "high,critical"), ("start", "2024-01-01")]).unwrap(),
            Query::from_params([("severity", "high,critical"), ("ip", "0.0.0.0/0")]).unwrap(),
            Query::new(),
        ] {
            let p = param_of(
                log.query(&with(&other_q, &cursor)),
                &format!("cursor on {other_q:?}"),
            );
            assert_eq!(p, "cursor", "cursor reused on {other_q:?}");
        }
        // Another query's cursor used here.
        let asc = Query {
            order: auditlog::Order::Asc,
            ..base.clone()
        };
        let asc_cursor = log.query(&asc).unwrap().next_page.expect("a next page");
        assert_eq!(
            param_of(log.query(&with(&base, &asc_cursor)), "asc cursor on desc"),
            "cursor"
        );

        // A cursor from another log (same key, same events) and a cursor of this log there.
        let foreign = other.query(&base).unwrap();
        assert_eq!(foreign.total_count, first.total_count);
        let foreign_cursor = foreign.next_page.expect("a next page");
        assert_ne!(foreign_cursor, cursor, "cursors are bound to their log");
        assert_eq!(
            param_of(log.query(&with(&base, &foreign_cursor)), "foreign cursor"),
            "cursor"
        );
        assert_eq!(
            param_of(other.query(&with(&base, &cursor)), "our cursor there"),
            "cursor"
        );

        // Nothing was written by any of it.
        assert_eq!(log.next_seq(), next_seq);
        let after = dir_state(dir.path());
        assert_eq!(
            before.iter().map(|f| &f.0).collect::<Vec<_>>(),
            after.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "directory listing changed"
        );
        assert!(before == after, "file contents changed");
        // And the first page is still the same answer.
        assert_eq!(log.query(&base).unwrap(), first);
        drop(log);
    }
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let report = log.verify().unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.records, 3000);
    // Parsing an invalid severity string directly is an error too (used by the CLI).
    assert!("urgent".parse::<Severity>().is_err());
}
