//! API Gateway HTTP API payload format 2.0, both ways: the event a Lambda proxy integration gets
//! for an HTTP request, and the HTTP response API Gateway makes of the function's answer. The
//! gateway hosts the functions itself, so it must build what AWS builds and read what AWS reads.
//!
//! The shapes follow the API Gateway developer guide, "Create AWS Lambda proxy integrations for
//! HTTP APIs" (payload format, inferred responses). What the guide leaves out (which bodies are
//! base64, the default response content type, where cookies go) follows events captured from real
//! HTTP APIs; each such rule says so where it is applied.
//!
//! One deliberate difference: `rawPath` is the path as the client sent it, still percent-encoded.
//! Real HTTP APIs decode it, and mangle `%2F`, `%3F` and `%25` on the way (live captures in
//! GitHub hotsock/voker, `vokerhttp/testdata/ingress-paths.json`); lambda_http re-encodes
//! the path when it builds `req.uri()`, so for ordinary paths a function sees the same URI either
//! way, and for the odd ones it sees what the client sent rather than AWS's accident.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE, USER_AGENT};
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde_json::{Map, Value, json};

use crate::headers::strip_hop_by_hop;
use crate::schedule::LOCAL_ACCOUNT;
use crate::websocket::server::LOCAL_API_ID;

/// `requestContext.time`, e.g. `12/Mar/2020:19:03:58 +0000`.
const TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S +0000";

/// Media types whose bodies a real HTTP API passes as text; every other body, a missing
/// `Content-Type` and `application/x-www-form-urlencoded` included, arrives base64-encoded.
/// The guide does not list them: this is the split observed on live HTTP APIs (GitHub
/// ministackorg/ministack PR 766; form posts arriving base64 in middyjs/middy PR 603).
const TEXT_MEDIA_TYPES: [&str; 3] = [
    "application/json",
    "application/xml",
    "application/javascript",
];

/// What a structured response without `Content-Type` is sent with: the AWS Compute Blog,
/// "Handling binary data using Amazon API Gateway HTTP APIs", and AWS's Lambda Test Tool v2.
const DEFAULT_RESPONSE_TYPE: &str = "text/plain; charset=utf-8";

/// One request, with what API Gateway knows about it beyond the HTTP message. The API and
/// account ids are the local ones every other event of the gateway carries.
#[derive(Debug)]
pub struct HttpEventInput<'a> {
    /// `GET /patients/{id}`, or `$default`.
    pub route_key: &'a str,
    /// As [`crate::routes::RoutePath::parameters`] returns them: already percent-decoded.
    pub path_parameters: Vec<(String, String)>,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: Option<IpAddr>,
    pub request_id: &'a str,
    /// `$default` for the default stage.
    pub stage: &'a str,
    pub now: DateTime<Utc>,
}

/// The payload format 2.0 event for `input`. Fields AWS leaves out when there is nothing to say
/// (`cookies`, `queryStringParameters`, `pathParameters`, `body`) are left out, not `null`:
/// strict event parsers reject a `null` where AWS never sends one.
pub fn http_event(input: &HttpEventInput<'_>) -> Value {
    let host = RequestHost::of(input.headers, input.uri);
    let mut headers = input.headers.clone();
    let cookies = take_cookies(&mut headers);
    strip_hop_by_hop(&mut headers);
    add_forwarded(&mut headers, input.source_ip, host.port);

    let mut event = Map::new();
    event.insert("version".into(), "2.0".into());
    event.insert("routeKey".into(), input.route_key.into());
    event.insert("rawPath".into(), input.uri.path().into());
    let raw_query = input.uri.query().unwrap_or_default();
    event.insert("rawQueryString".into(), raw_query.into());
    if !cookies.is_empty() {
        event.insert("cookies".into(), cookies.into());
    }
    event.insert("headers".into(), Value::Object(joined_headers(&headers)));
    if let Some(parameters) = query_parameters(raw_query) {
        event.insert("queryStringParameters".into(), Value::Object(parameters));
    }
    if !input.path_parameters.is_empty() {
        let parameters = input.path_parameters.iter().cloned();
        let parameters = parameters.map(|(name, value)| (name, Value::String(value)));
        event.insert("pathParameters".into(), Value::Object(parameters.collect()));
    }
    event.insert("requestContext".into(), request_context(input, &host));
    let body = event_body(input.headers, input.body);
    let is_base64 = body.as_ref().is_some_and(|body| body.is_base64);
    if let Some(body) = body {
        event.insert("body".into(), body.text.into());
    }
    event.insert("isBase64Encoded".into(), is_base64.into());
    Value::Object(event)
}

