//! Invariant: bad input (a short or missing key, an oversized or invalid event, a bad option, a
//! locked directory, a wrong key, a directory that is not a log) gets a clear typed error that
//! names what is wrong, and nothing already stored is lost or changed.

mod common;

use std::path::Path;

use auditlog::{Durability, Error, Event, HmacKey, Log, Options, MIN_KEY_BYTES};
use common::*;

const STORED: usize = 40;

/// A log holding `STORED` events, closed.
fn stored_log(dir: &Path) {
    write_log(dir, 21, STORED);
}

/// The stored data is intact: every record readable in order, and the chain verifies.
fn assert_intact(dir: &Path, records: usize) {
    let log = Log::open_read_only(dir, key()).expect("open read-only");
    let evs = events(21, STORED);
    let mut n = 0;
    for (i, r) in log.iter().enumerate() {
        let r = r.expect("record decodes");
        assert_eq!(r.seq, i as u64);
        if i < STORED {
            assert_eq!(r.event, evs[i]);
        }
        n += 1;
    }
    assert_eq!(n, records);
    let report = log.verify().unwrap();
    assert!(report.ok, "{:?}", report.failure);
    assert_eq!(report.records, records as u64);
}

fn err_of<T>(r: auditlog::Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn key_under_32_bytes_is_refused() {
    for len in [0, 1, 16, MIN_KEY_BYTES - 1] {
        let e = err_of(HmacKey::from_bytes(&vec![0x5a; len]));
        assert!(matches!(e, Error::Key(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&len.to_string()), "{msg}");
        assert!(msg.contains("32"), "{msg}");
    }
    assert!(HmacKey::from_bytes(&[0x5a; MIN_KEY_BYTES]).is_ok());
    // A literal key in the config is held to the same rule.
    let e = err_of(HmacKey::from_config_value("too-short-secret"));
    assert!(matches!(e, Error::Key(_)), "{e:?}");
    // The key never appears in errors or in Debug output.
    let k = HmacKey::from_bytes(b"my-very-secret-key-material-0123456789").unwrap();
    assert!(!format!("{k:?}").contains("secret"));
}

#[test]
fn unset_key_variable_is_named_in_the_error() {
    let name = "AUDITLOG_BAD_INPUT_TEST_UNSET_VARIABLE";
    assert!(std::env::var_os(name).is_none());
    let e = err_of(HmacKey::from_env(name));
    assert!(matches!(e, Error::Key(_)), "{e:?}");
    assert!(e.to_string().contains(name), "{e}");
    let e = err_of(HmacKey::from_config_value(&format!("env.{name}")));
    assert!(e.to_string().contains(name), "{e}");
    let e = err_of(HmacKey::from_config_value("env."));
    assert!(matches!(e, Error::Key(_)), "{e:?}");
}

#[test]
fn oversized_event_is_refused_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let log = Log::open(dir.path(), buffered_opts().max_event_bytes(2048)).unwrap();
    let mut big = events(22, 1).pop().unwrap();
    big.details = serde_json::json!({ "blob": "x".repeat(4096) }).into();
    match log.append(&big) {
        Err(Error::EventTooLarge { size, limit }) => {
            assert_eq!(limit, 2048);
            assert!(size > 4096, "{size}");
        }
        Err(e) => panic!("expected EventTooLarge, got {e}"),
        Ok(r) => panic!("an oversized event was appended at seq {}", r.seq),
    }
    assert_eq!(log.next_seq(), STORED as u64);
    // One oversized event fails its whole batch; the valid events before it are not written.
    let mut batch = events(23, 3);
    batch.push(big.clone());
    let e = err_of(log.append_batch(&batch));
    assert!(matches!(e, Error::EventTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("max_event_bytes"), "{e}");
    assert_eq!(log.next_seq(), STORED as u64);
    assert_eq!(log.iter().count(), STORED);
    // The log still takes events that fit.
    let ok = log.append(&events(24, 1)[0]).unwrap();
    assert_eq!(ok.seq, STORED as u64);
    drop(log);
    assert_intact(dir.path(), STORED + 1);

    // The default limit is 64 KiB.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    big.details = serde_json::json!({ "blob": "y".repeat(70 * 1024) }).into();
    match log.append(&big) {
        Err(Error::EventTooLarge { limit, .. }) => assert_eq!(limit, 64 * 1024),
        Err(e) => panic!("expected EventTooLarge, got {e}"),
        Ok(_) => panic!("a 70 KiB event was appended under the default limit"),
    }
    assert_eq!(log.next_seq(), 0);
}

#[test]
fn invalid_event_is_refused_and_nothing_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    let good = events(25, 1).pop().unwrap();
    let cases: Vec<(&str, Event)> = vec![
        ("action", {
            let mut e = good.clone();
            e.action = String::new();
            e
        }),
        ("event_type", {
            let mut e = good.clone();
            e.event_type = String::new();
            e
        }),
        ("status", {
            let mut e = good.clone();
            e.status = String::new();
            e
        }),
        ("event_id", {
            let mut e = good.clone();
            e.event_id = Some("e".repeat(auditlog::MAX_EVENT_ID_BYTES + 1));
            e
        }),
        ("event_id", {
            let mut e = good.clone();
            e.event_id = Some(String::new());
            e
        }),
        ("details", {
            let mut e = good.clone();
            e.details = serde_json::json!(["not", "an", "object"]).into();
            e
        }),
        ("details", {
            let mut e = good.clone();
            e.details = serde_json::json!("text").into();
            e
        }),
        ("timestamp", {
            let mut e = good.clone();
            e.timestamp = Some("2300-01-01T00:00:00Z".parse().unwrap());
            e
        }),
    ];
    for (field, bad) in &cases {
        let e = err_of(log.append(bad));
        assert!(matches!(e, Error::InvalidEvent(_)), "{field}: {e:?}");
        assert!(e.to_string().contains(field), "{field}: {e}");
        // In a batch, the error names the event's position, and nothing of the batch is kept.
        let batch = vec![good.clone(), good.clone(), bad.clone()];
        let e = err_of(log.append_batch(&batch));
        assert!(e.to_string().contains("event 2"), "{field}: {e}");
        assert_eq!(log.next_seq(), STORED as u64, "{field}");
    }
    // The limits themselves are accepted.
    let mut edge = good.clone();
    edge.event_id = Some("e".repeat(auditlog::MAX_EVENT_ID_BYTES));
    assert_eq!(log.append(&edge).unwrap().seq, STORED as u64);
    assert_eq!(log.get(STORED as u64).unwrap().unwrap().event, edge);
    drop(log);
    assert_intact(dir.path(), STORED + 1);

    // Through serde, as a caller would parse a line.
    assert!(serde_json::from_str::<Event>(r#"{"event_type":"a"}"#).is_err());
    assert!(serde_json::from_str::<Event>(
        r#"{"event_type":"a","action":"b","actor":{"ip_address":"300.1.1.1"}}"#
    )
    .is_err());
    assert!(serde_json::from_str::<Event>(r#"{"event_type":"a","action":"b","extra":1}"#).is_err());
}

#[test]
fn bad_options_are_config_errors() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let cases: Vec<(&str, Options)> = vec![
        (
            "segment_bytes",
            Options::new(key()).segment_bytes(64 * 1024 - 1),
        ),
        ("segment_bytes", Options::new(key()).segment_bytes(0)),
        ("max_event_bytes", Options::new(key()).max_event_bytes(0)),
        (
            "max_event_bytes",
            Options::new(key()).max_event_bytes(17 << 20),
        ),
        (
            "interval",
            Options::new(key()).durability(Durability::Interval(std::time::Duration::ZERO)),
        ),
    ];
    for (what, opts) in cases {
        let e = err_of(Log::open(&dir, opts));
        assert!(matches!(e, Error::Config(_)), "{what}: {e:?}");
        assert!(e.to_string().contains(what), "{what}: {e}");
        assert!(
            !dir.exists(),
            "{what}: a refused open created the directory"
        );
    }
    // The minimum itself is accepted.
    let log = Log::open(&dir, Options::new(key()).segment_bytes(64 * 1024)).unwrap();
    assert_eq!(log.append(&events(26, 1)[0]).unwrap().seq, 0);

    // A bad option on an existing log changes nothing.
    drop(log);
    let e = err_of(Log::open(&dir, Options::new(key()).segment_bytes(1024)));
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    let log = Log::open_read_only(&dir, key()).unwrap();
    assert_eq!(log.iter().count(), 1);
    assert!(log.verify().unwrap().ok);
}

#[test]
fn second_writer_gets_locked_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let first = Log::open(dir.path(), buffered_opts()).unwrap();
    let clone = first.clone();
    for _ in 0..2 {
        match Log::open(dir.path(), buffered_opts()) {
            Err(e @ Error::Locked { .. }) => {
                let Error::Locked { dir: d } = &e else {
                    unreachable!()
                };
                assert_eq!(d, dir.path());
                assert!(e.to_string().contains("locked"), "{e}");
            }
            Err(e) => panic!("expected Locked, got {e}"),
            Ok(_) => panic!("two writers opened the same directory"),
        }
    }
    // The first writer is unaffected, and readers are not locked out.
    assert_eq!(first.append(&events(27, 1)[0]).unwrap().seq, STORED as u64);
    let reader = Log::open_read_only(dir.path(), key()).unwrap();
    assert_eq!(reader.iter().count(), STORED + 1);
    // Dropping one clone keeps the lock; dropping the last releases it.
    drop(first);
    assert!(matches!(
        Log::open(dir.path(), buffered_opts()).map(|_| ()),
        Err(Error::Locked { .. })
    ));
    drop(clone);
    let again = Log::open(dir.path(), buffered_opts()).expect("open after the writer closed");
    assert_eq!(again.next_seq(), STORED as u64 + 1);
    drop(again);
    assert_intact(dir.path(), STORED + 1);
}

#[test]
fn wrong_key_is_a_wrong_key_error() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let id = Log::open_read_only(dir.path(), key()).unwrap().log_id();
    for read_only in [true, false] {
        let r = if read_only {
            Log::open_read_only(dir.path(), other_key()).map(|_| ())
        } else {
            Log::open(dir.path(), Options::new(other_key())).map(|_| ())
        };
        match r {
            Err(e @ Error::WrongKey { .. }) => {
                assert!(e.to_string().contains(&id), "{e}");
                assert!(e.to_string().contains("wrong key"), "{e}");
            }
            Err(e) => panic!("expected WrongKey, got {e}"),
            Ok(()) => panic!("opened with a wrong key (read_only {read_only})"),
        }
    }
    assert_intact(dir.path(), STORED);
}

#[test]
fn segments_without_metadata_are_not_a_log() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    std::fs::remove_file(dir.path().join(auditlog::META_FILE)).unwrap();
    let before = snapshot(dir.path());
    let e = err_of(Log::open(dir.path(), buffered_opts()));
    assert!(matches!(e, Error::NotALog { .. }), "{e:?}");
    assert!(e.to_string().contains(auditlog::META_FILE), "{e}");
    let e = err_of(Log::open_read_only(dir.path(), key()));
    assert!(matches!(e, Error::NotALog { .. }), "{e:?}");
    // The refused open created nothing (no new metadata with a new log id) and touched nothing.
    assert!(!dir.path().join(auditlog::META_FILE).exists());
    let mut after = snapshot(dir.path());
    after.retain(|(n, _)| n != auditlog::LOCK_FILE);
    let mut before = before;
    before.retain(|(n, _)| n != auditlog::LOCK_FILE);
    assert!(before == after, "the refused open changed the directory");

    // A path that is not a directory at all.
    let missing = dir.path().join("no-such-dir");
    let e = err_of(Log::open_read_only(&missing, key()));
    assert!(matches!(e, Error::NotALog { .. }), "{e:?}");
}

#[test]
fn appending_to_a_read_only_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let e = err_of(log.append(&events(28, 1)[0]));
    assert!(matches!(e, Error::ReadOnly), "{e:?}");
    assert_intact(dir.path(), STORED);
}

