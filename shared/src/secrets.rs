//! Connection strings kept in AWS Secrets Manager, not in the environment: a function's
//! configuration (`lambda:GetFunctionConfiguration`) is readable by far more principals than a
//! secret, and a URL there carries the database's password, which would make row-level
//! security a switch for anyone who can read it.
//!
//! Each of [`FROM_SECRETS`] may be given as `<NAME>_SECRET_ARN` instead: the ARN of a secret
//! whose `SecretString` is JSON with the value under `"url"`, or the fields RDS's own secrets
//! and rotation functions keep, or a Redis AUTH token's (`url_of`). `<NAME>_HOST` connects to
//! another host than the secret's: RDS Proxy's endpoint for a login whose secret is attached to
//! the database instance, the ElastiCache endpoint for a token generated before the cache
//! existed. [`Config::load`] reads them once, at cold start, through the function's own role,
//! then parses the whole configuration as if they had been set; a name set both ways is a
//! problem, as is a secret that cannot be read (named by its ARN, never by its value).
//! `SECRETS_MANAGER_ENDPOINT_URL` points the client at a local stand-in (moto); without any
//! `*_SECRET_ARN`, nothing is called and the plain variables are used (the local stack, tests).
//! The configuration records where each URL came from (`config::SecretRef`), so a database pool
//! can read its secret again when PostgreSQL refuses the password ([`read_again`]). This module,
//! not `config`, talks to AWS: `config` only reads variables (a leaf, `crate::layers`).

use crate::aws::{local_credentials, sdk_config, why};
use crate::config::{Config, ConfigError, SecretRef};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use futures_util::{Stream, StreamExt};
use redis::RedisResult;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The least time between two reads of the Redis secret: the connections a burst opens (a
/// connection and its re-authentication task subscribe one after the other) share one read.
const REDIS_REREAD_AFTER: Duration = Duration::from_secs(1);

/// The settings a secret may hold.
pub const FROM_SECRETS: [&str; 3] = ["DATABASE_URL", "SYSTEM_DATABASE_URL", "REDIS_URL"];

/// The `"url"` of the secret `source` names, as it is now, or why not (never the secret's
/// text): what a database pool reads again when PostgreSQL refuses its credentials
/// (`crate::db::Rotation`).
pub async fn read_again(source: &SecretRef) -> Result<String, String> {
    let client = client(source.endpoint.as_deref(), source.region.as_deref()).await;
    read_url(&client, &source.arn, source.host.as_deref()).await
}

impl Config {
    /// The configuration at cold start: the environment, with every `<NAME>_SECRET_ARN` of
    /// [`FROM_SECRETS`] read from Secrets Manager.
    pub async fn load() -> Result<Self, ConfigError> {
        Self::load_from(|name| std::env::var(name).ok()).await
    }

    /// [`Config::load`] from any variable source (a map in tests).
    pub async fn load_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let fetched = fetch(&FROM_SECRETS, &lookup).await?;
        let mut config = Self::from_lookup(|name| {
            fetched
                .get(name)
                .map(|(url, _)| url.clone())
                .or_else(|| lookup(name))
        })?;
        let source = |name: &str| fetched.get(name).map(|(_, source)| source.clone());
        config.database.url_source = source("DATABASE_URL");
        config.database.system_url_source = source("SYSTEM_DATABASE_URL");
        config.redis.url_source = source("REDIS_URL");
        Ok(config)
    }
}

