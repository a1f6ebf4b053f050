//! Invariant: retention never breaks the Merkle tree. It extends the tree over the records it
//! removes before removing them (or removes nothing), records the first remaining seq as the
//! tree's minimum index in `merkle/tree` (v2), and deletes the level-0 tiles wholly below it
//! except those a consistency proof from the signed checkpoint's size needs; the root is
//! unchanged, proofs for remaining leaves and from the signed checkpoint still verify, the
//! next signed checkpoint is accepted, and proofs that need removed leaves fail with
//! `Error::Pruned` naming the seq and the minimum index. A v1 `tree` file still opens.
#![cfg(feature = "transparency")]

mod common;
mod retention_support;
#[cfg(all(feature = "server", feature = "cli"))]
#[path = "common/server.rs"]
mod server;

use std::path::Path;

use auditlog::merkle::{record_leaf_hash, tree_hash, verify_consistency, MemoryTree};
use auditlog::note::SignerKey;
use auditlog::tiles::{tile_path, TileStore, TILE_WIDTH};
use auditlog::transparency::{self, decode_hash};
use auditlog::{Error, Hash, Log, POLICY_FILE};
use chrono::{DateTime, Utc};
use retention_support::*;

const DAYS: u32 = 40;
const PER_DAY: u32 = 48;
const RETENTION_DAYS: u32 = 20;
/// The signed checkpoint's size before retention: in level-0 tile 1, below the records
/// retention removes, so that tile is kept while tiles 0 and 2 go.
const SIGNED_AT: u64 = 300;

fn now() -> DateTime<Utc> {
    at(42, 0)
}

fn tile0(dir: &Path, t: u64) -> bool {
    let m = dir.join("merkle");
    m.join(tile_path(0, t, None)).is_file()
        || (1..TILE_WIDTH).any(|w| m.join(tile_path(0, t, Some(w))).is_file())
}

/// The in-memory tree of the first `n` records, from the records.
fn memory_tree(log: &Log, n: u64) -> MemoryTree {
    MemoryTree::from_leaf_hashes((0..n).map(|s| leaf(log, s)))
}

fn leaf(log: &Log, s: u64) -> Hash {
    let (ts, d) = log.merkle_leaf(s).unwrap();
    record_leaf_hash(s, ts, &d)
}

fn memory_root(log: &Log, n: u64) -> Hash {
    tree_hash(&memory_tree(log, n), n).unwrap()
}

/// A log of 40 days x 48 events whose tree was synced and signed at `SIGNED_AT` leaves only
/// (the rest is not in the tree yet: retention has to extend it). Returns the signing key.
fn setup(dir: &Path) -> SignerKey {
    let events = spread(1..=DAYS, PER_DAY);
    let key = SignerKey::generate("audit.example.com/retention").unwrap();
    let log = Log::open(dir, write_opts()).unwrap();
    log.append_batch(&events[..SIGNED_AT as usize]).unwrap();
    transparency::sign_checkpoint(&log, &key).unwrap();
    for chunk in events[SIGNED_AT as usize..].chunks(64) {
        log.append_batch(chunk).unwrap();
    }
    drop(log);
    assert_eq!(TileStore::new(dir).state().unwrap().size, SIGNED_AT);
    key
}

fn pruned(e: Error) -> (u64, u64, String) {
    let msg = e.to_string();
    match e {
        Error::Pruned { seq, min_index, .. } => (seq, min_index, msg),
        other => panic!("expected Error::Pruned, got {other:?}"),
    }
}

