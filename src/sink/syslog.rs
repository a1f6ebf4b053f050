//! The syslog destination: each event as an RFC 5424 message (the rendering of
//! [`crate::siem::syslog`]) over UDP (RFC 5426, one datagram per message), TCP or TLS
//! (RFC 5425) with RFC 6587 octet counting (`<len> <message>`).
//!
//! Syslog has no application acknowledgement. Over TCP and TLS the sink by default sends each
//! batch on its own connection, half-closes it and waits for the receiver to close its side:
//! the receiver has then read the batch to its end, and only then does the cursor advance
//! (`confirm: false` keeps one connection open and advances once the write succeeded, which
//! only proves the bytes reached the kernel; before each reuse the connection is checked
//! for a close or reset by the receiver, so a restarted receiver does not swallow a batch
//! written into the old connection, but a receiver dying just after a write still loses
//! what sat in its socket buffer). A receiver that does not close its side after the
//! half-close makes every confirmed batch time out and be resent: use `confirm: false`
//! with it. What the receiver does with a message after it
//! read it (its own queues, a crash before writing it) is out of reach: delivery is at least
//! once up to the receiver's reading. UDP is best effort: a datagram the network or the
//! receiver drops is lost without anyone knowing.

use serde::Deserialize;

/// The transport of a syslog destination.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    Udp,
    #[default]
    Tcp,
    Tls,
}

/// `{"type": "syslog", "address": "host:port", "protocol": "tcp"|"udp"|"tls", …}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SyslogDestination {
    /// `host:port` of the receiver (an IPv6 address in brackets).
    pub address: String,
    /// `tcp` (default), `udp` or `tls`.
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// TLS: PEM file of the CA certificates the receiver's certificate must chain to
    /// (default: the Mozilla roots of `webpki-roots`).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// TLS: the name the receiver's certificate must be valid for (default: the host of
    /// `address`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// TLS: a client certificate chain and its key (PEM), for receivers that
    /// authenticate senders.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    #[serde(default)]
    pub client_key_file: Option<String>,
    /// TCP/TLS: wait for the receiver to close each batch's connection before advancing
    /// the cursor (default true); see the module documentation.
    #[serde(default = "yes")]
    pub confirm: bool,
    /// HOSTNAME of the messages (default this machine's host name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Connect, write and confirm timeout in seconds (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// UDP: the largest datagram sent (default 65000 bytes); a larger message parks the
    /// sink rather than being cut.
    #[serde(default)]
    pub max_datagram_bytes: Option<usize>,
}

fn yes() -> bool {
    true
}

impl SyslogDestination {
    /// Checks the address and the TLS fields; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        host_port(&self.address).map_err(|m| format!("destination.address: {m}"))?;
        if self.protocol != SyslogProtocol::Tls {
            for (f, v) in [
                ("ca_file", &self.ca_file),
                ("server_name", &self.server_name),
                ("client_cert_file", &self.client_cert_file),
                ("client_key_file", &self.client_key_file),
            ] {
                if v.is_some() {
                    return Err(format!("destination.{f}: only for \"protocol\": \"tls\""));
                }
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(
                "destination.client_cert_file and client_key_file: give both or neither".into(),
            );
        }
        if let Some(n) = self.max_datagram_bytes {
            if !(480..=65507).contains(&n) {
                return Err("destination.max_datagram_bytes: between 480 and 65507".into());
            }
        }
        Ok(())
    }
}

/// Splits `host:port` (`[v6]:port` for IPv6).
pub(crate) fn host_port(addr: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (h, p) = rest
            .split_once("]:")
            .ok_or_else(|| format!("{addr:?}: expected [ipv6]:port"))?;
        (h, p)
    } else {
        addr.rsplit_once(':')
            .ok_or_else(|| format!("{addr:?}: expected host:port"))?
    };
    if host.is_empty() {
        return Err(format!("{addr:?}: the host is empty"));
    }
    let port: u16 =
        port.parse().ok().filter(|&p| p > 0).ok_or_else(|| {
            format!("{addr:?}: the port {port:?} is not a number from 1 to 65535")
        })?;
    Ok((host.to_string(), port))
}

