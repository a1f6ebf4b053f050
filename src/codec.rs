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
        let details = e.details.text().to_string();
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
}

impl<'a> Fields<'a> {
    /// The fields of a stored event, borrowed from it.
    pub(crate) fn of_stored(e: &'a StoredEvent) -> Fields<'a> {
        Fields {
            event_id: &e.event_id,
            event_type: &e.event_type,
            action: &e.action,
            status: &e.status,
            severity: e.severity,
            user_id: e.user_id.as_deref(),
            email: e.email.as_deref(),
            ip_address: e.ip_address,
            resource_type: e.resource_type.as_deref(),
            resource_id: e.resource_id.as_deref(),
            details: &e.details,
        }
    }

    /// The event these fields describe, stamped `ts_ns` (its details checked as JSON once
    /// more when `details` is set; left out otherwise).
    pub(crate) fn to_event(self, ts_ns: i64, details: bool) -> Result<Event> {
        let severity = Severity::from_u8(self.severity)
            .ok_or_else(|| Error::Codec(format!("unknown severity code {}", self.severity)))?;
        let details = if details {
            crate::event::Details::from_stored(self.details)?
        } else {
            crate::event::Details::none()
        };
        Ok(Event {
            event_id: Some(self.event_id.to_owned()),
            timestamp: Some(crate::event::from_nanos(ts_ns)),
            event_type: self.event_type.to_owned(),
            action: self.action.to_owned(),
            status: self.status.to_owned(),
            severity,
            actor: Actor {
                user_id: self.user_id.map(str::to_owned),
                email: self.email.map(str::to_owned),
                ip_address: self.ip_address,
            },
            resource: self.resource_type.map(|kind| Resource {
                kind: kind.to_owned(),
                id: self.resource_id.map(str::to_owned),
            }),
            details,
        })
    }
}

/// The borrowed twin of [`StoredEvent`] used on the append path and by index builds: same
/// fields in the same order (bincode is positional), so it encodes to the same bytes without
/// cloning strings, and decodes without allocating.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Fields<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub action: &'a str,
    pub status: &'a str,
    pub severity: u8,
    pub user_id: Option<&'a str>,
    pub email: Option<&'a str>,
    pub ip_address: Option<IpAddr>,
    pub resource_type: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    /// JSON text of `details`; empty when there are none.
    pub details: &'a str,
}

impl<'a> Fields<'a> {
    /// The fields of a validated event with its final id.
    pub fn of_event(e: &'a Event, event_id: &'a str) -> Fields<'a> {
        Fields {
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
            details: e.details.text(),
        }
    }
}

/// Encodes an event's fields into `out` (cleared first; keeps its capacity).
///
/// Written field by field straight into `out`, byte for byte what bincode's standard config
/// makes of [`Fields`] through serde (a test holds the two equal on arbitrary fields): bincode
/// through `std::io::Write` cost a tenth of an append. [`FieldReader`] decodes it.
pub(crate) fn encode_fields_into(f: &Fields<'_>, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(
        16 + f.event_id.len()
            + f.event_type.len()
            + f.action.len()
            + f.status.len()
            + f.user_id.map_or(0, str::len)
            + f.email.map_or(0, str::len)
            + f.resource_type.map_or(0, str::len)
            + f.resource_id.map_or(0, str::len)
            + f.details.len()
            + 48,
    );
    out.push(PAYLOAD_V1);
    put_str(out, f.event_id);
    put_str(out, f.event_type);
    put_str(out, f.action);
    put_str(out, f.status);
    out.push(f.severity);
    put_opt_str(out, f.user_id);
    put_opt_str(out, f.email);
    match f.ip_address {
        None => out.push(0),
        // serde writes an `IpAddr` as a newtype variant (index 0 = V4, 1 = V6) of its
        // octets as a tuple, which bincode lays out as the bare bytes.
        Some(IpAddr::V4(a)) => {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            out.extend_from_slice(&[1, 1]);
            out.extend_from_slice(&a.octets());
        }
    }
    put_opt_str(out, f.resource_type);
    put_opt_str(out, f.resource_id);
    put_str(out, f.details);
    Ok(())
}

