//! Forward-secure chain keys (issue 13 part 4): the key evolves every epoch, every epoch is
//! sealed even when empty, records are bound to their epoch, and the verifier holding the
//! initial key enforces epoch continuity. One test per journald sealing attack
//! (CVE-2023-31437, -31438, -31439), each of which must fail to verify here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use auditlog::format::{decode_frame, encode_frame_into, frame_len, SegmentHeader, HEADER_LEN};
use auditlog::fss::{self, Params, Seal, PARAMS_LEN, SEAL_LEN};
use auditlog::{Durability, Event, FailureKind, HmacKey, Log, Options, Query, VerifyReport};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const EPOCH: Duration = Duration::from_millis(150);

fn log_key() -> HmacKey {
    HmacKey::from_bytes(&[0x11; 32]).unwrap()
}

fn initial_key() -> HmacKey {
    HmacKey::from_bytes(&[0x5A; 32]).unwrap()
}

fn writer_opts() -> Options {
    Options::new(log_key())
        .durability(Durability::Buffered)
        // The worker ticks at least this often, so epochs are sealed promptly.
        .checkpoint_interval(Duration::from_millis(10))
        .forward_secure(EPOCH)
        .fss_initial_key(initial_key())
}

fn event(i: u64) -> Event {
    let mut e = Event::new("authentication", "user_login");
    e.event_id = Some(format!("evt_{i:04}"));
    e.actor.user_id = Some(format!("user-{}", i % 3));
    e.details = serde_json::json!({ "i": i }).into();
    e
}

/// Verifies `dir` as the auditor does: read-only, with the initial key.
fn audit(dir: &Path) -> VerifyReport {
    let opts = Options::new(log_key()).fss_initial_key(initial_key());
    Log::open_read_only_with(dir, opts)
        .unwrap()
        .verify()
        .unwrap()
}

fn failure_kind(r: &VerifyReport) -> FailureKind {
    assert!(!r.ok, "verification passed: {r:#?}");
    r.failure.as_ref().unwrap().kind
}

fn params(dir: &Path) -> Params {
    Params::decode(&fs::read(dir.join(fss::SEALS_FILE)).unwrap()).unwrap()
}

fn seals(dir: &Path) -> Vec<Seal> {
    fss::read_seals(dir).unwrap().unwrap().seals
}

/// The epoch key `K_e`, derived as the verifier does.
fn epoch_key(p: &Params, e: u64) -> [u8; 32] {
    let mut k = fss::initial_epoch_key(&initial_key(), p);
    for i in 0..e {
        k = fss::next_epoch_key(&k, i);
    }
    *k
}

/// What an intruder finds in `fss.key`: the current epoch and its key.
fn stolen_key_state(dir: &Path) -> (u64, [u8; 32]) {
    let b = fs::read(dir.join(fss::KEY_FILE)).unwrap();
    (
        u64::from_le_bytes(b[32..40].try_into().unwrap()),
        b[40..72].try_into().unwrap(),
    )
}

fn step_epoch(
    key: &[u8; 32],
    prev: &[u8; 32],
    seq: u64,
    ts: i64,
    d: &[u8; 32],
    e: u64,
) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(prev);
    m.update(&seq.to_le_bytes());
    m.update(&ts.to_le_bytes());
    m.update(d);
    m.update(&e.to_le_bytes());
    m.finalize().into_bytes().into()
}

fn seal_tag(key: &[u8; 32], log_id: &[u8; 16], s: &Seal) -> [u8; 32] {
    let body = &s.encode()[..64];
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(b"auditlog/fss/v1 seal");
    m.update(log_id);
    m.update(body);
    m.finalize().into_bytes().into()
}