#[test]
fn retention_extends_the_tree_records_the_minimum_index_and_prunes_level0_tiles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let key = setup(&dir);
    let n = u64::from(DAYS * PER_DAY);
    let log = reopen(&dir, RETENTION_DAYS);
    let mut mem = memory_tree(&log, n);
    let root = |mem: &MemoryTree, k: u64| tree_hash(mem, k).unwrap();
    let root_n = root(&mem, n);

    let report = log.apply_retention(now()).unwrap();
    let removed = report
        .removed
        .expect("retention removes the expired segments");
    assert_eq!(removed.from_seq, 0);
    let min = removed.to_seq + 1;
    assert!(
        min >= 3 * TILE_WIDTH,
        "the test wants tiles 0..=2 below the minimum index, removed up to {}",
        removed.to_seq
    );

    // The tree was extended over every record before they went; root unchanged.
    let st = TileStore::new(&dir).state().unwrap();
    assert_eq!(st.size, n, "the tree covers every record that existed");
    assert_eq!(st.root, root_n);
    assert_eq!(st.min_index, min);
    let text = std::fs::read_to_string(dir.join("merkle/tree")).unwrap();
    assert_eq!(
        text,
        format!(
            "auditlog-merkle v2\n{n}\n{}\n{min}\n",
            auditlog::hex(&root_n)
        )
    );

    // Level-0 tiles wholly below the minimum index are gone, but for tile 1 (the signed
    // checkpoint's size, 300, is in it); the tile of the minimum index and later remain,
    // and the upper level is untouched.
    let limit = min / TILE_WIDTH;
    assert!(!tile0(&dir, 0), "tile 0 is below the minimum index {min}");
    assert!(tile0(&dir, 1), "tile 1 is kept for the signed checkpoint");
    for t in 2..limit {
        assert!(!tile0(&dir, t), "tile {t} is below the minimum index {min}");
    }
    for t in limit..=(n - 1) / TILE_WIDTH {
        assert!(tile0(&dir, t), "tile {t} holds remaining leaves");
    }
    assert!(dir
        .join("merkle")
        .join(tile_path(1, 0, Some(n / TILE_WIDTH)))
        .is_file());

    // A removed seq: refused, naming the seq and the minimum index.
    let (seq, m, msg) = pruned(transparency::prove_inclusion(&log, 5, Some(n)).unwrap_err());
    assert_eq!((seq, m), (5, min));
    assert!(
        msg.contains(&format!(
            "seq 5 was removed by retention; the tree's minimum index is {min}"
        )),
        "{msg}"
    );
    // A consistency proof from a size whose hashes were pruned (100, in tile 0).
    let (seq, m, msg) = pruned(transparency::prove_consistency(&log, 100, n).unwrap_err());
    assert!(seq < TILE_WIDTH, "{msg}");
    assert_eq!(m, min);
    assert!(
        msg.contains("no consistency proof from tree size 100"),
        "{msg}"
    );

    // From the signed checkpoint's size: still proven, against its root.
    let p = transparency::prove_consistency(&log, SIGNED_AT, n).unwrap();
    let hashes: Vec<Hash> = p.hashes.iter().map(|h| decode_hash(h).unwrap()).collect();
    assert_eq!(decode_hash(&p.old_root).unwrap(), root(&mem, SIGNED_AT));
    verify_consistency(SIGNED_AT, n, &root(&mem, SIGNED_AT), &root_n, &hashes).unwrap();
    // Between sizes whose data remains.
    for old in [min, min + 10, n - 1] {
        let p = transparency::prove_consistency(&log, old, n).unwrap();
        let hashes: Vec<Hash> = p.hashes.iter().map(|h| decode_hash(h).unwrap()).collect();
        assert_eq!(decode_hash(&p.old_root).unwrap(), root(&mem, old));
        verify_consistency(old, n, &root(&mem, old), &root_n, &hashes)
            .unwrap_or_else(|e| panic!("{old} -> {n}: {e}"));
    }

    // The next signed checkpoint is accepted (a consistency proof from 300 to it), and the
    // proofs against it verify with only the public key.
    let signed = transparency::sign_checkpoint(&log, &key).unwrap();
    let cp = transparency::TreeCheckpoint::open(&signed, &key.verifier()).unwrap();
    assert!(cp.size > n, "the retention event is in the new tree");
    for s in n..cp.size {
        mem.push(leaf(&log, s));
    }
    assert_eq!(cp.root, root(&mem, cp.size));
    for s in [min, min + 1, (min + n) / 2, n - 1, cp.size - 1] {
        let p = transparency::prove_inclusion(&log, s, None).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        transparency::verify_proof(&json, &key.verifier())
            .unwrap_or_else(|e| panic!("inclusion of {s}: {e}"));
    }
    let p = transparency::prove_consistency(&log, SIGNED_AT, cp.size).unwrap();
    transparency::verify_proof(&serde_json::to_string(&p).unwrap(), &key.verifier()).unwrap();
    drop(log);

    // Reopen: all of it holds.
    let log = reopen(&dir, RETENTION_DAYS);
    let st2 = TileStore::new(&dir).state().unwrap();
    assert_eq!((st2.size, st2.root, st2.min_index), (cp.size, cp.root, min));
    let (seq, m, _) = pruned(transparency::prove_inclusion(&log, 0, None).unwrap_err());
    assert_eq!((seq, m), (0, min));
    let p = transparency::prove_inclusion(&log, min, None).unwrap();
    transparency::verify_proof(&serde_json::to_string(&p).unwrap(), &key.verifier()).unwrap();

    // The checkpoint moved past tile 1: the next run (removing nothing) prunes it, keeps
    // the new checkpoint's tiles, and the checkpoint after that is still accepted.
    let again = log.apply_retention(now()).unwrap();
    assert!(again.removed.is_none());
    assert!(
        !tile0(&dir, 1),
        "tile 1 is no longer needed by the signed checkpoint"
    );
    for t in TileStore::tiles_for_consistency_from(cp.size) {
        assert!(
            tile0(&dir, t),
            "tile {t} holds the new checkpoint's neighbours"
        );
    }
    let (_, _, msg) =
        pruned(transparency::prove_consistency(&log, SIGNED_AT, cp.size).unwrap_err());
    assert!(
        msg.contains("no consistency proof from tree size 300"),
        "{msg}"
    );
    log.append(&event(41, 0, 1)).unwrap();
    let signed2 = transparency::sign_checkpoint(&log, &key).unwrap();
    let cp2 = transparency::TreeCheckpoint::open(&signed2, &key.verifier()).unwrap();
    assert_eq!(cp2.size, cp.size + 1);
    mem.push(leaf(&log, cp.size));
    assert_eq!(cp2.root, root(&mem, cp2.size));
    assert_ok(&verify_ro(&dir), "the log after retention");
}

