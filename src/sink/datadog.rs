//! The Datadog logs destination (feature `sinks`): the logs intake API v2,
//! `POST https://http-intake.logs.<site>/api/v2/logs`, `DD-API-KEY`, gzip-compressed JSON
//! arrays of at most 1,000 logs and 5 MB (before compression) per request, each log at most
//! 1 MB. Statuses: 2xx delivered; 400 and 413 park the sink (the payload itself is wrong);
//! every other status and transport errors are retried, as Vector's Datadog sink does.

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};

use super::http::{agent, post, short, transport_retry, Reply};
use super::{Outcome, Transport};
use crate::error::{Error, Result};
use crate::event::Severity;
use crate::query::AuditLogEntry;

/// The most logs in one request.
pub const MAX_ENTRIES: usize = 1000;
/// The most bytes of (uncompressed) payload in one request.
pub const MAX_PAYLOAD: usize = 5_000_000;
/// The most bytes of one log.
pub const MAX_LOG: usize = 1_000_000;

pub use super::config::datadog_intake_url as intake_url;

/// Datadog's log status for a severity.
fn dd_status(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "notice",
        Severity::Medium => "warning",
        Severity::High => "error",
        Severity::Critical => "critical",
    }
}

pub struct DatadogTransport {
    url: String,
    api_key: String,
    log_id: String,
    source: String,
    service: String,
    hostname: String,
    tags: Option<String>,
    agent: ureq::Agent,
}

/// The fields of a Datadog destination besides the URL and key.
pub struct DatadogOptions {
    pub source: Option<String>,
    pub service: Option<String>,
    pub hostname: Option<String>,
    /// `ddtags`: comma-separated `key:value` tags.
    pub tags: Vec<String>,
    pub timeout_secs: Option<u64>,
}

impl DatadogTransport {
    pub fn new(url: String, api_key: String, log_id: &str, o: DatadogOptions) -> Self {
        DatadogTransport {
            url,
            api_key,
            log_id: log_id.to_string(),
            source: o.source.unwrap_or_else(|| "auditlog".into()),
            service: o.service.unwrap_or_else(|| "auditlog".into()),
            hostname: o
                .hostname
                .unwrap_or_else(|| crate::siem::FormatContext::new(log_id).host),
            tags: (!o.tags.is_empty()).then(|| o.tags.join(",")),
            agent: agent(o.timeout_secs),
        }
    }

    /// One log: Datadog's reserved attributes (`ddsource`, `ddtags`, `hostname`, `service`,
    /// `status` from the severity, `timestamp` in ms, `message`), the stable id
    /// `<log_id>-<seq>` for deduplication, and the event under `auditlog` (so that its own
    /// `status` does not become the log's status). An event too large for one log keeps
    /// everything but its `details`, which are replaced by a note of their size.
    pub fn entry(&self, e: &AuditLogEntry) -> Value {
        let ev = &e.event;
        let mut message = format!("{} {} {}", ev.event_type, ev.action, ev.status);
        if let Some(u) = &ev.actor.user_id {
            message.push_str(&format!(" by {u}"));
        }
        let mut v = json!({
            "ddsource": self.source,
            "service": self.service,
            "hostname": self.hostname,
            "status": dd_status(ev.severity),
            "message": message,
            "id": format!("{}-{}", self.log_id, e.seq),
            "auditlog": e,
        });
        if let Some(ts) = ev.timestamp {
            v["timestamp"] = json!(ts.timestamp_millis());
        }
        if let Some(t) = &self.tags {
            v["ddtags"] = json!(t);
        }
        let n = serde_json::to_vec(&v).map_or(0, |b| b.len());
        if n > MAX_LOG {
            v["auditlog"]["details"] = json!({
                "_truncated": format!("details removed: the event was {n} bytes, over Datadog's 1 MB per log")
            });
        }
        v
    }

    /// Splits `batch` into requests: index ranges of at most [`MAX_ENTRIES`] logs and
    /// [`MAX_PAYLOAD`] bytes of JSON array, with the serialized logs.
    fn requests(&self, batch: &[AuditLogEntry]) -> Vec<(std::ops::Range<usize>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut body = vec![b'['];
        for (i, e) in batch.iter().enumerate() {
            let one = serde_json::to_vec(&self.entry(e)).expect("a log serializes");
            let full = i - start >= MAX_ENTRIES || body.len() + one.len() + 2 > MAX_PAYLOAD;
            if i > start && full {
                body.push(b']');
                out.push((start..i, std::mem::replace(&mut body, vec![b'['])));
                start = i;
            }
            if i > start {
                body.push(b',');
            }
            body.extend_from_slice(&one);
        }
        if start < batch.len() {
            body.push(b']');
            out.push((start..batch.len(), body));
        }
        out
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>> {
    let mut g = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
    g.write_all(body)
        .and_then(|_| g.finish())
        .map_err(|e| Error::Config(format!("gzip of a Datadog request: {e}")))
}

impl Transport for DatadogTransport {
    fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
        for (range, body) in self.requests(batch) {
            let gz = match gzip(&body) {
                Ok(g) => g,
                Err(e) => {
                    return Outcome::Permanent {
                        reason: e.to_string(),
                    }
                }
            };
            let req = self
                .agent
                .post(&self.url)
                .set("dd-api-key", &self.api_key)
                .set("content-type", "application/json")
                .set("content-encoding", "gzip");
            let failed = match post(req, &gz) {
                Reply::Status { code, .. } if (200..300).contains(&code) => continue,
                Reply::Transport(e) => transport_retry(&self.url, e),
                Reply::Status { code, body, .. } if code == 400 || code == 413 => {
                    Outcome::Permanent {
                        reason: format!("Datadog {}: {code} {}", self.url, short(&body)),
                    }
                }
                Reply::Status {
                    code,
                    retry_after,
                    body,
                } => Outcome::Retry {
                    resend: None,
                    after: retry_after,
                    reason: format!("Datadog {}: {code} {}", self.url, short(&body)),
                },
            };
            // The requests before this one were accepted: only the rest is resent.
            return match failed {
                Outcome::Retry { after, reason, .. } if range.start > 0 => Outcome::Retry {
                    resend: Some((range.start..batch.len()).collect()),
                    after,
                    reason,
                },
                other => other,
            };
        }
        Outcome::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intake_urls_per_site() {
        assert_eq!(
            intake_url(None, None).unwrap(),
            "https://http-intake.logs.datadoghq.com/api/v2/logs"
        );
        assert_eq!(
            intake_url(Some("datadoghq.eu"), None).unwrap(),
            "https://http-intake.logs.datadoghq.eu/api/v2/logs"
        );
        assert_eq!(
            intake_url(Some("us5.datadoghq.com"), None).unwrap(),
            "https://http-intake.logs.us5.datadoghq.com/api/v2/logs"
        );
        assert_eq!(
            intake_url(Some("ddog-gov.com"), None).unwrap(),
            "https://http-intake.logs.ddog-gov.com/api/v2/logs"
        );
        assert_eq!(
            intake_url(Some("x"), Some("http://127.0.0.1:9/v2")).unwrap(),
            "http://127.0.0.1:9/v2"
        );
        for bad in ["", "datadoghq", "a/b.com", ".datadoghq.com", "x.com:443"] {
            let e = intake_url(Some(bad), None).unwrap_err();
            assert!(e.contains("site"), "{bad}: {e}");
        }
    }
}
