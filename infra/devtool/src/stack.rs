//! What `smoke` and `soak` share to drive a running local stack as a client would: one HTTP
//! client with an admin token of the demo clinic, the gateway's `/_local` control endpoints
//! (functions and their counters, read by `listing`; faults; schedules) and a WebSocket ping
//! session.
//!
//! The checks only read what the gateway answers; they never look at its processes or logs, so
//! what they prove is what a browser or the frontend would see.

use crate::listing::{FunctionStatus, Schedule, parse_functions, parse_schedules};
use crate::token::{self, SigningSettings, TokenRequest};
use anyhow::{Context, bail};
use futures_util::{SinkExt, Stream, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use shared::auth::Role;
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{self, Message};

pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:4400";
/// The demo clinic (`pulso-devtool seed`); its admin passes every role check but the platform's.
const CLINIC: &str = "sonrisa";
/// The control endpoints answer from memory; slower than this, the gateway itself is stuck.
const CONTROL_WAIT: Duration = Duration::from_secs(10);
/// Waited beyond a function's own timeout: the gateway enforces that timeout, and a cold start
/// (a new instance after an idle gap, a crash or a kill) comes on top of it.
pub const GRACE: Duration = Duration::from_secs(10);
/// The longest a WebSocket handshake, or the pong after a ping, may take.
pub const PONG_WAIT: Duration = Duration::from_secs(10);
/// How long a closed WebSocket waits for the gateway's closing answer.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// How much of a body goes into a failure message.
const EXCERPT_BYTES: usize = 300;

/// A client of one running gateway, with a token for the demo clinic's admin.
pub struct Stack {
    client: reqwest::Client,
    gateway: String,
    token: String,
    ws_url: Option<String>,
}

impl Stack {
    /// Mints a token valid for at least `valid_for` (then closes `pool`, which only that needs)
    /// and builds the client.
    pub async fn connect(gateway: &str, pool: PgPool, valid_for: Duration) -> anyhow::Result<Self> {
        let request = TokenRequest {
            email: None,
            clinic: Some(CLINIC.into()),
            role: Some(Role::Admin),
            ttl_hours: i64::try_from(valid_for.as_secs() / 3600 + 1).unwrap_or(i64::MAX),
            platform_admin: false,
        };
        let token = token::issue(&pool, &request, &SigningSettings::from_env()?).await?;
        pool.close().await;
        // Loopback only: a shell's HTTP(S)_PROXY must not capture 127.0.0.1.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            client,
            gateway: gateway.trim_end_matches('/').to_owned(),
            token,
            ws_url: std::env::var("WS_URL")
                .ok()
                .filter(|url| !url.trim().is_empty()),
        })
    }

    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// `method path` through the gateway with the token, as the frontend sends it (`{}` as the
    /// body of a write, so the function gets past JSON parsing to its own validation).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        wait: Duration,
    ) -> Result<Reply, reqwest::Error> {
        let writes = [Method::POST, Method::PUT, Method::PATCH].contains(&method);
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.gateway))
            .bearer_auth(&self.token)
            .timeout(wait);
        if writes {
            request = request.json(&json!({}));
        }
        send(request).await
    }

    /// `method path` with `body` (JSON) and the token; the answer's JSON, if its status is
    /// `status`.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.gateway))
            .bearer_auth(&self.token)
            .timeout(GRACE * 3);
        if let Some(body) = body {
            request = request.json(body);
        }
        send(request)
            .await
            .with_context(|| format!("{method} {path}: no answer"))?
            .expect_json(status, &format!("{method} {path}"))
    }

    async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        wait: Duration,
    ) -> anyhow::Result<Reply> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.gateway))
            .timeout(wait);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request)
            .await
            .with_context(|| format!("{method} {path}: no answer from the gateway"))
    }

    /// `GET /_local/functions`: every function the gateway hosts, with its counters.
    pub async fn functions(&self) -> anyhow::Result<Vec<FunctionStatus>> {
        let path = "/_local/functions";
        let reply = self.control(Method::GET, path, None, CONTROL_WAIT).await?;
        parse_functions(&reply.expect_json(200, path)?)
    }

    /// `GET /_local/schedules`.
    pub async fn schedules(&self) -> anyhow::Result<Vec<Schedule>> {
        let path = "/_local/schedules";
        let reply = self.control(Method::GET, path, None, CONTROL_WAIT).await?;
        parse_schedules(&reply.expect_json(200, path)?)
    }

    /// `POST /_local/schedules/{id}/trigger`: the tick runs while this waits, up to `wait`.
    pub async fn trigger(&self, schedule: &str, wait: Duration) -> anyhow::Result<Reply> {
        let path = format!("/_local/schedules/{schedule}/trigger");
        self.control(Method::POST, &path, None, wait).await
    }

    /// `POST /_local/functions/{function}/fault`.
    pub async fn fault(&self, function: &str, fault: Fault) -> anyhow::Result<Reply> {
        let path = format!("/_local/functions/{function}/fault");
        let body = json!({ "kind": fault.as_str() });
        self.control(Method::POST, &path, Some(body), CONTROL_WAIT)
            .await
    }

    /// `WS_URL`, checked before anything slow so a missing one fails at once.
    pub fn ws_url(&self) -> anyhow::Result<&str> {
        self.ws_url.as_deref().context(
            "WS_URL is not set: infra/run-local writes it to .dev/env; run `set -a; . .dev/env; set +a` first",
        )
    }

    /// Connects to the WebSocket API with the token, sends a ping, waits for the pong, closes.
    pub async fn ws_ping(&self) -> anyhow::Result<WsPing> {
        let base = self.ws_url()?;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}token={}", self.token);
        let started = Instant::now();
        // Errors are described without the URL: it carries the token.
        let (mut socket, _) =
            tokio::time::timeout(PONG_WAIT, tokio_tungstenite::connect_async(url.as_str()))
                .await
                .with_context(|| {
                    format!("no WebSocket handshake from {base} within {PONG_WAIT:?}")
                })?
                .map_err(|error| handshake_error(base, error))?;
        socket
            .send(Message::text(r#"{"action":"ping"}"#))
            .await
            .context("sending the ping")?;
        let registered = tokio::time::timeout(PONG_WAIT, next_pong(&mut socket))
            .await
            .with_context(|| format!("no pong within {PONG_WAIT:?} of the ping"))??;
        let elapsed = started.elapsed();
        // Waits for the gateway's closing answer, after which it invokes `$disconnect`.
        let _ = socket.close(None).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
        Ok(WsPing {
            registered,
            elapsed,
        })
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
    let started = Instant::now();
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(Reply {
        status,
        body,
        elapsed: started.elapsed(),
    })
}

fn handshake_error(base: &str, error: tungstenite::Error) -> anyhow::Error {
    match error {
        tungstenite::Error::Http(response) => {
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            anyhow::anyhow!(
                "WebSocket handshake at {base} refused with {}: {}",
                response.status().as_u16(),
                excerpt(&body)
            )
        }
        other => anyhow::anyhow!("WebSocket handshake at {base} failed: {other}"),
    }
}

/// The `registered` flag of the first pong; other frames (a notification pushed meanwhile) are
/// skipped, an error frame or a close before the pong fails.
pub async fn next_pong<S>(socket: &mut S) -> anyhow::Result<bool>
where
    S: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    while let Some(message) = socket.next().await {
        let text = match message.context("reading the WebSocket")? {
            Message::Text(text) => text,
            Message::Close(frame) => bail!("the WebSocket was closed before the pong: {frame:?}"),
            _ => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
        match frame.get("type").and_then(Value::as_str) {
            Some("pong") => {
                return Ok(frame.get("registered").and_then(Value::as_bool) == Some(true));
            }
            Some("error") => bail!(
                "the ping was answered with an error frame: {}",
                excerpt(&text)
            ),
            _ => continue,
        }
    }
    bail!("the WebSocket ended before the pong")
}

/// One answer, whoever gave it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

impl Reply {
    /// API Gateway's own answers (`{"message":"Not Found"}`, `{"message":"Internal Server
    /// Error"}` for a function that timed out, …) are an object with `message` alone; the
    /// functions answer problem+json, which never is.
    pub fn is_gateway_message(&self) -> bool {
        match serde_json::from_str::<Value>(&self.body) {
            Ok(Value::Object(fields)) => {
                fields.len() == 1 && fields.get("message").is_some_and(Value::is_string)
            }
            _ => false,
        }
    }

    /// Whether a function answered (any status but the 5xx of a broken integration).
    pub fn answered_by_function(&self) -> bool {
        !matches!(self.status, 500 | 502..=504) && !self.is_gateway_message()
    }

    pub fn excerpt(&self) -> String {
        excerpt(&self.body)
    }

    fn expect_json(&self, status: u16, what: &str) -> anyhow::Result<Value> {
        if self.status != status {
            bail!(
                "{what} answered {} (expected {status}): {}",
                self.status,
                self.excerpt()
            );
        }
        serde_json::from_str(&self.body)
            .with_context(|| format!("{what} did not answer JSON: {}", self.excerpt()))
    }
}

/// The first [`EXCERPT_BYTES`] of `text` (cut at a character boundary) on one line.
pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < text.len() { "…" } else { "" };
    format!("{}{more}", text[..end].replace(['\n', '\r'], " "))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGSTOP: the next invocation hangs until the function's timeout.
    Hang,
    /// SIGKILL: the next invocation starts a new instance.
    Crash,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hang => "hang",
            Self::Crash => "crash",
        }
    }
}

