//! Each named cache's policy: its freshness setting, stale serving, lease and wait, and the
//! jitter applied to every freshness.

use crate::config::CacheConfig;
use rand::Rng;
use std::time::Duration;

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

/// An organization's dashboard, rolled up from its clinics' cached ones: same freshness and
/// stale serving as theirs; a fill may read a hundred clinics' dashboards, so its lease and
/// wait are longer.
pub const ORGANIZATION_DASHBOARD: CachePolicy = CachePolicy {
    name: "organization_dashboard",
    ttl: Ttl::Configured(|config| config.dashboard_ttl),
    serve_stale_for: Duration::from_secs(60 * 60),
    lease: Duration::from_secs(20),
    max_wait: Duration::from_secs(3),
    xfetch_beta: 2.0,
};

/// One clinic-day of free time (`crate::schedule::availability`). Never served stale: a slot
/// booked a moment ago must not be offered; invalidated by every booking of the day and, through
/// the clinic's schedule generation, by every change of hours, time off, chairs or staff.
pub const AVAILABILITY: CachePolicy = CachePolicy {
    name: "availability",
    ttl: Ttl::Configured(|config| config.availability_ttl),
    serve_stale_for: Duration::ZERO,
    lease: Duration::from_secs(3),
    max_wait: Duration::from_millis(300),
    xfetch_beta: 1.0,
};

/// A free-slot search's whole answer, for the minute it was asked in (its question names the
/// minute, so a minute is all it lives); dropped with the clinic's days.
pub const AVAILABILITY_ANSWERS: CachePolicy = CachePolicy {
    name: "availability_answers",
    ttl: Ttl::Fixed(Duration::from_secs(60)),
    serve_stale_for: Duration::ZERO,
    lease: Duration::from_secs(3),
    max_wait: Duration::from_millis(300),
    xfetch_beta: 0.0,
};

pub const CLINIC_LIST: CachePolicy = CachePolicy {
    name: "clinic_list",
    ttl: Ttl::Configured(|config| config.clinic_list_ttl),
    serve_stale_for: Duration::from_secs(60 * 60),
    lease: Duration::from_secs(5),
    max_wait: Duration::from_secs(1),
    xfetch_beta: 1.0,
};

/// ±10 %, so keys written together do not expire together.
pub(super) fn jittered(ttl: Duration) -> Duration {
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
            availability_ttl: Duration::from_secs(5),
            metrics_emf: false,
            metrics_flush: Duration::from_secs(10),
        };
        let resolved: Vec<u64> = [
            PATIENT_PROFILE,
            CATALOG_VIEW,
            DASHBOARD,
            CLINIC_LIST,
            AVAILABILITY,
        ]
        .iter()
        .map(|policy| policy.ttl.resolve(&config).as_secs())
        .collect();
        assert_eq!(resolved, [1, 2, 3, 4, 5]);
        assert_eq!(
            Ttl::Fixed(Duration::from_secs(9)).resolve(&config),
            Duration::from_secs(9)
        );
    }
}