#[cfg(feature = "sinks")]
pub use transport::SyslogTransport;

#[cfg(feature = "sinks")]
mod transport {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::{host_port, SyslogDestination, SyslogProtocol};
    use crate::error::{Error, Result};
    use crate::query::AuditLogEntry;
    use crate::siem::{self, FormatContext};
    use crate::sink::{Outcome, Transport};

    enum Conn {
        Tcp(TcpStream),
        Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    }

    impl Conn {
        fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
            match self {
                Conn::Tcp(s) => s.write_all(b),
                Conn::Tls(s) => s.write_all(b),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            match self {
                Conn::Tcp(s) => s.flush(),
                Conn::Tls(s) => s.flush(),
            }
        }
        /// Whether a kept connection still looks open: a receiver that went away (closed
        /// or reset) shows as a readable end of stream or an error. A syslog receiver sends
        /// nothing over TCP (any byte means the connection is not usable); over TLS the
        /// records it may send (TLS 1.3 session tickets) are processed, and a close_notify
        /// or end of stream means closed. Without this check a write into a dead connection
        /// can still succeed locally and the batch would be lost.
        fn alive(&mut self) -> bool {
            let sock = match self {
                Conn::Tcp(s) => &*s,
                Conn::Tls(s) => &s.sock,
            };
            if sock.set_nonblocking(true).is_err() {
                return false;
            }
            let open = match self {
                Conn::Tcp(s) => {
                    let mut b = [0u8; 1];
                    matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                }
                Conn::Tls(s) => loop {
                    match s.conn.read_tls(&mut s.sock) {
                        Ok(0) => break false,
                        Ok(_) => match s.conn.process_new_packets() {
                            Ok(st) if st.peer_has_closed() => break false,
                            Ok(_) => {}
                            Err(_) => break false,
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                        Err(_) => break false,
                    }
                },
            };
            let sock = match self {
                Conn::Tcp(s) => &*s,
                Conn::Tls(s) => &s.sock,
            };
            sock.set_nonblocking(false).is_ok() && open
        }
        /// Half-closes and reads until the receiver closed: `Ok` when it did so cleanly
        /// (it read everything), an error when it reset the connection or timed out.
        fn confirm(&mut self) -> std::io::Result<()> {
            let mut buf = [0u8; 512];
            match self {
                Conn::Tcp(s) => {
                    s.shutdown(std::net::Shutdown::Write)?;
                    loop {
                        if s.read(&mut buf)? == 0 {
                            return Ok(());
                        }
                    }
                }
                Conn::Tls(s) => {
                    s.conn.send_close_notify();
                    s.flush()?;
                    s.sock.shutdown(std::net::Shutdown::Write)?;
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => return Ok(()),
                            Ok(_) => {}
                            // A receiver closing the TCP connection without a close_notify
                            // (rsyslog does) still read everything before closing.
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                return Ok(())
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
    }

    /// Sends each batch as RFC 5424 messages; see the module documentation for what a
    /// delivered batch means per protocol.
    pub struct SyslogTransport {
        dest: SyslogDestination,
        ctx: FormatContext,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        timeout: Duration,
        conn: Option<Conn>,
        udp: Option<UdpSocket>,
    }

    fn read_pem(what: &str, path: &str) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|e| Error::Config(format!("{what} {path:?}: {e}")))
    }

    impl SyslogTransport {
        /// Checks the destination, loads the TLS files; connects lazily.
        pub fn new(dest: &SyslogDestination, log_id: &str) -> Result<SyslogTransport> {
            dest.validate().map_err(Error::Config)?;
            let mut ctx = FormatContext::new(log_id);
            if let Some(h) = &dest.hostname {
                ctx.host = h.clone();
            }
            let tls = if dest.protocol == SyslogProtocol::Tls {
                Some(tls_config(dest)?)
            } else {
                None
            };
            Ok(SyslogTransport {
                dest: dest.clone(),
                ctx,
                tls,
                timeout: Duration::from_secs(dest.timeout_secs.unwrap_or(30).max(1)),
                conn: None,
                udp: None,
            })
        }

        fn connect(&self) -> std::result::Result<Conn, Outcome> {
            let addrs = self
                .dest
                .address
                .to_socket_addrs()
                .map_err(|e| self.retry(format!("resolving: {e}")))?;
            let mut last = String::from("no address");
            for a in addrs {
                match TcpStream::connect_timeout(&a, self.timeout) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        let _ = s.set_read_timeout(Some(self.timeout));
                        let _ = s.set_write_timeout(Some(self.timeout));
                        return match &self.tls {
                            None => Ok(Conn::Tcp(s)),
                            Some((cfg, name)) => {
                                let c = rustls::ClientConnection::new(cfg.clone(), name.clone())
                                    .map_err(|e| self.retry(format!("TLS: {e}")))?;
                                let mut t = rustls::StreamOwned::new(c, s);
                                // Drive the handshake now, so that a certificate problem
                                // is told apart from a write failure.
                                while t.conn.is_handshaking() {
                                    if let Err(e) = t.conn.complete_io(&mut t.sock) {
                                        return Err(self.tls_error(e));
                                    }
                                }
                                Ok(Conn::Tls(Box::new(t)))
                            }
                        };
                    }
                    Err(e) => last = format!("connecting to {a}: {e}"),
                }
            }
            Err(self.retry(last))
        }

