//! The notifier port: posts one message to one WebSocket connection, or closes it. Two
//! implementations: API Gateway's Management API (`PostToConnection`, `DeleteConnection`; the
//! cloud's endpoint or the local gateway's) and an in-memory recorder for tests. Without `WS_ENDPOINT` it is off:
//! notifications are stored and read from the inbox, never pushed.

use crate::config::RealtimeConfig;
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::Credentials;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, SdkError};
use aws_sdk_apigatewaymanagement::primitives::Blob;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::OnceCell;

/// What one post did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostOutcome {
    Delivered,
    /// 410 GoneException: the connection is closed; remove it from the registry.
    Gone,
    /// Anything else (throttled, forbidden, too large, unreachable): reported, not retried here.
    Failed(String),
}

#[derive(Clone)]
pub enum Notifier {
    Off,
    ApiGateway(Arc<ManagementApi>),
    Recorder(Arc<Recorder>),
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notifier::Off => f.write_str("Notifier::Off"),
            Notifier::ApiGateway(api) => write!(f, "Notifier::ApiGateway({})", api.endpoint),
            Notifier::Recorder(_) => f.write_str("Notifier::Recorder"),
        }
    }
}

impl Notifier {
    /// The API Gateway notifier when `WS_ENDPOINT` is set, else off. Builds nothing yet: the SDK
    /// client is made on the first push and reused for the life of the Lambda environment.
    pub fn from_config(config: &RealtimeConfig) -> Self {
        match &config.ws_endpoint {
            Some(endpoint) => Notifier::ApiGateway(Arc::new(ManagementApi::new(
                endpoint.clone(),
                config.aws_region.clone(),
            ))),
            None => Notifier::Off,
        }
    }

    /// A recorder, and the handle a test reads it through.
    pub fn recorder() -> (Self, Arc<Recorder>) {
        let recorder = Arc::new(Recorder::default());
        (Notifier::Recorder(recorder.clone()), recorder)
    }

    pub fn is_off(&self) -> bool {
        matches!(self, Notifier::Off)
    }

    pub async fn post(&self, connection_id: &str, payload: &[u8]) -> PostOutcome {
        match self {
            Notifier::Off => PostOutcome::Failed("push is off (WS_ENDPOINT is not set)".into()),
            Notifier::ApiGateway(api) => api.post(connection_id, payload).await,
            Notifier::Recorder(recorder) => recorder.post(connection_id, payload).await,
        }
    }

    /// Closes the connection (`DeleteConnection`): `Delivered` once API Gateway took the close.
    pub async fn delete(&self, connection_id: &str) -> PostOutcome {
        match self {
            Notifier::Off => PostOutcome::Failed("push is off (WS_ENDPOINT is not set)".into()),
            Notifier::ApiGateway(api) => api.delete(connection_id).await,
            Notifier::Recorder(recorder) => recorder.delete(connection_id).await,
        }
    }
}

/// `PostToConnection` through `aws-sdk-apigatewaymanagement`.
pub struct ManagementApi {
    endpoint: String,
    region: Option<String>,
    credentials: Option<Credentials>,
    client: OnceCell<Client>,
}

impl ManagementApi {
    /// `endpoint`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` in the cloud,
    /// the local gateway's `http://127.0.0.1:4401/{stage}` in development. `region`: unset, the
    /// SDK's own lookup decides (Lambda sets `AWS_REGION`). Credentials come from the SDK's
    /// default chain (the function's role on Lambda; `.dev/env`'s dummy keys locally).
    pub fn new(endpoint: impl Into<String>, region: Option<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            region,
            credentials: None,
            client: OnceCell::new(),
        }
    }

    /// Signs with these credentials instead of the default chain's (the local gateway accepts
    /// any signature; tests cannot set process-wide environment variables safely).
    pub fn with_static_credentials(mut self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.credentials = Some(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "pulso-static",
        ));
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let sdk =
                    crate::aws::sdk_config(self.region.as_deref(), self.credentials.clone()).await;
                let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
                    .endpoint_url(&self.endpoint)
                    .build();
                Client::from_conf(config)
            })
            .await
    }

    pub async fn post(&self, connection_id: &str, payload: &[u8]) -> PostOutcome {
        let sent = self
            .client()
            .await
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload))
            .send()
            .await;
        match sent {
            Ok(_) => PostOutcome::Delivered,
            // The SDK names the error from `x-amzn-ErrorType`, not from the status: a bare 410
            // would be `Unhandled`. API Gateway (and the local gateway) send the header.
            Err(SdkError::ServiceError(error)) if error.err().is_gone_exception() => {
                PostOutcome::Gone
            }
            Err(error) => PostOutcome::Failed(DisplayErrorContext(&error).to_string()),
        }
    }

    /// `DeleteConnection`: API Gateway closes the socket (with its own close code) and then
    /// invokes `$disconnect`.
    pub async fn delete(&self, connection_id: &str) -> PostOutcome {
        let deleted = self
            .client()
            .await
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await;
        match deleted {
            Ok(_) => PostOutcome::Delivered,
            Err(SdkError::ServiceError(error)) if error.err().is_gone_exception() => {
                PostOutcome::Gone
            }
            Err(error) => PostOutcome::Failed(DisplayErrorContext(&error).to_string()),
        }
    }
}

/// An in-memory notifier: records what was posted where; connections can be made gone or slow.
#[derive(Debug, Default)]
pub struct Recorder {
    sent: Mutex<Vec<(String, Vec<u8>)>>,
    deleted: Mutex<Vec<String>>,
    gone: Mutex<HashSet<String>>,
    delays: Mutex<HashMap<String, Duration>>,
}

impl Recorder {
    /// Every post so far: (connection id, payload).
    pub fn sent(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.sent).clone()
    }

    /// The payloads posted to one connection, as JSON.
    pub fn sent_to(&self, connection_id: &str) -> Vec<serde_json::Value> {
        lock(&self.sent)
            .iter()
            .filter(|(id, _)| id == connection_id)
            .filter_map(|(_, payload)| serde_json::from_slice(payload).ok())
            .collect()
    }

    /// The connections closed so far, in order.
    pub fn deleted(&self) -> Vec<String> {
        lock(&self.deleted).clone()
    }

    /// Posts to this connection get 410 Gone from now on.
    pub fn mark_gone(&self, connection_id: &str) {
        lock(&self.gone).insert(connection_id.to_owned());
    }

    /// Posts to (and the close of) this connection take this long.
    pub fn delay(&self, connection_id: &str, delay: Duration) {
        lock(&self.delays).insert(connection_id.to_owned(), delay);
    }

    async fn post(&self, connection_id: &str, payload: &[u8]) -> PostOutcome {
        let delay = lock(&self.delays).get(connection_id).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if lock(&self.gone).contains(connection_id) {
            return PostOutcome::Gone;
        }
        lock(&self.sent).push((connection_id.to_owned(), payload.to_vec()));
        PostOutcome::Delivered
    }

    async fn delete(&self, connection_id: &str) -> PostOutcome {
        let delay = lock(&self.delays).get(connection_id).copied();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        if !lock(&self.gone).insert(connection_id.to_owned()) {
            return PostOutcome::Gone;
        }
        lock(&self.deleted).push(connection_id.to_owned());
        PostOutcome::Delivered
    }
}

// Every operation is one call on the collection, so a poisoned lock still holds consistent data.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
