//! One open connection, from the socket to `$disconnect`: text frames go to their route's
//! function (and a two-way route's answer back), what the @connections API posts goes out, and
//! API Gateway's limits and timers close it with their codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::answers::route_response;
use super::{WsServer, report};
use crate::invoke::{Invocation, InvokeError};
use crate::websocket::connections::Outbound;
use crate::websocket::events::{self, ConnectionContext, new_id};
use crate::websocket::{DISCONNECT, WsRoute};

/// How long a closing handshake may take before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(super) const GOING_AWAY: (u16, &str) = (1001, "Going away");
const UNSUPPORTED_DATA: (u16, &str) = (1003, "Binary frames are not supported");
const MESSAGE_TOO_BIG: (u16, &str) = (1009, "Message too big");
pub(super) const ABNORMAL: (u16, &str) = (1006, "Connection closed abnormally");

/// A connection's queue of frames to send: pushes, replies, and the close a DELETE asks for.
pub(super) struct Queue {
    pub(super) outbox: mpsc::Sender<Outbound>,
    pub(super) inbox: mpsc::Receiver<Outbound>,
}

impl WsServer {
    /// One connection, from the open socket to `$disconnect`.
    pub(super) async fn run(
        self: Arc<Self>,
        mut socket: WebSocket,
        context: ConnectionContext,
        mut queue: Queue,
        last_active_ms: Arc<AtomicI64>,
    ) {
        let id = context.connection_id.clone();
        let opened = tokio::time::Instant::now();
        let ending = self
            .relay(&mut socket, &context, &mut queue, &last_active_ms)
            .await;

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

    /// Carries frames both ways until the client closes or goes away, a limit or a timer ends
    /// the connection, or the queue asks to close it.
    async fn relay(
        self: &Arc<Self>,
        socket: &mut WebSocket,
        context: &ConnectionContext,
        queue: &mut Queue,
        last_active_ms: &AtomicI64,
    ) -> Ending {
        let later = |after: Duration| {
            let now = tokio::time::Instant::now();
            now.checked_add(after)
                .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
        };
        let hard_deadline = later(self.timers.max_duration);
        let mut idle_deadline = later(self.timers.idle);

        loop {
            tokio::select! {
                incoming = socket.recv() => {
                    let message = match incoming {
                        None => break Ending::Dropped,
                        Some(Err(error)) => break Ending::from_read_error(error),
                        Some(Ok(message)) => message,
                    };
                    idle_deadline = later(self.timers.idle);
                    last_active_ms.store(Utc::now().timestamp_millis(), Ordering::Relaxed);
                    if let Some(ending) = self.receive(message, context, &queue.outbox) {
                        break ending;
                    }
                }
                Some(outbound) = queue.inbox.recv() => {
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
        }
    }

    /// A frame from the client: a text message is routed on its own task; a binary frame or
    /// a close ends the connection.
    fn receive(
        self: &Arc<Self>,
        message: Message,
        context: &ConnectionContext,
        outbox: &mpsc::Sender<Outbound>,
    ) -> Option<Ending> {
        match message {
            Message::Text(text) => {
                let server = Arc::clone(self);
                let context = context.clone();
                let outbox = outbox.clone();
                tokio::spawn(async move {
                    server.route_message(&context, text.as_str(), &outbox).await;
                });
                None
            }
            Message::Binary(_) => Some(Ending::by_server(UNSUPPORTED_DATA)),
            Message::Close(frame) => Some(Ending::ClientClosed(frame)),
            // Pings are answered by the WebSocket layer; both count as activity.
            Message::Ping(_) | Message::Pong(_) => None,
        }
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
        let Some(route) = self.api.select(body) else {
            // No matching route and no `$default`: API Gateway answers the client itself.
            tracing::info!(connection_id = %context.connection_id, "message matches no route");
            let _ = outbox
                .send(error_frame("Forbidden", context, &request_id))
                .await;
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
        let (outcome, reply) = self
            .invoke_message_route(route, &event, context, &request_id)
            .await;
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

    /// Invokes a message's route: the outcome for the log, and what goes back to the client
    /// (a two-way route's answer, or API Gateway's error frame).
    async fn invoke_message_route(
        &self,
        route: &WsRoute,
        event: &Value,
        context: &ConnectionContext,
        request_id: &str,
    ) -> (String, Option<Outbound>) {
        match self
            .invoker
            .invoke(&route.function, event, self.timeout)
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
                Some(error_frame("Internal server error", context, request_id)),
            ),
            Err(error) => {
                report(&error, route, &context.connection_id);
                let message = match error {
                    InvokeError::TimedOut(_) => "Endpoint request timed out",
                    _ => "Internal server error",
                };
                (
                    error.to_string(),
                    Some(error_frame(message, context, request_id)),
                )
            }
        }
    }

    /// `$disconnect`, best effort: its answer is ignored, as on AWS.
    pub(super) async fn disconnect(&self, context: ConnectionContext, code: u16, reason: String) {
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

/// API Gateway's own answer to a message: `{"message", "connectionId", "requestId"}`.
fn error_frame(message: &str, context: &ConnectionContext, request_id: &str) -> Outbound {
    Outbound::Text(
        json!({
            "message": message,
            "connectionId": context.connection_id,
            "requestId": request_id,
        })
        .to_string(),
    )
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
