//! Forward-secure sealing (opt-in, `Options::forward_secure`): the chain key evolves every
//! epoch, so that an intruder who steals the writer's key today cannot rewrite yesterday.
//!
//! ```text
//! K_0     = HMAC-SHA256(S,   "auditlog/fss/v1 init"  || log_id || le64(start_ns) || le64(epoch_ns))
//! K_{i+1} = HMAC-SHA256(K_i, "auditlog/fss/v1 epoch" || le64(i))
//! h_n     = HMAC-SHA256(K_e, h_{n-1} || le64(seq_n) || le64(ts_n) || d_n || le64(e))   (record n in epoch e)
//! seal_e  = HMAC-SHA256(K_e, "auditlog/fss/v1 seal"  || log_id || seal bytes 0..64)
//! ```
//!
//! `S` is the auditor's initial key: the writer uses it once, at creation, and keeps only the
//! current `K_e` (in memory and in `fss.key`, 0600, replaced atomically; the previous file's
//! bytes are overwritten before it is unlinked). When epoch `e` ends, the writer (its worker,
//! on a timer, or the append path if the worker is late) makes every record so far durable,
//! appends a seal `(e, next_seq, h_{next_seq-1}, sealed_ns, tag)` to `fss.seals`, derives
//! `K_{e+1}`, persists it and wipes `K_e`. Epochs without records are sealed too, and a writer
//! that reopens after a pause seals every epoch that ended meanwhile before it writes again.
//!
//! The verifier, holding `S`, derives every key and checks that the seals form an unbroken
//! run of epochs 0, 1, 2, … with non-decreasing `next_seq`, each tag made with its epoch's key,
//! each `(next_seq, h)` matching the records; that each record's MAC was made with the key of
//! the epoch its seq falls in (`seals[e-1].next_seq <= seq < seals[e].next_seq`), and that its
//! timestamp is before the end of that epoch. The byte layouts are in docs/FORMAT.md.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use zeroize::Zeroizing;

use crate::chain::{ct_eq, Chain, Hash, HmacKey};
use crate::error::{Error, Result};
use crate::event::now_nanos;
use crate::format::{FORMAT_VERSION, FSS_FORMAT_VERSION, HEADER_FLAG_FORWARD_SECURE};
use crate::log::{Inner, Options};

/// Public file of a forward-secure log: its parameters, then one seal per ended epoch.
pub const SEALS_FILE: &str = "fss.seals";
/// The writer's secret key state: the current epoch and its key (mode 0600).
pub const KEY_FILE: &str = "fss.key";
const KEY_NEW: &str = "fss.key.new";
const KEY_OLD: &str = "fss.key.old";

const PARAMS_MAGIC: &[u8; 8] = b"ALFSSLOG";
const SEAL_MAGIC: &[u8; 8] = b"ALFSSEAL";
const KEY_MAGIC: &[u8; 8] = b"ALFSSKEY";
const FILE_VERSION: u16 = 1;
/// Bytes of the parameter header at the start of `fss.seals`.
pub const PARAMS_LEN: usize = 64;
/// Bytes of one seal.
pub const SEAL_LEN: usize = 100;
/// Bytes of `fss.key`.
pub const KEY_STATE_LEN: usize = 76;
/// Shortest accepted epoch.
pub const MIN_EPOCH: Duration = Duration::from_millis(10);

const INIT_DOMAIN: &[u8] = b"auditlog/fss/v1 init";
const EPOCH_DOMAIN: &[u8] = b"auditlog/fss/v1 epoch";
const SEAL_DOMAIN: &[u8] = b"auditlog/fss/v1 seal";

pub(crate) fn check_epoch(e: Duration) -> Result<()> {
    if e < MIN_EPOCH || e.as_nanos() > i64::MAX as u128 / 4 {
        return Err(Error::Config(format!(
            "forward-secure epoch {e:?} is out of range (at least {MIN_EPOCH:?})"
        )));
    }
    Ok(())
}

/// Parses an epoch length such as `500ms`, `30s`, `15m`, `1h` or `1d` (a bare number is
/// seconds).
pub fn parse_epoch(s: &str) -> Result<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        Error::Config(format!(
            "forward-secure epoch {s:?}: expected a number with a unit (ms, s, m, h, d)"
        ))
    })?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86_400)),
        u => {
            return Err(Error::Config(format!(
                "forward-secure epoch {s:?}: unknown unit {u:?} (ms, s, m, h, d)"
            )))
        }
    };
    check_epoch(d)?;
    Ok(d)
}

/// The public parameters of a forward-secure log (the header of `fss.seals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub log_id: [u8; 16],
    /// `HMAC-SHA256(K_0, "auditlog/fss/v1 keycheck")[..12]`: tells a wrong initial key apart
    /// from tampering.
    pub key_check: [u8; 12],
    /// Epoch 0 starts here, UTC nanoseconds.
    pub start_ns: i64,
    /// Length of every epoch, nanoseconds.
    pub epoch_ns: u64,
}

