//! `auditlog witness`: a C2SP tlog-witness over HTTP (`POST <prefix>/add-checkpoint`), see
//! [`crate::witness`] and docs/TRANSPARENCY.md. No bearer tokens: the spec authenticates
//! requests only by the log's signature on the checkpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::error::{Error, Result};
use crate::witness::{Witness, MAX_BODY};

fn text(status: StatusCode, ct: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, ct)], body).into_response()
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    let w2 = w.clone();
    let done =
        tokio::task::spawn_blocking(move || w2.add_checkpoint(&body, crate::witness::now_secs()))
            .await;
    match done {
        Ok(Ok(Ok(line))) => text(StatusCode::OK, "text/plain; charset=utf-8", line),
        Ok(Ok(Err(refusal))) => {
            tracing::info!(status = refusal.status(), reason = %refusal, "add-checkpoint refused");
            text(
                StatusCode::from_u16(refusal.status()).expect("valid status"),
                refusal.content_type(),
                refusal.body(),
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "add-checkpoint: the witness state could not be kept");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "the witness could not keep its state; nothing was cosigned\n".into(),
            )
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("add-checkpoint failed: {e}\n"),
        ),
    }
}

/// The witness's routes under `prefix` (empty, or `/path` without a trailing slash).
pub fn router(w: Arc<Witness>, prefix: &str) -> Router {
    Router::new()
        .route(&format!("{prefix}/add-checkpoint"), post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(w)
}

/// Serves the witness on `listen` (`host:port`) under `prefix` until SIGTERM or SIGINT;
/// prints `listening on http://ADDR` first.
pub fn serve_witness_blocking(w: Witness, listen: &str, prefix: &str) -> Result<()> {
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() && !prefix.starts_with('/') {
        return Err(Error::Config(format!(
            "witness prefix {prefix:?} does not start with `/`"
        )));
    }
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| Error::Config(format!("witness: cannot listen on {listen}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Config(format!("witness: {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("witness: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("auditlog-witness")
        .build()
        .map_err(|e| Error::Config(format!("starting the async runtime: {e}")))?;
    let app = router(Arc::new(w), prefix);
    tracing::info!(%addr, "auditlog witness listening");
    println!("listening on http://{addr}{prefix}");
    rt.block_on(async move {
        let l = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Config(format!("witness: {e}")))?;
        axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(super::shutdown_signal())
            .await
            .map_err(|e| Error::Config(format!("witness: {e}")))
    })?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
