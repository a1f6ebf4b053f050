//! The seed's integration sections, accepted exactly as the seed writes them, and mapped
//! onto sinks: `audit_logs.siem_integration.{splunk, datadog, elastic}` and
//! `audit_logs.webhooks.endpoints[]`. Secrets stay `env.NAME` references (resolved when the
//! sink starts, never kept in the config); durations are `"10s"`-style strings.
//!
//! The sinks they become are named `splunk`, `datadog`, `elastic` and `webhook-<name>`, and
//! behave like sinks of the `sinks` list (cursor files, batching, retries, parking; see
//! docs/SINKS.md). A disabled section gives a sink with `enabled: false` (shown by
//! `auditlog sinks status`, not run).

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{BatchConfig, Destination, RetryConfig, SinkConfig, SinkFilter, StartAt};
use crate::error::{Error, Result};
use crate::event::Severity;

/// `audit_logs.siem_integration`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiemIntegration {
    #[serde(default)]
    pub splunk: Option<SplunkSection>,
    #[serde(default)]
    pub datadog: Option<DatadogSection>,
    #[serde(default)]
    pub elastic: Option<ElasticSection>,
}

/// `siem_integration.splunk`: Splunk HTTP Event Collector.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplunkSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `https://host:8088/services/collector` (`/event` is added) or the full
    /// `…/services/collector/event`.
    pub hec_endpoint: String,
    /// The HEC token, or `env.NAME`.
    pub hec_token: String,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    /// Events per request (default 100).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// The longest an event waits for its batch, e.g. `"10s"` (default `"10s"`).
    #[serde(default)]
    pub flush_interval: Option<String>,
}

/// `siem_integration.datadog`: Datadog logs intake.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatadogSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The API key, or `env.NAME`.
    pub api_key: String,
    /// `datadoghq.com` (default), `us3.datadoghq.com`, `datadoghq.eu`, …
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The intake URL instead of the site's (a proxy).
    #[serde(default)]
    pub url: Option<String>,
}

/// `siem_integration.elastic`: Elasticsearch `_bulk`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ElasticSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The cluster's base URL.
    pub endpoint: String,
    /// An API key, or `env.NAME`.
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub pipeline: Option<String>,
}

/// `audit_logs.webhooks`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub endpoints: Vec<WebhookEndpoint>,
}

/// One of `webhooks.endpoints`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Letters, digits, `-`, `_` (the sink is `webhook-<name>`).
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub auth: Option<WebhookAuth>,
    /// Standard Webhooks signing secret (`whsec_…`), or `env.NAME`.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub filters: WebhookFilters,
    #[serde(default)]
    pub retry: Option<WebhookRetry>,
}

/// `auth`: only `{"type": "bearer", "token": …}`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookAuth {
    #[serde(rename = "type")]
    pub kind: String,
    pub token: String,
}

/// `filters`: `event_types` and `severity` (a list).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookFilters {
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub severity: Vec<Severity>,
}

/// `retry`: `max_attempts` and `backoff` (`exponential`, the only policy: full jitter).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookRetry {
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub backoff: Option<String>,
}

fn yes() -> bool {
    true
}

// Secrets never show in `Debug`: only whether they are `env.` references.
fn shown(secret: &str) -> &str {
    if secret.starts_with("env.") {
        secret
    } else {
        "<redacted>"
    }
}

