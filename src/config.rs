//! The seed's `config.json`: the `audit_logs` section (with the seed's `BIFROST_AUDIT_*`
//! environment variables over it), and the `server` section of `auditlog serve`.

use std::path::Path;

use serde::Deserialize;

use crate::chain::HmacKey;
use crate::error::{Error, Result};

/// A whole config file. Sections other than `audit_logs` and `server` are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub audit_logs: AuditConfig,
    /// `auditlog serve`'s section; unused by the library itself.
    #[serde(default)]
    pub server: ServerConfig,
    /// Sinks that deliver events to SIEMs and webhooks (`docs/SINKS.md`).
    #[serde(default)]
    pub sinks: Vec<crate::sink::SinkConfig>,
    /// Top-level `syslog` section: one RFC 5424 destination or a list
    /// ([`crate::sink::seed::SyslogSection`], docs/SINKS.md); each becomes a sink.
    #[serde(default)]
    pub syslog: Option<serde_json::Value>,
    /// Top-level `nats` section: one JetStream destination or a list
    /// ([`crate::sink::seed::NatsSection`]).
    #[serde(default)]
    pub nats: Option<serde_json::Value>,
    /// Alert triggers evaluated on the stream by `auditlog serve` and `auditlog ship`
    /// (docs/SINKS.md).
    #[serde(default)]
    pub alerts: crate::sink::alert::AlertConfig,
}

/// The `server` section: what `auditlog serve` listens on, who may call it, and its limits
/// and schedules. Unknown fields are refused so that a typo never silently weakens it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `host:port` (default `127.0.0.1:8080`; `--listen` overrides it).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Largest request body, in bytes (default 64 MiB); larger ones are answered 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered 408 (default 60; exports stream
    /// past it once their first bytes are out).
    #[serde(default = "default_timeout")]
    pub request_timeout_secs: u64,
    /// `authentication`/`authorization` failure events appended per minute at most (default
    /// 60); the rest are counted and the count goes into the next one appended.
    #[serde(default = "default_failure_events")]
    pub auth_failure_events_per_minute: u32,
    /// Failed authentications from one address within `lockout_window_secs` that lock the
    /// address out (default 10; 0 disables lockout).
    #[serde(default = "default_lockout_threshold")]
    pub lockout_threshold: u32,
    #[serde(default = "default_lockout_window")]
    pub lockout_window_secs: u64,
    /// How long a locked-out address is refused (default 900 s).
    #[serde(default = "default_lockout_secs")]
    pub lockout_secs: u64,
    /// Seconds between signed checkpoints while events arrive (default 60; 0 keeps the
    /// engine's default). The engine also checkpoints every 100,000 records.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval_secs: u64,
    /// Seconds between retention and archive runs (default 3600; 0 = never). They do
    /// nothing unless `retention_days` / `archive_days` are set.
    #[serde(default = "default_retention_interval")]
    pub retention_interval_secs: u64,
    /// HTTPS instead of plain HTTP: a PEM certificate chain and its PEM private key.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Signer key file (from `auditlog keygen`) for C2SP signed checkpoints of the Merkle
    /// tree: `GET …/{event_id}/proof` then signs the current tree and attaches the checkpoint.
    #[serde(default)]
    pub checkpoint_signing_key: Option<std::path::PathBuf>,
    /// C2SP tlog-witnesses (`"URL VKEY"`: submission prefix, cosignature/v1 verifier key)
    /// that `POST …/checkpoint/witness` asks to cosign the current signed checkpoint.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// Cosignatures that route needs to answer `quorum_met: true` (default: all witnesses).
    #[serde(default)]
    pub witness_quorum: Option<usize>,
    /// Seconds between scheduled witness rounds (default 0: only `POST …/checkpoint/witness`
    /// asks). Each round extends the tree, signs it if it grew and asks every witness to
    /// cosign; a size a quorum already cosigned is not asked again.
    #[serde(default)]
    pub witness_interval_secs: u64,
}

