//! Compliance reports: their counts equal an independent count over the events, a fixed log
//! gives a fixed document, bad requests name their field, a report verifies until edited,
//! and a record tampered on disk shows in the report's evidence; CLI and HTTP end to end.

mod common;
#[path = "common/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use auditlog::report::{self, ReportRequest};
use auditlog::{Error, Event, HmacKey, Log};
use chrono::{DateTime, TimeZone, Utc};
use common::{buffered_opts, events, fix_frame_crc, key, layouts, other_key};
use serde_json::{json, Value};

/// `n` generated events, their timestamps spread 37 minutes apart from 2024-01-01.
fn spread_events(seed: u64, n: usize) -> Vec<Event> {
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    events(seed, n)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.timestamp = Some(t0 + chrono::Duration::minutes(37 * i as i64));
            e
        })
        .collect()
}

fn write(dir: &Path, evs: &[Event]) {
    let log = Log::open(dir, buffered_opts()).expect("open log");
    for c in evs.chunks(100) {
        log.append_batch(c).expect("append");
    }
}

fn ts(e: &Event) -> i64 {
    e.timestamp.unwrap().timestamp_nanos_opt().unwrap()
}

fn request(v: Value) -> ReportRequest {
    ReportRequest::from_value(&v).expect("valid request")
}

fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

const SECTION_TYPES: &[(&str, &str)] = &[
    ("authentication_events", "authentication"),
    ("authorization_events", "authorization"),
    ("configuration_changes", "configuration_change"),
    ("security_incidents", "security_event"),
    ("data_access", "data_access"),
];

fn count<'a>(it: impl Iterator<Item = &'a str>) -> Value {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for k in it {
        *m.entry(k.to_string()).or_default() += 1;
    }
    json!(m)
}

