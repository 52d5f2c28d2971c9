//! Strict extractors: JSON bodies, query strings and path parameters that answer 400/413/415/422
//! as problem+json naming the offending field. The PATCH helpers for `null` are the domain's
//! (`crate::input`).

use super::problem::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

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

/// Where an error is about the body as a whole (`serde_path_to_error`'s name for the root).
const WHOLE_BODY: &str = ".";

/// Parses a JSON document, classifying failures as the API reports them. Only an object is a
/// request body: serde's derived structs also accept an array of the fields in order, which
/// would let `[]` stand for `{}` and `["Ana", …]` for a patient.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_non_object(bytes)?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|error| not_json(&error))?;
    Ok(value)
}

/// Lets an object through to the parser; anything else is 422 when it is well-formed JSON and
/// 400 when it is not JSON at all (the parser must not see it: `[1,` would be "element 0 is
/// not a string" rather than malformed).
fn refuse_non_object(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first == Some(&b'{') {
        return Ok(());
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Ok(_) => Err(ApiError::validation(
            WHOLE_BODY,
            "The request body must be a JSON object.",
        )),
        Err(error) => Err(not_json(&error)),
    }
}

fn not_json(error: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        detail: format!("The body is not valid JSON: {error}."),
        field: None,
    }
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
        _ => not_json(&inner),
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

/// The configured body limit, visible to extractors so a 413 can state it.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyLimit(pub(super) usize);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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

    #[test]
    fn only_an_object_is_a_body() {
        let whole_body = (422, Some(".".to_string()));
        for body in [
            &b"[]"[..],
            b" [\"a\", null]",
            b"\"a\"",
            b"5",
            b"null",
            b"true",
        ] {
            assert_eq!(field_of(parse_json(body)), whole_body, "{body:?}");
        }
        // Not JSON at all stays malformed, whatever its first byte.
        for body in [
            &b"[1,"[..],
            b"nonsense",
            b"",
            b"\xff\xfe{\x00}\x00",
            b"{\"name\":\"\xff\"}",
        ] {
            assert_eq!(field_of(parse_json(body)), (400, None), "{body:?}");
        }
    }
}
