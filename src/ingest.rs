//! Ingestion policy, applied to JSON lines before they are appended: the seed's category
//! toggles (`auth_events`, `config_changes`, `security_events`) decide which events are
//! kept, configured `details` fields are replaced by their keyed hash (as Vault's audit
//! devices do with secrets), and `omit_ip_addresses` drops the actor's address.
//!
//! A hashed field reads `hmac-sha256:<hex>` with `HMAC-SHA256(field_key, value)`, where
//! `value` is the string's UTF-8 bytes (or, for a non-string, its JSON text).
//! [`IngestPolicy::field_hash`] computes the same value, so an investigator holding a known
//! secret can search for where it was used without the log ever holding it.

use std::borrow::Cow;

use hmac::Mac;
use serde_json::Value;

use crate::chain::{hex, HmacKey};
use crate::config::AuditConfig;
use crate::error::{Error, Result};

/// What ingest keeps and rewrites. The identity policy (every toggle on, no hashed field,
/// addresses kept) passes lines through untouched, without parsing them.
#[derive(Debug, Clone, Default)]
pub struct IngestPolicy {
    /// `event_type`s that are not kept.
    dropped_types: Vec<&'static str>,
    hmac_fields: Vec<String>,
    field_key: Option<HmacKey>,
    omit_ip: bool,
}

/// The outcome of [`IngestPolicy::apply`] for one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted<'a> {
    /// Append this line (the original, or the rewritten one).
    Keep(Cow<'a, [u8]>),
    /// A category toggle is off for this event type.
    Dropped { event_type: String },
}

#[derive(serde::Deserialize)]
struct TypeOnly<'a> {
    #[serde(borrow, default)]
    event_type: Option<Cow<'a, str>>,
}

impl IngestPolicy {
    /// The policy of an `audit_logs` section. `field_hmac_key` is resolved here (from the
    /// environment for `env.NAME`), so a missing or short key fails at start-up.
    pub fn from_config(a: &AuditConfig) -> Result<IngestPolicy> {
        let mut dropped_types = Vec::new();
        if !a.auth_events {
            dropped_types.push("authentication");
        }
        if !a.config_changes {
            dropped_types.push("configuration_change");
        }
        if !a.security_events {
            dropped_types.extend(["security_event", "security_incident"]);
        }
        let field_key = match &a.field_hmac_key {
            Some(k) => Some(
                HmacKey::from_config_value(k)
                    .map_err(|e| Error::Config(format!("audit_logs.field_hmac_key: {e}")))?,
            ),
            None => None,
        };
        if !a.hmac_fields.is_empty() && field_key.is_none() {
            return Err(Error::Config(
                "audit_logs.hmac_fields is set but audit_logs.field_hmac_key is not".into(),
            ));
        }
        for p in &a.hmac_fields {
            if !p.starts_with('/') {
                return Err(Error::Config(format!(
                    "audit_logs.hmac_fields: {p:?} is not a JSON pointer (it starts with /, as in /api_key)"
                )));
            }
        }
        Ok(IngestPolicy {
            dropped_types,
            hmac_fields: a.hmac_fields.clone(),
            field_key,
            omit_ip: a.omit_ip_addresses,
        })
    }

    /// Whether lines pass through untouched.
    pub fn is_identity(&self) -> bool {
        self.dropped_types.is_empty() && self.hmac_fields.is_empty() && !self.omit_ip
    }

    /// The event types this policy does not keep.
    pub fn dropped_types(&self) -> &[&'static str] {
        &self.dropped_types
    }

    /// `hmac-sha256:<hex>` of `value` under the field key; an error when no
    /// `field_hmac_key` is configured.
    pub fn field_hash(&self, value: &[u8]) -> Result<String> {
        let key = self
            .field_key
            .as_ref()
            .ok_or_else(|| Error::Config("no audit_logs.field_hmac_key is configured".into()))?;
        let mut m = key.mac();
        m.update(value);
        Ok(format!("hmac-sha256:{}", hex(&m.finalize().into_bytes())))
    }

