//! Running the configured sinks: in-process beside a writer (`auditlog serve`), or beside a
//! writer process from read-only opens (`auditlog ship`), and reading their status back
//! from the cursor files (`auditlog sinks status`, `stats --json`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{cursor, cursor_path, status_of, SinkConfig, SinkHandle, SinkStatus, CURSOR_DIR};
use crate::error::{Error, Result};
use crate::log::Log;

/// The running sinks of one log.
#[derive(Default)]
pub struct Sinks {
    handles: Vec<SinkHandle>,
}

impl Sinks {
    /// Starts every enabled sink of `cfgs` over `log`, each resuming from its cursor file.
    /// Sinks named in `skip` are not started. Fails, stopping those already started, when a
    /// destination cannot be set up (an `env.` secret not set, a bad URL).
    #[cfg(feature = "sinks")]
    pub fn start(log: &Log, cfgs: &[SinkConfig], skip: &[String]) -> Result<Sinks> {
        super::check_all(cfgs)?;
        let log_id = log.log_id();
        let mut out = Sinks::default();
        for c in cfgs.iter().filter(|c| c.enabled && !skip.contains(&c.name)) {
            let t = super::transport_for(c, &log_id)?;
            out.handles.push(super::spawn(log, c.clone(), t)?);
        }
        Ok(out)
    }

    /// Without the `sinks` feature there are no transports: configured sinks are an error.
    #[cfg(not(feature = "sinks"))]
    pub fn start(_log: &Log, cfgs: &[SinkConfig], skip: &[String]) -> Result<Sinks> {
        super::check_all(cfgs)?;
        if let Some(c) = cfgs.iter().find(|c| c.enabled && !skip.contains(&c.name)) {
            return Err(Error::Config(format!(
                "sinks[{:?}]: this build has no sink transports (the `sinks` feature is off)",
                c.name
            )));
        }
        Ok(Sinks::default())
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The status of every running sink, in config order.
    pub fn statuses(&self) -> Vec<SinkStatus> {
        self.handles.iter().map(|h| h.status()).collect()
    }

    /// Names of the sinks whose thread ended because they parked.
    pub fn parked(&self) -> Vec<String> {
        self.handles
            .iter()
            .filter(|h| h.is_finished() && h.status().parked.is_some())
            .map(|h| h.name().to_string())
            .collect()
    }

    /// Whether every sink acknowledged everything below `next_seq`, or parked.
    pub fn caught_up(&self, next_seq: u64) -> bool {
        self.handles.iter().all(|h| {
            let s = h.status();
            s.parked.is_some() || next_seq == 0 || s.acked_seq.is_some_and(|a| a + 1 >= next_seq)
        })
    }

    /// Stops every sink and waits for their threads (a request in flight finishes its
    /// current attempt; its cursor is written if it was accepted).
    pub fn stop(self) {
        for h in &self.handles {
            h.request_stop();
        }
        for h in self.handles {
            h.stop();
        }
    }
}

/// The status of every configured sink and of every other sink with a cursor file in
/// `dir`, over a log whose next seq is `next_seq`, read from the cursor files. A configured
/// sink that never ran has no acknowledged seq (all of the log is its lag).
pub fn statuses_on_disk(dir: &Path, cfgs: &[SinkConfig], next_seq: u64) -> Result<Vec<SinkStatus>> {
    let mut names: Vec<String> = cfgs.iter().map(|c| c.name.clone()).collect();
    let cdir = dir.join(CURSOR_DIR);
    match std::fs::read_dir(&cdir) {
        Ok(rd) => {
            let mut more: Vec<String> = rd
                .flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".cursor").map(str::to_string)
                })
                .filter(|n| !names.contains(n))
                .collect();
            more.sort();
            names.extend(more);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("listing sink cursors", &cdir, e)),
    }
    names
        .into_iter()
        .map(|n| {
            let c = cursor::read(&cursor_path(dir, &n))?.unwrap_or(cursor::CursorState {
                sink: n.clone(),
                ..Default::default()
            });
            let mut s = status_of(&c, next_seq);
            s.name = n;
            Ok(s)
        })
        .collect()
}