        fn retry(&self, m: String) -> Outcome {
            Outcome::Retry {
                resend: None,
                after: None,
                reason: format!("syslog {}: {m}", self.dest.address),
            }
        }

        /// A refused certificate parks the sink (it will not get better by retrying); other
        /// handshake failures are retried.
        fn tls_error(&self, e: std::io::Error) -> Outcome {
            let cert = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .is_some_and(|r| {
                    matches!(
                        r,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                });
            if cert {
                Outcome::Permanent {
                    reason: format!(
                        "syslog {}: TLS handshake: the receiver's certificate is refused: {e}",
                        self.dest.address
                    ),
                }
            } else {
                self.retry(format!("TLS handshake: {e}"))
            }
        }

        fn frames(&self, batch: &[AuditLogEntry]) -> Vec<u8> {
            let mut out = Vec::new();
            for e in batch {
                let m = siem::syslog(e, &self.ctx);
                out.extend_from_slice(m.len().to_string().as_bytes());
                out.push(b' ');
                out.extend_from_slice(m.as_bytes());
            }
            out
        }

        fn send_udp(&mut self, batch: &[AuditLogEntry]) -> Outcome {
            let max = self.dest.max_datagram_bytes.unwrap_or(65000);
            if self.udp.is_none() {
                let addr = match self.dest.address.to_socket_addrs() {
                    Ok(mut a) => a.next(),
                    Err(e) => return self.retry(format!("resolving: {e}")),
                };
                let Some(addr) = addr else {
                    return self.retry("resolving: no address".into());
                };
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                match UdpSocket::bind(local).and_then(|s| s.connect(addr).map(|_| s)) {
                    Ok(s) => self.udp = Some(s),
                    Err(e) => return self.retry(format!("UDP socket: {e}")),
                }
            }
            let sock = self.udp.as_ref().expect("bound above");
            for (i, e) in batch.iter().enumerate() {
                let m = siem::syslog(e, &self.ctx);
                if m.len() > max {
                    return Outcome::Permanent {
                        reason: format!(
                            "syslog {}: event seq {} is {} bytes as a syslog message, more than \
                             max_datagram_bytes {max}; use tcp or tls",
                            self.dest.address,
                            e.seq,
                            m.len()
                        ),
                    };
                }
                if let Err(err) = sock.send(m.as_bytes()) {
                    self.udp = None;
                    return Outcome::Retry {
                        resend: Some((i..batch.len()).collect()),
                        after: None,
                        reason: format!("syslog {} (udp): sending: {err}", self.dest.address),
                    };
                }
            }
            Outcome::Delivered
        }
    }

