//! Cache-aside over Redis: read through, write PostgreSQL then invalidate, with leases so a
//! stale value is never stored after an invalidation and only one caller fills a missing key.
//!
//! A read is one round trip on a hit: a pipeline of `GET value` and `GET` of each generation
//! counter the value depends on (see [`crate::keys::CacheKey`]). The value is an envelope
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
mod metrics;

pub use metrics::CacheNameStats;

use crate::config::{CacheConfig, RedisConfig};
use crate::ids::ClinicId;
use crate::keys::{CacheKey, Keys};
use crate::redis::{RedisConnector, RedisUnavailable};
use ::redis::aio::ConnectionManager;
use ::redis::{AsyncCommands, Script, Value};
use envelope::Freshness;
use metrics::{Event, Metrics};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How a value is kept in Redis. Every serde type is kept as JSON and parsed on a hit;
/// [`RawJson`] is kept as the JSON document itself and handed back without parsing (for large
/// responses that are sent as they are, like the dashboard).
pub trait CacheValue: Sized {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error>;
    /// `None` when the bytes are not this type's (an older format): a miss.
    fn decode(payload: &[u8]) -> Option<Self>;
}

impl<T: Serialize + DeserializeOwned> CacheValue for T {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

/// A JSON document kept and served as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// Serializes `value` once, when it is loaded.
    pub fn to_json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(|text| Self(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0.into()
    }
}

impl CacheValue for RawJson {
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        Ok(self.0.as_bytes().to_vec())
    }

    /// Only checked to be text: it was JSON when it was stored, and the key's format version
    /// changes when its shape does.
    fn decode(payload: &[u8]) -> Option<Self> {
        std::str::from_utf8(payload)
            .ok()
            .map(|text| Self(text.into()))
    }
}

/// Where a cache's freshness (before ±10 % jitter) comes from. Every production cache names
/// its `CACHE_TTL_*` setting here, so a new cache cannot silently go without one, as it could
/// when the setting was looked up by the policy's name.
#[derive(Clone, Copy)]
pub enum Ttl {
    /// The setting in [`CacheConfig`] that holds it.
    Configured(fn(&CacheConfig) -> Duration),
    /// A fixed freshness, for a cache with no setting (tests).
    Fixed(Duration),
}

impl Ttl {
    pub fn resolve(self, config: &CacheConfig) -> Duration {
        match self {
            Self::Configured(setting) => setting(config),
            Self::Fixed(ttl) => ttl,
        }
    }
}

impl std::fmt::Debug for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("Configured"),
            Self::Fixed(ttl) => f.debug_tuple("Fixed").field(ttl).finish(),
        }
    }
}

/// A named cache: its freshness and how its misses are coordinated.
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    pub name: &'static str,
    pub ttl: Ttl,
    /// How long past its freshness a value may still be served while one caller recomputes it
    /// (stale-while-revalidate). Zero: an expired value is a miss.
    pub serve_stale_for: Duration,
    /// How long a fill lease lives: longer than a normal load, short enough that a loader
    /// that died (a frozen or killed Lambda) does not block the key for long.
    pub lease: Duration,
    /// How long a caller that did not get the lease waits for the value before loading itself.
    pub max_wait: Duration,
    /// XFetch's β: above 1 refreshes earlier (for values whose miss hurts most).
    pub xfetch_beta: f64,
}

pub const PATIENT_PROFILE: CachePolicy = CachePolicy {
    name: "patient_profile",
    ttl: Ttl::Configured(|config| config.patient_profile_ttl),
    serve_stale_for: Duration::ZERO,
    lease: Duration::from_secs(3),
    max_wait: Duration::from_millis(300),
    xfetch_beta: 1.0,
};

pub const CATALOG_VIEW: CachePolicy = CachePolicy {
    name: "catalog_view",
    ttl: Ttl::Configured(|config| config.catalog_view_ttl),
    serve_stale_for: Duration::ZERO,
    lease: Duration::from_secs(3),
    max_wait: Duration::from_millis(500),
    xfetch_beta: 1.0,
};

/// Aggregates over a clinic's whole history: served stale for up to an hour while one caller
/// recomputes, and refreshed ahead of expiry by the scheduler.
pub const DASHBOARD: CachePolicy = CachePolicy {
    name: "dashboard",
    ttl: Ttl::Configured(|config| config.dashboard_ttl),
    serve_stale_for: Duration::from_secs(60 * 60),
    lease: Duration::from_secs(10),
    max_wait: Duration::from_secs(2),
    xfetch_beta: 2.0,
};

