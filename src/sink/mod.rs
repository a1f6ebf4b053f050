//! Sinks: deliver the log's events to other systems (SIEMs, webhooks) as they are appended.
//!
//! Each sink runs in its own thread, following the log with a [`Subscription`] (never on the
//! append path). It filters events, batches them by count, bytes and time, hands a batch to
//! its [`Transport`] and advances its durable cursor (`sinks/<name>.cursor` in the data
//! directory, replaced atomically) only once the receiver accepted the batch: delivery is
//! at least once, and exactly once where the receiver deduplicates (Elasticsearch `_id`).
//! Retryable failures back off exponentially with full jitter, capped; a permanent one
//! parks the sink with its reason until it is restarted. The HTTP destinations (webhook,
//! Splunk HEC, Elasticsearch) are in `http` behind the `sinks` feature.

pub mod alert;
mod config;
mod cursor;
#[cfg(feature = "sinks")]
mod datadog;
#[cfg(feature = "sinks")]
mod http;
pub mod nats;
mod run;
pub mod seed;
pub mod syslog;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use config::{
    check_all, datadog_intake_url, resolve_secret, BatchConfig, Destination, RetryConfig,
    SinkConfig, SinkFilter, StartAt,
};
pub use cursor::{CursorState, CURSOR_DIR};
#[cfg(feature = "sinks")]
pub use datadog::{DatadogOptions, DatadogTransport};
#[cfg(feature = "sinks")]
pub use http::{
    transport_for, webhook_signature, ElasticTransport, HecTransport, WebhookTransport,
};
pub use nats::NatsDestination;
#[cfg(feature = "sinks")]
pub use nats::{NatsAuth, NatsClient, NatsMessage, NatsTransport};
pub use run::{ship, statuses_on_disk, RunLock, ShipOptions, Sinks, ALERT_LOG, RUN_LOCK};
#[cfg(feature = "sinks")]
pub use syslog::SyslogTransport;
pub use syslog::{SyslogDestination, SyslogProtocol};

use crate::error::{Error, Result};
use crate::log::{Log, Subscription};
use crate::query::AuditLogEntry;

/// What a receiver made of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every event of the batch was accepted (or was already there).
    Delivered,
    /// Try again later. `resend` lists the indexes (into the batch) still to deliver when
    /// the receiver accepted the others; `None` resends the whole batch. `after` is the
    /// receiver's `Retry-After`, if any.
    Retry {
        resend: Option<Vec<usize>>,
        after: Option<Duration>,
        reason: String,
    },
    /// The receiver refused the batch for good (bad credentials, bad request): the sink
    /// parks with this reason.
    Permanent { reason: String },
}

/// A destination: delivers one batch, returns what became of it. Called from the sink's
/// thread only.
pub trait Transport: Send {
    fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome;
}

/// Live counters of a running sink (also persisted in its cursor file).
#[derive(Debug)]
pub struct SinkStats {
    /// Last seq acknowledged (every event up to it delivered or filtered out); `u64::MAX`
    /// when none.
    acked: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    filtered: AtomicU64,
    parked: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time view of one sink, for `auditlog sinks status` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkStatus {
    pub name: String,
    /// Last acknowledged seq, if any.
    pub acked_seq: Option<u64>,
    /// Records of the log after the acknowledged one (`next_seq - (acked_seq + 1)`).
    pub lag: u64,
    pub delivered: u64,
    pub retried: u64,
    pub filtered: u64,
    /// Why the sink stopped delivering, when it is parked.
    pub parked: Option<String>,
    pub last_error: Option<String>,
}

impl Default for SinkStats {
    fn default() -> Self {
        SinkStats {
            acked: AtomicU64::new(u64::MAX),
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            parked: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }
}

impl SinkStats {
    fn from_cursor(c: &CursorState) -> SinkStats {
        let s = SinkStats::default();
        s.acked
            .store(c.acked_seq.unwrap_or(u64::MAX), Ordering::Release);
        s.delivered.store(c.delivered, Ordering::Release);
        s.retried.store(c.retried, Ordering::Release);
        s.filtered.store(c.filtered, Ordering::Release);
        s
    }

    fn acked(&self) -> Option<u64> {
        Some(self.acked.load(Ordering::Acquire)).filter(|&a| a != u64::MAX)
    }

    fn cursor(&self, name: &str) -> CursorState {
        CursorState {
            sink: name.to_string(),
            acked_seq: self.acked(),
            delivered: self.delivered.load(Ordering::Acquire),
            retried: self.retried.load(Ordering::Acquire),
            filtered: self.filtered.load(Ordering::Acquire),
            parked: self.parked.lock().clone(),
            last_error: self.last_error.lock().clone(),
        }
    }

