//! The events API Gateway hands a WebSocket API's functions ($connect, messages, $disconnect),
//! in the shape `aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest` reads: times in
//! epoch milliseconds as JSON numbers, ids in API Gateway's base64 style.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use http::HeaderMap;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// What every event of one connection shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionContext {
    pub connection_id: String,
    pub connected_at: DateTime<Utc>,
    /// The host the client connected to (API Gateway: the API's or the custom domain's name).
    pub domain_name: String,
    pub stage: String,
    pub api_id: String,
    pub source_ip: IpAddr,
    pub user_agent: Option<String>,
}

/// A connection, request or message id as API Gateway writes them: 11 random bytes in base64,
/// e.g. `L0SM9cOFvHcCIhw=`. Standard base64, so ids may hold `+` and `/`, which the
/// @connections path then carries percent-encoded.
pub fn new_id() -> String {
    let random = Uuid::new_v4();
    let bytes = random.as_bytes();
    // Bytes 6 and 8 of a v4 UUID carry its version and variant bits; the other 14 are random.
    let mut id = [0u8; 11];
    id[..6].copy_from_slice(&bytes[..6]);
    id[6] = bytes[7];
    id[7..].copy_from_slice(&bytes[9..13]);
    STANDARD.encode(id)
}

/// `09/Feb/2024:18:23:28 +0000`, the common log format of `requestTime`.
pub fn request_time(at: DateTime<Utc>) -> String {
    at.format("%d/%b/%Y:%H:%M:%S %z").to_string()
}

/// `2024-02-09T18:23:28.396Z`, the @connections API's timestamps.
pub fn iso_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `$connect` event: the upgrade request's headers and query, no body.
pub fn connect_event(
    context: &ConnectionContext,
    request_id: &str,
    at: DateTime<Utc>,
    headers: &HeaderMap,
    query: Option<&str>,
    port: u16,
) -> Value {
    let mut event = Map::new();
    let (single, multi) = connect_headers(headers, context.source_ip, port, at);
    event.insert("headers".into(), single);
    event.insert("multiValueHeaders".into(), multi);
    if let Some((single, multi)) = query_parameters(query) {
        event.insert("queryStringParameters".into(), single);
        event.insert("multiValueQueryStringParameters".into(), multi);
    }
    let mut request_context = base_context(context, "$connect", "CONNECT", request_id, at);
    request_context.insert("messageId".into(), Value::Null);
    event.insert("requestContext".into(), Value::Object(request_context));
    event.insert("isBase64Encoded".into(), Value::Bool(false));
    Value::Object(event)
}

/// A message event: only the request context and the frame's text.
pub fn message_event(
    context: &ConnectionContext,
    route_key: &str,
    request_id: &str,
    message_id: &str,
    at: DateTime<Utc>,
    body: &str,
) -> Value {
    let mut request_context = base_context(context, route_key, "MESSAGE", request_id, at);
    request_context.insert("messageId".into(), Value::String(message_id.to_owned()));
    json!({
        "requestContext": request_context,
        "body": body,
        "isBase64Encoded": false,
    })
}

/// The `$disconnect` event, with the close code and reason. API Gateway sends these four
/// headers, three of them empty.
pub fn disconnect_event(
    context: &ConnectionContext,
    request_id: &str,
    at: DateTime<Utc>,
    status_code: u16,
    reason: &str,
) -> Value {
    let mut request_context = base_context(context, "$disconnect", "DISCONNECT", request_id, at);
    request_context.insert("disconnectStatusCode".into(), json!(status_code));
    request_context.insert("disconnectReason".into(), Value::String(reason.to_owned()));
    let headers = [
        ("Host", context.domain_name.as_str()),
        ("x-api-key", ""),
        ("X-Forwarded-For", ""),
        ("x-restapi", ""),
    ];
    let single: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!(value)))
        .collect();
    let multi: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json!([value])))
        .collect();
    json!({
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": request_context,
        "isBase64Encoded": false,
    })
}

