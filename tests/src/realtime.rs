//! The real-time harness: Pulso's local gateway (`infra/gateway`, reading the real template.yaml)
//! in-process, invoking through a fake Invoke API (`--invoke-url`) whose `ws-connect`,
//! `ws-disconnect` and `ws-default` run `shared::realtime::ws` with the test's real state (the
//! same handlers the function binaries run); and that state's notifier
//! posting through the real AWS SDK to the gateway's @connections API.
//!
//! A WebSocket client connects to [`LocalGateway::url`] exactly as a browser would connect to
//! API Gateway; every event the handlers get went through the gateway's event builder and
//! `aws_lambda_events`' deserializer.

use crate::TestApp;
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::StatusCode;
use pulso_gateway::Gateway;
use pulso_gateway::cli::{Config as GatewayConfig, ScheduleMode};
use serde_json::json;
use shared::AppState;
use shared::realtime::{ManagementApi, Notifier};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// The region the SDK signs for and the dummy credentials it signs with (the gateway, like
/// `infra/run-local`'s `.dev/env`, accepts any).
pub const LOCAL_REGION: &str = "us-east-1";

/// A running gateway with Pulso's WebSocket API.
pub struct LocalGateway {
    /// Where the WebSocket API listens.
    pub ws: SocketAddr,
    /// The template's stage (`dev`, the `Stage` parameter's default).
    pub stage: String,
    /// `WS_ENDPOINT` for this gateway: `http://{ws}/{stage}`.
    pub endpoint: String,
    /// The test app's state with a notifier that posts through the SDK to this gateway.
    pub state: AppState,
    watch: Arc<FakeWatch>,
}

#[derive(Default)]
struct FakeWatch {
    state: OnceLock<AppState>,
    invocations: AtomicUsize,
}

impl LocalGateway {
    /// Starts the fake watch and the gateway on free loopback ports.
    pub async fn start(app: &TestApp) -> LocalGateway {
        let watch = Arc::new(FakeWatch::default());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake watch");
        let watch_addr = listener.local_addr().expect("fake watch address");
        let router = Router::new()
            .route("/2015-03-31/functions/{function}/invocations", post(invoke))
            .with_state(watch.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let mut config = GatewayConfig::new(template(), std::path::PathBuf::from("target/unused"));
        config.invoke_url =
            Some(reqwest::Url::parse(&format!("http://{watch_addr}")).expect("watch url"));
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.ws_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.schedules = ScheduleMode::Off;
        config.timeout = Duration::from_secs(15);
        let gateway = match Gateway::bind(&config).await {
            Ok(gateway) => gateway,
            Err(error) => panic!("the local gateway does not start: {error:?}"),
        };
        let ws = gateway
            .ws_local_addr()
            .expect("template.yaml declares a WebSocket API");
        let stage = template_stage(&config);
        tokio::spawn(gateway.serve(std::future::pending()));

        let endpoint = format!("http://{ws}/{stage}");
        let mut state = app.state.clone();
        state.notifier = sdk_notifier(&endpoint);
        // Set once, before any client can connect.
        let _ = watch.state.set(state.clone());
        LocalGateway {
            ws,
            stage,
            endpoint,
            state,
            watch,
        }
    }

    /// `ws://{ws}/{stage}?{query}`, the URL a browser connects to.
    pub fn url(&self, query: &str) -> String {
        format!("ws://{}/{}?{query}", self.ws, self.stage)
    }

    /// Invocations the fake watch has served.
    pub fn invocations(&self) -> usize {
        self.watch.invocations.load(Ordering::Relaxed)
    }
}

/// A notifier that posts through `aws-sdk-apigatewaymanagement` to `endpoint`.
pub fn sdk_notifier(endpoint: &str) -> Notifier {
    Notifier::ApiGateway(Arc::new(
        ManagementApi::new(endpoint, Some(LOCAL_REGION.to_owned()))
            .with_static_credentials("local", "local"),
    ))
}

fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

/// The stage the gateway serves, from its own `WS_URL=ws://{addr}/{stage}` line.
fn template_stage(config: &GatewayConfig) -> String {
    let lines = pulso_gateway::env_lines(config).expect("the template loads");
    lines
        .lines()
        .find_map(|line| line.strip_prefix("WS_URL="))
        .and_then(|url| url.rsplit('/').next())
        .map(str::to_owned)
        .expect("template.yaml declares a WebSocket API")
}

/// `POST /2015-03-31/functions/{function}/invocations`, as an Invoke API serves it:
/// 200 with the handler's JSON, 500 with `errorType`/`errorMessage` when the event does not
/// deserialize, 404 for an unknown binary.
async fn invoke(
    State(watch): State<Arc<FakeWatch>>,
    Path(function): Path<String>,
    body: Bytes,
) -> Response {
    watch.invocations.fetch_add(1, Ordering::Relaxed);
    let Some(state) = watch.state.get() else {
        return failure("the harness has no state yet");
    };
    let event: ApiGatewayWebsocketProxyRequest = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => {
            return failure(&format!(
                "failed to deserialize the incoming data into the function's payload type: {error}"
            ));
        }
    };
    let answer = match function.as_str() {
        "ws-connect" => shared::realtime::ws::connect(state, event).await,
        "ws-disconnect" => shared::realtime::ws::disconnect(state, event).await,
        "ws-default" => shared::realtime::ws::default(state, event).await,
        _ => {
            let body = json!({"title": "Missing function", "detail": function});
            return (StatusCode::NOT_FOUND, body.to_string()).into_response();
        }
    };
    match serde_json::to_string(&answer) {
        Ok(json) => (StatusCode::OK, json).into_response(),
        Err(error) => failure(&error.to_string()),
    }
}

fn failure(message: &str) -> Response {
    let body = json!({"errorType": "harness", "errorMessage": message});
    (StatusCode::INTERNAL_SERVER_ERROR, body.to_string()).into_response()
}
