//! SIEM export formats end to end: `auditlog export --format ocsf|cef|syslog|hec|elastic`
//! and `GET /api/audit-logs/export?format=…` write one rendering per matching event.
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use serde_json::Value;
use server::{seed_event, Server, EXPORTER, INGESTER};

fn check_lines(format: &str, text: &str, n: usize) {
    let lines: Vec<&str> = text.lines().collect();
    match format {
        "ocsf" => {
            assert_eq!(lines.len(), n, "{format}");
            for (i, l) in lines.iter().enumerate() {
                let v: Value = serde_json::from_str(l).expect("OCSF line is JSON");
                assert_eq!(v["class_uid"], 3002);
                assert_eq!(v["type_uid"], 300201);
                assert_eq!(v["metadata"]["version"], "1.8.0");
                assert_eq!(v["unmapped"]["event_id"], format!("evt-{i}"));
                assert_eq!(v["unmapped"]["verification"]["verified"], true);
            }
        }
        "hec" => {
            assert_eq!(lines.len(), n, "{format}");
            for l in &lines {
                let v: Value = serde_json::from_str(l).expect("HEC line is JSON");
                assert!(v["time"].as_f64().unwrap() > 1.7e9);
                assert_eq!(v["event"]["action"], "user_login");
                assert_eq!(v["sourcetype"], "auditlog:event");
            }
        }
        "elastic" => {
            assert_eq!(lines.len(), 2 * n, "{format}");
            for (i, pair) in lines.chunks(2).enumerate() {
                let a: Value = serde_json::from_str(pair[0]).unwrap();
                let d: Value = serde_json::from_str(pair[1]).unwrap();
                let id = a["create"]["_id"].as_str().unwrap();
                assert!(id.ends_with(&format!("-{}", d["seq"])), "{id}");
                assert_eq!(d["event_id"], format!("evt-{i}"));
                assert!(d["@timestamp"]
                    .as_str()
                    .unwrap()
                    .starts_with("2024-01-15T10:30:"));
            }
        }
        "cef" => {
            assert_eq!(lines.len(), n, "{format}");
            for l in &lines {
                assert!(l.starts_with("CEF:0|auditlog|auditlog|"), "{l}");
                assert!(l.contains("|authentication:user_login|"), "{l}");
                assert!(l.contains("src=203.0.113.42"), "{l}");
            }
        }
        "syslog" => {
            assert_eq!(lines.len(), n, "{format}");
            for l in &lines {
                assert!(l.starts_with("<108>1 2024-01-15T10:30:"), "{l}");
                assert!(l.contains("[auditlog@32473 seq=\""), "{l}");
            }
        }
        other => panic!("no check for {other}"),
    }
}

#[test]
fn cli_and_server_export_every_siem_format() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &server::default_config(), &[]);
    let events: Vec<Value> = (0..25)
        .map(|i| seed_event(&format!("evt-{i}"), i))
        .collect();
    let r = s.post_json("/api/audit-logs", Some(INGESTER), &Value::Array(events));
    assert_eq!(r.status, 200, "{}", r.text());
    for format in ["ocsf", "cef", "syslog", "hec", "elastic"] {
        let r = s.get(
            &format!("/api/audit-logs/export?format={format}&event_type=authentication"),
            Some(EXPORTER),
        );
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert!(!r.truncated);
        let ctype = r.header("content-type").unwrap_or("").to_string();
        match format {
            "cef" | "syslog" => assert!(ctype.starts_with("text/plain"), "{ctype}"),
            _ => assert!(ctype.contains("ndjson"), "{ctype}"),
        }
        check_lines(format, &r.text(), 25);
    }
    let r = s.get("/api/audit-logs/export?format=leef", Some(EXPORTER));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("ocsf"), "{}", r.text());
    let data = s.data.clone();
    let config = s.config.clone();
    s.terminate();

    for format in ["ocsf", "cef", "syslog", "hec", "elastic"] {
        let o = server::auditlog(&data, &config)
            .args([
                "export",
                "--format",
                format,
                "--event-type",
                "authentication",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_lines(format, &String::from_utf8(o.stdout).unwrap(), 25);
    }
}
