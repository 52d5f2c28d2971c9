//! What a WebSocket route's function returned: the Lambda proxy answer that accepts or refuses
//! a handshake, and the reply a two-way route sends back to the client.

use axum::body::Body;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::headers::strip_hop_by_hop;
use crate::websocket::connections::Outbound;

/// A Lambda proxy answer (`{"statusCode", "headers", "multiValueHeaders", "body",
/// "isBase64Encoded"}`); an answer without `statusCode` counts as 200, as API Gateway treats
/// a `$connect` handler that returns nothing.
pub(super) struct ProxyAnswer {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    body: Bytes,
}

impl ProxyAnswer {
    pub(super) fn parse(output: &[u8]) -> Self {
        let json: Value = serde_json::from_slice(output).unwrap_or(Value::Null);
        let status = match json.get("statusCode") {
            None | Some(Value::Null) => Some(StatusCode::OK),
            Some(Value::Number(number)) => number
                .as_u64()
                .and_then(|code| u16::try_from(code).ok())
                .and_then(|code| StatusCode::from_u16(code).ok()),
            Some(Value::String(text)) => text
                .trim()
                .parse::<u16>()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok()),
            Some(_) => None,
        };
        let Some(status) = status else {
            // A malformed integration answer: API Gateway's 502.
            return Self {
                status: StatusCode::BAD_GATEWAY,
                headers: json_content_type(),
                body: Bytes::from(json!({"message": "Internal server error"}).to_string()),
            };
        };
        let mut headers = HeaderMap::new();
        if let Some(map) = json.get("headers").and_then(Value::as_object) {
            for (name, value) in map {
                append_header(&mut headers, name, value);
            }
        }
        if let Some(map) = json.get("multiValueHeaders").and_then(Value::as_object) {
            for (name, values) in map {
                for value in values.as_array().into_iter().flatten() {
                    append_header(&mut headers, name, value);
                }
            }
        }
        let body = proxy_body(&json).unwrap_or_default();
        Self {
            status,
            headers,
            body,
        }
    }

    pub(super) fn into_response(self) -> Response {
        let mut headers = self.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove("content-length");
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

fn append_header(headers: &mut HeaderMap, name: &str, value: &Value) {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return,
    };
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(&text),
    ) {
        headers.append(name, value);
    }
}

/// The `body` of a proxy answer, base64-decoded when `isBase64Encoded`.
fn proxy_body(json: &Value) -> Option<Bytes> {
    let body = json.get("body")?.as_str()?;
    if json.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        STANDARD.decode(body).ok().map(Bytes::from)
    } else {
        Some(Bytes::from(body.to_owned()))
    }
}

/// What a two-way route sends back: the proxy answer's `body`, or the raw output when the
/// function answered something that is not a proxy response. Nothing for an empty answer.
pub(super) fn route_response(output: &[u8]) -> Option<Outbound> {
    let json: Value = serde_json::from_slice(output).unwrap_or(Value::Null);
    let data = match &json {
        Value::Null => return None,
        Value::Object(map) if map.contains_key("statusCode") => proxy_body(&json)?,
        Value::String(text) => Bytes::from(text.clone()),
        _ => Bytes::copy_from_slice(output),
    };
    if data.is_empty() {
        return None;
    }
    Some(match String::from_utf8(data.to_vec()) {
        Ok(text) => Outbound::Text(text),
        Err(_) => Outbound::Binary(data),
    })
}

pub(super) fn json_content_type() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_answers() {
        let answer = ProxyAnswer::parse(
            br#"{"statusCode":401,"headers":{"content-type":"application/json","x-n":3},"multiValueHeaders":{"x-m":["a","b"]},"body":"{\"message\":\"Unauthorized\"}"}"#,
        );
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(answer.headers["x-n"], "3");
        assert_eq!(answer.headers.get_all("x-m").iter().count(), 2);
        assert_eq!(&answer.body[..], br#"{"message":"Unauthorized"}"#);

        assert_eq!(ProxyAnswer::parse(b"null").status, StatusCode::OK);
        assert_eq!(ProxyAnswer::parse(b"{}").status, StatusCode::OK);
        assert_eq!(
            ProxyAnswer::parse(br#"{"statusCode":"403"}"#).status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            ProxyAnswer::parse(br#"{"statusCode":99999}"#).status,
            StatusCode::BAD_GATEWAY
        );
        let encoded =
            ProxyAnswer::parse(br#"{"statusCode":400,"body":"aGk=","isBase64Encoded":true}"#);
        assert_eq!(&encoded.body[..], b"hi");
    }

    #[test]
    fn route_responses() {
        assert_eq!(
            route_response(br#"{"statusCode":200,"body":"pong"}"#),
            Some(Outbound::Text("pong".into()))
        );
        assert_eq!(route_response(br#"{"statusCode":200}"#), None);
        assert_eq!(route_response(b"null"), None);
        assert_eq!(
            route_response(br#""plain""#),
            Some(Outbound::Text("plain".into()))
        );
        assert_eq!(
            route_response(br#"{"a":1}"#),
            Some(Outbound::Text(r#"{"a":1}"#.into()))
        );
        assert_eq!(
            route_response(br#"{"statusCode":200,"body":"/w==","isBase64Encoded":true}"#),
            Some(Outbound::Binary(Bytes::from_static(&[0xff])))
        );
    }
}
