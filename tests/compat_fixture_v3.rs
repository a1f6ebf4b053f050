//! Invariant: a forward-secure log written by format version 3 (the committed fixture in
//! `tests/fixtures/v3-fss`: 2 s epochs, records in two epochs, an empty sealed epoch, two
//! segments) keeps verifying, with its initial key, in every later build.
//!
//! The fixture is only ever read: opening it for writing would seal every 2 s epoch since it
//! was generated (a writer seals each ended epoch when it opens).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditlog::format::SegmentHeader;
use auditlog::fss::{self, PARAMS_LEN, SEAL_LEN};
use auditlog::{Durability, Event, FailureKind, HmacKey, Log, Options};

/// Values recorded when the fixture was generated (see `generate_fixture_v3`).
const FIXTURE_LOG_ID: &str = "6f2856934e96933caa674f5b6e8877ca";
const FIXTURE_LAST_HASH: &str = "17a4bbebd85fcfb90ec1ec83662175936fd18b1296f0ac636eb7b91e9653818a";
const FIXTURE_EVENTS: u64 = 45;
const FIXTURE_SEALS: usize = 3;

fn key() -> HmacKey {
    HmacKey::from_bytes(&[0x44; 32]).unwrap()
}

fn initial_key() -> HmacKey {
    HmacKey::from_bytes(&[0x53; 32]).unwrap()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v3-fss")
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

fn fixture_copy() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(), t.path());
    t
}

fn event(i: u64) -> Event {
    let mut e = Event::new("authentication", "user_login");
    e.event_id = Some(format!("evt_{i:04}"));
    e.actor.user_id = Some(format!("user-{}", i % 4));
    e.details = serde_json::json!({"i": i, "note": "fixture ".repeat(300)}).into();
    e
}

fn auditor(dir: &Path) -> Log {
    Log::open_read_only_with(dir, Options::new(key()).fss_initial_key(initial_key())).unwrap()
}

#[test]
#[ignore = "regenerates the committed fixture; run by hand only for a new format version"]
fn generate_fixture_v3() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
        .checkpoint_interval(Duration::from_millis(50))
        .forward_secure(Duration::from_secs(2))
        .fss_initial_key(initial_key());
    {
        let log = Log::open(tmp.path(), opts).unwrap();
        for i in 0..20 {
            log.append(&event(i)).unwrap();
        }
        // Epoch 0 ends; epoch 1 passes without records.
        std::thread::sleep(Duration::from_millis(4300));
        for i in 20..40 {
            log.append(&event(i)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(2300));
        for i in 40..FIXTURE_EVENTS {
            log.append(&event(i)).unwrap();
        }
        println!("log_id {}", log.log_id());
        println!("epoch {:?}", log.forward_secure_epoch());
    }
    let log = auditor(tmp.path());
    let r = log.verify().unwrap();
    assert!(r.ok, "{r:?}");
    let last = log.iter().last().unwrap().unwrap();
    println!("last seq {} hash {}", last.seq, auditlog::hex(&last.hash));
    println!(
        "seals {}",
        fss::read_seals(tmp.path()).unwrap().unwrap().seals.len()
    );
    drop(log);
    let out = fixture_dir();
    if out.exists() {
        fs::remove_dir_all(&out).unwrap();
    }
    copy_dir(tmp.path(), &out);
    let _ = fs::remove_file(out.join("LOCK"));
    for entry in fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "idx") {
            fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn v3_fixture_verifies_with_its_initial_key() {
    let dir = fixture_copy();
    let seg = fs::read(dir.path().join("00000000000000000000.seg")).unwrap();
    let h = SegmentHeader::decode(&seg).unwrap();
    assert_eq!(
        (h.version, h.flags),
        (3, 1),
        "a version 3, forward-secure segment"
    );
    let log = auditor(dir.path());
    assert_eq!(log.log_id(), FIXTURE_LOG_ID);
    let r = log.verify().unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.records, FIXTURE_EVENTS);
    assert!(r.segments >= 2, "{r:?}");
    assert_eq!(
        r.last_hash.as_deref(),
        Some(format!("hmac-sha256:{FIXTURE_LAST_HASH}").as_str())
    );
    let seals = fss::read_seals(dir.path()).unwrap().unwrap().seals;
    assert_eq!(seals.len(), FIXTURE_SEALS);
    assert!(
        seals.windows(2).any(|w| w[0].next_seq == w[1].next_seq),
        "an empty epoch is sealed: {seals:?}"
    );
    let records: Vec<_> = log.iter().map(|r| r.unwrap()).collect();
    assert_eq!(records.len() as u64, FIXTURE_EVENTS);
    assert_eq!(records[7].event.event_id.as_deref(), Some("evt_0007"));

    // Without the initial key: refused, not passed.
    let plain = Log::open_read_only(dir.path(), key()).unwrap();
    assert_eq!(
        plain.verify().unwrap().failure.unwrap().kind,
        FailureKind::ForwardSecureKeyRequired
    );
}

#[test]
fn v3_fixture_damage_is_located() {
    // A flipped seal tag.
    let dir = fixture_copy();
    let p = dir.path().join(fss::SEALS_FILE);
    let mut b = fs::read(&p).unwrap();
    let at = PARAMS_LEN + SEAL_LEN + 64;
    b[at] ^= 1;
    let crc = crc32fast::hash(&b[PARAMS_LEN + SEAL_LEN..PARAMS_LEN + SEAL_LEN + 96]);
    b[PARAMS_LEN + SEAL_LEN + 96..PARAMS_LEN + 2 * SEAL_LEN].copy_from_slice(&crc.to_le_bytes());
    fs::write(&p, b).unwrap();
    let r = auditor(dir.path()).verify().unwrap();
    let f = r.failure.unwrap();
    assert_eq!(f.kind, FailureKind::TamperedSeal, "{f:?}");

    // Seals removed from the end: the records after them are in an unsealed epoch and carry
    // a later epoch's MAC.
    let dir = fixture_copy();
    let p = dir.path().join(fss::SEALS_FILE);
    let b = fs::read(&p).unwrap();
    fs::write(&p, &b[..PARAMS_LEN + SEAL_LEN]).unwrap();
    let r = auditor(dir.path()).verify().unwrap();
    let f = r.failure.unwrap();
    assert_eq!(f.kind, FailureKind::MissingEpochSeal, "{f:?}");
}
