//! Queries in the seed's terms: filters, sort, limit, an opaque cursor and an exact
//! `total_count`, answered from the segment indexes.

mod cursor;
mod exec;
mod net;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub(crate) use exec::{entry, entry_at, facets, find_event_id, for_each_match, run};
pub use exec::{AuditLogEntry, Facet, FacetValue, Page, Verification, FACET_DIMENSIONS};
pub use net::IpNet;

use crate::error::{Error, Result};
use crate::event::Severity;

/// Default number of events per page.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a query may ask for.
pub const MAX_LIMIT: usize = 10_000;

/// Sort direction, by timestamp (ties by seq in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    /// Newest first (the default, as audit UIs show).
    #[default]
    Desc,
}

/// A query. Values within one filter are OR-ed; filters are AND-ed.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Inclusive lower bound, UTC nanoseconds.
    pub start: Option<i64>,
    /// Inclusive upper bound, UTC nanoseconds.
    pub end: Option<i64>,
    pub event_types: Vec<String>,
    pub actions: Vec<String>,
    pub statuses: Vec<String>,
    pub severities: Vec<Severity>,
    pub user_ids: Vec<String>,
    /// Matched case-insensitively.
    pub emails: Vec<String>,
    /// Addresses and CIDR ranges.
    pub ips: Vec<IpNet>,
    pub resource_types: Vec<String>,
    pub resource_ids: Vec<String>,
    pub order: Order,
    /// Events per page, 1 to 10,000 (default 100).
    pub limit: usize,
    /// The `next_page` of a previous page of the same query.
    pub cursor: Option<String>,
    /// A 1-based page number (`limit` events per page), as an alternative to `cursor`.
    /// Cursors are cheaper and stable while events arrive; page numbers are for UIs.
    pub page: Option<u64>,
    /// Whether events carry their `details` (default true).
    pub include_details: bool,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            start: None,
            end: None,
            event_types: Vec::new(),
            actions: Vec::new(),
            statuses: Vec::new(),
            severities: Vec::new(),
            user_ids: Vec::new(),
            emails: Vec::new(),
            ips: Vec::new(),
            resource_types: Vec::new(),
            resource_ids: Vec::new(),
            order: Order::Desc,
            limit: DEFAULT_LIMIT,
            cursor: None,
            page: None,
            include_details: true,
        }
    }
}

fn invalid(param: &str, message: impl Into<String>) -> Error {
    Error::InvalidQuery {
        param: param.to_string(),
        message: message.into(),
    }
}

/// Parses an RFC 3339 timestamp or a bare `YYYY-MM-DD` date. A bare date is a whole UTC day:
/// its first nanosecond as a start, its last as an end.
pub fn parse_time(param: &str, value: &str, is_end: bool) -> Result<i64> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return t.with_timezone(&Utc).timestamp_nanos_opt().ok_or_else(|| {
            invalid(
                param,
                format!("{v:?} is outside the supported years 1677 to 2262"),
            )
        });
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        invalid(
            param,
            format!(
                "{v:?} is not an RFC 3339 timestamp (2024-01-31T23:59:59Z) or a date (2024-01-31)"
            ),
        )
    })?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_utc().timestamp_nanos_opt())
        .ok_or_else(|| {
            invalid(
                param,
                format!("{v:?} is outside the supported years 1677 to 2262"),
            )
        })?;
    Ok(if is_end {
        // The last representable instant is 2262-04-11T23:47:16.854775807Z: the end of that
        // day is clamped to it.
        start.saturating_add(86_400 * 1_000_000_000 - 1)
    } else {
        start
    })
}

impl Query {
    /// A query with every default: no filters, newest first, 100 per page, with details.
    pub fn new() -> Query {
        Query::default()
    }