/// `server.tls`: the files `auditlog serve` answers HTTPS with (rustls; TLS 1.2 and 1.3).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert: std::path::PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_body() -> usize {
    64 << 20
}
fn default_timeout() -> u64 {
    60
}
fn default_failure_events() -> u32 {
    60
}
fn default_lockout_threshold() -> u32 {
    10
}
fn default_lockout_window() -> u64 {
    300
}
fn default_lockout_secs() -> u64 {
    900
}
fn default_checkpoint_interval() -> u64 {
    60
}
fn default_retention_interval() -> u64 {
    3600
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            tokens: Vec::new(),
            max_body_bytes: default_max_body(),
            request_timeout_secs: default_timeout(),
            auth_failure_events_per_minute: default_failure_events(),
            lockout_threshold: default_lockout_threshold(),
            lockout_window_secs: default_lockout_window(),
            lockout_secs: default_lockout_secs(),
            checkpoint_interval_secs: default_checkpoint_interval(),
            retention_interval_secs: default_retention_interval(),
            tls: None,
            checkpoint_signing_key: None,
            witnesses: Vec::new(),
            witness_quorum: None,
            witness_interval_secs: 0,
        }
    }
}

/// One bearer token. Give either `token` (the secret itself, or `env.NAME`) or `sha256` (the
/// hex SHA-256 of the secret, so the config file never holds it). Its `Debug` output never
/// shows the secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it: the `actor.user_id` of the events its requests cause.
    pub name: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Any of `ingest`, `read`, `export`, `admin` (admin may do everything).
    pub roles: Vec<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field(
                "token",
                &self.token.as_ref().map(|t| {
                    if t.starts_with("env.") {
                        t.as_str()
                    } else {
                        "<redacted>"
                    }
                }),
            )
            .field("sha256", &self.sha256)
            .field("roles", &self.roles)
            .finish()
    }
}

impl TokenConfig {
    /// The SHA-256 of the secret: from `sha256`, or `token` (read from the environment for
    /// `env.NAME`) hashed.
    pub fn digest(&self) -> Result<[u8; 32]> {
        let who = &self.name;
        match (&self.token, &self.sha256) {
            (Some(_), Some(_)) | (None, None) => Err(Error::Config(format!(
                "server.tokens[{who}]: give exactly one of `token` and `sha256`"
            ))),
            (None, Some(h)) => crate::verify::parse_hash(h.trim()).ok_or_else(|| {
                Error::Config(format!(
                    "server.tokens[{who}].sha256: expected 64 hex digits (sha256sum of the token)"
                ))
            }),
            (Some(t), None) => {
                let secret = match t.strip_prefix("env.") {
                    Some(var) => std::env::var(var).map_err(|_| {
                        Error::Config(format!(
                            "server.tokens[{who}].token: environment variable {var} is not set"
                        ))
                    })?,
                    None => t.clone(),
                };
                if secret.len() < 16 {
                    return Err(Error::Config(format!(
                        "server.tokens[{who}].token: {} bytes; a bearer token needs at least 16",
                        secret.len()
                    )));
                }
                use sha2::Digest;
                Ok(sha2::Sha256::digest(secret.as_bytes()).into())
            }
        }
    }
}