fn base_context(
    context: &ConnectionContext,
    route_key: &str,
    event_type: &str,
    request_id: &str,
    at: DateTime<Utc>,
) -> Map<String, Value> {
    let mut identity = Map::new();
    identity.insert(
        "sourceIp".into(),
        Value::String(context.source_ip.to_string()),
    );
    if let Some(agent) = &context.user_agent {
        identity.insert("userAgent".into(), Value::String(agent.clone()));
    }
    let mut request_context = Map::new();
    for (key, value) in [
        ("routeKey", json!(route_key)),
        ("eventType", json!(event_type)),
        ("extendedRequestId", json!(request_id)),
        ("requestTime", json!(request_time(at))),
        ("messageDirection", json!("IN")),
        ("stage", json!(context.stage)),
        (
            "connectedAt",
            json!(context.connected_at.timestamp_millis()),
        ),
        ("requestTimeEpoch", json!(at.timestamp_millis())),
        ("identity", Value::Object(identity)),
        ("requestId", json!(request_id)),
        ("domainName", json!(context.domain_name)),
        ("connectionId", json!(context.connection_id)),
        ("apiId", json!(context.api_id)),
    ] {
        request_context.insert(key.into(), value);
    }
    request_context
}

/// The client's headers as API Gateway passes them on `$connect`: without the hop-by-hop ones,
/// plus `X-Amzn-Trace-Id` and `X-Forwarded-*`, in the spelling browsers send.
fn connect_headers(
    headers: &HeaderMap,
    source_ip: IpAddr,
    port: u16,
    at: DateTime<Utc>,
) -> (Value, Value) {
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if matches!(
            name,
            "connection" | "upgrade" | "keep-alive" | "te" | "trailer" | "transfer-encoding"
        ) || name.starts_with("proxy-")
        {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        multi
            .entry(canonical_header(name))
            .or_default()
            .push(value.to_owned());
    }
    let forwarded_for = match multi.remove("X-Forwarded-For") {
        Some(earlier) => format!("{}, {source_ip}", earlier.join(", ")),
        None => source_ip.to_string(),
    };
    let random = Uuid::new_v4().simple().to_string();
    let trace = format!("Root=1-{:08x}-{}", at.timestamp(), &random[..24]);
    for (name, value) in [
        ("X-Amzn-Trace-Id", trace),
        ("X-Forwarded-For", forwarded_for),
        ("X-Forwarded-Port", port.to_string()),
        ("X-Forwarded-Proto", "http".to_owned()),
    ] {
        multi.insert(name.to_owned(), vec![value]);
    }
    let single: Map<String, Value> = multi
        .iter()
        .filter_map(|(name, values)| Some((name.clone(), json!(values.last()?))))
        .collect();
    let multi: Map<String, Value> = multi
        .into_iter()
        .map(|(name, values)| (name, json!(values)))
        .collect();
    (Value::Object(single), Value::Object(multi))
}