/// bincode's variable-length unsigned integer (standard config): one byte below 251, else a
/// marker (251, 252, 253) and the value as little-endian u16, u32 or u64.
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 251 {
        out.push(v as u8);
    } else if v <= u64::from(u16::MAX) {
        out.push(251);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(252);
        out.extend_from_slice(&(v as u32).to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// Reads what [`encode_fields_into`] writes (after the version byte), the way bincode's
/// standard config decodes [`Fields`] through serde: the same values from the same bytes, and an
/// error wherever bincode gives one (a test holds the two equal on valid and damaged
/// payloads). bincode's serde path was a tenth of a query's decode.
struct FieldReader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> FieldReader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| {
            Error::Codec(format!(
                "payload ends inside a field at byte {}",
                self.at + 1
            ))
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn varint(&mut self) -> Result<u64> {
        Ok(match self.u8()? {
            v @ 0..=250 => u64::from(v),
            251 => u64::from(u16::from_le_bytes(
                self.bytes(2)?.try_into().expect("2 bytes"),
            )),
            252 => u64::from(u32::from_le_bytes(
                self.bytes(4)?.try_into().expect("4 bytes"),
            )),
            253 => u64::from_le_bytes(self.bytes(8)?.try_into().expect("8 bytes")),
            m => {
                return Err(Error::Codec(format!(
                    "invalid integer marker {m} at byte {}",
                    self.at
                )))
            }
        })
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.varint()?;
        let n =
            usize::try_from(n).map_err(|_| Error::Codec(format!("string length {n} too large")))?;
        let at = self.at;
        std::str::from_utf8(self.bytes(n)?)
            .map_err(|e| Error::Codec(format!("string at byte {} is not UTF-8: {e}", at + 1)))
    }

    fn tag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            t => Err(Error::Codec(format!(
                "invalid option tag {t} at byte {}",
                self.at
            ))),
        }
    }

    fn opt_str(&mut self) -> Result<Option<&'a str>> {
        if self.tag()? {
            self.str().map(Some)
        } else {
            Ok(None)
        }
    }

    fn fields(&mut self) -> Result<Fields<'a>> {
        let event_id = self.str()?;
        let event_type = self.str()?;
        let action = self.str()?;
        let status = self.str()?;
        let severity = self.u8()?;
        let user_id = self.opt_str()?;
        let email = self.opt_str()?;
        let ip_address = if self.tag()? {
            // The variant index is a u32 varint.
            match self.varint()? {
                0 => Some(IpAddr::from(
                    <[u8; 4]>::try_from(self.bytes(4)?).expect("4 bytes"),
                )),
                1 => Some(IpAddr::from(
                    <[u8; 16]>::try_from(self.bytes(16)?).expect("16 bytes"),
                )),
                v => return Err(Error::Codec(format!("invalid IP address variant {v}"))),
            }
        } else {
            None
        };
        let resource_type = self.opt_str()?;
        let resource_id = self.opt_str()?;
        let details = self.str()?;
        Ok(Fields {
            event_id,
            event_type,
            action,
            status,
            severity,
            user_id,
            email,
            ip_address,
            resource_type,
            resource_id,
            details,
        })
    }
}

/// The fields encoded at the start of `rest`, and how many bytes they took.
fn read_fields(rest: &[u8]) -> Result<(Fields<'_>, usize)> {
    let mut r = FieldReader { b: rest, at: 0 };
    let f = r.fields()?;
    Ok((f, r.at))
}

/// What bincode itself makes of `f` (the reference the direct encoder is held to).
#[cfg(test)]
fn encode_fields_bincode(f: &Fields<'_>) -> Vec<u8> {
    let mut out = vec![PAYLOAD_V1];
    bincode::serde::encode_into_std_write(f, &mut out, bincode::config::standard())
        .expect("bincode encodes into a Vec");
    out
}

