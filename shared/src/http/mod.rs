//! The HTTP edge shared by every function: RFC 9457 problem+json errors (`problem`), strict
//! JSON / query / path extractors that name the offending field (`extract`), and the router
//! wrapping with body limits and the per-request tracing span (`router`), and `ETag` /
//! `If-Match` against lost updates (`conditional`). Cursor pagination is `crate::pagination`'s.

pub mod conditional;
mod extract;
mod problem;
pub mod responses;
mod router;

pub use extract::{ApiJson, ApiPath, ApiQuery, parse_json};
pub use problem::{
    ApiError, ConflictKind, CredentialsRefused, PROBLEM_JSON, Problem, ProblemInterval,
};
pub use router::{Edge, LateHeaders, RequestId, finish};

/// The `Location` header of a created resource (`path`, e.g. `/time-off/{id}`).
pub fn location(path: String) -> Result<[(::http::HeaderName, ::http::HeaderValue); 1], ApiError> {
    let value = ::http::HeaderValue::from_str(&path).map_err(ApiError::internal)?;
    Ok([(::http::header::LOCATION, value)])
}
