//! `/patients` routes of the `patients` function.

use super::service::PatientService;
use super::types::{
    CreatePatientRequest, ListPatientsQuery, NewPatient, PatientChanges, PatientResponse,
    PatientSearch, UpdatePatientRequest,
};
use crate::access::Caller;
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::http::conditional::{IfMatch, IfMatchHeader, IfNoneMatchHeader, tagged};
use crate::http::responses::{Conflict, PreconditionFailed};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::ids::PatientId;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use utoipa_axum::router::OpenApiRouter;

/// Everyone on staff reads and registers patients; archiving is for admins and reception.
const WRITERS: &[Role] = &[Role::Admin, Role::Receptionist, Role::Dentist];
const ARCHIVERS: &[Role] = &[Role::Admin, Role::Receptionist];

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list, create))
        .routes(utoipa_axum::routes!(show, update, archive))
}

#[utoipa::path(
    post,
    path = "/patients",
    tag = "patients",
    operation_id = "createPatient",
    summary = "Register a patient",
    request_body = CreatePatientRequest,
    responses(
        (status = 201, description = "Registered.", body = PatientResponse,
         headers(("Location" = String, description = "`/patients/{id}` of the new patient."))),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(WRITERS))),
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreatePatientRequest>,
) -> Result<Response, ApiError> {
    principal.require(WRITERS)?;
    let patient = NewPatient::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let record = PatientService::new(&state)
        .register(principal.clinic_id, &patient, &actor)
        .await?;
    tracing::info!(patient_id = %record.id, "patient registered");
    let location =
        HeaderValue::from_str(&format!("/patients/{}", record.id)).map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(PatientResponse::from(record)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/patients",
    tag = "patients",
    operation_id = "listPatients",
    summary = "Search the clinic's patients",
    description = "By name (accents and case ignored), phone or national id; sorted by last \
                   name then first name.",
    params(ListPatientsQuery),
    responses((status = 200, description = "One page of patients.", body = Page<PatientResponse>)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListPatientsQuery>,
) -> Result<Json<Page<PatientResponse>>, ApiError> {
    let search = PatientSearch::parse(query.search.as_deref())?;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let found = PatientService::new(&state)
        .search(principal.clinic_id, &search, query.include_archived, &page)
        .await?;
    Ok(Json(found.map(PatientResponse::from)))
}

#[utoipa::path(
    get,
    path = "/patients/{id}",
    tag = "patients",
    operation_id = "getPatient",
    summary = "A patient's record",
    description = "The `ETag` names this version: send it as `If-Match` with a change, so a \
                   change made meanwhile by someone else is not overwritten.",
    params(("id" = PatientId, Path, description = "The patient's id."), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The patient.", body = PatientResponse,
         headers(("ETag" = String, description = "This version of the patient."))),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "This version of the patient."))),
    ),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<PatientId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let patients = PatientService::new(&state);
    let key = patients.profile_key(caller.clinic_id(), id);
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    let record = patients
        .profile(principal.clinic_id, id, prefetched)
        .await?;
    Ok(tagged(
        StatusCode::OK,
        &headers,
        PatientResponse::from(record),
    ))
}

#[utoipa::path(
    patch,
    path = "/patients/{id}",
    tag = "patients",
    operation_id = "updatePatient",
    summary = "Change a patient's record",
    description = "Only the fields present change; `null` clears an optional field. With \
                   `If-Match`, only while the patient is still that version (412 otherwise, \
                   nothing written).",
    params(("id" = PatientId, Path, description = "The patient's id."), IfMatchHeader),
    request_body = UpdatePatientRequest,
    responses(
        (status = 200, description = "The changed patient.", body = PatientResponse,
         headers(("ETag" = String, description = "The new version of the patient."))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    ),
    extensions(("x-roles" = json!(WRITERS))),
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<PatientId>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UpdatePatientRequest>,
) -> Result<Response, ApiError> {
    principal.require(WRITERS)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let changes = PatientChanges::try_from(request)?;
    let actor = Actor::person(&principal, &request_id);
    let record = PatientService::new(&state)
        .update(principal.clinic_id, id, &changes, if_match.as_ref(), &actor)
        .await?;
    tracing::info!(patient_id = %record.id, "patient updated");
    Ok(tagged(
        StatusCode::OK,
        &HeaderMap::new(),
        PatientResponse::from(record),
    ))
}

#[utoipa::path(
    delete,
    path = "/patients/{id}",
    tag = "patients",
    operation_id = "archivePatient",
    summary = "Archive a patient",
    description = "The record is kept (clinical records must be); it leaves searches unless \
                   `include_archived` is set, and can no longer change.",
    params(("id" = PatientId, Path, description = "The patient's id.")),
    responses((status = 204, description = "Archived (also when it already was).")),
    extensions(("x-roles" = json!(ARCHIVERS))),
)]
async fn archive(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<PatientId>,
) -> Result<StatusCode, ApiError> {
    principal.require(ARCHIVERS)?;
    let actor = Actor::person(&principal, &request_id);
    PatientService::new(&state)
        .archive(principal.clinic_id, id, &actor)
        .await?;
    tracing::info!(patient_id = %id, "patient archived");
    Ok(StatusCode::NO_CONTENT)
}
