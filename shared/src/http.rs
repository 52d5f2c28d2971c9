//! The HTTP edge shared by every function: RFC 9457 problem+json errors, strict JSON / query /
//! path extractors that name the offending field, body limits and the per-request tracing span.
//! Cursor pagination is `crate::pagination`'s.

use crate::config::HttpConfig;
use crate::db::DbError;
use crate::telemetry::ErrorChain;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Instant;
use tracing::Instrument;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every error a client can see. The body never carries a cause chain; the log line does.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {detail}")]
    BadRequest {
        detail: String,
        field: Option<String>,
    },
    #[error("invalid field: {detail}")]
    Validation { detail: String, field: String },
    #[error("not authenticated: {detail}")]
    Unauthorized { detail: String },
    #[error("forbidden: {detail}")]
    Forbidden { detail: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {detail}")]
    Conflict {
        /// A stable, machine-readable slug (the problem `type`'s last segment).
        kind: &'static str,
        detail: String,
        field: Option<String>,
    },
    #[error("body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType { expected: &'static str },
    #[error("dependency unavailable")]
    Unavailable {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        retry_after_seconds: u32,
    },
    #[error("internal error")]
    Internal {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ApiError {
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal {
            source: Box::new(source),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 9457 body of this error, as the HTTP edge (and the WebSocket handshake) sends it.
    pub fn problem(&self) -> Problem {
        let (kind, title, detail, field) = match self {
            ApiError::BadRequest { detail, field } => (
                "bad-request",
                "Malformed request",
                detail.clone(),
                field.clone(),
            ),
            ApiError::Validation { detail, field } => (
                "validation",
                "Invalid field",
                detail.clone(),
                Some(field.clone()),
            ),
            ApiError::Unauthorized { detail } => {
                ("unauthorized", "Not authenticated", detail.clone(), None)
            }
            ApiError::Forbidden { detail } => ("forbidden", "Forbidden", detail.clone(), None),
            ApiError::NotFound { what } => (
                "not-found",
                "Not found",
                format!("No {what} with that id exists in your clinic."),
                None,
            ),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "This resource does not support that method.".into(),
                None,
            ),
            ApiError::Conflict {
                kind,
                detail,
                field,
            } => (*kind, "Conflict", detail.clone(), field.clone()),
            ApiError::PayloadTooLarge { limit } => (
                "payload-too-large",
                "Payload too large",
                format!("The request body is larger than the limit of {limit} bytes."),
                None,
            ),
            ApiError::UnsupportedMediaType { expected } => (
                "unsupported-media-type",
                "Unsupported media type",
                format!("Send the body as {expected}."),
                None,
            ),
            ApiError::Unavailable { .. } => (
                "unavailable",
                "Service unavailable",
                "A service Pulso depends on is unavailable; retry shortly.".into(),
                None,
            ),
            ApiError::Internal { .. } => (
                "internal",
                "Internal error",
                "Something went wrong on our side; it has been logged.".into(),
                None,
            ),
        };
        Problem {
            problem_type: format!("/problems/{kind}"),
            title,
            status: self.status().as_u16(),
            detail,
            field,
        }
    }
}

/// RFC 9457 problem details; `field` is the extension member naming the offending input.
#[derive(Debug, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal { source } => {
                tracing::error!(error = %ErrorChain(source.as_ref()), "request failed")
            }
            ApiError::Unavailable { source, .. } => {
                tracing::warn!(error = %ErrorChain(source.as_ref()), "dependency unavailable")
            }
            _ => {}
        }
        let mut response = (self.status(), axum::Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match &self {
            ApiError::Unavailable {
                retry_after_seconds,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
            }
            ApiError::Unauthorized { .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"pulso\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => ApiError::Unavailable {
                source: Box::new(error),
                retry_after_seconds: 5,
            },
            DbError::Query(_) => ApiError::internal(error),
        }
    }
}

