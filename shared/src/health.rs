//! `GET /health` answers whether the function runs at all (liveness): anyone may ask, so it
//! touches neither PostgreSQL nor Redis, and a flood of it costs nothing but the invocation.
//! `GET /health/deep` (platform admins) probes each dependency and reports the queue's lag:
//! 503 when PostgreSQL is down (nothing works without it); 200 "degraded" when only Redis is
//! (reads fall back).

use crate::auth::{Principal, Role};
use crate::http::ApiError;
use crate::queue::{JobScope, QueueFigures};
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use ::redis::AsyncCommands;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A health probe must answer quickly even when a dependency hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What anyone learns: the function answers, and which build it runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: Overall,
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub status: Overall,
    pub version: &'static str,
    pub database: Probe,
    pub redis: Probe,
    /// The queue as PostgreSQL sees it, every clinic together; absent when it cannot be read.
    pub queue: Option<QueueFigures>,
}

#[derive(Debug, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Ok,
    Degraded,
    Down,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Probe {
    pub status: ProbeStatus,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeStatus {
    Up,
    Down,
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(deep))
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    operation_id = "liveness",
    summary = "Whether the function runs (public; touches no dependency)",
    responses((status = 200, description = "It runs.", body = Liveness,
               headers(("Cache-Control" = String, description = "`no-store`.")))),
)]
async fn live() -> Response {
    uncached(
        ::http::StatusCode::OK,
        Liveness {
            status: Overall::Ok,
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}

/// Platform admins only: the figures are every clinic's together.
#[utoipa::path(
    get,
    path = "/health/deep",
    tag = "health",
    operation_id = "deepHealth",
    summary = "Each dependency's state and the queue's figures (platform admins)",
    description = "Needs the admin role and a platform-operator token. 503 (with the same body) \
                   when PostgreSQL is down; 200 `degraded` when only Redis is.",
    responses(
        (status = 200, description = "Up or degraded.", body = HealthReport),
        (status = 503, description = "PostgreSQL is down.", body = HealthReport),
    ),
    extensions(("x-roles" = json!([Role::Admin]))),
)]
async fn deep(State(state): State<AppState>, principal: Principal) -> Result<Response, ApiError> {
    principal.require(&[Role::Admin])?;
    principal.require_platform_admin()?;
    let scope = JobScope::Platform {
        caller: principal.clinic_id,
    };
    let (database, redis, queue) = tokio::join!(
        probe_database(&state),
        probe_redis(&state),
        queue_figures(&state, scope)
    );
    let status = match (&database.status, &redis.status) {
        (ProbeStatus::Down, _) => Overall::Down,
        (ProbeStatus::Up, ProbeStatus::Down) => Overall::Degraded,
        (ProbeStatus::Up, ProbeStatus::Up) => Overall::Ok,
    };
    let code = if status == Overall::Down {
        ::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        ::http::StatusCode::OK
    };
    if status != Overall::Ok {
        tracing::warn!(database = ?database.status, redis = ?redis.status, "health degraded");
    }
    let report = HealthReport {
        status,
        version: env!("CARGO_PKG_VERSION"),
        database,
        redis,
        queue,
    };
    Ok(uncached(code, report))
}

fn uncached(code: ::http::StatusCode, body: impl Serialize) -> Response {
    let mut response = (code, Json(body)).into_response();
    response.headers_mut().insert(
        ::http::header::CACHE_CONTROL,
        ::http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn queue_figures(state: &AppState, scope: JobScope) -> Option<QueueFigures> {
    tokio::time::timeout(PROBE_TIMEOUT, state.queue.figures(&state.db, scope))
        .await
        .ok()?
        .inspect_err(
            |error| tracing::warn!(error = %ErrorChain(error), "queue figures unavailable"),
        )
        .ok()
}

async fn probe_database(state: &AppState) -> Probe {
    timed(async {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&state.db)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
    .await
}

async fn probe_redis(state: &AppState) -> Probe {
    timed(async {
        let mut connection = state
            .redis
            .connection()
            .await
            .map_err(|error| error.to_string())?;
        connection
            .ping::<String>()
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    })
    .await
}

async fn timed(check: impl std::future::Future<Output = Result<(), String>>) -> Probe {
    let started = Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    match result {
        Ok(()) => Probe {
            status: ProbeStatus::Up,
            latency_ms,
            error: None,
        },
        Err(error) => {
            // The cause (hosts, error chains) goes to the log; the body only says "down".
            tracing::warn!(%error, "health probe failed");
            Probe {
                status: ProbeStatus::Down,
                latency_ms,
                error: Some(
                    if error == "timed out" {
                        "timed out"
                    } else {
                        "unreachable"
                    }
                    .into(),
                ),
            }
        }
    }
}
