//! Operation sequences against a `Vec` model: appends (single and batched, valid and
//! invalid), reopens, verifies, checkpoints, point reads and read-only views beside the
//! writer. After every reopen, and at every read, the log holds exactly the model's events.
//!
//! Input: the first byte picks the durability, checkpoint interval and event seed; then each
//! pair of bytes is one operation and its argument.
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API and `tempfile`.

use std::path::Path;
use std::time::Duration;

use auditlog::sample::Generator;
use auditlog::{Durability, Event, HmacKey, Log, Options, Receipt};

const KEY: &[u8] = b"ops_model fuzz key, thirty-two bytes at the least";
const MAX_OPS: usize = 64;
const MAX_EVENTS: usize = 800;

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
}

pub fn decode_ops(bytes: &[u8]) -> Vec<Op> {
    bytes
        .chunks_exact(2)
        .take(MAX_OPS)
        .map(|c| match c[0] % 8 {
            0 => Op::Append(1 + c[1] % 4),
            1 => Op::AppendBatch {
                n: 1 + c[1] % 32,
                invalid: c[1] >= 224,
            },
            2 => Op::Reopen,
            3 => Op::Verify,
            4 => Op::Checkpoint,
            5 => Op::Get(c[1]),
            6 => Op::ReadOnlyView,
            _ => Op::AppendInvalid,
        })
        .collect()
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
        .checkpoint_every(every)
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
    events: Vec<Stored>,
}

impl Model {
    fn next_event(&mut self) -> Event {
        let mut e = self.gen.next_event();
        self.n += 1;
        // Every fifth event leaves id and timestamp to the log.
        if self.n.is_multiple_of(5) {
            e.event_id = None;
            e.timestamp = None;
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
        event.event_id = Some(receipt.event_id.clone());
        event.timestamp = None;
        self.events.push(Stored { receipt, event });
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
            .events
            .get(n)
            .unwrap_or_else(|| panic!("{when}: extra record {}", r.seq));
        assert_eq!(r.seq, want.receipt.seq, "{when}");
        assert_eq!(r.hash, want.receipt.hash, "{when}: hash of {}", r.seq);
        assert_eq!(r.timestamp_ns, want.receipt.timestamp_ns, "{when}");
        let mut ev = r.event;
        ev.timestamp = None;
        assert_eq!(ev, want.event, "{when}: event {}", r.seq);
        n += 1;
    }
    assert_eq!(n, model.events.len(), "{when}: records");
}

fn check_verify(log: &Log, model: &Model, when: &str) {
    let report = log.verify().unwrap();
    assert!(report.ok, "{when}: verify: {:?}", report.failure);
    assert_eq!(report.records, model.events.len() as u64, "{when}");
    assert!(report.warnings.is_empty(), "{when}: {:?}", report.warnings);
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

/// Runs the input; returns how many events the log holds at the end.
pub fn run(data: &[u8]) -> usize {
    let Some((&cfg, rest)) = data.split_first() else {
        return 0;
    };
    run_ops(cfg, &decode_ops(rest))
}

/// Runs `ops` with the options `cfg` selects; returns how many events the log holds at the end.
pub fn run_ops(cfg: u8, ops: &[Op]) -> usize {
    let tmp = scratch();
    let dir = tmp.path().join("log");
    let mut model = Model {
        gen: Generator::standard(u64::from(cfg)),
        n: 0,
        events: Vec::new(),
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
                let n = (n as usize).min(MAX_EVENTS - model.events.len());
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
                }
                (Err(_), None) => {}
                (r, _) => panic!("{when}: checkpoint of {} events: {r:?}", model.events.len()),
            },
            Op::Get(k) => {
                if let Some(want) = model.events.get(k as usize % model.events.len().max(1)) {
                    let got = log.get(want.receipt.seq).unwrap().expect("record present");
                    assert_eq!(got.hash, want.receipt.hash, "{when}");
                    assert_eq!(got.event.event_id, want.event.event_id, "{when}");
                }
                let past = model.events.len() as u64;
                assert!(log.get(past).unwrap().is_none(), "{when}: seq {past}");
            }
            Op::ReadOnlyView => {
                let ro = Log::open_read_only(&dir, HmacKey::from_bytes(KEY).unwrap())
                    .unwrap_or_else(|x| panic!("{when}: {x}"));
                check_all(&ro, &model, &when);
                check_verify(&ro, &model, &when);
            }
        }
    }
    drop(log);
    let log = open(&dir, cfg);
    check_all(&log, &model, "final reopen");
    check_verify(&log, &model, "final reopen");
    model.events.len()
}
