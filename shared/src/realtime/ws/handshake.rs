//! The `$connect` handshake: the connection a client asks for (its id, the principal of its
//! `?token=`, its `?since=`), registered, or the refusal API Gateway answers the client with.

use super::{accepted, connection_id};
use crate::auth::Principal;
use crate::http::ApiError;
use crate::ids::ClinicId;
use crate::ratelimit::RouteClass;
use crate::realtime::Realtime;
use crate::realtime::registry::{ConnectionRegistry, LiveConnection, Registration, now_ms};
use crate::telemetry::ErrorChain;
use ::http::{HeaderMap, HeaderValue, header};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;

/// Registers the connection the handshake asks for; any non-2xx answer refuses it.
pub(super) async fn accept(
    realtime: Realtime<'_>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection = match requested_connection(realtime, event).await {
        Ok(connection) => connection,
        Err(error) => return refuse(error, None),
    };
    match ConnectionRegistry::new(realtime)
        .register(&connection)
        .await
    {
        Ok(Registration::Registered) => accepted(),
        Ok(Registration::UserAtLimit { limit }) => {
            tracing::info!(
                limit,
                "WebSocket connect refused: the user's connections are at the limit"
            );
            refuse(
                ApiError::QuotaExceeded {
                    detail: format!(
                        "You have {limit} live connections open already; close a tab or \
                         device, or wait for one to end."
                    ),
                    retry_after_seconds: 30,
                },
                None,
            )
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "WebSocket connect refused: the registry is unavailable");
            refuse(
                ApiError::Unavailable {
                    source: Box::new(error),
                    retry_after_seconds: 5,
                },
                Some(
                    "Live notifications are unavailable right now; retry shortly (GET /notifications still works).",
                ),
            )
        }
    }
}

/// The connection `event` asks for, with its span fields recorded.
async fn requested_connection(
    realtime: Realtime<'_>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<LiveConnection, ApiError> {
    let context = &event.request_context;
    let Some(connection_id) = connection_id(event) else {
        return Err(ApiError::BadRequest {
            detail: "The event names no connection.".into(),
            field: None,
        });
    };
    tracing::Span::current().record("connection_id", connection_id);
    let (principal, token_expires_at) = authenticate(realtime, event).await?;
    let span = tracing::Span::current();
    span.record("clinic_id", tracing::field::display(principal.clinic_id));
    span.record("user_id", tracing::field::display(principal.user_id));
    span.record("role", principal.role.as_str());
    Ok(LiveConnection {
        id: connection_id.to_owned(),
        clinic: principal.clinic_id,
        user: principal.user_id,
        role: principal.role,
        connected_at_ms: if context.connected_at > 0 {
            context.connected_at
        } else {
            now_ms()
        },
        since: since(event)?,
        token_expires_at_ms: Some(token_expires_at.saturating_mul(1000)),
    })
}

/// The principal of the `?token=` in the `?clinic=`, through the same gate as an HTTP request:
/// 401 without a token or with one that does not verify (or of an unknown user), 400 for a bad
/// clinic or none named by a person with several, 403 for a clinic the caller is not an active
/// member of or an archived one, 429 over the read limits, 503 when the signing keys cannot be
/// fetched.
async fn authenticate(
    realtime: Realtime<'_>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> Result<(Principal, i64), ApiError> {
    let token = event
        .query_string_parameters
        .first("token")
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        tracing::info!("WebSocket connect without a token");
        return Err(ApiError::Unauthorized {
            detail: "Pass the access token as ?token= on the WebSocket URL.".into(),
        });
    };
    // A WebSocket is a session of reads: the same gate and limits as an HTTP read.
    realtime
        .access
        .admit(token, clinic(event)?, RouteClass::Reads)
        .await
        .map(|admitted| (admitted.principal, admitted.token_expires_at))
        .inspect_err(|error| tracing::info!(reason = %error, "WebSocket connect refused"))
}

/// `?clinic=<id>` (optional): the clinic whose notifications the connection receives, as the
/// `Pulso-Clinic` header names it on HTTP.
fn clinic(event: &ApiGatewayWebsocketProxyRequest) -> Result<Option<ClinicId>, ApiError> {
    match event.query_string_parameters.first("clinic") {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest {
                detail: "clinic must be the id of a clinic you belong to (GET /me lists them)."
                    .into(),
                field: Some("clinic".into()),
            }),
    }
}

/// `?since=<id>` (optional): the default of the connection's `replay`.
fn since(event: &ApiGatewayWebsocketProxyRequest) -> Result<Option<i64>, ApiError> {
    match event.query_string_parameters.first("since") {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(since) if since >= 0 => Ok(Some(since)),
            _ => Err(ApiError::BadRequest {
                detail: "since must be the id of the last notification received (0 or more)."
                    .into(),
                field: Some("since".into()),
            }),
        },
    }
}

/// A refused handshake: the status API Gateway answers the client with, and the problem+json
/// body the HTTP edge writes for `error` (with `detail` in place of its own when given). Only
/// the content type and `Retry-After` go along: no `WWW-Authenticate` on a WebSocket.
fn refuse(error: ApiError, detail: Option<&str>) -> ApiGatewayProxyResponse {
    let mut problem = error.problem();
    if let Some(detail) = detail {
        problem.detail = detail.to_owned();
    }
    let retry_after_seconds = match &error {
        ApiError::Unavailable {
            retry_after_seconds,
            ..
        } => Some(*retry_after_seconds),
        _ => None,
    };
    let status = problem.status;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::http::PROBLEM_JSON),
    );
    if let Some(seconds) = retry_after_seconds.filter(|seconds| *seconds > 0) {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = i64::from(status);
    response.headers = headers;
    response.body = Some(Body::Text(
        serde_json::to_string(&problem).unwrap_or_default(),
    ));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_problems_they_replace() {
        let since = refuse(
            ApiError::BadRequest {
                detail: "since must be the id of the last notification received (0 or more)."
                    .into(),
                field: Some("since".into()),
            },
            None,
        );
        assert_eq!(since.status_code, 400);
        assert_eq!(
            since.body,
            Some(Body::Text(
                r#"{"type":"/problems/bad-request","title":"Malformed request","status":400,"detail":"since must be the id of the last notification received (0 or more).","field":"since"}"#.into()
            ))
        );
        let down = refuse(
            ApiError::Unavailable {
                source: "registry down".into(),
                retry_after_seconds: 5,
            },
            Some("Live notifications are unavailable right now."),
        );
        assert_eq!(down.status_code, 503);
        assert_eq!(down.headers[header::RETRY_AFTER], "5");
        assert!(!down.headers.contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(
            down.body,
            Some(Body::Text(
                r#"{"type":"/problems/unavailable","title":"Service unavailable","status":503,"detail":"Live notifications are unavailable right now."}"#.into()
            ))
        );
    }
}
