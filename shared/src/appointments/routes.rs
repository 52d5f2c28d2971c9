//! `/appointments` routes of the `appointments` function.
//!
//! `POST /appointments/{id}/{action}` knows `confirm`, `cancel`, `complete` and `no-show`;
//! any other action is a 404 like any other route the API does not have.

use super::agenda::{Agenda, AgendaQuery, agenda};
use super::service::AppointmentService;
use super::types::{
    Action, AppointmentChanges, AppointmentFilter, AppointmentResponse, CreateAppointmentRequest,
    Include, ListAppointmentsQuery, NewAppointment, UpdateAppointmentRequest,
};
use crate::audit::Actor;
use crate::auth::{Principal, Role};
use crate::http::conditional::{IfMatch, IfMatchHeader, IfNoneMatchHeader, tagged};
use crate::http::responses::{
    Conflict, NotFound, PreconditionFailed, UnsupportedMediaType, Validation,
};
use crate::http::{self, ApiError, ApiJson, ApiPath, ApiQuery, RequestId};
use crate::ids::AppointmentId;
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use ::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::body::HttpBody;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everyone on staff reads; every role books, reschedules and moves appointments along (a
/// dentist marks the visit completed, reception confirms and cancels).
const WRITERS: &[Role] = &[Role::Admin, Role::Receptionist, Role::Dentist];
/// Booking against the schedule (`override`) is the clinic management's call.
const OVERRIDERS: &[Role] = &[Role::Admin];

pub fn router(state: AppState) -> Router {
    let edge = state.edge();
    http::finish(routes(), state, edge)
}

/// The routes with their OpenAPI description (`crate::contract`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update))
        .routes(routes!(apply))
        .routes(routes!(day_agenda))
}

#[utoipa::path(
    get,
    path = "/agenda",
    tag = "appointments",
    operation_id = "getAgenda",
    summary = "One day of the agenda, per dentist",
    description = "For a calendar screen, in one call: each dentist's working hours that day, \
                   their time off and the clinic's closures, every appointment that is not \
                   cancelled (with the patient's name) and the gaps left in their hours. The \
                   clinic's date (default today); every active dentist with hours, and anyone \
                   booked that day, by name — or only `dentist_id` (404 if not the clinic's).",
    params(AgendaQuery),
    responses(
        (status = 200, description = "The day.", body = Agenda),
        (status = 404, response = NotFound),
    ),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn day_agenda(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<AgendaQuery>,
) -> Result<Json<Agenda>, ApiError> {
    Ok(Json(agenda(&state.db, principal.clinic_id, &query).await?))
}

#[utoipa::path(
    post,
    path = "/appointments",
    tag = "appointments",
    operation_id = "createAppointment",
    summary = "Book an appointment",
    description = "It must fit the agenda's capacity, checked in the same transaction as the \
                   insert: inside one stretch of the dentist's working hours, not on their \
                   time off nor a clinic closure, in a chair (if given) that is active and \
                   free; each refusal is a 409 of its own type with the offending `intervals`. \
                   Admins may book against hours and time off with `\"override\": true` \
                   (recorded). Reminders are planned for it; the clinic's staff are told over \
                   the WebSocket.",
    request_body = CreateAppointmentRequest,
    responses(
        (status = 201, description = "Booked.", body = AppointmentResponse,
         headers(("Location" = String, description = "`/appointments/{id}` of the new one."))),
        (status = 409, response = Conflict),
    ),
    extensions(("x-roles" = json!(WRITERS))),
)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiJson(request): ApiJson<CreateAppointmentRequest>,
) -> Result<Response, ApiError> {
    principal.require(WRITERS)?;
    let appointment = NewAppointment::try_from(request)?;
    if appointment.override_schedule {
        principal.require(OVERRIDERS)?;
    }
    let actor = Actor::person(&principal, &request_id);
    let record = AppointmentService::new(&state)
        .book(principal.clinic_id, &actor, principal.user_id, &appointment)
        .await?;
    tracing::info!(
        appointment_id = %record.id,
        dentist_id = %record.dentist_id,
        status = record.status.as_str(),
        "appointment booked"
    );
    let location = HeaderValue::from_str(&format!("/appointments/{}", record.id))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(AppointmentResponse::from(record)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/appointments",
    tag = "appointments",
    operation_id = "listAppointments",
    summary = "The agenda: appointments starting in a range",
    description = "Sorted by start time. `include=patient,dentist` embeds the names a calendar \
                   shows, so it needs no call per row.",
    params(ListAppointmentsQuery),
    responses((status = 200, description = "One page of appointments.",
               body = Page<AppointmentResponse>)),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListAppointmentsQuery>,
) -> Result<Json<Page<AppointmentResponse>>, ApiError> {
    let filter = AppointmentFilter::parse(&query, Utc::now())?;
    let include = Include::parse(query.include.as_deref())?;
    let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
    let found = AppointmentService::new(&state)
        .list(principal.clinic_id, &filter, &page, include)
        .await?;
    Ok(Json(found))
}

#[utoipa::path(
    get,
    path = "/appointments/{id}",
    tag = "appointments",
    operation_id = "getAppointment",
    summary = "One appointment",
    description = "The `ETag` names this version: send it as `If-Match` with a change, so a \
                   change made meanwhile by someone else is not overwritten.",
    params(("id" = AppointmentId, Path, description = "The appointment's id."),
           IfNoneMatchHeader),
    responses(
        (status = 200, description = "The appointment.", body = AppointmentResponse,
         headers(("ETag" = String, description = "This version of the appointment."))),
        (status = 304, description = "The client's copy is current.",
         headers(("ETag" = String, description = "This version of the appointment."))),
    ),
    extensions(("x-roles" = json!(Role::STAFF))),
)]
async fn show(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<AppointmentId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = AppointmentService::new(&state)
        .find(principal.clinic_id, id)
        .await?;
    Ok(tagged(
        StatusCode::OK,
        &headers,
        AppointmentResponse::from(record),
    ))
}

