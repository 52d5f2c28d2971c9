//! The WebSocket endpoint: the handshake runs `$connect` and is refused with the function's
//! status when it is not 2xx; each open connection is one task that routes text frames to
//! their function, relays what the @connections API posts, enforces API Gateway's limits and
//! timers, and runs `$disconnect` once the socket is closed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::Utc;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::connections::{self, Connection, Outbound, POST_LIMIT, Registry};
use super::events::{self, ConnectionContext, new_id};
use super::{CONNECT, DISCONNECT, WebSocketApi, WsRoute};
use crate::headers::strip_hop_by_hop;
use crate::invoke::InvokeError;
use crate::invoke::{Invocation, Invoker};

/// API Gateway's WebSocket frame limit; the message limit is the @connections POST limit.
pub const FRAME_LIMIT: usize = 32 * 1024;
pub const MESSAGE_LIMIT: usize = POST_LIMIT;

/// The `apiId` in events (a deployed API has a 10-character id; the local one has this).
pub const LOCAL_API_ID: &str = "local";

/// Messages waiting for a slow client, per connection.
const OUTBOX_CAPACITY: usize = 256;
/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

const GOING_AWAY: (u16, &str) = (1001, "Going away");
const UNSUPPORTED_DATA: (u16, &str) = (1003, "Binary frames are not supported");
const MESSAGE_TOO_BIG: (u16, &str) = (1009, "Message too big");
const ABNORMAL: (u16, &str) = (1006, "Connection closed abnormally");

/// API Gateway's timers, configurable so tests need not wait ten minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub idle: Duration,
    pub max_duration: Duration,
}

pub struct WsServer {
    api: WebSocketApi,
    invoker: Invoker,
    registry: Registry,
    timers: Timers,
    /// Integration timeout for every invocation.
    timeout: Duration,
    /// The port clients connect to, for `X-Forwarded-Port` and as the fallback domain name.
    local_addr: SocketAddr,
    /// `$disconnect` invocations still running, so that shutdown can wait for them.
    disconnecting: AtomicUsize,
}

impl WsServer {
    pub fn new(
        api: WebSocketApi,
        invoker: Invoker,
        timers: Timers,
        timeout: Duration,
        local_addr: SocketAddr,
    ) -> Self {
        Self {
            api,
            invoker,
            registry: Registry::default(),
            timers,
            timeout,
            local_addr,
            disconnecting: AtomicUsize::new(0),
        }
    }

