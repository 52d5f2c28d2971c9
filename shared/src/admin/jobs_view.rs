//! The admin view of the job queue: its figures (`GET /admin/queues`), the jobs by status with
//! the dead-letter queue first among them (`GET /admin/jobs?status=dead`), and replaying a dead
//! or failed job (`POST /admin/jobs/{id}/retry`).
//!
//! A clinic's admin sees and replays the clinic's own jobs; a platform admin may also see every
//! clinic's (`?scope=platform`), together with the Redis structures all clinics share.

use crate::auth::Principal;
use crate::http::responses::Conflict;
use crate::http::{ApiError, ApiPath, ApiQuery, ConflictKind};
use crate::ids::{ClinicId, JobId};
use crate::pagination::{Page, PageRequest};
use crate::queue::{
    JobScope, JobStatus, JobView, QueueCounters, QueueFigures, RedisQueueSizes, Replay,
};
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use ::http::{HeaderValue, StatusCode, header};
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ADMINS;

#[derive(Debug, Default, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum Scope {
    #[default]
    Clinic,
    Platform,
}

impl Scope {
    /// The job scope this caller may have: platform scope needs the platform-admin claim.
    fn of(&self, principal: &Principal) -> Result<JobScope, ApiError> {
        match self {
            Scope::Clinic => Ok(JobScope::Clinic(principal.clinic_id)),
            Scope::Platform => {
                principal.require_platform_admin()?;
                Ok(JobScope::Platform {
                    caller: principal.clinic_id,
                })
            }
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct QueuesQuery {
    /// `clinic` (default) or `platform` (every clinic; platform admins).
    #[serde(default)]
    #[param(inline)]
    scope: Scope,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueStatsResponse {
    /// `clinic` (the caller's clinic) or `platform` (every clinic, platform admins only).
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
    /// From PostgreSQL, the truth: depth, processing, delayed, dead, oldest waiting age.
    #[serde(flatten)]
    pub figures: QueueFigures,
    /// Processed and failed counts kept by the workers in Redis (`null` when Redis is
    /// unreachable).
    pub counters: Option<QueueCounters>,
    /// The Redis structures every clinic shares (platform scope only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisQueueView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RedisQueueView {
    pub reachable: bool,
    /// The structures' sizes, when Redis answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<RedisQueueSizes>,
}

#[utoipa::path(
    get,
    path = "/admin/queues",
    tag = "admin",
    operation_id = "queueStats",
    summary = "The job queue's figures",
    params(QueuesQuery),
    responses((status = 200, description = "The figures.", body = QueueStatsResponse)),
    extensions(("x-roles" = json!(ADMINS))),
)]
pub(super) async fn queues(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<QueuesQuery>,
) -> Result<Json<QueueStatsResponse>, ApiError> {
    principal.require(ADMINS)?;
    let scope = query.scope.of(&principal)?;
    let clinic = match scope {
        JobScope::Clinic(clinic) => Some(clinic),
        JobScope::Platform { .. } => None,
    };
    let figures = state.queue.figures(&state.db, scope).await?;
    let counters = state
        .queue
        .counters(clinic)
        .await
        .inspect_err(
            |error| tracing::warn!(error = %ErrorChain(error), "queue counters unavailable"),
        )
        .ok();
    let redis = match scope {
        JobScope::Clinic(_) => None,
        JobScope::Platform { .. } => {
            let sizes = state
                .queue
                .redis_sizes()
                .await
                .inspect_err(
                    |error| tracing::warn!(error = %ErrorChain(error), "queue sizes unavailable"),
                )
                .ok();
            Some(RedisQueueView {
                reachable: sizes.is_some(),
                sizes,
            })
        }
    };
    Ok(Json(QueueStatsResponse {
        scope: if clinic.is_some() {
            "clinic"
        } else {
            "platform"
        },
        clinic_id: clinic,
        figures,
        counters,
        redis,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct JobsQuery {
    /// Only jobs in this status; every status when absent.
    status: Option<JobStatus>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `clinic` (default) or `platform` (every clinic; platform admins).
    #[serde(default)]
    #[param(inline)]
    scope: Scope,
}

#[utoipa::path(
    get,
    path = "/admin/jobs",
    tag = "admin",
    operation_id = "listJobs",
    summary = "The clinic's background jobs, newest first",
    params(JobsQuery),
    responses((status = 200, description = "One page of jobs.", body = Page<JobView>)),
    extensions(("x-roles" = json!(ADMINS))),
)]
pub(super) async fn jobs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<JobsQuery>,
) -> Result<Json<Page<JobView>>, ApiError> {
    principal.require(ADMINS)?;
    let scope = query.scope.of(&principal)?;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let found = state
        .queue
        .list(&state.db, scope, query.status, &page)
        .await?;
    Ok(Json(match scope {
        JobScope::Clinic(_) => found.map(JobView::of),
        JobScope::Platform { .. } => found.map(JobView::with_clinic),
    }))
}

/// Replays a dead or failed job of the caller's clinic: 202 with the job, queued again.
#[utoipa::path(
    post,
    path = "/admin/jobs/{id}/retry",
    tag = "admin",
    operation_id = "retryJob",
    summary = "Replay a dead or failed job",
    params(("id" = JobId, Path, description = "The job's id.")),
    responses(
        (status = 202, description = "Queued again.", body = JobView,
         headers(("Location" = String, description = "`/jobs/{id}`."))),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(ADMINS))),
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Response, ApiError> {
    principal.require(ADMINS)?;
    match state
        .queue
        .replay(&state.db, principal.clinic_id, id)
        .await?
    {
        Replay::Replayed(record) => {
            tracing::info!(job_id = %id, kind = %record.kind, "job replayed by an admin");
            let location =
                HeaderValue::from_str(&format!("/jobs/{id}")).map_err(ApiError::internal)?;
            Ok((
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(JobView::of(*record)),
            )
                .into_response())
        }
        Replay::NotFound => Err(ApiError::NotFound { what: "job" }),
        Replay::NotReplayable(status) => Err(ApiError::Conflict {
            kind: ConflictKind::JobNotReplayable,
            detail: format!(
                "The job is {}; only dead or failed jobs can be replayed.",
                status.as_str()
            ),
            field: None,
        }),
    }
}
