//! The fuzz targets' properties hold on every committed seed (`fuzz/seeds/<target>/`) and on
//! a few thousand deterministic inputs, on stable: the decoders never panic and whatever they
//! accept re-encodes to the same bytes; hostile segment files never panic an open; event JSON
//! that `auditlog append` accepts round-trips and reads back equal; accepted query parameters
//! return exactly what a model says; operation sequences (rolls, queries, retention, crashes)
//! match their model.
//!
//! The properties are the fuzz crate's own code, included by path, so CI runs the same checks
//! that `cargo fuzz run` does. Mutations that keep a structure's checksum valid (the
//! CRC is recomputed after the change) reach the field checks that random bytes never reach.
//!
//! `cargo test --release --test fuzz_corpus_smoke -- --ignored write_seeds` rewrites the seeds.

#[path = "../fuzz/src/event_json.rs"]
mod event_json;
#[path = "../fuzz/src/frame_decode.rs"]
mod frame_decode;
#[path = "../fuzz/src/ops_model.rs"]
mod ops_model;
#[path = "../fuzz/src/query_parse.rs"]
mod query_parse;
#[path = "../fuzz/src/segment_open.rs"]
mod segment_open;

use std::path::{Path, PathBuf};

use auditlog::format::{
    encode_frame_into, frame_len, Footer, Meta, SegmentHeader, FOOTER_LEN, FORMAT_VERSION,
    HEADER_LEN, META_LEN,
};
use auditlog::sample::Rng;
use ops_model::Op;

fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn arr<const N: usize>(rng: &mut Rng) -> [u8; N] {
    let mut a = [0u8; N];
    a.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
    a
}

/// Rewrites the little-endian CRC-32 of `b[..at]` at `at`.
fn fix_crc(b: &mut [u8], at: usize) {
    let crc = crc32fast::hash(&b[..at]);
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Mutations of a valid encoding: every single-bit flip (never accepted) and every truncation
/// (never accepted) of a small one, and random byte changes in `editable` with the CRC at `crc_at` fixed up
/// (accepted or not, but never inconsistently). Returns how many of those were accepted.
fn mutate(
    rng: &mut Rng,
    valid: &[u8],
    editable: std::ops::Range<usize>,
    crc_at: usize,
    check: fn(&[u8]) -> bool,
) -> usize {
    assert!(check(valid), "a valid encoding does not decode");
    // Exhaustive flips and cuts only for small encodings, to keep a debug build quick.
    let exhaustive = if valid.len() <= 256 { valid.len() } else { 0 };
    for bit in 0..exhaustive * 8 {
        let mut m = valid.to_vec();
        m[bit / 8] ^= 1 << (bit % 8);
        frame_decode::run(&m);
        assert!(!check(&m), "bit {bit} flipped and still accepted");
    }
    for cut in 0..exhaustive {
        frame_decode::run(&valid[..cut]);
        assert!(!check(&valid[..cut]), "accepted when cut at {cut}");
    }
    let mut accepted = 0;
    for _ in 0..200 {
        let mut m = valid.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = editable.start + rng.below(editable.len() as u64) as usize;
            m[at] = rng.next_u64() as u8;
        }
        fix_crc(&mut m, crc_at);
        frame_decode::run(&m);
        accepted += usize::from(check(&m));
    }
    accepted
}

#[test]
fn frames_round_trip_under_mutation() {
    let mut rng = Rng::new(1);
    let mut accepted = 0;
    for i in 0..12 {
        let n = 1 + rng.below(if i < 3 { 40 } else { 700 }) as usize;
        let payload = bytes(&mut rng, n);
        let mac = arr::<32>(&mut rng);
        let mut f = vec![0u8; frame_len(n)];
        encode_frame_into(
            &mut f,
            0,
            rng.next_u64(),
            rng.next_u64() as i64,
            &payload,
            &mac,
        );
        let crc_at = f.len() - 4;
        // Trailing bytes after the frame must not matter.
        let mut with_tail = f.clone();
        with_tail.extend(bytes(&mut rng, 16));
        assert!(frame_decode::check_frame(&with_tail));
        // Bytes 0..8 (length and its check) are left alone so the CRC fix-up is meaningful.
        accepted += mutate(&mut rng, &f, 8..crc_at, crc_at, frame_decode::check_frame);
    }
    assert!(accepted > 1000, "only {accepted} edited frames decoded");
}

