//! Where Pulso's state lives: the PostgreSQL and Redis settings, and the cache's freshness.

use super::Secret;
use super::vars::Vars;
use std::time::Duration;

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
    /// The secrets `url` and `system_url` were read from (`Config::load`), if they were.
    pub url_source: Option<SecretRef>,
    pub system_url_source: Option<SecretRef>,
}

/// Where a setting was read from in Secrets Manager (`crate::secrets`), to read it again.
#[derive(Clone, Debug)]
pub struct SecretRef {
    pub arn: String,
    /// `SECRETS_MANAGER_ENDPOINT_URL`, a local stand-in.
    pub endpoint: Option<String>,
    /// `AWS_REGION`.
    pub region: Option<String>,
    /// `<NAME>_HOST`: the host connected to instead of the secret's (`crate::secrets`).
    pub host: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    pub url: Secret,
    /// The secret `url` was read from (`Config::load`), if it was: each new connection takes
    /// its credentials from there (`crate::secrets::RedisCredentials`).
    pub url_source: Option<SecretRef>,
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
    pub availability_ttl: Duration,
    /// Write counters as CloudWatch Embedded Metric Format lines to stdout.
    pub metrics_emf: bool,
    /// How often a process adds its counters to Redis (the admin view) and the logs.
    pub metrics_flush: Duration,
}

fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `url` reaches PostgreSQL across a network without making sure who answers: every
/// database but one on this host (loopback, a socket) must be named with `sslmode=verify-full`,
/// or whoever sits on the path could read every clinic's rows and the password. The RDS
/// certificate authorities are built in (`crate::db`); RDS Proxy's chain to public roots.
fn unverified_remote(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false; // reported as not a PostgreSQL URL
    };
    let query = |name: &str| {
        parsed
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let host = query("host").unwrap_or_else(|| parsed.host_str().unwrap_or_default().to_owned());
    !on_this_host(&host) && query("sslmode").as_deref() != Some("verify-full")
}

/// Whether a server named `host` in a URL is on the function's own host: loopback, or a
/// socket (a path, or no host at all).
fn on_this_host(host: &str) -> bool {
    host.is_empty()
        || host.starts_with('/')
        || matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1")
}

impl DatabaseConfig {
    /// The same settings connecting as pulso_system (`SYSTEM_DATABASE_URL`, and the secret it
    /// came from), for the scheduler's and the worker's pools; `None` without one.
    pub fn as_system(&self) -> Option<Self> {
        Some(Self {
            url: self.system_url.clone()?,
            url_source: self.system_url_source.clone(),
            ..self.clone()
        })
    }

    pub(super) fn read(vars: &mut Vars) -> Self {
        let url = Secret::new(vars.required("DATABASE_URL").unwrap_or_default());
        let max_connections = vars.parsed("DATABASE_MAX_CONNECTIONS", 2, "a number of connections");
        let acquire_timeout = vars.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 3_000);
        let statement_timeout = vars.millis("DATABASE_STATEMENT_TIMEOUT_MS", 5_000);
        let system_url = vars.optional("SYSTEM_DATABASE_URL").map(Secret::new);
        vars.check(max_connections > 0, || {
            "DATABASE_MAX_CONNECTIONS: must be at least 1".into()
        });
        vars.check(
            url.expose().is_empty() || is_postgres_url(url.expose()),
            || "DATABASE_URL: must start with postgres:// or postgresql://".into(),
        );
        vars.check(
            system_url
                .as_ref()
                .is_none_or(|url| is_postgres_url(url.expose())),
            || "SYSTEM_DATABASE_URL: must start with postgres:// or postgresql://".into(),
        );
        for (name, url) in [
            ("DATABASE_URL", Some(&url)),
            ("SYSTEM_DATABASE_URL", system_url.as_ref()),
        ] {
            vars.check(
                !url.is_some_and(|url| unverified_remote(url.expose())),
                || {
                    format!(
                        "{name}: a database on another host must be reached with \
                     sslmode=verify-full (the RDS certificate authorities are built in)"
                    )
                },
            );
        }
        Self {
            url,
            max_connections,
            acquire_timeout,
            statement_timeout,
            system_url,
            url_source: None,
            system_url_source: None,
        }
    }
}

impl RedisConfig {
    /// `env` is the default key prefix.
    pub(super) fn read(vars: &mut Vars, env: &str) -> Self {
        let url = Secret::new(
            vars.optional("REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
        );
        vars.check(
            url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"),
            || "REDIS_URL: must start with redis:// or rediss://".into(),
        );
        // The queue's payloads and the caches hold patients' data: none of it crosses a
        // network in the clear (ElastiCache's certificates chain to the usual web roots).
        let remote_plain = url::Url::parse(url.expose()).is_ok_and(|parsed| {
            parsed.scheme() == "redis" && !on_this_host(parsed.host_str().unwrap_or_default())
        });
        vars.check(!remote_plain, || {
            "REDIS_URL: a Redis on another host must be reached with rediss:// (TLS)".into()
        });
        Self {
            url,
            url_source: None,
            key_prefix: vars
                .optional("REDIS_KEY_PREFIX")
                .unwrap_or_else(|| env.to_owned()),
            timeout: vars.millis("REDIS_TIMEOUT_MS", 250),
            connect_timeout: vars.millis("REDIS_CONNECT_TIMEOUT_MS", 500),
            breaker_threshold: vars.parsed("REDIS_BREAKER_THRESHOLD", 5, "a number of failures"),
            breaker_cooldown: vars.millis("REDIS_BREAKER_COOLDOWN_MS", 10_000),
        }
    }
}

impl CacheConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let mut at_least_a_second = |name: &str, default_seconds: u64| {
            let ttl = vars.seconds(name, default_seconds);
            vars.check(!ttl.is_zero(), || format!("{name}: must be at least 1"));
            ttl
        };
        let patient_profile_ttl = at_least_a_second("CACHE_TTL_PATIENT_PROFILE_SECONDS", 15 * 60);
        let catalog_view_ttl = at_least_a_second("CACHE_TTL_CATALOG_SECONDS", 60 * 60);
        let dashboard_ttl = at_least_a_second("CACHE_TTL_DASHBOARD_SECONDS", 5 * 60);
        let clinic_list_ttl = at_least_a_second("CACHE_TTL_CLINIC_LIST_SECONDS", 24 * 60 * 60);
        let availability_ttl = at_least_a_second("CACHE_TTL_AVAILABILITY_SECONDS", 10 * 60);
        let metrics_emf = vars.parsed("CACHE_METRICS_EMF", true, "true or false");
        let metrics_flush = vars.seconds("CACHE_METRICS_FLUSH_SECONDS", 10);
        vars.check(!metrics_flush.is_zero(), || {
            "CACHE_METRICS_FLUSH_SECONDS: must be at least 1".into()
        });
        Self {
            patient_profile_ttl,
            catalog_view_ttl,
            dashboard_ttl,
            clinic_list_ttl,
            availability_ttl,
            metrics_emf,
            metrics_flush,
        }
    }
}
