//! The Merkle tree's hashes on disk, in the C2SP tlog-tiles layout, under `<data dir>/merkle/`.
//!
//! ```text
//! merkle/tree                 "auditlog-merkle v2\n<size>\n<hex root>\n<min index>\n" (written last)
//! merkle/tile/<L>/<N>         a full tile: 256 hashes of tree level 8·L, 32 bytes each
//! merkle/tile/<L>/<N>.p/<W>   a partial tile: its first W (1..=255) hashes
//! ```
//!
//! `N` is written in 3-digit groups, every group but the last prefixed with `x`
//! (1234067 → `x001/x234/067`). Level-0 tiles hold the leaf hashes of `crate::merkle`; a
//! level-`L` hash is the root of one full tile of level `L-1`.
//!
//! [`sync`] extends the tiles from the log: it starts from the stored size, reads back the
//! partial tile of each level and appends the leaf hashes of the records after it. Each tile
//! is written as a temporary file, synced and renamed; the `tree` file is written the same way
//! after every tile it names, so a crash leaves the previous tree in force. A full tile's
//! partial versions are removed once it is written.
//!
//! Retention (`prepare_retention`, `after_retention`) extends the tree over the records
//! it is about to remove, then records the tree's minimum index (the first leaf whose record
//! still exists) and deletes the level-0 tiles wholly below it, except the ones a
//! consistency proof from the signed checkpoint's size needs (see [`TileStore::prune`]).
//! Upper-level tiles are kept: they hold the hashes of the removed leaves' subtrees.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::chain::{hex, unhex, Hash};
use crate::error::{Error, Result};
use crate::fsio;
use crate::merkle::{node_hash, record_leaf_hash, tree_hash, NodeSource};

/// Directory of the tiles inside a data directory.
pub const MERKLE_DIR: &str = "merkle";
/// Hashes per full tile (tile height 8).
pub const TILE_WIDTH: u64 = 256;
const TREE_FILE: &str = "tree";
const TREE_MAGIC: &str = "auditlog-merkle v2";
/// The version before the minimum index: three lines, minimum index 0.
const TREE_MAGIC_V1: &str = "auditlog-merkle v1";
/// The latest signed checkpoint (`crate::transparency::SIGNED_CHECKPOINT_FILE`).
const SIGNED_CHECKPOINT_FILE: &str = "checkpoint";
/// Leaves read from the log per round of tile writes (bounds memory: 2 MiB of hashes).
const BATCH: usize = 1 << 16;

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(m.into())
}

/// The tile path of tile `index` at `level`, with `width` for a partial tile (1..=255).
pub fn tile_path(level: u8, index: u64, width: Option<u64>) -> String {
    let mut s = format!("tile/{level}/{}", encode_index(index));
    if let Some(w) = width {
        s.push_str(&format!(".p/{w}"));
    }
    s
}

/// `N` as tlog-tiles writes it: 3-digit groups, all but the last prefixed with `x`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// A tree as stored: its size, root hash and minimum index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeState {
    pub size: u64,
    pub root: Hash,
    /// The first leaf whose record still exists (0 until retention removes records): the
    /// level-0 tiles below it are deleted, but for those kept for the signed checkpoint.
    pub min_index: u64,
}

/// The tiles of one data directory.
#[derive(Debug, Clone)]
pub struct TileStore {
    root: PathBuf,
}

