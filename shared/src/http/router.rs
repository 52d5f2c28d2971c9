//! What every Pulso HTTP function wraps its routes in: problem+json fallbacks, the body limit,
//! one tracing span per request, the `RateLimit` headers of the request's usage, and a fresh
//! read of the database secret when PostgreSQL refused the pool's credentials
//! (`crate::db::Rotation`).

use super::extract::BodyLimit;
use super::problem::{ApiError, CredentialsRefused};
use crate::config::HttpConfig;
use crate::db::Rotation;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

/// Wraps a function's routes with what every Pulso HTTP function needs: the request span,
/// the body limit, and problem+json answers for unknown routes and wrong methods. The routes
/// come with their OpenAPI description (`crate::contract`), which is not needed here.
pub fn finish<S>(routes: OpenApiRouter<S>, state: S, edge: Edge) -> Router
where
    S: Clone + Send + Sync + 'static,
{
    let Edge { config, rotation } = edge;
    let limit = config.max_body_bytes;
    let (routes, _): (Router, _) = routes.with_state(state).split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound { what: "resource" } })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(
            move |mut request: Request, next: Next| {
                let rotation = rotation.clone();
                async move {
                    request.extensions_mut().insert(BodyLimit(limit));
                    let late = LateHeaders::default();
                    request.extensions_mut().insert(late.clone());
                    let mut response = traced(request, next).await;
                    if let Some(rotation) = &rotation
                        && response.extensions().get::<CredentialsRefused>().is_some()
                    {
                        rotation.reread().await;
                    }
                    if let Some(late) = late.0.get() {
                        let headers = response.headers_mut();
                        for (name, value) in late {
                            headers.entry(name).or_insert_with(|| value.clone());
                        }
                    }
                    response
                }
            },
        ))
}

/// What the edge needs of a function's state: the HTTP settings, and the pool's [`Rotation`]
/// when its URL came from a secret (`AppState::edge`).
pub struct Edge {
    pub config: HttpConfig,
    pub rotation: Option<Rotation>,
}

/// Headers a request earns on its way through (its rate-limit usage, `shared::access`) that
/// its response leaves with, whatever the handler answers: `finish` puts an empty one in every
/// request and copies what was filled in onto the response.
#[derive(Clone, Debug, Default)]
pub struct LateHeaders(Arc<OnceLock<Vec<(HeaderName, HeaderValue)>>>);

impl LateHeaders {
    /// A request fills them once; a second fill (none today) keeps the first.
    pub fn fill(&self, headers: Vec<(HeaderName, HeaderValue)>) {
        let _ = self.0.set(headers);
    }
}

/// One span per request, carrying `request_id`, and `clinic_id` / `user_id` once the token is
/// verified. Only the route template is logged, never the path or query (they can hold names).
async fn traced(mut request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = %route,
        clinic_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
        role = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, duration_ms, "request finished");
        } else {
            tracing::info!(status, duration_ms, "request finished");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The request's id, as its log lines and its `x-request-id` carry it: what an audit event
/// records so the two can be joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every request through [`finish`] has one; outside it (a handler driven on its own) a fresh
/// one stands in.
impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string())))
    }
}

/// The Lambda request id when running on Lambda; else a well-formed caller-supplied
/// `x-request-id`; else a fresh one.
fn request_id(request: &Request) -> String {
    use lambda_http::RequestExt;
    if let Some(context) = request.extensions().lambda_context_ref() {
        return context.request_id.clone();
    }
    request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
