//! Cache counters per cache name (and clinic): kept in process, added to Redis hashes every few
//! seconds for the admin view (all Lambda environments together), and written to the logs as
//! CloudWatch Embedded Metric Format, so CloudWatch graphs them without a metrics API call.
//!
//! Counting is a short mutex-protected increment; nothing on a request path waits for Redis
//! except the one request per flush interval that does the flush.

use crate::ids::ClinicId;
use ::redis::aio::ConnectionManager;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upper bounds (ms) of the load-time histogram buckets; the last bucket is open.
pub const LOAD_BUCKETS_MS: [f64; 10] = [0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0];
/// Load-time samples kept per cache name between flushes for the EMF line (its limit is 100).
const EMF_SAMPLES: usize = 100;

#[derive(Clone, Copy, Debug)]
pub enum Event {
    Hit,
    Miss,
    /// A value past its freshness served while another caller recomputes it.
    StaleServe,
    /// XFetch picked this caller to recompute a still-fresh value.
    EarlyRefresh,
    /// A Redis call failed or timed out (the read went to PostgreSQL).
    RedisError,
    /// The circuit breaker was open: Redis was not asked at all.
    Bypass,
    /// A load that returned an error (PostgreSQL down, a bug).
    LoadError,
}

#[derive(Default, Clone)]
struct Counters {
    hits: u64,
    misses: u64,
    stale_serves: u64,
    early_refreshes: u64,
    redis_errors: u64,
    bypasses: u64,
    loads: u64,
    load_errors: u64,
    load_micros: u64,
    load_buckets: [u64; LOAD_BUCKETS_MS.len() + 1],
    load_samples_ms: Vec<f64>,
}

impl Counters {
    fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        [
            ("hits", self.hits),
            ("misses", self.misses),
            ("stale_serves", self.stale_serves),
            ("early_refreshes", self.early_refreshes),
            ("redis_errors", self.redis_errors),
            ("bypasses", self.bypasses),
            ("loads", self.loads),
            ("load_errors", self.load_errors),
            ("load_micros", self.load_micros),
        ]
        .into_iter()
        .chain(
            BUCKET_FIELDS
                .iter()
                .zip(self.load_buckets)
                .map(|(name, count)| (*name, count)),
        )
    }

    fn add(&mut self, other: &Counters) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.stale_serves += other.stale_serves;
        self.early_refreshes += other.early_refreshes;
        self.redis_errors += other.redis_errors;
        self.bypasses += other.bypasses;
        self.loads += other.loads;
        self.load_errors += other.load_errors;
        self.load_micros += other.load_micros;
        for (mine, theirs) in self.load_buckets.iter_mut().zip(other.load_buckets) {
            *mine += theirs;
        }
        let room = EMF_SAMPLES.saturating_sub(self.load_samples_ms.len());
        self.load_samples_ms
            .extend(other.load_samples_ms.iter().take(room));
    }
}

/// Redis hash field names of the histogram buckets, `load_le_<ms>` and `load_gt_1000`.
const BUCKET_FIELDS: [&str; LOAD_BUCKETS_MS.len() + 1] = [
    "load_le_0.5",
    "load_le_1",
    "load_le_2",
    "load_le_5",
    "load_le_10",
    "load_le_25",
    "load_le_50",
    "load_le_100",
    "load_le_250",
    "load_le_1000",
    "load_gt_1000",
];

