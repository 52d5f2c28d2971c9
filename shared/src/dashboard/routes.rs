//! `/dashboard` route of the `dashboard` function.

use super::organization::{self, OrganizationDashboard};
use super::service::DashboardService;
use super::types::Dashboard;
use crate::access::{Caller, OrgAdmin};
use crate::auth::Role;
use crate::cache::RawJson;
use crate::http::{self, ApiError};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The figures are the clinic's business (revenue included): admins and dentists, not the desk.
const READERS: &[Role] = &[Role::Admin, Role::Dentist];

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show))
        .routes(routes!(organization_dashboard))
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
async fn show(State(state): State<AppState>, caller: Caller) -> Result<RawJson, ApiError> {
    let dashboards = DashboardService::new(&state);
    let key = dashboards.key(caller.clinic_id());
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    principal.require(READERS)?;
    let dashboard = dashboards
        .dashboard(principal.clinic_id, prefetched)
        .await?;
    Ok(dashboard)
}

/// The organization's dashboard, like the clinic's a cached JSON document sent as stored.
#[utoipa::path(
    get,
    path = "/organization/dashboard",
    tag = "dashboard",
    operation_id = "getOrganizationDashboard",
    summary = "Every clinic of the organization side by side (its admins)",
    description = "One row per active clinic (today's appointments by status, the next 7 \
                   days' bookings, the no-show rate, new patients, the month's estimated \
                   revenue) and their totals (revenue per currency; today is each clinic's \
                   own). Rolled up from the clinics' cached dashboards and cached itself: a row \
                   may be a few minutes old (its `generated_at` says when).",
    responses((status = 200, description = "The organization's dashboard.",
               body = OrganizationDashboard)),
    extensions(("x-roles" = json!([crate::auth::ORG_ADMIN]))),
)]
async fn organization_dashboard(
    State(state): State<AppState>,
    admin: OrgAdmin,
) -> Result<RawJson, ApiError> {
    let dashboard = organization::dashboard(&state, admin.organization_id).await?;
    Ok(dashboard)
}
