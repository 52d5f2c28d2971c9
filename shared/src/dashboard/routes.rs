//! `/dashboard` route of the `dashboard` function.

use super::service::DashboardService;
use super::types::Dashboard;
use crate::auth::{Principal, Role};
use crate::http::{self, ApiError};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

/// The figures are the clinic's business (revenue included): admins and dentists, not the desk.
const READERS: &[Role] = &[Role::Admin, Role::Dentist];

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route("/dashboard", get(show))
            .with_state(state),
        &config,
    )
}

async fn show(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Dashboard>, ApiError> {
    principal.require(READERS)?;
    let dashboard = DashboardService::new(&state)
        .dashboard(principal.clinic_id)
        .await?;
    Ok(Json(dashboard))
}