#[test]
fn counts_equal_an_independent_count_over_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let evs = spread_events(11, 900);
    write(dir.path(), &evs);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let req = request(json!({
        "report_type": "compliance_audit", "compliance_framework": "iso27001",
        "date_range": {"start_date": "2024-01-03", "end_date": "2024-01-09T11:59:59Z"},
    }));
    let doc = log.report(&req).unwrap().json().clone();
    let (lo, hi) = (req.start_ns, req.end_ns);
    let inr: Vec<&Event> = evs.iter().filter(|e| (lo..=hi).contains(&ts(e))).collect();
    assert!(
        inr.len() > 100 && inr.len() < evs.len(),
        "the range is a strict part"
    );
    let s = &doc["summary"];
    assert_eq!(s["events"], inr.len());
    assert_eq!(
        s["by_event_type"],
        count(inr.iter().map(|e| e.event_type.as_str()))
    );
    assert_eq!(s["by_status"], count(inr.iter().map(|e| e.status.as_str())));
    assert_eq!(
        s["by_severity"],
        count(inr.iter().map(|e| e.severity.as_str()))
    );
    let first = evs.iter().position(|e| ts(e) >= lo).unwrap();
    assert_eq!(s["first_seq"], first);
    assert_eq!(s["last_seq"], first + inr.len() - 1);
    // Per day: events by type, failed logins and denials.
    let day = |e: &Event| e.timestamp.unwrap().format("%Y-%m-%d").to_string();
    let mut per_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut fails: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let failed = ["failed", "failure", "denied", "blocked", "error"];
    for e in &inr {
        *per_day
            .entry(day(e))
            .or_default()
            .entry(e.event_type.clone())
            .or_default() += 1;
        let fl = e.event_type == "authentication" && failed.contains(&e.status.as_str());
        let dn = e.event_type == "authorization" && failed.contains(&e.status.as_str())
            || e.action == "permission_denied";
        if fl || dn {
            let f = fails.entry(day(e)).or_default();
            f.0 += fl as u64;
            f.1 += dn as u64;
        }
    }
    assert_eq!(s["events_per_day"], json!(per_day));
    let fails_v: BTreeMap<String, Value> = fails
        .into_iter()
        .map(|(d, (a, b))| (d, json!({"failed_logins": a, "denials": b})))
        .collect();
    assert_eq!(s["failures_per_day"], json!(fails_v));
    assert!(fails_v.len() >= 6, "failures on most days");
    // Each section.
    for (name, ty) in SECTION_TYPES {
        let sec = &doc["sections"][name];
        let of: Vec<&&Event> = inr.iter().filter(|e| e.event_type == *ty).collect();
        assert!(!of.is_empty(), "{name} has events");
        assert_eq!(sec["events"], of.len(), "{name}");
        assert_eq!(
            sec["by_action"],
            count(of.iter().map(|e| e.action.as_str())),
            "{name}"
        );
        assert_eq!(
            sec["by_status"],
            count(of.iter().map(|e| e.status.as_str())),
            "{name}"
        );
        assert_eq!(
            sec["by_severity"],
            count(of.iter().map(|e| e.severity.as_str())),
            "{name}"
        );
        let actors = count(of.iter().map(|e| e.actor.user_id.as_deref().unwrap()));
        let top = sec["top_actors"]["top"].as_array().unwrap();
        assert_eq!(
            top.len(),
            report::TOP_N.min(actors.as_object().unwrap().len())
        );
        let max = actors
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .max();
        assert_eq!(
            top[0]["count"].as_u64(),
            max,
            "{name}: the top actor is the most frequent"
        );
        for t in top {
            assert_eq!(actors[t["key"].as_str().unwrap()], t["count"], "{name}");
        }
        assert_eq!(
            sec["top_actors"]["distinct"],
            actors.as_object().unwrap().len()
        );
        let ips = count(
            of.iter()
                .map(|e| e.actor.ip_address.unwrap().to_string())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        for t in sec["top_source_ips"]["top"].as_array().unwrap() {
            assert_eq!(ips[t["key"].as_str().unwrap()], t["count"], "{name}");
        }
        let ids: Vec<&str> = sec["controls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&"A.8.15"),
            "{name}: ISO logging control, got {ids:?}"
        );
    }
    // Changes and incidents are listed in time order with who and when.
    let changes = doc["sections"]["configuration_changes"]["changes"]
        .as_array()
        .unwrap();
    let want: Vec<u64> = inr
        .iter()
        .zip(first as u64..)
        .filter(|(e, _)| e.event_type == "configuration_change")
        .map(|(_, s)| s)
        .collect();
    let got: Vec<u64> = changes.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, want);
    assert!(changes
        .iter()
        .all(|c| c["user_id"].is_string() && c["timestamp"].is_string()));
    let inc = doc["sections"]["security_incidents"]["incidents"]
        .as_array()
        .unwrap();
    let times: Vec<&str> = inc
        .iter()
        .map(|c| c["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // Controls of the framework, with the events of their sections.
    let ctl = doc["controls"]["controls"].as_array().unwrap();
    let a816 = ctl
        .iter()
        .find(|c| c["id"] == "A.8.16")
        .expect("A.8.16 listed");
    assert_eq!(
        a816["events"],
        doc["sections"]["security_incidents"]["events"]
    );
    // Evidence: the chain verified, every record of the range too.
    let ev = &doc["evidence"];
    assert_eq!(ev["ok"], true);
    assert_eq!(ev["chain_verification"]["ok"], true);
    assert_eq!(ev["chain_verification"]["records"], evs.len());
    assert_eq!(ev["range_records"]["verified"], inr.len());
    assert_eq!(ev["seq_range"]["first_seq"], first);
}

#[test]
fn user_activity_is_one_users_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let evs = spread_events(5, 3000);
    write(dir.path(), &evs);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let user = evs[10].actor.user_id.clone().unwrap();
    let req = request(json!({
        "report_type": "user_activity", "user_id": user,
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-12-31"},
    }));
    let doc = log.report(&req).unwrap().json().clone();
    let want: Vec<u64> = evs
        .iter()
        .zip(0u64..)
        .filter(|(e, _)| e.actor.user_id.as_deref() == Some(user.as_str()))
        .map(|(_, s)| s)
        .collect();
    assert!(want.len() >= 2);
    let got: Vec<u64> = doc["user"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(doc["user"]["events"], want.len());
    assert_eq!(doc["summary"]["events"], want.len());
}

/// The document without what depends on the log's random id (its chain values, the seal).
fn stable(mut doc: Value) -> Value {
    let m = doc.as_object_mut().unwrap();
    m.remove("log_id");
    m.remove("integrity");
    // Checkpoints and index files are written by the background worker: their number
    // depends on its timing, not on the events.
    let cv = doc["evidence"]["chain_verification"]
        .as_object_mut()
        .unwrap();
    for k in ["last_hash", "checkpoints_checked", "indexes_checked"] {
        cv.remove(k);
    }
    doc
}

#[test]
fn a_fixed_log_gives_the_golden_document() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(42, 300));
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let req = request(json!({
        "report_type": "compliance_audit", "compliance_framework": "soc2_type2",
        "date_range": {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-05T23:59:59Z"},
        "include_sections": ["authentication_events", "authorization_events",
                             "configuration_changes", "security_incidents"],
        "format": "json", "include_evidence": false,
    }));
    let doc = stable(
        report::generate_at(&log, &req, fixed_time())
            .unwrap()
            .json()
            .clone(),
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/report_soc2.json");
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(
        serde_json::from_str::<Value>(&golden).unwrap(),
        doc,
        "the report differs from tests/golden/report_soc2.json"
    );
}

#[test]
fn bad_requests_name_their_field() {
    let ok = json!({"report_type": "access_audit",
                    "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"}});
    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!([1]), "body"),
        (with("report_type", json!("access")), "report_type"),
        (with("report_type", json!(3)), "report_type"),
        (json!({"date_range": ok["date_range"]}), "report_type"),
        (
            with("report_type", json!("compliance_audit")),
            "compliance_framework",
        ),
        (
            with("compliance_framework", json!("pci")),
            "compliance_framework",
        ),
        (with("date_range", json!(null)), "date_range"),
        (with("date_range", json!("2024")), "date_range"),
        (
            with(
                "date_range",
                json!({"start_date": "2024-13-01", "end_date": "2024-01-31"}),
            ),
            "date_range.start_date",
        ),
        (
            with("date_range", json!({"start_date": "2024-01-01"})),
            "date_range.end_date",
        ),
        (
            with(
                "date_range",
                json!({"start_date": "2024-02-01", "end_date": "2024-01-31"}),
            ),
            "date_range",
        ),
        (
            with(
                "date_range",
                json!({"start_date": "2024-01-01", "end_date": "2024-01-31", "tz": 1}),
            ),
            "date_range.tz",
        ),
        (
            with(
                "include_sections",
                json!(["authentication_events", "logins"]),
            ),
            "include_sections[1]",
        ),
        (with("include_sections", json!([])), "include_sections"),
        (
            with("include_sections", json!("data_access")),
            "include_sections",
        ),
        (with("format", json!("xml")), "format"),
        (with("include_evidence", json!("yes")), "include_evidence"),
        (with("user_id", json!("u1")), "user_id"),
        (with("report_type", json!("user_activity")), "user_id"),
        (with("colour", json!("red")), "colour"),
    ];
    for (body, field) in cases {
        match ReportRequest::from_value(&body) {
            Err(Error::InvalidQuery { param, message }) => {
                assert_eq!(param, field, "{body}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("{body}: expected an error naming {field}, got {other:?}"),
        }
    }
    match ReportRequest::from_json(b"{not json") {
        Err(Error::InvalidQuery { param, .. }) => assert_eq!(param, "body"),
        other => panic!("{other:?}"),
    }
    // pdf is part of the request's vocabulary: rendered with the `pdf` feature (the default),
    // refused naming `format` without it.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(1, 10));
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let pdf = request(with("format", json!("pdf")));
    #[cfg(not(feature = "pdf"))]
    match log.report(&pdf) {
        Err(Error::InvalidQuery { param, .. }) => assert_eq!(param, "format"),
        other => panic!("pdf: {other:?}"),
    }
    #[cfg(feature = "pdf")]
    {
        let r = log.report(&pdf).expect("a pdf report");
        let bytes = r.render().unwrap();
        assert!(bytes.starts_with(b"%PDF-1.7") && bytes.ends_with(b"%%EOF\n"));
        // A PDF embeds the document (auditlog-report.json): it verifies, until edited.
        let check = report::verify(&bytes, &key()).expect("the PDF's embedded document");
        assert!(check.ok, "{check:?}");
        assert_eq!(check.sha256, r.sha256());
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let at = text.find("\"events\":10").expect("the embedded summary") + 10;
        let mut edited = bytes.clone();
        edited[at] = b'9';
        let check = report::verify(&edited, &key()).unwrap();
        assert!(
            !check.sha256_ok && !check.ok,
            "an edited embedded document fails"
        );
        match report::verify(b"%PDF-1.7\n%%EOF\n", &key()) {
            Err(Error::InvalidQuery { param, message }) => {
                assert_eq!(param, "report");
                assert!(message.contains("embedded"), "{message}");
            }
            other => panic!("verify of a PDF without a document: {other:?}"),
        }
    }
}

#[test]
fn verify_report_accepts_an_untouched_report_and_rejects_an_edited_one() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(3, 400));
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    for format in ["json", "html"] {
        let req = request(json!({
            "report_type": "security_audit", "format": format, "include_evidence": true,
            "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
        }));
        let r = log.report(&req).unwrap();
        assert_eq!(
            r.json()["evidence"]["events"].as_array().unwrap().len(),
            400
        );
        let bytes = r.render().unwrap();
        let check = report::verify(&bytes, &key()).unwrap();
        assert!(
            check.ok && check.sha256_ok && check.hmac_ok,
            "{format}: {check:?}"
        );
        assert_eq!(check.sha256, r.sha256());
        assert_eq!(check.evidence_ok, Some(true));
        // Another key: the digest matches, the MAC does not.
        let other = report::verify(&bytes, &other_key()).unwrap();
        assert!(other.sha256_ok && !other.hmac_ok && !other.ok, "{format}");
        // One count edited.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let n = r.json()["summary"]["events"].as_u64().unwrap();
        let edited = text
            .replacen(
                &format!("\"events\":{n}"),
                &format!("\"events\":{}", n - 1),
                1,
            )
            .replacen(
                &format!("\"events\": {n}"),
                &format!("\"events\": {}", n - 1),
                1,
            );
        assert_ne!(edited, text, "{format}: the edit applies");
        let c = report::verify(edited.as_bytes(), &key()).unwrap();
        assert!(!c.ok && !c.sha256_ok, "{format}: an edited count is caught");
    }
    // An edit whose digest is recomputed still fails the MAC.
    let req = request(json!({"report_type": "change_audit",
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"}}));
    let mut doc = log.report(&req).unwrap().json().clone();
    doc["sections"]["configuration_changes"]["events"] = json!(0);
    doc["integrity"]["sha256"] = json!(auditlog::hex(&report::body_digest(&doc)));
    let c = report::verify(doc.to_string().as_bytes(), &key()).unwrap();
    assert!(c.sha256_ok && !c.hmac_ok && !c.ok);
    // Not a report at all.
    assert!(matches!(
        report::verify(b"section,metric,key,value\r\n", &key()),
        Err(Error::InvalidQuery { .. })
    ));
}

#[test]
fn a_record_tampered_on_disk_shows_in_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(8, 600));
    let segs = layouts(dir.path());
    let seg = &segs[0];
    let frame = seg.frames[seg.frames.len() / 2];
    let mut bytes = std::fs::read(&seg.path).unwrap();
    // The stored MAC of one record, its CRC fixed: only the keyed chain notices.
    bytes[frame.offset + frame.len - 36] ^= 0x04;
    fix_frame_crc(&mut bytes, frame);
    std::fs::write(&seg.path, bytes).unwrap();
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let req = request(json!({
        "report_type": "compliance_audit", "compliance_framework": "hipaa",
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
    }));
    let r = log.report(&req).unwrap();
    let ev = &r.json()["evidence"];
    assert_eq!(ev["ok"], false);
    assert!(!r.evidence_ok());
    assert_eq!(ev["chain_verification"]["ok"], false);
    assert_eq!(
        ev["chain_verification"]["failure"]["kind"],
        "tampered_record"
    );
    assert_eq!(ev["chain_verification"]["failure"]["seq"], frame.seq);
    assert!(ev["range_records"]["unverified"].as_u64().unwrap() >= 1);
    assert!(ev["range_records"]["unverified_seqs"]
        .as_array()
        .unwrap()
        .contains(&json!(frame.seq)));
    let html = String::from_utf8(r.render_as(report::ReportFormat::Html).unwrap()).unwrap();
    assert!(html.contains("VERIFICATION FAILED"));
    // The report itself is authentic: it truthfully says the log failed.
    assert!(report::verify(&r.render().unwrap(), &key()).unwrap().ok);
}

