//! Records every durable change the engine makes under one directory, in the order made.
//!
//! Files are told apart by inode (a sim-assigned id per created file), not by name, because
//! the engine keeps writing to a file after renaming it. Only files created while recording
//! are followed, so record from an empty directory.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::crash::Trace;
use crate::mmap::SharedMap;

/// One durable change. Paths are relative to the recorded directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A new, empty file `id` got the name `path`.
    Create { path: PathBuf, id: u64 },
    /// A directory was created.
    MkDir { path: PathBuf },
    /// Bytes written into file `id` at `off`.
    Write { id: u64, off: u64, data: Vec<u8> },
    /// File `id` cut or extended to `len`.
    SetLen { id: u64, len: u64 },
    /// `fsync`/`fdatasync`/`msync` of file `id`: everything written to it so far is durable.
    Sync { id: u64 },
    /// A rename within the directory tree.
    Rename { from: PathBuf, to: PathBuf },
    /// A file removed.
    Remove { path: PathBuf },
    /// `fsync` of directory `dir`: its entries are durable.
    SyncDir { dir: PathBuf },
    /// A test's own marker (say, how many events were acknowledged so far).
    Mark(u64),
}

struct State {
    root: PathBuf,
    ops: Vec<Op>,
    ids: HashMap<(u64, u64), u64>,
    next_id: u64,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Recording of one directory; only one at a time per process (hold a
/// [`super::scenario`] to serialize tests).
pub struct Recorder {
    _private: (),
}

impl Recorder {
    /// Starts recording changes under `root`, which should be empty.
    pub fn start(root: &Path) -> Recorder {
        *STATE.lock() = Some(State {
            root: root.to_path_buf(),
            ops: Vec::new(),
            ids: HashMap::new(),
            next_id: 1,
        });
        ACTIVE.store(true, Ordering::SeqCst);
        Recorder { _private: () }
    }

    /// Appends a marker to the record.
    pub fn mark(&self, value: u64) {
        if let Some(s) = STATE.lock().as_mut() {
            s.ops.push(Op::Mark(value));
        }
    }

    /// How many operations were recorded so far.
    pub fn len(&self) -> usize {
        STATE.lock().as_ref().map_or(0, |s| s.ops.len())
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops recording and returns the record.
    pub fn finish(self) -> Trace {
        ACTIVE.store(false, Ordering::SeqCst);
        let ops = STATE.lock().take().map(|s| s.ops).unwrap_or_default();
        Trace { ops }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::SeqCst);
        STATE.lock().take();
    }
}

fn with_state(f: impl FnOnce(&mut State)) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(s) = STATE.lock().as_mut() {
        f(s);
    }
}

fn rel(s: &State, p: &Path) -> Option<PathBuf> {
    p.strip_prefix(&s.root).ok().map(Path::to_path_buf)
}

fn key(file: &File) -> Option<(u64, u64)> {
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

fn id_of(s: &State, file: &File) -> Option<u64> {
    key(file).and_then(|k| s.ids.get(&k).copied())
}

pub(crate) fn create(path: &Path, file: &File) {
    with_state(|s| {
        let (Some(path), Some(k)) = (rel(s, path), key(file)) else {
            return;
        };
        let id = s.next_id;
        s.next_id += 1;
        s.ids.insert(k, id);
        s.ops.push(Op::Create { path, id });
    });
}

pub(crate) fn mkdir(dir: &Path) {
    with_state(|s| {
        if let Some(path) = rel(s, dir).filter(|p| !p.as_os_str().is_empty()) {
            s.ops.push(Op::MkDir { path });
        }
    });
}

pub(crate) fn write(file: &File, off: u64, data: &[u8]) {
    with_state(|s| {
        if let Some(id) = id_of(s, file) {
            s.ops.push(Op::Write {
                id,
                off,
                data: data.to_vec(),
            });
        }
    });
}

pub(crate) fn set_len(file: &File, len: u64) {
    with_state(|s| {
        if let Some(id) = id_of(s, file) {
            s.ops.push(Op::SetLen { id, len });
        }
    });
}

pub(crate) fn sync(file: &File) {
    with_state(|s| {
        if let Some(id) = id_of(s, file) {
            s.ops.push(Op::Sync { id });
        }
    });
}

/// An `msync`: the stores into the map are only seen here, so the synced range is recorded
/// as written and synced at once (stores never synced are treated as lost at a crash, which
/// is one of the outcomes a real power loss allows).
pub(crate) fn msync(map: &SharedMap, file: &File, off: usize, len: usize) {
    with_state(|s| {
        if let Some(id) = id_of(s, file) {
            // Only published bytes are ever synced; clamp anyway.
            let c = map.committed();
            let data = c[off.min(c.len())..(off + len).min(c.len())].to_vec();
            s.ops.push(Op::Write {
                id,
                off: off as u64,
                data,
            });
            s.ops.push(Op::Sync { id });
        }
    });
}

pub(crate) fn rename(from: &Path, to: &Path) {
    with_state(|s| {
        if let (Some(from), Some(to)) = (rel(s, from), rel(s, to)) {
            s.ops.push(Op::Rename { from, to });
        }
    });
}

pub(crate) fn remove(path: &Path) {
    with_state(|s| {
        if let Some(path) = rel(s, path) {
            s.ops.push(Op::Remove { path });
        }
    });
}

pub(crate) fn sync_dir(dir: &Path) {
    with_state(|s| {
        if let Some(dir) = rel(s, dir) {
            s.ops.push(Op::SyncDir { dir });
        }
    });
}
