//! The syslog sink against a real rsyslog (Debian's `rsyslogd`, installed by `.ci/run`):
//! each test starts `rsyslogd -n` on free loopback ports with a generated configuration
//! that writes every message's raw text to a file, delivers events, and reads the file
//! back: every event arrives, with its structured data and its JSON. Stopping rsyslog in
//! the middle of a TCP stream and starting it again loses nothing. A missing rsyslogd fails
//! the tests unless AUDITLOG_SKIP_RSYSLOG=1.
#![cfg(feature = "sinks")]

mod common;
#[path = "common/daemons.rs"]
mod daemons;

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use auditlog::sink::{self, SinkConfig};
use auditlog::{Durability, Log, Options};
use common::{events, key, SMALL_SEGMENT};
use daemons::{free_tcp_port, free_udp_port, rsyslogd, sd_param, Rsyslog};
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

fn start_sink(log: &Log, destination: Value, max_events: usize) -> sink::SinkHandle {
    let c: SinkConfig = serde_json::from_value(json!({
        "name": "syslog",
        "destination": destination,
        "batch": {"max_events": max_events, "flush_interval_ms": 20},
        "retry": {"initial_ms": 20, "max_ms": 300}
    }))
    .expect("sink config parses");
    c.validate().unwrap();
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    sink::spawn(log, c, t).unwrap()
}

/// Every event of `log` from `seqs` arrived as an RFC 5424 message with its structured data
/// and its JSON.
fn check_messages(log: &Log, got: &BTreeMap<u64, (usize, String)>, seqs: &[u64]) {
    for &seq in seqs {
        let (_, line) = &got[&seq];
        let e = log.event_at(seq).unwrap().unwrap();
        assert!(
            line.starts_with('<') && line.contains(">1 "),
            "not RFC 5424: {line}"
        );
        assert!(line.contains("[auditlog@32473 "), "no SD element: {line}");
        assert_eq!(
            sd_param(line, "event_type").as_deref(),
            Some(e.event.event_type.as_str())
        );
        assert_eq!(
            sd_param(line, "action").as_deref(),
            Some(e.event.action.as_str())
        );
        assert_eq!(
            sd_param(line, "status").as_deref(),
            Some(e.event.status.as_str())
        );
        assert_eq!(
            sd_param(line, "hash").as_deref(),
            Some(e.verification.hash.as_str())
        );
        assert_eq!(sd_param(line, "user_id"), e.event.actor.user_id);
        let msg = &line[line.find("] \u{feff}").expect("BOM after the SD") + 5..];
        let v: Value = serde_json::from_str(msg).expect("MSG is the event's JSON");
        assert_eq!(v["seq"], json!(seq));
        assert_eq!(v["action"], json!(e.event.action));
        assert_eq!(v, serde_json::to_value(&e).unwrap());
    }
}

