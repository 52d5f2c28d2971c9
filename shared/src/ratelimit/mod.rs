//! Rate limits per user and per clinic, by class of route, kept in Redis.
//!
//! Every authenticated request is charged to two buckets of its route's class: the caller's own
//! and the whole clinic's. The user bucket keeps one person (or one leaked token) from crowding
//! out their colleagues; the clinic bucket keeps one clinic from crowding out every other on the
//! shared functions, database and queue. Both are checked and charged in one Lua call (GCRA,
//! `gcra.lua`), so the limiter costs one Redis round trip; a refused request charges neither.
//!
//! Over a limit the caller gets 429 `/problems/rate-limited` with `Retry-After`; every limited
//! response carries the `RateLimit-Policy` and `RateLimit` headers of the IETF draft
//! (draft-ietf-httpapi-ratelimit-headers), naming the bucket closest to its limit.
//!
//! When Redis cannot be asked, requests pass (fail open): the limiter protects capacity, and
//! refusing every clinic because Redis is down would take away what it protects. The outage is
//! logged once, and once more when Redis answers again.

pub use crate::config::{Quota, QuotaError, Quotas, RateLimits, RouteClass};

use crate::ids::{ClinicId, UserId};
use crate::keys::Keys;
use crate::redis::{RedisConnector, RedisFailure};
use crate::telemetry::ErrorChain;
use ::redis::Script;
use http::{HeaderName, HeaderValue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));

/// Whose bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    User,
    Clinic,
}

/// One bucket's quota, as the headers name it: `user-reads`, `clinic-uploads`…
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub scope: Scope,
    pub class: RouteClass,
    pub quota: Quota,
}

impl Policy {
    pub fn name(&self) -> String {
        let scope = match self.scope {
            Scope::User => "user",
            Scope::Clinic => "clinic",
        };
        format!("{scope}-{}", self.class.as_str())
    }
}

/// Where a request stands against both of its buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub policies: [Policy; 2],
    /// The bucket with the fewest requests left.
    pub tightest: Policy,
    pub remaining: u64,
    /// Until that bucket is full again.
    pub reset: Duration,
}

impl Usage {
    /// `RateLimit-Policy` and `RateLimit`, as structured fields.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        let policies = self
            .policies
            .iter()
            .map(|policy| {
                format!(
                    "\"{}\";q={};w={}",
                    policy.name(),
                    policy.quota.requests,
                    policy.quota.window.as_secs().max(1)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let state = format!(
            "\"{}\";r={};t={}",
            self.tightest.name(),
            self.remaining,
            whole_seconds(self.reset)
        );
        [
            (
                HeaderName::from_static("ratelimit-policy"),
                header(policies),
            ),
            (HeaderName::from_static("ratelimit"), header(state)),
        ]
    }
}

fn header(value: String) -> HeaderValue {
    // Built from names, digits and punctuation only.
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Seconds, rounded up: a client told 0 would retry at once and be refused again.
pub fn whole_seconds(duration: Duration) -> u64 {
    duration.as_micros().div_ceil(1_000_000) as u64
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed(Usage),
    Limited {
        usage: Usage,
        retry_after: Duration,
    },
    /// Redis could not be asked; the request passes.
    Unchecked,
}

pub struct RateLimiter {
    redis: Arc<RedisConnector>,
    keys: Keys,
    limits: RateLimits,
    /// Whether the last check could not reach Redis: the outage is logged when it starts and
    /// when it ends, not on every request.
    failing: AtomicBool,
}

impl RateLimiter {
    pub fn new(redis: Arc<RedisConnector>, keys: Keys, limits: RateLimits) -> Self {
        Self {
            redis,
            keys,
            limits,
            failing: AtomicBool::new(false),
        }
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Charges one request of `user` in `clinic` to its class's buckets, if both have room.
    pub async fn check(&self, clinic: ClinicId, user: UserId, class: RouteClass) -> Verdict {
        self.check_and_read(clinic, user, class, &[]).await.0
    }

    /// [`check`](Self::check), reading `reads` (keys under the clinic's hash tag) in the same
    /// round trip. The values are `None` when absent, and all `None` when Redis could not be
    /// asked.
    pub async fn check_and_read(
        &self,
        clinic: ClinicId,
        user: UserId,
        class: RouteClass,
        reads: &[String],
    ) -> (Verdict, Vec<Option<Vec<u8>>>) {
        let policies = [
            Policy {
                scope: Scope::User,
                class,
                quota: self.limits.per_user.get(class),
            },
            Policy {
                scope: Scope::Clinic,
                class,
                quota: self.limits.per_clinic.get(class),
            },
        ];
        let keys = [
            self.keys.rate_user_bucket(clinic, user, class.as_str()),
            self.keys.rate_clinic_bucket(clinic, class.as_str()),
        ];
        match self.charge(&keys, &policies, reads).await {
            Ok(reply) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits enforced again: Redis answers");
                }
                let (numbers, values) = reply;
                (verdict(policies, &numbers), values)
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %ErrorChain(&error),
                        "rate limits not enforced: Redis cannot be asked; requests pass"
                    );
                }
                (Verdict::Unchecked, vec![None; reads.len()])
            }
        }
    }

