//! The telemetry HTTP server: `/metrics`, `/healthz`, `/readyz`.
//!
//! `/healthz` answers 200 while the process runs (a liveness probe that only
//! fails when kwex is wedged so badly it cannot answer). `/readyz` answers
//! 200 only when every registered readiness check passes, else 503 with the
//! names of the failing checks, so `kubectl describe pod` says what is not
//! ready.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

/// A named condition that must hold for `/readyz` to answer 200.
pub type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// The readiness checks, registered by the stages at start.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Readiness {
    /// Adds a check; `name` appears in the 503 answer while it fails.
    pub fn add(&mut self, name: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks.push((name, Arc::new(check)));
    }

    /// The names of the checks that fail now.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|(_, check)| !check())
            .map(|(name, _)| *name)
            .collect()
    }
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {address} for /metrics, /healthz and /readyz: {source} (change --metrics-address)"
)]
pub struct Error {
    address: SocketAddr,
    #[source]
    source: std::io::Error,
}

#[derive(Clone)]
struct AppState {
    registry: Registry,
    readiness: Readiness,
}

/// Binds `address` (fails at once if it cannot) and returns the server
/// future, which runs until `shutdown` fires.
pub async fn bind(
    address: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, impl Future<Output = ()>), Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error { address, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            registry,
            readiness,
        });
    let server = async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "The telemetry HTTP server stopped.");
        }
    };
    Ok((bound, server))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let failing = state.readiness.failing();
    if failing.is_empty() {
        (StatusCode::OK, "ok\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", failing.join(", ")),
        )
    }
}
