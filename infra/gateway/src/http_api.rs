//! The HTTP API emulation: CORS preflight, routing, payload limit, the payload format 2.0
//! event for the function (`apigw_v2`) and its answer back, and the answers API Gateway itself
//! gives (`{"message":"Not Found"}` and friends), with one log line per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, request};
use http_body_util::BodyExt;
use uuid::Uuid;

use crate::apigw_v2::{self, HttpEventInput};
use crate::cors::{self, CorsPolicy};
use crate::invoke::InvokeError;
use crate::invoke::{Invocation, Invoker};
use crate::routes::{Route, RouteTable};

/// API Gateway's request payload limit for HTTP APIs.
pub const PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;

/// An over-limit body is still read (and thrown away) up to this much, so that the client is
/// reading when the 413 arrives instead of getting a reset while it is still sending.
const DRAIN_LIMIT: usize = 4 * PAYLOAD_LIMIT;

const REQUEST_ID: HeaderName = HeaderName::from_static("apigw-requestid");

pub struct HttpApi {
    routes: RouteTable,
    cors: Option<CorsPolicy>,
    invoker: Invoker,
    /// The integration timeout (API Gateway's is 30 s at most).
    timeout: Duration,
}

impl HttpApi {
    pub fn new(
        routes: RouteTable,
        cors: Option<CorsPolicy>,
        invoker: Invoker,
        timeout: Duration,
    ) -> Self {
        Self {
            routes,
            cors,
            invoker,
            timeout,
        }
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn cors(&self) -> Option<&CorsPolicy> {
        self.cors.as_ref()
    }

    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }
}

/// Serves every request no other router claims: HTTP API routes are arbitrary paths, so they
/// sit in the fallback and later endpoints (WebSocket, @connections) can be added as routes.
pub fn router(api: Arc<HttpApi>) -> Router {
    Router::new().fallback(handle).with_state(api)
}

/// What a request turned out to be, for the log line.
enum Outcome<'a> {
    Preflight,
    NoRoute,
    Routed(&'a Route),
}

async fn handle(State(api): State<Arc<HttpApi>>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = Uuid::new_v4();
    let (parts, body) = request.into_parts();

    let (mut response, outcome) = dispatch(&api, &parts, body, request_id).await;

    let headers = response.headers_mut();
    if let Some(cors) = &api.cors
        && !matches!(outcome, Outcome::Preflight)
    {
        cors.apply(&parts.headers, headers);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        headers.insert(REQUEST_ID, value);
    }

    let (route, function) = match outcome {
        Outcome::Preflight => ("CORS preflight".to_owned(), "-"),
        Outcome::NoRoute => ("-".to_owned(), "-"),
        Outcome::Routed(route) => (route.key(), route.function.as_str()),
    };
    // Path only: a query can carry tokens (`?token=` on WebSocket connects), and headers and
    // bodies are never logged.
    tracing::info!(
        %request_id,
        method = %parts.method,
        path = %parts.uri.path(),
        %route,
        %function,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn dispatch<'a>(
    api: &'a HttpApi,
    parts: &request::Parts,
    body: Body,
    request_id: Uuid,
) -> (Response, Outcome<'a>) {
    if let Some(cors) = &api.cors
        && CorsPolicy::is_preflight(&parts.method, &parts.headers)
    {
        // API Gateway answers preflights itself, whatever the routes say.
        let headers = cors.preflight_headers(&parts.headers);
        return (
            (StatusCode::NO_CONTENT, headers).into_response(),
            Outcome::Preflight,
        );
    }

    let Some(route) = api.routes.find(&parts.method, parts.uri.path()) else {
        return (gateway_answer(GatewayAnswer::NotFound), Outcome::NoRoute);
    };

    let body = match read_body(body).await {
        Ok(body) => body,
        Err(answer) => return (gateway_answer(answer), Outcome::Routed(route)),
    };
    let event = apigw_v2::http_event(&HttpEventInput {
        route_key: &route.key(),
        path_parameters: route.path.parameters(parts.uri.path()),
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: &body,
        source_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip()),
        request_id: &request_id.to_string(),
        stage: "$default",
        now: chrono::Utc::now(),
    });
    let invocation = api
        .invoker
        .invoke(&route.function, &event, api.timeout)
        .await;
    (answer(invocation, route), Outcome::Routed(route))
}

/// The function's answer as API Gateway turns it into an HTTP response.
fn answer(invocation: Result<Invocation, InvokeError>, route: &Route) -> Response {
    let route_key = route.key();
    let function = route.function.as_str();
    match invocation {
        Ok(Invocation::Returned(output)) => match apigw_v2::http_response(&output) {
            Ok(answer) => {
                let mut headers = answer.headers;
                cors::strip_backend_cors(&mut headers);
                let mut response = Response::new(Body::from(answer.body));
                *response.status_mut() = answer.status;
                *response.headers_mut() = headers;
                response
            }
            Err(invalid) => {
                tracing::error!(route = %route_key, %function, "the function's answer is not an HTTP API response: {invalid}");
                gateway_answer(GatewayAnswer::InternalServerError)
            }
        },
        Ok(Invocation::Failed(error)) => {
            tracing::warn!(route = %route_key, %function, error = %error.message(), "function error");
            gateway_answer(GatewayAnswer::InternalServerError)
        }
        Err(error) => {
            tracing::warn!(route = %route_key, %function, "{error}");
            gateway_answer(GatewayAnswer::from(&error))
        }
    }
}

async fn read_body(mut body: Body) -> Result<Bytes, GatewayAnswer> {
    let mut buffer = BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| GatewayAnswer::BadRequest)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= PAYLOAD_LIMIT {
            buffer.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        } else if !buffer.is_empty() {
            buffer = BytesMut::new();
        }
    }
    if seen > PAYLOAD_LIMIT {
        return Err(GatewayAnswer::TooLarge);
    }
    Ok(buffer.freeze())
}

/// The answers API Gateway produces itself rather than the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewayAnswer {
    NotFound,
    TooLarge,
    BadRequest,
    /// The function failed, timed out or died, or answered something that is not a response.
    InternalServerError,
    BadGateway,
    ServiceUnavailable,
    TimedOut,
}

impl From<&InvokeError> for GatewayAnswer {
    fn from(error: &InvokeError) -> Self {
        match error {
            InvokeError::TimedOut(_) => Self::TimedOut,
            InvokeError::PayloadTooLarge(_) => Self::TooLarge,
            InvokeError::UnknownFunction(_)
            | InvokeError::Unreachable { .. }
            | InvokeError::Transport(_) => Self::BadGateway,
            InvokeError::ShuttingDown => Self::ServiceUnavailable,
        }
    }
}

fn gateway_answer(answer: GatewayAnswer) -> Response {
    let (status, message) = match answer {
        GatewayAnswer::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
        GatewayAnswer::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
        GatewayAnswer::BadRequest => (StatusCode::BAD_REQUEST, "Bad Request"),
        GatewayAnswer::InternalServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        GatewayAnswer::BadGateway => (StatusCode::BAD_GATEWAY, "Bad Gateway"),
        GatewayAnswer::ServiceUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        GatewayAnswer::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out"),
    };
    let body = serde_json::json!({ "message": message }).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    (status, headers, body).into_response()
}
