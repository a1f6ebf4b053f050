//! Operation sequences against a `Vec` model: appends (single, batched, invalid, and large
//! ones that roll the 64 KiB segments), reopens, verifies, checkpoints, point reads, read-only
//! views beside the writer, queries (by actor, by time range, both, or none; both orders;
//! paged by cursor and by page number), retention of an expired prefix, a crash simulated by
//! torn or stray bytes past the acknowledged end of the newest segment, and hostile damage to
//! acknowledged bytes. After every reopen, and at every read, the log holds exactly the
//! model's events.
//!
//! Input: the first byte picks the durability, checkpoint interval, event seed and whether
//! some events take the log's clock; then each pair of bytes is one operation and its
//! argument.
//!
//! What "acknowledged" means here: an append that returned its receipt. The log is dropped
//! (a clean close) before any file is touched, so every acknowledged record is on disk; a
//! crash can then only have left bytes *past* the last acknowledged record (a frame torn
//! part-way, pages of it written out of order, debris). Those must be cut on reopen without
//! losing a record. Damage to acknowledged bytes is not a crash: `Damage` ends the run, and
//! requires that the log either refuses to open or opens with a prefix of the model whose
//! shortfall `verify` reports (the close's checkpoint covers the last record).
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API, `chrono` and `tempfile`.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditlog::format::{decode_frame, encode_frame_into, frame_len, HEADER_LEN};
use auditlog::sample::Generator;
use auditlog::{
    hex, Durability, Event, HmacKey, Log, Options, Order, Query, Receipt, Record, MAX_LIMIT,
};
use chrono::{TimeZone, Utc};

const KEY: &[u8] = b"ops_model fuzz key, thirty-two bytes at the least";
const MAX_OPS: usize = 48;
const MAX_EVENTS: usize = 800;
/// Bytes of `details` the large appends of one run may add up to.
const LARGE_BUDGET: usize = 1 << 20;
const RETENTION_DAYS: u32 = 30;
const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// One decoded operation.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Appends `n` events one at a time.
    Append(u8),
    /// Appends `n` events in one batch; with `invalid`, one of them is invalid and the whole
    /// batch must be refused.
    AppendBatch {
        n: u8,
        invalid: bool,
    },
    /// Closes and reopens the log.
    Reopen,
    Verify,
    Checkpoint,
    /// Reads one record by seq.
    Get(u8),
    /// Opens the directory read-only beside the writer and compares.
    ReadOnlyView,
    /// An invalid single append, which must change nothing.
    AppendInvalid,
    /// One event with large `details` (size class in the argument; the largest exceed a
    /// 64 KiB segment), so that segments roll.
    AppendLarge(u8),
    /// A query (argument: filter, order, limit, which event the filter comes from), paged by
    /// cursor to the end (at most 12 pages) and once by page number, against the model.
    Query(u8),
    /// `apply_retention` with a cutoff inside the model's timestamps (bit 7: reopen first, so
    /// every segment but the newest is sealed and the removal is predicted exactly).
    Retention(u8),
    /// Close, then write torn or stray bytes past the acknowledged end of the newest segment
    /// (argument: kind and size), then reopen: nothing acknowledged may be lost.
    Crash(u8),
    /// Close, then damage acknowledged bytes of the newest segment, then open. Ends the run.
    Damage(u8),
}

pub fn decode_ops(bytes: &[u8]) -> Vec<Op> {
    bytes
        .chunks_exact(2)
        .take(MAX_OPS)
        .map(|c| match c[0] % 16 {
            0 | 13 => Op::Append(1 + c[1] % 4),
            1 | 14 => Op::AppendBatch {
                n: 1 + c[1] % 32,
                invalid: c[1] >= 224,
            },
            2 => Op::Reopen,
            3 => Op::Verify,
            4 => Op::Checkpoint,
            5 => Op::Get(c[1]),
            6 => Op::ReadOnlyView,
            7 => Op::AppendInvalid,
            8 => Op::AppendLarge(c[1]),
            9 | 15 => Op::Query(c[1]),
            10 => Op::Retention(c[1]),
            11 => Op::Crash(c[1]),
            _ => Op::Damage(c[1]),
        })
        .collect()
}

