//! Cache-aside over Redis: read through, write PostgreSQL then invalidate, with leases so a
//! stale value is never stored after an invalidation and only one caller fills a missing key.
//!
//! The read path is one `GET` on a hit. On a miss, `lease.lua` either returns the value (someone
//! just filled it) or hands a fill lease (`SET NX PX`) to exactly one caller, who loads from
//! PostgreSQL and stores through `fill.lua` only while its lease still stands. Everyone else
//! polls briefly for the value and, past the policy's wait, loads for itself without storing.
//! `invalidate` deletes the value and its lease together, which cancels any fill in flight
//! (Facebook's memcache leases, NSDI 2013 §3.2.1).
//!
//! The cache is an optimisation, never a dependency: every Redis failure (down, slow, a value
//! that no longer decodes) degrades to a load from PostgreSQL and is logged, never returned.
//! After repeated failures a circuit breaker skips Redis for a cooldown, so a stalled Redis does
//! not add its timeout to every read.

mod breaker;

use crate::config::RedisConfig;
use crate::keys::Keys;
use crate::redis::RedisConnector;
use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// A named cache: its TTL and how its misses are coordinated.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    pub name: &'static str,
    pub ttl: Duration,
    /// How long a fill lease lives: longer than a normal load, short enough that a loader
    /// that died (a frozen or killed Lambda) does not block the key for long.
    pub lease: Duration,
    /// How long a caller that did not get the lease waits for the value before loading itself.
    pub max_wait: Duration,
}

pub const PATIENT_PROFILE: CachePolicy = CachePolicy {
    name: "patient_profile",
    ttl: Duration::from_secs(15 * 60),
    lease: Duration::from_secs(3),
    max_wait: Duration::from_millis(300),
};

/// Between two looks at a key another caller is filling.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));

#[derive(Clone)]
pub struct Cache {
    redis: Arc<RedisConnector>,
    breaker: Arc<breaker::Breaker>,
}

/// What `lease.lua` answered.
enum Lease {
    Hit(Vec<u8>),
    Granted,
    Busy,
}

impl Cache {
    pub fn new(redis: Arc<RedisConnector>, config: &RedisConfig) -> Self {
        Self {
            redis,
            breaker: Arc::new(breaker::Breaker::new(
                config.breaker_threshold,
                config.breaker_cooldown,
            )),
        }
    }

    /// Whether the breaker currently skips Redis (tests now; the admin cache view, issue 4).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Logs a Redis failure on the read path and counts it towards opening the breaker.
    fn failed(&self, policy: CachePolicy, what: &str, error: &dyn std::fmt::Display) {
        tracing::warn!(cache = policy.name, %error, "{what}; loading from the database");
        self.breaker.record_failure();
    }

