//! `/patients` routes of the `patients` function.

use super::service::PatientService;
use super::types::{
    CreatePatientRequest, ListPatientsQuery, NewPatient, PatientChanges, PatientResponse,
    PatientSearch, UpdatePatientRequest,
};
use crate::access::Caller;
use crate::auth::{Principal, Role};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::ids::PatientId;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use ::http::{HeaderValue, StatusCode, header};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

/// Everyone on staff reads and registers patients; archiving is for admins and reception.
const WRITERS: &[Role] = &[Role::Admin, Role::Receptionist, Role::Dentist];
const ARCHIVERS: &[Role] = &[Role::Admin, Role::Receptionist];

pub fn router(state: AppState) -> Router {
    let config = state.config.http.clone();
    http::finish(
        Router::new()
            .route("/patients", get(list).post(create))
            .route("/patients/{id}", get(show).patch(update).delete(archive))
            .with_state(state),
        &config,
    )
}

async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreatePatientRequest>,
) -> Result<Response, ApiError> {
    principal.require(WRITERS)?;
    let patient = NewPatient::try_from(request)?;
    let record = PatientService::new(&state)
        .register(principal.clinic_id, &patient)
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

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<PatientId>,
) -> Result<Json<PatientResponse>, ApiError> {
    let patients = PatientService::new(&state);
    let key = patients.profile_key(caller.clinic_id(), id);
    let (principal, prefetched) = caller.admit_reading(&key).await?;
    let record = patients
        .profile(principal.clinic_id, id, prefetched)
        .await?;
    Ok(Json(record.into()))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<PatientId>,
    ApiJson(request): ApiJson<UpdatePatientRequest>,
) -> Result<Json<PatientResponse>, ApiError> {
    principal.require(WRITERS)?;
    let changes = PatientChanges::try_from(request)?;
    let record = PatientService::new(&state)
        .update(principal.clinic_id, id, &changes)
        .await?;
    tracing::info!(patient_id = %record.id, "patient updated");
    Ok(Json(record.into()))
}

async fn archive(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<PatientId>,
) -> Result<StatusCode, ApiError> {
    principal.require(ARCHIVERS)?;
    PatientService::new(&state)
        .archive(principal.clinic_id, id)
        .await?;
    tracing::info!(patient_id = %id, "patient archived");
    Ok(StatusCode::NO_CONTENT)
}
