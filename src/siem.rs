//! SIEM formats: one returned event (the query response's shape) rendered as an OCSF 1.8.0
//! event, a CEF line, an RFC 5424 syslog line, a Splunk HEC event envelope or an
//! Elasticsearch bulk `create` pair. Used by `export` and by the sinks. The mapping is
//! documented in `docs/SINKS.md`.

use serde_json::{json, Map, Value};

use crate::event::Severity;
use crate::query::AuditLogEntry;

/// The OCSF schema version the `ocsf` format follows.
pub const OCSF_VERSION: &str = "1.8.0";
/// Product and vendor name written into OCSF metadata, CEF headers and syslog APP-NAME.
pub const PRODUCT: &str = "auditlog";
/// The structured-data id of syslog lines (`auditlog@32473`: 32473 is the IANA example
/// enterprise number of RFC 5612, as no number is registered for this project).
pub const SYSLOG_SD_ID: &str = "auditlog@32473";
/// Syslog facility of every line: 13, "log audit" (RFC 5424 table 1).
pub const SYSLOG_FACILITY: u8 = 13;

/// What a rendering needs besides the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatContext {
    /// Hex id of the log (Elasticsearch `_id` is `<log_id>-<seq>`).
    pub log_id: String,
    /// Host name written into syslog, HEC and CEF (`dvchost`).
    pub host: String,
    /// Splunk HEC `index`; omitted (the token's default index) when `None`.
    pub hec_index: Option<String>,
    /// Splunk HEC `source`.
    pub hec_source: String,
    /// Splunk HEC `sourcetype`.
    pub hec_sourcetype: String,
    /// Elasticsearch index (or data stream) of bulk `create` actions.
    pub elastic_index: String,
}

impl FormatContext {
    /// Defaults: this machine's host name, HEC source `auditlog`, sourcetype
    /// `auditlog:event`, no HEC index, Elasticsearch index `auditlog`.
    pub fn new(log_id: impl Into<String>) -> FormatContext {
        FormatContext {
            log_id: log_id.into(),
            host: hostname(),
            hec_index: None,
            hec_source: PRODUCT.into(),
            hec_sourcetype: "auditlog:event".into(),
            elastic_index: PRODUCT.into(),
        }
    }
}

/// This machine's host name (from `/proc/sys/kernel/hostname` or `/etc/hostname`), or
/// `localhost`.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "localhost".into())
}

fn ts_ms(e: &AuditLogEntry) -> i64 {
    e.event.timestamp.map_or(0, |t| t.timestamp_millis())
}

