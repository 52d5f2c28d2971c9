//! Typed settings, read once from the environment at start-up.
//!
//! Every problem is collected before failing, so an operator sees all bad variables in one
//! error instead of fixing them one deploy at a time. Secrets never appear in `Debug` output.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Deployment name (`local`, `dev`, `prod`…); the default Redis key prefix.
    pub env: String,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub cache: CacheConfig,
    pub queue: QueueConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub xrays: XrayConfig,
    pub realtime: RealtimeConfig,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: Secret,
    /// Lambda runs one request at a time per environment: a couple of connections is plenty,
    /// and a thousand warm environments must not exhaust PostgreSQL's connection slots.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
    /// `SYSTEM_DATABASE_URL`: the pulso_system role, which may also list every clinic and claim
    /// every clinic's jobs. Only the scheduler and the worker have it (and need it); every other
    /// function leaves it unset.
    pub system_url: Option<Secret>,
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: Secret,
    pub key_prefix: String,
    /// Per-command response timeout; the cache fails open when it passes.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Consecutive Redis failures after which the cache stops asking Redis for a while.
    pub breaker_threshold: u32,
    /// How long the cache skips Redis once the breaker opened; then it tries again.
    pub breaker_cooldown: Duration,
}

/// Freshness of each cache (before jitter) and how its counters are reported.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub patient_profile_ttl: Duration,
    pub catalog_view_ttl: Duration,
    pub dashboard_ttl: Duration,
    pub clinic_list_ttl: Duration,
    /// Write counters as CloudWatch Embedded Metric Format lines to stdout.
    pub metrics_emf: bool,
    /// How often a process adds its counters to Redis (the admin view) and the logs.
    pub metrics_flush: Duration,
}

/// The job queue and the worker that drains it (`shared::queue`).
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// How long a claimed job stays invisible to other workers without a renewal; the worker
    /// renews every third of it while a handler runs, and the reaper requeues expired leases.
    pub lease: Duration,
    /// First retry delay; doubled on every failed attempt (with jitter) up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// A job that is not finished, has not changed for this long and is unknown to Redis is
    /// pushed again by the sweep (enqueue's own push failed, or Redis lost it).
    pub sweep_grace: Duration,
    /// Jobs one worker process runs at once.
    pub worker_concurrency: usize,
    /// Most jobs claimed (and recorded) in one round trip.
    pub worker_batch: usize,
    /// The worker stops taking jobs this long before its Lambda deadline, so the ones it holds
    /// can finish: at least the p99 time of the slowest job kind.
    pub worker_deadline_margin: Duration,
}

#[derive(Clone, Debug)]
pub enum JwtVerification {
    /// Local development and tests: tokens signed with a shared secret.
    Hs256 { secret: Secret },
    /// A real identity provider (e.g. Cognito) publishing RS256 keys.
    Jwks { url: String },
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub verification: JwtVerification,
    pub issuer: String,
    pub audience: String,
}

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest JSON body accepted; larger ones get 413 before any parsing.
    pub max_body_bytes: usize,
}

/// X-ray uploads (`shared::xrays`).
#[derive(Clone, Debug)]
pub struct XrayConfig {
    /// Largest image accepted by `POST /patients/{id}/xrays`; larger ones get 413.
    pub max_upload_bytes: usize,
}

/// Real-time notifications (`shared::realtime`): where and how they are pushed.
#[derive(Clone, Debug)]
pub struct RealtimeConfig {
    /// `WS_ENDPOINT`: the WebSocket API's @connections endpoint
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway's
    /// `http://127.0.0.1:3001/{stage}`). Unset: notifications are stored, never pushed (clients
    /// read them with `GET /notifications` or a replay).
    pub ws_endpoint: Option<String>,
    /// `AWS_REGION`, which signs the @connections calls; unset, the SDK's own lookup decides.
    pub aws_region: Option<String>,
    /// One PostToConnection may take this long; a slower connection is skipped, not waited for.
    pub push_timeout: Duration,
    /// PostToConnection calls in flight at once for one notification.
    pub push_concurrency: usize,
}

/// API Gateway base64-encodes binary bodies into Lambda's 6 MB (6,291,456-byte) invocation
/// payload: 4/3 of the image plus the event's headers and context must fit. At 4.5 MiB the
/// base64 alone fills the payload, so no larger setting can ever work; the 4 MiB default
/// leaves room for the envelope.
pub const XRAY_MAX_BYTES_CEILING: usize = 4_608 * 1024;

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

