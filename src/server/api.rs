//! Routes and handlers. Each handler authenticates, runs its storage call on the blocking
//! pool, records the access, and answers JSON (errors as `{"error": {code, message,
//! param?}}`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Role;
use super::metrics::{LastVerify, LogGauges};
use super::App;
use crate::error::Error;
use crate::ingest::Admitted;
use crate::{AuditLogEntry, Checkpoint, ExportFormat, Query};

type AppState = Arc<App>;

/// The seed's two prefixes for the same API.
pub const PREFIX: &str = "/api/audit-logs";
pub const ENTERPRISE_PREFIX: &str = "/api/enterprise/audit-logs";

/// Lines per append call when ingesting a large body: bounds the memory of one batch and
/// lets earlier batches be durable while later ones are parsed.
const INGEST_CHUNK: usize = 4096;

pub(crate) fn router(app: AppState) -> Router {
    let mut r = Router::new();
    for p in [PREFIX, ENTERPRISE_PREFIX] {
        r = r
            .route(p, get(query_get).post(ingest))
            .route(&format!("{p}/query"), post(query_post))
            .route(&format!("{p}/filterdata"), get(filterdata))
            .route(&format!("{p}/export"), get(export))
            .route(&format!("{p}/verify"), get(verify_get).post(verify_post))
            .route(&format!("{p}/verify/run"), post(verify_run))
            .route(&format!("{p}/status"), get(status))
            .route(&format!("{p}/tail"), get(tail))
            .route(&format!("{p}/checkpoint"), get(checkpoint))
            .route(&format!("{p}/consistency"), get(consistency))
            .route(&format!("{p}/checkpoint/witness"), post(checkpoint_witness))
            .route(&format!("{p}/audit-hash"), post(audit_hash))
            .route(&format!("{p}/reports"), post(report_post))
            .route(&format!("{p}/{{event_id}}"), get(event_get))
            .route(&format!("{p}/{{event_id}}/verify"), get(event_verify))
            .route(&format!("{p}/{{event_id}}/proof"), get(event_proof));
    }
    r.route("/", get(super::console::index_html))
        .route("/console/app.js", get(super::console::app_js))
        .route("/console/app.css", get(super::console::app_css))
        .route("/console/login", post(console_login))
        .route("/console/logout", post(console_logout))
        .route("/console/session", get(console_session))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(app.clone(), csrf_guard))
        .route_layer(middleware::from_fn_with_state(app.clone(), track))
        .layer(DefaultBodyLimit::max(app.cfg.server.max_body_bytes))
        .with_state(app)
}

/// Refuses a state change made with a console session cookie but without the session's
/// CSRF token (403 `csrf`). Requests with an `Authorization` header carry their credential
/// explicitly and are not checked; neither are cookies of sessions that no longer exist
/// (they authorize nothing).
async fn csrf_guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key(header::AUTHORIZATION) {
        if let Some(s) =
            super::console::session_cookie(req.headers()).and_then(|id| app.sessions.get(id))
        {
            if !super::console::csrf_ok(req.method(), req.headers(), &s) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a change made with the console session needs its X-CSRF-Token header",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

// ---------------------------------------------------------------- errors

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    param: Option<String>,
    /// Merged into the body next to `error` (receipts of what was kept, for instance).
    extra: Option<serde_json::Map<String, Value>>,
    retry_after: Option<u64>,
    www_authenticate: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            param: None,
            extra: None,
            retry_after: None,
            www_authenticate: false,
        }
    }

    fn param(mut self, p: impl Into<String>) -> Self {
        self.param = Some(p.into());
        self
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let msg = e.to_string();
        match e {
            Error::InvalidQuery { param, message } => {
                ApiError::bad_request("invalid_parameter", format!("{param}: {message}"))
                    .param(param)
            }
            Error::BadLine { .. } => ApiError::bad_request("bad_line", msg),
            Error::InvalidEvent(_) => ApiError::bad_request("invalid_event", msg),
            Error::EventTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "event_too_large", msg)
            }
            Error::BadCheckpoint(_) => ApiError::bad_request("bad_checkpoint", msg),
            Error::Empty(_) => ApiError::new(StatusCode::CONFLICT, "empty_log", msg),
            Error::Pruned { .. } => ApiError::new(StatusCode::GONE, "pruned_by_retention", msg),
            Error::ReadOnly | Error::Poisoned(_) | Error::Locked { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "log_unavailable", msg)
            }
            Error::Io { ref source, .. } if source.raw_os_error() == Some(libc::ENOSPC) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", msg)
            }
            Error::BatchInterrupted { ref source, .. } => {
                let inner = ApiError::from(Error::Config(source.to_string()));
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "log_unavailable",
                    inner.message,
                )
            }
            _ => ApiError::internal(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = serde_json::Map::new();
        err.insert("code".into(), Value::from(self.code));
        err.insert("message".into(), Value::from(self.message));
        if let Some(p) = self.param {
            err.insert("param".into(), Value::from(p));
        }
        let mut body = self.extra.unwrap_or_default();
        body.insert("error".into(), Value::Object(err));
        let mut resp = (self.status, axum::Json(Value::Object(body))).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.www_authenticate {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"auditlog\""),
            );
        }
        resp
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// Runs a storage call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
        .map_err(ApiError::from)
}

fn json_ok(v: impl Serialize) -> Response {
    axum::Json(v).into_response()
}

// ---------------------------------------------------------------- middleware

/// Request metrics, the request timeout, and a structured log line per request.
async fn track(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().clone();
    let timeout = Duration::from_secs(app.cfg.server.request_timeout_secs.max(1));
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the request took longer than server.request_timeout_secs ({} s)",
                timeout.as_secs()
            ),
        )
        .into_response(),
    };
    let status = resp.status().as_u16();
    app.metrics.request(&route, method.as_str(), status);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    resp
}

async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// The `{event_id}` segment, or a JSON 400 (axum's own rejection is plain text).
fn event_id_of(p: std::result::Result<Path<String>, PathRejection>) -> ApiResult<String> {
    p.map(|Path(id)| id).map_err(|e| {
        ApiError::bad_request("bad_event_id", format!("event_id: {}", e.body_text()))
            .param("event_id")
    })
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}", uri.path()),
    )
}

