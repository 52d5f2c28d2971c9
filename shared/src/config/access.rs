//! Who may do what, and how often: the per-user and per-clinic rate limits by class of route
//! (`RATE_LIMITS_PER_USER`, `RATE_LIMITS_PER_CLINIC`), and how long a caller's standing (role,
//! active, operator, clinic archived) read from the database may be reused
//! (`CALLER_CACHE_TTL_SECONDS`). `shared::ratelimit` and `shared::access` apply them.

use super::vars::Vars;
use http::Method;
use std::time::Duration;

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

    pub(crate) fn index(self) -> usize {
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
    pub(crate) fn interval_micros(&self) -> u64 {
        (self.window_micros() / u64::from(self.requests.max(1))).max(1)
    }

    /// GCRA's burst tolerance: the whole window, so a full quota may arrive at once.
    pub(crate) fn window_micros(&self) -> u64 {
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

/// The longest a caller's standing may be reused: a deactivated membership or an archived clinic
/// loses access within it even from a Lambda environment that missed the invalidation.
pub const CALLER_CACHE_TTL_CEILING_SECONDS: u64 = 60;

#[derive(Clone, Debug)]
pub struct AccessConfig {
    pub limits: RateLimits,
    /// How long a caller's standing, read from the database, is reused (Redis).
    pub standing_ttl: Duration,
}

impl AccessConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let defaults = RateLimits::default();
        let mut quotas = |name: &str, defaults: Quotas| match vars.optional(name) {
            None => defaults,
            Some(raw) => defaults.with_overrides(&raw).unwrap_or_else(|error| {
                vars.problems.push(format!("{name}: {error}"));
                defaults
            }),
        };
        let per_user = quotas("RATE_LIMITS_PER_USER", defaults.per_user);
        let per_clinic = quotas("RATE_LIMITS_PER_CLINIC", defaults.per_clinic);
        let standing_ttl = vars.seconds("CALLER_CACHE_TTL_SECONDS", 30);
        vars.check_range(
            "CALLER_CACHE_TTL_SECONDS",
            standing_ttl.as_secs(),
            1..=CALLER_CACHE_TTL_CEILING_SECONDS,
        );
        Self {
            limits: RateLimits {
                per_user,
                per_clinic,
            },
            standing_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_change_only_the_classes_they_name() {
        let defaults = RateLimits::default().per_user;
        let changed = defaults.with_overrides(" uploads=5, admin=1 ").unwrap();
        assert_eq!(changed.get(RouteClass::Uploads), Quota::per_minute(5));
        assert_eq!(changed.get(RouteClass::Admin), Quota::per_minute(1));
        assert_eq!(
            changed.get(RouteClass::Reads),
            defaults.get(RouteClass::Reads)
        );
        assert_eq!(defaults.with_overrides("").unwrap(), defaults);
    }

    #[test]
    fn bad_overrides_say_what_is_wrong() {
        let defaults = RateLimits::default().per_user;
        for (raw, error) in [
            ("reads", QuotaError::Entry("reads".into())),
            ("deletes=5", QuotaError::Class("deletes".into())),
            ("reads=0", QuotaError::Requests("reads=0".into())),
            ("reads=-1", QuotaError::Requests("reads=-1".into())),
            ("reads=lots", QuotaError::Requests("reads=lots".into())),
        ] {
            assert_eq!(defaults.with_overrides(raw), Err(error), "{raw}");
        }
    }

    #[test]
    fn safe_methods_read_and_the_rest_write() {
        assert_eq!(RouteClass::for_method(&Method::GET), RouteClass::Reads);
        assert_eq!(RouteClass::for_method(&Method::HEAD), RouteClass::Reads);
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(RouteClass::for_method(&method), RouteClass::Writes);
        }
    }

    #[test]
    fn a_quota_spreads_its_requests_over_the_window() {
        let quota = Quota::per_minute(120);
        assert_eq!(quota.interval_micros(), 500_000);
        assert_eq!(quota.window_micros(), 60_000_000);
        let absurd = Quota {
            requests: u32::MAX,
            window: Duration::from_secs(1),
        };
        assert_eq!(absurd.interval_micros(), 1, "never zero");
    }
}
