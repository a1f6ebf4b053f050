//! Criterion benchmarks of the engine, one group per component:
//!
//! - `append`: `Log::append` under each durability from 1, 2, 8 and 64 threads;
//! - `append_batch`: batches of 100 and 1000 under `Buffered` and `Sync`;
//! - `write_path`: `Sync` appends with `WritePath::Mmap` vs `WritePath::Pwrite` vs
//!   `WritePath::Staged`;
//! - `verify`: a read-only `verify` of a 200k-event log;
//! - `open`: reopening a 1M-event log made of many sealed segments plus an active one;
//! - `frame`, `chain`, `digest`: the per-record CPU work;
//! - `prealloc`: a 300-byte write + `fdatasync` into zero-filled, `fallocate`d and sparse files.
//!
//! Run with `cargo bench --bench engine` (a subset: `cargo bench --bench engine -- append/sync`;
//! a smoke run of every benchmark once: `cargo bench --bench engine -- --test`).
//!
//! Every log and file lives in a temporary directory under `CARGO_TARGET_TMPDIR` (the repo's
//! `target/tmp`, the same filesystem as the repo) rather than `/tmp`, which may be a tmpfs and
//! would make every sync free. State that is expensive to build (open logs, prebuilt logs,
//! preallocated files) is built lazily inside the benchmark closure, so a filtered run only
//! builds what it measures, and it is dropped (log closed, directory removed) right after its
//! benchmark. Events are generated once, before any timed region, and reused cyclically.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use auditlog::format::{decode_frame, encode_frame_into, frame_len};
use auditlog::sample::Generator;
use auditlog::{digest, Chain, Durability, Event, HmacKey, Log, Options, WritePath};
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode,
    Throughput,
};
use tempfile::TempDir;

/// A fixed 32-byte benchmark key.
const KEY: &[u8; 32] = b"auditlog-bench-key-0123456789abc";

/// Pre-generated events shared by every append benchmark (reused cyclically).
const POOL_EVENTS: usize = 100_000;

fn key() -> HmacKey {
    HmacKey::from_bytes(KEY).expect("a 32-byte key")
}

/// A fresh directory on the repo's filesystem (not `/tmp`, which may be a tmpfs).
fn bench_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("creating a temporary directory under CARGO_TARGET_TMPDIR")
}

fn pool() -> &'static [Event] {
    static POOL: OnceLock<Vec<Event>> = OnceLock::new();
    POOL.get_or_init(|| Generator::standard(42).take(POOL_EVENTS).collect())
}

/// An open log in its own temporary directory. Fields drop in order: the log is closed before
/// its directory is removed.
struct OpenLog {
    log: Log,
    _dir: TempDir,
    /// Where the next sample starts in the event pool.
    cursor: usize,
}

impl OpenLog {
    fn new(opts: Options) -> OpenLog {
        let dir = bench_dir();
        let log = Log::open(dir.path(), opts).expect("opening the benchmark log");
        OpenLog {
            log,
            _dir: dir,
            cursor: 0,
        }
    }
}

/// Appends `total` events, spread evenly across `threads` threads, one `append` at a time;
/// returns the wall time from the moment all threads are released until the last finishes.
/// Thread creation is outside the timed region.
fn append_spread(
    log: &Log,
    events: &[Event],
    threads: usize,
    total: u64,
    cursor: &mut usize,
) -> Duration {
    let n = events.len();
    let start_at = *cursor;
    *cursor = (start_at + (total % n as u64) as usize) % n;
    let per = total / threads as u64;
    let extra = total % threads as u64;
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = per + u64::from((t as u64) < extra);
                let mut i = (start_at + t * (n / threads)) % n;
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..count {
                        black_box(log.append(&events[i]).expect("append"));
                        i += 1;
                        if i == n {
                            i = 0;
                        }
                    }
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().expect("appender thread panicked");
        }
        start.elapsed()
    })
}

/// Events per criterion iteration for `Sync` appends: enough for every thread to have a few
/// records in each group commit, few enough that a sample stays short even when a sync takes
/// milliseconds (10 iterations at least are run per benchmark).
fn sync_events_per_iter(threads: usize) -> u64 {
    32 * threads as u64
}