#[test]
fn tcp_octet_counted_survives_an_rsyslog_restart() {
    let Some(bin) = rsyslogd() else { return };
    let d = tempfile::tempdir().unwrap();
    let rdir = d.path().join("rsyslog");
    let port = free_tcp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &rdir,
        "",
        &format!(
            "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
        port,
    );
    let log = open(&d.path().join("log"));
    let evs = events(12, 300);
    log.append_batch(&evs[..120]).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "protocol": "tcp", "timeout_secs": 10}),
        10,
    );
    assert!(
        h.wait_acked(119, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    // rsyslog goes away while more events come in: the sink retries and delivers nothing
    // out of order; once rsyslog is back everything arrives.
    rs.stop();
    log.append_batch(&evs[120..200]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.status().retried == 0 {
        assert!(Instant::now() < deadline, "no retry while rsyslog is down");
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = h.status();
    assert!(
        st.acked_seq.unwrap() < 199,
        "acked while rsyslog was down: {st:?}"
    );
    assert!(
        st.last_error.as_deref().unwrap_or("").contains("syslog"),
        "{st:?}"
    );
    rs.restart();
    log.append_batch(&evs[200..]).unwrap();
    assert!(
        h.wait_acked(299, Duration::from_secs(60)),
        "{:?}",
        h.status()
    );
    let st = h.status();
    assert_eq!(st.lag, 0);
    assert!(st.parked.is_none());
    h.stop();
    let all: Vec<u64> = (0..300).collect();
    let got = rs.wait_for(&all);
    rs.stop();
    check_messages(&log, &got, &all);
    // At least once: duplicates only of what the sink resent after the outage.
    let dups = got.values().filter(|(n, _)| *n > 1).count();
    assert!(dups <= 10, "{dups} events arrived more than once");
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), all);
}

#[test]
fn tcp_resumes_from_its_cursor_after_the_sink_restarts() {
    let Some(bin) = rsyslogd() else { return };
    let d = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &d.path().join("rsyslog"),
        "",
        &format!(
            "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
        port,
    );
    let log = open(&d.path().join("log"));
    let evs = events(5, 100);
    log.append_batch(&evs[..50]).unwrap();
    let dest = json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "confirm": false});
    let h = start_sink(&log, dest.clone(), 25);
    assert!(
        h.wait_acked(49, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    log.append_batch(&evs[50..]).unwrap();
    let h = start_sink(&log, dest, 25);
    assert!(
        h.wait_acked(99, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    let all: Vec<u64> = (0..100).collect();
    let got = rs.wait_for(&all);
    rs.stop();
    check_messages(&log, &got, &all);
    assert!(
        got.values().all(|(n, _)| *n == 1),
        "an event arrived twice though the sink stopped cleanly"
    );
}

#[test]
fn udp_datagrams_reach_rsyslog() {
    let Some(bin) = rsyslogd() else { return };
    let d = tempfile::tempdir().unwrap();
    let tcp = free_tcp_port();
    let udp = free_udp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &d.path().join("rsyslog"),
        "",
        &format!(
            "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
             module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")"
        ),
        tcp,
    );
    let log = open(&d.path().join("log"));
    log.append_batch(&events(7, 60)).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{udp}"), "protocol": "udp"}),
        20,
    );
    assert!(
        h.wait_acked(59, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    let all: Vec<u64> = (0..60).collect();
    let got = rs.wait_for(&all);
    rs.stop();
    check_messages(&log, &got, &all);
}

/// A CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl is needed for the TLS test (apt-get install openssl): {e}")
            });
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=auditlog test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn tls_to_rsyslog_with_a_configured_ca() {
    let Some(bin) = rsyslogd() else { return };
    if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
        && !Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
    {
        let found = Command::new("sh")
            .args(["-c", "ls /usr/lib/*/rsyslog/lmnsd_gtls.so"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found && std::env::var("AUDITLOG_SKIP_RSYSLOG").as_deref() == Ok("1") {
            eprintln!("skipped: rsyslog's lmnsd_gtls is missing and AUDITLOG_SKIP_RSYSLOG=1");
            return;
        }
        assert!(
            found,
            "rsyslog's TLS driver lmnsd_gtls is missing (apt-get install rsyslog-gnutls), \
             or set AUDITLOG_SKIP_RSYSLOG=1 to skip"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key_file) = make_certs(&d.path().join("certs"));
    let port = free_tcp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &d.path().join("rsyslog"),
        &format!(
            "defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
             defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
            ca.display(),
            cert.display(),
            key_file.display()
        ),
        &format!(
            "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
             streamDriver.authMode=\"anon\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
        port,
    );
    let log = open(&d.path().join("log"));
    log.append_batch(&events(9, 80)).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "protocol": "tls",
               "ca_file": ca.to_str().unwrap(), "server_name": "localhost"}),
        15,
    );
    assert!(
        h.wait_acked(79, Duration::from_secs(30)),
        "{:?}",
        h.status()
    );
    h.stop();
    let all: Vec<u64> = (0..80).collect();
    let got = rs.wait_for(&all);
    check_messages(&log, &got, &all);

    // A CA the server's certificate does not chain to: the sink parks, naming the
    // certificate, instead of retrying for ever.
    let (other_ca, _, _) = make_certs(&d.path().join("other"));
    let c: SinkConfig = serde_json::from_value(json!({
        "name": "syslog-wrong-ca",
        "destination": {"type": "syslog", "address": format!("127.0.0.1:{port}"),
                        "protocol": "tls", "ca_file": other_ca.to_str().unwrap()},
        "retry": {"initial_ms": 20, "max_ms": 100}
    }))
    .unwrap();
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    let h = sink::spawn(&log, c, t).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.status().parked.is_none() {
        assert!(Instant::now() < deadline, "not parked: {:?}", h.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let parked = h.status().parked.unwrap();
    assert!(parked.contains("certificate"), "{parked}");
    rs.stop();
}

#[test]
fn bad_syslog_configs_are_refused_naming_the_field() {
    let bad = |dest: Value, needle: &str| {
        let c: SinkConfig =
            serde_json::from_value(json!({"name": "s", "destination": dest})).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(needle), "{e:?} lacks {needle:?}");
    };
    bad(
        json!({"type": "syslog", "address": "nohost"}),
        "destination.address",
    );
    bad(
        json!({"type": "syslog", "address": "h:0"}),
        "destination.address",
    );
    bad(
        json!({"type": "syslog", "address": "h:514", "ca_file": "x.pem"}),
        "destination.ca_file",
    );
    bad(
        json!({"type": "syslog", "address": "h:514", "protocol": "udp", "max_datagram_bytes": 10}),
        "max_datagram_bytes",
    );
    let e = serde_json::from_value::<SinkConfig>(
        json!({"name": "s", "destination": {"type": "syslog", "address": "h:1", "port": 3}}),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("port"), "{e}");
    let c: SinkConfig = serde_json::from_value(json!({"name": "s", "destination":
        {"type": "syslog", "address": "h:1", "protocol": "tls", "ca_file": "/nonexistent/ca.pem"}}))
    .unwrap();
    let e = sink::transport_for(&c, "00").err().unwrap().to_string();
    assert!(
        e.contains("ca_file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}

/// With `confirm: false` the sink keeps one connection; when rsyslog restarts between two
/// batches the kept connection is dead, and the sink must notice that before writing into
/// it (a write into a closed TCP connection succeeds locally, and the batch would be lost).
#[test]
fn kept_connection_notices_an_rsyslog_restart() {
    let Some(bin) = rsyslogd() else { return };
    let d = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &d.path().join("rsyslog"),
        "",
        &format!(
            "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
        port,
    );
    let log = open(&d.path().join("log"));
    let evs = events(21, 90);
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "confirm": false}),
        10,
    );
    for round in 0..3u64 {
        let from = round as usize * 30;
        log.append_batch(&evs[from..from + 30]).unwrap();
        let last = from as u64 + 29;
        assert!(
            h.wait_acked(last, Duration::from_secs(30)),
            "{:?}",
            h.status()
        );
        let want: Vec<u64> = (0..=last).collect();
        rs.wait_for(&want);
        rs.stop();
        rs.restart();
    }
    h.stop();
    let all: Vec<u64> = (0..90).collect();
    let got = rs.wait_for(&all);
    rs.stop();
    check_messages(&log, &got, &all);
}

/// UDP cannot split a message: one longer than `max_datagram_bytes` parks the sink, naming
/// the event, rather than being cut or retried for ever; the events before it went out.
#[test]
fn udp_message_over_the_datagram_limit_parks() {
    let d = tempfile::tempdir().unwrap();
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = rx.local_addr().unwrap().port();
    let log = open(&d.path().join("log"));
    log.append_batch(&events(3, 2)).unwrap();
    let mut big = auditlog::Event::new("data_access", "export");
    big.details = serde_json::json!({"blob": "x".repeat(2000)}).into();
    log.append(&big).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "protocol": "udp",
               "max_datagram_bytes": 1500}),
        10,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.status().parked.is_none() {
        assert!(Instant::now() < deadline, "not parked: {:?}", h.status());
        std::thread::sleep(Duration::from_millis(10));
    }
    let parked = h.status().parked.unwrap();
    assert!(
        parked.contains("seq 2") && parked.contains("max_datagram_bytes 1500"),
        "{parked}"
    );
    assert_eq!(
        h.status().acked_seq,
        None,
        "the batch must not be acknowledged"
    );
    let mut buf = [0u8; 65536];
    for seq in 0..2 {
        let n = rx.recv(&mut buf).expect("the small events were sent");
        let m = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(sd_param(m, "seq"), Some(seq.to_string()), "{m}");
    }
}

