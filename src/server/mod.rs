//! `auditlog serve`: the seed's REST API over a data directory (feature `server`).
//!
//! Routes live under `/api/audit-logs` and, as an alias (the seed uses both),
//! `/api/enterprise/audit-logs`. Every route but `/health` needs a bearer token from the
//! config's `server.tokens`; roles are `ingest`, `read`, `export` and `admin`. Failed
//! authentications and permission denials are appended as `authentication` /
//! `authorization` events (rate-limited; repeated failures lock the address out), and every
//! read, query, verification and export is appended as a `data_access` event, so the log
//! records who looked at it. Storage calls run on tokio's blocking pool, never on the async
//! workers. See `docs/SERVER.md`.

mod api;
mod auth;
mod console;
mod metrics;
mod openapi;
mod tls;
mod witness;

pub use witness::{router as witness_router, serve_witness_blocking};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::IngestPolicy;
use crate::log::Log;

pub use auth::Role;

/// Everything the handlers share.
pub(crate) struct App {
    pub log: Log,
    pub cfg: Config,
    pub tokens: auth::Tokens,
    pub guard: auth::Guard,
    pub policy: IngestPolicy,
    pub metrics: metrics::Metrics,
    /// Console sessions (cookie logins).
    pub sessions: console::Sessions,
    /// Set once shutdown begins, so that endless responses (the live tail) end and the
    /// graceful shutdown is not held open by them.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// `server.checkpoint_signing_key`, read at start.
    pub signer: Option<Arc<crate::note::SignerKey>>,
    /// `server.witnesses`, parsed at start.
    pub witnesses: Vec<crate::witness::WitnessTarget>,
    /// The configured sinks, running in-process on `log` until shutdown.
    pub sinks: parking_lot::Mutex<Option<crate::sink::Sinks>>,
    /// The alert rules (`alerts`), evaluated on the stream until shutdown.
    pub alerts: parking_lot::Mutex<Option<crate::sink::alert::AlertHandle>>,
    /// Held while sinks or alert rules run here, so that no `auditlog ship` (or second
    /// server) shares their cursors.
    pub _sink_lock: Option<crate::sink::RunLock>,
}

