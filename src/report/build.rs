//! One pass over the events of the range, counters only: the report's content.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Value};

use super::controls::controls;
use super::request::{ReportRequest, ReportType, Section};
use crate::error::Result;
use crate::log::Inner;
use crate::query::{entry, for_each_match, AuditLogEntry, Order, Query};

/// Distinct keys tracked per counted dimension; later new keys count under `(other)`.
pub const MAX_DISTINCT: usize = 10_000;
/// Entries in each "top" list.
pub const TOP_N: usize = 10;
/// Configuration changes and security incidents listed per section.
pub const MAX_LISTED: usize = 1_000;
/// Events in a user_activity timeline.
pub const MAX_TIMELINE: usize = 5_000;
/// Events carried as evidence with `include_evidence`.
pub const MAX_EVIDENCE_EVENTS: usize = 10_000;

/// Key under which values beyond [`MAX_DISTINCT`] are counted.
pub const OTHER: &str = "(other)";

const FAILED: &[&str] = &["failed", "failure", "denied", "blocked", "error"];

type Counts = BTreeMap<String, u64>;

fn bump(m: &mut Counts, k: &str) {
    if let Some(v) = m.get_mut(k) {
        *v += 1;
    } else if m.len() < MAX_DISTINCT {
        m.insert(k.to_string(), 1);
    } else {
        *m.entry(OTHER.to_string()).or_default() += 1;
    }
}

/// Exact counts of up to [`MAX_DISTINCT`] keys; events of later keys are `untracked`.
#[derive(Default)]
struct Top {
    map: HashMap<String, u64>,
    untracked: u64,
}

impl Top {
    fn add(&mut self, k: &str) {
        if let Some(v) = self.map.get_mut(k) {
            *v += 1;
        } else if self.map.len() < MAX_DISTINCT {
            self.map.insert(k.to_string(), 1);
        } else {
            self.untracked += 1;
        }
    }

    fn to_value(&self) -> Value {
        let mut v: Vec<(&String, &u64)> = self.map.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        json!({
            "top": v.iter().take(TOP_N).map(|(k, n)| json!({"key": k, "count": n})).collect::<Vec<_>>(),
            "distinct": self.map.len(),
            "distinct_capped": self.untracked > 0,
            "untracked_events": self.untracked,
        })
    }
}

/// One event as listed in a report (changes, incidents, a user's timeline).
#[derive(Serialize)]
struct Listed<'a> {
    seq: u64,
    timestamp: String,
    event_type: &'a str,
    action: &'a str,
    status: &'a str,
    severity: &'a str,
    user_id: Option<&'a str>,
    ip_address: Option<String>,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
}

fn listed(e: &AuditLogEntry, ts: i64) -> Value {
    let ev = &e.event;
    serde_json::to_value(Listed {
        seq: e.seq,
        timestamp: crate::event::format_ts(ts),
        event_type: &ev.event_type,
        action: &ev.action,
        status: &ev.status,
        severity: ev.severity.as_str(),
        user_id: ev.actor.user_id.as_deref(),
        ip_address: ev.actor.ip_address.map(|ip| ip.to_string()),
        resource_type: ev.resource.as_ref().map(|r| r.kind.as_str()),
        resource_id: ev.resource.as_ref().and_then(|r| r.id.as_deref()),
    })
    .expect("listed event serializes")
}

#[derive(Default)]
struct SectionAcc {
    events: u64,
    by_event_type: Counts,
    by_action: Counts,
    by_status: Counts,
    by_severity: Counts,
    actors: Top,
    ips: Top,
    listed: Vec<(i64, u64, Value)>,
    listed_omitted: u64,
}

impl SectionAcc {
    fn add(&mut self, sec: Section, e: &AuditLogEntry, ts: i64) {
        let ev = &e.event;
        self.events += 1;
        bump(&mut self.by_event_type, &ev.event_type);
        bump(&mut self.by_action, &ev.action);
        bump(&mut self.by_status, &ev.status);
        bump(&mut self.by_severity, ev.severity.as_str());
        self.actors
            .add(ev.actor.user_id.as_deref().unwrap_or("(none)"));
        match ev.actor.ip_address {
            Some(ip) => self.ips.add(&ip.to_string()),
            None => self.ips.add("(none)"),
        }
        if matches!(
            sec,
            Section::ConfigurationChanges | Section::SecurityIncidents
        ) {
            if self.listed.len() < MAX_LISTED {
                self.listed.push((ts, e.seq, listed(e, ts)));
            } else {
                self.listed_omitted += 1;
            }
        }
    }