/// One `append` benchmark: `K` events per iteration across `threads` threads into a log
/// opened (lazily) once for this benchmark.
fn bench_appenders(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    opts: impl Fn() -> Options,
    threads: usize,
    per_iter: u64,
) {
    let events = pool();
    g.throughput(Throughput::Elements(per_iter));
    let mut state: Option<OpenLog> = None;
    g.bench_function(id, |b| {
        let st = state.get_or_insert_with(|| OpenLog::new(opts()));
        let OpenLog { log, cursor, .. } = st;
        b.iter_custom(|iters| append_spread(log, events, threads, iters * per_iter, cursor));
    });
    drop(state);
}

fn bench_append(c: &mut Criterion) {
    pool();
    let mut g = c.benchmark_group("append");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    let modes: [(&str, Durability); 3] = [
        ("buffered", Durability::Buffered),
        (
            "interval_10ms",
            Durability::Interval(Duration::from_millis(10)),
        ),
        ("sync", Durability::Sync),
    ];
    for (name, durability) in modes {
        let sync = durability == Durability::Sync;
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(if sync { 3 } else { 2 }));
        for threads in [1usize, 2, 8, 64] {
            let per_iter = if sync {
                sync_events_per_iter(threads)
            } else {
                10_000
            };
            bench_appenders(
                &mut g,
                BenchmarkId::new(name, threads),
                || Options::new(key()).durability(durability),
                threads,
                per_iter,
            );
        }
    }
    g.finish();
}

fn bench_write_path(c: &mut Criterion) {
    pool();
    let mut g = c.benchmark_group("write_path");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, path) in [
        ("mmap", WritePath::Mmap),
        ("pwrite", WritePath::Pwrite),
        ("staged", WritePath::Staged),
    ] {
        for threads in [1usize, 8, 64] {
            bench_appenders(
                &mut g,
                BenchmarkId::new(name, threads),
                || {
                    Options::new(key())
                        .durability(Durability::Sync)
                        .write_path(path)
                },
                threads,
                sync_events_per_iter(threads),
            );
        }
    }
    g.finish();
}

fn bench_append_batch(c: &mut Criterion) {
    let events = pool();
    let mut g = c.benchmark_group("append_batch");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for (name, durability) in [
        ("buffered", Durability::Buffered),
        ("sync", Durability::Sync),
    ] {
        for batch in [100usize, 1000] {
            g.throughput(Throughput::Elements(batch as u64));
            let usable = events.len() - events.len() % batch;
            let mut state: Option<OpenLog> = None;
            g.bench_function(BenchmarkId::new(name, batch), |b| {
                let st = state.get_or_insert_with(|| {
                    OpenLog::new(Options::new(key()).durability(durability))
                });
                let OpenLog { log, cursor, .. } = st;
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let chunk = &events[*cursor..*cursor + batch];
                        black_box(log.append_batch(chunk).expect("append_batch"));
                        *cursor = (*cursor + batch) % usable;
                    }
                    start.elapsed()
                });
            });
            drop(state);
        }
    }
    g.finish();
}

/// Writes `n` freshly generated events (monotonic timestamps) into a new log and closes it.
fn build_log(n: usize, opts: Options) -> TempDir {
    let dir = bench_dir();
    let log = Log::open(dir.path(), opts).expect("opening the log to build");
    let mut gen = Generator::standard(7);
    let mut batch = Vec::with_capacity(1000);
    let mut left = n;
    while left > 0 {
        batch.clear();
        batch.extend(gen.by_ref().take(left.min(1000)));
        log.append_batch(&batch).expect("building the log");
        left -= batch.len();
    }
    drop(log);
    dir
}

fn bench_verify(c: &mut Criterion) {
    const N: usize = 200_000;
    let mut g = c.benchmark_group("verify");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(N as u64));
    // With the default 64 MiB segments, 200k events make one full segment and a partial one,
    // so `verify` (parallel across segments) is mostly single-threaded; with 8 MiB segments
    // (~9 segments) it can use every core.
    for (name, segment_bytes) in [
        ("200k_64MiB_segments", 64u64 << 20),
        ("200k_8MiB_segments", 8 << 20),
    ] {
        let mut state: Option<(Log, TempDir)> = None;
        g.bench_function(name, |b| {
            let (log, _) = state.get_or_insert_with(|| {
                let dir = build_log(
                    N,
                    Options::new(key())
                        .durability(Durability::Buffered)
                        .segment_bytes(segment_bytes),
                );
                let log = Log::open_read_only(dir.path(), key()).expect("open_read_only");
                (log, dir)
            });
            b.iter(|| {
                let report = log.verify().expect("verify");
                assert!(report.ok, "verify failed: {:?}", report.failure);
                assert_eq!(report.records, N as u64);
                report
            });
        });
        drop(state);
    }
    g.finish();
}

