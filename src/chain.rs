//! The keyed hash chain (the security contract of DESIGN.md):
//!
//! ```text
//! d_i    = SHA-256(p_i)
//! h_i    = HMAC-SHA256(K, h_{i-1} || le64(seq_i) || le64(ts_i) || d_i)
//! h_{-1} = HMAC-SHA256(K, "auditlog/genesis" || log_id)
//! ```
//!
//! This module knows nothing about files. The keyed MAC state is prepared once per key: a
//! chain step runs the SHA-256 compression function directly from the key's inner and outer
//! midstates (RFC 2104's `K ^ ipad` and `K ^ opad` blocks, compressed once), so it costs
//! exactly three compressions (two for the 80-byte inner message, one for the outer hash) and
//! no buffering.

use hmac::{Hmac, Mac};
use sha2::digest::generic_array::{typenum::U64, GenericArray};
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

    /// The SHA-256 states after compressing `K ^ ipad` and `K ^ opad` (RFC 2104; a key longer
    /// than a block is hashed first).
    fn midstates(&self) -> Midstates {
        let mut k = Zeroizing::new([0u8; 64]);
        if self.bytes.len() > 64 {
            k[..32].copy_from_slice(&Sha256::digest(&self.bytes[..]));
        } else {
            k[..self.bytes.len()].copy_from_slice(&self.bytes);
        }
        let state = |pad: u8| {
            let mut block = GenericArray::<u8, U64>::default();
            for (b, k) in block.iter_mut().zip(k.iter()) {
                *b = k ^ pad;
            }
            let mut st = SHA256_IV;
            sha2::compress256(&mut st, std::slice::from_ref(&block));
            zeroize::Zeroize::zeroize(block.as_mut_slice());
            st
        };
        Midstates {
            inner: state(0x36),
            outer: state(0x5c),
        }
    }
}

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// HMAC-SHA256's keyed midstates (secret: as good as the key for MACs).
#[derive(Clone, Copy)]
struct Midstates {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// SHA-256 of a payload: the `d_i` that the chain covers.
pub fn digest(payload: &[u8]) -> Hash {
    Sha256::digest(payload).into()
}

/// The prepared keyed chain. Cheap to clone; clones share nothing mutable.
#[derive(Clone)]
pub struct Chain {
    base: HmacSha256,
    mid: Midstates,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chain(<keyed>)")
    }
}

impl Chain {
    pub fn new(key: &HmacKey) -> Self {
        Chain {
            base: key.mac(),
            mid: key.midstates(),
        }
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
        // Inner hash: the 80-byte message after the `K ^ ipad` block, padded to two blocks
        // (0x80, zeros, the bit length of ipad block + message: (64 + 80) * 8).
        let mut b = [GenericArray::<u8, U64>::default(); 2];
        b[0][0..32].copy_from_slice(prev);
        b[0][32..40].copy_from_slice(&seq.to_le_bytes());
        b[0][40..48].copy_from_slice(&ts.to_le_bytes());
        b[0][48..64].copy_from_slice(&digest[..16]);
        b[1][0..16].copy_from_slice(&digest[16..]);
        b[1][16] = 0x80;
        b[1][56..64].copy_from_slice(&((64u64 + 80) * 8).to_be_bytes());
        let mut inner = self.mid.inner;
        sha2::compress256(&mut inner, &b);
        // Outer hash: the 32-byte inner hash after the `K ^ opad` block, one padded block.
        let mut o = GenericArray::<u8, U64>::default();
        for (i, w) in inner.iter().enumerate() {
            o[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        o[32] = 0x80;
        o[56..64].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
        let mut outer = self.mid.outer;
        sha2::compress256(&mut outer, std::slice::from_ref(&o));
        let mut h = [0u8; 32];
        for (i, w) in outer.iter().enumerate() {
            h[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        h
    }

    /// A chain keyed with a raw 32-byte key (a forward-secure epoch key, see `fss`).
    pub(crate) fn from_raw(key: &[u8; 32]) -> Self {
        Chain::new(&HmacKey {
            bytes: Zeroizing::new(key.to_vec()),
        })
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
    prefixed_hex("", b)
}

/// `prefix` followed by the lower-case hex of `b`, in one allocation.
pub(crate) fn prefixed_hex(prefix: &str, b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(prefix.len() + b.len() * 2);
    s.push_str(prefix);
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

    /// The midstate step equals the `hmac` crate's HMAC for keys shorter than, as long as,
    /// and longer than a SHA-256 block (which RFC 2104 hashes first).
    #[test]
    fn midstate_step_equals_hmac_for_every_key_length() {
        for len in [32usize, 63, 64, 65, 100, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let key = HmacKey::from_bytes(&bytes).unwrap();
            let c = Chain::new(&key);
            for seq in [0u64, 1, u64::MAX] {
                let prev = [seq as u8; 32];
                let d = digest(&seq.to_le_bytes());
                let mut m = <HmacSha256 as Mac>::new_from_slice(&bytes).unwrap();
                m.update(&prev);
                m.update(&seq.to_le_bytes());
                m.update(&i64::MIN.to_le_bytes());
                m.update(&d);
                let want: Hash = m.finalize().into_bytes().into();
                assert_eq!(c.step(&prev, seq, i64::MIN, &d), want, "key of {len} bytes");
            }
        }
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
