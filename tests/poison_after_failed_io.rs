//! A failed sync poisons the log (every later write fails, nothing acknowledged is lost); a
//! full disk when a segment is created is a clear error on the append path, not a crash.
#![cfg(feature = "failpoints")]

use auditlog::failpoints;
use auditlog::sample::Generator;
use auditlog::{Durability, Error, HmacKey, Log, Options};

fn key() -> HmacKey {
    HmacKey::from_bytes(&[9u8; 32]).unwrap()
}

// Both cases share the global failpoints, so they run in one test, one after the other.
#[test]
fn failed_sync_poisons_and_full_disk_is_reported() {
    let _scenario = failpoints::scenario();
    // 1. A failing sync.
    let dir = tempfile::tempdir().unwrap();
    let mut g = Generator::standard(1);
    {
        let log = Log::open(dir.path(), Options::new(key()).durability(Durability::Sync)).unwrap();
        for _ in 0..10 {
            log.append(&g.next_event()).unwrap();
        }
        failpoints::cfg("append.sync", "return").unwrap();
        let err = log.append(&g.next_event()).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("os error 5"), "{err}");
        assert!(err.to_string().contains("syncing"), "{err}");
        for _ in 0..3 {
            let again = log.append(&g.next_event()).unwrap_err();
            assert!(matches!(again, Error::Poisoned(_)), "{again}");
            assert!(again.to_string().contains("os error 5"), "{again}");
        }
        assert!(matches!(
            log.append_batch(&[g.next_event()]).unwrap_err(),
            Error::Poisoned(_)
        ));
        assert!(matches!(log.checkpoint().unwrap_err(), Error::Poisoned(_)));
    }
    failpoints::remove("append.sync");
    let log = Log::open(dir.path(), Options::new(key())).unwrap();
    // The 10 acknowledged events are there; the one whose sync failed may or may not be.
    let n = log.iter().count();
    assert!((10..=11).contains(&n), "{n} records after reopen");
    assert!(log.verify().unwrap().ok);
    drop(log);

    // 2. A full disk when the next segment is created.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options::new(key())
            .durability(Durability::Buffered)
            .segment_bytes(64 * 1024),
    )
    .unwrap();
    let mut acked = Vec::new();
    failpoints::cfg("segment.create", "return(enospc)").unwrap();
    let mut failure = None;
    for _ in 0..1000 {
        match log.append(&g.next_event()) {
            Ok(r) => acked.push(r.seq),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("the roll into a new segment must fail");
    assert!(
        failure.to_string().contains("No space left on device"),
        "{failure}"
    );
    assert!(
        failure.to_string().contains(".seg"),
        "error names the file: {failure}"
    );
    // The log is not poisoned by a failed roll: the next append retries and succeeds.
    assert!(failpoints::hits("segment.create") > 0);
    failpoints::remove("segment.create");
    acked.push(log.append(&g.next_event()).unwrap().seq);
    drop(log);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let seqs: Vec<u64> = log.iter().map(|r| r.unwrap().seq).collect();
    assert_eq!(seqs, acked);
    assert!(log.verify().unwrap().ok);
}