impl Params {
    pub fn encode(&self) -> [u8; PARAMS_LEN] {
        let mut b = [0u8; PARAMS_LEN];
        b[0..8].copy_from_slice(PARAMS_MAGIC);
        b[8..10].copy_from_slice(&FILE_VERSION.to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id);
        b[32..40].copy_from_slice(&self.start_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.epoch_ns.to_le_bytes());
        b[48..60].copy_from_slice(&self.key_check);
        let crc = crc32fast::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> std::result::Result<Params, String> {
        if b.len() < PARAMS_LEN || &b[0..8] != PARAMS_MAGIC {
            return Err("bad magic".into());
        }
        if le_u32(b, 60) != crc32fast::hash(&b[..60]) {
            return Err("parameter header checksum mismatch".into());
        }
        let v = u16::from_le_bytes([b[8], b[9]]);
        if v != FILE_VERSION {
            return Err(format!("unsupported version {v}"));
        }
        if b[10..16].iter().any(|&x| x != 0) {
            return Err("reserved bytes are not zero".into());
        }
        let p = Params {
            log_id: b[16..32].try_into().expect("16 bytes"),
            start_ns: le_u64(b, 32) as i64,
            epoch_ns: le_u64(b, 40),
            key_check: b[48..60].try_into().expect("12 bytes"),
        };
        if p.epoch_ns < MIN_EPOCH.as_nanos() as u64 || p.epoch_ns > i64::MAX as u64 / 4 {
            return Err(format!("epoch length {} ns is out of range", p.epoch_ns));
        }
        Ok(p)
    }

    /// Start of epoch `e`, UTC nanoseconds (saturating).
    pub fn epoch_start(&self, e: u64) -> i64 {
        let off = (e as i128) * (self.epoch_ns as i128);
        (self.start_ns as i128 + off).min(i64::MAX as i128) as i64
    }

    /// End (exclusive) of epoch `e`.
    pub fn epoch_end(&self, e: u64) -> i64 {
        self.epoch_start(e.saturating_add(1))
    }

    /// The epoch that contains `t` (0 before the start).
    pub fn epoch_at(&self, t: i64) -> u64 {
        if t <= self.start_ns {
            0
        } else {
            ((t as i128 - self.start_ns as i128) / self.epoch_ns as i128) as u64
        }
    }
}

/// One epoch's seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seal {
    pub epoch: u64,
    /// Records of epochs up to this one have seqs below `next_seq`.
    pub next_seq: u64,
    /// Chain value of record `next_seq - 1` (the log's genesis value when `next_seq` is 0).
    pub last_hash: Hash,
    /// When the seal was written, UTC nanoseconds (never before the end of its epoch).
    pub sealed_ns: i64,
    /// `HMAC-SHA256(K_epoch, "auditlog/fss/v1 seal" || log_id || bytes 0..64)`.
    pub tag: Hash,
}

impl Seal {
    fn body(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(SEAL_MAGIC);
        b[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        b[16..24].copy_from_slice(&self.next_seq.to_le_bytes());
        b[24..56].copy_from_slice(&self.last_hash);
        b[56..64].copy_from_slice(&self.sealed_ns.to_le_bytes());
        b
    }

    /// The tag this seal must carry under the epoch key `key`.
    pub fn expected_tag(&self, key: &Chain, log_id: &[u8; 16]) -> Hash {
        key.sign(SEAL_DOMAIN, &[log_id, &self.body()])
    }

    pub fn encode(&self) -> [u8; SEAL_LEN] {
        let mut b = [0u8; SEAL_LEN];
        b[..64].copy_from_slice(&self.body());
        b[64..96].copy_from_slice(&self.tag);
        let crc = crc32fast::hash(&b[..96]);
        b[96..100].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Seal> {
        if b.len() < SEAL_LEN
            || &b[0..8] != SEAL_MAGIC
            || le_u32(b, 96) != crc32fast::hash(&b[..96])
        {
            return None;
        }
        Some(Seal {
            epoch: le_u64(b, 8),
            next_seq: le_u64(b, 16),
            last_hash: b[24..56].try_into().expect("32 bytes"),
            sealed_ns: le_u64(b, 56) as i64,
            tag: b[64..96].try_into().expect("32 bytes"),
        })
    }
}

fn ct_eq_12(a: &[u8; 12], b: &[u8; 12]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `K_0` from the auditor's initial key.
pub fn initial_epoch_key(initial: &HmacKey, p: &Params) -> Zeroizing<[u8; 32]> {
    let c = Chain::new(initial);
    Zeroizing::new(c.sign(
        INIT_DOMAIN,
        &[
            &p.log_id,
            &p.start_ns.to_le_bytes(),
            &p.epoch_ns.to_le_bytes(),
        ],
    ))
}

/// The key-check bytes of the parameter header, from `K_0`.
pub fn key_check(k0: &[u8; 32]) -> [u8; 12] {
    let full = Chain::from_raw(k0).sign(b"auditlog/fss/v1 keycheck", &[]);
    full[..12].try_into().expect("12 bytes")
}

/// `K_{epoch+1}` from `K_epoch`.
pub fn next_epoch_key(key: &[u8; 32], epoch: u64) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(Chain::from_raw(key).sign(EPOCH_DOMAIN, &[&epoch.to_le_bytes()]))
}

/// `fss.seals` as read: parameters, the seals that decode, and what follows them.
#[derive(Debug, Clone)]
pub struct SealsFile {
    pub params: Params,
    pub seals: Vec<Seal>,
    /// Byte offset where the decodable seals end.
    pub valid_len: u64,
    /// Bytes after the last decodable seal that do not form one (a torn append).
    pub torn_bytes: u64,
}

/// Reads `fss.seals`; `Ok(None)` when the log is not forward-secure.
pub fn read_seals(dir: &Path) -> Result<Option<SealsFile>> {
    let path = dir.join(SEALS_FILE);
    let bytes = match crate::nofollow::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", &path, e)),
    };
    let params = Params::decode(&bytes).map_err(|why| Error::Corrupt {
        file: path.clone(),
        offset: 0,
        detail: format!("forward-secure parameters: {why}"),
    })?;
    let mut seals = Vec::new();
    let mut at = PARAMS_LEN;
    while let Some(s) = bytes.get(at..).and_then(Seal::decode) {
        seals.push(s);
        at += SEAL_LEN;
    }
    Ok(Some(SealsFile {
        params,
        seals,
        valid_len: at as u64,
        torn_bytes: (bytes.len() - at) as u64,
    }))
}

/// The key state in `fss.key`.
struct KeyState {
    log_id: [u8; 16],
    epoch: u64,
    key: Zeroizing<[u8; 32]>,
}

fn encode_key_state(
    log_id: &[u8; 16],
    epoch: u64,
    key: &[u8; 32],
) -> Zeroizing<[u8; KEY_STATE_LEN]> {
    let mut b = Zeroizing::new([0u8; KEY_STATE_LEN]);
    b[0..8].copy_from_slice(KEY_MAGIC);
    b[8..10].copy_from_slice(&FILE_VERSION.to_le_bytes());
    b[16..32].copy_from_slice(log_id);
    b[32..40].copy_from_slice(&epoch.to_le_bytes());
    b[40..72].copy_from_slice(key);
    let crc = crc32fast::hash(&b[..72]);
    b[72..76].copy_from_slice(&crc.to_le_bytes());
    b
}

fn read_key_state(path: &Path) -> Result<KeyState> {
    let bytes = Zeroizing::new(crate::nofollow::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Key(format!(
                "{} is missing: the writer's forward-secure key state is gone, so this log cannot be continued (its records stay verifiable with the initial key)",
                path.display()
            ))
        } else {
            Error::io("reading", path, e)
        }
    })?);
    let bad = |why: &str| Error::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        detail: format!("forward-secure key state: {why}"),
    };
    if bytes.len() != KEY_STATE_LEN || &bytes[0..8] != KEY_MAGIC {
        return Err(bad("bad magic or length"));
    }
    if le_u32(&bytes, 72) != crc32fast::hash(&bytes[..72]) {
        return Err(bad("checksum mismatch"));
    }
    if u16::from_le_bytes([bytes[8], bytes[9]]) != FILE_VERSION || bytes[10..16] != [0; 6] {
        return Err(bad("unsupported version or reserved bytes"));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes[40..72]);
    Ok(KeyState {
        log_id: bytes[16..32].try_into().expect("16 bytes"),
        epoch: le_u64(&bytes, 32),
        key,
    })
}

