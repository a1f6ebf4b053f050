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
//! - files are preallocated before they are mapped, with real zero blocks or with
//!   `posix_fallocate` ([`allocate`]), so a page fault in the mapped range never needs a data
//!   block allocation (a full disk fails at segment creation, not as SIGBUS later).
//!
//! # The SIGBUS guard
//!
//! Those invariants bind auditlog, not other programs: anyone who can write the data directory
//! can truncate a mapped segment, and touching a mapped page past the new end of the file
//! raises `SIGBUS`, which by default kills the process. So every map registers its address
//! range in a fixed-size, lock-free registry ([`guard`]) for as long as it lives, and a
//! `SIGBUS` handler, installed once, looks the faulting address up there:
//!
//! - inside a registered map: the handler replaces the pages from the faulting one to the end
//!   of that map with anonymous zero pages (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`),
//!   records the offset of the fault in the map's slot and returns; the faulting load (or
//!   store) is retried and now reads zeros (or writes into memory that never reaches the
//!   file). [`ReadMap::faulted`] and [`SharedMap::faulted`] then say so, and the readers and
//!   the writer turn that into an error instead of trusting what they read;
//! - anywhere else (or a `SIGBUS` sent with `kill`): the handler passes the signal on to the
//!   handler that was installed before it (Rust's own, or the embedding application's), or, if
//!   there was none, restores the default action and lets the signal kill the process as it
//!   would have without auditlog.
//!
//! Limits: the guard exists on Linux only; a handler installed after auditlog's replaces it;
//! the registry has [`guard::SLOTS`] entries, and a map beyond them is unguarded; and a
//! reader may see a byte change from its file value to zero between two loads, which the
//! decoders tolerate because they treat every mapped byte as hostile input anyway.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{Mmap, MmapMut};
use parking_lot::Mutex;