impl TileStore {
    /// The tile store of data directory `dir` (nothing is created until it is written).
    pub fn new(dir: &Path) -> TileStore {
        TileStore {
            root: dir.join(MERKLE_DIR),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The stored tree (size 0 with the empty root when nothing was stored yet).
    pub fn state(&self) -> Result<TreeState> {
        let path = self.root.join(TREE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TreeState {
                    size: 0,
                    root: crate::merkle::empty_root(),
                    min_index: 0,
                })
            }
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let bad = |m: &str| err(format!("{}: {m}", path.display()));
        let mut lines = text.lines();
        let v2 = match lines.next() {
            Some(TREE_MAGIC) => true,
            Some(TREE_MAGIC_V1) => false,
            _ => {
                return Err(bad(&format!(
                    "first line is not `{TREE_MAGIC}` (or `{TREE_MAGIC_V1}`)"
                )))
            }
        };
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .ok_or_else(|| bad("second line is not a decimal tree size"))?;
        let root = lines
            .next()
            .and_then(unhex::<32>)
            .ok_or_else(|| bad("third line is not a 64-hex-digit root hash"))?;
        let min_index = if v2 {
            lines
                .next()
                .and_then(|l| l.parse::<u64>().ok())
                .ok_or_else(|| bad("fourth line is not a decimal minimum index"))?
        } else {
            0
        };
        if min_index > size {
            return Err(bad(&format!(
                "minimum index {min_index} is past the tree size {size}"
            )));
        }
        if lines.next().is_some() {
            return Err(bad("has lines after the last field"));
        }
        Ok(TreeState {
            size,
            root,
            min_index,
        })
    }

    /// Writes a tile as a temporary file renamed into place, not yet synced: the caller
    /// syncs every file of a round at once ([`Pending::sync`]) before the `tree` file that
    /// names them is written (one fsync per tile and directory would dominate the cost).
    fn write_file(&self, rel: &str, bytes: &[u8], pending: &mut Pending) -> Result<()> {
        let dst = self.root.join(rel);
        let parent = dst
            .parent()
            .expect("tile paths have a parent")
            .to_path_buf();
        fsio::create_dir_all("merkle.mkdir", &parent)
            .map_err(|e| Error::io("creating directory", &parent, e))?;
        let tmp = parent.join(format!(
            "{}.tmp",
            dst.file_name().expect("file name").to_string_lossy()
        ));
        let f = (|| -> std::io::Result<std::fs::File> {
            let f = fsio::create_truncate("merkle.write", &tmp)?;
            fsio::write_at("merkle.write", &f, bytes, 0)?;
            fsio::rename("merkle.write", &tmp, &dst)?;
            Ok(f)
        })()
        .map_err(|e| {
            let _ = fsio::remove_if_exists("leftover.remove", &tmp);
            Error::io("writing", &dst, e)
        })?;
        pending.files.push((f, dst));
        pending.dirs.insert(parent);
        Ok(())
    }

    /// Reads tile (`level`, `index`): the full tile if present, else the partial tile of
    /// `width`; at least `need` hashes.
    fn read_tile(&self, level: u8, index: u64, width: u64, need: u64) -> Result<Vec<Hash>> {
        let full = self.root.join(tile_path(level, index, None));
        let (path, want) = match std::fs::metadata(&full) {
            Ok(_) => (full, TILE_WIDTH),
            Err(_) if width < TILE_WIDTH => {
                (self.root.join(tile_path(level, index, Some(width))), width)
            }
            Err(e) => return Err(Error::io("reading tile", &full, e)),
        };
        let bytes = std::fs::read(&path).map_err(|e| Error::io("reading tile", &path, e))?;
        if bytes.len() as u64 != want * 32 {
            return Err(err(format!(
                "tile {} is {} bytes, {} expected ({want} hashes)",
                path.display(),
                bytes.len(),
                want * 32
            )));
        }
        if want < need {
            return Err(err(format!(
                "tile {} has {want} hashes, {need} needed",
                path.display()
            )));
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect())
    }

    /// Appends leaf hashes to the stored tree of size `old` (the tiles of `old` must be on
    /// disk); writes the tiles, not the `tree` file. Returns the new size.
    fn extend(&self, old: u64, leaves: &[Hash]) -> Result<u64> {
        let new = old + leaves.len() as u64;
        let mut pending = Pending::default();
        let mut incoming: Vec<Hash> = leaves.to_vec();
        let mut level: u8 = 0;
        loop {
            let shift = 8 * level as u32;
            let (old_n, new_n) = (old >> shift, new >> shift);
            if new_n == 0 || old_n == new_n && incoming.is_empty() {
                break;
            }
            debug_assert_eq!(new_n - old_n, incoming.len() as u64);
            let first_tile = old_n / TILE_WIDTH;
            let have = old_n % TILE_WIDTH;
            let mut entries = if have > 0 {
                self.read_tile(level, first_tile, have, have)?
                    .into_iter()
                    .take(have as usize)
                    .collect()
            } else {
                Vec::with_capacity(incoming.len())
            };
            entries.extend_from_slice(&incoming);
            let mut up = Vec::new();
            for (i, chunk) in entries.chunks(TILE_WIDTH as usize).enumerate() {
                let t = first_tile + i as u64;
                let bytes: Vec<u8> = chunk.iter().flatten().copied().collect();
                if chunk.len() as u64 == TILE_WIDTH {
                    self.write_file(&tile_path(level, t, None), &bytes, &mut pending)?;
                    // Removed only once the full tile is durable.
                    pending
                        .partials
                        .push(self.root.join(format!("{}.p", tile_path(level, t, None))));
                    up.push(subtree_root(chunk));
                } else {
                    let w = chunk.len() as u64;
                    self.write_file(&tile_path(level, t, Some(w)), &bytes, &mut pending)?;
                }
            }
            incoming = up;
            level += 1;
        }
        pending.sync()?;
        Ok(new)
    }

    fn write_state(&self, st: &TreeState) -> Result<()> {
        fsio::create_dir_all("merkle.mkdir", &self.root)
            .map_err(|e| Error::io("creating directory", &self.root, e))?;
        let text = format!(
            "{TREE_MAGIC}\n{}\n{}\n{}\n",
            st.size,
            hex(&st.root),
            st.min_index
        );
        crate::segment::write_atomic("merkle.write", &self.root, TREE_FILE, text.as_bytes())
    }

    /// Appends leaf hashes after the stored tree and stores the new tree. For callers that
    /// keep their own leaves; a log's tree is kept by [`sync`] (`Log::merkle_sync`).
    pub fn append_leaves(&self, leaves: &[Hash]) -> Result<TreeState> {
        let _one = WRITES.lock();
        let st = self.state()?;
        let mut size = st.size;
        for batch in leaves.chunks(BATCH) {
            size = self.extend(size, batch)?;
        }
        let st = TreeState {
            size,
            root: tree_hash(&self.reader_unchecked(size), size)?,
            min_index: st.min_index,
        };
        self.write_state(&st)?;
        Ok(st)
    }

    /// A reader of the stored tiles for the tree of `size` leaves (at most the stored size).
    pub fn reader(&self, size: u64) -> Result<TileReader<'_>> {
        let st = self.state()?;
        let stored = st.size;
        if size > stored {
            return Err(err(format!(
                "tree size {size} is past the stored tree ({stored} leaves); run a sync first"
            )));
        }
        Ok(TileReader {
            store: self,
            stored,
            size,
            min_index: st.min_index,
            cache: RefCell::new(HashMap::new()),
        })
    }
}

