//! A read-only handle beside a writer (as `auditlog ship` runs beside `serve` or `append`):
//! its subscription sees records appended after it opened, across segment rolls, and
//! `Log::refresh` makes them visible to lookups.

mod common;

use std::time::Duration;

use auditlog::{Durability, Log, Options};
use common::{events, key, SMALL_SEGMENT};

#[test]
fn read_only_subscription_sees_later_appends_and_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(key())
        .durability(Durability::Sync)
        .segment_bytes(SMALL_SEGMENT);
    let log = Log::open(dir.path(), opts).unwrap();
    let evs = events(11, 1200);
    log.append_batch(&evs[..10]).unwrap();

    let ro = Log::open_read_only(dir.path(), key()).unwrap();
    assert_eq!(ro.next_seq(), 10);
    let segs_before = ro.stats().unwrap().segments;
    let mut sub = ro.subscribe(0);

    let writer = {
        let log = log.clone();
        let evs = evs.clone();
        std::thread::spawn(move || {
            for chunk in evs[10..].chunks(13) {
                log.append_batch(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < evs.len() {
        let r = sub
            .next_timeout(Duration::from_secs(20))
            .unwrap()
            .expect("a record within 20 s");
        got.push(r);
    }
    writer.join().unwrap();
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.seq, i as u64, "no gap, in order");
        assert_eq!(r.event.action, evs[i].action);
    }
    assert!(
        ro.stats().unwrap().segments > segs_before,
        "the writer rolled segments the reader picked up"
    );
    // Lookups (with their MAC recheck) see the new records too.
    let last = ro
        .event_at(evs.len() as u64 - 1)
        .unwrap()
        .expect("last record");
    assert_eq!(last.event.action, evs.last().unwrap().action);

    // Nothing more: the subscription waits, and `refresh` keeps the view.
    assert!(sub
        .next_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
    ro.refresh().unwrap();
    assert_eq!(ro.next_seq(), evs.len() as u64);
}
