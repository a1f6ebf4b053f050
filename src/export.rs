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
    /// OCSF 1.8.0 events, one JSON object per line (mapping in `docs/SINKS.md`).
    Ocsf,
    /// ArcSight CEF lines (`CEF:0|auditlog|auditlog|version|type:action|name|severity|…`).
    Cef,
    /// RFC 5424 syslog lines with structured data, facility 13 (log audit).
    Syslog,
    /// Splunk HTTP Event Collector event envelopes, one per line.
    Hec,
    /// Elasticsearch bulk NDJSON: a `create` action line, then the document.
    Elastic,
}

impl ExportFormat {
    /// Every format, in the order of the help texts.
    pub const ALL: [ExportFormat; 7] = [
        ExportFormat::Jsonl,
        ExportFormat::Csv,
        ExportFormat::Ocsf,
        ExportFormat::Cef,
        ExportFormat::Syslog,
        ExportFormat::Hec,
        ExportFormat::Elastic,
    ];

    /// The name `FromStr` takes.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Ocsf => "ocsf",
            ExportFormat::Cef => "cef",
            ExportFormat::Syslog => "syslog",
            ExportFormat::Hec => "hec",
            ExportFormat::Elastic => "elastic",
        }
    }

    /// The HTTP content type of an export in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl
            | ExportFormat::Ocsf
            | ExportFormat::Hec
            | ExportFormat::Elastic => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Cef | ExportFormat::Syslog => "text/plain; charset=utf-8",
        }
    }

    /// The file name extension of an export in this format.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Ocsf => "ocsf.jsonl",
            ExportFormat::Cef => "cef",
            ExportFormat::Syslog => "syslog",
            ExportFormat::Hec => "hec.json",
            ExportFormat::Elastic => "bulk.ndjson",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json-lines" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            "ocsf" => Ok(ExportFormat::Ocsf),
            "cef" => Ok(ExportFormat::Cef),
            "syslog" | "rfc5424" => Ok(ExportFormat::Syslog),
            "hec" | "splunk" => Ok(ExportFormat::Hec),
            "elastic" | "elasticsearch" | "bulk" => Ok(ExportFormat::Elastic),
            _ => Err(Error::InvalidQuery {
                param: "format".into(),
                message: format!(
                    "{s:?}: expected one of {}",
                    ExportFormat::ALL.map(|f| f.name()).join(", ")
                ),
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
    let ctx = crate::siem::FormatContext::new(crate::chain::hex(&inner.log_id));
    let json_line = |out: &mut dyn Write, v: &serde_json::Value| -> Result<()> {
        serde_json::to_writer(&mut *out, v)
            .map_err(|x| Error::io("writing export to", "output", x.into()))?;
        out.write_all(b"\n").map_err(io)
    };
    let mut sum = ExportSummary::default();
    for_each_match(inner, q, |seg, h| {
        let e = entry(seg, h, inner, q.include_details)?;
        match format {
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *out, &e)
                    .map_err(|x| Error::io("writing export to", "output", x.into()))?;
                out.write_all(b"\n").map_err(io)?;
            }
            ExportFormat::Csv => out.write_all(csv_row(&e).as_bytes()).map_err(io)?,
            ExportFormat::Ocsf => json_line(out, &crate::siem::ocsf(&e, &ctx))?,
            ExportFormat::Hec => json_line(out, &crate::siem::hec(&e, &ctx))?,
            ExportFormat::Elastic => {
                let (action, doc) = crate::siem::elastic(&e, &ctx);
                json_line(out, &action)?;
                json_line(out, &doc)?;
            }
            ExportFormat::Cef | ExportFormat::Syslog => {
                let mut line = if format == ExportFormat::Cef {
                    crate::siem::cef(&e, &ctx)
                } else {
                    crate::siem::syslog(&e, &ctx)
                };
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(io)?;
            }
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
    fn format_names_round_trip() {
        for f in ExportFormat::ALL {
            assert_eq!(f.name().parse::<ExportFormat>().unwrap(), f);
        }
        let err = "xml".parse::<ExportFormat>().unwrap_err().to_string();
        assert!(
            err.contains("format") && err.contains("ocsf") && err.contains("elastic"),
            "{err}"
        );
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }
}