fn bench_open(c: &mut Criterion) {
    const N: usize = 1_000_000;
    const SEGMENT_BYTES: u64 = 4 << 20;
    let opts = || {
        Options::new(key())
            .durability(Durability::Buffered)
            .segment_bytes(SEGMENT_BYTES)
    };
    let mut g = c.benchmark_group("open");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    // Built once for both benchmarks, on first use: ~90 sealed 4 MiB segments plus the active
    // one. Each timed open is followed (untimed) by the close of that log.
    let mut built: Option<TempDir> = None;
    g.bench_function("1M_events_4MiB_segments", |b| {
        let dir = built.get_or_insert_with(|| build_log(N, opts()));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open(dir.path(), opts()).expect("reopen");
                total += start.elapsed();
                assert_eq!(log.next_seq(), N as u64);
                drop(log);
            }
            total
        });
    });
    g.bench_function("1M_events_4MiB_segments_read_only", |b| {
        let dir = built.get_or_insert_with(|| build_log(N, opts()));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open_read_only(dir.path(), key()).expect("open_read_only");
                total += start.elapsed();
                drop(log);
            }
            total
        });
    });
    drop(built);
    g.finish();
}

/// A realistic 300-byte payload (the JSON of a generated event, cut or padded to 300 bytes).
fn payload_300() -> Vec<u8> {
    let mut p = serde_json::to_vec(&pool()[0]).expect("event JSON");
    p.resize(300, b' ');
    p
}

