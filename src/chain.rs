//! The keyed hash chain (the security contract of DESIGN.md):
//!
//! ```text
//! d_i    = SHA-256(p_i)
//! h_i    = HMAC-SHA256(K, h_{i-1} || le64(seq_i) || le64(ts_i) || d_i)
//! h_{-1} = HMAC-SHA256(K, "auditlog/genesis" || log_id)
//! ```
//!
//! This module knows nothing about files. The keyed MAC state is prepared once per key and
//! cloned for every record, so a chain step costs three SHA-256 compressions (two for the
//! 80-byte inner message, one for the outer hash).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Minimum key length in bytes, as the seed requires.
pub const MIN_KEY_BYTES: usize = 32;

/// A chain value or MAC.
pub type Hash = [u8; 32];

/// The secret HMAC key. Never printed (its `Debug` is redacted), never written to the data
/// directory, zeroized when dropped.
#[derive(Clone)]
pub struct HmacKey {
    bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacKey(<{} bytes, redacted>)", self.bytes.len())
    }
}

impl HmacKey {
    /// Uses `bytes` as the key. Fails if shorter than 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(Error::Key(format!(
                "key is {} bytes, the minimum is {MIN_KEY_BYTES}",
                bytes.len()
            )));
        }
        Ok(HmacKey {
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// Reads the key from the environment variable `name` (its raw bytes).
    pub fn from_env(name: &str) -> Result<Self> {
        let value = std::env::var_os(name).ok_or_else(|| {
            Error::Key(format!(
                "environment variable {name} is not set; export a secret of at least {MIN_KEY_BYTES} bytes"
            ))
        })?;
        let value = Zeroizing::new(value.into_encoded_bytes());
        Self::from_bytes(&value).map_err(|e| match e {
            Error::Key(m) => Error::Key(format!("environment variable {name}: {m}")),
            other => other,
        })
    }

    /// Resolves a config value as the seed defines it: `env.NAME` reads the variable `NAME`,
    /// anything else is the key itself.
    pub fn from_config_value(value: &str) -> Result<Self> {
        match value.strip_prefix("env.") {
            Some(name) if !name.is_empty() => Self::from_env(name),
            Some(_) => Err(Error::Key(
                "`env.` must be followed by a variable name".into(),
            )),
            None => Self::from_bytes(value.as_bytes()),
        }
    }

    /// A fresh random 32-byte key (for demos and tests; it dies with the process).
    pub fn generate() -> Self {
        let mut b = Zeroizing::new(vec![0u8; 32]);
        getrandom::fill(&mut b).expect("operating system random source failed");
        HmacKey { bytes: b }
    }

    pub(crate) fn mac(&self) -> HmacSha256 {
        <HmacSha256 as Mac>::new_from_slice(&self.bytes).expect("HMAC accepts any key length")
    }
}

/// SHA-256 of a payload: the `d_i` that the chain covers.
pub fn digest(payload: &[u8]) -> Hash {
    Sha256::digest(payload).into()
}

/// The prepared keyed chain. Cheap to clone; clones share nothing mutable.
#[derive(Clone)]
pub struct Chain {
    base: HmacSha256,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chain(<keyed>)")
    }
}

impl Chain {
    pub fn new(key: &HmacKey) -> Self {
        Chain { base: key.mac() }
    }

    fn finish(m: HmacSha256) -> Hash {
        m.finalize().into_bytes().into()
    }

    /// `h_{-1}` for a log.
    pub fn genesis(&self, log_id: &[u8; 16]) -> Hash {
        let mut m = self.base.clone();
        m.update(b"auditlog/genesis");
        m.update(log_id);
        Self::finish(m)
    }

    /// One chain step: `HMAC(K, prev || le64(seq) || le64(ts) || digest)`.
    pub fn step(&self, prev: &Hash, seq: u64, ts: i64, digest: &Hash) -> Hash {
        let mut input = [0u8; 80];
        input[0..32].copy_from_slice(prev);
        input[32..40].copy_from_slice(&seq.to_le_bytes());
        input[40..48].copy_from_slice(&ts.to_le_bytes());
        input[48..80].copy_from_slice(digest);
        let mut m = self.base.clone();
        m.update(&input);
        Self::finish(m)
    }

    /// A chain keyed with a raw 32-byte key (a forward-secure epoch key, see `fss`).
    pub(crate) fn from_raw(key: &[u8; 32]) -> Self {
        Chain {
            base: <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// One forward-secure chain step, binding the record to its epoch:
    /// `HMAC(K_epoch, prev || le64(seq) || le64(ts) || digest || le64(epoch))`. The 88-byte
    /// message costs the same two inner compressions as the 80-byte plain step.
    pub fn step_epoch(&self, prev: &Hash, seq: u64, ts: i64, digest: &Hash, epoch: u64) -> Hash {
        let mut input = [0u8; 88];
        input[0..32].copy_from_slice(prev);
        input[32..40].copy_from_slice(&seq.to_le_bytes());
        input[40..48].copy_from_slice(&ts.to_le_bytes());
        input[48..80].copy_from_slice(digest);
        input[80..88].copy_from_slice(&epoch.to_le_bytes());
        let mut m = self.base.clone();
        m.update(&input);
        Self::finish(m)
    }

    /// The key-check value stored in `auditlog.meta`.
    pub fn key_check(&self, log_id: &[u8; 16]) -> Hash {
        let mut m = self.base.clone();
        m.update(b"auditlog/keycheck");
        m.update(log_id);
        Self::finish(m)
    }

    /// MAC over an arbitrary domain-separated message (checkpoints).
    pub fn sign(&self, domain: &[u8], parts: &[&[u8]]) -> Hash {
        let mut m = self.base.clone();
        m.update(domain);
        for p in parts {
            m.update(p);
        }
        Self::finish(m)
    }
}

/// Constant-time comparison of two hashes.
pub fn ct_eq(a: &Hash, b: &Hash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

/// Parses lower- or upper-case hex into exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let val = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for i in 0..N {
        out[i] = (val(s[2 * i])? << 4) | val(s[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(HmacKey::from_bytes(&[1; 31]), Err(Error::Key(_))));
        assert!(HmacKey::from_bytes(&[1; 32]).is_ok());
        let e = HmacKey::from_env("AUDITLOG_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(e.to_string().contains("AUDITLOG_TEST_SURELY_UNSET_VAR"));
        assert!(!format!("{:?}", HmacKey::from_bytes(&[0x41; 40]).unwrap()).contains("AAAA"));
    }

    #[test]
    fn chain_step_matches_the_formula() {
        let key = HmacKey::from_bytes(&[5; 32]).unwrap();
        let c = Chain::new(&key);
        let d = digest(b"payload");
        let prev = c.genesis(&[1; 16]);
        let mut m = <HmacSha256 as Mac>::new_from_slice(&[5; 32]).unwrap();
        m.update(&prev);
        m.update(&9u64.to_le_bytes());
        m.update(&(-4i64).to_le_bytes());
        m.update(&d);
        let want: Hash = m.finalize().into_bytes().into();
        assert_eq!(c.step(&prev, 9, -4, &d), want);
        assert_ne!(c.step(&prev, 10, -4, &d), want);
    }

    #[test]
    fn hex_roundtrip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&b), "0001abff");
        assert_eq!(unhex::<4>("0001ABff"), Some(b));
        assert_eq!(unhex::<4>("0001ab"), None);
        assert_eq!(unhex::<4>("0001abzz"), None);
    }
}