/// The `audit_logs` section. Its `Debug` output never shows `hmac_key`.
#[derive(Clone, Deserialize)]
pub struct AuditConfig {
    /// When true, audit logging is off: the CLI refuses to append.
    #[serde(default)]
    pub disabled: bool,
    /// The HMAC key, or `env.NAME` to read it from the environment.
    #[serde(default = "default_key")]
    pub hmac_key: String,
    /// Days to keep records; 0 keeps them forever.
    #[serde(default)]
    pub retention_days: u32,
    /// Days after which sealed segments move to the archive tier.
    #[serde(default)]
    pub archive_days: Option<u32>,
    /// Keep `authentication` events at ingest (`BIFROST_AUDIT_AUTH_EVENTS`; default true).
    #[serde(default = "yes")]
    pub auth_events: bool,
    /// Keep `configuration_change` events at ingest (`BIFROST_AUDIT_CONFIG_CHANGES`).
    #[serde(default = "yes")]
    pub config_changes: bool,
    /// Keep `security_event` and `security_incident` events at ingest
    /// (`BIFROST_AUDIT_SECURITY_EVENTS`).
    #[serde(default = "yes")]
    pub security_events: bool,
    /// `BIFROST_AUDIT_IMMUTABLE`: must be true; this engine's logs are always hash-chained
    /// and append-only, so `false` is refused rather than pretended.
    #[serde(default = "yes")]
    pub immutable: bool,
    /// Drop `actor.ip_address` from events at ingest (Bifrost's `omit_ip_addresses`).
    #[serde(default)]
    pub omit_ip_addresses: bool,
    /// JSON pointers into `details` (`/api_key`, `/request/headers/authorization`) whose
    /// values are replaced at ingest by `hmac-sha256:<hex>` under `field_hmac_key`.
    #[serde(default)]
    pub hmac_fields: Vec<String>,
    /// The key of `hmac_fields` (32 bytes or more, or `env.NAME`), separate from the chain
    /// key. Required when `hmac_fields` is not empty.
    #[serde(default)]
    pub field_hmac_key: Option<String>,
    /// The seed's `siem_integration {splunk, datadog, elastic}`: mapped onto sinks
    /// (`crate::sink::seed`, docs/SINKS.md).
    #[serde(default)]
    pub siem_integration: Option<crate::sink::seed::SiemIntegration>,
    /// The seed's `webhooks {enabled, endpoints}`: one sink per endpoint.
    #[serde(default)]
    pub webhooks: Option<crate::sink::seed::Webhooks>,
}

fn yes() -> bool {
    true
}

fn default_key() -> String {
    "env.AUDIT_HMAC_KEY".to_string()
}

impl std::fmt::Debug for AuditConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = if self.hmac_key.starts_with("env.") {
            self.hmac_key.as_str()
        } else {
            "<redacted>"
        };
        f.debug_struct("AuditConfig")
            .field("disabled", &self.disabled)
            .field("hmac_key", &key)
            .field("retention_days", &self.retention_days)
            .field("archive_days", &self.archive_days)
            .field("auth_events", &self.auth_events)
            .field("config_changes", &self.config_changes)
            .field("security_events", &self.security_events)
            .field("immutable", &self.immutable)
            .field("omit_ip_addresses", &self.omit_ip_addresses)
            .field("hmac_fields", &self.hmac_fields)
            .field(
                "field_hmac_key",
                &self.field_hmac_key.as_ref().map(|k| {
                    if k.starts_with("env.") {
                        k.as_str()
                    } else {
                        "<redacted>"
                    }
                }),
            )
            .field("siem_integration", &self.siem_integration)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            disabled: false,
            hmac_key: default_key(),
            retention_days: 0,
            archive_days: None,
            auth_events: true,
            config_changes: true,
            security_events: true,
            immutable: true,
            omit_ip_addresses: false,
            hmac_fields: Vec::new(),
            field_hmac_key: None,
            siem_integration: None,
            webhooks: None,
        }
    }
}

impl Config {
    /// Reads and parses a config file; errors name the file, line and column.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io("reading config", path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses config JSON text.
    pub fn from_json(text: &str) -> Result<Config> {
        let mut c: Config = serde_json::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        // The seed's integration sections become sinks beside the `sinks` list.
        let seeded = crate::sink::seed::sinks_from_seed(
            c.audit_logs.siem_integration.as_ref(),
            c.audit_logs.webhooks.as_ref(),
        )?;
        c.sinks.extend(seeded);
        let sections = crate::sink::seed::sinks_from_sections(c.syslog.as_ref(), c.nats.as_ref())?;
        c.sinks.extend(sections);
        crate::sink::check_all(&c.sinks)?;
        c.alerts.validate()?;
        Ok(c)
    }

    /// Applies the seed's environment variables over the file's values:
    /// `BIFROST_AUDIT_LOGS_ENABLED`, `BIFROST_AUDIT_RETENTION_DAYS`, `BIFROST_AUDIT_ARCHIVE_DAYS`,
    /// `BIFROST_AUDIT_AUTH_EVENTS`, `BIFROST_AUDIT_CONFIG_CHANGES`,
    /// `BIFROST_AUDIT_SECURITY_EVENTS`, `BIFROST_AUDIT_IMMUTABLE`. A value that is not a
    /// boolean (`true`/`false`/`1`/`0`) or a day count is refused, naming the variable; so is
    /// `BIFROST_AUDIT_IMMUTABLE=false`.
    pub fn apply_env(&mut self) -> Result<()> {
        self.apply_vars(|name| std::env::var(name).ok())
    }

