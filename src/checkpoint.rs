//! Signed checkpoints `(log_id, seq, h_seq, count, time)`.
//!
//! A checkpoint is printed as one JSON object and appended, one per line, to
//! `checkpoints.jsonl` in the data directory. Kept somewhere else, it lets `verify` detect
//! tail truncation and a rollback of the whole directory, which a bare chain cannot.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chain::{hex, unhex, Chain, Hash};
use crate::error::{Error, Result};
use crate::event::format_ts;

/// File name of the checkpoint log inside a data directory.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
const DOMAIN: &[u8] = b"auditlog/checkpoint/v1";

/// A signed statement that record `seq` of log `log_id` had chain value `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Hex of the 16-byte log id.
    pub log_id: String,
    /// The last record covered.
    pub seq: u64,
    /// Hex chain value of record `seq`.
    pub hash: String,
    /// Records appended from the start of the log up to and including `seq`.
    pub count: u64,
    /// When it was taken, RFC 3339 UTC.
    pub time: String,
    /// UTC nanoseconds of `time` (signed; `time` is for people).
    pub time_ns: i64,
    /// Hex HMAC over all the fields above.
    pub mac: String,
}

impl Checkpoint {
    /// Creates and signs a checkpoint.
    pub fn sign(
        chain: &Chain,
        log_id: &[u8; 16],
        seq: u64,
        hash: &Hash,
        time_ns: i64,
    ) -> Checkpoint {
        let count = seq + 1;
        let mac = Self::compute_mac(chain, log_id, seq, hash, count, time_ns);
        Checkpoint {
            log_id: hex(log_id),
            seq,
            hash: hex(hash),
            count,
            time: format_ts(time_ns),
            time_ns,
            mac: hex(&mac),
        }
    }

    fn compute_mac(
        chain: &Chain,
        log_id: &[u8; 16],
        seq: u64,
        hash: &Hash,
        count: u64,
        time_ns: i64,
    ) -> Hash {
        chain.sign(
            DOMAIN,
            &[
                log_id,
                &seq.to_le_bytes(),
                hash,
                &count.to_le_bytes(),
                &time_ns.to_le_bytes(),
            ],
        )
    }

    /// Checks the signature and the fields; returns the decoded log id and hash.
    pub fn check(&self, chain: &Chain) -> Result<([u8; 16], Hash)> {
        let bad = |m: &str| Error::BadCheckpoint(format!("checkpoint for seq {}: {m}", self.seq));
        let log_id = unhex::<16>(&self.log_id).ok_or_else(|| bad("log_id is not 32 hex digits"))?;
        let hash = unhex::<32>(&self.hash).ok_or_else(|| bad("hash is not 64 hex digits"))?;
        let mac = unhex::<32>(&self.mac).ok_or_else(|| bad("mac is not 64 hex digits"))?;
        if self.count != self.seq + 1 {
            return Err(bad("count does not match seq"));
        }
        if self.time != format_ts(self.time_ns) {
            return Err(bad("time does not match time_ns"));
        }
        let want = Self::compute_mac(chain, &log_id, self.seq, &hash, self.count, self.time_ns);
        if !crate::chain::ct_eq(&want, &mac) {
            return Err(bad(
                "signature does not verify with this key (forged, edited, or a different key)",
            ));
        }
        Ok((log_id, hash))
    }

    /// Parses one checkpoint from JSON text.
    pub fn from_json(text: &str) -> Result<Checkpoint> {
        serde_json::from_str(text.trim())
            .map_err(|e| Error::BadCheckpoint(format!("not a checkpoint: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("checkpoint serializes")
    }
}

/// Appends a checkpoint line to the directory's checkpoint log and syncs it.
pub fn append(dir: &Path, cp: &Checkpoint) -> Result<()> {
    // The worker (after a seal) and callers of `Log::checkpoint` or close may append at the
    // same moment; `append_line` reads the end of the file to finish a torn line first, and
    // must not take another append in progress for one.
    static APPENDS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one_at_a_time = APPENDS.lock();
    let line = format!("{}\n", cp.to_json());
    crate::segment::append_line(
        "checkpoint.write",
        &dir.join(CHECKPOINT_FILE),
        &line,
        crate::segment::TornLine::Terminate,
    )
}

/// What was read from a checkpoint log.
#[derive(Debug, Clone, Default)]
pub struct CheckpointLog {
    pub checkpoints: Vec<Checkpoint>,
    /// Lines that did not parse: (line number, problem). A final line without a newline is a
    /// torn write and is only reported in `torn_last_line`.
    pub bad_lines: Vec<(u64, String)>,
    pub torn_last_line: bool,
}

/// Reads `checkpoints.jsonl` (an absent file is an empty log).
pub fn read_log(dir: &Path) -> Result<CheckpointLog> {
    let path = dir.join(CHECKPOINT_FILE);
    let (mut lines, mut torn) = crate::segment::read_complete_lines(&path)?;
    if torn {
        // A reader beside a running writer can catch a line while it is being appended: look
        // again before calling it a crash's torn line.
        std::thread::sleep(std::time::Duration::from_millis(20));
        (lines, torn) = crate::segment::read_complete_lines(&path)?;
    }
    let mut out = CheckpointLog {
        torn_last_line: torn,
        ..CheckpointLog::default()
    };
    for (i, line) in lines.iter().enumerate() {
        match Checkpoint::from_json(line) {
            Ok(cp) => out.checkpoints.push(cp),
            Err(e) => out.bad_lines.push((i as u64 + 1, e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::HmacKey;

    #[test]
    fn sign_check_and_tamper() {
        let chain = Chain::new(&HmacKey::from_bytes(&[3; 32]).unwrap());
        let cp = Checkpoint::sign(&chain, &[1; 16], 41, &[2; 32], 1_700_000_000_123_456_789);
        let back = Checkpoint::from_json(&cp.to_json()).unwrap();
        assert_eq!(back.check(&chain).unwrap(), ([1; 16], [2; 32]));
        let mut forged = back.clone();
        forged.seq = 40;
        forged.count = 41;
        assert!(forged.check(&chain).is_err());
        let other = Chain::new(&HmacKey::from_bytes(&[4; 32]).unwrap());
        assert!(back.check(&other).is_err());
    }
}
