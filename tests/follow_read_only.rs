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

/// A record half-written at the tail (a writer caught mid-append, as a separate process
/// sees it) is never handed out; once its remaining bytes land, it is.
#[test]
fn read_only_follower_never_trusts_a_torn_tail() {
    use common::{copy_dir, layouts};
    let orig = tempfile::tempdir().unwrap();
    let evs = events(5, 21);
    {
        let log = Log::open(orig.path(), Options::new(key())).unwrap();
        log.append_batch(&evs[..20]).unwrap();
    }
    let torn = tempfile::tempdir().unwrap();
    copy_dir(orig.path(), torn.path());
    {
        let log = Log::open(orig.path(), Options::new(key())).unwrap();
        log.append(&evs[20]).unwrap();
    }
    let seg = layouts(orig.path()).pop().unwrap();
    let f = *seg.frames.last().unwrap();
    assert_eq!(f.seq, 20);
    let frame = std::fs::read(&seg.path).unwrap()[f.offset..f.offset + f.len].to_vec();
    let path = torn.path().join(&seg.name);
    let before = layouts(torn.path()).pop().unwrap();
    assert_eq!(
        before.name, seg.name,
        "the record went into the same segment"
    );
    assert!(before.footer.is_none(), "that segment is unsealed");
    let write_at = |off: usize, bytes: &[u8]| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(bytes, off as u64).unwrap();
    };
    let half = f.len / 2;
    write_at(f.offset, &frame[..half]);

    let ro = Log::open_read_only(torn.path(), key()).unwrap();
    assert_eq!(ro.next_seq(), 20, "the torn record is not counted");
    let mut sub = ro.subscribe(0);
    for i in 0..20u64 {
        let r = sub.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(r.seq, i);
    }
    // Several refreshes: still nothing.
    assert!(sub
        .next_timeout(Duration::from_millis(700))
        .unwrap()
        .is_none());
    assert_eq!(ro.next_seq(), 20);

    // The rest of the frame lands: the record is whole, chained, and handed out.
    write_at(f.offset + half, &frame[half..]);
    let r = sub
        .next_timeout(Duration::from_secs(5))
        .unwrap()
        .expect("the completed record");
    assert_eq!(r.seq, 20);
    assert_eq!(r.event.action, evs[20].action);
    assert!(ro.event_at(20).unwrap().is_some(), "its MAC rechecks");
}
