//! The `sinks` section of the config file: a list of sinks, each with a destination, a
//! filter, batching and a retry policy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::event::{Event, Severity};

/// One sink.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Letters, digits, `-` and `_` (it names the cursor file).
    pub name: String,
    /// Where the events go.
    pub destination: Destination,
    #[serde(default)]
    pub filter: SinkFilter,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where a sink without a cursor file starts: `beginning` (default) or `end`.
    #[serde(default)]
    pub start_at: StartAt,
    /// `false` keeps the sink configured but not run (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// Where a new sink starts.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

/// A destination, by `type`. Secrets may be given as `env.NAME` to read them from the
/// environment.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Destination {
    /// POST of a JSON batch with Standard Webhooks headers, signed when `secret` is set.
    Webhook {
        url: String,
        /// `whsec_<base64>` (the Standard Webhooks form), or `env.NAME`.
        #[serde(default)]
        secret: Option<String>,
        /// Extra request headers.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Sent as `Authorization: Bearer <token>`; or `env.NAME`.
        #[serde(default)]
        bearer_token: Option<String>,
        /// Request timeout in seconds (default 30).
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Splunk HTTP Event Collector (`…/services/collector/event`).
    SplunkHec {
        url: String,
        /// The HEC token, or `env.NAME`.
        token: String,
        #[serde(default)]
        index: Option<String>,
        #[serde(default)]
        source: Option<String>,
        #[serde(default)]
        sourcetype: Option<String>,
        #[serde(default)]
        timeout_secs: Option<u64>,
        /// Indexer acknowledgement: send `X-Splunk-Request-Channel`, poll
        /// `…/services/collector/ack` with the returned `ackId`, and count the batch as
        /// delivered only once it is acknowledged (default false).
        #[serde(default)]
        indexer_ack: bool,
        /// How long to poll for an acknowledgement before resending the batch (default 30).
        #[serde(default)]
        ack_timeout_secs: Option<u64>,
    },
    /// Elasticsearch / OpenSearch `_bulk` with `create` actions and `_id` `<log_id>-<seq>`.
    Elastic {
        /// The cluster's base URL (`/_bulk` is appended).
        url: String,
        /// Index or data stream (default `auditlog`).
        #[serde(default)]
        index: Option<String>,
        /// An API key (`Authorization: ApiKey …`), or `env.NAME`.
        #[serde(default)]
        api_key: Option<String>,
        /// Ingest pipeline (`?pipeline=`).
        #[serde(default)]
        pipeline: Option<String>,
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Datadog logs intake v2 (`https://http-intake.logs.<site>/api/v2/logs`), gzip.
    Datadog {
        /// The API key (`DD-API-KEY`), or `env.NAME`.
        api_key: String,
        /// The Datadog site (default `datadoghq.com`; `us3.datadoghq.com`,
        /// `us5.datadoghq.com`, `datadoghq.eu`, `ap1.datadoghq.com`, `ap2.datadoghq.com`,
        /// `ddog-gov.com`, ...).
        #[serde(default)]
        site: Option<String>,
        /// The intake URL, instead of the site's (a proxy, a test receiver).
        #[serde(default)]
        url: Option<String>,
        /// `service` of every log (default `auditlog`).
        #[serde(default)]
        service: Option<String>,
        /// `ddsource` of every log (default `auditlog`).
        #[serde(default)]
        source: Option<String>,
        /// `hostname` of every log (default this machine's).
        #[serde(default)]
        hostname: Option<String>,
        /// `ddtags`, e.g. `["env:production"]`.
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// RFC 5424 syslog over UDP, TCP or TLS with RFC 6587 octet counting.
    Syslog(super::syslog::SyslogDestination),
    /// NATS JetStream: one message per event, `Nats-Msg-Id` `<log_id>-<seq>`.
    Nats(super::nats::NatsDestination),
}

/// The intake URL of `site` (default `datadoghq.com`), or `url` when given (a proxy, a
/// test receiver). `site` must be a host name: `datadoghq.com`, `us3.datadoghq.com`,
/// `us5.datadoghq.com`, `datadoghq.eu`, `ap1.datadoghq.com`, `ap2.datadoghq.com`,
/// `ddog-gov.com`, or any other site Datadog adds.
pub fn datadog_intake_url(
    site: Option<&str>,
    url: Option<&str>,
) -> std::result::Result<String, String> {
    if let Some(u) = url {
        return Ok(u.to_string());
    }
    let site = site.unwrap_or("datadoghq.com");
    let host_like = !site.is_empty()
        && site.len() <= 253
        && site.contains('.')
        && site
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !site.starts_with(['.', '-'])
        && !site.ends_with(['.', '-']);
    if !host_like {
        return Err(format!(
            "site {site:?}: not a Datadog site host name (like datadoghq.com or datadoghq.eu)"
        ));
    }
    Ok(format!("https://http-intake.logs.{site}/api/v2/logs"))
}

/// Which events a sink delivers: each non-empty list must contain the event's value (the
/// same fields as the query filters); `min_severity` is a lower bound.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SinkFilter {
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub statuses: Vec<String>,
    #[serde(default)]
    pub severities: Vec<Severity>,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    #[serde(default)]
    pub user_ids: Vec<String>,
    #[serde(default)]
    pub resource_types: Vec<String>,
}

impl SinkFilter {
    pub fn matches(&self, e: &Event) -> bool {
        let one = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
        };
        one(&self.event_types, Some(&e.event_type))
            && one(&self.actions, Some(&e.action))
            && one(&self.statuses, Some(&e.status))
            && (self.severities.is_empty() || self.severities.contains(&e.severity))
            && self.min_severity.is_none_or(|m| e.severity >= m)
            && one(&self.user_ids, e.actor.user_id.as_deref())
            && one(
                &self.resource_types,
                e.resource.as_ref().map(|r| r.kind.as_str()),
            )
    }
}