static WRITES: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Tiles written in one round, not yet synced, and the partial tiles their full versions
/// replace.
#[derive(Default)]
struct Pending {
    files: Vec<(std::fs::File, PathBuf)>,
    dirs: std::collections::BTreeSet<PathBuf>,
    partials: Vec<PathBuf>,
}

impl Pending {
    /// Syncs every file and then every directory written (so the tiles are durable before
    /// the `tree` file names them), then removes the replaced partial tiles.
    fn sync(self) -> Result<()> {
        // One `fsync` per file: one `syncfs` would be a single call, but it also writes back
        // every dirty page of the file system, the log being appended to included; measured,
        // it left the worker's tree further behind a fast writer.
        for (f, path) in &self.files {
            fsio::sync_all("merkle.write", f).map_err(|e| Error::io("syncing", path, e))?;
        }
        for d in &self.dirs {
            crate::segment::sync_dir(d)?;
        }
        for pdir in &self.partials {
            match std::fs::remove_dir_all(pdir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing partial tiles", pdir, e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Root of a power-of-two run of hashes.
fn subtree_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

/// Tiles loaded by a reader, by (level, index).
type TileCache = RefCell<HashMap<(u8, u64), std::rc::Rc<Vec<Hash>>>>;

/// Reads complete subtree hashes out of the tiles (caching the tiles it loads).
pub struct TileReader<'a> {
    store: &'a TileStore,
    stored: u64,
    size: u64,
    min_index: u64,
    cache: TileCache,
}

impl TileReader<'_> {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The stored tree's minimum index when this reader was made.
    pub fn min_index(&self) -> u64 {
        self.min_index
    }
}

impl NodeSource for TileReader<'_> {
    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        let span = 1u64
            .checked_shl(level as u32)
            .filter(|_| level < 64)
            .ok_or_else(|| err(format!("node level {level} is out of range")))?;
        let end = index
            .checked_add(1)
            .and_then(|i| i.checked_mul(span))
            .filter(|&e| e <= self.size)
            .ok_or_else(|| {
                err(format!(
                    "node ({level}, {index}) is not a complete subtree of the tree of size {}",
                    self.size
                ))
            })?;
        let _ = end;
        let tl = level / 8;
        let r = level % 8;
        let first = index << r;
        let tile = first / TILE_WIDTH;
        let off = (first % TILE_WIDTH) as usize;
        let count = 1usize << r;
        let key = (tl, tile);
        let cached = self.cache.borrow().get(&key).cloned();
        let hashes = match cached {
            Some(h) => h,
            None => {
                let at_level = self.stored >> (8 * tl as u32);
                let width = (at_level - tile * TILE_WIDTH).min(TILE_WIDTH);
                let h = match self.store.read_tile(tl, tile, width, (off + count) as u64) {
                    Ok(h) => std::rc::Rc::new(h),
                    Err(Error::Io { source, .. })
                        if tl == 0 && source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        // A retention run may have raised the minimum index since.
                        let min = self
                            .store
                            .state()
                            .map_or(self.min_index, |s| s.min_index.max(self.min_index));
                        let path = self.store.root.join(tile_path(0, tile, None));
                        return Err(if first < min {
                            Error::Pruned {
                                seq: first,
                                min_index: min,
                                context: String::new(),
                            }
                        } else {
                            err(format!(
                                "tile {} (leaves from {}) is missing",
                                path.display(),
                                tile * TILE_WIDTH
                            ))
                        });
                    }
                    Err(e) => return Err(e),
                };
                self.cache.borrow_mut().insert(key, h.clone());
                h
            }
        };
        let run = hashes.get(off..off + count).ok_or_else(|| {
            err(format!(
                "tile {} holds {} hashes, {} needed",
                tile_path(tl, tile, None),
                hashes.len(),
                off + count
            ))
        })?;
        Ok(subtree_root(run))
    }
}

