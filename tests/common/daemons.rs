//! The real receivers of the streaming sinks' tests, started on loopback by the tests:
//! Debian's `rsyslogd` (writing every message's raw text to a file) and `nats-server -js`
//! (read back through the JetStream API). A missing program fails the test with the package
//! to install, unless AUDITLOG_SKIP_RSYSLOG=1 / AUDITLOG_SKIP_NATS=1 (then it is skipped,
//! saying why). Shared by tests/sink_rsyslog.rs, tests/sinks_stream.rs and tests/sinks_ship.rs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auditlog::sink::{NatsAuth, NatsClient};
use base64::Engine as _;
use serde_json::{json, Value};

/// The program `tool` (on PATH or in /usr/sbin, where Debian puts both daemons); `None`
/// (after saying why) when it is missing and `skip_var=1`; a panic when it is missing.
pub fn tool(tool: &str, skip_var: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let found = on_path
        .into_iter()
        .chain([
            Path::new("/usr/sbin").join(tool),
            Path::new("/sbin").join(tool),
        ])
        .find(|p| p.is_file());
    if found.is_some() {
        return found;
    }
    if std::env::var(skip_var).as_deref() == Ok("1") {
        eprintln!("skipped: {tool} is not installed and {skip_var}=1");
        return None;
    }
    panic!(
        "{tool} is not installed (apt-get install {}; .ci/run does it); set {skip_var}=1 to \
         skip this test",
        if tool == "rsyslogd" {
            "rsyslog rsyslog-gnutls"
        } else {
            tool
        }
    );
}

pub fn rsyslogd() -> Option<PathBuf> {
    tool("rsyslogd", "AUDITLOG_SKIP_RSYSLOG")
}

pub fn nats_server() -> Option<PathBuf> {
    tool("nats-server", "AUDITLOG_SKIP_NATS")
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `child` listens on TCP `port` of 127.0.0.1 (panics if it exits first).
pub fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited before listening on {port}: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} does not listen on 127.0.0.1:{port}");
}

// ---------------------------------------------------------------- rsyslog

/// A running rsyslogd writing every message's raw text (after the octet count) as one line
/// of `out`.
pub struct Rsyslog {
    bin: PathBuf,
    dir: PathBuf,
    conf: PathBuf,
    pub out: PathBuf,
    pub tcp_port: u16,
    child: Option<Child>,
}