/// A server ready to run: the log, its config, and the address it listens on.
pub struct Server {
    app: Arc<App>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// Binds `listen` (`host:port`; port 0 picks a free one) for `log` under `cfg` (its
    /// `audit_logs` policy, already merged with the environment, and its `server` section).
    /// Refuses to start without tokens: every route but `/health` needs one.
    pub fn bind(log: Log, cfg: Config, listen: &str) -> Result<Server> {
        cfg.validate()?;
        let tokens = auth::Tokens::from_config(&cfg.server)?;
        if tokens.is_empty() {
            return Err(Error::Config(
                "server.tokens is empty: give at least one bearer token (see docs/SERVER.md)"
                    .into(),
            ));
        }
        let policy = IngestPolicy::from_config(&cfg.audit_logs)?;
        let tls = cfg
            .server
            .tls
            .as_ref()
            .map(tls::server_config)
            .transpose()?;
        let signer = cfg
            .server
            .checkpoint_signing_key
            .as_deref()
            .map(|p| {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(p).map_err(|e| {
                    Error::Config(format!(
                        "server.checkpoint_signing_key: reading {}: {e}",
                        p.display()
                    ))
                })?);
                crate::note::SignerKey::parse(&text)
                    .map(Arc::new)
                    .map_err(|e| {
                        Error::Config(format!(
                            "server.checkpoint_signing_key: {}: {e}",
                            p.display()
                        ))
                    })
            })
            .transpose()?;
        let witnesses = cfg
            .server
            .witnesses
            .iter()
            .enumerate()
            .map(|(i, w)| {
                crate::witness::WitnessTarget::parse(w)
                    .map_err(|e| Error::Config(format!("server.witnesses[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if !witnesses.is_empty() && signer.is_none() {
            return Err(Error::Config(
                "server.witnesses needs server.checkpoint_signing_key (witnesses cosign the \
                 server's signed checkpoints)"
                    .into(),
            ));
        }
        if cfg.server.witness_interval_secs > 0 && witnesses.is_empty() {
            return Err(Error::Config(
                "server.witness_interval_secs needs server.witnesses (there is no one to ask)"
                    .into(),
            ));
        }
        if let Some(q) = cfg.server.witness_quorum {
            if q > witnesses.len() {
                return Err(Error::Config(format!(
                    "server.witness_quorum {q} is more than the {} server.witnesses",
                    witnesses.len()
                )));
            }
        }
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| Error::Config(format!("server.listen: cannot listen on {listen}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Config(format!("server.listen: {listen}: {e}")))?;
        // Last, so that nothing is started for a server that cannot listen.
        let sink_lock = if cfg.sinks.iter().any(|c| c.enabled) || !cfg.alerts.rules.is_empty() {
            Some(crate::sink::RunLock::acquire(log.dir(), "auditlog serve")?)
        } else {
            None
        };
        let sinks = crate::sink::Sinks::start(&log, &cfg.sinks, &[])?;
        let alerts = if cfg.alerts.rules.is_empty() {
            None
        } else {
            Some(crate::sink::alert::spawn(&log, &cfg.alerts)?)
        };
        Ok(Server {
            app: Arc::new(App {
                guard: auth::Guard::new(&cfg.server),
                log,
                tokens,
                policy,
                metrics: metrics::Metrics::default(),
                sessions: console::Sessions::default(),
                closing: tokio::sync::watch::channel(false).0,
                signer,
                witnesses,
                sinks: parking_lot::Mutex::new(Some(sinks)),
                alerts: parking_lot::Mutex::new(alerts),
                _sink_lock: sink_lock,
                cfg,
            }),
            listener,
            tls,
        })
    }

    /// `https` when `server.tls` is set, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::Config(format!("server.listen: {e}")))
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish, and flushes the log. Call inside a tokio runtime. The checkpoint, retention
    /// and archive schedules are the log's own background work: open it with
    /// [`log_options`] so that they follow the `server` section.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)
            .map_err(|e| Error::Config(format!("server.listen: {e}")))?;
        let router = api::router(self.app.clone());
        let app = self.app.clone();
        let shutdown = async move {
            shutdown.await;
            app.closing.send_replace(true);
        };
        let witnessing = (self.app.cfg.server.witness_interval_secs > 0)
            .then(|| tokio::spawn(witness_schedule(self.app.clone())));
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let served = match self.tls {
            None => {
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(cfg) => {
                use axum::serve::ListenerExt;
                let listener = tls::TlsListener::new(listener, cfg)
                    .map_err(|e| Error::Config(format!("server.tls: {e}")))?
                    // tap_io gives the connection's peer address to ConnectInfo.
                    .tap_io(|_| {});
                axum::serve(listener, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        if let Some(w) = witnessing {
            // It ends at `closing`; a round in flight finishes first (bounded by its timeouts).
            let _ = w.await;
        }
        // The sinks stop before the flush (a delivery in flight finishes its attempt and
        // writes its cursor); they resume from their cursors at the next start.
        // Alerts first: one raised now is still delivered by the sinks at their next start.
        let alerts = self.app.alerts.lock().take();
        if let Some(a) = alerts {
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.stop()).await {
                tracing::warn!(error = %e, "the alert rules stopped on an error");
            }
        }
        let sinks = self.app.sinks.lock().take();
        if let Some(s) = sinks {
            let _ = tokio::task::spawn_blocking(move || s.stop()).await;
        }
        let log = self.app.log.clone();
        let flushed = tokio::task::spawn_blocking(move || log.flush())
            .await
            .map_err(|e| Error::Config(format!("flush at shutdown: {e}")))?;
        served.map_err(|e| Error::Config(format!("server: {e}")))?;
        flushed
    }
}

/// `server.witness_interval_secs`: every interval, a witness round (the tree extended, signed
/// when it grew, cosignatures asked of `server.witnesses`), until shutdown. A size that a
/// quorum has cosigned is not asked again; a round short of its quorum is retried at the
/// next tick. Outcomes go to the log output and to the `auditlog_witness_*` metrics.
async fn witness_schedule(app: Arc<App>) {
    let every = Duration::from_secs(app.cfg.server.witness_interval_secs);
    let need = app.cfg.server.witness_quorum.unwrap_or(app.witnesses.len());
    let mut closing = app.closing.subscribe();
    let mut cosigned_size: Option<u64> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = closing.wait_for(|c| *c) => return,
        }
        let a = app.clone();
        let round = tokio::task::spawn_blocking(move || -> Result<Option<(u64, usize)>> {
            let size = a.log.merkle_sync()?.size;
            if size == 0 || cosigned_size == Some(size) {
                return Ok(None);
            }
            let signer = a.signer.as_ref().expect("witnesses need a signer (checked at bind)");
            let (note, outcomes) = crate::transparency::witness_current(
                &a.log,
                signer,
                &a.witnesses,
                Duration::from_secs(10),
            )?;
            let signed: u64 = note
                .lines()
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(size);
            for o in &outcomes {
                if let Err(e) = &o.result {
                    tracing::warn!(witness = %o.witness, size = signed, error = %e, "a witness did not cosign");
                }
            }
            Ok(Some((signed, outcomes.iter().filter(|o| o.result.is_ok()).count())))
        })
        .await;
        let m = &app.metrics;
        match round {
            Ok(Ok(None)) => {}
            Ok(Ok(Some((size, got)))) => {
                m.witness_cosignatures.store(got as u64, Ordering::Relaxed);
                if got >= need {
                    cosigned_size = Some(size);
                    m.witness_rounds.fetch_add(1, Ordering::Relaxed);
                    m.witnessed_size.store(size, Ordering::Relaxed);
                    tracing::info!(size, cosignatures = got, "checkpoint witnessed");
                } else {
                    m.witness_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        size,
                        cosignatures = got,
                        quorum = need,
                        "witness quorum not met; retrying at the next round"
                    );
                }
            }
            Ok(Err(e)) => {
                m.witness_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "witness round failed");
            }
            Err(e) => {
                m.witness_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "witness round panicked");
            }
        }
    }
}

/// `opts` with the schedules of the `server` section: a signed checkpoint at least every
/// `checkpoint_interval_secs` while events arrive, retention and archive runs every
/// `retention_interval_secs` (they do nothing unless `retention_days` / `archive_days` are set).
pub fn log_options(cfg: &Config, opts: crate::Options) -> crate::Options {
    let s = &cfg.server;
    let mut o = opts.save_active_index(true).retention_interval(
        (s.retention_interval_secs > 0).then(|| Duration::from_secs(s.retention_interval_secs)),
    );
    if s.checkpoint_interval_secs > 0 {
        o = o.checkpoint_interval(Duration::from_secs(s.checkpoint_interval_secs));
    }
    o
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining requests, then flushing the log");
}

/// Runs `auditlog serve`: binds, logs where, and serves until SIGTERM or SIGINT.
pub fn serve_blocking(log: Log, cfg: Config, listen: &str) -> Result<()> {
    // One malloc arena per core rather than glibc's eight: the blocking pool's threads would
    // otherwise each keep their own arena's freed memory, and the server's footprint would
    // grow with the number of threads that ever ran a query (see `limit_malloc_arenas`).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    crate::mmap::limit_malloc_arenas(cores.max(2));
    let server = Server::bind(log, cfg, listen)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("auditlog-http")
        .build()
        .map_err(|e| Error::Config(format!("starting the async runtime: {e}")))?;
    let addr = server.local_addr()?;
    let scheme = server.scheme();
    tracing::info!(%addr, scheme, "auditlog serve listening");
    // For scripts and tests that start the server on port 0.
    println!("listening on {scheme}://{addr}");
    rt.block_on(server.run(shutdown_signal()))?;
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
