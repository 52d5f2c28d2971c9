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

use super::Realtime;
use super::inbox::{self, Reader, Window};
use super::registry::{ConnectionRegistry, LiveConnection, now_ms};
use super::types::{ClientFrame, MESSAGE_LIMIT, Notification, NotificationId, ServerFrame};
use crate::auth::AuthError;
use crate::db::DbError;
use crate::http::ApiError;
use crate::telemetry::ErrorChain;
use ::http::{HeaderMap, HeaderValue, header};
use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use tracing::Instrument;

/// Most notifications one replay frame carries; the client asks again from `last_id`.
pub const REPLAY_LIMIT: usize = 100;
/// Room kept in a replay frame for everything but the notifications themselves.
const REPLAY_FRAME_OVERHEAD: usize = 256;
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
    let answer = accept(realtime, &event).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = answer.status_code, "WebSocket connect answered");
    });
    answer
}

async fn accept(
    realtime: Realtime<'_>,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let context = &event.request_context;
    let Some(connection_id) = connection_id(event) else {
        return refuse(
            ApiError::BadRequest {
                detail: "The event names no connection.".into(),
                field: None,
            },
            None,
        );
    };
    tracing::Span::current().record("connection_id", connection_id);

    let token = event
        .query_string_parameters
        .first("token")
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        tracing::info!("WebSocket connect without a token");
        return refuse(
            ApiError::Unauthorized {
                detail: "Pass the access token as ?token= on the WebSocket URL.".into(),
            },
            None,
        );
    };
    let principal = match realtime.auth.authenticate(token).await {
        Ok(principal) => principal,
        Err(error @ AuthError::KeysUnavailable(_)) => {
            if let AuthError::KeysUnavailable(source) = &error {
                tracing::warn!(error = ?source.as_ref().map(|e| e.to_string()), "signing keys unavailable at WebSocket connect");
            }
            // The same 503 an HTTP request gets when the keys cannot be fetched.
            return refuse(ApiError::from(error), None);
        }
        Err(error) => {
            tracing::info!(reason = %error, "WebSocket connect not authenticated");
            let detail = match error {
                AuthError::Expired => "The token has expired; sign in again.",
                _ => "The token is not valid.",
            };
            return refuse(
                ApiError::Unauthorized {
                    detail: detail.into(),
                },
                None,
            );
        }
    };
    let span = tracing::Span::current();
    span.record("clinic_id", tracing::field::display(principal.clinic_id));
    span.record("user_id", tracing::field::display(principal.user_id));
    span.record("role", principal.role.as_str());

    let since = match event.query_string_parameters.first("since") {
        None => None,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(since) if since >= 0 => Some(since),
            _ => {
                return refuse(
                    ApiError::BadRequest {
                        detail:
                            "since must be the id of the last notification received (0 or more)."
                                .into(),
                        field: Some("since".into()),
                    },
                    None,
                );
            }
        },
    };
    let connection = LiveConnection {
        id: connection_id.to_owned(),
        clinic: principal.clinic_id,
        user: principal.user_id,
        role: principal.role,
        connected_at_ms: if context.connected_at > 0 {
            context.connected_at
        } else {
            now_ms()
        },
        since,
    };
    match ConnectionRegistry::new(realtime)
        .register(&connection)
        .await
    {
        Ok(()) => accepted(),
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

/// The answer to one frame from `connection_id`.
pub async fn answer(
    realtime: impl Into<Realtime<'_>>,
    connection_id: Option<&str>,
    body: Option<&str>,
) -> ServerFrame {
    let realtime = realtime.into();
    let frame = match parse_frame(body.unwrap_or_default()) {
        Ok(frame) => frame,
        Err(error) => return error,
    };
    let span = tracing::Span::current();
    span.record(
        "action",
        match frame {
            ClientFrame::Ping => "ping",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Replay { .. } => "replay",
        },
    );
    let registry = ConnectionRegistry::new(realtime);
    let connection = match connection_id {
        Some(id) => registry.lookup(id).await,
        None => Ok(None),
    };
    let connection = match connection {
        Ok(Some(connection)) => connection,
        Ok(None) if frame == ClientFrame::Ping => return ServerFrame::Pong { registered: false },
        Ok(None) => {
            return ServerFrame::error(
                "unknown_connection",
                "This connection is not registered (any more); reconnect with ?token=.",
            );
        }
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "the connection registry is unavailable");
            return ServerFrame::error(
                "unavailable",
                "Live notifications are unavailable right now; retry shortly.",
            );
        }
    };
    span.record("clinic_id", tracing::field::display(connection.clinic));
    span.record("user_id", tracing::field::display(connection.user));
    // Any message is activity: the registration's sets live on.
    if let Err(error) = registry.touch(&connection).await {
        tracing::warn!(error = %ErrorChain(&error), "the connection's registration could not be refreshed");
    }
    let reader = Reader {
        clinic: connection.clinic,
        user: connection.user,
        role: connection.role,
    };
    match frame {
        ClientFrame::Ping => ServerFrame::Pong { registered: true },
        ClientFrame::Ack { id } => {
            let Some(id) = NotificationId::new(id) else {
                return ServerFrame::error(
                    "bad_frame",
                    "ack needs the positive id of a notification.",
                );
            };
            match inbox::acknowledge(realtime.db, reader, id).await {
                Ok(true) => ServerFrame::Ack { id: id.get() },
                Ok(false) => {
                    ServerFrame::error("not_found", format!("No notification {id} in your inbox."))
                }
                Err(error) => database_trouble(&error),
            }
        }
        ClientFrame::Replay { since } => {
            let since = since.or(connection.since).unwrap_or(0);
            if since < 0 {
                return ServerFrame::error("bad_frame", "since must be 0 or more.");
            }
            match inbox::load_page(
                realtime.db,
                reader,
                Window::After(since),
                REPLAY_LIMIT as i64 + 1,
            )
            .await
            {
                Ok(rows) => replay_frame(since, rows),
                Err(error) => database_trouble(&error),
            }
        }
    }
}

