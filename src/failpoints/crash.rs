//! What a power loss could leave on disk, rebuilt from a [`super::trace`] record.
//!
//! The model is deliberately pessimistic, close to what POSIX promises rather than what ext4
//! usually does:
//! - bytes written to a file (and `set_len`) are durable only once that file is synced;
//! - a created, renamed or removed directory entry is durable only once its directory is
//!   synced (a file's own `fsync` does not make its name durable);
//! - of everything not yet durable at the crash, any of these survives: nothing; everything;
//!   an in-order prefix, with the first change past it (a write) torn at any byte; or only the
//!   most recent change (writeback out of order).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use super::trace::Op;

/// A recorded sequence of durable changes.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// The changes, in the order they were made.
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

/// A change not yet durable.
#[derive(Debug, Clone)]
enum Pending {
    Content(u64, Op),
    Entry(PathBuf, Op),
}

/// Names and contents: what the disk holds at one moment.
#[derive(Debug, Clone, Default)]
struct Disk {
    names: BTreeMap<PathBuf, Node>,
    contents: HashMap<u64, Vec<u8>>,
}

impl Disk {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create { path, id } => {
                self.names.insert(path.clone(), Node::File(*id));
                self.contents.entry(*id).or_default();
            }
            Op::MkDir { path } => {
                self.names.insert(path.clone(), Node::Dir);
            }
            Op::Write { id, off, data } => {
                let c = self.contents.entry(*id).or_default();
                let end = *off as usize + data.len();
                if c.len() < end {
                    c.resize(end, 0);
                }
                c[*off as usize..end].copy_from_slice(data);
            }
            Op::SetLen { id, len } => {
                self.contents
                    .entry(*id)
                    .or_default()
                    .resize(*len as usize, 0);
            }
            Op::Rename { from, to } => {
                if let Some(n) = self.names.remove(from) {
                    self.names.insert(to.clone(), n);
                }
            }
            Op::Remove { path } => {
                self.names.remove(path);
            }
            Op::Sync { .. } | Op::SyncDir { .. } | Op::Mark(_) => {}
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// One possible state of the directory after a crash.
#[derive(Debug, Clone)]
pub struct CrashState {
    /// Which of the pending changes survived, for messages.
    pub label: String,
    disk: Disk,
}

impl CrashState {
    /// Writes this state into the empty directory `dir`.
    pub fn materialize(&self, dir: &Path) -> io::Result<()> {
        for (path, node) in &self.disk.names {
            // An entry whose directory did not survive is gone with it.
            let mut ok = true;
            let mut p = parent(path);
            while !p.as_os_str().is_empty() {
                if self.disk.names.get(&p) != Some(&Node::Dir) {
                    ok = false;
                    break;
                }
                p = parent(&p);
            }
            if !ok {
                continue;
            }
            let full = dir.join(path);
            match node {
                Node::Dir => std::fs::create_dir_all(&full)?,
                Node::File(id) => {
                    if let Some(d) = full.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    let empty = Vec::new();
                    std::fs::write(&full, self.disk.contents.get(id).unwrap_or(&empty))?;
                }
            }
        }
        Ok(())
    }

    /// The files of this state and their sizes (for messages).
    pub fn listing(&self) -> Vec<(PathBuf, usize)> {
        self.disk
            .names
            .iter()
            .filter_map(|(p, n)| match n {
                Node::File(id) => Some((p.clone(), self.disk.contents.get(id).map_or(0, Vec::len))),
                Node::Dir => None,
            })
            .collect()
    }
}

impl Trace {
    /// The number of crash points: a crash can happen after any of `ops.len()` changes, or
    /// before the first.
    pub fn points(&self) -> usize {
        self.ops.len() + 1
    }

    /// The last [`Op::Mark`] recorded before crash point `k` (after the first `k` changes).
    pub fn mark_before(&self, k: usize) -> Option<u64> {
        self.ops[..k].iter().rev().find_map(|o| match o {
            Op::Mark(v) => Some(*v),
            _ => None,
        })
    }