#[test]
fn csv_and_html_carry_the_json_numbers() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(21, 500));
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let req = request(
        json!({"report_type": "access_audit", "compliance_framework": "gdpr",
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"}}),
    );
    let r = log.report(&req).unwrap();
    let doc = r.json();
    let csv = String::from_utf8(r.render_as(report::ReportFormat::Csv).unwrap()).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["section", "metric", "key", "value"]);
    let find = |s: &str, m: &str, k: &str| {
        rows.iter()
            .find(|r| r[0] == s && r[1] == m && r[2] == k)
            .unwrap_or_else(|| panic!("row {s},{m},{k}"))[3]
            .to_string()
    };
    assert_eq!(
        find("summary", "events", ""),
        doc["summary"]["events"].to_string()
    );
    for (t, n) in doc["summary"]["by_event_type"].as_object().unwrap() {
        assert_eq!(find("summary", "by_event_type", t), n.to_string());
    }
    for (a, n) in doc["sections"]["authentication_events"]["by_action"]
        .as_object()
        .unwrap()
    {
        assert_eq!(find("authentication_events", "by_action", a), n.to_string());
    }
    assert_eq!(find("integrity", "sha256", ""), r.sha256());
    assert_eq!(find("evidence", "ok", ""), "true");
    let html = String::from_utf8(r.render_as(report::ReportFormat::Html).unwrap()).unwrap();
    for id in ["chart-events-per-day", "chart-failures", "chart-severity"] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "{id}");
    }
    assert!(
        !html.contains("src=") && !html.contains("href=") && !html.contains("url("),
        "no external resources"
    );
    assert!(html.contains(&format!(
        "<td class=\"n\" id=\"summary-events\">{}</td>",
        doc["summary"]["events"]
    )));
    for (t, n) in doc["summary"]["by_event_type"].as_object().unwrap() {
        assert!(
            html.contains(&format!("<td class=\"n\" data-key=\"{t}\">{n}</td>")),
            "{t}"
        );
    }
    assert!(html.contains("Art. 32(1)(b)"));
}