// ---------------------------------------------------------------- authentication

/// Who is calling.
pub(crate) struct Caller {
    pub name: String,
    pub ip: IpAddr,
}

fn peer_ip(peer: SocketAddr) -> IpAddr {
    crate::index::normalize_ip(peer.ip())
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Appends a security event the server itself observed. Failure to append is logged, not
/// answered: the refusal stands either way.
async fn security_event(app: &AppState, line: Value) {
    let log = app.log.clone();
    let started = Instant::now();
    let text = line.to_string();
    match blocking(move || log.append_json(text.as_bytes())).await {
        Ok(_) => app.metrics.append_took(started.elapsed(), 1),
        Err(e) => tracing::error!(error = %e.message, "could not append a security event"),
    }
}

/// Authenticates a request for `role` on `route`.
async fn authorize(
    app: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    route: &str,
    role: Role,
) -> ApiResult<Caller> {
    let ip = peer_ip(peer);
    if let Some(secs) = app.guard.locked(ip) {
        app.metrics
            .locked_out_requests
            .fetch_add(1, Ordering::Relaxed);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "locked_out",
            format!("too many failed authentications from {ip}; try again in {secs} s"),
        );
        e.retry_after = Some(secs);
        return Err(e);
    }
    let presented = bearer(headers);
    let found = if headers.contains_key(header::AUTHORIZATION) {
        presented.and_then(|t| app.tokens.find(t))
    } else if let Some(id) = super::console::session_cookie(headers) {
        // A console session: its token's roles. An ended session is not a guess (its id
        // was ours), so it neither counts toward a lockout nor is recorded.
        match app.sessions.get(id).and_then(|s| app.tokens.get(s.token)) {
            Some(t) => Some(t),
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "session_expired",
                    "the console session has ended; log in again",
                ))
            }
        }
    } else {
        None
    };
    match found {
        None => {
            app.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            let reason = if headers.contains_key(header::AUTHORIZATION) {
                if presented.is_some() {
                    "unknown_token"
                } else {
                    "malformed_authorization_header"
                }
            } else {
                "missing_token"
            };
            let v = app.guard.auth_failed(ip);
            if v.record {
                security_event(
                    app,
                    json!({
                        "event_type": "authentication",
                        "action": "api_token_rejected",
                        "status": "failed",
                        "severity": "medium",
                        "actor": {"ip_address": ip.to_string()},
                        "resource": {"type": "audit_log_api", "id": route},
                        "details": {"reason": reason, "route": route,
                                    "suppressed_before": v.suppressed},
                    }),
                )
                .await;
            } else {
                app.metrics
                    .failure_events_suppressed
                    .fetch_add(1, Ordering::Relaxed);
            }
            if v.locked_now {
                app.metrics.lockouts.fetch_add(1, Ordering::Relaxed);
                security_event(
                    app,
                    json!({
                        "event_type": "authentication",
                        "action": "account_lockout",
                        "status": "blocked",
                        "severity": "high",
                        "actor": {"ip_address": ip.to_string()},
                        "resource": {"type": "audit_log_api", "id": route},
                        "details": {"reason": "repeated_failed_authentication",
                                    "threshold": app.cfg.server.lockout_threshold,
                                    "window_secs": app.cfg.server.lockout_window_secs,
                                    "lockout_secs": app.cfg.server.lockout_secs},
                    }),
                )
                .await;
            }
            let mut e = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                match reason {
                    "missing_token" => "this route needs `Authorization: Bearer <token>`",
                    "malformed_authorization_header" => {
                        "the Authorization header is not `Bearer <token>`"
                    }
                    _ => "the bearer token is not one of server.tokens",
                },
            );
            e.www_authenticate = true;
            Err(e)
        }
        Some(t) if !t.allows(role) => {
            app.metrics.denials.fetch_add(1, Ordering::Relaxed);
            let v = app.guard.denied();
            if v.record {
                security_event(
                    app,
                    json!({
                        "event_type": "authorization",
                        "action": "permission_denied",
                        "status": "blocked",
                        "severity": "medium",
                        "actor": {"user_id": t.name, "ip_address": ip.to_string()},
                        "resource": {"type": "audit_log_api", "id": route},
                        "details": {"required_role": role.as_str(), "route": route,
                                    "suppressed_before": v.suppressed},
                    }),
                )
                .await;
            } else {
                app.metrics
                    .failure_events_suppressed
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "token {:?} lacks the role {:?} that {route} needs",
                    t.name,
                    role.as_str()
                ),
            ))
        }
        Some(t) => Ok(Caller {
            name: t.name.clone(),
            ip,
        }),
    }
}

/// Appends the `data_access` event of a read. The read is refused (503) when it cannot be
/// recorded: nobody reads the log without the log knowing.
async fn record_access(
    app: &AppState,
    caller: &Caller,
    action: &str,
    route: &str,
    details: Value,
) -> ApiResult<()> {
    let line = json!({
        "event_type": "data_access",
        "action": action,
        "status": "success",
        "severity": "info",
        "actor": {"user_id": caller.name, "ip_address": caller.ip.to_string()},
        "resource": {"type": "audit_log", "id": route},
        "details": details,
    })
    .to_string();
    let log = app.log.clone();
    let started = Instant::now();
    blocking(move || log.append_json(line.as_bytes()))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "access_not_recorded",
                format!("the read could not be recorded in the log: {}", e.message),
            )
        })?;
    app.metrics.append_took(started.elapsed(), 1);
    app.metrics.access_events.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

// ---------------------------------------------------------------- query strings

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn url_decode(s: &str) -> ApiResult<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let v = b
                    .get(i + 1)
                    .copied()
                    .and_then(hex_val)
                    .zip(b.get(i + 2).copied().and_then(hex_val))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "bad_query_string",
                            format!("bad percent-escape at byte {i} of the query string"),
                        )
                    })?;
                out.push(v.0 << 4 | v.1);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("bad_query_string", "the query string is not UTF-8"))
}

/// Encodes a query-string component.
fn url_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn parse_params(raw: Option<&str>) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((url_decode(k)?, url_decode(v)?));
    }
    Ok(out)
}

