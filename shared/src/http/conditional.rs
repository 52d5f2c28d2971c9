//! Conditional requests on a JSON resource, against lost updates: a `GET` answers with an
//! `ETag` (and 304 to a matching `If-None-Match`), and a `PATCH` / `PUT` carrying `If-Match`
//! changes the resource only while its tag still matches: two receptionists editing one patient
//! no longer overwrite each other silently. A mismatch answers 412
//! `/problems/precondition-failed` and writes nothing; the service compares inside the
//! transaction that holds the row lock, so no write can slip between the check and its own.
//!
//! The tag is the SHA-256 of the resource's JSON as the API returns it ([`Sha256Digest`], as
//! for binary media, whose tag is the digest of their bytes), so it changes exactly when what a
//! client sees changes, wherever the representation came from (PostgreSQL or the cache). Tags
//! are strong; `If-Match` compares strongly (a `W/` tag never matches, RFC 9110 §13.1.1),
//! `If-None-Match` weakly ([`IfNoneMatch`]).

use super::ApiError;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;

/// A 32-byte SHA-256 digest: a stored checksum (an X-ray's) and, hex-encoded, an entity tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(digest))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// The entity tag of a JSON representation: the digest of its bytes as sent.
pub fn json_tag<T: Serialize>(value: &T) -> Sha256Digest {
    // A plain response type always serializes; were it not to, no tag a client holds matches.
    Sha256Digest::of(&serde_json::to_vec(value).unwrap_or_default())
}

/// A digest as an `ETag` value: in double quotes.
pub fn etag_value(digest: &Sha256Digest) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{}\"", digest.hex())).expect("hex is a valid header value")
}

/// How the contract describes the `If-None-Match` header of the routes that honour it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchHeader {
    /// The `ETag` of the copy the client has: 304 without a body when it is still current.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// What `If-None-Match` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IfNoneMatch {
    #[default]
    Absent,
    /// `*`: any current representation.
    Any,
    Tags(Vec<Sha256Digest>),
}

impl IfNoneMatch {
    /// Reads the header (weak comparison, RFC 9110 §13.1.2: `W/` is ignored); entity tags that
    /// are not ours simply never match.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(http::header::IF_NONE_MATCH) {
            present = true;
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(',').map(str::trim) {
                if tag == "*" {
                    return IfNoneMatch::Any;
                }
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                if let Some(digest) = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(Sha256Digest::from_hex)
                {
                    tags.push(digest);
                }
            }
        }
        if present {
            IfNoneMatch::Tags(tags)
        } else {
            IfNoneMatch::Absent
        }
    }

    pub fn matches(&self, digest: &Sha256Digest) -> bool {
        match self {
            IfNoneMatch::Absent => false,
            IfNoneMatch::Any => true,
            IfNoneMatch::Tags(tags) => tags.contains(digest),
        }
    }
}

/// The `If-Match` header: the tags a write may still apply to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the resource must exist.
    Any,
    /// The strong tags sent that are ours (weak or foreign tags never match, so they are not
    /// kept).
    Tags(Vec<Sha256Digest>),
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
        let mut given = 0;
        for value in headers.get_all(header::IF_MATCH) {
            present = true;
            let text = value.to_str().map_err(|_| malformed())?;
            for tag in text.split(',').map(str::trim).filter(|tag| !tag.is_empty()) {
                if tag == "*" {
                    return Ok(Some(IfMatch::Any));
                }
                let (weak, opaque) = match tag.strip_prefix("W/") {
                    Some(opaque) => (true, opaque),
                    None => (false, tag),
                };
                if opaque.len() < 2 || !opaque.starts_with('"') || !opaque.ends_with('"') {
                    return Err(malformed());
                }
                given += 1;
                let ours = Sha256Digest::from_hex(&opaque[1..opaque.len() - 1]);
                tags.extend(ours.filter(|_| !weak));
            }
        }
        match (present, given) {
            (false, _) => Ok(None),
            (true, 0) => Err(malformed()),
            (true, _) => Ok(Some(IfMatch::Tags(tags))),
        }
    }

    /// Whether a write may go ahead on the resource `current` describes (`None`: it does not
    /// exist, and no precondition holds).
    pub fn holds(&self, current: Option<&Sha256Digest>) -> bool {
        match (self, current) {
            (_, None) => false,
            (IfMatch::Any, Some(_)) => true,
            (IfMatch::Tags(tags), Some(current)) => tags.contains(current),
        }
    }
}

/// Whether `if_match`, when given, holds for the representation `current` gives (`None`: no
/// such resource); `current` runs only when there is a precondition. Services call it inside
/// the transaction that locks the row.
pub fn precondition_holds<T: Serialize>(
    if_match: Option<&IfMatch>,
    current: impl FnOnce() -> Option<T>,
) -> bool {
    if_match.is_none_or(|if_match| if_match.holds(current().map(|value| json_tag(&value)).as_ref()))
}

/// `value` as JSON with its `ETag`, or 304 when the request's `If-None-Match` names it.
pub fn tagged<T: Serialize>(status: StatusCode, request: &HeaderMap, value: T) -> Response {
    let tag = json_tag(&value);
    let not_modified = IfNoneMatch::from_headers(request).matches(&tag);
    let etag = [(header::ETAG, etag_value(&tag))];
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
        let current = json_tag(&json!({"id": 1, "name": "Lucía"}));
        let quoted = etag_value(&current).to_str().unwrap_or_default().to_owned();
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
        let value = || Some(json!({"id": 1, "name": "Lucía"}));
        assert!(precondition_holds(None, value));
        assert!(precondition_holds(
            Some(&IfMatch::Tags(vec![current])),
            value
        ));
        assert!(!precondition_holds::<serde_json::Value>(
            Some(&IfMatch::Any),
            || None
        ));
        assert_ne!(current, json_tag(&json!({"id": 1, "name": "Lucia"})));
    }

    #[test]
    fn a_get_answers_304_to_its_own_tag() {
        let value = json!({"id": 1});
        let quoted = etag_value(&json_tag(&value))
            .to_str()
            .unwrap_or_default()
            .to_owned();
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

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            digest.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::from_hex(&digest.hex()), Some(digest));
        assert_eq!(Sha256Digest::from_hex("zz"), None);
        assert_eq!(Sha256Digest::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let digest = Sha256Digest::of(b"abc");
        let mut headers = http::HeaderMap::new();
        assert_eq!(IfNoneMatch::from_headers(&headers), IfNoneMatch::Absent);
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_str(&format!("\"other\", W/\"{}\"", digest.hex())).unwrap(),
        );
        let parsed = IfNoneMatch::from_headers(&headers);
        assert!(parsed.matches(&digest));
        assert!(!parsed.matches(&Sha256Digest::of(b"abd")));
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("*"),
        );
        assert_eq!(IfNoneMatch::from_headers(&headers), IfNoneMatch::Any);
    }
}
