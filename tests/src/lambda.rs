//! A stand-in for Lambda's Invoke API (`POST /2015-03-31/functions/{name}/invocations`), which
//! moto cannot serve without Docker: the code under test calls it through the real
//! `aws-sdk-lambda` client (`LAMBDA_ENDPOINT_URL`). It records every invocation and, once a test
//! gives it a function to run, runs each in a task of its own, as Lambda would.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::net::TcpListener;

/// The worker's name on the stand-in (`WORKER_FUNCTION_NAME`).
pub const WORKER_FUNCTION: &str = "worker";

/// One invocation as the stand-in got it.
#[derive(Clone, Debug)]
pub struct Invoked {
    pub function: String,
    /// `X-Amz-Invocation-Type` (`Event` for an asynchronous one).
    pub invocation_type: Option<String>,
    pub payload: Value,
}

type Run = Box<dyn Fn(Value) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
struct Shared {
    invoked: Mutex<Vec<Invoked>>,
    run: OnceLock<Run>,
}

pub struct LambdaStandIn {
    /// `LAMBDA_ENDPOINT_URL` for it.
    pub endpoint: String,
    shared: Arc<Shared>,
}

impl LambdaStandIn {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Lambda stand-in");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared::default());
        let router = Router::new()
            .route("/2015-03-31/functions/{function}/invocations", post(invoke))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            endpoint: format!("http://{address}"),
            shared,
        }
    }

    /// The settings that make an app wake its worker here.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("WORKER_FUNCTION_NAME", WORKER_FUNCTION.to_owned()),
            ("LAMBDA_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", crate::realtime::LOCAL_REGION.to_owned()),
        ]
    }

    /// From now on each invocation also runs `run` with its payload, in a task of its own.
    pub fn run_with<F, Fut>(&self, run: F)
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let boxed: Run = Box::new(move |payload| Box::pin(run(payload)));
        if self.shared.run.set(boxed).is_err() {
            panic!("the stand-in runs one function");
        }
    }

    pub fn invocations(&self) -> Vec<Invoked> {
        self.shared.invoked.lock().expect("invocations").clone()
    }

    /// The `reason` of each invocation, in order.
    pub fn reasons(&self) -> Vec<String> {
        self.invocations()
            .iter()
            .map(|invoked| invoked.payload["reason"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

async fn invoke(
    State(shared): State<Arc<Shared>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the payload is not JSON").into_response();
    };
    let invocation_type = headers
        .get("x-amz-invocation-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    shared.invoked.lock().expect("invocations").push(Invoked {
        function,
        invocation_type: invocation_type.clone(),
        payload: payload.clone(),
    });
    if let Some(run) = shared.run.get() {
        tokio::spawn(run(payload));
    }
    match invocation_type.as_deref() {
        Some("Event") => StatusCode::ACCEPTED.into_response(),
        _ => (StatusCode::OK, "null").into_response(),
    }
}