// ------------------------------------------------------------------------ CLI

const CLI_KEY: &str = "cli-report-test-key-0123456789-abcdefgh";

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .env("AUDIT_HMAC_KEY", CLI_KEY)
        .env_remove("AUDITLOG_DATA")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run auditlog")
}

#[test]
fn cli_report_and_verify_report() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let log = Log::open(
            &data,
            auditlog::Options::new(HmacKey::from_bytes(CLI_KEY.as_bytes()).unwrap()),
        )
        .unwrap();
        log.append_batch(&spread_events(9, 300)).unwrap();
    }
    let out = dir.path().join("r.json");
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "compliance_audit",
            "--framework",
            "soc2_type2",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
            "--section",
            "authentication_events",
            "--section",
            "security_incidents",
            "--evidence",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["summary"]["events"], 300);
    assert_eq!(doc["sections"].as_object().unwrap().len(), 2);
    assert_eq!(doc["evidence"]["ok"], true);
    // The generation was recorded as a data_access event carrying the digest.
    let log = Log::open_read_only(&data, HmacKey::from_bytes(CLI_KEY.as_bytes()).unwrap()).unwrap();
    let last = log.get(log.next_seq() - 1).unwrap().unwrap();
    assert_eq!(last.event.event_type, "data_access");
    assert_eq!(last.event.action, "report_generated");
    assert!(serde_json::to_string(&last.event.details)
        .unwrap()
        .contains(doc["integrity"]["sha256"].as_str().unwrap()));
    drop(log);
    let v = cli(&data, &["verify-report", out.to_str().unwrap()]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let text =
        std::fs::read_to_string(&out)
            .unwrap()
            .replacen("\"events\": 300", "\"events\": 299", 1);
    std::fs::write(&out, text).unwrap();
    let v = cli(&data, &["verify-report", out.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stderr).contains("SHA-256 mismatch"));
    // HTML and CSV to stdout.
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "access_audit",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
            "--format",
            "html",
        ],
    );
    assert!(o.status.success());
    let html = dir.path().join("r.html");
    std::fs::write(&html, &o.stdout).unwrap();
    assert_eq!(
        cli(&data, &["verify-report", html.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "change_audit",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
            "--format",
            "csv",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("section,metric,key,value\r\n"));
    // Bad flags name the field.
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "weekly",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`report_type`"));
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "user_activity",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("`user_id`"));
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "access_audit",
            "--start",
            "yesterday",
            "--end",
            "2024-01-31",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("`date_range.start_date`"));
}