impl Rsyslog {
    /// `global`: more `global()` parameters; `inputs`: the `module`/`input` lines;
    /// `tcp_port` the port polled for readiness.
    pub fn start(bin: &Path, dir: &Path, global: &str, inputs: &str, tcp_port: u16) -> Rsyslog {
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let out = dir.join("out.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{work}\" maxMessageSize=\"64k\" {global})\n\
                 {inputs}\n\
                 template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
                 action(type=\"omfile\" file=\"{out}\" template=\"raw\")\n",
                work = work.display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            conf,
            out,
            tcp_port,
            child: None,
        };
        r.restart();
        r
    }

    /// A TCP input on `tcp` (TLS with the gtls driver when `tls` gives the CA, certificate
    /// and key files, anonymous client authentication) and, with `udp`, a UDP input.
    pub fn listening(
        bin: &Path,
        dir: &Path,
        tcp: u16,
        udp: Option<u16>,
        tls: Option<(&Path, &Path, &Path)>,
    ) -> Rsyslog {
        let mut global = String::new();
        let mut inputs = String::new();
        if let Some((ca, cert, key)) = tls {
            global = format!(
                "defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" \
                 defaultNetstreamDriverKeyFile=\"{}\"",
                ca.display(),
                cert.display(),
                key.display()
            );
            inputs.push_str("module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n");
        } else {
            inputs.push_str("module(load=\"imtcp\")\n");
        }
        inputs.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n"
        ));
        if let Some(u) = udp {
            inputs.push_str(&format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{u}\")\n"
            ));
        }
        Rsyslog::start(bin, dir, &global, &inputs, tcp)
    }

    /// Starts it again after [`stop`](Self::stop).
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(&self.bin)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("rsyslogd.stderr")).unwrap())
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.tcp_port)).is_ok() {
                break;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited ({st}) at start; its stderr: {}",
                    std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rsyslogd does not listen on 127.0.0.1:{} after 20 s; stderr: {}",
                self.tcp_port,
                std::fs::read_to_string(self.dir.join("rsyslogd.stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (rsyslog writes out what it queued) and wait for the exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("rsyslogd did not stop within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// The messages written so far that carry our structured data, by `seq` (every copy).
    pub fn messages(&self) -> BTreeMap<u64, Vec<String>> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut m: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.contains(auditlog::siem::SYSLOG_SD_ID))
        {
            let seq = sd_param(line, "seq")
                .unwrap_or_else(|| panic!("a message without seq in its structured data: {line}"))
                .parse::<u64>()
                .unwrap();
            m.entry(seq).or_default().push(line.to_string());
        }
        m
    }

    /// The messages written so far, by `seq` (each with how many times it arrived and its
    /// last copy).
    pub fn received(&self) -> BTreeMap<u64, (usize, String)> {
        self.messages()
            .into_iter()
            .map(|(s, v)| (s, (v.len(), v.last().cloned().unwrap_or_default())))
            .collect()
    }

    /// Waits until every seq of `want` arrived (rsyslog writes asynchronously).
    pub fn wait_for(&self, want: &[u64]) -> BTreeMap<u64, (usize, String)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.received();
            let missing: Vec<u64> = want
                .iter()
                .copied()
                .filter(|s| !got.contains_key(s))
                .collect();
            if missing.is_empty() {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "after 30 s rsyslog has not written {} of {} events, first missing seqs {:?}",
                missing.len(),
                want.len(),
                &missing[..missing.len().min(10)]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most 30 s) until `n` distinct seqs arrived; what arrived by then.
    pub fn wait_for_count(&self, n: usize) -> BTreeMap<u64, Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of SD-PARAM `name` in an RFC 5424 line (unescaping `\"`, `\\`, `\]`).
pub fn sd_param(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}=\""))? + name.len() + 3;
    let mut v = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => v.push(chars.next()?),
            '"' => return Some(v),
            c => v.push(c),
        }
    }
    None
}

// ---------------------------------------------------------------- NATS

/// `nats-server -js` on a free loopback port, its store in `store`.
pub struct Nats {
    bin: PathBuf,
    child: Child,
    pub port: u16,
    store: PathBuf,
    extra: Vec<String>,
}

impl Nats {
    pub fn start(bin: &Path, store: &Path, extra: &[&str]) -> Nats {
        let mut n = Nats {
            bin: bin.to_path_buf(),
            port: free_tcp_port(),
            store: store.to_path_buf(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: Command::new("true").spawn().unwrap(),
        };
        n.restart();
        n
    }

    pub fn restart(&mut self) {
        self.child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server");
        wait_listening(self.port, &mut self.child, "nats-server");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn client(&self, auth: &NatsAuth) -> NatsClient {
        NatsClient::connect(
            &format!("127.0.0.1:{}", self.port),
            auth,
            Duration::from_secs(10),
        )
        .expect("connecting to nats-server")
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The stream's messages: (Nats-Msg-Id, subject, event seq) of each, via the JetStream API.
pub fn stream_messages(c: &mut NatsClient, stream: &str) -> Vec<(String, String, u64)> {
    let info = c
        .js_api(&format!("$JS.API.STREAM.INFO.{stream}"), &json!({}))
        .unwrap();
    let n = info["state"]["messages"].as_u64().unwrap();
    let first = info["state"]["first_seq"].as_u64().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for s in first..first + n {
        let v = c
            .js_api(
                &format!("$JS.API.STREAM.MSG.GET.{stream}"),
                &json!({"seq": s}),
            )
            .unwrap();
        let m = &v["message"];
        let hdrs = String::from_utf8(b64.decode(m["hdrs"].as_str().unwrap()).unwrap()).unwrap();
        let id = hdrs
            .lines()
            .find_map(|l| l.strip_prefix("Nats-Msg-Id: "))
            .expect("Nats-Msg-Id header")
            .to_string();
        let data: Value =
            serde_json::from_slice(&b64.decode(m["data"].as_str().unwrap()).unwrap()).unwrap();
        out.push((
            id,
            m["subject"].as_str().unwrap().to_string(),
            data["seq"].as_u64().unwrap(),
        ));
    }
    out
}