pub const CLINIC_LIST: CachePolicy = CachePolicy {
    name: "clinic_list",
    ttl: Ttl::Configured(|config| config.clinic_list_ttl),
    serve_stale_for: Duration::from_secs(60 * 60),
    lease: Duration::from_secs(5),
    max_wait: Duration::from_secs(1),
    xfetch_beta: 1.0,
};

/// Between two looks at a key another caller is filling.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static GENERATION: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("generation.lua")));

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

/// What `lease.lua` answered.
enum Lease {
    Hit(Vec<u8>),
    Granted,
    Busy,
}

/// Who was picked to recompute a value that is still servable.
#[derive(Clone, Copy)]
enum Recompute {
    Early,
    Stale,
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
        self.breaker.record_failure();
    }

    /// Returns the cached value, or loads it (once across all callers) and caches it.
    /// `Ok(None)` from the loader (not found) is not cached.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let result = self.read_through(policy, key, load).await;
        self.flush_metrics_if_due().await;
        result
    }

    async fn read_through<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        if self.breaker.is_open() {
            self.record(policy, key, Event::Bypass);
            return self.load_uncached(policy, key, load).await;
        }
        let mut connection = match self.redis.connection().await {
            Ok(connection) => connection,
            Err(error) => {
                self.failed(policy, key, "cache unavailable", &error);
                return self.load_uncached(policy, key, load).await;
            }
        };
        let (current, generations) = match read(&mut connection, key).await {
            Ok(found) => found,
            Err(error) => {
                self.failed(policy, key, "cache read failed", &error);
                return self.load_uncached(policy, key, load).await;
            }
        };
        self.breaker.record_success();

        let mut rejected = Vec::new();
        if let Some(bytes) = current {
            match envelope::decode::<T>(&bytes) {
                Some(found) if found.generations == generations => {
                    match found.freshness(envelope::now_ms(), policy.xfetch_beta) {
                        Freshness::Fresh => {
                            self.record(policy, key, Event::Hit);
                            return Ok(Some(found.value));
                        }
                        Freshness::RefreshEarly => {
                            return self
                                .recompute_or_serve(
                                    policy,
                                    key,
                                    &mut connection,
                                    (&generations, bytes, found.value),
                                    Recompute::Early,
                                    load,
                                )
                                .await;
                        }
                        Freshness::Stale if !policy.serve_stale_for.is_zero() => {
                            return self
                                .recompute_or_serve(
                                    policy,
                                    key,
                                    &mut connection,
                                    (&generations, bytes, found.value),
                                    Recompute::Stale,
                                    load,
                                )
                                .await;
                        }
                        // Past its freshness (another environment's clock ran ahead): a miss.
                        Freshness::Stale => rejected = bytes,
                    }
                }
                // Loaded before an invalidation of its clinic or of the global catalog.
                Some(_) => rejected = bytes,
                None => {
                    tracing::warn!(
                        cache = policy.name,
                        "cached value does not decode; treating it as a miss"
                    );
                    rejected = bytes;
                }
            }
        }
        self.record(policy, key, Event::Miss);
        self.fill_or_wait(policy, key, &mut connection, &generations, rejected, load)
            .await
    }

    /// A miss: take the lease and fill, or wait for whoever holds it.
    async fn fill_or_wait<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        connection: &mut ConnectionManager,
        generations: &[u64],
        mut rejected: Vec<u8>,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let token = lease_token();
        let waiting_since = Instant::now();
        loop {
            match lease(connection, key, &token, policy.lease, &rejected, false).await {
                Ok(Lease::Hit(bytes)) => match envelope::decode::<T>(&bytes) {
                    // A value another caller just stored. (If it was loaded under other
                    // generations — an invalidation raced this read — it is rejected and this
                    // caller loads: one extra load, never a stale answer.)
                    Some(found)
                        if found.generations == generations
                            && (found.freshness(envelope::now_ms(), 0.0) != Freshness::Stale
                                || !policy.serve_stale_for.is_zero()) =>
                    {
                        return Ok(Some(found.value));
                    }
                    _ => rejected = bytes,
                },
                Ok(Lease::Granted) => {
                    return self
                        .fill(policy, key, connection, generations, &token, load)
                        .await;
                }
                Ok(Lease::Busy) if waiting_since.elapsed() < policy.max_wait => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Ok(Lease::Busy) => {
                    // The filler is slow or gone: serve this caller from the database; the lease
                    // expires on its own and the next miss fills the key.
                    tracing::debug!(cache = policy.name, "lease wait exceeded; loading uncached");
                    return self.load_uncached(policy, key, load).await;
                }
                Err(error) => {
                    self.failed(policy, key, "cache lease failed", &error);
                    return self.load_uncached(policy, key, load).await;
                }
            }
        }
    }

    /// A servable value that should be recomputed (XFetch picked this caller, or it is past its
    /// freshness): the lease holder recomputes it; everyone else is served what is there.
    async fn recompute_or_serve<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        connection: &mut ConnectionManager,
        (generations, bytes, current): (&[u64], Vec<u8>, T),
        why: Recompute,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let served = match why {
            Recompute::Early => Event::Hit,
            Recompute::Stale => Event::StaleServe,
        };
        let token = lease_token();
        match lease(connection, key, &token, policy.lease, &bytes, false).await {
            Ok(Lease::Granted) => {
                self.record(
                    policy,
                    key,
                    match why {
                        Recompute::Early => Event::EarlyRefresh,
                        Recompute::Stale => Event::Miss,
                    },
                );
                match self
                    .fill(policy, key, connection, generations, &token, load)
                    .await
                {
                    Ok(fresh) => Ok(fresh),
                    Err(_) => {
                        // PostgreSQL failed the recompute: the value in hand is still the best
                        // answer (the failure is logged and counted by `fill`).
                        self.record(policy, key, served);
                        Ok(Some(current))
                    }
                }
            }
            Ok(Lease::Hit(newer)) => {
                self.record(policy, key, Event::Hit);
                Ok(Some(
                    envelope::decode::<T>(&newer)
                        .filter(|found| found.generations == generations)
                        .map_or(current, |found| found.value),
                ))
            }
            Ok(Lease::Busy) => {
                self.record(policy, key, served);
                Ok(Some(current))
            }
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache lease failed; serving the cached value");
                self.record(policy, key, Event::RedisError);
                self.breaker.record_failure();
                self.record(policy, key, served);
                Ok(Some(current))
            }
        }
    }

    /// Recomputes and stores a value now, unless another caller is already filling it (`false`).
    /// For the scheduler, which keeps aggregates fresh before anyone asks for them.
    pub async fn refresh<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        load: F,
    ) -> Result<bool, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let mut connection = match self.redis.connection().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache unavailable; refresh skipped");
                return Ok(false);
            }
        };
        let generations = match read(&mut connection, key).await {
            Ok((_, generations)) => generations,
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache read failed; refresh skipped");
                return Ok(false);
            }
        };
        let token = lease_token();
        match lease(&mut connection, key, &token, policy.lease, &[], true).await {
            Ok(Lease::Granted) => self
                .fill(policy, key, &mut connection, &generations, &token, load)
                .await
                .map(|loaded| loaded.is_some()),
            Ok(_) => Ok(false),
            Err(error) => {
                tracing::warn!(cache = policy.name, %error, "cache lease failed; refresh skipped");
                Ok(false)
            }
        }
    }

    async fn load_uncached<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        load: F,
    ) -> Result<Option<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let started = Instant::now();
        let loaded = load().await;
        self.record_load(policy, key, started.elapsed(), loaded.is_ok());
        loaded
    }

    fn record_load(&self, policy: CachePolicy, key: &CacheKey, took: Duration, ok: bool) {
        if ok {
            self.metrics.record_load(policy.name, key.clinic, took);
        } else {
            self.record(policy, key, Event::LoadError);
        }
    }

    /// Loads as the lease holder and stores the value unless an invalidation cancelled the lease.
    async fn fill<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        connection: &mut ConnectionManager,
        generations: &[u64],
        token: &str,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let started = Instant::now();
        let loaded = load().await;
        let took = started.elapsed();
        self.record_load(policy, key, took, loaded.is_ok());
        let fresh_for = jittered(self.fresh_for(policy));
        let stored = match &loaded {
            Ok(Some(value)) => match envelope::encode(value, generations, fresh_for, took) {
                Ok(bytes) => FILL
                    .key(&key.value)
                    .key(&key.lease)
                    .arg(token)
                    .arg(bytes)
                    .arg((fresh_for + policy.serve_stale_for).as_millis() as u64)
                    .invoke_async::<i64>(connection)
                    .await
                    .map(|stored| stored == 1),
                Err(_) => Ok(false),
            },
            // Nothing to store: give the lease back so waiters stop waiting at once.
            Ok(None) | Err(_) => RELEASE
                .key(&key.lease)
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
                self.record(policy, key, Event::RedisError);
                self.breaker.record_failure();
            }
        }
        loaded
    }

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

    /// Invalidates every cached value of one clinic in O(1): a new clinic generation.
    pub async fn invalidate_clinic(&self, clinic: ClinicId) -> Result<(), CacheUnavailable> {
        self.bump_generation(self.keys.clinic_generation(clinic))
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
                    self.breaker.record_failure();
                    return Err(error);
                }
            }
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