#[test]
fn segment_headers_round_trip_under_mutation() {
    let mut rng = Rng::new(2);
    let mut accepted = 0;
    for _ in 0..6 {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            flags: 0,
            log_id: arr(&mut rng),
            first_seq: rng.next_u64(),
            created_ns: rng.next_u64() as i64,
            prev_hash: arr(&mut rng),
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        accepted += mutate(
            &mut rng,
            &b,
            8..HEADER_LEN - 4,
            124,
            frame_decode::check_header,
        );
    }
    assert!(accepted > 100, "only {accepted} edited headers decoded");
}

#[test]
fn footers_round_trip_under_mutation() {
    let mut rng = Rng::new(3);
    let mut accepted = 0;
    for _ in 0..6 {
        let first_seq = rng.below(1 << 40);
        let count = 1 + rng.below(1 << 20);
        let min_ts = rng.next_u64() as i64 / 2;
        let f = Footer {
            count,
            first_seq,
            last_seq: first_seq + count - 1,
            min_ts,
            max_ts: min_ts + rng.below(1 << 50) as i64,
            last_mac: arr(&mut rng),
            records_end: rng.below(1 << 30),
            sealed_ns: rng.next_u64() as i64,
        };
        let b = f.encode();
        assert_eq!(Footer::decode(&b), Some(f));
        accepted += mutate(
            &mut rng,
            &b,
            8..FOOTER_LEN - 4,
            124,
            frame_decode::check_footer,
        );
    }
    assert!(accepted > 0, "no edited footer decoded");
}

#[test]
fn meta_files_round_trip_under_mutation() {
    let mut rng = Rng::new(4);
    let mut accepted = 0;
    for _ in 0..6 {
        let m = Meta {
            version: FORMAT_VERSION,
            log_id: arr(&mut rng),
            created_ns: rng.next_u64() as i64,
            key_check: arr(&mut rng),
        };
        let b = m.encode();
        assert_eq!(Meta::decode(&b), Ok(m));
        accepted += mutate(&mut rng, &b, 10..META_LEN - 4, 72, frame_decode::check_meta);
    }
    assert!(accepted > 100, "only {accepted} edited meta files decoded");
}

#[test]
fn random_bytes_never_panic_a_decoder() {
    let mut rng = Rng::new(5);
    for i in 0..3000 {
        let n = rng.below(if i % 10 == 0 { 1000 } else { 200 }) as usize;
        let mut b = bytes(&mut rng, n);
        // Some inputs are mostly zeros, like a preallocated tail with debris in it.
        if i % 3 == 0 {
            b.iter_mut()
                .filter(|_| rng.below(4) != 0)
                .for_each(|x| *x = 0);
        }
        frame_decode::run(&b);
    }
}

#[test]
fn hostile_segment_files_never_panic_an_open() {
    let mut rng = Rng::new(6);
    use segment_open::Reached;
    // A valid header followed by nothing, and by zeros: the log opens and takes appends...
    assert_eq!(segment_open::run(&[1]), Reached::Appended);
    assert_eq!(segment_open::run(&[1, 0, 0, 0, 0]), Reached::Appended);
    // ...unless the checkpoints of the records that were there come along.
    assert_eq!(segment_open::run(&[0x81, 0, 0, 0]), Reached::Opened);
    // The real segment, untouched, with and without its checkpoints.
    assert_eq!(segment_open::run(&[2]), Reached::Appended);
    assert_eq!(segment_open::run(&[0x82]), Reached::Appended);
    // A flipped byte inside its first record, before valid frames: damage when a checkpoint
    // proves those records durable, refused...
    assert_eq!(
        segment_open::run(&[0x82, HEADER_LEN as u8 + 40, 0, 0xFF]),
        Reached::ReadOnly
    );
    // ...and without one, an unsynced tail whose earlier write was lost: cut (a copy kept).
    assert_eq!(
        segment_open::run(&[2, HEADER_LEN as u8 + 40, 0, 0xFF]),
        Reached::Appended
    );
    // Garbage instead of a header: refused.
    assert_eq!(segment_open::run(&[0, 1, 2, 3]), Reached::ReadOnly);
    let mut reached = Vec::new();
    for i in 0..48u64 {
        let mode = rng.next_u64() as u8;
        let n = rng.below(if i % 2 == 0 { 24 } else { 400 }) as usize;
        let mut input = vec![mode];
        input.extend(bytes(&mut rng, n));
        reached.push(segment_open::run(&input));
    }
    reached.sort();
    reached.dedup();
    assert!(
        reached.len() >= 2,
        "random inputs all ended alike: {reached:?}"
    );
}

const BATCH: Op = Op::AppendBatch {
    n: 32,
    invalid: false,
};