/// Overwrites a file's bytes with zeros, syncs and unlinks it (best effort beyond that: a
/// copy-on-write file system or an SSD may keep the old blocks).
fn wipe(path: &Path) -> Result<()> {
    let f = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("opening for wiping", path, e)),
    };
    let len = f
        .metadata()
        .map_err(|e| Error::io("wiping", path, e))?
        .len();
    crate::fsio::write_at("fss.wipe", &f, &vec![0u8; len as usize], 0)
        .and_then(|_| crate::fsio::sync_data("fss.wipe", &f))
        .and_then(|_| crate::fsio::remove("fss.wipe", path))
        .map_err(|e| Error::io("wiping", path, e))
}

/// Replaces `fss.key` atomically with `(epoch, key)`, then wipes the previous state.
fn persist_key(dir: &Path, log_id: &[u8; 16], epoch: u64, key: &[u8; 32]) -> Result<()> {
    let new = dir.join(KEY_NEW);
    let cur = dir.join(KEY_FILE);
    let old = dir.join(KEY_OLD);
    wipe(&new)?;
    wipe(&old)?;
    let bytes = encode_key_state(log_id, epoch, key);
    (|| -> std::io::Result<()> {
        crate::fsio::point("fss.key.write")?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&new)?;
        f.write_all(&bytes[..])?;
        f.sync_all()?;
        // The previous state keeps a name until the new one is in place, so that a crash
        // leaves one of the two; the next open wipes `fss.key.old`.
        match std::fs::hard_link(&cur, &old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        crate::fsio::rename("fss.key.install", &new, &cur)
    })()
    .map_err(|e| Error::io("writing forward-secure key state", &cur, e))?;
    crate::segment::sync_dir(dir)?;
    wipe(&old)?;
    crate::segment::sync_dir(dir)
}

/// Segment header version and flags for a log that is (or is not) forward-secure.
pub(crate) fn header_fields(forward_secure: bool) -> (u16, u16) {
    if forward_secure {
        (FSS_FORMAT_VERSION, HEADER_FLAG_FORWARD_SECURE)
    } else {
        (FORMAT_VERSION, 0)
    }
}

/// `header` with the version and flag of a forward-secure log when `inner` is one.
pub(crate) fn mark_header(
    inner: &Inner,
    mut header: crate::format::SegmentHeader,
) -> crate::format::SegmentHeader {
    (header.version, header.flags) = header_fields(inner.fss.get().is_some());
    header
}

/// `new` marked forward-secure when `old` (the segment it rewrites) is.
pub(crate) fn keep_marking(
    old: &crate::format::SegmentHeader,
    mut new: crate::format::SegmentHeader,
) -> crate::format::SegmentHeader {
    if old.flags & HEADER_FLAG_FORWARD_SECURE != 0 {
        (new.version, new.flags) = header_fields(true);
    }
    new
}

/// Whether a segment that `open` creates at `next_seq` belongs to a forward-secure log: the
/// log is one already, or is being created as one (a log becomes forward-secure only while
/// it has no records; `attach` refuses the rest).
pub(crate) fn wanted(dir: &Path, opts: &Options, next_seq: u64) -> bool {
    (opts.forward_secure.is_some() && next_seq == 0) || dir.join(SEALS_FILE).exists()
}

/// Takes the initial key out of a writer's options, so that the writer never keeps it.
pub(crate) fn split_options(mut opts: Options) -> (Options, Option<HmacKey>) {
    let k = opts.fss_initial_key.take();
    (opts, k)
}

/// The writer's forward-secure state (in `Inner::fss`).
pub(crate) struct FssWriter {
    params: Params,
    /// End of the current epoch: read by the worker's tick without taking any lock.
    epoch_end: AtomicI64,
    state: Mutex<EpochState>,
}

struct EpochState {
    epoch: u64,
    key: Zeroizing<[u8; 32]>,
    /// Keyed with `key`; overwritten in place by the next epoch's.
    chain: Box<Chain>,
    seals: File,
    seals_len: u64,
}

impl std::fmt::Debug for FssWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FssWriter(<keyed>)")
    }
}