/// `sec-websocket-key` → `Sec-WebSocket-Key`, `user-agent` → `User-Agent`.
fn canonical_header(name: &str) -> String {
    let special = [
        ("sec-websocket-key", "Sec-WebSocket-Key"),
        ("sec-websocket-version", "Sec-WebSocket-Version"),
        ("sec-websocket-extensions", "Sec-WebSocket-Extensions"),
        ("sec-websocket-protocol", "Sec-WebSocket-Protocol"),
        ("x-amzn-trace-id", "X-Amzn-Trace-Id"),
    ];
    if let Some((_, spelled)) = special.iter().find(|(lower, _)| *lower == name) {
        return (*spelled).to_owned();
    }
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// Decoded query parameters: the last value of each name, and all of them. `None` for no query.
fn query_parameters(query: Option<&str>) -> Option<(Value, Value)> {
    let query = query.filter(|q| !q.is_empty())?;
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        multi
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    if multi.is_empty() {
        return None;
    }
    let single: Map<String, Value> = multi
        .iter()
        .filter_map(|(name, values)| Some((name.clone(), json!(values.last()?))))
        .collect();
    let multi: Map<String, Value> = multi
        .into_iter()
        .map(|(name, values)| (name, json!(values)))
        .collect();
    Some((Value::Object(single), Value::Object(multi)))
}

/// Drops the `token` (and any other credential-looking parameter) from a query, for logs.
pub fn redacted_query(query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let lower = name.to_ascii_lowercase();
        let secret = [
            "token",
            "auth",
            "key",
            "secret",
            "password",
            "signature",
            "credential",
        ]
        .iter()
        .any(|word| lower.contains(word));
        if secret {
            out.append_pair(&name, "REDACTED");
        } else {
            out.append_pair(&name, &value);
        }
    }
    format!("?{}", out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn context() -> ConnectionContext {
        ConnectionContext {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected_at: DateTime::from_timestamp_millis(1_707_503_007_396).expect("time"),
            domain_name: "127.0.0.1:3001".into(),
            stage: "prod".into(),
            api_id: "local".into(),
            source_ip: IpAddr::from([127, 0, 0, 1]),
            user_agent: Some("test-agent".into()),
        }
    }

    #[test]
    fn ids_look_like_api_gateway_ids() {
        for _ in 0..200 {
            let id = new_id();
            assert_eq!(id.len(), 16, "{id}");
            assert!(id.ends_with('='), "{id}");
            assert!(
                id[..15]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'),
                "{id}"
            );
        }
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn times() {
        let at = DateTime::from_timestamp_millis(1_707_503_008_941).expect("time");
        assert_eq!(request_time(at), "09/Feb/2024:18:23:28 +0000");
        assert_eq!(iso_time(at), "2024-02-09T18:23:28.941Z");
    }

    #[test]
    fn connect_event_shape() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "127.0.0.1:3001"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "abc=="),
            ("sec-websocket-version", "13"),
            ("user-agent", "test-agent"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let at = DateTime::from_timestamp_millis(1_707_503_008_941).expect("time");
        let event = connect_event(
            &context(),
            "req=",
            at,
            &headers,
            Some("token=a%2Bb&x=1&x=2"),
            3001,
        );
        assert_eq!(event["headers"]["Host"], "127.0.0.1:3001");
        assert_eq!(event["headers"]["Sec-WebSocket-Key"], "abc==");
        assert_eq!(event["headers"]["User-Agent"], "test-agent");
        assert_eq!(event["headers"]["X-Forwarded-For"], "127.0.0.1");
        assert_eq!(event["headers"]["X-Forwarded-Port"], "3001");
        assert!(event["headers"].get("Connection").is_none());
        assert!(event["headers"].get("Upgrade").is_none());
        assert_eq!(
            event["multiValueHeaders"]["Host"],
            json!(["127.0.0.1:3001"])
        );
        assert_eq!(event["queryStringParameters"]["token"], "a+b");
        assert_eq!(event["queryStringParameters"]["x"], "2");
        assert_eq!(
            event["multiValueQueryStringParameters"]["x"],
            json!(["1", "2"])
        );
        let context = &event["requestContext"];
        assert_eq!(context["routeKey"], "$connect");
        assert_eq!(context["eventType"], "CONNECT");
        assert_eq!(context["connectedAt"], json!(1_707_503_007_396_i64));
        assert_eq!(context["requestTimeEpoch"], json!(1_707_503_008_941_i64));
        assert_eq!(context["requestTime"], "09/Feb/2024:18:23:28 +0000");
        assert_eq!(context["requestId"], context["extendedRequestId"]);
        assert_eq!(context["identity"]["userAgent"], "test-agent");
        assert!(event.get("body").is_none());

        let without_query = connect_event(&self::context(), "r", at, &headers, None, 3001);
        assert!(without_query.get("queryStringParameters").is_none());
    }

    #[test]
    fn disconnect_event_shape() {
        let at = Utc::now();
        let event = disconnect_event(
            &context(),
            "r=",
            at,
            1005,
            "Client-side close frame status not set",
        );
        assert_eq!(event["requestContext"]["disconnectStatusCode"], json!(1005));
        assert_eq!(event["requestContext"]["eventType"], "DISCONNECT");
        assert_eq!(event["headers"]["x-restapi"], "");
        assert_eq!(
            event["multiValueHeaders"]["Host"],
            json!(["127.0.0.1:3001"])
        );
    }

    #[test]
    fn tokens_are_redacted_from_logged_queries() {
        assert_eq!(
            redacted_query(Some("token=eyJ.secret&clinic=1")),
            "?token=REDACTED&clinic=1"
        );
        assert_eq!(
            redacted_query(Some("access_token=x")),
            "?access_token=REDACTED"
        );
        assert_eq!(redacted_query(None), "");
    }
}
