//! All memory mapping, and therefore all `unsafe`, of the crate lives here.
//!
//! The rest of the crate sees two safe types:
//! - [`ReadMap`]: an immutable map of a sealed segment, handed out as `&[u8]`;
//! - [`SharedMap`]: the writable map of the active segment, shared between the one writer and
//!   any number of readers. Readers only ever see the prefix below the published committed
//!   length; the writer only ever writes at or beyond it. The two regions never overlap, so
//!   no byte is read while it is being written.
//!
//! Invariants the callers uphold (documented at each use):
//! - the data directory is locked by this process (`flock` on the lock file), so no other
//!   auditlog writer modifies or truncates a mapped segment;
//! - a mapped file is never truncated below the committed length while a map exists; sealing
//!   trims only the zero tail *after* the footer, which no reader touches;
//! - files are preallocated with real zero blocks, so a page fault in the mapped range never
//!   needs a block allocation (no SIGBUS on a full disk).

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Mmap, MmapMut};
use parking_lot::Mutex;

/// An immutable map of a whole file.
pub struct ReadMap {
    map: Option<Mmap>,
}

impl ReadMap {
    /// Maps `file` read-only. A zero-length file yields an empty map.
    pub fn new(file: &File) -> io::Result<ReadMap> {
        if file.metadata()?.len() == 0 {
            return Ok(ReadMap { map: None });
        }
        // SAFETY: the mapping is read-only. It is created for sealed segments, which auditlog
        // never modifies or truncates (a sealed file is immutable until it is deleted, and
        // unlinking leaves existing maps valid), and, by a writer holding the directory lock,
        // for unsealed segments during recovery, which nothing else writes while the lock is
        // held. Another program truncating a mapped file would make reads fault: the
        // directory lock keeps other auditlog writers away, and docs/FORMAT.md states the
        // assumption that nothing else edits the data directory in place.
        let map = unsafe { Mmap::map(file)? };
        Ok(ReadMap { map: Some(map) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// The writable map of the active segment, shared by one writer and many readers.
pub struct SharedMap {
    /// Owns the mapping; never accessed through `Deref` after construction.
    map: MmapMut,
    ptr: *mut u8,
    len: usize,
    committed: AtomicUsize,
    /// Serializes writers so that two writes can never race on the same bytes.
    write_lock: Mutex<()>,
}

// SAFETY: `ptr` points into `map`, which lives as long as `self`. Shared access is sound
// because reads are confined to `[0, committed)` and writes to `[committed, len)` (checked at
// runtime in `write_with`), writes are serialized by `write_lock`, and `committed` is published with
// Release after a write and read with Acquire before a read, so a reader never observes a
// byte that is still being written.
unsafe impl Send for SharedMap {}
// SAFETY: see the `Send` impl above; every method takes `&self` and upholds the same split.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Maps the first `len` bytes of `file`, which must already be at least `len` bytes long
    /// and preallocated with written zeros. `committed` bytes are already valid.
    pub fn new(file: &File, len: usize, committed: usize) -> io::Result<SharedMap> {
        let file_len = file.metadata()?.len();
        if (file_len as usize) < len || committed > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {len} bytes of a {file_len}-byte file"),
            ));
        }
        // SAFETY: the file is the active segment of a directory locked by this process; it is
        // at least `len` bytes long and fully allocated, and it is not truncated while this
        // map lives (sealing trims it only after the writer has stopped writing to it, and
        // only beyond the footer, which readers never read).
        let mut map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
        let ptr = map.as_mut_ptr();
        Ok(SharedMap {
            map,
            ptr,
            len,
            committed: AtomicUsize::new(committed),
            write_lock: Mutex::new(()),
        })
    }

    /// Mapped length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The published, immutable prefix.
    pub fn committed(&self) -> &[u8] {
        let n = self.committed.load(Ordering::Acquire);
        // SAFETY: `n <= len` (enforced by `publish`), the mapping outlives `&self`, and no
        // write ever touches `[0, n)` again once `n` has been published.
        unsafe { std::slice::from_raw_parts(self.ptr, n) }
    }

    /// Makes `[0, new_len)` visible to readers. Never moves backwards.
    pub fn publish(&self, new_len: usize) {
        assert!(new_len <= self.len, "publish past the end of the map");
        let prev = self.committed.swap(new_len, Ordering::AcqRel);
        assert!(prev <= new_len, "committed length moved backwards");
    }

    /// `msync(MS_SYNC)` of a byte range (rounded out to pages by the kernel interface).
    pub fn flush_range(&self, off: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(off, len)
    }
}

impl SharedMap {
    /// Lets `fill` write exactly `len` bytes at `off` in place (no intermediate buffer). Same
    /// rules as [`write`](Self::write).
    pub fn write_with(&self, off: usize, len: usize, fill: impl FnOnce(&mut [u8])) {
        let _g = self.write_lock.lock();
        let committed = self.committed.load(Ordering::Acquire);
        assert!(
            off >= committed && off.checked_add(len).is_some_and(|end| end <= self.len),
            "write of {len} bytes at {off} outside the writable region [{committed}, {})",
            self.len
        );
        // SAFETY: the range is inside the mapping (checked above) and at or beyond the committed
        // length, so no reader holds a slice over it (readers only get `committed()`), and
        // `write_lock` is held, so this is the only live reference to these bytes for the
        // duration of `fill`.
        let dst = unsafe { std::slice::from_raw_parts_mut(self.ptr.add(off), len) };
        fill(dst);
    }
}