/// The API's host as the client named it, which the event reports as the domain name.
struct RequestHost {
    name: String,
    port: Option<u16>,
}

impl RequestHost {
    /// From `Host`, else the request target's authority (absolute-form), else `localhost`.
    fn of(headers: &HeaderMap, uri: &Uri) -> Self {
        let from_header = headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<Authority>().ok());
        match from_header.as_ref().or(uri.authority()) {
            Some(authority) => Self {
                name: authority.host().to_owned(),
                port: authority.port_u16(),
            },
            None => Self {
                name: "localhost".to_owned(),
                port: None,
            },
        }
    }

    /// The first label, as AWS gives `id` for `id.execute-api...`; an IP address has no labels.
    fn prefix(&self) -> &str {
        let is_ip = self.name.starts_with('[') || self.name.parse::<IpAddr>().is_ok();
        match self.name.split('.').next() {
            Some(label) if !is_ip => label,
            _ => &self.name,
        }
    }
}

/// Removes the `Cookie` headers and splits them into the event's `cookies`, one per pair.
fn take_cookies(headers: &mut HeaderMap) -> Vec<String> {
    let cookies = headers
        .get_all(COOKIE)
        .iter()
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .flat_map(|line| {
            let pairs = line
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty());
            pairs.map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    headers.remove(COOKIE);
    cookies
}

/// The `x-forwarded-*` headers API Gateway adds, with `http` and the local port: lambda_http
/// builds `req.uri()` from `x-forwarded-proto` and `Host`, so URLs a function makes point back
/// here. The client's address is appended to any chain it sent, as a proxy does.
fn add_forwarded(headers: &mut HeaderMap, client_ip: Option<IpAddr>, port: Option<u16>) {
    if let Some(ip) = client_ip.map(|ip| ip.to_canonical()) {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    headers.insert("x-forwarded-port", HeaderValue::from(port.unwrap_or(80)));
}

/// One entry per header name; repeated headers joined with `,` as format 2.0 has no
/// `multiValueHeaders`. `HeaderMap` names are already lower case, as AWS sends them; bytes that
/// are not UTF-8 become U+FFFD, since a JSON string can only hold text.
fn joined_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut joined = Map::new();
    for name in headers.keys() {
        let values: Vec<_> = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .collect();
        joined.insert(name.as_str().to_owned(), values.join(",").into());
    }
    joined
}

/// The decoded query (`+` is a space here, it is a form), repeated keys joined with `,`;
/// `None` when there is none, as AWS then omits the field.
fn query_parameters(raw_query: &str) -> Option<Map<String, Value>> {
    let mut parameters = Map::new();
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        match parameters.get_mut(key.as_ref()) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(key.into_owned(), value.into_owned().into());
            }
        }
    }
    (!parameters.is_empty()).then_some(parameters)
}

