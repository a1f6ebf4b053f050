//! Alert triggers: rules evaluated on the stream append `security`/`alert_triggered`
//! events; state (windows, cooldowns, admins' known IPs) survives a restart, and alerts are
//! never appended twice, even when the cursor is lost.

mod common;

use std::time::{Duration, Instant};

use auditlog::sink::alert::{self, AlertConfig, ALERT_ACTION};
use auditlog::{Durability, Event, Log, Options, Severity};
use common::key;
use serde_json::Value;

fn opts() -> Options {
    Options::new(key()).durability(Durability::Sync)
}

fn rules() -> AlertConfig {
    serde_json::from_value(serde_json::json!({"rules": [
        {"name": "brute-user", "kind": "failed_logins", "threshold": 3, "window": "5m", "by": "user"},
        {"name": "brute-ip", "kind": "failed_logins", "threshold": 4, "window": "5m", "by": "ip", "cooldown": "1h"},
        {"name": "critical", "kind": "critical_event"},
        {"name": "rate", "kind": "rate_limit_burst", "threshold": 2, "window": "1m"},
        {"name": "admin-ip", "kind": "new_admin_ip", "admins": ["root"]},
        {"name": "verify", "kind": "failed_verification"}
    ]}))
    .unwrap()
}

fn ev(kind: &str, action: &str, status: &str, user: &str, ip: &str) -> Event {
    let mut e = Event::new(kind, action);
    e.status = status.into();
    e.actor.user_id = Some(user.into());
    e.actor.ip_address = Some(ip.parse().unwrap());
    e
}

fn alerts(log: &Log) -> Vec<Value> {
    log.iter()
        .map(|r| r.unwrap())
        .filter(|r| r.event.action == ALERT_ACTION)
        .map(|r| {
            assert_eq!(r.event.event_type, "security");
            serde_json::to_value(&r.event.details).unwrap()
        })
        .collect()
}

fn wait_for(log: &Log, n: usize) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let a = alerts(log);
        if a.len() >= n || t.elapsed() > Duration::from_secs(20) {
            return a;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rules_fired(a: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = a
        .iter()
        .map(|d| d["rule"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn rules_fire_once_with_their_triggers_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), opts()).unwrap();
        let h = alert::spawn(&log, &rules()).unwrap();
        // One batch, so that the alerts the engine appends meanwhile cannot take seqs among
        // these events (the expected trigger seqs below are theirs).
        let mut evs = Vec::new();
        // Five failed logins for alice from one IP: brute-user fires at the third (then is
        // in cooldown), brute-ip at the fourth.
        for _ in 0..5 {
            evs.push(ev(
                "authentication",
                "login",
                "failure",
                "alice",
                "10.0.0.1",
            ));
        }
        // A successful login does not count.
        evs.push(ev("authentication", "login", "success", "bob", "10.0.0.2"));
        let mut crit = ev(
            "configuration_change",
            "disable_mfa",
            "success",
            "eve",
            "10.0.0.3",
        );
        crit.severity = Severity::Critical;
        evs.push(crit);
        for _ in 0..2 {
            evs.push(ev(
                "security",
                "rate_limit_exceeded",
                "blocked",
                "x",
                "10.0.0.9",
            ));
        }
        // root's first IP is the baseline; a second one is news.
        evs.push(ev(
            "authentication",
            "login",
            "success",
            "root",
            "192.0.2.1",
        ));
        evs.push(ev(
            "authentication",
            "login",
            "success",
            "root",
            "192.0.2.1",
        ));
        evs.push(ev(
            "authentication",
            "login",
            "success",
            "root",
            "192.0.2.7",
        ));
        evs.push(ev("data_access", "verify", "failed", "auditor", "10.0.0.4"));
        log.append_batch(&evs).unwrap();
        let a = wait_for(&log, 6);
        assert_eq!(
            rules_fired(&a),
            [
                "admin-ip",
                "brute-ip",
                "brute-user",
                "critical",
                "rate",
                "verify"
            ]
        );
        let bu = a.iter().find(|d| d["rule"] == "brute-user").unwrap();
        assert_eq!(bu["trigger_seqs"], serde_json::json!([0, 1, 2]));
        assert_eq!(bu["key"], "alice");
        let bi = a.iter().find(|d| d["rule"] == "brute-ip").unwrap();
        assert_eq!(bi["trigger_seqs"], serde_json::json!([0, 1, 2, 3]));
        assert_eq!(bi["key"], "10.0.0.1");
        let adm = a.iter().find(|d| d["rule"] == "admin-ip").unwrap();
        assert_eq!(adm["key"], "root@192.0.2.7");
        // Alerts do not trigger alerts (the critical rule ignores them) and nothing else
        // fires meanwhile.
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(alerts(&log).len(), 6);
        h.stop().unwrap();
    }
    {
        // Restart: state rebuilt from the log. alice is still in brute-user's cooldown;
        // root's two IPs are known.
        let log = Log::open(dir.path(), opts()).unwrap();
        let h = alert::spawn(&log, &rules()).unwrap();
        for _ in 0..3 {
            log.append(&ev(
                "authentication",
                "login",
                "failure",
                "alice",
                "10.0.0.5",
            ))
            .unwrap();
        }
        log.append(&ev(
            "authentication",
            "login",
            "success",
            "root",
            "192.0.2.7",
        ))
        .unwrap();
        log.append(&ev(
            "authentication",
            "login",
            "success",
            "root",
            "198.51.100.1",
        ))
        .unwrap();
        let a = wait_for(&log, 7);
        std::thread::sleep(Duration::from_millis(400));
        let a2 = alerts(&log);
        assert_eq!(a2.len(), 7, "only the new admin IP fires: {a:?}");
        assert_eq!(a2[6]["key"], "root@198.51.100.1");
        h.stop().unwrap();
    }
    {
        // The cursor lost (a crash before it was written): everything is evaluated again,
        // and no alert is appended twice.
        std::fs::remove_file(dir.path().join("sinks/alerts.cursor")).unwrap();
        let log = Log::open(dir.path(), opts()).unwrap();
        let h = alert::spawn(&log, &rules()).unwrap();
        let t = Instant::now();
        while h.evaluated() < Some(log.next_seq() - 1) && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(alerts(&log).len(), 7);
        h.stop().unwrap();
    }
}

