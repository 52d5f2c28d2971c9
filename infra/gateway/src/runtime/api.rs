//! The Lambda Runtime API the function processes call (`AWS_LAMBDA_RUNTIME_API`), one base path
//! per instance (`/{function}/{instance}`) so the host knows who is asking:
//! `GET …/2018-06-01/runtime/invocation/next`, `POST …/invocation/{id}/response`,
//! `POST …/invocation/{id}/error` and `POST …/runtime/init/error`, answered as the Lambda
//! service answers them (docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State as AxumState};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::json;
use tokio::sync::oneshot;

use super::pool::{Delivery, Outcome, State, StopReason};
use super::{Host, PAYLOAD_LIMIT, lock, stop};

/// Error bodies (`{"errorType", "errorMessage"}`) are small; anything bigger is cut.
const ERROR_LIMIT: usize = 256 * 1024;

pub fn router(host: Arc<Host>) -> Router {
    Router::new()
        .route(
            "/{function}/{instance}/2018-06-01/runtime/invocation/next",
            get(next),
        )
        .route(
            "/{function}/{instance}/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/{function}/{instance}/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route(
            "/{function}/{instance}/2018-06-01/runtime/init/error",
            post(init_error),
        )
        .with_state(host)
}

/// Parks the instance until an invocation arrives, however long that takes.
async fn next(
    AxumState(host): AxumState<Arc<Host>>,
    Path((function, instance)): Path<(String, u64)>,
) -> Response {
    let Some(f) = host.function(&function) else {
        return gone();
    };
    let (waiter, delivery) = oneshot::channel();
    {
        let mut pool = lock(&f.pool);
        let Some(current) = pool.instances.get_mut(&instance) else {
            return gone();
        };
        if current.retiring {
            stop(&mut pool, instance, StopReason::Rebuilt);
            return gone();
        }
        if matches!(current.state, State::Busy { .. }) {
            // lambda_runtime never does this; a runtime that did has dropped its invocation.
            let message = "the runtime asked for the next event without answering this one";
            pool.finish(instance, Outcome::host_error("Runtime.NoResponse", message));
        }
        if let Some(current) = pool.instances.get_mut(&instance) {
            current.state = State::Idle { waiter };
        }
        host.schedule(f, &mut pool);
    }
    match delivery.await {
        Ok(delivery) => event_response(&host, &function, delivery),
        // The instance was stopped while it waited.
        Err(_) => gone(),
    }
}

fn event_response(host: &Host, function: &str, delivery: Delivery) -> Response {
    let mut response = Response::new(Body::from(delivery.event));
    let headers = response.headers_mut();
    let arn = format!(
        "arn:aws:lambda:{}:000000000000:function:{function}",
        host.options.region
    );
    for (name, value) in [
        ("lambda-runtime-aws-request-id", delivery.request_id),
        (
            "lambda-runtime-deadline-ms",
            delivery.deadline_ms.to_string(),
        ),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", trace_id()),
        ("content-type", "application/json".to_owned()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// An X-Ray trace header of the shape Lambda sends (`Root=1-<time>-<24 hex>;…;Sampled=0`).
fn trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &random[..24],
        &random[16..]
    )
}

async fn response(
    AxumState(host): AxumState<Arc<Host>>,
    Path((function, instance, request_id)): Path<(String, u64, String)>,
    body: Body,
) -> Response {
    let outcome = match to_bytes(body, PAYLOAD_LIMIT).await {
        Ok(output) => Outcome::Returned(output),
        Err(_) => Outcome::host_error(
            "Function.ResponseSizeTooLarge",
            &format!(
                "Response payload size exceeded maximum allowed payload size ({PAYLOAD_LIMIT} bytes)."
            ),
        ),
    };
    let too_large = matches!(outcome, Outcome::Failed(_));
    let accepted = complete(&host, &function, instance, &request_id, outcome);
    match (accepted, too_large) {
        (false, _) => invalid_request_id(),
        (true, true) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            runtime_error("RequestEntityTooLarge", "response over 6 MB"),
        )
            .into_response(),
        (true, false) => accepted_response(),
    }
}

async fn error(
    AxumState(host): AxumState<Arc<Host>>,
    Path((function, instance, request_id)): Path<(String, u64, String)>,
    body: Body,
) -> Response {
    let body = read_error_body(body).await;
    let accepted = complete(
        &host,
        &function,
        instance,
        &request_id,
        Outcome::Failed(body),
    );
    if accepted {
        accepted_response()
    } else {
        invalid_request_id()
    }
}

/// The runtime could not initialise (it exits next): say why in the gateway's log.
async fn init_error(
    AxumState(host): AxumState<Arc<Host>>,
    Path((function, instance)): Path<(String, u64)>,
    body: Body,
) -> Response {
    let body = read_error_body(body).await;
    let resource = host
        .spec(&function)
        .map_or_else(String::new, |s| s.resource.clone());
    tracing::error!(
        %function,
        %resource,
        instance,
        error = %String::from_utf8_lossy(&body),
        "function failed to initialise"
    );
    accepted_response()
}

/// Ends the invocation `request_id` of `instance`; false when it is not the one it runs.
fn complete(
    host: &Arc<Host>,
    function: &str,
    instance: u64,
    request_id: &str,
    outcome: Outcome,
) -> bool {
    let Some(f) = host.function(function) else {
        return false;
    };
    let mut pool = lock(&f.pool);
    if pool.running(instance, request_id).is_none() {
        return false;
    }
    pool.finish(instance, outcome);
    if pool.instances.get(&instance).is_some_and(|i| i.retiring) {
        stop(&mut pool, instance, StopReason::Rebuilt);
        host.schedule(f, &mut pool);
    }
    true
}

async fn read_error_body(body: Body) -> Bytes {
    to_bytes(body, ERROR_LIMIT).await.unwrap_or_else(|_| {
        Bytes::from(
            json!({"errorType": "Runtime.InvalidError", "errorMessage": "error body over 256 KiB"})
                .to_string(),
        )
    })
}

fn accepted_response() -> Response {
    (StatusCode::ACCEPTED, runtime_body(json!({"status": "OK"}))).into_response()
}

/// Lambda's answer to an id that is not the instance's current invocation (it timed out, or
/// was answered already).
fn invalid_request_id() -> Response {
    (
        StatusCode::BAD_REQUEST,
        runtime_error("InvalidRequestID", "not this instance's current invocation"),
    )
        .into_response()
}

/// The instance was stopped: its process is being killed.
fn gone() -> Response {
    (
        StatusCode::GONE,
        runtime_error("InstanceStopped", "this instance was stopped by the host"),
    )
        .into_response()
}

fn runtime_error(error_type: &str, message: &str) -> Response {
    runtime_body(json!({"errorType": error_type, "errorMessage": message}))
}

fn runtime_body(value: serde_json::Value) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
