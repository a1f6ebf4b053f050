//! Public verifiability: C2SP tlog checkpoints of the Merkle tree signed as notes, and
//! inclusion and consistency proofs that anyone holding only the verifier key can check.
//!
//! A checkpoint's body is the C2SP tlog-checkpoint text:
//!
//! ```text
//! <origin>\n<tree size, decimal>\n<base64 root hash>\n
//! ```
//!
//! signed with a [`SignerKey`] (the origin is the key's name). The latest signed checkpoint
//! is kept in `merkle/checkpoint` of the data directory; a new one is signed only when its
//! tree is an extension of that one (checked with a consistency proof).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::chain::{hex, unhex, Hash};
use crate::error::{Error, Result};
use crate::merkle::{
    consistency_proof, inclusion_proof, record_leaf_hash, tree_hash, verify_consistency,
    verify_inclusion,
};
use crate::note::{self, SignerKey, VerifierKey};
use crate::tiles::{TileStore, MERKLE_DIR};
use crate::Log;

/// The latest signed checkpoint, inside `merkle/` of the data directory.
pub const SIGNED_CHECKPOINT_FILE: &str = "checkpoint";

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(m.into())
}

/// A tlog checkpoint: origin, tree size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCheckpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl TreeCheckpoint {
    /// The checkpoint's note text.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint's note text (extension lines after the root are allowed and
    /// ignored).
    pub fn parse_body(text: &str) -> Result<TreeCheckpoint> {
        let mut lines = text.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(err("checkpoint: the origin line is empty"));
        }
        let size_line = lines.next().unwrap_or_default();
        let size = size_line
            .parse::<u64>()
            .ok()
            .filter(|_| {
                size_line.bytes().all(|b| b.is_ascii_digit())
                    && (size_line == "0" || !size_line.starts_with('0'))
            })
            .ok_or_else(|| {
                err(format!(
                    "checkpoint: tree size line {size_line:?} is not a decimal number"
                ))
            })?;
        let root_line = lines.next().unwrap_or_default();
        let root = B64
            .decode(root_line)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                err(format!(
                    "checkpoint: root hash line {root_line:?} is not base64 of 32 bytes"
                ))
            })?;
        if !text.ends_with('\n') {
            return Err(err("checkpoint: the text does not end with a newline"));
        }
        Ok(TreeCheckpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }

    /// Opens a signed checkpoint note with `key`.
    pub fn open(signed: &str, key: &VerifierKey) -> Result<TreeCheckpoint> {
        Self::open_with(signed, std::slice::from_ref(key))
    }

    /// Opens a signed checkpoint note with any of `keys` (the log's key and its successors,
    /// from [`note::follow_rotations`]): at least one must have signed it, and every
    /// signature by one of them must verify.
    pub fn open_with(signed: &str, keys: &[VerifierKey]) -> Result<TreeCheckpoint> {
        if let Some(key) = keys.iter().find(|k| k.key_type() != note::KeyType::Ed25519) {
            return Err(err(format!(
                "{}+{:08x} is a witness cosignature key, not a log key",
                key.name(),
                key.id()
            )));
        }
        let opened = note::open(signed, keys)?;
        let cp = Self::parse_body(&opened.text)?;
        let by = &opened.verified[0];
        if cp.origin != by.name {
            return Err(err(format!(
                "checkpoint origin {:?} is not the key's name {:?}",
                cp.origin, by.name
            )));
        }
        Ok(cp)
    }
}

/// The latest signed checkpoint note kept in data directory `dir`, if any.
pub fn last_signed(dir: &std::path::Path) -> Result<Option<String>> {
    let path = dir.join(MERKLE_DIR).join(SIGNED_CHECKPOINT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &path, e)),
    }
}

