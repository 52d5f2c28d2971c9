//! `/dashboard` route of the `dashboard` function.

use super::service::DashboardService;
use super::types::Dashboard;
use crate::access::Caller;
use crate::auth::Role;
use crate::http::{self, ApiError};
use crate::state::AppState;
use ::http::{HeaderValue, header};
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The figures are the clinic's business (revenue included): admins and dentists, not the desk.
const READERS: &[Role] = &[Role::Admin, Role::Dentist];

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(routes(), state, &config)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// The body is the cached JSON document as stored (see `DashboardService::dashboard`).
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "dashboard",
    operation_id = "getDashboard",
    summary = "Today's figures for the clinic",
    description = "Appointments today by status, each dentist's load over the next 7 days, the \
                   no-show rate, new patients and estimated revenue, in the clinic's time zone. \
                   Cached for a short time and refreshed when the agenda changes.",
    responses((status = 200, description = "The dashboard.", body = Dashboard)),
    extensions(("x-roles" = json!(READERS))),
)]
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
