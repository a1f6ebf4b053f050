//! The seed's report request, parsed field by field so that a bad value names its field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

fn bad(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidQuery {
        param: field.to_string(),
        message: message.into(),
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($var),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The request's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $s),+ }
            }

            fn parse(field: &str, v: &str) -> Result<$name> {
                match v {
                    $($s => Ok($name::$var),)+
                    _ => Err(bad(field, format!(
                        "unknown value {v:?}; expected one of {}",
                        [$($s),+].join(", ")
                    ))),
                }
            }
        }
    };
}

string_enum!(
    /// What the report is about.
    ReportType {
        AccessAudit => "access_audit",
        ChangeAudit => "change_audit",
        SecurityAudit => "security_audit",
        ComplianceAudit => "compliance_audit",
        UserActivity => "user_activity",
    }
);

string_enum!(
    /// The compliance framework whose controls the report maps its sections to.
    Framework {
        Soc2Type2 => "soc2_type2",
        Iso27001 => "iso27001",
        Gdpr => "gdpr",
        Hipaa => "hipaa",
    }
);

string_enum!(
    /// A part of the report; each covers the events of some event types.
    Section {
        AuthenticationEvents => "authentication_events",
        AuthorizationEvents => "authorization_events",
        ConfigurationChanges => "configuration_changes",
        SecurityIncidents => "security_incidents",
        DataAccess => "data_access",
    }
);

string_enum!(
    /// The output format.
    ReportFormat {
        Json => "json",
        Html => "html",
        Csv => "csv",
        Pdf => "pdf",
    }
);

impl Section {
    /// Whether an event of this `event_type` belongs to the section.
    pub fn covers(self, event_type: &str) -> bool {
        let t = event_type;
        match self {
            Section::AuthenticationEvents => t == "authentication",
            Section::AuthorizationEvents => t == "authorization",
            Section::ConfigurationChanges => {
                t == "configuration_change" || t == "configuration" || t == "config_change"
            }
            Section::SecurityIncidents => {
                t == "security_event" || t == "security_incident" || t == "security"
            }
            Section::DataAccess => t == "data_access",
        }
    }
}

impl ReportType {
    /// The sections a report of this type has when the request names none.
    pub fn default_sections(self) -> &'static [Section] {
        use Section::*;
        match self {
            ReportType::AccessAudit => &[AuthenticationEvents, AuthorizationEvents, DataAccess],
            ReportType::ChangeAudit => &[ConfigurationChanges],
            ReportType::SecurityAudit => &[SecurityIncidents, AuthenticationEvents],
            ReportType::ComplianceAudit | ReportType::UserActivity => Section::ALL,
        }
    }
}

/// A report request in the seed's shape (`POST …/reports`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRequest {
    pub report_type: ReportType,
    pub compliance_framework: Option<Framework>,
    /// Inclusive, UTC nanoseconds.
    pub start_ns: i64,
    /// Inclusive, UTC nanoseconds.
    pub end_ns: i64,
    /// In request order, without duplicates; the type's defaults when the request names none.
    pub include_sections: Vec<Section>,
    pub format: ReportFormat,
    pub include_evidence: bool,
    /// The user of a `user_activity` report (required there, refused elsewhere).
    pub user_id: Option<String>,
}

const FIELDS: &[&str] = &[
    "report_type",
    "compliance_framework",
    "date_range",
    "include_sections",
    "format",
    "include_evidence",
    "user_id",
];

fn string_field<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(bad(field, format!("must be a string, got {other}"))),
    }
}