/// A client frame, or the error frame explaining why it is not one.
fn parse_frame(body: &str) -> Result<ClientFrame, ServerFrame> {
    const KNOWN: [&str; 3] = ["ping", "ack", "replay"];
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| {
        ServerFrame::error(
            "bad_frame",
            r#"Send a JSON object such as {"action":"ping"}."#,
        )
    })?;
    let action = value
        .get("action")
        .and_then(|action| action.as_str())
        .and_then(|action| {
            KNOWN
                .iter()
                .copied()
                .find(|known| *known == action)
                .or(Some(""))
        })
        .ok_or_else(|| {
            ServerFrame::error(
                "bad_frame",
                r#"The frame needs an "action": ping, ack or replay."#,
            )
        })?;
    if action.is_empty() {
        // The client's own text is not echoed: frames are for the client, logs for us.
        return Err(ServerFrame::error(
            "unknown_action",
            "Unknown action; use ping, ack or replay.",
        ));
    }
    serde_json::from_value(value).map_err(|error| {
        let hint = match action {
            "ack" => "ack needs \"id\": the positive id of a notification.",
            "replay" => "replay takes an optional \"since\": a notification id.",
            _ => "ping takes no fields.",
        };
        tracing::debug!(%error, "malformed frame");
        ServerFrame::error("bad_frame", hint)
    })
}

/// As many of `rows` (after `since`, oldest first, up to one more than [`REPLAY_LIMIT`]) as
/// fit one message under API Gateway's limit.
fn replay_frame(since: i64, rows: Vec<Notification>) -> ServerFrame {
    let fetched = rows.len();
    let mut notifications = Vec::new();
    let mut size = REPLAY_FRAME_OVERHEAD;
    for row in rows.into_iter().take(REPLAY_LIMIT) {
        let row_size = serde_json::to_vec(&row).map_or(MESSAGE_LIMIT, |bytes| bytes.len() + 1);
        if size + row_size > MESSAGE_LIMIT {
            break;
        }
        size += row_size;
        notifications.push(row);
    }
    let complete = notifications.len() == fetched;
    let last_id = notifications.last().map_or(since, |row| row.id);
    ServerFrame::Replay {
        since,
        notifications,
        complete,
        last_id,
    }
}

