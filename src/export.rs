//! Streaming export: every record that matches a query, written as JSON Lines or CSV in
//! constant memory (one segment's matches at a time), each record's MAC rechecked on the way.

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::log::Inner;
use crate::query::{entry, for_each_match, AuditLogEntry, Query};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line, in the query response's event shape.
    Jsonl,
    /// RFC 4180 CSV with a header row; nested fields flattened with dotted names and
    /// `details` as JSON text.
    Csv,
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json-lines" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(Error::InvalidQuery {
                param: "format".into(),
                message: format!("{s:?}: expected jsonl or csv"),
            }),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub records: u64,
    /// Records whose MAC rechecked.
    pub verified: u64,
    /// Seqs whose MAC did not recheck (at most 100 listed).
    pub unverified_seqs: Vec<u64>,
}

/// The CSV header row.
pub const CSV_COLUMNS: [&str; 15] = [
    "seq",
    "event_id",
    "timestamp",
    "event_type",
    "action",
    "status",
    "severity",
    "actor.user_id",
    "actor.email",
    "actor.ip_address",
    "resource.type",
    "resource.id",
    "details",
    "verification.hash",
    "verification.verified",
];

/// Quotes a CSV field when RFC 4180 requires it.
pub fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

fn csv_row(e: &AuditLogEntry) -> String {
    let ev = &e.event;
    let details = ev.details.text().to_string();
    let cols: [String; 15] = [
        e.seq.to_string(),
        ev.event_id.clone().unwrap_or_default(),
        ev.timestamp
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default(),
        ev.event_type.clone(),
        ev.action.clone(),
        ev.status.clone(),
        ev.severity.as_str().to_string(),
        ev.actor.user_id.clone().unwrap_or_default(),
        ev.actor.email.clone().unwrap_or_default(),
        ev.actor
            .ip_address
            .map(|i| i.to_string())
            .unwrap_or_default(),
        ev.resource
            .as_ref()
            .map(|r| r.kind.clone())
            .unwrap_or_default(),
        ev.resource
            .as_ref()
            .and_then(|r| r.id.clone())
            .unwrap_or_default(),
        details,
        e.verification.hash.clone(),
        e.verification.verified.to_string(),
    ];
    let mut line = cols
        .iter()
        .map(|c| csv_field(c).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

pub(crate) fn export(
    inner: &Inner,
    q: &Query,
    format: ExportFormat,
    out: &mut dyn Write,
    progress: Option<&dyn Fn(u64)>,
) -> Result<ExportSummary> {
    let io = |e: std::io::Error| Error::io("writing export to", "output", e);
    if format == ExportFormat::Csv {
        out.write_all(CSV_COLUMNS.join(",").as_bytes())
            .map_err(io)?;
        out.write_all(b"\r\n").map_err(io)?;
    }
    let mut sum = ExportSummary::default();
    for_each_match(inner, q, |seg, h| {
        let e = entry(seg, h, &inner.chain, &inner.log_id, q.include_details)?;
        match format {
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *out, &e)
                    .map_err(|x| Error::io("writing export to", "output", x.into()))?;
                out.write_all(b"\n").map_err(io)?;
            }
            ExportFormat::Csv => out.write_all(csv_row(&e).as_bytes()).map_err(io)?,
        }
        sum.records += 1;
        if e.verification.verified {
            sum.verified += 1;
        } else if sum.unverified_seqs.len() < 100 {
            sum.unverified_seqs.push(e.seq);
        }
        if let Some(p) = progress {
            if sum.records % 4096 == 0 {
                p(sum.records);
            }
        }
        Ok(())
    })?;
    out.flush().map_err(io)?;
    if let Some(p) = progress {
        p(sum.records);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
