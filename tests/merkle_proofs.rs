//! The RFC 9162 tree, proofs and verifiers of `auditlog::merkle`, against a naive recursive
//! implementation written straight from the RFC's definitions over slices of leaves.

use auditlog::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, tree_hash,
    verify_consistency, verify_inclusion, MemoryTree,
};
use auditlog::Hash;
use proptest::prelude::*;

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => empty_root(),
        1 => leaf_hash(&d[0]),
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn naive_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return vec![];
    }
    let k = k_of(n);
    if m < k {
        let mut p = naive_path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn naive_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = naive_subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = naive_subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn tree(d: &[Vec<u8>]) -> MemoryTree {
    MemoryTree::from_leaf_hashes(d.iter().map(|l| leaf_hash(l)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn tree_hash_matches_naive(n in 0usize..300) {
        let d = leaves(n);
        let t = tree(&d);
        prop_assert_eq!(t.root(), mth(&d));
        for m in [0, n / 3, n / 2, n.saturating_sub(1)] {
            prop_assert_eq!(tree_hash(&t, m as u64).unwrap(), mth(&d[..m]));
        }
    }

    #[test]
    fn inclusion_matches_naive_and_verifies(n in 1usize..300, m_frac in 0.0f64..1.0) {
        let d = leaves(n);
        let t = tree(&d);
        let m = ((n as f64) * m_frac) as usize % n;
        let p = inclusion_proof(&t, m as u64, n as u64).unwrap();
        prop_assert_eq!(&p, &naive_path(m, &d));
        let root = mth(&d);
        let leaf = leaf_hash(&d[m]);
        prop_assert!(verify_inclusion(&leaf, m as u64, n as u64, &p, &root).is_ok());
        // Wrong leaf, wrong index, wrong size, wrong root, a changed or cut or longer path.
        prop_assert!(verify_inclusion(&leaf_hash(b"other"), m as u64, n as u64, &p, &root).is_err());
        if n > 1 {
            let other = (m + 1) % n;
            prop_assert!(verify_inclusion(&leaf, other as u64, n as u64, &p, &root).is_err());
            let mut bad = p.clone();
            bad[0][0] ^= 1;
            prop_assert!(verify_inclusion(&leaf, m as u64, n as u64, &bad, &root).is_err());
            let cut = &p[..p.len() - 1];
            prop_assert!(verify_inclusion(&leaf, m as u64, n as u64, cut, &root).is_err());
        }
        let mut longer = p.clone();
        longer.push(root);
        prop_assert!(verify_inclusion(&leaf, m as u64, n as u64, &longer, &root).is_err());
        prop_assert!(verify_inclusion(&leaf, m as u64, n as u64, &p, &empty_root()).is_err());
    }

    #[test]
    fn consistency_matches_naive_and_verifies(n in 1usize..300, m_frac in 0.0f64..1.0) {
        let d = leaves(n);
        let t = tree(&d);
        let m = 1 + ((n as f64) * m_frac) as usize % n;
        let p = consistency_proof(&t, m as u64, n as u64).unwrap();
        prop_assert_eq!(&p, &naive_subproof(m, &d, true));
        let (old, new) = (mth(&d[..m]), mth(&d));
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &p).is_ok());
        prop_assert!(verify_consistency(m as u64, n as u64, &new, &old, &p).is_err() || old == new);
        prop_assert!(verify_consistency(m as u64, n as u64, &leaf_hash(b"x"), &new, &p).is_err());
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &leaf_hash(b"x"), &p).is_err());
        if !p.is_empty() {
            let mut bad = p.clone();
            let last = bad.len() - 1;
            bad[last][5] ^= 0x80;
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &bad).is_err());
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &p[1..]).is_err());
        }
        let mut longer = p.clone();
        longer.push(new);
        prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &longer).is_err());
    }
}

#[test]
fn edge_cases() {
    let d = leaves(5);
    let t = tree(&d);
    let root = mth(&d);
    // Index at or past the size is an error, for generation and verification.
    assert!(inclusion_proof(&t, 5, 5).is_err());
    assert!(inclusion_proof(&t, 0, 0).is_err());
    let e = verify_inclusion(&leaf_hash(&d[0]), 5, 5, &[], &root).unwrap_err();
    assert!(e.to_string().contains("not below tree size 5"), "{e}");
    assert!(verify_inclusion(&leaf_hash(&d[0]), 0, 0, &[], &empty_root()).is_err());
    // A one-leaf tree: the empty path, and the root is the leaf hash.
    let one = tree(&d[..1]);
    assert!(inclusion_proof(&one, 0, 1).unwrap().is_empty());
    verify_inclusion(&leaf_hash(&d[0]), 0, 1, &[], &leaf_hash(&d[0])).unwrap();
    assert!(verify_inclusion(&leaf_hash(&d[0]), 0, 5, &[], &root).is_err());
    // Consistency: size 0 and old > new are errors; equal sizes take an empty proof.
    assert!(consistency_proof(&t, 0, 5).is_err());
    assert!(consistency_proof(&t, 6, 5).is_err());
    assert!(consistency_proof(&t, 5, 5).unwrap().is_empty());
    verify_consistency(5, 5, &root, &root, &[]).unwrap();
    assert!(verify_consistency(5, 5, &root, &empty_root(), &[]).is_err());
    assert!(verify_consistency(5, 5, &root, &root, &[root]).is_err());
    assert!(verify_consistency(0, 5, &empty_root(), &root, &[]).is_err());
    assert!(verify_consistency(6, 5, &root, &root, &[root]).is_err());
    // old < new with an empty proof fails (RFC 9162 §2.1.4.2 step 1), even for a power of two.
    let four = mth(&d[..4]);
    assert!(verify_consistency(4, 5, &four, &root, &[]).is_err());
    // Reading past the tree fails with a message, it does not panic.
    assert!(tree_hash(&t, 6).is_err());
}
