//! The read path: a hit in one round trip, a miss filled once across all callers, and values
//! recomputed before they expire or while served stale.

use super::envelope::{self, Freshness};
use super::lease::{Lease, lease, lease_token};
use super::metrics::Event;
use super::prefetch::Read;
use super::{Cache, CachePolicy, CacheValue, Prefetched, new_generation};
use crate::keys::CacheKey;
use ::redis::aio::ConnectionManager;
use ::redis::{Script, Value};
use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Between two looks at a key another caller is filling.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

static GENERATION: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("generation.lua")));

/// Who was picked to recompute a value that is still servable.
#[derive(Clone, Copy)]
pub(super) enum Recompute {
    Early,
    Stale,
}

impl Recompute {
    /// What serving the value in hand counts as.
    fn served(self) -> Event {
        match self {
            Recompute::Early => Event::Hit,
            Recompute::Stale => Event::StaleServe,
        }
    }

    /// What recomputing it counts as.
    fn recomputed(self) -> Event {
        match self {
            Recompute::Early => Event::EarlyRefresh,
            Recompute::Stale => Event::Miss,
        }
    }
}

/// Whether a decoded value answers this read (see [`Cache::get_or_load_matching`]).
pub(super) type Accept<'a, T> = &'a (dyn Fn(&T) -> bool + Sync);

/// What a value found in Redis is worth to this read.
pub(super) enum Found<T> {
    Fresh(T),
    /// Still servable, but to be recomputed (its bytes and the value, and why).
    Servable(Vec<u8>, T, Recompute),
    /// A miss; its bytes tell `lease.lua` which value this caller refused.
    Rejected(Vec<u8>),
}

/// Decodes `bytes` and weighs them against the current `generations` and the policy.
pub(super) fn judge<T: CacheValue>(
    policy: CachePolicy,
    bytes: Vec<u8>,
    generations: &[u64],
    accept: Accept<'_, T>,
) -> Found<T> {
    match envelope::decode::<T>(&bytes) {
        Some(found) if found.generations == generations && accept(&found.value) => {
            match found.freshness(envelope::now_ms(), policy.xfetch_beta) {
                Freshness::Fresh => Found::Fresh(found.value),
                Freshness::RefreshEarly => Found::Servable(bytes, found.value, Recompute::Early),
                Freshness::Stale if !policy.serve_stale_for.is_zero() => {
                    Found::Servable(bytes, found.value, Recompute::Stale)
                }
                // Past its freshness (another environment's clock ran ahead): a miss.
                Freshness::Stale => Found::Rejected(bytes),
            }
        }
        // Loaded before an invalidation of its clinic or of the global catalog, or not the
        // value the caller asked for (`accept`).
        Some(_) => Found::Rejected(bytes),
        None => {
            tracing::warn!(
                cache = policy.name,
                "cached value does not decode; treating it as a miss"
            );
            Found::Rejected(bytes)
        }
    }
}

impl Cache {
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
        self.get_or_load_prefetched(policy, key, Prefetched::default(), load)
            .await
    }

    /// [`get_or_load`](Self::get_or_load) for a key several reads share, each wanting its own
    /// value (a bounded set of slots, like the free-slot search's answers): a stored value that
    /// `accept` refuses is a miss, and this read's value replaces it. Starts from what the
    /// request gate read for `key`, if it did.
    pub async fn get_or_load_matching<T, E, F, Fut>(
        &self,
        (policy, key): (CachePolicy, &CacheKey),
        prefetched: Prefetched,
        accept: Accept<'_, T>,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.read_and_flush(policy, key, prefetched, accept, load)
            .await
    }

    /// [`get_or_load`](Self::get_or_load), starting from what the request gate read for `key`
    /// (`prefetch.rs`) instead of a round trip of its own.
    pub async fn get_or_load_prefetched<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        prefetched: Prefetched,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        self.read_and_flush(policy, key, prefetched, &|_| true, load)
            .await
    }

    /// A read, then the metrics flushed if their interval has passed.
    async fn read_and_flush<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        prefetched: Prefetched,
        accept: Accept<'_, T>,
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let result = self
            .read_through(policy, key, prefetched, accept, load)
            .await;
        self.flush_metrics_if_due().await;
        result
    }

    async fn read_through<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        prefetched: Prefetched,
        accept: Accept<'_, T>,
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
        let found = match prefetched.take_for(key) {
            Some(read) => complete(&mut connection, key, read).await,
            None => read(&mut connection, key).await,
        };
        let (current, generations) = match found {
            Ok(found) => found,
            Err(error) => {
                self.failed(policy, key, "cache read failed", &error);
                return self.load_uncached(policy, key, load).await;
            }
        };
        self.breaker.record_success();

        let rejected = match current.map(|bytes| judge::<T>(policy, bytes, &generations, accept)) {
            None => Vec::new(),
            Some(Found::Fresh(value)) => {
                self.record(policy, key, Event::Hit);
                return Ok(Some(value));
            }
            Some(Found::Servable(bytes, value, why)) => {
                return self
                    .recompute_or_serve(
                        policy,
                        key,
                        &mut connection,
                        (&generations, bytes, value),
                        (why, accept),
                        load,
                    )
                    .await;
            }
            Some(Found::Rejected(bytes)) => bytes,
        };
        self.record(policy, key, Event::Miss);
        self.fill_or_wait(
            policy,
            key,
            &mut connection,
            (&generations, rejected),
            accept,
            load,
        )
        .await
    }

    /// A miss: take the lease and fill, or wait for whoever holds it.
    async fn fill_or_wait<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        connection: &mut ConnectionManager,
        (generations, mut rejected): (&[u64], Vec<u8>),
        accept: Accept<'_, T>,
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
                            && accept(&found.value)
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
        (why, accept): (Recompute, Accept<'_, T>),
        load: F,
    ) -> Result<Option<T>, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let served = why.served();
        let token = lease_token();
        match lease(connection, key, &token, policy.lease, &bytes, false).await {
            Ok(Lease::Granted) => {
                self.record(policy, key, why.recomputed());
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
                        .filter(|found| found.generations == generations && accept(&found.value))
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
                self.redis_failed();
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
}

/// The value and the current generations it must carry, in one round trip.
pub(super) async fn read(
    connection: &mut ConnectionManager,
    key: &CacheKey,
) -> Result<(Option<Vec<u8>>, Vec<u64>), ::redis::RedisError> {
    let mut pipe = ::redis::pipe();
    pipe.get(&key.value);
    for generation in &key.generations {
        pipe.get(generation);
    }
    let mut replies: Vec<Value> = pipe.query_async(connection).await?;
    let counter_replies = replies.split_off(1.min(replies.len()));
    let value: Option<Vec<u8>> = match replies.pop() {
        Some(reply) => ::redis::from_redis_value(reply)?,
        None => None,
    };
    let counters = counter_replies
        .into_iter()
        .map(::redis::from_redis_value::<Option<u64>>)
        .collect::<Result<Vec<_>, _>>()?;
    complete(connection, key, Read { value, counters }).await
}

/// The generations of a read: a counter that does not exist yet (first use, Redis restarted or
/// evicted it) is created with a random value.
pub(super) async fn complete(
    connection: &mut ConnectionManager,
    key: &CacheKey,
    Read { value, counters }: Read,
) -> Result<(Option<Vec<u8>>, Vec<u64>), ::redis::RedisError> {
    let mut generations = Vec::with_capacity(key.generations.len());
    for (counter, generation_key) in counters.into_iter().zip(&key.generations) {
        let generation = match counter {
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
