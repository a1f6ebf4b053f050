//! # auditlog
//!
//! An embeddable storage engine for tamper-evident audit logs. Events are appended to
//! memory-mapped, preallocated segment files as CRC-framed records, each chained to its
//! predecessor by HMAC-SHA256 over the SHA-256 of its payload:
//!
//! ```text
//! h_i = HMAC-SHA256(K, h_{i-1} || le64(seq_i) || le64(ts_i) || SHA-256(payload_i))
//! ```
//!
//! so that nobody without the key can edit, remove, reorder or insert a record unnoticed,
//! and signed checkpoints kept elsewhere catch truncation and rollback too.
//!
//! ```
//! use auditlog::{Durability, Event, HmacKey, Log, Options};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let key = HmacKey::from_bytes(b"an example key of at least 32 bytes!").unwrap();
//! let log = Log::open(dir.path(), Options::new(key).durability(Durability::Sync)).unwrap();
//! let event: Event = serde_json::from_str(
//!     r#"{"event_type":"authentication","action":"user_login","status":"failed",
//!         "severity":"medium","actor":{"user_id":"user-alice-001","ip_address":"203.0.113.42"}}"#,
//! ).unwrap();
//! let receipt = log.append(&event).unwrap();
//! assert_eq!(receipt.seq, 0);
//! assert!(log.verify().unwrap().ok);
//! ```
//!
//! Layers, bottom to top: `format` (bytes), `chain` (keyed hash chain), `segment` (one file),
//! `log` (the engine), `verify`, `checkpoint`. See `docs/ARCHITECTURE.md`.

mod archive;
mod chain;
mod checkpoint;
mod codec;
mod config;
mod error;
mod event;
mod export;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod format;
mod fsio;
pub mod fss;
mod index;
mod ingest;
mod log;
pub mod merkle;
mod mmap;
mod nofollow;
#[cfg(feature = "transparency")]
pub mod note;
mod query;
pub mod report;
mod retention;
pub mod sample;
mod segment;
#[cfg(feature = "server")]
pub mod server;
pub mod siem;
pub mod sink;
pub mod tiles;
#[cfg(feature = "transparency")]
pub mod tlog_proof;
#[cfg(feature = "transparency")]
pub mod transparency;
mod verify;
#[cfg(feature = "transparency")]
pub mod witness;

pub use chain::{digest, hex, Chain, Hash, HmacKey, MIN_KEY_BYTES};
pub use checkpoint::{Checkpoint, CheckpointLog, CHECKPOINT_FILE};
pub use codec::RedactionScope;
pub use config::{AuditConfig, Config, ServerConfig, TlsConfig, TokenConfig};
pub use error::{Error, Result};
pub use event::{
    format_ts, Actor, Details, Event, Resource, Severity, MAX_DETAILS_DEPTH, MAX_EVENT_ID_BYTES,
};
pub use export::{ExportFormat, ExportSummary, CSV_COLUMNS};
pub use ingest::{Admitted, IngestPolicy};
pub use log::{
    Durability, Follow, Log, Options, Preallocation, Receipt, Record, RecordIter, RecoveryReport,
    Stats, Subscription, TornTail, WritePath, LOCK_FILE, META_FILE, MIN_SEGMENT_BYTES,
    STAGING_FILE,
};
pub use query::{
    parse_time, AuditLogEntry, Facet, FacetValue, IpNet, Order, Page, Query, Verification,
    DEFAULT_LIMIT, FACET_DIMENSIONS, MAX_LIMIT,
};
/// What a redaction removed and why (on query results and records).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RedactionInfo {
    pub reason: String,
    pub scope: RedactionScope,
}

pub use report::{Report, ReportRequest};
pub use retention::policy::{
    Hold, HoldScope, PolicyEntry, Removed, RemovedSegment, RetentionRun, POLICY_FILE,
};
pub use retention::{ArchiveReport, RedactReport, RetentionReport};
pub use verify::{parse_hash, Failure, FailureKind, VerifyReport};