/// Sets up forward-secure sealing for a writer that just opened `inner` (before its worker
/// starts): creates the state of a new forward-secure log, or loads it and seals every epoch
/// that ended while no writer ran. A plain log is left alone.
pub(crate) fn attach(inner: &Inner, initial: Option<HmacKey>) -> Result<()> {
    let dir = &inner.dir;
    let seals_path = dir.join(SEALS_FILE);
    let mut g = inner.writer.lock();
    let w = g.as_mut().ok_or(Error::ReadOnly)?;
    let active_fss = w.active.seg.header.flags & HEADER_FLAG_FORWARD_SECURE != 0;
    let existing = read_seals(dir)?;
    let (params, seals_len, key_epoch, key) = match existing {
        None => {
            let Some(epoch) = inner.opts.forward_secure else {
                if active_fss {
                    return Err(Error::Corrupt {
                        file: seals_path,
                        offset: 0,
                        detail: "the segments are forward-secure but fss.seals is missing: if the log is empty, its creation as a forward-secure log did not finish (open it again with the forward-secure options and the initial key); otherwise run `auditlog verify` with the initial key".into(),
                    });
                }
                drop(initial);
                return Ok(());
            };
            if w.next_seq != 0 || !active_fss {
                return Err(Error::Config(
                    "this log was created without forward-secure sealing; a log is forward-secure from its creation on (start a new data directory)".into(),
                ));
            }
            let initial = initial.ok_or_else(|| {
                Error::Key("creating a forward-secure log needs the auditor's initial key (Options::fss_initial_key, --fss-key)".into())
            })?;
            let mut params = Params {
                log_id: inner.log_id,
                start_ns: now_nanos(),
                epoch_ns: epoch.as_nanos() as u64,
                key_check: [0; 12],
            };
            let k0 = initial_epoch_key(&initial, &params);
            params.key_check = key_check(&k0);
            drop(initial);
            // The key state first: a crash before the parameters leaves a log that is not
            // forward-secure yet, and the next open starts over.
            persist_key(dir, &inner.log_id, 0, &k0)?;
            crate::segment::write_atomic("fss.create", dir, SEALS_FILE, &params.encode())?;
            (params, PARAMS_LEN as u64, 0, k0)
        }
        Some(sf) => {
            drop(initial);
            let p = sf.params;
            if p.log_id != inner.log_id {
                return Err(Error::Corrupt {
                    file: seals_path,
                    offset: 16,
                    detail: "fss.seals belongs to another log".into(),
                });
            }
            if let Some(e) = inner.opts.forward_secure {
                if e.as_nanos() as u64 != p.epoch_ns {
                    return Err(Error::Config(format!(
                        "this forward-secure log has {} ns epochs, fixed at creation; {e:?} was asked",
                        p.epoch_ns
                    )));
                }
            }
            for leftover in [KEY_NEW, KEY_OLD] {
                wipe(&dir.join(leftover))?;
            }
            let ks = read_key_state(&dir.join(KEY_FILE))?;
            if ks.log_id != inner.log_id {
                return Err(Error::Key("fss.key belongs to another log".into()));
            }
            // A torn seal at the end (a crash while appending) is cut; the epoch is sealed
            // again below.
            if sf.torn_bytes > 0 {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&seals_path)
                    .map_err(|e| Error::io("opening", &seals_path, e))?;
                crate::fsio::set_len("fss.cut", &f, sf.valid_len)
                    .and_then(|_| crate::fsio::sync_data("fss.cut", &f))
                    .map_err(|e| Error::io("cutting torn seal of", &seals_path, e))?;
            }
            let sealed = sf.seals.len() as u64;
            if let Some(last) = sf.seals.last() {
                if last.epoch + 1 != sealed {
                    return Err(Error::Corrupt {
                        file: seals_path,
                        offset: sf.valid_len - SEAL_LEN as u64,
                        detail: format!("the last seal is for epoch {}, but it is seal number {sealed}; run `auditlog verify` with the initial key", last.epoch),
                    });
                }
                if last.next_seq > w.next_seq {
                    return Err(Error::Corrupt {
                        file: seals_path,
                        offset: sf.valid_len - SEAL_LEN as u64,
                        detail: format!("epoch {} was sealed after seq {}, but the log ends before it (next seq {}): sealed records are missing; run `auditlog verify` with the initial key", last.epoch, last.next_seq.saturating_sub(1), w.next_seq),
                    });
                }
            }
            // The key state is for the first unsealed epoch; it may lag behind when a crash
            // came between writing seals and the next key (the writer may always derive
            // forward), never run ahead.
            let (mut epoch, mut key) = (ks.epoch, ks.key);
            if epoch > sealed {
                return Err(Error::Corrupt {
                    file: seals_path,
                    offset: sf.valid_len,
                    detail: format!("fss.key is for epoch {epoch}, but only {sealed} epochs are sealed: seals were removed; run `auditlog verify` with the initial key"),
                });
            }
            while epoch < sealed {
                key = next_epoch_key(&key, epoch);
                epoch += 1;
            }
            if epoch != ks.epoch {
                persist_key(dir, &inner.log_id, epoch, &key)?;
            }
            (p, sf.valid_len, epoch, key)
        }
    };
    let seals = OpenOptions::new()
        .write(true)
        .open(&seals_path)
        .map_err(|e| Error::io("opening", &seals_path, e))?;
    let f = FssWriter {
        params,
        epoch_end: AtomicI64::new(params.epoch_end(key_epoch)),
        state: Mutex::new(EpochState {
            epoch: key_epoch,
            chain: Box::new(Chain::from_raw(&key)),
            key,
            seals,
            seals_len,
        }),
    };
    {
        let mut st = f.state.lock();
        advance(inner, &f, &mut st, w, now_nanos())?;
    }
    inner
        .fss
        .set(f)
        .map_err(|_| Error::Config("forward-secure state attached twice".into()))
}

