//! The payload codec: the only module that touches bincode, so the wire format can be swapped
//! in one place.
//!
//! A payload is one version byte ([`PAYLOAD_V1`]) followed by the bincode (standard config,
//! serde) encoding of [`StoredEvent`]. `details` is stored as JSON text because bincode is not
//! self-describing. The timestamp and seq live in the frame header, not in the payload.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{Actor, Event, Resource, Severity};

/// Payload encoding version 1.
pub const PAYLOAD_V1: u8 = 1;

/// The stored form of an event (everything but seq and timestamp).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub event_type: String,
    pub action: String,
    pub status: String,
    pub severity: u8,
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub ip_address: Option<IpAddr>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// JSON text of `details`; empty when the event had none.
    pub details: String,
}

impl StoredEvent {
    /// Builds the stored form from a validated event and its final id.
    #[cfg(test)]
    pub fn from_event(e: &Event, event_id: String) -> Result<Self> {
        let details = if e.details.is_null() {
            String::new()
        } else {
            serde_json::to_string(&e.details).map_err(|x| Error::Codec(x.to_string()))?
        };
        Ok(StoredEvent {
            event_id,
            event_type: e.event_type.clone(),
            action: e.action.clone(),
            status: e.status.clone(),
            severity: e.severity.to_u8(),
            user_id: e.actor.user_id.clone(),
            email: e.actor.email.clone(),
            ip_address: e.actor.ip_address,
            resource_type: e.resource.as_ref().map(|r| r.kind.clone()),
            resource_id: e.resource.as_ref().and_then(|r| r.id.clone()),
            details,
        })
    }

    /// Back to the public shape, with the timestamp from the frame.
    pub fn into_event(self, ts_ns: i64) -> Result<Event> {
        let severity = Severity::from_u8(self.severity)
            .ok_or_else(|| Error::Codec(format!("unknown severity code {}", self.severity)))?;
        let details = if self.details.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&self.details)
                .map_err(|x| Error::Codec(format!("details: {x}")))?
        };
        Ok(Event {
            event_id: Some(self.event_id),
            timestamp: Some(crate::event::from_nanos(ts_ns)),
            event_type: self.event_type,
            action: self.action,
            status: self.status,
            severity,
            actor: Actor {
                user_id: self.user_id,
                email: self.email,
                ip_address: self.ip_address,
            },
            resource: self.resource_type.map(|kind| Resource {
                kind,
                id: self.resource_id,
            }),
            details,
        })
    }
}

/// The borrowed twin of [`StoredEvent`] used on the append path: same fields in the same
/// order (bincode is positional), so it encodes to the same bytes without cloning strings.
#[derive(Serialize)]
struct StoredRef<'a> {
    event_id: &'a str,
    event_type: &'a str,
    action: &'a str,
    status: &'a str,
    severity: u8,
    user_id: Option<&'a str>,
    email: Option<&'a str>,
    ip_address: Option<IpAddr>,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
    details: &'a str,
}

/// Encodes an event (with its final id) into `out`, using `details_buf` for the details JSON.
/// Both buffers are cleared first and keep their capacity, so a caller that reuses them does
/// not allocate.
pub fn encode_event_into(
    e: &Event,
    event_id: &str,
    details_buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    details_buf.clear();
    out.clear();
    if !e.details.is_null() {
        serde_json::to_writer(&mut *details_buf, &e.details)
            .map_err(|x| Error::Codec(x.to_string()))?;
    }
    let details = std::str::from_utf8(details_buf).map_err(|x| Error::Codec(x.to_string()))?;
    let r = StoredRef {
        event_id,
        event_type: &e.event_type,
        action: &e.action,
        status: &e.status,
        severity: e.severity.to_u8(),
        user_id: e.actor.user_id.as_deref(),
        email: e.actor.email.as_deref(),
        ip_address: e.actor.ip_address,
        resource_type: e.resource.as_ref().map(|r| r.kind.as_str()),
        resource_id: e.resource.as_ref().and_then(|r| r.id.as_deref()),
        details,
    };
    out.push(PAYLOAD_V1);
    bincode::serde::encode_into_std_write(&r, out, bincode::config::standard())
        .map_err(|x| Error::Codec(x.to_string()))?;
    Ok(())
}

/// Encodes a stored event into a payload.
#[cfg(test)]
pub fn encode(e: &StoredEvent) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(PAYLOAD_V1);
    bincode::serde::encode_into_std_write(e, &mut out, bincode::config::standard())
        .map_err(|x| Error::Codec(x.to_string()))?;
    Ok(out)
}

/// Decodes a payload. Hostile input yields an error, never a panic.
pub fn decode(payload: &[u8]) -> Result<StoredEvent> {
    match payload.split_first() {
        Some((&PAYLOAD_V1, rest)) => {
            let (e, used): (StoredEvent, usize) =
                bincode::serde::decode_from_slice(rest, bincode::config::standard())
                    .map_err(|x| Error::Codec(x.to_string()))?;
            if used != rest.len() {
                return Err(Error::Codec(format!(
                    "{} trailing bytes after the event",
                    rest.len() - used
                )));
            }
            Ok(e)
        }
        Some((v, _)) => Err(Error::Codec(format!("unknown payload version {v}"))),
        None => Err(Error::Codec("empty payload".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_preserves_everything() {
        let mut e = Event::new("authentication", "user_login");
        e.actor.user_id = Some("u1".into());
        e.actor.ip_address = Some("2001:db8::1".parse().unwrap());
        e.resource = Some(Resource {
            kind: "virtual_key".into(),
            id: Some("vk-1".into()),
        });
        e.details = serde_json::json!({"a": [1, 2, {"b": null}], "c": "d"});
        let s = StoredEvent::from_event(&e, "evt_1".into()).unwrap();
        let p = encode(&s).unwrap();
        let (mut d, mut q) = (Vec::new(), Vec::new());
        encode_event_into(&e, "evt_1", &mut d, &mut q).unwrap();
        assert_eq!(q, p, "borrowed and owned encodings agree");
        let back = decode(&p).unwrap();
        assert_eq!(back, s);
        let ev = back.into_event(5).unwrap();
        assert_eq!(ev.details, e.details);
        assert_eq!(ev.resource, e.resource);
        assert!(decode(&p[..p.len() - 1]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }
}