impl ReportRequest {
    /// Parses the JSON body of a report request.
    pub fn from_json(body: &[u8]) -> Result<ReportRequest> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| bad("body", format!("not valid JSON: {e}")))?;
        Self::from_value(&v)
    }

    /// Checks and normalizes a request given as a JSON value.
    pub fn from_value(v: &Value) -> Result<ReportRequest> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("body", "a report request must be a JSON object"))?;
        if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown field; expected one of {}", FIELDS.join(", ")),
            ));
        }
        let report_type = ReportType::parse(
            "report_type",
            string_field(obj, "report_type")?.ok_or_else(|| bad("report_type", "required"))?,
        )?;
        let compliance_framework = string_field(obj, "compliance_framework")?
            .map(|s| Framework::parse("compliance_framework", s))
            .transpose()?;
        if report_type == ReportType::ComplianceAudit && compliance_framework.is_none() {
            return Err(bad(
                "compliance_framework",
                "required for a compliance_audit report",
            ));
        }
        let (start_ns, end_ns) = parse_range(obj.get("date_range"))?;
        let include_sections = match obj.get("include_sections") {
            None | Some(Value::Null) => report_type.default_sections().to_vec(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let field = format!("include_sections[{i}]");
                    let s = it
                        .as_str()
                        .ok_or_else(|| bad(&field, format!("must be a string, got {it}")))?;
                    let sec = Section::parse(&field, s)?;
                    if !out.contains(&sec) {
                        out.push(sec);
                    }
                }
                if out.is_empty() {
                    return Err(bad("include_sections", "must name at least one section"));
                }
                out
            }
            Some(other) => {
                return Err(bad(
                    "include_sections",
                    format!("must be an array of section names, got {other}"),
                ))
            }
        };
        let format = string_field(obj, "format")?
            .map(|s| ReportFormat::parse("format", s))
            .transpose()?
            .unwrap_or(ReportFormat::Json);
        let include_evidence = match obj.get("include_evidence") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(bad(
                    "include_evidence",
                    format!("must be true or false, got {other}"),
                ))
            }
        };
        let user_id = string_field(obj, "user_id")?.map(str::to_string);
        match (report_type, &user_id) {
            (ReportType::UserActivity, None) => {
                return Err(bad("user_id", "required for a user_activity report"))
            }
            (ReportType::UserActivity, Some(u)) if u.is_empty() => {
                return Err(bad("user_id", "must not be empty"))
            }
            (t, Some(_)) if t != ReportType::UserActivity => {
                return Err(bad("user_id", "only applies to a user_activity report"))
            }
            _ => {}
        }
        Ok(ReportRequest {
            report_type,
            compliance_framework,
            start_ns,
            end_ns,
            include_sections,
            format,
            include_evidence,
            user_id,
        })
    }

    /// The request as the seed writes it (normalized: dates in RFC 3339, sections listed).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("report_type".into(), self.report_type.as_str().into());
        m.insert(
            "compliance_framework".into(),
            self.compliance_framework
                .map_or(Value::Null, |f| f.as_str().into()),
        );
        m.insert(
            "date_range".into(),
            serde_json::json!({
                "start_date": crate::event::format_ts(self.start_ns),
                "end_date": crate::event::format_ts(self.end_ns),
            }),
        );
        m.insert(
            "include_sections".into(),
            self.include_sections
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect(),
        );
        m.insert("format".into(), self.format.as_str().into());
        m.insert("include_evidence".into(), self.include_evidence.into());
        m.insert(
            "user_id".into(),
            self.user_id.clone().map_or(Value::Null, Value::from),
        );
        Value::Object(m)
    }
}

fn parse_range(v: Option<&Value>) -> Result<(i64, i64)> {
    let obj = match v {
        None | Some(Value::Null) => return Err(bad("date_range", "required")),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(bad(
                "date_range",
                format!("must be an object with start_date and end_date, got {other}"),
            ))
        }
    };
    if let Some(k) = obj
        .keys()
        .find(|k| k.as_str() != "start_date" && k.as_str() != "end_date")
    {
        return Err(bad(
            &format!("date_range.{k}"),
            "unknown field; expected start_date and end_date",
        ));
    }
    let get = |name: &str, is_end: bool| -> Result<i64> {
        let field = format!("date_range.{name}");
        let s = string_field(obj, name)
            .map_err(|e| match e {
                Error::InvalidQuery { message, .. } => bad(&field, message),
                e => e,
            })?
            .ok_or_else(|| bad(&field, "required"))?;
        crate::query::parse_time(&field, s, is_end)
    };
    let start = get("start_date", false)?;
    let end = get("end_date", true)?;
    if start > end {
        return Err(bad(
            "date_range",
            "start_date is after end_date; the range must not be empty",
        ));
    }
    Ok((start, end))
}
