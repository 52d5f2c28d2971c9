//! Many values of one policy read in one go (the free-slot search's clinic days): the hits in
//! one round trip, the misses leased in a second and loaded together by one call of the loader
//! (one database transaction instead of one per key), then stored under their leases.
//!
//! It differs from [`Cache::get_or_load`] in one way: a miss whose lease another caller holds
//! is not waited for but loaded with the others, and not stored. A batch costs one load
//! whatever its size, so waiting would only add latency; the holder still stores the value once.

use super::envelope;
use super::lease::{FILL, LEASE, Lease, RELEASE, add_fill, lease_token};
use super::metrics::Event;
use super::policy::jittered;
use super::prefetch::Read;
use super::read_through::{Found, complete, judge};
use super::{Cache, CachePolicy, CacheValue};
use crate::keys::CacheKey;
use ::redis::Value;
use ::redis::aio::ConnectionManager;
use std::future::Future;
use std::time::Instant;

/// A key that missed: its position, the generations its value must carry and the bytes this
/// read refused (for `lease.lua`).
struct Missing {
    at: usize,
    generations: Vec<u64>,
    rejected: Vec<u8>,
}

impl Cache {
    /// The values of `keys`, in their order. `load` is given the positions of the keys to load
    /// (ascending) and returns their values in that order, one each. Only for policies that
    /// never serve a stale value.
    pub async fn get_many_or_load<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        keys: &[CacheKey],
        load: F,
    ) -> Result<Vec<T>, E>
    where
        T: CacheValue,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        debug_assert!(policy.serve_stale_for.is_zero());
        let result = self.read_many(policy, keys, load).await;
        self.flush_metrics_if_due().await;
        result
    }

    async fn read_many<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        keys: &[CacheKey],
        load: F,
    ) -> Result<Vec<T>, E>
    where
        T: CacheValue,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        let Some(first) = keys.first() else {
            return Ok(Vec::new());
        };
        let mut values: Vec<Option<T>> = keys.iter().map(|_| None).collect();
        let everything = || Missing::all(keys.len());
        if self.breaker.is_open() {
            for key in keys {
                self.record(policy, key, Event::Bypass);
            }
            return self
                .load_into(policy, keys, values, everything(), None, load)
                .await;
        }
        let mut connection = match self.redis.connection().await {
            Ok(connection) => connection,
            Err(error) => {
                self.failed(policy, first, "cache unavailable", &error);
                return self
                    .load_into(policy, keys, values, everything(), None, load)
                    .await;
            }
        };
        let found = match read_all(&mut connection, keys).await {
            Ok(found) => found,
            Err(error) => {
                self.failed(policy, first, "cache read failed", &error);
                return self
                    .load_into(policy, keys, values, everything(), None, load)
                    .await;
            }
        };
        self.breaker.record_success();

        let mut missing = Vec::new();
        for (at, (key, (bytes, generations))) in keys.iter().zip(found).enumerate() {
            let rejected =
                match bytes.map(|bytes| judge::<T>(policy, bytes, &generations, &|_| true)) {
                    // Never stale here (no serving stale); an early refresh is left to expiry.
                    Some(Found::Fresh(value) | Found::Servable(_, value, _)) => {
                        self.record(policy, key, Event::Hit);
                        values[at] = Some(value);
                        continue;
                    }
                    Some(Found::Rejected(bytes)) => bytes,
                    None => Vec::new(),
                };
            self.record(policy, key, Event::Miss);
            missing.push(Missing {
                at,
                generations,
                rejected,
            });
        }
        if missing.is_empty() {
            return Ok(values.into_iter().flatten().collect());
        }

        let token = lease_token();
        let leases = match lease_all(&mut connection, keys, &missing, &token, policy).await {
            Ok(leases) => leases,
            Err(error) => {
                self.failed(policy, first, "cache lease failed", &error);
                return self
                    .load_into(policy, keys, values, missing, None, load)
                    .await;
            }
        };
        let mut to_load = Vec::new();
        let mut leased = Vec::new();
        for (miss, lease) in missing.into_iter().zip(leases) {
            match lease {
                Lease::Hit(bytes) => match envelope::decode::<T>(&bytes) {
                    // Stored a moment ago by another caller, under the same generations.
                    Some(found) if found.generations == miss.generations => {
                        values[miss.at] = Some(found.value);
                    }
                    _ => to_load.push(miss),
                },
                Lease::Granted => {
                    leased.push(miss.at);
                    to_load.push(miss);
                }
                Lease::Busy => to_load.push(miss),
            }
        }
        let stored = Leased {
            connection: &mut connection,
            token: &token,
            at: leased,
        };
        self.load_into(policy, keys, values, to_load, Some(stored), load)
            .await
    }

    /// Loads the `missing` values in one call of `load`, stores those this caller holds the
    /// lease of, and returns every value in order.
    async fn load_into<T, E, F, Fut>(
        &self,
        policy: CachePolicy,
        keys: &[CacheKey],
        mut values: Vec<Option<T>>,
        missing: Vec<Missing>,
        leased: Option<Leased<'_>>,
        load: F,
    ) -> Result<Vec<T>, E>
    where
        T: CacheValue,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        if missing.is_empty() {
            return Ok(values.into_iter().flatten().collect());
        }
        let positions: Vec<usize> = missing.iter().map(|miss| miss.at).collect();
        let started = Instant::now();
        let loaded = load(positions.clone()).await;
        let took = started.elapsed();
        for &at in &positions {
            self.record_load(policy, &keys[at], took, loaded.is_ok());
        }
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                if let Some(leased) = leased {
                    // Give the leases back so other callers load at once.
                    let mut release = ::redis::pipe();
                    release.load_script(&RELEASE).ignore();
                    for &at in &leased.at {
                        release
                            .invoke_script(RELEASE.key(&keys[at].lease).arg(leased.token))
                            .ignore();
                    }
                    let _: Result<(), _> = release.query_async(leased.connection).await;
                }
                return Err(error);
            }
        };
        assert_eq!(
            loaded.len(),
            positions.len(),
            "a batch loader returns one value per position it is given"
        );
        let fresh_for = jittered(self.fresh_for(policy));
        let ttl = fresh_for + policy.serve_stale_for;
        let mut fills = ::redis::pipe();
        fills.load_script(&FILL).ignore();
        let mut filling = false;
        for (miss, value) in missing.iter().zip(loaded) {
            if let Some(leased) = &leased
                && leased.at.contains(&miss.at)
                && let Ok(bytes) = envelope::encode(&value, &miss.generations, fresh_for, took)
            {
                add_fill(&mut fills, &keys[miss.at], leased.token, &bytes, ttl);
                filling = true;
            }
            values[miss.at] = Some(value);
        }
        if let Some(leased) = leased
            && filling
            && let Err(error) = fills.query_async::<Vec<i64>>(leased.connection).await
        {
            tracing::warn!(cache = policy.name, %error, "cache write failed");
            self.record(policy, &keys[0], Event::RedisError);
            self.redis_failed();
        }
        Ok(values.into_iter().flatten().collect())
    }
}