    fn into_value(mut self, sec: Section, req: &ReportRequest) -> Value {
        let mut v = json!({
            "events": self.events,
            "by_event_type": self.by_event_type,
            "by_action": self.by_action,
            "by_status": self.by_status,
            "by_severity": self.by_severity,
            "top_actors": self.actors.to_value(),
            "top_source_ips": self.ips.to_value(),
        });
        let list_name = match sec {
            Section::ConfigurationChanges => Some("changes"),
            Section::SecurityIncidents => Some("incidents"),
            _ => None,
        };
        if let Some(name) = list_name {
            self.listed.sort_by_key(|(ts, seq, _)| (*ts, *seq));
            v[name] = self.listed.into_iter().map(|(_, _, x)| x).collect();
            v[format!("{name}_omitted")] = self.listed_omitted.into();
        }
        if let Some(f) = req.compliance_framework {
            v["controls"] = controls(f, sec)
                .iter()
                .map(|c| json!({"id": c.id, "title": c.title}))
                .collect();
        }
        v
    }
}

#[derive(Default, Serialize)]
struct DayFailures {
    failed_logins: u64,
    denials: u64,
}

/// Everything counted in the pass.
pub(crate) struct Scan {
    pub events: u64,
    by_event_type: Counts,
    by_severity: Counts,
    by_status: Counts,
    per_day: BTreeMap<String, Counts>,
    failures_per_day: BTreeMap<String, DayFailures>,
    unclassified: u64,
    sections: Vec<(Section, SectionAcc)>,
    first: Option<(u64, i64)>,
    last: Option<(u64, i64)>,
    timeline: Vec<Value>,
    timeline_omitted: u64,
    pub verified: u64,
    pub unverified: u64,
    pub unverified_seqs: Vec<u64>,
    pub unreadable: u64,
    pub problems: Vec<String>,
    pub scan_error: Option<String>,
    pub evidence: Vec<AuditLogEntry>,
    pub evidence_omitted: u64,
}

fn day_of(ts: i64) -> String {
    crate::event::from_nanos(ts).format("%Y-%m-%d").to_string()
}

impl Scan {
    fn new(req: &ReportRequest) -> Scan {
        Scan {
            events: 0,
            by_event_type: Counts::new(),
            by_severity: Counts::new(),
            by_status: Counts::new(),
            per_day: BTreeMap::new(),
            failures_per_day: BTreeMap::new(),
            unclassified: 0,
            sections: req
                .include_sections
                .iter()
                .map(|s| (*s, SectionAcc::default()))
                .collect(),
            first: None,
            last: None,
            timeline: Vec::new(),
            timeline_omitted: 0,
            verified: 0,
            unverified: 0,
            unverified_seqs: Vec::new(),
            unreadable: 0,
            problems: Vec::new(),
            scan_error: None,
            evidence: Vec::new(),
            evidence_omitted: 0,
        }
    }

    fn add(&mut self, req: &ReportRequest, e: AuditLogEntry, ts: i64) {
        let ev = &e.event;
        self.events += 1;
        if self.first.is_none_or(|(s, _)| e.seq < s) {
            self.first = Some((e.seq, ts));
        }
        if self.last.is_none_or(|(s, _)| e.seq > s) {
            self.last = Some((e.seq, ts));
        }
        if e.verification.verified {
            self.verified += 1;
        } else {
            self.unverified += 1;
            if self.unverified_seqs.len() < 100 {
                self.unverified_seqs.push(e.seq);
            }
        }
        bump(&mut self.by_event_type, &ev.event_type);
        bump(&mut self.by_severity, ev.severity.as_str());
        bump(&mut self.by_status, &ev.status);
        let day = day_of(ts);
        bump(self.per_day.entry(day.clone()).or_default(), &ev.event_type);
        let failed = FAILED.contains(&ev.status.as_str());
        let failed_login = ev.event_type == "authentication" && failed;
        let denial = ev.event_type == "authorization" && failed || ev.action == "permission_denied";
        if failed_login || denial {
            let d = self.failures_per_day.entry(day).or_default();
            d.failed_logins += failed_login as u64;
            d.denials += denial as u64;
        }
        let mut classified = false;
        for (sec, acc) in &mut self.sections {
            if sec.covers(&ev.event_type) {
                acc.add(*sec, &e, ts);
                classified = true;
            }
        }
        self.unclassified += !classified as u64;
        if req.report_type == ReportType::UserActivity {
            if self.timeline.len() < MAX_TIMELINE {
                self.timeline.push(listed(&e, ts));
            } else {
                self.timeline_omitted += 1;
            }
        }
        if req.include_evidence {
            if self.evidence.len() < MAX_EVIDENCE_EVENTS {
                self.evidence.push(e);
            } else {
                self.evidence_omitted += 1;
            }
        }
    }

