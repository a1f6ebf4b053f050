//! Alert triggers: rules evaluated incrementally on the log's stream (a follower, never on
//! the append path). When a rule fires, an alert is appended to the log itself as a
//! `security` event with action `alert_triggered` (details: the rule, its kind, the key —
//! user or IP —, the triggering seqs), so it reaches every sink and webhook whose filter
//! takes it.
//!
//! Rule kinds (`kind` in the config):
//! - `failed_logins`: at least `threshold` failed `authentication` events for one user
//!   (`by: "user"`) or one IP (`by: "ip"`) within `window`;
//! - `critical_event`: any event of severity `critical`;
//! - `rate_limit_burst`: at least `threshold` rate-limit violations (an action containing
//!   `rate_limit`, or status `rate_limited`) within `window`, per IP;
//! - `new_admin_ip`: an event of an admin user (`admins`, or `details.role == "admin"`)
//!   from an IP that user has never used before in the log;
//! - `failed_verification`: a verification (an action containing `verif`) whose status is a
//!   failure.
//!
//! Windows and cooldowns run on the records' log timestamps, so evaluation is the same
//! on every replay. After a rule fires for a key, it stays quiet for that key for `cooldown`
//! (default 5 min). State is rebuilt after a restart by replaying the log up to the cursor
//! (`sinks/alerts.cursor`) without firing; alerts already appended past the cursor (a crash
//! between the append and the cursor write) are found first and not appended again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::cursor::{self, CursorState};
use super::seed::parse_duration;
use crate::error::{Error, Result};
use crate::event::{Actor, Event, Severity};
use crate::log::{Log, Record};

/// The action of appended alerts.
pub const ALERT_ACTION: &str = "alert_triggered";
/// The name of the alert engine's cursor file (`sinks/alerts.cursor`).
pub const ALERT_CURSOR: &str = "alerts";

/// The `alerts` section: `{"rules": [...]}`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    #[serde(default)]
    pub rules: Vec<AlertRule>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Unique; names the rule in alerts.
    pub name: String,
    /// `failed_logins`, `critical_event`, `rate_limit_burst`, `new_admin_ip`,
    /// `failed_verification`.
    pub kind: String,
    /// Events within `window` that fire (`failed_logins`, `rate_limit_burst`).
    #[serde(default)]
    pub threshold: Option<u32>,
    /// e.g. `"5m"`.
    #[serde(default)]
    pub window: Option<String>,
    /// `user` or `ip` (`failed_logins`; default `user`).
    #[serde(default)]
    pub by: Option<String>,
    /// Admin user ids (`new_admin_ip`).
    #[serde(default)]
    pub admins: Vec<String>,
    /// Quiet time per key after firing (default `"5m"`).
    #[serde(default)]
    pub cooldown: Option<String>,
    /// Severity of the alert event (default `high`; `critical` for `critical_event`).
    #[serde(default)]
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    FailedLogins { by_ip: bool },
    Critical,
    RateLimit,
    NewAdminIp,
    FailedVerification,
}

