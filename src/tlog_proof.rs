//! Offline receipts in the C2SP `tlog-proof@v1` shape (<https://c2sp.org/tlog-proof>): an
//! inclusion proof and the signed checkpoint it is against, in one text file that anyone
//! holding only the log's verifier key can check.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the 48 leaf bytes: le64(seq) || le64(timestamp_ns) || digest>
//! index <seq, decimal, no leading zeros>
//! <base64 hash>            zero or more lines: the audit path, leaf side first (RFC 9162 PATH)
//!
//! <the signed checkpoint note, verbatim (cosignatures included)>
//! ```
//!
//! The spec leaves `extra` to the application; here it carries what the leaf commits to, so
//! the receipt names the record it proves (seq, timestamp, payload digest). `extra` is not
//! authenticated by itself: the verifier hashes it into the leaf, so a changed `extra` fails
//! the inclusion proof. Its seq must equal `index`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::chain::{hex, unhex, Hash};
use crate::error::{Error, Result};
use crate::merkle::{leaf_hash, verify_inclusion, LEAF_BYTES};
use crate::note::VerifierKey;
use crate::transparency::{InclusionProof, TreeCheckpoint};

/// The first line of a receipt.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(format!("tlog-proof: {}", m.into()))
}

/// An inner error under `what`, without repeating the error kind.
fn inner(what: &str, e: Error) -> Error {
    match e {
        Error::Transparency(m) => err(format!("{what}{m}")),
        e => e,
    }
}

/// The receipt of an inclusion proof made against a signed checkpoint.
pub fn format(p: &InclusionProof) -> Result<String> {
    let cp = p.checkpoint.as_deref().ok_or_else(|| {
        err("the proof carries no signed checkpoint (it was made against an unsigned tree size)")
    })?;
    let digest = unhex::<32>(&p.digest)
        .ok_or_else(|| err(format!("digest {:?} is not 64 hex digits", p.digest)))?;
    let leaf = crate::merkle::leaf_bytes(p.leaf_index, p.timestamp_ns, &digest);
    let mut s = format!(
        "{HEADER}\nextra {}\nindex {}\n",
        B64.encode(leaf),
        p.leaf_index
    );
    for h in &p.hashes {
        s.push_str(h);
        s.push('\n');
    }
    s.push('\n');
    s.push_str(cp);
    Ok(s)
}

/// What a verified receipt proves: the record and the signed tree holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub seq: u64,
    pub timestamp_ns: i64,
    /// The payload digest the leaf commits to (hex).
    pub digest: String,
    pub checkpoint: TreeCheckpoint,
}

/// Whether `text` looks like a tlog-proof receipt (its first line).
pub fn is_receipt(text: &str) -> bool {
    text.split('\n').next() == Some(HEADER)
}

/// Verifies a receipt with only the verifier key: the checkpoint's signature, then the
/// inclusion of the leaf made of `extra` at `index` in the checkpoint's tree.
pub fn verify(text: &str, key: &VerifierKey) -> Result<VerifiedReceipt> {
    verify_with(text, std::slice::from_ref(key))
}

/// [`verify`] accepting a checkpoint signed by any of `keys` (the log's key and the keys
/// rotated from it: [`crate::note::follow_rotations`]).
pub fn verify_with(text: &str, key: &[VerifierKey]) -> Result<VerifiedReceipt> {
    let mut rest = text;
    let mut line_no = 0usize;
    let mut next_line = |rest: &mut &str| -> Option<(usize, String)> {
        let (line, tail) = rest.split_once('\n')?;
        *rest = tail;
        line_no += 1;
        Some((line_no, line.to_string()))
    };
    match next_line(&mut rest) {
        Some((_, l)) if l == HEADER => {}
        Some((_, l)) => return Err(err(format!("line 1 is {l:?}, not {HEADER:?}"))),
        None => return Err(err("the receipt is empty or has no newline")),
    }
    let (mut n, mut line) =
        next_line(&mut rest).ok_or_else(|| err("the receipt ends after line 1"))?;
    let extra = match line.strip_prefix("extra ") {
        Some(b) => {
            let raw = B64
                .decode(b)
                .map_err(|e| err(format!("line {n}: extra is not base64: {e}")))?;
            (n, line) = next_line(&mut rest)
                .ok_or_else(|| err(format!("the receipt ends after line {n}")))?;
            Some(raw)
        }
        None => None,
    };
    let idx_text = line
        .strip_prefix("index ")
        .ok_or_else(|| err(format!("line {n} is {line:?}, not `index <decimal>`")))?;
    let index = idx_text
        .parse::<u64>()
        .ok()
        .filter(|_| {
            idx_text.bytes().all(|b| b.is_ascii_digit())
                && (idx_text == "0" || !idx_text.starts_with('0'))
        })
        .ok_or_else(|| {
            err(format!(
                "line {n}: index {idx_text:?} is not a decimal without leading zeros"
            ))
        })?;
    let mut hashes: Vec<Hash> = Vec::new();
    loop {
        let (n, line) = next_line(&mut rest)
            .ok_or_else(|| err("no empty line before the checkpoint".to_string()))?;
        if line.is_empty() {
            break;
        }
        let h = B64
            .decode(&line)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                err(format!(
                    "line {n}: {line:?} is not base64 of a 32-byte hash"
                ))
            })?;
        hashes.push(h);
        if hashes.len() > 64 {
            return Err(err("more than 64 proof hashes"));
        }
    }
    let cp = TreeCheckpoint::open_with(rest, key).map_err(|e| inner("checkpoint: ", e))?;
    let extra = extra.ok_or_else(|| {
        err("no `extra` line: auditlog receipts carry the leaf bytes (seq, timestamp, digest) there")
    })?;
    if extra.len() != LEAF_BYTES {
        return Err(err(format!(
            "extra is {} bytes, an auditlog leaf is {LEAF_BYTES}",
            extra.len()
        )));
    }
    let seq = u64::from_le_bytes(extra[..8].try_into().expect("8 bytes"));
    if seq != index {
        return Err(err(format!(
            "extra names record {seq}, the index line says {index}"
        )));
    }
    let ts = i64::from_le_bytes(extra[8..16].try_into().expect("8 bytes"));
    verify_inclusion(&leaf_hash(&extra), index, cp.size, &hashes, &cp.root)
        .map_err(|e| inner("", e))?;
    Ok(VerifiedReceipt {
        seq,
        timestamp_ns: ts,
        digest: hex(&extra[16..]),
        checkpoint: cp,
    })
}
