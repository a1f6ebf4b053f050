//! Compliance reports (the seed's `POST …/reports`): one streaming pass over the events of a
//! date range, counted per section, mapped to a framework's controls, with the log's own
//! verification as evidence, sealed with a SHA-256 digest and an HMAC under the log's key.
//! See docs/REPORTS.md.

mod build;
mod controls;
#[cfg(feature = "pdf")]
mod pdf;
mod render;
mod request;
mod seal;
#[cfg(feature = "transparency")]
mod sign;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

pub use build::{MAX_DISTINCT, MAX_EVIDENCE_EVENTS, MAX_LISTED, MAX_TIMELINE, OTHER, TOP_N};
pub use controls::{controls, Control};
pub use request::{Framework, ReportFormat, ReportRequest, ReportType, Section};
pub use seal::{body_digest, canonical, document_of, verify, ReportCheck};
#[cfg(feature = "transparency")]
pub use sign::{signed_text, verify_signature, SignatureCheck};

use crate::error::Result;
use crate::Log;

/// Version of the report document's schema.
pub const REPORT_VERSION: u32 = 1;

/// A generated, sealed report: its JSON document and the format it was asked for.
#[derive(Debug, Clone)]
pub struct Report {
    doc: Value,
    format: ReportFormat,
}

impl Report {
    /// The JSON document (with its `integrity` member).
    pub fn json(&self) -> &Value {
        &self.doc
    }

    /// The format the request asked for.
    pub fn format(&self) -> ReportFormat {
        self.format
    }

    /// Hex SHA-256 of the canonical body.
    pub fn sha256(&self) -> &str {
        self.doc["integrity"]["sha256"].as_str().unwrap_or_default()
    }

    /// Whether the evidence says the log verified and every record of the range did.
    pub fn evidence_ok(&self) -> bool {
        self.doc["evidence"]["ok"].as_bool().unwrap_or(false)
    }

    /// The report in the requested format.
    pub fn render(&self) -> Result<Vec<u8>> {
        self.render_as(self.format)
    }

    /// The report in `format`.
    pub fn render_as(&self, format: ReportFormat) -> Result<Vec<u8>> {
        render::render(&self.doc, format)
    }

    /// The MIME type of `format`.
    pub fn content_type(format: ReportFormat) -> &'static str {
        match format {
            ReportFormat::Json => "application/json",
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Pdf => "application/pdf",
        }
    }
}

/// Generates a report now.
pub fn generate(log: &Log, req: &ReportRequest) -> Result<Report> {
    generate_at(log, req, Utc::now())
}

/// Generates a report stamped `generated_at` (for reproducible documents).
pub fn generate_at(log: &Log, req: &ReportRequest, generated_at: DateTime<Utc>) -> Result<Report> {
    if req.format == ReportFormat::Pdf {
        render::check_available(ReportFormat::Pdf)?;
    }
    let inner = log.inner_ref();
    let verification = log.verify()?;
    let s = build::scan(inner, req);
    let range_ok = s.unverified == 0 && s.unreadable == 0 && s.scan_error.is_none();
    let evidence_events: Value = if req.include_evidence {
        serde_json::to_value(&s.evidence).expect("entries serialize")
    } else {
        Value::Null
    };
    let runs: Vec<crate::RetentionRun> = inner
        .policy
        .lock()
        .entries
        .iter()
        .filter_map(|e| match e {
            crate::PolicyEntry::Retention(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let mut evidence = json!({
        "ok": verification.ok && range_ok,
        "chain_verification": verification,
        "range_records": {
            "events": s.events,
            "verified": s.verified,
            "unverified": s.unverified,
            "unverified_seqs": s.unverified_seqs,
            "unreadable": s.unreadable,
            "problems": s.problems,
            "complete": s.scan_error.is_none(),
            "scan_error": s.scan_error,
        },
        "retention": {
            "runs": runs.len(),
            "last_run": runs.last(),
            "holds": log.holds(),
        },
    });
    if req.include_evidence {
        evidence["events"] = evidence_events;
        evidence["events_omitted"] = s.evidence_omitted.into();
    }
    let (summary, sections, controls, user) = s.content(req);
    let seq_range = json!({"first_seq": summary["first_seq"], "last_seq": summary["last_seq"]});
    evidence["seq_range"] = seq_range;
    let mut doc = json!({
        "report_version": REPORT_VERSION,
        "title": title(req),
        "generated_at": crate::event::format_ts(crate::event::to_nanos(&generated_at)?),
        "log_id": log.log_id(),
        "request": req.to_value(),
        "summary": summary,
        "sections": sections,
        "controls": controls,
        "user": user,
        "evidence": evidence,
    });
    seal::seal(&mut doc, &inner.chain);
    Ok(Report {
        doc,
        format: req.format,
    })
}

fn title(req: &ReportRequest) -> String {
    let kind = match req.report_type {
        ReportType::AccessAudit => "Access audit",
        ReportType::ChangeAudit => "Change audit",
        ReportType::SecurityAudit => "Security audit",
        ReportType::ComplianceAudit => "Compliance audit",
        ReportType::UserActivity => "User activity",
    };
    let fw = match req.compliance_framework {
        Some(Framework::Soc2Type2) => " (SOC 2 Type II)",
        Some(Framework::Iso27001) => " (ISO/IEC 27001:2022)",
        Some(Framework::Gdpr) => " (GDPR)",
        Some(Framework::Hipaa) => " (HIPAA Security Rule)",
        None => "",
    };
    match &req.user_id {
        Some(u) => format!("{kind}{fw}: {u}"),
        None => format!("{kind}{fw}"),
    }
}
