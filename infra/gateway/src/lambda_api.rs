//! Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`) for the functions the
//! gateway runs, so a function can invoke another the way it does on AWS, with the real SDK
//! (`LAMBDA_ENDPOINT_URL` points it here): the job queue wakes the `worker` with an
//! asynchronous invocation (`X-Amz-Invocation-Type: Event`), answered 202 at once while the
//! function runs. A synchronous one (`RequestResponse`, the default) answers the function's
//! output, or its error with `X-Amz-Function-Error: Unhandled`, as Lambda does. The function
//! is named by its binary (the template's `Metadata.BuildProperties.Binary`), or by an ARN
//! ending in it.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::invoke::{Invocation, InvokeError, Invoker};
use crate::runtime::PAYLOAD_LIMIT;

/// How long an asynchronous invocation's outcome is waited for, to log it (the function's own
/// timeout ends it sooner).
const EVENT_OUTCOME_WAIT: Duration = Duration::from_secs(15 * 60);

struct LambdaApi {
    invoker: Invoker,
    /// How long a synchronous invocation is waited for.
    timeout: Duration,
}

pub fn router(invoker: Invoker, timeout: Duration) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .layer(DefaultBodyLimit::max(PAYLOAD_LIMIT + 1))
        .with_state(Arc::new(LambdaApi { invoker, timeout }))
}

/// The function an Invoke names: its name, or the name in its ARN
/// (`arn:aws:lambda:{region}:{account}:function:{name}[:{qualifier}]`).
fn function_name(named: &str) -> &str {
    match named.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => named,
    }
}

async fn invoke(
    State(api): State<Arc<LambdaApi>>,
    Path(named): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let function = function_name(&named).to_owned();
    let event: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(event) => event,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    "Could not parse request body into json",
                );
            }
        }
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("RequestResponse");
    match invocation_type {
        "Event" => {
            // Known before it is accepted, as Lambda checks the function exists.
            if let Invoker::Host(host) = &api.invoker
                && host.spec(&function).is_none()
            {
                return not_found(&function);
            }
            let invoker = api.invoker.clone();
            tokio::spawn(async move {
                match invoker.invoke(&function, &event, EVENT_OUTCOME_WAIT).await {
                    Ok(Invocation::Returned(_)) => {
                        tracing::info!(%function, "asynchronous invocation finished");
                    }
                    Ok(Invocation::Failed(failure)) => tracing::warn!(
                        %function,
                        error = %failure.message(),
                        "asynchronous invocation failed"
                    ),
                    Err(error) => {
                        tracing::warn!(%function, %error, "asynchronous invocation failed")
                    }
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        "RequestResponse" => match api.invoker.invoke(&function, &event, api.timeout).await {
            Ok(Invocation::Returned(output)) => (StatusCode::OK, output).into_response(),
            Ok(Invocation::Failed(failure)) => (
                StatusCode::OK,
                [("x-amz-function-error", "Unhandled")],
                failure.body,
            )
                .into_response(),
            Err(InvokeError::UnknownFunction(_)) => not_found(&function),
            Err(InvokeError::PayloadTooLarge(size)) => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                &format!("Request must be smaller than {PAYLOAD_LIMIT} bytes, got {size}"),
            ),
            Err(other) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                &other.to_string(),
            ),
        },
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("X-Amz-Invocation-Type must be Event, RequestResponse or DryRun, got {other}"),
        ),
    }
}

fn not_found(function: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("Function not found: {function}"),
    )
}

/// An error as Lambda's REST JSON protocol sends it: the type in `x-amzn-ErrorType`, a body
/// with `Type` and `message`.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [("x-amzn-errortype", kind)],
        axum::Json(json!({"Type": "User", "message": message})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_named_by_its_name_or_its_arn() {
        assert_eq!(function_name("worker"), "worker");
        assert_eq!(
            function_name("arn:aws:lambda:eu-west-1:123456789012:function:worker"),
            "worker"
        );
        assert_eq!(
            function_name("arn:aws:lambda:eu-west-1:123456789012:function:worker:live"),
            "worker"
        );
    }
}
