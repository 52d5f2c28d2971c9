//! `/jobs` routes of the `jobs` function: a job's status, for the staff of its clinic.

use super::Queue;
use super::view::JobView;
use crate::access::Access;
use crate::auth::{Principal, Role};
use crate::config::HttpConfig;
use crate::http::{self, ApiError, ApiPath};
use crate::ids::JobId;
use axum::extract::FromRef;
use axum::extract::State;
use axum::{Json, Router};
use sqlx::PgPool;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes over any state that hands out what they use (a function passes its `AppState`):
/// the pool, the token verifier and the HTTP limits.
pub fn router<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Queue: FromRef<S>,
    Arc<Access>: FromRef<S>,
    HttpConfig: FromRef<S>,
    http::Edge: FromRef<S>,
{
    let edge = http::Edge::from_ref(&state);
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    PgPool: FromRef<S>,
    Queue: FromRef<S>,
    Arc<Access>: FromRef<S>,
    HttpConfig: FromRef<S>,
{
    OpenApiRouter::new().routes(routes!(show))
}

/// A member of the job's clinic whose role its kind lets read it (403 otherwise); another
/// clinic's job is a 404 like a missing one.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    operation_id = "getJob",
    summary = "A background job's status",
    description = "The `Location` of a 202 answer (an X-ray's analysis, a report). Poll it until \
                   `succeeded` (then `result_url` names what it made) or `dead`. Which roles may \
                   read a job depends on its kind (403 otherwise).",
    params(("id" = JobId, Path, description = "The job's id.")),
    responses((status = 200, description = "The job.", body = JobView)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn show(
    State(queue): State<Queue>,
    State(db): State<PgPool>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobView>, ApiError> {
    let record = queue
        .status(&db, principal.clinic_id, id)
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    if !record.readable_by(principal.role) {
        return Err(ApiError::Forbidden {
            detail: format!(
                "A {} may not read a job of kind {}.",
                principal.role.as_str(),
                record.kind
            ),
        });
    }
    Ok(Json(JobView::of(record)))
}
