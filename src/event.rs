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
    #[serde(default, skip_serializing_if = "Details::is_null")]
    pub details: Details,
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
            details: Details::none(),
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

/// Deepest nesting of objects and arrays accepted in `details`.
pub const MAX_DETAILS_DEPTH: usize = 64;

/// An event's `details`: a JSON object kept as the JSON text it arrived as (validated once,
/// never re-serialized), or absent. Appending copies the text into the record; reading hands
/// it back without a parse (`as_str`), and `to_value` parses it on demand.
///
/// Built from a [`serde_json::Value`] with `From`/`Into` (`e.details = json!({..}).into()`),
/// from text with [`Details::from_json`], or by deserializing an [`Event`]. Text that spans
/// lines is compacted to one line, so that JSON Lines output stays one event per line.
#[derive(Clone, Default)]
pub struct Details(Option<Box<serde_json::value::RawValue>>);

impl Details {
    /// No details.
    pub const fn none() -> Details {
        Details(None)
    }

    /// Validates `text` as JSON (any value; [`Event::validate`] requires an object) nested at
    /// most [`MAX_DETAILS_DEPTH`] deep, and keeps it. `null` means no details.
    pub fn from_json(text: &str) -> Result<Details> {
        let raw: Box<serde_json::value::RawValue> =
            serde_json::from_str(text).map_err(|e| Error::InvalidEvent(format!("details: {e}")))?;
        Self::from_raw(raw).map_err(|m| Error::InvalidEvent(format!("details: {m}")))
    }

    fn from_raw(raw: Box<serde_json::value::RawValue>) -> std::result::Result<Details, String> {
        let text = raw.get();
        if text == "null" {
            return Ok(Details(None));
        }
        check_depth(text.as_bytes())?;
        if text.bytes().any(|b| b == b'\n' || b == b'\r') {
            // Whitespace between tokens only (JSON strings cannot hold raw newlines): compact.
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            return Ok(Details::from(v));
        }
        Ok(Details(Some(raw)))
    }

    /// Stored text of a record (validated when it was appended, covered by its MAC).
    pub(crate) fn from_stored(text: &str) -> Result<Details> {
        if text.is_empty() {
            return Ok(Details(None));
        }
        serde_json::value::RawValue::from_string(text.to_string())
            .map(|r| Details(Some(r)))
            .map_err(|e| Error::Codec(format!("details: {e}")))
    }

    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// Whether the details are a JSON object (absent details are not).
    pub fn is_object(&self) -> bool {
        self.0
            .as_ref()
            // JSON whitespace is ASCII: a byte scan, not `trim_start`'s Unicode decoding.
            .is_some_and(|r| {
                r.get()
                    .bytes()
                    .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                    == Some(b'{')
            })
    }