/// Each setting of `names` whose `_SECRET_ARN` is set, read from its secret, with where it was
/// read (the same rules as [`Config::load`]'s, for a function that reads other settings: the
/// `migrate` function's owner role).
pub async fn fetch(
    names: &[&'static str],
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, (String, SecretRef)>, ConfigError> {
    let wanted: Vec<(&'static str, String)> = names
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
        let host = lookup(&format!("{name}_HOST")).map(|host| host.trim().to_owned());
        match read_url(&client, &arn, host.as_deref()).await {
            Ok(url) => {
                let source = SecretRef {
                    arn: arn.clone(),
                    endpoint: endpoint.clone(),
                    region: region.clone(),
                    host,
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

/// The URL the secret `arn` holds (on `host` instead of its own, if given), or why not (never
/// the secret's text).
async fn read_url(client: &Client, arn: &str, host: Option<&str>) -> Result<String, String> {
    let value = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|error| format!("cannot be read: {}", why(&error, "Secrets Manager")))?;
    let text = value
        .secret_string()
        .ok_or(format!("holds binary data, not {SHAPES}"))?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|_| format!("is not JSON: {SHAPES}"))?;
    url_of(&json, host).ok_or_else(|| format!("has none of the shapes: {SHAPES}"))
}

/// The shapes a secret may have.
const SHAPES: &str = "{\"url\": ...}; the RDS shape {\"engine\": \"postgres\", \"host\", \"port\", \
                      \"username\", \"password\", \"dbname\"}; or {\"engine\": \"redis\", \"host\", \
                      \"port\", \"password\"} (with the host in <NAME>_HOST if not in the secret)";

/// The URL in a secret's JSON, on `host` when given (else the secret's own):
/// - under `"url"`;
/// - built from the fields RDS's own secrets and rotation functions keep (`engine` postgres,
///   `host`, `username`, `password`; `port` 5432 and `dbname` pulso when absent, as a
///   `SecretTargetAttachment` leaves them), with `sslmode=verify-full`;
/// - for Redis (`engine` redis), an AUTH token under `password` (and a `username` for an ACL
///   user), over TLS (`rediss://`, ElastiCache's in-transit encryption), `port` 6379 by default.
///
/// A rotation changes the password in place, and the next read builds the URL with it.
fn url_of(json: &serde_json::Value, host: Option<&str>) -> Option<String> {
    let text = |name: &str| json.get(name).and_then(serde_json::Value::as_str);
    let mut url = match (json.get("url"), text("engine")) {
        (Some(url), _) => url::Url::parse(url.as_str()?).ok()?,
        (None, Some(engine)) if engine.starts_with("postgres") => {
            let mut url = server_url("postgres", host.or(text("host"))?, json, 5432)?;
            url.set_username(text("username")?).ok()?;
            url.set_password(Some(text("password")?)).ok()?;
            url.set_path(text("dbname").unwrap_or("pulso"));
            url.set_query(Some("sslmode=verify-full"));
            url
        }
        (None, Some("redis")) => {
            let mut url = server_url("rediss", host.or(text("host"))?, json, 6379)?;
            url.set_username(text("username").unwrap_or("")).ok()?;
            url.set_password(Some(text("password")?)).ok()?;
            url
        }
        _ => return None,
    };
    if let Some(host) = host {
        url.set_host(Some(host)).ok()?;
    }
    Some(url.into())
}

/// `scheme://host:port`, the port from the secret's `port` (a number or text) or `default`.
fn server_url(
    scheme: &str,
    host: &str,
    json: &serde_json::Value,
    default: u16,
) -> Option<url::Url> {
    let port = match json.get("port") {
        None => default,
        Some(port) => port
            .as_u64()
            .or_else(|| port.as_str().and_then(|port| port.parse().ok()))
            .and_then(|port| u16::try_from(port).ok())?,
    };
    url::Url::parse(&format!("{scheme}://{host}:{port}")).ok()
}

/// The credentials of a Redis URL read from a secret, as each new connection asks for them:
/// ElastiCache's AUTH token rotation (ROTATE, then SET) keeps open connections working, so what
/// needs the new token is the next connection, after a failover, a maintenance or a dropped
/// socket. Each connection the `redis` crate opens takes the first item of [`subscribe`]: the
/// first connection takes what the cold start read, a later one reads the secret again (or
/// takes what was read within [`REDIS_REREAD_AFTER`]); a secret that cannot be read leaves the
/// last credentials, logged. The stream then stays open without more items: a connection
/// takes new credentials only by reconnecting. Connections are few (one shared per
/// environment, one for the worker's blocking wait per invocation), and so are the reads.
///
/// [`subscribe`]: StreamingCredentialsProvider::subscribe
#[derive(Clone)]
pub struct RedisCredentials {
    source: SecretRef,
    /// The credentials last read, and when (`None` until the first connection, which the cold
    /// start's read serves).
    last: Arc<tokio::sync::Mutex<(BasicAuth, Option<Instant>)>>,
}

impl RedisCredentials {
    /// Credentials from `source`, starting with those of `url` (just read from it at start-up);
    /// `None` when `url` has no password (a Redis without AUTH: nothing to rotate, and no AUTH
    /// to send).
    pub fn new(source: SecretRef, url: &str) -> Option<Self> {
        let credentials = credentials_of(url);
        (!credentials.password().is_empty()).then(|| Self {
            source,
            last: Arc::new(tokio::sync::Mutex::new((credentials, None))),
        })
    }

    async fn current(&self) -> BasicAuth {
        let mut last = self.last.lock().await;
        let stale = last.1.is_some_and(|at| at.elapsed() >= REDIS_REREAD_AFTER);
        if stale || last.1.is_none() {
            last.1 = Some(Instant::now());
        }
        if stale {
            match read_again(&self.source).await {
                Ok(url) => last.0 = credentials_of(&url),
                Err(problem) => tracing::error!(
                    secret = %self.source.arn,
                    %problem,
                    "the Redis secret could not be read again; connecting with the last credentials"
                ),
            }
        }
        last.0.clone()
    }
}

impl StreamingCredentialsProvider for RedisCredentials {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let this = self.clone();
        Box::pin(
            futures_util::stream::once(async move { Ok(this.current().await) })
                .chain(futures_util::stream::pending()),
        )
    }
}

/// The user and password of a Redis URL (`rediss://:token@host` is ElastiCache's AUTH token,
/// which Redis 6 and later check as the `default` user's password).
fn credentials_of(url: &str) -> BasicAuth {
    let info = redis::IntoConnectionInfo::into_connection_info(url).ok();
    let settings = info.as_ref().map(redis::ConnectionInfo::redis_settings);
    let username = settings
        .and_then(|settings| settings.username())
        .filter(|name| !name.is_empty())
        .unwrap_or("default");
    let password = settings
        .and_then(|settings| settings.password())
        .unwrap_or_default();
    BasicAuth::new(username.to_owned(), password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr;

    #[test]
    fn a_secret_gives_its_url_or_builds_one_from_the_rds_fields() {
        assert_eq!(
            url_of(&json!({"url": "rediss://:t@cache:6379"}), None).as_deref(),
            Some("rediss://:t@cache:6379")
        );
        // What a rotation function leaves: any character in the password survives the URL.
        let password = "p@ss:w/rd?#%&=+ ñ";
        let url = url_of(
            &json!({
                "engine": "postgres",
                "host": "pulso.cluster-abc.eu-west-1.rds.amazonaws.com",
                "port": 5432,
                "username": "pulso_app",
                "password": password,
                "dbname": "pulso",
                "dbInstanceIdentifier": "pulso"
            }),
            None,
        )
        .expect("a URL");
        let options = PgConnectOptions::from_str(&url).expect("a PostgreSQL URL");
        assert_eq!(
            options.get_host(),
            "pulso.cluster-abc.eu-west-1.rds.amazonaws.com"
        );
        assert_eq!(options.get_username(), "pulso_app");
        assert_eq!(options.get_database(), Some("pulso"));
        assert!(matches!(options.get_ssl_mode(), PgSslMode::VerifyFull));
        let parsed = url::Url::parse(&url).expect("a URL");
        let decoded = percent_encoding::percent_decode_str(parsed.password().expect("a password"));
        assert_eq!(decoded.decode_utf8().expect("UTF-8"), password);
        // The port may be text, and port and database may be absent.
        let url = url_of(
            &json!({
                "engine": "postgres", "host": "db", "port": "6432",
                "username": "u", "password": "p"
            }),
            None,
        )
        .expect("a URL");
        assert_eq!(url, "postgres://u:p@db:6432/pulso?sslmode=verify-full");
        assert_eq!(
            url_of(
                &json!({"engine": "postgres", "host": "db", "username": "u", "password": "p"}),
                None
            )
            .as_deref(),
            Some("postgres://u:p@db:5432/pulso?sslmode=verify-full")
        );
        // Not a PostgreSQL secret, or a field missing: no URL.
        for other in [
            json!({"engine": "mysql", "host": "db", "username": "u", "password": "p"}),
            json!({"engine": "postgres", "host": "db", "username": "u"}),
            json!({"host": "db", "username": "u", "password": "p"}),
            json!({"url": 5}),
            json!({"password": "p"}),
            json!({"engine": "redis", "host": "cache"}),
        ] {
            assert_eq!(url_of(&other, None), None, "{other}");
        }
    }

    #[test]
    fn a_host_given_beside_the_secret_replaces_the_secrets_own() {
        // A login attached to the instance, reached through RDS Proxy.
        let attached = json!({"engine": "postgres", "host": "db.abc.rds.amazonaws.com",
                              "username": "u", "password": "p"});
        assert_eq!(
            url_of(
                &attached,
                Some("pulso.proxy-abc.eu-west-1.rds.amazonaws.com")
            )
            .as_deref(),
            Some(
                "postgres://u:p@pulso.proxy-abc.eu-west-1.rds.amazonaws.com:5432/pulso?sslmode=verify-full"
            )
        );
        // An AUTH token generated before the cache existed: no host of its own.
        let token = json!({"engine": "redis", "password": "t0k/en+"});
        assert_eq!(url_of(&token, None), None);
        let url = url_of(&token, Some("master.pulso.abc.euw1.cache.amazonaws.com")).expect("a URL");
        assert_eq!(
            url,
            "rediss://:t0k%2Fen+@master.pulso.abc.euw1.cache.amazonaws.com:6379"
        );
        assert_eq!(credentials_of(&url).password(), "t0k/en+");
        assert_eq!(credentials_of(&url).username(), "default");
        // A URL secret moves too.
        assert_eq!(
            url_of(&json!({"url": "rediss://:t@old:6380"}), Some("new")).as_deref(),
            Some("rediss://:t@new:6380")
        );
    }
}
