//! `/_local/functions`: what the runtime host runs (each function's settings from the template,
//! its routes, instances and counters) and the dev-only fault trigger that makes a function
//! hang or crash on purpose, so recovery can be shown (`infra/run-local --check`) rather than
//! assumed. None of this exists in the cloud: the gateway is a development tool.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::{Value, json};

use crate::routes::RouteTable;
use crate::runtime::{Fault, FaultError, Host};

struct FunctionsApi {
    host: Arc<Host>,
    /// Route keys by function, as the template maps them.
    routes: BTreeMap<String, Vec<String>>,
}

pub fn router(host: Arc<Host>, routes: &RouteTable) -> Router {
    let mut by_function: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in routes.routes() {
        by_function
            .entry(route.function.clone())
            .or_default()
            .push(route.key());
    }
    let api = FunctionsApi {
        host,
        routes: by_function,
    };
    Router::new()
        .route("/_local/functions", get(list))
        .route("/_local/functions/{name}/fault", post(fault))
        .with_state(Arc::new(api))
}

async fn list(State(api): State<Arc<FunctionsApi>>) -> Response {
    let functions: Vec<Value> = api
        .host
        .status()
        .into_iter()
        .map(|(spec, mut status)| {
            status["name"] = json!(spec.name);
            status["resource"] = json!(spec.resource);
            status["timeout_secs"] = json!(spec.timeout.as_secs());
            status["memory_mb"] = json!(spec.memory_mb);
            status["routes"] = json!(api.routes.get(&spec.name).cloned().unwrap_or_default());
            status
        })
        .collect();
    Json(json!({
        "runtime_api": api.host.runtime_api().to_string(),
        "functions": functions,
    }))
    .into_response()
}

async fn fault(
    State(api): State<Arc<FunctionsApi>>,
    Path(name): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let kind = body
        .as_ref()
        .and_then(|Json(body)| body.get("kind"))
        .and_then(Value::as_str);
    let fault = match kind {
        Some("hang") => Fault::Hang,
        Some("crash") => Fault::Crash,
        _ => {
            return message(
                StatusCode::BAD_REQUEST,
                r#"send {"kind":"hang"} or {"kind":"crash"}"#,
            );
        }
    };
    match api.host.fault(&name, fault) {
        Ok(instances) => Json(json!({
            "function": name,
            "kind": kind,
            "instances": instances,
        }))
        .into_response(),
        Err(error @ FaultError::UnknownFunction(_)) => {
            message(StatusCode::NOT_FOUND, &error.to_string())
        }
        Err(error @ FaultError::NoInstance(_)) => message(StatusCode::CONFLICT, &error.to_string()),
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "message": text }))).into_response()
}