/// Encodes an event (with its final id) into `out`.
#[cfg(test)]
pub fn encode_event_into(e: &Event, event_id: &str, out: &mut Vec<u8>) -> Result<()> {
    encode_fields_into(&Fields::of_event(e, event_id), out)
}

/// Decodes a v1 payload's fields without allocating (hostile input gives an error).
pub(crate) fn decode_fields(payload: &[u8]) -> Result<Fields<'_>> {
    match payload.split_first() {
        Some((&PAYLOAD_V1, rest)) => {
            let (f, used) = read_fields(rest)?;
            if used != rest.len() {
                return Err(Error::Codec(format!(
                    "{} trailing bytes after the event",
                    rest.len() - used
                )));
            }
            Ok(f)
        }
        Some((v, _)) => Err(Error::Codec(format!("unknown payload version {v}"))),
        None => Err(Error::Codec("empty payload".into())),
    }
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
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Short and long strings (every varint width up to u32), ASCII and beyond.
        prop_oneof![
            "[a-z_]{0,12}",
            ".{0,40}",
            (240usize..70_000).prop_map(|n| "x".repeat(n)),
        ]
    }

    fn ip() -> impl Strategy<Value = Option<IpAddr>> {
        prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|o| Some(IpAddr::from(o))),
            any::<[u8; 16]>().prop_map(|o| Some(IpAddr::from(o))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn direct_encoding_is_bincodes_byte_for_byte(
            strs in proptest::collection::vec(text(), 5),
            opts in proptest::collection::vec(proptest::option::of(text()), 4),
            severity in any::<u8>(),
            ip in ip(),
        ) {
            let f = Fields {
                event_id: &strs[0],
                event_type: &strs[1],
                action: &strs[2],
                status: &strs[3],
                severity,
                user_id: opts[0].as_deref(),
                email: opts[1].as_deref(),
                ip_address: ip,
                resource_type: opts[2].as_deref(),
                resource_id: opts[3].as_deref(),
                details: &strs[4],
            };
            let mut direct = Vec::new();
            encode_fields_into(&f, &mut direct).unwrap();
            prop_assert_eq!(&direct, &encode_fields_bincode(&f));
            let back = decode_fields(&direct).unwrap();
            prop_assert_eq!((back.event_id, back.details, back.ip_address), (f.event_id, f.details, f.ip_address));
            prop_assert_eq!(format!("{back:?}"), format!("{f:?}"));
        }

        /// Damaged payloads (bytes flipped, cut short, or random): the direct decoder and
        /// bincode agree on every field or both refuse.
        #[test]
        fn direct_decoding_agrees_with_bincode_on_damaged_payloads(
            strs in proptest::collection::vec("[a-z]{0,300}", 5),
            user in proptest::option::of("[a-z]{0,8}"),
            ip in ip(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            cut in any::<prop::sample::Index>(),
            random in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let f = Fields {
                event_id: &strs[0],
                event_type: &strs[1],
                action: &strs[2],
                status: &strs[3],
                severity: 2,
                user_id: user.as_deref(),
                email: None,
                ip_address: ip,
                resource_type: Some("key"),
                resource_id: None,
                details: &strs[4],
            };
            let mut p = Vec::new();
            encode_fields_into(&f, &mut p).unwrap();
            let mut damaged = p[1..].to_vec();
            for (i, v) in &flips {
                let i = i.index(damaged.len());
                damaged[i] = *v;
            }
            let cut_at = cut.index(damaged.len() + 1);
            for b in [&damaged[..], &damaged[..cut_at], &random[..]] {
                let ours = read_fields(b).map(|(f, n)| (format!("{f:?}"), n)).ok();
                let theirs: Option<(Fields<'_>, usize)> =
                    bincode::serde::borrow_decode_from_slice(b, bincode::config::standard()).ok();
                prop_assert_eq!(ours, theirs.map(|(f, n)| (format!("{f:?}"), n)), "{:?}", b);
            }
        }
    }

    #[test]
    fn direct_decoding_agrees_with_bincode_on_edge_encodings() {
        // Four one-byte strings, severity, no user/email, then the IP, resource and details.
        let head = [1, b'e', 1, b't', 1, b'a', 1, b's', 3, 0, 0];
        let cases: Vec<Vec<u8>> = vec![
            // A length written wider than it needs (251 + u16, 252 + u32, 253 + u64).
            [
                &[251, 1, 0, b'e'][..],
                &head[2..],
                &[1, 0, 10, 0, 0, 1, 0, 0, 0],
            ]
            .concat(),
            [&[252, 1, 0, 0, 0, b'e'][..], &head[2..], &[0, 0, 0, 0]].concat(),
            [
                &[253, 1, 0, 0, 0, 0, 0, 0, 0, b'e'][..],
                &head[2..],
                &[0, 0, 0, 0],
            ]
            .concat(),
            // Markers no u64 takes (254 is u128's, 255 is unused).
            [&[254, 1, 0][..], &head[2..]].concat(),
            [&[255][..], &head[2..]].concat(),
            // Option tags other than 0 and 1; IP variants past V6, and a wide variant index.
            [&head[..], &[2, 0, 0, 0]].concat(),
            [&head[..], &[1, 2, 1, 2, 3, 4, 0, 0, 0]].concat(),
            [&head[..], &[1, 251, 0, 0, 1, 2, 3, 4, 0, 0, 0]].concat(),
            [
                &head[..],
                &[
                    1, 251, 1, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0,
                ],
            ]
            .concat(),
            // Invalid UTF-8 in a string; a length past the end.
            [&[1, 0xff][..], &head[2..], &[0, 0, 0, 0]].concat(),
            [&[200, b'e'][..], &head[2..]].concat(),
            // The well-formed minimum.
            [&head[..], &[0, 0, 0, 0]].concat(),
        ];
        for b in &cases {
            let ours = read_fields(b).map(|(f, n)| (format!("{f:?}"), n)).ok();
            let theirs: Option<(Fields<'_>, usize)> =
                bincode::serde::borrow_decode_from_slice(b, bincode::config::standard()).ok();
            assert_eq!(ours, theirs.map(|(f, n)| (format!("{f:?}"), n)), "{b:?}");
        }
        let ok: Vec<bool> = cases.iter().map(|b| read_fields(b).is_ok()).collect();
        assert_eq!(
            ok,
            [true, true, true, false, false, false, false, true, true, false, false, true]
        );
    }

    #[test]
    fn varint_widths_match_bincode_at_every_boundary() {
        for v in [
            0u64,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
        ] {
            let mut ours = Vec::new();
            put_varint(&mut ours, v);
            let theirs = bincode::encode_to_vec(v, bincode::config::standard()).unwrap();
            assert_eq!(ours, theirs, "{v}");
        }
    }

    #[test]
    fn roundtrip_preserves_everything() {
        let mut e = Event::new("authentication", "user_login");
        e.actor.user_id = Some("u1".into());
        e.actor.ip_address = Some("2001:db8::1".parse().unwrap());
        e.resource = Some(Resource {
            kind: "virtual_key".into(),
            id: Some("vk-1".into()),
        });
        e.details = serde_json::json!({"a": [1, 2, {"b": null}], "c": "d"}).into();
        let s = StoredEvent::from_event(&e, "evt_1".into()).unwrap();
        let p = encode(&s).unwrap();
        let mut q = Vec::new();
        encode_event_into(&e, "evt_1", &mut q).unwrap();
        let f = decode_fields(&p).unwrap();
        assert_eq!(
            (f.event_id, f.user_id, f.details),
            ("evt_1", Some("u1"), s.details.as_str())
        );
        assert_eq!(q, p, "borrowed and owned encodings agree");
        let back = decode(&p).unwrap();
        assert_eq!(back, s);
        let ev = Fields::of_stored(&back).to_event(5, true).unwrap();
        assert_eq!(ev.details, e.details);
        assert_eq!(ev.resource, e.resource);
        assert!(decode(&p[..p.len() - 1]).is_err());
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }
}

/// Payload marker of a redacted record (see [`Redacted`]).
pub const PAYLOAD_REDACTED: u8 = 0x52;

/// What a redaction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionScope {
    /// Personal data: the actor (user id, email, IP address) and `details`.
    Personal,
    /// Content only: `details` (per-event-type retention of content).
    Content,
}

/// A redacted payload:
///
/// ```text
/// 0 0x52 | 1 digest[32] (SHA-256 of the original payload) | 33 mac[32]
/// 65 reason_len u16 | reason | scope u8 (0 personal, 1 content) | kept event (bincode, like v1)
/// ```
///
/// `mac = HMAC(K, "auditlog/redaction/v1" || log_id || le64(seq) || digest || bytes 65..)`:
/// only the key holder can redact, and the chain still verifies through `digest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    pub digest: [u8; 32],
    pub mac: [u8; 32],
    pub reason: String,
    pub scope: RedactionScope,
    /// The event with the redacted fields cleared.
    pub kept: StoredEvent,
}

