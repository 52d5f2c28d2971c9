//! The three WebSocket functions' handlers, called by their `main.rs` with the API Gateway
//! event and by the tests directly.
//!
//! - `$connect` ([`connect`]): the JWT comes as `?token=` (browsers cannot set headers on a
//!   WebSocket handshake); missing, expired or forged → 401, and API Gateway refuses the
//!   handshake with that status. `?since=<id>` (optional) is remembered as the default of the
//!   connection's `replay`. The connection is registered in Redis under its clinic, role and
//!   user; when Redis is unreachable the handshake is refused with 503 (a connection that no push
//!   could reach would look live to the client and silently miss everything; refused, the
//!   client retries with backoff and meanwhile reads `GET /notifications`).
//! - `$disconnect` ([`disconnect`]): removes it from every index (best effort, as API Gateway
//!   itself only tries).
//! - `$default` ([`default`]): one frame in, one frame back through the route response: `ping` →
//!   `pong`, `ack` → `ack`, `replay` → `replay`, anything else → an `error` frame, never a crash.
//!
//! Why replay is a message and not a push from `$connect`: a POST to @connections during
//! `$connect` gets 410 (the connection is not open until the handler answers), and Lambda
//! freezes the environment as soon as it answers, so nothing can be sent "just after".
//!
//! Logs carry the connection id, clinic, user and role; never the query string (the token).

mod handshake;
mod message;

pub use message::{REPLAY_LIMIT, answer};

use super::Realtime;
use super::registry::ConnectionRegistry;
use crate::telemetry::ErrorChain;
use ::http::{HeaderValue, header};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use tracing::Instrument;

/// API Gateway's connection ids are 16 characters; anything far longer is not one.
const CONNECTION_ID_LIMIT: usize = 128;

/// `$connect`: checks the token, registers the connection; any non-2xx refuses the handshake.
pub async fn connect(
    realtime: impl Into<Realtime<'_>>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let realtime = realtime.into();
    let span = tracing::info_span!(
        "ws_connect",
        request_id = event.request_context.request_id.as_deref().unwrap_or("-"),
        connection_id = tracing::field::Empty,
        clinic_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
        role = tracing::field::Empty,
    );
    let answer = handshake::accept(realtime, &event)
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::info!(status = answer.status_code, "WebSocket connect answered");
    });
    answer
}

/// `$disconnect`: removes the connection from the registry. API Gateway ignores the answer.
pub async fn disconnect(
    realtime: impl Into<Realtime<'_>>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let realtime = realtime.into();
    let span = tracing::info_span!(
        "ws_disconnect",
        request_id = event.request_context.request_id.as_deref().unwrap_or("-"),
        connection_id = connection_id(&event).unwrap_or("-"),
    );
    async {
        if let Some(id) = connection_id(&event) {
            match ConnectionRegistry::new(realtime).unregister(id).await {
                Ok(registered) => tracing::info!(
                    registered,
                    close_code = event.request_context.disconnect_status_code,
                    "WebSocket disconnected"
                ),
                // The sets expire on their own and a push's 410 removes the rest.
                Err(error) => tracing::warn!(
                    error = %ErrorChain(&error),
                    "a closed connection could not be removed from the registry"
                ),
            }
        }
    }
    .instrument(span)
    .await;
    accepted()
}

/// `$default`: answers one client frame through the route response (always 200; the frame says
/// what happened).
pub async fn default(
    realtime: impl Into<Realtime<'_>>,
    event: ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let realtime = realtime.into();
    let span = tracing::info_span!(
        "ws_message",
        request_id = event.request_context.request_id.as_deref().unwrap_or("-"),
        connection_id = connection_id(&event).unwrap_or("-"),
        clinic_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
        action = tracing::field::Empty,
    );
    let frame = answer(realtime, connection_id(&event), event.body.as_deref())
        .instrument(span)
        .await;
    let mut response = accepted();
    response.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.body = Some(Body::Text(frame.to_json()));
    response
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty() && id.len() <= CONNECTION_ID_LIMIT)
}

/// 200 with no body. (`ApiGatewayProxyResponse` is non-exhaustive: built field by field.)
fn accepted() -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
    response
}