/// The value and the current generations it must carry, in one round trip. A generation that
/// does not exist yet (first use, Redis restarted or evicted it) is created with a random value.
async fn read(
    connection: &mut ConnectionManager,
    key: &CacheKey,
) -> Result<(Option<Vec<u8>>, Vec<u64>), ::redis::RedisError> {
    let mut pipe = ::redis::pipe();
    pipe.get(&key.value);
    for generation in &key.generations {
        pipe.get(generation);
    }
    let mut replies: Vec<Value> = pipe.query_async(connection).await?;
    let generation_replies = replies.split_off(1.min(replies.len()));
    let value: Option<Vec<u8>> = match replies.pop() {
        Some(reply) => ::redis::from_redis_value(reply)?,
        None => None,
    };
    let mut generations = Vec::with_capacity(key.generations.len());
    for (reply, generation_key) in generation_replies.into_iter().zip(&key.generations) {
        let generation = match ::redis::from_redis_value::<Option<u64>>(reply)? {
            Some(generation) => generation,
            None => {
                GENERATION
                    .key(generation_key)
                    .arg(new_generation())
                    .invoke_async::<u64>(connection)
                    .await?
            }
        };
        generations.push(generation);
    }
    Ok((value, generations))
}

async fn lease(
    connection: &mut ConnectionManager,
    key: &CacheKey,
    token: &str,
    lifetime: Duration,
    rejected: &[u8],
    whatever_the_value: bool,
) -> Result<Lease, ::redis::RedisError> {
    let (status, value): (i64, Option<Vec<u8>>) = LEASE
        .key(&key.value)
        .key(&key.lease)
        .arg(token)
        .arg(lifetime.as_millis() as u64)
        .arg(rejected)
        .arg(if whatever_the_value { "1" } else { "0" })
        .invoke_async(connection)
        .await?;
    Ok(match (status, value) {
        (1, Some(bytes)) => Lease::Hit(bytes),
        (2, _) => Lease::Granted,
        _ => Lease::Busy,
    })
}