/// The smallest HS256 secret accepted: RFC 7518 §3.2 asks for a key as long as the hash.
const MIN_HS256_SECRET_BYTES: usize = 32;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (the process environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut vars = Vars {
            lookup: &lookup,
            problems: Vec::new(),
        };

        let env = vars.optional("PULSO_ENV").unwrap_or_else(|| "local".into());
        let database = DatabaseConfig {
            url: Secret::new(vars.required("DATABASE_URL").unwrap_or_default()),
            max_connections: vars.parsed("DATABASE_MAX_CONNECTIONS", 2, "a number of connections"),
            acquire_timeout: vars.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 3_000),
            statement_timeout: vars.millis("DATABASE_STATEMENT_TIMEOUT_MS", 5_000),
            system_url: vars.optional("SYSTEM_DATABASE_URL").map(Secret::new),
        };
        let redis = RedisConfig {
            url: Secret::new(
                vars.optional("REDIS_URL")
                    .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
            ),
            key_prefix: vars
                .optional("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| env.clone()),
            timeout: vars.millis("REDIS_TIMEOUT_MS", 250),
            connect_timeout: vars.millis("REDIS_CONNECT_TIMEOUT_MS", 500),
            breaker_threshold: vars.parsed("REDIS_BREAKER_THRESHOLD", 5, "a number of failures"),
            breaker_cooldown: vars.millis("REDIS_BREAKER_COOLDOWN_MS", 10_000),
        };
        let cache = CacheConfig {
            patient_profile_ttl: vars.seconds("CACHE_TTL_PATIENT_PROFILE_SECONDS", 15 * 60),
            catalog_view_ttl: vars.seconds("CACHE_TTL_CATALOG_SECONDS", 60 * 60),
            dashboard_ttl: vars.seconds("CACHE_TTL_DASHBOARD_SECONDS", 5 * 60),
            clinic_list_ttl: vars.seconds("CACHE_TTL_CLINIC_LIST_SECONDS", 24 * 60 * 60),
            metrics_emf: vars.parsed("CACHE_METRICS_EMF", true, "true or false"),
            metrics_flush: vars.seconds("CACHE_METRICS_FLUSH_SECONDS", 10),
        };
        let queue = QueueConfig {
            lease: vars.seconds("JOB_LEASE_SECONDS", 60),
            retry_base: vars.millis("JOB_RETRY_BASE_MS", 1_000),
            retry_max: vars.millis("JOB_RETRY_MAX_MS", 10 * 60 * 1_000),
            sweep_grace: vars.seconds("JOB_SWEEP_GRACE_SECONDS", 30),
            worker_concurrency: vars.parsed("WORKER_CONCURRENCY", 4, "a number of jobs"),
            worker_batch: vars.parsed("WORKER_BATCH", 64, "a number of jobs"),
            worker_deadline_margin: vars.seconds("WORKER_DEADLINE_MARGIN_SECONDS", 30),
        };
        let auth = vars.auth();
        let http = HttpConfig {
            max_body_bytes: vars.parsed("MAX_BODY_BYTES", 64 * 1024, "a number of bytes"),
        };
        let xrays = XrayConfig {
            max_upload_bytes: vars.parsed("XRAY_MAX_BYTES", 4 * 1024 * 1024, "a number of bytes"),
        };
        let realtime = RealtimeConfig {
            ws_endpoint: vars
                .optional("WS_ENDPOINT")
                .map(|url| url.trim().to_owned()),
            aws_region: vars
                .optional("AWS_REGION")
                .map(|region| region.trim().to_owned()),
            push_timeout: vars.millis("WS_PUSH_TIMEOUT_MS", 2_000),
            push_concurrency: vars.parsed("WS_PUSH_CONCURRENCY", 64, "a number of calls"),
        };
        if realtime
            .ws_endpoint
            .as_deref()
            .is_some_and(|url| !url.starts_with("https://") && !url.starts_with("http://"))
        {
            vars.problems.push(
                "WS_ENDPOINT: must be an http(s):// URL, e.g. \
                 https://{api-id}.execute-api.{region}.amazonaws.com/{stage}"
                    .into(),
            );
        }
        if !(1..=XRAY_MAX_BYTES_CEILING).contains(&xrays.max_upload_bytes) {
            vars.problems.push(format!(
                "XRAY_MAX_BYTES: must be between 1 and {XRAY_MAX_BYTES_CEILING} (base64 in \
                 Lambda's 6 MB payload)"
            ));
        }

        for (name, ttl) in [
            (
                "CACHE_TTL_PATIENT_PROFILE_SECONDS",
                cache.patient_profile_ttl,
            ),
            ("CACHE_TTL_CATALOG_SECONDS", cache.catalog_view_ttl),
            ("CACHE_TTL_DASHBOARD_SECONDS", cache.dashboard_ttl),
            ("CACHE_TTL_CLINIC_LIST_SECONDS", cache.clinic_list_ttl),
            ("CACHE_METRICS_FLUSH_SECONDS", cache.metrics_flush),
        ] {
            if ttl.is_zero() {
                vars.problems.push(format!("{name}: must be at least 1"));
            }
        }
        for (name, value, range) in [
            ("JOB_LEASE_SECONDS", queue.lease.as_secs(), 1..=3_600),
            (
                "JOB_RETRY_BASE_MS",
                queue.retry_base.as_millis() as u64,
                1..=3_600_000,
            ),
            (
                "WORKER_CONCURRENCY",
                queue.worker_concurrency as u64,
                1..=1_024,
            ),
            ("WORKER_BATCH", queue.worker_batch as u64, 1..=1_000),
            (
                "WORKER_DEADLINE_MARGIN_SECONDS",
                queue.worker_deadline_margin.as_secs(),
                1..=600,
            ),
            (
                "WS_PUSH_TIMEOUT_MS",
                realtime.push_timeout.as_millis() as u64,
                1..=29_000,
            ),
            (
                "WS_PUSH_CONCURRENCY",
                realtime.push_concurrency as u64,
                1..=1_024,
            ),
        ] {
            if !range.contains(&value) {
                vars.problems.push(format!(
                    "{name}: must be between {} and {}, got {value}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if queue.retry_max < queue.retry_base {
            vars.problems
                .push("JOB_RETRY_MAX_MS: must be at least JOB_RETRY_BASE_MS".into());
        }
        if database.max_connections == 0 {
            vars.problems
                .push("DATABASE_MAX_CONNECTIONS: must be at least 1".into());
        }
        if !database.url.expose().is_empty()
            && !database.url.expose().starts_with("postgres://")
            && !database.url.expose().starts_with("postgresql://")
        {
            vars.problems
                .push("DATABASE_URL: must start with postgres:// or postgresql://".into());
        }
        if database.system_url.as_ref().is_some_and(|url| {
            !url.expose().starts_with("postgres://") && !url.expose().starts_with("postgresql://")
        }) {
            vars.problems
                .push("SYSTEM_DATABASE_URL: must start with postgres:// or postgresql://".into());
        }
        if !redis.url.expose().starts_with("redis://")
            && !redis.url.expose().starts_with("rediss://")
        {
            vars.problems
                .push("REDIS_URL: must start with redis:// or rediss://".into());
        }

        match (vars.problems.is_empty(), auth) {
            (true, Some(auth)) => Ok(Config {
                env,
                database,
                redis,
                cache,
                queue,
                auth,
                http,
                xrays,
                realtime,
            }),
            _ => Err(ConfigError {
                problems: vars.problems,
            }),
        }
    }
}

struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Vars<'_> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    fn required(&mut self, name: &str) -> Option<String> {
        let value = self.optional(name);
        if value.is_none() {
            self.problems.push(format!("{name}: missing"));
        }
        value
    }

    fn parsed<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.optional(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(value) => value,
                Err(_) => {
                    self.problems
                        .push(format!("{name}: expected {expected}, got {raw:?}"));
                    default
                }
            },
        }
    }

    fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.parsed(name, default_ms, "a number of milliseconds"))
    }

    fn seconds(&mut self, name: &str, default_seconds: u64) -> Duration {
        Duration::from_secs(self.parsed(name, default_seconds, "a number of seconds"))
    }

    fn auth(&mut self) -> Option<AuthConfig> {
        let secret = self.optional("JWT_HS256_SECRET");
        let jwks = self.optional("JWT_JWKS_URL");
        let verification = match (secret, jwks) {
            (Some(_), Some(_)) => {
                self.problems.push(
                    "JWT_HS256_SECRET, JWT_JWKS_URL: set exactly one (HS256 locally, JWKS with an identity provider)".into(),
                );
                return None;
            }
            (None, None) => {
                self.problems
                    .push("JWT_HS256_SECRET or JWT_JWKS_URL: missing (set exactly one)".into());
                return None;
            }
            (Some(secret), None) if secret.len() < MIN_HS256_SECRET_BYTES => {
                self.problems.push(format!(
                    "JWT_HS256_SECRET: must be at least {MIN_HS256_SECRET_BYTES} bytes"
                ));
                return None;
            }
            (Some(secret), None) => JwtVerification::Hs256 {
                secret: Secret::new(secret),
            },
            (None, Some(url))
                if !url.starts_with("https://") && !url.starts_with("http://127.0.0.1") =>
            {
                self.problems.push(format!(
                    "JWT_JWKS_URL: must be an https:// URL, got {url:?}"
                ));
                return None;
            }
            (None, Some(url)) => JwtVerification::Jwks { url },
        };
        Some(AuthConfig {
            verification,
            issuer: self
                .optional("JWT_ISSUER")
                .unwrap_or_else(|| "pulso-local".into()),
            audience: self
                .optional("JWT_AUDIENCE")
                .unwrap_or_else(|| "pulso".into()),
        })
    }
}

// docs/configuration.md lists every variable read above; this keeps it so.
#[cfg(test)]
mod documented;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert!(matches!(
            config.auth.verification,
            JwtVerification::Hs256 { .. }
        ));
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
    fn secrets_are_not_printed() {
        let config = config(&[
            ("DATABASE_URL", "postgres://pulso_app:hunter2@db/pulso"),
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
        assert_eq!(queue.worker_concurrency, 4);
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
