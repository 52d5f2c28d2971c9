//! The handshake: a request for `ws://host/` or `ws://host/{stage}` becomes a connection once
//! `$connect` answered 2xx (or when there is no `$connect` route); otherwise the client gets
//! the function's status, headers and body, or API Gateway's own 502/504 when it failed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header::{HOST, USER_AGENT};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use super::answers::{ProxyAnswer, json_content_type};
use super::session::{ABNORMAL, Queue};
use super::{FRAME_LIMIT, LOCAL_API_ID, MESSAGE_LIMIT, WsServer, report};
use crate::headers::strip_hop_by_hop;
use crate::invoke::{Invocation, InvokeError};
use crate::websocket::connections::Connection;
use crate::websocket::events::{self, ConnectionContext, new_id};
use crate::websocket::{CONNECT, WsRoute};

/// Messages waiting for a slow client, per connection.
const OUTBOX_CAPACITY: usize = 256;

impl WsServer {
    /// A handshake, from the request to the 101 (or the refusal), logged either way.
    pub(super) async fn connect(self: Arc<Self>, request: Request) -> Response {
        let started = Instant::now();
        let (mut parts, _body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let logged_query = events::redacted_query(parts.uri.query());
        let upgrade = match self.upgrade_at_stage(&mut parts, &path).await {
            Ok(upgrade) => upgrade,
            Err(refusal) => return refusal,
        };

        let now = Utc::now();
        let context = self.connection_context(&parts, now);
        let connection_id = context.connection_id.clone();

        let mut accepted_headers = HeaderMap::new();
        if let Some(route) = self.api.route(CONNECT) {
            match self.run_connect(route, &context, now, &parts).await {
                Ok(headers) => accepted_headers = headers,
                Err(refusal) => {
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
        }

        let mut response = self.open(upgrade, context, now);
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

    /// The upgrade the request asks for, at this API's stage; otherwise API Gateway's 403 (another
    /// stage) or 426 (not a WebSocket handshake).
    async fn upgrade_at_stage(
        &self,
        parts: &mut Parts,
        path: &str,
    ) -> Result<WebSocketUpgrade, Response> {
        // `ws://host/` (the local shorthand) or `ws://host/{stage}` (the URL AWS gives).
        let stage_in_path = path.trim_matches('/');
        if !stage_in_path.is_empty() && stage_in_path != self.api.stage {
            tracing::info!(%path, status = 403, "WebSocket connect to another stage");
            return Err(gateway_message(StatusCode::FORBIDDEN, "Forbidden"));
        }
        WebSocketUpgrade::from_request_parts(parts, &())
            .await
            .map_err(|_| {
                tracing::info!(%path, status = 426, "not a WebSocket handshake");
                gateway_message(StatusCode::UPGRADE_REQUIRED, "Upgrade Required")
            })
    }

    /// The connection as its events describe it, with a new id.
    fn connection_context(&self, parts: &Parts, now: DateTime<Utc>) -> ConnectionContext {
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        ConnectionContext {
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
        }
    }

    /// Runs `$connect`: the headers of its 2xx answer, or the response that refuses the
    /// handshake.
    async fn run_connect(
        &self,
        route: &WsRoute,
        context: &ConnectionContext,
        now: DateTime<Utc>,
        parts: &Parts,
    ) -> Result<HeaderMap, Response> {
        let connection_id = &context.connection_id;
        let request_id = new_id();
        let event = events::connect_event(
            context,
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
        match outcome {
            Ok(Invocation::Returned(output)) => {
                let answer = ProxyAnswer::parse(&output);
                if answer.status.is_success() {
                    Ok(answer.headers)
                } else {
                    Err(answer.into_response())
                }
            }
            Ok(Invocation::Failed(error)) => {
                tracing::warn!(
                    function = %route.function,
                    %connection_id,
                    error = %error.message(),
                    "$connect function failed"
                );
                Err(gateway_message(
                    StatusCode::BAD_GATEWAY,
                    "Internal server error",
                ))
            }
            Err(error) => {
                report(&error, route, connection_id);
                Err(integration_failure(&error))
            }
        }
    }

    /// Registers the connection and answers 101. Registered before the 101 goes out, so a push
    /// right after the client sees it is queued rather than refused; frames wait in the outbox
    /// until the socket is up.
    fn open(
        self: Arc<Self>,
        upgrade: WebSocketUpgrade,
        context: ConnectionContext,
        now: DateTime<Utc>,
    ) -> Response {
        let (outbox, inbox) = mpsc::channel(OUTBOX_CAPACITY);
        let last_active_ms = Arc::new(AtomicI64::new(now.timestamp_millis()));
        self.registry.insert(Connection {
            outbox: outbox.clone(),
            context: context.clone(),
            last_active_ms: Arc::clone(&last_active_ms),
        });
        let failed = Arc::clone(&self);
        let failed_context = context.clone();
        upgrade
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
                self.run(socket, context, Queue { outbox, inbox }, last_active_ms)
            })
    }
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
