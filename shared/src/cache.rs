//! Cache-aside over Redis, first version: read through, write PostgreSQL then invalidate.
//!
//! The cache is an optimisation, never a dependency: every Redis failure (down, slow, a value
//! that no longer decodes) degrades to a load from PostgreSQL and is logged, never returned.
//! The production layer (leases against stale sets, stampede control, circuit breaker,
//! metrics) replaces the internals of `get_or_load` / `invalidate` without changing callers.

use crate::redis::RedisConnector;
use ::redis::AsyncCommands;
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A named cache with its TTL; the name appears in logs and, later, metrics.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    pub name: &'static str,
    pub ttl: Duration,
}

pub const PATIENT_PROFILE: CachePolicy = CachePolicy {
    name: "patient_profile",
    ttl: Duration::from_secs(15 * 60),
};

#[derive(Clone)]
pub struct Cache {
    redis: Arc<RedisConnector>,
}

impl Cache {
    pub fn new(redis: Arc<RedisConnector>) -> Self {
        Self { redis }
    }

    /// Returns the cached value, or runs `load` and caches what it returns. `Ok(None)` from
    /// the loader (not found) is not cached.
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
        let redis_ok = match self.read(policy, key).await {
            Lookup::Hit(value) => return Ok(Some(value)),
            Lookup::Miss => true,
            Lookup::Failed => false,
        };
        let loaded = load().await?;
        if let (true, Some(value)) = (redis_ok, &loaded) {
            self.store(policy, key, value).await;
        }
        Ok(loaded)
    }

    /// Removes a key after its source row changed. Retried once; a failure is logged loudly
    /// because the value may then be stale until its TTL.
    pub async fn invalidate(&self, policy: CachePolicy, key: &str) {
        for attempt in 1..=2 {
            match self.delete(key).await {
                Ok(()) => return,
                Err(error) if attempt == 2 => tracing::error!(
                    cache = policy.name,
                    %error,
                    "cache invalidation failed; value may be stale until its TTL"
                ),
                Err(_) => {}
            }
        }
    }

    async fn read<T: DeserializeOwned>(&self, policy: CachePolicy, key: &str) -> Lookup<T> {
        let bytes: Option<Vec<u8>> = match self.redis.connection().await {
            Ok(mut connection) => match connection.get(key).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(cache = policy.name, %error, "cache read failed; loading from the database");
                    return Lookup::Failed;
                }
            },
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache unavailable; loading from the database");
                return Lookup::Failed;
            }
        };
        match bytes.map(|bytes| serde_json::from_slice(&bytes)) {
            Some(Ok(value)) => Lookup::Hit(value),
            Some(Err(error)) => {
                // An old or corrupt value is a miss; the fresh load overwrites it.
                tracing::warn!(cache = policy.name, %error, "cached value does not decode; treating as a miss");
                Lookup::Miss
            }
            None => Lookup::Miss,
        }
    }

    async fn store<T: Serialize>(&self, policy: CachePolicy, key: &str, value: &T) {
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        let ttl_ms = jittered_millis(policy.ttl);
        let result = match self.redis.connection().await {
            Ok(mut connection) => connection
                .pset_ex::<_, _, ()>(key, bytes, ttl_ms)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(cache = policy.name, %error, "cache write failed");
        }
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        let mut connection = self.redis.connection().await.map_err(|e| e.to_string())?;
        connection
            .del::<_, ()>(key)
            .await
            .map_err(|e| e.to_string())
    }
}

enum Lookup<T> {
    Hit(T),
    Miss,
    /// Redis could not be asked: load, but do not try to store either.
    Failed,
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