/// A JSON body deserialized strictly: 415 without a JSON content type, 413 over the limit,
/// 400 when it is not JSON, 422 naming the field when it is JSON of the wrong shape.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType {
                expected: "application/json",
            });
        }
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(0, |limit| limit.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::BadRequest {
                        detail: "The request body could not be read.".into(),
                        field: None,
                    }
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document, classifying failures as the API reports them.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        detail: format!("The body is not valid JSON: {error}."),
        field: None,
    })?;
    Ok(value)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    match inner.classify() {
        serde_json::error::Category::Data => {
            let message = strip_position(&inner.to_string());
            // A missing field is reported on its parent; name the field itself.
            let field = match backticked(&message) {
                Some(name) if message.starts_with("missing field") => join_path(&path, name),
                _ => path,
            };
            ApiError::Validation {
                detail: message,
                field,
            }
        }
        _ => ApiError::BadRequest {
            detail: format!("The body is not valid JSON: {inner}."),
            field: None,
        },
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_string(),
        None => message.to_string(),
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

fn join_path(parent: &str, name: &str) -> String {
    if parent == "." || parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn has_json_content_type(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// A query string deserialized strictly; 400 naming the parameter when it does not fit.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                let field = match backticked(&message) {
                    Some(name) if path == "." => name.to_string(),
                    _ => path,
                };
                ApiError::BadRequest {
                    detail: format!("Invalid query parameter: {message}."),
                    field: Some(field),
                }
            })
    }
}

/// Path parameters parsed into typed ids; a malformed id is 400 naming the parameter.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                use axum::extract::path::ErrorKind;
                // A single-value `Path<T>` reports no key: take the name from the route.
                let raw = axum::extract::RawPathParams::from_request_parts(parts, state)
                    .await
                    .ok();
                let nth_name = |index: usize| {
                    raw.as_ref()
                        .and_then(|params| params.iter().nth(index).map(|(k, _)| k.to_owned()))
                };
                let field = match error.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                    ErrorKind::ParseErrorAtIndex { index, .. } => nth_name(*index),
                    // A single parameter that failed its own parsing (e.g. a UUID's message).
                    _ if raw
                        .as_ref()
                        .is_some_and(|params| params.iter().count() == 1) =>
                    {
                        nth_name(0)
                    }
                    _ => None,
                };
                Err(ApiError::BadRequest {
                    detail: format!(
                        "Invalid path parameter{}: expected a UUID.",
                        field
                            .as_deref()
                            .map(|f| format!(" `{f}`"))
                            .unwrap_or_default()
                    ),
                    field,
                })
            }
            Err(other) => Err(ApiError::BadRequest {
                detail: other.body_text(),
                field: None,
            }),
        }
    }
}

/// Distinguishes an absent field (leave unchanged) from an explicit `null` (clear it) in PATCH
/// bodies: use with `#[serde(default, deserialize_with = "nullable")]` on `Option<Option<T>>`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A PATCH field that may be omitted but, when present, cannot be cleared: 422 on `null`.
pub fn not_null<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::validation(field, "cannot be null")),
        Some(Some(value)) => Ok(Some(value)),
        None => Ok(None),
    }
}

/// The configured body limit, visible to extractors so a 413 can state it.
#[derive(Clone, Copy, Debug)]
struct BodyLimit(usize);

/// Wraps a function's routes with what every Pulso HTTP function needs: the request span,
/// the body limit, and problem+json answers for unknown routes and wrong methods.
pub fn finish(routes: Router, config: &HttpConfig) -> Router {
    let limit = config.max_body_bytes;
    routes
        .fallback(|| async { ApiError::NotFound { what: "resource" } })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(
            move |mut request: Request, next: Next| async move {
                request.extensions_mut().insert(BodyLimit(limit));
                traced(request, next).await
            },
        ))
}

/// One span per request, carrying `request_id`, and `clinic_id` / `user_id` once the token is
/// verified. Only the route template is logged, never the path or query (they can hold names).
async fn traced(request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        count: u32,
    }

    fn field_of(result: Result<Body, ApiError>) -> (u16, Option<String>) {
        let error = result.expect_err("should fail");
        let problem = error.problem();
        (problem.status, problem.field)
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(parse_json(br#"{"name": 5}"#)),
            (422, Some("name".into()))
        );
        assert_eq!(field_of(parse_json(br#"{}"#)), (422, Some("name".into())));
        assert_eq!(
            field_of(parse_json(br#"{"name":"a","extra":1}"#)),
            (422, Some("extra".into()))
        );
        assert_eq!(
            field_of(parse_json(br#"{"name":"a","nested":{"count":"x"}}"#)),
            (422, Some("nested.count".into()))
        );
        assert_eq!(field_of(parse_json(br#"{"name":"#)), (400, None));
        assert_eq!(
            field_of(parse_json(br#"{"name":"a"} trailing"#)),
            (400, None)
        );
    }
}
