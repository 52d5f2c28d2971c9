//! What a cached value is in Redis: any serde type as JSON, or [`RawJson`] kept as it is.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a value is kept in Redis. Every serde type is kept as JSON and parsed on a hit;
/// [`RawJson`] is kept as the JSON document itself and handed back without parsing (for large
/// responses that are sent as they are, like the dashboard).
pub trait CacheValue: Sized {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error>;
    /// `None` when the bytes are not this type's (an older format): a miss.
    fn decode(payload: &[u8]) -> Option<Self>;
}

impl<T: Serialize + DeserializeOwned> CacheValue for T {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// A JSON document kept and served as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// Serializes `value` once, when it is loaded.
    pub fn to_json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(|text| Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into()
    }
}

impl CacheValue for RawJson {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        Ok(self.0.as_bytes().to_vec())
    }

    /// Only checked to be text: it was JSON when it was stored, and the key's format version
    /// changes when its shape does.
    fn decode(payload: &[u8]) -> Option<Self> {
        std::str::from_utf8(payload)
            .ok()
            .map(|text| Self(text.into()))
    }
}

/// Sent as it is, with its content type (a cached answer, the dashboards).
impl axum::response::IntoResponse for RawJson {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                ::http::header::CONTENT_TYPE,
                ::http::HeaderValue::from_static("application/json"),
            )],
            self.into_string(),
        )
            .into_response()
    }
}
