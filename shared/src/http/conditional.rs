//! Conditional requests on a JSON resource, against lost updates: a `GET` answers with an
//! `ETag` (and 304 to a matching `If-None-Match`), and a `PATCH` / `PUT` carrying `If-Match`
//! changes the resource only while its tag still matches: two receptionists editing one patient
//! no longer overwrite each other silently. A mismatch answers 412
//! `/problems/precondition-failed` and writes nothing; the service compares inside the
//! transaction that holds the row lock, so no write can slip between the check and its own.
//!
//! The tag is the SHA-256 of the resource's JSON as the API returns it, so it changes exactly
//! when what a client sees changes, wherever the representation came from (PostgreSQL or the
//! cache). Tags are strong; `If-Match` compares strongly (a `W/` tag never matches, RFC 9110
//! §13.1.1), `If-None-Match` weakly.

use super::ApiError;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A representation's entity tag: hex SHA-256 of its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityTag(String);

impl EntityTag {
    pub fn of<T: Serialize>(value: &T) -> Self {
        // A plain response type always serializes; were it not to, no tag matches it.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        let digest = Sha256::digest(&bytes);
        Self(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// The header's value: the tag in double quotes.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("\"{}\"", self.0)).expect("hex is a valid header value")
    }

    fn matches(&self, quoted: &str) -> bool {
        quoted
            .strip_prefix('"')
            .and_then(|tag| tag.strip_suffix('"'))
            .is_some_and(|tag| tag == self.0)
    }
}

/// The `If-Match` header: the tags a write may still apply to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the resource must exist.
    Any,
    /// Quoted tags, as sent.
    Tags(Vec<String>),
}

impl IfMatch {
    /// `None` without the header; a value that is not `*` or a list of quoted tags is 400.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let malformed = || ApiError::BadRequest {
            detail: "If-Match must be * or a list of entity tags such as \"5f1c…\", as the \
                     resource's ETag gave them."
                .into(),
            field: Some("If-Match".into()),
        };
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(header::IF_MATCH) {
            present = true;
            let text = value.to_str().map_err(|_| malformed())?;
            for tag in text.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
                if tag == "*" {
                    return Ok(Some(IfMatch::Any));
                }
                let opaque = tag.strip_prefix("W/").unwrap_or(tag);
                if opaque.len() < 2 || !opaque.starts_with('"') || !opaque.ends_with('"') {
                    return Err(malformed());
                }
                tags.push(tag.to_owned());
            }
        }
        match (present, tags.is_empty()) {
            (false, _) => Ok(None),
            (true, true) => Err(malformed()),
            (true, false) => Ok(Some(IfMatch::Tags(tags))),
        }
    }

    /// Whether a write may go ahead on the resource `current` describes (`None`: it does not
    /// exist, and no precondition holds).
    pub fn holds(&self, current: Option<&EntityTag>) -> bool {
        match (self, current) {
            (_, None) => false,
            (IfMatch::Any, Some(_)) => true,
            // Strong comparison: a weak tag never matches.
            (IfMatch::Tags(tags), Some(current)) => tags.iter().any(|tag| current.matches(tag)),
        }
    }
}

/// Whether `if_match`, when given, holds for the representation `current` (`None`: no such
/// resource). Services call it inside the transaction that locks the row.
pub fn precondition_holds<T: Serialize>(if_match: Option<&IfMatch>, current: Option<&T>) -> bool {
    if_match.is_none_or(|if_match| if_match.holds(current.map(EntityTag::of).as_ref()))
}

/// `value` as JSON with its `ETag`, or 304 when the request's `If-None-Match` names it.
pub fn tagged<T: Serialize>(status: StatusCode, request: &HeaderMap, value: T) -> Response {
    let tag = EntityTag::of(&value);
    let not_modified = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(','))
        .map(str::trim)
        .any(|candidate| {
            candidate == "*" || tag.matches(candidate.strip_prefix("W/").unwrap_or(candidate))
        });
    let etag = [(header::ETAG, tag.header_value())];
    if not_modified && status == StatusCode::OK {
        return (StatusCode::NOT_MODIFIED, etag).into_response();
    }
    (status, etag, Json(value)).into_response()
}

/// The `If-Match` header, as an operation's documented parameter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the request's headers; this only describes them
pub struct IfMatchHeader {
    /// The `ETag` of the version this change was made against: if the resource has changed
    /// since, the answer is 412 and nothing is written. Without it, the change applies to
    /// whatever version is current.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The `If-None-Match` header of a JSON `GET`, as an operation's documented parameter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the request's headers; this only describes them
pub struct IfNoneMatchJsonHeader {
    /// An `ETag` the client holds: 304 without a body while it is current.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("a header value"));
        headers
    }

    #[test]
    fn if_match_holds_only_for_the_current_strong_tag() {
        let current = EntityTag::of(&json!({"id": 1, "name": "Lucía"}));
        let quoted = current
            .header_value()
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let parse = |value: &str| IfMatch::from_headers(&headers(header::IF_MATCH, value));
        let holds = |value: &str| {
            parse(value)
                .ok()
                .flatten()
                .is_some_and(|m| m.holds(Some(&current)))
        };
        assert!(holds(&quoted));
        assert!(holds(&format!("\"other\", {quoted}")));
        assert!(holds("*"));
        assert!(!holds("\"stale\""));
        assert!(
            !holds(&format!("W/{quoted}")),
            "a weak tag never matches If-Match"
        );
        for malformed in ["stale", "\"", ",", "W/"] {
            assert!(parse(malformed).is_err(), "{malformed}");
        }
        assert_eq!(IfMatch::from_headers(&HeaderMap::new()).ok(), Some(None));
        assert!(!IfMatch::Any.holds(None), "* needs the resource to exist");
        let value = json!({"id": 1, "name": "Lucía"});
        assert!(precondition_holds(None, Some(&value)));
        assert!(precondition_holds(
            Some(&IfMatch::Tags(vec![quoted.clone()])),
            Some(&value)
        ));
        assert!(!precondition_holds::<serde_json::Value>(
            Some(&IfMatch::Any),
            None
        ));
        assert_ne!(current, EntityTag::of(&json!({"id": 1, "name": "Lucia"})));
    }

    #[test]
    fn a_get_answers_304_to_its_own_tag() {
        let value = json!({"id": 1});
        let tag = EntityTag::of(&value);
        let quoted = tag.header_value().to_str().unwrap_or_default().to_owned();
        let fresh = tagged(StatusCode::OK, &HeaderMap::new(), value.clone());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[header::ETAG], quoted.as_str());
        let request = headers(header::IF_NONE_MATCH, &format!("W/{quoted}"));
        assert_eq!(
            tagged(StatusCode::OK, &request, value.clone()).status(),
            StatusCode::NOT_MODIFIED
        );
        let stale = headers(header::IF_NONE_MATCH, "\"stale\"");
        assert_eq!(
            tagged(StatusCode::OK, &stale, value).status(),
            StatusCode::OK
        );
    }
}
