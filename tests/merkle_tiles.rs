//! The Merkle tree's tiles on disk (`auditlog::tiles`): layout, incremental extension,
//! proofs read from tiles, and `Log::merkle_sync` over a real log.

mod common;

use auditlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, tree_hash, verify_consistency, verify_inclusion,
    MemoryTree,
};
use auditlog::tiles::{tile_path, TileStore};
use auditlog::{Hash, Log};
use common::{buffered_opts, events};

fn synthetic(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

#[test]
fn tiles_extend_in_steps_and_match_an_in_memory_tree() {
    let dir = tempfile::tempdir().unwrap();
    let store = TileStore::new(dir.path());
    assert_eq!(store.state().unwrap().size, 0);
    let all = synthetic(66_000);
    let mem = MemoryTree::from_leaf_hashes(all.iter().copied());
    // Steps that cross tile boundaries at levels 0, 1 and 2 and stop on them exactly.
    let mut at = 0usize;
    for step in [1usize, 254, 1, 1, 300, 65_000 - 557, 443, 557] {
        let end = (at + step).min(all.len());
        let st = store.append_leaves(&all[at..end]).unwrap();
        at = end;
        assert_eq!(st.size, at as u64);
        assert_eq!(st.root, tree_hash(&mem, at as u64).unwrap(), "root at {at}");
        assert_eq!(store.state().unwrap(), st);
    }
    assert_eq!(at, 66_000);
    let root = dir.path().join("merkle");
    // 66 000 leaves: 257 full level-0 tiles and a partial of 208; level 1 has 257 hashes:
    // one full tile and a partial of 1; no level-2 tile (66 000 >> 16 = 1 hash, a partial).
    assert_eq!(
        std::fs::read(root.join(tile_path(0, 0, None)))
            .unwrap()
            .len(),
        8192
    );
    assert!(root.join(tile_path(0, 256, None)).is_file());
    assert_eq!(
        std::fs::read(root.join(tile_path(0, 257, Some(208))))
            .unwrap()
            .len(),
        208 * 32
    );
    assert!(root.join(tile_path(1, 0, None)).is_file());
    assert!(root.join(tile_path(1, 1, Some(1))).is_file());
    assert!(root.join(tile_path(2, 0, Some(1))).is_file());
    // A full tile's partial versions are gone.
    assert!(!root.join("tile/0/000.p").exists());
    // The level-0 tiles are the leaf hashes, in order.
    let t3 = std::fs::read(root.join(tile_path(0, 3, None))).unwrap();
    assert_eq!(&t3[..32], &all[768][..]);
    // Proofs read from tiles equal the in-memory tree's, for this size and older ones.
    for size in [1u64, 2, 255, 256, 257, 65_536, 65_537, 66_000] {
        let r = store.reader(size).unwrap();
        let root = tree_hash(&r, size).unwrap();
        assert_eq!(root, tree_hash(&mem, size).unwrap());
        for idx in [0, size / 2, size - 1] {
            let p = inclusion_proof(&r, idx, size).unwrap();
            assert_eq!(p, inclusion_proof(&mem, idx, size).unwrap());
            verify_inclusion(&all[idx as usize], idx, size, &p, &root).unwrap();
        }
        let p = consistency_proof(&store.reader(66_000).unwrap(), size, 66_000).unwrap();
        verify_consistency(size, 66_000, &root, &store.state().unwrap().root, &p).unwrap();
    }
    let e = store.reader(66_001).err().expect("past the stored tree");
    assert!(e.to_string().contains("past the stored tree"), "{e}");
}

#[test]
fn damaged_tiles_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = TileStore::new(dir.path());
    store.append_leaves(&synthetic(600)).unwrap();
    let p = dir.path().join("merkle").join(tile_path(0, 1, None));
    std::fs::write(&p, [0u8; 100]).unwrap();
    let r = store.reader(600).unwrap();
    let e = inclusion_proof(&r, 300, 600).unwrap_err().to_string();
    assert!(e.contains("tile/0/001") && e.contains("100 bytes"), "{e}");
    std::fs::write(dir.path().join("merkle/tree"), "nonsense\n").unwrap();
    let e = store.state().unwrap_err().to_string();
    assert!(e.contains("merkle/tree") && e.contains("first line"), "{e}");
}