impl Redacted {
    /// The bytes after the MAC, which the MAC covers.
    fn tail(reason: &str, scope: RedactionScope, kept: &StoredEvent) -> Result<Vec<u8>> {
        let reason = reason.as_bytes();
        let len = u16::try_from(reason.len())
            .map_err(|_| Error::InvalidEvent("redaction reason longer than 65535 bytes".into()))?;
        let mut t = Vec::with_capacity(3 + reason.len() + 128);
        t.extend_from_slice(&len.to_le_bytes());
        t.extend_from_slice(reason);
        t.push(match scope {
            RedactionScope::Personal => 0,
            RedactionScope::Content => 1,
        });
        bincode::serde::encode_into_std_write(kept, &mut t, bincode::config::standard())
            .map_err(|x| Error::Codec(x.to_string()))?;
        Ok(t)
    }

    /// Builds the redacted payload for record `seq` whose original payload is `original`.
    pub fn build(
        chain: &crate::chain::Chain,
        log_id: &[u8; 16],
        seq: u64,
        original: &[u8],
        reason: &str,
        scope: RedactionScope,
    ) -> Result<Vec<u8>> {
        let mut kept = decode(original)?;
        kept.details.clear();
        if scope == RedactionScope::Personal {
            kept.user_id = None;
            kept.email = None;
            kept.ip_address = None;
        }
        let digest = crate::chain::digest(original);
        let tail = Self::tail(reason, scope, &kept)?;
        let mac = Self::mac(chain, log_id, seq, &digest, &tail);
        let mut out = Vec::with_capacity(65 + tail.len());
        out.push(PAYLOAD_REDACTED);
        out.extend_from_slice(&digest);
        out.extend_from_slice(&mac);
        out.extend_from_slice(&tail);
        Ok(out)
    }