#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    kind: Kind,
    threshold: usize,
    window_ns: i64,
    cooldown_ns: i64,
    severity: Severity,
    admins: HashSet<String>,
}

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl AlertConfig {
    fn compile(&self) -> Result<Vec<Compiled>> {
        let mut out: Vec<Compiled> = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let what = format!("alerts.rules[{i}]");
            let bad = |m: String| Error::Config(format!("{what}: {m}"));
            if r.name.is_empty() || out.iter().any(|c| c.name == r.name) {
                return Err(bad(format!("name {:?}: must be set and unique", r.name)));
            }
            let kind = match r.kind.as_str() {
                "failed_logins" => Kind::FailedLogins {
                    by_ip: match r.by.as_deref() {
                        None | Some("user") => false,
                        Some("ip") => true,
                        Some(o) => return Err(bad(format!("by: {o:?} is not \"user\" or \"ip\""))),
                    },
                },
                "critical_event" => Kind::Critical,
                "rate_limit_burst" => Kind::RateLimit,
                "new_admin_ip" => Kind::NewAdminIp,
                "failed_verification" => Kind::FailedVerification,
                o => {
                    return Err(bad(format!(
                        "kind: {o:?} is not one of failed_logins, critical_event, \
                         rate_limit_burst, new_admin_ip, failed_verification"
                    )))
                }
            };
            let windowed = matches!(kind, Kind::FailedLogins { .. } | Kind::RateLimit);
            let (threshold, window_ns) = if windowed {
                let t = r
                    .threshold
                    .filter(|&t| t >= 1)
                    .ok_or_else(|| bad("threshold: required, at least 1".into()))?;
                let w = r
                    .window
                    .as_deref()
                    .ok_or_else(|| bad("window: required (e.g. \"5m\")".into()))?;
                (
                    t as usize,
                    ns(parse_duration(w, &format!("{what}.window"))?),
                )
            } else {
                (1, 0)
            };
            let cooldown = parse_duration(
                r.cooldown.as_deref().unwrap_or("5m"),
                &format!("{what}.cooldown"),
            )?;
            out.push(Compiled {
                name: r.name.clone(),
                kind,
                threshold,
                window_ns,
                cooldown_ns: ns(cooldown),
                severity: r.severity.unwrap_or(if kind == Kind::Critical {
                    Severity::Critical
                } else {
                    Severity::High
                }),
                admins: r.admins.iter().cloned().collect(),
            });
        }
        Ok(out)
    }

    /// Checks the rules (names unique, kinds known, thresholds and windows given).
    pub fn validate(&self) -> Result<()> {
        self.compile().map(|_| ())
    }
}

fn is_failure(status: &str) -> bool {
    let s = status.to_ascii_lowercase();
    s.starts_with("fail")
        || matches!(
            s.as_str(),
            "denied" | "error" | "blocked" | "rejected" | "invalid" | "unauthorized"
        )
}

fn details_of(e: &Event) -> Value {
    serde_json::to_value(&e.details).unwrap_or(Value::Null)
}

/// An alert to append: the rule, the key it fired for, the triggering seqs.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub rule: String,
    pub key: String,
    pub seqs: Vec<u64>,
    pub event: Event,
}

/// The rules' state over the stream. Feed it every record in seq order with
/// [`observe`](Self::observe).
pub struct Engine {
    rules: Vec<Compiled>,
    /// (rule, key) -> (timestamp, seq) of the events in the window.
    windows: HashMap<(usize, String), VecDeque<(i64, u64)>>,
    /// (rule, key) -> log time of the last alert.
    fired: HashMap<(usize, String), i64>,
    /// Admin user -> IPs seen.
    ips: HashMap<String, HashSet<IpAddr>>,
    /// (rule, last triggering seq) of alerts already in the log (dedup after a crash).
    covered: HashSet<(String, u64)>,
}

impl Engine {
    pub fn new(cfg: &AlertConfig) -> Result<Engine> {
        Ok(Engine {
            rules: cfg.compile()?,
            windows: HashMap::new(),
            fired: HashMap::new(),
            ips: HashMap::new(),
            covered: HashSet::new(),
        })
    }

    /// Notes an alert already in the log without evaluating anything (the pre-scan past
    /// the cursor after a restart).
    fn note_existing(&mut self, r: &Record) {
        if r.event.action != ALERT_ACTION {
            return;
        }
        let d = details_of(&r.event);
        if let (Some(rule), Some(last)) = (
            d.get("rule").and_then(Value::as_str),
            d.get("trigger_seqs")
                .and_then(Value::as_array)
                .and_then(|a| a.last())
                .and_then(Value::as_u64),
        ) {
            self.covered.insert((rule.to_string(), last));
        }
    }

