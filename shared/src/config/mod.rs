//! Typed settings, read once from the environment at start-up.
//!
//! Every problem is collected before failing, so an operator sees all bad variables in one
//! error instead of fixing them one deploy at a time. Secrets never appear in `Debug` output.
//! Each section reads its own variables (`DatabaseConfig::read`…) and checks each next to it.

mod access;
mod auth;
mod limits;
mod queue;
mod realtime;
mod stores;
mod vars;

pub use access::{
    AccessConfig, CALLER_CACHE_TTL_CEILING_SECONDS, Quota, QuotaError, Quotas, RateLimits,
    RouteClass,
};
pub use auth::{AuthConfig, CognitoConfig, FirstPartyTokens};
pub use limits::{
    HttpConfig, MediaConfig, StorageConfig, XRAY_MAX_BYTES_CEILING, XRAY_UPLOAD_MAX_BYTES_CEILING,
    XrayConfig,
};
pub use queue::{QueueConfig, WakeTarget};
pub use realtime::RealtimeConfig;
pub use stores::{CacheConfig, DatabaseConfig, RedisConfig, SecretRef};

use std::fmt;
use vars::Vars;

#[derive(Clone, Debug)]
pub struct Config {
    /// Deployment name (`local`, `dev`, `prod`…); the default Redis key prefix.
    pub env: String,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub cache: CacheConfig,
    pub queue: QueueConfig,
    pub auth: AuthConfig,
    /// Rate limits and how long a caller's standing is reused.
    pub access: AccessConfig,
    pub http: HttpConfig,
    pub media: MediaConfig,
    pub xrays: XrayConfig,
    pub realtime: RealtimeConfig,
}

/// A value that must not be printed: connection strings with passwords, signing secrets.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl Config {
    /// Builds the configuration from any variable source (the process environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut vars = Vars::new(&lookup);
        let env = vars.optional("PULSO_ENV").unwrap_or_else(|| "local".into());
        let database = DatabaseConfig::read(&mut vars);
        let redis = RedisConfig::read(&mut vars, &env);
        let cache = CacheConfig::read(&mut vars);
        let queue = QueueConfig::read(&mut vars);
        let auth = AuthConfig::read(&mut vars);
        let access = AccessConfig::read(&mut vars);
        let http = HttpConfig::read(&mut vars);
        let media = MediaConfig::read(&mut vars);
        let xrays = XrayConfig::read(&mut vars);
        let realtime = RealtimeConfig::read(&mut vars);
        match (vars.problems.is_empty(), auth) {
            (true, Some(auth)) => Ok(Config {
                env,
                database,
                redis,
                cache,
                queue,
                auth,
                access,
                http,
                media,
                xrays,
                realtime,
            }),
            _ => Err(ConfigError {
                problems: vars.problems,
            }),
        }
    }
}