fn request_context(input: &HttpEventInput<'_>, host: &RequestHost) -> Value {
    let user_agent = input
        .headers
        .get(USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut http = json!({
        "method": input.method.as_str(),
        "path": input.uri.path(),
        "protocol": "HTTP/1.1",
        "userAgent": user_agent,
    });
    if let Some(ip) = input.source_ip {
        http["sourceIp"] = ip.to_canonical().to_string().into();
    }
    json!({
        "accountId": LOCAL_ACCOUNT,
        "apiId": LOCAL_API_ID,
        "domainName": host.name,
        "domainPrefix": host.prefix(),
        "http": http,
        "requestId": input.request_id,
        "routeKey": input.route_key,
        "stage": input.stage,
        "time": input.now.format(TIME_FORMAT).to_string(),
        "timeEpoch": input.now.timestamp_millis(),
    })
}

struct EventBody {
    text: String,
    is_base64: bool,
}

/// `None` for an empty body, which AWS leaves out of the event. Text media types travel as text
/// when they are UTF-8; bytes that are not would not survive a JSON string, so they go base64,
/// which lambda_http decodes all the same.
fn event_body(headers: &HeaderMap, body: &[u8]) -> Option<EventBody> {
    if body.is_empty() {
        return None;
    }
    if is_text_media_type(headers.get(CONTENT_TYPE))
        && let Ok(text) = std::str::from_utf8(body)
    {
        return Some(EventBody {
            text: text.to_owned(),
            is_base64: false,
        });
    }
    Some(EventBody {
        text: BASE64.encode(body),
        is_base64: true,
    })
}

fn is_text_media_type(content_type: Option<&HeaderValue>) -> bool {
    let Some(text) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = text.split(';').next().unwrap_or_default().trim();
    let media_type = media_type.to_ascii_lowercase();
    media_type.starts_with("text/") || TEXT_MEDIA_TYPES.contains(&media_type.as_str())
}

/// The HTTP response API Gateway makes of a function's answer.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Reads the function's output as a format 2.0 response. An object with `statusCode` is a
/// structured response; any other JSON is sent as the body of a 200 `application/json` response,
/// as the guide's "Lambda function response for format 2.0" says AWS infers.
pub fn http_response(output: &[u8]) -> Result<ApiResponse, InvalidResponse> {
    let value: Value = serde_json::from_slice(output).map_err(InvalidResponse::NotJson)?;
    match value.as_object() {
        Some(object) if object.contains_key("statusCode") => structured_response(object),
        _ => Ok(inferred_response(output, value)),
    }
}

/// A JSON string is sent unquoted (the guide's `"Hello from Lambda!"` example); anything else
/// exactly as the function wrote it.
fn inferred_response(output: &[u8], value: Value) -> ApiResponse {
    let body = match value {
        Value::String(text) => Bytes::from(text),
        _ => Bytes::copy_from_slice(output),
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    ApiResponse {
        status: StatusCode::OK,
        headers,
        body,
    }
}

fn structured_response(object: &Map<String, Value>) -> Result<ApiResponse, InvalidResponse> {
    let status = status_code(object.get("statusCode"))?;
    let mut headers = response_headers(object.get("headers"))?;
    // Each `cookies` entry is a `set-cookie`, sent before any `set-cookie` in `headers`: the
    // order observed on AWS when a function returns both (noted in ministack's HTTP API code).
    let header_cookies: Vec<HeaderValue> = headers.get_all(SET_COOKIE).iter().cloned().collect();
    headers.remove(SET_COOKIE);
    let cookies = cookies(object.get("cookies"))?;
    for cookie in cookies.into_iter().chain(header_cookies) {
        headers.append(SET_COOKIE, cookie);
    }
    // Framing is the gateway's, and the length it will send is that of the decoded body.
    strip_hop_by_hop(&mut headers);
    headers.remove(CONTENT_LENGTH);
    let default_type = HeaderValue::from_static(DEFAULT_RESPONSE_TYPE);
    headers.entry(CONTENT_TYPE).or_insert(default_type);
    let body = response_body(object.get("body"), object.get("isBase64Encoded"))?;
    Ok(ApiResponse {
        status,
        headers,
        body,
    })
}

/// A final status: 1xx is no answer to send a client, and HTTP has nothing above 599.
fn status_code(value: Option<&Value>) -> Result<StatusCode, InvalidResponse> {
    let invalid = || InvalidResponse::StatusCode(value.map(Value::to_string).unwrap_or_default());
    let code = value
        .and_then(Value::as_u64)
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| u16::try_from(code).ok())
        .ok_or_else(invalid)?;
    StatusCode::from_u16(code).map_err(|_| invalid())
}

/// Format 2.0 headers are single strings; a value may hold commas and is sent as one line.
/// `multiValueHeaders` is not part of 2.0 and is ignored, as AWS ignores it.
fn response_headers(value: Option<&Value>) -> Result<HeaderMap, InvalidResponse> {
    let mut headers = HeaderMap::new();
    let entries = match value {
        None | Some(Value::Null) => return Ok(headers),
        Some(Value::Object(entries)) => entries,
        Some(other) => return Err(InvalidResponse::HeadersNotObject(json_kind(other))),
    };
    for (name, value) in entries {
        let Value::String(text) = value else {
            return Err(InvalidResponse::HeaderNotString {
                name: name.clone(),
                found: json_kind(value),
            });
        };
        let invalid = || InvalidResponse::Header { name: name.clone() };
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let header_value = HeaderValue::from_str(text).map_err(|_| invalid())?;
        headers.append(header_name, header_value);
    }
    Ok(headers)
}

fn cookies(value: Option<&Value>) -> Result<Vec<HeaderValue>, InvalidResponse> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(other) => return Err(InvalidResponse::CookiesNotArray(json_kind(other))),
    };
    let cookie = |(index, entry): (usize, &Value)| match entry {
        Value::String(text) => {
            HeaderValue::from_str(text).map_err(|_| InvalidResponse::Cookie { index })
        }
        _ => Err(InvalidResponse::Cookie { index }),
    };
    entries.iter().enumerate().map(cookie).collect()
}

