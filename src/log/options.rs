//! `Options`: everything `Log::open` can be told, with documented defaults.

use std::time::Duration;

use crate::chain::HmacKey;
use crate::error::{Error, Result};

/// When `append` returns relative to the record reaching stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `append` returns once the record is durable. Concurrent appenders share one sync
    /// (group commit), so throughput grows with the number of writers. The default.
    Sync,
    /// A background thread syncs every interval; a crash loses at most that much.
    Interval(Duration),
    /// Records are handed to the OS page cache; they become durable when a segment is sealed,
    /// at checkpoints and on close. A process crash loses nothing; a machine crash may.
    Buffered,
}

/// How records reach the active segment file. Reads always go through memory maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// Measured choice (see `docs/PERFORMANCE.md`): `Staged` for every durability.
    Auto,
    /// Copy each record into the resident staging file (`staging`, see docs/FORMAT.md §19),
    /// and write the staged records to the segment with one `pwrite` per 256 KiB (with 64 MiB
    /// segments), per sync,
    /// per roll, when a reader needs them, or within a millisecond. A process crash loses
    /// nothing (the staging file is in the page cache and is replayed at the next open).
    Staged,
    /// Copy into the shared `MmapMut`; sync with `msync` of the written range.
    Mmap,
    /// `pwrite` into the mapped file; sync with `fdatasync`.
    Pwrite,
}

/// How a new segment file gets its blocks before it is mapped. Either way every block exists
/// before the first store, so a full disk fails at segment creation, never as `SIGBUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preallocation {
    /// Measured choice (see `docs/PERFORMANCE.md`): `ZeroFill` for `Durability::Sync` (a
    /// write + `fdatasync` into written zeros measured ~20% cheaper), `Fallocate` otherwise.
    Auto,
    /// Write the whole file with zeros: 64 MiB of writes per segment, but a later
    /// `fdatasync` never commits extent conversions, which per-append syncs pay otherwise.
    ZeroFill,
    /// Reserve the blocks with `posix_fallocate`: a fraction of a millisecond, no data written.
    Fallocate,
}

/// Smallest accepted segment size.
pub const MIN_SEGMENT_BYTES: u64 = 64 * 1024;

/// Options for [`Log::open`](crate::Log::open). Setters consume and return `self`.
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) key: HmacKey,
    pub(crate) durability: Durability,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_max_age: Duration,
    pub(crate) retention_days: u32,
    pub(crate) checkpoint_every: u64,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) max_event_bytes: usize,
    pub(crate) write_path: WritePath,
    pub(crate) preallocation: Preallocation,
    pub(crate) retention_overrides: Vec<(String, u32)>,
    pub(crate) retention_interval: Option<Duration>,
    pub(crate) archive_days: u32,
    pub(crate) merkle_tree: bool,
    pub(crate) save_active_index: bool,
    /// Forward-secure sealing (`crate::fss`): the epoch length a new log is created with.
    pub(crate) forward_secure: Option<Duration>,
    /// The auditor's initial forward-secure key (creates a forward-secure log; verifies one).
    pub(crate) fss_initial_key: Option<HmacKey>,
}

impl Options {
    /// Options with the given key and every default:
    /// `Durability::Sync`, 64 MiB segments, 1 day segment age, `retention_days` 0 (keep
    /// forever), a checkpoint every 100,000 records or 60 s, `max_event_bytes` 64 KiB.
    pub fn new(key: HmacKey) -> Self {
        Options {
            key,
            durability: Durability::Sync,
            segment_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(86_400),
            retention_days: 0,
            checkpoint_every: 100_000,
            checkpoint_interval: Duration::from_secs(60),
            max_event_bytes: 64 << 10,
            write_path: WritePath::Auto,
            preallocation: Preallocation::Auto,
            retention_overrides: Vec::new(),
            retention_interval: None,
            archive_days: 0,
            merkle_tree: false,
            save_active_index: false,
            forward_secure: None,
            fss_initial_key: None,
        }
    }

    /// Keep the Merkle tree's tiles (`merkle/`, see `auditlog::tiles`) up to date in the
    /// background (default off: the tree is extended only by `Log::merkle_sync`). The writer
    /// hands each record's leaf fields (timestamp, payload digest: 40 bytes) to the worker,
    /// which extends the tiles after each seal, each of its syncs (every 8 MiB without
    /// `Durability::Sync`), each periodic checkpoint and at close, off the append path.
    /// `merkle_sync` still works, and finds the tree mostly extended.
    pub fn merkle_tree(mut self, on: bool) -> Self {
        self.merkle_tree = on;
        self
    }

    /// Save the active segment's index as a side file at a clean close (default off), so
    /// the next read-only open of the closed log (the CLI's `query` and `export`) loads it
    /// instead of decoding the segment's records (docs/FORMAT.md §10.3). The close then
    /// builds and writes the index it holds: about 0.1–0.2 s for a full 64 MiB segment
    /// here, which is why it is off for the library and on for the CLI and the server.
    /// Never for forward-secure logs.
    pub fn save_active_index(mut self, on: bool) -> Self {
        self.save_active_index = on;
        self
    }

