//! Record frame: one audit event inside a segment.
//!
//! ```text
//! 0        4           8       10       12      20      28          28+n     60+n    64+n
//! | len u32 | lencheck u32 | flags u16 | rsv u16 | seq u64 | ts i64 | payload | mac[32] | crc u32 |
//! ```
//!
//! `lencheck` is `crc32(bytes 0..4) ^ LEN_SALT`; `crc` is CRC-32 over bytes `0..60+n`. A zeroed
//! region fails both (len 0 is invalid and the CRC of zeros never matches zero after the salt),
//! and a half-written frame fails the final CRC.

use super::{arr32, le_i64, le_u16, le_u32, le_u64};

/// Bytes before the payload.
pub const FRAME_HEADER_LEN: usize = 28;
/// Bytes after the payload (MAC + CRC).
pub const FRAME_TRAILER_LEN: usize = 36;
/// Total framing overhead per record.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_LEN + FRAME_TRAILER_LEN;
/// A length field with this value marks the segment footer instead of a record.
pub const FOOTER_MARKER: u32 = u32::MAX;
/// Flag bit: the payload was replaced by a redaction record.
pub const FRAME_FLAG_REDACTED: u16 = 1;
/// Largest payload a frame may declare (16 MiB); real limits are enforced before writing.
pub const MAX_FRAME_PAYLOAD: u32 = 16 << 20;

const LEN_SALT: u32 = 0x5EA1_F00D;
/// Flag bits a version-1 reader accepts.
const KNOWN_FLAGS: u16 = FRAME_FLAG_REDACTED;

/// Total size of a frame with a payload of `payload_len` bytes.
pub const fn frame_len(payload_len: usize) -> usize {
    FRAME_OVERHEAD + payload_len
}

pub(crate) fn len_check(len_bytes: &[u8]) -> u32 {
    crc32fast::hash(len_bytes) ^ LEN_SALT
}

/// A decoded, CRC-checked frame borrowing its payload from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub flags: u16,
    pub seq: u64,
    pub ts: i64,
    pub payload: &'a [u8],
    pub mac: [u8; 32],
    /// Total encoded length of this frame.
    pub len: usize,
}

/// Why bytes at an offset are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first 8 bytes are zero: the unwritten, preallocated tail.
    Zero,
    /// Fewer bytes remain than the frame header or the declared length needs.
    Truncated,
    /// The length or its check is wrong.
    BadLength,
    /// The frame CRC does not match (torn write or corruption).
    Checksum,
    /// The bytes are the segment footer, not a record.
    Footer,
    /// The CRC matches but flags or reserved bytes hold values this version never writes.
    Unknown,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameError::Zero => "zeroed bytes where a frame was expected",
            FrameError::Truncated => "frame extends past the end of the segment",
            FrameError::BadLength => "frame length field fails its check",
            FrameError::Checksum => "frame checksum mismatch",
            FrameError::Footer => "segment footer",
            FrameError::Unknown => "frame has flags or reserved bytes this version never writes",
        })
    }
}

/// Writes a frame into `dst`, which must be exactly `frame_len(payload.len())` bytes.
pub fn encode_frame_into(
    dst: &mut [u8],
    flags: u16,
    seq: u64,
    ts: i64,
    payload: &[u8],
    mac: &[u8; 32],
) {
    let n = payload.len();
    assert_eq!(dst.len(), frame_len(n), "frame buffer has the wrong size");
    assert!(
        n > 0 && n as u32 <= MAX_FRAME_PAYLOAD,
        "payload length out of range"
    );
    let len = (n as u32).to_le_bytes();
    dst[0..4].copy_from_slice(&len);
    dst[4..8].copy_from_slice(&len_check(&len).to_le_bytes());
    dst[8..10].copy_from_slice(&flags.to_le_bytes());
    dst[10..12].copy_from_slice(&[0, 0]);
    dst[12..20].copy_from_slice(&seq.to_le_bytes());
    dst[20..28].copy_from_slice(&ts.to_le_bytes());
    dst[28..28 + n].copy_from_slice(payload);
    dst[28 + n..60 + n].copy_from_slice(mac);
    let crc = crc32fast::hash(&dst[..60 + n]);
    dst[60 + n..64 + n].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the frame starting at `b[0]`. Never panics on hostile input.
pub fn decode_frame(b: &[u8]) -> Result<Frame<'_>, FrameError> {
    if b.len() < 8 {
        return if b.iter().all(|&x| x == 0) {
            Err(FrameError::Zero)
        } else {
            Err(FrameError::Truncated)
        };
    }
    if b[..8].iter().all(|&x| x == 0) {
        return Err(FrameError::Zero);
    }
    let len = le_u32(b, 0);
    if le_u32(b, 4) != len_check(&b[0..4]) {
        return Err(FrameError::BadLength);
    }
    if len == FOOTER_MARKER {
        return Err(FrameError::Footer);
    }
    if len == 0 || len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::BadLength);
    }
    let n = len as usize;
    let total = frame_len(n);
    if b.len() < total {
        return Err(FrameError::Truncated);
    }
    let crc = le_u32(b, 60 + n);
    if crc != crc32fast::hash(&b[..60 + n]) {
        return Err(FrameError::Checksum);
    }
    let flags = le_u16(b, 8);
    if flags & !KNOWN_FLAGS != 0 || b[10..12] != [0, 0] {
        return Err(FrameError::Unknown);
    }
    Ok(Frame {
        flags,
        seq: le_u64(b, 12),
        ts: le_i64(b, 20),
        payload: &b[28..28 + n],
        mac: arr32(b, 28 + n),
        len: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let payload = b"hello audit world";
        let mut buf = vec![0u8; frame_len(payload.len())];
        encode_frame_into(&mut buf, 0, 7, -3, payload, &[0xAB; 32]);
        buf
    }

    #[test]
    fn roundtrip() {
        let b = sample();
        let f = decode_frame(&b).unwrap();
        assert_eq!(
            (f.seq, f.ts, f.payload, f.mac, f.len),
            (7, -3, &b"hello audit world"[..], [0xAB; 32], b.len())
        );
    }

    #[test]
    fn every_bit_flip_and_every_truncation_fails() {
        let b = sample();
        for i in 0..b.len() * 8 {
            let mut c = b.clone();
            c[i / 8] ^= 1 << (i % 8);
            assert!(decode_frame(&c).is_err(), "bit {i} flip passed");
        }
        for cut in 0..b.len() {
            let mut c = b.clone();
            c[cut..].iter_mut().for_each(|x| *x = 0);
            assert!(decode_frame(&c).is_err(), "zeroed tail from {cut} passed");
            assert!(
                decode_frame(&b[..cut]).is_err(),
                "truncation at {cut} passed"
            );
        }
        assert_eq!(decode_frame(&[0u8; 100]), Err(FrameError::Zero));
    }
}