/// The MAC of record `seq`: the plain chain step, or in a forward-secure log the step with
/// the current epoch's key (sealing ended epochs first). Called under the writer lock.
pub(crate) fn record_mac(
    inner: &Inner,
    w: &mut crate::log::WriterState,
    seq: u64,
    ts: i64,
    digest: &Hash,
) -> Result<Hash> {
    let Some(f) = inner.fss.get() else {
        return Ok(inner.chain.step(&w.prev, seq, ts, digest));
    };
    let mut st = f.state.lock();
    let now = now_nanos();
    if now >= f.params.epoch_end(st.epoch) {
        advance(inner, f, &mut st, w, now)?;
    }
    let end = f.params.epoch_end(st.epoch);
    if ts >= end {
        return Err(Error::InvalidEvent(format!(
            "timestamp {ts} ns lies after the end of the current forward-secure epoch {} ({end} ns): a forward-secure log binds every record to the epoch it is written in, so it does not take events from the future",
            st.epoch
        )));
    }
    Ok(st.chain.step_epoch(&w.prev, seq, ts, digest, st.epoch))
}

/// The worker's timer: seals the current epoch once it has ended.
pub(crate) fn tick(inner: &Inner) {
    let Some(f) = inner.fss.get() else { return };
    let now = now_nanos();
    if now < f.epoch_end.load(Ordering::Acquire) {
        return;
    }
    let mut g = inner.writer.lock();
    let Some(w) = g.as_mut() else { return };
    if inner.poison.check().is_err() {
        return;
    }
    let mut st = f.state.lock();
    if let Err(e) = advance(inner, f, &mut st, w, now) {
        inner.poison.set(&e);
    }
}

/// Seals every epoch from the current one up to (not including) the one containing `now`,
/// then moves to that epoch's key. Runs under the writer lock; an error poisons the log.
fn advance(
    inner: &Inner,
    f: &FssWriter,
    st: &mut EpochState,
    w: &mut crate::log::WriterState,
    now: i64,
) -> Result<()> {
    let target = f.params.epoch_at(now);
    if target <= st.epoch {
        return Ok(());
    }
    let res = (|| -> Result<()> {
        // A seal covers every record before it, so they are made visible to readers (a
        // reader that sees the seal must see them) and durable first.
        crate::log::publish(inner, w)?;
        if inner.sync.durable.load(Ordering::Acquire) < w.next_seq {
            for (file, path) in &w.unsynced {
                crate::fsio::sync_data("fss.sync", file)
                    .map_err(|e| Error::io("syncing", path, e))?;
            }
            crate::fsio::sync_data_mapped("fss.sync", &w.active.file, &w.active.map)
                .map_err(|e| Error::io("syncing", &w.active.path, e))?;
            inner.sync.durable.fetch_max(w.next_seq, Ordering::AcqRel);
        }
        let n = (target - st.epoch) as usize;
        let mut bytes = Vec::with_capacity(n * SEAL_LEN);
        let mut key = st.key.clone();
        let mut chain = Chain::from_raw(&key);
        for e in st.epoch..target {
            let mut seal = Seal {
                epoch: e,
                next_seq: w.next_seq,
                last_hash: w.prev,
                sealed_ns: now.max(f.params.epoch_end(e)),
                tag: [0; 32],
            };
            seal.tag = seal.expected_tag(&chain, &f.params.log_id);
            bytes.extend_from_slice(&seal.encode());
            key = next_epoch_key(&key, e);
            chain = Chain::from_raw(&key);
        }
        let path = inner.dir.join(SEALS_FILE);
        crate::fsio::write_at("fss.seal", &st.seals, &bytes, st.seals_len)
            .and_then(|_| crate::fsio::sync_data("fss.seal", &st.seals))
            .map_err(|e| Error::io("appending epoch seals to", &path, e))?;
        st.seals_len += bytes.len() as u64;
        persist_key(&inner.dir, &f.params.log_id, target, &key)?;
        // The old key goes: its bytes are zeroized as `st.key` is replaced, and the prepared
        // MAC state is overwritten in place.
        st.key = key;
        *st.chain = chain;
        st.epoch = target;
        f.epoch_end
            .store(f.params.epoch_end(target), Ordering::Release);
        Ok(())
    })();
    if let Err(e) = &res {
        inner.poison.set(e);
    }
    res
}

/// The current epoch of a forward-secure writer (None for a plain log).
pub(crate) fn current_epoch(inner: &Inner) -> Option<u64> {
    inner.fss.get().map(|f| f.state.lock().epoch)
}

// ---------------------------------------------------------------------------------------
// Verification (the auditor's side, holding the initial key).

/// A problem the verifier found, as `(kind, seq, detail)`.
pub(crate) type Problem = (crate::verify::FailureKind, Option<u64>, String);

/// Everything `verify` needs to check a forward-secure log.
pub(crate) struct FssVerifier {
    pub(crate) params: Params,
    pub(crate) seals: Vec<Seal>,
    /// `next_seq` of every seal in `seals`, by epoch.
    bounds: Vec<u64>,
    /// `K_0 ..= K_max`.
    keys: Zeroizing<Vec<[u8; 32]>>,
    /// Epochs up to this one are tried when something fails (the current epoch + 1).
    later_limit: u64,
    pub(crate) problem: Option<Problem>,
    pub(crate) warnings: Vec<String>,
}

/// How `verify` treats a log's chain.
pub(crate) enum Mode {
    Plain,
    ForwardSecure(Box<FssVerifier>),
    /// The log cannot be checked as asked (why, for the report).
    Refused(Problem),
}

