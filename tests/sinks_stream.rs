//! The syslog and NATS JetStream sinks against the real programs: Debian's `rsyslogd`
//! (imudp, imtcp, and imtcp over the gtls netstream driver, writing the raw messages with
//! omfile) and `nats-server -js`, each started on loopback ports by the test. A missing
//! program fails the test unless AUDITLOG_SKIP_RSYSLOG=1 / AUDITLOG_SKIP_NATS=1.
#![cfg(feature = "sinks")]

mod common;
#[path = "common/daemons.rs"]
mod daemons;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auditlog::siem::{self, FormatContext};
use auditlog::sink::{self, NatsAuth, SinkConfig};
use auditlog::{Durability, Log, Options};
use common::{events, key, SMALL_SEGMENT};
use daemons::{free_tcp_port as free_port, nats_server, rsyslogd, stream_messages, Nats, Rsyslog};
use serde_json::{json, Value};

fn open(dir: &Path) -> Log {
    Log::open(
        dir,
        Options::new(key())
            .durability(Durability::Sync)
            .segment_bytes(SMALL_SEGMENT),
    )
    .unwrap()
}

fn cfg(v: Value) -> SinkConfig {
    let c: SinkConfig = serde_json::from_value(v).expect("sink config parses");
    c.validate().unwrap();
    c
}

fn start(log: &Log, c: SinkConfig) -> sink::SinkHandle {
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    sink::spawn(log, c, t).unwrap()
}

// ---------------------------------------------------------------- rsyslog

/// Every seq of `0..n` arrived, each message exactly the RFC 5424 rendering of its event
/// (header, structured data and JSON body intact).
fn check_syslog(log: &Log, got: &BTreeMap<u64, Vec<String>>, n: u64, host: &str) {
    let mut ctx = FormatContext::new(log.log_id());
    ctx.host = host.into();
    let missing: Vec<u64> = (0..n).filter(|s| !got.contains_key(s)).collect();
    assert!(missing.is_empty(), "missing seqs {missing:?}");
    for (seq, lines) in got {
        let want = siem::syslog(&log.event_at(*seq).unwrap().unwrap(), &ctx);
        for l in lines {
            assert_eq!(l, &want, "seq {seq} arrived altered");
        }
    }
}

fn syslog_cfg(name: &str, dest: Value) -> SinkConfig {
    cfg(json!({
        "name": name,
        "destination": dest,
        "batch": {"max_events": 50, "flush_interval_ms": 20},
        "retry": {"initial_ms": 20, "max_ms": 200}
    }))
}

#[test]
fn syslog_tcp_and_udp_into_rsyslog() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_port());
    let rs = Rsyslog::listening(&bin, &dir.path().join("rs"), tcp, Some(udp), None);
    let log = open(&dir.path().join("log"));
    log.append_batch(&events(5, 300)).unwrap();
    for (name, proto, port, confirm) in [
        ("tcp", "tcp", tcp, true),
        ("tcpfast", "tcp", tcp, false),
        ("udp", "udp", udp, true),
    ] {
        let c = syslog_cfg(
            name,
            json!({"type": "syslog", "protocol": proto, "address": format!("127.0.0.1:{port}"),
                   "confirm": confirm, "hostname": format!("host-{name}")}),
        );
        let h = start(&log, c);
        assert!(
            h.wait_acked(299, Duration::from_secs(30)),
            "{:?}",
            h.status()
        );
        h.stop();
    }
    // UDP datagrams may still be on their way through rsyslog: wait for all 900 copies.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut all = rs.messages();
    while all.values().map(Vec::len).sum::<usize>() < 900 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        all = rs.messages();
    }
    // Split what arrived by HOSTNAME (one per sink).
    for name in ["tcp", "tcpfast", "udp"] {
        let host = format!("host-{name}");
        let mine: BTreeMap<u64, Vec<String>> = all
            .iter()
            .map(|(s, ls)| {
                (
                    *s,
                    ls.iter()
                        .filter(|l| l.split(' ').nth(2) == Some(host.as_str()))
                        .cloned()
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, ls)| !ls.is_empty())
            .collect();
        check_syslog(&log, &mine, 300, &host);
        assert!(
            mine.values().all(|v| v.len() == 1),
            "{name}: a message arrived twice without any failure"
        );
    }
}