/// Compaction removes a prefix of a segment: the minimum index is the seq after it, and
/// the tree kept with `Options::merkle_tree` (but never synced here) is extended first.
#[test]
fn compaction_extends_the_tree_and_records_the_seq_after_the_dropped_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    write(&dir, &spread(1..=DAYS, PER_DAY));
    let log = Log::open(
        &dir,
        write_opts()
            .retention_days(RETENTION_DAYS)
            .merkle_tree(true),
    )
    .unwrap();
    let n = u64::from(DAYS * PER_DAY);
    let mem = memory_tree(&log, n);
    let report = log.compact(now()).unwrap();
    let c = report.compacted.expect("a straddling segment is compacted");
    let min = c.to_seq + 1;
    assert!(
        min > 2 * TILE_WIDTH && !min.is_multiple_of(TILE_WIDTH),
        "min {min}"
    );
    let st = TileStore::new(&dir).state().unwrap();
    assert!(st.size >= n);
    assert_eq!(tree_hash(&mem, n).unwrap(), {
        let store = TileStore::new(&dir);
        tree_hash(&store.reader(n).unwrap(), n).unwrap()
    });
    assert_eq!(st.min_index, min);
    let (seq, m, _) = pruned(transparency::prove_inclusion(&log, c.to_seq, Some(n)).unwrap_err());
    assert_eq!((seq, m), (c.to_seq, min));
    let p = transparency::prove_inclusion(&log, min, Some(n)).unwrap();
    assert_eq!(decode_hash(&p.root).unwrap(), tree_hash(&mem, n).unwrap());
    // No signed checkpoint: every level-0 tile wholly below the minimum index is gone.
    for t in 0..min / TILE_WIDTH {
        assert!(!tile0(&dir, t), "tile {t}");
    }
    assert!(tile0(&dir, min / TILE_WIDTH));
    drop(log);
    assert_ok(&verify_ro(&dir), "the log after compaction");
}

