//! The active segment's index saved at a clean close (FORMAT.md §6, "unsealed segments"):
//! a read-only open of the closed log loads it instead of decoding the segment, `verify`
//! authenticates it, and a forged or stale one never changes an answer.

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::sample::Generator;
use auditlog::{Durability, HmacKey, Log, Options, Query};
use serde_json::Value;

fn key() -> HmacKey {
    HmacKey::from_bytes(&[5u8; 32]).expect("32-byte key")
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .save_active_index(true)
}

fn queries() -> Vec<Query> {
    let p = |params: &[(&str, &str)]| Query::from_params(params.iter().copied()).expect("query");
    vec![
        p(&[]),
        p(&[("user_id", "user-00007"), ("limit", "10000")]),
        p(&[("severity", "high"), ("status", "failed"), ("limit", "500")]),
        p(&[
            ("event_type", "authentication"),
            ("order", "asc"),
            ("limit", "50"),
        ]),
    ]
}

fn answers(log: &Log) -> Vec<(u64, Vec<Value>)> {
    queries()
        .iter()
        .map(|q| {
            let page = log.query(q).expect("query");
            assert!(page.audit_logs.iter().all(|e| e.verification.verified));
            let rows = page
                .audit_logs
                .iter()
                .map(|e| serde_json::to_value(e).unwrap())
                .collect();
            (page.total_count, rows)
        })
        .collect()
}

fn active_idx(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.last().expect("a segment").with_extension("idx")
}

/// Rewrites the CRC that ends an index file after an edit (an attacker can; the MAC he
/// cannot).
fn fix_crc(b: &mut [u8]) {
    let n = b.len();
    let crc = crc32fast::hash(&b[..n - 4]);
    b[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_clean_close_saves_the_active_index_and_only_a_matching_authentic_one_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let evs: Vec<_> = Generator::standard(21).take(12_000).collect();
    {
        let log = Log::open(dir, opts()).unwrap();
        for c in evs[..10_000].chunks(500) {
            log.append_batch(c).unwrap();
        }
    }
    let idx = active_idx(dir);
    assert!(
        idx.exists(),
        "a clean close saves the active segment's index"
    );
    let saved = fs::read(&idx).unwrap();
    // Off by default: a library writer's close saves nothing.
    {
        let plain = tempfile::tempdir().unwrap();
        let log = Log::open(
            plain.path(),
            Options::new(key()).durability(Durability::Buffered),
        )
        .unwrap();
        log.append_batch(&evs[..5000]).unwrap();
        drop(log);
        assert!(!active_idx(plain.path()).exists());
    }

    // Used as it is, authenticated by verify, and the answers equal those of an index
    // rebuilt from the records.
    let ro = Log::open_read_only(dir, key()).unwrap();
    let with_file = answers(&ro);
    let v = ro.verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.indexes_checked, 1, "{v:?}");
    assert!(v.warnings.is_empty(), "{v:?}");
    drop(ro);
    // A writer that opens and closes without appending starts its index from the file and
    // leaves the file as it is (not rewritten: same inode).
    {
        use std::os::unix::fs::MetadataExt;
        let ino = fs::metadata(&idx).unwrap().ino();
        let log = Log::open(dir, opts()).unwrap();
        assert_eq!(answers(&log), with_file);
        drop(log);
        assert_eq!(fs::metadata(&idx).unwrap().ino(), ino);
        assert_eq!(fs::read(&idx).unwrap(), saved);
    }
    fs::remove_file(&idx).unwrap();
    let ro = Log::open_read_only(dir, key()).unwrap();
    let rebuilt = answers(&ro);
    assert_eq!(with_file, rebuilt);
    assert_eq!(rebuilt[0].0, 10_000);
    drop(ro);
    fs::write(&idx, &saved).unwrap();

    // Forged: a posting changed and the CRC fixed. Never used; verify names it.
    let mut forged = saved.clone();
    let at = forged.len() - 200;
    forged[at] ^= 0x01;
    fix_crc(&mut forged);
    fs::write(&idx, &forged).unwrap();
    let ro = Log::open_read_only(dir, key()).unwrap();
    assert_eq!(answers(&ro), rebuilt);
    let v = ro.verify().unwrap();
    assert!(!v.ok);
    let f = v.failure.expect("a failure");
    assert!(
        f.detail.contains("does not verify with this log's key"),
        "{f:?}"
    );
    drop(ro);

    // Stale: the log grew after the file was saved (it is put back by hand). Not used, not
    // reported; the answers include the new records.
    fs::write(&idx, &saved).unwrap();
    let grown = {
        // Seeded from the file, then grown by appends: the same answers as a rebuild.
        let log = Log::open(dir, opts()).unwrap();
        log.append_batch(&evs[10_000..]).unwrap();
        answers(&log)
    };
    let fresh = fs::read(&idx).unwrap();
    assert_ne!(fresh, saved, "the second clean close saved the grown index");
    fs::write(&idx, &saved).unwrap();
    let ro = Log::open_read_only(dir, key()).unwrap();
    let stale = answers(&ro);
    assert_eq!(stale[0].0, 12_000);
    assert_eq!(stale, grown);
    let v = ro.verify().unwrap();
    assert!(
        v.ok && v.warnings.is_empty() && v.indexes_checked == 0,
        "{v:?}"
    );
    drop(ro);
    fs::remove_file(&idx).unwrap();
    let ro = Log::open_read_only(dir, key()).unwrap();
    assert_eq!(answers(&ro), stale);
    drop(ro);

    // Another log's file under this name (made with another key) is not used either.
    let other = tempfile::tempdir().unwrap();
    {
        let log = Log::open(
            other.path(),
            Options::new(HmacKey::from_bytes(&[6u8; 32]).unwrap())
                .durability(Durability::Buffered)
                .save_active_index(true),
        )
        .unwrap();
        for c in evs.chunks(500) {
            log.append_batch(c).unwrap();
        }
    }
    fs::copy(active_idx(other.path()), &idx).unwrap();
    let ro = Log::open_read_only(dir, key()).unwrap();
    assert_eq!(answers(&ro), stale);
}
