//! HTTP destinations of the sinks (feature `sinks`): a Standard Webhooks endpoint, Splunk
//! HEC and Elasticsearch `_bulk`, over `ureq` (blocking, rustls).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::config::{resolve_secret, Destination, SinkConfig};
use super::{Outcome, Transport};
use crate::error::{Error, Result};
use crate::query::AuditLogEntry;
use crate::siem::{self, FormatContext};

pub(super) fn agent(timeout_secs: Option<u64>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(timeout_secs.unwrap_or(30).max(1)))
        .build()
}

/// A response, or why there was none.
pub(super) enum Reply {
    Status {
        code: u16,
        retry_after: Option<Duration>,
        body: String,
    },
    Transport(String),
}

pub(super) fn post(req: ureq::Request, body: &[u8]) -> Reply {
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(ureq::Error::Transport(t)) => return Reply::Transport(t.to_string()),
    };
    let code = resp.status();
    let retry_after = resp.header("retry-after").and_then(parse_retry_after);
    let body = resp.into_string().unwrap_or_default();
    Reply::Status {
        code,
        retry_after,
        body,
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.timestamp_millis() - chrono::Utc::now().timestamp_millis()).max(0);
    Some(Duration::from_millis(ms as u64))
}

pub(super) fn short(body: &str) -> &str {
    let end = body.char_indices().nth(300).map_or(body.len(), |(i, _)| i);
    &body[..end]
}

pub(super) fn transport_retry(url: &str, e: String) -> Outcome {
    Outcome::Retry {
        resend: None,
        after: None,
        reason: format!("POST {url}: {e}"),
    }
}

/// The Standard Webhooks signature header value: `v1,<base64 HMAC-SHA256 of
/// "id.timestamp.body">` keyed with the secret's bytes (the base64 after `whsec_`).
pub fn webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            Error::Config(format!(
                "webhook secret: not base64 after the whsec_ prefix ({e})"
            ))
        })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// POSTs each batch as `{"type":"auditlog.events","timestamp":…,"data":{"log_id":…,
/// "events":[…]}}` with `webhook-id` (`<log_id>-<first seq>-<last seq>`, the same on every
/// retry), `webhook-timestamp` and, with a secret, `webhook-signature`. 2xx delivers;
/// 408, 429 and 5xx are retried (`Retry-After` honoured); 410 parks the sink as disabled by
/// the receiver; other statuses park it.
pub struct WebhookTransport {
    url: String,
    secret: Option<String>,
    headers: Vec<(String, String)>,
    log_id: String,
    agent: ureq::Agent,
}

impl WebhookTransport {
    pub fn new(
        url: &str,
        secret: Option<String>,
        headers: Vec<(String, String)>,
        log_id: &str,
        timeout_secs: Option<u64>,
    ) -> Result<WebhookTransport> {
        if let Some(s) = &secret {
            webhook_signature(s, "check", 0, b"")?;
        }
        Ok(WebhookTransport {
            url: url.into(),
            secret,
            headers,
            log_id: log_id.into(),
            agent: agent(timeout_secs),
        })
    }
}

impl Transport for WebhookTransport {
    fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
        let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
        let id = format!("{}-{first}-{last}", self.log_id);
        let now = chrono::Utc::now();
        let body = serde_json::to_vec(&json!({
            "type": "auditlog.events",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {"log_id": self.log_id, "events": batch},
        }))
        .expect("events serialize");
        let ts = now.timestamp();
        let mut req = self
            .agent
            .post(&self.url)
            .set("content-type", "application/json")
            .set("webhook-id", &id)
            .set("webhook-timestamp", &ts.to_string());
        if let Some(s) = &self.secret {
            match webhook_signature(s, &id, ts, &body) {
                Ok(sig) => req = req.set("webhook-signature", &sig),
                Err(e) => {
                    return Outcome::Permanent {
                        reason: e.to_string(),
                    }
                }
            }
        }
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        match post(req, &body) {
            Reply::Transport(e) => transport_retry(&self.url, e),
            Reply::Status { code, .. } if (200..300).contains(&code) => Outcome::Delivered,
            Reply::Status {
                code,
                retry_after,
                body,
            } if code == 408 || code == 429 || code >= 500 => Outcome::Retry {
                resend: None,
                after: retry_after,
                reason: format!("POST {}: {code} {}", self.url, short(&body)),
            },
            Reply::Status { code: 410, .. } => Outcome::Permanent {
                reason: format!(
                    "POST {}: 410 Gone: the receiver disabled this webhook",
                    self.url
                ),
            },
            Reply::Status { code, body, .. } => Outcome::Permanent {
                reason: format!("POST {}: {code} {}", self.url, short(&body)),
            },
        }
    }
}

