//! The `schedule` function's routes: working hours (`/working-hours`), time off (`/time-off`),
//! chairs (`/chairs`) and the free-slot search (`/availability`). Every member reads them (the
//! booking form needs them); admins set hours and chairs; admins and reception enter and remove
//! time off.

use super::availability::{
    Availability, AvailabilityQuery, AvailabilityService, NextQuery, NextSlots,
};
use super::service::ScheduleService;
use super::{
    Chair, ChairList, ChairQuery, CreateChairRequest, CreateTimeOffRequest, CreatedTimeOff,
    NewTimeOff, PutWorkingHoursRequest, TimeOffList, TimeOffQuery, UpdateChairRequest,
    WeeklySchedule, WorkingHoursList, WorkingHoursQuery, chair_name,
};
use crate::access::Caller;
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::cache::RawJson;
use crate::http::responses::Conflict;
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::ids::{ChairId, TimeOffId, UserId};
use crate::input::InputError;
use crate::state::AppState;
use ::http::StatusCode;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The clinic's hours and rooms are its management's decision.
const SCHEDULE_EDITORS: &[Role] = &[Role::Admin];
/// Reception keeps the calendar: it records who is away.
const TIME_OFF_EDITORS: &[Role] = &[Role::Admin, Role::Receptionist];

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(working_hours))
        .routes(routes!(replace_working_hours))
        .routes(routes!(time_off, create_time_off))
        .routes(routes!(delete_time_off))
        .routes(routes!(chairs, create_chair))
        .routes(routes!(update_chair))
        .routes(routes!(availability))
        .routes(routes!(next_available))
        .merge(super::waiting_list::routes())
}

#[utoipa::path(
    get,
    path = "/availability",
    tag = "schedule",
    operation_id = "searchAvailability",
    summary = "Free time and bookable starts",
    description = "For each active dentist (or one): the free stretches from `from` to `to` \
                   (clinic dates, at most 31 days), from now on, and the starts where an \
                   appointment of the procedure's length (or `duration`, or the clinic's \
                   default) fits, on the clinic's grid of `slot_minutes`. Free time honours \
                   working hours, time off, closures and every live appointment (cancelled ones \
                   free their time); with `chair_id`, that chair must be free too. A slot \
                   booked a moment ago is never offered.",
    params(AvailabilityQuery),
    responses((status = 200, description = "The free time.", body = Availability)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn availability(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AvailabilityQuery>,
) -> Result<RawJson, ApiError> {
    let search = AvailabilityService::new(&state);
    let key = search.search_key(caller.clinic_id(), &query);
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    search.search(principal.clinic_id, &query, prefetched).await
}

#[utoipa::path(
    get,
    path = "/availability/next",
    tag = "schedule",
    operation_id = "nextAvailable",
    summary = "The next bookable starts",
    description = "The first `limit` starts from now (within 31 days), across the active \
                   dentists or one, for the procedure's length (or `duration`, or the clinic's \
                   default): \"when is the next free slot for a cleaning with Dr. Ruiz?\" in \
                   one call. Earliest first.",
    params(NextQuery),
    responses((status = 200, description = "The starts.", body = NextSlots)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn next_available(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<NextQuery>,
) -> Result<RawJson, ApiError> {
    let search = AvailabilityService::new(&state);
    let key = search.next_key(caller.clinic_id(), &query);
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    search.next(principal.clinic_id, &query, prefetched).await
}

#[utoipa::path(
    get,
    path = "/working-hours",
    tag = "schedule",
    operation_id = "listWorkingHours",
    summary = "The dentists' weekly hours",
    description = "Every weekly working interval of the clinic's dentists (or of one), by \
                   dentist, day and start. Times are the clinic's wall clock.",
    params(WorkingHoursQuery),
    responses((status = 200, description = "The intervals.", body = WorkingHoursList)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn working_hours(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<WorkingHoursQuery>,
) -> Result<Json<WorkingHoursList>, ApiError> {
    let items = ScheduleService::new(&state)
        .working_hours(principal.clinic_id, query.dentist_id)
        .await?;
    Ok(Json(WorkingHoursList { items }))
}

#[utoipa::path(
    put,
    path = "/working-hours/{dentist_id}",
    tag = "schedule",
    operation_id = "replaceWorkingHours",
    summary = "Set a dentist's weekly hours",
    description = "Replaces every interval of the dentist with those sent (none: nothing is \
                   bookable for them). Intervals of one day may touch (09:00–14:00 and \
                   14:00–20:00 are one stretch) but not overlap on a date both apply. Existing \
                   appointments stay as they are; new bookings and reschedules must fit. \
                   Recorded in the audit trail.",
    params(("dentist_id" = UserId, Path, description = "A dentist of the clinic.")),
    request_body = PutWorkingHoursRequest,
    responses((status = 200, description = "The dentist's hours now.", body = WorkingHoursList)),
    extensions(("x-roles" = json!(SCHEDULE_EDITORS))),
)]
async fn replace_working_hours(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(dentist): ApiPath<UserId>,
    ApiJson(request): ApiJson<PutWorkingHoursRequest>,
) -> Result<Json<WorkingHoursList>, ApiError> {
    principal.require(SCHEDULE_EDITORS)?;
    let schedule = WeeklySchedule::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let items = ScheduleService::new(&state)
        .replace_working_hours(principal.clinic_id, &actor, dentist, &schedule)
        .await?;
    tracing::info!(dentist_id = %dentist, intervals = items.len(), "working hours replaced");
    Ok(Json(WorkingHoursList { items }))
}

#[utoipa::path(
    get,
    path = "/time-off",
    tag = "schedule",
    operation_id = "listTimeOff",
    summary = "Time away and closures",
    description = "Every dentist's time off and the clinic's closures overlapping the clinic \
                   dates asked for (today and the next 90 days by default; at most 366 days, \
                   1,000 entries), oldest first. With `dentist_id`: theirs and the clinic's.",
    params(TimeOffQuery),
    responses((status = 200, description = "The entries.", body = TimeOffList)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn time_off(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<TimeOffQuery>,
) -> Result<Json<TimeOffList>, ApiError> {
    let items = ScheduleService::new(&state)
        .time_off(principal.clinic_id, &query)
        .await?;
    Ok(Json(TimeOffList { items }))
}

#[utoipa::path(
    post,
    path = "/time-off",
    tag = "schedule",
    operation_id = "createTimeOff",
    summary = "Record time away or a closure",
    description = "A dentist's holiday, sick leave, training or personal time, or the clinic's \
                   closure or public holiday: whole days in clinic time (`first_day`, \
                   `last_day`) or a stretch (`starts_at`, `ends_at`). Nothing is bookable in it \
                   from now on; appointments already in it stay booked and are listed in \
                   `overlapping_appointments`, for reception to move. Recorded in the audit \
                   trail.",
    request_body = CreateTimeOffRequest,
    responses(
        (status = 201, description = "Recorded.", body = CreatedTimeOff,
         headers(("Location" = String, description = "`/time-off/{id}`."))),
    ),
    extensions(("x-roles" = json!(TIME_OFF_EDITORS))),
)]
async fn create_time_off(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateTimeOffRequest>,
) -> Result<Response, ApiError> {
    principal.require(TIME_OFF_EDITORS)?;
    let new = NewTimeOff::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let created = ScheduleService::new(&state)
        .add_time_off(principal.clinic_id, &actor, principal.user_id, &new)
        .await?;
    tracing::info!(
        time_off_id = %created.time_off.id,
        kind = created.time_off.kind.as_str(),
        overlapping = created.overlapping_appointments.len(),
        "time off recorded"
    );
    let location = http::location(format!("/time-off/{}", created.time_off.id))?;
    Ok((StatusCode::CREATED, location, Json(created)).into_response())
}

