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
//! **Durability.** Tiles are derived data, and the `tree` file is their durability watermark:
//! a tree of size S names only tiles that were synced before it was written. A [`TileWriter`]
//! extends the tiles (each a temporary file renamed into place, *not* synced) and remembers
//! what it wrote; a *durability round* ([`TileWriter::commit`]) then syncs those tiles and
//! their directories, removes the partial tiles that full ones replaced, and writes `tree`
//! (temp, fsync, rename, directory fsync). A log's tree is extended by [`sync`]: the worker
//! (`Options::merkle_tree`) commits only every [`ROUND_INTERVAL`] or [`ROUND_FILES`] tiles,
//! `Log::merkle_sync` and a clean close always do, and everything that signs or proves goes
//! through `merkle_sync` or reads with [`TileStore::reader`], which never goes past `tree`.
//!
//! After a crash the tiles written past the watermark may be missing, empty, torn or stale.
//! They are never read: a reader of a tree of size S reads the full tiles S covers (synced
//! before `tree` named S) and the partial tiles of S's width, `.p/<W>`, which it prefers to a
//! full tile of the same index (that one may be beyond the watermark); a partial is only
//! removed after its full tile was synced. The next extension starts from the stored size
//! and rewrites every tile after it.
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
/// The worker's durability round is due this long after the first tile it did not sync yet...
pub const ROUND_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// ... or once this many tile files wait for it (about 262,000 leaves).
pub const ROUND_FILES: usize = 1024;
/// A round with at least this many tiles to sync makes them durable with one `syncfs`
/// instead of one `fsync` each.
const SYNCFS_FILES: usize = 32;

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

    /// Writes a tile as a temporary file renamed into place, not synced: the durability
    /// round ([`Pending::sync`]) syncs the tiles still needed before `tree` names them.
    fn write_file(&self, tile: Tile, bytes: &[u8], pending: &mut Pending) -> Result<()> {
        let dst = self.root.join(tile.rel());
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
        (|| -> std::io::Result<()> {
            let f = fsio::create_truncate("merkle.write", &tmp)?;
            fsio::write_at("merkle.write", &f, bytes, 0)?;
            fsio::rename("merkle.write", &tmp, &dst)
        })()
        .map_err(|e| {
            let _ = fsio::remove_if_exists("leftover.remove", &tmp);
            Error::io("writing", &dst, e)
        })?;
        pending.written(tile);
        Ok(())
    }

    /// Reads tile (`level`, `index`) of a tree whose tile there holds `width` hashes: the
    /// partial tile of `width` if present (a full tile of the same index may have been written
    /// past the stored tree, and lost), else the full tile; at least `need` hashes.
    fn read_tile(&self, level: u8, index: u64, width: u64, need: u64) -> Result<Vec<Hash>> {
        let full = self.root.join(tile_path(level, index, None));
        let partial = (width < TILE_WIDTH)
            .then(|| self.root.join(tile_path(level, index, Some(width))))
            .filter(|p| p.exists());
        let (path, want) = match partial {
            Some(p) => (p, width),
            None => match std::fs::metadata(&full) {
                Ok(_) => (full, TILE_WIDTH),
                Err(e) => return Err(Error::io("reading tile", &full, e)),
            },
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

    /// Appends leaf hashes to the tree of size `old` (whose tiles must be on disk, synced or
    /// not); writes the tiles, not the `tree` file, and adds them to `pending`. Returns the new
    /// size.
    fn extend(&self, old: u64, leaves: &[Hash], pending: &mut Pending) -> Result<u64> {
        let new = old + leaves.len() as u64;
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
                let width = ((chunk.len() as u64) < TILE_WIDTH).then_some(chunk.len() as u64);
                self.write_file(
                    Tile {
                        level,
                        index: t,
                        width,
                    },
                    &bytes,
                    pending,
                )?;
                if width.is_none() {
                    up.push(subtree_root(chunk));
                }
            }
            incoming = up;
            level += 1;
        }
        Ok(new)
    }

    fn write_state(&self, st: &TreeState) -> Result<()> {
        fsio::create_dir_all("merkle.mkdir", &self.root)
            .map_err(|e| Error::io("creating directory", &self.root, e))?;
        crate::segment::write_atomic(
            "merkle.write",
            &self.root,
            TREE_FILE,
            tree_text(st).as_bytes(),
        )
    }

    /// Appends leaf hashes after the stored tree and stores the new tree, durably (one
    /// durability round). For callers that keep their own leaves; a log's tree is kept by
    /// [`sync`] (`Log::merkle_sync`).
    pub fn append_leaves(&self, leaves: &[Hash]) -> Result<TreeState> {
        let _one = WRITES.lock();
        let mut w = TileWriter::new(self)?;
        w.append(leaves)?;
        w.commit()
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

/// One tile file: a full tile, or the partial tile of `width` hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Tile {
    level: u8,
    index: u64,
    width: Option<u64>,
}

impl Tile {
    fn rel(&self) -> String {
        tile_path(self.level, self.index, self.width)
    }

