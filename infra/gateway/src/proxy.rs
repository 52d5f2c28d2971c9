//! Forwards a routed request to its function under `cargo lambda watch`
//! (`{watch}/lambda-url/{bin}{path}?{query}`) and reads back the answer.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, EXPECT};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use reqwest::Url;

use crate::headers::{percent_decode, strip_hop_by_hop};
use crate::invoke::is_missing_function;

/// Watch tags each invocation with its own request id; API Gateway answers with
/// `apigw-requestid` instead, which the gateway sets.
const WATCH_REQUEST_ID: &str = "lambda-runtime-aws-request-id";

/// The `cargo lambda watch` server functions run under.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    base: Url,
    timeout: Duration,
}

/// A function's answer, with hop-by-hop headers already removed.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the gateway sends to a function.
#[derive(Debug)]
pub struct Forward<'a> {
    pub function: &'a str,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub client_ip: Option<IpAddr>,
}

impl Upstream {
    /// `timeout` bounds the whole exchange, body included, like API Gateway's integration timeout.
    pub fn new(base: Url, timeout: Duration) -> Result<Self, ProxyError> {
        let client = reqwest::Client::builder()
            // A function's redirect is the browser's to follow, not ours.
            .redirect(reqwest::redirect::Policy::none())
            // HTTP(S)_PROXY from the shell must not capture loopback traffic.
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(ProxyError::Client)?;
        Ok(Self {
            client,
            base,
            timeout,
        })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub async fn forward(&self, request: Forward<'_>) -> Result<UpstreamResponse, ProxyError> {
        let url = self.function_url(request.function, request.uri)?;
        let headers = forwarded_headers(request.headers, request.client_ip);
        let response = self
            .client
            .request(request.method.clone(), url)
            .headers(headers)
            .body(request.body)
            .send()
            .await
            .map_err(|error| self.classify(error))?;

        let status = response.status();
        let mut headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.classify(error))?;

        // Watch's `--timeout` answers 408 with an empty body; a function has no reason to.
        if status == StatusCode::REQUEST_TIMEOUT && body.is_empty() {
            return Err(ProxyError::WatchTimedOut);
        }
        if status == StatusCode::NOT_FOUND && is_missing_function(&body) {
            return Err(ProxyError::MissingFunction {
                function: request.function.to_owned(),
            });
        }

        strip_hop_by_hop(&mut headers);
        headers.remove(WATCH_REQUEST_ID);
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }

    /// Builds `{watch}/lambda-url/{bin}{path}?{query}`, refusing a path the URL parser would
    /// rewrite: `Url` resolves `..` (also `%2e%2e`) and turns `\` into `/`, and the function must
    /// get the path that was routed, not another one.
    fn function_url(&self, function: &str, uri: &Uri) -> Result<Url, ProxyError> {
        let base = self.base.as_str().trim_end_matches('/');
        let prefix = format!("/lambda-url/{function}");
        let mut text = format!("{base}{prefix}{}", uri.path());
        if let Some(query) = uri.query() {
            text.push('?');
            text.push_str(query);
        }
        let url = Url::parse(&text).map_err(|_| ProxyError::PathNotForwardable)?;
        let forwarded_path = url
            .path()
            .strip_prefix(self.base.path().trim_end_matches('/'))
            .and_then(|p| p.strip_prefix(prefix.as_str()));
        // Compare decoded, so a mere re-encoding (`{` becoming `%7B`) is not refused.
        match forwarded_path {
            Some(path) if percent_decode(path) == percent_decode(uri.path()) => Ok(url),
            _ => Err(ProxyError::PathNotForwardable),
        }
    }

    fn classify(&self, error: reqwest::Error) -> ProxyError {
        if error.is_connect() {
            ProxyError::Unreachable {
                url: self.base.as_str().trim_end_matches('/').to_owned(),
                source: error,
            }
        } else if error.is_timeout() {
            ProxyError::GatewayTimedOut(self.timeout)
        } else {
            ProxyError::Transport(error)
        }
    }
}

/// The client's headers minus hop-by-hop ones, plus the `x-forwarded-*` API Gateway adds.
/// `Host` is kept: API Gateway passes the client's, and lambda_http builds `req.uri()` from it.
fn forwarded_headers(incoming: &HeaderMap, client_ip: Option<IpAddr>) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    // The body is re-sent whole: its length is recomputed and no 100-continue is needed.
    headers.remove(CONTENT_LENGTH);
    headers.remove(EXPECT);
    if let Some(ip) = client_ip {
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    headers
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("cannot connect to {url}: is cargo lambda watch running on {url}?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("no answer from the function within {0:?} (--timeout-secs)")]
    GatewayTimedOut(Duration),
    #[error("cargo lambda watch gave up on the function (its --timeout fired)")]
    WatchTimedOut,
    #[error(
        "cargo lambda watch has no binary named `{function}`: check the function's Metadata.BuildProperties.Binary or CodeUri in the template"
    )]
    MissingFunction { function: String },
    #[error("the request path cannot be forwarded unchanged")]
    PathNotForwardable,
    #[error("request to cargo lambda watch failed")]
    Transport(#[source] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(base: &str) -> Upstream {
        Upstream::new(Url::parse(base).expect("url"), Duration::from_secs(1)).expect("client")
    }

    fn url_for(base: &str, function: &str, uri: &str) -> Result<String, ProxyError> {
        let uri: Uri = uri.parse().expect("uri");
        upstream(base)
            .function_url(function, &uri)
            .map(|u| u.to_string())
    }

    #[test]
    fn builds_lambda_url_with_path_and_raw_query() {
        assert_eq!(
            url_for("http://127.0.0.1:9000", "patients", "/patients/42?a=1&a=2").ok(),
            Some("http://127.0.0.1:9000/lambda-url/patients/patients/42?a=1&a=2".to_owned())
        );
        assert_eq!(
            url_for("http://127.0.0.1:9000/", "health", "/").ok(),
            Some("http://127.0.0.1:9000/lambda-url/health/".to_owned())
        );
        assert_eq!(
            url_for("http://127.0.0.1:9000", "p", "/patients/J%C3%BCrgen").ok(),
            Some("http://127.0.0.1:9000/lambda-url/p/patients/J%C3%BCrgen".to_owned())
        );
    }

    #[test]
    fn refuses_paths_the_url_parser_would_rewrite() {
        for path in [
            "/patients/../admin",
            "/patients/%2e%2e/admin",
            "/patients/./x",
        ] {
            assert!(
                matches!(
                    url_for("http://127.0.0.1:9000", "p", path),
                    Err(ProxyError::PathNotForwardable)
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn forwarded_headers_add_client_ip_and_keep_host() {
        let mut incoming = HeaderMap::new();
        incoming.insert("host", HeaderValue::from_static("127.0.0.1:3000"));
        incoming.insert("content-length", HeaderValue::from_static("3"));
        incoming.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let headers = forwarded_headers(&incoming, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(headers["host"], "127.0.0.1:3000");
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(!headers.contains_key("content-length"));
    }

    #[test]
    fn recognises_watch_missing_function_body() {
        assert!(is_missing_function(
            br#"{"title":"Missing function","detail":"that function doesn't exist"}"#
        ));
        assert!(!is_missing_function(
            br#"{"title":"Not Found","status":404}"#
        ));
        assert!(!is_missing_function(b"Missing function"));
    }
}
