//! The NATS JetStream destination, with a small NATS client of its own over `std::net`
//! (the text protocol: `INFO`, `CONNECT`, `PING`/`PONG`, `SUB`, `HPUB`, `MSG`/`HMSG`,
//! `+OK`/`-ERR`).
//!
//! Each event is published with the header `Nats-Msg-Id: <log_id>-<seq>` (its stable id), so
//! JetStream drops a resend within the stream's duplicate window, and `Nats-Expected-Stream`,
//! with a reply subject under the sink's inbox: the server answers each publish with a pub ack
//! `{"stream":…,"seq":N[,"duplicate":true]}` or `{"error":{…}}`. Up to `window` publishes are
//! in flight; the batch counts as delivered only when every publish was acked, so the cursor
//! advances on pub acks only. Unacked publishes are resent after the backoff.

use serde::Deserialize;

/// `{"type": "nats", "url": "nats://host:4222", "stream": "AUDIT", "subject": "audit.{event_type}", …}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsDestination {
    /// `nats://host:port` (or `host:port`); TLS is not supported.
    pub url: String,
    /// The JetStream stream the subject belongs to (checked by the server through
    /// `Nats-Expected-Stream`).
    pub stream: String,
    /// The subject of each event; `{event_type}`, `{action}`, `{severity}` and `{status}`
    /// are replaced by the event's values (characters not allowed in a subject token become
    /// `_`). Default `audit.{event_type}`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Create the stream at start (`$JS.API.STREAM.CREATE`) if it does not exist, with
    /// `stream_subjects` (default: the subject up to its first `{`, plus `>`).
    #[serde(default)]
    pub create_stream: bool,
    #[serde(default)]
    pub stream_subjects: Vec<String>,
    /// Duplicate window of a created stream in seconds (default 120, JetStream's default).
    #[serde(default)]
    pub duplicate_window_secs: Option<u64>,
    /// Credentials, each may be `env.NAME`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// Publishes in flight before waiting for acks (default 256).
    #[serde(default)]
    pub window: Option<usize>,
    /// Connect, write and ack timeout in seconds (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn default_subject() -> String {
    "audit.{event_type}".into()
}

impl NatsDestination {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let addr = self.url.strip_prefix("nats://").unwrap_or(&self.url);
        if self.url.contains("://") && !self.url.starts_with("nats://") {
            return Err(format!(
                "destination.url {:?}: only nats:// is supported (no TLS)",
                self.url
            ));
        }
        super::syslog::host_port(addr).map_err(|m| format!("destination.url: {m}"))?;
        if self.stream.is_empty()
            || !self
                .stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "destination.stream {:?}: letters, digits, '-' or '_'",
                self.stream
            ));
        }
        let probe = self
            .subject
            .replace("{event_type}", "x")
            .replace("{action}", "x")
            .replace("{severity}", "x")
            .replace("{status}", "x");
        if !valid_subject(&probe, false) {
            return Err(format!(
                "destination.subject {:?}: dot-separated tokens without spaces or wildcards \
                 (placeholders: {{event_type}}, {{action}}, {{severity}}, {{status}})",
                self.subject
            ));
        }
        for s in &self.stream_subjects {
            if !valid_subject(s, true) {
                return Err(format!(
                    "destination.stream_subjects: {s:?} is not a subject"
                ));
            }
        }
        if self.window == Some(0) {
            return Err("destination.window: at least 1".into());
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("destination.user and password: give both or neither".into());
        }
        Ok(())
    }
}

fn valid_subject(s: &str, wildcards: bool) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty()
                && (wildcards && (t == "*" || t == ">")
                    || t.chars()
                        .all(|c| c.is_ascii_graphic() && !matches!(c, '*' | '>' | '{' | '}')))
        })
}

#[cfg(feature = "sinks")]
pub use client::{Auth as NatsAuth, NatsClient, NatsMessage, NatsTransport};

#[cfg(feature = "sinks")]
mod client {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, BufWriter, Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    use super::NatsDestination;
    use crate::error::{Error, Result};
    use crate::query::AuditLogEntry;
    use crate::siem::{self, FormatContext};
    use crate::sink::config::resolve_secret;
    use crate::sink::{Outcome, Transport};