/// The query parameters a query route takes (the rest are refused by name).
const QUERY_PARAMS: [&str; 30] = [
    "start",
    "start_date",
    "end",
    "end_date",
    "event_type",
    "event_types",
    "action",
    "actions",
    "status",
    "statuses",
    "severity",
    "severities",
    "user_id",
    "user_ids",
    "email",
    "emails",
    "ip",
    "ip_address",
    "ip_addresses",
    "resource_type",
    "resource_id",
    "limit",
    "order",
    "sort",
    "cursor",
    "page",
    "include_details",
    "format",
    "dimensions",
    "values_limit",
];

fn build_query(params: &[(String, String)], skip: &[&str]) -> ApiResult<Query> {
    let mut q = Query::new();
    for (k, v) in params {
        if skip.contains(&k.as_str()) {
            continue;
        }
        if !QUERY_PARAMS.contains(&k.as_str())
            || ["format", "dimensions", "values_limit"].contains(&k.as_str())
        {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("unknown query parameter `{k}`"),
            )
            .param(k.clone()));
        }
        q.set(k, v)?;
    }
    q.validate()?;
    Ok(q)
}

fn prefix_of(uri: &Uri) -> &'static str {
    if uri.path().starts_with(ENTERPRISE_PREFIX) {
        ENTERPRISE_PREFIX
    } else {
        PREFIX
    }
}

/// A page in the seed's shape, `next_page` a URL of the GET route.
#[derive(Serialize)]
struct PageOut<'a> {
    total_count: u64,
    returned_count: usize,
    page: u64,
    audit_logs: &'a [AuditLogEntry],
    next_page: Option<String>,
}

async fn run_query(
    app: &AppState,
    caller: &Caller,
    uri: &Uri,
    params: Vec<(String, String)>,
    route: &str,
    from_body: bool,
) -> ApiResult<Response> {
    let q = build_query(&params, &[]).map_err(|e| {
        let sent = |n: &str| params.iter().any(|(k, _)| k == n);
        rename_param(e, |p| match (from_body, p) {
            (true, _) => body_field(p).map(str::to_string),
            // The engine names a reversed range `end`: name it as the caller spelled it.
            (false, "start") if sent("start_date") && !sent("start") => Some("start_date".into()),
            (false, "end") if sent("end_date") && !sent("end") => Some("end_date".into()),
            _ => None,
        })
    })?;
    let log = app.log.clone();
    let page = blocking(move || log.query(&q)).await?;
    let next_page = page.next_page.as_ref().map(|c| {
        let mut s = String::from(prefix_of(uri));
        s.push('?');
        for (k, v) in params.iter().filter(|(k, _)| k != "cursor" && k != "page") {
            s.push_str(&url_encode(k));
            s.push('=');
            s.push_str(&url_encode(v));
            s.push('&');
        }
        s.push_str("cursor=");
        s.push_str(&url_encode(c));
        s
    });
    record_access(
        app,
        caller,
        "log_query",
        route,
        json!({
            "query": params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "total_count": page.total_count,
            "returned_count": page.returned_count,
        }),
    )
    .await?;
    Ok(json_ok(PageOut {
        total_count: page.total_count,
        returned_count: page.returned_count,
        page: page.page,
        audit_logs: &page.audit_logs,
        next_page,
    }))
}

// ---------------------------------------------------------------- handlers

async fn query_get(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = prefix_of(&uri);
    let caller = authorize(&app, &headers, peer, route, Role::Read).await?;
    let params = parse_params(uri.query())?;
    run_query(&app, &caller, &uri, params, route, false).await
}

/// The seed's `POST …/query` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    #[serde(default)]
    filters: BodyFilters,
    #[serde(default)]
    sort: Option<BodySort>,
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    include_details: Option<bool>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    page: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BodyFilters {
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    status: Vec<String>,
    #[serde(default)]
    severity: Vec<String>,
    #[serde(default)]
    date_range: Option<DateRange>,
    #[serde(default)]
    actors: Option<Actors>,
    #[serde(default)]
    resources: Option<Resources>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateRange {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Actors {
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    ip_addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resources {
    #[serde(default)]
    types: Vec<String>,
    #[serde(default)]
    ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodySort {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    order: Option<String>,
}

/// Parses a JSON body, naming the path of a bad or unknown field.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut err = ApiError::bad_request(
            "invalid_body",
            if path == "." {
                format!("request body: {inner}")
            } else {
                format!("request body field `{path}`: {inner}")
            },
        );
        if path != "." {
            err = err.param(path);
        }
        err
    })
}

fn body_bytes(body: std::result::Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body is over server.max_body_bytes ({limit} bytes)"),
            )
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })
}

/// The `POST …/query` body field a query parameter came from (`QueryBody::params`).
fn body_field(param: &str) -> Option<&'static str> {
    Some(match param {
        "event_type" => "filters.event_types",
        "action" => "filters.actions",
        "status" => "filters.status",
        "severity" => "filters.severity",
        "start" => "filters.date_range.start",
        "end" => "filters.date_range.end",
        "user_id" => "filters.actors.user_ids",
        "email" => "filters.actors.emails",
        "ip" => "filters.actors.ip_addresses",
        "resource_type" => "filters.resources.types",
        "resource_id" => "filters.resources.ids",
        "order" => "sort.order",
        "limit" => "limit",
        "include_details" => "include_details",
        "cursor" => "cursor",
        "page" => "page",
        _ => return None,
    })
}

/// `e` with its `param` (and the message's `param: ` prefix) renamed by `f`, where `f` has a
/// better name: the name the caller used.
fn rename_param(mut e: ApiError, f: impl Fn(&str) -> Option<String>) -> ApiError {
    if let Some(old) = e.param.clone() {
        if let Some(new) = f(&old) {
            if let Some(rest) = e.message.strip_prefix(&format!("{old}: ")) {
                e.message = format!("{new}: {rest}");
            }
            e.param = Some(new);
        }
    }
    e
}