fn ts_rfc3339_micros(e: &AuditLogEntry) -> String {
    e.event.timestamp.map_or_else(
        || "-".into(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

fn failed(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "failed" | "failure" | "fail" | "denied" | "error" | "rejected" | "blocked"
    )
}

fn has(action: &str, words: &[&str]) -> bool {
    words.iter().any(|w| action.contains(w))
}

/// The OCSF class of an event: `(class_uid, class_name, category_uid, category_name,
/// activity_id, activity_name)`.
pub fn ocsf_class(
    event_type: &str,
    action: &str,
) -> (u32, &'static str, u32, &'static str, u32, &'static str) {
    let t = event_type.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    match t.as_str() {
        "authentication" => {
            let (id, name) = if has(&a, &["logout", "logoff", "log_off", "sign_out", "signout"]) {
                (2, "Logoff")
            } else if has(
                &a,
                &[
                    "login",
                    "logon",
                    "log_in",
                    "sign_in",
                    "signin",
                    "authenticate",
                ],
            ) {
                (1, "Logon")
            } else {
                (99, "Other")
            };
            (
                3002,
                "Authentication",
                3,
                "Identity & Access Management",
                id,
                name,
            )
        }
        "account_change" | "user_management" | "account_management" => {
            let (id, name) = if has(&a, &["password_reset", "reset_password"]) {
                (4, "Password Reset")
            } else if has(&a, &["password"]) {
                (3, "Password Change")
            } else if has(&a, &["create", "add", "register", "invite"]) {
                (1, "Create")
            } else if has(&a, &["unlock"]) {
                (12, "Unlock")
            } else if has(&a, &["lock"]) {
                (9, "Lock")
            } else if has(&a, &["enable", "activate"]) {
                (2, "Enable")
            } else if has(&a, &["disable", "deactivate", "suspend"]) {
                (5, "Disable")
            } else if has(&a, &["delete", "remove"]) {
                (6, "Delete")
            } else {
                (99, "Other")
            };
            (
                3001,
                "Account Change",
                3,
                "Identity & Access Management",
                id,
                name,
            )
        }
        "security_event" | "security" | "detection" | "alert" => {
            (2004, "Detection Finding", 2, "Findings", 1, "Create")
        }
        _ => {
            // configuration_change, data_access, authorization and anything else.
            let (id, name) = if has(&a, &["delete", "remove", "purge"]) {
                (4, "Delete")
            } else if has(&a, &["create", "add", "insert"]) {
                (1, "Create")
            } else if has(&a, &["update", "change", "modify", "set", "edit"])
                || t == "configuration_change"
            {
                (3, "Update")
            } else if has(
                &a,
                &["read", "view", "get", "list", "export", "download", "query"],
            ) || t == "data_access"
            {
                (2, "Read")
            } else {
                (99, "Other")
            };
            (6003, "API Activity", 6, "Application Activity", id, name)
        }
    }
}

/// OCSF `severity_id`: info 1 (Informational) … critical 5 (Critical).
pub fn ocsf_severity(s: Severity) -> (u8, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// One event as an OCSF 1.8.0 object.
pub fn ocsf(e: &AuditLogEntry, ctx: &FormatContext) -> Value {
    let ev = &e.event;
    let (class_uid, class_name, category_uid, category_name, activity_id, activity_name) =
        ocsf_class(&ev.event_type, &ev.action);
    let (severity_id, severity) = ocsf_severity(ev.severity);
    let (status_id, status) = if ev.status.eq_ignore_ascii_case("success") {
        (1, "Success".to_string())
    } else if failed(&ev.status) {
        (2, "Failure".to_string())
    } else {
        (99, ev.status.clone())
    };
    let mut user = Map::new();
    if let Some(u) = &ev.actor.user_id {
        user.insert("uid".into(), json!(u));
        user.insert("name".into(), json!(u));
    }
    if let Some(m) = &ev.actor.email {
        user.insert("email_addr".into(), json!(m));
    }
    let mut o = Map::new();
    o.insert("class_uid".into(), json!(class_uid));
    o.insert("class_name".into(), json!(class_name));
    o.insert("category_uid".into(), json!(category_uid));
    o.insert("category_name".into(), json!(category_name));
    o.insert("activity_id".into(), json!(activity_id));
    o.insert("activity_name".into(), json!(activity_name));
    o.insert(
        "type_uid".into(),
        json!(class_uid as u64 * 100 + activity_id as u64),
    );
    o.insert(
        "type_name".into(),
        json!(format!("{class_name}: {activity_name}")),
    );
    o.insert("time".into(), json!(ts_ms(e)));
    o.insert("severity_id".into(), json!(severity_id));
    o.insert("severity".into(), json!(severity));
    o.insert("status_id".into(), json!(status_id));
    o.insert("status".into(), json!(status));
    if status_id != 1 {
        o.insert("status_detail".into(), json!(ev.status));
    }
    o.insert(
        "message".into(),
        json!(format!("{} {} {}", ev.event_type, ev.action, ev.status)),
    );
    o.insert(
        "metadata".into(),
        json!({
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": env!("CARGO_PKG_VERSION")},
            "uid": ev.event_id,
            "log_name": ctx.log_id,
            "sequence": e.seq,
            "event_code": ev.action,
        }),
    );
    o.insert(
        "actor".into(),
        json!({ "user": Value::Object(user.clone()) }),
    );
    if let Some(ip) = ev.actor.ip_address {
        o.insert("src_endpoint".into(), json!({ "ip": ip.to_string() }));
    }
    match class_uid {
        3001 | 3002 => {
            // The class's `user`: the account acted on (a user resource), else the actor.
            let target = match &ev.resource {
                Some(r) if r.kind.eq_ignore_ascii_case("user") => {
                    json!({"uid": r.id, "name": r.id})
                }
                _ => Value::Object(user),
            };
            o.insert("user".into(), target);
        }
        2004 => {
            o.insert(
                "finding_info".into(),
                json!({"uid": ev.event_id, "title": ev.action, "types": [ev.event_type]}),
            );
        }
        _ => {
            let mut api = json!({"operation": ev.action});
            if let Some(r) = &ev.resource {
                api["service"] = json!({"name": r.kind});
            }
            o.insert("api".into(), api);
        }
    }
    if let Some(r) = &ev.resource {
        o.insert("resources".into(), json!([{"type": r.kind, "uid": r.id}]));
    }
    o.insert(
        "unmapped".into(),
        serde_json::to_value(e).unwrap_or(Value::Null),
    );
    Value::Object(o)
}

/// Escapes a CEF header field: `\` and `|`; line breaks (not allowed there) become spaces.
pub fn cef_header_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '|' => o.push_str("\\|"),
            '\r' | '\n' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Escapes a CEF extension value: `\`, `=`, and line breaks as `\n` / `\r`.
pub fn cef_ext_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// CEF severity 0–10: info 1, low 3, medium 5, high 8, critical 10.
pub fn cef_severity(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// One event as a CEF line (no line break).
pub fn cef(e: &AuditLogEntry, ctx: &FormatContext) -> String {
    let ev = &e.event;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", ts_ms(e).to_string()),
        ("cat", ev.event_type.clone()),
        ("act", ev.action.clone()),
        ("outcome", ev.status.clone()),
        ("externalId", ev.event_id.clone().unwrap_or_default()),
        ("dvchost", ctx.host.clone()),
        ("cn1Label", "seq".into()),
        ("cn1", e.seq.to_string()),
        ("cs1Label", "verification".into()),
        ("cs1", e.verification.hash.clone()),
    ];
    if let Some(u) = &ev.actor.user_id {
        ext.push(("suid", u.clone()));
        ext.push(("suser", u.clone()));
    }
    if let Some(m) = &ev.actor.email {
        ext.push(("cs2Label", "email".into()));
        ext.push(("cs2", m.clone()));
    }
    if let Some(ip) = ev.actor.ip_address {
        ext.push((if ip.is_ipv4() { "src" } else { "c6a2" }, ip.to_string()));
    }
    if let Some(r) = &ev.resource {
        ext.push(("cs3Label", "resource_type".into()));
        ext.push(("cs3", r.kind.clone()));
        if let Some(id) = &r.id {
            ext.push(("cs4Label", "resource_id".into()));
            ext.push(("cs4", id.clone()));
        }
    }
    if !ev.details.is_null() {
        ext.push(("cs5Label", "details".into()));
        ext.push(("cs5", ev.details.text().to_string()));
    }
    let ext = ext
        .iter()
        .map(|(k, v)| format!("{k}={}", cef_ext_escape(v)))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        cef_header_escape(PRODUCT),
        cef_header_escape(PRODUCT),
        cef_header_escape(env!("CARGO_PKG_VERSION")),
        cef_header_escape(&format!("{}:{}", ev.event_type, ev.action)),
        cef_header_escape(&format!("{} {} {}", ev.event_type, ev.action, ev.status)),
        cef_severity(ev.severity),
        ext
    )
}

/// Syslog severity (RFC 5424): critical 2, high 3 (error), medium 4 (warning), low 5
/// (notice), info 6 (informational).
pub fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// Escapes an SD-PARAM value: `"`, `\` and `]`.
pub fn sd_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// A header field of a syslog line: printable US-ASCII without spaces, at most `max`
/// characters; `-` (the nil value) when nothing is left.
fn syslog_token(s: &str, max: usize) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if t.is_empty() {
        "-".into()
    } else {
        t
    }
}

/// One event as an RFC 5424 line (no line break): PRI from facility 13 and the severity,
/// MSGID the event type, structured data `[auditlog@32473 …]`, MSG the event as JSON after
/// a UTF-8 BOM.
pub fn syslog(e: &AuditLogEntry, ctx: &FormatContext) -> String {
    let ev = &e.event;
    let pri = SYSLOG_FACILITY as u32 * 8 + syslog_severity(ev.severity) as u32;
    let mut sd: Vec<(&str, String)> = vec![
        ("seq", e.seq.to_string()),
        ("event_id", ev.event_id.clone().unwrap_or_default()),
        ("event_type", ev.event_type.clone()),
        ("action", ev.action.clone()),
        ("status", ev.status.clone()),
        ("severity", ev.severity.as_str().into()),
    ];
    if let Some(u) = &ev.actor.user_id {
        sd.push(("user_id", u.clone()));
    }
    if let Some(ip) = ev.actor.ip_address {
        sd.push(("ip_address", ip.to_string()));
    }
    if let Some(r) = &ev.resource {
        sd.push(("resource_type", r.kind.clone()));
        if let Some(id) = &r.id {
            sd.push(("resource_id", id.clone()));
        }
    }
    sd.push(("hash", e.verification.hash.clone()));
    let sd = sd
        .iter()
        .map(|(k, v)| format!(" {k}=\"{}\"", sd_escape(v)))
        .collect::<String>();
    let msg = serde_json::to_string(e).unwrap_or_default();
    format!(
        "<{pri}>1 {} {} {} - {} [{SYSLOG_SD_ID}{sd}] \u{feff}{msg}",
        ts_rfc3339_micros(e),
        syslog_token(&ctx.host, 255),
        PRODUCT,
        syslog_token(&ev.event_type, 32),
    )
}

/// One event as a Splunk HEC event envelope (`/services/collector/event`).
pub fn hec(e: &AuditLogEntry, ctx: &FormatContext) -> Value {
    let ev = &e.event;
    let mut o = Map::new();
    let ms = ts_ms(e);
    // Seconds with millisecond precision, as HEC expects.
    o.insert(
        "time".into(),
        json!(
            format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
                .parse::<f64>()
                .unwrap_or(0.0)
        ),
    );
    o.insert("host".into(), json!(ctx.host));
    o.insert("source".into(), json!(ctx.hec_source));
    o.insert("sourcetype".into(), json!(ctx.hec_sourcetype));
    if let Some(i) = &ctx.hec_index {
        o.insert("index".into(), json!(i));
    }
    o.insert(
        "event".into(),
        serde_json::to_value(e).unwrap_or(Value::Null),
    );
    o.insert(
        "fields".into(),
        json!({
            "event_type": ev.event_type,
            "action": ev.action,
            "status": ev.status,
            "severity": ev.severity.as_str(),
            "seq": e.seq.to_string(),
            "log_id": ctx.log_id,
        }),
    );
    Value::Object(o)
}

/// The Elasticsearch `_id` of an event: `<log_id>-<seq>`, so that a resend is a 409.
pub fn elastic_id(ctx: &FormatContext, seq: u64) -> String {
    format!("{}-{seq}", ctx.log_id)
}

/// One event as a bulk `create` action line and its document (each without line break);
/// the document is the event with `@timestamp`.
pub fn elastic(e: &AuditLogEntry, ctx: &FormatContext) -> (Value, Value) {
    let action = json!({"create": {"_index": ctx.elastic_index, "_id": elastic_id(ctx, e.seq)}});
    let mut doc = serde_json::to_value(e).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut doc {
        m.insert("@timestamp".into(), json!(ts_rfc3339_micros(e)));
    }
    (action, doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Verification;

    fn entry(line: &str) -> AuditLogEntry {
        AuditLogEntry {
            event: serde_json::from_str(line).unwrap(),
            seq: 42,
            redacted: None,
            verification: Verification {
                hash: "hmac-sha256:00ff".into(),
                verified: true,
            },
        }
    }

    fn ctx() -> FormatContext {
        FormatContext {
            log_id: "abcd".into(),
            host: "host one".into(),
            hec_index: Some("audit".into()),
            hec_source: "auditlog".into(),
            hec_sourcetype: "auditlog:event".into(),
            elastic_index: "logs-audit".into(),
        }
    }

    const LOGIN: &str = r#"{"event_id":"evt_001","timestamp":"2024-01-15T10:30:00.123Z","event_type":"authentication","action":"user_login","status":"failed","severity":"medium","actor":{"user_id":"user-alice-001","email":"alice@company.com","ip_address":"203.0.113.42"},"details":{"note":"a=b|c\\d\nnext"}}"#;

    #[test]
    fn ocsf_authentication() {
        let o = ocsf(&entry(LOGIN), &ctx());
        assert_eq!(o["class_uid"], 3002);
        assert_eq!(o["category_uid"], 3);
        assert_eq!(o["activity_id"], 1);
        assert_eq!(o["type_uid"], 300201);
        assert_eq!(o["severity_id"], 3);
        assert_eq!(o["status_id"], 2);
        assert_eq!(o["time"], 1705314600123i64);
        assert_eq!(o["actor"]["user"]["uid"], "user-alice-001");
        assert_eq!(o["user"]["email_addr"], "alice@company.com");
        assert_eq!(o["src_endpoint"]["ip"], "203.0.113.42");
        assert_eq!(o["metadata"]["version"], "1.8.0");
        assert_eq!(o["metadata"]["product"]["name"], "auditlog");
        assert_eq!(o["metadata"]["product"]["vendor_name"], "auditlog");
        assert_eq!(o["unmapped"]["seq"], 42);
        assert_eq!(o["unmapped"]["event_id"], "evt_001");
    }

    #[test]
    fn ocsf_classes() {
        let c = |t: &str, a: &str| {
            let (class, _, cat, _, act, _) = ocsf_class(t, a);
            (class, cat, act)
        };
        assert_eq!(c("authentication", "user_logout"), (3002, 3, 2));
        assert_eq!(c("authentication", "mfa_challenge"), (3002, 3, 99));
        assert_eq!(c("user_management", "create_user"), (3001, 3, 1));
        assert_eq!(c("account_change", "password_reset"), (3001, 3, 4));
        assert_eq!(c("account_change", "unlock_account"), (3001, 3, 12));
        assert_eq!(c("configuration_change", "settings_changed"), (6003, 6, 3));
        assert_eq!(c("configuration_change", "rule_deleted"), (6003, 6, 4));
        assert_eq!(c("data_access", "file_download"), (6003, 6, 2));
        assert_eq!(c("data_access", "frobnicate"), (6003, 6, 2));
        assert_eq!(c("security_event", "brute_force_detected"), (2004, 2, 1));
        assert_eq!(c("something_else", "frobnicate"), (6003, 6, 99));
        let sec = entry(
            r#"{"event_type":"security_event","action":"x","severity":"critical","status":"detected"}"#,
        );
        let o = ocsf(&sec, &ctx());
        assert_eq!(o["type_uid"], 200401);
        assert_eq!(o["severity_id"], 5);
        assert_eq!(o["status_id"], 99);
        assert_eq!(o["status"], "detected");
        assert_eq!(o["finding_info"]["title"], "x");
        let cfg = entry(
            r#"{"event_type":"configuration_change","action":"update","resource":{"type":"policy","id":"p1"}}"#,
        );
        let o = ocsf(&cfg, &ctx());
        assert_eq!(o["api"]["operation"], "update");
        assert_eq!(o["resources"][0]["uid"], "p1");
        assert_eq!(o["severity_id"], 1);
        assert_eq!(o["status_id"], 1);
        assert!(o.get("src_endpoint").is_none());
    }

    #[test]
    fn cef_escaping() {
        assert_eq!(cef_header_escape(r"a|b\c"), r"a\|b\\c");
        assert_eq!(cef_header_escape("a\nb"), "a b");
        assert_eq!(cef_ext_escape(r"a=b\c|d"), r"a\=b\\c|d");
        assert_eq!(cef_ext_escape("one\ntwo\r"), r"one\ntwo\r");
        let e = entry(
            r#"{"event_type":"data|access","action":"read\\it","severity":"high","actor":{"user_id":"u=1"},"details":{"k":"v=1\nx"}}"#,
        );
        let line = cef(&e, &ctx());
        assert!(
            line.starts_with(r"CEF:0|auditlog|auditlog|0.1.0|data\|access:read\\it|data\|access read\\it success|8|"),
            "{line}"
        );
        assert!(line.contains(r"suid=u\=1 "), "{line}");
        assert!(line.contains(r#"cs5={"k":"v\=1\\nx"}"#), "{line}");
        assert!(line.contains("dvchost=host one "), "{line}");
        assert!(!line.contains('\n'));
        let l = cef(&entry(LOGIN), &ctx());
        assert!(l.contains("rt=1705314600123 "), "{l}");
        assert!(l.contains("src=203.0.113.42"), "{l}");
        assert!(l.contains("|5|"), "{l}");
    }

    #[test]
    fn syslog_line() {
        let l = syslog(&entry(LOGIN), &ctx());
        // facility 13 * 8 + warning 4
        assert!(
            l.starts_with("<108>1 2024-01-15T10:30:00.123000Z hostone auditlog - authentication [auditlog@32473 seq=\"42\""),
            "{l}"
        );
        assert!(l.contains(" \u{feff}{"), "{l}");
        assert!(!l.contains('\n'));
        let e = entry(r#"{"event_type":"a b","action":"x\"]\\y","severity":"critical"}"#);
        let l = syslog(&e, &ctx());
        assert!(l.starts_with("<106>1 "), "{l}");
        assert!(l.contains(r#"action="x\"\]\\y""#), "{l}");
        assert!(l.contains(" ab ["), "MSGID without spaces: {l}");
        assert_eq!(sd_escape(r#"a"b]c\"#), r#"a\"b\]c\\"#);
    }

    #[test]
    fn hec_envelope() {
        let h = hec(&entry(LOGIN), &ctx());
        assert_eq!(h["time"], 1705314600.123);
        assert_eq!(h["host"], "host one");
        assert_eq!(h["index"], "audit");
        assert_eq!(h["sourcetype"], "auditlog:event");
        assert_eq!(h["event"]["action"], "user_login");
        assert_eq!(h["fields"]["seq"], "42");
        assert_eq!(h["fields"]["severity"], "medium");
        let mut c = ctx();
        c.hec_index = None;
        assert!(hec(&entry(LOGIN), &c).get("index").is_none());
    }

    #[test]
    fn elastic_pair() {
        let (a, d) = elastic(&entry(LOGIN), &ctx());
        assert_eq!(
            a,
            json!({"create": {"_index": "logs-audit", "_id": "abcd-42"}})
        );
        assert_eq!(d["@timestamp"], "2024-01-15T10:30:00.123000Z");
        assert_eq!(d["seq"], 42);
    }
}