type Slot = (&'static str, Option<ClinicId>);

pub struct Metrics {
    counters: Mutex<HashMap<Slot, Counters>>,
    last_flush: Mutex<Instant>,
    flush_every: Duration,
    emf: bool,
}

/// What one flush hands to Redis and the logs.
pub struct Flush {
    by_slot: HashMap<Slot, Counters>,
}

impl Metrics {
    pub fn new(flush_every: Duration, emf: bool) -> Self {
        Self {
            counters: Mutex::new(HashMap::new()),
            last_flush: Mutex::new(Instant::now()),
            flush_every,
            emf,
        }
    }

    pub fn record(&self, name: &'static str, clinic: Option<ClinicId>, event: Event) {
        self.with(name, clinic, |counters| match event {
            Event::Hit => counters.hits += 1,
            Event::Miss => counters.misses += 1,
            Event::StaleServe => counters.stale_serves += 1,
            Event::EarlyRefresh => counters.early_refreshes += 1,
            Event::RedisError => counters.redis_errors += 1,
            Event::Bypass => counters.bypasses += 1,
            Event::LoadError => counters.load_errors += 1,
        });
    }

    pub fn record_load(&self, name: &'static str, clinic: Option<ClinicId>, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        let bucket = LOAD_BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LOAD_BUCKETS_MS.len());
        self.with(name, clinic, |counters| {
            counters.loads += 1;
            counters.load_micros += took.as_micros() as u64;
            counters.load_buckets[bucket] += 1;
            if counters.load_samples_ms.len() < EMF_SAMPLES {
                counters.load_samples_ms.push(ms);
            }
        });
    }

    fn with(
        &self,
        name: &'static str,
        clinic: Option<ClinicId>,
        change: impl FnOnce(&mut Counters),
    ) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        change(counters.entry((name, clinic)).or_default());
    }

    /// Takes the counters when the flush interval has passed (or `force`), for exactly one caller.
    pub fn take_due(&self, force: bool) -> Option<Flush> {
        {
            let mut last = self.last_flush.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.elapsed() < self.flush_every {
                return None;
            }
            *last = Instant::now();
        }
        let by_slot = std::mem::take(&mut *self.counters.lock().unwrap_or_else(|p| p.into_inner()));
        (!by_slot.is_empty()).then_some(Flush { by_slot })
    }

    /// Puts counters back after Redis refused them, so the next flush carries them.
    pub fn restore(&self, flush: Flush) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        for (slot, taken) in flush.by_slot {
            counters.entry(slot).or_default().add(&taken);
        }
    }

    pub fn emf_enabled(&self) -> bool {
        self.emf
    }
}

impl Flush {
    /// Adds the counters to the clinic's and the global stats hashes in one pipeline.
    pub async fn write_to_redis(
        &self,
        connection: &mut ConnectionManager,
        stats_key: impl Fn(Option<ClinicId>) -> String,
    ) -> Result<(), ::redis::RedisError> {
        let mut pipe = ::redis::pipe();
        let since = chrono::Utc::now().timestamp();
        let mut touched = Vec::new();
        for ((name, clinic), counters) in &self.by_slot {
            let targets = match clinic {
                Some(clinic) => vec![stats_key(Some(*clinic)), stats_key(None)],
                None => vec![stats_key(None)],
            };
            for key in targets {
                for (field, count) in counters.fields().filter(|(_, count)| *count > 0) {
                    pipe.hincr(&key, format!("{name}:{field}"), count).ignore();
                }
                touched.push(key);
            }
        }
        touched.sort();
        touched.dedup();
        for key in touched {
            pipe.hset_nx(&key, "since", since).ignore();
        }
        pipe.query_async::<()>(connection).await
    }

    /// One CloudWatch Embedded Metric Format document per cache name (clinics added together:
    /// a clinic dimension would multiply the metric count by a thousand).
    pub fn emf_lines(&self, environment: &str) -> Vec<String> {
        let mut by_name: BTreeMap<&'static str, Counters> = BTreeMap::new();
        for ((name, _), counters) in &self.by_slot {
            by_name.entry(name).or_default().add(counters);
        }
        let timestamp = chrono::Utc::now().timestamp_millis();
        by_name
            .into_iter()
            .map(|(name, counters)| emf_document(name, environment, timestamp, &counters))
            .collect()
    }
}

fn emf_document(name: &str, environment: &str, timestamp: i64, counters: &Counters) -> String {
    const COUNTS: [(&str, &str); 8] = [
        ("CacheHits", "hits"),
        ("CacheMisses", "misses"),
        ("CacheStaleServes", "stale_serves"),
        ("CacheEarlyRefreshes", "early_refreshes"),
        ("CacheLoads", "loads"),
        ("CacheLoadErrors", "load_errors"),
        ("CacheRedisErrors", "redis_errors"),
        // Reads that skipped Redis because the breaker was open (the breaker alarm).
        ("CacheBypasses", "bypasses"),
    ];
    let fields: HashMap<&str, u64> = counters.fields().collect();
    let mut metrics: Vec<(&str, &str, serde_json::Value)> = COUNTS
        .iter()
        .map(|(metric, field)| {
            (
                *metric,
                "Count",
                fields.get(field).copied().unwrap_or(0).into(),
            )
        })
        .collect();
    if !counters.load_samples_ms.is_empty() {
        metrics.push((
            "CacheLoadTime",
            "Milliseconds",
            serde_json::json!(counters.load_samples_ms),
        ));
    }
    // Per cache, and every cache of the deployment together (the hit-rate alarm).
    crate::telemetry::emf_line(
        &[("Environment", environment), ("CacheName", name)],
        &[&["Environment"]],
        &metrics,
        timestamp,
    )
}