/// The old operations across segment rolls (64 KiB segments hold about 180 events).
fn basic_ops() -> Vec<Op> {
    use Op::*;
    let mut v = vec![
        Checkpoint,
        Get(0),
        ReadOnlyView,
        Append(3),
        BATCH,
        Verify,
        AppendInvalid,
        AppendBatch {
            n: 5,
            invalid: true,
        },
        Reopen,
        Checkpoint,
    ];
    v.extend([BATCH; 6]);
    v.extend([ReadOnlyView, Get(7), Reopen, Verify, Append(4), Reopen]);
    v
}

/// Large events that roll segments (the largest bigger than a segment), queries of every
/// kind, retention (exact after a reopen, and beside the sealer), crashes of every kind.
fn extended_ops() -> Vec<Op> {
    use Op::*;
    let mut v = vec![AppendLarge(0), BATCH, AppendLarge(4), AppendLarge(5), BATCH];
    v.extend([AppendLarge(3), Append(2), AppendLarge(2), BATCH, BATCH]);
    // Queries: user, time range, both, none; both orders; limits 1 to 10,000.
    v.extend([
        Query(1),
        Query(2),
        Query(3),
        Query(4),
        Query(0x45),
        Query(0x8e),
    ]);
    v.extend([Query(0xff), Query(0x39), Query(0x1b), Query(0x3c)]);
    // Crashes: torn frames (with and without a hole), debris, zeros.
    v.extend([
        Crash(0x40),
        Crash(0x81),
        Crash(0x22),
        Crash(0x03),
        Crash(0xfd),
    ]);
    v.extend([Retention(0x80 | 60), Query(0x8f), Get(0), Retention(30)]);
    v.extend([
        BATCH,
        AppendLarge(1),
        Retention(0x80 | 127),
        ReadOnlyView,
        Verify,
    ]);
    v.extend([
        Checkpoint,
        Get(3),
        Query(0x46),
        Crash(0x10),
        Append(1),
        Reopen,
    ]);
    v
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 20, "{target}: only {} seeds", v.len());
    v
}

#[test]
fn operation_sequences_match_the_model() {
    for cfg in [0u8, 1, 2, 5] {
        assert_eq!(ops_model::run_ops(cfg, &basic_ops()), 3 + 7 * 32 + 4);
    }
    for cfg in [0u8, 1, 0x42, 9] {
        let ops = extended_ops();
        assert!(ops_model::run_ops(cfg, &ops) > 0);
        let input = ops_model::encode_ops(cfg, &ops);
        assert_eq!(
            format!("{:?}", ops_model::decode_ops(&input[1..])),
            format!("{ops:?}")
        );
    }
    // Damage ends a run, whether or not the log opens.
    for a in [0u8, 1, 0x80, 0xff, 0xfe, 0x41] {
        let ops = [BATCH, Op::AppendLarge(1), Op::Append(2), Op::Damage(a)];
        assert_eq!(ops_model::run_ops(a % 3, &ops), 35);
    }
    let mut rng = Rng::new(7);
    let mut events = 0;
    for _ in 0..24 {
        let input = bytes(&mut rng, 1 + 2 * 40);
        events += ops_model::run(&input);
    }
    assert!(events > 0);
    assert!(ops_model::decode_ops(&[0, 0, 2, 0, 3]).len() == 2);
}

#[test]
fn seeds_hold_every_property() {
    for (p, b) in seeds("frame_decode") {
        eprintln!("{}", p.display());
        frame_decode::run(&b);
    }
    let mut reached = Vec::new();
    for (p, b) in seeds("segment_open") {
        eprintln!("{}", p.display());
        reached.push(segment_open::run(&b));
    }
    reached.sort();
    reached.dedup();
    assert!(
        reached.len() >= 3,
        "segment_open seeds reach only {reached:?}"
    );
    let mut appended = 0;
    for (p, b) in seeds("event_json") {
        eprintln!("{}", p.display());
        appended += event_json::run(&b).appended;
    }
    assert!(appended >= 10, "only {appended} seed events appended");
    let mut reached = Vec::new();
    for (p, b) in seeds("query_parse") {
        eprintln!("{}", p.display());
        reached.push(query_parse::run(&b));
    }
    reached.sort();
    reached.dedup();
    assert!(
        reached.len() >= 4,
        "query_parse seeds reach only {reached:?}"
    );
    for (p, b) in seeds("ops_model") {
        eprintln!("{}", p.display());
        ops_model::run(&b);
    }
}