#[utoipa::path(
    patch,
    path = "/appointments/{id}",
    tag = "appointments",
    operation_id = "updateAppointment",
    summary = "Reschedule or change an appointment",
    description = "Only scheduled or confirmed appointments change. A new time or dentist must \
                   fit the agenda's capacity as a booking does (admins may `override` it); a \
                   new chair must be free. With `If-Match`, only while the appointment is \
                   still that version (412 otherwise, nothing written).",
    params(("id" = AppointmentId, Path, description = "The appointment's id."), IfMatchHeader),
    request_body = UpdateAppointmentRequest,
    responses(
        (status = 200, description = "The changed appointment.", body = AppointmentResponse,
         headers(("ETag" = String, description = "The new version of the appointment."))),
        (status = 409, response = Conflict),
        (status = 412, response = PreconditionFailed),
    ),
    extensions(("x-roles" = json!(WRITERS))),
)]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    request_id: RequestId,
    ApiPath(id): ApiPath<AppointmentId>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<UpdateAppointmentRequest>,
) -> Result<Response, ApiError> {
    principal.require(WRITERS)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let changes = AppointmentChanges::try_from(request)?;
    if changes.override_schedule {
        principal.require(OVERRIDERS)?;
    }
    let actor = Actor::person(&principal, &request_id);
    let record = AppointmentService::new(&state)
        .reschedule(principal.clinic_id, &actor, id, &changes, if_match.as_ref())
        .await?;
    tracing::info!(
        appointment_id = %record.id,
        dentist_id = %record.dentist_id,
        status = record.status.as_str(),
        "appointment updated"
    );
    Ok(tagged(
        StatusCode::OK,
        &HeaderMap::new(),
        AppointmentResponse::from(record),
    ))
}

#[utoipa::path(
    post,
    path = "/appointments/{id}/{action}",
    tag = "appointments",
    operation_id = "changeAppointmentStatus",
    summary = "Confirm, cancel, complete or mark a no-show",
    description = "No body, or `{}`. Repeating an action that is already done answers 200 with \
                   the appointment unchanged. `complete` and `no-show` need the appointment to \
                   have started.",
    params(
        ("id" = AppointmentId, Path, description = "The appointment's id."),
        ("action" = inline(Action), Path, description = "What happens to the appointment."),
    ),
    responses(
        (status = 200, description = "The appointment in its new status.",
         body = AppointmentResponse),
        (status = 409, response = Conflict),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Validation),
    ),
    extensions(("x-roles" = json!(WRITERS))),
)]
async fn apply(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, action)): ApiPath<(AppointmentId, String)>,
    _: NoBody,
) -> Result<Json<AppointmentResponse>, ApiError> {
    let action = Action::from_path(&action).ok_or(ApiError::NotFound { what: "resource" })?;
    principal.require(WRITERS)?;
    let outcome = AppointmentService::new(&state)
        .transition(principal.clinic_id, id, action)
        .await?;
    tracing::info!(
        appointment_id = %id,
        action = action.as_str(),
        from = outcome.from.as_str(),
        status = outcome.record.status.as_str(),
        changed = outcome.changed(),
        "appointment status changed"
    );
    Ok(Json(outcome.record.into()))
}

/// The action routes carry no data: an empty body, or `{}` for clients that always send JSON.
/// Anything else (a cancellation reason, say) is refused rather than silently dropped.
struct NoBody;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyObject {}

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // On Lambda an absent body is `lambda_http::Body::Empty`: at its end, but of no exact
        // size; a body built from bytes has an exact size. Either way nothing is read here.
        let body = request.body();
        if body.is_end_stream() || body.size_hint().exact() == Some(0) {
            return Ok(NoBody);
        }
        ApiJson::<EmptyObject>::from_request(request, state)
            .await
            .map(|_| NoBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    async fn no_body(body: Body, content_type: Option<&str>) -> Result<(), ApiError> {
        let mut request = Request::builder()
            .method("POST")
            .uri("/appointments/x/confirm");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        NoBody::from_request(request.body(body).unwrap(), &())
            .await
            .map(|_| ())
    }

    #[tokio::test]
    async fn action_bodies_are_empty_or_an_empty_object() {
        // What lambda_http hands the router for a request without a body.
        assert!(
            no_body(Body::new(lambda_http::Body::Empty), None)
                .await
                .is_ok()
        );
        assert!(
            no_body(Body::new(lambda_http::Body::Text(String::new())), None)
                .await
                .is_ok()
        );
        assert!(
            no_body(Body::empty(), Some("application/json"))
                .await
                .is_ok()
        );
        assert!(
            no_body(Body::from("{}"), Some("application/json"))
                .await
                .is_ok()
        );
        let refused = no_body(Body::from(r#"{"reason":"x"}"#), Some("application/json")).await;
        assert!(matches!(refused, Err(ApiError::Validation { field, .. }) if field == "reason"));
        let refused = no_body(Body::from("{}"), None).await;
        assert!(matches!(
            refused,
            Err(ApiError::UnsupportedMediaType { .. })
        ));
    }
}
