//! Connection strings kept in AWS Secrets Manager, not in the environment: a function's
//! configuration (`lambda:GetFunctionConfiguration`) is readable by far more principals than a
//! secret, and a URL there carries the database's password, which would make row-level
//! security a switch for anyone who can read it.
//!
//! Each of [`FROM_SECRETS`] may be given as `<NAME>_SECRET_ARN` instead: the ARN of a secret
//! whose `SecretString` is JSON with the value under `"url"` (the shape RDS and the template's
//! parameters use). [`Config::load`] reads them once, at cold start, through the function's own
//! role, then parses the whole configuration as if they had been set; a name set both ways is a
//! problem, as is a secret that cannot be read (named by its ARN, never by its value).
//! `SECRETS_MANAGER_ENDPOINT_URL` points the client at a local stand-in (moto); without any
//! `*_SECRET_ARN`, nothing is called and the plain variables are used (the local stack, tests).
//! The configuration records where each URL came from (`config::SecretRef`), so a database pool
//! can read its secret again when PostgreSQL refuses the password ([`read_again`]). This module,
//! not `config`, talks to AWS: `config` only reads variables (a leaf, `crate::layers`).

use crate::aws::{local_credentials, sdk_config};
use crate::config::{Config, ConfigError, SecretRef};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::collections::HashMap;
use std::time::Duration;

/// The settings a secret may hold.
pub const FROM_SECRETS: [&str; 3] = ["DATABASE_URL", "SYSTEM_DATABASE_URL", "REDIS_URL"];

/// The `"url"` of the secret `source` names, as it is now, or why not (never the secret's
/// text): what a database pool reads again when PostgreSQL refuses its credentials
/// (`crate::db::Rotation`).
pub async fn read_again(source: &SecretRef) -> Result<String, String> {
    let client = client(source.endpoint.as_deref(), source.region.as_deref()).await;
    read_url(&client, &source.arn).await
}

impl Config {
    /// The configuration at cold start: the environment, with every `<NAME>_SECRET_ARN` of
    /// [`FROM_SECRETS`] read from Secrets Manager.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok()).await
    }

    /// [`Config::load`] from any variable source (a map in tests).
    pub async fn load_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let fetched = fetch(&lookup).await?;
        let mut config = Self::from_lookup(|name| {
            fetched
                .get(name)
                .map(|(url, _)| url.clone())
                .or_else(|| lookup(name))
        })?;
        let source = |name: &str| fetched.get(name).map(|(_, source)| source.clone());
        config.database.url_source = source("DATABASE_URL");
        config.database.system_url_source = source("SYSTEM_DATABASE_URL");
        Ok(config)
    }
}

/// Each setting of [`FROM_SECRETS`] whose `_SECRET_ARN` is set, read from its secret, with
/// where it was read.
async fn fetch(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, (String, SecretRef)>, ConfigError> {
    let wanted: Vec<(&'static str, String)> = FROM_SECRETS
        .iter()
        .filter_map(|name| lookup(&format!("{name}_SECRET_ARN")).map(|arn| (*name, arn)))
        .collect();
    let mut fetched = HashMap::new();
    if wanted.is_empty() {
        return Ok(fetched);
    }
    let mut problems: Vec<String> = wanted
        .iter()
        .filter(|(name, _)| lookup(name).is_some())
        .map(|(name, _)| format!("{name}: set it or {name}_SECRET_ARN, not both"))
        .collect();
    let endpoint = lookup("SECRETS_MANAGER_ENDPOINT_URL");
    if endpoint.as_deref().is_some_and(|url| {
        !(url.starts_with("https://")
            || url.starts_with("http://127.0.0.1")
            || url.starts_with("http://localhost"))
    }) {
        problems.push(
            "SECRETS_MANAGER_ENDPOINT_URL: must be an https:// URL (http://127.0.0.1 or \
             localhost for a local stand-in)"
                .into(),
        );
    }
    if !problems.is_empty() {
        return Err(ConfigError { problems });
    }
    let region = lookup("AWS_REGION");
    let client = client(endpoint.as_deref(), region.as_deref()).await;
    for (name, arn) in wanted {
        match read_url(&client, &arn).await {
            Ok(url) => {
                let source = SecretRef {
                    arn: arn.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                };
                fetched.insert(name, (url, source));
            }
            Err(problem) => problems.push(format!("{name}_SECRET_ARN ({arn}): {problem}")),
        }
    }
    if problems.is_empty() {
        Ok(fetched)
    } else {
        Err(ConfigError { problems })
    }
}

/// A Secrets Manager client through the function's role, or with dummy keys at a local
/// stand-in. Bounded: with no path to the service (a VPC without an endpoint or NAT), a cold
/// start fails in seconds with the reason instead of at the function's timeout.
async fn client(endpoint: Option<&str>, region: Option<&str>) -> Client {
    let credentials = endpoint.map(|_| local_credentials());
    let sdk = sdk_config(region, credentials).await;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&sdk).timeout_config(timeouts);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

/// Why a read failed, in a line: the service's code and message, or the connection's trouble
/// (not the raw response the SDK's error context carries).
fn why<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
) -> String {
    match (error, error.code(), error.message()) {
        (SdkError::TimeoutError(_), _, _) => "no answer in time (is there a path from the \
                                              function to Secrets Manager: a VPC endpoint or a \
                                              NAT gateway?)"
            .to_owned(),
        (_, Some(code), Some(message)) => format!("{code}: {message}"),
        (_, Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    }
}

/// The `"url"` of the secret `arn`'s JSON, or why not (never the secret's text).
async fn read_url(client: &Client, arn: &str) -> Result<String, String> {
    let value = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|error| format!("cannot be read: {}", why(&error)))?;
    let text = value
        .secret_string()
        .ok_or("holds binary data, not the JSON text {\"url\": ...}")?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "is not the JSON text {\"url\": ...}".to_owned())?;
    json.get("url")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "has no text under \"url\"".into())
}