/// Event JSON lines: realistic, edge and invalid ones.
fn event_lines() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&str, String)> = [
        ("seed-example", r#"{"event_id":"evt_001","timestamp":"2024-01-15T10:30:00.123Z","event_type":"authentication","action":"user_login","status":"failed","severity":"medium","actor":{"user_id":"user-alice-001","email":"alice@company.com","ip_address":"203.0.113.42"},"details":{"auth_method":"password","failure_reason":"invalid_password","attempts_count":3}}"#),
        ("minimal", r#"{"event_type":"a","action":"b"}"#),
        ("resource", r#"{"event_type":"data_access","action":"file_read","resource":{"type":"file","id":"f-1"}}"#),
        ("resource-no-id", r#"{"event_type":"data_access","action":"file_read","resource":{"type":""}}"#),
        ("ipv6", r#"{"event_type":"a","action":"b","actor":{"ip_address":"2001:db8::1"}}"#),
        ("ipv4-mapped", r#"{"event_type":"a","action":"b","actor":{"ip_address":"::ffff:203.0.113.7"}}"#),
        ("offset-time", r#"{"event_type":"a","action":"b","timestamp":"2024-06-01T12:00:00.123456789+05:30"}"#),
        ("leap-second", r#"{"event_type":"a","action":"b","timestamp":"2016-12-31T23:59:60.5Z"}"#),
        ("year-1500", r#"{"event_type":"a","action":"b","timestamp":"1500-01-01T00:00:00Z"}"#),
        ("year-2262-edge", r#"{"event_type":"a","action":"b","timestamp":"2262-04-11T23:47:16.854775807Z"}"#),
        ("year-1677-edge", r#"{"event_type":"a","action":"b","timestamp":"1677-09-21T00:12:43.145224192Z"}"#),
        ("numbers", r#"{"event_type":"a","action":"b","details":{"big":18446744073709551615,"neg":-9223372036854775808,"f":1.7976931348623157e308,"tiny":5e-324,"z":-0.0,"e":1.5E+3}}"#),
        ("nested", r#"{"event_type":"a","action":"b","details":{"a":{"b":[1,{"c":null},"d",true]},"":{}}}"#),
        ("unicode", r#"{"event_type":"ünïcødé","action":"\u0000\ud83d\ude00","status":"\"quoted\"","actor":{"user_id":"\t","email":"Ä@B.c"}}"#),
        ("id-128", &format!(r#"{{"event_id":"{}","event_type":"a","action":"b"}}"#, "x".repeat(128))),
        ("severities", "{\"event_type\":\"a\",\"action\":\"b\",\"severity\":\"critical\"}\n{\"event_type\":\"a\",\"action\":\"b\",\"severity\":\"info\"}\n{\"event_type\":\"a\",\"action\":\"b\",\"severity\":\"low\"}\n{\"event_type\":\"a\",\"action\":\"b\",\"severity\":\"high\"}"),
        ("batch-with-bad-time", "{\"event_type\":\"a\",\"action\":\"b\"}\n{\"event_type\":\"a\",\"action\":\"b\",\"timestamp\":\"9999-12-31T23:59:59Z\"}\n  \n{\"event_type\":\"c\",\"action\":\"d\",\"status\":\"denied\"}\r"),
        ("null-details", r#"{"event_type":"a","action":"b","details":null,"resource":null}"#),
        ("null-actor-fields", r#"{"event_type":"a","action":"b","actor":{"user_id":null,"email":null,"ip_address":null}}"#),
        ("bad-unknown-field", r#"{"event_type":"a","action":"b","extra":1}"#),
        ("bad-severity", r#"{"event_type":"a","action":"b","severity":"urgent"}"#),
        ("bad-ip", r#"{"event_type":"a","action":"b","actor":{"ip_address":"999.1.1.1"}}"#),
        ("bad-details-array", r#"{"event_type":"a","action":"b","details":[1]}"#),
        ("bad-empty-id", r#"{"event_id":"","event_type":"a","action":"b"}"#),
        ("bad-empty-action", r#"{"event_type":"a","action":""}"#),
        ("bad-empty-status", r#"{"event_type":"a","action":"b","status":""}"#),
        ("bad-missing-type", r#"{"action":"b"}"#),
        ("bad-time", r#"{"event_type":"a","action":"b","timestamp":"2024-13-01T00:00:00Z"}"#),
        ("bad-truncated", r#"{"event_type":"a","action":"b","actor":{"#),
        ("bad-duplicate-field", r#"{"event_type":"a","event_type":"b","action":"c"}"#),
    ]
    .into_iter()
    .map(|(n, s)| (n, s.to_string()))
    .collect();
    v.push((
        "id-129",
        format!(
            r#"{{"event_id":"{}","event_type":"a","action":"b"}}"#,
            "y".repeat(129)
        ),
    ));
    let mut gen = auditlog::sample::Generator::standard(3);
    for name in ["generated-1", "generated-2", "generated-3"] {
        v.push((name, serde_json::to_string(&gen.next_event()).unwrap()));
    }
    v
}

/// Query parameter strings: every parameter, combinations, cursors, bad values.
const QUERIES: &[(&str, &str)] = &[
    ("empty", ""),
    ("limit-1", "limit=1"),
    ("user", "user_id=user-00001"),
    ("users", "user_ids=user-00001,user-00003&order=asc"),
    ("email-case", "email=MIXED.case@example.com"),
    ("ip-host", "ip=203.0.113.2"),
    ("ip-cidr", "ip_address=203.0.113.0/24&ip=2001:db8::/32"),
    ("ip-mapped", "ip=::ffff:198.51.100.0/120"),
    ("ip-bad", "ip=203.0.113.1/24"),
    (
        "types",
        "event_type=authentication,authorization&action=user_login",
    ),
    (
        "status-severity",
        "status=failed&severity=high,critical&severities=medium",
    ),
    ("resource", "resource_type=file&resource_id=a=b"),
    (
        "dates",
        "start_date=2024-01-01&end_date=2024-01-01&order=asc&limit=7",
    ),
    (
        "rfc3339",
        "start=2024-01-01T00:00:03Z&end=2024-01-01T00:00:09.5+00:00",
    ),
    ("reversed", "start=2024-02-01&end=2024-01-01"),
    ("page-2", "page=2&limit=5"),
    ("page-too-far", "page=101&limit=10000"),
    ("page-0", "page=0"),
    ("cursor-real", "user_id=user-00002&limit=3&cursor=@"),
    ("cursor-desc", "limit=4&order=desc&cursor=@"),
    ("cursor-tampered", "limit=2&cursor=@00"),
    ("cursor-upper", "limit=2&order=asc&cursor=@"),
    ("cursor-in-page", "limit=9&page=@ff"),
    ("cursor-garbage", "cursor=c1zz"),
    ("cursor-and-page", "page=2&cursor=@"),
    (
        "details-off",
        "include_details=false&limit=3&event_type=system",
    ),
    ("comma-values", "event_type=data,access&user_id=comma,user"),
    ("unknown-param", "bogus=1"),
    ("limit-bad", "limit=0&limit=10001"),
    ("newlines", "order=ASC\nlimit=20\nseverity=Info"),
    ("year-range", "start=1677-09-22&end=2262-04-11"),
    // query_parse finding: the last nanosecond of 2262-04-11 overflows in `parse_time`.
    ("crash-end-date-2262-04-11", "end=2262-04-11"),
];

/// Operation sequences: each operation alone and in the combinations that matter.
fn op_seeds() -> Vec<(String, Vec<u8>)> {
    use Op::*;
    let mut v = vec![
        ("basic".to_string(), ops_model::encode_ops(0, &basic_ops())),
        (
            "extended-sync".to_string(),
            ops_model::encode_ops(0, &extended_ops()),
        ),
        (
            "extended-buffered".to_string(),
            ops_model::encode_ops(1, &extended_ops()),
        ),
        (
            "extended-interval".to_string(),
            ops_model::encode_ops(0x46, &extended_ops()),
        ),
    ];
    let short: &[(&str, &[Op])] = &[
        (
            "roll-large",
            &[AppendLarge(5), AppendLarge(4), Append(1), Reopen, Verify],
        ),
        (
            "roll-then-query",
            &[
                AppendLarge(3),
                BATCH,
                AppendLarge(3),
                Query(0x47),
                Query(0x02),
            ],
        ),
        ("query-empty", &[Query(0), Query(7)]),
        (
            "query-user-pages",
            &[BATCH, BATCH, Query(0x05), Query(0x41)],
        ),
        (
            "query-time-pages",
            &[BATCH, BATCH, Query(0x0a), Query(0xc6)],
        ),
        (
            "retention-exact",
            &[
                BATCH,
                AppendLarge(4),
                BATCH,
                AppendLarge(4),
                Retention(0xc0),
            ],
        ),
        (
            "retention-all",
            &[
                AppendLarge(4),
                AppendLarge(4),
                BATCH,
                Retention(0xff),
                Reopen,
            ],
        ),
        (
            "retention-beside-sealer",
            &[AppendLarge(4), AppendLarge(4), Retention(0x7f)],
        ),
        (
            "retention-twice",
            &[
                AppendLarge(3),
                AppendLarge(3),
                AppendLarge(3),
                Retention(0x9f),
                Retention(0xff),
                Query(3),
            ],
        ),
        ("crash-torn", &[BATCH, Crash(0x80), Append(1), Crash(0x04)]),
        ("crash-hole", &[BATCH, Crash(0xfd), Verify]),
        (
            "crash-debris",
            &[Append(2), Crash(0x42), Crash(0xfe), Reopen],
        ),
        ("crash-empty-log", &[Crash(0x00), Crash(0x02), Append(1)]),
        (
            "crash-after-roll",
            &[AppendLarge(4), AppendLarge(4), Crash(0x60), Get(0)],
        ),
        ("damage-truncate", &[BATCH, Damage(0x40)]),
        ("damage-flip-last", &[BATCH, Damage(0xff)]),
        ("damage-flip-first", &[BATCH, Damage(0x01)]),
        ("damage-empty", &[Damage(3)]),
        (
            "readonly-checkpoint",
            &[Append(4), ReadOnlyView, Checkpoint, Get(2), AppendInvalid],
        ),
        (
            "invalid-batch",
            &[
                AppendBatch {
                    n: 9,
                    invalid: true,
                },
                Append(1),
                Verify,
            ],
        ),
    ];
    // ops_model finding (a race): a read-only verify beside the writer read checkpoints.jsonl
    // while the worker appended the seal's checkpoint, and warned of a torn line.
    v.push((
        "race-readonly-verify-torn-checkpoint-line".to_string(),
        vec![
            126, 97, 153, 215, 215, 215, 215, 215, 215, 215, 104, 97, 115, 104, 215, 215, 215, 215,
            215, 215, 215, 215, 215, 153, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
            2, 2, 2, 2, 2, 2, 2, 2, 115, 101, 115, 115, 105, 111, 110, 45, 54, 50, 153, 153, 153,
            153, 153, 153, 152, 153, 118, 160,
        ],
    ));
    // ops_model finding (a race): the worker's seal checkpoint and an explicit checkpoint
    // appended to checkpoints.jsonl at once and left an empty line.
    v.push((
        "race-concurrent-checkpoint-appends".to_string(),
        vec![
            93, 93, 93, 93, 93, 93, 93, 93, 93, 5, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88,
            88, 88, 88, 88, 88, 88, 88, 88, 117, 115, 101, 114, 95, 97, 103, 101, 110, 116, 1, 88,
            88, 88, 88, 88, 161, 88, 161, 212, 105, 6,
        ],
    ));
    for (cfg, (name, ops)) in short.iter().enumerate() {
        // Odd ones with events that take the log's clock (bit 6).
        let cfg = cfg as u8 | (cfg as u8 & 1) << 6;
        v.push((name.to_string(), ops_model::encode_ops(cfg, ops)));
    }
    v
}

/// A real log's files: its meta, and its first segment (sealed, after a roll).
fn real_log_files() -> (Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let key = auditlog::HmacKey::from_bytes(&[9; 32]).unwrap();
    let log = auditlog::Log::open(
        tmp.path(),
        auditlog::Options::new(key).segment_bytes(64 * 1024),
    )
    .unwrap();
    let events: Vec<_> = auditlog::sample::Generator::standard(5).take(300).collect();
    log.append_batch(&events).unwrap();
    drop(log);
    let meta = std::fs::read(tmp.path().join(auditlog::META_FILE)).unwrap();
    let seg = std::fs::read(tmp.path().join("00000000000000000000.seg")).unwrap();
    (meta, seg)
}

fn frame_seeds() -> Vec<(String, Vec<u8>)> {
    let (meta, seg) = real_log_files();
    let first = auditlog::format::decode_frame(&seg[HEADER_LEN..])
        .unwrap()
        .len;
    let mut v = vec![
        ("meta-real".to_string(), meta),
        ("header-real".into(), seg[..HEADER_LEN].to_vec()),
        (
            "frame-real".into(),
            seg[HEADER_LEN..HEADER_LEN + first].to_vec(),
        ),
        (
            "frames-real-3".into(),
            seg[HEADER_LEN..HEADER_LEN + 3 * first + 64].to_vec(),
        ),
        (
            "segment-start".into(),
            seg[..HEADER_LEN + 2 * first].to_vec(),
        ),
        ("footer-real".into(), seg[seg.len() - FOOTER_LEN..].to_vec()),
        (
            "footer-marker-real".into(),
            seg[seg.len() - FOOTER_LEN - 8..].to_vec(),
        ),
        ("zeros-8".into(), vec![0; 8]),
        ("zeros-200".into(), vec![0; 200]),
        ("ff-16".into(), vec![0xff; 16]),
    ];
    for (i, n) in [1usize, 17, 300].into_iter().enumerate() {
        let payload: Vec<u8> = (0..n).map(|k| (k * 7 + i) as u8).collect();
        let mut f = vec![0u8; frame_len(n)];
        encode_frame_into(
            &mut f,
            (i as u16) & 1,
            42 + i as u64,
            -5 + i as i64,
            &payload,
            &[i as u8; 32],
        );
        v.push((format!("frame-{n}"), f.clone()));
        v.push((format!("frame-{n}-cut"), f[..f.len() - 1].to_vec()));
        f.extend([0u8; 32]);
        v.push((format!("frame-{n}-zeros"), f));
    }
    let h = SegmentHeader {
        version: FORMAT_VERSION,
        flags: 0,
        log_id: [3; 16],
        first_seq: 1 << 40,
        created_ns: -1,
        prev_hash: [4; 32],
    };
    v.push(("header-v2".into(), h.encode().to_vec()));
    let f = Footer {
        count: 3,
        first_seq: 7,
        last_seq: 9,
        min_ts: -10,
        max_ts: 10,
        last_mac: [5; 32],
        records_end: 4096,
        sealed_ns: 1,
    };
    v.push(("footer-small".into(), f.encode().to_vec()));
    let m = Meta {
        version: FORMAT_VERSION,
        log_id: [6; 16],
        created_ns: 7,
        key_check: [8; 32],
    };
    v.push(("meta-v2".into(), m.encode().to_vec()));
    // frame_decode finding: a footer with first_seq 0 and last_seq u64::MAX (valid CRC) makes
    // `Footer::decode` compute `last_seq - first_seq + 1`, which overflows.
    v.push((
        "crash-footer-seq-range-overflow".into(),
        vec![
            255, 255, 255, 255, 242, 15, 94, 161, 65, 76, 83, 69, 65, 76, 0, 1, 64, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 196, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 208, 3, 139, 94,
        ],
    ));
    v
}

fn segment_open_seeds() -> Vec<(String, Vec<u8>)> {
    let (_, seg) = real_log_files();
    let first = auditlog::format::decode_frame(&seg[HEADER_LEN..])
        .unwrap()
        .len;
    let h = HEADER_LEN as u8;
    let mut v: Vec<(String, Vec<u8>)> = [
        ("real", vec![2]),
        ("real-checkpoints", vec![0x82]),
        ("real-misnamed", vec![0x42]),
        ("header-only", vec![1]),
        ("header-zeros", vec![1, 0, 0, 0, 0]),
        ("header-zeros-checkpoints", vec![0x81, 0, 0, 0]),
        ("garbage", vec![0, 1, 2, 3]),
        ("flip-header-seq", vec![2, 40, 0, 0x01]),
        ("flip-header-magic", vec![2, 0, 0, 0x20]),
        ("flip-first-len", vec![2, h, 0, 0x01]),
        ("flip-first-record", vec![2, h + 40, 0, 0xff]),
        ("flip-first-crc", vec![2, 0x60, 0x01, 0x10]),
        ("cut-half", vec![2, 0x80]),
        ("cut-quarter", vec![0x82, 0x40]),
        ("cut-near-end", vec![2, 0xf0]),
        ("cut-header", vec![2, 0x03]),
        (
            "two-flips-and-cut",
            vec![2, 0x90, 0x00, 0x04, 0x10, 0x03, 0x80, 0xc0],
        ),
        ("mode3-real", vec![3]),
    ]
    .into_iter()
    .map(|(n, b)| (n.to_string(), b))
    .collect();
    // Frames of another log behind a valid header: CRCs pass, MACs do not.
    let mut other = vec![1];
    other.extend(&seg[HEADER_LEN..HEADER_LEN + 2 * first]);
    v.push(("foreign-frames".into(), other.clone()));
    other[0] = 0x81;
    v.push(("foreign-frames-checkpoints".into(), other));
    // Another log's whole segment start, header included.
    let mut raw = vec![0];
    raw.extend(&seg[..HEADER_LEN + first]);
    raw.extend([0u8; 64]);
    v.push(("foreign-segment".into(), raw));
    // Its footer behind a valid header.
    let mut ft = vec![1];
    ft.extend(&seg[seg.len() - FOOTER_LEN - 8..]);
    v.push(("foreign-footer".into(), ft));
    v
}

fn write_dir(target: &str, files: Vec<(String, Vec<u8>)>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// Rewrites `fuzz/seeds/`. The binary seeds come from a new log each time (random log id).
#[test]
#[ignore]
fn write_seeds() {
    write_dir("frame_decode", frame_seeds());
    write_dir("segment_open", segment_open_seeds());
    let json = event_lines()
        .into_iter()
        .map(|(n, s)| (format!("{n}.jsonl"), s.into_bytes()))
        .collect();
    write_dir("event_json", json);
    let queries = QUERIES
        .iter()
        .map(|(n, s)| (format!("{n}.query"), s.as_bytes().to_vec()))
        .collect();
    write_dir("query_parse", queries);
    write_dir("ops_model", op_seeds());
}

/// Edits of the seed lines: a byte replaced, inserted or removed, a line cut.
#[test]
fn event_json_edits_never_panic() {
    let lines = event_lines();
    let mut rng = Rng::new(8);
    let mut out = event_json::Outcome::default();
    let alphabet = b"{}[]\":,0123456789.eE+-tfnul\\ aZ\n\x00\xff";
    for i in 0..3000 {
        let mut b = lines[i % lines.len()].1.clone().into_bytes();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(b.len() as u64 + 1) as usize;
            let c = alphabet[rng.below(alphabet.len() as u64) as usize];
            match rng.below(4) {
                0 if at < b.len() => b[at] = c,
                1 => b.insert(at, c),
                2 if at < b.len() => {
                    b.remove(at);
                }
                _ => b.truncate(at),
            }
        }
        let o = event_json::run(&b);
        out.accepted += o.accepted;
        out.refused += o.refused;
        out.appended += o.appended;
    }
    assert!(out.accepted > 300 && out.refused > 300, "{out:?}");
    assert!(out.appended > 300, "{out:?}");
}

/// Random combinations of parameter names and values, cursors among them.
#[test]
fn query_params_match_the_model() {
    const NAMES: &[&str] = &[
        "start",
        "end",
        "start_date",
        "end_date",
        "event_type",
        "action",
        "status",
        "severity",
        "user_id",
        "email",
        "ip",
        "resource_type",
        "resource_id",
        "limit",
        "order",
        "page",
        "cursor",
        "include_details",
        "bogus",
    ];
    const VALUES: &[&str] = &[
        "",
        "1",
        "2",
        "3",
        "50",
        "0",
        "asc",
        "desc",
        "false",
        "@",
        "@0",
        "@A",
        "2024-01-01",
        "2024-01-01T00:00:05Z",
        "2024-01-02",
        "2023-12-31",
        "authentication",
        "authorization,system",
        "user_login",
        "failed",
        "success",
        "high",
        "info,low",
        "user-00001",
        "user-00002,user-00004",
        "User-Mixed",
        "mixed.case@example.com",
        "user1@company.com",
        "203.0.113.0/24",
        "2001:db8::17",
        "198.51.100.7",
        "::ffff:198.51.100.0/120",
        "session",
        "file",
        "session-17",
        "comma,user",
    ];
    let mut rng = Rng::new(9);
    let mut reached = Vec::new();
    for _ in 0..1500 {
        let n = 1 + rng.below(5) as usize;
        let s: Vec<String> = (0..n)
            .map(|_| {
                let name = NAMES[rng.below(NAMES.len() as u64) as usize];
                let value = VALUES[rng.below(VALUES.len() as u64) as usize];
                format!("{name}={value}")
            })
            .collect();
        reached.push(query_parse::run(s.join("&").as_bytes()));
    }
    for (_, q) in QUERIES {
        reached.push(query_parse::run(q.as_bytes()));
    }
    reached.sort();
    reached.dedup();
    use query_parse::Reached::*;
    assert_eq!(reached, [Refused, BadCursor, Ran, RanWithCursor]);
}

/// query_parse finding, fixed: `parse_time` (src/query/mod.rs) computed the end of a bare end
/// date as `start + 86_400 * 1_000_000_000 - 1`, which overflowed for 2262-04-11, the last day
/// `i64` nanoseconds reach: a panic with overflow checks, and without them a negative end, so
/// `end=2262-04-11` matched nothing (or, with a start, was refused as a reversed range). The
/// end of that day now saturates at the last representable nanosecond.
#[test]
fn end_date_of_the_last_representable_day() {
    // Either the day's end saturates at the last representable nanosecond, or the date is
    // refused as out of range; never a wrapped, negative end.
    match auditlog::Query::from_params([("start", "2024-01-01"), ("end", "2262-04-11")]) {
        Ok(q) => assert_eq!(q.end, Some(i64::MAX)),
        Err(e) => assert!(!e.to_string().contains("reversed"), "{e}"),
    }
    if let Ok(q) = auditlog::Query::from_params([("end", "2262-04-11")]) {
        assert_eq!(q.end, Some(i64::MAX));
    }
}
