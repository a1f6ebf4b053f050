//! Running the configured sinks: in-process beside a writer (`auditlog serve`), or beside a
//! writer process from read-only opens (`auditlog ship`), and reading their status back
//! from the cursor files (`auditlog sinks status`, `stats --json`).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{cursor, cursor_path, status_of, SinkConfig, SinkHandle, SinkStatus, CURSOR_DIR};
use crate::error::{Error, Result};
use crate::log::Log;

/// The lock file (in `sinks/`) held by the one process that runs the sinks and alert rules
/// of a data directory.
pub const RUN_LOCK: &str = "LOCK";

/// Held while a process runs the sinks or alert rules of a data directory (`auditlog serve`
/// with sinks or alerts, `auditlog ship`), so that two processes never advance the same
/// cursor files at once (each would resend what the other delivered, and alerts would be
/// raised twice). An exclusive `flock` on `sinks/LOCK`, released by the kernel when the file
/// is closed or the process dies; the file names its holder (pid and role) for the error
/// the next process gets.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of data directory `dir` for `role` (`"auditlog serve"`, `"auditlog
    /// ship"`). Fails at once, naming the lock file and its holder, when another process
    /// holds it.
    pub fn acquire(dir: &Path, role: &str) -> Result<RunLock> {
        let sdir = dir.join(CURSOR_DIR);
        crate::fsio::create_dir_all("sink.lock.mkdir", &sdir)
            .map_err(|e| Error::io("creating sink cursor directory", &sdir, e))?;
        let path = sdir.join(RUN_LOCK);
        let (mut file, _) = crate::fsio::open_or_create("sink.lock.open", &path, false)
            .map_err(|e| Error::io("opening the sinks' lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    holder.to_string()
                };
                return Err(Error::Config(format!(
                    "sinks: the sinks and alert rules of {} are already run by {holder}, which \
                     holds the lock file {}; two processes would deliver from the same cursors \
                     (resending each other's batches, raising alerts twice): stop it, or run \
                     this one without sinks and alerts",
                    dir.display(),
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking", &path, e));
            }
        }
        // Name the holder (best effort: the lock itself is the flock, not this text).
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{role} (pid {})", std::process::id());
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

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

/// How `ship` runs: how often it checks its sinks (parked ones, read errors, `once`), and
/// the alert rules it evaluates.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    pub poll: Duration,
    /// Return once every sink caught up with the records present at the first open (for
    /// one-shot runs and tests); otherwise run until `stop`.
    pub once: bool,
    /// The `alerts` section. With rules, `ship` evaluates them on the stream and appends the
    /// alerts to the alert log [`ALERT_LOG`] (the writer process holds the main log's lock),
    /// whose events the same sinks deliver.
    pub alerts: super::alert::AlertConfig,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            poll: Duration::from_secs(1),
            once: false,
            alerts: Default::default(),
        }
    }
}

/// The alert log of `auditlog ship`, inside the data directory: a log of its own (same
/// key, hash-chained like any other) holding the alerts `ship` raised, since the main log
/// belongs to its writer process.
pub const ALERT_LOG: &str = "sinks/alerts-log";

/// The start of the park reason of a sink whose reading of the log failed.
const READ_ERROR: &str = "stopped by an error reading the log";

/// How many times in a row `ship` reopens the log for sinks whose reading failed before it
/// leaves them parked.
const MAX_REOPENS: u32 = 5;

/// What `ship` runs over one read-only open of the log: the sinks on it, and with alert
/// rules the engine and the sinks on the alert log.
struct Shipping {
    sinks: Sinks,
    alerts: Option<(super::alert::AlertHandle, Sinks)>,
}

impl Shipping {
    fn start(
        log: &Log,
        alert_log: Option<&Log>,
        cfgs: &[SinkConfig],
        opts: &ShipOptions,
        parked: &[String],
    ) -> Result<Shipping> {
        let sinks = Sinks::start(log, cfgs, parked)?;
        let alerts = match alert_log {
            Some(al) => Some((
                super::alert::spawn_into(log, al, &opts.alerts)?,
                Sinks::start(al, cfgs, parked)?,
            )),
            None => None,
        };
        Ok(Shipping { sinks, alerts })
    }

    fn statuses(&self) -> Vec<SinkStatus> {
        let mut st = self.sinks.statuses();
        if let Some((_, s)) = &self.alerts {
            st.extend(s.statuses().into_iter().map(|mut s| {
                s.name = format!("{}@alerts", s.name);
                s
            }));
        }
        st
    }

