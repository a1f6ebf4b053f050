//! Both ways of preallocating a segment (`Preallocation::ZeroFill` and `Fallocate`) give
//! segments that roll, seal, reopen and verify alike, under `Sync` and `Buffered`: every
//! acknowledged event is read back with its receipt's hash.

mod common;

use auditlog::{Durability, Log, Options, Preallocation, MIN_SEGMENT_BYTES};

#[test]
fn zero_filled_and_reserved_segments_hold_the_same_log() {
    for pre in [
        Preallocation::ZeroFill,
        Preallocation::Fallocate,
        Preallocation::Auto,
    ] {
        for dur in [Durability::Sync, Durability::Buffered] {
            let dir = tempfile::tempdir().unwrap();
            let opts = || {
                Options::new(common::key())
                    .durability(dur)
                    .segment_bytes(MIN_SEGMENT_BYTES)
                    .preallocation(pre)
            };
            let events = common::events(7, 900);
            let log = Log::open(dir.path(), opts()).unwrap();
            let receipts: Vec<_> = events.iter().map(|e| log.append(e).unwrap()).collect();
            let segs = log.stats().unwrap().segments;
            assert!(segs >= 3, "{pre:?}/{dur:?}: only {segs} segments: no rolls");
            drop(log);
            // No spare or temporary survives a clean close.
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                assert!(
                    !name.ends_with(".prealloc") && !name.ends_with(".tmp"),
                    "{pre:?}/{dur:?}: {name} left behind"
                );
            }
            let log = Log::open(dir.path(), opts()).unwrap();
            let report = log.verify().unwrap();
            assert!(report.ok, "{pre:?}/{dur:?}: {report:?}");
            let got: Vec<_> = log.iter().map(|r| r.unwrap()).collect();
            assert_eq!(got.len(), receipts.len(), "{pre:?}/{dur:?}");
            for (r, rec) in receipts.iter().zip(&got) {
                assert_eq!(r.seq, rec.seq);
                assert_eq!(r.hash, rec.hash, "{pre:?}/{dur:?}: seq {}", r.seq);
            }
        }
    }
}
