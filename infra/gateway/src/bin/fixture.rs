//! A function for the gateway's own tests, never deployed. It speaks the Lambda Runtime API
//! through `lambda_runtime`, as Pulso's functions do, and behaves according to the name it is
//! run under (`AWS_LAMBDA_FUNCTION_NAME`; the tests link it under several names). Every event
//! it receives is appended, with start and end times, to `events.jsonl` beside the link it was
//! started from, so a test can read what its functions saw.

use std::io::Write;

use base64::Engine as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    if name == "init-fail" {
        eprintln!("init-fail: refusing to start, on purpose");
        std::process::exit(3);
    }
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let name = name.clone();
        async move { handle(&name, event).await }
    }))
    .await
}

async fn handle(name: &str, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let started = now_ms();
    let deadline_ms = event.context.deadline;
    let payload = event.payload;
    let result = match name {
        "echo" => echo(&payload, deadline_ms).await,
        _ => behave(name, &payload).await,
    };
    record(name, &payload, started, deadline_ms);
    result
}

/// An HTTP API function: answers with what it received (method, path, query, body, headers, the
/// whole event) and who it is (pid, deadline, memory, TZ); some paths misbehave on purpose.
async fn echo(event: &Value, deadline_ms: u64) -> Result<Value, Error> {
    let path = event["rawPath"].as_str().unwrap_or_default();
    match path {
        "/echo/hang" => std::future::pending::<()>().await,
        "/echo/crash" => std::process::exit(7),
        "/echo/panic" => panic!("panicking on purpose"),
        "/echo/slow" => tokio::time::sleep(Duration::from_millis(500)).await,
        // Over Lambda's 6 MB response limit.
        "/echo/big" => return Ok(json!({"statusCode": 200, "body": "x".repeat(7 << 20)})),
        _ => {}
    }
    let query = event["rawQueryString"].as_str().filter(|q| !q.is_empty());
    let body = event["body"].as_str().unwrap_or_default();
    let body = if event["isBase64Encoded"] == json!(true) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(body)?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        body.to_owned()
    };
    let echo = json!({
        "method": event["requestContext"]["http"]["method"],
        "path": path,
        "query": query,
        "body": body,
        "headers": event["headers"],
        "event": event,
        "pid": std::process::id(),
        "deadline_ms": deadline_ms,
        "now_ms": now_ms(),
        "memory_mb": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default(),
        "tz": std::env::var("TZ").unwrap_or_default(),
    });
    let status = if path == "/echo/created" { 201 } else { 200 };
    Ok(json!({
        "statusCode": status,
        "headers": {
            "content-type": "application/json",
            "x-function": "echo",
            // A backend's own CORS headers: the gateway answers with the template's instead.
            "access-control-allow-credentials": "true",
            "vary": "origin",
        },
        "cookies": ["a=1; Path=/", "b=2; Path=/"],
        "body": echo.to_string(),
    }))
}

async fn behave(name: &str, event: &Value) -> Result<Value, Error> {
    match name {
        "slow" => {
            let ms = event["detail"]["ms"].as_u64().unwrap_or(200);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept_ms": ms, "pid": std::process::id() }))
        }
        "failing" => Err("failing on purpose".into()),
        "ws-connect" => Ok(ws_connect(event)),
        "ws-default" => match event["body"].as_str().unwrap_or_default() {
            "fail" => Err("ws-default failed on purpose".into()),
            body => Ok(json!({"statusCode": 200, "body": format!("echo:{body}")})),
        },
        // One-way route: whatever it answers must not reach the client.
        "ws-custom" => Ok(json!({"statusCode": 200, "body": "custom reply must not be sent"})),
        _ => Ok(json!({"statusCode": 200, "ok": true, "function": name})),
    }
}

fn ws_connect(event: &Value) -> Value {
    match event["queryStringParameters"]["token"].as_str() {
        Some("good") => json!({"statusCode": 200}),
        Some("protocol") => json!({
            "statusCode": 200,
            "headers": {"Sec-WebSocket-Protocol": "pulso.v1"},
        }),
        _ => json!({
            "statusCode": 401,
            "headers": {"content-type": "application/json"},
            "body": "{\"message\":\"Unauthorized\"}",
        }),
    }
}

fn record(name: &str, event: &Value, started: u64, deadline_ms: u64) {
    let Some(log) = events_file() else {
        return;
    };
    let line = json!({
        "function": name,
        "event": event,
        "started_ms": started,
        "ended_ms": now_ms(),
        "deadline_ms": deadline_ms,
        "pid": std::process::id(),
        "memory_mb": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default(),
        "tz": std::env::var("TZ").unwrap_or_default(),
    });
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log);
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{line}");
    }
}

/// `events.jsonl` in the folder of the link the process was started from.
fn events_file() -> Option<PathBuf> {
    let started_as = PathBuf::from(std::env::args_os().next()?);
    Some(started_as.parent()?.join("events.jsonl"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