/// The input bytes of `ops` (the inverse of `decode_ops`), for writing seeds.
pub fn encode_ops(cfg: u8, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![cfg];
    for op in ops {
        let (k, a) = match *op {
            Op::Append(n) => (0, n.saturating_sub(1)),
            Op::AppendBatch { n, invalid } => {
                (1, n.saturating_sub(1) % 32 + if invalid { 224 } else { 0 })
            }
            Op::Reopen => (2, 0),
            Op::Verify => (3, 0),
            Op::Checkpoint => (4, 0),
            Op::Get(k) => (5, k),
            Op::ReadOnlyView => (6, 0),
            Op::AppendInvalid => (7, 0),
            Op::AppendLarge(a) => (8, a),
            Op::Query(a) => (9, a),
            Op::Retention(a) => (10, a),
            Op::Crash(a) => (11, a),
            Op::Damage(a) => (12, a),
        };
        out.extend([k, a]);
    }
    out
}

fn options(cfg: u8) -> Options {
    let durability = match cfg % 3 {
        0 => Durability::Sync,
        1 => Durability::Buffered,
        _ => Durability::Interval(Duration::from_millis(2)),
    };
    let every = [0, 7, 50, 1000][(cfg as usize >> 2) % 4];
    Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(durability)
        .segment_bytes(64 * 1024)
        .max_event_bytes(128 * 1024)
        .checkpoint_every(every)
        .retention_days(RETENTION_DAYS)
}

/// What the model remembers of an appended event.
#[derive(Clone)]
struct Stored {
    receipt: Receipt,
    /// The event as appended, with the id the log gave it and no timestamp (the record's
    /// timestamp is compared through the receipt).
    event: Event,
}

struct Model {
    gen: Generator,
    n: u64,
    /// Every event ever appended, by seq; those before `first` were removed by retention.
    events: Vec<Stored>,
    first: usize,
    large_bytes: usize,
    stamp_now: bool,
}

impl Model {
    fn next_event(&mut self) -> Event {
        let mut e = self.gen.next_event();
        self.n += 1;
        // Every fifth event leaves its id to the log; with `stamp_now`, every 25th its
        // timestamp too (now, years after the generator's, so that it holds its segment
        // back from retention).
        if self.n.is_multiple_of(5) {
            e.event_id = None;
            if self.stamp_now && self.n.is_multiple_of(25) {
                e.timestamp = None;
            }
        } else {
            e.event_id = Some(format!("fz-{}", self.n));
        }
        e
    }

    fn push(&mut self, mut event: Event, receipt: Receipt) {
        assert_eq!(receipt.seq, self.events.len() as u64, "receipt seq");
        if let Some(id) = &event.event_id {
            assert_eq!(&receipt.event_id, id, "receipt event id");
        }
        if let Some(t) = &event.timestamp {
            assert_eq!(
                Some(receipt.timestamp_ns),
                t.timestamp_nanos_opt(),
                "receipt ts"
            );
        }
        event.event_id = Some(receipt.event_id.clone());
        event.timestamp = None;
        self.events.push(Stored { receipt, event });
    }

    /// An event the log appended by itself (retention's `audit_log` record).
    fn push_record(&mut self, r: Record) {
        let receipt = Receipt {
            seq: r.seq,
            event_id: r.event.event_id.clone().expect("stored events have ids"),
            timestamp_ns: r.timestamp_ns,
            hash: r.hash,
        };
        self.push(r.event, receipt);
    }

    fn present(&self) -> &[Stored] {
        &self.events[self.first..]
    }
}

fn invalid_event() -> Event {
    let mut e = Event::new("authentication", "");
    e.event_id = Some("invalid".into());
    e
}

/// The log holds exactly the model's events, in order.
fn check_all(log: &Log, model: &Model, when: &str) {
    assert_eq!(
        log.next_seq(),
        model.events.len() as u64,
        "{when}: next seq"
    );
    let mut n = 0usize;
    for r in log.iter() {
        let r = r.unwrap_or_else(|e| panic!("{when}: reading: {e}"));
        let want = model
            .present()
            .get(n)
            .unwrap_or_else(|| panic!("{when}: extra record {}", r.seq));
        check_record(&r, want, when);
        n += 1;
    }
    assert_eq!(n, model.present().len(), "{when}: records");
}

fn check_record(r: &Record, want: &Stored, when: &str) {
    assert_eq!(r.seq, want.receipt.seq, "{when}");
    assert_eq!(r.hash, want.receipt.hash, "{when}: hash of {}", r.seq);
    assert_eq!(r.timestamp_ns, want.receipt.timestamp_ns, "{when}");
    let mut ev = r.event.clone();
    ev.timestamp = None;
    assert_eq!(ev, want.event, "{when}: event {}", r.seq);
}