impl std::fmt::Debug for SiemIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiemIntegration")
            .field(
                "splunk",
                &self
                    .splunk
                    .as_ref()
                    .map(|s| (&s.hec_endpoint, shown(&s.hec_token))),
            )
            .field(
                "datadog",
                &self.datadog.as_ref().map(|d| (&d.site, shown(&d.api_key))),
            )
            .field(
                "elastic",
                &self
                    .elastic
                    .as_ref()
                    .map(|e| (&e.endpoint, e.api_key.as_deref().map(shown))),
            )
            .finish()
    }
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("enabled", &self.enabled)
            .field(
                "endpoints",
                &self
                    .endpoints
                    .iter()
                    .map(|e| (&e.name, &e.url))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A duration such as `"10s"`, `"500ms"`, `"2m"`, `"1h"` (a bare number is seconds).
/// `what` names the field in errors.
pub fn parse_duration(s: &str, what: &str) -> Result<std::time::Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        Error::Config(format!(
            "{what}: {s:?} is not a duration (a whole number with ms, s, m or h, e.g. \"10s\")"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(std::time::Duration::from_millis(ms))
}

/// A HEC endpoint as the seed gives it (`…/services/collector`) made the event endpoint.
fn hec_event_url(endpoint: &str) -> String {
    let t = endpoint.trim_end_matches('/');
    if t.ends_with("/services/collector") {
        format!("{t}/event")
    } else if t.contains("/services/collector/") {
        t.to_string()
    } else {
        format!("{t}/services/collector/event")
    }
}

fn destination(v: Value, what: &str) -> Result<Destination> {
    serde_json::from_value(v).map_err(|e| Error::Config(format!("{what}: {e}")))
}

fn sink(name: String, destination: Destination, enabled: bool) -> SinkConfig {
    SinkConfig {
        name,
        destination,
        filter: SinkFilter::default(),
        batch: BatchConfig::default(),
        retry: RetryConfig::default(),
        start_at: StartAt::Beginning,
        enabled,
    }
}

/// Drops `None` values so that destinations get their defaults.
fn compact(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

/// The sinks the seed's sections describe, in order: splunk, datadog, elastic, then each
/// webhook endpoint.
pub fn sinks_from_seed(
    siem: Option<&SiemIntegration>,
    hooks: Option<&Webhooks>,
) -> Result<Vec<SinkConfig>> {
    let mut out = Vec::new();
    if let Some(s) = siem.and_then(|s| s.splunk.as_ref()) {
        let what = "audit_logs.siem_integration.splunk";
        let d = destination(
            compact(json!({
                "type": "splunk_hec",
                "url": hec_event_url(&s.hec_endpoint),
                "token": s.hec_token,
                "index": s.index,
                "source": s.source,
                "sourcetype": s.source_type,
            })),
            what,
        )?;
        let mut c = sink("splunk".into(), d, s.enabled);
        if let Some(n) = s.batch_size {
            if n == 0 {
                return Err(Error::Config(format!(
                    "{what}.batch_size: must be at least 1"
                )));
            }
            c.batch.max_events = n;
        } else {
            c.batch.max_events = 100;
        }
        let fi = parse_duration(
            s.flush_interval.as_deref().unwrap_or("10s"),
            &format!("{what}.flush_interval"),
        )?;
        c.batch.flush_interval_ms = (fi.as_millis() as u64).max(1);
        out.push(c);
    }
    if let Some(s) = siem.and_then(|s| s.datadog.as_ref()) {
        let d = destination(
            compact(json!({
                "type": "datadog",
                "api_key": s.api_key,
                "site": s.site,
                "url": s.url,
                "service": s.service,
                "tags": s.tags,
            })),
            "audit_logs.siem_integration.datadog",
        )?;
        out.push(sink("datadog".into(), d, s.enabled));
    }
    if let Some(s) = siem.and_then(|s| s.elastic.as_ref()) {
        let d = destination(
            compact(json!({
                "type": "elastic",
                "url": s.endpoint.trim_end_matches('/'),
                "api_key": s.api_key,
                "index": s.index,
                "pipeline": s.pipeline,
            })),
            "audit_logs.siem_integration.elastic",
        )?;
        out.push(sink("elastic".into(), d, s.enabled));
    }
    if let Some(h) = hooks {
        for (i, e) in h.endpoints.iter().enumerate() {
            let what = format!("audit_logs.webhooks.endpoints[{i}]");
            let bearer = match &e.auth {
                None => None,
                Some(a) if a.kind == "bearer" => Some(a.token.clone()),
                Some(a) => {
                    return Err(Error::Config(format!(
                        "{what}.auth.type: {:?} is not supported (only \"bearer\")",
                        a.kind
                    )))
                }
            };
            let d = destination(
                compact(json!({
                    "type": "webhook",
                    "url": e.url,
                    "secret": e.secret,
                    "bearer_token": bearer,
                })),
                &what,
            )?;
            let mut c = sink(format!("webhook-{}", e.name), d, h.enabled);
            c.filter.event_types = e.filters.event_types.clone();
            c.filter.severities = e.filters.severity.clone();
            if let Some(r) = &e.retry {
                match r.backoff.as_deref() {
                    None | Some("exponential") => {}
                    Some(b) => {
                        return Err(Error::Config(format!(
                            "{what}.retry.backoff: {b:?} is not supported (only \"exponential\", \
                             with full jitter)"
                        )))
                    }
                }
                if let Some(n) = r.max_attempts {
                    c.retry.max_attempts = n;
                }
            }
            out.push(c);
        }
    }
    for c in &out {
        c.validate()?;
    }
    Ok(out)
}

/// The top-level `syslog` section (one object, or a list of them): an RFC 5424 sink each,
/// written like the seed's sections (`"10s"` durations, `filters`, `retry`).
#[derive(Clone, Deserialize, PartialEq, Debug)]
#[serde(deny_unknown_fields)]
pub struct SyslogSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Letters, digits, `-`, `_`: the sink is `syslog-<name>` (`syslog` without one).
    #[serde(default)]
    pub name: Option<String>,
    /// `host:port`.
    pub address: String,
    /// `tcp` (default), `udp` or `tls`.
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub client_cert_file: Option<String>,
    #[serde(default)]
    pub client_key_file: Option<String>,
    #[serde(default)]
    pub confirm: Option<bool>,
    #[serde(default)]
    pub hostname: Option<String>,
    /// Connect and write timeout, e.g. `"30s"`.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub max_datagram_bytes: Option<usize>,
    /// Events per batch (default 500).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// The longest an event waits for its batch (default `"1s"`).
    #[serde(default)]
    pub flush_interval: Option<String>,
    #[serde(default)]
    pub filters: WebhookFilters,
    #[serde(default)]
    pub retry: Option<WebhookRetry>,
}

/// The top-level `nats` section (one object, or a list): a JetStream sink each.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The sink is `nats-<name>` (`nats` without one).
    #[serde(default)]
    pub name: Option<String>,
    /// `nats://host:4222`.
    pub url: String,
    pub stream: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub create_stream: Option<bool>,
    #[serde(default)]
    pub stream_subjects: Vec<String>,
    /// Of a created stream, e.g. `"2m"`.
    #[serde(default)]
    pub duplicate_window: Option<String>,
    /// Each may be `env.NAME`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub window: Option<usize>,
    /// Connect, write and ack timeout, e.g. `"30s"`.
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub flush_interval: Option<String>,
    #[serde(default)]
    pub filters: WebhookFilters,
    #[serde(default)]
    pub retry: Option<WebhookRetry>,
}

impl std::fmt::Debug for NatsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSection")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("stream", &self.stream)
            .field("user", &self.user.as_deref().map(shown))
            .field("password", &self.password.as_deref().map(shown))
            .field("token", &self.token.as_deref().map(shown))
            .finish_non_exhaustive()
    }
}

