//! `/dashboard` route of the `dashboard` function.

use super::service::DashboardService;
use crate::access::Caller;
use crate::auth::Role;
use crate::http::{self, ApiError};
use crate::state::AppState;
use ::http::{HeaderValue, header};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

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

/// The body is the cached JSON document as stored (see `DashboardService::dashboard`).
async fn show(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let dashboards = DashboardService::new(&state);
    let key = dashboards.key(caller.clinic_id());
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    principal.require(READERS)?;
    let dashboard = dashboards
        .dashboard(principal.clinic_id, prefetched)
        .await?;
    let body = dashboard.into_string();
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
