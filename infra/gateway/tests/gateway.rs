//! End-to-end: the gateway running the fixture function (`pulso-gateway-fixture`, linked as
//! `echo`) as a process through the Runtime API, and the HTTP API in front of it, as a client
//! and the function see them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use pulso_gateway::Gateway;
use pulso_gateway::cli::Config;
use serde_json::{Value, json};

/// A folder of function binaries for one test (links to the fixture), removed at the end.
struct Functions(PathBuf);

impl Functions {
    fn new(names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("pulso-gateway-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("functions dir");
        for name in names {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pulso-gateway-fixture"), dir.join(name))
                .expect("link the fixture");
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Functions {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Running {
    addr: SocketAddr,
    _functions: Functions,
}

async fn start_gateway(timeout: Duration) -> Running {
    let functions = Functions::new(&["echo", "init-fail"]);
    let mut config = Config::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway.yaml"),
        functions.path().to_owned(),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.timeout = timeout;
    // The functions' output stays out of the test's.
    config.functions_log = Some(functions.path().join("functions.log"));
    let gateway = Gateway::bind(&config).await.expect("gateway starts");
    let addr = gateway.local_addr().expect("gateway addr");
    tokio::spawn(gateway.serve(std::future::pending()));
    Running {
        addr,
        _functions: functions,
    }
}

async fn setup() -> (Running, reqwest::Client) {
    (start_gateway(Duration::from_secs(30)).await, client())
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

async fn get(gateway: SocketAddr, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://{gateway}{path}"))
        .send()
        .await
        .expect("request")
}

/// API Gateway's answer when the function failed, timed out or died.
async fn assert_function_failed(response: reqwest::Response) {
    assert_gateway_answer(
        response,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
    )
    .await;
}

/// GET `path` and the echo's JSON; fails unless 200.
async fn echo(gateway: SocketAddr, path: &str) -> Value {
    let response = client()
        .get(format!("http://{gateway}{path}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK, "GET {path}");
    json_body(response).await
}

/// The `echo` entry of `/_local/functions`.
async fn echo_status(gateway: SocketAddr) -> Value {
    function_status(gateway, "echo").await
}

async fn function_status(gateway: SocketAddr, name: &str) -> Value {
    let listing = json_body(
        client()
            .get(format!("http://{gateway}/_local/functions"))
            .send()
            .await
            .expect("listing"),
    )
    .await;
    listing["functions"]
        .as_array()
        .and_then(|functions| functions.iter().find(|f| f["name"] == name))
        .cloned()
        .expect("the function is listed")
}

/// Until every `echo` instance is parked in `/next`, so a fault hits an idle one.
async fn wait_until_idle(gateway: SocketAddr) {
    for _ in 0..100 {
        let status = echo_status(gateway).await;
        let instances = status["instances"].as_array().cloned().unwrap_or_default();
        if !instances.is_empty() && instances.iter().all(|i| i["state"] == "idle") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("echo's instances never became idle");
}

async fn fault(gateway: SocketAddr, function: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!(
            "http://{gateway}/_local/functions/{function}/fault"
        ))
        .json(body)
        .send()
        .await
        .expect("fault request")
}

#[tokio::test]
async fn forwards_method_path_query_body_and_headers() {
    let (running, client) = setup().await;
    let gateway = running.addr;
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
    let (running, client) = setup().await;
    let gateway = running.addr;
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
async fn response_passes_through_with_template_cors_instead_of_the_backends() {
    let (running, client) = setup().await;
    let gateway = running.addr;
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
    let (running, client) = setup().await;
    let gateway = running.addr;
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
    let (running, client) = setup().await;
    let gateway = running.addr;
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
    let (running, client) = setup().await;
    let gateway = running.addr;
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
    let (running, client) = setup().await;
    let gateway = running.addr;
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
async fn a_body_lambda_cannot_take_is_refused_before_the_function() {
    let (running, client) = setup().await;
    // Under API Gateway's 10 MB, over Lambda's 6 MB event limit.
    let response = client
        .post(format!("http://{}/items", running.addr))
        .header("content-type", "text/plain")
        .body(vec![b'x'; 7 * 1024 * 1024])
        .send()
        .await
        .expect("request");
    assert_gateway_answer(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request Entity Too Large",
    )
    .await;
    assert_eq!(echo_status(running.addr).await["invocations"], 0);
}

#[tokio::test]
async fn the_function_gets_lambdas_environment_and_a_real_deadline() {
    let (running, _) = setup().await;
    let echo = echo(running.addr, "/items/7").await;
    assert_eq!(echo["memory_mb"], "512");
    assert_eq!(echo["tz"], ":UTC");
    let left =
        echo["deadline_ms"].as_i64().expect("deadline") - echo["now_ms"].as_i64().expect("now");
    assert!(
        (1..=2_000).contains(&left),
        "deadline {left} ms ahead; the template says Timeout: 2"
    );
    assert_eq!(echo["event"]["pathParameters"]["id"], "7");
    assert_eq!(echo["event"]["routeKey"], "GET /items/{id}");
}

#[tokio::test]
async fn a_hung_invocation_times_out_and_the_next_request_gets_a_new_instance() {
    let (running, _) = setup().await;
    let first = echo(running.addr, "/items/1").await["pid"].clone();
    // API Gateway's answer for a function that timed out.
    assert_function_failed(get(running.addr, "/echo/hang").await).await;
    let next = echo(running.addr, "/items/1").await["pid"].clone();
    assert_ne!(next, first, "the hung instance must have been replaced");
    let status = echo_status(running.addr).await;
    assert_eq!(status["timeouts"], 1);
    assert_eq!(status["instances"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_integration_timeout_is_an_endpoint_timeout() {
    let running = start_gateway(Duration::from_secs(1)).await;
    let response = client()
        .get(format!("http://{}/echo/hang", running.addr))
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
async fn a_crash_fails_its_invocation_and_the_next_request_is_served() {
    let (running, _) = setup().await;
    assert_function_failed(get(running.addr, "/echo/crash").await).await;
    echo(running.addr, "/items/1").await;
    let status = echo_status(running.addr).await;
    assert_eq!(status["crashes"], 1);
    assert_eq!(status["starts"], 2);
}

#[tokio::test]
async fn a_response_over_lambdas_limit_is_a_function_error() {
    let (running, _) = setup().await;
    assert_function_failed(get(running.addr, "/echo/big").await).await;
    assert_eq!(echo_status(running.addr).await["errors"], 1);
    echo(running.addr, "/items/1").await;
}

#[tokio::test]
async fn a_panic_in_the_handler_fails_the_request_but_keeps_the_instance() {
    let (running, _) = setup().await;
    let pid = echo(running.addr, "/items/1").await["pid"].clone();
    assert_function_failed(get(running.addr, "/echo/panic").await).await;
    assert_eq!(echo(running.addr, "/items/1").await["pid"], pid);
}

#[tokio::test]
async fn an_idle_instance_keeps_answering() {
    let (running, _) = setup().await;
    let pid = echo(running.addr, "/items/1").await["pid"].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(echo(running.addr, "/items/2").await["pid"], pid);
    assert_eq!(echo_status(running.addr).await["starts"], 1);
}

#[tokio::test]
async fn parallel_requests_start_more_instances_within_the_limit() {
    let (running, client) = setup().await;
    let url = format!("http://{}/echo/slow", running.addr);
    let requests = (0..6).map(|_| client.get(&url).send());
    let mut pids = std::collections::BTreeSet::new();
    for response in futures_util::future::join_all(requests).await {
        let response = response.expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        pids.insert(json_body(response).await["pid"].to_string());
    }
    assert!(
        (2..=4).contains(&pids.len()),
        "{pids:?}: --max-instances is 4"
    );
    let status = echo_status(running.addr).await;
    assert_eq!(status["max_instances"], 4);
    assert_eq!(status["invocations"], 6);
}

#[tokio::test]
async fn a_caller_that_goes_away_does_not_wedge_the_function() {
    let (running, _) = setup().await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let gone = impatient
        .get(format!("http://{}/echo/slow", running.addr))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up first");
    echo(running.addr, "/items/1").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    echo(running.addr, "/items/2").await;
}

#[tokio::test]
async fn faults_make_the_function_hang_or_crash_and_it_recovers() {
    let (running, client) = setup().await;
    let gateway = running.addr;
    let refused = fault(gateway, "echo", &json!({"kind": "crash"})).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT, "no instance yet");
    let first = echo(gateway, "/items/1").await["pid"].clone();
    wait_until_idle(gateway).await;

    let hung = fault(gateway, "echo", &json!({"kind": "hang"})).await;
    assert_eq!(hung.status(), StatusCode::OK);
    let response = client
        .get(format!("http://{gateway}/items/1"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let second = echo(gateway, "/items/1").await["pid"].clone();
    assert_ne!(second, first);

    let crashed = fault(gateway, "echo", &json!({"kind": "crash"})).await;
    assert_eq!(
        json_body(crashed).await["instances"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_ne!(echo(gateway, "/items/1").await["pid"], second);
    let status = echo_status(gateway).await;
    assert_eq!(
        (status["timeouts"].clone(), status["crashes"].clone()),
        (json!(1), json!(1))
    );

    let unknown = fault(gateway, "nobody", &json!({"kind": "crash"})).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let bad = fault(gateway, "echo", &json!({"kind": "melt"})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_function_that_dies_during_init_fails_each_request_without_a_restart_loop() {
    let (running, _) = setup().await;
    for attempt in 1..=2 {
        assert_function_failed(get(running.addr, "/broken").await).await;
        let status = function_status(running.addr, "init-fail").await;
        assert_eq!(
            status["starts"], attempt,
            "one start per invocation, no loop"
        );
        assert_eq!(status["instances"], json!([]));
    }
}

#[tokio::test]
async fn a_binary_that_was_never_built_is_a_function_error() {
    let (running, _) = setup().await;
    assert_function_failed(get(running.addr, "/ghost").await).await;
}

#[tokio::test]
async fn start_fails_clearly_on_a_bad_template() {
    let mut config = Config::new(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/missing.yaml"),
        PathBuf::from("target/debug"),
    );
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let error = match Gateway::bind(&config).await {
        Ok(_) => panic!("a missing template must not start"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("missing.yaml"), "{error}");
}

/// The real SDK's Lambda client, as `shared::queue` builds it, pointed at the gateway.
async fn lambda_client(gateway: SocketAddr) -> aws_sdk_lambda::Client {
    use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .load()
        .await;
    let config = aws_sdk_lambda::config::Builder::from(&sdk)
        .endpoint_url(format!("http://{gateway}"))
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

#[tokio::test]
async fn the_invoke_api_runs_functions_for_the_real_sdk() {
    use aws_sdk_lambda::error::ProvideErrorMetadata;
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::InvocationType;
    let gateway = start_gateway(Duration::from_secs(30)).await;
    let lambda = lambda_client(gateway.addr).await;

    // Synchronous: the function's output.
    let answer = lambda
        .invoke()
        .function_name("echo")
        .payload(Blob::new(r#"{"rawPath": "/echo/direct"}"#))
        .send()
        .await
        .expect("a synchronous invocation");
    assert_eq!(answer.status_code(), 200);
    assert_eq!(answer.function_error(), None);
    let output: Value =
        serde_json::from_slice(answer.payload().expect("output").as_ref()).expect("JSON output");
    assert_eq!(output["statusCode"], 200);

    // Asynchronous, named by its ARN: accepted at once, then run.
    let answer = lambda
        .invoke()
        .function_name("arn:aws:lambda:us-east-1:000000000000:function:echo")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(r#"{"wake": "w-1"}"#))
        .send()
        .await
        .expect("an asynchronous invocation");
    assert_eq!(answer.status_code(), 202);
    let events = gateway._functions.path().join("events.jsonl");
    let mut seen = false;
    for _ in 0..200 {
        let lines = std::fs::read_to_string(&events).unwrap_or_default();
        seen = lines
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .any(|line| line["event"]["wake"] == "w-1");
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the function never got the asynchronous event");

    // Unknown functions are refused as Lambda refuses them, before anything runs.
    for invocation_type in [InvocationType::Event, InvocationType::RequestResponse] {
        let error = lambda
            .invoke()
            .function_name("nope")
            .invocation_type(invocation_type)
            .send()
            .await
            .expect_err("no such function");
        assert_eq!(error.code(), Some("ResourceNotFoundException"), "{error:?}");
    }
}