    async fn charge(
        &self,
        buckets: &[String; 2],
        policies: &[Policy; 2],
        reads: &[String],
    ) -> Result<Reply, RedisFailure> {
        let mut connection = self.redis.connection().await?;
        let mut invocation = GCRA.prepare_invoke();
        for (key, policy) in buckets.iter().zip(policies) {
            invocation
                .key(key)
                .arg(policy.quota.interval_micros())
                .arg(policy.quota.window_micros());
        }
        // The reads ride the same round trip as a plain MGET beside the script, not inside it:
        // a value read in Lua is copied into a Lua string, which makes a 300 KB value four
        // times slower to read (0.58 ms against 0.14 ms).
        let mut pipe = ::redis::pipe();
        pipe.load_script(&GCRA).ignore();
        pipe.invoke_script(&invocation);
        if !reads.is_empty() {
            pipe.cmd("MGET").arg(reads);
        }
        let mut replies = pipe
            .query_async::<Vec<::redis::Value>>(&mut connection)
            .await?
            .into_iter()
            .map(|reply| match reply {
                ::redis::Value::Array(items) => items,
                _ => Vec::new(),
            });
        let numbers = replies.next().unwrap_or_default();
        let numbers = numbers
            .into_iter()
            .map(|value| ::redis::from_redis_value::<i64>(value).unwrap_or(-1))
            .collect();
        let mut values: Vec<Option<Vec<u8>>> = replies
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|value| {
                ::redis::from_redis_value::<Option<Vec<u8>>>(value)
                    .ok()
                    .flatten()
            })
            .collect();
        values.resize(reads.len(), None);
        Ok((numbers, values))
    }
}

/// The script's numbers (verdict and buckets), and the values of the keys read beside it (in
/// their order; `None` when absent).
type Reply = (Vec<i64>, Vec<Option<Vec<u8>>>);

/// Reads the script's reply: allowed, retry-after µs, then remaining and reset µs per bucket.
fn verdict(policies: [Policy; 2], reply: &[i64]) -> Verdict {
    let micros = |value: i64| Duration::from_micros(u64::try_from(value).unwrap_or(0));
    let bucket = |i: usize| {
        let remaining = reply.get(2 + 2 * i).copied().unwrap_or(0);
        let reset = reply.get(3 + 2 * i).copied().unwrap_or(0);
        (u64::try_from(remaining).unwrap_or(0), micros(reset))
    };
    let (user, clinic) = (bucket(0), bucket(1));
    let (tightest, (remaining, reset)) = if clinic.0 < user.0 {
        (policies[1], clinic)
    } else {
        (policies[0], user)
    };
    let usage = Usage {
        policies,
        tightest,
        remaining,
        reset,
    };
    match reply.first() {
        Some(1) => Verdict::Allowed(usage),
        Some(0) => Verdict::Limited {
            usage,
            retry_after: micros(reply.get(1).copied().unwrap_or(0)),
        },
        _ => Verdict::Unchecked,
    }
}

#[cfg(test)]
mod tests;
