//! A client bound to one router and one caller, so a request reads as one line
//! (`client.get(path)`, `client.post(path, &json)`), and the response it returns.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode, request};
use http_body_util::BodyExt;
use serde_json::Value;
use std::ops::Index;
use tower::ServiceExt;

/// Sends requests through a router in-process (`tower::ServiceExt::oneshot`), with the
/// caller's token as `Authorization: Bearer …` when it has one.
#[derive(Clone)]
pub struct Client {
    router: Router,
    token: Option<String>,
    /// Sent as `Pulso-Clinic` with every request.
    clinic: Option<String>,
}

impl Client {
    pub fn new(router: Router, token: Option<String>) -> Client {
        Client {
            router,
            token,
            clinic: None,
        }
    }

    /// The same router, another caller (`None`: no `Authorization` header).
    pub fn with_token(&self, token: Option<&str>) -> Client {
        Client::new(self.router.clone(), token.map(str::to_string))
    }

    /// The same caller, acting in the clinic `clinic` names (a clinic id, or anything to see
    /// how a bad header is answered).
    pub fn in_clinic(&self, clinic: impl ToString) -> Client {
        Client {
            clinic: Some(clinic.to_string()),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, json: &Value) -> TestResponse {
        self.send(Method::POST, path, Some(json)).await
    }

    /// A POST without a body (the action routes take none).
    pub async fn post_empty(&self, path: &str) -> TestResponse {
        self.send(Method::POST, path, None).await
    }

    pub async fn put(&self, path: &str, json: &Value) -> TestResponse {
        self.send(Method::PUT, path, Some(json)).await
    }

    /// A PUT without a body.
    pub async fn put_empty(&self, path: &str) -> TestResponse {
        self.send(Method::PUT, path, None).await
    }

    pub async fn patch(&self, path: &str, json: &Value) -> TestResponse {
        self.send(Method::PATCH, path, Some(json)).await
    }

    /// Any method, with a JSON body or none (for tables of cases that vary the method).
    pub async fn send(&self, method: Method, path: &str, json: Option<&Value>) -> TestResponse {
        self.send_with_headers(method, path, json, &[]).await
    }

    /// A JSON body (or none) with extra request headers, such as `If-Match`.
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        json: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = self.request(method, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match json {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Body::from(serde_json::to_vec(value).expect("json"))
            }
            None => Body::empty(),
        };
        self.raw(request.body(body).expect("request")).await
    }

    /// A body sent as is with this content type, or none (malformed JSON, images, oversize
    /// bodies…).
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut request = self.request(method, path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.raw(request.body(body.into()).expect("request")).await
    }

    /// A request builder carrying this caller's token, for requests that need more headers.
    pub fn request(&self, method: Method, path: &str) -> request::Builder {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(clinic) = &self.clinic {
            request = request.header("pulso-clinic", clinic);
        }
        match &self.token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// Sends a request exactly as the test built it.
    pub async fn raw(&self, request: Request<Body>) -> TestResponse {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("routers are infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        TestResponse {
            status,
            headers,
            body,
            bytes: bytes.to_vec(),
        }
    }
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    /// The body as received (images and other non-JSON answers).
    pub bytes: Vec<u8>,
}

impl TestResponse {
    /// A redirect (to a presigned S3 URL) followed as a browser would, over real HTTP to the
    /// S3 stand-in; any other answer as it is.
    pub async fn follow(self) -> TestResponse {
        if !self.status.is_redirection() {
            return self;
        }
        let location = self.headers[http::header::LOCATION]
            .to_str()
            .expect("an ASCII Location")
            .to_owned();
        fetch(&location).await
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body as JSON (`Value::String` when it was not JSON, `Value::Null` when empty).
    pub fn json(&self) -> &Value {
        &self.body
    }

    /// Asserts an RFC 9457 problem with this status, and returns it typed.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Problem {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"].as_u64(), Some(u64::from(status)));
        let text = |name: &str| self.body[name].as_str().map(str::to_string);
        let kind = text("type").filter(|t| t.starts_with("/problems/"));
        assert!(kind.is_some(), "type: {}", self.body);
        let (title, detail) = (text("title"), text("detail"));
        assert!(title.is_some(), "title: {}", self.body);
        assert!(detail.is_some(), "detail: {}", self.body);
        Problem {
            kind: kind.unwrap_or_default(),
            title: title.unwrap_or_default(),
            status,
            detail: detail.unwrap_or_default(),
            field: text("field"),
            body: self.body.clone(),
        }
    }
}

/// An `application/problem+json` body (RFC 9457). Indexing by member name reads the raw body,
/// for members a problem type adds (`retry_after`, `limit`…).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The `type` member.
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The offending field, where there is one.
    pub field: Option<String>,
    pub body: Value,
}

impl Index<&str> for Problem {
    type Output = Value;

    fn index(&self, member: &str) -> &Value {
        &self.body[member]
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.body.fmt(f)
    }
}

/// Compares the whole body, so a test can assert two problems are the same answer.
impl PartialEq<&Value> for Problem {
    fn eq(&self, other: &&Value) -> bool {
        self.body == **other
    }
}

impl PartialEq<Value> for Problem {
    fn eq(&self, other: &Value) -> bool {
        self.body == *other
    }
}

/// A GET of an absolute URL (a presigned S3 URL, on the stand-in) without a token.
pub async fn fetch(url: &str) -> TestResponse {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let bytes = response.bytes().await.expect("the body").to_vec();
    TestResponse {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes,
    }
}
