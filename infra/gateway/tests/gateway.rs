//! End-to-end: the gateway in front of a fake `cargo lambda watch`, both on loopback ports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pulso_gateway::Gateway;
use pulso_gateway::cli::Config;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Behaves like `cargo lambda watch` serving one binary, `echo`, under `/lambda-url/<bin>/...`.
async fn fake_watch(request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let Some((bin, rest)) = path
        .strip_prefix("/lambda-url/")
        .map(|p| p.split_once('/').unwrap_or((p, "")))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if bin != "echo" {
        // Watch's answer for an unknown binary: 404, JSON body, no content-type.
        let body = json!({
            "title": "Missing function",
            "detail": "that function doesn't exist as a binary in your project. Available functions: {\"echo\"}",
        });
        return (StatusCode::NOT_FOUND, body.to_string()).into_response();
    }
    let rest = format!("/{rest}");
    match rest.as_str() {
        // Watch's `--timeout` firing: 408, empty body.
        "/echo/timeout" => return StatusCode::REQUEST_TIMEOUT.into_response(),
        "/echo/hang" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return StatusCode::OK.into_response();
        }
        _ => {}
    }

    let method = request.method().to_string();
    let query = request.uri().query().map(str::to_owned);
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("<binary>").to_owned()))
        .collect();
    let body = match to_bytes(request.into_body(), usize::MAX).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let status = if rest == "/echo/created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let echo =
        json!({ "method": method, "path": rest, "query": query, "body": body, "headers": headers });
    let mut response = (status, axum::Json(echo)).into_response();
    let h = response.headers_mut();
    h.insert("x-function", HeaderValue::from_static("echo"));
    h.append("set-cookie", HeaderValue::from_static("a=1; Path=/"));
    h.append("set-cookie", HeaderValue::from_static("b=2; Path=/"));
    // What watch's own CORS layer and request-id layer add.
    h.insert(
        "access-control-allow-credentials",
        HeaderValue::from_static("true"),
    );
    h.insert(
        "vary",
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    h.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_static("watch-id"),
    );
    response
}

async fn start_fake_watch() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake watch");
    let addr = listener.local_addr().expect("fake watch addr");
    let app = Router::new().fallback(fake_watch);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn start_gateway(watch: SocketAddr, timeout: Duration) -> SocketAddr {
    let mut config = Config::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway.yaml"),
        Url::parse(&format!("http://{watch}")).expect("watch url"),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.timeout = timeout;
    let gateway = Gateway::bind(&config).await.expect("gateway starts");
    let addr = gateway.local_addr().expect("gateway addr");
    tokio::spawn(gateway.serve(std::future::pending()));
    addr
}

async fn setup() -> (SocketAddr, reqwest::Client) {
    let watch = start_fake_watch().await;
    let gateway = start_gateway(watch, Duration::from_secs(30)).await;
    (gateway, client())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("test client")
}

async fn json_body(response: reqwest::Response) -> Value {
    response.json().await.expect("json body")
}

#[tokio::test]
async fn forwards_method_path_query_body_and_headers() {
    let (gateway, client) = setup().await;
    let response = client
        .put(format!("http://{gateway}/echo/a/b%20c?x=1&x=2&empty="))
        .header("authorization", "Bearer secret")
        .header("content-type", "text/plain")
        .header("x-custom", "yes")
        .header("connection", "x-hop")
        .header("x-hop", "must not travel")
        .header("proxy-authorization", "Basic nope")
        .body("hello body")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json_body(response).await;
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/echo/a/b%20c");
    assert_eq!(echo["query"], "x=1&x=2&empty=");
    assert_eq!(echo["body"], "hello body");
    let headers = &echo["headers"];
    assert_eq!(headers["authorization"], "Bearer secret");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["x-custom"], "yes");
    assert_eq!(headers["host"], gateway.to_string());
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["content-length"], "10");
    assert!(headers.get("x-hop").is_none(), "{headers}");
    assert!(headers.get("proxy-authorization").is_none(), "{headers}");
}

