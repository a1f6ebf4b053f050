//! Byte layout of everything auditlog writes. Pure functions over `&[u8]`: no I/O.
//!
//! The layouts are specified byte by byte in `docs/FORMAT.md`; the constants here are the
//! single source of truth for the code.

mod footer;
mod frame;
mod header;
mod meta;

pub use footer::{Footer, FOOTER_LEN};
pub use frame::{
    decode_frame, encode_frame_into, frame_len, Frame, FrameError, FOOTER_MARKER,
    FRAME_FLAG_REDACTED, FRAME_HEADER_LEN, FRAME_OVERHEAD, FRAME_TRAILER_LEN, MAX_FRAME_PAYLOAD,
};
pub use header::{HeaderError, SegmentHeader, HEADER_LEN};
pub use meta::{Meta, META_LEN};

/// The on-disk format version written by this build. Bump on any layout change.
///
/// - 1: segments, frames, footers, meta, checkpoints, index side files.
/// - 2: adds redacted frames (flag bit 0, payload marker 0x52), `policy.log` and the archive
///   tier. A version-1 segment never holds a redacted frame.
pub const FORMAT_VERSION: u16 = 2;
/// The segment header version of a forward-secure log (`Options::forward_secure`): its
/// records are MACed with per-epoch keys and bound to their epoch (docs/FORMAT.md,
/// "Forward-secure logs"). Plain logs keep writing [`FORMAT_VERSION`].
///
/// - 3: segment header flag bit 0 ([`HEADER_FLAG_FORWARD_SECURE`]) set; `fss.seals` and
///   `fss.key` beside the segments. Frame bytes are unchanged; their MAC input is not.
pub const FSS_FORMAT_VERSION: u16 = 3;
/// The newest format version this build reads.
pub const MAX_FORMAT_VERSION: u16 = FSS_FORMAT_VERSION;
/// Segment header flag: the segment belongs to a forward-secure log (version 3 only).
pub const HEADER_FLAG_FORWARD_SECURE: u16 = 1;
/// The oldest format version this build reads.
pub const MIN_FORMAT_VERSION: u16 = 1;

/// True when every byte is zero; compares a page at a time (memcmp), which matters when
/// checking the preallocated tail of a 64 MiB segment.
pub fn is_zero(b: &[u8]) -> bool {
    const Z: [u8; 4096] = [0; 4096];
    b.chunks(Z.len()).all(|c| c == &Z[..c.len()])
}

/// Little-endian readers over a slice whose length the caller has already checked.
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn le_i64(b: &[u8], at: usize) -> i64 {
    le_u64(b, at) as i64
}

pub(crate) fn arr32(b: &[u8], at: usize) -> [u8; 32] {
    let mut x = [0u8; 32];
    x.copy_from_slice(&b[at..at + 32]);
    x
}

pub(crate) fn arr16(b: &[u8], at: usize) -> [u8; 16] {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    x
}