fn check_verify(log: &Log, model: &Model, when: &str) {
    check_verify_beside(log, model, when, false);
}

/// `beside_writer`: a read-only log whose writer's worker may be appending a checkpoint (the
/// seal's, after a roll) while `verify` reads `checkpoints.jsonl`. `checkpoint::read_log`
/// looks again after 20 ms when the last line is unterminated, so a "torn line" warning there
/// needs a writer stalled inside one `write`; it is tolerated on that view only.
fn check_verify_beside(log: &Log, model: &Model, when: &str, beside_writer: bool) {
    let report = log.verify().unwrap();
    assert!(report.ok, "{when}: verify: {:?}", report.failure);
    assert_eq!(report.records, model.present().len() as u64, "{when}");
    let unexpected: Vec<&String> = report
        .warnings
        .iter()
        .filter(|w| !(beside_writer && w.contains("ends with a torn line")))
        .collect();
    assert!(unexpected.is_empty(), "{when}: {:?}", report.warnings);
}

fn open(dir: &Path, cfg: u8) -> Log {
    let log = Log::open(dir, options(cfg)).expect("open");
    assert!(
        log.recovery().torn_tail.is_none(),
        "a clean close left a torn tail: {:?}",
        log.recovery()
    );
    log
}

/// A temporary directory, in memory where the machine has a tmpfs (fsyncs are free there).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

/// First seqs of the data directory's segment files, ascending.
fn segment_firsts(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            let stem = name.strip_suffix(".seg")?;
            (stem.len() == 20).then(|| stem.parse().ok()).flatten()
        })
        .collect();
    v.sort_unstable();
    v
}

/// The newest segment file, its bytes, and the offset just past its last record.
fn newest_segment(dir: &Path) -> (PathBuf, Vec<u8>, usize) {
    let first = *segment_firsts(dir).last().expect("a segment");
    let path = dir.join(format!("{first:020}.seg"));
    let bytes = fs::read(&path).unwrap();
    let mut end = HEADER_LEN;
    while let Ok(f) = decode_frame(&bytes[end..]) {
        end += f.len;
    }
    (path, bytes, end)
}

fn write_at(path: &Path, at: usize, b: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(b, at as u64).unwrap();
}

/// A deterministic non-zero byte pattern.
fn pattern(seed: u8, n: usize) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as u8) | 1
        })
        .collect()
}

/// Torn or stray bytes past the acknowledged end of the newest segment of a closed log.
/// Returns what was written, for messages.
fn crash(dir: &Path, arg: u8, next_seq: u64) -> String {
    let (path, bytes, end) = newest_segment(dir);
    let room = bytes.len() - end;
    let amount = usize::from(arg >> 2);
    match arg % 4 {
        // The next frame, torn: a prefix of it, and for kind 1 with a hole where a page
        // between two written ones was not (writes through a map reach the disk in any order).
        k @ (0 | 1) => {
            let payload = pattern(arg, 40 + amount * 37);
            let mut frame = vec![0u8; frame_len(payload.len())];
            encode_frame_into(&mut frame, 0, next_seq, 1, &payload, &[0x5A; 32]);
            let cut = (1 + amount * frame.len() / 64)
                .min(frame.len() - 1)
                .min(room);
            let mut torn = frame[..cut].to_vec();
            if k == 1 && cut > 2 {
                let a = cut / 3;
                torn[a..2 * a].fill(0);
            }
            write_at(&path, end, &torn);
            format!("torn frame of {cut} bytes at {end}")
        }
        // Debris after a gap of zeros.
        2 => {
            let at = (end + amount * 16).min(bytes.len());
            let n = (1 + amount).min(bytes.len() - at);
            write_at(&path, at, &pattern(arg, n));
            format!("{n} stray bytes at {at}")
        }
        // Zeros where zeros already are: nothing to repair.
        _ => {
            write_at(&path, end, &vec![0; room.min(64)]);
            "zeros past the end".into()
        }
    }
}

/// Damage to acknowledged bytes of the newest segment of a closed log; `None` when it holds
/// no record.
fn damage(dir: &Path, arg: u8) -> Option<String> {
    let (path, bytes, end) = newest_segment(dir);
    if end == HEADER_LEN {
        return None;
    }
    let at = HEADER_LEN + (end - HEADER_LEN - 1) * usize::from(arg >> 1) / 127;
    if arg & 1 == 0 {
        // Truncation: everything from `at` on is zero.
        write_at(&path, at, &vec![0; end - at]);
        Some(format!("zeroed {at}..{end}"))
    } else {
        write_at(&path, at, &[bytes[at] ^ (arg | 1)]);
        Some(format!("flipped byte {at}"))
    }
}

