//! Invariant: the Merkle tiles' `tree` file is their durability watermark. Tiles written after
//! it (unsynced, so lost, emptied, torn or stale after a crash) are never read by a reader of
//! the stored tree, and the next extension rewrites them into the tree the leaves make.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auditlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, record_leaf_hash, tree_hash, verify_consistency,
    verify_inclusion, MemoryTree,
};
use auditlog::tiles::{TileStore, TileWriter};
use auditlog::{Hash, Log};
use common::{buffered_opts, events};

/// What a crash did to a tile written after the last durability round.
#[derive(Debug, Clone, Copy)]
enum Lost {
    Deleted,
    Emptied,
    Torn,
    Zeroed,
    /// Right length, wrong hashes (an older version of the file, say).
    Garbage,
}

const ALL: [Lost; 5] = [
    Lost::Deleted,
    Lost::Emptied,
    Lost::Torn,
    Lost::Zeroed,
    Lost::Garbage,
];

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Turns `merkle` (tiles written past the tree of `durable`, the files of that tree) into what
/// a crash before the next round may leave: every file that `durable` does not hold is damaged
/// as `lost` says (`None`: each in turn), and `durable`'s files are as they were.
fn crash(merkle: &Path, durable: &BTreeMap<PathBuf, Vec<u8>>, lost: Option<Lost>) -> usize {
    let mut damaged = 0;
    for (i, (rel, bytes)) in files(merkle).into_iter().enumerate() {
        if durable.get(&rel) == Some(&bytes) {
            continue;
        }
        let p = merkle.join(&rel);
        match lost.unwrap_or(ALL[i % ALL.len()]) {
            Lost::Deleted => std::fs::remove_file(&p).unwrap(),
            Lost::Emptied => std::fs::write(&p, b"").unwrap(),
            Lost::Torn => std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap(),
            Lost::Zeroed => std::fs::write(&p, vec![0u8; bytes.len()]).unwrap(),
            Lost::Garbage => {
                let g: Vec<u8> = bytes.iter().map(|b| b ^ 0x5a).collect();
                std::fs::write(&p, g).unwrap()
            }
        }
        damaged += 1;
    }
    for (rel, bytes) in durable {
        let p = merkle.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    damaged
}

fn synthetic(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

/// Proofs from the tiles of the tree of `size` verify against `mem`'s root.
fn check_proofs(store: &TileStore, mem: &MemoryTree, leaves: &[Hash], size: u64) {
    let r = store.reader(size).unwrap();
    let root = tree_hash(&r, size).unwrap();
    assert_eq!(root, tree_hash(mem, size).unwrap(), "root at {size}");
    for idx in [0, size / 2, size - 300, size - 2, size - 1] {
        let p = inclusion_proof(&r, idx, size).unwrap();
        verify_inclusion(&leaves[idx as usize], idx, size, &p, &root).unwrap();
    }
}

/// A tree stored at 65,500 leaves (partial tiles at levels 0 and 1), tiles written on to 66,300
/// (full tiles replacing both partials, new level-1 and level-2 tiles), then a crash: whatever
/// the crash did to the later tiles, the stored tree reads and proves as before, and extended
/// again it is the tree of all the leaves, every tile it names as a clean build writes it.
#[test]
fn tiles_past_the_watermark_are_never_trusted_and_are_rewritten() {
    let leaves = synthetic(70_000);
    let mem = MemoryTree::from_leaf_hashes(leaves.iter().copied());
    let clean = tempfile::tempdir().unwrap();
    let clean_store = TileStore::new(clean.path());
    clean_store.append_leaves(&leaves).unwrap();
    let clean_files = files(&clean.path().join("merkle"));
    for lost in ALL.map(Some).into_iter().chain([None]) {
        let dir = tempfile::tempdir().unwrap();
        let store = TileStore::new(dir.path());
        let merkle = dir.path().join("merkle");
        let mut w = TileWriter::new(&store).unwrap();
        w.append(&leaves[..65_500]).unwrap();
        let st1 = w.commit().unwrap();
        let durable = files(&merkle);
        assert!(
            durable.keys().any(|p| p.ends_with("255.p/220")),
            "{durable:?}"
        );
        w.append(&leaves[65_500..66_300]).unwrap();
        assert_eq!(w.size(), 66_300);
        assert!(w.pending_files() > 0);
        assert_eq!(store.state().unwrap(), st1, "no round, no new tree");
        drop(w);
        let damaged = crash(&merkle, &durable, lost);
        assert!(damaged >= 5, "{lost:?}: {damaged} files damaged");

        // The stored tree still reads, proves, and extends.
        assert_eq!(store.state().unwrap(), st1);
        check_proofs(&store, &mem, &leaves, 65_500);
        let mut w = TileWriter::new(&store).unwrap();
        assert_eq!(w.size(), 65_500);
        w.append(&leaves[65_500..]).unwrap();
        let st = w.commit().unwrap();
        assert_eq!(st, clean_store.state().unwrap(), "{lost:?}");
        check_proofs(&store, &mem, &leaves, 70_000);
        check_proofs(&store, &mem, &leaves, 65_500);
        let r = store.reader(70_000).unwrap();
        let p = consistency_proof(&r, 65_500, 70_000).unwrap();
        verify_consistency(65_500, 70_000, &st1.root, &st.root, &p).unwrap();
        // Every tile the clean build has is there, byte for byte (stale partial tiles of
        // widths the new tree never had may remain beside them; no reader asks for them).
        let got = files(&merkle);
        for (rel, bytes) in &clean_files {
            assert_eq!(got.get(rel), Some(bytes), "{lost:?}: {}", rel.display());
        }
    }
}

/// A log keeping its tree in the background (`Options::merkle_tree`) crashes after tiles were
/// written past the stored tree: reopened, it extends the tree from the stored size to the
/// tree built from the records alone, and its proofs verify.
#[test]
fn a_log_extends_its_tree_again_after_losing_unsynced_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || buffered_opts().merkle_tree(true);
    let log = Log::open(dir.path(), opts()).unwrap();
    let evs = events(31, 10_000);
    log.append_batch(&evs[..3_000]).unwrap();
    let st1 = log.merkle_sync().unwrap();
    assert_eq!(st1.size, 3_000);
    let merkle = dir.path().join("merkle");
    let durable = files(&merkle);
    for c in evs[3_000..].chunks(1_000) {
        log.append_batch(c).unwrap();
    }
    // Tiles for every record; the crash below takes the tree file back to 3,000.
    assert_eq!(log.merkle_sync().unwrap().size, 10_000);

    // The crashed directory: the log's files as a process crash leaves them, the tiles after
    // the stored tree damaged.
    let crashed = tempfile::tempdir().unwrap();
    common::copy_dir(dir.path(), crashed.path());
    let cmerkle = crashed.path().join("merkle");
    for (rel, bytes) in files(&merkle) {
        let p = cmerkle.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    drop(log);
    assert!(crash(&cmerkle, &durable, None) >= 5);

    let log2 = Log::open(crashed.path(), opts()).unwrap();
    let store = TileStore::new(crashed.path());
    assert_eq!(store.state().unwrap(), st1);
    assert_eq!(
        tree_hash(&store.reader(3_000).unwrap(), 3_000).unwrap(),
        st1.root
    );
    log2.append_batch(&events(32, 500)).unwrap();
    let st = log2.merkle_sync().unwrap();
    assert_eq!(st.size, 10_500);
    let leaves: Vec<Hash> = (0..st.size)
        .map(|s| {
            let (ts, d) = log2.merkle_leaf(s).unwrap();
            record_leaf_hash(s, ts, &d)
        })
        .collect();
    let mem = MemoryTree::from_leaf_hashes(leaves.iter().copied());
    check_proofs(&store, &mem, &leaves, st.size);
    let r = store.reader(st.size).unwrap();
    let p = consistency_proof(&r, 3_000, st.size).unwrap();
    verify_consistency(3_000, st.size, &st1.root, &st.root, &p).unwrap();
    drop(log2);

    // The same records in a copy without tiles make the same tree.
    let fresh = tempfile::tempdir().unwrap();
    common::copy_dir(crashed.path(), fresh.path());
    let log3 = Log::open(fresh.path(), buffered_opts()).unwrap();
    assert_eq!(log3.merkle_sync().unwrap(), st);
}
