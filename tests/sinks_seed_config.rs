//! The seed's `siem_integration` and `webhooks` sections, exactly as the seed writes them,
//! become sinks; so do the top-level `syslog` and `nats` sections; bad values are refused
//! naming the field.

use auditlog::sink::Destination;
use auditlog::Config;

/// The seed's four integration examples (docs "SIEM Integration" and "Webhook
/// Integration"), merged into one `audit_logs` object.
const SEED: &str = r#"{
  "audit_logs": {
    "siem_integration": {
      "splunk": {
        "enabled": true,
        "hec_endpoint": "https://splunk.company.com:8088/services/collector",
        "hec_token": "env.SPLUNK_HEC_TOKEN",
        "source_type": "bifrost:audit",
        "index": "security",
        "batch_size": 100,
        "flush_interval": "10s"
      },
      "datadog": {
        "enabled": true,
        "api_key": "env.DATADOG_API_KEY",
        "site": "datadoghq.com",
        "service": "bifrost",
        "tags": ["env:production", "team:security"]
      },
      "elastic": {
        "enabled": true,
        "endpoint": "https://elastic.company.com:9200",
        "api_key": "env.ELASTIC_API_KEY",
        "index": "bifrost-audit-logs",
        "pipeline": "security-enrichment"
      }
    },
    "webhooks": {
      "enabled": true,
      "endpoints": [
        {
          "name": "security_incidents",
          "url": "https://security.company.com/webhooks/audit",
          "auth": {
            "type": "bearer",
            "token": "env.WEBHOOK_AUTH_TOKEN"
          },
          "filters": {
            "event_types": ["security_incident"],
            "severity": ["high", "critical"]
          },
          "retry": {
            "max_attempts": 3,
            "backoff": "exponential"
          }
        }
      ]
    }
  }
}"#;

#[test]
fn the_seed_sections_become_sinks() {
    let c = Config::from_json(SEED).unwrap();
    let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["splunk", "datadog", "elastic", "webhook-security_incidents"]
    );
    assert!(c.sinks.iter().all(|s| s.enabled));

    let splunk = &c.sinks[0];
    match &splunk.destination {
        Destination::SplunkHec {
            url,
            token,
            index,
            sourcetype,
            ..
        } => {
            assert_eq!(
                url,
                "https://splunk.company.com:8088/services/collector/event"
            );
            assert_eq!(token, "env.SPLUNK_HEC_TOKEN", "secrets stay references");
            assert_eq!(index.as_deref(), Some("security"));
            assert_eq!(sourcetype.as_deref(), Some("bifrost:audit"));
        }
        d => panic!("splunk: {d:?}"),
    }
    assert_eq!(splunk.batch.max_events, 100);
    assert_eq!(splunk.batch.flush_interval_ms, 10_000);

    let dd = serde_json::to_string(&format!("{:?}", c.sinks[1].destination)).unwrap();
    assert!(dd.contains("Datadog"), "{dd}");
    assert!(
        dd.contains("env.DATADOG_API_KEY") && dd.contains("bifrost"),
        "{dd}"
    );

    match &c.sinks[2].destination {
        Destination::Elastic {
            url,
            index,
            api_key,
            pipeline,
            ..
        } => {
            assert_eq!(url, "https://elastic.company.com:9200");
            assert_eq!(index.as_deref(), Some("bifrost-audit-logs"));
            assert_eq!(api_key.as_deref(), Some("env.ELASTIC_API_KEY"));
            assert_eq!(pipeline.as_deref(), Some("security-enrichment"));
        }
        d => panic!("elastic: {d:?}"),
    }

    let hook = &c.sinks[3];
    let d = format!("{:?}", hook.destination);
    assert!(
        d.contains("https://security.company.com/webhooks/audit"),
        "{d}"
    );
    assert!(
        d.contains("env.WEBHOOK_AUTH_TOKEN"),
        "the bearer token is kept: {d}"
    );
    assert_eq!(hook.filter.event_types, ["security_incident"]);
    assert_eq!(hook.filter.severities.len(), 2);
    assert_eq!(hook.retry.max_attempts, 3);
}

#[test]
fn disabled_sections_give_disabled_sinks() {
    let text = SEED
        .replace(
            "\"enabled\": true,\n        \"hec_endpoint\"",
            "\"enabled\": false,\n        \"hec_endpoint\"",
        )
        .replace(
            "\"webhooks\": {\n      \"enabled\": true",
            "\"webhooks\": {\n      \"enabled\": false",
        );
    let c = Config::from_json(&text).unwrap();
    let enabled: Vec<(&str, bool)> = c
        .sinks
        .iter()
        .map(|s| (s.name.as_str(), s.enabled))
        .collect();
    assert_eq!(
        enabled,
        [
            ("splunk", false),
            ("datadog", true),
            ("elastic", true),
            ("webhook-security_incidents", false)
        ]
    );
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    let cases = [
        (
            "\"10s\"",
            "\"10 parsecs\"",
            "siem_integration.splunk.flush_interval",
        ),
        (
            "\"exponential\"",
            "\"fibonacci\"",
            "webhooks.endpoints[0].retry.backoff",
        ),
        ("\"bearer\"", "\"basic\"", "webhooks.endpoints[0].auth.type"),
        (
            "\"batch_size\": 100",
            "\"batch_size\": 0",
            "siem_integration.splunk.batch_size",
        ),
        (
            "\"index\": \"security\"",
            "\"indexx\": \"security\"",
            "indexx",
        ),
    ];
    for (from, to, needle) in cases {
        let text = SEED.replacen(from, to, 1);
        assert_ne!(text, SEED, "{from} is in the seed text");
        let e = Config::from_json(&text).unwrap_err().to_string();
        assert!(e.contains(needle), "{to}: {e}");
    }
    // Two webhook endpoints with one name collide.
    let dup = SEED.replace(
        "\"endpoints\": [",
        "\"endpoints\": [{\"name\": \"security_incidents\", \"url\": \"https://x.example/h\"},",
    );
    let e = Config::from_json(&dup).unwrap_err().to_string();
    assert!(e.contains("used twice"), "{e}");
}

