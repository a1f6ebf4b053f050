//! `server.tls`: `auditlog serve` answers HTTPS with the configured certificate and key, a
//! client that trusts that certificate gets the same API, plain HTTP on the port gets no
//! answer, and a missing or wrong certificate or key stops the server before it listens,
//! naming the setting and the file.
//!
//! The fixtures in `tests/fixtures/tls`, all P-256 and valid until 2126, were made with
//! openssl: `ca.pem`, a self-signed test CA (its key was thrown away); `cert.pem`, a server
//! certificate it signed for `localhost` and 127.0.0.1 (CA:FALSE, serverAuth), with its key
//! `key.pem`; and `other-key.pem`, a key unrelated to either.
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use server::{seed_event, Response, Server, ADMIN, INGESTER, READER};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn tls_config(cert: &str, key: &str) -> String {
    let tls = serde_json::json!({"cert": fixture(cert), "key": fixture(key)});
    server::config_json("", &format!("\"tls\": {tls}"))
}

/// A client that trusts only the fixture CA.
fn client_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn https(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<Response, std::io::Error> {
    let conn =
        rustls::ClientConnection::new(client_config(), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("Content-Type: application/json\r\n\r\n");
    tls.write_all(head.as_bytes())?;
    tls.write_all(body)?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server closes without close_notify after `Connection: close`; what was read is whole.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(server::parse_response(&raw))
}

#[test]
fn the_api_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &tls_config("cert.pem", "key.pem"), &[]);

    let h = https(s.addr, "GET", "/health", None, b"").unwrap();
    assert_eq!(h.status, 200, "{}", h.text());
    assert_eq!(h.json()["status"], "ok");

    let batch: Vec<_> = (0..10)
        .map(|i| seed_event(&format!("evt_tls_{i}"), i))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let r = https(s.addr, "POST", "/api/audit-logs", Some(INGESTER), &body).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 10);

    let q = https(
        s.addr,
        "GET",
        "/api/audit-logs?limit=100",
        Some(READER),
        b"",
    )
    .unwrap();
    assert_eq!(q.status, 200, "{}", q.text());
    let events = q.json()["audit_logs"].as_array().unwrap().clone();
    for i in 0..10 {
        let id = format!("evt_tls_{i}");
        assert!(events.iter().any(|e| e["event_id"] == id), "{id} missing");
    }

    let unauth = https(s.addr, "GET", "/api/audit-logs", None, b"").unwrap();
    assert_eq!(unauth.status, 401);

    let v = https(s.addr, "GET", "/api/audit-logs/verify", Some(ADMIN), b"").unwrap();
    assert_eq!(v.status, 200, "{}", v.text());

    // A console login over HTTPS gets a cookie that only ever travels over HTTPS.
    let login = https(
        s.addr,
        "POST",
        "/console/login",
        None,
        format!("{{\"token\": \"{READER}\"}}").as_bytes(),
    )
    .unwrap();
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap();
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }

    // Plain HTTP on the TLS port: no HTTP answer (the handshake fails and the socket closes).
    let mut plain = TcpStream::connect(s.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(
        !raw.starts_with(b"HTTP/"),
        "plain HTTP was answered on the TLS port: {:?}",
        String::from_utf8_lossy(&raw)
    );

    // The server is still serving after the failed handshake.
    let h = https(s.addr, "GET", "/health", None, b"").unwrap();
    assert_eq!(h.status, 200);

    let status = s.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &tls_config("cert.pem", "key.pem"), &[]);
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(s.addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let err = tls
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .and_then(|_| tls.flush())
        .and_then(|_| {
            let mut b = [0u8; 1];
            tls.read(&mut b).map(|_| ())
        })
        .expect_err("an untrusted certificate was accepted");
    assert!(
        err.to_string().contains("UnknownIssuer") || err.to_string().contains("certificate"),
        "{err}"
    );
}

#[test]
fn bad_tls_files_stop_the_server_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing-cert.pem", "key.pem", "server.tls.cert"),
        ("cert.pem", "missing-key.pem", "server.tls.key"),
        ("key.pem", "key.pem", "server.tls.cert"),
        ("cert.pem", "cert.pem", "server.tls.key"),
        (
            "cert.pem",
            "other-key.pem",
            "does not go with the certificate",
        ),
    ];
    for (cert, key, expect) in cases {
        let err = Server::try_start(dir.path(), &tls_config(cert, key), &[], &[])
            .err()
            .unwrap_or_else(|| panic!("started with cert {cert} and key {key}"));
        assert!(err.contains(expect), "cert {cert}, key {key}: {err}");
        let named = if expect.starts_with("server.tls.cert") {
            cert
        } else {
            key
        };
        assert!(
            err.contains(named),
            "cert {cert}, key {key}: the file is not named: {err}"
        );
    }
    // An unknown member of server.tls is refused too.
    let cfg = server::config_json("", r#""tls": {"cert": "c.pem", "key": "k.pem", "ca": "x"}"#);
    let err = Server::try_start(dir.path(), &cfg, &[], &[]).err().unwrap();
    assert!(err.contains("ca"), "{err}");
}
