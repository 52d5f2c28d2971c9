//! Live connections and the API Gateway Management API over them (`POST|GET|DELETE
//! /{stage}/@connections/{id}`), answering with the status codes and `x-amzn-ErrorType` header
//! the AWS SDK turns into `GoneException` and friends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::events::{ConnectionContext, iso_time};

/// API Gateway's limit on a @connections POST body (and on a WebSocket message).
pub const POST_LIMIT: usize = 128 * 1024;

/// How long a POST may wait for room in a connection's queue (a client that stopped reading).
const QUEUE_WAIT: Duration = Duration::from_secs(5);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
const ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// What the rest of the gateway asks a connection's task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(String),
    Binary(Bytes),
    Close { code: u16, reason: String },
}

/// A live connection, as the @connections API sees it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub outbox: mpsc::Sender<Outbound>,
    pub context: ConnectionContext,
    /// Epoch milliseconds of the client's last frame, shared with the connection's task.
    pub last_active_ms: Arc<AtomicI64>,
}

impl Connection {
    fn last_active(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_active_ms.load(Ordering::Relaxed))
            .unwrap_or(self.context.connected_at)
    }
}

/// Connections by id. An id is here from the moment `$connect` accepted it (its 101 is on the
/// way) until the moment it starts closing; outside that API Gateway answers 410 Gone.
#[derive(Debug, Default)]
pub struct Registry {
    connections: Mutex<HashMap<String, Connection>>,
}

impl Registry {
    pub fn insert(&self, connection: Connection) {
        let id = connection.context.connection_id.clone();
        self.lock().insert(id, connection);
    }

    pub fn remove(&self, id: &str) -> Option<Connection> {
        self.lock().remove(id)
    }

    pub fn get(&self, id: &str) -> Option<Connection> {
        self.lock().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Connection> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding the lock leaves the map consistent (every operation is one call),
    // so a poisoned lock is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a @connections request points, after the stage check.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Connection(String),
    /// A stage other than the API's: API Gateway answers 403 for such an endpoint.
    WrongStage,
    Malformed,
}

/// Splits `/{stage}/@connections/{id}` or `/@connections/{id}` and percent-decodes the id.
pub fn target(path: &str, stage: &str) -> Target {
    let Some((prefix, raw_id)) = path.split_once("/@connections/") else {
        return Target::Malformed;
    };
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && percent_decode(prefix).as_deref() != Some(stage) {
        return Target::WrongStage;
    }
    match percent_decode(raw_id) {
        Some(id) if !id.is_empty() => Target::Connection(id),
        _ => Target::Malformed,
    }
}

/// Serves one @connections request. The `authorization` header (SigV4) is accepted unread.
pub async fn handle(
    registry: &Registry,
    stage: &str,
    method: &Method,
    path: &str,
    body: Body,
) -> Response {
    let id = match target(path, stage) {
        Target::Connection(id) => id,
        Target::WrongStage | Target::Malformed => return error(ManagementError::Forbidden),
    };
    let response = match *method {
        Method::POST => post(registry, &id, body).await,
        Method::GET => get(registry, &id),
        Method::DELETE => delete(registry, &id).await,
        _ => error(ManagementError::Forbidden),
    };
    tracing::info!(
        method = %method,
        connection_id = %id,
        status = response.status().as_u16(),
        "@connections"
    );
    response
}

async fn post(registry: &Registry, id: &str, body: Body) -> Response {
    let data = match read_limited(body, POST_LIMIT).await {
        Ok(data) => data,
        Err(answer) => return error(answer),
    };
    let Some(connection) = registry.get(id) else {
        return error(ManagementError::Gone);
    };
    // The SDK sends bytes; a browser gets a text frame when they are UTF-8, as with JSON.
    let message = match String::from_utf8(data.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(_) => Outbound::Binary(data),
    };
    match tokio::time::timeout(QUEUE_WAIT, connection.outbox.send(message)).await {
        Ok(Ok(())) => success(StatusCode::OK, Body::empty(), false),
        // The connection closed between the lookup and the send.
        Ok(Err(_)) => error(ManagementError::Gone),
        Err(_) => error(ManagementError::LimitExceeded),
    }
}

fn get(registry: &Registry, id: &str) -> Response {
    let Some(connection) = registry.get(id) else {
        return error(ManagementError::Gone);
    };
    let mut identity = serde_json::Map::new();
    identity.insert(
        "sourceIp".into(),
        json!(connection.context.source_ip.to_string()),
    );
    if let Some(agent) = &connection.context.user_agent {
        identity.insert("userAgent".into(), json!(agent));
    }
    let body = json!({
        "connectedAt": iso_time(connection.context.connected_at),
        "identity": identity,
        "lastActiveAt": iso_time(connection.last_active()),
    });
    success(StatusCode::OK, Body::from(body.to_string()), true)
}

async fn delete(registry: &Registry, id: &str) -> Response {
    let Some(connection) = registry.remove(id) else {
        return error(ManagementError::Gone);
    };
    let close = Outbound::Close {
        code: DELETE_CLOSE_CODE,
        reason: DELETE_CLOSE_REASON.to_owned(),
    };
    // Queued behind the messages already posted, which the client still gets first.
    let _ = tokio::time::timeout(QUEUE_WAIT, connection.outbox.send(close)).await;
    success(StatusCode::NO_CONTENT, Body::empty(), false)
}

/// The close frame a DeleteConnection sends (AWS's own code is not documented).
pub const DELETE_CLOSE_CODE: u16 = 1000;
pub const DELETE_CLOSE_REASON: &str = "Connection deleted";

async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ManagementError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ManagementError::BadRequest)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limit {
            return Err(ManagementError::PayloadTooLarge);
        }
        buffer.extend_from_slice(&data);
    }
    Ok(buffer.freeze())
}

