//! A small loopback HTTP/1.1 receiver for the sinks' tests and figures: a thread per
//! connection, keep-alive, `Content-Length` bodies (gzip bodies are left as they are), each
//! request answered by a handler. Counts requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One request as received.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers a request: status and JSON body.
pub type Handler = dyn Fn(&HttpRequest) -> (u16, String) + Send + Sync;

/// A running receiver.
pub struct HttpRx {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub requests: Arc<AtomicU64>,
}

impl HttpRx {
    pub fn start(handler: Arc<Handler>) -> HttpRx {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let requests = Arc::new(AtomicU64::new(0));
        let reqs = requests.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(s) = conn else { continue };
                let (h, reqs) = (handler.clone(), reqs.clone());
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while let Some(req) = read_request(&mut r) {
                        reqs.fetch_add(1, Ordering::AcqRel);
                        let (status, body) = h(&req);
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if w.write_all(head.as_bytes()).is_err()
                            || w.write_all(body.as_bytes()).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        HttpRx { base, requests }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }
}

fn read_request(r: &mut impl BufRead) -> Option<HttpRequest> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k.eq_ignore_ascii_case("content-length") {
                len = v.parse().ok()?;
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(HttpRequest {
        method,
        path,
        headers,
        body,
    })
}