    /// Creates the log forward-secure (docs/FORMAT.md, "Forward-secure logs"): its chain key
    /// evolves every `epoch` (`K_{i+1} = HMAC-SHA256(K_i, "auditlog/fss/v1 epoch" || le64(i))`),
    /// every epoch is sealed when it ends (even when empty), each record's MAC is bound to its
    /// epoch, and the writer keeps only the current epoch's key (in `fss.key`, 0600). Creating
    /// such a log needs [`fss_initial_key`](Self::fss_initial_key); it is used once and not
    /// kept. A log is forward-secure or not from its creation on; reopening a forward-secure
    /// log needs neither setting (the epoch length is stored in `fss.seals`). Minimum epoch
    /// 10 ms (meant for tests; use minutes in production).
    pub fn forward_secure(mut self, epoch: Duration) -> Self {
        self.forward_secure = Some(epoch);
        self
    }

    /// The auditor's initial forward-secure key `S` (at least 32 bytes). A writer needs it
    /// only to create a forward-secure log (it derives epoch 0's key and drops `S`); `verify`
    /// needs it to derive every epoch key and check a forward-secure log. Keep it away from
    /// the machine that writes the log.
    pub fn fss_initial_key(mut self, key: HmacKey) -> Self {
        self.fss_initial_key = Some(key);
        self
    }

    /// Move sealed segments whose newest event is older than this many days to the
    /// compressed archive tier (`archive/`), still verifiable and queryable; 0 (the default)
    /// never archives. Runs with [`Log::archive`](crate::Log::archive) or the scheduler.
    pub fn archive_days(mut self, days: u32) -> Self {
        self.archive_days = days;
        self
    }

    /// Keep the content (`details`) of `event_type` events only `days` days: older ones are
    /// redacted (content scope) by retention, while their metadata stays for
    /// `retention_days`.
    pub fn retention_override(mut self, event_type: impl Into<String>, days: u32) -> Self {
        self.retention_overrides.push((event_type.into(), days));
        self
    }

    /// Run `apply_retention(now)` in the background this often (default: never; retention
    /// runs only when asked).
    pub fn retention_interval(mut self, every: Option<Duration>) -> Self {
        self.retention_interval = every;
        self
    }

    /// Durability of `append` (default `Sync`).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Size at which the active segment rolls (default 64 MiB, minimum 64 KiB).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Wall-clock age at which a non-empty active segment rolls (default 1 day).
    pub fn segment_max_age(mut self, age: Duration) -> Self {
        self.segment_max_age = age;
        self
    }

    /// Days to keep records; 0 keeps them forever (default 0).
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// Write a signed checkpoint every `records` records (default 100,000; 0 disables the
    /// count trigger).
    pub fn checkpoint_every(mut self, records: u64) -> Self {
        self.checkpoint_every = records;
        self
    }

    /// Write a signed checkpoint at least this often while records arrive (default 60 s).
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        self.checkpoint_interval = every;
        self
    }

    /// Largest encoded event accepted (default 64 KiB).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How records are written to the active segment (default `Auto`).
    pub fn write_path(mut self, p: WritePath) -> Self {
        self.write_path = p;
        self
    }

    /// How new segment files are preallocated (default `Auto`).
    pub fn preallocation(mut self, p: Preallocation) -> Self {
        self.preallocation = p;
        self
    }

    /// Whether new segments are written full of zeros (else reserved with `fallocate`).
    pub(crate) fn zero_fill(&self) -> bool {
        match self.preallocation {
            Preallocation::Auto => self.durability == Durability::Sync,
            Preallocation::ZeroFill => true,
            Preallocation::Fallocate => false,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(Error::Config(format!(
                "segment_bytes {} is below the minimum {MIN_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.segment_bytes > u64::from(u32::MAX) {
            return Err(Error::Config(format!(
                "segment_bytes {} is above the maximum {} (record offsets in indexes are 32-bit)",
                self.segment_bytes,
                u32::MAX
            )));
        }
        if self.max_event_bytes == 0 || self.max_event_bytes > 16 << 20 {
            return Err(Error::Config(format!(
                "max_event_bytes {} must be between 1 and 16 MiB",
                self.max_event_bytes
            )));
        }
        if let Some(e) = self.forward_secure {
            crate::fss::check_epoch(e)?;
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err(Error::Config(
                    "durability interval must be greater than zero".into(),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn effective_write_path(&self) -> WritePath {
        match (self.write_path, ()) {
            // Measured (docs/PERFORMANCE.md): stores into fresh pages of a segment's map fault
            // once per page, and one pwrite per record is a system call per record; staging
            // beats both, with and without per-append syncs.
            (WritePath::Auto, _) => WritePath::Staged,
            (p, _) => p,
        }
    }
}
