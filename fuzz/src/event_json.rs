//! Event JSON as `auditlog append` parses it: each line of the input, trimmed, through
//! `serde_json::from_str::<Event>` and `Event::validate` (src/cli/mod.rs). Nothing panics;
//! an accepted event serializes to JSON that parses back to the same event; and it appends
//! (alone, or with the input's other accepted lines as one batch) and reads back equal, with
//! the id and timestamp the receipt names. The only refusals allowed at append are a
//! timestamp outside the years 1677 to 2262 and an event over the size limit.
//!
//! One log per process, in a temporary directory (in memory where there is a tmpfs), replaced
//! by a fresh one every `ROTATE` events so that a long run stays small.
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API, `serde_json`, `chrono` and `tempfile`.

use std::path::Path;
use std::sync::Mutex;

use auditlog::{Durability, Error, Event, HmacKey, Log, Options, Receipt};
use chrono::{TimeZone, Utc};

const KEY: &[u8] = b"event_json fuzz key, thirty-two bytes at the least";
const ROTATE: u64 = 20_000;
/// The append limit of the test log (the default, 64 KiB).
const MAX_EVENT_BYTES: usize = 64 << 10;

struct Shared {
    log: Log,
    appended: u64,
    _tmp: tempfile::TempDir,
}

static LOG: Mutex<Option<Shared>> = Mutex::new(None);

/// A temporary directory for this process's shared log, in memory where the machine has a
/// tmpfs. A static is never dropped, so the directory outlives the process: directories of
/// processes that are gone are removed first.
fn process_scratch(target: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let prefix = format!("auditlog-fuzz-{target}-");
    if let Ok(entries) = std::fs::read_dir(&parent) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(&prefix)
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(&parent)
        .unwrap()
}

fn fresh() -> Shared {
    let tmp = process_scratch("event_json");
    let opts = Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(Durability::Buffered)
        .segment_bytes(1 << 20)
        .max_event_bytes(MAX_EVENT_BYTES);
    Shared {
        log: Log::open(tmp.path(), opts).expect("open the event_json log"),
        appended: 0,
        _tmp: tmp,
    }
}

/// What became of the input's lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Lines `auditlog append` would accept.
    pub accepted: usize,
    /// Lines it would refuse.
    pub refused: usize,
    /// Accepted events the log stored and read back.
    pub appended: usize,
}

/// Parses one line the way `auditlog append` does.
pub fn parse_line(text: &str) -> Result<Event, String> {
    serde_json::from_str::<Event>(text)
        .map_err(|e| e.to_string())
        .and_then(|e| e.validate().map(|_| e).map_err(|e| e.to_string()))
}

/// Whether the log may refuse `e` at append, and why.
fn may_refuse(e: &Event) -> bool {
    let out_of_range = e
        .timestamp
        .is_some_and(|t| t.timestamp_nanos_opt().is_none());
    // The payload is the stored fields in bincode: never much larger than the JSON.
    let large = serde_json::to_string(e).unwrap().len() > MAX_EVENT_BYTES / 2;
    out_of_range || large
}

fn check_refusal(e: &Event, err: &Error) {
    assert!(
        matches!(err, Error::InvalidEvent(_) | Error::EventTooLarge { .. }),
        "append refused an accepted event with {err:?}: {e:?}"
    );
    assert!(may_refuse(e), "append refused {e:?}: {err}");
}

/// The event read back must be the one appended, with the receipt's id and timestamp.
fn check_stored(log: &Log, e: &Event, r: &Receipt) {
    let got = log
        .get(r.seq)
        .unwrap()
        .unwrap_or_else(|| panic!("record {} missing", r.seq));
    assert_eq!(got.hash, r.hash);
    assert_eq!(got.timestamp_ns, r.timestamp_ns);
    if let Some(id) = &e.event_id {
        assert_eq!(&r.event_id, id);
    }
    if let Some(t) = &e.timestamp {
        assert_eq!(t.timestamp_nanos_opt(), Some(r.timestamp_ns));
    }
    let mut want = e.clone();
    want.event_id = Some(r.event_id.clone());
    // A leap second (`23:59:60`) has no UTC nanosecond of its own: the stored timestamp is
    // the one its nanoseconds name.
    want.timestamp = Some(Utc.timestamp_nanos(r.timestamp_ns));
    assert_eq!(got.event, want, "stored event differs");
    assert!(got.redacted.is_none());
    // The stored event's own JSON round-trips too.
    let json = serde_json::to_string(&got.event).unwrap();
    let back: Event = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back, got.event,
        "stored event's JSON does not round-trip: {json}"
    );
}

pub fn run(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let Ok(text) = std::str::from_utf8(data) else {
        return out;
    };
    let mut events = Vec::new();
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(e) => {
                // Its JSON parses back to the same event (and is accepted again).
                let json = serde_json::to_string(&e).unwrap();
                let back = parse_line(&json)
                    .unwrap_or_else(|m| panic!("re-encoded event refused: {m}: {json}"));
                assert_eq!(back, e, "event JSON does not round-trip: {line} -> {json}");
                let value = serde_json::to_value(&e).unwrap();
                let back: Event = serde_json::from_value(value).unwrap();
                assert_eq!(back, e, "event Value does not round-trip: {json}");
                out.accepted += 1;
                events.push(e);
            }
            Err(_) => out.refused += 1,
        }
    }
    if events.is_empty() {
        return out;
    }
    let mut guard = LOG.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|s| s.appended >= ROTATE) {
        *guard = None;
        *guard = Some(fresh());
    }
    let shared = guard.as_mut().unwrap();
    let log = &shared.log;
    let next = log.next_seq();
    let mut singles = events.len() == 1;
    if !singles {
        match log.append_batch(&events) {
            Ok(rs) => {
                assert_eq!(rs.len(), events.len());
                for (k, (e, r)) in events.iter().zip(&rs).enumerate() {
                    assert_eq!(r.seq, next + k as u64);
                    check_stored(log, e, r);
                }
                out.appended = rs.len();
            }
            Err(err) => {
                // A batch is all or nothing: one of its events must be refusable.
                assert!(
                    matches!(err, Error::InvalidEvent(_) | Error::EventTooLarge { .. }),
                    "batch refused with {err:?}"
                );
                assert!(events.iter().any(may_refuse), "batch refused: {err}");
                assert_eq!(log.next_seq(), next, "a refused batch wrote records");
                singles = true;
            }
        }
    }
    if singles {
        for e in &events {
            let before = log.next_seq();
            match log.append(e) {
                Ok(r) => {
                    assert_eq!(r.seq, before);
                    check_stored(log, e, &r);
                    out.appended += 1;
                }
                Err(err) => {
                    check_refusal(e, &err);
                    assert_eq!(log.next_seq(), before, "a refused event wrote a record");
                }
            }
        }
    }
    shared.appended += out.appended as u64;
    out
}
