//! The crate's one error type.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in auditlog.
///
/// Corruption variants name the file and byte offset so that an operator can find the damage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with what was being done and to which path.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The HMAC key is unusable (too short, unset variable, bad encoding).
    #[error("hmac key: {0}")]
    Key(String),

    /// The key does not match the one this log was created with.
    #[error("wrong key: the HMAC key does not match the key this log ({log_id}) was created with; check `hmac_key` in the config")]
    WrongKey { log_id: String },

    /// An event failed validation before anything was written.
    #[error("invalid event: {0}")]
    InvalidEvent(String),

    /// An event is larger than `Options::max_event_bytes`.
    #[error("event too large: {size} bytes encoded, the limit (max_event_bytes) is {limit}")]
    EventTooLarge { size: usize, limit: usize },

    /// A JSON line could not be parsed.
    #[error("line {line}: {message}")]
    BadLine { line: u64, message: String },

    /// Bad configuration or option value.
    #[error("config: {0}")]
    Config(String),

    /// Another process holds the write lock on the data directory.
    #[error("data directory {} is locked by another process (lock file {}); stop the other writer or open read-only", dir.display(), dir.join(crate::log::LOCK_FILE).display())]
    Locked { dir: PathBuf },

    /// Bytes on disk are damaged in a way that must not be repaired silently.
    #[error("corrupt data in {} at byte offset {offset}: {detail}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        detail: String,
    },

    /// A file was written by a format version this build does not understand.
    #[error("unsupported format in {}: found version {found}, this build reads versions 1 to {supported}", file.display())]
    UnsupportedVersion {
        file: PathBuf,
        found: u16,
        supported: u16,
    },

    /// The data directory is not a log, or belongs to another log.
    #[error("not an auditlog data directory {}: {detail}", dir.display())]
    NotALog { dir: PathBuf, detail: String },

    /// A previous write or sync failed; the log refuses further writes.
    #[error("log is poisoned after an earlier I/O failure ({0}); no further writes are accepted, reopen the log to recover")]
    Poisoned(String),

    /// The log was opened read-only.
    #[error("log is opened read-only")]
    ReadOnly,

    /// The log is empty where a record was required.
    #[error("{0}")]
    Empty(&'static str),

    /// A checkpoint file or string is malformed or its signature does not verify.
    #[error("checkpoint: {0}")]
    BadCheckpoint(String),

    /// A batch failed part-way: the events in `appended` were written (they are valid
    /// records of the log, durable under the log's durability only if this error came after
    /// their sync), the rest were not.
    #[error("batch interrupted after {} events were appended: {source}", appended.len())]
    BatchInterrupted {
        appended: Vec<crate::Receipt>,
        #[source]
        source: Box<Error>,
    },

    /// A legal hold covers a record that was to be deleted or redacted.
    #[error("record {seq} is under legal hold {hold}; lift the hold first")]
    Held { seq: u64, hold: String },

    /// A query parameter is invalid; `param` names it.
    #[error("invalid query parameter `{param}`: {message}")]
    InvalidQuery { param: String, message: String },

    /// Encoding or decoding of a payload failed.
    #[error("codec: {0}")]
    Codec(String),

    /// A Merkle tree, proof, tile, signed note or key is malformed or does not verify.
    #[error("transparency: {0}")]
    Transparency(String),

    /// A proof needs the record or the leaf hashes of `seq`, which retention removed (the
    /// tree keeps no level-0 tile below `min_index` beyond those its signed checkpoint
    /// needs). `context` says which proof, and ends with ": " when not empty.
    #[error(
        "{context}seq {seq} was removed by retention; the tree's minimum index is {min_index}"
    )]
    Pruned {
        seq: u64,
        min_index: u64,
        context: String,
    },
}

impl Error {
    /// An I/O error with what was being done and to which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