    fn mac(
        chain: &crate::chain::Chain,
        log_id: &[u8; 16],
        seq: u64,
        digest: &[u8; 32],
        tail: &[u8],
    ) -> [u8; 32] {
        chain.sign(
            b"auditlog/redaction/v1",
            &[log_id, &seq.to_le_bytes(), digest, tail],
        )
    }

    /// Decodes a redacted payload (hostile input gives an error, never a panic).
    pub fn decode(p: &[u8]) -> Result<Redacted> {
        let bad = |m: &str| Error::Codec(format!("redacted payload: {m}"));
        if p.len() < 68 || p[0] != PAYLOAD_REDACTED {
            return Err(bad("too short or wrong marker"));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&p[1..33]);
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&p[33..65]);
        let len = u16::from_le_bytes([p[65], p[66]]) as usize;
        let reason = p
            .get(67..67 + len)
            .ok_or_else(|| bad("reason runs past the end"))?;
        let reason = std::str::from_utf8(reason)
            .map_err(|_| bad("reason is not UTF-8"))?
            .to_string();
        let scope = match p.get(67 + len) {
            Some(0) => RedactionScope::Personal,
            Some(1) => RedactionScope::Content,
            _ => return Err(bad("unknown scope")),
        };
        let rest = &p[68 + len..];
        let (kept, used): (StoredEvent, usize) =
            bincode::serde::decode_from_slice(rest, bincode::config::standard())
                .map_err(|x| Error::Codec(x.to_string()))?;
        if used != rest.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Redacted {
            digest,
            mac,
            reason,
            scope,
            kept,
        })
    }

    /// Whether the redaction was made with this key for this record.
    pub fn authentic(
        &self,
        chain: &crate::chain::Chain,
        log_id: &[u8; 16],
        seq: u64,
        payload: &[u8],
    ) -> bool {
        let tail = &payload[65..];
        crate::chain::ct_eq(
            &Self::mac(chain, log_id, seq, &self.digest, tail),
            &self.mac,
        )
    }
}

