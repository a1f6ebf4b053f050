//! `policy.log`: the signed, hash-chained log of retention runs and legal holds.
//!
//! Each line is `<mac hex> <entry json>`, where
//! `mac = HMAC(K, "auditlog/policy/v1" || log_id || prev_mac || entry_json)` and `prev_mac`
//! is the previous line's MAC (32 zero bytes for the first line). Editing, reordering or
//! removing a line in the middle breaks the chain; every entry is also recorded as an audit
//! event in the log itself, so removing lines from the end is visible there.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chain::{ct_eq, hex, unhex, Chain, Hash};
use crate::error::{Error, Result};

/// File name of the policy log in a data directory.
pub const POLICY_FILE: &str = "policy.log";
const DOMAIN: &[u8] = b"auditlog/policy/v1";

/// A segment removed by retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedSegment {
    pub file: String,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Newest event timestamp in the segment, UTC ns (it must be older than the cutoff).
    pub max_ts: i64,
}

/// What a retention run removed: a contiguous seq range from the start of what remained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub from_seq: u64,
    pub to_seq: u64,
    pub count: u64,
    /// Chain value of record `to_seq`: the first remaining segment continues from it.
    pub last_hash: String,
    pub segments: Vec<RemovedSegment>,
    /// True when the removal rewrote a segment to drop its expired prefix (compaction).
    #[serde(default)]
    pub compacted: bool,
}

/// One retention run (also runs that removed nothing, so `stats` can show the last run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRun {
    pub retention_days: u32,
    /// Records whose timestamp is before this (UTC ns) were eligible.
    pub cutoff_ns: i64,
    pub time_ns: i64,
    pub removed: Option<Removed>,
    /// Segments that were eligible but kept because a legal hold covers them.
    #[serde(default)]
    pub held_back: Vec<String>,
}

/// What a legal hold covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum HoldScope {
    /// Everything.
    Global,
    /// Every event of one actor.
    Actor { user_id: String },
    /// Every event with a timestamp in `[start_ns, end_ns]`.
    TimeRange { start_ns: i64, end_ns: i64 },
}

/// A legal hold: suspends deletion and redaction of what it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: String,
    pub scope: HoldScope,
    pub reason: String,
    pub time_ns: i64,
}

/// One line of the policy log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PolicyEntry {
    Retention(RetentionRun),
    HoldAdded(Hold),
    HoldRemoved {
        id: String,
        reason: String,
        time_ns: i64,
    },
}

/// The policy log as read and checked.
#[derive(Debug, Clone, Default)]
pub struct PolicyLog {
    pub entries: Vec<PolicyEntry>,
    /// MAC of the last good line (the `prev_mac` of the next one).
    pub last_mac: Hash,
    /// The first problem found (line number, what), if any; entries stop before it.
    pub problem: Option<(u64, String)>,
    /// The file ends with a line cut short by a crash.
    pub torn_last_line: bool,
    /// Bytes of the file that `entries` account for (through the last good line). The next
    /// append cuts whatever follows them first: a line cut short by a crash, or a line whose
    /// append reached the file though the call failed (its fsync, say) and that `entries`
    /// and `last_mac` therefore never took in, which the next line must not chain past.
    pub len: u64,
}

impl PolicyLog {
    /// Holds in force, in the order they were added.
    pub fn active_holds(&self) -> Vec<Hold> {
        let mut holds: Vec<Hold> = Vec::new();
        for e in &self.entries {
            match e {
                PolicyEntry::HoldAdded(h) => holds.push(h.clone()),
                PolicyEntry::HoldRemoved { id, .. } => holds.retain(|h| &h.id != id),
                PolicyEntry::Retention(_) => {}
            }
        }
        holds
    }

    /// Retention runs that removed something, in order.
    pub fn removals(&self) -> Vec<&Removed> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                PolicyEntry::Retention(r) => r.removed.as_ref(),
                _ => None,
            })
            .collect()
    }

    /// The seq and chain value up to which records were removed by policy.
    pub fn retained_to(&self) -> Option<(u64, Hash)> {
        self.removals()
            .last()
            .and_then(|r| unhex::<32>(&r.last_hash).map(|h| (r.to_seq, h)))
    }

    /// The last retention run.
    pub fn last_run(&self) -> Option<&RetentionRun> {
        self.entries.iter().rev().find_map(|e| match e {
            PolicyEntry::Retention(r) => Some(r),
            _ => None,
        })
    }
}

fn line_mac(chain: &Chain, log_id: &[u8; 16], prev: &Hash, json: &[u8]) -> Hash {
    chain.sign(DOMAIN, &[log_id, prev, json])
}

/// Reads and checks the policy log (an absent file is empty).
pub fn read(dir: &Path, chain: &Chain, log_id: &[u8; 16]) -> Result<PolicyLog> {
    let (lines, torn) = crate::segment::read_complete_lines(&dir.join(POLICY_FILE))?;
    let mut out = PolicyLog {
        torn_last_line: torn,
        ..PolicyLog::default()
    };
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        if line.is_empty() {
            out.len += 1;
            continue;
        }
        let parsed = line
            .split_once(' ')
            .and_then(|(m, j)| Some((unhex::<32>(m)?, j)));
        let Some((mac, json)) = parsed else {
            out.problem = Some((n, "not a policy line".into()));
            break;
        };
        if !ct_eq(
            &mac,
            &line_mac(chain, log_id, &out.last_mac, json.as_bytes()),
        ) {
            out.problem = Some((
                n,
                "signature does not verify (edited, reordered, removed lines, or another key)"
                    .into(),
            ));
            break;
        }
        match serde_json::from_str::<PolicyEntry>(json) {
            Ok(e) => out.entries.push(e),
            Err(e) => {
                out.problem = Some((n, format!("unreadable entry: {e}")));
                break;
            }
        }
        out.last_mac = mac;
        out.len += line.len() as u64 + 1;
    }
    Ok(out)
}

/// Appends a signed entry after `prev` (the current `last_mac`, of the line ending at byte
/// `len`, the current `PolicyLog::len`) and syncs; returns its MAC and the new length.
pub fn append(
    dir: &Path,
    chain: &Chain,
    log_id: &[u8; 16],
    prev: &Hash,
    len: u64,
    entry: &PolicyEntry,
) -> Result<(Hash, u64)> {
    let json = serde_json::to_string(entry).map_err(|e| Error::Codec(e.to_string()))?;
    let mac = line_mac(chain, log_id, prev, json.as_bytes());
    let line = format!("{} {json}\n", hex(&mac));
    let path = dir.join(POLICY_FILE);
    // Only the lock holder writes this file, so what follows the last line `prev` accounts
    // for (see `PolicyLog::len`) is cut, and every complete line chains to the one before it.
    // The append's fdatasync makes the cut durable with it.
    let on_disk = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
    if on_disk > len {
        crate::fsio::open_or_create("policy.write", &path, false)
            .and_then(|(f, _)| crate::fsio::set_len("policy.write", &f, len))
            .map_err(|e| Error::io("cutting an unrecorded line from", &path, e))?;
    }
    crate::segment::append_line(
        "policy.write",
        &path,
        &line,
        crate::segment::TornLine::Truncate,
    )?;
    let end =
        std::fs::symlink_metadata(&path).map_or(on_disk.min(len) + line.len() as u64, |m| m.len());
    Ok((mac, end))
}