/// Extends the tree to every record (`Log::merkle_sync`), signs a checkpoint of it with `key`
/// and keeps it as the latest. Refuses when the tree is not an extension of the latest
/// signed checkpoint (a smaller tree, another origin, or a failed consistency proof).
pub fn sign_checkpoint(log: &Log, key: &SignerKey) -> Result<String> {
    let st = log.merkle_sync()?;
    let store = TileStore::new(log.dir());
    if let Some(prev_note) = last_signed(log.dir())? {
        let file = store.path().join(SIGNED_CHECKPOINT_FILE);
        let (text, _) =
            note::parse(&prev_note).map_err(|e| err(format!("{}: {e}", file.display())))?;
        let prev = TreeCheckpoint::parse_body(&text)
            .map_err(|e| err(format!("{}: {e}", file.display())))?;
        if prev.origin != key.name() {
            return Err(err(format!(
                "the last signed checkpoint ({}) has origin {:?}, this key is named {:?}; \
                 sign with the same name",
                file.display(),
                prev.origin,
                key.name()
            )));
        }
        let refuse = |why: String| {
            err(format!(
                "refusing to sign: the tree of size {} is not an extension of the last signed \
                 checkpoint (size {}, {}): {why}",
                st.size,
                prev.size,
                file.display()
            ))
        };
        if prev.size > st.size {
            return Err(refuse("the tree is smaller".into()));
        }
        if prev.size == 0 {
            if prev.root != crate::merkle::empty_root() {
                return Err(refuse("its root is not the empty tree's".into()));
            }
        } else {
            let r = store.reader(st.size)?;
            let p = consistency_proof(&r, prev.size, st.size)
                .map_err(|e| pruned_context(e, prev.size, st.size))?;
            verify_consistency(prev.size, st.size, &prev.root, &st.root, &p)
                .map_err(|e| refuse(e.to_string()))?;
        }
    }
    let cp = TreeCheckpoint {
        origin: key.name().to_string(),
        size: st.size,
        root: st.root,
    };
    let signed = key.sign(&cp.body())?;
    crate::segment::write_atomic(
        "merkle.checkpoint",
        store.path(),
        SIGNED_CHECKPOINT_FILE,
        signed.as_bytes(),
    )?;
    Ok(signed)
}

/// Asks `witnesses` to cosign the latest signed checkpoint (`merkle/checkpoint`) with the
/// C2SP tlog-witness protocol, proving consistency from the tiles, and keeps the
/// cosignatures that verify in `merkle/checkpoint` beside the log's signature (so proofs
/// carry them). Needs the writer (`log` opened for writing). Returns the kept note and one
/// outcome per witness.
#[cfg(feature = "server")]
///
/// `previous` is the checkpoint note kept before this one was signed (with the cosignatures
/// it had): a witness that cosigned it is asked from its size; any other from 0, and the
/// witness's 409 answer tells the size it holds.
pub fn witness_latest(
    log: &Log,
    witnesses: &[crate::witness::WitnessTarget],
    previous: Option<&str>,
    timeout: std::time::Duration,
) -> Result<(String, Vec<crate::witness::WitnessOutcome>)> {
    let signed = last_signed(log.dir())?.ok_or_else(|| {
        err("no signed checkpoint to witness: run `auditlog checkpoint --signed --key FILE`")
    })?;
    let (text, _) = note::parse(&signed)?;
    let cp = TreeCheckpoint::parse_body(&text)?;
    let store = TileStore::new(log.dir());
    let outcomes = crate::witness::request_cosignatures(
        &signed,
        witnesses,
        |w| {
            let cosigned_size = |n: &str| -> Option<u64> {
                let c = note::cosignatures(n, std::slice::from_ref(&w.key)).ok()?;
                if c.is_empty() {
                    return None;
                }
                let (text, _) = note::parse(n).ok()?;
                let p = TreeCheckpoint::parse_body(&text).ok()?;
                (p.origin == cp.origin && p.size <= cp.size).then_some(p.size)
            };
            cosigned_size(&signed)
                .or_else(|| previous.and_then(cosigned_size))
                .unwrap_or(0)
        },
        |old, new| {
            let r = store.reader(new)?;
            consistency_proof(&r, old, new).map_err(|e| pruned_context(e, old, new))
        },
        timeout,
    )?;
    let mut lines = String::new();
    for o in &outcomes {
        if let Ok(c) = &o.result {
            lines.push_str(&c.line);
            lines.push('\n');
        }
    }
    // Replace any older cosignature by the same witness with the fresh one.
    let fresh: Vec<(String, u32)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|c| (c.name.clone(), c.id)))
        .collect();
    let (_, sigs) = note::parse(&signed)?;
    let mut kept = text.clone();
    kept.push('\n');
    for s in sigs {
        if fresh.iter().any(|(n, i)| *n == s.name && *i == s.id) {
            continue;
        }
        kept.push_str(&format!("\u{2014} {} {}\n", s.name, s.base64));
    }
    let kept = note::add_signatures(&kept, &lines)?;
    if kept != signed {
        crate::segment::write_atomic(
            "merkle.checkpoint",
            store.path(),
            SIGNED_CHECKPOINT_FILE,
            kept.as_bytes(),
        )?;
    }
    Ok((kept, outcomes))
}

