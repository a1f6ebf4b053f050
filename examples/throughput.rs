//! Quick throughput probe (not a benchmark of record; see benches/versus_sqlite.rs):
//! `cargo run --release --example throughput -- [events] [buffered|sync|json|json-sync] [threads] [auto|zero|fallocate]`
//! (`json`, `json-buffered`, `json-sync`: each thread's events as JSON lines through
//! `append_json_batch` of 1,000, under Buffered or Sync). `WRITE_PATH=staged|mmap|pwrite`
//! picks `Options::write_path` (default: the engine's choice).
use auditlog::{sample::Generator, Durability, HmacKey, Log, Options, Preallocation, WritePath};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let mode = args.get(2).map_or("buffered", |s| s.as_str());
    let dur = if mode.ends_with("sync") {
        Durability::Sync
    } else {
        Durability::Buffered
    };
    let threads: usize = args.get(3).map_or(1, |s| s.parse().unwrap());
    let pre = match args.get(4).map(|s| s.as_str()) {
        Some("zero") => Preallocation::ZeroFill,
        Some("fallocate") => Preallocation::Fallocate,
        _ => Preallocation::Auto,
    };
    let write_path = match std::env::var("WRITE_PATH").as_deref() {
        Ok("staged") => WritePath::Staged,
        Ok("mmap") => WritePath::Mmap,
        Ok("pwrite") => WritePath::Pwrite,
        _ => WritePath::Auto,
    };
    let base = std::env::var("PROBE_DIR").unwrap_or_else(|_| "target".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let evs: Vec<_> = Generator::standard(1).take(n).collect();
    let json = mode.starts_with("json");
    let lines: Vec<Vec<u8>> = if json {
        evs.iter().map(|e| serde_json::to_vec(e).unwrap()).collect()
    } else {
        Vec::new()
    };
    let t0 = Instant::now();
    let log = Log::open(
        dir.path(),
        Options::new(HmacKey::from_bytes(&[7; 32]).unwrap())
            .durability(dur)
            .preallocation(pre)
            .write_path(write_path),
    )
    .unwrap();
    let t1 = Instant::now();
    let per = n.div_ceil(threads);
    if json {
        std::thread::scope(|s| {
            for part in lines.chunks(per) {
                let log = log.clone();
                s.spawn(move || {
                    for c in part.chunks(1000) {
                        let refs: Vec<&[u8]> = c.iter().map(|l| l.as_slice()).collect();
                        log.append_json_batch(&refs).unwrap();
                    }
                });
            }
        });
    }
    let evs = if json { &evs[..0] } else { &evs[..] };
    std::thread::scope(|s| {
        for part in evs.chunks(per) {
            let log = log.clone();
            s.spawn(move || {
                for e in part {
                    log.append(e).unwrap();
                }
            });
        }
    });
    let t2 = Instant::now();
    let st = log.stats().unwrap();
    drop(log);
    let t3 = Instant::now();
    println!(
        "{n} events, {threads} threads, {dur:?}, {pre:?}, {write_path:?}: while appending {:.0}/s, incl open+close {:.0}/s (open {:?}, close {:?})",
        n as f64 / (t2 - t1).as_secs_f64(),
        n as f64 / (t3 - t0).as_secs_f64(),
        t1 - t0,
        t3 - t2
    );
    if st.commits > 0 {
        println!(
            "{} group commits, {:.1} records per sync",
            st.commits,
            st.commit_records as f64 / st.commits as f64
        );
    }
}
