//! The read side at scale (not a benchmark of record; see benches/versus_sqlite.rs): opening,
//! verifying and querying one large log.
//!
//! ```text
//! cargo run --release --example read_path -- DIR [events] [runs] [open|verify|actor|count|all]
//! ```
//!
//! Builds a log of `events` (default 10,000,000) seed-shaped events in `DIR` the first time
//! (`Generator::standard(2024)`, `Buffered`, batches of 1,000, default 64 MiB segments; a few
//! GB at 10 M) and reuses it afterwards. Then, `runs` times each (default 5; medians): the
//! time of `Log::open` (recovery, lock, worker) and its close, of `Log::open_read_only`, of a
//! first query on a fresh read-only open (the index loads), and of `verify` (events/s).
//! The key is fixed, so a directory made by one run is reused by the next.

use std::path::Path;
use std::time::{Duration, Instant};

use auditlog::sample::Generator;
use auditlog::{Durability, HmacKey, Log, Options, Query};

fn key() -> HmacKey {
    HmacKey::from_bytes(b"auditlog-read-path-key-0123456789").expect("a 33-byte key")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn build(dir: &Path, n: usize) {
    let t = Instant::now();
    let log = Log::open(
        dir,
        Options::new(key())
            .durability(Durability::Buffered)
            .save_active_index(true),
    )
    .expect("open for building");
    let mut g = Generator::standard(2024);
    let mut chunk = Vec::with_capacity(1000);
    let mut left = n;
    while left > 0 {
        chunk.clear();
        chunk.extend((&mut g).take(left.min(1000)));
        log.append_batch(&chunk).expect("append");
        left -= chunk.len();
    }
    drop(log);
    println!("built {n} events in {:.1} s", t.elapsed().as_secs_f64());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = Path::new(args.get(1).expect("usage: read_path DIR [events] [runs]"));
    let n: usize = args
        .get(2)
        .map_or(10_000_000, |s| s.replace('_', "").parse().expect("events"));
    let runs: usize = args.get(3).map_or(5, |s| s.parse().expect("runs"));
    let what = args.get(4).map_or("all", |s| s.as_str());
    if !dir.join("auditlog.meta").exists() {
        build(dir, n);
    }
    if what == "verify" {
        verify(dir, runs);
        return;
    }
    if what == "actor" || what == "count" {
        queries(dir, runs, what);
        return;
    }

    let (mut open, mut close) = (Vec::new(), Vec::new());
    let mut next = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let log = Log::open(
            dir,
            Options::new(key())
                .durability(Durability::Buffered)
                .save_active_index(true),
        )
        .expect("open");
        open.push(t.elapsed());
        next = log.next_seq();
        let t = Instant::now();
        drop(log);
        close.push(t.elapsed());
    }
    let segments = Log::open_read_only(dir, key())
        .expect("open_read_only")
        .stats()
        .expect("stats")
        .segments;
    println!(
        "{next} events in {segments} segments: Log::open {} (median of {runs}), close {}",
        ms(median(open)),
        ms(median(close))
    );

    let mut ro = Vec::new();
    let mut first_query = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let log = Log::open_read_only(dir, key()).expect("open_read_only");
        ro.push(t.elapsed());
        let mut q = Query::new();
        q.user_ids = vec!["user-00042".into()];
        let t = Instant::now();
        let page = log.query(&q).expect("query");
        first_query.push(t.elapsed());
        assert!(page.audit_logs.iter().all(|e| e.verification.verified));
    }
    println!(
        "Log::open_read_only {} (median of {runs}); first query after it (index loads) {}",
        ms(median(ro)),
        ms(median(first_query))
    );
    if what == "all" {
        verify(dir, runs.min(3));
    }
}

/// `runs` queries of one kind on one read-only open (after a first, untimed one): an actor's
/// newest 100 (`actor`), or the count of `status=failed` + `severity=high` (`count`).
fn queries(dir: &Path, runs: usize, what: &str) {
    let log = Log::open_read_only(dir, key()).expect("open_read_only");
    let make = |i: usize| {
        let mut q = Query::new();
        if what == "actor" {
            q.user_ids = vec![format!("user-{:05}", (i * 7919) % 1000)];
        } else {
            q.statuses = vec!["failed".into()];
            q.severities = vec![auditlog::Severity::High];
            q.limit = 1;
        }
        q
    };
    log.query(&make(0)).expect("query");
    let mut times = Vec::new();
    for i in 0..runs {
        let q = make(i);
        let t = Instant::now();
        let page = log.query(&q).expect("query");
        times.push(t.elapsed());
        std::hint::black_box(page);
    }
    println!(
        "{what} query: median {:.1} µs over {runs} runs",
        median(times).as_secs_f64() * 1e6
    );
}

/// `runs` times `open_read_only` + `verify`, and the median rate.
fn verify(dir: &Path, runs: usize) {
    let mut verify = Vec::new();
    let mut next = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let log = Log::open_read_only(dir, key()).expect("open_read_only");
        let r = log.verify().expect("verify");
        verify.push(t.elapsed());
        assert!(r.ok, "verify failed: {:?}", r.failure);
        next = r.records;
    }
    let v = median(verify);
    println!(
        "open_read_only + verify of {next} events {} (median of {runs}): {:.0} events/s",
        ms(v),
        next as f64 / v.as_secs_f64()
    );
}