/// Decides how to verify the log in `inner`'s directory, deriving every epoch key from the
/// initial key in its options when the log is forward-secure.
pub(crate) fn verifier_for(inner: &Inner) -> Result<Mode> {
    use crate::verify::FailureKind as K;
    let initial = inner.opts.fss_initial_key.as_ref();
    let sf = match read_seals(&inner.dir) {
        Ok(s) => s,
        Err(Error::Corrupt { detail, .. }) => {
            return Ok(Mode::Refused((
                K::TamperedSeal,
                None,
                format!("{SEALS_FILE}: {detail}"),
            )))
        }
        Err(e) => return Err(e),
    };
    let segs_fss = inner
        .segments
        .read()
        .iter()
        .any(|s| s.header.flags & HEADER_FLAG_FORWARD_SECURE != 0);
    let (sf, initial) = match (sf, initial) {
        (None, None) if !segs_fss => return Ok(Mode::Plain),
        (None, _) => {
            return Ok(Mode::Refused((
                K::MissingEpochSeal,
                None,
                if segs_fss {
                    format!("the segments are forward-secure but {SEALS_FILE} is missing: every epoch seal was removed")
                } else {
                    format!("an initial forward-secure key was given but this log has no {SEALS_FILE}: it is not forward-secure (created without it, or its forward-secure state was removed and the log rewritten with the writer's key)")
                },
            )))
        }
        (Some(_), None) => {
            return Ok(Mode::Refused((
                K::ForwardSecureKeyRequired,
                None,
                "this log is forward-secure: its records are MACed with per-epoch keys that only the auditor's initial key derives; verify with it (`--fss-key`, Options::fss_initial_key)".into(),
            )))
        }
        (Some(sf), Some(k)) => (sf, k),
    };
    build_verifier(&sf, initial, &inner.log_id).map(|v| Mode::ForwardSecure(Box::new(v)))
}

/// Derives the epoch keys from `initial` and checks the seals of `sf` (a failed check is
/// left in `problem`; the seals before it are kept).
fn build_verifier(sf: &SealsFile, initial: &HmacKey, log_id: &[u8; 16]) -> Result<FssVerifier> {
    use crate::verify::FailureKind as K;
    let p = sf.params;
    let mut v = FssVerifier {
        params: p,
        seals: Vec::new(),
        bounds: Vec::new(),
        keys: Zeroizing::new(Vec::new()),
        later_limit: 0,
        problem: None,
        warnings: Vec::new(),
    };
    if &p.log_id != log_id {
        v.problem = Some((
            K::ForeignSegment,
            None,
            format!("{SEALS_FILE} belongs to another log"),
        ));
        return Ok(v);
    }
    // Keys for every sealed epoch and the first unsealed one. Later keys (to recognise a
    // record or seal made with one) are derived only when something fails to verify.
    let now = now_nanos();
    v.later_limit = p.epoch_at(now).saturating_add(1);
    let max_epoch = sf.seals.len() as u64;
    let mut key = initial_epoch_key(initial, &p);
    if !ct_eq_12(&key_check(&key), &p.key_check) {
        return Err(Error::Key(format!(
            "wrong forward-secure initial key for log {}: it does not match the key check in {SEALS_FILE} (or that file's parameters were edited)",
            crate::chain::hex(&p.log_id)
        )));
    }
    v.keys.reserve(max_epoch as usize + 1);
    for e in 0..=max_epoch {
        v.keys.push(*key);
        key = next_epoch_key(&key, e);
    }
    // The seals: an unbroken run of epochs 0, 1, 2, …, each tagged with its epoch's key.
    let mut prev_next = 0u64;
    for (i, s) in sf.seals.iter().enumerate() {
        let i = i as u64;
        if s.epoch != i {
            v.problem = Some((
                K::MissingEpochSeal,
                Some(prev_next),
                if s.epoch > i {
                    format!("epochs {i}..={} have no seal (the next seal is for epoch {}): seals were removed", s.epoch - 1, s.epoch)
                } else {
                    format!(
                        "seal number {i} is for epoch {}: seals were duplicated or reordered",
                        s.epoch
                    )
                },
            ));
            break;
        }
        let c = Chain::from_raw(&v.keys[i as usize]);
        if !ct_eq(&s.expected_tag(&c, &p.log_id), &s.tag) {
            let later = v.find_later(i, |c, _| ct_eq(&s.expected_tag(c, &p.log_id), &s.tag));
            v.problem = Some((
                K::TamperedSeal,
                Some(s.next_seq),
                match later {
                    Some(j) => format!("the seal of epoch {i} was made with the key of the later epoch {j}: it was forged after that epoch's key was stolen"),
                    None => format!("the seal of epoch {i} does not verify with epoch {i}'s key (edited, or the wrong initial key)"),
                },
            ));
            break;
        }
        if s.next_seq < prev_next {
            v.problem = Some((
                K::TamperedSeal,
                Some(s.next_seq),
                format!("the seal of epoch {i} ends at seq {} before the previous epoch's end {prev_next}", s.next_seq),
            ));
            break;
        }
        if s.sealed_ns < p.epoch_end(i) {
            v.problem = Some((
                K::TamperedSeal,
                Some(s.next_seq),
                format!(
                    "epoch {i} was sealed at {} ns, before it ended ({} ns)",
                    s.sealed_ns,
                    p.epoch_end(i)
                ),
            ));
            break;
        }
        prev_next = s.next_seq;
        v.bounds.push(s.next_seq);
        v.seals.push(*s);
    }
    if sf.torn_bytes > 0 {
        v.warnings.push(format!(
            "{SEALS_FILE} ends with {} bytes that are not a whole seal (a crash while sealing); a writer's next open cuts them and seals the epoch again",
            sf.torn_bytes
        ));
    }
    let first_unsealed = v.seals.len() as u64;
    let grace = (p.epoch_ns as i64).max(2_000_000_000);
    if v.problem.is_none() && now >= p.epoch_end(first_unsealed).saturating_add(grace) {
        v.warnings.push(format!(
            "forward-secure epochs {first_unsealed}..{} have ended without a seal: no writer has run since epoch {first_unsealed} (its next open seals them), or the log's tail was removed",
            p.epoch_at(now)
        ));
    }
    Ok(v)
}

/// Per-segment cache of the epoch key in use.
pub(crate) struct EpochCursor<'a> {
    v: &'a FssVerifier,
    epoch: u64,
    chain: Option<Chain>,
}

impl FssVerifier {
    /// The epoch that record `seq` belongs to.
    pub(crate) fn epoch_of(&self, seq: u64) -> u64 {
        self.bounds.partition_point(|&n| n <= seq) as u64
    }