/// Splunk HEC: the batch as concatenated event envelopes with `Authorization: Splunk
/// <token>`. Retried: 408, 429 and 5xx except 501. A 400 naming `invalid-event-number` N
/// resends from event N (the ones before it were indexed); if event N fails again first,
/// the sink parks. Other statuses park it.
pub struct HecTransport {
    url: String,
    token: String,
    ctx: FormatContext,
    agent: ureq::Agent,
    ack: Option<HecAck>,
}

/// Indexer acknowledgement: the channel, the ack endpoint and how long to poll it.
struct HecAck {
    channel: String,
    url: String,
    timeout: Duration,
    poll: Duration,
}

/// The ack endpoint next to an event endpoint: `…/services/collector/event` (or
/// `…/services/collector`, `…/services/collector/raw`) becomes `…/services/collector/ack`.
pub fn hec_ack_url(event_url: &str) -> String {
    let base = event_url.trim_end_matches('/');
    let base = base
        .strip_suffix("/event")
        .or_else(|| base.strip_suffix("/raw"))
        .unwrap_or(base);
    format!("{base}/ack")
}

impl HecTransport {
    pub fn new(url: &str, token: String, ctx: FormatContext, timeout_secs: Option<u64>) -> Self {
        HecTransport {
            url: url.into(),
            token,
            ctx,
            agent: agent(timeout_secs),
            ack: None,
        }
    }

    /// Turns on indexer acknowledgement on a new channel (a fresh UUID): a batch counts as
    /// delivered once `…/services/collector/ack` reports its `ackId` true, polled every
    /// `poll` for at most `timeout` (then the batch is resent).
    pub fn with_indexer_ack(mut self, timeout: Duration, poll: Duration) -> Self {
        self.ack = Some(HecAck {
            channel: uuid::Uuid::now_v7().to_string(),
            url: hec_ack_url(&self.url),
            timeout,
            poll,
        });
        self
    }

    /// Polls the ack endpoint for `id` until it is acknowledged or the timeout passes.
    fn await_ack(&self, ack: &HecAck, id: u64) -> Outcome {
        let deadline = std::time::Instant::now() + ack.timeout;
        let url = format!("{}?channel={}", ack.url, ack.channel);
        let body = json!({ "acks": [id] }).to_string();
        let mut last: String;
        loop {
            let req = self
                .agent
                .post(&url)
                .set("authorization", &format!("Splunk {}", self.token))
                .set("x-splunk-request-channel", &ack.channel)
                .set("content-type", "application/json");
            match post(req, body.as_bytes()) {
                Reply::Status {
                    code: 200, body, ..
                } => {
                    let v: Option<Value> = serde_json::from_str(&body).ok();
                    let acked = v
                        .as_ref()
                        .and_then(|v| v.get("acks"))
                        .and_then(|a| a.get(id.to_string()))
                        .and_then(Value::as_bool);
                    match acked {
                        Some(true) => return Outcome::Delivered,
                        Some(false) => last = format!("ackId {id} not yet indexed"),
                        None => last = format!("unexpected ack answer {}", short(&body)),
                    }
                }
                Reply::Status { code, body, .. } => last = format!("{code} {}", short(&body)),
                Reply::Transport(e) => last = e,
            }
            if std::time::Instant::now() + ack.poll > deadline {
                return Outcome::Retry {
                    resend: None,
                    after: None,
                    reason: format!(
                        "HEC {}: ackId {id} not acknowledged within {} s ({last}); resending the batch",
                        ack.url,
                        ack.timeout.as_secs()
                    ),
                };
            }
            std::thread::sleep(ack.poll);
        }
    }
}