/// Waits until the current epoch has moved past `e` and been sealed by the worker.
fn wait_sealed(dir: &Path, e: u64) {
    let t = Instant::now();
    while seals(dir).len() as u64 <= e {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "epoch {e} never sealed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn the_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "one segment expected: {segs:?}");
    segs.pop().unwrap()
}

/// A record frame of a segment file: (offset, seq, ts, payload, mac).
type RawFrame = (usize, u64, i64, Vec<u8>, [u8; 32]);

/// Every record frame of a segment file.
fn frames(bytes: &[u8]) -> Vec<RawFrame> {
    let mut out = Vec::new();
    let mut off = HEADER_LEN;
    while let Ok(f) = decode_frame(&bytes[off..]) {
        out.push((off, f.seq, f.ts, f.payload.to_vec(), f.mac));
        off += f.len;
    }
    out
}

/// A log whose records span several epochs, some of them empty; closed.
fn several_epochs(dir: &Path) {
    let log = Log::open(dir, writer_opts()).unwrap();
    for i in 0..4 {
        log.append(&event(i)).unwrap();
    }
    let e0 = log.forward_secure_epoch().unwrap();
    wait_sealed(dir, e0 + 1); // e0 and the empty e0+1 are sealed
    for i in 4..8 {
        log.append(&event(i)).unwrap();
    }
    let e1 = log.forward_secure_epoch().unwrap();
    wait_sealed(dir, e1);
    for i in 8..10 {
        log.append(&event(i)).unwrap();
    }
    drop(log);
}

#[test]
fn keys_evolve_every_epoch_is_sealed_and_the_auditor_verifies() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    several_epochs(dir);
    let p = params(dir);
    let s = seals(dir);
    assert!(s.len() >= 3, "{s:?}");
    for (i, seal) in s.iter().enumerate() {
        assert_eq!(seal.epoch, i as u64);
        assert!(seal.sealed_ns >= p.epoch_end(i as u64));
    }
    // At least one epoch was sealed without a record in it.
    assert!(
        s.windows(2).any(|w| w[0].next_seq == w[1].next_seq),
        "{s:?}"
    );
    // Records are in version-3 segments flagged forward-secure.
    let seg = fs::read(the_segment(dir)).unwrap();
    let h = SegmentHeader::decode(&seg).unwrap();
    assert_eq!((h.version, h.flags), (3, 1));

    let r = audit(dir);
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.records, 10);

    // The key state holds the current epoch's key only: never K_0, never an older one.
    let (e, k) = stolen_key_state(dir);
    assert!(e >= s.len() as u64);
    assert_eq!(k, epoch_key(&p, e));
    for older in 0..e {
        assert_ne!(k, epoch_key(&p, older));
    }
    let mode = fs::metadata(dir.join(fss::KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!dir.join("fss.key.old").exists() && !dir.join("fss.key.new").exists());

    // Without the initial key, verify refuses rather than pass or cry "tampered".
    let ro = Log::open_read_only(dir, log_key())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(failure_kind(&ro), FailureKind::ForwardSecureKeyRequired);
    // The wrong initial key: nothing verifies.
    let wrong = Options::new(log_key()).fss_initial_key(HmacKey::from_bytes(&[1; 32]).unwrap());
    let e = Log::open_read_only_with(dir, wrong)
        .unwrap()
        .verify()
        .err()
        .unwrap();
    assert!(matches!(e, auditlog::Error::Key(_)), "{e}");
    assert!(
        e.to_string().contains("wrong forward-secure initial key"),
        "{e}"
    );
}

#[test]
fn a_writer_reopened_later_seals_the_epochs_it_missed_without_the_initial_key() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    {
        let log = Log::open(dir, writer_opts()).unwrap();
        log.append(&event(0)).unwrap();
    }
    let before = seals(dir).len();
    std::thread::sleep(EPOCH * 3);
    // Reopened with the log key only: the state in fss.key carries on.
    let opts = Options::new(log_key())
        .durability(Durability::Buffered)
        .checkpoint_interval(Duration::from_millis(10));
    let log = Log::open(dir, opts).unwrap();
    let after = seals(dir).len();
    assert!(after >= before + 3, "{before} -> {after}");
    assert_eq!(log.forward_secure_epoch(), Some(after as u64));
    log.append(&event(1)).unwrap();
    // A writer never holds the initial key, so it cannot verify the log itself.
    assert_eq!(
        failure_kind(&log.verify().unwrap()),
        FailureKind::ForwardSecureKeyRequired
    );
    drop(log);
    let r = audit(dir);
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.records, 2);
}