    pub(crate) fn cursor(&self) -> EpochCursor<'_> {
        EpochCursor {
            v: self,
            epoch: u64::MAX,
            chain: None,
        }
    }

    /// Seqs whose chain values the seals name.
    pub(crate) fn named_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.seals.iter().filter_map(|s| s.next_seq.checked_sub(1))
    }

    fn key_chain(&self, e: u64) -> Option<Chain> {
        self.keys.get(e as usize).map(Chain::from_raw)
    }

    /// The first epoch `j > e` (up to the current epoch + 1, at most ten million epochs on)
    /// whose key makes `matches(K_j, j)` true: who made a MAC that its own epoch's key did not.
    fn find_later(&self, e: u64, matches: impl Fn(&Chain, u64) -> bool) -> Option<u64> {
        let limit = self.later_limit.min(e.saturating_add(10_000_000));
        let mut key = Zeroizing::new(*self.keys.get(e as usize)?);
        for j in e + 1..=limit {
            key = match self.keys.get(j as usize) {
                Some(k) => Zeroizing::new(*k),
                None => next_epoch_key(&key, j - 1),
            };
            if matches(&Chain::from_raw(&key), j) {
                return Some(j);
            }
        }
        None
    }
}

impl EpochCursor<'_> {
    /// Checks record `seq`'s MAC against the key of its epoch, and its time against the
    /// epoch's end; on failure, says which attack the record looks like.
    pub(crate) fn check(
        &mut self,
        plain: &Chain,
        prev: &Hash,
        seq: u64,
        ts: i64,
        digest: &Hash,
        mac: &Hash,
    ) -> std::result::Result<(), Problem> {
        use crate::verify::FailureKind as K;
        let v = self.v;
        let e = v.epoch_of(seq);
        if self.epoch != e || self.chain.is_none() {
            self.chain = v.key_chain(e);
            self.epoch = e;
        }
        let Some(chain) = &self.chain else {
            return Err((
                K::TamperedRecord,
                Some(seq),
                format!("record {seq} falls in epoch {e}, beyond every sealed epoch"),
            ));
        };
        if ct_eq(&chain.step_epoch(prev, seq, ts, digest, e), mac) {
            let end = v.params.epoch_end(e);
            if ts >= end {
                return Err((
                    K::RecordOutsideEpoch,
                    Some(seq),
                    format!(
                        "record {seq} is dated {ts} ns, after the end of its epoch {e} ({end} ns)"
                    ),
                ));
            }
            return Ok(());
        }
        let sealed = v.bounds.len() as u64;
        let later = v.find_later(e, |c, j| {
            ct_eq(&c.step_epoch(prev, seq, ts, digest, j), mac)
        });
        Err(match later {
            Some(j) if e == sealed => (
                K::MissingEpochSeal,
                Some(seq),
                format!("record {seq} was MACed with the key of epoch {j}, but epochs {e}..={} have no seal: the log was cut back and resumed with a later key", j - 1),
            ),
            Some(j) => (
                K::TamperedRecord,
                Some(seq),
                format!("record {seq} lies in sealed epoch {e} but was MACed with the key of the later epoch {j}: an old record was rewritten with a stolen later key"),
            ),
            None if ct_eq(&plain.step(prev, seq, ts, digest), mac) => (
                K::TamperedRecord,
                Some(seq),
                format!("record {seq} carries a plain (not forward-secure) MAC made with the writer's log key, not epoch {e}'s key"),
            ),
            None => (
                K::TamperedRecord,
                Some(seq),
                format!("MAC does not match the record's contents and its predecessor under epoch {e}'s key"),
            ),
        })
    }
}

/// Checks the seals against the records: each seal's `next_seq` within the log and its chain
/// value equal to that of record `next_seq - 1` (or the genesis value). `found` holds the
/// chain values of the records that the seals name; `first_kept` is the first seq still in
/// the log (after retention), `last_seq` the last; `snapshot_ns` when the records were read.
pub(crate) fn check_seal_bindings(
    v: &FssVerifier,
    found: &std::collections::HashMap<u64, Hash>,
    genesis: &Hash,
    first_kept: Option<u64>,
    last_seq: Option<u64>,
    snapshot_ns: i64,
) -> Option<Problem> {
    use crate::verify::FailureKind as K;
    let next = last_seq.map_or(0, |l| l + 1);
    for s in &v.seals {
        // Sealed after the records were read (a read-only open's snapshot is taken at open):
        // its records may simply not be in the snapshot.
        if s.next_seq > next && s.sealed_ns >= snapshot_ns {
            continue;
        }
        if s.next_seq > next {
            return Some((
                K::Truncated,
                Some(next),
                format!(
                    "epoch {} was sealed after seq {}, but the log ends {}: sealed records were removed",
                    s.epoch,
                    s.next_seq - 1,
                    last_seq.map_or("before any record".into(), |l| format!("at seq {l}"))
                ),
            ));
        }
        let ok = match s.next_seq.checked_sub(1) {
            None => ct_eq(&s.last_hash, genesis),
            // Removed by retention: nothing left to compare with.
            Some(l) if first_kept.is_none_or(|f| l < f) && !found.contains_key(&l) => true,
            Some(l) => found.get(&l).is_some_and(|m| ct_eq(m, &s.last_hash)),
        };
        if !ok {
            return Some((
                K::CheckpointMismatch,
                s.next_seq.checked_sub(1),
                format!(
                    "the seal of epoch {} names a chain value that the record before seq {} does not have: records of a sealed epoch were rewritten",
                    s.epoch, s.next_seq
                ),
            ));
        }
    }
    None
}

/// A reader's epoch keys for rechecking query results (`Inner::fss_keys`), with the length
/// of `fss.seals` they were built from.
pub(crate) type ReaderKeys = Option<(std::sync::Arc<FssVerifier>, u64)>;