fn lease_token() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}

/// Random, so a generation recreated after Redis lost it never equals an older one.
fn new_generation() -> u64 {
    rand::rng().random_range(1..=i64::MAX as u64)
}

/// ±10 %, so keys written together do not expire together.
fn jittered(ttl: Duration) -> Duration {
    let base = ttl.as_millis() as u64;
    let spread = base / 10;
    if spread == 0 {
        return Duration::from_millis(base.max(1));
    }
    Duration::from_millis(rand::rng().random_range(base - spread..=base + spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let ms = jittered(Duration::from_secs(100)).as_millis();
            assert!((90_000..=110_000).contains(&ms), "{ms}");
        }
        assert_eq!(jittered(Duration::from_millis(5)), Duration::from_millis(5));
    }

    #[test]
    fn each_production_cache_takes_its_own_setting() {
        let config = CacheConfig {
            patient_profile_ttl: Duration::from_secs(1),
            catalog_view_ttl: Duration::from_secs(2),
            dashboard_ttl: Duration::from_secs(3),
            clinic_list_ttl: Duration::from_secs(4),
            metrics_emf: false,
            metrics_flush: Duration::from_secs(10),
        };
        let resolved: Vec<u64> = [PATIENT_PROFILE, CATALOG_VIEW, DASHBOARD, CLINIC_LIST]
            .iter()
            .map(|policy| policy.ttl.resolve(&config).as_secs())
            .collect();
        assert_eq!(resolved, [1, 2, 3, 4]);
        assert_eq!(
            Ttl::Fixed(Duration::from_secs(9)).resolve(&config),
            Duration::from_secs(9)
        );
    }
}
