//! The pure decoders on hostile bytes: `decode_frame`, `SegmentHeader::decode`,
//! `Footer::decode` and `Meta::decode` never panic, and whatever one of them accepts
//! re-encodes to exactly the bytes it was decoded from (so no byte the decoder let through is
//! ignored: a byte that changes without changing the decoded value would be unprotected).
//!
//! Shared with `tests/fuzz_corpus_smoke.rs`, which includes this file by path: it may only
//! use `auditlog`'s public API.

use auditlog::format::{
    decode_frame, encode_frame_into, frame_len, Footer, Meta, SegmentHeader, FOOTER_LEN,
    FRAME_OVERHEAD, HEADER_LEN, META_LEN,
};

/// Runs every decoder on `data` (and the frame decoder on a few suffixes, as a scan would),
/// then again with the checksums repaired, and checks the round trips.
pub fn run(data: &[u8]) {
    check_frame(data);
    // A scan decodes at every offset after damage; the first few cover unaligned starts.
    for skip in 1..data.len().min(9) {
        check_frame(&data[skip..]);
    }
    check_header(data);
    check_footer(data);
    check_meta(data);
    run_repaired(data);
}

/// Random bytes almost never pass a CRC, so the field checks behind it would go unexplored:
/// here each structure's checksums are recomputed over the input first (the frame also gets
/// a length field that matches the input's size).
pub fn run_repaired(data: &[u8]) {
    if let Some(n) = data.len().checked_sub(FRAME_OVERHEAD).filter(|&n| n > 0) {
        if n <= 1 << 16 {
            let mut f = data.to_vec();
            let mut model = vec![0u8; frame_len(n)];
            encode_frame_into(&mut model, 0, 0, 0, &f[28..28 + n], &[0; 32]);
            f[..8].copy_from_slice(&model[..8]);
            with_crc(&mut f, 60 + n);
            check_frame(&f);
        }
    }
    if data.len() >= HEADER_LEN {
        let mut h = data[..HEADER_LEN].to_vec();
        with_crc(&mut h, HEADER_LEN - 4);
        check_header(&h);
    }
    if data.len() >= FOOTER_LEN {
        let mut f = data[..FOOTER_LEN].to_vec();
        with_crc(&mut f, FOOTER_LEN - 4);
        check_footer(&f);
    }
    if data.len() == META_LEN {
        let mut m = data.to_vec();
        with_crc(&mut m, META_LEN - 4);
        check_meta(&m);
    }
}

/// Writes the CRC-32 of `b[..at]` at `at`, little-endian (every structure's final checksum).
fn with_crc(b: &mut [u8], at: usize) {
    let crc = crc32_ieee(&b[..at]);
    b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), bitwise: the fuzz crate does not depend on `crc32fast` itself.
fn crc32_ieee(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &x in b {
        crc ^= u32::from(x);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Where two encodings first differ, for failure messages.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Returns whether `data` starts with a frame that decodes.
pub fn check_frame(data: &[u8]) -> bool {
    let Ok(f) = decode_frame(data) else {
        return false;
    };
    assert!(
        !f.payload.is_empty(),
        "decoded a frame with an empty payload"
    );
    assert_eq!(f.len, frame_len(f.payload.len()), "frame length");
    assert!(
        f.len <= data.len() && f.len >= FRAME_OVERHEAD,
        "frame of {} bytes decoded from {} bytes",
        f.len,
        data.len()
    );
    let mut again = vec![0u8; f.len];
    encode_frame_into(&mut again, f.flags, f.seq, f.ts, f.payload, &f.mac);
    assert!(
        again == data[..f.len],
        "a decoded frame does not re-encode to its bytes (first difference at byte {})",
        first_difference(&again, data)
    );
    true
}

/// Returns whether `data` starts with a segment header that decodes.
pub fn check_header(data: &[u8]) -> bool {
    let Ok(h) = SegmentHeader::decode(data) else {
        return false;
    };
    let again = h.encode();
    assert!(
        again[..] == data[..HEADER_LEN],
        "a decoded segment header does not re-encode to its bytes (first difference at byte {}): {h:?}",
        first_difference(&again, data)
    );
    true
}

/// Returns whether `data` starts with a footer that decodes.
pub fn check_footer(data: &[u8]) -> bool {
    let Some(f) = Footer::decode(data) else {
        return false;
    };
    assert!(f.count >= 1 && f.first_seq <= f.last_seq && f.min_ts <= f.max_ts);
    let again = f.encode();
    assert!(
        again[..] == data[..FOOTER_LEN],
        "a decoded footer does not re-encode to its bytes (first difference at byte {}): {f:?}",
        first_difference(&again, data)
    );
    true
}

/// Returns whether `data` is a meta file that decodes.
pub fn check_meta(data: &[u8]) -> bool {
    let Ok(m) = Meta::decode(data) else {
        return false;
    };
    assert_eq!(data.len(), META_LEN);
    let again = m.encode();
    assert!(
        again[..] == *data,
        "a decoded meta file does not re-encode to its bytes (first difference at byte {}): {m:?}",
        first_difference(&again, data)
    );
    true
}
