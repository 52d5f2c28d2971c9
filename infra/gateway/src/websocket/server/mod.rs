//! The WebSocket endpoint: the handshake runs `$connect` and is refused with the function's
//! status when it is not 2xx; each open connection is one task that routes text frames to
//! their function, relays what the @connections API posts, enforces API Gateway's limits and
//! timers, and runs `$disconnect` once the socket is closed. The handshake is `handshake.rs`,
//! the connection's task `session.rs`, and what the functions answered is read in `answers.rs`.

mod answers;
mod handshake;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, get};

use self::session::GOING_AWAY;
use super::connections::{self, Outbound, POST_LIMIT, Registry};
use super::{WebSocketApi, WsRoute};
use crate::invoke::{InvokeError, Invoker};

/// API Gateway's WebSocket frame limit; the message limit is the @connections POST limit.
pub const FRAME_LIMIT: usize = 32 * 1024;
pub const MESSAGE_LIMIT: usize = POST_LIMIT;

/// The `apiId` in events (a deployed API has a 10-character id; the local one has this).
pub const LOCAL_API_ID: &str = "local";

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
}

/// Logs an invocation that did not happen or did not finish, with its cause.
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
        .route("/", get(connect))
        .route("/{stage}", get(connect))
        .route("/{stage}/", get(connect))
        .route("/@connections/{*id}", any(management))
        .route("/{stage}/@connections/{*id}", any(management))
        .fallback(forbidden)
        .with_state(server)
}

async fn connect(State(server): State<Arc<WsServer>>, request: Request) -> Response {
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