#[test]
fn creation_rules_and_future_timestamps() {
    let t = tempfile::tempdir().unwrap();
    // Creating a forward-secure log needs the initial key.
    let no_key = Options::new(log_key()).forward_secure(EPOCH);
    let e = Log::open(t.path().join("a"), no_key).err().unwrap();
    assert!(e.to_string().contains("initial key"), "{e}");
    // A plain log cannot become forward-secure later.
    let plain = t.path().join("b");
    Log::open(&plain, Options::new(log_key()))
        .unwrap()
        .append(&event(0))
        .unwrap();
    let e = Log::open(&plain, writer_opts()).err().unwrap();
    assert!(e.to_string().contains("created without"), "{e}");
    // A plain log verified with an initial key: not forward-secure (a downgrade would look so).
    let opts = Options::new(log_key()).fss_initial_key(initial_key());
    let r = Log::open_read_only_with(&plain, opts)
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(failure_kind(&r), FailureKind::MissingEpochSeal);
    // Epochs too short are refused.
    let e = Log::open(
        t.path().join("c"),
        writer_opts().forward_secure(Duration::from_millis(1)),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("epoch"), "{e}");
    // Events dated after the end of the current epoch are refused.
    let log = Log::open(t.path().join("d"), writer_opts()).unwrap();
    let mut ev = event(1);
    ev.timestamp = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let e = log.append(&ev).err().unwrap();
    assert!(e.to_string().contains("future"), "{e}");
    log.append(&event(2)).unwrap();
}

/// CVE-2023-31437: journald's verifier did not authenticate the entry arrays that readers
/// follow, so entries could be hidden from queries while `--verify` passed. Here every side
/// structure a reader follows is checked: an index file re-MACed with the (stolen) writer's
/// log key that hides a user's events, a footer edited to make queries skip its segment, and
/// an epoch seal edited to move an epoch boundary, each fail to verify.
#[test]
fn cve_2023_31437_hiding_entries_through_side_structures_fails() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    let opts = writer_opts().segment_bytes(64 * 1024);
    {
        let log = Log::open(&dir, opts).unwrap();
        for i in 0..600 {
            log.append(&event(i)).unwrap();
        }
    }
    let r = audit(&dir);
    assert!(r.ok, "{r:#?}");
    let mut idx: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    idx.sort();
    let idx_path = idx
        .first()
        .expect("a sealed segment has an index file")
        .clone();
    let seg_path = idx_path.with_extension("seg");
    let q = Query::from_params([("user_id", "user-1")]).unwrap();
    let count = |d: &Path| {
        Log::open_read_only(d, log_key())
            .unwrap()
            .query(&q)
            .unwrap()
            .total_count
    };
    let all = count(&dir);
    assert_eq!(all, 200);

    // (a) The index file, rewritten by an intruder holding the log key: user-1 has no events.
    let a = t.path().join("a");
    copy_dir(&dir, &a);
    let forged = hide_user_in_index(&fs::read(&idx_path).unwrap(), "user-1", &log_id(&dir));
    fs::write(a.join(idx_path.file_name().unwrap()), forged).unwrap();
    assert!(
        count(&a) < all,
        "the forged index hides events from queries"
    );
    let r = audit(&a);
    assert_eq!(failure_kind(&r), FailureKind::TamperedIndex, "{r:#?}");

    // (b) The footer's time range, moved so that time-range queries skip the segment.
    let b = t.path().join("b");
    copy_dir(&dir, &b);
    let sp = b.join(seg_path.file_name().unwrap());
    let mut seg = fs::read(&sp).unwrap();
    let at = seg.len() - 128;
    seg[at + 40..at + 48].copy_from_slice(&1i64.to_le_bytes());
    seg[at + 48..at + 56].copy_from_slice(&2i64.to_le_bytes());
    let crc = crc32fast::hash(&seg[at..at + 124]);
    seg[at + 124..at + 128].copy_from_slice(&crc.to_le_bytes());
    fs::write(&sp, seg).unwrap();
    let r = audit(&b);
    assert_eq!(failure_kind(&r), FailureKind::CorruptFrame, "{r:#?}");

    // (c) An epoch seal's boundary moved (its CRC fixed): the seals are authenticated.
    let c = t.path().join("c");
    copy_dir(&dir, &c);
    let sp = c.join(fss::SEALS_FILE);
    let mut b = fs::read(&sp).unwrap();
    if b.len() >= PARAMS_LEN + SEAL_LEN {
        let mut s = Seal::decode(&b[PARAMS_LEN..]).unwrap();
        s.next_seq = if s.next_seq >= 5 {
            s.next_seq - 5
        } else {
            s.next_seq + 5
        };
        b[PARAMS_LEN..PARAMS_LEN + SEAL_LEN].copy_from_slice(&s.encode());
    } else {
        // Everything landed in one epoch: add a seal with a bogus tag instead.
        let s = Seal {
            epoch: 0,
            next_seq: 10,
            last_hash: [0; 32],
            sealed_ns: i64::MAX,
            tag: [7; 32],
        };
        b.extend_from_slice(&s.encode());
    }
    fs::write(&sp, b).unwrap();
    let r = audit(&c);
    assert_eq!(failure_kind(&r), FailureKind::TamperedSeal, "{r:#?}");
}

