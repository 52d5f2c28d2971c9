//! `/waiting-list` routes of the `schedule` function.

use super::{
    AddToWaitingListRequest, NewEntry, WaitingListEntry, WaitingListQuery, WaitingListService,
};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::ids::WaitingListEntryId;
use crate::pagination::Page;
use crate::state::AppState;
use ::http::StatusCode;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Reception keeps the list; admins may too.
const EDITORS: &[Role] = &[Role::Admin, Role::Receptionist];

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
}

#[utoipa::path(
    get,
    path = "/waiting-list",
    tag = "schedule",
    operation_id = "listWaitingList",
    summary = "The waiting list, first come first served",
    description = "Entries whose window is not over (`expired=true`: those that are), with \
                   `dentist_id` the ones that want that dentist or any, with `patient_id` one \
                   patient's. Paginated.",
    params(WaitingListQuery),
    responses((status = 200, description = "One page.", body = Page<WaitingListEntry>)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<WaitingListQuery>,
) -> Result<Json<Page<WaitingListEntry>>, ApiError> {
    let page = WaitingListService::new(&state)
        .list(principal.clinic_id, &query)
        .await?;
    Ok(Json(page))
}

#[utoipa::path(
    post,
    path = "/waiting-list",
    tag = "schedule",
    operation_id = "addToWaitingList",
    summary = "Put a patient on the waiting list",
    description = "For a procedure (its catalog length) or a length, a preferred dentist or \
                   any, within a window of clinic dates (default: today and the next 90 days). \
                   When a cancellation or a reschedule frees time that fits, the clinic's \
                   receptionists get a `waiting_list.match` notification with the entries; \
                   nothing is booked by itself. Recorded in the audit trail (notes redacted).",
    request_body = AddToWaitingListRequest,
    responses(
        (status = 201, description = "On the list.", body = WaitingListEntry,
         headers(("Location" = String, description = "`/waiting-list/{id}`."))),
    ),
    extensions(("x-roles" = json!(EDITORS))),
)]
async fn add(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<AddToWaitingListRequest>,
) -> Result<Response, ApiError> {
    principal.require(EDITORS)?;
    let service = WaitingListService::new(&state);
    let (today, default_minutes) = service.today(principal.clinic_id).await?;
    let entry = NewEntry::parse(request, today)?;
    let actor = Actor::person(&principal, &request_id);
    let added = service
        .add(
            principal.clinic_id,
            (&actor, principal.user_id),
            &entry,
            default_minutes,
        )
        .await?;
    tracing::info!(entry_id = %added.id, "added to the waiting list");
    let location = http::location(format!("/waiting-list/{}", added.id))?;
    Ok((StatusCode::CREATED, location, Json(added)).into_response())
}

#[utoipa::path(
    delete,
    path = "/waiting-list/{id}",
    tag = "schedule",
    operation_id = "removeFromWaitingList",
    summary = "Take an entry off the waiting list",
    description = "The patient was booked or no longer waits. Recorded in the audit trail.",
    params(("id" = WaitingListEntryId, Path, description = "The entry.")),
    responses((status = 204, description = "Removed.")),
    extensions(("x-roles" = json!(EDITORS))),
)]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<WaitingListEntryId>,
) -> Result<StatusCode, ApiError> {
    principal.require(EDITORS)?;
    let actor = Actor::person(&principal, &request_id);
    WaitingListService::new(&state)
        .remove(principal.clinic_id, &actor, id)
        .await?;
    tracing::info!(entry_id = %id, "removed from the waiting list");
    Ok(StatusCode::NO_CONTENT)
}