    /// The status of sink `name` over a log whose next seq is `next_seq`.
    pub fn status(&self, name: &str, next_seq: u64) -> SinkStatus {
        status_of(&self.cursor(name), next_seq)
    }
}

/// The status a cursor file describes, over a log whose next seq is `next_seq`.
pub fn status_of(c: &CursorState, next_seq: u64) -> SinkStatus {
    let done = c.acked_seq.map_or(0, |a| a + 1);
    SinkStatus {
        name: c.sink.clone(),
        acked_seq: c.acked_seq,
        lag: next_seq.saturating_sub(done),
        delivered: c.delivered,
        retried: c.retried,
        filtered: c.filtered,
        parked: c.parked.clone(),
        last_error: c.last_error.clone(),
    }
}

/// A running sink. Dropping it stops the thread (without waiting for it).
pub struct SinkHandle {
    name: String,
    stats: Arc<SinkStats>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    log: Log,
}

impl SinkHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn status(&self) -> SinkStatus {
        self.stats.status(&self.name, self.log.next_seq())
    }

    /// Whether the thread ended (parked, stopped, or the log closed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the sink to stop, without waiting (see [`stop`](Self::stop)).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the sink and waits for its thread: a batch in flight finishes its current
    /// attempt; nothing more is sent.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Waits until the sink acknowledged `seq` (delivered or filtered out everything up to
    /// it) or parked, at most `timeout`. True when acknowledged.
    pub fn wait_acked(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stats.acked().is_some_and(|a| a >= seq) {
                return true;
            }
            if self.stats.parked.lock().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for SinkHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The cursor file of sink `name` in data directory `dir`.
pub fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(CURSOR_DIR).join(format!("{name}.cursor"))
}

/// Reads the cursor file of sink `name` (`Ok(None)` when the sink never ran).
pub fn read_cursor(dir: &Path, name: &str) -> Result<Option<CursorState>> {
    cursor::read(&cursor_path(dir, name))
}

/// Starts sink `cfg` over `log` with `transport` in a new thread. Resumes after the
/// acknowledged seq of its cursor file; without one, starts where `cfg.start_at` says.
pub fn spawn(log: &Log, cfg: SinkConfig, transport: Box<dyn Transport>) -> Result<SinkHandle> {
    cfg.validate()?;
    let path = cursor_path(log.dir(), &cfg.name);
    let saved = cursor::read(&path)?;
    let stats = Arc::new(match &saved {
        Some(c) => SinkStats::from_cursor(c),
        None => SinkStats::default(),
    });
    let start = match saved.as_ref().and_then(|c| c.acked_seq) {
        Some(a) => a + 1,
        None => match cfg.start_at {
            StartAt::Beginning => 0,
            StartAt::End => log.next_seq(),
        },
    };
    if saved.is_none() {
        // Record the starting point, so that a sink starting at the end does not move on
        // to a later end after a restart.
        if start > 0 {
            stats.acked.store(start - 1, Ordering::Release);
        }
        cursor::write(&path, &stats.cursor(&cfg.name))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let name = cfg.name.clone();
    let mut worker = Worker {
        sub: log.subscribe(start).check_macs(),
        log: log.clone(),
        cfg,
        transport,
        stats: stats.clone(),
        stop: stop.clone(),
        path,
        carry: None,
    };
    let thread = std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            lower_thread_priority();
            worker.run()
        })
        .map_err(|e| Error::io("starting the thread of sink", Path::new(&name), e))?;
    Ok(SinkHandle {
        name,
        stats,
        stop,
        thread: Some(thread),
        log: log.clone(),
    })
}

struct Worker {
    sub: Subscription,
    log: Log,
    cfg: SinkConfig,
    transport: Box<dyn Transport>,
    stats: Arc<SinkStats>,
    stop: Arc<AtomicBool>,
    path: PathBuf,
    /// An event read past a full batch, first of the next one: (seq, entry, bytes).
    carry: Option<(u64, AuditLogEntry, usize)>,
}

/// The nice value sink and alert threads run at (Linux: per thread; 0 is normal, 19 the
/// lowest). On a machine whose CPUs are busy they yield to appenders and catch up when the
/// appends let up: the log is their buffer, so a sink falling behind loses nothing, while
/// a sink taking CPU from `append` would slow it.
pub const SINK_NICE: i32 = 19;

/// Lowers the calling thread's scheduling priority to [`SINK_NICE`], or to the nice value
/// in `AUDITLOG_SINK_NICE` (0 to 19; 0 keeps the normal priority). Best effort: without
/// the `sinks` feature, or if the system refuses, the thread keeps its priority.
pub fn lower_thread_priority() {
    #[cfg(all(feature = "sinks", target_os = "linux"))]
    {
        let nice = std::env::var("AUDITLOG_SINK_NICE")
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .filter(|n| (0..=19).contains(n))
            .unwrap_or(SINK_NICE);
        if nice > 0 {
            let tid = rustix::thread::gettid();
            let _ = rustix::process::setpriority_process(Some(tid), nice);
        }
    }
}

/// How often an idle sink checks whether it was asked to stop.
const IDLE_POLL: Duration = Duration::from_millis(100);

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(&mut self) {
        if let Err(e) = self.run_inner() {
            self.park(format!("stopped by an error reading the log: {e}"));
        }
    }

    fn park(&self, reason: String) {
        *self.stats.parked.lock() = Some(reason);
        let _ = self.save();
    }

    fn save(&self) -> Result<()> {
        cursor::write(&self.path, &self.stats.cursor(&self.cfg.name))
    }

