//! Segment header: the first [`HEADER_LEN`] bytes of every `.seg` file.

#[cfg(test)]
use super::FORMAT_VERSION;
use super::{
    arr16, arr32, le_i64, le_u16, le_u32, le_u64, FSS_FORMAT_VERSION, HEADER_FLAG_FORWARD_SECURE,
    MAX_FORMAT_VERSION, MIN_FORMAT_VERSION,
};

/// Size of the segment header in bytes.
pub const HEADER_LEN: usize = 128;

/// Magic bytes: "AUDLOGS" followed by the major format version in byte 7.
const MAGIC_PREFIX: &[u8; 7] = b"AUDLOGS";

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version from the magic.
    pub version: u16,
    /// Flags: 0 in versions 1 and 2; [`HEADER_FLAG_FORWARD_SECURE`] in version 3.
    pub flags: u16,
    /// The random id of the log this segment belongs to.
    pub log_id: [u8; 16],
    /// Sequence number of the first record in this segment.
    pub first_seq: u64,
    /// Creation time, UTC nanoseconds.
    pub created_ns: i64,
    /// The chain value this segment continues from (MAC of record `first_seq - 1`, or the
    /// genesis value for the first segment of a log).
    pub prev_hash: [u8; 32],
}

/// Why a header does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than [`HEADER_LEN`].
    Short,
    /// The magic is not auditlog's.
    BadMagic,
    /// Magic is ours but the version is not supported.
    Version(u16),
    /// The CRC over bytes 0..124 does not match.
    Checksum,
    /// The CRC matches but flags or reserved bytes hold values this version never writes.
    Unknown,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is shorter than {HEADER_LEN} bytes"),
            HeaderError::BadMagic => write!(f, "not an auditlog segment (bad magic)"),
            HeaderError::Version(v) => write!(f, "unsupported segment format version {v}"),
            HeaderError::Checksum => write!(f, "segment header checksum mismatch"),
            HeaderError::Unknown => write!(
                f,
                "segment header has flags or reserved bytes this version never writes"
            ),
        }
    }
}

impl SegmentHeader {
    /// Encodes the header into exactly [`HEADER_LEN`] bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..7].copy_from_slice(MAGIC_PREFIX);
        // A header keeps the version it was written with (a v1 segment stays v1).
        b[7] = self.version as u8;
        b[8..10].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
        b[10..12].copy_from_slice(&self.flags.to_le_bytes());
        // 12..16 reserved, zero
        b[16..32].copy_from_slice(&self.log_id);
        b[32..40].copy_from_slice(&self.first_seq.to_le_bytes());
        b[40..48].copy_from_slice(&self.created_ns.to_le_bytes());
        b[48..80].copy_from_slice(&self.prev_hash);
        // 80..124 reserved, zero
        let crc = crc32fast::hash(&b[0..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a header from the start of `b`.
    pub fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Short);
        }
        if &b[0..7] != MAGIC_PREFIX {
            return Err(HeaderError::BadMagic);
        }
        // The version is checked before the checksum, so that a file of another version is
        // reported as such rather than as corruption.
        let version = b[7] as u16;
        if !(MIN_FORMAT_VERSION..=MAX_FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::Version(version));
        }
        let crc = le_u32(b, 124);
        if crc != crc32fast::hash(&b[0..124]) {
            return Err(HeaderError::Checksum);
        }
        // Version 3 (and only it) carries the forward-secure flag, and always does.
        let flags_ok = match version {
            FSS_FORMAT_VERSION => le_u16(b, 10) == HEADER_FLAG_FORWARD_SECURE,
            _ => le_u16(b, 10) == 0,
        };
        if le_u16(b, 8) as usize != HEADER_LEN
            || !flags_ok
            || b[12..16] != [0; 4]
            || b[80..124].iter().any(|&x| x != 0)
        {
            return Err(HeaderError::Unknown);
        }
        Ok(SegmentHeader {
            version,
            flags: le_u16(b, 10),
            log_id: arr16(b, 16),
            first_seq: le_u64(b, 32),
            created_ns: le_i64(b, 40),
            prev_hash: arr32(b, 48),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_every_flipped_bit_is_caught() {
        let h = SegmentHeader {
            version: FORMAT_VERSION,
            flags: 0,
            log_id: [7; 16],
            first_seq: 42,
            created_ns: 1_700_000_000_000_000_000,
            prev_hash: [9; 32],
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        for i in 0..HEADER_LEN * 8 {
            let mut c = b;
            c[i / 8] ^= 1 << (i % 8);
            assert!(
                SegmentHeader::decode(&c).is_err(),
                "bit {i} flip not caught"
            );
        }
        assert_eq!(
            SegmentHeader::decode(&[0u8; HEADER_LEN]),
            Err(HeaderError::BadMagic)
        );
        assert_eq!(SegmentHeader::decode(&b[..100]), Err(HeaderError::Short));
    }

    #[test]
    fn version_3_needs_exactly_the_forward_secure_flag() {
        let mut h = SegmentHeader {
            version: FSS_FORMAT_VERSION,
            flags: HEADER_FLAG_FORWARD_SECURE,
            log_id: [7; 16],
            first_seq: 0,
            created_ns: 1,
            prev_hash: [9; 32],
        };
        assert_eq!(SegmentHeader::decode(&h.encode()).unwrap(), h);
        h.flags = 0;
        assert_eq!(
            SegmentHeader::decode(&h.encode()),
            Err(HeaderError::Unknown)
        );
        h.version = FORMAT_VERSION;
        h.flags = HEADER_FLAG_FORWARD_SECURE;
        assert_eq!(
            SegmentHeader::decode(&h.encode()),
            Err(HeaderError::Unknown)
        );
        h.version = FSS_FORMAT_VERSION + 1;
        assert_eq!(
            SegmentHeader::decode(&h.encode()),
            Err(HeaderError::Version(FSS_FORMAT_VERSION + 1))
        );
    }
}
