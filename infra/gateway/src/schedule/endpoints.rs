//! The schedules' part of the gateway's own `/_local` API: the listing, and the trigger that
//! runs a schedule's function now and answers with what it returned.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use super::{ScheduleSpec, Scheduler, TickOutcome, Trigger, cause_chain};
use crate::invoke::{Invocation, InvokeError};

/// `GET /_local/schedules` and `POST /_local/schedules/{name}/trigger`.
pub fn router(scheduler: Arc<Scheduler>) -> Router {
    Router::new()
        .route("/_local/schedules", get(list))
        .route("/_local/schedules/{name}/trigger", post(trigger))
        .with_state(scheduler)
}

async fn list(State(scheduler): State<Arc<Scheduler>>) -> Response {
    json_response(StatusCode::OK, &scheduler.listing())
}

/// Runs the schedule's function now and answers with its output (200), its error (502), or
/// why it could not run.
async fn trigger(State(scheduler): State<Arc<Scheduler>>, Path(name): Path<String>) -> Response {
    let index = match scheduler.find(&name) {
        Ok(index) => index,
        Err(candidates) if candidates.is_empty() => {
            let known: Vec<String> = scheduler.specs().map(ScheduleSpec::id).collect();
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({"message": format!("no schedule named `{name}`"), "schedules": known}),
            );
        }
        Err(candidates) => {
            return json_response(
                StatusCode::CONFLICT,
                &json!({
                    "message": format!("`{name}` has several schedules: name one as Function.Event"),
                    "schedules": candidates,
                }),
            );
        }
    };
    let id = scheduler.entries[index].spec.id();
    let function = scheduler.entries[index].spec.function.clone();
    let mut response = match scheduler.tick(index, Trigger::Manual).await {
        TickOutcome::Busy => json_response(
            StatusCode::CONFLICT,
            &json!({
                "message": format!("{function} is still running a tick; ticks of one function never overlap, try again when it ends"),
            }),
        ),
        TickOutcome::Ran(Ok(Invocation::Returned(output))) => raw_json(StatusCode::OK, output),
        TickOutcome::Ran(Ok(Invocation::Failed(error))) => {
            raw_json(StatusCode::BAD_GATEWAY, error.body)
        }
        TickOutcome::Ran(Err(error)) => {
            let status = match error {
                InvokeError::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            json_response(status, &json!({ "message": cause_chain(&error) }))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-pulso-schedule"), value);
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    raw_json(status, body.to_string().into())
}

fn raw_json(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, body).into_response()
}