/// The model's events matching `q`'s user and time filters, in `q`'s order.
fn expected<'a>(model: &'a Model, q: &Query) -> Vec<&'a Stored> {
    let mut v: Vec<&Stored> = model
        .present()
        .iter()
        .filter(|s| {
            (q.user_ids.is_empty()
                || s.event
                    .actor
                    .user_id
                    .as_ref()
                    .is_some_and(|u| q.user_ids.contains(u)))
                && q.start.is_none_or(|t| s.receipt.timestamp_ns >= t)
                && q.end.is_none_or(|t| s.receipt.timestamp_ns <= t)
        })
        .collect();
    v.sort_by_key(|s| (s.receipt.timestamp_ns, s.receipt.seq));
    if q.order == Order::Desc {
        v.reverse();
    }
    v
}

fn check_entries(page: &auditlog::Page, want: &[&Stored], when: &str) {
    assert_eq!(page.returned_count, page.audit_logs.len(), "{when}");
    assert_eq!(page.audit_logs.len(), want.len(), "{when}: page size");
    for (got, want) in page.audit_logs.iter().zip(want) {
        assert_eq!(got.seq, want.receipt.seq, "{when}: order");
        assert!(got.verification.verified, "{when}: seq {}", got.seq);
        assert_eq!(got.verification.hash, want.receipt.hash_string(), "{when}");
        let mut ev = got.event.clone();
        assert_eq!(
            ev.timestamp.and_then(|t| t.timestamp_nanos_opt()),
            Some(want.receipt.timestamp_ns),
            "{when}"
        );
        ev.timestamp = None;
        assert_eq!(ev, want.event, "{when}: event {}", got.seq);
    }
}

fn check_query(log: &Log, model: &Model, arg: u8, when: &str) {
    let present = model.present();
    let pick = |k: usize| present.get(k % present.len().max(1));
    let k = usize::from(arg >> 6) * present.len() / 4;
    let mut q = Query::new();
    if arg & 1 != 0 {
        let user = pick(k)
            .and_then(|s| s.event.actor.user_id.clone())
            .unwrap_or_else(|| "nobody".into());
        q.user_ids.push(user);
    }
    if arg & 2 != 0 {
        let a = pick(k).map_or(0, |s| s.receipt.timestamp_ns);
        let b = pick(k + 1 + usize::from(arg >> 3) * 7).map_or(0, |s| s.receipt.timestamp_ns);
        q.start = Some(a.min(b));
        q.end = Some(a.max(b));
    }
    q.order = if arg & 4 != 0 {
        Order::Asc
    } else {
        Order::Desc
    };
    q.limit = [1, 2, 3, 5, 8, 20, 100, MAX_LIMIT][usize::from(arg >> 3) & 7];
    let want = expected(model, &q);
    // By cursor, to the end or 12 pages.
    let mut seen = 0;
    for n in 0..12 {
        let page = log
            .query(&q)
            .unwrap_or_else(|e| panic!("{when}: page {n}: {e}"));
        assert_eq!(page.total_count, want.len() as u64, "{when}: total_count");
        assert_eq!(page.page, n + 1, "{when}: page number");
        let end = (seen + q.limit).min(want.len());
        check_entries(&page, &want[seen..end], &format!("{when}: page {n}"));
        seen = end;
        match page.next_page {
            Some(c) => {
                assert!(seen < want.len(), "{when}: a next page after the last");
                q.cursor = Some(c);
            }
            None => {
                assert_eq!(seen, want.len(), "{when}: no next page before the end");
                break;
            }
        }
    }
    // By page number: the second page.
    q.cursor = None;
    q.page = Some(2);
    if q.validate().is_ok() {
        let page = log
            .query(&q)
            .unwrap_or_else(|e| panic!("{when}: page 2: {e}"));
        assert_eq!(page.total_count, want.len() as u64, "{when}: page 2 total");
        let from = q.limit.min(want.len());
        let to = (2 * q.limit).min(want.len());
        check_entries(&page, &want[from..to], &format!("{when}: page=2"));
    }
}

