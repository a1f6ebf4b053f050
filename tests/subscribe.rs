//! `Log::subscribe`: following a log from a seq on, across appends from other threads and
//! segment rolls, without gaps.

mod common;

use std::time::{Duration, Instant};

use auditlog::{Durability, Follow, Log, Options};
use common::{events, key, write_log, SMALL_SEGMENT};

fn sync_opts() -> Options {
    Options::new(key())
        .durability(Durability::Sync)
        .segment_bytes(SMALL_SEGMENT)
}

#[test]
fn follows_appends_from_another_thread_in_order_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), sync_opts()).unwrap();
    let mut sub = log.subscribe(0);
    // Nothing yet: the timeout variant returns None after about the timeout.
    let t = Instant::now();
    assert!(sub
        .next_timeout(Duration::from_millis(100))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(100));

    let n = 1500;
    let evs = events(3, n);
    let writer = {
        let log = log.clone();
        let evs = evs.clone();
        std::thread::spawn(move || {
            for (i, chunk) in evs.chunks(7).enumerate() {
                if i % 2 == 0 {
                    log.append_batch(chunk).unwrap();
                } else {
                    for e in chunk {
                        log.append(e).unwrap();
                    }
                }
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < n {
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
        log.stats().unwrap().segments > 2,
        "the test must span segment rolls"
    );
    assert_eq!(sub.position(), n as u64);
    assert!(sub.try_next().unwrap().is_none());
}

#[test]
fn starts_in_the_middle_of_an_existing_log_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5, 2000);
    let log = Log::open(dir.path(), sync_opts()).unwrap();
    assert!(log.stats().unwrap().segments > 2);
    let mut sub = log.subscribe(1234);
    let first = sub.next_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert_eq!(first.seq, 1234);
    let mut last = first.seq;
    while let Some(r) = sub.try_next().unwrap() {
        assert_eq!(r.seq, last + 1);
        last = r.seq;
    }
    assert_eq!(last, 1999);
    // A waiting follower is woken by an append.
    let appender = {
        let log = log.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            log.append(&events(9, 1)[0]).unwrap()
        })
    };
    let r = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let receipt = appender.join().unwrap();
    assert_eq!(r.seq, 2000);
    assert_eq!(r.seq, receipt.seq);
    assert_eq!(r.hash, receipt.hash);
}

#[test]
fn durable_follower_waits_for_the_sync_visible_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(SMALL_SEGMENT);
    let log = Log::open(dir.path(), opts).unwrap();
    let mut durable = log.subscribe(0);
    let mut visible = log.subscribe_with(0, Follow::Visible);
    log.append_batch(&events(1, 10)).unwrap();
    let v = visible.next_batch(100, Duration::from_secs(5)).unwrap();
    assert_eq!(
        v.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert!(
        durable
            .next_timeout(Duration::from_millis(200))
            .unwrap()
            .is_none(),
        "buffered records are not durable before a flush"
    );
    log.flush().unwrap();
    let d = durable.next_batch(100, Duration::from_secs(5)).unwrap();
    assert_eq!(d.len(), 10);
    assert_eq!(d[9].seq, 9);
}

#[test]
fn iterator_ends_when_the_log_closes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), sync_opts()).unwrap();
    log.append_batch(&events(2, 5)).unwrap();
    let sub = log.subscribe(2);
    let reader = std::thread::spawn(move || sub.map(|r| r.unwrap().seq).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));
    drop(log);
    assert_eq!(reader.join().unwrap(), vec![2, 3, 4]);
}

#[test]
fn read_only_subscription_reads_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 8, 300);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let mut sub = log.subscribe(250);
    let got = sub.next_batch(1000, Duration::from_secs(1)).unwrap();
    assert_eq!(got.len(), 50);
    assert_eq!(got[0].seq, 250);
    assert!(sub
        .next_timeout(Duration::from_millis(50))
        .unwrap()
        .is_none());
}

#[test]
fn check_macs_verifies_every_record_across_resumes_and_rolls_and_catches_a_forgery() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), sync_opts()).unwrap();
    log.append_batch(&events(4, 400)).unwrap();
    let mut sub = log.subscribe(0).check_macs();
    let mut seen = 0u64;
    // Catch up, append, catch up again: each catch-up ends an iterator and the next one
    // resumes where it stopped (also across segment rolls).
    for round in 0..12u64 {
        while let Some(r) = sub.try_next().unwrap() {
            assert_eq!(r.seq, seen);
            assert_eq!(r.mac_verified, Some(true), "seq {}", r.seq);
            seen += 1;
        }
        log.append_batch(&events(40 + round, 60)).unwrap();
    }
    while let Some(r) = sub.try_next().unwrap() {
        assert_eq!((r.seq, r.mac_verified), (seen, Some(true)));
        seen += 1;
    }
    assert_eq!(seen, 400 + 12 * 60);
    assert!(
        common::segment_paths(dir.path()).len() > 3,
        "the test should roll segments"
    );
    // Without check_macs nothing is checked.
    assert_eq!(
        log.subscribe(5).try_next().unwrap().unwrap().mac_verified,
        None
    );
    drop(sub);
    drop(log);

    // A forged timestamp (the frame's CRC fixed) fails that record's MAC only.
    common::forge_timestamp(dir.path(), 150);
    let ro = Log::open_read_only(dir.path(), key()).unwrap();
    let mut sub = ro.subscribe(0).check_macs();
    let mut bad = Vec::new();
    let mut n = 0;
    while let Some(r) = sub.try_next().unwrap() {
        if r.mac_verified != Some(true) {
            bad.push(r.seq);
        }
        n += 1;
    }
    assert_eq!(n, seen);
    assert_eq!(bad, [150]);
}