// docs/configuration.md lists every variable the sections read; this keeps it so.
#[cfg(test)]
mod documented;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn minimal_local_configuration_uses_defaults() {
        let config = config(&[
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .expect("valid");
        assert_eq!(config.env, "local");
        assert_eq!(config.redis.key_prefix, "local");
        assert_eq!(config.database.max_connections, 2);
        assert_eq!(config.redis.timeout, Duration::from_millis(250));
        assert!(config.auth.first_party.is_some() && config.auth.cognito.is_none());
    }

    #[test]
    fn a_cognito_pool_gives_the_issuer_and_keys_of_aws_or_of_a_local_stand_in() {
        let database = ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso");
        let pool = ("COGNITO_USER_POOL_ID", "eu-west-1_AbC123");
        let client = ("COGNITO_CLIENT_ID", "4f7k2client");
        let cloud = config(&[database, pool, client]).expect("valid");
        let cognito = cloud.auth.cognito.expect("configured");
        assert!(cloud.auth.first_party.is_none());
        assert_eq!(cognito.region(), "eu-west-1");
        assert_eq!(
            cognito.issuer(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123"
        );
        assert_eq!(
            cognito.jwks_url(),
            "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
        );
        assert!(!cognito.custom_endpoint);
        let local = config(&[
            database,
            pool,
            client,
            ("COGNITO_ENDPOINT_URL", "http://127.0.0.1:4402/"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ])
        .expect("valid");
        let cognito = local.auth.cognito.expect("configured");
        assert!(local.auth.first_party.is_some(), "both issuers at once");
        // The issuer is AWS's form wherever the keys come from.
        assert!(
            cognito
                .issuer()
                .starts_with("https://cognito-idp.eu-west-1.amazonaws.com/")
        );
        assert_eq!(
            cognito.jwks_url(),
            "http://127.0.0.1:4402/eu-west-1_AbC123/.well-known/jwks.json"
        );
        for (bad, named) in [
            (vec![database, pool], "COGNITO_CLIENT_ID"),
            (
                vec![database, ("COGNITO_USER_POOL_ID", "AbC123"), client],
                "COGNITO_USER_POOL_ID",
            ),
            (
                vec![
                    database,
                    pool,
                    client,
                    ("COGNITO_ENDPOINT_URL", "http://idp.example"),
                ],
                "COGNITO_ENDPOINT_URL",
            ),
            (vec![database], "COGNITO_USER_POOL_ID"),
        ] {
            let error = config(&bad).expect_err("invalid");
            assert!(error.to_string().contains(named), "{named}: {error}");
        }
    }

    #[test]
    fn the_xray_upload_limit_fits_the_lambda_payload() {
        let base = [
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let with = |limit: &'static str| {
            let mut vars = base.to_vec();
            vars.push(("XRAY_MAX_BYTES", limit));
            config(&vars)
        };
        let defaults = config(&base).expect("valid");
        assert_eq!(defaults.xrays.max_upload_bytes, 4 * 1024 * 1024);
        assert_eq!(
            with("1048576").expect("valid").xrays.max_upload_bytes,
            1024 * 1024
        );
        for bad in ["4718593", "0", "lots"] {
            let error = with(bad).expect_err("invalid");
            assert!(error.to_string().contains("XRAY_MAX_BYTES"), "{error}");
        }
    }

    #[test]
    fn every_bad_variable_is_named_in_one_error() {
        let error = config(&[
            ("DATABASE_MAX_CONNECTIONS", "lots"),
            ("REDIS_TIMEOUT_MS", "-3"),
            ("JWT_HS256_SECRET", "short"),
        ])
        .expect_err("invalid");
        let text = error.to_string();
        for name in [
            "DATABASE_URL",
            "DATABASE_MAX_CONNECTIONS",
            "REDIS_TIMEOUT_MS",
            "JWT_HS256_SECRET",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(error.problems.len(), 4, "{text}");
    }

    #[test]
    fn a_store_on_another_host_is_reached_over_verified_tls() {
        let problems = |url: &str| {
            config(&[
                ("DATABASE_URL", url),
                ("SYSTEM_DATABASE_URL", url),
                ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
            ])
            .err()
            .map(|error| error.problems)
            .unwrap_or_default()
        };
        for refused in [
            "postgres://pulso_app:pw@db.internal:5432/pulso",
            "postgres://pulso_app:pw@db.internal:5432/pulso?sslmode=require",
            "postgres://pulso_app:pw@10.0.0.5/pulso?sslmode=verify-ca",
            "postgres://pulso_app:pw@127.0.0.1/pulso?host=db.internal",
        ] {
            let found = problems(refused);
            assert_eq!(found.len(), 2, "{refused}: {found:?}");
            assert!(found[0].starts_with("DATABASE_URL: a database on another host"));
            assert!(found[1].starts_with("SYSTEM_DATABASE_URL: a database on another host"));
        }
        let redis = |url: &str| {
            config(&[
                ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
                ("REDIS_URL", url),
                ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
            ])
            .err()
            .map(|error| error.problems)
            .unwrap_or_default()
        };
        assert_eq!(
            redis("redis://:token@cache.internal:6379"),
            vec!["REDIS_URL: a Redis on another host must be reached with rediss:// (TLS)"]
        );
        assert!(redis("rediss://:token@cache.internal:6379").is_empty());
        assert!(redis("redis://127.0.0.1:6380").is_empty());
        for accepted in [
            "postgres://pulso_app:pw@db.internal:5432/pulso?sslmode=verify-full",
            "postgresql://pulso_app:pw@pulso.proxy-abc.eu-west-1.rds.amazonaws.com/pulso?connect_timeout=5&sslmode=verify-full",
            "postgres://pulso_app@127.0.0.1:5432/pulso",
            "postgres://pulso_app@localhost/pulso",
            "postgres://pulso_app@[::1]/pulso",
            "postgres://pulso_app@/pulso?host=/var/run/postgresql",
        ] {
            assert_eq!(problems(accepted), Vec::<String>::new(), "{accepted}");
        }
    }

    #[test]
    fn secrets_are_not_printed() {
        let config = config(&[
            (
                "DATABASE_URL",
                "postgres://pulso_app:hunter2@db/pulso?sslmode=verify-full",
            ),
            (
                "JWT_HS256_SECRET",
                "0123456789abcdef0123456789abcdef-very-secret",
            ),
        ])
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"));
        assert!(!debug.contains("very-secret"));
    }

    #[test]
    fn the_websocket_endpoint_is_optional_but_checked() {
        let base = [
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let with = |name: &'static str, value: &'static str| {
            let mut vars = base.to_vec();
            vars.push((name, value));
            config(&vars)
        };
        let defaults = config(&base).expect("valid");
        assert!(defaults.realtime.ws_endpoint.is_none());
        assert_eq!(defaults.realtime.push_concurrency, 64);
        assert_eq!(defaults.realtime.push_timeout, Duration::from_secs(2));
        let cloud = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod";
        assert_eq!(
            with("WS_ENDPOINT", cloud)
                .expect("valid")
                .realtime
                .ws_endpoint
                .as_deref(),
            Some(cloud)
        );
        for (name, bad) in [
            (
                "WS_ENDPOINT",
                "wss://abc123.execute-api.eu-west-1.amazonaws.com/prod",
            ),
            ("WS_PUSH_CONCURRENCY", "0"),
            ("WS_PUSH_TIMEOUT_MS", "0"),
            ("WS_PUSH_TIMEOUT_MS", "60000"),
        ] {
            let error = with(name, bad).expect_err("invalid");
            assert!(error.to_string().contains(name), "{error}");
        }
    }

    #[test]
    fn the_system_database_url_is_optional_but_checked() {
        let base = [
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        assert!(config(&base).expect("valid").database.system_url.is_none());

        let with = |url| {
            let mut vars = base.to_vec();
            vars.push(("SYSTEM_DATABASE_URL", url));
            config(&vars)
        };
        let config = with("postgres://pulso_system:s3cret@127.0.0.1/pulso").expect("valid");
        assert_eq!(
            config.database.system_url.as_ref().map(Secret::expose),
            Some("postgres://pulso_system:s3cret@127.0.0.1/pulso")
        );
        assert!(!format!("{config:?}").contains("s3cret"));
        let error = with("mysql://nope").expect_err("invalid");
        assert!(error.to_string().contains("SYSTEM_DATABASE_URL"), "{error}");
    }

    #[test]
    fn queue_settings_have_defaults_and_named_bounds() {
        let base = [
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
            ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        let queue = config(&base).expect("valid").queue;
        assert_eq!(queue.worker_concurrency, 64);
        assert_eq!(queue.worker_memory_budget_mib, 614, "60 % of 1024 MB");
        assert_eq!(queue.worker_batch, 64);
        assert_eq!(queue.lease, Duration::from_secs(60));
        assert_eq!(queue.retry_base, Duration::from_secs(1));
        assert_eq!(queue.worker_deadline_margin, Duration::from_secs(30));

        let mut bad = base.to_vec();
        bad.extend([
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_BATCH", "5000"),
            ("JOB_LEASE_SECONDS", "soon"),
            ("JOB_RETRY_BASE_MS", "5000"),
            ("JOB_RETRY_MAX_MS", "100"),
        ]);
        let error = config(&bad).expect_err("invalid");
        let text = error.to_string();
        for name in [
            "WORKER_CONCURRENCY",
            "WORKER_BATCH",
            "JOB_LEASE_SECONDS",
            "JOB_RETRY_MAX_MS",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }
}