fn check_retention(log: &Log, model: &mut Model, dir: &Path, arg: u8, exact: bool, when: &str) {
    let present = model.present();
    let pick = usize::from(arg & 0x7f);
    let cutoff = if present.is_empty() || pick >= 120 {
        // Past everything, the log-stamped events too.
        Utc::now().timestamp_nanos_opt().unwrap() + DAY_NS
    } else {
        present[pick * present.len() / 120].receipt.timestamp_ns
    };
    let now = Utc.timestamp_nanos(cutoff + i64::from(RETENTION_DAYS) * DAY_NS);
    // Whole segments from the first, never the newest, while every event in them is expired.
    let firsts = segment_firsts(dir);
    let mut predicted = model.first as u64;
    for w in firsts.windows(2) {
        let (from, to) = (w[0] as usize, w[1] as usize);
        assert!(
            from >= model.first,
            "{when}: segment {from} before the log's first seq"
        );
        let max_ts = model.events[from..to]
            .iter()
            .map(|s| s.receipt.timestamp_ns)
            .max()
            .unwrap_or(i64::MIN);
        if max_ts >= cutoff {
            break;
        }
        predicted = to as u64;
    }
    let report = log
        .apply_retention(now)
        .unwrap_or_else(|e| panic!("{when}: {e}"));
    assert!(
        report.compacted.is_none() && report.content_redacted == 0,
        "{when}"
    );
    let removed_to = match &report.removed {
        Some(r) => {
            assert_eq!(r.from_seq, model.first as u64, "{when}: removed from");
            assert_eq!(r.count, r.to_seq + 1 - r.from_seq, "{when}: removed count");
            r.to_seq + 1
        }
        None => model.first as u64,
    };
    if exact {
        assert_eq!(
            removed_to, predicted,
            "{when}: removed up to (segments {firsts:?})"
        );
    } else {
        // The worker may not have sealed the newest rolled segments yet.
        assert!(removed_to <= predicted, "{when}: removed past {predicted}");
        assert!(
            removed_to == model.first as u64 || firsts.contains(&removed_to),
            "{when}: removal ends inside a segment"
        );
    }
    for s in &model.events[model.first..removed_to as usize] {
        assert!(
            s.receipt.timestamp_ns < cutoff,
            "{when}: removed an unexpired event"
        );
    }
    model.first = removed_to as usize;
    if report.removed.is_some() {
        let seq = model.events.len() as u64;
        let r = log
            .get(seq)
            .unwrap()
            .unwrap_or_else(|| panic!("{when}: no audit event"));
        assert_eq!(r.event.event_type, "audit_log", "{when}");
        assert_eq!(r.event.action, "retention_applied", "{when}");
        model.push_record(r);
    }
}

/// Runs the input; returns how many events the log holds at the end.
pub fn run(data: &[u8]) -> usize {
    let Some((&cfg, rest)) = data.split_first() else {
        return 0;
    };
    run_ops(cfg, &decode_ops(rest))
}

