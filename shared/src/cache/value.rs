//! What a cached value is in Redis: any serde type as JSON, or [`RawJson`] kept as it is.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a value is kept in Redis. Every serde type is kept as JSON and parsed on a hit;
/// [`RawJson`] is kept as the JSON document itself and handed back without parsing (for large
/// responses that are sent as they are, like the dashboard).
pub trait CacheValue: Sized {
    /// Appends the value's bytes to `out` (after the envelope's header: a large value is
    /// written once, not built apart and copied in).
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error>;

    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut bytes = Vec::new();
        self.encode_into(&mut bytes)?;
        Ok(bytes)
    }

    /// `None` when the bytes are not this type's (an older format): a miss.
    fn decode(payload: &[u8]) -> Option<Self>;
}

impl<T: Serialize + DeserializeOwned> CacheValue for T {
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// A JSON document kept and served as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(String);

impl RawJson {
    /// Serializes `value` once, when it is loaded.
    pub fn to_json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl CacheValue for RawJson {
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(())
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