#[test]
fn syslog_tcp_survives_rsyslog_restarts_without_skipping() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tcp = free_port();
    let mut rs = Rsyslog::listening(&bin, &dir.path().join("rs"), tcp, None, None);
    let log = open(&dir.path().join("log"));
    let evs = events(8, 3000);
    log.append_batch(&evs[..1000]).unwrap();
    let c = syslog_cfg(
        "restart",
        json!({"type": "syslog", "address": format!("127.0.0.1:{tcp}"), "hostname": "h"}),
    );
    let h = start(&log, c);
    let writer = {
        let log = log.clone();
        let evs = evs[1000..].to_vec();
        std::thread::spawn(move || {
            for ch in evs.chunks(100) {
                log.append_batch(ch).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Stop rsyslog twice mid-stream; the sink retries with backoff and resumes.
    for _ in 0..2 {
        let deadline = Instant::now() + Duration::from_secs(30);
        let before = rs.messages().len();
        while rs.messages().len() < before + 300 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        rs.stop();
        std::thread::sleep(Duration::from_millis(300));
        rs.restart();
    }
    writer.join().unwrap();
    assert!(
        h.wait_acked(2999, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    let st = h.status();
    h.stop();
    assert!(st.retried > 0, "the restarts were noticed: {st:?}");
    let got = rs.wait_for_count(3000);
    check_syslog(&log, &got, 3000, "h");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=auditlog test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
fn syslog_tls_into_rsyslog_checks_the_certificate() {
    let Some(bin) = rsyslogd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(&dir.path().join("pki"));
    let tcp = free_port();
    let rs = Rsyslog::listening(
        &bin,
        &dir.path().join("rs"),
        tcp,
        None,
        Some((&ca, &cert, &key)),
    );
    let log = open(&dir.path().join("log"));
    log.append_batch(&events(9, 200)).unwrap();
    let c = syslog_cfg(
        "tls",
        json!({"type": "syslog", "protocol": "tls", "address": format!("localhost:{tcp}"),
               "ca_file": ca.to_str().unwrap(), "hostname": "h"}),
    );
    let h = start(&log, c);
    assert!(
        h.wait_acked(199, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    check_syslog(&log, &rs.wait_for_count(200), 200, "h");

    // The certificate is not valid for another name: parked, nothing acknowledged.
    let c = syslog_cfg(
        "tlsbad",
        json!({"type": "syslog", "protocol": "tls", "address": format!("127.0.0.1:{tcp}"),
               "ca_file": ca.to_str().unwrap(), "server_name": "other.example"}),
    );
    let h = start(&log, c);
    assert!(!h.wait_acked(0, Duration::from_secs(20)));
    let st = h.status();
    assert!(
        st.parked
            .as_deref()
            .is_some_and(|p| p.contains("certificate")),
        "{st:?}"
    );
    h.stop();
}

#[test]
fn syslog_configs_are_checked() {
    for (dest, what) in [
        (
            json!({"type": "syslog", "address": "nohost"}),
            "destination.address",
        ),
        (
            json!({"type": "syslog", "address": "h:99999"}),
            "destination.address",
        ),
        (
            json!({"type": "syslog", "address": "h:514", "ca_file": "/x"}),
            "destination.ca_file",
        ),
        (
            json!({"type": "syslog", "address": "h:514", "protocol": "carrier_pigeon"}),
            "carrier_pigeon",
        ),
        (
            json!({"type": "nats", "url": "nats://h:4222", "stream": "a.b"}),
            "destination.stream",
        ),
        (
            json!({"type": "nats", "url": "nats://h:4222", "stream": "S", "subject": "a b"}),
            "destination.subject",
        ),
        (
            json!({"type": "nats", "url": "tls://h:4222", "stream": "S"}),
            "destination.url",
        ),
        (
            json!({"type": "nats", "url": "h:4222", "stream": "S", "user": "u"}),
            "password",
        ),
    ] {
        let e =
            match serde_json::from_value::<SinkConfig>(json!({"name": "x", "destination": dest})) {
                Ok(c) => c.validate().unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
        assert!(e.contains(what), "{what}: {e}");
    }
    let c = syslog_cfg(
        "tlsmissing",
        json!({"type": "syslog", "protocol": "tls", "address": "h:6514", "ca_file": "/nonexistent/ca.pem"}),
    );
    let e = sink::transport_for(&c, "00").err().unwrap().to_string();
    assert!(
        e.contains("ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );

    // Both destinations in a config file, as `sinks` entries; a secret from an unset
    // environment variable is named.
    let conf = auditlog::Config::from_json(
        r#"{"sinks": [
            {"name": "rs", "destination": {"type": "syslog", "protocol": "udp", "address": "127.0.0.1:514"}},
            {"name": "js", "destination": {"type": "nats", "url": "nats://127.0.0.1:4222", "stream": "AUDIT",
             "token": "env.AUDITLOG_TEST_UNSET_NATS_TOKEN"}}]}"#,
    )
    .unwrap();
    assert_eq!(conf.sinks.len(), 2);
    let e = sink::transport_for(&conf.sinks[1], "00")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("destination.token") && e.contains("AUDITLOG_TEST_UNSET_NATS_TOKEN"),
        "{e}"
    );
}

// ---------------------------------------------------------------- NATS

fn check_exactly_once(log: &Log, msgs: &[(String, String, u64)], n: u64) {
    let ids: BTreeSet<&str> = msgs.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(ids.len(), msgs.len(), "an event is held twice");
    assert_eq!(msgs.len() as u64, n, "the stream holds each event once");
    for (id, subject, seq) in msgs {
        assert_eq!(id, &format!("{}-{seq}", log.log_id()));
        let e = log.event_at(*seq).unwrap().unwrap();
        assert_eq!(subject, &format!("audit.{}", e.event.event_type));
    }
    let seqs: BTreeSet<u64> = msgs.iter().map(|m| m.2).collect();
    assert_eq!(seqs, (0..n).collect::<BTreeSet<u64>>());
}

fn nats_cfg(name: &str, port: u16, extra: Value) -> SinkConfig {
    let mut d = json!({"type": "nats", "url": format!("nats://127.0.0.1:{port}"), "stream": "AUDIT",
                       "subject": "audit.{event_type}", "create_stream": true, "window": 16});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    cfg(json!({
        "name": name,
        "destination": d,
        "batch": {"max_events": 40, "flush_interval_ms": 20},
        "retry": {"initial_ms": 20, "max_ms": 300}
    }))
}

#[test]
fn nats_jetstream_holds_each_event_once_after_redelivery() {
    let Some(bin) = nats_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut ns = Nats::start(&bin, &dir.path().join("js"), &[]);
    let log = open(&dir.path().join("log"));
    let evs = events(21, 1500);
    log.append_batch(&evs[..300]).unwrap();
    let c = nats_cfg("js", ns.port, json!({}));
    let h = start(&log, c.clone());
    assert!(
        h.wait_acked(299, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    check_exactly_once(
        &log,
        &stream_messages(&mut ns.client(&NatsAuth::default()), "AUDIT"),
        300,
    );

    // Forced redelivery: the cursor is reset, everything is published again; JetStream
    // drops the duplicates by Nats-Msg-Id.
    std::fs::remove_file(sink::cursor_path(log.dir(), "js")).unwrap();
    let h = start(&log, c.clone());
    assert!(
        h.wait_acked(299, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );

    // nats-server killed mid-stream and restarted on its store: nothing skipped, nothing
    // held twice.
    let writer = {
        let log = log.clone();
        let evs = evs[300..].to_vec();
        std::thread::spawn(move || {
            for ch in evs.chunks(50) {
                log.append_batch(ch).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    ns.kill();
    std::thread::sleep(Duration::from_millis(300));
    ns.restart();
    writer.join().unwrap();
    assert!(
        h.wait_acked(1499, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    let st = h.status();
    h.stop();
    assert!(st.retried > 0, "the kill was noticed: {st:?}");
    check_exactly_once(
        &log,
        &stream_messages(&mut ns.client(&NatsAuth::default()), "AUDIT"),
        1500,
    );
}

#[test]
fn nats_token_auth_and_refusal() {
    let Some(bin) = nats_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ns = Nats::start(&bin, &dir.path().join("js"), &["--auth", "s3cret-token"]);
    let log = open(&dir.path().join("log"));
    log.append_batch(&events(3, 50)).unwrap();
    std::env::set_var("AUDITLOG_TEST_NATS_TOKEN", "s3cret-token");
    let h = start(
        &log,
        nats_cfg(
            "auth",
            ns.port,
            json!({"token": "env.AUDITLOG_TEST_NATS_TOKEN"}),
        ),
    );
    assert!(
        h.wait_acked(49, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    let mut c = ns.client(&NatsAuth {
        token: Some("s3cret-token".into()),
        ..Default::default()
    });
    check_exactly_once(&log, &stream_messages(&mut c, "AUDIT"), 50);

    let h = start(&log, nats_cfg("noauth", ns.port, json!({"token": "wrong"})));
    assert!(!h.wait_acked(0, Duration::from_secs(20)));
    let st = h.status();
    assert!(
        st.parked
            .as_deref()
            .is_some_and(|p| p.contains("Authorization")),
        "{st:?}"
    );
    h.stop();
}

/// Figures (not run by default; `cargo test --release --test sinks_stream -- --ignored
/// --nocapture figures`): events/s from the log into rsyslog over TCP (confirmed and
/// persistent connection) and into JetStream, on loopback. Prints, asserts only delivery.
#[test]
#[ignore]
fn figures_events_per_second() {
    let (Some(rs_bin), Some(nats_bin)) = (rsyslogd(), nats_server()) else {
        return;
    };
    let n = 20_000u64;
    let dir = tempfile::tempdir().unwrap();
    let log = open(&dir.path().join("log"));
    for ch in events(77, n as usize).chunks(1000) {
        log.append_batch(ch).unwrap();
    }
    let tcp = free_port();
    let rs = Rsyslog::listening(&rs_bin, &dir.path().join("rs"), tcp, None, None);
    let ns = Nats::start(&nats_bin, &dir.path().join("js"), &[]);
    let batch = json!({"max_events": 500, "flush_interval_ms": 20});
    for (name, dest) in [
        (
            "syslog_tcp_confirm",
            json!({"type": "syslog", "address": format!("127.0.0.1:{tcp}")}),
        ),
        (
            "syslog_tcp_persistent",
            json!({"type": "syslog", "address": format!("127.0.0.1:{tcp}"), "confirm": false}),
        ),
        (
            "nats_jetstream",
            json!({"type": "nats", "url": format!("nats://127.0.0.1:{}", ns.port), "stream": "FIG",
                   "create_stream": true, "window": 256}),
        ),
    ] {
        let c = cfg(json!({"name": name, "destination": dest, "batch": batch}));
        let t0 = Instant::now();
        let h = start(&log, c);
        assert!(
            h.wait_acked(n - 1, Duration::from_secs(300)),
            "{:?}",
            h.status()
        );
        let secs = t0.elapsed().as_secs_f64();
        h.stop();
        println!(
            "figure {name}: {n} events in {secs:.2} s = {:.0} events/s",
            n as f64 / secs
        );
    }
    assert!(rs.wait_for_count(n as usize).len() as u64 == n);
}
