//! Routes of the `clinics` function: `GET /me` and `GET /staff`.

use super::service::ClinicsService;
use super::types::{Me, StaffMember, StaffQuery};
use crate::access::Person;
use crate::auth::{Principal, Role};
use crate::http::{self, ApiError, ApiQuery};
use crate::pagination::Page;
use crate::state::AppState;
use axum::extract::State;
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(routes(), state, &config)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(staff))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "clinics",
    operation_id = "getMe",
    summary = "The signed-in person and their clinics",
    description = "Who the token belongs to, and every clinic they are a member of: its name, \
                   time zone, locale and currency, their role there and the operations that \
                   role may call. Call it first: it answers without `Pulso-Clinic` even for a \
                   person with several clinics, and its clinic ids are what that header takes.",
    responses((status = 200, description = "The person and their memberships.", body = Me)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn me(State(state): State<AppState>, Person(caller): Person) -> Result<Json<Me>, ApiError> {
    Ok(Json(
        ClinicsService::new(&state.db).me(caller.user_id).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/staff",
    tag = "clinics",
    operation_id = "listStaff",
    summary = "The clinic's staff",
    description = "Members of the clinic by name, with their role, initials and calendar \
                   colour: `?role=dentist&active=true` is the booking form's dentist list.",
    params(StaffQuery),
    responses((status = 200, description = "One page of staff.", body = Page<StaffMember>)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn staff(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<StaffQuery>,
) -> Result<Json<Page<StaffMember>>, ApiError> {
    Ok(Json(
        ClinicsService::new(&state.db)
            .staff(principal.clinic_id, &query)
            .await?,
    ))
}