/// The indexed fields of a record's payload whatever its form (a redacted record's kept
/// fields), borrowed from it.
pub(crate) fn decode_record_fields(payload: &[u8], flags: u16) -> Result<Fields<'_>> {
    if flags & crate::format::FRAME_FLAG_REDACTED == 0 {
        return decode_fields(payload);
    }
    let bad = |m: &str| Error::Codec(format!("redacted payload: {m}"));
    if payload.len() < 68 || payload[0] != PAYLOAD_REDACTED {
        return Err(bad("too short or wrong marker"));
    }
    let len = u16::from_le_bytes([payload[65], payload[66]]) as usize;
    let rest = payload
        .get(68 + len..)
        .ok_or_else(|| bad("reason runs past the end"))?;
    let (f, used) = read_fields(rest)?;
    if used != rest.len() {
        return Err(bad("trailing bytes"));
    }
    Ok(f)
}

/// Decodes a record's payload whatever its form: the (possibly redacted) event, and the
/// redaction if there is one.
pub fn decode_record(payload: &[u8], flags: u16) -> Result<(StoredEvent, Option<Redacted>)> {
    if flags & crate::format::FRAME_FLAG_REDACTED != 0 {
        let r = Redacted::decode(payload)?;
        Ok((r.kept.clone(), Some(r)))
    } else {
        Ok((decode(payload)?, None))
    }
}

/// A record's event (stamped `ts_ns`; `details` left out unless asked for) and its redaction if
/// it has one. An unredacted record's fields are copied once from the payload into the event,
/// without building a [`StoredEvent`] first.
pub(crate) fn decode_record_event(
    payload: &[u8],
    flags: u16,
    ts_ns: i64,
    details: bool,
) -> Result<(Event, Option<Redacted>)> {
    if flags & crate::format::FRAME_FLAG_REDACTED == 0 {
        Ok((decode_fields(payload)?.to_event(ts_ns, details)?, None))
    } else {
        let r = Redacted::decode(payload)?;
        Ok((
            Fields::of_stored(&r.kept).to_event(ts_ns, details)?,
            Some(r),
        ))
    }
}

/// The digest the chain covers for a record: SHA-256 of the payload, or for a redacted record
/// the original digest it carries, once its redaction MAC is checked.
pub fn chained_digest(
    chain: &crate::chain::Chain,
    log_id: &[u8; 16],
    seq: u64,
    flags: u16,
    payload: &[u8],
) -> std::result::Result<[u8; 32], String> {
    if flags & crate::format::FRAME_FLAG_REDACTED == 0 {
        return Ok(crate::chain::digest(payload));
    }
    let r = Redacted::decode(payload).map_err(|e| e.to_string())?;
    if !r.authentic(chain, log_id, seq, payload) {
        return Err("redaction is not signed with this log's key".into());
    }
    Ok(r.digest)
}
