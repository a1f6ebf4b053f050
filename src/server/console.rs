//! The web console: its assets (embedded in the binary, no CDN), the login that turns a bearer
//! token into a session cookie, and the CSRF check on every state change made with that cookie.
//!
//! A session is a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! under TLS), bound to the token it was opened with: the session has that token's roles,
//! and the server keeps only the SHA-256 of the id. Requests authenticated by the cookie that
//! change state (any method but GET/HEAD/OPTIONS) must carry the session's CSRF token in
//! `X-CSRF-Token`; bearer-token requests need none (nothing ambient to forge). Login itself
//! takes only `application/json`, which a cross-site form cannot send.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::chain::{ct_eq, hex};

/// The cookie that carries the session id.
pub(crate) const COOKIE: &str = "auditlog_session";
/// The header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives without being renewed (a new login).
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; the oldest goes first when a login would exceed it.
const MAX_SESSIONS: usize = 10_000;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// The policy the console page is served under: nothing but this origin, no inline script or
/// style, no framing. A request can leave the machine only by the browser's own navigation.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

struct Session {
    /// Position of the token in the server's token table.
    token: usize,
    csrf: String,
    expires: Instant,
}

/// The open sessions, by SHA-256 of their id.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

/// A session that authenticated a request.
pub(crate) struct SessionRef {
    pub token: usize,
    pub csrf: String,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("operating system random source failed");
    hex(&b)
}

fn key_of(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for token `token`: returns its id (for the cookie) and CSRF token.
    pub fn open(&self, token: usize) -> (String, String) {
        let id = random_hex();
        let csrf = random_hex();
        let now = Instant::now();
        let mut m = self.map.lock();
        m.retain(|_, s| s.expires > now);
        if m.len() >= MAX_SESSIONS {
            if let Some(oldest) = m.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                m.remove(&oldest);
            }
        }
        m.insert(
            key_of(&id),
            Session {
                token,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// The live session whose id is `id`.
    pub fn get(&self, id: &str) -> Option<SessionRef> {
        let k = key_of(id);
        let mut m = self.map.lock();
        match m.get(&k) {
            Some(s) if s.expires > Instant::now() => Some(SessionRef {
                token: s.token,
                csrf: s.csrf.clone(),
            }),
            Some(_) => {
                m.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn close(&self, id: &str) {
        self.map.lock().remove(&key_of(id));
    }
}

/// The session id in the request's `Cookie` headers, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session (or, with `None`, the one that ends it).
pub(crate) fn set_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_TTL.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&v).expect("cookie value is ASCII")
}

/// Whether a request made with the session cookie may change state: safe methods always,
/// others only with the session's CSRF token.
pub(crate) fn csrf_ok(method: &Method, headers: &HeaderMap, session: &SessionRef) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let Some(presented) = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let (a, b): ([u8; 32], [u8; 32]) = (key_of(presented), key_of(&session.csrf));
    ct_eq(&a, &b)
}

fn asset(body: &'static str, content_type: &'static str, page: bool) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if page {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    r
}

pub(crate) async fn index_html() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8", true)
}

pub(crate) async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8", false)
}

pub(crate) async fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8", false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_find_and_close() {
        let s = Sessions::default();
        let (id, csrf) = s.open(3);
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!((got.token, got.csrf.as_str()), (3, csrf.as_str()));
        assert!(s.get("not-a-session").is_none());
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn cookie_is_found_among_others_and_flags_are_set() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; auditlog_session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("abc"));
        let c = set_cookie(Some("abc"), true);
        let c = c.to_str().unwrap();
        for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
            assert!(c.contains(flag), "{c}");
        }
        assert!(!set_cookie(Some("abc"), false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }

    #[test]
    fn state_changes_need_the_csrf_token() {
        let s = SessionRef {
            token: 0,
            csrf: "tok".into(),
        };
        let mut h = HeaderMap::new();
        assert!(csrf_ok(&Method::GET, &h, &s));
        assert!(!csrf_ok(&Method::POST, &h, &s));
        h.insert(CSRF_HEADER, HeaderValue::from_static("wrong"));
        assert!(!csrf_ok(&Method::POST, &h, &s));
        h.insert(CSRF_HEADER, HeaderValue::from_static("tok"));
        assert!(csrf_ok(&Method::POST, &h, &s));
    }
}
