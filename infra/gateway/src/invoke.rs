//! Invokes a function with an event, the way API Gateway's Lambda integration and EventBridge
//! do: synchronously, either through the gateway's own runtime host (`crate::runtime`, which
//! runs the function's process) or through an external Invoke API
//! (`POST {url}/2015-03-31/functions/{name}/invocations`, as `sam local start-lambda` and
//! `cargo lambda watch` serve it, and as tests serve in-process functions).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use reqwest::Url;
use serde_json::Value;

use crate::runtime::pool::Outcome;
use crate::runtime::{Host, HostError, PAYLOAD_LIMIT};

#[derive(Clone)]
pub enum Invoker {
    Host(Arc<Host>),
    Remote(InvokeApi),
}

/// An external Invoke API endpoint.
#[derive(Debug, Clone)]
pub struct InvokeApi {
    client: reqwest::Client,
    base: Url,
}

/// Why an invocation got no outcome from the function.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("no function named `{0}`")]
    UnknownFunction(String),
    #[error("the event is {0} bytes; Lambda accepts at most {PAYLOAD_LIMIT}")]
    PayloadTooLarge(usize),
    #[error("no answer from the function within {0:?}")]
    TimedOut(Duration),
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("cannot reach the Invoke API at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the request to the Invoke API failed")]
    Transport(#[source] reqwest::Error),
}

impl From<HostError> for InvokeError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::UnknownFunction(name) => Self::UnknownFunction(name),
            HostError::PayloadTooLarge(size) => Self::PayloadTooLarge(size),
            HostError::TimedOut(wait) => Self::TimedOut(wait),
            HostError::ShuttingDown => Self::ShuttingDown,
        }
    }
}

/// What the function did with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The handler returned; its serialized output, verbatim.
    Returned(Bytes),
    /// The handler returned `Err` or panicked, or the instance timed out or died: the Invoke
    /// API's `{"errorType": …, "errorMessage": …}`.
    Failed(FunctionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub body: Bytes,
}

impl FunctionError {
    /// `errorMessage` when the body has one (the host's own errors say what happened there,
    /// e.g. "Task timed out after 10.00 seconds"), else the body's first characters.
    pub fn message(&self) -> String {
        let parsed = serde_json::from_slice::<Value>(&self.body).ok();
        if let Some(message) = parsed
            .as_ref()
            .and_then(|json| json.get("errorMessage"))
            .and_then(Value::as_str)
        {
            return message.trim().to_owned();
        }
        let text = String::from_utf8_lossy(&self.body);
        let mut excerpt: String = text.chars().take(200).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        excerpt
    }
}

impl Invoker {
    /// Sends `event` to `function` and waits up to `wait` for its answer.
    pub async fn invoke(
        &self,
        function: &str,
        event: &Value,
        wait: Duration,
    ) -> Result<Invocation, InvokeError> {
        let event = Bytes::from(event.to_string());
        match self {
            Self::Host(host) => Ok(match host.invoke(function, event, wait).await? {
                Outcome::Returned(output) => Invocation::Returned(output),
                Outcome::Failed(body) => Invocation::Failed(FunctionError { body }),
            }),
            Self::Remote(api) => api.invoke(function, event, wait).await,
        }
    }
}

impl InvokeApi {
    pub fn new(base: Url) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // HTTP(S)_PROXY from the shell must not capture loopback traffic.
            .no_proxy()
            .build()?;
        Ok(Self { client, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    async fn invoke(
        &self,
        function: &str,
        event: Bytes,
        wait: Duration,
    ) -> Result<Invocation, InvokeError> {
        let url = self.invocation_url(function)?;
        let response = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(event)
            .timeout(wait)
            .send()
            .await
            .map_err(|error| self.classify(error, wait))?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response
            .bytes()
            .await
            .map_err(|error| self.classify(error, wait))?;
        match status {
            StatusCode::OK if !function_error => Ok(Invocation::Returned(body)),
            // `cargo lambda watch --timeout` firing: 408 with an empty body.
            StatusCode::REQUEST_TIMEOUT if body.is_empty() => Err(InvokeError::TimedOut(wait)),
            StatusCode::NOT_FOUND => Err(InvokeError::UnknownFunction(function.to_owned())),
            // AWS and SAM: 200 + X-Amz-Function-Error; cargo lambda watch: 500.
            _ => Ok(Invocation::Failed(FunctionError { body })),
        }
    }

    fn invocation_url(&self, function: &str) -> Result<Url, InvokeError> {
        let base = self.base.as_str().trim_end_matches('/');
        // Binary names are Cargo target names: letters, digits, `-` and `_`. Anything else would
        // change the URL's meaning.
        let plain = !function.is_empty()
            && function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let url = plain
            .then(|| {
                Url::parse(&format!(
                    "{base}/2015-03-31/functions/{function}/invocations"
                ))
                .ok()
            })
            .flatten();
        url.ok_or_else(|| InvokeError::UnknownFunction(function.to_owned()))
    }

    fn classify(&self, error: reqwest::Error, wait: Duration) -> InvokeError {
        if error.is_connect() {
            InvokeError::Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_owned(),
                source: error,
            }
        } else if error.is_timeout() {
            InvokeError::TimedOut(wait)
        } else {
            InvokeError::Transport(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_url_and_names() {
        let api = InvokeApi::new(Url::parse("http://127.0.0.1:9000/").expect("url")).expect("ok");
        assert_eq!(
            api.invocation_url("ws-connect").map(|u| u.to_string()).ok(),
            Some("http://127.0.0.1:9000/2015-03-31/functions/ws-connect/invocations".to_owned())
        );
        for bad in ["", "../x", "a/b", "a?b"] {
            assert!(api.invocation_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn function_error_message() {
        let error = FunctionError {
            body: Bytes::from_static(br#"{"errorType":"x","errorMessage":"boom\n"}"#),
        };
        assert_eq!(error.message(), "boom");
        let error = FunctionError {
            body: Bytes::from_static(br#"{"errorMessage":"boom"}"#),
        };
        assert_eq!(error.message(), "boom");
        let error = FunctionError {
            body: Bytes::from_static(b"plain"),
        };
        assert_eq!(error.message(), "plain");
    }
}
