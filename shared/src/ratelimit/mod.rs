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

use crate::ids::{ClinicId, UserId};
use crate::keys::Keys;
use crate::redis::{RedisConnector, RedisFailure};
use crate::telemetry::ErrorChain;
use ::redis::Script;
use http::{HeaderName, HeaderValue, Method};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("gcra.lua")));

/// What a route does, as far as its cost to the others is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteClass {
    Reads,
    Writes,
    Uploads,
    Reports,
    Admin,
}

impl RouteClass {
    pub const ALL: [RouteClass; 5] = [
        RouteClass::Reads,
        RouteClass::Writes,
        RouteClass::Uploads,
        RouteClass::Reports,
        RouteClass::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Reads => "reads",
            RouteClass::Writes => "writes",
            RouteClass::Uploads => "uploads",
            RouteClass::Reports => "reports",
            RouteClass::Admin => "admin",
        }
    }

    /// The class of a route that declares none: reads for safe methods, writes otherwise.
    pub fn for_method(method: &Method) -> RouteClass {
        if method.is_safe() {
            RouteClass::Reads
        } else {
            RouteClass::Writes
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `requests` per `window`, of which all may come at once after a quiet window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub requests: u32,
    pub window: Duration,
}

impl Quota {
    pub const fn per_minute(requests: u32) -> Quota {
        Quota {
            requests,
            window: Duration::from_secs(60),
        }
    }

    /// GCRA's emission interval: one request's share of the window (at least 1 µs).
    fn interval_micros(&self) -> u64 {
        (self.window_micros() / u64::from(self.requests.max(1))).max(1)
    }

    /// GCRA's burst tolerance: the whole window, so a full quota may arrive at once.
    fn window_micros(&self) -> u64 {
        u64::try_from(self.window.as_micros()).unwrap_or(u64::MAX)
    }
}

/// One quota per route class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas([Quota; 5]);

impl Quotas {
    /// Per minute, in `RouteClass::ALL` order.
    pub const fn per_minute(
        reads: u32,
        writes: u32,
        uploads: u32,
        reports: u32,
        admin: u32,
    ) -> Self {
        Quotas([
            Quota::per_minute(reads),
            Quota::per_minute(writes),
            Quota::per_minute(uploads),
            Quota::per_minute(reports),
            Quota::per_minute(admin),
        ])
    }

    pub fn get(&self, class: RouteClass) -> Quota {
        self.0[class.index()]
    }

    /// These quotas with the ones `raw` names changed: `reads=600,uploads=20` (requests per
    /// minute, each at least 1); a class left out keeps its quota.
    pub fn with_overrides(&self, raw: &str) -> Result<Quotas, QuotaError> {
        let mut quotas = self.clone();
        for entry in raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (name, requests) = entry
                .split_once('=')
                .ok_or_else(|| QuotaError::Entry(entry.to_string()))?;
            let class = RouteClass::ALL
                .into_iter()
                .find(|class| class.as_str() == name.trim())
                .ok_or_else(|| QuotaError::Class(name.trim().to_string()))?;
            let requests = requests
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|requests| *requests >= 1)
                .ok_or_else(|| QuotaError::Requests(entry.to_string()))?;
            quotas.0[class.index()] = Quota::per_minute(requests);
        }
        Ok(quotas)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    #[error("`{0}` is not `class=requests`")]
    Entry(String),
    #[error("`{0}` is not a route class (reads, writes, uploads, reports, admin)")]
    Class(String),
    #[error("`{0}`: requests per minute must be a whole number of at least 1")]
    Requests(String),
}

/// The limits every function applies: per user and per clinic, by route class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub per_user: Quotas,
    pub per_clinic: Quotas,
}

impl Default for RateLimits {
    /// Generous for a person at a desk (a busy receptionist reads a few times a second at
    /// most); the clinic's are sized for a large clinic's whole staff at once.
    fn default() -> Self {
        RateLimits {
            per_user: Quotas::per_minute(600, 120, 30, 10, 60),
            per_clinic: Quotas::per_minute(3000, 600, 120, 30, 300),
        }
    }
}

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
        match self.charge(&keys, &policies).await {
            Ok(reply) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits enforced again: Redis answers");
                }
                verdict(policies, &reply)
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %ErrorChain(&error),
                        "rate limits not enforced: Redis cannot be asked; requests pass"
                    );
                }
                Verdict::Unchecked
            }
        }
    }

    async fn charge(
        &self,
        keys: &[String; 2],
        policies: &[Policy; 2],
    ) -> Result<Vec<i64>, RedisFailure> {
        let mut connection = self.redis.connection().await?;
        let mut invocation = GCRA.prepare_invoke();
        for (key, policy) in keys.iter().zip(policies) {
            invocation
                .key(key)
                .arg(policy.quota.interval_micros())
                .arg(policy.quota.window_micros());
        }
        Ok(invocation.invoke_async(&mut connection).await?)
    }
}

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