/// Large JSON batches are prepared on several threads: the error still names the first bad
/// line of the whole batch, nothing of the batch is appended, and a good batch lands in
/// order with consecutive seqs.
#[test]
fn a_large_json_batch_names_its_first_bad_line_and_appends_in_order() {
    let dir = tempfile::tempdir().unwrap();
    stored_log(dir.path());
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    let mut lines: Vec<Vec<u8>> = events(5, 3000)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            e.event_id = Some(format!("batch-{i:05}"));
            serde_json::to_vec(&e).unwrap()
        })
        .collect();
    let good = lines.clone();
    lines[2199] = b"{\"event_type\": \"x\"}".to_vec(); // no action
    lines[700] = b"{not json".to_vec();
    lines[2900] = b"[]".to_vec();
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    match log.append_json_batch(&refs) {
        Err(Error::BadLine { line, .. }) => assert_eq!(line, 701, "the first bad line"),
        other => panic!("expected BadLine, got {other:?}"),
    }
    assert_eq!(
        log.next_seq(),
        STORED as u64,
        "nothing of the batch was appended"
    );
    let refs: Vec<&[u8]> = good.iter().map(Vec::as_slice).collect();
    let receipts = log.append_json_batch(&refs).unwrap();
    assert_eq!(receipts.len(), 3000);
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r.seq, (STORED + i) as u64);
        assert_eq!(r.event_id, format!("batch-{i:05}"));
    }
    drop(log);
    let report = verify_ro(dir.path());
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, (STORED + 3000) as u64);
}