#[test]
fn bad_rules_are_refused_naming_the_rule() {
    for (rule, needle) in [
        (r#"{"name": "a", "kind": "nope"}"#, "alerts.rules[0]: kind"),
        (
            r#"{"name": "a", "kind": "failed_logins", "window": "5m"}"#,
            "threshold",
        ),
        (
            r#"{"name": "a", "kind": "failed_logins", "threshold": 3}"#,
            "window",
        ),
        (
            r#"{"name": "a", "kind": "failed_logins", "threshold": 3, "window": "5 eons"}"#,
            "alerts.rules[0].window",
        ),
        (
            r#"{"name": "a", "kind": "failed_logins", "threshold": 3, "window": "5m", "by": "planet"}"#,
            "by",
        ),
    ] {
        let text = format!(r#"{{"alerts": {{"rules": [{rule}]}}}}"#);
        let e = auditlog::Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains(needle), "{rule}: {e}");
    }
    let dup = r#"{"alerts": {"rules": [{"name": "a", "kind": "critical_event"}, {"name": "a", "kind": "critical_event"}]}}"#;
    assert!(auditlog::Config::from_json(dup)
        .unwrap_err()
        .to_string()
        .contains("unique"));
}

/// Records what it is given; accepts everything.
struct Collect(std::sync::Arc<std::sync::Mutex<Vec<auditlog::AuditLogEntry>>>);

impl auditlog::sink::Transport for Collect {
    fn send(&mut self, batch: &[auditlog::AuditLogEntry]) -> auditlog::sink::Outcome {
        self.0.lock().unwrap().extend_from_slice(batch);
        auditlog::sink::Outcome::Delivered
    }
}

#[test]
fn an_alert_reaches_a_sink_that_subscribes_to_security_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cfg: auditlog::sink::SinkConfig = serde_json::from_value(serde_json::json!({
        "name": "soc",
        "destination": {"type": "webhook", "url": "http://127.0.0.1:9/unused"},
        "filter": {"event_types": ["security"], "actions": [ALERT_ACTION]},
        "batch": {"max_events": 10, "flush_interval_ms": 20}
    }))
    .unwrap();
    let sink = auditlog::sink::spawn(&log, cfg, Box::new(Collect(got.clone()))).unwrap();
    let alerts_h = alert::spawn(&log, &rules()).unwrap();
    for _ in 0..3 {
        log.append(&ev(
            "authentication",
            "login",
            "denied",
            "mallory",
            "203.0.113.5",
        ))
        .unwrap();
    }
    let t = Instant::now();
    while got.lock().unwrap().is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    alerts_h.stop().unwrap();
    let seq = log.next_seq() - 1;
    assert!(sink.wait_acked(seq, Duration::from_secs(20)));
    sink.stop();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "only the alert passes the sink's filter");
    assert_eq!(got[0].event.action, ALERT_ACTION);
    let d = serde_json::to_value(&got[0].event.details).unwrap();
    assert_eq!(d["rule"], "brute-user");
    assert_eq!(d["trigger_seqs"], serde_json::json!([0, 1, 2]));
}