impl QueryBody {
    fn params(self) -> ApiResult<Vec<(String, String)>> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, vals: Vec<String>| {
            p.extend(vals.into_iter().map(|v| (k.to_string(), v)));
        };
        let f = self.filters;
        put("event_type", f.event_types);
        put("action", f.actions);
        put("status", f.status);
        put("severity", f.severity);
        if let Some(d) = f.date_range {
            put("start", d.start.into_iter().collect());
            put("end", d.end.into_iter().collect());
        }
        if let Some(a) = f.actors {
            put("user_id", a.user_ids);
            put("email", a.emails);
            put("ip", a.ip_addresses);
        }
        if let Some(r) = f.resources {
            put("resource_type", r.types);
            put("resource_id", r.ids);
        }
        if let Some(s) = self.sort {
            if let Some(field) = s.field {
                if field != "timestamp" {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        format!("sort.field: {field:?}; results sort by timestamp only"),
                    )
                    .param("sort.field"));
                }
            }
            put("order", s.order.into_iter().collect());
        }
        put(
            "limit",
            self.limit.map(|l| l.to_string()).into_iter().collect(),
        );
        put(
            "include_details",
            self.include_details
                .map(|b| b.to_string())
                .into_iter()
                .collect(),
        );
        put("cursor", self.cursor.into_iter().collect());
        put(
            "page",
            self.page.map(|n| n.to_string()).into_iter().collect(),
        );
        Ok(p)
    }
}

async fn query_post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/query", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let body = body_bytes(body, app.cfg.server.max_body_bytes)?;
    let params = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        parse_body::<QueryBody>(&body)?.params()?
    };
    run_query(&app, &caller, &uri, params, &route, true).await
}

async fn event_get(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    id: std::result::Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/{{event_id}}", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let id = event_id_of(id)?;
    let entry = find(&app, &id).await?;
    record_access(
        &app,
        &caller,
        "log_read",
        &route,
        json!({"event_id": id, "seq": entry.seq}),
    )
    .await?;
    Ok(json_ok(entry))
}

async fn find(app: &AppState, id: &str) -> ApiResult<AuditLogEntry> {
    let log = app.log.clone();
    let owned = id.to_string();
    blocking(move || log.find_event(&owned))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no event with event_id {id:?}"),
            )
            .param("event_id")
        })
}

async fn event_verify(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    id: std::result::Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/{{event_id}}/verify", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let id = event_id_of(id)?;
    let entry = find(&app, &id).await?;
    record_access(
        &app,
        &caller,
        "log_verify_event",
        &route,
        json!({"event_id": id, "seq": entry.seq, "valid": entry.verification.verified}),
    )
    .await?;
    Ok(json_ok(json!({
        "event_id": entry.event.event_id,
        "seq": entry.seq,
        "valid": entry.verification.verified,
        "hash": entry.verification.hash,
    })))
}

/// `GET …/{event_id}/proof[?tree_size=N]`: the event's Merkle inclusion proof against the
/// current tree (signed first when `server.checkpoint_signing_key` is set) or the tree of
/// `tree_size` leaves (docs/TRANSPARENCY.md).
async fn event_proof(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    id: std::result::Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/{{event_id}}/proof", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let id = event_id_of(id)?;
    let mut tree_size: Option<u64> = None;
    for (k, v) in parse_params(uri.query())? {
        if k != "tree_size" {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("`{k}` is not a parameter of the proof route (only tree_size)"),
            )
            .param(k));
        }
        if tree_size.is_some() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "tree_size: given more than once",
            )
            .param("tree_size"));
        }
        let n = v
            .parse::<u64>()
            .ok()
            .filter(|_| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("tree_size: {v:?} is not a decimal number of leaves"),
                )
                .param("tree_size")
            })?;
        tree_size = Some(n);
    }
    let entry = find(&app, &id).await?;
    let seq = entry.seq;
    let a = app.clone();
    let proof = blocking(move || {
        crate::transparency::prove_current(&a.log, seq, tree_size, a.signer.as_deref())
    })
    .await?;
    record_access(
        &app,
        &caller,
        "log_proof",
        &route,
        json!({"event_id": id, "seq": seq, "tree_size": proof.tree_size}),
    )
    .await?;
    Ok(json_ok(proof))
}

/// `GET …/consistency?old=N[&new=M]`: the RFC 9162 consistency proof from the tree of N
/// leaves to the tree of M (default: the current tree, signed first when
/// `server.checkpoint_signing_key` is set), docs/TRANSPARENCY.md.
async fn consistency(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/consistency", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let (mut old, mut new): (Option<u64>, Option<u64>) = (None, None);
    for (k, v) in parse_params(uri.query())? {
        let slot = match k.as_str() {
            "old" => &mut old,
            "new" => &mut new,
            _ => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("`{k}` is not a parameter of the consistency route (old, new)"),
                )
                .param(k))
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("{k}: given more than once"),
            )
            .param(k));
        }
        let n = v
            .parse::<u64>()
            .ok()
            .filter(|_| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("{k}: {v:?} is not a decimal tree size"),
                )
                .param(k.clone())
            })?;
        *slot = Some(n);
    }
    let old = old.ok_or_else(|| {
        ApiError::bad_request("missing_parameter", "old: the old tree size is required")
            .param("old")
    })?;
    let a = app.clone();
    let proof = blocking(move || {
        crate::transparency::prove_consistency_current(&a.log, old, new, a.signer.as_deref())
    })
    .await?;
    record_access(
        &app,
        &caller,
        "log_consistency",
        &route,
        json!({"old_size": proof.old_size, "new_size": proof.new_size}),
    )
    .await?;
    Ok(json_ok(proof))
}

/// `POST …/checkpoint/witness` (admin): signs the current tree and asks `server.witnesses`
/// to cosign it (C2SP tlog-witness); the cosignatures are kept with the checkpoint, so later
/// proofs carry them. docs/TRANSPARENCY.md.
async fn checkpoint_witness(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/checkpoint/witness", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Admin).await?;
    if let Some((k, _)) = parse_params(uri.query())?.into_iter().next() {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("`{k}` is not a parameter of the witness route (it takes none)"),
        )
        .param(k));
    }
    let Some(signer) = app.signer.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_configured",
            "no server.checkpoint_signing_key: the server signs no checkpoints to witness",
        ));
    };
    if app.witnesses.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_configured",
            "server.witnesses is empty: no witness to ask",
        ));
    }
    let a = app.clone();
    let (note, outcomes) = blocking(move || {
        crate::transparency::witness_current(&a.log, &signer, &a.witnesses, Duration::from_secs(10))
    })
    .await?;
    let cosigned = outcomes.iter().filter(|o| o.result.is_ok()).count();
    let need = app.cfg.server.witness_quorum.unwrap_or(app.witnesses.len());
    let list: Vec<Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Ok(c) => json!({"witness": o.witness, "cosigned_at": c.timestamp}),
            Err(e) => json!({"witness": o.witness, "error": e}),
        })
        .collect();
    record_access(
        &app,
        &caller,
        "checkpoint_witness",
        &route,
        json!({"cosignatures": cosigned, "quorum": need}),
    )
    .await?;
    Ok(json_ok(json!({
        "checkpoint": note,
        "witnesses": list,
        "cosignatures": cosigned,
        "quorum": need,
        "quorum_met": cosigned >= need,
    })))
}

