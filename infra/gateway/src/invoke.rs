//! Invokes a function with an event, the way API Gateway's Lambda integration and EventBridge do,
//! through `cargo lambda watch`'s Invoke API (`POST {watch}/2015-03-31/functions/{bin}/invocations`).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use reqwest::Url;
use serde_json::Value;

use crate::proxy::ProxyError;

#[derive(Debug, Clone)]
pub struct Invoker {
    client: reqwest::Client,
    base: Url,
}

/// What the function did with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The handler returned; its serialized output, verbatim.
    Returned(Bytes),
    /// The handler returned `Err` or panicked: watch answers 500 with
    /// `{"errorType": …, "errorMessage": …}` (AWS would answer 200 + `X-Amz-Function-Error`).
    Failed(FunctionError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    pub status: StatusCode,
    pub body: Bytes,
}

impl FunctionError {
    /// `errorMessage` when the body has one, else the body's first characters.
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
        format!("HTTP {}: {excerpt}", self.status.as_u16())
    }
}

impl Invoker {
    pub fn new(base: Url) -> Result<Self, ProxyError> {
        let client = reqwest::Client::builder()
            // HTTP(S)_PROXY from the shell must not capture loopback traffic.
            .no_proxy()
            .build()
            .map_err(ProxyError::Client)?;
        Ok(Self { client, base })
    }

    /// Sends `event` to `function` and waits up to `timeout` for its answer.
    pub async fn invoke(
        &self,
        function: &str,
        event: &Value,
        timeout: Duration,
    ) -> Result<Invocation, ProxyError> {
        let url = self.invocation_url(function)?;
        let response = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(event.to_string())
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| self.classify(error, timeout))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.classify(error, timeout))?;
        match status {
            StatusCode::OK => Ok(Invocation::Returned(body)),
            // Watch's `--timeout` firing: 408 with an empty body.
            StatusCode::REQUEST_TIMEOUT if body.is_empty() => Err(ProxyError::WatchTimedOut),
            StatusCode::NOT_FOUND if is_missing_function(&body) => {
                Err(ProxyError::MissingFunction {
                    function: function.to_owned(),
                })
            }
            _ => Ok(Invocation::Failed(FunctionError { status, body })),
        }
    }

    fn invocation_url(&self, function: &str) -> Result<Url, ProxyError> {
        let base = self.base.as_str().trim_end_matches('/');
        // Binary names are Cargo target names: letters, digits, `-` and `_`. Anything else would
        // change the URL's meaning.
        if function.is_empty()
            || !function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ProxyError::PathNotForwardable);
        }
        Url::parse(&format!(
            "{base}/2015-03-31/functions/{function}/invocations"
        ))
        .map_err(|_| ProxyError::PathNotForwardable)
    }

    fn classify(&self, error: reqwest::Error, timeout: Duration) -> ProxyError {
        if error.is_connect() {
            ProxyError::Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_owned(),
                source: error,
            }
        } else if error.is_timeout() {
            ProxyError::GatewayTimedOut(timeout)
        } else {
            ProxyError::Transport(error)
        }
    }
}

/// Watch's own 404 for an unknown binary: `{"title":"Missing function","detail":...}`.
pub(crate) fn is_missing_function(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|json| json.get("title").and_then(|t| t.as_str()) == Some("Missing function"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_url_and_names() {
        let invoker = Invoker::new(Url::parse("http://127.0.0.1:9000/").expect("url")).expect("ok");
        assert_eq!(
            invoker
                .invocation_url("ws-connect")
                .map(|u| u.to_string())
                .ok(),
            Some("http://127.0.0.1:9000/2015-03-31/functions/ws-connect/invocations".to_owned())
        );
        for bad in ["", "../x", "a/b", "a?b"] {
            assert!(invoker.invocation_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn function_error_message() {
        let error = FunctionError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Bytes::from_static(br#"{"errorType":"x","errorMessage":"boom\n"}"#),
        };
        assert_eq!(error.message(), "boom");
        let error = FunctionError {
            status: StatusCode::BAD_GATEWAY,
            body: Bytes::from_static(b"plain"),
        };
        assert_eq!(error.message(), "HTTP 502: plain");
    }
}