    /// The report's `summary`, `sections`, `controls` and (user_activity) `user` members.
    pub(crate) fn content(self, req: &ReportRequest) -> (Value, Value, Value, Value) {
        let summary = json!({
            "events": self.events,
            "first_seq": self.first.map(|f| f.0),
            "last_seq": self.last.map(|l| l.0),
            "first_timestamp": self.first.map(|f| crate::event::format_ts(f.1)),
            "last_timestamp": self.last.map(|l| crate::event::format_ts(l.1)),
            "by_event_type": self.by_event_type,
            "by_severity": self.by_severity,
            "by_status": self.by_status,
            "events_per_day": self.per_day,
            "failures_per_day": self.failures_per_day,
            "events_in_no_section": self.unclassified,
        });
        let mut control_rows: Vec<(String, String, Vec<&'static str>, u64)> = Vec::new();
        if let Some(f) = req.compliance_framework {
            for (sec, acc) in &self.sections {
                for c in controls(f, *sec) {
                    match control_rows.iter_mut().find(|r| r.0 == c.id) {
                        Some(r) => {
                            r.2.push(sec.as_str());
                            r.3 += acc.events;
                        }
                        None => control_rows.push((
                            c.id.to_string(),
                            c.title.to_string(),
                            vec![sec.as_str()],
                            acc.events,
                        )),
                    }
                }
            }
        }
        let controls_v: Value = match req.compliance_framework {
            None => Value::Null,
            Some(f) => json!({
                "framework": f.as_str(),
                "controls": control_rows.into_iter().map(|(id, title, secs, n)| json!({
                    "id": id, "title": title, "evidenced_by": secs, "events": n,
                })).collect::<Vec<_>>(),
            }),
        };
        let mut sections = serde_json::Map::new();
        for (sec, acc) in self.sections {
            sections.insert(sec.as_str().to_string(), acc.into_value(sec, req));
        }
        let user = match &req.user_id {
            Some(u) if req.report_type == ReportType::UserActivity => json!({
                "user_id": u,
                "events": self.events,
                "first_seen": self.first.map(|f| crate::event::format_ts(f.1)),
                "last_seen": self.last.map(|l| crate::event::format_ts(l.1)),
                "timeline": self.timeline,
                "timeline_omitted": self.timeline_omitted,
            }),
            _ => Value::Null,
        };
        (summary, Value::Object(sections), controls_v, user)
    }
}

/// Streams the events of the request's range (and user) through the counters. A record
/// that cannot be read is counted as unreadable; a scan that cannot go on is recorded in
/// `scan_error` (the report then says it is incomplete) rather than failing the report.
pub(crate) fn scan(inner: &Inner, req: &ReportRequest) -> Scan {
    let q = Query {
        start: Some(req.start_ns),
        end: Some(req.end_ns),
        user_ids: req.user_id.iter().cloned().collect(),
        order: Order::Asc,
        include_details: req.include_evidence,
        ..Query::default()
    };
    let mut s = Scan::new(req);
    let r = for_each_match(inner, &q, |seg, h| {
        match entry(seg, h, inner, q.include_details) {
            Ok(e) => s.add(req, e, h.ts),
            Err(e) => {
                s.unreadable += 1;
                if s.problems.len() < 20 {
                    s.problems.push(format!("record {}: {e}", h.seq));
                }
            }
        }
        Ok(())
    });
    let r: Result<()> = r;
    if let Err(e) = r {
        s.scan_error = Some(e.to_string());
    }
    s
}