/// One cache name's counters as the admin view shows them.
#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct CacheNameStats {
    pub hits: u64,
    pub misses: u64,
    pub stale_serves: u64,
    pub early_refreshes: u64,
    pub loads: u64,
    pub load_errors: u64,
    pub redis_errors: u64,
    pub bypasses: u64,
    /// Reads answered from Redis (stale serves included) over all reads (misses, early
    /// refreshes and breaker bypasses included); `None` before the first read.
    pub hit_rate: Option<f64>,
    pub load_ms_mean: Option<f64>,
    /// Upper bound of the histogram bucket holding the median / 99th percentile load.
    pub load_ms_p50_at_most: Option<f64>,
    pub load_ms_p99_at_most: Option<f64>,
}

/// Parses a stats hash (`<cache>:<counter>` fields) into per-cache figures.
pub fn parse_stats(hash: &HashMap<String, u64>) -> BTreeMap<String, CacheNameStats> {
    let mut raw: BTreeMap<String, HashMap<String, u64>> = BTreeMap::new();
    for (field, value) in hash {
        if let Some((name, counter)) = field.split_once(':') {
            raw.entry(name.to_string())
                .or_default()
                .insert(counter.to_string(), *value);
        }
    }
    raw.into_iter()
        .map(|(name, fields)| {
            let get = |field: &str| fields.get(field).copied().unwrap_or(0);
            let buckets: Vec<u64> = BUCKET_FIELDS.iter().map(|field| get(field)).collect();
            let served = get("hits") + get("stale_serves");
            // An early refresh served a value loaded from PostgreSQL: a read, not a hit.
            let reads = served + get("misses") + get("bypasses") + get("early_refreshes");
            let loads = get("loads");
            let stats = CacheNameStats {
                hits: get("hits"),
                misses: get("misses"),
                stale_serves: get("stale_serves"),
                early_refreshes: get("early_refreshes"),
                loads,
                load_errors: get("load_errors"),
                redis_errors: get("redis_errors"),
                bypasses: get("bypasses"),
                hit_rate: (reads > 0).then(|| served as f64 / reads as f64),
                load_ms_mean: (loads > 0)
                    .then(|| get("load_micros") as f64 / 1000.0 / loads as f64),
                load_ms_p50_at_most: bucket_quantile(&buckets, 0.50),
                load_ms_p99_at_most: bucket_quantile(&buckets, 0.99),
            };
            (name, stats)
        })
        .collect()
}

/// The upper bound of the bucket holding quantile `q`: infinite (JSON `null`) when it falls past
/// the last bound, `None` before the first load.
fn bucket_quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (index, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(LOAD_BUCKETS_MS.get(index).copied().unwrap_or(f64::INFINITY));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reach_the_emf_document_per_cache_name() {
        let metrics = Metrics::new(Duration::from_secs(60), true);
        let clinic = Some(ClinicId(uuid::Uuid::nil()));
        metrics.record("patient_profile", clinic, Event::Hit);
        metrics.record("patient_profile", clinic, Event::Hit);
        metrics.record("patient_profile", None, Event::Miss);
        metrics.record_load("patient_profile", clinic, Duration::from_micros(1500));
        assert!(metrics.take_due(false).is_none(), "not due yet");
        let flush = metrics.take_due(true).expect("forced");
        let lines = flush.emf_lines("test");
        assert_eq!(lines.len(), 1);
        let doc: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(doc["CacheName"], "patient_profile");
        assert_eq!(doc["CacheHits"], 2);
        assert_eq!(doc["CacheMisses"], 1);
        assert_eq!(doc["CacheLoads"], 1);
        assert_eq!(doc["CacheLoadTime"], serde_json::json!([1.5]));
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Environment", "CacheName"], ["Environment"]])
        );
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in names {
            assert!(doc.get(name).is_some(), "{name} has a value");
        }
        assert!(metrics.take_due(true).is_none(), "the counters were taken");
    }

    #[test]
    fn stats_derive_rates_and_bucket_percentiles() {
        let hash: HashMap<String, u64> = [
            ("dashboard:hits", 90),
            ("dashboard:stale_serves", 5),
            ("dashboard:misses", 5),
            ("dashboard:loads", 5),
            ("dashboard:load_micros", 40_000),
            ("dashboard:load_le_5", 4),
            ("dashboard:load_le_25", 1),
            ("since", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let stats = parse_stats(&hash);
        let dashboard = &stats["dashboard"];
        assert_eq!(dashboard.hit_rate, Some(0.95));
        assert_eq!(dashboard.load_ms_mean, Some(8.0));
        assert_eq!(dashboard.load_ms_p50_at_most, Some(5.0));
        assert_eq!(dashboard.load_ms_p99_at_most, Some(25.0));
        assert_eq!(stats.len(), 1, "`since` is not a cache");
    }
}