/// CVE-2023-31438: journald did not seal empty epochs, so a log could be cut back to an
/// epoch boundary and continued with a later key. Here every epoch is sealed: cutting the log
/// back to the end of an epoch and appending with a later (stolen) key fails, whether the
/// later seals are removed or kept.
#[test]
fn cve_2023_31438_truncating_and_resuming_with_a_later_key_fails() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    several_epochs(&dir);
    let p = params(&dir);
    let s = seals(&dir);
    let (j, kj) = stolen_key_state(&dir);
    assert!(j >= 3);
    // Cut back to the end of the first epoch that holds records.
    let k = s.iter().position(|x| x.next_seq > 0).unwrap();
    let cut = s[k].next_seq;
    for keep_later_seals in [false, true] {
        let d = t.path().join(format!("cut-{keep_later_seals}"));
        copy_dir(&dir, &d);
        let seg_path = the_segment(&d);
        let mut seg = fs::read(&seg_path).unwrap();
        let fr = frames(&seg);
        let (cut_off, ..) = fr[cut as usize];
        let mut prev = fr[cut as usize - 1].4;
        seg[cut_off..].iter_mut().for_each(|b| *b = 0);
        // Resume: new records with the stolen key K_j, bound to epoch j.
        let mut off = cut_off;
        for (n, (_, _, ts, payload, _)) in fr[cut as usize..].iter().enumerate() {
            let seq = cut + n as u64;
            let ts = ts.max(&p.epoch_start(j)).to_owned();
            let mac = step_epoch(&kj, &prev, seq, ts, &auditlog::digest(payload), j);
            let len = frame_len(payload.len());
            encode_frame_into(&mut seg[off..off + len], 0, seq, ts, payload, &mac);
            off += len;
            prev = mac;
        }
        fs::write(&seg_path, seg).unwrap();
        if !keep_later_seals {
            let sp = d.join(fss::SEALS_FILE);
            let b = fs::read(&sp).unwrap();
            fs::write(&sp, &b[..PARAMS_LEN + (k + 1) * SEAL_LEN]).unwrap();
        }
        let r = audit(&d);
        let f = r.failure.clone();
        if keep_later_seals {
            assert_eq!(failure_kind(&r), FailureKind::TamperedRecord, "{f:#?}");
            assert!(f.unwrap().detail.contains("later epoch"));
        } else {
            assert_eq!(failure_kind(&r), FailureKind::MissingEpochSeal, "{f:#?}");
            assert!(f.unwrap().detail.contains("no seal"));
        }
    }
}