#[test]
fn retention_removes_nothing_when_the_tree_cannot_be_extended() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    setup(&dir);
    // The partial level-0 tile the extension reads back is damaged.
    let partial = dir.join("merkle").join(tile_path(
        0,
        SIGNED_AT / TILE_WIDTH,
        Some(SIGNED_AT % TILE_WIDTH),
    ));
    std::fs::write(&partial, [0u8; 31]).unwrap();
    let before = spans(&dir);
    let policy_before = std::fs::read(dir.join(POLICY_FILE)).ok();
    let log = reopen(&dir, RETENTION_DAYS);
    let e = log.apply_retention(now()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("retention refuses to remove records up to")
            && msg.contains("could not be extended")
            && msg.contains(&partial.display().to_string()),
        "{msg}"
    );
    drop(log);
    assert_eq!(spans(&dir), before, "no segment was removed");
    assert_eq!(std::fs::read(dir.join(POLICY_FILE)).ok(), policy_before);
    let st = TileStore::new(&dir).state().unwrap();
    assert_eq!((st.size, st.min_index), (SIGNED_AT, 0));
}

#[test]
fn a_log_without_a_tree_gets_none_from_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    write(&dir, &spread(1..=DAYS, PER_DAY));
    let log = reopen(&dir, RETENTION_DAYS);
    assert!(log.apply_retention(now()).unwrap().removed.is_some());
    assert!(!dir.join("merkle").exists(), "retention creates no tree");
}

#[test]
fn a_v1_tree_file_still_opens_with_minimum_index_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = Log::open(&dir, write_opts()).unwrap();
    log.append_batch(&spread(1..=2, 200)).unwrap();
    let st = log.merkle_sync().unwrap();
    assert_eq!(st.min_index, 0);
    let tree = dir.join("merkle/tree");
    std::fs::write(
        &tree,
        format!(
            "auditlog-merkle v1\n{}\n{}\n",
            st.size,
            auditlog::hex(&st.root)
        ),
    )
    .unwrap();
    let store = TileStore::new(&dir);
    assert_eq!(store.state().unwrap(), st);
    let p = transparency::prove_inclusion(&log, 7, Some(st.size)).unwrap();
    assert_eq!(p.tree_size, st.size);
    // Extending it writes v2.
    log.append(&event(3, 0, 1)).unwrap();
    let st2 = log.merkle_sync().unwrap();
    assert_eq!(st2.size, st.size + 1);
    assert_eq!(st2.root, memory_root(&log, st2.size));
    assert!(std::fs::read_to_string(&tree)
        .unwrap()
        .starts_with("auditlog-merkle v2\n"));
    // A damaged v2 file names the field.
    std::fs::write(
        &tree,
        format!(
            "auditlog-merkle v2\n{}\n{}\nx\n",
            st2.size,
            auditlog::hex(&st2.root)
        ),
    )
    .unwrap();
    let msg = store.state().unwrap_err().to_string();
    assert!(
        msg.contains("fourth line is not a decimal minimum index"),
        "{msg}"
    );
    std::fs::write(
        &tree,
        format!(
            "auditlog-merkle v2\n{}\n{}\n{}\n",
            st2.size,
            auditlog::hex(&st2.root),
            st2.size + 1
        ),
    )
    .unwrap();
    let msg = store.state().unwrap_err().to_string();
    assert!(msg.contains("is past the tree size"), "{msg}");
}