impl Transport for HecTransport {
    fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
        let mut body = Vec::new();
        for e in batch {
            serde_json::to_writer(&mut body, &siem::hec(e, &self.ctx)).expect("serializes");
            body.push(b'\n');
        }
        let mut req = self
            .agent
            .post(&self.url)
            .set("authorization", &format!("Splunk {}", self.token))
            .set("content-type", "application/json");
        if let Some(a) = &self.ack {
            req = req.set("x-splunk-request-channel", &a.channel);
        }
        match post(req, &body) {
            Reply::Transport(e) => transport_retry(&self.url, e),
            Reply::Status {
                code: 200, body, ..
            } => match &self.ack {
                None => Outcome::Delivered,
                Some(a) => {
                    let id = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v.get("ackId").and_then(Value::as_u64));
                    match id {
                        Some(id) => self.await_ack(a, id),
                        None => Outcome::Permanent {
                            reason: format!(
                                "HEC {}: 200 without an ackId ({}): is indexer acknowledgement enabled on the token?",
                                self.url,
                                short(&body)
                            ),
                        },
                    }
                }
            },
            Reply::Status {
                code,
                retry_after,
                body,
            } if code == 408 || code == 429 || (code >= 500 && code != 501) => Outcome::Retry {
                resend: None,
                after: retry_after,
                reason: format!("HEC {}: {code} {}", self.url, short(&body)),
            },
            Reply::Status {
                code: 400, body, ..
            } => {
                let n = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("invalid-event-number").and_then(Value::as_u64));
                match n {
                    Some(n) if n > 0 && (n as usize) < batch.len() => Outcome::Retry {
                        resend: Some((n as usize..batch.len()).collect()),
                        after: None,
                        reason: format!(
                            "HEC {}: 400 at event {n} of the batch (seq {}): {}; resending from it",
                            self.url,
                            batch[n as usize].seq,
                            short(&body)
                        ),
                    },
                    _ => Outcome::Permanent {
                        reason: format!("HEC {}: 400 {}", self.url, short(&body)),
                    },
                }
            }
            Reply::Status { code, body, .. } => Outcome::Permanent {
                reason: format!("HEC {}: {code} {}", self.url, short(&body)),
            },
        }
    }
}

/// Elasticsearch `_bulk` with `create` actions (`_id` `<log_id>-<seq>`, so a resend of a
/// delivered event is a 409, counted as delivered), `Authorization: ApiKey …` and an
/// optional `pipeline`. Retried: 429 and 5xx, and per item 429 only (just those items);
/// another per-item error, or another status, parks the sink.
pub struct ElasticTransport {
    url: String,
    api_key: Option<String>,
    ctx: FormatContext,
    agent: ureq::Agent,
}

impl ElasticTransport {
    pub fn new(
        base: &str,
        api_key: Option<String>,
        pipeline: Option<&str>,
        ctx: FormatContext,
        timeout_secs: Option<u64>,
    ) -> Self {
        let mut url = format!("{}/_bulk", base.trim_end_matches('/'));
        if let Some(p) = pipeline {
            url.push_str("?pipeline=");
            for b in p.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    url.push(b as char);
                } else {
                    url.push_str(&format!("%{b:02X}"));
                }
            }
        }
        ElasticTransport {
            url,
            api_key,
            ctx,
            agent: agent(timeout_secs),
        }
    }
}

impl Transport for ElasticTransport {
    fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
        let mut body = Vec::new();
        for e in batch {
            let (a, d) = siem::elastic(e, &self.ctx);
            serde_json::to_writer(&mut body, &a).expect("serializes");
            body.push(b'\n');
            serde_json::to_writer(&mut body, &d).expect("serializes");
            body.push(b'\n');
        }
        let mut req = self
            .agent
            .post(&self.url)
            .set("content-type", "application/x-ndjson");
        if let Some(k) = &self.api_key {
            req = req.set("authorization", &format!("ApiKey {k}"));
        }
        let text = match post(req, &body) {
            Reply::Transport(e) => return transport_retry(&self.url, e),
            Reply::Status {
                code,
                retry_after,
                body,
            } if code == 429 || code >= 500 => {
                return Outcome::Retry {
                    resend: None,
                    after: retry_after,
                    reason: format!("bulk {}: {code} {}", self.url, short(&body)),
                }
            }
            Reply::Status { code, body, .. } if !(200..300).contains(&code) => {
                return Outcome::Permanent {
                    reason: format!("bulk {}: {code} {}", self.url, short(&body)),
                }
            }
            Reply::Status { body, .. } => body,
        };
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("bulk {}: the response is not JSON: {e}", self.url),
                }
            }
        };
        if v.get("errors") != Some(&Value::Bool(true)) {
            return Outcome::Delivered;
        }
        let items = v.get("items").and_then(Value::as_array);
        let Some(items) = items.filter(|i| i.len() == batch.len()) else {
            return Outcome::Permanent {
                reason: format!(
                    "bulk {}: errors without one item per action: {}",
                    self.url,
                    short(&text)
                ),
            };
        };
        let mut resend = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let r = it.get("create").or_else(|| it.get("index")).unwrap_or(it);
            let status = r.get("status").and_then(Value::as_u64).unwrap_or(0);
            match status {
                200..=299 | 409 => {}
                429 => resend.push(i),
                _ => {
                    return Outcome::Permanent {
                        reason: format!(
                            "bulk {}: event seq {} refused with {status}: {}",
                            self.url,
                            batch[i].seq,
                            short(&r.get("error").map(Value::to_string).unwrap_or_default())
                        ),
                    }
                }
            }
        }
        if resend.is_empty() {
            Outcome::Delivered
        } else {
            Outcome::Retry {
                reason: format!(
                    "bulk {}: {} of {} events refused with 429",
                    self.url,
                    resend.len(),
                    batch.len()
                ),
                resend: Some(resend),
                after: None,
            }
        }
    }
}