async fn filterdata(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/filterdata", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let params = parse_params(uri.query())?;
    let mut dims: Vec<String> = Vec::new();
    let mut limit = 100usize;
    for (k, v) in &params {
        match k.as_str() {
            "dimensions" | "dimension" => dims.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "values_limit" => {
                limit = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=crate::MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_parameter",
                            format!("values_limit: {v:?}; expected 1 to {}", crate::MAX_LIMIT),
                        )
                        .param("values_limit")
                    })?
            }
            _ => {}
        }
    }
    if dims.is_empty() {
        dims = crate::FACET_DIMENSIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    for (k, _) in &params {
        if ["limit", "cursor", "page", "order", "include_details"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("`{k}` does not apply to filterdata (use values_limit)"),
            )
            .param(k.clone()));
        }
    }
    let q = build_query(&params, &["dimensions", "dimension", "values_limit"])?;
    let log = app.log.clone();
    let d2 = dims.clone();
    let facets = blocking(move || {
        let refs: Vec<&str> = d2.iter().map(String::as_str).collect();
        log.facets(&q, &refs, limit)
    })
    .await?;
    record_access(
        &app,
        &caller,
        "log_filterdata",
        &route,
        json!({"dimensions": dims}),
    )
    .await?;
    let mut out = serde_json::Map::new();
    for f in facets {
        out.insert(
            f.dimension.clone(),
            json!({"distinct": f.distinct, "values": f.values}),
        );
    }
    Ok(json_ok(json!({ "dimensions": out })))
}

/// Chunks of an export on their way to the client.
struct ExportBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl futures_core::Stream for ExportBody {
    type Item = std::io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A `Write` that sends 64 KiB chunks down a bounded channel: the export runs at the speed
/// the client reads, in constant memory.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const EXPORT_CHUNK: usize = 64 << 10;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(EXPORT_CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= EXPORT_CHUNK {
            self.send()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

async fn export(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/export", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Export).await?;
    let params = parse_params(uri.query())?;
    let mut format = ExportFormat::Jsonl;
    for (k, v) in &params {
        if k == "format" {
            format = v.parse()?;
        }
        if ["limit", "cursor", "page"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(
                "unknown_parameter",
                format!("`{k}` does not apply to export: it streams every match"),
            )
            .param(k.clone()));
        }
    }
    let mut q = build_query(&params, &["format"])?;
    // An export is in log order unless asked otherwise.
    if !params.iter().any(|(k, _)| k == "order" || k == "sort") {
        q.order = crate::Order::Asc;
    }
    record_access(
        &app,
        &caller,
        "log_export",
        &route,
        json!({
            "format": format.name(),
            "query": params.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        }),
    )
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let log = app.log.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(EXPORT_CHUNK),
        };
        let r = log.export(&q, format, &mut w).and_then(|s| {
            std::io::Write::flush(&mut w)
                .map(|_| s)
                .map_err(|e| Error::io("sending the export", std::path::Path::new("-"), e))
        });
        if let Err(e) = r {
            tracing::error!(error = %e, "export failed part-way; the response is cut short");
            // An error item aborts the chunked body, so the client sees a failed transfer
            // rather than a complete-looking file.
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let (ctype, ext) = (format.content_type(), format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"audit-logs.{ext}\""),
            ),
        ],
        Body::from_stream(ExportBody { rx }),
    )
        .into_response())
}

/// One ingested item: its bytes and the line it starts on.
struct Item<'a> {
    line: u64,
    bytes: &'a [u8],
}

/// Splits a body into events: a JSON array of objects, or one or more JSON values separated
/// by whitespace (a single object, pretty-printed or not, or NDJSON). A syntax error ends the
/// list; it is returned with the items before it, which are kept.
fn split_body(body: &[u8]) -> (Vec<Item<'_>>, Option<ApiError>) {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    // The physical line of an offset, counted incrementally (offsets only grow).
    let (mut line, mut counted) = (1u64, 0usize);
    let mut line_at = |off: usize| {
        line += body[counted..off].iter().filter(|&&b| b == b'\n').count() as u64;
        counted = off;
        line
    };
    if body.get(start) == Some(&b'[') {
        return match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(body) {
            Ok(v) => (
                v.into_iter()
                    .enumerate()
                    .map(|(i, r)| Item {
                        line: i as u64 + 1,
                        bytes: r.get().as_bytes(),
                    })
                    .collect(),
                None,
            ),
            Err(e) => (
                Vec::new(),
                Some(
                    ApiError::bad_request(
                        "invalid_body",
                        format!("the JSON array is malformed: {e}; nothing was appended"),
                    )
                    .param(format!("line {}", e.line())),
                ),
            ),
        };
    }
    let mut items = Vec::new();
    let mut stream =
        serde_json::Deserializer::from_slice(body).into_iter::<&serde_json::value::RawValue>();
    loop {
        let at = stream.byte_offset();
        match stream.next() {
            None => return (items, None),
            Some(Ok(r)) => {
                let skip = body[at..]
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(0);
                items.push(Item {
                    line: line_at(at + skip),
                    bytes: r.get().as_bytes(),
                })
            }
            Some(Err(e)) => {
                return (
                    items,
                    Some(
                        ApiError::bad_request(
                            "bad_line",
                            format!("line {}: not valid JSON: {e}", e.line()),
                        )
                        .param(format!("line {}", e.line())),
                    ),
                )
            }
        }
    }
}

fn receipt_json(r: &crate::Receipt) -> Value {
    json!({"seq": r.seq, "event_id": r.event_id, "hash": r.hash_string()})
}