#[tokio::test]
async fn get_without_query_or_body() {
    let (gateway, client) = setup().await;
    let response = client
        .get(format!("http://{gateway}/items/42"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let echo = json_body(response).await;
    assert_eq!(echo["method"], "GET");
    assert_eq!(echo["path"], "/items/42");
    assert_eq!(echo["query"], Value::Null);
    assert_eq!(echo["body"], "");
}

#[tokio::test]
async fn response_passes_through_with_template_cors_instead_of_watch_cors() {
    let (gateway, client) = setup().await;
    let response = client
        .post(format!("http://{gateway}/echo/created"))
        .header("origin", "http://localhost:5173")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::CREATED);
    let headers = response.headers().clone();
    assert_eq!(headers["x-function"], "echo");
    assert_eq!(headers["content-type"], "application/json");
    let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; Path=/"]);
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(headers["access-control-expose-headers"], "x-function");
    assert!(!headers.contains_key("access-control-allow-credentials"));
    assert!(!headers.contains_key("vary"));
    assert!(!headers.contains_key("lambda-runtime-aws-request-id"));
    let request_id = headers["apigw-requestid"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    assert_eq!(json_body(response).await["method"], "POST");
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let (gateway, client) = setup().await;
    let response = client
        .get(format!("http://{gateway}/items/1"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );
}

#[tokio::test]
async fn preflight_is_answered_by_the_gateway() {
    let (gateway, client) = setup().await;
    let response = client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{gateway}/items/1"),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(
        headers["access-control-allow-methods"],
        "GET,POST,PUT,DELETE"
    );
    assert_eq!(
        headers["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert_eq!(headers["access-control-max-age"], "300");
    assert!(headers.contains_key("apigw-requestid"));
    assert!(
        !headers.contains_key("x-function"),
        "preflight reached the function"
    );
}

async fn assert_gateway_answer(response: reqwest::Response, status: StatusCode, message: &str) {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().contains_key("apigw-requestid"));
    let text = response.text().await.expect("body");
    assert_eq!(text, format!("{{\"message\":\"{message}\"}}"));
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_not_found() {
    let (gateway, client) = setup().await;
    for (method, path) in [
        (reqwest::Method::GET, "/nowhere"),
        (reqwest::Method::DELETE, "/items/1"),
        (reqwest::Method::GET, "/items"),
        (reqwest::Method::GET, "/items/1/"),
        (reqwest::Method::GET, "/echo"),
    ] {
        let response = client
            .request(method, format!("http://{gateway}{path}"))
            .send()
            .await
            .expect("request");
        assert_gateway_answer(response, StatusCode::NOT_FOUND, "Not Found").await;
    }
}

#[tokio::test]
async fn body_over_ten_megabytes_is_refused() {
    let (gateway, client) = setup().await;
    let response = client
        .post(format!("http://{gateway}/items"))
        .body(vec![b'x'; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .expect("request");
    assert_gateway_answer(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request Entity Too Large",
    )
    .await;

    let response = client
        .post(format!("http://{gateway}/items"))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn watch_timeout_is_an_endpoint_timeout() {
    let (gateway, client) = setup().await;
    let response = client
        .get(format!("http://{gateway}/echo/timeout"))
        .send()
        .await
        .expect("request");
    assert_gateway_answer(
        response,
        StatusCode::GATEWAY_TIMEOUT,
        "Endpoint request timed out",
    )
    .await;
}

#[tokio::test]
async fn own_timeout_is_an_endpoint_timeout() {
    let watch = start_fake_watch().await;
    let gateway = start_gateway(watch, Duration::from_millis(200)).await;
    let response = client()
        .get(format!("http://{gateway}/echo/hang"))
        .send()
        .await
        .expect("request");
    assert_gateway_answer(
        response,
        StatusCode::GATEWAY_TIMEOUT,
        "Endpoint request timed out",
    )
    .await;
}

#[tokio::test]
async fn missing_binary_is_a_bad_gateway() {
    let (gateway, client) = setup().await;
    let response = client
        .get(format!("http://{gateway}/ghost"))
        .send()
        .await
        .expect("request");
    assert_gateway_answer(response, StatusCode::BAD_GATEWAY, "Bad Gateway").await;
}

#[tokio::test]
async fn watch_down_is_a_bad_gateway() {
    // A port that was just free: nothing listens there.
    let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = unused.local_addr().expect("addr");
    drop(unused);
    let gateway = start_gateway(dead, Duration::from_secs(30)).await;
    let response = client()
        .get(format!("http://{gateway}/items/1"))
        .send()
        .await
        .expect("request");
    assert_gateway_answer(response, StatusCode::BAD_GATEWAY, "Bad Gateway").await;
}

#[tokio::test]
async fn start_fails_clearly_on_a_bad_template() {
    let mut config = Config::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/missing.yaml"),
        Url::parse("http://127.0.0.1:9000").expect("url"),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let error = match Gateway::bind(&config).await {
        Ok(_) => panic!("a missing template must not start"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("missing.yaml"), "{error}");
}