/// With `confirm`, a receiver that reads but never closes its side after the sink's
/// half-close has not shown it read the batch: the sink times out, retries, and does not
/// advance its cursor.
#[test]
fn confirm_waits_for_the_receiver_to_close() {
    let d = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = held.clone();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            // Read everything, keep the connection open.
            let mut r = s.try_clone().unwrap();
            h2.lock().unwrap().push(s);
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while std::io::Read::read(&mut r, &mut b).is_ok_and(|n| n > 0) {}
            });
        }
    });
    let log = open(&d.path().join("log"));
    log.append_batch(&events(4, 3)).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "timeout_secs": 1}),
        10,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.status().retried < 2 {
        assert!(Instant::now() < deadline, "no retries: {:?}", h.status());
        std::thread::sleep(Duration::from_millis(20));
    }
    let st = h.status();
    assert_eq!(st.acked_seq, None, "{st:?}");
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("did not close the connection"),
        "{st:?}"
    );
    assert!(
        held.lock().unwrap().len() >= 2,
        "each attempt is a new connection"
    );
    h.stop();
}

/// RFC 6587 octet counting counts bytes, not characters: a strict receiver parses
/// `<len> <msg>` frames of events holding multi-byte UTF-8 and finds each message whole.
#[test]
fn octet_counts_are_bytes_for_non_ascii_events() {
    let d = tempfile::tempdir().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut s, &mut all).unwrap();
        let mut msgs = Vec::new();
        let mut rest = &all[..];
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').expect("a length");
            let n: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let m = &rest[sp + 1..sp + 1 + n];
            msgs.push(String::from_utf8(m.to_vec()).expect("a whole UTF-8 message"));
            rest = &rest[sp + 1 + n..];
        }
        msgs
    });
    let log = open(&d.path().join("log"));
    let mut evs = Vec::new();
    for i in 0..5 {
        let mut e = auditlog::Event::new("authentication", format!("connexion-réussie-{i}"));
        e.actor.user_id = Some(format!("zoë-{i}-用户"));
        e.details = json!({"note": "naïve café 😀 ]\"\\", "i": i}).into();
        evs.push(e);
    }
    log.append_batch(&evs).unwrap();
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}")}),
        10,
    );
    assert!(h.wait_acked(4, Duration::from_secs(30)), "{:?}", h.status());
    h.stop();
    let msgs = rx.join().unwrap();
    assert_eq!(msgs.len(), 5);
    let got: BTreeMap<u64, (usize, String)> = msgs
        .into_iter()
        .map(|m| (sd_param(&m, "seq").unwrap().parse().unwrap(), (1, m)))
        .collect();
    check_messages(&log, &got, &[0, 1, 2, 3, 4]);
}

