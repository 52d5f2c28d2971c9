//! CORS the way API Gateway HTTP API applies a `CorsConfiguration`: it answers preflights itself
//! and stamps the configured headers on responses, ignoring whatever the backend sent.

use std::fmt;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method};

/// One entry of `AllowOrigins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginRule {
    /// `*`
    Any,
    /// `https://app.example.com`, compared case-insensitively.
    Exact(String),
    /// `https://*.example.com`: any subdomain, same scheme (and port, if one is given).
    Subdomains { scheme: String, suffix: String },
    /// Any `http(s)://localhost[:port]` or `http(s)://127.0.0.1[:port]` origin: what the gateway
    /// allows when `AllowOrigins` refers to a deploy-time parameter it cannot resolve, so a local
    /// frontend on any dev port works.
    Localhost,
}

impl OriginRule {
    pub fn parse(text: &str) -> Self {
        let text = text.trim().trim_end_matches('/');
        if text == "*" {
            return Self::Any;
        }
        if let Some((scheme, rest)) = text.split_once("://")
            && let Some(suffix) = rest.strip_prefix('*')
        {
            return Self::Subdomains {
                scheme: scheme.to_ascii_lowercase(),
                suffix: suffix.to_ascii_lowercase(),
            };
        }
        Self::Exact(text.to_ascii_lowercase())
    }

    fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::Exact(exact) => *exact == origin,
            Self::Subdomains { scheme, suffix } => origin
                .split_once("://")
                .and_then(|(s, rest)| (s == scheme).then_some(rest))
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(|sub| !sub.is_empty() && !sub.contains(['/', ':'])),
            Self::Localhost => is_local_origin(&origin),
        }
    }
}

impl fmt::Display for OriginRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(exact) => f.write_str(exact),
            Self::Subdomains { scheme, suffix } => write!(f, "{scheme}://*{suffix}"),
            Self::Localhost => f.write_str("http(s)://localhost:*, http(s)://127.0.0.1:*"),
        }
    }
}

fn is_local_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return false,
        None => rest,
    };
    host == "localhost" || host == "127.0.0.1"
}

/// The template's CORS settings, already resolved to plain values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    pub allow_origins: Vec<OriginRule>,
    pub allow_headers: Vec<String>,
    pub allow_methods: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
    pub allow_credentials: bool,
}

/// A validated configuration with its header values rendered once, not per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    config: CorsConfig,
    allow_headers: Option<HeaderValue>,
    allow_methods: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

impl CorsPolicy {
    pub fn new(config: CorsConfig) -> Result<Self, CorsError> {
        // API Gateway refuses this combination at deploy time; catch it here rather than let a
        // browser discover it.
        if config.allow_credentials && config.allow_origins.contains(&OriginRule::Any) {
            return Err(CorsError::CredentialsWithAnyOrigin);
        }
        Ok(Self {
            allow_headers: joined("AllowHeaders", &config.allow_headers)?,
            allow_methods: joined("AllowMethods", &config.allow_methods)?,
            expose_headers: joined("ExposeHeaders", &config.expose_headers)?,
            max_age: config.max_age.map(HeaderValue::from),
            config,
        })
    }

    pub fn config(&self) -> &CorsConfig {
        &self.config
    }

    /// A browser preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    /// Anything else, `OPTIONS` included, goes to the routes.
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(ORIGIN)
            && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Headers of the answer to a preflight. An origin that is not allowed gets none, and the
    /// browser then blocks the request, as it would against AWS.
    pub fn preflight_headers(&self, request: &HeaderMap) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let Some(origin) = self.allowed_origin(request) else {
            return headers;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        let optional = [
            (ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
            (ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
            (ACCESS_CONTROL_MAX_AGE, &self.max_age),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                headers.insert(name, value.clone());
            }
        }
        if self.config.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        headers
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn apply(&self, request: &HeaderMap, response: &mut HeaderMap) {
        let Some(origin) = self.allowed_origin(request) else {
            return;
        };
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(expose) = &self.expose_headers {
            response.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if self.config.allow_credentials {
            response.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    fn allowed_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        let origin = request.get(ORIGIN)?;
        let text = origin.to_str().ok()?;
        let rule = self.config.allow_origins.iter().find(|r| r.allows(text))?;
        Some(match rule {
            OriginRule::Any => HeaderValue::from_static("*"),
            _ => origin.clone(),
        })
    }
}

impl fmt::Display for CorsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins: Vec<String> = self
            .config
            .allow_origins
            .iter()
            .map(ToString::to_string)
            .collect();
        write!(f, "origins {}", origins.join(", "))?;
        if !self.config.allow_methods.is_empty() {
            write!(f, "; methods {}", self.config.allow_methods.join(","))?;
        }
        if !self.config.allow_headers.is_empty() {
            write!(f, "; headers {}", self.config.allow_headers.join(","))?;
        }
        if self.config.allow_credentials {
            f.write_str("; credentials")?;
        }
        Ok(())
    }
}

fn joined(field: &'static str, values: &[String]) -> Result<Option<HeaderValue>, CorsError> {
    if values.is_empty() {
        return Ok(None);
    }
    let text = values.join(",");
    HeaderValue::from_str(&text)
        .map(Some)
        .map_err(|_| CorsError::InvalidValue { field, value: text })
}

/// Removes CORS headers a backend sent: an HTTP API with a CORS configuration ignores the
/// integration's own and answers with its configuration, so letting a function's through would
/// make a browser accept locally what AWS refuses.
pub fn strip_backend_cors(headers: &mut HeaderMap) {
    let cors_names: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors_names {
        headers.remove(name);
    }

    let kept: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| {
            !token.is_empty()
                && !token.eq_ignore_ascii_case("origin")
                && !token
                    .to_ascii_lowercase()
                    .starts_with("access-control-request-")
        })
        .map(str::to_owned)
        .collect();
    headers.remove(VARY);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join(", "))
    {
        headers.insert(VARY, value);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    #[error("AllowCredentials cannot be true when AllowOrigins contains \"*\"")]
    CredentialsWithAnyOrigin,
    #[error("{field} contains a value that is not valid in an HTTP header: {value:?}")]
    InvalidValue { field: &'static str, value: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn policy(origins: &[&str], credentials: bool) -> CorsPolicy {
        CorsPolicy::new(CorsConfig {
            allow_origins: origins.iter().map(|o| OriginRule::parse(o)).collect(),
            allow_headers: vec!["authorization".into(), "content-type".into()],
            allow_methods: vec!["GET".into(), "POST".into(), "DELETE".into()],
            expose_headers: vec!["x-request-id".into()],
            max_age: Some(600),
            allow_credentials: credentials,
        })
        .expect("valid policy")
    }

    #[test]
    fn preflight_is_options_with_origin_and_requested_method() {
        let full = request(&[
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
        ]);
        assert!(CorsPolicy::is_preflight(&Method::OPTIONS, &full));
        assert!(!CorsPolicy::is_preflight(&Method::GET, &full));
        let no_method = request(&[("origin", "http://localhost:5173")]);
        assert!(!CorsPolicy::is_preflight(&Method::OPTIONS, &no_method));
    }

    #[test]
    fn preflight_for_an_allowed_origin_carries_the_configuration() {
        let cors = policy(&["https://app.pulso.example"], true);
        let headers = cors.preflight_headers(&request(&[
            ("origin", "https://app.pulso.example"),
            ("access-control-request-method", "DELETE"),
        ]));
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.pulso.example"
        );
        assert_eq!(headers["access-control-allow-methods"], "GET,POST,DELETE");
        assert_eq!(
            headers["access-control-allow-headers"],
            "authorization,content-type"
        );
        assert_eq!(headers["access-control-max-age"], "600");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert!(!headers.contains_key("access-control-expose-headers"));
    }