// ------------------------------------------------------------------------ HTTP

#[test]
fn http_reports_on_both_prefixes() {
    use server::{default_config, Server, EXPORTER, INGESTER, READER};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &default_config(), &[]);
    let body: Vec<Value> = spread_events(4, 200)
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &json!(body));
    assert!(r.status < 300, "{} {}", r.status, r.text());
    let req = json!({
        "report_type": "compliance_audit", "compliance_framework": "soc2_type2",
        "date_range": {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-03-31T23:59:59Z"},
        "include_sections": ["authentication_events", "authorization_events",
                             "configuration_changes", "security_incidents"],
        "format": "json", "include_evidence": true,
    });
    let key = HmacKey::from_bytes(server::SERVER_KEY.as_bytes()).unwrap();
    for (path, token) in [
        ("/api/enterprise/audit-logs/reports", READER),
        ("/api/audit-logs/reports", EXPORTER),
    ] {
        let r = s.post_json(path, Some(token), &req);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let doc = r.json();
        assert_eq!(doc["summary"]["events"], 200);
        assert_eq!(doc["evidence"]["events"].as_array().unwrap().len(), 200);
        assert!(report::verify(&r.body, &key).unwrap().ok);
        assert_eq!(
            r.header("x-report-sha256"),
            doc["integrity"]["sha256"].as_str()
        );
    }
    let mut html = req.clone();
    html["format"] = json!("html");
    let r = s.post_json("/api/audit-logs/reports", Some(READER), &html);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(report::verify(&r.body, &key).unwrap().ok);
    let mut csv = req.clone();
    csv["format"] = json!("csv");
    let r = s.post_json("/api/audit-logs/reports", Some(READER), &csv);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    #[cfg(feature = "pdf")]
    {
        let mut pdf = req.clone();
        pdf["format"] = json!("pdf");
        let r = s.post_json("/api/audit-logs/reports", Some(READER), &pdf);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/pdf"));
        assert!(r.body.starts_with(b"%PDF-1.7"));
        let sha = r.header("x-report-sha256").unwrap().to_string();
        assert!(
            r.text().contains(&sha),
            "the PDF carries the digest it was sent with"
        );
    }
    // Roles and bad fields.
    assert_eq!(
        s.post_json("/api/audit-logs/reports", Some(INGESTER), &req)
            .status,
        403
    );
    assert_eq!(
        s.post_json("/api/audit-logs/reports", None, &req).status,
        401
    );
    for (field, v) in [
        ("report_type", json!("x")),
        ("format", json!("docx")),
        ("include_sections", json!(["x"])),
    ] {
        let mut b = req.clone();
        b[field] = v;
        let r = s.post_json("/api/audit-logs/reports", Some(READER), &b);
        assert_eq!(r.status, 400, "{field}");
        let p = r.json()["error"]["param"].as_str().unwrap().to_string();
        assert!(p.starts_with(field), "{field}: {p}");
    }
    // Each generated report was recorded as a data_access event with its digest.
    let q = s.get(
        "/api/audit-logs?event_type=data_access&action=report_generated&limit=100",
        Some(READER),
    );
    let reports = 4 + cfg!(feature = "pdf") as u64;
    assert_eq!(q.json()["total_count"], reports, "{}", q.text());
    assert!(q.json()["audit_logs"][0]["details"]["report_sha256"].is_string());
    // The report route is in the OpenAPI document.
    let spec = s.get("/api/openapi.json", Some(READER)).json();
    assert!(spec["paths"]["/api/enterprise/audit-logs/reports"]["post"].is_object());
    assert!(spec["paths"]["/api/audit-logs/reports"]["post"].is_object());
}