fn database_trouble(error: &DbError) -> ServerFrame {
    match error {
        DbError::Unavailable(_) => {
            tracing::warn!(error = %ErrorChain(error), "database unavailable for a WebSocket frame");
            ServerFrame::error(
                "unavailable",
                "The inbox is unavailable right now; retry shortly.",
            )
        }
        DbError::Query(_) => {
            tracing::error!(error = %ErrorChain(error), "a WebSocket frame failed");
            ServerFrame::error(
                "internal",
                "Something went wrong on our side; it has been logged.",
            )
        }
    }
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty() && id.len() <= CONNECTION_ID_LIMIT)
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

/// 200 with no body. (`ApiGatewayProxyResponse` is non-exhaustive: built field by field.)
fn accepted() -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = 200;
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
    use crate::realtime::types::AudienceKind;

    fn row(id: i64, body_bytes: usize) -> Notification {
        Notification {
            id,
            audience: AudienceKind::Clinic,
            kind: "announcement".into(),
            title: "t".into(),
            body: serde_json::json!({"message": "m".repeat(body_bytes)}),
            created_at: chrono::DateTime::from_timestamp(1_795_432_000, 0).unwrap_or_default(),
            read: false,
        }
    }

    #[test]
    fn a_replay_frame_stays_under_the_message_limit() {
        let rows: Vec<_> = (1..=30).map(|id| row(id, 10_000)).collect();
        let ServerFrame::Replay {
            notifications,
            complete,
            last_id,
            ..
        } = replay_frame(0, rows)
        else {
            panic!("not a replay frame");
        };
        assert!(!complete);
        assert!(notifications.len() >= 10 && notifications.len() < 30);
        assert_eq!(last_id, notifications.last().map_or(0, |n| n.id));
        let frame = ServerFrame::Replay {
            since: 0,
            notifications,
            complete,
            last_id,
        };
        assert!(frame.to_json().len() <= MESSAGE_LIMIT);
    }

    #[test]
    fn a_replay_frame_says_whether_it_carries_everything() {
        let few: Vec<_> = (5..=7).map(|id| row(id, 10)).collect();
        let ServerFrame::Replay {
            complete,
            last_id,
            notifications,
            ..
        } = replay_frame(4, few)
        else {
            panic!("not a replay frame");
        };
        assert!(complete);
        assert_eq!((last_id, notifications.len()), (7, 3));
        let many: Vec<_> = (1..=REPLAY_LIMIT as i64 + 1)
            .map(|id| row(id, 10))
            .collect();
        let ServerFrame::Replay {
            complete, last_id, ..
        } = replay_frame(0, many)
        else {
            panic!("not a replay frame");
        };
        assert!(!complete);
        assert_eq!(last_id, REPLAY_LIMIT as i64);
        let ServerFrame::Replay {
            complete, last_id, ..
        } = replay_frame(9, Vec::new())
        else {
            panic!("not a replay frame");
        };
        assert!(complete);
        assert_eq!(last_id, 9);
    }

    #[test]
    fn frames_that_are_not_understood_get_an_error_naming_why() {
        let code = |body: &str| match parse_frame(body) {
            Err(ServerFrame::Error { error, .. }) => error,
            Ok(frame) => format!("ok {frame:?}"),
            Err(other) => format!("other {other:?}"),
        };
        assert_eq!(code("not json"), "bad_frame");
        assert_eq!(code(""), "bad_frame");
        assert_eq!(code("[]"), "bad_frame");
        assert_eq!(code(r#"{"id":1}"#), "bad_frame");
        assert_eq!(code(r#"{"action":5}"#), "bad_frame");
        assert_eq!(code(r#"{"action":"dance"}"#), "unknown_action");
        assert_eq!(code(r#"{"action":"ack","id":"seven"}"#), "bad_frame");
        assert_eq!(code(r#"{"action":"ping"}"#), "ok Ping");
    }
}