    /// Builds a query from `(name, value)` parameters, as the seed's GET API and the CLI
    /// take them. Names: `start`/`start_date`, `end`/`end_date`, `event_type`, `action`,
    /// `status`, `severity`, `user_id`, `email`, `ip`/`ip_address`, `resource_type`,
    /// `resource_id`, `limit`, `order` (`asc`|`desc`), `cursor`/`page`, `include_details`.
    /// Repeated names add values; a value may also list several separated by commas.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Query> {
        let mut q = Query::new();
        for (name, value) in params {
            q.set(name, value)?;
        }
        q.validate()?;
        Ok(q)
    }

    /// Applies one parameter.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        let many = || {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        match name {
            "start" | "start_date" => self.start = Some(parse_time(name, value, false)?),
            "end" | "end_date" => self.end = Some(parse_time(name, value, true)?),
            "event_type" | "event_types" => self.event_types.extend(many()),
            "action" | "actions" => self.actions.extend(many()),
            "status" | "statuses" => self.statuses.extend(many()),
            "severity" | "severities" => {
                for s in many() {
                    self.severities.push(s.parse().map_err(|_| {
                        invalid(name, format!("unknown severity {s:?}; expected info, low, medium, high or critical"))
                    })?);
                }
            }
            "user_id" | "user_ids" => self.user_ids.extend(many()),
            "email" | "emails" => self.emails.extend(many()),
            "ip" | "ip_address" | "ip_addresses" => {
                for s in many() {
                    self.ips
                        .push(IpNet::parse(&s).map_err(|m| invalid(name, m))?);
                }
            }
            "resource_type" => self.resource_types.extend(many()),
            "resource_id" => self.resource_ids.extend(many()),
            "limit" => {
                self.limit = value
                    .trim()
                    .parse()
                    .map_err(|_| invalid(name, format!("{value:?} is not a number")))?
            }
            "order" | "sort" => {
                self.order = match value.trim().to_ascii_lowercase().as_str() {
                    "asc" => Order::Asc,
                    "desc" => Order::Desc,
                    _ => return Err(invalid(name, format!("{value:?}: expected asc or desc"))),
                }
            }
            "cursor" => self.cursor = Some(value.trim().to_string()),
            "page" => match value.trim().parse::<u64>() {
                Ok(n) if n >= 1 => self.page = Some(n),
                Ok(_) => return Err(invalid(name, "pages are numbered from 1")),
                // The seed's `next_page` links carry the cursor in `page`.
                Err(_) => self.cursor = Some(value.trim().to_string()),
            },
            "include_details" => {
                self.include_details = match value.trim() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(invalid(name, format!("{value:?}: expected true or false"))),
                }
            }
            other => return Err(invalid(other, "unknown parameter")),
        }
        Ok(())
    }

    /// Checks ranges and limits.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(invalid(
                "limit",
                format!("{} is out of range: use 1 to {MAX_LIMIT}", self.limit),
            ));
        }
        if self.page.is_some() && self.cursor.is_some() {
            return Err(invalid(
                "page",
                "give either a page number or a cursor, not both",
            ));
        }
        if self
            .page
            .is_some_and(|p| p.saturating_mul(self.limit as u64) > 1_000_000)
        {
            return Err(invalid(
                "page",
                "page * limit may not exceed 1,000,000: use the cursor (next_page) to go further",
            ));
        }
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if s > e {
                return Err(invalid(
                    "end",
                    "the end is before the start (reversed range)",
                ));
            }
        }
        Ok(())
    }

    /// A digest of everything that selects and orders events (not limit, cursor or details),
    /// so a cursor can only continue the query that issued it.
    pub(crate) fn fingerprint(&self) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut put = |tag: &str, vals: &mut Vec<String>| {
            vals.sort();
            vals.dedup();
            h.update(tag.as_bytes());
            for v in vals.iter() {
                h.update((v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
            h.update([0xff]);
        };
        put("s", &mut vec![format!("{:?}", self.start)]);
        put("e", &mut vec![format!("{:?}", self.end)]);
        put("t", &mut self.event_types.clone());
        put("a", &mut self.actions.clone());
        put("st", &mut self.statuses.clone());
        put(
            "sv",
            &mut self
                .severities
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        );
        put("u", &mut self.user_ids.clone());
        put(
            "em",
            &mut self.emails.iter().map(|e| e.to_ascii_lowercase()).collect(),
        );
        put("ip", &mut self.ips.iter().map(|i| i.to_string()).collect());
        put("rt", &mut self.resource_types.clone());
        put("ri", &mut self.resource_ids.clone());
        put("o", &mut vec![format!("{:?}", self.order)]);
        let d = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&d[..8]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_errors_name_the_parameter() {
        let q = Query::from_params([
            ("event_type", "authentication,authorization"),
            ("start_date", "2024-01-01"),
            ("end_date", "2024-01-31"),
            ("severity", "high"),
            ("severity", "critical"),
            ("ip", "203.0.113.0/24"),
            ("limit", "50"),
            ("order", "asc"),
        ])
        .unwrap();
        assert_eq!(q.event_types, ["authentication", "authorization"]);
        assert_eq!(q.severities, [Severity::High, Severity::Critical]);
        assert_eq!(
            q.end.unwrap() - q.start.unwrap(),
            31 * 86_400 * 1_000_000_000 - 1
        );
        for (k, v) in [
            ("start", "2024-13-01"),
            ("limit", "0"),
            ("limit", "10001"),
            ("ip", "203.0.113.0/33"),
            ("severity", "urgent"),
            ("order", "sideways"),
            ("bogus", "1"),
        ] {
            let e = Query::from_params([(k, v)]).unwrap_err();
            assert!(e.to_string().contains(&format!("`{k}`")), "{k}: {e}");
        }
        let e = Query::from_params([("start", "2024-02-01"), ("end", "2024-01-01")]).unwrap_err();
        assert!(e.to_string().contains("reversed"), "{e}");
    }
}