#[test]
fn ranges_outside_the_log_give_an_empty_verified_report() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &spread_events(2, 50));
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let req = request(json!({"report_type": "security_audit",
        "date_range": {"start_date": "2030-01-01", "end_date": "2030-01-31"}}));
    let doc = log.report(&req).unwrap().json().clone();
    assert_eq!(doc["summary"]["events"], 0);
    assert_eq!(doc["summary"]["first_seq"], Value::Null);
    assert_eq!(doc["evidence"]["ok"], true);
    assert_eq!(doc["evidence"]["chain_verification"]["records"], 50);
}

#[test]
fn retention_runs_and_holds_are_in_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), buffered_opts().retention_days(30)).unwrap();
    for c in spread_events(6, 600).chunks(100) {
        log.append_batch(c).unwrap();
    }
    let hold = log
        .add_hold(auditlog::HoldScope::Global, "litigation 2024-17")
        .unwrap();
    let run = log.apply_retention(Utc::now()).unwrap();
    let req = request(json!({"report_type": "change_audit",
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"}}));
    let doc = log.report(&req).unwrap().json().clone();
    let ret = &doc["evidence"]["retention"];
    assert_eq!(ret["runs"], 1, "{ret}");
    assert_eq!(ret["holds"][0]["id"], json!(hold.id));
    assert_eq!(ret["holds"][0]["reason"], "litigation 2024-17");
    assert!(ret["last_run"].is_object(), "{run:?}");
    // The global hold kept every record: the report still covers them all.
    assert_eq!(doc["summary"]["events"], 600);
    assert_eq!(doc["evidence"]["ok"], true);
}
