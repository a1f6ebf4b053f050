//! Invariant: a sealed segment's `.idx` side file that is missing, truncated, corrupted or
//! belongs to another segment never changes a query's answer: the index is rebuilt from its
//! segment, a writable open rewrites the side file (valid again, byte for byte what sealing
//! wrote), and a read-only open never writes anything.

use std::fs;
use std::path::{Path, PathBuf};

use auditlog::sample::Generator;
use auditlog::{Durability, HmacKey, Log, Options, Query};
use serde_json::Value;

const EVENTS: usize = 3000;

fn key() -> HmacKey {
    HmacKey::from_bytes(&[3u8; 32]).expect("32-byte key")
}

fn opts() -> Options {
    Options::new(key())
        .durability(Durability::Buffered)
        .segment_bytes(64 * 1024)
}

/// Every file of `dir` with its bytes, sorted by name.
fn dir_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().expect("file type").is_file())
        .map(|e| {
            let bytes = fs::read(e.path()).expect("read file");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    v.sort();
    v
}

fn with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn copy_dir(src: &Path, dst: &Path) {
    for e in fs::read_dir(src).expect("read dir") {
        let e = e.expect("entry");
        if e.file_type().expect("file type").is_file() && e.file_name() != auditlog::LOCK_FILE {
            fs::copy(e.path(), dst.join(e.file_name())).expect("copy");
        }
    }
}

/// The queries whose answers must not change: one per index (actor, email, IP/CIDR, type,
/// action, status, severity, resource, time) and unfiltered ones, both orders.
fn queries() -> Vec<Query> {
    let vk_ids: String = (0..40)
        .map(|i| format!("virtual_key-{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let p =
        |params: &[(&str, &str)]| Query::from_params(params.iter().copied()).expect("valid query");
    vec![
        p(&[]),
        p(&[("order", "asc"), ("limit", "10000")]),
        p(&[("user_id", "user-00007"), ("limit", "10000")]),
        p(&[
            ("user_id", "user-00007,user-00123"),
            ("order", "asc"),
            ("limit", "3"),
        ]),
        p(&[("email", "USER42@Company.com"), ("limit", "10000")]),
        p(&[
            ("ip", "203.0.114.0/24"),
            ("severity", "high"),
            ("limit", "10000"),
        ]),
        p(&[("ip", "::ffff:203.0.113.8"), ("limit", "10000")]),
        p(&[
            ("event_type", "authentication"),
            ("status", "failed"),
            ("limit", "250"),
        ]),
        p(&[
            ("action", "virtual_key_updated,virtual_key_deleted"),
            ("limit", "10000"),
        ]),
        p(&[("severity", "critical"), ("order", "asc"), ("limit", "40")]),
        p(&[("resource_type", "virtual_key"), ("resource_id", &vk_ids)]),
        p(&[("resource_id", "session-1,model-2,dataset-3,request-4")]),
        p(&[
            ("start", "2024-01-01T00:00:10Z"),
            ("end", "2024-01-01T00:00:20Z"),
            ("limit", "10000"),
        ]),
        p(&[
            ("start", "2024-01-01T00:00:05Z"),
            ("order", "asc"),
            ("limit", "500"),
        ]),
        p(&[
            ("end", "2024-01-01T00:00:30Z"),
            ("severity", "medium"),
            ("limit", "77"),
        ]),
    ]
}

/// Every page of every query (following `next_page`) as JSON.
fn answers(log: &Log) -> Vec<Vec<Value>> {
    queries()
        .into_iter()
        .map(|q| {
            let mut q = q;
            let mut pages = Vec::new();
            loop {
                let p = log.query(&q).expect("query");
                let next = p.next_page.clone();
                pages.push(serde_json::to_value(&p).expect("page serializes"));
                match next {
                    Some(c) if pages.len() < 200 => q.cursor = Some(c),
                    Some(_) => panic!("more than 200 pages"),
                    None => break,
                }
            }
            pages
        })
        .collect()
}

/// A closed log with several sealed segments; returns the pristine `.idx` files.
fn fixture(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let log = Log::open(dir, opts()).expect("open for writing");
    let evs: Vec<_> = Generator::standard(11).take(EVENTS).collect();
    for chunk in evs.chunks(100) {
        log.append_batch(chunk).expect("append");
    }
    drop(log);
    let segs = with_ext(dir, "seg");
    let idx = with_ext(dir, "idx");
    assert!(
        segs.len() >= 6,
        "the fixture needs several segments, has {}",
        segs.len()
    );
    // Every sealed segment (all but the active, last one) has its side file.
    let want: Vec<PathBuf> = segs[..segs.len() - 1]
        .iter()
        .map(|s| s.with_extension("idx"))
        .collect();
    assert_eq!(idx, want, "one .idx per sealed segment");
    idx.into_iter()
        .map(|p| {
            let b = fs::read(&p).expect("read idx");
            (p, b)
        })
        .collect()
}

/// A way of damaging the side files of the copy in `dir`; returns the damaged files' names.
type Damage = Box<dyn Fn(&Path, &[String]) -> Vec<String>>;

fn damages() -> Vec<(&'static str, Damage)> {
    let first = |names: &[String]| names[0].clone();
    let middle = |names: &[String]| names[names.len() / 2].clone();
    let last = |names: &[String]| names[names.len() - 1].clone();
    vec![
        (
            "delete the first",
            Box::new(move |d: &Path, n: &[String]| {
                fs::remove_file(d.join(first(n))).unwrap();
                vec![first(n)]
            }),
        ),
        (
            "delete every one",
            Box::new(|d: &Path, n: &[String]| {
                for f in n {
                    fs::remove_file(d.join(f)).unwrap();
                }
                n.to_vec()
            }),
        ),
        (
            "truncate the middle one to half",
            Box::new(move |d: &Path, n: &[String]| {
                let p = d.join(middle(n));
                let len = fs::metadata(&p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .unwrap()
                    .set_len(len / 2)
                    .unwrap();
                vec![middle(n)]
            }),
        ),
        (
            "truncate the last one to zero bytes",
            Box::new(move |d: &Path, n: &[String]| {
                fs::write(d.join(last(n)), b"").unwrap();
                vec![last(n)]
            }),
        ),
        (
            "drop the last byte of the first one",
            Box::new(move |d: &Path, n: &[String]| {
                let p = d.join(first(n));
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() - 1]).unwrap();
                vec![first(n)]
            }),
        ),
        (
            "flip a byte in the middle of the middle one",
            Box::new(move |d: &Path, n: &[String]| {
                let p = d.join(middle(n));
                let mut b = fs::read(&p).unwrap();
                let at = b.len() / 2;
                b[at] ^= 0x01;
                fs::write(&p, b).unwrap();
                vec![middle(n)]
            }),
        ),
        (
            "flip a byte in the header (first_seq) of the last one",
            Box::new(move |d: &Path, n: &[String]| {
                let p = d.join(last(n));
                let mut b = fs::read(&p).unwrap();
                b[16] ^= 0x80;
                fs::write(&p, b).unwrap();
                vec![last(n)]
            }),
        ),
        (
            "flip a byte of the checksum of the first one",
            Box::new(move |d: &Path, n: &[String]| {
                let p = d.join(first(n));
                let mut b = fs::read(&p).unwrap();
                let at = b.len() - 1;
                b[at] ^= 0x40;
                fs::write(&p, b).unwrap();
                vec![first(n)]
            }),
        ),
        (
            "replace the middle one with the first one's",
            Box::new(move |d: &Path, n: &[String]| {
                fs::copy(d.join(first(n)), d.join(middle(n))).unwrap();
                vec![middle(n)]
            }),
        ),
        (
            "swap the first and the last",
            Box::new(move |d: &Path, n: &[String]| {
                let a = fs::read(d.join(first(n))).unwrap();
                let b = fs::read(d.join(last(n))).unwrap();
                fs::write(d.join(first(n)), b).unwrap();
                fs::write(d.join(last(n)), a).unwrap();
                vec![first(n), last(n)]
            }),
        ),
    ]
}

fn names(pristine: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    pristine
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn damaged_index_files_never_change_answers_and_read_only_never_writes() {
    let pristine_dir = tempfile::tempdir().unwrap();
    let pristine = fixture(pristine_dir.path());
    let before = dir_state(pristine_dir.path());
    let baseline = {
        let ro = Log::open_read_only(pristine_dir.path(), key()).unwrap();
        answers(&ro)
    };
    assert_eq!(
        dir_state(pristine_dir.path()),
        before,
        "read-only queries wrote to the directory"
    );
    // The answers are not trivial.
    let totals: Vec<u64> = baseline
        .iter()
        .map(|pages| pages[0]["total_count"].as_u64().unwrap())
        .collect();
    assert_eq!(totals[0], EVENTS as u64);
    assert!(
        totals.iter().all(|&t| t > 0),
        "every query matches something: {totals:?}"
    );
    assert!(totals[1..].iter().any(|&t| t < EVENTS as u64 / 10));
    assert!(
        baseline.iter().any(|pages| pages.len() > 2),
        "some query has several pages"
    );

    for (what, damage) in damages() {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine_dir.path(), dir.path());
        let hit = damage(dir.path(), &names(&pristine));
        for name in &hit {
            let p = dir.path().join(name);
            let orig = &pristine
                .iter()
                .find(|(q, _)| q.file_name() == p.file_name())
                .unwrap()
                .1;
            assert!(
                fs::read(&p).ok().as_ref() != Some(orig),
                "{what}: {name} was not damaged"
            );
        }

        // Read-only: same answers, and not one byte written.
        let state = dir_state(dir.path());
        {
            let ro = Log::open_read_only(dir.path(), key()).unwrap();
            assert!(
                answers(&ro) == baseline,
                "{what}: read-only answers changed"
            );
        }
        let after = dir_state(dir.path());
        assert_eq!(
            after.iter().map(|f| &f.0).collect::<Vec<_>>(),
            state.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{what}: read-only open changed the directory listing"
        );
        assert!(after == state, "{what}: read-only open changed file bytes");

        // Writable: same answers, and the side files are rewritten as sealing wrote them.
        {
            let log = Log::open(dir.path(), opts()).unwrap();
            assert!(
                answers(&log) == baseline,
                "{what}: writable answers changed"
            );
            for (p, bytes) in &pristine {
                let now = dir.path().join(p.file_name().unwrap());
                let got = fs::read(&now)
                    .unwrap_or_else(|e| panic!("{what}: {} not rewritten: {e}", now.display()));
                assert!(
                    &got == bytes,
                    "{what}: {} is not a valid index again",
                    now.display()
                );
            }
        }
        // No temporaries left behind, and a fresh read-only open uses the rewritten files.
        let idx = with_ext(dir.path(), "idx");
        assert_eq!(idx.len(), pristine.len(), "{what}: index files {idx:?}");
        let ro = Log::open_read_only(dir.path(), key()).unwrap();
        assert!(
            answers(&ro) == baseline,
            "{what}: answers changed after reopening"
        );
        let report = ro.verify().unwrap();
        assert!(report.ok, "{what}: {:?}", report.failure);
    }
}

/// A writable open answers the same as the read-only one on an intact directory, and queries
/// on it leave intact side files as they are.
#[test]
fn intact_index_files_are_used_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = fixture(dir.path());
    let ro_answers = answers(&Log::open_read_only(dir.path(), key()).unwrap());
    let log = Log::open(dir.path(), opts()).unwrap();
    assert!(answers(&log) == ro_answers);
    for (p, bytes) in &pristine {
        assert!(&fs::read(p).unwrap() == bytes, "{} changed", p.display());
    }
}