    /// [`apply_env`](Self::apply_env) with the variables from `get` (for tests and embedders).
    pub fn apply_vars(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let a = &mut self.audit_logs;
        let boolean = |name: &str| -> Result<Option<bool>> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" | "on" => Ok(Some(true)),
                    "false" | "0" | "no" | "off" => Ok(Some(false)),
                    _ => Err(Error::Config(format!(
                        "{name}={v:?}: expected true or false"
                    ))),
                },
            }
        };
        let days = |name: &str| -> Result<Option<u32>> {
            match get(name) {
                None => Ok(None),
                Some(v) => v.trim().parse::<u32>().map(Some).map_err(|_| {
                    Error::Config(format!(
                        "{name}={v:?}: expected a whole number of days from 0 to {}",
                        u32::MAX
                    ))
                }),
            }
        };
        if let Some(on) = boolean("BIFROST_AUDIT_LOGS_ENABLED")? {
            a.disabled = !on;
        }
        if let Some(d) = days("BIFROST_AUDIT_RETENTION_DAYS")? {
            a.retention_days = d;
        }
        if let Some(d) = days("BIFROST_AUDIT_ARCHIVE_DAYS")? {
            a.archive_days = Some(d);
        }
        if let Some(b) = boolean("BIFROST_AUDIT_AUTH_EVENTS")? {
            a.auth_events = b;
        }
        if let Some(b) = boolean("BIFROST_AUDIT_CONFIG_CHANGES")? {
            a.config_changes = b;
        }
        if let Some(b) = boolean("BIFROST_AUDIT_SECURITY_EVENTS")? {
            a.security_events = b;
        }
        if let Some(b) = boolean("BIFROST_AUDIT_IMMUTABLE")? {
            a.immutable = b;
        }
        self.validate()
    }

    /// Refuses settings that cannot be honoured, naming them.
    pub fn validate(&self) -> Result<()> {
        let a = &self.audit_logs;
        if !a.immutable {
            return Err(Error::Config(
                "audit_logs.immutable (BIFROST_AUDIT_IMMUTABLE) = false: auditlog logs are always \
                 hash-chained and append-only; remove the setting or set it to true"
                    .into(),
            ));
        }
        if let (Some(arch), r) = (a.archive_days, a.retention_days) {
            if r > 0 && arch > 0 && arch >= r {
                return Err(Error::Config(format!(
                    "audit_logs.archive_days ({arch}) must be less than retention_days ({r}): \
                     records would be deleted before they are archived"
                )));
            }
        }
        for p in &a.hmac_fields {
            if !p.starts_with('/') {
                return Err(Error::Config(format!(
                    "audit_logs.hmac_fields: {p:?} is not a JSON pointer (it starts with /, as in /api_key)"
                )));
            }
        }
        if !a.hmac_fields.is_empty() && a.field_hmac_key.is_none() {
            return Err(Error::Config(
                "audit_logs.hmac_fields is set but audit_logs.field_hmac_key is not".into(),
            ));
        }
        Ok(())
    }
}

impl AuditConfig {
    /// Resolves `hmac_key` into a key.
    pub fn key(&self) -> Result<HmacKey> {
        HmacKey::from_config_value(&self.hmac_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_config_parses() {
        let c = Config::from_json(r#"{"audit_logs":{"disabled":false,"hmac_key":"env.AUDIT_HMAC_KEY","retention_days":365}}"#).unwrap();
        assert_eq!(c.audit_logs.retention_days, 365);
        assert_eq!(c.audit_logs.hmac_key, "env.AUDIT_HMAC_KEY");
        let e = Config::from_json(r#"{"audit_logs":{"retention_days":"x"}}"#).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert!(Config::from_json("{}")
            .unwrap()
            .audit_logs
            .hmac_key
            .starts_with("env."));
    }
}
