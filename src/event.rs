//! The event model: the seed's JSON shape.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest accepted `event_id`, in bytes.
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// How bad an event is. Ordered from least to most severe.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(v: u8) -> Option<Severity> {
        Self::ALL.get(v as usize).copied()
    }
}

impl std::str::FromStr for Severity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Severity::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "unknown severity {s:?}; expected one of info, low, medium, high, critical"
                ))
            })
    }
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
}

/// What it was done to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One audit event, in the seed's JSON shape.
///
/// `event_id` is generated (UUID v7) and `timestamp` assigned (now) when absent. `event_type`,
/// `action` and `status` are open sets: unknown values are kept as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    pub event_type: String,
    pub action: String,
    #[serde(default = "default_status")]
    pub status: String,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

fn default_status() -> String {
    "success".to_string()
}

impl Event {
    /// A new event with the required fields; everything else defaulted.
    pub fn new(event_type: impl Into<String>, action: impl Into<String>) -> Self {
        Event {
            event_id: None,
            timestamp: None,
            event_type: event_type.into(),
            action: action.into(),
            status: default_status(),
            severity: Severity::Info,
            actor: Actor::default(),
            resource: None,
            details: serde_json::Value::Null,
        }
    }

    /// Checks the fields that have rules beyond their JSON type.
    pub fn validate(&self) -> Result<()> {
        if let Some(id) = &self.event_id {
            if id.is_empty() || id.len() > MAX_EVENT_ID_BYTES {
                return Err(Error::InvalidEvent(format!(
                    "event_id must be 1 to {MAX_EVENT_ID_BYTES} bytes, got {}",
                    id.len()
                )));
            }
        }
        for (name, v) in [
            ("event_type", &self.event_type),
            ("action", &self.action),
            ("status", &self.status),
        ] {
            if v.is_empty() {
                return Err(Error::InvalidEvent(format!("{name} must not be empty")));
            }
        }
        if !(self.details.is_null() || self.details.is_object()) {
            return Err(Error::InvalidEvent("details must be a JSON object".into()));
        }
        Ok(())
    }
}

/// UTC nanoseconds of a timestamp. Dates outside 1677..2262 do not fit and are refused.
pub fn to_nanos(t: &DateTime<Utc>) -> Result<i64> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        Error::InvalidEvent(format!(
            "timestamp {t} is outside the supported range (years 1677 to 2262)"
        ))
    })
}

/// The timestamp for UTC nanoseconds.
pub fn from_nanos(ns: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(ns)
}

/// RFC 3339 with as many fractional digits as needed and a `Z` suffix.
pub fn format_ts(ns: i64) -> String {
    from_nanos(ns).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Now, UTC nanoseconds.
pub fn now_nanos() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_example() {
        let line = r#"{"event_id":"evt_001","timestamp":"2024-01-15T10:30:00.123Z","event_type":"authentication","action":"user_login","status":"failed","severity":"medium","actor":{"user_id":"user-alice-001","email":"alice@company.com","ip_address":"203.0.113.42"},"details":{"auth_method":"password","failure_reason":"invalid_password","attempts_count":3}}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        e.validate().unwrap();
        assert_eq!(e.severity, Severity::Medium);
        assert_eq!(
            format_ts(to_nanos(&e.timestamp.unwrap()).unwrap()),
            "2024-01-15T10:30:00.123Z"
        );
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["actor"]["ip_address"], "203.0.113.42");
    }

    #[test]
    fn bad_fields_are_named() {
        assert!(serde_json::from_str::<Event>(
            r#"{"event_type":"a","action":"b","severity":"urgent"}"#
        )
        .is_err());
        let e = serde_json::from_str::<Event>(
            r#"{"event_type":"a","action":"b","actor":{"ip_address":"999.1.1.1"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("invalid IP address"), "{e}");
        let mut ev = Event::new("a", "b");
        ev.event_id = Some("x".repeat(129));
        assert!(ev.validate().is_err());
        ev.event_id = Some(String::new());
        assert!(ev.validate().is_err());
        ev.event_id = None;
        ev.details = serde_json::json!([1]);
        assert!(ev.validate().is_err());
    }
}