/// The kept connection over TLS (`confirm: false`): several batches on one connection (the
/// records rsyslog's TLS stack sends after the handshake do not count as a dead
/// connection), and an rsyslog restart between batches is noticed before writing.
#[test]
fn tls_kept_connection_across_an_rsyslog_restart() {
    let Some(bin) = rsyslogd() else { return };
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key_file) = make_certs(&d.path().join("certs"));
    let port = free_tcp_port();
    let mut rs = Rsyslog::start(
        &bin,
        &d.path().join("rsyslog"),
        &format!(
            "defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{}\" \
             defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
            ca.display(),
            cert.display(),
            key_file.display()
        ),
        &format!(
            "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
             streamDriver.authMode=\"anon\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
        ),
        port,
    );
    let log = open(&d.path().join("log"));
    let evs = events(31, 60);
    let h = start_sink(
        &log,
        json!({"type": "syslog", "address": format!("127.0.0.1:{port}"), "protocol": "tls",
               "ca_file": ca.to_str().unwrap(), "confirm": false}),
        5,
    );
    for round in 0..2usize {
        let from = round * 30;
        log.append_batch(&evs[from..from + 30]).unwrap();
        let last = from as u64 + 29;
        assert!(
            h.wait_acked(last, Duration::from_secs(30)),
            "{:?}",
            h.status()
        );
        let want: Vec<u64> = (0..=last).collect();
        rs.wait_for(&want);
        rs.stop();
        rs.restart();
    }
    h.stop();
    let all: Vec<u64> = (0..60).collect();
    let got = rs.wait_for(&all);
    rs.stop();
    check_messages(&log, &got, &all);
}