fn response_body(
    body: Option<&Value>,
    is_base64: Option<&Value>,
) -> Result<Bytes, InvalidResponse> {
    let is_base64 = match is_base64 {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(InvalidResponse::Base64Flag(json_kind(other))),
    };
    let text = match body {
        None | Some(Value::Null) => return Ok(Bytes::new()),
        Some(Value::String(text)) => text,
        Some(other) => return Err(InvalidResponse::BodyNotString(json_kind(other))),
    };
    if is_base64 {
        let bytes = BASE64.decode(text).map_err(InvalidResponse::Base64)?;
        Ok(Bytes::from(bytes))
    } else {
        Ok(Bytes::copy_from_slice(text.as_bytes()))
    }
}

/// For messages: what a JSON value was instead of what was expected.
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A function answer API Gateway cannot turn into a response; AWS then answers 500
/// `{"message":"Internal Server Error"}` itself. Each message names the field at fault and
/// carries its cause, so that one log line says everything.
#[derive(Debug, thiserror::Error)]
pub enum InvalidResponse {
    #[error("the function's output is not JSON ({0})")]
    NotJson(serde_json::Error),
    #[error("`statusCode` must be an integer from 200 to 599, not `{0}`")]
    StatusCode(String),
    #[error("`headers` must be an object of strings, not {0}")]
    HeadersNotObject(&'static str),
    #[error("`headers.{name}` must be a string, not {found}")]
    HeaderNotString { name: String, found: &'static str },
    #[error("`headers.{name}`: not a valid HTTP header name and value")]
    Header { name: String },
    #[error("`cookies` must be an array of strings, not {0}")]
    CookiesNotArray(&'static str),
    #[error("`cookies[{index}]` must be a string that is a valid header value")]
    Cookie { index: usize },
    #[error("`body` must be a string, not {0}")]
    BodyNotString(&'static str),
    #[error("`isBase64Encoded` must be true or false, not {0}")]
    Base64Flag(&'static str),
    #[error("`body` is not base64 ({0}), yet `isBase64Encoded` is true")]
    Base64(base64::DecodeError),
}

#[cfg(test)]
mod tests;