/// CVE-2023-31439: journald accepted entries of an old epoch sealed again with a later key.
/// Here an intruder holding the current key K_j rewrites a record of a sealed epoch i < j
/// (and re-MACs everything after it with K_j): verify fails, and re-forging the old seals with
/// K_j fails too.
#[test]
fn cve_2023_31439_resealing_old_entries_with_a_later_key_fails() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    several_epochs(&dir);
    let p = params(&dir);
    let (j, kj) = stolen_key_state(&dir);
    for reforge_seals in [false, true] {
        let d = t.path().join(format!("reseal-{reforge_seals}"));
        copy_dir(&dir, &d);
        let seg_path = the_segment(&d);
        let mut seg = fs::read(&seg_path).unwrap();
        let fr = frames(&seg);
        // Record 1 (epoch 0) gets record 2's content; every MAC from there on is redone.
        let mut prev = fr[0].4;
        let mut off = fr[1].0;
        let mut rewritten = Vec::new();
        for (i, (_, seq, ts, payload, _)) in fr.iter().enumerate().skip(1) {
            let payload = if i == 1 { &fr[2].3 } else { payload };
            let mac = step_epoch(&kj, &prev, *seq, *ts, &auditlog::digest(payload), j);
            let len = frame_len(payload.len());
            encode_frame_into(&mut seg[off..off + len], 0, *seq, *ts, payload, &mac);
            off += len;
            prev = mac;
            rewritten.push((*seq, mac));
        }
        fs::write(&seg_path, seg).unwrap();
        if reforge_seals {
            let sp = d.join(fss::SEALS_FILE);
            let mut b = fs::read(&sp).unwrap();
            let n = (b.len() - PARAMS_LEN) / SEAL_LEN;
            for k in 0..n {
                let at = PARAMS_LEN + k * SEAL_LEN;
                let mut s = Seal::decode(&b[at..]).unwrap();
                if let Some(l) = s.next_seq.checked_sub(1) {
                    if let Some((_, m)) = rewritten.iter().find(|(q, _)| *q == l) {
                        s.last_hash = *m;
                    }
                }
                s.tag = seal_tag(&kj, &p.log_id, &s);
                b[at..at + SEAL_LEN].copy_from_slice(&s.encode());
            }
            fs::write(&sp, b).unwrap();
        }
        let r = audit(&d);
        let f = r.failure.clone().unwrap();
        if reforge_seals {
            assert_eq!(failure_kind(&r), FailureKind::TamperedSeal, "{f:#?}");
        } else {
            assert_eq!(failure_kind(&r), FailureKind::TamperedRecord, "{f:#?}");
            assert_eq!(f.seq, Some(1));
        }
        assert!(f.detail.contains(&format!("epoch {j}")), "{f:#?}");
    }
}

