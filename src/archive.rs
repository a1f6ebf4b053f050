//! The archive tier: sealed segments older than `archive_days` move to `archive/` as
//! LZ4-compressed files that keep their header and footer uncompressed, so opening the log
//! reads a few hundred bytes per archived segment and decompresses one only when a query or
//! `verify` reads it.
//!
//! ```text
//! 0 magic "ALARCH\0\x01" | 8 segment header[128] | 136 segment footer[128]
//! 264 original length u64 | 272 crc32 of the original bytes u32 | 276 crc32 of the
//! compressed bytes u32 | 280 LZ4 block of the original segment file
//! ```
//!
//! Archived segments verify exactly like the originals (the decompressed bytes are the
//! original file, checked against its CRC). A rewrite (redaction, compaction) brings a
//! segment back to the data directory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::format::{Footer, SegmentHeader, FOOTER_LEN, HEADER_LEN};

/// Sub-directory of the data directory that holds archived segments.
pub const ARCHIVE_DIR: &str = "archive";
/// Extension of archived segment files (`NNNNNNNNNNNNNNNNNNNN.seg.lz4`).
pub const ARCHIVE_EXT: &str = "seg.lz4";
const MAGIC: &[u8; 8] = b"ALARCH\0\x01";
const PREAMBLE: usize = 8 + HEADER_LEN + FOOTER_LEN + 8 + 4 + 4;

/// The lazily decompressed bytes of an archived segment.
pub struct ArchivedData {
    pub path: PathBuf,
    cell: OnceLock<std::result::Result<Vec<u8>, String>>,
}

impl ArchivedData {
    pub fn new(path: PathBuf) -> ArchivedData {
        ArchivedData {
            path,
            cell: OnceLock::new(),
        }
    }

    /// The original segment bytes, or why they cannot be had.
    pub fn get(&self) -> std::result::Result<&[u8], &str> {
        match self.cell.get_or_init(|| load(&self.path)) {
            Ok(v) => Ok(v),
            Err(e) => Err(e),
        }
    }
}

/// Reads the uncompressed header and footer of an archived segment.
pub fn read_preamble(path: &Path) -> Result<(SegmentHeader, Footer)> {
    let mut b = [0u8; PREAMBLE];
    crate::nofollow::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("reading archived segment", path, e))?;
    let corrupt = |d: &str| Error::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        detail: format!("archived segment: {d}"),
    };
    if &b[..8] != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let h = SegmentHeader::decode(&b[8..8 + HEADER_LEN]).map_err(|e| corrupt(&e.to_string()))?;
    let f = Footer::decode(&b[8 + HEADER_LEN..8 + HEADER_LEN + FOOTER_LEN])
        .ok_or_else(|| corrupt("bad footer"))?;
    Ok((h, f))
}

fn load(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let all =
        crate::nofollow::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if all.len() < PREAMBLE || &all[..8] != MAGIC {
        return Err("archived segment is truncated or has a bad magic".into());
    }
    let u32_at = |i: usize| u32::from_le_bytes(all[i..i + 4].try_into().expect("4 bytes"));
    let raw_len = u64::from_le_bytes(all[264..272].try_into().expect("8 bytes"));
    let body = &all[PREAMBLE..];
    if crc32fast::hash(body) != u32_at(276) {
        return Err("archived segment: compressed data fails its checksum".into());
    }
    let raw_len =
        usize::try_from(raw_len).map_err(|_| "archived segment: length too large".to_string())?;
    if raw_len > 1 << 33 {
        return Err("archived segment: implausible length".into());
    }
    let raw = lz4_flex::block::decompress(body, raw_len)
        .map_err(|e| format!("archived segment does not decompress: {e}"))?;
    if crc32fast::hash(&raw) != u32_at(272) {
        return Err("archived segment: decompressed data fails its checksum".into());
    }
    if raw.get(..HEADER_LEN) != Some(&all[8..8 + HEADER_LEN]) {
        return Err("archived segment: header copy differs from the archived bytes".into());
    }
    Ok(raw)
}

/// Writes `raw` (a whole sealed segment file) as `archive/<name>.lz4`, synced; returns its path.
pub fn write(
    dir: &Path,
    name: &str,
    raw: &[u8],
    header: &SegmentHeader,
    footer: &Footer,
) -> Result<PathBuf> {
    let adir = dir.join(ARCHIVE_DIR);
    crate::fsio::create_dir_all("dir.create", &adir)
        .map_err(|e| Error::io("creating", &adir, e))?;
    let body = lz4_flex::block::compress(raw);
    let mut out = Vec::with_capacity(PREAMBLE + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&footer.encode());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(raw).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    let path = adir.join(format!("{name}.lz4"));
    let tmp = adir.join(format!("{name}.lz4.tmp"));
    (|| -> std::io::Result<()> {
        let f = crate::fsio::create_truncate("archive.write", &tmp)?;
        crate::fsio::write_at("archive.write", &f, &out, 0)?;
        crate::fsio::sync_all("archive.write", &f)?;
        crate::fsio::rename("archive.write", &tmp, &path)
    })()
    .map_err(|e| {
        let _ = crate::fsio::remove("archive.write", &tmp);
        Error::io("writing archived segment", &path, e)
    })?;
    crate::segment::sync_dir(&adir)?;
    crate::segment::sync_dir(dir)?;
    Ok(path)
}

/// True for a path inside the archive directory.
pub fn is_archived(path: &Path) -> bool {
    path.to_string_lossy().ends_with(ARCHIVE_EXT)
}
