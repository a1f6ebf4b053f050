//! Segment footer ("seal"): written after the last record when a segment is sealed.

use super::frame::{len_check, FOOTER_MARKER};
use super::{arr32, le_i64, le_u32, le_u64};

/// Size of the footer in bytes. A sealed segment file ends exactly with its footer.
pub const FOOTER_LEN: usize = 128;
const SEAL_MAGIC: &[u8; 8] = b"ALSEAL\0\x01";

/// Summary of a sealed segment, enough to open the log without scanning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Number of records in the segment (at least 1).
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Smallest and largest record timestamp, UTC nanoseconds.
    pub min_ts: i64,
    pub max_ts: i64,
    /// Chain value (MAC) of the last record.
    pub last_mac: [u8; 32],
    /// Byte offset where the records end and this footer starts.
    pub records_end: u64,
    /// When the segment was sealed, UTC nanoseconds.
    pub sealed_ns: i64,
}

impl Footer {
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        let marker = FOOTER_MARKER.to_le_bytes();
        b[0..4].copy_from_slice(&marker);
        b[4..8].copy_from_slice(&len_check(&marker).to_le_bytes());
        b[8..16].copy_from_slice(SEAL_MAGIC);
        b[16..24].copy_from_slice(&self.count.to_le_bytes());
        b[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.last_seq.to_le_bytes());
        b[40..48].copy_from_slice(&self.min_ts.to_le_bytes());
        b[48..56].copy_from_slice(&self.max_ts.to_le_bytes());
        b[56..88].copy_from_slice(&self.last_mac);
        b[88..96].copy_from_slice(&self.records_end.to_le_bytes());
        b[96..104].copy_from_slice(&self.sealed_ns.to_le_bytes());
        // 104..124 reserved, zero
        let crc = crc32fast::hash(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a footer from the start of `b`; `None` unless every check passes.
    pub fn decode(b: &[u8]) -> Option<Footer> {
        if b.len() < FOOTER_LEN
            || le_u32(b, 0) != FOOTER_MARKER
            || le_u32(b, 4) != len_check(&b[0..4])
            || &b[8..16] != SEAL_MAGIC
            || le_u32(b, 124) != crc32fast::hash(&b[..124])
            || b[104..124].iter().any(|&x| x != 0)
        {
            return None;
        }
        let f = Footer {
            count: le_u64(b, 16),
            first_seq: le_u64(b, 24),
            last_seq: le_u64(b, 32),
            min_ts: le_i64(b, 40),
            max_ts: le_i64(b, 48),
            last_mac: arr32(b, 56),
            records_end: le_u64(b, 88),
            sealed_ns: le_i64(b, 96),
        };
        let consistent = f.count >= 1
            && f.last_seq >= f.first_seq
            && f.last_seq - f.first_seq == f.count - 1
            && f.min_ts <= f.max_ts;
        consistent.then_some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_flips() {
        let f = Footer {
            count: 3,
            first_seq: 10,
            last_seq: 12,
            min_ts: 1,
            max_ts: 5,
            last_mac: [3; 32],
            records_end: 999,
            sealed_ns: 77,
        };
        let b = f.encode();
        assert_eq!(Footer::decode(&b), Some(f));
        for i in 0..FOOTER_LEN * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert_eq!(Footer::decode(&c), None, "bit {i}");
        }
    }
}