    /// Returns the cached value, or loads it (once across all callers) and caches it.
    /// `Ok(None)` from the loader (not found) is not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &str,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        if self.breaker.is_open() {
            return load().await;
        }
        let mut connection = match self.redis.connection().await {
            Ok(connection) => connection,
            Err(error) => {
                self.failed(policy, "cache unavailable", &error);
                return load().await;
            }
        };
        let mut replace_current = false;
        match connection.get::<_, Option<Vec<u8>>>(key).await {
            Ok(found) => {
                self.breaker.record_success();
                if let Some(bytes) = found {
                    match decode(policy, &bytes) {
                        Some(value) => return Ok(Some(value)),
                        None => replace_current = true,
                    }
                }
            }
            Err(error) => {
                self.failed(policy, "cache read failed", &error);
                return load().await;
            }
        }

        let lease_key = Keys::lease(key);
        let token = format!("{:016x}", rand::rng().random::<u64>());
        let waiting_since = Instant::now();
        loop {
            let answer = lease(
                &mut connection,
                key,
                &lease_key,
                &token,
                policy.lease,
                replace_current,
            )
            .await;
            match answer {
                Ok(Lease::Hit(bytes)) => match decode(policy, &bytes) {
                    Some(value) => return Ok(Some(value)),
                    None => replace_current = true,
                },
                Ok(Lease::Granted) => {
                    return self
                        .fill(policy, &mut connection, key, &lease_key, &token, load)
                        .await;
                }
                Ok(Lease::Busy) if waiting_since.elapsed() < policy.max_wait => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Ok(Lease::Busy) => {
                    // The filler is slow or gone: serve this caller from the database; the lease
                    // expires on its own and the next miss fills the key.
                    tracing::debug!(cache = policy.name, "lease wait exceeded; loading uncached");
                    return load().await;
                }
                Err(error) => {
                    self.failed(policy, "cache lease failed", &error);
                    return load().await;
                }
            }
        }
    }

    /// Loads as the lease holder and stores the value unless an invalidation cancelled the lease.
    async fn fill<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        connection: &mut ConnectionManager,
        key: &str,
        lease_key: &str,
        token: &str,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let loaded = load().await;
        let stored = match &loaded {
            Ok(Some(value)) => match serde_json::to_vec(value) {
                Ok(bytes) => FILL
                    .key(key)
                    .key(lease_key)
                    .arg(token)
                    .arg(bytes)
                    .arg(jittered_millis(policy.ttl))
                    .invoke_async::<i64>(connection)
                    .await
                    .map(|stored| stored == 1),
                Err(_) => Ok(false),
            },
            // Nothing to store: give the lease back so waiters stop waiting at once.
            Ok(None) | Err(_) => RELEASE
                .key(lease_key)
                .arg(token)
                .invoke_async::<i64>(connection)
                .await
                .map(|_| false),
        };
        match stored {
            Ok(false) if matches!(loaded, Ok(Some(_))) => {
                tracing::debug!(
                    cache = policy.name,
                    "lease lost to an invalidation; not stored"
                )
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache write failed");
                self.breaker.record_failure();
            }
        }
        loaded
    }

    /// Removes a value after its source row changed, and cancels any fill in flight (its lease).
    /// Retried once; a failure is logged loudly because the value may then be stale until its TTL.
    pub async fn invalidate(&self, policy: CachePolicy, key: &str) {
        let lease_key = Keys::lease(key);
        for attempt in 1..=2 {
            let result = match self.redis.connection().await {
                Ok(mut connection) => connection
                    .del::<_, ()>(&[key, lease_key.as_str()])
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            // Invalidations are tried even while the breaker is open: a write must not leave a
            // stale value behind if Redis happens to answer.
            match result {
                Ok(()) => {
                    self.breaker.record_success();
                    return;
                }
                Err(error) if attempt == 2 => {
                    self.breaker.record_failure();
                    tracing::error!(
                        cache = policy.name,
                        %error,
                        "cache invalidation failed; value may be stale until its TTL"
                    )
                }
                Err(_) => {}
            }
        }
    }
}

async fn lease(
    connection: &mut ConnectionManager,
    key: &str,
    lease_key: &str,
    token: &str,
    lifetime: Duration,
    replace_current: bool,
) -> Result<Lease, ::redis::RedisError> {
    let (status, value): (i64, Option<Vec<u8>>) = LEASE
        .key(key)
        .key(lease_key)
        .arg(token)
        .arg(lifetime.as_millis() as u64)
        .arg(if replace_current { "1" } else { "0" })
        .invoke_async(connection)
        .await?;
    Ok(match (status, value) {
        (1, Some(bytes)) => Lease::Hit(bytes),
        (2, _) => Lease::Granted,
        _ => Lease::Busy,
    })
}

/// A value that does not decode (an older format, corruption) is a miss, and gets replaced.
fn decode<T: DeserializeOwned>(policy: CachePolicy, bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes)
        .inspect_err(|error| {
            tracing::warn!(cache = policy.name, %error, "cached value does not decode; treating as a miss")
        })
        .ok()
}

/// TTL ± 10 %, so keys written together do not expire together.
fn jittered_millis(ttl: Duration) -> u64 {
    let base = ttl.as_millis() as u64;
    let spread = base / 10;
    if spread == 0 {
        return base.max(1);
    }
    rand::rng().random_range(base - spread..=base + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let ms = jittered_millis(Duration::from_secs(100));
            assert!((90_000..=110_000).contains(&ms), "{ms}");
        }
        assert_eq!(jittered_millis(Duration::from_millis(5)), 5);
    }
}