    /// A message received on a subscription.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct NatsMessage {
        pub subject: String,
        pub reply: Option<String>,
        /// The header block (`NATS/1.0 …` and its lines), empty for `MSG`.
        pub headers: String,
        pub payload: Vec<u8>,
    }

    impl NatsMessage {
        /// The status code of a header block like `NATS/1.0 503` (no responders).
        pub fn status(&self) -> Option<u16> {
            self.headers
                .lines()
                .next()?
                .strip_prefix("NATS/1.0")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        }
    }

    fn io(what: &str, e: std::io::Error) -> String {
        format!("{what}: {e}")
    }

    /// A minimal blocking NATS connection: one subscription on `<inbox>.*` receives the
    /// replies of [`NatsClient::request`] and the pub acks.
    pub struct NatsClient {
        r: BufReader<TcpStream>,
        w: BufWriter<TcpStream>,
        inbox: String,
        next: u64,
        timeout: Duration,
        /// The server's `max_payload` (headers and payload of one message).
        max_payload: usize,
    }

    /// Credentials for CONNECT.
    #[derive(Debug, Clone, Default)]
    pub struct Auth {
        pub user: Option<String>,
        pub password: Option<String>,
        pub token: Option<String>,
    }

    impl NatsClient {
        /// Connects to `addr` (`host:port`), reads INFO, sends CONNECT and PING and waits for
        /// the PONG (an `-ERR` such as an authorization failure is returned).
        pub fn connect(
            addr: &str,
            auth: &Auth,
            timeout: Duration,
        ) -> std::result::Result<NatsClient, String> {
            let mut last = format!("{addr}: no address");
            let addrs = addr.to_socket_addrs().map_err(|e| io("resolving", e))?;
            let mut sock = None;
            for a in addrs {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => {
                        sock = Some(s);
                        break;
                    }
                    Err(e) => last = format!("connecting to {a}: {e}"),
                }
            }
            let s = sock.ok_or(last)?;
            let _ = s.set_nodelay(true);
            s.set_read_timeout(Some(timeout))
                .map_err(|e| io("socket", e))?;
            s.set_write_timeout(Some(timeout))
                .map_err(|e| io("socket", e))?;
            let mut r = BufReader::new(s.try_clone().map_err(|e| io("socket", e))?);
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| io("reading INFO", e))?;
            let info = line.strip_prefix("INFO ").ok_or_else(|| {
                format!("expected INFO from the server, got {:?}", line.trim_end())
            })?;
            let info: Value = serde_json::from_str(info.trim_end())
                .map_err(|e| format!("the server's INFO is not JSON: {e}"))?;
            if info["tls_required"].as_bool() == Some(true) {
                return Err("the server requires TLS, which this client does not speak".into());
            }
            if info["headers"].as_bool() == Some(false) {
                return Err(
                    "the server does not support headers (NATS 2.2 or later needed)".into(),
                );
            }
            let mut connect = json!({
                "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
                "lang": "rust-auditlog", "version": env!("CARGO_PKG_VERSION"),
                "name": "auditlog-sink", "protocol": 1, "tls_required": false,
            });
            if let (Some(u), Some(p)) = (&auth.user, &auth.password) {
                connect["user"] = json!(u);
                connect["pass"] = json!(p);
            }
            if let Some(t) = &auth.token {
                connect["auth_token"] = json!(t);
            }
            let mut nonce = [0u8; 8];
            let _ = getrandom::fill(&mut nonce);
            let inbox = format!("_INBOX.auditlog.{}", crate::chain::hex(&nonce));
            let mut c = NatsClient {
                r,
                w: BufWriter::new(s),
                inbox,
                next: 0,
                timeout,
                max_payload: info["max_payload"].as_u64().unwrap_or(1 << 20) as usize,
            };
            let hello = format!("CONNECT {connect}\r\nPING\r\nSUB {}.* 1\r\n", c.inbox);
            c.w.write_all(hello.as_bytes())
                .map_err(|e| io("CONNECT", e))?;
            c.w.flush().map_err(|e| io("CONNECT", e))?;
            let deadline = Instant::now() + timeout;
            loop {
                match c.read_op(deadline)? {
                    Op::Pong => break,
                    Op::Err(e) => return Err(format!("the server refused CONNECT: {e}")),
                    _ => {}
                }
            }
            Ok(c)
        }

        /// The largest message (headers and payload) the server accepts.
        pub fn max_payload(&self) -> usize {
            self.max_payload
        }

        /// A fresh reply subject under this connection's inbox.
        pub fn reply_subject(&mut self) -> String {
            self.next += 1;
            format!("{}.{}", self.inbox, self.next)
        }

        /// Queues an `HPUB` (written on the next flush).
        pub fn hpub(
            &mut self,
            subject: &str,
            reply: &str,
            headers: &[(&str, &str)],
            payload: &[u8],
        ) -> std::result::Result<(), String> {
            let mut h = String::from("NATS/1.0\r\n");
            for (k, v) in headers {
                h.push_str(&format!("{k}: {v}\r\n"));
            }
            h.push_str("\r\n");
            let head = format!(
                "HPUB {subject} {reply} {} {}\r\n",
                h.len(),
                h.len() + payload.len()
            );
            self.w
                .write_all(head.as_bytes())
                .and_then(|_| self.w.write_all(h.as_bytes()))
                .and_then(|_| self.w.write_all(payload))
                .and_then(|_| self.w.write_all(b"\r\n"))
                .map_err(|e| io("publishing", e))
        }

        pub fn flush(&mut self) -> std::result::Result<(), String> {
            self.w.flush().map_err(|e| io("writing", e))
        }

        /// The next message for this connection's inbox (answering PINGs on the way).
        pub fn next_message(
            &mut self,
            deadline: Instant,
        ) -> std::result::Result<NatsMessage, String> {
            loop {
                match self.read_op(deadline)? {
                    Op::Msg(m) => return Ok(m),
                    Op::Err(e) => return Err(format!("the server sent -ERR {e}")),
                    _ => {}
                }
            }
        }

        /// Publishes `payload` to `subject` and waits for the reply (a JetStream API call).
        pub fn request(
            &mut self,
            subject: &str,
            payload: &[u8],
        ) -> std::result::Result<NatsMessage, String> {
            let reply = self.reply_subject();
            self.hpub(subject, &reply, &[], payload)?;
            self.flush()?;
            let deadline = Instant::now() + self.timeout;
            loop {
                let m = self.next_message(deadline)?;
                if m.subject == reply {
                    if m.status() == Some(503) {
                        return Err(format!("{subject}: no responders (is JetStream enabled?)"));
                    }
                    return Ok(m);
                }
            }
        }

        /// A JetStream API request whose JSON answer has no `error`.
        pub fn js_api(
            &mut self,
            subject: &str,
            body: &Value,
        ) -> std::result::Result<Value, String> {
            let m = self.request(subject, body.to_string().as_bytes())?;
            let v: Value = serde_json::from_slice(&m.payload)
                .map_err(|e| format!("{subject}: the answer is not JSON: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("{subject}: {err}"));
            }
            Ok(v)
        }

        fn read_op(&mut self, deadline: Instant) -> std::result::Result<Op, String> {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out waiting for the server".into());
            }
            let _ = self.r.get_ref().set_read_timeout(Some(left));
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) => return Err("the server closed the connection".into()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out waiting for the server".into())
                }
                Err(e) => return Err(io("reading", e)),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let (op, rest) = line.split_once(' ').unwrap_or((line, ""));
            match op.to_ascii_uppercase().as_str() {
                "PING" => {
                    self.w
                        .write_all(b"PONG\r\n")
                        .and_then(|_| self.w.flush())
                        .map_err(|e| io("PONG", e))?;
                    Ok(Op::Other)
                }
                "PONG" => Ok(Op::Pong),
                "+OK" | "INFO" => Ok(Op::Other),
                "-ERR" => Ok(Op::Err(rest.trim().trim_matches('\'').to_string())),
                "MSG" | "HMSG" => {
                    let f: Vec<&str> = rest.split_whitespace().collect();
                    let hmsg = op.eq_ignore_ascii_case("HMSG");
                    let (reply, hdr, total) = match (hmsg, f.len()) {
                        (false, 3) => (None, "0", f[2]),
                        (false, 4) => (Some(f[2]), "0", f[3]),
                        (true, 4) => (None, f[2], f[3]),
                        (true, 5) => (Some(f[2]), f[3], f[4]),
                        _ => return Err(format!("malformed {op} line {line:?}")),
                    };
                    let bad = |_| format!("malformed {op} line {line:?}");
                    let hdr: usize = hdr.parse().map_err(bad)?;
                    let total: usize = total.parse().map_err(bad)?;
                    if hdr > total {
                        return Err(format!("malformed {op} line {line:?}"));
                    }
                    let mut body = vec![0u8; total + 2];
                    self.r
                        .read_exact(&mut body)
                        .map_err(|e| io("reading a message", e))?;
                    body.truncate(total);
                    let payload = body.split_off(hdr);
                    Ok(Op::Msg(NatsMessage {
                        subject: f[0].to_string(),
                        reply: reply.map(str::to_string),
                        headers: String::from_utf8_lossy(&body).into_owned(),
                        payload,
                    }))
                }
                _ => Err(format!("unexpected line from the server: {line:?}")),
            }
        }
    }

    enum Op {
        Pong,
        Msg(NatsMessage),
        Err(String),
        Other,
    }

    /// The subject of one event: placeholders replaced by sanitized tokens.
    fn subject_for(template: &str, e: &AuditLogEntry) -> String {
        let token = |s: &str| -> String {
            let t: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && !matches!(c, '.' | '*' | '>') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if t.is_empty() {
                "_".into()
            } else {
                t
            }
        };
        let ev = &e.event;
        template
            .replace("{event_type}", &token(&ev.event_type))
            .replace("{action}", &token(&ev.action))
            .replace("{severity}", &token(ev.severity.as_str()))
            .replace("{status}", &token(&ev.status))
    }

    /// Publishes each event to JetStream; see the module documentation.
    pub struct NatsTransport {
        dest: NatsDestination,
        addr: String,
        auth: Auth,
        ctx: FormatContext,
        timeout: Duration,
        window: usize,
        client: Option<NatsClient>,
        stream_ready: bool,
    }

    impl NatsTransport {
        pub fn new(dest: &NatsDestination, log_id: &str, what: &str) -> Result<NatsTransport> {
            dest.validate()
                .map_err(|m| Error::Config(format!("{what}: {m}")))?;
            let sec = |v: &Option<String>, f: &str| {
                v.as_deref()
                    .map(|s| resolve_secret(s, &format!("{what}.destination.{f}")))
                    .transpose()
            };
            Ok(NatsTransport {
                addr: dest
                    .url
                    .strip_prefix("nats://")
                    .unwrap_or(&dest.url)
                    .to_string(),
                auth: Auth {
                    user: sec(&dest.user, "user")?,
                    password: sec(&dest.password, "password")?,
                    token: sec(&dest.token, "token")?,
                },
                ctx: FormatContext::new(log_id),
                timeout: Duration::from_secs(dest.timeout_secs.unwrap_or(30).max(1)),
                window: dest.window.unwrap_or(256),
                dest: dest.clone(),
                client: None,
                stream_ready: false,
            })
        }

        fn retry(&self, resend: Option<Vec<usize>>, m: String) -> Outcome {
            Outcome::Retry {
                resend,
                after: None,
                reason: format!("nats {}: {m}", self.dest.url),
            }
        }

        fn ensure_stream(&mut self) -> std::result::Result<(), Outcome> {
            if self.stream_ready || !self.dest.create_stream {
                return Ok(());
            }
            let d = &self.dest;
            let subjects = if d.stream_subjects.is_empty() {
                // The tokens before the first one with a placeholder, then `>`.
                let fixed: Vec<&str> = d
                    .subject
                    .split('.')
                    .take_while(|t| !t.contains('{'))
                    .collect();
                vec![if fixed.len() == d.subject.split('.').count() {
                    d.subject.clone()
                } else if fixed.is_empty() {
                    ">".to_string()
                } else {
                    format!("{}.>", fixed.join("."))
                }]
            } else {
                d.stream_subjects.clone()
            };
            let body = json!({
                "name": d.stream,
                "subjects": subjects,
                "storage": "file",
                "retention": "limits",
                "duplicate_window": d.duplicate_window_secs.unwrap_or(120) * 1_000_000_000,
            });
            let stream = d.stream.clone();
            let c = self.client.as_mut().expect("connected");
            match c.js_api(&format!("$JS.API.STREAM.CREATE.{stream}"), &body) {
                Ok(_) => {}
                Err(e) => {
                    // Already there (with another configuration): use it as it is.
                    if c.js_api(&format!("$JS.API.STREAM.INFO.{stream}"), &json!({}))
                        .is_err()
                    {
                        self.client = None;
                        return Err(Outcome::Permanent {
                            reason: format!(
                                "nats {}: creating stream {stream}: {e}",
                                self.dest.url
                            ),
                        });
                    }
                }
            }
            self.stream_ready = true;
            Ok(())
        }
    }

    impl Transport for NatsTransport {
        fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
            if self.client.is_none() {
                match NatsClient::connect(&self.addr, &self.auth, self.timeout) {
                    Ok(c) => self.client = Some(c),
                    Err(e) if e.contains("refused CONNECT") => {
                        return Outcome::Permanent {
                            reason: format!("nats {}: {e}", self.dest.url),
                        }
                    }
                    Err(e) => return self.retry(None, e),
                }
            }
            if let Err(o) = self.ensure_stream() {
                return o;
            }
            let mut acked = vec![false; batch.len()];
            let mut by_reply: HashMap<String, usize> = HashMap::new();
            let mut next = 0usize;
            let mut done = 0usize;
            let mut failure: Option<(bool, String)> = None;
            let stream = self.dest.stream.clone();
            let subject_t = self.dest.subject.clone();
            let window = self.window;
            let timeout = self.timeout;
            let c = self.client.as_mut().expect("connected");
            while done < batch.len() && failure.is_none() {
                // Fill the window.
                let mut wrote = false;
                while next < batch.len() && by_reply.len() < window {
                    let e = &batch[next];
                    let id = siem::elastic_id(&self.ctx, e.seq);
                    let payload = serde_json::to_vec(e).unwrap_or_default();
                    if payload.len() + 512 > c.max_payload() {
                        failure = Some((
                            true,
                            format!(
                                "event seq {} is {} bytes, more than the server's max_payload {}",
                                e.seq,
                                payload.len(),
                                c.max_payload()
                            ),
                        ));
                        break;
                    }
                    let reply = c.reply_subject();
                    if let Err(m) = c.hpub(
                        &subject_for(&subject_t, e),
                        &reply,
                        &[("Nats-Msg-Id", &id), ("Nats-Expected-Stream", &stream)],
                        &payload,
                    ) {
                        failure = Some((false, m));
                        break;
                    }
                    by_reply.insert(reply, next);
                    next += 1;
                    wrote = true;
                }
                if failure.is_some() {
                    break;
                }
                if wrote {
                    if let Err(m) = c.flush() {
                        failure = Some((false, m));
                        break;
                    }
                }
                let m = match c.next_message(Instant::now() + timeout) {
                    Ok(m) => m,
                    Err(m) => {
                        failure = Some((false, format!("waiting for pub acks: {m}")));
                        break;
                    }
                };
                let Some(i) = by_reply.remove(&m.subject) else {
                    continue; // a late ack of an earlier attempt
                };
                if m.status() == Some(503) {
                    failure = Some((
                        false,
                        format!(
                            "no stream listens on the subject of seq {} (503 no responders)",
                            batch[i].seq
                        ),
                    ));
                    break;
                }
                let v: Value = match serde_json::from_slice(&m.payload) {
                    Ok(v) => v,
                    Err(e) => {
                        failure = Some((false, format!("a pub ack is not JSON: {e}")));
                        break;
                    }
                };
                if let Some(err) = v.get("error") {
                    let code = err["code"].as_u64().unwrap_or(0);
                    let msg = format!("publishing seq {}: JetStream error {}", batch[i].seq, err);
                    failure = Some(((400..500).contains(&code), msg));
                    break;
                }
                if v["stream"].as_str() != Some(stream.as_str()) || v["seq"].as_u64().is_none() {
                    failure = Some((false, format!("unexpected pub ack {v}")));
                    break;
                }
                acked[i] = true;
                done += 1;
            }
            match failure {
                None => Outcome::Delivered,
                Some((true, reason)) => Outcome::Permanent {
                    reason: format!("nats {}: {reason}", self.dest.url),
                },
                Some((false, reason)) => {
                    // Start over on a fresh connection: acks still in flight on this one
                    // would be ambiguous.
                    self.client = None;
                    let resend: Vec<usize> = (0..batch.len()).filter(|&i| !acked[i]).collect();
                    self.retry(Some(resend), reason)
                }
            }
        }
    }
}