/// `(seq, timestamp_ns, digest)` of records `[from, to)` of a log, handed to `sink` in seq
/// order. Fails if a record in the range is missing (removed by retention, or damaged).
pub(crate) fn leaf_fields(
    inner: &crate::log::Inner,
    from: u64,
    to: u64,
    mut sink: impl FnMut(u64, i64, Hash) -> Result<()>,
) -> Result<()> {
    let segs = inner.segments_snapshot();
    let mut expected = from;
    for seg in &segs {
        if expected >= to {
            break;
        }
        if let Some(e) = seg.load_error() {
            return Err(Error::Corrupt {
                file: seg.path.clone(),
                offset: 0,
                detail: e,
            });
        }
        for (off, f) in seg.frames() {
            if f.seq < expected {
                continue;
            }
            if f.seq >= to {
                break;
            }
            if f.seq != expected {
                return Err(err(format!(
                    "record {expected} is not in the log (next found: {} in {}); the Merkle tree \
                     cannot be extended past a gap (removed by retention before the tree covered it, \
                     or damaged: run `auditlog verify`)",
                    f.seq,
                    seg.path.display()
                )));
            }
            let d = crate::codec::chained_digest(
                &inner.chain,
                &inner.log_id,
                f.seq,
                f.flags,
                f.payload,
            )
            .map_err(|why| Error::Corrupt {
                file: seg.path.clone(),
                offset: off as u64,
                detail: format!("record {}: {why}", f.seq),
            })?;
            sink(f.seq, f.ts, d)?;
            expected += 1;
        }
        seg.check_mapped()?;
    }
    if expected < to {
        return Err(err(format!(
            "records {expected}..{to} are not in the log; the Merkle tree cannot be extended"
        )));
    }
    Ok(())
}