#[test]
fn log_merkle_sync_is_incremental_and_redaction_keeps_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), buffered_opts()).unwrap();
    let evs = events(13, 700);
    assert_eq!(log.merkle_sync().unwrap().size, 0);
    log.append_batch(&evs[..100]).unwrap();
    let a = log.merkle_sync().unwrap();
    assert_eq!(a.size, 100);
    log.append_batch(&evs[100..]).unwrap();
    let b = log.merkle_sync().unwrap();
    assert_eq!(b.size, 700);
    assert_eq!(
        log.merkle_sync().unwrap(),
        b,
        "a second sync changes nothing"
    );
    let store = TileStore::new(dir.path());
    let r = store.reader(700).unwrap();
    assert_eq!(tree_hash(&r, 100).unwrap(), a.root);
    let p = consistency_proof(&r, 100, 700).unwrap();
    verify_consistency(100, 700, &a.root, &b.root, &p).unwrap();

    // The same records synced at once, in a copy, make the same tree.
    log.flush().unwrap();
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(dir.path(), copy.path());
    // (copy_dir copies files only: the copy has no tiles.)
    assert!(!copy.path().join("merkle").exists());
    drop(log);
    let log2 = Log::open(copy.path(), buffered_opts()).unwrap();
    assert_eq!(log2.merkle_sync().unwrap(), b);

    // Redacting a record keeps its leaf (the leaf commits to the original digest); the
    // redaction's own audit record, if any, is a new leaf after them.
    log2.redact(5, "test: personal data").unwrap();
    std::fs::remove_dir_all(copy.path().join("merkle")).unwrap();
    let c = log2.merkle_sync().unwrap();
    assert!(c.size >= 700);
    let store2 = TileStore::new(copy.path());
    assert_eq!(
        tree_hash(&store2.reader(c.size).unwrap(), 700).unwrap(),
        b.root
    );

    // Read-only opens do not write tiles.
    drop(log2);
    let ro = Log::open_read_only(copy.path(), common::key()).unwrap();
    assert!(ro.merkle_sync().is_err());
}

/// `Options::merkle_tree`: the worker extends the tiles from the writer's queued leaf fields
/// as the log grows (after each seal: these segments are 64 KiB) and at close, to the same tree `merkle_sync`
/// builds from the records; a reopened log (whose queue starts empty, behind nothing) and a
/// `merkle_sync` in between keep it consistent.
#[test]
fn background_tree_matches_the_tree_built_from_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || buffered_opts().merkle_tree(true);
    let log = Log::open(dir.path(), opts()).unwrap();
    // Dozens of segments, so dozens of seals.
    let evs = events(21, 10_000);
    for c in evs.chunks(1000) {
        log.append_batch(c).unwrap();
    }
    log.flush().unwrap();
    // The worker extended the tree while the log grew: it covers at least the first flush.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let store = TileStore::new(dir.path());
    while store.state().unwrap().size == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never extended the tree"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mid = log.merkle_sync().unwrap();
    assert_eq!(mid.size, 10_000);
    log.append_batch(&events(22, 500)).unwrap();
    drop(log);
    // Close extended it to every record.
    let st = store.state().unwrap();
    assert_eq!(st.size, 10_500);

    // The same records in a copy without tiles, synced from the records alone.
    let copy = tempfile::tempdir().unwrap();
    common::copy_dir(dir.path(), copy.path());
    let log2 = Log::open(copy.path(), buffered_opts()).unwrap();
    assert_eq!(log2.merkle_sync().unwrap(), st);
    let r = store.reader(st.size).unwrap();
    assert_eq!(tree_hash(&r, 10_000).unwrap(), mid.root);
    drop(log2);

    // Reopened with the option: the queue starts at the log's end, the tree is already there.
    let log3 = Log::open(dir.path(), opts()).unwrap();
    log3.append_batch(&events(23, 10)).unwrap();
    assert_eq!(log3.merkle_sync().unwrap().size, 10_510);
}
