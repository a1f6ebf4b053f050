//! Prometheus metrics in the text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds, in seconds, of the append-latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The outcome of the server's last full verification.
#[derive(Clone)]
pub struct LastVerify {
    pub unix_seconds: f64,
    pub ok: bool,
    pub records: u64,
    /// What the verification found, when it failed (kind, seq, segment, detail).
    pub failure: Option<String>,
}

#[derive(Default)]
pub struct Metrics {
    /// `(route, method, status)` -> requests.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    append_latency: Mutex<Histogram>,
    pub appended: AtomicU64,
    pub dropped_by_policy: AtomicU64,
    pub access_events: AtomicU64,
    pub auth_failures: AtomicU64,
    pub denials: AtomicU64,
    pub lockouts: AtomicU64,
    pub locked_out_requests: AtomicU64,
    pub failure_events_suppressed: AtomicU64,
    pub checkpoints: AtomicU64,
    pub schedule_errors: AtomicU64,
    /// Scheduled witness rounds that met the quorum / that did not (or failed).
    pub witness_rounds: AtomicU64,
    pub witness_failures: AtomicU64,
    /// Cosignatures of the last scheduled round, and the last size a quorum cosigned.
    pub witness_cosignatures: AtomicU64,
    pub witnessed_size: AtomicU64,
    last_verify: Mutex<Option<LastVerify>>,
}

/// Gauges read from the log when metrics are scraped.
pub struct LogGauges {
    pub events: u64,
    pub segments: usize,
    pub bytes: u64,
    pub index_memory_bytes: u64,
    pub next_seq: u64,
}

impl Metrics {
    pub fn request(&self, route: &str, method: &str, status: u16) {
        *self
            .requests
            .lock()
            .entry((route.to_string(), method.to_string(), status))
            .or_insert(0) += 1;
    }

    /// One durable append call (of one or many events) took `d`.
    pub fn append_took(&self, d: Duration, events: u64) {
        self.appended.fetch_add(events, Ordering::Relaxed);
        let s = d.as_secs_f64();
        let mut h = self.append_latency.lock();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += s;
    }

    pub fn verified(&self, v: LastVerify) {
        *self.last_verify.lock() = Some(v);
    }

    pub fn last_verify(&self) -> Option<LastVerify> {
        self.last_verify.lock().clone()
    }