/// The CLI exits 2 naming the seq and the minimum index; the HTTP consistency route answers
/// 410 with a JSON error, and still proves from the kept signed checkpoint's size.
#[cfg(all(feature = "server", feature = "cli"))]
#[test]
fn cli_and_http_refuse_proofs_that_need_removed_leaves() {
    use auditlog::{Durability, HmacKey, Options};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = || {
        Options::new(HmacKey::from_bytes(server::SERVER_KEY.as_bytes()).unwrap())
            .durability(Durability::Buffered)
            .segment_bytes(common::SMALL_SEGMENT)
    };
    let events = spread(1..=DAYS, PER_DAY);
    let key = SignerKey::generate("audit.example.com/retention").unwrap();
    let log = Log::open(&data, opts()).unwrap();
    log.append_batch(&events[..SIGNED_AT as usize]).unwrap();
    transparency::sign_checkpoint(&log, &key).unwrap();
    for chunk in events[SIGNED_AT as usize..].chunks(64) {
        log.append_batch(chunk).unwrap();
    }
    drop(log);
    let log = Log::open(&data, opts().retention_days(RETENTION_DAYS)).unwrap();
    let min = log.apply_retention(now()).unwrap().removed.unwrap().to_seq + 1;
    let n = TileStore::new(&data).state().unwrap().size;
    drop(log);

    // No retention by the server itself (its clock is far past these events).
    let config =
        server::config_json("", "").replace("\"retention_days\": 365", "\"retention_days\": 0");
    let config_path = tmp.path().join("config.json");
    std::fs::write(&config_path, &config).unwrap();
    let out = server::auditlog(&data, &config_path)
        .args(["prove", "--seq", "5", "--size", &n.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "seq 5 was removed by retention; the tree's minimum index is {min}"
        )),
        "{stderr}"
    );
    let out = server::auditlog(&data, &config_path)
        .args(["prove-consistency", "100", &n.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no consistency proof from tree size 100"),
        "{stderr}"
    );
    let out = server::auditlog(&data, &config_path)
        .args(["prove", "--seq", &min.to_string(), "--size", &n.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = server::Server::start(tmp.path(), &config, &[]);
    let r = s.get(
        &format!("/api/audit-logs/consistency?old=100&new={n}"),
        Some(server::READER),
    );
    assert_eq!(r.status, 410, "{}", r.text());
    let e = r.json()["error"].clone();
    assert_eq!(e["code"], "pruned_by_retention", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("the tree's minimum index is {min}")),
        "{e}"
    );
    let r = s.get(
        &format!("/api/audit-logs/consistency?old={SIGNED_AT}&new={n}"),
        Some(server::READER),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let p: transparency::ConsistencyProof = serde_json::from_str(&r.text()).unwrap();
    let hashes: Vec<Hash> = p.hashes.iter().map(|h| decode_hash(h).unwrap()).collect();
    let signed = transparency::last_signed(&data).unwrap().unwrap();
    let cp = transparency::TreeCheckpoint::open(&signed, &key.verifier()).unwrap();
    assert_eq!(cp.size, SIGNED_AT);
    verify_consistency(
        SIGNED_AT,
        n,
        &cp.root,
        &decode_hash(&p.new_root).unwrap(),
        &hashes,
    )
    .unwrap();
    s.terminate();

    // `verify-checkpoints` after a newer checkpoint and a run that pruned the older one's
    // tiles: the old one is not compared with the local tree, the pair needs a --proof
    // (kept from before), and with it they agree.
    let old_note = tmp.path().join("cp300");
    std::fs::write(&old_note, &signed).unwrap();
    let log = Log::open(&data, opts().retention_days(RETENTION_DAYS)).unwrap();
    let new_signed = transparency::sign_checkpoint(&log, &key).unwrap();
    let new_size = transparency::TreeCheckpoint::open(&new_signed, &key.verifier())
        .unwrap()
        .size;
    let kept_proof = tmp.path().join("proof.json");
    std::fs::write(
        &kept_proof,
        serde_json::to_string(&transparency::prove_consistency(&log, SIGNED_AT, new_size).unwrap())
            .unwrap(),
    )
    .unwrap();
    log.apply_retention(now()).unwrap();
    drop(log);
    assert!(!tile0(&data, 1));
    let new_note = tmp.path().join("cpnew");
    std::fs::write(&new_note, &new_signed).unwrap();
    let vk = key.verifier().to_string();
    let out = server::auditlog(&data, &config_path)
        .args(["verify-checkpoints", "--key", &vk])
        .arg(&old_note)
        .arg(&new_note)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stdout.contains("not compared with the tree"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains(&format!("no consistency proof from size 300 to {new_size}"))
            && stderr.contains("was removed by retention"),
        "{stderr}"
    );
    let out = server::auditlog(&data, &config_path)
        .args(["verify-checkpoints", "--key", &vk, "--proof"])
        .arg(&kept_proof)
        .arg(&old_note)
        .arg(&new_note)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok: 2 checkpoint(s)"), "{stdout}");
}
