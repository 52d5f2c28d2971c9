//! The write path's half of cache-aside: deleting a value (and its lease) after its row
//! changed, and bumping a generation to drop a whole clinic's or catalog's values at once.

use super::{Cache, CachePolicy, CacheUnavailable, new_generation};
use crate::ids::ClinicId;
use crate::keys::CacheKey;
use ::redis::AsyncCommands;
use ::redis::aio::ConnectionManager;
use std::future::Future;

impl Cache {
    /// Removes a value after its source row changed, and cancels any fill in flight (its lease).
    /// Retried once; a failure is logged loudly because the value may then be stale until its TTL.
    pub async fn invalidate(&self, policy: CachePolicy, key: &CacheKey) {
        if let Err(error) = self.try_invalidate(policy, key).await {
            tracing::error!(
                cache = policy.name,
                %error,
                "cache invalidation failed; value may be stale until its TTL"
            );
        }
    }

    /// [`Cache::invalidate`] for callers that report a failure (the admin view).
    pub async fn try_invalidate(
        &self,
        _policy: CachePolicy,
        key: &CacheKey,
    ) -> Result<(), CacheUnavailable> {
        self.with_retry(|mut connection| async move {
            connection
                .del::<_, ()>(&[key.value.as_str(), key.lease.as_str()])
                .await
        })
        .await
    }

    /// [`Cache::invalidate`] for several keys at once: one command, whatever their number.
    pub async fn invalidate_all(&self, policy: CachePolicy, keys: &[CacheKey]) {
        let doomed: Vec<&str> = keys
            .iter()
            .flat_map(|key| [key.value.as_str(), key.lease.as_str()])
            .collect();
        let doomed = &doomed;
        if let Err(error) = self
            .with_retry(|mut connection| async move { connection.del::<_, ()>(doomed).await })
            .await
        {
            tracing::error!(
                cache = policy.name,
                %error,
                "cache invalidation failed; values may be stale until their TTL"
            );
        }
    }

    /// Invalidates every cached value of one clinic in O(1): a new clinic generation.
    pub async fn invalidate_clinic(&self, clinic: ClinicId) -> Result<(), CacheUnavailable> {
        self.bump_generation(self.keys.clinic_generation(clinic))
            .await
    }

    /// Invalidates every day of one clinic's cached free time in O(1): a new schedule generation
    /// (hours, time off, chairs or staff changed).
    pub async fn invalidate_schedule(&self, clinic: ClinicId) -> Result<(), CacheUnavailable> {
        self.bump_generation(self.keys.schedule_generation(clinic))
            .await
    }

    /// Invalidates every clinic's catalog view in O(1): a new global catalog generation.
    pub async fn invalidate_global_catalog(&self) -> Result<(), CacheUnavailable> {
        self.bump_generation(self.keys.global_catalog_generation())
            .await
    }

    async fn bump_generation(&self, generation_key: String) -> Result<(), CacheUnavailable> {
        let generation_key = &generation_key;
        self.with_retry(|mut connection| async move {
            connection
                .set::<_, _, ()>(generation_key, new_generation())
                .await
        })
        .await
        .inspect_err(|error| {
            tracing::error!(
                %error,
                "cache generation bump failed; values may be stale until their TTL"
            )
        })
    }

    /// Writes that keep the cache honest are tried even while the breaker is open (a write must
    /// not leave a stale value behind if Redis happens to answer), and retried once.
    async fn with_retry<F, Fut>(&self, operation: F) -> Result<(), CacheUnavailable>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<(), ::redis::RedisError>>,
    {
        let mut attempt = 1;
        loop {
            let result = match self.redis.connection().await {
                Ok(connection) => operation(connection).await.map_err(CacheUnavailable::from),
                Err(error) => Err(CacheUnavailable::from(error)),
            };
            match result {
                Ok(()) => {
                    self.breaker.record_success();
                    return Ok(());
                }
                Err(_) if attempt == 1 => attempt += 1,
                Err(error) => {
                    self.redis_failed();
                    return Err(error);
                }
            }
        }
    }
}