/// The Management API's modeled errors, named by `x-amzn-ErrorType`: the AWS SDK picks the
/// error variant from that header, not from the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementError {
    Gone,
    Forbidden,
    PayloadTooLarge,
    LimitExceeded,
    BadRequest,
}

pub fn error(kind: ManagementError) -> Response {
    let (status, error_type, message) = match kind {
        ManagementError::Gone => (StatusCode::GONE, "GoneException", "Gone"),
        ManagementError::Forbidden => (StatusCode::FORBIDDEN, "ForbiddenException", "Forbidden"),
        ManagementError::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "Payload too large: the limit is 131072 bytes",
        ),
        ManagementError::LimitExceeded => (
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "The client is not reading its messages",
        ),
        ManagementError::BadRequest => (
            StatusCode::BAD_REQUEST,
            "BadRequestException",
            "Bad request",
        ),
    };
    let mut headers = common_headers(true);
    headers.insert(ERROR_TYPE, HeaderValue::from_static(error_type));
    let body = json!({ "message": message }).to_string();
    (status, headers, body).into_response()
}

fn success(status: StatusCode, body: Body, json: bool) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = common_headers(json);
    response
}

fn common_headers(json: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        headers.insert(REQUEST_ID, value);
    }
    if json {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers
}

/// A path segment with its `%XX` escapes decoded; `None` for bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    String::from_utf8(crate::headers::percent_decode(text)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let id = |text: &str| Target::Connection(text.to_owned());
        assert_eq!(
            target("/prod/@connections/L0SM9cOFvHcCIhw%3D", "prod"),
            id("L0SM9cOFvHcCIhw=")
        );
        assert_eq!(target("/@connections/a%2Bb%2Fc=", "prod"), id("a+b/c="));
        // Unencoded, as curl users type it.
        assert_eq!(target("/prod/@connections/a+b/c=", "prod"), id("a+b/c="));
        assert_eq!(target("/dev/@connections/x", "prod"), Target::WrongStage);
        assert_eq!(target("/prod/@connections/", "prod"), Target::Malformed);
        assert_eq!(target("/prod/connections/x", "prod"), Target::Malformed);
        assert_eq!(target("/@connections/%FF", "prod"), Target::Malformed);
    }
}