    /// Applies the policy to one JSON line. A line that is not valid JSON is passed on
    /// unchanged when nothing needs rewriting, so that the append reports its error the
    /// usual way; otherwise the parse error is returned as `InvalidEvent`.
    pub fn apply<'a>(&self, line: &'a [u8]) -> Result<Admitted<'a>> {
        if self.is_identity() {
            return Ok(Admitted::Keep(Cow::Borrowed(line)));
        }
        if !self.dropped_types.is_empty() {
            if let Ok(t) = serde_json::from_slice::<TypeOnly<'_>>(line) {
                if let Some(ty) = t.event_type {
                    if self.dropped_types.contains(&ty.as_ref()) {
                        return Ok(Admitted::Dropped {
                            event_type: ty.into_owned(),
                        });
                    }
                }
            }
        }
        if self.hmac_fields.is_empty() && !self.omit_ip {
            return Ok(Admitted::Keep(Cow::Borrowed(line)));
        }
        let mut v: Value = serde_json::from_slice(line)
            .map_err(|e| Error::InvalidEvent(format!("not a JSON object: {e}")))?;
        let mut changed = false;
        if self.omit_ip {
            if let Some(actor) = v.get_mut("actor").and_then(Value::as_object_mut) {
                changed |= actor.remove("ip_address").is_some();
            }
        }
        if let Some(details) = v.get_mut("details") {
            for p in &self.hmac_fields {
                if let Some(target) = details.pointer_mut(p) {
                    if target.is_null() {
                        continue;
                    }
                    let h = match &*target {
                        Value::String(s) => self.field_hash(s.as_bytes())?,
                        other => self.field_hash(other.to_string().as_bytes())?,
                    };
                    *target = Value::String(h);
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(Admitted::Keep(Cow::Borrowed(line)));
        }
        let text = serde_json::to_vec(&v).map_err(|e| Error::InvalidEvent(e.to_string()))?;
        Ok(Admitted::Keep(Cow::Owned(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuditConfig {
        AuditConfig {
            field_hmac_key: Some("a field key that is long enough, 32+ bytes".into()),
            ..AuditConfig::default()
        }
    }

    #[test]
    fn identity_passes_lines_through() {
        let p = IngestPolicy::from_config(&AuditConfig::default()).unwrap();
        assert!(p.is_identity());
        let line = br#"{"event_type":"authentication"}"#;
        assert_eq!(
            p.apply(line).unwrap(),
            Admitted::Keep(Cow::Borrowed(&line[..]))
        );
    }

    #[test]
    fn toggles_drop_their_categories_only() {
        let mut a = cfg();
        a.auth_events = false;
        a.security_events = false;
        let p = IngestPolicy::from_config(&a).unwrap();
        for ty in ["authentication", "security_event", "security_incident"] {
            let line = format!(r#"{{"event_type":"{ty}","action":"x"}}"#);
            assert_eq!(
                p.apply(line.as_bytes()).unwrap(),
                Admitted::Dropped {
                    event_type: ty.into()
                }
            );
        }
        let kept = br#"{"event_type":"configuration_change","action":"x"}"#;
        assert!(matches!(
            p.apply(kept).unwrap(),
            Admitted::Keep(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn hashed_fields_and_omitted_ip() {
        let mut a = cfg();
        a.hmac_fields = vec!["/api_key".into(), "/req/token".into(), "/absent".into()];
        a.omit_ip_addresses = true;
        let p = IngestPolicy::from_config(&a).unwrap();
        let line = br#"{"event_type":"authentication","action":"login","actor":{"user_id":"u","ip_address":"10.0.0.1"},"details":{"api_key":"sk-secret","req":{"token":42},"keep":"me"}}"#;
        let Admitted::Keep(out) = p.apply(line).unwrap() else {
            panic!("dropped")
        };
        let v: Value = serde_json::from_slice(&out).unwrap();
        let want = p.field_hash(b"sk-secret").unwrap();
        assert!(want.starts_with("hmac-sha256:") && want.len() == 12 + 64);
        assert_eq!(v["details"]["api_key"], Value::String(want));
        assert_eq!(
            v["details"]["req"]["token"],
            Value::String(p.field_hash(b"42").unwrap())
        );
        assert_eq!(v["details"]["keep"], "me");
        assert!(v["actor"].get("ip_address").is_none());
        assert_eq!(v["actor"]["user_id"], "u");
        assert!(!String::from_utf8_lossy(&out).contains("sk-secret"));
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut a = AuditConfig {
            hmac_fields: vec!["/x".into()],
            ..AuditConfig::default()
        };
        let e = IngestPolicy::from_config(&a).unwrap_err().to_string();
        assert!(e.contains("field_hmac_key"), "{e}");
        a.field_hmac_key = Some("short".into());
        let e = IngestPolicy::from_config(&a).unwrap_err().to_string();
        assert!(e.contains("field_hmac_key"), "{e}");
        let mut a = cfg();
        a.hmac_fields = vec!["api_key".into()];
        let e = IngestPolicy::from_config(&a).unwrap_err().to_string();
        assert!(e.contains("JSON pointer"), "{e}");
    }
}