/// Extends the data directory's tiles to cover every durable record of the log.
pub(crate) fn sync(inner: &crate::log::Inner, durable_to: u64) -> Result<TreeState> {
    let store = TileStore::new(&inner.dir);
    let _one = WRITES.lock();
    let st = store.state()?;
    if durable_to < st.size {
        return Err(err(format!(
            "the stored Merkle tree has {} leaves but the log has only {durable_to} records \
             (the log was rolled back or truncated)",
            st.size
        )));
    }
    if durable_to == st.size {
        return Ok(st);
    }
    let mut size = st.size;
    let mut batch = Vec::with_capacity(BATCH.min((durable_to - size) as usize));
    // The writer's queue of leaf fields (`Options::merkle_tree`) when it reaches back to the
    // stored size; otherwise the records are read back and digested again.
    let queued = crate::log::take_merkle_leaves(inner, st.size, durable_to);
    match queued {
        Some(q) if q.len() as u64 == durable_to - st.size => {
            for (i, (ts, d)) in q.iter().enumerate() {
                batch.push(record_leaf_hash(st.size + i as u64, *ts, d));
                if batch.len() == BATCH {
                    size = store.extend(size, &batch)?;
                    batch.clear();
                }
            }
        }
        _ => leaf_fields(inner, st.size, durable_to, |seq, ts, d| {
            batch.push(record_leaf_hash(seq, ts, &d));
            if batch.len() == BATCH {
                size = store.extend(size, &batch)?;
                batch.clear();
            }
            Ok(())
        })?,
    }
    size = store.extend(size, &batch)?;
    let st = TreeState {
        size,
        root: tree_hash(&store.reader_unchecked(size), size)?,
        min_index: st.min_index,
    };
    store.write_state(&st)?;
    Ok(st)
}

impl TileStore {
    /// A reader over tiles written for `size` that the `tree` file does not name yet.
    fn reader_unchecked(&self, size: u64) -> TileReader<'_> {
        TileReader {
            store: self,
            stored: size,
            size,
            min_index: 0,
            cache: RefCell::new(HashMap::new()),
        }
    }
}

/// What [`TileStore::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// The tree's minimum index now.
    pub min_index: u64,
    /// Level-0 tiles (full or partial) deleted.
    pub deleted: u64,
    /// Level-0 tiles wholly below the minimum index kept for consistency proofs, by index.
    pub kept: Vec<u64>,
}