async fn ingest(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let route = prefix_of(&uri);
    let _caller = authorize(&app, &headers, peer, route, Role::Ingest).await?;
    if app.cfg.audit_logs.disabled {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_logging_disabled",
            "audit logging is disabled (audit_logs.disabled, BIFROST_AUDIT_LOGS_ENABLED=false)",
        ));
    }
    let body = body_bytes(body, app.cfg.server.max_body_bytes)?;
    let app2 = app.clone();
    let (status, out) = tokio::task::spawn_blocking(move || ingest_blocking(&app2, &body))
        .await
        .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?;
    match status {
        None => Ok(json_ok(out)),
        Some(mut err) => {
            err.extra = Some(out);
            Err(err)
        }
    }
}

/// Appends what the body holds; returns the error (if any) and the receipts of what was
/// kept before it.
fn ingest_blocking(app: &App, body: &[u8]) -> (Option<ApiError>, serde_json::Map<String, Value>) {
    let (items, mut error) = split_body(body);
    if items.is_empty() && error.is_none() {
        error = Some(ApiError::bad_request(
            "empty_body",
            "the body holds no event: send one JSON object, an array of them, or NDJSON",
        ));
    }
    let mut receipts: Vec<Value> = Vec::new();
    let mut dropped = 0u64;
    let mut failed: Option<ApiError> = None;
    'chunks: for chunk in items.chunks(INGEST_CHUNK) {
        let mut lines: Vec<(u64, Cow<'_, [u8]>)> = Vec::with_capacity(chunk.len());
        for it in chunk {
            match app.policy.apply(it.bytes) {
                Ok(Admitted::Keep(b)) => lines.push((it.line, b)),
                Ok(Admitted::Dropped { .. }) => dropped += 1,
                Err(e) => {
                    // Keep what came before this line, then report it.
                    let mut err = ApiError::from(e);
                    err.message = format!("line {}: {}", it.line, err.message);
                    err.param = Some(format!("line {}", it.line));
                    failed = Some(err);
                    break;
                }
            }
        }
        let mut rest: &[(u64, Cow<'_, [u8]>)] = &lines;
        while !rest.is_empty() {
            let refs: Vec<&[u8]> = rest.iter().map(|(_, b)| b.as_ref()).collect();
            let started = Instant::now();
            match app.log.append_json_batch(&refs) {
                Ok(r) => {
                    app.metrics.append_took(started.elapsed(), r.len() as u64);
                    receipts.extend(r.iter().map(receipt_json));
                    rest = &[];
                }
                Err(Error::BadLine { line, .. }) => {
                    // Append the lines before the bad one, then name it with its own error.
                    let bad = (line as usize).saturating_sub(1).min(rest.len() - 1);
                    let (good, tail) = rest.split_at(bad);
                    if !good.is_empty() {
                        let refs: Vec<&[u8]> = good.iter().map(|(_, b)| b.as_ref()).collect();
                        let started = Instant::now();
                        match app.log.append_json_batch(&refs) {
                            Ok(r) => {
                                app.metrics.append_took(started.elapsed(), r.len() as u64);
                                receipts.extend(r.iter().map(receipt_json));
                            }
                            Err(e) => {
                                failed = Some(ApiError::from(e));
                                break 'chunks;
                            }
                        }
                    }
                    let (physical, bytes) = &tail[0];
                    let why = app
                        .log
                        .check_json(bytes)
                        .err()
                        .unwrap_or_else(|| Error::InvalidEvent("rejected".into()));
                    let mut err = ApiError::from(why);
                    err.message = format!("line {physical}: {}", err.message);
                    err.param = Some(format!("line {physical}"));
                    failed = Some(err);
                    break 'chunks;
                }
                Err(e) => {
                    failed = Some(ApiError::from(e));
                    break 'chunks;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }
    app.metrics
        .dropped_by_policy
        .fetch_add(dropped, Ordering::Relaxed);
    let mut out = serde_json::Map::new();
    out.insert("accepted".into(), Value::from(receipts.len()));
    out.insert("dropped".into(), Value::from(dropped));
    out.insert("receipts".into(), Value::Array(receipts));
    (failed.or(error), out)
}

async fn verify_get(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/verify", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let params = parse_params(uri.query())?;
    let mut check_indexes = true;
    for (k, v) in &params {
        match (k.as_str(), v.as_str()) {
            ("skip_indexes", "true" | "1" | "") => check_indexes = false,
            ("skip_indexes", "false" | "0") => {}
            _ => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown parameter `{k}={v}` (verify takes skip_indexes=true)"),
                )
                .param(k.clone()))
            }
        }
    }
    run_verify(&app, &caller, &route, Vec::new(), check_indexes).await
}

async fn verify_post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/verify", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let body = body_bytes(body, app.cfg.server.max_body_bytes)?;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Checkpoint),
        Many(Vec<Checkpoint>),
    }
    let cps = match parse_body::<OneOrMany>(&body) {
        Ok(OneOrMany::One(c)) => vec![c],
        Ok(OneOrMany::Many(v)) => v,
        Err(_) => {
            return Err(ApiError::bad_request(
                "bad_checkpoint",
                "the body is not a checkpoint (from GET …/checkpoint or `auditlog checkpoint`) or an array of them",
            ))
        }
    };
    run_verify(&app, &caller, &route, cps, true).await
}

async fn run_verify(
    app: &AppState,
    caller: &Caller,
    route: &str,
    cps: Vec<Checkpoint>,
    check_indexes: bool,
) -> ApiResult<Response> {
    let log = app.log.clone();
    let n = cps.len();
    let report = blocking(move || log.verify_with_options(&cps, check_indexes)).await?;
    let now = chrono::Utc::now();
    app.metrics.verified(LastVerify {
        unix_seconds: now.timestamp_micros() as f64 / 1e6,
        ok: report.ok,
        records: report.records,
        failure: report.failure.as_ref().map(|f| f.to_string()),
    });
    record_access(
        app,
        caller,
        "log_verify",
        route,
        json!({"ok": report.ok, "records": report.records, "external_checkpoints": n}),
    )
    .await?;
    Ok(json_ok(report))
}

async fn checkpoint(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/checkpoint", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let log = app.log.clone();
    let cp = blocking(move || log.checkpoint()).await?;
    app.metrics.checkpoints.fetch_add(1, Ordering::Relaxed);
    record_access(
        &app,
        &caller,
        "checkpoint_read",
        &route,
        json!({"seq": cp.seq}),
    )
    .await?;
    Ok(json_ok(cp))
}

async fn audit_hash(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/audit-hash", prefix_of(&uri));
    authorize(&app, &headers, peer, &route, Role::Read).await?;
    let body = body_bytes(body, app.cfg.server.max_body_bytes)?;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct HashBody {
        value: String,
    }
    let b: HashBody = parse_body(&body)?;
    let h = app.policy.field_hash(b.value.as_bytes()).map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_configured",
            "no audit_logs.field_hmac_key is configured, so no field is hashed",
        )
    })?;
    Ok(json_ok(json!({ "hash": h })))
}