    /// Whether the tree of `size` leaves names this file (a partial tile superseded by a
    /// wider one or by the full tile is not needed).
    fn needed_at(&self, size: u64) -> bool {
        let at_level = size >> (8 * self.level as u32);
        let have = at_level
            .saturating_sub(self.index * TILE_WIDTH)
            .min(TILE_WIDTH);
        match self.width {
            None => have == TILE_WIDTH,
            Some(w) => have == w,
        }
    }
}

/// Tiles written since the last durability round, not yet synced.
#[derive(Debug, Default)]
struct Pending {
    files: std::collections::BTreeSet<Tile>,
    /// When the first of them was written.
    since: Option<std::time::Instant>,
}

impl Pending {
    fn written(&mut self, tile: Tile) {
        self.files.insert(tile);
        self.since.get_or_insert_with(std::time::Instant::now);
    }

    /// The durability round's first half, for the tree of `size` leaves: syncs every pending
    /// tile that tree names, then their directories (new ones in their parents too), then
    /// removes the partial tiles of the full tiles just synced. `tree` may name them after.
    fn sync(&mut self, root: &Path, size: u64) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        let mut replaced = Vec::new();
        let needed: Vec<Tile> = self
            .files
            .iter()
            .filter(|t| t.needed_at(size))
            .copied()
            .collect();
        // Each `fsync` is a journal commit and a cache flush of its own (a quarter to one
        // millisecond each, measured, where a round holds up to a thousand tiles); one
        // `syncfs` is a single commit and flush for them all, and for every other dirty page
        // of the file system: the log's, which `merkle_sync` and close have just synced and
        // the worker syncs every 8 MiB, and other files' if the file system is shared.
        let one_syncfs = needed.len() >= SYNCFS_FILES;
        if one_syncfs {
            let f = std::fs::File::open(root).map_err(|e| Error::io("opening", root, e))?;
            fsio::syncfs("merkle.round", &f)
                .map_err(|e| Error::io("syncing the file system of", root, e))?;
        }
        for t in &needed {
            let path = root.join(t.rel());
            if t.width.is_none() {
                replaced.push(root.join(format!("{}.p", t.rel())));
            }
            if one_syncfs {
                continue;
            }
            let f = std::fs::File::open(&path).map_err(|e| Error::io("opening tile", &path, e))?;
            fsio::sync_all("merkle.round", &f).map_err(|e| Error::io("syncing", &path, e))?;
            let mut d = path.parent();
            while let Some(p) = d.filter(|p| p.starts_with(root)) {
                if !dirs.insert(p.to_path_buf()) {
                    break;
                }
                d = p.parent();
            }
        }
        for d in dirs.iter().rev() {
            crate::segment::sync_dir(d)?;
        }
        for pdir in &replaced {
            match std::fs::remove_dir_all(pdir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io("removing partial tiles", pdir, e))
                }
                _ => {}
            }
        }
        *self = Pending::default();
        Ok(())
    }
}

/// Extends a tile store past its stored tree and commits the new tree in durability rounds.
/// Keeps, between rounds, the size its tiles cover and the tiles not synced yet; it starts
/// over from the `tree` file whenever that is not the tree it last wrote itself.
#[derive(Debug)]
pub struct TileWriter {
    store: TileStore,
    /// The tree as stored in `tree`: the durable watermark.
    durable: TreeState,
    /// The leaves the written tiles cover (at least `durable.size`).
    size: u64,
    pending: Pending,
}

impl TileWriter {
    /// A writer that starts at the stored tree.
    pub fn new(store: &TileStore) -> Result<TileWriter> {
        let durable = store.state()?;
        Ok(TileWriter {
            store: store.clone(),
            durable,
            size: durable.size,
            pending: Pending::default(),
        })
    }

    /// Leaves the written tiles cover (durable or not).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree the `tree` file names, as of this writer's last round.
    pub fn durable(&self) -> TreeState {
        self.durable
    }

    /// Tile files written since the last round.
    pub fn pending_files(&self) -> usize {
        self.pending.files.len()
    }

    /// Starts over from the `tree` file if it is not the tree this writer last wrote (another
    /// writer, or a removed `merkle/` directory); the tiles written since are then forgotten
    /// and rewritten by the next extension.
    fn reload(&mut self) -> Result<()> {
        let st = self.store.state()?;
        if st != self.durable {
            *self = TileWriter {
                store: self.store.clone(),
                durable: st,
                size: st.size,
                pending: Pending::default(),
            };
        }
        Ok(())
    }

    /// Writes the tiles of `leaves` after the written ones, unsynced; returns the new size.
    pub fn append(&mut self, leaves: &[Hash]) -> Result<u64> {
        for batch in leaves.chunks(BATCH) {
            self.size = self.store.extend(self.size, batch, &mut self.pending)?;
        }
        Ok(self.size)
    }

    /// Whether the worker's round is due: [`ROUND_FILES`] tiles, or [`ROUND_INTERVAL`] since
    /// the first of them.
    fn round_due(&self) -> bool {
        self.pending.files.len() >= ROUND_FILES
            || self
                .pending
                .since
                .is_some_and(|t| t.elapsed() >= ROUND_INTERVAL)
    }