impl TileStore {
    /// The level-0 tiles an RFC 9162 consistency proof from the tree of `m` leaves (to any
    /// larger tree) reads: every hash of such a proof is the root of a subtree either left
    /// of leaf `m` (an aligned piece of `[0, m)`) or right of it (a piece of `[m, n)`); the
    /// pieces below tile height are the siblings on the path to leaf `m`, so they lie in the
    /// tiles of leaves `m - 1` and `m`. The pieces at the far end, near `n`, lie in the tiles
    /// of leaves that still exist (or of the tree's last leaf, which is never pruned).
    pub fn tiles_for_consistency_from(m: u64) -> Vec<u64> {
        let mut t = vec![m / TILE_WIDTH];
        if m > 0 && (m - 1) / TILE_WIDTH != m / TILE_WIDTH {
            t.insert(0, (m - 1) / TILE_WIDTH);
        }
        t
    }

    /// Raises the tree's minimum index to `min_index` (it never goes down; the `tree` file
    /// is rewritten first, so a crash leaves only tiles the next run deletes) and deletes
    /// the level-0 tiles whose leaves are all below it, except those a consistency proof
    /// from a size in `keep_sizes` reads ([`Self::tiles_for_consistency_from`]) and the
    /// tiles of the tree's last leaf and of leaf `size` (extending the tree reads the
    /// latter back). Upper-level tiles are never deleted.
    pub fn prune(&self, min_index: u64, keep_sizes: &[u64]) -> Result<PruneReport> {
        let _one = WRITES.lock();
        let st = self.state()?;
        if min_index > st.size {
            return Err(err(format!(
                "{}: cannot raise the minimum index to {min_index}: the tree has only {} leaves",
                self.root.join(TREE_FILE).display(),
                st.size
            )));
        }
        let min = st.min_index.max(min_index);
        if min != st.min_index {
            self.write_state(&TreeState {
                min_index: min,
                ..st
            })?;
        }
        let mut keep = std::collections::BTreeSet::new();
        for &m in keep_sizes.iter().filter(|&&m| m > 0 && m <= st.size) {
            keep.extend(Self::tiles_for_consistency_from(m));
        }
        keep.extend(Self::tiles_for_consistency_from(st.size));
        // Tiles with index below `limit` hold only leaves below `min`.
        let limit = min / TILE_WIDTH;
        let mut deleted = 0;
        prune_dir(&self.root.join("tile/0"), 0, limit, &keep, &mut deleted)?;
        Ok(PruneReport {
            min_index: min,
            deleted,
            kept: keep.into_iter().filter(|&t| t < limit).collect(),
        })
    }

    /// The tree size of the latest signed checkpoint (`merkle/checkpoint`), if there is
    /// one: the second line of its note text.
    pub fn signed_checkpoint_size(&self) -> Result<Option<u64>> {
        let path = self.root.join(SIGNED_CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        text.lines()
            .nth(1)
            .and_then(|l| l.parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                err(format!(
                    "{}: the second line is not a decimal tree size",
                    path.display()
                ))
            })
    }
}

/// A 3-digit group of a tile index.
fn group(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Deletes the tiles under `dir` (whose index groups so far make `prefix`) with an index
/// below `limit` and not in `keep`; skips subdirectories whose indices are all at or above
/// `limit`, so the walk costs what there is to delete, not the size of the tree.
fn prune_dir(
    dir: &Path,
    prefix: u64,
    limit: u64,
    keep: &std::collections::BTreeSet<u64>,
    deleted: &mut u64,
) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("listing tiles", dir, e)),
    };
    let index = |g: u64| prefix.checked_mul(1000).and_then(|p| p.checked_add(g));
    for entry in rd {
        let entry = entry.map_err(|e| Error::io("listing tiles", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if let Some(q) = name.strip_prefix('x').and_then(group).and_then(index) {
            // Indices under `xNNN/` have at least one more group.
            if q.checked_mul(1000).is_some_and(|lo| lo < limit) {
                prune_dir(&path, q, limit, keep, deleted)?;
                // Left in place while it still holds tiles (ENOTEMPTY).
                let _ = std::fs::remove_dir(&path);
            }
        } else if let Some(t) = name.strip_suffix(".p").and_then(group).and_then(index) {
            if t < limit && !keep.contains(&t) {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io("removing pruned tiles", &path, e))?;
                *deleted += 1;
            }
        } else if let Some(t) = group(&name).and_then(index) {
            if t < limit && !keep.contains(&t) {
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io("removing pruned tile", &path, e))?;
                *deleted += 1;
            }
        }
    }
    Ok(())
}