// ---------------------------------------------------------------- console and status

fn session_json(app: &App, token: usize, csrf: &str) -> Value {
    let t = app.tokens.get(token);
    json!({
        "name": t.map(|t| t.name.as_str()),
        "roles": t.map(|t| t.roles().iter().map(|r| r.as_str()).collect::<Vec<_>>()),
        "csrf_token": csrf,
    })
}

/// `POST /console/login` `{"token": …}`: a session cookie for a token with the `read` role.
/// The token is checked exactly as a bearer token is (lockout, recorded failures).
async fn console_login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_body {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "log in with Content-Type: application/json and {\"token\": \"…\"}",
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        token: String,
    }
    let login: Login = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_body",
            format!("login body: {e}; expected {{\"token\": \"…\"}}"),
        )
        .param("token")
    })?;
    let token = login.token.trim();
    let mut as_bearer = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        ApiError::bad_request("bad_body", "token: not a valid header value").param("token")
    })?;
    as_bearer.insert(header::AUTHORIZATION, value);
    let caller = authorize(&app, &as_bearer, peer, "/console/login", Role::Read).await?;
    let index = app
        .tokens
        .position(token)
        .ok_or_else(|| ApiError::internal("token vanished"))?;
    let (id, csrf) = app.sessions.open(index);
    security_event(
        &app,
        json!({
            "event_type": "authentication",
            "action": "console_login",
            "status": "success",
            "severity": "info",
            "actor": {"user_id": caller.name, "ip_address": caller.ip.to_string()},
            "resource": {"type": "audit_log_console", "id": "/console/login"},
            "details": {"session_ttl_secs": super::console::SESSION_TTL.as_secs()},
        }),
    )
    .await;
    let mut resp = json_ok(session_json(&app, index, &csrf));
    let secure = app.cfg.server.tls.is_some();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        super::console::set_cookie(Some(&id), secure),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `POST /console/logout`: ends the session (the CSRF check has run by then).
async fn console_logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = super::console::session_cookie(&headers) {
        app.sessions.close(id);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        super::console::set_cookie(None, app.cfg.server.tls.is_some()),
    );
    resp
}

/// `GET /console/session`: who the session is, and its CSRF token; 401 without one.
async fn console_session(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let s = super::console::session_cookie(&headers)
        .and_then(|id| app.sessions.get(id))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "no_session",
                "not logged in to the console",
            )
        })?;
    let mut resp = json_ok(session_json(&app, s.token, &s.csrf));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

fn rfc3339_of_unix(secs: f64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros((secs * 1e6) as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `GET …/status`: what the console's status bar shows. Reads no record, so it is not
/// recorded as an access.
async fn status(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/status", prefix_of(&uri));
    authorize(&app, &headers, peer, &route, Role::Read).await?;
    if let Some(q) = uri.query().filter(|q| !q.is_empty()) {
        let k = q.split(['=', '&']).next().unwrap_or(q).to_string();
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown parameter `{k}` (status takes none)"),
        )
        .param(k));
    }
    let log = app.log.clone();
    let (s, last_cp) = blocking(move || {
        let s = log.stats()?;
        let last = crate::checkpoint::read_log(log.dir())
            .ok()
            .and_then(|l| {
                l.checkpoints
                    .into_iter()
                    .rev()
                    .find(|c| c.log_id == s.log_id)
            })
            .map(|c| json!({"seq": c.seq, "at": c.time}));
        Ok((s, last))
    })
    .await?;
    let a = &app.cfg.audit_logs;
    Ok(json_ok(json!({
        "events": s.events,
        "first_seq": s.first_seq,
        "last_seq": s.last_seq,
        "durable_seq": s.durable_seq,
        "segments": s.segments,
        "bytes": s.bytes,
        "data_bytes": s.data_bytes,
        "read_only": s.read_only,
        "last_verify": app.metrics.last_verify().map(|v| json!({
            "ok": v.ok, "at": rfc3339_of_unix(v.unix_seconds), "records": v.records,
            "failure": v.failure})),
        "last_checkpoint": last_cp,
        "retention": {
            "retention_days": (a.retention_days > 0).then_some(a.retention_days),
            "archive_days": a.archive_days,
            "last_run": s.last_retention,
            "holds": s.holds,
        },
        "sinks": Value::Null,
    })))
}

/// `POST …/verify/run` (admin): the console's "verify now" — the whole log verified; the
/// result becomes the server's last verification (status bar, `/metrics`).
async fn verify_run(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/verify/run", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Admin).await?;
    run_verify(&app, &caller, &route, Vec::new(), true).await
}