/// The leases one batch holds.
struct Leased<'a> {
    connection: &'a mut ConnectionManager,
    token: &'a str,
    /// Positions of the keys leased.
    at: Vec<usize>,
}

impl Missing {
    /// Every key, loaded without the cache (it is skipped or failed).
    fn all(count: usize) -> Vec<Missing> {
        (0..count)
            .map(|at| Missing {
                at,
                generations: Vec::new(),
                rejected: Vec::new(),
            })
            .collect()
    }
}

/// Every key's value and current generations: one round trip (plus one per generation counter
/// that does not exist yet).
async fn read_all(
    connection: &mut ConnectionManager,
    keys: &[CacheKey],
) -> Result<Vec<(Option<Vec<u8>>, Vec<u64>)>, ::redis::RedisError> {
    let mut pipe = ::redis::pipe();
    for key in keys {
        pipe.get(&key.value);
        for generation in &key.generations {
            pipe.get(generation);
        }
    }
    let mut replies = pipe
        .query_async::<Vec<Value>>(connection)
        .await?
        .into_iter();
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let value: Option<Vec<u8>> = match replies.next() {
            Some(reply) => ::redis::from_redis_value(reply)?,
            None => None,
        };
        let counters = replies
            .by_ref()
            .take(key.generations.len())
            .map(::redis::from_redis_value::<Option<u64>>)
            .collect::<Result<Vec<_>, _>>()?;
        found.push(complete(connection, key, Read { value, counters }).await?);
    }
    Ok(found)
}

/// A lease for each missing key, in one round trip.
async fn lease_all(
    connection: &mut ConnectionManager,
    keys: &[CacheKey],
    missing: &[Missing],
    token: &str,
    policy: CachePolicy,
) -> Result<Vec<Lease>, ::redis::RedisError> {
    let mut pipe = ::redis::pipe();
    pipe.load_script(&LEASE).ignore();
    for miss in missing {
        let key = &keys[miss.at];
        pipe.invoke_script(
            LEASE
                .key(&key.value)
                .key(&key.lease)
                .arg(token)
                .arg(policy.lease.as_millis() as u64)
                .arg(miss.rejected.as_slice())
                .arg("0"),
        );
    }
    let replies: Vec<(i64, Option<Vec<u8>>)> = pipe.query_async(connection).await?;
    Ok(replies.into_iter().map(Lease::from_reply).collect())
}