/// Runs `ops` with the options `cfg` selects; returns how many events the log holds at the
/// end (after a `Damage`, how many it held before).
pub fn run_ops(cfg: u8, ops: &[Op]) -> usize {
    let tmp = scratch();
    let dir = tmp.path().join("log");
    let start = Utc
        .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    let mut model = Model {
        // Few actors, so that queries by actor match several events.
        gen: Generator::new(u64::from(cfg), 6, start),
        n: 0,
        events: Vec::new(),
        first: 0,
        large_bytes: 0,
        stamp_now: cfg & 0x40 != 0,
    };
    let mut log = open(&dir, cfg);
    for (i, op) in ops.iter().enumerate() {
        let when = format!("op {i} {op:?}");
        match *op {
            Op::Append(n) => {
                for _ in 0..n {
                    if model.events.len() >= MAX_EVENTS {
                        break;
                    }
                    let e = model.next_event();
                    let r = log.append(&e).unwrap_or_else(|x| panic!("{when}: {x}"));
                    model.push(e, r);
                }
            }
            Op::AppendBatch { n, invalid } => {
                let n = (n as usize).min(MAX_EVENTS.saturating_sub(model.events.len()));
                let mut batch: Vec<Event> = (0..n).map(|_| model.next_event()).collect();
                if invalid {
                    batch.insert(n / 2, invalid_event());
                    assert!(log.append_batch(&batch).is_err(), "{when}: accepted");
                    assert_eq!(log.next_seq(), model.events.len() as u64, "{when}");
                } else {
                    let rs = log
                        .append_batch(&batch)
                        .unwrap_or_else(|x| panic!("{when}: {x}"));
                    assert_eq!(rs.len(), batch.len(), "{when}: receipts");
                    for (e, r) in batch.into_iter().zip(rs) {
                        model.push(e, r);
                    }
                }
            }
            Op::AppendInvalid => {
                assert!(log.append(&invalid_event()).is_err(), "{when}: accepted");
                assert_eq!(log.next_seq(), model.events.len() as u64, "{when}");
            }
            Op::AppendLarge(a) => {
                let size = [2_000, 8_000, 20_000, 40_000, 60_000, 90_000][usize::from(a) % 6]
                    + usize::from(a);
                if model.events.len() < MAX_EVENTS && model.large_bytes + size <= LARGE_BUDGET {
                    model.large_bytes += size;
                    let mut e = model.next_event();
                    let mut d = e.details.to_value();
                    d["blob"] = "L".repeat(size).into();
                    e.details = d.into();
                    let r = log.append(&e).unwrap_or_else(|x| panic!("{when}: {x}"));
                    model.push(e, r);
                }
            }
            Op::Reopen => {
                drop(log);
                log = open(&dir, cfg);
                check_all(&log, &model, &when);
            }
            Op::Verify => check_verify(&log, &model, &when),
            Op::Checkpoint => match (log.checkpoint(), model.events.last()) {
                (Ok(cp), Some(last)) => {
                    assert_eq!(cp.seq, last.receipt.seq, "{when}");
                    assert_eq!(cp.count, model.events.len() as u64, "{when}");
                    assert_eq!(cp.log_id, log.log_id(), "{when}");
                    assert_eq!(cp.hash, hex(&last.receipt.hash), "{when}");
                }
                (Err(_), None) => {}
                (r, _) => panic!("{when}: checkpoint of {} events: {r:?}", model.events.len()),
            },
            Op::Get(k) => {
                let present = model.present();
                if let Some(want) = present.get(k as usize % present.len().max(1)) {
                    let got = log.get(want.receipt.seq).unwrap().expect("record present");
                    check_record(&got, want, &when);
                }
                let past = model.events.len() as u64;
                assert!(log.get(past).unwrap().is_none(), "{when}: seq {past}");
                if let Some(gone) = model.first.checked_sub(1) {
                    assert!(
                        log.get(gone as u64).unwrap().is_none(),
                        "{when}: removed {gone}"
                    );
                }
            }
            Op::ReadOnlyView => {
                let ro = Log::open_read_only(&dir, HmacKey::from_bytes(KEY).unwrap())
                    .unwrap_or_else(|x| panic!("{when}: {x}"));
                check_all(&ro, &model, &when);
                check_verify_beside(&ro, &model, &when, true);
            }
            Op::Query(a) => check_query(&log, &model, a, &when),
            Op::Retention(a) => {
                let exact = a & 0x80 != 0;
                if exact {
                    drop(log);
                    log = open(&dir, cfg);
                }
                check_retention(&log, &mut model, &dir, a, exact, &when);
                check_all(&log, &model, &when);
            }
            Op::Crash(a) => {
                drop(log);
                let what = crash(&dir, a, model.events.len() as u64);
                let when = format!("{when} ({what})");
                log = Log::open(&dir, options(cfg)).unwrap_or_else(|e| panic!("{when}: open: {e}"));
                check_all(&log, &model, &when);
                check_verify(&log, &model, &when);
            }
            Op::Damage(a) => {
                drop(log);
                let Some(what) = damage(&dir, a) else {
                    log = open(&dir, cfg);
                    continue;
                };
                let when = format!("{when} ({what})");
                // Refusing to open is a correct answer to damage.
                if let Ok(log) = Log::open(&dir, options(cfg)) {
                    let mut n = 0usize;
                    for r in log.iter() {
                        let Ok(r) = r else { break };
                        let want = model
                            .present()
                            .get(n)
                            .unwrap_or_else(|| panic!("{when}: extra record {}", r.seq));
                        check_record(&r, want, &when);
                        n += 1;
                    }
                    let report = log.verify().unwrap_or_else(|e| panic!("{when}: {e}"));
                    if n < model.present().len() {
                        assert!(!report.ok, "{when}: {n} records left and verify is ok");
                    } else {
                        // The damage changed nothing (those bytes were already zero).
                        assert!(report.ok, "{when}: verify: {:?}", report.failure);
                    }
                }
                return model.present().len();
            }
        }
    }
    drop(log);
    let log = open(&dir, cfg);
    check_all(&log, &model, "final reopen");
    check_verify(&log, &model, "final reopen");
    model.present().len()
}