    fn tls_config(
        dest: &SyslogDestination,
    ) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
        let mut roots = rustls::RootCertStore::empty();
        match &dest.ca_file {
            Some(p) => {
                let pem = read_pem("destination.ca_file", p)?;
                let mut n = 0;
                for c in CertificateDer::pem_slice_iter(&pem) {
                    let c = c.map_err(|e| {
                        Error::Config(format!(
                            "destination.ca_file {p:?}: not PEM certificates: {e}"
                        ))
                    })?;
                    roots.add(c).map_err(|e| {
                        Error::Config(format!(
                            "destination.ca_file {p:?}: a certificate is refused: {e}"
                        ))
                    })?;
                    n += 1;
                }
                if n == 0 {
                    return Err(Error::Config(format!(
                        "destination.ca_file {p:?}: holds no certificate"
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        // ring, as the server's TLS (src/server/tls.rs): deprecated by rustls only for
        // lacking a post-quantum key exchange.
        #[allow(deprecated)]
        // ring, as the server's TLS (src/server/tls.rs) explains; deprecated by rustls only
        // for lacking post-quantum key exchange.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?
            .with_root_certificates(roots);
        let cfg = match (&dest.client_cert_file, &dest.client_key_file) {
            (Some(c), Some(k)) => {
                let pem = read_pem("destination.client_cert_file", c)?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| {
                        Error::Config(format!("destination.client_cert_file {c:?}: {e}"))
                    })?;
                let key =
                    PrivateKeyDer::from_pem_slice(&read_pem("destination.client_key_file", k)?)
                        .map_err(|e| {
                            Error::Config(format!("destination.client_key_file {k:?}: {e}"))
                        })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::Config(format!("destination.client_cert_file: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        let name = match &dest.server_name {
            Some(n) => n.clone(),
            None => host_port(&dest.address).map_err(Error::Config)?.0,
        };
        let name = ServerName::try_from(name.clone()).map_err(|e| {
            Error::Config(format!(
                "destination.server_name {name:?}: not a DNS name or IP address: {e}"
            ))
        })?;
        Ok((Arc::new(cfg), name))
    }

    impl Transport for SyslogTransport {
        fn send(&mut self, batch: &[AuditLogEntry]) -> Outcome {
            if self.dest.protocol == SyslogProtocol::Udp {
                return self.send_udp(batch);
            }
            let bytes = self.frames(batch);
            let mut conn = match self.conn.take().and_then(|mut c| c.alive().then_some(c)) {
                Some(c) => c,
                None => match self.connect() {
                    Ok(c) => c,
                    Err(o) => return o,
                },
            };
            if let Err(e) = conn.write_all(&bytes).and_then(|_| conn.flush()) {
                return self.retry(format!("writing {} bytes: {e}", bytes.len()));
            }
            if self.dest.confirm {
                if let Err(e) = conn.confirm() {
                    return self.retry(format!(
                        "the receiver did not close the connection cleanly after the batch \
                         (it may not have read it all): {e}"
                    ));
                }
            } else {
                self.conn = Some(conn);
            }
            Outcome::Delivered
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(host_port("logs:514").unwrap(), ("logs".into(), 514));
        assert_eq!(host_port("[::1]:6514").unwrap(), ("::1".into(), 6514));
        for bad in [
            "logs",
            ":514",
            "logs:0",
            "logs:70000",
            "[::1]6514",
            "logs:x",
        ] {
            assert!(host_port(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tls_fields_only_with_tls() {
        let d: SyslogDestination = serde_json::from_value(serde_json::json!({
            "address": "h:514", "protocol": "tls", "client_cert_file": "c.pem"
        }))
        .unwrap();
        assert!(d.validate().unwrap_err().contains("client_key_file"));
        let d: SyslogDestination = serde_json::from_value(serde_json::json!({
            "address": "h:514", "protocol": "udp", "server_name": "h"
        }))
        .unwrap();
        assert!(d
            .validate()
            .unwrap_err()
            .contains("destination.server_name"));
    }
}