/// Whether the log keeps a Merkle tree: `merkle/` exists or `Options::merkle_tree` is on.
fn kept(inner: &crate::log::Inner) -> bool {
    inner.opts.merkle_tree || inner.dir.join(MERKLE_DIR).is_dir()
}

/// Before retention removes records up to seq `through` (inclusive; None when it removes
/// nothing): extends the tree over them from the records, so no gap can arise. Returns the
/// tree sizes whose consistency proofs pruning must keep (the signed checkpoint's), or None
/// when the log keeps no tree. An error means nothing may be removed.
pub(crate) fn prepare_retention(
    inner: &crate::log::Inner,
    through: Option<u64>,
) -> Result<Option<Vec<u64>>> {
    if !kept(inner) {
        return Ok(None);
    }
    let store = TileStore::new(&inner.dir);
    let keep: Vec<u64> = store.signed_checkpoint_size()?.into_iter().collect();
    if let Some(to) = through {
        let have = store.state()?.size;
        if have <= to {
            let refuse = |why: String| {
                err(format!(
                    "retention refuses to remove records up to {to}: the Merkle tree ({}) covers                      {have} leaves and could not be extended over them: {why}",
                    store.path().display()
                ))
            };
            let durable = inner
                .sync
                .durable
                .load(std::sync::atomic::Ordering::Acquire);
            let st = sync(inner, durable).map_err(|e| refuse(e.to_string()))?;
            if st.size <= to {
                return Err(refuse(format!("only {} records are durable", st.size)));
            }
        }
    }
    Ok(Some(keep))
}

/// After retention removed records: raises the tree's minimum index to the first seq left
/// (from policy.log) and prunes the level-0 tiles below it, keeping those of `keep`.
/// Nothing is pruned while the tree is behind the removed records (removed before this
/// version extended the tree first): it cannot be extended, and `sync` says so.
pub(crate) fn after_retention(
    inner: &crate::log::Inner,
    keep: &[u64],
) -> Result<Option<PruneReport>> {
    let min = inner.policy.lock().retained_to().map_or(0, |r| r.0 + 1);
    let store = TileStore::new(&inner.dir);
    if min > store.state()?.size {
        return Ok(None);
    }
    store.prune(min, keep).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(7), "007");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(tile_path(0, 1234, Some(5)), "tile/0/x001/234.p/5");
        assert_eq!(tile_path(2, 3, None), "tile/2/003");
    }

    #[test]
    fn prune_walks_grouped_indices_and_skips_what_is_above_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tile/0");
        let put = |rel: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
        };
        for t in [7u64, 999, 1000, 1001, 1002, 1003, 1_234_567] {
            put(&encode_index(t));
        }
        put(&format!("{}.p/3", encode_index(1002)));
        put(&format!("{}.p/9", encode_index(1004)));
        put("x001/000.tmp");
        let keep = std::collections::BTreeSet::from([1001u64]);
        let mut deleted = 0;
        prune_dir(&root, 0, 1003, &keep, &mut deleted).unwrap();
        assert_eq!(deleted, 5, "7, 999, 1000, 1002 and 1002.p");
        for (t, there) in [
            (7u64, false),
            (999, false),
            (1000, false),
            (1001, true),
            (1002, false),
            (1003, true),
            (1_234_567, true),
        ] {
            assert_eq!(root.join(encode_index(t)).exists(), there, "tile {t}");
        }
        assert!(!root.join("x001/002.p").exists());
        assert!(root.join("x001/004.p/9").exists());
        assert!(
            root.join("x001/000.tmp").exists(),
            "only tile names are touched"
        );
    }
}
