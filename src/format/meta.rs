//! `auditlog.meta`: the log's identity, written once when the log is created.
//!
//! ```text
//! 0 magic[8] "ALOGMETA" | 8 version u16 | 10 flags u16 | 12 reserved u32 | 16 log_id[16]
//! 32 created_ns i64 | 40 key_check[32] | 72 crc32(0..72) u32        (76 bytes)
//! ```
//!
//! `key_check` is `HMAC-SHA256(K, "auditlog/keycheck" || log_id)`: it lets `open` tell a wrong
//! key apart from tampering without revealing anything about the key.

use super::{arr16, arr32, le_i64, le_u16, le_u32, FORMAT_VERSION, MIN_FORMAT_VERSION};

pub const META_LEN: usize = 76;
const META_MAGIC: &[u8; 8] = b"ALOGMETA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub version: u16,
    pub log_id: [u8; 16],
    pub created_ns: i64,
    pub key_check: [u8; 32],
}

impl Meta {
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0..8].copy_from_slice(META_MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id);
        b[32..40].copy_from_slice(&self.created_ns.to_le_bytes());
        b[40..72].copy_from_slice(&self.key_check);
        let crc = crc32fast::hash(&b[..72]);
        b[72..76].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the meta file; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Meta, String> {
        if b.len() < 10 || &b[0..8] != META_MAGIC {
            return Err("bad magic".into());
        }
        let version = le_u16(b, 8);
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(format!("unsupported format version {version}"));
        }
        if b.len() != META_LEN {
            return Err(format!("expected {META_LEN} bytes, found {}", b.len()));
        }
        if le_u32(b, 72) != crc32fast::hash(&b[..72]) {
            return Err("checksum mismatch".into());
        }
        if b[10..16] != [0; 6] {
            return Err("flags or reserved bytes this version never writes".into());
        }
        Ok(Meta {
            version,
            log_id: arr16(b, 16),
            created_ns: le_i64(b, 32),
            key_check: arr32(b, 40),
        })
    }
}