fn log_id(dir: &Path) -> [u8; 16] {
    params(dir).log_id
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Rewrites an index file (docs/FORMAT.md, "Index side files") so that `user` has no
/// postings, and re-MACs it with the log key, as an intruder holding that key could.
fn hide_user_in_index(b: &[u8], user: &str, log_id: &[u8; 16]) -> Vec<u8> {
    let count = u64::from_le_bytes(b[24..32].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 88 + count * (4 + 8 + 12);
    // Field 0 is user_id.
    let n_terms = u32_at(at);
    let mut out = b[..at + 4].to_vec();
    at += 4;
    let mut hidden = false;
    for _ in 0..n_terms {
        let tl = u32_at(at);
        let term = &b[at + 4..at + 4 + tl];
        let np = u32_at(at + 4 + tl);
        let end = at + 8 + tl + np * 4;
        if term == user.as_bytes() {
            out.extend_from_slice(&b[at..at + 4 + tl]);
            out.extend_from_slice(&0u32.to_le_bytes());
            hidden = true;
        } else {
            out.extend_from_slice(&b[at..end]);
        }
        at = end;
    }
    assert!(hidden, "{user} is in the index");
    out.extend_from_slice(&b[at..b.len() - 36]);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&[0x11; 32]).unwrap();
    m.update(b"auditlog/index/v2");
    m.update(log_id);
    m.update(&out);
    let mac: [u8; 32] = m.finalize().into_bytes().into();
    out.extend_from_slice(&mac);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn retention_on_a_forward_secure_log_keeps_it_verifiable() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let now = chrono::Utc::now();
    {
        let log = Log::open(
            dir,
            writer_opts().segment_bytes(64 * 1024).retention_days(7),
        )
        .unwrap();
        for i in 0..1800 {
            let mut e = event(i);
            let age = if i < 1500 { 30 } else { 1 };
            e.timestamp = Some(now - chrono::Duration::days(age));
            log.append(&e).unwrap();
        }
        wait_sealed(dir, log.forward_secure_epoch().unwrap());
        let r = log.apply_retention(now).unwrap();
        assert!(r.removed.is_some(), "{r:?}");
        log.append(&event(1800)).unwrap();
    }
    let r = audit(dir);
    assert!(r.ok, "{r:#?}");
    assert!(r.first_seq.unwrap() > 0);
}

#[test]
fn query_results_are_rechecked_with_epoch_keys() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    several_epochs(dir);
    let q = Query::from_params([("order", "asc"), ("limit", "100")]).unwrap();
    // The auditor's reader derives every epoch key: every record verifies.
    let opts = Options::new(log_key()).fss_initial_key(initial_key());
    let page = Log::open_read_only_with(dir, opts)
        .unwrap()
        .query(&q)
        .unwrap();
    assert_eq!(page.audit_logs.len(), 10);
    assert!(page.audit_logs.iter().all(|e| e.verification.verified));
    // A reader with the log key only cannot recheck forward-secure MACs.
    let page = Log::open_read_only(dir, log_key())
        .unwrap()
        .query(&q)
        .unwrap();
    assert!(page.audit_logs.iter().all(|e| !e.verification.verified));
    // A writer holds the current epoch's key: records of that epoch verify, older ones not.
    let opts = Options::new(log_key()).checkpoint_interval(Duration::from_millis(10));
    let log = Log::open(dir, opts).unwrap();
    for attempt in 0.. {
        // Retried if an epoch ends between the append and the query.
        assert!(attempt < 20, "epochs kept ending between append and query");
        let epoch = log.forward_secure_epoch();
        let r = log.append(&event(10 + attempt)).unwrap();
        let page = log.query(&q).unwrap();
        if log.forward_secure_epoch() != epoch {
            continue;
        }
        let last = page.audit_logs.last().unwrap();
        assert_eq!(last.seq, r.seq);
        assert!(last.verification.verified);
        assert!(!page.audit_logs[0].verification.verified);
        break;
    }
}