    /// The durability round: syncs the tiles written since the last one and their
    /// directories, then writes (temp, fsync, rename, directory fsync) the `tree` file of the
    /// written size. Returns the stored tree.
    pub fn commit(&mut self) -> Result<TreeState> {
        if self.size == self.durable.size && self.pending.files.is_empty() {
            return Ok(self.durable);
        }
        let root = tree_hash(&self.store.reader_unchecked(self.size), self.size)?;
        fsio::point("merkle.round")
            .map_err(|e| Error::io("durability round of", &self.store.root, e))?;
        self.pending.sync(&self.store.root, self.size)?;
        let st = TreeState {
            size: self.size,
            root,
            min_index: self.durable.min_index,
        };
        if self.durable.size == 0 {
            // `merkle/` itself is new: its entry in the data directory.
            if let Some(parent) = self.store.root.parent() {
                crate::segment::sync_dir(parent)?;
            }
        }
        self.store.write_state(&st)?;
        self.durable = st;
        Ok(st)
    }

    /// Writes the `tree` file of the written size without syncing anything: for a scratch
    /// tree that is thrown away after a crash (a benchmark). A tree committed this way may
    /// name tiles a crash lost; a log's tree is never committed so.
    pub fn commit_unsynced(&mut self) -> Result<TreeState> {
        let root = tree_hash(&self.store.reader_unchecked(self.size), self.size)?;
        fsio::create_dir_all("merkle.mkdir", &self.store.root)
            .map_err(|e| Error::io("creating directory", &self.store.root, e))?;
        let st = TreeState {
            size: self.size,
            root,
            min_index: self.durable.min_index,
        };
        let path = self.store.root.join(TREE_FILE);
        std::fs::write(&path, tree_text(&st)).map_err(|e| Error::io("writing", &path, e))?;
        self.pending = Pending::default();
        self.durable = st;
        Ok(st)
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

/// When [`sync`] runs a durability round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// Only when one is due (the worker): [`ROUND_FILES`] tiles or [`ROUND_INTERVAL`].
    IfDue,
    /// Always (`Log::merkle_sync`, close): the returned tree is stored and durable.
    Now,
}

/// Extends the data directory's tiles to cover every durable record of the log, and runs a
/// durability round as `round` says. Returns the stored tree (which, with `Round::IfDue`, may
/// be behind the tiles written).
pub(crate) fn sync(inner: &crate::log::Inner, durable_to: u64, round: Round) -> Result<TreeState> {
    let _one = WRITES.lock();
    let mut slot = inner.merkle.lock();
    let w = match slot.as_mut() {
        Some(w) => {
            w.reload()?;
            w
        }
        None => slot.insert(TileWriter::new(&TileStore::new(&inner.dir))?),
    };
    if durable_to < w.size {
        return Err(err(format!(
            "the Merkle tree has {} leaves but the log has only {durable_to} records \
             (the log was rolled back or truncated)",
            w.size
        )));
    }
    if durable_to > w.size {
        extend_from_log(inner, w, durable_to)?;
    }
    if round == Round::Now || w.round_due() {
        w.commit()
    } else {
        Ok(w.durable)
    }
}

/// Appends the leaves of records `[w.size, durable_to)` to the writer's tiles.
fn extend_from_log(inner: &crate::log::Inner, w: &mut TileWriter, durable_to: u64) -> Result<()> {
    let from = w.size;
    let mut batch = Vec::with_capacity(BATCH.min((durable_to - from) as usize));
    // The writer's queue of leaf fields (`Options::merkle_tree`) when it reaches back to the
    // written size; otherwise the records are read back and digested again.
    let queued = crate::log::take_merkle_leaves(inner, from, durable_to);
    match queued {
        Some(q) if q.len() as u64 == durable_to - from => {
            for (i, (ts, d)) in q.iter().enumerate() {
                batch.push(record_leaf_hash(from + i as u64, *ts, d));
                if batch.len() == BATCH {
                    w.append(&batch)?;
                    batch.clear();
                }
            }
        }
        _ => leaf_fields(inner, from, durable_to, |seq, ts, d| {
            batch.push(record_leaf_hash(seq, ts, &d));
            if batch.len() == BATCH {
                w.append(&batch)?;
                batch.clear();
            }
            Ok(())
        })?,
    }
    w.append(&batch)?;
    Ok(())
}

/// The `tree` file's text (FORMAT.md §20).
fn tree_text(st: &TreeState) -> String {
    format!(
        "{TREE_MAGIC}\n{}\n{}\n{}\n",
        st.size,
        hex(&st.root),
        st.min_index
    )
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
                    "retention refuses to remove records up to {to}: the Merkle tree ({}) covers {have} leaves and could not be extended over them: {why}",
                    store.path().display()
                ))
            };
            let durable = inner
                .sync
                .durable
                .load(std::sync::atomic::Ordering::Acquire);
            let st = sync(inner, durable, Round::Now).map_err(|e| refuse(e.to_string()))?;
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