/// `posix_fallocate(2)` of `[0, len)`: reserves the file's blocks (as unwritten extents where
/// the file system has them, so no data is written) and sets its size. Where the file system
/// cannot reserve, glibc writes the blocks instead, so the outcome is the same: every block
/// of the range exists, and `ENOSPC` is reported here rather than by a later store through a
/// map. Not a mapping operation, but a foreign function call, so it lives with the crate's
/// other `unsafe`.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
    loop {
        // SAFETY: `posix_fallocate` reads no memory of ours; it takes a descriptor that `file`
        // keeps open for the duration of the call, and two integers. It returns an error
        // number instead of setting `errno`.
        let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match r {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// Caps glibc's malloc at `n` arenas (`mallopt(M_ARENA_MAX)`). glibc gives each thread
/// that meets contention its own arena, up to eight per core, and an arena keeps what it
/// freed: a server whose blocking pool runs dozens of short queries and ingests, each
/// allocating and freeing a few MiB on whichever thread it lands, grows by a multiple of
/// the work in flight and never shrinks (measured: 408 to 966 MiB of anonymous memory under
/// 32 concurrent broad queries, flat at 221 MiB with two arenas). Returns whether the
/// setting took; elsewhere than glibc it does nothing and returns `false`. Call before the
/// threads start: an arena once made stays.
#[cfg(feature = "server")]
pub(crate) fn limit_malloc_arenas(n: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let n = libc::c_int::try_from(n.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` takes two integers and touches only the allocator's own settings,
        // under the allocator's lock; `M_ARENA_MAX` is a tunable that may be changed at any
        // time (it bounds arenas made from then on). It returns 1 on success, 0 on error.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

/// An immutable map of a whole file.
pub struct ReadMap {
    /// Declared before `map`: fields drop in order, so the range leaves the registry before it
    /// is unmapped (and before the addresses can be reused by another mapping).
    guard: guard::Guard,
    map: Option<Mmap>,
    /// Device, inode and length of the file when it was mapped.
    file_id: (u64, u64, u64),
}

impl ReadMap {
    /// Maps `file` read-only. A zero-length file yields an empty map.
    pub fn new(file: &File) -> io::Result<ReadMap> {
        let meta = file.metadata()?;
        let mut file_id = (meta.dev(), meta.ino(), meta.len());
        if meta.len() == 0 {
            return Ok(ReadMap {
                guard: guard::Guard::none(),
                map: None,
                file_id,
            });
        }
        // SAFETY: the mapping is read-only. It is created for sealed segments, which auditlog
        // never modifies or truncates (a sealed file is immutable until it is deleted, and
        // unlinking leaves existing maps valid), and, by a writer holding the directory lock,
        // for unsealed segments during recovery, which nothing else writes while the lock is
        // held. Another program truncating the mapped file makes reads past its new end fault:
        // the range is registered with the SIGBUS guard right below, before any byte of it is
        // read, so such a fault reads zeros and marks this map `faulted` instead of killing
        // the process. Another program editing the file in place changes bytes under a `&[u8]`
        // that readers hold; every reader treats mapped bytes as hostile input (lengths, CRCs
        // and MACs are checked before use, slices are bounds-checked), and docs/FORMAT.md §15
        // states that nothing else edits the data directory in place.
        let map = unsafe { Mmap::map(file)? };
        file_id.2 = map.len() as u64;
        Ok(ReadMap {
            guard: guard::Guard::register(map.as_ptr(), map.len(), false),
            map: Some(map),
            file_id,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// True once a read through this map faulted (the file was truncated or could not be
    /// read underneath it): the bytes from the fault on read as zeros, not as the file.
    pub fn faulted(&self) -> bool {
        self.guard.fault_offset().is_some()
    }

    /// Offset of the first fault, if one happened.
    pub fn fault_offset(&self) -> Option<usize> {
        self.guard.fault_offset()
    }

    /// Whether the file at `path` still has the length this map was made with. `Some(len)`
    /// (its current length) when the same file was resized; `None` when it was not, or when
    /// the name is gone or names another file (a removal or an atomic rename leaves this map
    /// valid: it keeps the old file alive).
    pub fn resized(&self, path: &Path) -> Option<u64> {
        let m = std::fs::symlink_metadata(path).ok()?;
        let (dev, ino, len) = self.file_id;
        (m.dev() == dev && m.ino() == ino && m.len() != len).then_some(m.len())
    }
}

/// The writable map of the active segment, shared by one writer and many readers.
pub struct SharedMap {
    /// Declared before `map`: unregistered before the range is unmapped.
    guard: guard::Guard,
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
        // at least `len` bytes long and fully allocated, and auditlog does not truncate it
        // while this map lives (sealing trims it only after the writer has stopped writing to
        // it, and only beyond the footer, which readers never read). Another program
        // truncating it makes loads and stores past its new end fault: the range is registered
        // with the SIGBUS guard right below, before any byte of it is touched, so a fault
        // reads zeros (a store lands in memory that never reaches the file) and marks the map
        // `faulted`, which the writer checks before it acknowledges an append.
        let mut map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
        let ptr = map.as_mut_ptr();
        Ok(SharedMap {
            guard: guard::Guard::register(ptr, len, true),
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

    /// True once a load or store through this map faulted (the file was truncated or could
    /// not be read underneath it): from the fault on, the map no longer mirrors the file.
    pub fn faulted(&self) -> bool {
        self.guard.fault_offset().is_some()
    }

    /// Offset of the first fault, if one happened.
    pub fn fault_offset(&self) -> Option<usize> {
        self.guard.fault_offset()
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

/// The writer's staging area: a small file mapped shared and writable, whose pages stay
/// resident and mapped for the life of the log, so copying a frame into it never takes a page
/// fault (on this project's machines a fault on a fresh page of a segment's map cost more than
/// encoding and hashing the record). Only the writer (under the writer lock) touches it.
pub struct StagingMap {
    /// Declared before `map` (see [`ReadMap`]).
    guard: guard::Guard,
    map: memmap2::MmapMut,
}

impl StagingMap {
    /// Maps the first `len` bytes of `file` (at least `len` bytes long) and populates its page
    /// tables at once.
    pub fn new(file: &File, len: usize) -> io::Result<StagingMap> {
        let file_len = file.metadata()?.len();
        if (file_len as usize) < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot map {len} bytes of a {file_len}-byte staging file"),
            ));
        }
        // SAFETY: the file is the staging file of a data directory whose lock this process
        // holds; only this map writes it (through `&mut self`, so never while a slice of it is
        // borrowed elsewhere), and auditlog never truncates it while mapped. Another program
        // truncating it makes accesses past its new end fault: the range is registered with the
        // SIGBUS guard right below, before any byte is touched, so a store lands in anonymous
        // memory (the frames are still copied from it into the segment file) and the map
        // reports `faulted`.
        let mut map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
        let guard = guard::Guard::register(map.as_mut_ptr(), len, true);
        // Best effort: without it the first store to each page faults once.
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::PopulateWrite);
        Ok(StagingMap { guard, map })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// True once an access through this map faulted.
    pub fn faulted(&self) -> bool {
        self.guard.fault_offset().is_some()
    }
}

/// The registry of mapped ranges and the `SIGBUS` handler that consults it.
pub(crate) mod guard {
    use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};

    /// Registry capacity: maps alive at once in the process (one per sealed segment of every
    /// open `Log`, plus one per active segment). A map beyond it works but is unguarded.
    pub const SLOTS: usize = 1 << 16;

    /// One registered range. Only the thread that claimed a slot writes its range, under a
    /// seqlock (`gen` odd while it changes), so the handler never uses a half-written one.
    struct Slot {
        claimed: AtomicBool,
        gen: AtomicUsize,
        start: AtomicUsize,
        len: AtomicUsize,
        writable: AtomicBool,
        /// 0: no fault; otherwise 1 + the offset of the first fault.
        fault: AtomicUsize,
    }

    impl Slot {
        const fn new() -> Slot {
            Slot {
                claimed: AtomicBool::new(false),
                gen: AtomicUsize::new(0),
                start: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                writable: AtomicBool::new(false),
                fault: AtomicUsize::new(0),
            }
        }

        fn set(&self, start: usize, len: usize, writable: bool) {
            let g = self.gen.load(Ordering::Relaxed);
            self.gen.store(g.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            self.start.store(start, Ordering::Relaxed);
            self.len.store(len, Ordering::Relaxed);
            self.writable.store(writable, Ordering::Relaxed);
            self.fault.store(0, Ordering::Relaxed);
            self.gen.store(g.wrapping_add(2), Ordering::Release);
        }

        /// `(start, len, writable)` if the slot holds a range and was not being changed.
        fn read(&self) -> Option<(usize, usize, bool)> {
            let g = self.gen.load(Ordering::Acquire);
            if g & 1 == 1 {
                return None;
            }
            let r = (
                self.start.load(Ordering::Relaxed),
                self.len.load(Ordering::Relaxed),
                self.writable.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            (self.gen.load(Ordering::Relaxed) == g && r.1 != 0).then_some(r)
        }
    }

    // All-zero statics: in .bss, so untouched slots cost no memory.
    static REGISTRY: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
    /// One past the highest slot ever claimed: the handler scans no further.
    static HIGH: AtomicUsize = AtomicUsize::new(0);
    /// Where the next claim starts looking.
    static HINT: AtomicUsize = AtomicUsize::new(0);

    /// A registered range; unregisters on drop.
    pub(crate) struct Guard {
        slot: Option<usize>,
    }

    impl Guard {
        pub(crate) fn none() -> Guard {
            Guard { slot: None }
        }

        /// Registers `[start, start + len)` (a whole mapping, `start` page-aligned). Installs
        /// the handler on first use. Unguarded (but working) if the handler could not be
        /// installed or the registry is full.
        pub(crate) fn register(start: *const u8, len: usize, writable: bool) -> Guard {
            if len == 0 || !sys::install() {
                return Guard::none();
            }
            let hint = HINT.load(Ordering::Relaxed);
            for k in 0..SLOTS {
                let i = (hint + k) % SLOTS;
                let s = &REGISTRY[i];
                if s.claimed
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    s.set(start as usize, len, writable);
                    HIGH.fetch_max(i + 1, Ordering::AcqRel);
                    HINT.store(i + 1, Ordering::Relaxed);
                    return Guard { slot: Some(i) };
                }
            }
            Guard::none()
        }

        pub(crate) fn fault_offset(&self) -> Option<usize> {
            let i = self.slot?;
            REGISTRY[i].fault.load(Ordering::Acquire).checked_sub(1)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(i) = self.slot.take() {
                let s = &REGISTRY[i];
                s.set(0, 0, false);
                s.claimed.store(false, Ordering::Release);
            }
        }
    }

    /// The registered range holding `addr`: `(slot, start, len, writable)`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn lookup(addr: usize) -> Option<(usize, usize, usize, bool)> {
        let high = HIGH.load(Ordering::Acquire).min(SLOTS);
        (0..high).find_map(|i| {
            let (start, len, w) = REGISTRY[i].read()?;
            (addr >= start && addr - start < len).then_some((i, start, len, w))
        })
    }

    /// Records the first fault of slot `i` at `offset`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn mark(i: usize, offset: usize) {
        let _ =
            REGISTRY[i]
                .fault
                .compare_exchange(0, offset + 1, Ordering::AcqRel, Ordering::Relaxed);
    }

    #[cfg(target_os = "linux")]
    mod sys {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::{Once, OnceLock};

        use libc::{c_int, c_void, siginfo_t};

        static INSTALLED: AtomicBool = AtomicBool::new(false);
        static PAGE: AtomicUsize = AtomicUsize::new(0);
        /// The disposition of SIGBUS before ours, to pass foreign faults on to.
        static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

        /// Installs the handler once; true if it is in place.
        pub(super) fn install() -> bool {
            static ONCE: Once = Once::new();
            ONCE.call_once(|| {
                // SAFETY: sysconf has no preconditions.
                let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
                if page <= 0 || (page as usize) & (page as usize - 1) != 0 {
                    return;
                }
                PAGE.store(page as usize, Ordering::Relaxed);
                // SAFETY: `sigaction` only reads `new` and writes `old`, both valid, initialized
                // (zeroed `sigaction` is a valid value: SIG_DFL, empty flags) locals; the
                // handler installed is `on_sigbus`, an `extern "C"` function with the
                // three-argument signature SA_SIGINFO requires. The previous disposition is
                // stored before ours is installed, so the handler always finds it (a handler
                // installed by another thread between the two calls would be lost: auditlog
                // installs this on its first map, normally long after program start).
                unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                        return;
                    }
                    let _ = PREVIOUS.set(old);
                    let mut new: libc::sigaction = std::mem::zeroed();
                    new.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
                    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                    libc::sigemptyset(&mut new.sa_mask);
                    if libc::sigaction(libc::SIGBUS, &new, std::ptr::null_mut()) != 0 {
                        return;
                    }
                }
                INSTALLED.store(true, Ordering::Release);
            });
            INSTALLED.load(Ordering::Acquire)
        }

        /// The SIGBUS handler. Only async-signal-safe work: atomic loads and stores on
        /// statics, `mmap`, `sigaction`, `raise`, and the previous handler.
        extern "C" fn on_sigbus(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
            // SAFETY: the kernel passes a valid `siginfo_t` to an SA_SIGINFO handler; for
            // SIGBUS `si_addr` is the member of its union that the kernel filled in (it is
            // only used when `si_code` says the kernel raised the signal for a fault).
            let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
            let from_fault = code == libc::BUS_ADRERR || code == libc::BUS_OBJERR;
            // SAFETY: `__errno_location` returns this thread's errno, valid for the thread's
            // life; it is saved here and restored below, so the interrupted code never sees
            // an errno set by the handler's own system calls.
            let errno = unsafe { *libc::__errno_location() };
            if from_fault && replace(addr) {
                // SAFETY: as above.
                unsafe { *libc::__errno_location() = errno };
                return;
            }
            pass_on(sig, info, ctx, code > 0);
            // SAFETY: as above.
            unsafe { *libc::__errno_location() = errno };
        }

        /// If `addr` lies in a registered map, maps zero pages over it from the faulting page
        /// to the map's end and records the fault. False if it does not, or if that failed.
        fn replace(addr: usize) -> bool {
            let Some((slot, start, len, writable)) = super::lookup(addr) else {
                return false;
            };
            let page = PAGE.load(Ordering::Relaxed);
            let from = (addr & !(page - 1)).max(start);
            let end = (start + len).next_multiple_of(page);
            let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
            // SAFETY: `[from, end)` lies inside one live mapping of this process: the
            // registered map holding the faulting address (its slot is unregistered only
            // after the last reference to the map is gone and before it is unmapped, and the
            // faulting thread is using it right now), rounded out to the pages the kernel
            // mapped for it, and `from` is page-aligned because the map starts on a page.
            // MAP_FIXED replaces exactly those pages with private zero pages, which the map's
            // own `munmap` later removes like the file pages they replace. Nothing else in the
            // process refers to those pages' contents: readers hold slices of the map, which
            // now read zeros (flagged through the slot's fault offset). `mmap` is a plain
            // system call in glibc and musl, safe to make from a signal handler.
            let p = unsafe {
                libc::mmap(
                    from as *mut libc::c_void,
                    end - from,
                    prot,
                    libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return false;
            }
            super::mark(slot, addr - start);
            true
        }

        /// Gives a SIGBUS that is not ours to the previous disposition: its handler if it had
        /// one; otherwise the default action, which kills the process (a fault is retried on
        /// return and raises SIGBUS again; a signal sent by a process is raised again).
        fn pass_on(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void, from_kernel: bool) {
            let prev = PREVIOUS.get();
            let handler = prev.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
            if handler == libc::SIG_IGN && !from_kernel {
                return;
            }
            if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
                // SAFETY: `sigaction` and `raise` are async-signal-safe; `dfl` is a valid
                // zeroed `sigaction` (SIG_DFL, empty mask, no flags). With SA_NODEFER the
                // raised signal is delivered at once, with the default action.
                unsafe {
                    let dfl: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
                    if !from_kernel {
                        libc::raise(sig);
                    }
                }
                return;
            }
            let siginfo = prev.is_some_and(|p| p.sa_flags & libc::SA_SIGINFO != 0);
            // SAFETY: `handler` is the function the previous `sigaction` installed for
            // SIGBUS (neither SIG_DFL nor SIG_IGN), called with the signature its flags
            // declare (three arguments with SA_SIGINFO, one without) and the arguments the
            // kernel gave this handler, as it would have been called without auditlog.
            unsafe {
                if siginfo {
                    let f = std::mem::transmute::<
                        libc::sighandler_t,
                        extern "C" fn(c_int, *mut siginfo_t, *mut c_void),
                    >(handler);
                    f(sig, info, ctx);
                } else {
                    let f =
                        std::mem::transmute::<libc::sighandler_t, extern "C" fn(c_int)>(handler);
                    f(sig);
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod sys {
        /// No guard outside Linux: maps work, a truncation underneath still raises SIGBUS.
        pub(super) fn install() -> bool {
            false
        }
    }
}