/// For the service: extends the tree, signs it with `signer` (unless the latest signed
/// checkpoint already is of it) and asks `witnesses` to cosign (see [`witness_latest`]),
/// serialized with the proof makers.
#[cfg(feature = "server")]
pub fn witness_current(
    log: &Log,
    signer: &SignerKey,
    witnesses: &[crate::witness::WitnessTarget],
    timeout: std::time::Duration,
) -> Result<(String, Vec<crate::witness::WitnessOutcome>)> {
    let _one = PROVING.lock().unwrap_or_else(|p| p.into_inner());
    let st = log.merkle_sync()?;
    let previous = last_signed(log.dir())?;
    let current = match signed_for(log)? {
        Some((_, cp)) => cp.origin == signer.name() && cp.size == st.size && cp.root == st.root,
        None => false,
    };
    if !current {
        sign_checkpoint(log, signer)?;
    }
    witness_latest(log, witnesses, previous.as_deref(), timeout)
}

/// Proof that record `seq` is leaf `leaf_index` of the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Always `"inclusion"`.
    pub kind: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// The record's timestamp (UTC nanoseconds) and payload digest (hex) the leaf commits to.
    pub timestamp_ns: i64,
    pub digest: String,
    /// The record's event id, when it has one (not covered by the proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// base64 leaf hash `SHA-256(0x00 || le64(seq) || le64(ts) || digest)`.
    pub leaf_hash: String,
    /// base64 audit path, leaf side first (RFC 9162 PATH).
    pub hashes: Vec<String>,
    /// base64 root of the tree of `tree_size`.
    pub root: String,
    /// The signed checkpoint of `tree_size`, when the proof is against one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

/// Proof that the tree of `old_size` is a prefix of the tree of `new_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// Always `"consistency"`.
    pub kind: String,
    pub old_size: u64,
    pub new_size: u64,
    pub old_root: String,
    pub new_root: String,
    /// base64 hashes (RFC 9162 PROOF).
    pub hashes: Vec<String>,
    /// The signed checkpoint of `new_size`, when it is the latest signed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

fn b64s(hs: &[Hash]) -> Vec<String> {
    hs.iter().map(|h| B64.encode(h)).collect()
}

/// Decodes a base64 hash of a proof.
pub fn decode_hash(s: &str) -> Result<Hash> {
    unb64(s, "hash")
}

fn unb64(s: &str, what: &str) -> Result<Hash> {
    B64.decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| err(format!("{what} {s:?} is not base64 of 32 bytes")))
}

fn unb64s(v: &[String], what: &str) -> Result<Vec<Hash>> {
    v.iter()
        .enumerate()
        .map(|(i, s)| unb64(s, &format!("{what}[{i}]")))
        .collect()
}

/// The latest signed checkpoint's note and tree size, read without a key (it is only
/// attached to proofs; verifiers check it).
fn signed_for(log: &Log) -> Result<Option<(String, TreeCheckpoint)>> {
    let Some(n) = last_signed(log.dir())? else {
        return Ok(None);
    };
    let (text, _) = note::parse(&n)?;
    Ok(Some((n.clone(), TreeCheckpoint::parse_body(&text)?)))
}

/// The inclusion proof of record `seq`, against the latest signed checkpoint (`size` None)
/// or the stored tree of `size` leaves.
pub fn prove_inclusion(log: &Log, seq: u64, size: Option<u64>) -> Result<InclusionProof> {
    let signed = signed_for(log)?;
    let size = match (size, &signed) {
        (Some(s), _) => s,
        (None, Some((_, cp))) => cp.size,
        (None, None) => {
            return Err(err(
                "no signed checkpoint yet: run `auditlog checkpoint --signed --key FILE` or give --size",
            ))
        }
    };
    let store = TileStore::new(log.dir());
    let r = store.reader(size)?;
    if seq < r.min_index() {
        return Err(Error::Pruned {
            seq,
            min_index: r.min_index(),
            context: "no inclusion proof: ".into(),
        });
    }
    let hashes = inclusion_proof(&r, seq, size)?;
    let root = tree_hash(&r, size)?;
    let (ts, digest) = log.merkle_leaf(seq)?;
    let leaf = record_leaf_hash(seq, ts, &digest);
    let stored = r.node(0, seq)?;
    if stored != leaf {
        return Err(err(format!(
            "leaf {seq} in the tiles does not match the record in the log (tiles damaged, or \
             the record was altered: run `auditlog verify`)"
        )));
    }
    let checkpoint = signed
        .filter(|(_, cp)| cp.size == size && cp.root == root)
        .map(|(n, _)| n);
    let event_id = log.get(seq)?.and_then(|r| r.event.event_id);
    Ok(InclusionProof {
        kind: "inclusion".into(),
        leaf_index: seq,
        tree_size: size,
        timestamp_ns: ts,
        digest: hex(&digest),
        event_id,
        leaf_hash: B64.encode(leaf),
        hashes: b64s(&hashes),
        root: B64.encode(root),
        checkpoint,
    })
}