    /// Evaluates record `r`; returns the alerts it fires (none while `replay`, which only
    /// rebuilds the state).
    pub fn observe(&mut self, r: &Record, replay: bool) -> Vec<Alert> {
        let e = &r.event;
        let ts = r.timestamp_ns;
        if e.action == ALERT_ACTION {
            // Our own alerts: they set the cooldown of their rule and key, and are never
            // evaluated (an alert does not trigger alerts).
            let d = details_of(e);
            if let (Some(rule), Some(key)) = (
                d.get("rule").and_then(Value::as_str),
                d.get("key").and_then(Value::as_str),
            ) {
                if let Some(i) = self.rules.iter().position(|c| c.name == rule) {
                    self.fired.insert((i, key.to_string()), ts);
                    self.windows.remove(&(i, key.to_string()));
                }
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        let user = e.actor.user_id.clone();
        let ip = e.actor.ip_address;
        for i in 0..self.rules.len() {
            let rule = &self.rules[i];
            let hit: Option<String> = match rule.kind {
                Kind::FailedLogins { by_ip } => (e.event_type == "authentication"
                    && is_failure(&e.status))
                .then(|| {
                    if by_ip {
                        ip.map(|a| a.to_string())
                    } else {
                        user.clone()
                    }
                })
                .flatten(),
                Kind::Critical => (e.severity == Severity::Critical)
                    .then(|| user.clone().unwrap_or_else(|| format!("seq-{}", r.seq))),
                Kind::RateLimit => (e.action.contains("rate_limit") || e.status == "rate_limited")
                    .then(|| ip.map_or_else(|| "unknown".to_string(), |a| a.to_string())),
                Kind::FailedVerification => (e.action.to_ascii_lowercase().contains("verif")
                    && is_failure(&e.status))
                .then(|| "log".to_string()),
                Kind::NewAdminIp => match (&user, ip) {
                    (Some(u), Some(a))
                        if rule.admins.contains(u)
                            || details_of(e).get("role").and_then(Value::as_str)
                                == Some("admin") =>
                    {
                        let seen = self.ips.entry(u.clone()).or_default();
                        let first_ever = seen.is_empty();
                        // The first IP an admin is ever seen with is the baseline, not news.
                        (seen.insert(a) && !first_ever).then(|| format!("{u}@{a}"))
                    }
                    _ => None,
                },
            };
            let Some(key) = hit else { continue };
            let slot = (i, key.clone());
            let w = self.windows.entry(slot.clone()).or_default();
            w.push_back((ts, r.seq));
            while w
                .front()
                .is_some_and(|&(t, _)| rule.window_ns > 0 && ts.saturating_sub(t) > rule.window_ns)
            {
                w.pop_front();
            }
            if rule.window_ns == 0 {
                while w.len() > 1 {
                    w.pop_front();
                }
            }
            if w.len() < rule.threshold {
                continue;
            }
            let seqs: Vec<u64> = w.iter().map(|&(_, s)| s).collect();
            w.clear();
            if self
                .fired
                .get(&slot)
                .is_some_and(|&t| ts.saturating_sub(t) < rule.cooldown_ns)
            {
                continue;
            }
            self.fired.insert(slot, ts);
            if replay || self.covered.contains(&(rule.name.clone(), r.seq)) {
                continue;
            }
            out.push(alert_event(rule, &key, seqs, e));
        }
        out
    }
}

fn alert_event(rule: &Compiled, key: &str, seqs: Vec<u64>, trigger: &Event) -> Alert {
    let kind = match rule.kind {
        Kind::FailedLogins { .. } => "failed_logins",
        Kind::Critical => "critical_event",
        Kind::RateLimit => "rate_limit_burst",
        Kind::NewAdminIp => "new_admin_ip",
        Kind::FailedVerification => "failed_verification",
    };
    let mut e = Event::new("security", ALERT_ACTION);
    e.status = "triggered".into();
    e.severity = rule.severity;
    e.actor = Actor {
        user_id: trigger.actor.user_id.clone(),
        email: trigger.actor.email.clone(),
        ip_address: trigger.actor.ip_address,
    };
    e.details = json!({
        "rule": rule.name,
        "kind": kind,
        "key": key,
        "count": seqs.len(),
        "window_secs": rule.window_ns / 1_000_000_000,
        "trigger_seqs": &seqs,
        "trigger": {"event_type": trigger.event_type, "action": trigger.action, "status": trigger.status},
    })
    .into();
    Alert {
        rule: rule.name.clone(),
        key: key.to_string(),
        seqs,
        event: e,
    }
}

/// The running alert engine.
pub struct AlertHandle {
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl AlertHandle {
    /// Alerts appended since the start (and before, from the cursor).
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Acquire)
    }

    /// The last seq evaluated (`None` before the first).
    pub fn evaluated(&self) -> Option<u64> {
        Some(self.acked.load(Ordering::Acquire)).filter(|&a| a != u64::MAX)
    }

    /// Whether the thread ended (stopped, the log closed, or an error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the engine and waits for it; its error, if it stopped on one.
    pub fn stop(mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(Error::Config("the alert thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for AlertHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn cursor_file(dir: &Path) -> std::path::PathBuf {
    super::cursor_path(dir, ALERT_CURSOR)
}

/// Starts the alert rules of `cfg` over the writable `log` in a thread: rebuilds the state
/// from the log up to the cursor, then follows it, appending alerts to it.
pub fn spawn(log: &Log, cfg: &AlertConfig) -> Result<AlertHandle> {
    spawn_into(log, log, cfg)
}

/// Starts the alert rules of `cfg` over `source` (which may be a read-only handle, as in
/// `auditlog ship`), appending the alerts to the writable `target` (`source` itself under
/// `auditlog serve`; the alert log `sinks/alerts-log` beside a writer process). The cursor
/// `sinks/alerts.cursor` is in `source`'s directory, so `serve` and `ship` continue each
/// other's evaluation. Alerts already appended for records past the cursor, in either
/// log, are not appended again.
pub fn spawn_into(source: &Log, target: &Log, cfg: &AlertConfig) -> Result<AlertHandle> {
    let mut engine = Engine::new(cfg)?;
    let path = cursor_file(source.dir());
    let saved = cursor::read(&path)?.unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicU64::new(saved.delivered));
    let acked = Arc::new(AtomicU64::new(saved.acked_seq.unwrap_or(u64::MAX)));
    let separate = source.dir() != target.dir();
    let (log2, target2, stop2, fired2, acked2) = (
        source.clone(),
        target.clone(),
        stop.clone(),
        fired.clone(),
        acked.clone(),
    );
    let thread = std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || {
            super::lower_thread_priority();
            let log = log2;
            let start = saved.acked_seq.map_or(0, |a| a + 1);
            let end = log.next_seq();
            // Alerts already appended past the cursor are not appended again.
            for r in log.iter_from(start) {
                let r = r?;
                if r.seq >= end {
                    break;
                }
                engine.note_existing(&r);
            }
            if separate {
                // Every alert of the alert log (few, and any may be past the cursor).
                let tend = target2.next_seq();
                for r in target2.iter_from(0) {
                    let r = r?;
                    if r.seq >= tend {
                        break;
                    }
                    engine.note_existing(&r);
                }
            }
            // Rebuild the windows, cooldowns and known IPs up to the cursor.
            for r in log.iter_from(0) {
                let r = r?;
                if r.seq >= start {
                    break;
                }
                engine.observe(&r, true);
            }
            let save = |acked: &AtomicU64, fired: &AtomicU64| {
                cursor::write(
                    &path,
                    &CursorState {
                        sink: ALERT_CURSOR.into(),
                        acked_seq: Some(acked.load(Ordering::Acquire)).filter(|&a| a != u64::MAX),
                        delivered: fired.load(Ordering::Acquire),
                        ..Default::default()
                    },
                )
            };
            let mut sub = log.subscribe(start);
            let mut unsaved = 0u32;
            while !stop2.load(Ordering::Acquire) {
                match sub.next_timeout(Duration::from_millis(100))? {
                    Some(r) => {
                        for a in engine.observe(&r, false) {
                            target2.append(&a.event)?;
                            fired2.fetch_add(1, Ordering::AcqRel);
                        }
                        acked2.store(r.seq, Ordering::Release);
                        unsaved += 1;
                        if unsaved >= 1000 {
                            save(&acked2, &fired2)?;
                            unsaved = 0;
                        }
                    }
                    None => {
                        if unsaved > 0 {
                            save(&acked2, &fired2)?;
                            unsaved = 0;
                        }
                        if sub.is_closed() {
                            break;
                        }
                    }
                }
            }
            if unsaved > 0 {
                save(&acked2, &fired2)?;
            }
            Ok(())
        })
        .map_err(|e| Error::io("starting the alert thread", source.dir(), e))?;
    Ok(AlertHandle {
        stop,
        fired,
        acked,
        thread: Some(thread),
    })
}