    /// Every state a crash after the first `k` changes could leave, tearing a pending write
    /// at no more than `max_cuts` byte positions (spread over the write, always including its
    /// first and last bytes; every byte when the write is at most `max_cuts` long).
    pub fn crash_states(&self, k: usize, max_cuts: usize) -> Vec<CrashState> {
        let mut durable = Disk::default();
        let mut pending: Vec<Pending> = Vec::new();
        for op in &self.ops[..k] {
            match op {
                Op::Create { path, .. } | Op::MkDir { path } | Op::Remove { path } => {
                    pending.push(Pending::Entry(parent(path), op.clone()));
                }
                Op::Rename { from, to } => {
                    // Renames within one directory here; across directories, both must sync.
                    debug_assert_eq!(parent(from), parent(to));
                    pending.push(Pending::Entry(parent(to), op.clone()));
                }
                Op::Write { id, .. } | Op::SetLen { id, .. } => {
                    pending.push(Pending::Content(*id, op.clone()));
                }
                Op::Sync { id } => {
                    pending.retain(|p| match p {
                        Pending::Content(pid, o) if pid == id => {
                            durable.apply(o);
                            false
                        }
                        _ => true,
                    });
                }
                Op::SyncDir { dir } => {
                    pending.retain(|p| match p {
                        Pending::Entry(d, o) if d == dir => {
                            durable.apply(o);
                            false
                        }
                        _ => true,
                    });
                }
                Op::Mark(_) => {}
            }
        }
        let op_of = |p: &Pending| -> Op {
            match p {
                Pending::Content(_, o) | Pending::Entry(_, o) => o.clone(),
            }
        };
        let mut out = Vec::new();
        let mut state = durable.clone();
        out.push(CrashState {
            label: format!(
                "after {k} changes: none of {} pending survive",
                pending.len()
            ),
            disk: state.clone(),
        });
        for (i, p) in pending.iter().enumerate() {
            let op = op_of(p);
            if let Op::Write { id, off, data } = &op {
                // Tearing a run of zeros (preallocation) only changes how long the file is:
                // a few positions cover it.
                let max = if data.iter().all(|&b| b == 0) {
                    max_cuts.min(8)
                } else {
                    max_cuts
                };
                for cut in cut_points(data.len(), max) {
                    let mut torn = state.clone();
                    torn.apply(&Op::Write {
                        id: *id,
                        off: *off,
                        data: data[..cut].to_vec(),
                    });
                    out.push(CrashState {
                        label: format!(
                            "after {k} changes: {i} of {} pending survive, the next write \
                             ({} bytes at {off} of file #{id}) torn after {cut} bytes",
                            pending.len(),
                            data.len()
                        ),
                        disk: torn,
                    });
                }
            }
            state.apply(&op);
            out.push(CrashState {
                label: format!(
                    "after {k} changes: {} of {} pending survive",
                    i + 1,
                    pending.len()
                ),
                disk: state.clone(),
            });
        }
        if pending.len() > 1 {
            let mut only_last = durable;
            only_last.apply(&op_of(&pending[pending.len() - 1]));
            out.push(CrashState {
                label: format!(
                    "after {k} changes: only the latest of {} pending survives",
                    pending.len()
                ),
                disk: only_last,
            });
        }
        out
    }
}

/// Byte counts in `1..len` at which to tear a write of `len` bytes.
fn cut_points(len: usize, max: usize) -> Vec<usize> {
    if len < 2 {
        return Vec::new();
    }
    let inner = len - 1;
    if inner <= max {
        return (1..len).collect();
    }
    let max = max.max(2);
    let mut v: Vec<usize> = (0..max).map(|i| 1 + i * (inner - 1) / (max - 1)).collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_write_may_tear_synced_survives() {
        let t = Trace {
            ops: vec![
                Op::Create {
                    path: "f".into(),
                    id: 1,
                },
                Op::SyncDir { dir: "".into() },
                Op::Write {
                    id: 1,
                    off: 0,
                    data: b"abc".to_vec(),
                },
                Op::Sync { id: 1 },
                Op::Write {
                    id: 1,
                    off: 3,
                    data: b"defg".to_vec(),
                },
            ],
        };
        let states = t.crash_states(5, 16);
        let contents: Vec<Vec<u8>> = states.iter().map(|s| s.disk.contents[&1].clone()).collect();
        assert!(contents.iter().all(|c| c.starts_with(b"abc")));
        for want in [&b"abc"[..], b"abcd", b"abcde", b"abcdef", b"abcdefg"] {
            assert!(contents.iter().any(|c| c == want), "{want:?} missing");
        }
        // Before the directory sync, the name itself may be lost.
        let early = t.crash_states(1, 16);
        assert!(early.iter().any(|s| s.listing().is_empty()));
    }

    #[test]
    fn cuts_cover_both_ends() {
        assert_eq!(cut_points(4, 10), vec![1, 2, 3]);
        let c = cut_points(1000, 10);
        assert_eq!(c.len(), 10);
        assert_eq!(c[0], 1);
        assert_eq!(*c.last().unwrap(), 999);
    }
}