/// Names the proof in an [`Error::Pruned`] from the tiles.
fn pruned_context(e: Error, old: u64, new: u64) -> Error {
    match e {
        Error::Pruned { seq, min_index, .. } => Error::Pruned {
            seq,
            min_index,
            context: format!(
                "no consistency proof from tree size {old} to {new} (it needs the leaf hashes \
                 next to seq {old}, which retention pruned: only those next to the signed \
                 checkpoint's size are kept): "
            ),
        },
        e => e,
    }
}

/// The consistency proof between the stored trees of `old` and `new` leaves.
pub fn prove_consistency(log: &Log, old: u64, new: u64) -> Result<ConsistencyProof> {
    let store = TileStore::new(log.dir());
    let r = store.reader(new)?;
    let hashes = consistency_proof(&r, old, new).map_err(|e| pruned_context(e, old, new))?;
    let old_root = tree_hash(&r, old).map_err(|e| pruned_context(e, old, new))?;
    let new_root = tree_hash(&r, new)?;
    let checkpoint = signed_for(log)?
        .filter(|(_, cp)| cp.size == new && cp.root == new_root)
        .map(|(n, _)| n);
    Ok(ConsistencyProof {
        kind: "consistency".into(),
        old_size: old,
        new_size: new,
        old_root: B64.encode(old_root),
        new_root: B64.encode(new_root),
        hashes: b64s(&hashes),
        checkpoint,
    })
}

use crate::merkle::NodeSource as _;

/// What a verified proof established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signed checkpoint the proof is against.
    pub checkpoint: TreeCheckpoint,
    /// For a consistency proof: the old tree's size and root, now proven a prefix.
    pub old: Option<(u64, Hash)>,
}

/// Verifies a proof (the JSON of `auditlog prove` or `prove-consistency`) with only the
/// verifier key: the checkpoint's signature, its size and root, and the proof's hashes.
pub fn verify_proof(json: &str, key: &VerifierKey) -> Result<Verified> {
    verify_proof_with(json, std::slice::from_ref(key))
}

/// [`verify_proof`] accepting a checkpoint signed by any of `keys` (the log's key and the
/// keys rotated from it: [`note::follow_rotations`]).
pub fn verify_proof_with(json: &str, key: &[VerifierKey]) -> Result<Verified> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| err(format!("proof is not JSON: {e}")))?;
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    fn need_cp(c: &Option<String>) -> Result<&str> {
        c.as_deref().ok_or_else(|| {
            err("the proof carries no signed checkpoint (it was made against an unsigned tree size)")
        })
    }
    match kind {
        "inclusion" => {
            let p: InclusionProof =
                serde_json::from_value(v).map_err(|e| err(format!("inclusion proof: {e}")))?;
            let cp = TreeCheckpoint::open_with(need_cp(&p.checkpoint)?, key)?;
            check_against(&cp, p.tree_size, &unb64(&p.root, "root")?)?;
            let digest = unhex::<32>(&p.digest)
                .ok_or_else(|| err(format!("digest {:?} is not 64 hex digits", p.digest)))?;
            let leaf = record_leaf_hash(p.leaf_index, p.timestamp_ns, &digest);
            if leaf != unb64(&p.leaf_hash, "leaf_hash")? {
                return Err(err(
                    "leaf_hash is not the hash of leaf_index, timestamp_ns and digest",
                ));
            }
            verify_inclusion(
                &leaf,
                p.leaf_index,
                p.tree_size,
                &unb64s(&p.hashes, "hashes")?,
                &cp.root,
            )?;
            Ok(Verified {
                checkpoint: cp,
                old: None,
            })
        }
        "consistency" => {
            let p: ConsistencyProof =
                serde_json::from_value(v).map_err(|e| err(format!("consistency proof: {e}")))?;
            let cp = TreeCheckpoint::open_with(need_cp(&p.checkpoint)?, key)?;
            check_against(&cp, p.new_size, &unb64(&p.new_root, "new_root")?)?;
            let old_root = unb64(&p.old_root, "old_root")?;
            verify_consistency(
                p.old_size,
                p.new_size,
                &old_root,
                &cp.root,
                &unb64s(&p.hashes, "hashes")?,
            )?;
            Ok(Verified {
                checkpoint: cp,
                old: Some((p.old_size, old_root)),
            })
        }
        other => Err(err(format!(
            "proof kind {other:?} is not \"inclusion\" or \"consistency\""
        ))),
    }
}

