//! The call that wakes the worker: Lambda `Invoke` with `InvocationType=Event` (Lambda queues
//! the event and answers 202 at once; a throttled event is retried by Lambda itself), to AWS or
//! to the local gateway's Invoke API (`LAMBDA_ENDPOINT_URL`). When and why it is called is
//! `presence.rs`'s part.

use super::presence::WakeReason;
use crate::aws::{local_credentials, sdk_config, why};
use crate::config::WakeTarget;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::timeout::TimeoutConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use std::time::Duration;
use tokio::sync::OnceCell;

/// What a woken drain is invoked with: the token that clears the wake in flight when it joins.
/// `source` tells it apart from any other event in the logs.
pub const WAKE_SOURCE: &str = "pulso.queue";

#[derive(Debug, thiserror::Error)]
#[error("invoking {function} failed: {reason}")]
pub struct WakeError {
    function: String,
    reason: String,
}

/// The worker function and a Lambda client for it, built on first use.
pub(crate) struct Waker {
    target: WakeTarget,
    client: OnceCell<Client>,
}

impl Waker {
    pub(crate) fn new(target: WakeTarget) -> Self {
        Self {
            target,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let endpoint = self.target.endpoint.as_deref();
                let credentials = endpoint.map(|_| local_credentials());
                let sdk = sdk_config(self.target.region.as_deref(), credentials).await;
                // An enqueue waits for this call: bounded well inside a request's time.
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1))
                    .operation_timeout(Duration::from_secs(3))
                    .build();
                let mut config =
                    aws_sdk_lambda::config::Builder::from(&sdk).timeout_config(timeouts);
                if let Some(endpoint) = endpoint {
                    config = config.endpoint_url(endpoint);
                }
                Client::from_conf(config.build())
            })
            .await
    }

    /// Sends the worker its wake; Lambda runs it as soon as it can.
    pub(crate) async fn invoke(&self, token: &str, reason: WakeReason) -> Result<(), WakeError> {
        let event = serde_json::json!({
            "source": WAKE_SOURCE,
            "wake": token,
            "reason": reason,
        });
        let failed = |reason: String| WakeError {
            function: self.target.function.clone(),
            reason,
        };
        let answer = self
            .client()
            .await
            .invoke()
            .function_name(&self.target.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|error| failed(why(&error, "Lambda")))?;
        if answer.status_code() != 202 {
            return Err(failed(format!(
                "answered {} instead of 202",
                answer.status_code()
            )));
        }
        Ok(())
    }
}

/// The wake token an invocation's event carries, if it is a wake (EventBridge's events and a
/// manual invocation carry none).
pub fn wake_token(event: &serde_json::Value) -> Option<&str> {
    if event.get("source").and_then(serde_json::Value::as_str) != Some(WAKE_SOURCE) {
        return None;
    }
    event.get("wake").and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wake_of_the_queue_carries_a_token() {
        let wake = serde_json::json!({"source": WAKE_SOURCE, "wake": "t1", "reason": "enqueue"});
        assert_eq!(wake_token(&wake), Some("t1"));
        let scheduled =
            serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
        assert_eq!(wake_token(&scheduled), None);
        let foreign = serde_json::json!({"source": "someone", "wake": "t1"});
        assert_eq!(wake_token(&foreign), None);
        assert_eq!(wake_token(&serde_json::json!([])), None);
    }
}
