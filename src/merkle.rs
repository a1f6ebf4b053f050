//! The RFC 9162 §2.1 Merkle tree over a log's records (public verifiability).
//!
//! ```text
//! leaf bytes   = le64(seq) || le64(ts_ns) || d        (48 bytes; d as the chain covers it)
//! leaf hash    = SHA-256(0x00 || leaf bytes)
//! node hash    = SHA-256(0x01 || left || right)
//! MTH({})      = SHA-256("")
//! ```
//!
//! `d` is the payload digest the hash chain covers (`SHA-256(payload)`, or for a redacted
//! record the original digest it keeps), so a redaction does not change the tree. Leaf `i` is
//! the record with seq `i`.
//!
//! Everything here is pure: trees are read through [`NodeSource`], which hands out the hash
//! of a complete subtree (`level`, `index`) = the node over leaves
//! `[index << level, (index + 1) << level)`. Proof generation follows RFC 9162 §2.1.3.1
//! (`PATH`) and §2.1.4.1 (`PROOF`); verification follows §2.1.3.2 and §2.1.4.2 step by step.

use sha2::{Digest, Sha256};

use crate::chain::Hash;
use crate::error::{Error, Result};

/// Length of a leaf's bytes: `le64(seq) || le64(ts_ns) || d`.
pub const LEAF_BYTES: usize = 48;

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(m.into())
}