fn check_against(cp: &TreeCheckpoint, size: u64, root: &Hash) -> Result<()> {
    if cp.size != size {
        return Err(err(format!(
            "the proof is for tree size {size}, its signed checkpoint has size {}",
            cp.size
        )));
    }
    if cp.root != *root {
        return Err(err("the proof's root is not the signed checkpoint's root"));
    }
    Ok(())
}

/// Serializes the proof makers that read tiles a concurrent sync may replace (a partial
/// tile is removed once its full version is written).
static PROVING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The consistency proof from the tree of `old` leaves to the tree of `new` for the service:
/// the tree is first extended to every record; without `new`, the current tree (signed
/// first with `signer`, unless the latest signed checkpoint is already of it, and then the
/// checkpoint is attached). An `old` of 0 or above `new`, or a `new` above the tree, is an
/// [`Error::InvalidQuery`] naming the parameter.
pub fn prove_consistency_current(
    log: &Log,
    old: u64,
    new: Option<u64>,
    signer: Option<&SignerKey>,
) -> Result<ConsistencyProof> {
    let _one = PROVING.lock().unwrap_or_else(|p| p.into_inner());
    let st = log.merkle_sync()?;
    let bad = |param: &str, message: String| Error::InvalidQuery {
        param: param.into(),
        message,
    };
    if let Some(n) = new {
        if n > st.size {
            return Err(bad(
                "new",
                format!("{n} is larger than the tree ({} leaves)", st.size),
            ));
        }
    }
    let mut size = st.size;
    if let (Some(key), None) = (signer, new) {
        let current = match signed_for(log)? {
            Some((_, cp)) => cp.origin == key.name() && cp.size == st.size && cp.root == st.root,
            None => false,
        };
        if !current {
            let signed = sign_checkpoint(log, key)?;
            let (text, _) = note::parse(&signed)?;
            size = TreeCheckpoint::parse_body(&text)?.size;
        }
    }
    let new = new.unwrap_or(size);
    if old == 0 {
        return Err(bad(
            "old",
            "0: a consistency proof starts from a non-empty tree (every tree extends the empty one)"
                .into(),
        ));
    }
    if old > new {
        return Err(bad(
            "old",
            format!("{old} is larger than the new tree size {new}"),
        ));
    }
    prove_consistency(log, old, new)
}

/// The inclusion proof of record `seq` for the service: the tree is first extended to every
/// record; with `signer`, the current tree is signed (unless the latest signed checkpoint is
/// already of it) and the proof is against it, checkpoint attached; `tree_size` instead
/// picks an older tree (its checkpoint attached only when it is the latest signed one).
/// A `tree_size` of 0, at most `seq`, or larger than the tree is an
/// [`Error::InvalidQuery`] naming `tree_size`.
pub fn prove_current(
    log: &Log,
    seq: u64,
    tree_size: Option<u64>,
    signer: Option<&SignerKey>,
) -> Result<InclusionProof> {
    let _one = PROVING.lock().unwrap_or_else(|p| p.into_inner());
    let st = log.merkle_sync()?;
    if let Some(n) = tree_size {
        if n > st.size || n <= seq {
            return Err(Error::InvalidQuery {
                param: "tree_size".into(),
                message: format!(
                    "{n} is not a tree holding record {seq}: give a size from {} to the current \
                     size {}",
                    seq + 1,
                    st.size
                ),
            });
        }
    }
    let mut size = st.size;
    if let Some(key) = signer {
        let current = match signed_for(log)? {
            Some((_, cp)) => cp.origin == key.name() && cp.size == st.size && cp.root == st.root,
            None => false,
        };
        if !current {
            // It syncs again: records appended meanwhile are in the signed tree.
            let signed = sign_checkpoint(log, key)?;
            let (text, _) = note::parse(&signed)?;
            size = TreeCheckpoint::parse_body(&text)?.size;
        }
    }
    prove_inclusion(log, seq, Some(tree_size.unwrap_or(size)))
}