fn bench_components(c: &mut Criterion) {
    let payload = payload_300();
    let key = key();
    let chain = Chain::new(&key);
    let mac = [0xA5u8; 32];

    let mut g = c.benchmark_group("frame");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(frame_len(payload.len()) as u64));
    let mut buf = vec![0u8; frame_len(payload.len())];
    g.bench_function("encode_300B", |b| {
        b.iter(|| {
            encode_frame_into(
                black_box(&mut buf),
                0,
                black_box(12_345),
                black_box(1_700_000_000_000_000_000),
                black_box(&payload),
                &mac,
            )
        })
    });
    encode_frame_into(
        &mut buf,
        0,
        12_345,
        1_700_000_000_000_000_000,
        &payload,
        &mac,
    );
    g.bench_function("decode_300B", |b| {
        b.iter(|| decode_frame(black_box(&buf)).expect("valid frame").seq)
    });
    g.finish();

    let mut g = c.benchmark_group("chain");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    let d = digest(&payload);
    let prev = chain.genesis(&[1; 16]);
    g.bench_function("step", |b| {
        b.iter(|| {
            chain.step(
                black_box(&prev),
                black_box(7),
                black_box(1_700_000_000_000_000_000),
                black_box(&d),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("digest");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    for len in [256usize, 300] {
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("sha256", len), |b| {
            b.iter(|| digest(black_box(&payload[..len])))
        });
    }
    g.finish();
}

/// How a preallocated file is made.
#[derive(Clone, Copy)]
enum Prealloc {
    /// Zeros written and fsynced (what the engine does).
    Zeroed,
    /// The `fallocate` command-line tool: unwritten extents on ext4.
    Fallocate,
    /// `set_len`: a hole.
    Sparse,
}

/// How successive writes move through the file.
#[derive(Clone, Copy)]
enum Pattern {
    /// Each write right after the previous one (the log's append pattern; ~13 writes share a
    /// 4 KiB block, so only the first write into a block can pay for a metadata change).
    Append,
    /// Each write 4 to 36 KiB after the previous one, pseudo-randomly: every write lands in a
    /// block never written before (the worst case for unwritten extents and holes).
    Scattered,
}

const RECORD: usize = 300;
const PREALLOC_FILE: u64 = 256 << 20;

/// A preallocated file being written through; replaced (untimed) when it runs out.
struct PreFile {
    dir: TempDir,
    kind: Prealloc,
    file: Option<File>,
    size: u64,
    next: u64,
    rng: u64,
    files: u64,
}

impl PreFile {
    fn new(kind: Prealloc) -> PreFile {
        PreFile {
            dir: bench_dir(),
            kind,
            file: None,
            size: 0,
            next: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            files: 0,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(format!("prealloc-{}", self.files))
    }

    /// Makes sure `need` more bytes can be written without wrapping, creating a new file.
    fn ensure(&mut self, need: u64) {
        if self.file.is_some() && self.next + need <= self.size {
            return;
        }
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(self.path());
            self.files += 1;
        }
        let size = PREALLOC_FILE.max(need.next_multiple_of(1 << 20));
        let path = self.path();
        let file = match self.kind {
            Prealloc::Zeroed => {
                let f = create(&path);
                let zeros = vec![0u8; 1 << 20];
                let mut off = 0;
                while off < size {
                    f.write_all_at(&zeros, off).expect("zero-filling");
                    off += zeros.len() as u64;
                }
                f
            }
            Prealloc::Fallocate => {
                let st = Command::new("fallocate")
                    .args(["-l", &size.to_string()])
                    .arg(&path)
                    .status()
                    .expect("running fallocate");
                assert!(st.success(), "fallocate failed: {st}");
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("opening the fallocated file")
            }
            Prealloc::Sparse => {
                let f = create(&path);
                f.set_len(size).expect("set_len");
                f
            }
        };
        file.sync_all().expect("fsync of the new file");
        File::open(self.dir.path())
            .and_then(|d| d.sync_all())
            .expect("fsync of the directory");
        self.file = Some(file);
        self.size = size;
        self.next = 0;
    }

    /// The largest stride `stride` can return.
    fn max_stride(pattern: Pattern) -> u64 {
        match pattern {
            Pattern::Append => RECORD as u64,
            Pattern::Scattered => 4096 + (32 << 10),
        }
    }

    fn stride(&mut self, pattern: Pattern) -> u64 {
        match pattern {
            Pattern::Append => RECORD as u64,
            Pattern::Scattered => {
                self.rng = self
                    .rng
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                4096 + ((self.rng >> 33) % (32 << 10))
            }
        }
    }
}

fn create(path: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("creating the preallocated file")
}

fn fallocate_available() -> bool {
    let dir = bench_dir();
    let path = dir.path().join("probe");
    Command::new("fallocate")
        .args(["-l", "65536"])
        .arg(&path)
        .status()
        .is_ok_and(|s| s.success())
}

fn bench_prealloc(c: &mut Criterion) {
    let record = [0x5Au8; RECORD];
    let mut g = c.benchmark_group("prealloc");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let have_fallocate = fallocate_available();
    if !have_fallocate {
        eprintln!("prealloc: the `fallocate` tool is missing or unsupported here; skipping it");
    }
    for (pname, pattern) in [
        ("append", Pattern::Append),
        ("scattered", Pattern::Scattered),
    ] {
        for (kname, kind) in [
            ("zeroed", Prealloc::Zeroed),
            ("fallocate", Prealloc::Fallocate),
            ("sparse", Prealloc::Sparse),
        ] {
            if matches!(kind, Prealloc::Fallocate) && !have_fallocate {
                continue;
            }
            let mut state: Option<PreFile> = None;
            g.bench_function(BenchmarkId::new(kname, pname), |b| {
                let f = state.get_or_insert_with(|| PreFile::new(kind));
                b.iter_custom(|iters| {
                    f.ensure(iters * PreFile::max_stride(pattern) + RECORD as u64);
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let off = f.next;
                        f.next += f.stride(pattern);
                        let file = f.file.as_ref().expect("file ready");
                        let start = Instant::now();
                        file.write_all_at(&record, off).expect("write");
                        file.sync_data().expect("fdatasync");
                        total += start.elapsed();
                    }
                    total
                });
            });
            drop(state);
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_append,
    bench_append_batch,
    bench_write_path,
    bench_verify,
    bench_open,
    bench_components,
    bench_prealloc
);
criterion_main!(benches);