    /// The JSON text, if any.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_ref().map(|r| r.get())
    }

    /// The JSON text, or `""` when absent (the stored form).
    pub(crate) fn text(&self) -> &str {
        self.as_str().unwrap_or("")
    }

    /// Parsed into a [`serde_json::Value`] (`Null` when absent).
    pub fn to_value(&self) -> serde_json::Value {
        self.as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Nesting deeper than [`MAX_DETAILS_DEPTH`] is refused, and so is a number that does not
/// fit an f64 (`1e400`), which `serde_json::Value` could not hold. One pass over the bytes;
/// strings are skipped.
fn check_depth(b: &[u8]) -> std::result::Result<(), String> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if in_str {
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DETAILS_DEPTH {
                    return Err(format!("nested deeper than {MAX_DETAILS_DEPTH} levels"));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'-' | b'0'..=b'9' => {
                let start = i - 1;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                let tok = &b[start..i];
                if tok.len() > 17 || tok.iter().any(|&x| x == b'e' || x == b'E') {
                    let t = std::str::from_utf8(tok).unwrap_or("");
                    if !t.parse::<f64>().is_ok_and(f64::is_finite) {
                        return Err(format!("number {t} is out of range"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

impl From<serde_json::Value> for Details {
    fn from(v: serde_json::Value) -> Details {
        if v.is_null() {
            return Details(None);
        }
        Details(serde_json::value::to_raw_value(&v).ok())
    }
}

/// Equal JSON values: the same text, or texts that parse to equal values (key order and
/// number spelling aside, as `serde_json::Value` compares them).
impl PartialEq for Details {
    fn eq(&self, other: &Details) -> bool {
        self.as_str() == other.as_str()
            || (self.0.is_some() && other.0.is_some() && self.to_value() == other.to_value())
    }
}

impl PartialEq<serde_json::Value> for Details {
    fn eq(&self, other: &serde_json::Value) -> bool {
        &self.to_value() == other
    }
}

impl std::fmt::Debug for Details {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_str() {
            Some(t) => f.write_str(t),
            None => f.write_str("null"),
        }
    }
}

impl Serialize for Details {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0 {
            Some(r) => r.serialize(s),
            None => s.serialize_unit(),
        }
    }
}

impl<'de> Deserialize<'de> for Details {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Details, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Details::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

mod fast;

pub(crate) use fast::canonical_timestamp;

/// One event as a JSON line, borrowing from the line: the `append_json` path parses the
/// seed's shape straight into the payload's fields, never building a `Value` of `details`.
/// Same fields, defaults and rules as [`Event`].
pub(crate) struct EventRef<'a> {
    pub event_id: Option<std::borrow::Cow<'a, str>>,
    pub timestamp: Option<std::borrow::Cow<'a, str>>,
    pub event_type: std::borrow::Cow<'a, str>,
    pub action: std::borrow::Cow<'a, str>,
    pub status: Option<std::borrow::Cow<'a, str>>,
    pub severity: Severity,
    pub actor: ActorRef<'a>,
    pub resource: Option<ResourceRef<'a>>,
    /// The JSON text of `details` (`None`: absent or `null`).
    pub details: Option<&'a str>,
    /// `details` already passed `check`'s rules (an object, on one line, within the depth
    /// and number limits): the single-pass parser checked them while finding its end.
    details_checked: bool,
}

/// [`EventRef`] as serde reads it: the reference parser, which decides whatever the
/// single-pass parser ([`fast`]) leaves to it, and words the errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventWire<'a> {
    #[serde(default, borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    status: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    severity: Severity,
    #[serde(default, borrow)]
    actor: ActorRef<'a>,
    #[serde(default, borrow)]
    resource: Option<ResourceRef<'a>>,
    #[serde(default, borrow)]
    details: Option<&'a serde_json::value::RawValue>,
}

impl<'a> From<EventWire<'a>> for EventRef<'a> {
    fn from(w: EventWire<'a>) -> EventRef<'a> {
        EventRef {
            event_id: w.event_id,
            timestamp: w.timestamp,
            event_type: w.event_type,
            action: w.action,
            status: w.status,
            severity: w.severity,
            actor: w.actor,
            resource: w.resource,
            details: w.details.map(|r| r.get()),
            details_checked: false,
        }
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(crate) struct ActorRef<'a> {
    #[serde(default, borrow)]
    pub user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub email: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub ip_address: Option<IpAddr>,
}

#[derive(Deserialize, Debug, PartialEq)]
pub(crate) struct ResourceRef<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub id: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> EventRef<'a> {
    /// Parses one JSON line: the single-pass parser takes the common shape, and serde_json
    /// everything else, so the error is serde_json's (naming the field, line and column).
    pub fn parse(line: &'a [u8]) -> Result<EventRef<'a>> {
        match fast::parse(line) {
            Some(ev) => Ok(ev),
            None => Self::parse_reference(line),
        }
    }

    /// The serde_json parse alone (what `parse` does when the single-pass parser declines).
    pub fn parse_reference(line: &'a [u8]) -> Result<EventRef<'a>> {
        serde_json::from_slice::<EventWire<'a>>(line)
            .map(EventRef::from)
            .map_err(|e| Error::InvalidEvent(e.to_string()))
    }

    /// The same checks as [`Event::validate`], plus the timestamp's parse. Returns the
    /// timestamp (None: assign now) and the details' JSON text (`""`: none), compacted to one
    /// line into `scratch` if it spans lines.
    pub fn check<'s>(&'s self, scratch: &'s mut String) -> Result<(Option<i64>, &'s str)> {
        if let Some(id) = &self.event_id {
            if id.is_empty() || id.len() > MAX_EVENT_ID_BYTES {
                return Err(Error::InvalidEvent(format!(
                    "event_id must be 1 to {MAX_EVENT_ID_BYTES} bytes, got {}",
                    id.len()
                )));
            }
        }
        for (name, v) in [
            ("event_type", Some(&self.event_type)),
            ("action", Some(&self.action)),
            ("status", self.status.as_ref()),
        ] {
            if v.is_some_and(|v| v.is_empty()) {
                return Err(Error::InvalidEvent(format!("{name} must not be empty")));
            }
        }
        let ts = match &self.timestamp {
            None => None,
            Some(t) => match canonical_timestamp(t) {
                Some(ns) => Some(ns),
                None => {
                    // As `Event`'s timestamp deserializes (chrono's `FromStr`).
                    let dt: DateTime<Utc> = t.parse().map_err(|e| {
                        Error::InvalidEvent(format!("timestamp {t:?}: {e} (expected RFC 3339)"))
                    })?;
                    Some(to_nanos(&dt)?)
                }
            },
        };
        let details = match self.details {
            None | Some("null") => "",
            Some(t) if self.details_checked => t,
            Some(t) => {
                if !t.starts_with('{') {
                    return Err(Error::InvalidEvent("details must be a JSON object".into()));
                }
                check_depth(t.as_bytes())
                    .map_err(|m| Error::InvalidEvent(format!("details: {m}")))?;
                if t.bytes().any(|b| b == b'\n' || b == b'\r') {
                    let v: serde_json::Value = serde_json::from_str(t)
                        .map_err(|e| Error::InvalidEvent(format!("details: {e}")))?;
                    *scratch = v.to_string();
                    scratch.as_str()
                } else {
                    t
                }
            }
        };
        Ok((ts, details))
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
        ev.details = serde_json::json!([1]).into();
        assert!(ev.validate().is_err());
    }
}