/// When a batch goes out: at `max_events` events, at `max_bytes` of event JSON, or
/// `flush_interval_ms` after its first event, whichever comes first.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
}

fn default_max_events() -> usize {
    500
}
fn default_max_bytes() -> usize {
    1 << 20
}
fn default_flush_ms() -> u64 {
    1000
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_bytes: default_max_bytes(),
            flush_interval_ms: default_flush_ms(),
        }
    }
}

impl BatchConfig {
    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

/// Exponential backoff with full jitter: before retry `n` (1-based) the sink sleeps a
/// uniformly random time in `[0, min(max_ms, initial_ms * 2^(n-1))]`, unless the receiver
/// said `Retry-After`. `max_attempts` 0 (default) retries for ever.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
    #[serde(default)]
    pub max_attempts: u32,
}

fn default_initial_ms() -> u64 {
    500
}
fn default_max_ms() -> u64 {
    60_000
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
            max_attempts: 0,
        }
    }
}

impl RetryConfig {
    /// The sleep before retry `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(40))
            .min(self.max_ms);
        let mut b = [0u8; 8];
        let r = match getrandom::fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => ceiling / 2,
        };
        Duration::from_millis(if ceiling == 0 { 0 } else { r % (ceiling + 1) })
    }
}

/// `env.NAME` read from the environment; anything else as given. `what` names the field in
/// errors.
pub fn resolve_secret(value: &str, what: &str) -> Result<String> {
    match value.strip_prefix("env.") {
        Some(var) => std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "{what}: environment variable {var} (from \"env.{var}\") is not set"
            ))
        }),
        None => Ok(value.to_string()),
    }
}

impl SinkConfig {
    /// Checks the name, the URL's scheme and the batch and retry numbers.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("sinks[{:?}]: {m}", self.name)));
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad("name: 1 to 64 letters, digits, '-' or '_'".into());
        }
        let url = match &self.destination {
            Destination::Webhook { url, .. }
            | Destination::SplunkHec { url, .. }
            | Destination::Elastic { url, .. } => Some(url.clone()),
            Destination::Datadog { site, url, .. } => Some(
                datadog_intake_url(site.as_deref(), url.as_deref()).map_err(|m| {
                    Error::Config(format!("sinks[{:?}]: destination.{m}", self.name))
                })?,
            ),
            Destination::Syslog(d) => {
                d.validate().or_else(bad)?;
                None
            }
            Destination::Nats(d) => {
                d.validate().or_else(bad)?;
                None
            }
        };
        if let Some(url) = url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(format!(
                    "destination.url {url:?}: must start with http:// or https://"
                ));
            }
        }
        self.check_numbers()
    }

    fn check_numbers(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("sinks[{:?}]: {m}", self.name)));
        if self.batch.max_events == 0 {
            return bad("batch.max_events: must be at least 1".into());
        }
        if self.batch.max_bytes < 1024 {
            return bad("batch.max_bytes: must be at least 1024".into());
        }
        if self.retry.initial_ms == 0 || self.retry.max_ms < self.retry.initial_ms {
            return bad(
                "retry: initial_ms must be at least 1 and max_ms at least initial_ms".into(),
            );
        }
        Ok(())
    }
}

/// Parses and checks a `sinks` list; names must be unique.
pub fn check_all(sinks: &[SinkConfig]) -> Result<()> {
    for (i, s) in sinks.iter().enumerate() {
        s.validate()?;
        if sinks[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::Config(format!(
                "sinks: the name {:?} is used twice",
                s.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_full_jitter() {
        let r = RetryConfig {
            initial_ms: 100,
            max_ms: 1600,
            max_attempts: 0,
        };
        for attempt in 1..=8u32 {
            let ceiling = (100u64 << (attempt - 1)).min(1600);
            let samples: Vec<u64> = (0..2000)
                .map(|_| r.backoff(attempt).as_millis() as u64)
                .collect();
            // Never above the ceiling of that attempt...
            assert!(samples.iter().all(|&s| s <= ceiling), "attempt {attempt}");
            // ...spread over all of it (full jitter): some in its lowest and highest tenth.
            assert!(
                samples.iter().any(|&s| s <= ceiling / 10),
                "attempt {attempt}"
            );
            assert!(
                samples.iter().any(|&s| s >= ceiling * 9 / 10),
                "attempt {attempt}"
            );
        }
        // A huge attempt number stays capped (no overflow).
        assert!(r.backoff(u32::MAX) <= Duration::from_millis(1600));
    }
}
