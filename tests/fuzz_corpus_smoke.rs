//! The fuzz targets' properties hold on a few thousand deterministic inputs, on stable: the
//! decoders never panic and whatever they accept re-encodes to the same bytes; hostile
//! segment files never panic an open; operation sequences match their model.
//!
//! The properties are the fuzz crate's own code, included by path, so CI runs the same checks
//! that `cargo +nightly fuzz run` does. Mutations that keep a structure's checksum valid (the
//! CRC is recomputed after the change) reach the field checks that random bytes never reach.

#[path = "../fuzz/src/frame_decode.rs"]
mod frame_decode;
#[path = "../fuzz/src/ops_model.rs"]
mod ops_model;
#[path = "../fuzz/src/segment_open.rs"]
mod segment_open;

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
    // A flipped byte inside its first record is damage before valid frames: refused.
    assert_eq!(
        segment_open::run(&[2, HEADER_LEN as u8 + 40, 0, 0xFF]),
        Reached::ReadOnly
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

#[test]
fn operation_sequences_match_the_model() {
    use Op::*;
    // Every operation, across segment rolls (64 KiB segments hold about 180 events).
    let all = [
        Checkpoint,
        Get(0),
        ReadOnlyView,
        Append(3),
        AppendBatch {
            n: 32,
            invalid: false,
        },
        Verify,
        AppendInvalid,
        AppendBatch {
            n: 5,
            invalid: true,
        },
        Reopen,
        Checkpoint,
        AppendBatch {
            n: 32,
            invalid: false,
        },
        AppendBatch {
            n: 32,
            invalid: false,
        },
        AppendBatch {
            n: 32,
            invalid: false,
        },
        AppendBatch {
            n: 32,
            invalid: false,
        },
        AppendBatch {
            n: 32,
            invalid: false,
        },
        AppendBatch {
            n: 32,
            invalid: false,
        },
        ReadOnlyView,
        Get(7),
        Reopen,
        Verify,
        Append(4),
        Reopen,
    ];
    for cfg in [0u8, 1, 2, 5] {
        assert_eq!(ops_model::run_ops(cfg, &all), 3 + 7 * 32 + 4);
    }
    let mut rng = Rng::new(7);
    let mut events = 0;
    for _ in 0..6 {
        let input = bytes(&mut rng, 1 + 2 * 40);
        events += ops_model::run(&input);
    }
    assert!(events > 0);
    assert!(ops_model::decode_ops(&[0, 0, 2, 0, 3]).len() == 2);
}