    #[test]
    fn preflight_for_another_origin_gets_no_cors_headers() {
        let cors = policy(&["https://app.pulso.example"], false);
        let headers = cors.preflight_headers(&request(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]));
        assert!(headers.is_empty());
    }

    #[test]
    fn wildcard_origin_answers_star() {
        let cors = policy(&["*"], false);
        let mut response = HeaderMap::new();
        cors.apply(
            &request(&[("origin", "https://anything.example")]),
            &mut response,
        );
        assert_eq!(response["access-control-allow-origin"], "*");
        assert_eq!(response["access-control-expose-headers"], "x-request-id");
        assert!(!response.contains_key("access-control-allow-credentials"));
    }

    #[test]
    fn no_origin_header_means_no_cors_headers() {
        let cors = policy(&["*"], false);
        let mut response = HeaderMap::new();
        cors.apply(&HeaderMap::new(), &mut response);
        assert!(response.is_empty());
    }

    #[test]
    fn credentials_with_any_origin_is_refused() {
        let config = CorsConfig {
            allow_origins: vec![OriginRule::Any],
            allow_credentials: true,
            ..CorsConfig::default()
        };
        assert!(matches!(
            CorsPolicy::new(config),
            Err(CorsError::CredentialsWithAnyOrigin)
        ));
    }

    #[test]
    fn localhost_rule_accepts_local_dev_origins_only() {
        let rule = OriginRule::Localhost;
        for ok in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "https://localhost",
            "http://LOCALHOST:8080",
        ] {
            assert!(rule.allows(ok), "{ok}");
        }
        for bad in [
            "http://localhost.evil.example",
            "http://evil.example",
            "http://localhost:abc",
            "ftp://localhost:21",
            "http://127.0.0.1.nip.io",
            "null",
        ] {
            assert!(!rule.allows(bad), "{bad}");
        }
    }

    #[test]
    fn subdomain_and_exact_rules() {
        let sub = OriginRule::parse("https://*.pulso.example");
        assert!(sub.allows("https://clinic-1.pulso.example"));
        assert!(!sub.allows("http://clinic-1.pulso.example"));
        assert!(!sub.allows("https://pulso.example"));
        assert!(!sub.allows("https://evil.example/.pulso.example"));
        let exact = OriginRule::parse("https://App.Pulso.example/");
        assert!(exact.allows("https://app.pulso.example"));
        assert!(!exact.allows("https://app.pulso.example:8443"));
    }

    #[test]
    fn backend_cors_headers_are_removed_but_other_vary_tokens_kept() {
        let mut headers = request(&[
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-origin", "http://localhost:5173"),
            (
                "vary",
                "origin, access-control-request-method, access-control-request-headers",
            ),
            ("vary", "accept-encoding"),
            ("content-type", "application/json"),
        ]);
        strip_backend_cors(&mut headers);
        assert!(!headers.contains_key("access-control-allow-credentials"));
        assert!(!headers.contains_key("access-control-allow-origin"));
        assert_eq!(headers["vary"], "accept-encoding");
        assert_eq!(headers["content-type"], "application/json");

        let mut only_cors_vary = request(&[("vary", "Origin")]);
        strip_backend_cors(&mut only_cors_vary);
        assert!(!only_cors_vary.contains_key("vary"));
    }
}
