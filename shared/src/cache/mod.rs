//! Cache-aside over Redis: read through, write PostgreSQL then invalidate, with leases so a
//! stale value is never stored after an invalidation and only one caller fills a missing key.
//!
//! A read is one round trip on a hit: a pipeline of `GET value` and `GET` of each generation
//! counter the value depends on (see [`crate::keys::CacheKey`]), or none when the request gate
//! read them already (`prefetch.rs`). The value is an envelope
//! (`envelope.rs`) holding the generations it was loaded under, its freshness deadline and its
//! load time; a value of an older generation, format or type is a miss.
//!
//! On a miss, `lease.lua` either returns a value (someone just filled it) or hands a fill lease
//! (`SET NX PX`) to exactly one caller, who loads from PostgreSQL and stores through `fill.lua`
//! only while its lease still stands. Everyone else polls briefly for the value and, past the
//! policy's wait, loads for itself without storing. `invalidate` deletes the value and its lease
//! together, which cancels any fill in flight (Facebook's memcache leases, NSDI 2013 §3.2.1);
//! bumping a generation makes every value that names it a miss in O(1) — a fill that loaded
//! before the bump stores a value of the old generation, which no reader accepts.
//!
//! Hot values are recomputed before they expire (XFetch, one caller at a time through the same
//! lease); a policy with `serve_stale_for` keeps serving the previous value while one caller
//! recomputes it (stale-while-revalidate). Recomputing happens inside the request that
//! was picked: a Lambda environment may be frozen right after its response, so work spawned
//! "in the background" could stall for minutes.
//!
//! The cache is an optimisation, never a dependency: every Redis failure (down, slow, a value
//! that no longer decodes) degrades to a load from PostgreSQL and is logged, never returned.
//! After repeated failures a circuit breaker skips Redis for a cooldown, so a stalled Redis does
//! not add its timeout to every read.

mod breaker;
mod envelope;
mod invalidate;
mod lease;
mod metrics;
mod policy;
mod prefetch;
mod read_many;
mod read_through;
mod value;

pub use metrics::CacheNameStats;
pub use policy::{
    AVAILABILITY, AVAILABILITY_ANSWERS, CATALOG_VIEW, CLINIC_LIST, CachePolicy, DASHBOARD,
    ORGANIZATION_DASHBOARD, PATIENT_PROFILE, Ttl,
};
pub use prefetch::Prefetched;
pub use value::{CacheValue, RawJson};

use crate::config::{CacheConfig, RedisConfig};
use crate::ids::ClinicId;
use crate::keys::{CacheKey, Keys};
use crate::redis::{RedisConnector, RedisUnavailable};
use ::redis::AsyncCommands;
use metrics::{Event, Metrics};
use rand::Rng;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Redis could not be reached for an operation that has no PostgreSQL fallback (an
/// invalidation, the stats): the caller decides whether that is an error.
#[derive(Debug, thiserror::Error)]
pub enum CacheUnavailable {
    #[error("the cache is unreachable")]
    Unreachable(#[from] RedisUnavailable),
    #[error("the cache failed")]
    Failed(#[from] ::redis::RedisError),
}

#[derive(Clone)]
pub struct Cache {
    redis: Arc<RedisConnector>,
    breaker: Arc<breaker::Breaker>,
    metrics: Arc<Metrics>,
    keys: Keys,
    config: Arc<CacheConfig>,
    environment: Arc<str>,
}

impl Cache {
    pub fn new(
        redis: Arc<RedisConnector>,
        redis_config: &RedisConfig,
        config: &CacheConfig,
        keys: Keys,
        environment: &str,
    ) -> Self {
        Self {
            redis,
            breaker: Arc::new(breaker::Breaker::new(
                redis_config.breaker_threshold,
                redis_config.breaker_cooldown,
            )),
            metrics: Arc::new(Metrics::new(config.metrics_flush, config.metrics_emf)),
            keys,
            config: Arc::new(config.clone()),
            environment: environment.into(),
        }
    }

    /// Whether the breaker currently skips Redis (the admin cache view and the tests).
    pub fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// The policy's freshness, as configured.
    fn fresh_for(&self, policy: CachePolicy) -> Duration {
        policy.ttl.resolve(&self.config)
    }

    fn record(&self, policy: CachePolicy, key: &CacheKey, event: Event) {
        self.metrics.record(policy.name, key.clinic, event);
    }

    /// Logs a Redis failure on the read path and counts it towards opening the breaker.
    fn failed(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        what: &str,
        error: &dyn std::fmt::Display,
    ) {
        tracing::warn!(cache = policy.name, %error, "{what}; loading from the database");
        self.record(policy, key, Event::RedisError);
        self.redis_failed();
    }

    /// Counts a Redis failure towards opening the breaker; when it opens, the shared
    /// connection is dropped too, so the first call after the cooldown starts afresh, whatever
    /// broke the old one (`RedisConnector::start_over`).
    fn redis_failed(&self) {
        if self.breaker.record_failure() {
            self.redis.start_over();
        }
    }

    /// Adds this process's counters to Redis (and the logs as EMF) when the flush interval has
    /// passed. Counters Redis refused are kept for the next flush.
    async fn flush_metrics_if_due(&self) {
        if let Some(flush) = self.metrics.take_due(false) {
            self.write_metrics(flush).await;
        }
    }

    /// Flushes now: the admin view calls it so its own process's counts are included.
    pub async fn flush_metrics(&self) {
        if let Some(flush) = self.metrics.take_due(true) {
            self.write_metrics(flush).await;
        }
    }

    async fn write_metrics(&self, flush: metrics::Flush) {
        if self.metrics.emf_enabled() {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            for line in flush.emf_lines(&self.environment) {
                let _ = writeln!(stdout, "{line}");
            }
        }
        let written = match self.redis.connection().await {
            Ok(mut connection) if !self.breaker.is_open() => flush
                .write_to_redis(&mut connection, |clinic| self.keys.cache_stats(clinic))
                .await
                .map_err(CacheUnavailable::from),
            Ok(_) => return self.metrics.restore(flush),
            Err(error) => Err(CacheUnavailable::from(error)),
        };
        if let Err(error) = written {
            tracing::debug!(%error, "cache counters not written; kept for the next flush");
            self.metrics.restore(flush);
        }
    }

    /// Counters of one clinic (or of all clinics with `None`) across every Lambda environment,
    /// per cache name, since `since` (Unix seconds; `None` before the first flush).
    pub async fn stats(
        &self,
        clinic: Option<ClinicId>,
    ) -> Result<(BTreeMap<String, CacheNameStats>, Option<i64>), CacheUnavailable> {
        let mut connection = self.redis.connection().await?;
        let hash: HashMap<String, u64> = connection.hgetall(self.keys.cache_stats(clinic)).await?;
        let since = hash.get("since").map(|since| *since as i64);
        Ok((metrics::parse_stats(&hash), since))
    }
}

/// Random, so a generation recreated after Redis lost it never equals an older one.
fn new_generation() -> u64 {
    rand::rng().random_range(1..=i64::MAX as u64)
}