    pub fn api(&self) -> &WebSocketApi {
        &self.api
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Closes every connection with 1001 "Going away" (as API Gateway does on a deployment
    /// swap) and waits, up to `grace`, for their `$disconnect` invocations.
    pub async fn close_all(&self, grace: Duration) {
        for connection in self.registry.all() {
            let _ = connection.outbox.try_send(Outbound::Close {
                code: GOING_AWAY.0,
                reason: GOING_AWAY.1.to_owned(),
            });
        }
        let deadline = Instant::now() + grace;
        while (!self.registry.is_empty() || self.disconnecting.load(Ordering::SeqCst) > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connect(self: Arc<Self>, request: Request) -> Response {
        let started = Instant::now();
        let (mut parts, _body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let logged_query = events::redacted_query(parts.uri.query());

        // `ws://host/` (the local shorthand) or `ws://host/{stage}` (the URL AWS gives).
        let stage_in_path = path.trim_matches('/');
        if !stage_in_path.is_empty() && stage_in_path != self.api.stage {
            tracing::info!(%path, status = 403, "WebSocket connect to another stage");
            return gateway_message(StatusCode::FORBIDDEN, "Forbidden");
        }
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(_) => {
                tracing::info!(%path, status = 426, "not a WebSocket handshake");
                return gateway_message(StatusCode::UPGRADE_REQUIRED, "Upgrade Required");
            }
        };

        let now = Utc::now();
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        let context = ConnectionContext {
            connection_id: new_id(),
            connected_at: now,
            domain_name: parts
                .headers
                .get(HOST)
                .and_then(|host| host.to_str().ok())
                .map_or_else(|| self.local_addr.to_string(), str::to_owned),
            stage: self.api.stage.clone(),
            api_id: LOCAL_API_ID.to_owned(),
            source_ip,
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|agent| agent.to_str().ok())
                .map(str::to_owned),
        };
        let connection_id = context.connection_id.clone();

        let mut accepted_headers = HeaderMap::new();
        if let Some(route) = self.api.route(CONNECT) {
            let request_id = new_id();
            let event = events::connect_event(
                &context,
                &request_id,
                now,
                &parts.headers,
                parts.uri.query(),
                self.local_addr.port(),
            );
            let outcome = self
                .invoker
                .invoke(&route.function, &event, self.timeout)
                .await;
            let refusal = match outcome {
                Ok(Invocation::Returned(output)) => {
                    let answer = ProxyAnswer::parse(&output);
                    if answer.status.is_success() {
                        accepted_headers = answer.headers;
                        None
                    } else {
                        Some(answer.into_response())
                    }
                }
                Ok(Invocation::Failed(error)) => {
                    tracing::warn!(
                        function = %route.function,
                        %connection_id,
                        error = %error.message(),
                        "$connect function failed"
                    );
                    Some(gateway_message(
                        StatusCode::BAD_GATEWAY,
                        "Internal server error",
                    ))
                }
                Err(error) => {
                    report(&error, route, &connection_id);
                    Some(integration_failure(&error))
                }
            };
            if let Some(refusal) = refusal {
                tracing::info!(
                    %connection_id,
                    %path,
                    query = %logged_query,
                    function = %route.function,
                    status = refusal.status().as_u16(),
                    ms = started.elapsed().as_millis() as u64,
                    "WebSocket connect refused"
                );
                return refusal;
            }
        }

        // Registered before the 101 goes out, so a push right after the client sees it is
        // queued rather than refused; frames wait in the outbox until the socket is up.
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let last_active_ms = Arc::new(AtomicI64::new(now.timestamp_millis()));
        self.registry.insert(Connection {
            outbox: outbox.clone(),
            context: context.clone(),
            last_active_ms: Arc::clone(&last_active_ms),
        });
        let failed = Arc::clone(&self);
        let failed_context = context.clone();
        let server = Arc::clone(&self);
        let mut response = upgrade
            .max_frame_size(FRAME_LIMIT)
            .max_message_size(MESSAGE_LIMIT)
            .on_failed_upgrade(move |error| {
                tracing::warn!(
                    connection_id = %failed_context.connection_id,
                    %error,
                    "WebSocket upgrade failed after $connect"
                );
                failed.registry.remove(&failed_context.connection_id);
                tokio::spawn(async move {
                    let (code, reason) = ABNORMAL;
                    failed
                        .disconnect(failed_context, code, reason.to_owned())
                        .await;
                });
            })
            .on_upgrade(move |socket| {
                server.run(socket, context, Queue { outbox, inbox }, last_active_ms)
            });
        // What `$connect` returned reaches the handshake, e.g. `Sec-WebSocket-Protocol`.
        strip_hop_by_hop(&mut accepted_headers);
        for name in ["content-length", "content-type", "sec-websocket-accept"] {
            accepted_headers.remove(name);
        }
        response.headers_mut().extend(accepted_headers);
        tracing::info!(
            %connection_id,
            %path,
            query = %logged_query,
            status = 101,
            ms = started.elapsed().as_millis() as u64,
            "WebSocket connected"
        );
        response
    }

    /// One connection, from the open socket to `$disconnect`.
    async fn run(
        self: Arc<Self>,
        mut socket: WebSocket,
        context: ConnectionContext,
        queue: Queue,
        last_active_ms: Arc<AtomicI64>,
    ) {
        let Queue { outbox, mut inbox } = queue;
        let id = context.connection_id.clone();
        let opened = tokio::time::Instant::now();
        let later = |after: Duration| {
            let now = tokio::time::Instant::now();
            now.checked_add(after)
                .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
        };
        let hard_deadline = later(self.timers.max_duration);
        let mut idle_deadline = later(self.timers.idle);

        let ending = loop {
            tokio::select! {
                incoming = socket.recv() => {
                    let message = match incoming {
                        None => break Ending::Dropped,
                        Some(Err(error)) => break Ending::from_read_error(error),
                        Some(Ok(message)) => message,
                    };
                    idle_deadline = later(self.timers.idle);
                    last_active_ms.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
                    match message {
                        Message::Text(text) => {
                            let server = Arc::clone(&self);
                            let context = context.clone();
                            let outbox = outbox.clone();
                            tokio::spawn(async move {
                                server.route_message(&context, text.as_str(), &outbox).await;
                            });
                        }
                        Message::Binary(_) => break Ending::by_server(UNSUPPORTED_DATA),
                        Message::Close(frame) => break Ending::ClientClosed(frame),
                        // Pings are answered by the WebSocket layer; both count as activity.
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                Some(outbound) = inbox.recv() => {
                    let frame = match outbound {
                        Outbound::Text(text) => Message::Text(text.into()),
                        Outbound::Binary(data) => Message::Binary(data),
                        Outbound::Close { code, reason } => break Ending::ServerClosed(code, reason),
                    };
                    if socket.send(frame).await.is_err() {
                        break Ending::Dropped;
                    }
                }
                () = tokio::time::sleep_until(idle_deadline) => break Ending::by_server(GOING_AWAY),
                () = tokio::time::sleep_until(hard_deadline) => break Ending::by_server(GOING_AWAY),
            }
        };

        // From here on the id is gone: a POST to it gets 410, as on AWS.
        self.registry.remove(&id);
        let (code, reason) = ending.close(&mut socket).await;
        drop(socket);
        tracing::info!(
            connection_id = %id,
            code,
            reason = %reason,
            seconds = opened.elapsed().as_secs(),
            "WebSocket closed"
        );
        self.disconnect(context, code, reason).await;
    }

    /// Routes one text frame and relays what comes back.
    async fn route_message(
        &self,
        context: &ConnectionContext,
        body: &str,
        outbox: &mpsc::Sender<Outbound>,
    ) {
        let started = Instant::now();
        let request_id = new_id();
        let error_frame = |message: &str| {
            Outbound::Text(
                json!({
                    "message": message,
                    "connectionId": context.connection_id,
                    "requestId": request_id,
                })
                .to_string(),
            )
        };
        let Some(route) = self.api.select(body) else {
            // No matching route and no `$default`: API Gateway answers the client itself.
            tracing::info!(connection_id = %context.connection_id, "message matches no route");
            let _ = outbox.send(error_frame("Forbidden")).await;
            return;
        };
        let event = events::message_event(
            context,
            &route.key,
            &request_id,
            &new_id(),
            Utc::now(),
            body,
        );
        let (outcome, reply) = match self
            .invoker
            .invoke(&route.function, &event, self.timeout)
            .await
        {
            Ok(Invocation::Returned(output)) => {
                let reply = if route.two_way {
                    route_response(&output)
                } else {
                    None
                };
                ("ok".to_owned(), reply)
            }
            Ok(Invocation::Failed(error)) => (
                format!("function error: {}", error.message()),
                Some(error_frame("Internal server error")),
            ),
            Err(error) => {
                report(&error, route, &context.connection_id);
                let message = match error {
                    InvokeError::TimedOut(_) => "Endpoint request timed out",
                    _ => "Internal server error",
                };
                (error.to_string(), Some(error_frame(message)))
            }
        };
        tracing::info!(
            connection_id = %context.connection_id,
            route = %route.key,
            function = %route.function,
            %outcome,
            replied = reply.is_some(),
            ms = started.elapsed().as_millis() as u64,
            "WebSocket message"
        );
        if let Some(reply) = reply {
            let _ = outbox.send(reply).await;
        }
    }

    /// `$disconnect`, best effort: its answer is ignored, as on AWS.
    async fn disconnect(&self, context: ConnectionContext, code: u16, reason: String) {
        let Some(route) = self.api.route(DISCONNECT) else {
            return;
        };
        self.disconnecting.fetch_add(1, Ordering::SeqCst);
        let event = events::disconnect_event(&context, &new_id(), Utc::now(), code, &reason);
        match self
            .invoker
            .invoke(&route.function, &event, self.timeout)
            .await
        {
            Ok(Invocation::Returned(_)) => {}
            Ok(Invocation::Failed(error)) => tracing::warn!(
                function = %route.function,
                connection_id = %context.connection_id,
                error = %error.message(),
                "$disconnect function failed"
            ),
            Err(error) => report(&error, route, &context.connection_id),
        }
        self.disconnecting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection's queue of frames to send: pushes, replies, and the close a DELETE asks for.
struct Queue {
    outbox: mpsc::Sender<Outbound>,
    inbox: mpsc::Receiver<Outbound>,
}

/// Why a connection's loop ended.
enum Ending {
    ClientClosed(Option<CloseFrame>),
    ServerClosed(u16, String),
    /// The TCP connection went away without a closing handshake.
    Dropped,
}

impl Ending {
    fn by_server((code, reason): (u16, &str)) -> Self {
        Self::ServerClosed(code, reason.to_owned())
    }

    fn from_read_error(error: axum::Error) -> Self {
        let too_big = error
            .into_inner()
            .downcast::<tungstenite::Error>()
            .is_ok_and(|error| matches!(*error, tungstenite::Error::Capacity(_)));
        if too_big {
            Self::by_server(MESSAGE_TOO_BIG)
        } else {
            Self::Dropped
        }
    }

    /// Finishes the closing handshake; returns the code and reason `$disconnect` reports.
    async fn close(self, socket: &mut WebSocket) -> (u16, String) {
        match self {
            Self::ClientClosed(frame) => {
                // The WebSocket layer has queued the echo of the client's close frame; reading
                // on sends it and then sees the end of the stream.
                drain(socket).await;
                match frame {
                    Some(frame) => (frame.code, frame.reason.to_string()),
                    None => (1005, "Client-side close frame status not set".to_owned()),
                }
            }
            Self::ServerClosed(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.clone().into(),
                };
                if socket.send(Message::Close(Some(frame))).await.is_ok() {
                    drain(socket).await;
                }
                (code, reason)
            }
            Self::Dropped => (ABNORMAL.0, ABNORMAL.1.to_owned()),
        }
    }
}

/// Reads until the peer's close frame or the end of the stream, for at most `CLOSE_GRACE`.
async fn drain(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// A Lambda proxy answer (`{"statusCode", "headers", "multiValueHeaders", "body",
/// "isBase64Encoded"}`); an answer without `statusCode` counts as 200, as API Gateway treats
/// a `$connect` handler that returns nothing.
struct ProxyAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl ProxyAnswer {
    fn parse(output: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(output).unwrap_or(Value::Null);
        let status = match json.get("statusCode") {
            None | Some(Value::Null) => Some(StatusCode::OK),
            Some(Value::Number(number)) => number
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .and_then(|code| StatusCode::from_u16(code).ok()),
            Some(Value::String(text)) => text
                .trim()
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok()),
            Some(_) => None,
        };
        let Some(status) = status else {
            // A malformed integration answer: API Gateway's 502.
            return Self {
                status: StatusCode::BAD_GATEWAY,
                headers: json_content_type(),
                body: Bytes::from(json!({"message": "Internal server error"}).to_string()),
            };
        };
        let mut headers = HeaderMap::new();
        if let Some(map) = json.get("headers").and_then(Value::as_object) {
            for (name, value) in map {
                append_header(&mut headers, name, value);
            }
        }
        if let Some(map) = json.get("multiValueHeaders").and_then(Value::as_object) {
            for (name, values) in map {
                for value in values.as_array().into_iter().flatten() {
                    append_header(&mut headers, name, value);
                }
            }
        }
        let body = proxy_body(&json).unwrap_or_default();
        Self {
            status,
            headers,
            body,
        }
    }

    fn into_response(self) -> Response {
        let mut headers = self.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove("content-length");
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

fn append_header(headers: &mut HeaderMap, name: &str, value: &Value) {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return,
    };
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&text),
    ) {
        headers.append(name, value);
    }
}

/// The `body` of a proxy answer, base64-decoded when `isBase64Encoded`.
fn proxy_body(json: &Value) -> Option<Bytes> {
    let body = json.get("body")?.as_str()?;
    if json.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(body).ok().map(Bytes::from)
    } else {
        Some(Bytes::from(body.to_owned()))
    }
}

/// What a two-way route sends back: the proxy answer's `body`, or the raw output when the
/// function answered something that is not a proxy response. Nothing for an empty answer.
fn route_response(output: &[u8]) -> Option<Outbound> {
    let json: Value = serde_json::from_slice(output).unwrap_or(Value::Null);
    let data = match &json {
        Value::Null => return None,
        Value::Object(map) if map.contains_key("statusCode") => proxy_body(&json)?,
        Value::String(text) => Bytes::from(text.clone()),
        _ => Bytes::copy_from_slice(output),
    };
    if data.is_empty() {
        return None;
    }
    Some(match String::from_utf8(data.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(_) => Outbound::Binary(data),
    })
}

fn json_content_type() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

/// An answer API Gateway gives itself: `{"message": …}`.
fn gateway_message(status: StatusCode, message: &str) -> Response {
    (
        status,
        json_content_type(),
        json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn integration_failure(error: &InvokeError) -> Response {
    match error {
        InvokeError::TimedOut(_) => {
            gateway_message(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
        }
        _ => gateway_message(StatusCode::BAD_GATEWAY, "Internal server error"),
    }
}

fn report(error: &InvokeError, route: &WsRoute, connection_id: &str) {
    let cause = std::error::Error::source(error).map(ToString::to_string);
    tracing::error!(
        route = %route.key,
        function = %route.function,
        resource = %route.function_resource,
        %connection_id,
        cause = cause.as_deref().unwrap_or("-"),
        "{error}"
    );
}

/// The WebSocket API's own port: handshakes on `/` and `/{stage}`, the @connections API with
/// and without the stage prefix, and API Gateway's 403 for anything else.
pub fn router(server: Arc<WsServer>) -> Router {
    Router::new()
        .route("/", get(handshake))
        .route("/{stage}", get(handshake))
        .route("/{stage}/", get(handshake))
        .route("/@connections/{*id}", any(management))
        .route("/{stage}/@connections/{*id}", any(management))
        .fallback(forbidden)
        .with_state(server)
}

async fn handshake(State(server): State<Arc<WsServer>>, request: Request) -> Response {
    server.connect(request).await
}

async fn management(State(server): State<Arc<WsServer>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    connections::handle(
        &server.registry,
        &server.api.stage,
        &parts.method,
        parts.uri.path(),
        body,
    )
    .await
}

async fn forbidden() -> Response {
    connections::error(connections::ManagementError::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_answers() {
        let answer = ProxyAnswer::parse(
            br#"{"statusCode":401,"headers":{"content-type":"application/json","x-n":3},"multiValueHeaders":{"x-m":["a","b"]},"body":"{\"message\":\"Unauthorized\"}"}"#,
        );
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.headers["x-n"], "3");
        assert_eq!(answer.headers.get_all("x-m").iter().count(), 2);
        assert_eq!(&answer.body[..], br#"{"message":"Unauthorized"}"#);

        assert_eq!(ProxyAnswer::parse(b"null").status, StatusCode::OK);
        assert_eq!(ProxyAnswer::parse(b"{}").status, StatusCode::OK);
        assert_eq!(
            ProxyAnswer::parse(br#"{"statusCode":"403"}"#).status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ProxyAnswer::parse(br#"{"statusCode":99999}"#).status,
            StatusCode::BAD_GATEWAY
        );
        let encoded =
            ProxyAnswer::parse(br#"{"statusCode":400,"body":"aGk=","isBase64Encoded":true}"#);
        assert_eq!(&encoded.body[..], b"hi");
    }

    #[test]
    fn route_responses() {
        assert_eq!(
            route_response(br#"{"statusCode":200,"body":"pong"}"#),
            Some(Outbound::Text("pong".into()))
        );
        assert_eq!(route_response(br#"{"statusCode":200}"#), None);
        assert_eq!(route_response(b"null"), None);
        assert_eq!(
            route_response(br#""plain""#),
            Some(Outbound::Text("plain".into()))
        );
        assert_eq!(
            route_response(br#"{"a":1}"#),
            Some(Outbound::Text(r#"{"a":1}"#.into()))
        );
        assert_eq!(
            route_response(br#"{"statusCode":200,"body":"/w==","isBase64Encoded":true}"#),
            Some(Outbound::Binary(Bytes::from_static(&[0xff])))
        );
    }
}
