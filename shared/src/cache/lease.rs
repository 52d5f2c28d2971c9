//! The fill lease (`lease.lua`): who loads a missing or expiring value and stores it
//! (`fill.lua`), and the loads made without it.

use super::metrics::Event;
use super::policy::{CachePolicy, jittered};
use super::{Cache, CacheValue, envelope};
use crate::keys::CacheKey;
use ::redis::Script;
use ::redis::aio::ConnectionManager;
use rand::Rng;
use std::future::Future;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

pub(super) static LEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lease.lua")));
pub(super) static FILL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("fill.lua")));
pub(super) static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("release.lua")));

/// What `lease.lua` answered.
pub(super) enum Lease {
    Hit(Vec<u8>),
    Granted,
    Busy,
}

impl Cache {
    /// Loads without the lease and stores nothing: Redis is skipped or failed, or the filler
    /// took longer than the policy's wait.
    pub(super) async fn load_uncached<T, E, F, Fut>(
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

    pub(super) fn record_load(
        &self,
        policy: CachePolicy,
        key: &CacheKey,
        took: Duration,
        ok: bool,
    ) {
        if ok {
            self.metrics.record_load(policy.name, key.clinic, took);
        } else {
            self.record(policy, key, Event::LoadError);
        }
    }

    /// Loads as the lease holder and stores the value unless an invalidation cancelled the lease.
    pub(super) async fn fill<T, E, F, Fut>(
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
                Ok(bytes) => {
                    let mut fill = ::redis::pipe();
                    fill.load_script(&FILL).ignore();
                    let ttl = fresh_for + policy.serve_stale_for;
                    add_fill(&mut fill, key, token, &bytes, ttl);
                    fill.query_async::<(i64,)>(connection)
                        .await
                        .map(|(stored,)| stored == 1)
                }
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
                self.redis_failed();
            }
        }
        loaded
    }
}

/// Adds to `pipe` (which loaded `fill.lua` before) the store of `bytes` as `key`'s value for
/// `ttl` if `token`'s lease still stands: a SET of the bytes under a key of their own beside the
/// value, then `fill.lua`, which renames them into place or drops them. A value of 300 KB costs
/// ~0.35 ms more passed through the script than SET. The script's reply (1 stored, 0 not) is
/// the only one added.
pub(super) fn add_fill(
    pipe: &mut ::redis::Pipeline,
    key: &CacheKey,
    token: &str,
    bytes: &[u8],
    ttl: Duration,
) {
    let staged = format!("{}:filling:{token}", key.value);
    pipe.cmd("SET")
        .arg(&staged)
        .arg(bytes)
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .ignore();
    pipe.invoke_script(FILL.key(&key.value).key(&key.lease).key(&staged).arg(token));
}

pub(super) async fn lease(
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
    Ok(Lease::from_reply((status, value)))
}

impl Lease {
    /// What `lease.lua` returned.
    pub(super) fn from_reply((status, value): (i64, Option<Vec<u8>>)) -> Self {
        match (status, value) {
            (1, Some(bytes)) => Lease::Hit(bytes),
            (2, _) => Lease::Granted,
            _ => Lease::Busy,
        }
    }
}

pub(super) fn lease_token() -> String {
    format!("{:016x}", rand::rng().random::<u64>())
}