/// A section that is one object or a list of objects, each with the path that names it in
/// errors (`syslog`, `syslog[1]`).
fn one_or_many<T: serde::de::DeserializeOwned>(v: &Value, what: &str) -> Result<Vec<(String, T)>> {
    let parse = |x: &Value, w: String| -> Result<(String, T)> {
        let t =
            serde_json::from_value(x.clone()).map_err(|e| Error::Config(format!("{w}: {e}")))?;
        Ok((w, t))
    };
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| parse(x, format!("{what}[{i}]")))
            .collect(),
        Value::Object(_) => Ok(vec![parse(v, what.to_string())?]),
        Value::Null => Ok(Vec::new()),
        _ => Err(Error::Config(format!(
            "{what}: expected an object (one destination) or a list of objects"
        ))),
    }
}

/// Whole seconds of a duration field (rounded up, at least 1).
fn secs(d: Option<&str>, what: &str) -> Result<Option<u64>> {
    d.map(|d| {
        let t = parse_duration(d, what)?;
        Ok(t.as_millis().div_ceil(1000).max(1) as u64)
    })
    .transpose()
}

/// The sink name of a section: `<kind>` or `<kind>-<name>`; a list of more than one needs
/// names.
fn section_name(kind: &str, name: Option<&str>, what: &str, many: bool) -> Result<String> {
    match name {
        Some(n) => Ok(format!("{kind}-{n}")),
        None if many => Err(Error::Config(format!(
            "{what}.name: required when {kind} lists more than one destination"
        ))),
        None => Ok(kind.to_string()),
    }
}

