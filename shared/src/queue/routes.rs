//! `/jobs` routes of the `jobs` function: a job's status, for the staff of its clinic.

use super::view::JobView;
use crate::auth::Principal;
use crate::http::{self, ApiError, ApiPath};
use crate::ids::JobId;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route("/jobs/{id}", get(show))
            .with_state(state),
        &config,
    )
}

/// Any staff member of the job's clinic; another clinic's job is a 404 like a missing one.
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<JobId>,
) -> Result<Json<JobView>, ApiError> {
    let record = state
        .queue
        .status(&state.db, principal.clinic_id, id)
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    Ok(Json(JobView::of(record)))
}