    /// Every sink caught up with `target` (and the alert rules evaluated up to it, and the
    /// sinks of the alert log caught up with what they raised).
    fn caught_up(&self, target: u64, alert_log: Option<&Log>) -> bool {
        if !self.sinks.caught_up(target) {
            return false;
        }
        match (&self.alerts, alert_log) {
            (Some((a, s)), Some(al)) => {
                (target == 0 || a.evaluated().is_some_and(|e| e + 1 >= target))
                    && s.caught_up(al.next_seq())
            }
            _ => true,
        }
    }

    /// Whether the alert engine ended on its own (an error reading the log or appending).
    fn alerts_failed(&self) -> bool {
        self.alerts.as_ref().is_some_and(|(a, _)| a.is_finished())
    }

    fn parked(&self) -> Vec<String> {
        let mut p = self.sinks.parked();
        if let Some((_, s)) = &self.alerts {
            p.extend(s.parked());
        }
        p
    }

    /// Stops everything; the alert engine's error, if it stopped on one.
    fn stop(self) -> Result<()> {
        let mut res = Ok(());
        if let Some((a, s)) = self.alerts {
            res = a.stop();
            s.stop();
        }
        self.sinks.stop();
        res
    }
}

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
///
/// `ship` holds the sinks' [`RunLock`] while it runs: a second `ship`, or a `serve` with
/// sinks or alerts, on the same data directory fails naming the lock file. With alert
/// rules (`opts.alerts`) it evaluates them as `serve` does and appends the alerts to the
/// alert log [`ALERT_LOG`]; each sink also delivers that log's events (status name
/// `<sink>@alerts`, stable ids `<alert log id>-<seq>`, cursors in `sinks/alerts-log/sinks/`).
pub fn ship(
    dir: &Path,
    key: &crate::HmacKey,
    cfgs: &[SinkConfig],
    opts: &ShipOptions,
    stop: &AtomicBool,
) -> Result<Vec<SinkStatus>> {
    super::check_all(cfgs)?;
    opts.alerts.validate()?;
    let with_alerts = !opts.alerts.rules.is_empty();
    if !cfgs.iter().any(|c| c.enabled) && !with_alerts {
        return Err(Error::Config(
            "sinks: no enabled sink is configured, so there is nothing to ship".into(),
        ));
    }
    let _lock = RunLock::acquire(dir, "auditlog ship")?;
    let open = || Log::open_read_only(dir, key.clone());
    let mut log = open()?;
    let alert_log = if with_alerts {
        Some(Log::open(
            dir.join(ALERT_LOG),
            crate::Options::new(key.clone()).durability(crate::Durability::Sync),
        )?)
    } else {
        None
    };
    let target = log.next_seq();
    let mut parked: Vec<String> = Vec::new();
    let mut running = Shipping::start(&log, alert_log.as_ref(), cfgs, opts, &parked)?;
    let mut reopens = 0u32;
    loop {
        let until = Instant::now() + opts.poll;
        while Instant::now() < until && !stop.load(Ordering::Acquire) {
            if opts.once && running.caught_up(target, alert_log.as_ref()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if stop.load(Ordering::Acquire)
            || (opts.once && running.caught_up(target, alert_log.as_ref()))
        {
            let st = running.statuses();
            running.stop()?;
            if let Some(al) = &alert_log {
                al.flush()?;
            }
            return Ok(st);
        }
        let statuses = running.statuses();
        let read_failed = running.alerts_failed()
            || statuses.iter().any(|s| {
                s.parked
                    .as_deref()
                    .is_some_and(|p| p.starts_with(READ_ERROR))
            });
        if read_failed {
            if reopens >= MAX_REOPENS && running.alerts_failed() {
                // The alert rules keep failing: say why.
                let why = running
                    .stop()
                    .err()
                    .map_or_else(|| "they ended".to_string(), |e| format!("last error: {e}"));
                return Err(Error::Config(format!(
                    "alerts: the alert rules stopped {MAX_REOPENS} times in a row ({why})"
                )));
            }
            if reopens < MAX_REOPENS {
                reopens += 1;
                // Restarted from their cursors, the sinks clear the read error's park.
                let _ = running.stop();
                log = open()?;
                running = Shipping::start(&log, alert_log.as_ref(), cfgs, opts, &parked)?;
                continue;
            }
        } else {
            reopens = 0;
        }
        for p in running.parked() {
            if !parked.contains(&p) {
                parked.push(p);
            }
        }
        let enabled: Vec<&SinkConfig> = cfgs.iter().filter(|c| c.enabled).collect();
        if !enabled.is_empty() && enabled.iter().all(|c| parked.contains(&c.name)) {
            let why: Vec<String> = statuses
                .into_iter()
                .filter_map(|s| s.parked.map(|p| format!("{}: {p}", s.name)))
                .collect();
            let _ = running.stop();
            return Err(Error::Config(format!(
                "every sink parked, nothing left to ship ({})",
                why.join("; ")
            )));
        }
    }
}