/// Batching, filters and retry written the seed's way, onto a sink.
fn common_settings(
    c: &mut SinkConfig,
    what: &str,
    batch_size: Option<usize>,
    flush_interval: Option<&str>,
    filters: &WebhookFilters,
    retry: Option<&WebhookRetry>,
) -> Result<()> {
    if let Some(n) = batch_size {
        if n == 0 {
            return Err(Error::Config(format!(
                "{what}.batch_size: must be at least 1"
            )));
        }
        c.batch.max_events = n;
    }
    if let Some(fi) = flush_interval {
        let d = parse_duration(fi, &format!("{what}.flush_interval"))?;
        c.batch.flush_interval_ms = (d.as_millis() as u64).max(1);
    }
    c.filter.event_types = filters.event_types.clone();
    c.filter.severities = filters.severity.clone();
    if let Some(r) = retry {
        match r.backoff.as_deref() {
            None | Some("exponential") => {}
            Some(b) => {
                return Err(Error::Config(format!(
                    "{what}.retry.backoff: {b:?} is not supported (only \"exponential\", \
                     with full jitter)"
                )))
            }
        }
        if let Some(n) = r.max_attempts {
            c.retry.max_attempts = n;
        }
    }
    Ok(())
}

/// A sink's validation error, said to be about the section it came from.
fn in_section(e: Error, what: &str) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("{what}: {m}")),
        other => other,
    }
}

/// The sinks of the top-level `syslog` and `nats` sections, in that order.
pub fn sinks_from_sections(
    syslog: Option<&Value>,
    nats: Option<&Value>,
) -> Result<Vec<SinkConfig>> {
    let mut out = Vec::new();
    if let Some(v) = syslog {
        let list: Vec<(String, SyslogSection)> = one_or_many(v, "syslog")?;
        let many = list.len() > 1;
        for (what, s) in list {
            let d = destination(
                compact(json!({
                    "type": "syslog",
                    "address": s.address,
                    "protocol": s.protocol,
                    "ca_file": s.ca_file,
                    "server_name": s.server_name,
                    "client_cert_file": s.client_cert_file,
                    "client_key_file": s.client_key_file,
                    "confirm": s.confirm,
                    "hostname": s.hostname,
                    "timeout_secs": secs(s.timeout.as_deref(), &format!("{what}.timeout"))?,
                    "max_datagram_bytes": s.max_datagram_bytes,
                })),
                &what,
            )?;
            let name = section_name("syslog", s.name.as_deref(), &what, many)?;
            let mut c = sink(name, d, s.enabled);
            common_settings(
                &mut c,
                &what,
                s.batch_size,
                s.flush_interval.as_deref(),
                &s.filters,
                s.retry.as_ref(),
            )?;
            c.validate().map_err(|e| in_section(e, &what))?;
            out.push(c);
        }
    }
    if let Some(v) = nats {
        let list: Vec<(String, NatsSection)> = one_or_many(v, "nats")?;
        let many = list.len() > 1;
        for (what, s) in list {
            let d = destination(
                compact(json!({
                    "type": "nats",
                    "url": s.url,
                    "stream": s.stream,
                    "subject": s.subject,
                    "create_stream": s.create_stream,
                    "stream_subjects": s.stream_subjects,
                    "duplicate_window_secs":
                        secs(s.duplicate_window.as_deref(), &format!("{what}.duplicate_window"))?,
                    "user": s.user,
                    "password": s.password,
                    "token": s.token,
                    "window": s.window,
                    "timeout_secs": secs(s.timeout.as_deref(), &format!("{what}.timeout"))?,
                })),
                &what,
            )?;
            let name = section_name("nats", s.name.as_deref(), &what, many)?;
            let mut c = sink(name, d, s.enabled);
            common_settings(
                &mut c,
                &what,
                s.batch_size,
                s.flush_interval.as_deref(),
                &s.filters,
                s.retry.as_ref(),
            )?;
            c.validate().map_err(|e| in_section(e, &what))?;
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s", "x").unwrap().as_millis(), 10_000);
        assert_eq!(parse_duration("250ms", "x").unwrap().as_millis(), 250);
        assert_eq!(parse_duration("2m", "x").unwrap().as_millis(), 120_000);
        assert_eq!(parse_duration("1h", "x").unwrap().as_millis(), 3_600_000);
        assert_eq!(parse_duration("7", "x").unwrap().as_millis(), 7_000);
        for bad in ["", "s", "10 parsecs", "-1s", "1.5s"] {
            let e = parse_duration(bad, "a.b").unwrap_err().to_string();
            assert!(e.contains("a.b"), "{e}");
        }
    }

    #[test]
    fn hec_endpoints() {
        assert_eq!(
            hec_event_url("https://s:8088/services/collector"),
            "https://s:8088/services/collector/event"
        );
        assert_eq!(
            hec_event_url("https://s:8088/services/collector/event"),
            "https://s:8088/services/collector/event"
        );
        assert_eq!(
            hec_event_url("https://s:8088"),
            "https://s:8088/services/collector/event"
        );
    }
}