/// One server-sent event.
fn sse(event: &str, id: Option<u64>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        s.push_str(&format!("id: {id}\n"));
    }
    s.push_str(&format!("event: {event}\n"));
    for line in data.lines() {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

/// Events sent per storage call while a tail catches up.
const TAIL_BATCH: u64 = 256;
/// How often the tail looks for new records.
const TAIL_POLL: Duration = Duration::from_millis(200);
/// A comment line this often keeps proxies from closing an idle tail.
const TAIL_KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET …/tail?after_seq=N`: every record after `N` (default: from now on) as server-sent
/// events named `audit`, each an entry in the query's shape with `id` = seq, as they are
/// appended. `Last-Event-ID` resumes a dropped stream. Recorded once, as a `data_access`.
async fn tail(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
) -> ApiResult<Response> {
    let route = format!("{}/tail", prefix_of(&uri));
    let caller = authorize(&app, &headers, peer, &route, Role::Read).await?;
    let mut after: Option<u64> = None;
    for (k, v) in parse_params(uri.query())? {
        match k.as_str() {
            "after_seq" => {
                after = Some(v.trim().parse().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("after_seq: {v:?} is not a sequence number"),
                    )
                    .param("after_seq")
                })?)
            }
            _ => {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown parameter `{k}` (tail takes after_seq)"),
                )
                .param(k))
            }
        }
    }
    if let Some(id) = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        after = Some(id);
    }
    let mut next = match after {
        Some(a) => a.saturating_add(1),
        None => app.log.next_seq(),
    };
    record_access(&app, &caller, "log_tail", &route, json!({"from_seq": next})).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(64);
    let mut closing = app.closing.subscribe();
    let app2 = app.clone();
    tokio::spawn(async move {
        let hello = json!({"from_seq": next}).to_string();
        if tx.send(Ok(sse("hello", None, &hello))).await.is_err() {
            return;
        }
        let mut quiet_since = Instant::now();
        loop {
            if *closing.borrow() {
                return;
            }
            let end = app2.log.next_seq();
            while next < end {
                let upto = end.min(next + TAIL_BATCH);
                let (log, from) = (app2.log.clone(), next);
                let got = tokio::task::spawn_blocking(move || {
                    (from..upto)
                        .map(|seq| log.event_at(seq))
                        .collect::<Vec<_>>()
                })
                .await;
                let Ok(entries) = got else { return };
                for e in entries {
                    let chunk = match e {
                        Ok(Some(entry)) => match serde_json::to_string(&entry) {
                            Ok(text) => sse("audit", Some(entry.seq), &text),
                            Err(_) => continue,
                        },
                        // Removed by retention meanwhile: nothing to send.
                        Ok(None) => continue,
                        Err(err) => {
                            let text = json!({"error": err.to_string()}).to_string();
                            let _ = tx.send(Ok(sse("error", None, &text))).await;
                            return;
                        }
                    };
                    if tx.send(Ok(chunk)).await.is_err() {
                        return;
                    }
                }
                next = upto;
                quiet_since = Instant::now();
            }
            if quiet_since.elapsed() >= TAIL_KEEPALIVE {
                if tx
                    .send(Ok(Bytes::from_static(b": keepalive\n\n")))
                    .await
                    .is_err()
                {
                    return;
                }
                quiet_since = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep(TAIL_POLL) => {}
                _ = closing.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(ExportBody { rx }),
    )
        .into_response())
}

async fn health(State(app): State<AppState>) -> Response {
    let stats = app.log.next_seq();
    json_ok(json!({"status": "ok", "next_seq": stats}))
}

async fn metrics(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    authorize(&app, &headers, peer, "/metrics", Role::Read).await?;
    let log = app.log.clone();
    let s = blocking(move || log.stats()).await?;
    let text = app.metrics.render(&LogGauges {
        events: s.events,
        segments: s.segments,
        bytes: s.bytes,
        index_memory_bytes: s.index_memory_bytes,
        next_seq: app.log.next_seq(),
    });
    let sinks = app
        .sinks
        .lock()
        .as_ref()
        .map(|s| s.statuses())
        .unwrap_or_default();
    let text = text + &super::metrics::render_sinks(&sinks);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn openapi(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    method: Method,
) -> ApiResult<Response> {
    let _ = method;
    authorize(&app, &headers, peer, "/api/openapi.json", Role::Read).await?;
    Ok(json_ok(super::openapi::document()))
}

// ---------------------------------------------------------------- reports

/// A report needs `read` or `export`: a token with only `export` asks for `export`.
fn report_role(app: &AppState, headers: &HeaderMap) -> Role {
    let token = if headers.contains_key(header::AUTHORIZATION) {
        bearer(headers).and_then(|t| app.tokens.find(t))
    } else {
        super::console::session_cookie(headers)
            .and_then(|id| app.sessions.get(id))
            .and_then(|s| app.tokens.get(s.token))
    };
    match token {
        Some(t) if !t.allows(Role::Read) && t.allows(Role::Export) => Role::Export,
        _ => Role::Read,
    }
}

/// `POST …/reports`: the seed's report request; the report in the requested format,
/// recorded (with its digest) as a `data_access` event before it is sent.
async fn report_post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let route = format!("{}/reports", prefix_of(&uri));
    let role = report_role(&app, &headers);
    let caller = authorize(&app, &headers, peer, &route, role).await?;
    let body = body_bytes(body, app.cfg.server.max_body_bytes)?;
    let req = crate::ReportRequest::from_json(&body)?;
    let log = app.log.clone();
    let r = req.clone();
    let (sha, bytes) = blocking(move || {
        let report = log.report(&r)?;
        Ok((report.sha256().to_string(), report.render()?))
    })
    .await?;
    let mut details = req.to_value();
    details["report_sha256"] = sha.clone().into();
    record_access(&app, &caller, "report_generated", &route, details).await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                crate::Report::content_type(req.format).to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"audit-report.{}\"",
                    req.format.as_str()
                ),
            ),
            (header::HeaderName::from_static("x-report-sha256"), sha),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_codec_round_trips() {
        for s in ["a b", "x=y&z", "é/ü", "hmac-sha256:abc+def", ""] {
            assert_eq!(url_decode(&url_encode(s)).unwrap(), s);
        }
        assert_eq!(url_decode("a+b%2Cc").unwrap(), "a b,c");
        assert!(url_decode("%zz").is_err());
        assert!(url_decode("%e9").is_err());
    }

    #[test]
    fn bodies_split_into_items_with_lines() {
        let (v, e) = split_body(b"{\"a\":1}\n\n{\"b\":2}\n");
        assert!(e.is_none());
        assert_eq!(v.iter().map(|i| i.line).collect::<Vec<_>>(), [1, 3]);
        let (v, e) = split_body(b"{\n  \"a\": 1\n}\n");
        assert!(e.is_none() && v.len() == 1);
        let (v, e) = split_body(b" [ {\"a\":1}, {\"b\":2} ]");
        assert!(e.is_none());
        assert_eq!(v.len(), 2);
        let (v, e) = split_body(b"{\"a\":1}\n{\"b\":\n");
        assert_eq!(v.len(), 1);
        assert!(e.unwrap().message.contains("line"));
    }
}