/// The transport a sink's config describes, over the log with id `log_id`.
pub fn transport_for(cfg: &SinkConfig, log_id: &str) -> Result<Box<dyn Transport>> {
    let what = |f: &str| format!("sinks[{:?}].destination.{f}", cfg.name);
    Ok(match &cfg.destination {
        Destination::Syslog(d) => Box::new(
            super::syslog::SyslogTransport::new(d, log_id)
                .map_err(|e| Error::Config(format!("sinks[{:?}]: {e}", cfg.name)))?,
        ),
        Destination::Nats(d) => Box::new(super::nats::NatsTransport::new(
            d,
            log_id,
            &format!("sinks[{:?}]", cfg.name),
        )?),
        Destination::Webhook {
            url,
            secret,
            headers,
            bearer_token,
            timeout_secs,
        } => {
            let secret = secret
                .as_deref()
                .map(|s| resolve_secret(s, &what("secret")))
                .transpose()?;
            let mut headers = headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), resolve_secret(v, &what("headers"))?)))
                .collect::<Result<Vec<_>>>()?;
            if let Some(t) = bearer_token {
                let t = resolve_secret(t, &what("bearer_token"))?;
                headers.push(("authorization".into(), format!("Bearer {t}")));
            }
            Box::new(
                WebhookTransport::new(url, secret, headers, log_id, *timeout_secs)
                    .map_err(|e| Error::Config(format!("{}: {e}", what("secret"))))?,
            )
        }
        Destination::SplunkHec {
            url,
            token,
            index,
            source,
            sourcetype,
            timeout_secs,
            indexer_ack,
            ack_timeout_secs,
        } => {
            let mut ctx = FormatContext::new(log_id);
            ctx.hec_index = index.clone();
            if let Some(s) = source {
                ctx.hec_source = s.clone();
            }
            if let Some(s) = sourcetype {
                ctx.hec_sourcetype = s.clone();
            }
            let t = HecTransport::new(
                url,
                resolve_secret(token, &what("token"))?,
                ctx,
                *timeout_secs,
            );
            Box::new(if *indexer_ack {
                t.with_indexer_ack(
                    Duration::from_secs(ack_timeout_secs.unwrap_or(30).max(1)),
                    Duration::from_millis(200),
                )
            } else {
                t
            })
        }
        Destination::Elastic {
            url,
            index,
            api_key,
            pipeline,
            timeout_secs,
        } => {
            let mut ctx = FormatContext::new(log_id);
            if let Some(i) = index {
                ctx.elastic_index = i.clone();
            }
            let key = api_key
                .as_deref()
                .map(|k| resolve_secret(k, &what("api_key")))
                .transpose()?;
            Box::new(ElasticTransport::new(
                url,
                key,
                pipeline.as_deref(),
                ctx,
                *timeout_secs,
            ))
        }
        Destination::Datadog {
            api_key,
            site,
            url,
            service,
            source,
            hostname,
            tags,
            timeout_secs,
        } => {
            let url = super::datadog::intake_url(site.as_deref(), url.as_deref())
                .map_err(|m| Error::Config(what(&m)))?;
            Box::new(super::datadog::DatadogTransport::new(
                url,
                resolve_secret(api_key, &what("api_key"))?,
                log_id,
                super::datadog::DatadogOptions {
                    source: source.clone(),
                    service: service.clone(),
                    hostname: hostname.clone(),
                    tags: tags.clone(),
                    timeout_secs: *timeout_secs,
                },
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_signature() {
        // The example of the Standard Webhooks specification.
        let sig = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let e = webhook_signature("whsec_!!!", "a", 1, b"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("whsec_"), "{e}");
    }

    #[test]
    fn hec_ack_endpoint() {
        for u in [
            "https://s:8088/services/collector/event",
            "https://s:8088/services/collector/event/",
            "https://s:8088/services/collector",
            "https://s:8088/services/collector/raw",
        ] {
            assert_eq!(
                hec_ack_url(u),
                "https://s:8088/services/collector/ack",
                "{u}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