/// How `ship` runs: how often it checks its sinks (parked ones, read errors, `once`).
#[derive(Debug, Clone)]
pub struct ShipOptions {
    pub poll: Duration,
    /// Return once every sink caught up with the records present at the first open (for
    /// one-shot runs and tests); otherwise run until `stop`.
    pub once: bool,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            poll: Duration::from_secs(1),
            once: false,
        }
    }
}

/// The start of the park reason of a sink whose reading of the log failed.
const READ_ERROR: &str = "stopped by an error reading the log";

/// How many times in a row `ship` reopens the log for sinks whose reading failed before it
/// leaves them parked.
const MAX_REOPENS: u32 = 5;

/// Runs the sinks of `cfgs` over the log in `dir` while another process writes it.
///
/// The log is opened read-only once; each sink follows it with a subscription, which on a
/// read-only handle rereads the segment files' tail when caught up ([`Log::refresh`]): new
/// records and segments of the writer become visible, validated by their frame CRCs (a torn
/// or half-written tail is left out until it is whole), and every event handed to a sink
/// has its chained MAC rechecked. A sink resumes from its durable cursor, so `ship` killed
/// at any point and restarted resends at most the batch that was in flight (at-least-once)
/// and skips nothing. When a sink stops on an error reading the log (the writer's retention
/// removed files under it, say), `ship` opens the log afresh and restarts the sinks from
/// their cursors, up to [`MAX_REOPENS`] times in a row. A sink parked by its receiver stays
/// parked until `ship` is restarted; when every sink parked, `ship` returns an error naming
/// why. Returns the final statuses when `stop` is set (or, with `once`, when the sinks
/// caught up with the records present at the start).
pub fn ship(
    dir: &Path,
    key: &crate::HmacKey,
    cfgs: &[SinkConfig],
    opts: &ShipOptions,
    stop: &AtomicBool,
) -> Result<Vec<SinkStatus>> {
    super::check_all(cfgs)?;
    if !cfgs.iter().any(|c| c.enabled) {
        return Err(Error::Config(
            "sinks: no enabled sink is configured, so there is nothing to ship".into(),
        ));
    }
    let open = || Log::open_read_only(dir, key.clone());
    let mut log = open()?;
    let target = log.next_seq();
    let mut parked: Vec<String> = Vec::new();
    let mut sinks = Sinks::start(&log, cfgs, &parked)?;
    let mut reopens = 0u32;
    loop {
        let until = Instant::now() + opts.poll;
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            if opts.once && sinks.caught_up(target) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::Acquire) || (opts.once && sinks.caught_up(target)) {
            let st = sinks.statuses();
            sinks.stop();
            return Ok(st);
        }
        let statuses = sinks.statuses();
        let read_failed = statuses.iter().any(|s| {
            s.parked
                .as_deref()
                .is_some_and(|p| p.starts_with(READ_ERROR))
        });
        if read_failed && reopens < MAX_REOPENS {
            reopens += 1;
            sinks.stop();
            // Restarted from their cursors, the sinks clear the read error's park.
            log = open()?;
            sinks = Sinks::start(&log, cfgs, &parked)?;
            continue;
        }
        if !read_failed {
            reopens = 0;
        }
        for p in sinks.parked() {
            if !parked.contains(&p) {
                parked.push(p);
            }
        }
        if cfgs
            .iter()
            .filter(|c| c.enabled)
            .all(|c| parked.contains(&c.name))
        {
            let why: Vec<String> = statuses
                .into_iter()
                .map(|s| format!("{}: {}", s.name, s.parked.unwrap_or_default()))
                .collect();
            sinks.stop();
            return Err(Error::Config(format!(
                "every sink parked, nothing left to ship ({})",
                why.join("; ")
            )));
        }
    }
}
