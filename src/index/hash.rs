//! The hasher of the index's term maps and code dictionaries.
//!
//! Building the active segment's index is the writer worker's main job, and with SipHash
//! (std's default) hashing the terms was a fifth of it. Terms are short strings (a user id, an
//! email, an event type): this hasher reads them eight bytes at a time and mixes with a
//! 64 x 64 -> 128-bit multiply folded to 64 bits, a few cycles per term.
//!
//! Terms come from the events, so from whoever sends them: the keys of the mix are drawn from
//! the operating system's random source once per process, so that which terms collide cannot
//! be worked out in advance and a flood of chosen user ids cannot turn a map into a list.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Keys of the mix, random per process.
fn keys() -> &'static [u64; 4] {
    static KEYS: OnceLock<[u64; 4]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut b = [0u8; 32];
        if getrandom::fill(&mut b).is_err() {
            // No random source: keys from the clock and the process id still differ per run.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            b[..8].copy_from_slice(&t.to_le_bytes());
            b[8..16].copy_from_slice(&u64::from(std::process::id()).to_le_bytes());
        }
        let mut s = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")).rotate_left(17);
        let mut out = [0u64; 4];
        for (i, k) in out.iter_mut().enumerate() {
            let extra = u64::from_le_bytes(
                b[16 + (i % 2) * 8..24 + (i % 2) * 8]
                    .try_into()
                    .expect("8 bytes"),
            );
            s = splitmix(s ^ extra.rotate_left(i as u32 * 13));
            // Odd, so that multiplying by a key never loses the low bit.
            *k = s | 1;
        }
        out
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The 128-bit product of `a` and `b`, its halves xor-ed.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn r64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

#[inline(always)]
fn r32(b: &[u8]) -> u64 {
    u64::from(u32::from_le_bytes(b[..4].try_into().expect("4 bytes")))
}

/// Builds [`TermHasher`]s keyed by the process's keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct TermState;

impl BuildHasher for TermState {
    type Hasher = TermHasher;

    #[inline]
    fn build_hasher(&self) -> TermHasher {
        let k = keys();
        TermHasher { acc: k[3], k: *k }
    }
}

/// The hasher [`TermState`] builds.
pub struct TermHasher {
    acc: u64,
    k: [u64; 4],
}

impl Hasher for TermHasher {
    #[inline]
    fn write(&mut self, b: &[u8]) {
        let [k0, k1, k2, _] = self.k;
        let len = b.len();
        let mut acc = self.acc;
        let (x, y) = if len <= 16 {
            if len >= 8 {
                (r64(b), r64(&b[len - 8..]))
            } else if len >= 4 {
                (r32(b), r32(&b[len - 4..]))
            } else if len > 0 {
                let x = u64::from(b[0]) | u64::from(b[len / 2]) << 8 | u64::from(b[len - 1]) << 16;
                (x, 0)
            } else {
                (0, 0)
            }
        } else {
            let mut rest = b;
            while rest.len() > 16 {
                acc = fold(r64(rest) ^ k1, r64(&rest[8..]) ^ acc);
                rest = &rest[16..];
            }
            (r64(&b[len - 16..]), r64(&b[len - 8..]))
        };
        self.acc = fold(x ^ k0 ^ acc, y ^ k2 ^ (len as u64).rotate_left(32));
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.acc = fold(self.acc ^ v ^ self.k[0], self.k[1]);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        fold(self.acc ^ self.k[2], self.k[3])
    }
}

/// A map keyed by terms (or codes), hashed with [`TermState`].
pub type TermMap<K, V> = hashbrown::HashMap<K, V, TermState>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn h(s: &str) -> u64 {
        TermState.hash_one(s)
    }

    #[test]
    fn equal_terms_hash_equal_and_near_terms_do_not_collide() {
        assert_eq!(h("user-17"), h(&String::from("user-17")));
        // Every length from 0 to 40 (each read path), and terms one byte apart.
        let mut seen = HashSet::new();
        let mut n = 0;
        for len in 0..40 {
            for c in [b'a', b'b', b'z', b'0'] {
                let mut t = vec![b'x'; len];
                if len > 0 {
                    t[len / 3] = c;
                }
                let t = String::from_utf8(t).expect("ascii");
                if seen.insert(t.clone()) {
                    n += 1;
                    assert!(HashSet::<u64>::from_iter(seen.iter().map(|s| h(s))).len() == n);
                }
            }
        }
        // A million user ids of the seed's shape: collisions of the full 64 bits would show a
        // broken mix (the chance of one at random is about 3e-8).
        let hashes: HashSet<u64> = (0..1_000_000).map(|i| h(&format!("user-{i}"))).collect();
        assert_eq!(hashes.len(), 1_000_000);
        // The buckets a map uses (low bits) spread evenly too.
        let mut buckets = vec![0u32; 1 << 12];
        for i in 0..(1u32 << 16) {
            buckets[(h(&format!("198.51.{}.{}", i >> 8, i & 255)) & 0xfff) as usize] += 1;
        }
        let max = buckets.iter().max().copied();
        assert!(
            max <= Some(48),
            "fullest of 4096 buckets holds {max:?} of 65536 (mean 16)"
        );
    }

    #[test]
    fn maps_with_the_term_state_find_what_they_hold() {
        let mut m: TermMap<String, u32> = TermMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("t{i}"), i);
        }
        assert!((0..10_000u32).all(|i| m.get(&format!("t{i}")) == Some(&i)));
        assert_eq!(m.get("t10000"), None);
        let mut j: TermMap<[u8; 3], u32> = TermMap::default();
        *j.entry([1, 2, 3]).or_insert(0) += 1;
        *j.entry([1, 2, 3]).or_insert(0) += 1;
        assert_eq!(j[&[1, 2, 3]], 2);
        assert_eq!(j.get(&[3, 2, 1]), None);
    }
}
