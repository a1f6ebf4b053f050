//! Figures of the Merkle tree for docs/TRANSPARENCY.md (not a benchmark of record):
//! `cargo run --release --example merkle_figures -- [leaves] [events] [sync_every]`
//!
//! 1. Tiles for `leaves` synthetic leaf hashes (default 1,000,000) written with
//!    `TileStore::append_leaves` in batches of 10,000: tile bytes per leaf, inclusion and
//!    consistency proof sizes, and the time to make (from tiles) and to verify them.
//! 2. Append throughput of `events` events (default 200,000, Buffered, batches of 1,000) into a
//!    log, without the tree, with `Log::merkle_sync()` after every `sync_every` batches
//!    (default 10), and with the tree kept by the worker (`Options::merkle_tree`); the last two
//!    end with a `merkle_sync` (timed apart). For the worker's tree: how many leaves the tiles
//!    on disk covered at the end (written) and how many the `tree` file named (durable).
//!
//! `merkle_figures simulate [leaves]` (default 100,000,000) instead writes the tiles of
//! `leaves` synthetic leaves straight through a `TileWriter` (no log, no fsync: the `tree` file
//! is committed unsynced), under `PROBE_DIR` (default `target`), and measures from them with
//! fresh readers: inclusion and consistency proof size and time, tile bytes per leaf. About
//! 32.5 bytes a leaf on disk (3.3 GB at 100 M); the directory is removed at the end.
use std::time::Instant;

use auditlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, tree_hash, verify_consistency, verify_inclusion,
};
use auditlog::tiles::{TileStore, TileWriter};
use auditlog::{sample::Generator, Durability, HmacKey, Log, Options};

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

/// Leaves the level-0 tiles under `merkle` cover (the widest tile present, full or partial).
fn tiles_cover(merkle: &std::path::Path) -> u64 {
    fn walk(d: &std::path::Path, prefix: u64, best: &mut u64) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            if let Some(group) = name.strip_prefix('x') {
                if let Ok(g) = group.parse::<u64>() {
                    walk(&path, prefix * 1000 + g, best);
                }
            } else if let Some(n) = name.strip_suffix(".p") {
                let Ok(n) = n.parse::<u64>() else { continue };
                for w in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    if let Ok(w) = w.file_name().to_string_lossy().parse::<u64>() {
                        *best = (*best).max((prefix * 1000 + n) * 256 + w);
                    }
                }
            } else if let Ok(n) = name.parse::<u64>() {
                *best = (*best).max((prefix * 1000 + n + 1) * 256);
            }
        }
    }
    let mut best = 0;
    walk(&merkle.join("tile/0"), 0, &mut best);
    best
}

