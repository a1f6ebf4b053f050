//! The seed's `config.json`: the `audit_logs` section.

use std::path::Path;

use serde::Deserialize;

use crate::chain::HmacKey;
use crate::error::{Error, Result};

/// A whole config file. Sections other than `audit_logs` are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub audit_logs: AuditConfig,
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
        serde_json::from_str(text).map_err(|e| Error::Config(e.to_string()))
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