#[test]
fn syslog_and_nats_sections_become_sinks() {
    let text = r#"{
      "syslog": {"address": "logs.example:6514", "protocol": "tls", "ca_file": "/etc/ca.pem",
                 "timeout": "1500ms", "batch_size": 200, "flush_interval": "2s",
                 "filters": {"event_types": ["authentication"], "severity": ["high", "critical"]},
                 "retry": {"max_attempts": 7, "backoff": "exponential"}},
      "nats": [
        {"name": "east", "url": "nats://east:4222", "stream": "AUDIT", "token": "env.NATS_EAST_TOKEN",
         "duplicate_window": "2m", "timeout": "10s", "create_stream": true},
        {"name": "west", "url": "nats://west:4222", "stream": "AUDIT", "enabled": false,
         "user": "env.NATS_USER", "password": "env.NATS_PASSWORD"}
      ]
    }"#;
    let c = Config::from_json(text).unwrap();
    let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["syslog", "nats-east", "nats-west"]);
    let s = &c.sinks[0];
    assert_eq!(s.batch.max_events, 200);
    assert_eq!(s.batch.flush_interval_ms, 2000);
    assert_eq!(s.retry.max_attempts, 7);
    assert_eq!(s.filter.event_types, ["authentication"]);
    assert_eq!(s.filter.severities.len(), 2);
    let Destination::Syslog(d) = &s.destination else {
        panic!("{:?}", s.destination)
    };
    assert_eq!(d.address, "logs.example:6514");
    assert_eq!(d.ca_file.as_deref(), Some("/etc/ca.pem"));
    // 1.5 s is rounded up to whole seconds.
    assert_eq!(d.timeout_secs, Some(2));
    let Destination::Nats(n) = &c.sinks[1].destination else {
        panic!("{:?}", c.sinks[1].destination)
    };
    // Secrets stay references until the sink starts.
    assert_eq!(n.token.as_deref(), Some("env.NATS_EAST_TOKEN"));
    assert_eq!(n.duplicate_window_secs, Some(120));
    assert_eq!(n.timeout_secs, Some(10));
    assert!(n.create_stream);
    assert!(c.sinks[0].enabled && c.sinks[1].enabled && !c.sinks[2].enabled);
    let Destination::Nats(w) = &c.sinks[2].destination else {
        panic!()
    };
    assert_eq!(w.password.as_deref(), Some("env.NATS_PASSWORD"));
    // The section's Debug output never shows a literal secret.
    let sec: auditlog::sink::seed::NatsSection = serde_json::from_str(
        r#"{"url": "nats://n:4222", "stream": "S", "token": "hunter2-literal"}"#,
    )
    .unwrap();
    assert!(!format!("{sec:?}").contains("hunter2"), "{sec:?}");
}

#[test]
fn bad_syslog_and_nats_sections_are_refused_naming_the_field() {
    let cases = [
        (
            r#"{"syslog": {"address": "h:514", "timeout": "soon"}}"#,
            "syslog.timeout",
        ),
        (
            r#"{"syslog": {"adress": "h:514"}}"#,
            "syslog: unknown field `adress`",
        ),
        (
            r#"{"syslog": {"address": "h:514", "protocol": "relp"}}"#,
            "syslog",
        ),
        (r#"{"syslog": {"address": "no-port"}}"#, "syslog"),
        (
            r#"{"syslog": {"address": "h:514", "batch_size": 0}}"#,
            "syslog.batch_size",
        ),
        (
            r#"{"syslog": [{"address": "h:514"}, {"address": "i:514"}]}"#,
            "syslog[0].name",
        ),
        (r#"{"syslog": "h:514"}"#, "syslog: expected an object"),
        (
            r#"{"nats": {"url": "nats://n:4222", "stream": "S", "duplicate_window": "2 weeks"}}"#,
            "nats.duplicate_window",
        ),
        (
            r#"{"nats": {"url": "tls://n:4222", "stream": "S"}}"#,
            "nats",
        ),
        (
            r#"{"nats": [{"name": "a", "url": "nats://n:4222"}]}"#,
            "nats[0]: missing field `stream`",
        ),
        (
            r#"{"nats": {"url": "nats://n:4222", "stream": "S", "retry": {"backoff": "linear"}}}"#,
            "nats.retry.backoff",
        ),
    ];
    for (text, needle) in cases {
        let e = Config::from_json(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text}: {e}");
    }
    // A section's sink and a `sinks` entry with the same name collide.
    let e = Config::from_json(
        r#"{"sinks": [{"name": "syslog", "destination": {"type": "syslog", "address": "a:514"}}],
            "syslog": {"address": "h:514"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("used twice"), "{e}");
}
