//! A fake Invoke API (`POST /2015-03-31/functions/{bin}/invocations`, as `sam local
//! start-lambda` or `cargo lambda watch` serve it) with scripted functions, and a gateway in
//! front of it (`--invoke-url`), both on loopback ports of the test process. The WebSocket and
//! schedule emulations are tested this way, in-process; the runtime host that runs real
//! function processes has its own tests (gateway.rs, runtime.rs).

#![allow(dead_code)] // each test binary uses its own part of the helpers

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pulso_gateway::Gateway;
use pulso_gateway::cli::{Config, ScheduleMode};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One invocation as the fake watch received it.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub function: String,
    pub event: Value,
}

#[derive(Default)]
pub struct FakeWatch {
    invocations: Mutex<Vec<Invoked>>,
    /// The gateway's WebSocket address, for functions that call @connections.
    gateway_ws: Mutex<Option<SocketAddr>>,
    /// Status of the @connections POST `ws-connect` makes during `$connect` (token post-self).
    pub early_post: Mutex<Option<u16>>,
    running: Mutex<HashMap<String, usize>>,
    most_running: Mutex<HashMap<String, usize>>,
    /// How long `slow` takes.
    pub slow_for: Mutex<Duration>,
}

impl FakeWatch {
    pub fn invocations(&self, function: &str) -> Vec<Value> {
        self.lock_invocations()
            .iter()
            .filter(|i| i.function == function)
            .map(|i| i.event.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<Invoked> {
        self.lock_invocations().clone()
    }

    /// The most invocations of `function` that ran at the same time.
    pub fn most_concurrent(&self, function: &str) -> usize {
        self.most_running
            .lock()
            .map(|m| m.get(function).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn set_gateway_ws(&self, addr: Option<SocketAddr>) {
        if let Ok(mut slot) = self.gateway_ws.lock() {
            *slot = addr;
        }
    }

    /// Waits until `function` was invoked `count` times; the events so far.
    pub async fn wait_for(&self, function: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let events = self.invocations(function);
            if events.len() >= count {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{function} was invoked {} times, expected {count}; all: {:?}",
                events.len(),
                self.all()
                    .iter()
                    .map(|i| i.function.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock_invocations(&self) -> std::sync::MutexGuard<'_, Vec<Invoked>> {
        self.invocations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter(&self, function: &str) {
        if let (Ok(mut running), Ok(mut most)) = (self.running.lock(), self.most_running.lock()) {
            let now = running.entry(function.to_owned()).or_default();
            *now += 1;
            let best = most.entry(function.to_owned()).or_default();
            *best = (*best).max(*now);
        }
    }

    fn leave(&self, function: &str) {
        if let Ok(mut running) = self.running.lock()
            && let Some(now) = running.get_mut(function)
        {
            *now = now.saturating_sub(1);
        }
    }
}

/// Watch's answer when a handler returns `Err`: 500 and the runtime's error JSON.
fn function_error(message: &str) -> Response {
    let body = json!({
        "errorType": "&alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>",
        "errorMessage": message,
    });
    (StatusCode::INTERNAL_SERVER_ERROR, body.to_string()).into_response()
}

/// Watch answers 200 with the handler's JSON and no content-type.
fn returned(value: Value) -> Response {
    (StatusCode::OK, value.to_string()).into_response()
}

async fn invoke(
    State(watch): State<Arc<FakeWatch>>,
    Path(function): Path<String>,
    request: Request,
) -> Response {
    let Ok(body) = to_bytes(request.into_body(), usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return function_error("failed to deserialize the incoming data");
    };
    watch.lock_invocations().push(Invoked {
        function: function.clone(),
        event: event.clone(),
    });
    watch.enter(&function);
    let response = run_function(&watch, &function, &event).await;
    watch.leave(&function);
    response
}

async fn run_function(watch: &FakeWatch, function: &str, event: &Value) -> Response {
    match function {
        "ws-connect" => {
            let token = event["queryStringParameters"]["token"]
                .as_str()
                .unwrap_or("");
            match token {
                "good" => returned(json!({"statusCode": 200})),
                "protocol" => returned(json!({
                    "statusCode": 200,
                    "headers": {"Sec-WebSocket-Protocol": "pulso.v1"},
                })),
                "crash" => function_error("ws-connect failed on purpose"),
                "post-self" => {
                    let id = event["requestContext"]["connectionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let gateway = watch.gateway_ws.lock().ok().and_then(|g| *g);
                    if let Some(gateway) = gateway {
                        let url = format!(
                            "http://{gateway}/prod/@connections/{}",
                            encode_path_segment(&id)
                        );
                        let status = client()
                            .post(url)
                            .body("too early")
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                            .ok();
                        if let Ok(mut slot) = watch.early_post.lock() {
                            *slot = status;
                        }
                    }
                    returned(json!({"statusCode": 200}))
                }
                _ => returned(json!({
                    "statusCode": 401,
                    "headers": {"content-type": "application/json"},
                    "body": "{\"message\":\"Unauthorized\"}",
                })),
            }
        }
        "ws-default" => {
            let body = event["body"].as_str().unwrap_or_default();
            if body == "fail" {
                return function_error("ws-default failed on purpose");
            }
            returned(json!({"statusCode": 200, "body": format!("echo:{body}")}))
        }
        // One-way route: whatever it answers must not reach the client.
        "ws-custom" => {
            returned(json!({"statusCode": 200, "body": "custom reply must not be sent"}))
        }
        "ws-disconnect" => returned(json!({"statusCode": 200})),
        "ticker" => returned(json!({"ticked": true})),
        "slow" => {
            let pause = watch.slow_for.lock().map(|d| *d).unwrap_or_default();
            tokio::time::sleep(pause).await;
            returned(json!({"slept_ms": pause.as_millis() as u64}))
        }
        "failing" => function_error("failing on purpose"),
        "disabled" | "reports" => returned(json!({"ok": true})),
        _ => {
            // Watch's answer for an unknown binary.
            let body = json!({
                "title": "Missing function",
                "detail": "that function doesn't exist as a binary in your project",
            });
            (StatusCode::NOT_FOUND, body.to_string()).into_response()
        }
    }
}

/// Percent-encodes what an id may hold that a path segment cannot (`+`, `/`, `=`), as the SDK does.
pub fn encode_path_segment(id: &str) -> String {
    id.replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("test client")
}

pub async fn start_fake_watch() -> (SocketAddr, Arc<FakeWatch>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind fake watch");
    let addr = listener.local_addr().expect("fake watch addr");
    let watch = Arc::new(FakeWatch::default());
    let app = Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .with_state(Arc::clone(&watch));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, watch)
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A config for `fixture` in front of `watch`, on free ports, schedules off.
pub fn config(fixture_name: &str, watch: SocketAddr) -> Config {
    let mut config = Config::new(fixture(fixture_name), PathBuf::from("target/unused"));
    config.invoke_url = Some(Url::parse(&format!("http://{watch}")).expect("watch url"));
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.ws_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.schedules = ScheduleMode::Off;
    config.timeout = Duration::from_secs(10);
    config
}

/// A running gateway's addresses.
pub struct Running {
    pub http: SocketAddr,
    pub ws: Option<SocketAddr>,
    pub summary: String,
}

impl Running {
    pub fn ws(&self) -> SocketAddr {
        self.ws.expect("the fixture has a WebSocket API")
    }
}

pub async fn start_gateway(config: &Config) -> Running {
    start_gateway_until(config, std::future::pending()).await.0
}

/// A gateway that shuts down when `shutdown` completes; the handle ends when it has.
pub async fn start_gateway_until(
    config: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Running, tokio::task::JoinHandle<std::io::Result<()>>) {
    let gateway = match Gateway::bind(config).await {
        Ok(gateway) => gateway,
        Err(error) => panic!("gateway does not start: {error:?}"),
    };
    let running = Running {
        http: gateway.local_addr().expect("gateway addr"),
        ws: gateway.ws_local_addr(),
        summary: gateway.summary(),
    };
    let handle = tokio::spawn(gateway.serve(shutdown));
    (running, handle)
}
