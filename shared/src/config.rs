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
    pub auth: AuthConfig,
    pub http: HttpConfig,
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: Secret,
    /// Lambda runs one request at a time per environment: a couple of connections is plenty,
    /// and a thousand warm environments must not exhaust PostgreSQL's connection slots.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
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
        let auth = vars.auth();
        let http = HttpConfig {
            max_body_bytes: vars.parsed("MAX_BODY_BYTES", 64 * 1024, "a number of bytes"),
        };

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
                auth,
                http,
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
}