/// Inclusion proofs of 1,000 spread leaves and consistency proofs from a third and from 99 %
/// of the tree, each made by a fresh reader (no tile cached, as a server answering one
/// request would) and verified; prints sizes and mean times.
fn proof_figures(store: &TileStore, n: u64, root: &[u8; 32]) {
    let samples = 1000u64;
    let (mut make_ns, mut verify_ns, mut hashes) = (0u128, 0u128, 0usize);
    for k in 0..samples {
        let idx = (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % n;
        let t = Instant::now();
        // A fresh reader (no tile cached) that starts from the `tree` file, as a server
        // answering one request would.
        let r = store.reader(n).unwrap();
        let p = inclusion_proof(&r, idx, n).unwrap();
        make_ns += t.elapsed().as_nanos();
        let leaf = leaf_hash(&idx.to_le_bytes());
        let t = Instant::now();
        verify_inclusion(&leaf, idx, n, &p, root).unwrap();
        verify_ns += t.elapsed().as_nanos();
        hashes += p.len();
    }
    println!(
        "inclusion at {n}: {:.1} hashes = {:.0} bytes on average; make from tiles (fresh reader) {:.1} µs, verify {:.1} µs",
        hashes as f64 / samples as f64,
        32.0 * hashes as f64 / samples as f64,
        make_ns as f64 / samples as f64 / 1e3,
        verify_ns as f64 / samples as f64 / 1e3
    );
    for old in [n / 3 + 1, n - n / 100 - 1] {
        let t = Instant::now();
        let r = store.reader(n).unwrap();
        let p = consistency_proof(&r, old, n).unwrap();
        let make = t.elapsed();
        let old_root = tree_hash(&store.reader(n).unwrap(), old).unwrap();
        let t = Instant::now();
        verify_consistency(old, n, &old_root, root, &p).unwrap();
        println!(
            "consistency {old} -> {n}: {} hashes = {} bytes; make (fresh reader) {:.1} µs, verify {:.1} µs",
            p.len(),
            32 * p.len(),
            make.as_secs_f64() * 1e6,
            t.elapsed().as_secs_f64() * 1e6
        );
    }
}

/// `simulate`: the tiles of `n` synthetic leaves, and proofs from them.
fn simulate(n: u64, base: &str) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = TileStore::new(dir.path());
    let mut w = TileWriter::new(&store).unwrap();
    let t = Instant::now();
    let mut at = 0u64;
    while at < n {
        let end = (at + 1_000_000).min(n);
        let leaves: Vec<_> = (at..end).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        w.append(&leaves).unwrap();
        at = end;
    }
    let st = w.commit_unsynced().unwrap();
    let build = t.elapsed();
    let bytes = dir_bytes(&dir.path().join("merkle"));
    println!(
        "simulated tiles: {n} leaves in {:.1} s ({:.0} leaves/s, unsynced), {bytes} bytes = {:.3} bytes/leaf",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64(),
        bytes as f64 / n as f64
    );
    proof_figures(&store, n, &st.root);
    let t = Instant::now();
    drop(dir);
    println!(
        "removed the simulated tiles in {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("simulate") {
        let n: u64 = args.get(2).map_or(100_000_000, |s| s.parse().unwrap());
        let base = std::env::var("PROBE_DIR").unwrap_or_else(|_| "target".into());
        return simulate(n, &base);
    }
    let n: u64 = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let events: usize = args.get(2).map_or(200_000, |s| s.parse().unwrap());
    let every: usize = args.get(3).map_or(10, |s| s.parse().unwrap());
    let base = std::env::var("PROBE_DIR").unwrap_or_else(|_| "target".into());

    // 1. Tiles and proofs.
    let dir = tempfile::tempdir_in(&base).unwrap();
    let store = TileStore::new(dir.path());
    let t = Instant::now();
    let mut at = 0u64;
    while at < n {
        let end = (at + 10_000).min(n);
        let leaves: Vec<_> = (at..end).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        store.append_leaves(&leaves).unwrap();
        at = end;
    }
    let build = t.elapsed();
    let st = store.state().unwrap();
    let bytes = dir_bytes(&dir.path().join("merkle"));
    println!(
        "tiles: {n} leaves in {:.2} s, {bytes} bytes = {:.3} bytes/leaf",
        build.as_secs_f64(),
        bytes as f64 / n as f64
    );
    let r = store.reader(n).unwrap();
    assert_eq!(tree_hash(&r, n).unwrap(), st.root);
    proof_figures(&store, n, &st.root);
    drop(dir);

    // 2. Append throughput without the tree, with `merkle_sync` on the appending thread, and
    // with the tree kept in the background (`Options::merkle_tree`), interleaved.
    let evs: Vec<_> = Generator::standard(1).take(events).collect();
    let mut rates: Vec<(&str, f64)> = Vec::new();
    for mode in [
        "none",
        "merkle_sync",
        "background",
        "none",
        "merkle_sync",
        "background",
    ] {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let log = Log::open(
            dir.path(),
            Options::new(HmacKey::from_bytes(&[7; 32]).unwrap())
                .durability(Durability::Buffered)
                .merkle_tree(mode == "background"),
        )
        .unwrap();
        let t = Instant::now();
        for (i, chunk) in evs.chunks(1000).enumerate() {
            log.append_batch(chunk).unwrap();
            if mode == "merkle_sync" && i % every == every - 1 {
                log.merkle_sync().unwrap();
            }
        }
        log.flush().unwrap();
        let appended = t.elapsed().as_secs_f64();
        let mut tail = String::new();
        if mode != "none" {
            let durable = auditlog::tiles::TileStore::new(dir.path())
                .state()
                .map_or(0, |s| s.size);
            let written = tiles_cover(&dir.path().join("merkle"));
            let c = Instant::now();
            let st = log.merkle_sync().unwrap();
            assert_eq!(st.size, events as u64);
            tail = format!(
                "; at the end the tiles covered {written} leaves, the tree file {durable}; final merkle_sync {:.1} ms",
                c.elapsed().as_secs_f64() * 1e3
            );
        }
        let rate = events as f64 / appended;
        println!("append {events} events, tree: {mode} (merkle_sync every {} events when on the appending thread): {rate:.0} events/s{tail}", every * 1000);
        rates.push((mode, rate));
    }
    let best = |m: &str| {
        rates
            .iter()
            .filter(|r| r.0 == m)
            .map(|r| r.1)
            .fold(0.0, f64::max)
    };
    for m in ["merkle_sync", "background"] {
        println!(
            "tree {m} / without (best of 2 each): {:.1}%",
            100.0 * best(m) / best("none")
        );
    }
}