/// The CLI: `--forward-secure EPOCH --fss-key KEY` creates such a log; `verify --fss-key`
/// checks it (exit 0); `verify` without the key fails (exit 1, the kind named).
#[cfg(feature = "cli")]
#[test]
fn cli_creates_and_verifies_a_forward_secure_log() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let run = |args: &[&str], input: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
        c.env_remove("AUDITLOG_DATA")
            .env("AUDIT_HMAC_KEY", "cli-fss-log-key-0123456789-abcdefghijk")
            .env("AUDIT_FSS_KEY", "cli-fss-initial-key-0123456789-abcdefgh")
            .arg("--data")
            .arg(&data)
            .args(["--segment-bytes", "65536"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let lines = "{\"event_type\":\"authentication\",\"action\":\"user_login\"}\n".repeat(3);
    let out = run(
        &[
            "--forward-secure",
            "50ms",
            "--fss-key",
            "env.AUDIT_FSS_KEY",
            "append",
        ],
        &lines,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(120));
    // Appending again needs no forward-secure flag; it seals the epochs that ended.
    let out = run(&["append"], &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(seals(&data).len() >= 2);
    let out = run(&["--fss-key", "env.AUDIT_FSS_KEY", "verify", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 6);
    let out = run(&["verify", "--json"], "");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failure"]["kind"], "forward_secure_key_required");
    let out = run(&["--forward-secure", "10x", "append"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}

/// What a crash during an epoch change leaves, and what the next open does with it.
#[test]
fn crash_states_of_an_epoch_change_recover_or_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("log");
    several_epochs(&dir);
    let p = params(&dir);
    let n = seals(&dir).len() as u64;
    let reopen = |d: &Path| {
        Log::open(
            d,
            Options::new(log_key())
                .durability(Durability::Buffered)
                .checkpoint_interval(Duration::from_millis(10)),
        )
    };
    let write_key_state = |d: &Path, epoch: u64, key: &[u8; 32]| {
        let mut b = fs::read(d.join(fss::KEY_FILE)).unwrap();
        b[32..40].copy_from_slice(&epoch.to_le_bytes());
        b[40..72].copy_from_slice(key);
        let crc = crc32fast::hash(&b[..72]);
        b[72..76].copy_from_slice(&crc.to_le_bytes());
        fs::write(d.join(fss::KEY_FILE), b).unwrap();
    };

    // A torn seal at the end (crash while appending seals): verify warns; open cuts it and
    // seals again.
    let a = t.path().join("torn");
    copy_dir(&dir, &a);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(a.join(fss::SEALS_FILE))
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 37]).unwrap();
    drop(f);
    let r = audit(&a);
    assert!(r.ok, "{r:#?}");
    assert!(
        r.warnings.iter().any(|w| w.contains("not a whole seal")),
        "{r:#?}"
    );
    drop(reopen(&a).unwrap());
    assert_eq!(
        (fs::metadata(a.join(fss::SEALS_FILE)).unwrap().len() - 64) % 100,
        0
    );
    assert!(audit(&a).ok);

    // Seals written but the key state not yet replaced (crash between the two): the writer
    // derives forward from the older key and carries on.
    let b = t.path().join("behind");
    copy_dir(&dir, &b);
    write_key_state(&b, n - 1, &epoch_key(&p, n - 1));
    let log = reopen(&b).unwrap();
    log.append(&event(99)).unwrap();
    drop(log);
    assert!(audit(&b).ok);
    assert!(stolen_key_state(&b).0 >= n);

    // A key state ahead of the seals (seals removed): refused.
    let c = t.path().join("ahead");
    copy_dir(&dir, &c);
    let sp = c.join(fss::SEALS_FILE);
    let bytes = fs::read(&sp).unwrap();
    fs::write(&sp, &bytes[..bytes.len() - SEAL_LEN]).unwrap();
    let e = reopen(&c).err().unwrap();
    assert!(e.to_string().contains("seals were removed"), "{e}");

    // No key state: the log cannot be continued, and says so.
    let d = t.path().join("nokey");
    copy_dir(&dir, &d);
    fs::remove_file(d.join(fss::KEY_FILE)).unwrap();
    let e = reopen(&d).err().unwrap();
    assert!(e.to_string().contains("cannot be continued"), "{e}");
    assert!(audit(&d).ok, "still verifiable with the initial key");
}

/// A reader opened before the writer appended and sealed more is not fooled into reporting
/// a truncation: seals made after its snapshot are not held against it.
#[test]
fn a_reader_beside_a_running_writer_verifies() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let log = Log::open(dir, writer_opts()).unwrap();
    log.append(&event(0)).unwrap();
    let opts = Options::new(log_key()).fss_initial_key(initial_key());
    let reader = Log::open_read_only_with(dir, opts).unwrap();
    let e = log.forward_secure_epoch().unwrap();
    for i in 1..5 {
        log.append(&event(i)).unwrap();
    }
    wait_sealed(dir, e + 1);
    let r = reader.verify().unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.records, 1);
    // The writer's own view, and a fresh reader, see everything.
    assert!(audit(dir).ok);
    // Truncating behind a seal is still caught: the seal predates the new reader.
    drop(log);
    let seg = the_segment(dir);
    let mut b = fs::read(&seg).unwrap();
    let fr = frames(&b);
    let cut = fr[3].0;
    b[cut..].iter_mut().for_each(|x| *x = 0);
    fs::write(&seg, b).unwrap();
    // Without the checkpoints, so that the seal alone must catch it, and without the writer's
    // staging file, which still holds the cut records (a reader would show them from it).
    fs::remove_file(dir.join(auditlog::CHECKPOINT_FILE)).unwrap();
    fs::remove_file(dir.join(auditlog::STAGING_FILE)).unwrap();
    let r = audit(dir);
    assert_eq!(failure_kind(&r), FailureKind::Truncated, "{r:#?}");
    assert!(r.failure.unwrap().detail.contains("sealed"));
}