#[utoipa::path(
    delete,
    path = "/time-off/{id}",
    tag = "schedule",
    operation_id = "deleteTimeOff",
    summary = "Remove time away entered by mistake",
    description = "Its time becomes bookable again. Recorded in the audit trail, with what \
                   was removed.",
    params(("id" = TimeOffId, Path, description = "The entry.")),
    responses((status = 204, description = "Removed.")),
    extensions(("x-roles" = json!(TIME_OFF_EDITORS))),
)]
async fn delete_time_off(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<TimeOffId>,
) -> Result<StatusCode, ApiError> {
    principal.require(TIME_OFF_EDITORS)?;
    let actor = Actor::person(&principal, &request_id);
    ScheduleService::new(&state)
        .remove_time_off(principal.clinic_id, &actor, id)
        .await?;
    tracing::info!(time_off_id = %id, "time off removed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/chairs",
    tag = "schedule",
    operation_id = "listChairs",
    summary = "The clinic's treatment rooms",
    description = "By name. An appointment may take one (`chair_id`); a chair is never booked \
                   twice for the same minute.",
    params(ChairQuery),
    responses((status = 200, description = "The chairs.", body = ChairList)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn chairs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ChairQuery>,
) -> Result<Json<ChairList>, ApiError> {
    let items = ScheduleService::new(&state)
        .chairs(principal.clinic_id, query.active)
        .await?;
    Ok(Json(ChairList { items }))
}

#[utoipa::path(
    post,
    path = "/chairs",
    tag = "schedule",
    operation_id = "createChair",
    summary = "Add a treatment room",
    description = "Recorded in the audit trail. A name the clinic uses already is a 409.",
    request_body = CreateChairRequest,
    responses(
        (status = 201, description = "Added.", body = Chair,
         headers(("Location" = String, description = "`/chairs/{id}`."))),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(SCHEDULE_EDITORS))),
)]
async fn create_chair(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateChairRequest>,
) -> Result<Response, ApiError> {
    principal.require(SCHEDULE_EDITORS)?;
    let name = chair_name("name", &request.name)?;
    let actor = Actor::person(&principal, &request_id);
    let chair = ScheduleService::new(&state)
        .add_chair(principal.clinic_id, &actor, &name)
        .await?;
    tracing::info!(chair_id = %chair.id, "chair added");
    let location = http::location(format!("/chairs/{}", chair.id))?;
    Ok((StatusCode::CREATED, location, Json(chair)).into_response())
}

#[utoipa::path(
    patch,
    path = "/chairs/{id}",
    tag = "schedule",
    operation_id = "updateChair",
    summary = "Rename or (de)activate a treatment room",
    description = "Only the fields present change. A deactivated chair keeps its past \
                   appointments and cannot be booked. Recorded in the audit trail.",
    params(("id" = ChairId, Path, description = "The chair.")),
    request_body = UpdateChairRequest,
    responses(
        (status = 200, description = "The chair now.", body = Chair),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(SCHEDULE_EDITORS))),
)]
async fn update_chair(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<ChairId>,
    ApiJson(request): ApiJson<UpdateChairRequest>,
) -> Result<Json<Chair>, ApiError> {
    principal.require(SCHEDULE_EDITORS)?;
    if request.name.is_none() && request.active.is_none() {
        return Err(
            InputError::malformed_request("Send name or active: nothing would change.").into(),
        );
    }
    let name = request
        .name
        .as_deref()
        .map(|name| chair_name("name", name))
        .transpose()?;
    let actor = Actor::person(&principal, &request_id);
    let chair = ScheduleService::new(&state)
        .change_chair(principal.clinic_id, &actor, id, name, request.active)
        .await?;
    Ok(Json(chair))
}