/// The bytes a leaf commits to.
pub fn leaf_bytes(seq: u64, ts_ns: i64, digest: &Hash) -> [u8; LEAF_BYTES] {
    let mut b = [0u8; LEAF_BYTES];
    b[..8].copy_from_slice(&seq.to_le_bytes());
    b[8..16].copy_from_slice(&ts_ns.to_le_bytes());
    b[16..].copy_from_slice(digest);
    b
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The leaf hash of a record.
pub fn record_leaf_hash(seq: u64, ts_ns: i64, digest: &Hash) -> Hash {
    leaf_hash(&leaf_bytes(seq, ts_ns, digest))
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Hands out hashes of complete subtrees of one tree.
pub trait NodeSource {
    /// The hash of the complete subtree over leaves `[index << level, (index + 1) << level)`.
    /// Only asked for subtrees that lie inside the tree the caller names.
    fn node(&self, level: u8, index: u64) -> Result<Hash>;
}

/// A tree held in memory, every level (for tests and small trees).
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[0]` are the leaf hashes; `levels[l][i]` is complete node (l, i).
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    pub fn new() -> Self {
        MemoryTree {
            levels: vec![Vec::new()],
        }
    }

    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut t = Self::new();
        for h in leaves {
            t.push(h);
        }
        t
    }

    /// Appends a leaf hash, computing the complete nodes it finishes.
    pub fn push(&mut self, leaf: Hash) {
        self.levels[0].push(leaf);
        let mut l = 0;
        while self.levels[l].len().is_multiple_of(2) {
            let n = self.levels[l].len();
            let h = node_hash(&self.levels[l][n - 2], &self.levels[l][n - 1]);
            if self.levels.len() == l + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[l + 1].push(h);
            l += 1;
        }
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn root(&self) -> Hash {
        tree_hash(self, self.size()).expect("in-memory tree is complete")
    }
}

impl NodeSource for MemoryTree {
    fn node(&self, level: u8, index: u64) -> Result<Hash> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or_else(|| err(format!("no complete node at level {level}, index {index}")))
    }
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, start + n)`, `start` a multiple of the largest power of two ≤ n
/// (always true for the ranges RFC 9162's recursion visits).
fn range_hash(src: &dyn NodeSource, start: u64, n: u64) -> Result<Hash> {
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() {
        let level = n.trailing_zeros() as u8;
        return src.node(level, start >> level);
    }
    let k = split(n);
    let left = range_hash(src, start, k)?;
    let right = range_hash(src, start + k, n - k)?;
    Ok(node_hash(&left, &right))
}

/// The tree hash `MTH(D[n])` of the first `n` leaves.
pub fn tree_hash(src: &dyn NodeSource, n: u64) -> Result<Hash> {
    range_hash(src, 0, n)
}

/// The inclusion proof `PATH(index, D[size])` (RFC 9162 §2.1.3.1), leaf side first.
pub fn inclusion_proof(src: &dyn NodeSource, index: u64, size: u64) -> Result<Vec<Hash>> {
    if index >= size {
        return Err(err(format!(
            "inclusion proof: leaf index {index} is not below tree size {size}"
        )));
    }
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(src: &dyn NodeSource, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) -> Result<()> {
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, k, out)?;
        out.push(range_hash(src, start + k, n - k)?);
    } else {
        path(src, m - k, start + k, n - k, out)?;
        out.push(range_hash(src, start, k)?);
    }
    Ok(())
}

/// The consistency proof `PROOF(old, D[new])` (RFC 9162 §2.1.4.1). Empty when the sizes are
/// equal; an old size of 0 or above the new size is an error.
pub fn consistency_proof(src: &dyn NodeSource, old: u64, new: u64) -> Result<Vec<Hash>> {
    if old == 0 || old > new {
        return Err(err(format!(
            "consistency proof: old size {old} must be in 1..={new} (the new size)"
        )));
    }
    let mut out = Vec::new();
    subproof(src, old, 0, new, true, &mut out)?;
    Ok(out)
}

fn subproof(
    src: &dyn NodeSource,
    m: u64,
    start: u64,
    n: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<()> {
    if m == n {
        if !complete {
            out.push(range_hash(src, start, n)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, k, complete, out)?;
        out.push(range_hash(src, start + k, n - k)?);
    } else {
        subproof(src, m - k, start + k, n - k, false, out)?;
        out.push(range_hash(src, start, k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof as RFC 9162 §2.1.3.2 specifies.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<()> {
    if index >= size {
        return Err(err(format!(
            "inclusion proof: leaf index {index} is not below tree size {size}"
        )));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for (i, p) in proof.iter().enumerate() {
        if snode == 0 {
            return Err(err(format!(
                "inclusion proof for leaf {index} in tree {size}: {} hashes, at most {i} expected",
                proof.len()
            )));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(err(format!(
            "inclusion proof for leaf {index} in tree {size}: {} hashes is too few",
            proof.len()
        )));
    }
    if r != *root {
        return Err(err(format!(
            "inclusion proof for leaf {index} in tree {size}: the computed root does not match"
        )));
    }
    Ok(())
}

/// Verifies a consistency proof as RFC 9162 §2.1.4.2 specifies. Equal sizes need an empty
/// proof and equal roots; an old size of 0 or above the new size is an error.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    let what = format!("consistency proof from size {old} to {new}");
    if old == 0 || old > new {
        return Err(err(format!("{what}: old size must be in 1..=new size")));
    }
    if old == new {
        if !proof.is_empty() {
            return Err(err(format!(
                "{what}: equal sizes take an empty proof, got {} hashes",
                proof.len()
            )));
        }
        if old_root != new_root {
            return Err(err(format!("{what}: equal sizes but different roots")));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(err(format!("{what}: the proof is empty")));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for (i, c) in path.iter().enumerate().skip(1) {
        if snode == 0 {
            return Err(err(format!(
                "{what}: {} hashes, fewer expected (stopped at {i})",
                proof.len()
            )));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(err(format!("{what}: {} hashes is too few", proof.len())));
    }
    if fr != *old_root {
        return Err(err(format!("{what}: the old root does not match")));
    }
    if sr != *new_root {
        return Err(err(format!("{what}: the new root does not match")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_roots() {
        // Empty tree and one leaf, by definition.
        let t = MemoryTree::new();
        assert_eq!(t.root(), empty_root());
        let one = MemoryTree::from_leaf_hashes([leaf_hash(b"")]);
        assert_eq!(one.root(), leaf_hash(b""));
        assert_eq!(
            crate::chain::hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