/// Rechecks one record's MAC for a query result (`verification.verified`). Plain segments use
/// the log key. Forward-secure ones need the epoch keys: a writer has the current epoch's
/// only (older records are reported unverified); a reader opened with the initial key derives
/// them all (rebuilt when `fss.seals` has grown since); any other reader cannot recheck them.
pub(crate) fn entry_mac_ok(
    inner: &Inner,
    seg: &crate::segment::Segment,
    prev: &Hash,
    seq: u64,
    ts: i64,
    digest: &Hash,
    mac: &Hash,
) -> bool {
    if seg.header.flags & HEADER_FLAG_FORWARD_SECURE == 0 {
        return ct_eq(&inner.chain.step(prev, seq, ts, digest), mac);
    }
    if let Some(f) = inner.fss.get() {
        let st = f.state.lock();
        return ct_eq(&st.chain.step_epoch(prev, seq, ts, digest, st.epoch), mac);
    }
    let Some(initial) = inner.opts.fss_initial_key.as_ref() else {
        return false;
    };
    let check = |v: &FssVerifier| {
        let mut c = v.cursor();
        c.check(&inner.chain, prev, seq, ts, digest, mac).is_ok()
    };
    let cached = inner.fss_keys.lock().clone();
    if let Some((v, built_len)) = &cached {
        let ok = check(v);
        // A failure with keys built from an older `fss.seals` may be a record of an epoch
        // sealed since: rebuild once.
        let len = std::fs::metadata(inner.dir.join(SEALS_FILE)).map_or(0, |m| m.len());
        if ok || *built_len == len {
            return ok;
        }
    }
    let Ok(Some(sf)) = read_seals(&inner.dir) else {
        return false;
    };
    let Ok(v) = build_verifier(&sf, initial, &inner.log_id) else {
        return false;
    };
    let v = std::sync::Arc::new(v);
    let ok = check(&v);
    *inner.fss_keys.lock() = Some((v, sf.valid_len + sf.torn_bytes));
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    fn params() -> Params {
        Params {
            log_id: [3; 16],
            start_ns: 1_700_000_000_000_000_000,
            epoch_ns: 900_000_000_000,
            key_check: [9; 12],
        }
    }

    #[test]
    fn key_derivation_matches_the_documented_formula() {
        let s = HmacKey::from_bytes(&[0x5A; 32]).unwrap();
        let p = params();
        let k0 = initial_epoch_key(&s, &p);
        let want = hmac(
            &[0x5A; 32],
            &[
                b"auditlog/fss/v1 init",
                &p.log_id,
                &p.start_ns.to_le_bytes(),
                &p.epoch_ns.to_le_bytes(),
            ],
        );
        assert_eq!(*k0, want);
        let k1 = next_epoch_key(&k0, 0);
        assert_eq!(
            *k1,
            hmac(&want, &[b"auditlog/fss/v1 epoch", &0u64.to_le_bytes()])
        );
        assert_ne!(*k1, *k0);
        assert_eq!(
            key_check(&k0)[..],
            hmac(&want, &[b"auditlog/fss/v1 keycheck"])[..12]
        );
        // The record step binds the epoch: the same inputs under another epoch differ.
        let c = Chain::from_raw(&k1);
        let (prev, d) = ([1u8; 32], [2u8; 32]);
        let want = hmac(
            &k1[..],
            &[
                &prev,
                &5u64.to_le_bytes(),
                &7i64.to_le_bytes(),
                &d,
                &1u64.to_le_bytes(),
            ],
        );
        assert_eq!(c.step_epoch(&prev, 5, 7, &d, 1), want);
        assert_ne!(c.step_epoch(&prev, 5, 7, &d, 2), want);
    }

    #[test]
    fn params_and_seals_roundtrip_and_every_flip_is_caught() {
        let p = params();
        let b = p.encode();
        assert_eq!(Params::decode(&b), Ok(p));
        for i in 0..PARAMS_LEN * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert!(Params::decode(&c).is_err(), "params bit {i}");
        }
        let s = Seal {
            epoch: 4,
            next_seq: 10,
            last_hash: [5; 32],
            sealed_ns: 99,
            tag: [6; 32],
        };
        let b = s.encode();
        assert_eq!(Seal::decode(&b), Some(s));
        for i in 0..SEAL_LEN * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert_eq!(Seal::decode(&c), None, "seal bit {i}");
        }
        assert_eq!(Seal::decode(&b[..SEAL_LEN - 1]), None);
    }

    #[test]
    fn epochs_partition_time() {
        let p = params();
        assert_eq!(p.epoch_at(p.start_ns - 1), 0);
        assert_eq!(p.epoch_at(p.start_ns), 0);
        assert_eq!(p.epoch_at(p.start_ns + p.epoch_ns as i64 - 1), 0);
        assert_eq!(p.epoch_at(p.start_ns + p.epoch_ns as i64), 1);
        assert_eq!(p.epoch_end(0), p.epoch_start(1));
        assert_eq!(p.epoch_start(u64::MAX), i64::MAX);
        assert_eq!(parse_epoch("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_epoch("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_epoch("2").unwrap(), Duration::from_secs(2));
        assert!(parse_epoch("5ms").is_err());
        assert!(parse_epoch("m").is_err());
        assert!(parse_epoch("3 weeks").is_err());
    }

    #[test]
    fn key_state_roundtrip() {
        let t = tempfile::tempdir().unwrap();
        persist_key(t.path(), &[1; 16], 7, &[8; 32]).unwrap();
        persist_key(t.path(), &[1; 16], 8, &[9; 32]).unwrap();
        let ks = read_key_state(&t.path().join(KEY_FILE)).unwrap();
        assert_eq!((ks.log_id, ks.epoch, *ks.key), ([1; 16], 8, [9; 32]));
        assert!(!t.path().join(KEY_OLD).exists() && !t.path().join(KEY_NEW).exists());
        let mut b = std::fs::read(t.path().join(KEY_FILE)).unwrap();
        b[50] ^= 1;
        std::fs::write(t.path().join(KEY_FILE), b).unwrap();
        assert!(read_key_state(&t.path().join(KEY_FILE)).is_err());
    }
}