    /// The exposition text.
    pub fn render(&self, g: &LogGauges) -> String {
        let mut o = String::with_capacity(4096);
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "auditlog_http_requests_total",
            "counter",
            "HTTP requests answered, by route, method and status.",
        );
        for ((route, method, status), n) in self.requests.lock().iter() {
            let _ = writeln!(
                o,
                "auditlog_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        head(
            &mut o,
            "auditlog_append_duration_seconds",
            "histogram",
            "Time for an append call to return durable receipts (one call may carry many events).",
        );
        {
            let h = self.append_latency.lock();
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "auditlog_append_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                o,
                "auditlog_append_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(o, "auditlog_append_duration_seconds_sum {}", h.sum);
            let _ = writeln!(o, "auditlog_append_duration_seconds_count {}", h.count);
        }
        let counters: [(&str, &str, &AtomicU64); 12] = [
            (
                "auditlog_appended_events_total",
                "Events appended through the server (ingested, access and security events).",
                &self.appended,
            ),
            (
                "auditlog_ingest_dropped_events_total",
                "Ingested events not kept because their category is turned off.",
                &self.dropped_by_policy,
            ),
            (
                "auditlog_data_access_events_total",
                "data_access events appended for reads, queries, verifications and exports.",
                &self.access_events,
            ),
            (
                "auditlog_auth_failures_total",
                "Requests refused for a missing or unknown bearer token.",
                &self.auth_failures,
            ),
            (
                "auditlog_permission_denials_total",
                "Requests refused because the token lacks the route's role.",
                &self.denials,
            ),
            (
                "auditlog_lockouts_total",
                "Addresses locked out after repeated failed authentications.",
                &self.lockouts,
            ),
            (
                "auditlog_locked_out_requests_total",
                "Requests refused because their address is locked out.",
                &self.locked_out_requests,
            ),
            (
                "auditlog_auth_failure_events_suppressed_total",
                "Failure events not appended because of the per-minute limit.",
                &self.failure_events_suppressed,
            ),
            (
                "auditlog_checkpoints_total",
                "Signed checkpoints written by the server.",
                &self.checkpoints,
            ),
            (
                "auditlog_schedule_errors_total",
                "Failed scheduled checkpoint, retention or archive runs.",
                &self.schedule_errors,
            ),
            (
                "auditlog_witness_rounds_total",
                "Scheduled witness rounds whose checkpoint a quorum of witnesses cosigned.",
                &self.witness_rounds,
            ),
            (
                "auditlog_witness_failures_total",
                "Scheduled witness rounds that failed or fell short of the quorum.",
                &self.witness_failures,
            ),
        ];
        for (name, help, v) in counters {
            head(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {}", v.load(Ordering::Relaxed));
        }
        let gauges: [(&str, &str, f64); 7] = [
            ("auditlog_events", "Events in the log.", g.events as f64),
            ("auditlog_segments", "Segment files.", g.segments as f64),
            (
                "auditlog_segment_bytes",
                "Bytes of segment files on disk.",
                g.bytes as f64,
            ),
            (
                "auditlog_index_memory_bytes",
                "Heap bytes of the indexes in memory.",
                g.index_memory_bytes as f64,
            ),
            (
                "auditlog_next_seq",
                "The seq the next event gets.",
                g.next_seq as f64,
            ),
            (
                "auditlog_witness_cosignatures",
                "Cosignatures the last scheduled witness round got.",
                self.witness_cosignatures.load(Ordering::Relaxed) as f64,
            ),
            (
                "auditlog_witnessed_tree_size",
                "The last tree size a quorum of witnesses cosigned in a scheduled round.",
                self.witnessed_size.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, v) in gauges {
            head(&mut o, name, "gauge", help);
            let _ = writeln!(o, "{name} {v}");
        }
        if let Some(v) = self.last_verify.lock().clone() {
            head(
                &mut o,
                "auditlog_last_verify_timestamp_seconds",
                "gauge",
                "When the last verification through the server finished (Unix time).",
            );
            let _ = writeln!(
                o,
                "auditlog_last_verify_timestamp_seconds {}",
                v.unix_seconds
            );
            head(
                &mut o,
                "auditlog_last_verify_ok",
                "gauge",
                "1 when the last verification found the log intact, 0 otherwise.",
            );
            let _ = writeln!(o, "auditlog_last_verify_ok {}", u8::from(v.ok));
            head(
                &mut o,
                "auditlog_last_verify_records",
                "gauge",
                "Records the last verification checked.",
            );
            let _ = writeln!(o, "auditlog_last_verify_records {}", v.records);
        }
        o
    }
}

/// The per-sink series (`sink` label), empty when no sink runs.
pub fn render_sinks(sinks: &[crate::sink::SinkStatus]) -> String {
    let mut o = String::new();
    if sinks.is_empty() {
        return o;
    }
    type Get = fn(&crate::sink::SinkStatus) -> u64;
    let series: [(&str, &str, &str, Get); 5] = [
        (
            "auditlog_sink_lag_events",
            "gauge",
            "Records of the log after the sink's last acknowledged one.",
            |s| s.lag,
        ),
        (
            "auditlog_sink_delivered_events_total",
            "counter",
            "Events the sink's receiver accepted.",
            |s| s.delivered,
        ),
        (
            "auditlog_sink_retries_total",
            "counter",
            "Deliveries the sink retried.",
            |s| s.retried,
        ),
        (
            "auditlog_sink_filtered_events_total",
            "counter",
            "Records the sink's filter left out.",
            |s| s.filtered,
        ),
        (
            "auditlog_sink_parked",
            "gauge",
            "1 when the sink stopped on a permanent error (see `auditlog sinks status`).",
            |s| u64::from(s.parked.is_some()),
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for s in sinks {
            let _ = writeln!(o, "{name}{{sink=\"{}\"}} {}", escape(&s.name), get(s));
        }
    }
    o
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.request("/api/audit-logs", "GET", 200);
        m.request("/api/audit-logs", "GET", 200);
        m.append_took(Duration::from_micros(300), 5);
        let t = m.render(&LogGauges {
            events: 7,
            segments: 1,
            bytes: 100,
            index_memory_bytes: 10,
            next_seq: 7,
        });
        assert!(t.contains(
            "auditlog_http_requests_total{route=\"/api/audit-logs\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(t.contains("auditlog_append_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(t.contains("auditlog_append_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(t.contains("auditlog_append_duration_seconds_count 1"));
        assert!(t.contains("auditlog_appended_events_total 5"));
        assert!(t.contains("auditlog_events 7"));
        assert!(!t.contains("auditlog_last_verify_ok"));
    }

    #[test]
    fn renders_sink_series_with_escaped_labels() {
        assert_eq!(render_sinks(&[]), "");
        let s = crate::sink::SinkStatus {
            name: "a\"b".into(),
            acked_seq: Some(4),
            lag: 3,
            delivered: 5,
            retried: 2,
            filtered: 0,
            parked: Some("HTTP 401".into()),
            last_error: None,
        };
        let t = render_sinks(&[s]);
        assert!(t.contains("# TYPE auditlog_sink_lag_events gauge\n"));
        assert!(t.contains("auditlog_sink_lag_events{sink=\"a\\\"b\"} 3\n"));
        assert!(t.contains("auditlog_sink_delivered_events_total{sink=\"a\\\"b\"} 5\n"));
        assert!(t.contains("auditlog_sink_retries_total{sink=\"a\\\"b\"} 2\n"));
        assert!(t.contains("auditlog_sink_parked{sink=\"a\\\"b\"} 1\n"));
    }
}