#[derive(Debug)]
pub struct WsPing {
    /// The pong says the connection is registered (ws-connect stored it).
    pub registered: bool,
    /// Handshake to pong.
    pub elapsed: Duration,
}

/// `35 ms`, `45.2 s`, `2m05s`: elapsed times in the lines both commands print.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 {
        format!("{} ms", duration.as_millis())
    } else if secs < 60 {
        format!("{:.1} s", duration.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// `--name value` / `--name=value` pairs (every option of smoke and soak takes a value).
pub fn option_pairs(options: &[String], usage: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut options = options.iter();
    while let Some(flag) = options.next() {
        if !flag.starts_with("--") {
            bail!("unexpected argument {flag:?}\n{usage}");
        }
        let pair = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = options
                    .next()
                    .with_context(|| format!("{flag} needs a value\n{usage}"))?;
                (flag.clone(), value.clone())
            }
        };
        pairs.push(pair);
    }
    Ok(pairs)
}

/// A reply as the stack would have read it, for the tests of the modules that judge replies.
#[cfg(test)]
pub(crate) fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.into(),
        elapsed: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_gateways_answers_from_the_functions() {
        let problem = r#"{"type":"about:blank","title":"Not found","status":404,"detail":"x"}"#;
        assert!(reply(404, problem).answered_by_function());
        assert!(reply(401, "").answered_by_function());
        assert!(!reply(404, r#"{"message":"Not Found"}"#).answered_by_function());
        assert!(!reply(500, r#"{"message":"Internal Server Error"}"#).answered_by_function());
        assert!(!reply(503, problem).answered_by_function());
        assert!(!reply(504, "").answered_by_function());
        assert!(reply(200, r#"{"message":"hi","id":1}"#).answered_by_function());
    }

    #[test]
    fn excerpts_cut_at_a_character_boundary() {
        assert_eq!(excerpt("a\nb"), "a b");
        let long = "é".repeat(200); // 400 bytes
        let cut = excerpt(&long);
        assert!(cut.ends_with('…'));
        assert_eq!(cut.trim_end_matches('…').len(), 300);
    }

    async fn pong_of(frames: Vec<Message>) -> anyhow::Result<bool> {
        let mut stream = futures_util::stream::iter(frames.into_iter().map(Ok));
        next_pong(&mut stream).await
    }

    #[tokio::test]
    async fn reads_the_pong_past_other_frames() {
        let notification = Message::text(r#"{"type":"notification","notification":{}}"#);
        let pong = Message::text(r#"{"type":"pong","registered":true}"#);
        assert!(pong_of(vec![notification, pong]).await.unwrap());
        let stale = Message::text(r#"{"type":"pong","registered":false}"#);
        assert!(!pong_of(vec![stale]).await.unwrap());
        let error = Message::text(r#"{"type":"error","error":"bad_frame"}"#);
        assert!(pong_of(vec![error]).await.is_err());
        assert!(pong_of(vec![Message::Close(None)]).await.is_err());
        assert!(pong_of(vec![]).await.is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(35)), "35 ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
        assert_eq!(human(Duration::from_secs(3725)), "1h02m05s");
    }

    #[test]
    fn option_pairs_both_ways() {
        let args: Vec<String> = ["--idle", "5", "--gateway=http://x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let pairs = option_pairs(&args, "usage").unwrap();
        assert_eq!(pairs[0], ("--idle".into(), "5".into()));
        assert_eq!(pairs[1], ("--gateway".into(), "http://x".into()));
        assert!(option_pairs(&["--idle".to_string()], "usage").is_err());
        assert!(option_pairs(&["idle".to_string()], "usage").is_err());
    }
}
