//! A real `auditlog serve` process on loopback, and a small blocking HTTP/1.1 client, for
//! the server's end-to-end tests. The client speaks plain HTTP/1.1 over `TcpStream`
//! (`Connection: close`, chunked bodies decoded), so the tests see the bytes the server sent.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The chain key every server test runs with (in `AUDIT_HMAC_KEY`).
pub const SERVER_KEY: &str = "server-test-key-0123456789abcdef0123";
/// Tokens of [`default_config`].
pub const ADMIN: &str = "admin-token-0123456789";
pub const READER: &str = "reader-token-0123456789";
pub const INGESTER: &str = "ingest-token-0123456789";
pub const EXPORTER: &str = "export-token-0123456789";

/// A config with one token per role; `extra_audit` and `extra_server` are JSON members
/// (without braces) added to the `audit_logs` and `server` sections.
pub fn config_json(extra_audit: &str, extra_server: &str) -> String {
    let sep = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!(", {s}")
        }
    };
    format!(
        r#"{{"audit_logs": {{"disabled": false, "hmac_key": "env.AUDIT_HMAC_KEY", "retention_days": 365{}}},
  "server": {{"tokens": [
    {{"name": "ops", "token": "{ADMIN}", "roles": ["admin"]}},
    {{"name": "auditor", "token": "{READER}", "roles": ["read"]}},
    {{"name": "gateway", "token": "{INGESTER}", "roles": ["ingest"]}},
    {{"name": "siem", "token": "{EXPORTER}", "roles": ["export"]}}]{}}}}}"#,
        sep(extra_audit),
        sep(extra_server)
    )
}

pub fn default_config() -> String {
    config_json("", "")
}

/// A running server. Killed (SIGKILL) when dropped unless stopped first.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub config: PathBuf,
    /// The server's stderr (structured logs) is written here.
    pub stderr_path: PathBuf,
}

/// The `auditlog` command with the test key in its environment.
pub fn auditlog(data: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env("AUDIT_HMAC_KEY", SERVER_KEY)
        .env_remove("RUST_LOG")
        .arg("--data")
        .arg(data)
        .arg("--config")
        .arg(config);
    for (k, _) in std::env::vars() {
        if k.starts_with("BIFROST_AUDIT_") {
            c.env_remove(k);
        }
    }
    c
}

impl Server {
    /// Writes `config` next to `data` and starts `auditlog serve --listen 127.0.0.1:0` with
    /// `env` added; waits for its "listening on" line.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        Self::try_start(dir, config, env, &[])
            .unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Like [`start`](Self::start) with extra `serve` arguments; `Err` holds what the
    /// process printed when it exited instead of listening.
    pub fn try_start(
        dir: &Path,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Server, String> {
        let data = dir.join("data");
        let config_path = dir.join("config.json");
        std::fs::write(&config_path, config).expect("write config");
        let stderr_path = dir.join(format!(
            "server-{}.stderr",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut c = auditlog(&data, &config_path);
        c.arg("serve").arg("--listen").arg("127.0.0.1:0").args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn auditlog serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(l)) => {
                    if let Some(a) = l
                        .strip_prefix("listening on http://")
                        .or_else(|| l.strip_prefix("listening on https://"))
                    {
                        break a.trim().parse::<SocketAddr>().expect("address");
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!("exited with {status}: {err}"));
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child,
            addr,
            data,
            config: config_path,
            stderr_path,
        })
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        request(self.addr, "GET", path, token, &[], None)
    }

    pub fn post(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Response {
        request(
            self.addr,
            "POST",
            path,
            token,
            &[("Content-Type", content_type)],
            Some(body),
        )
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> Response {
        self.post(path, token, "application/json", body.to_string().as_bytes())
    }

    /// SIGTERM, then waits for the exit status (at most 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        unsafe_free_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal with the `kill` command (no `unsafe` in tests).
fn unsafe_free_kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(st.success());
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended before its announced end (a chunked body cut short).
    pub truncated: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One request on a fresh connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or(&[]);
    if method != "GET" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write head");
    // The server may answer (413) before reading a large body and close: that is not an error.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("head is UTF-8");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let (body, truncated) = if chunked {
        dechunk(rest)
    } else {
        (rest.to_vec(), false)
    };
    Response {
        status,
        headers,
        body,
        truncated,
    }
}

fn dechunk(mut b: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return (out, true);
        };
        let size_text = std::str::from_utf8(&b[..nl]).unwrap_or("");
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            return (out, true);
        };
        b = &b[nl + 2..];
        if size == 0 {
            return (out, false);
        }
        if b.len() < size + 2 {
            out.extend_from_slice(&b[..b.len().min(size)]);
            return (out, true);
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// The seed's example event, with `event_id` and the timestamp's second set.
pub fn seed_event(id: &str, second: u32) -> serde_json::Value {
    serde_json::json!({
        "event_id": id,
        "timestamp": format!("2024-01-15T10:30:{:02}.123Z", second % 60),
        "event_type": "authentication",
        "action": "user_login",
        "status": "failed",
        "severity": "medium",
        "actor": {"user_id": "user-alice-001", "email": "alice@company.com", "ip_address": "203.0.113.42"},
        "details": {"auth_method": "password", "failure_reason": "invalid_password", "attempts_count": 3}
    })
}

/// A base64 SHA-256 hash of a proof or checkpoint, decoded (panics on anything else).
#[cfg(feature = "transparency")]
pub fn b64_hash(s: &str) -> [u8; 32] {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap()
        .try_into()
        .unwrap()
}

/// The `error` object of a JSON error response, after checking its status, its content type
/// and that it names a `code` and a `message`.
pub fn api_error(r: &Response, status: u16, what: &str) -> serde_json::Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{what}: not JSON"
    );
    let e = r.json()["error"].clone();
    assert!(
        e["code"].is_string() && e["message"].is_string(),
        "{what}: {e}"
    );
    e
}