    fn run_inner(&mut self) -> Result<()> {
        while !self.stopped() {
            let Some((batch, upto)) = self.collect()? else {
                return Ok(());
            };
            if !batch.is_empty() && !self.deliver(batch)? {
                return Ok(());
            }
            if let Some(upto) = upto {
                self.stats.acked.store(upto, Ordering::Release);
                self.save()?;
            }
        }
        Ok(())
    }

    /// The next batch, and the seq it acknowledges once delivered (every record read up to
    /// it, filtered out or in the batch). `None` when the sink was stopped or the log
    /// closed with nothing collected.
    #[allow(clippy::type_complexity)]
    fn collect(&mut self) -> Result<Option<(Vec<AuditLogEntry>, Option<u64>)>> {
        let b = &self.cfg.batch;
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        let mut upto: Option<u64> = None;
        let mut deadline: Option<Instant> = None;
        if let Some((seq, e, n)) = self.carry.take() {
            batch.push(e);
            bytes = n;
            upto = Some(seq);
            deadline = Some(Instant::now() + b.flush_interval());
        }
        loop {
            if batch.len() >= b.max_events {
                break;
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => IDLE_POLL,
            };
            match self.sub.next_timeout(wait)? {
                Some(r) => {
                    if !self.cfg.filter.matches(&r.event) {
                        self.stats.filtered.fetch_add(1, Ordering::AcqRel);
                        upto = Some(r.seq);
                        continue;
                    }
                    // The subscription rechecked the record's MAC against its
                    // predecessor's chain value as it read it from the mapped segment
                    // (no second read through the index, nothing shared with appenders).
                    if r.mac_verified != Some(true) {
                        return Err(Error::Corrupt {
                            file: self.log.dir().to_path_buf(),
                            offset: 0,
                            detail: format!(
                                "record {} fails its MAC check, so it is not sent; run \
                                 `auditlog verify`",
                                r.seq
                            ),
                        });
                    }
                    let e = AuditLogEntry {
                        verification: crate::query::Verification {
                            hash: format!("hmac-sha256:{}", crate::chain::hex(&r.hash)),
                            verified: true,
                        },
                        event: r.event,
                        seq: r.seq,
                        redacted: r.redacted,
                    };
                    let n = serde_json::to_vec(&e).map_or(0, |v| v.len());
                    if !batch.is_empty() && bytes + n > b.max_bytes {
                        self.carry = Some((r.seq, e, n));
                        break;
                    }
                    batch.push(e);
                    bytes += n;
                    upto = Some(r.seq);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + b.flush_interval());
                    }
                    if bytes >= b.max_bytes {
                        break;
                    }
                }
                None => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    if batch.is_empty() {
                        // Idle: acknowledge what was filtered out, and check for a stop.
                        if upto.is_some() || self.stopped() || self.sub.is_closed() {
                            break;
                        }
                    }
                }
            }
        }
        if batch.is_empty() && upto.is_none() {
            // Only a stop or the log's closing ends an empty collection.
            return Ok(None);
        }
        Ok(Some((batch, upto)))
    }

    /// Delivers `batch`, retrying as the outcomes and the retry policy say. `Ok(false)` when
    /// the sink parked or was stopped before the batch was delivered.
    fn deliver(&mut self, mut batch: Vec<AuditLogEntry>) -> Result<bool> {
        let mut attempt: u32 = 0;
        let total = batch.len() as u64;
        let mut remaining = total;
        loop {
            match self.transport.send(&batch) {
                Outcome::Delivered => {
                    self.stats.delivered.fetch_add(remaining, Ordering::AcqRel);
                    *self.stats.last_error.lock() = None;
                    return Ok(true);
                }
                Outcome::Permanent { reason } => {
                    self.park(reason);
                    return Ok(false);
                }
                Outcome::Retry {
                    resend,
                    after,
                    reason,
                } => {
                    self.stats.retried.fetch_add(1, Ordering::AcqRel);
                    *self.stats.last_error.lock() = Some(reason.clone());
                    if let Some(idx) = resend {
                        let keep: Vec<AuditLogEntry> =
                            idx.iter().filter_map(|&i| batch.get(i).cloned()).collect();
                        let accepted = batch.len() as u64 - keep.len() as u64;
                        self.stats.delivered.fetch_add(accepted, Ordering::AcqRel);
                        remaining -= accepted;
                        batch = keep;
                        if batch.is_empty() {
                            return Ok(true);
                        }
                    }
                    attempt += 1;
                    let r = &self.cfg.retry;
                    if r.max_attempts > 0 && attempt >= r.max_attempts {
                        self.park(format!(
                            "gave up after {attempt} attempts (retry.max_attempts); last error: {reason}"
                        ));
                        return Ok(false);
                    }
                    let _ = self.save();
                    let wait = after
                        .map(|a| a.min(Duration::from_secs(3600)))
                        .unwrap_or_else(|| r.backoff(attempt));
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if self.stopped() {
                            return Ok(false);
                        }
                        std::thread::sleep(
                            until
                                .saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(50)),
                        );
                    }
                }
            }
        }
    }
}
