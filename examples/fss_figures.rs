//! Append throughput of a forward-secure log against a plain one (docs/KEYS.md figures).
//!
//! `cargo run --release --no-default-features --example fss_figures -- [EVENTS] [EPOCH_MS]`
//! (defaults 400000 events, 100 ms epochs). Buffered durability, batches of 1,000, and a
//! Sync run of 20,000 single appends; prints the best of three events/s for each and the ratio.

use std::time::{Duration, Instant};

use auditlog::{Durability, Event, HmacKey, Log, Options};

fn event(i: u64) -> Event {
    let mut e = Event::new("authentication", "user_login");
    e.actor.user_id = Some(format!("user-{}", i % 100));
    e.details = serde_json::json!({ "i": i }).into();
    e
}

fn run(fss: Option<Duration>, durability: Durability, n: u64, batch: usize) -> (f64, usize) {
    let base = std::env::var("PROBE_DIR").unwrap_or_else(|_| "target".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let mut opts = Options::new(HmacKey::from_bytes(&[7; 32]).unwrap()).durability(durability);
    if let Some(e) = fss {
        opts = opts
            .forward_secure(e)
            .fss_initial_key(HmacKey::from_bytes(&[9; 32]).unwrap());
    }
    let log = Log::open(dir.path(), opts).unwrap();
    let events: Vec<Event> = (0..batch as u64).map(event).collect();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        if batch == 1 {
            log.append(&events[0]).unwrap();
        } else {
            log.append_batch(&events).unwrap();
        }
        done += batch as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    drop(log);
    let seals = auditlog::fss::read_seals(dir.path())
        .unwrap()
        .map_or(0, |s| s.seals.len());
    (done as f64 / secs, seals)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(400_000, |s| s.parse().unwrap());
    let epoch = Duration::from_millis(args.get(2).map_or(100, |s| s.parse().unwrap()));
    for (name, d, n, batch) in [
        ("buffered, batches of 1000", Durability::Buffered, n, 1000),
        ("sync, single appends", Durability::Sync, 20_000, 1),
    ] {
        // Best of three, alternating, so that a noisy neighbour hurts both alike.
        let (mut plain, mut fss, mut seals) = (0f64, 0f64, 0);
        for _ in 0..3 {
            plain = plain.max(run(None, d, n, batch).0);
            let (r, s) = run(Some(epoch), d, n, batch);
            fss = fss.max(r);
            seals = seals.max(s);
        }
        println!(
            "{name}: plain {plain:.0} events/s, forward-secure ({epoch:?} epochs, {seals} seals) {fss:.0} events/s, ratio {:.3}",
            fss / plain
        );
    }
}
