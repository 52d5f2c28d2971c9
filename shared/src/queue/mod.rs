//! Durable background jobs: PostgreSQL holds every job (the truth), Redis carries their ids to
//! the workers (the delivery channel).
//!
//! **Enqueue** (transactional outbox): a context calls [`Queue::stage`] inside the transaction of
//! its domain change, so the job exists exactly when that change commits, then
//! [`Queue::dispatch`] after the commit pushes the id to Redis (`push.lua`). A push that
//! fails is only logged: the sweep pushes it later.
//!
//! **Redis layout** ([`crate::keys::QueueKeys`], one hash tag, so every script runs on one slot):
//! one ready LIST of ids per clinic; `fresh` and `active` (LISTs of the clinics with jobs ready:
//! just arrived, and the ring); `processing` (ZSET id → lease deadline), `delayed` (ZSET id →
//! retry time) and `known` (HASH id → `<clinic>:<peak MiB>` of every id in one of them). Job
//! ids only: payloads (and anything about patients) stay in PostgreSQL.
//!
//! **Fairness**: a claim serves the clinics that just got work first, then goes round the ring,
//! one job per clinic per turn (`claim.lua`; `ready.lua` keeps the lists in step). A clinic's
//! backlog of hundreds of uploads does not hold another clinic's job back: that job is taken by
//! the next claim. Within a clinic, jobs run in the order they became ready.
//!
//! **Memory**: a claim takes only jobs that fit in the memory the worker has free (each weighs
//! its kind's peak, `jobs.peak_memory_mib`), passing over a clinic whose next job does not fit.
//! So every claimed job starts at once: no claimed X-ray waits in the worker for room while
//! holding a slot, and another clinic's X-ray is next in line the moment room frees, not after
//! the jobs one clinic had already claimed.
//!
//! **Delivery**: a worker takes a batch with `claim.lua` (ready → processing with a lease, in one
//! step), marks the batch running in one statement, runs the handlers, records the outcomes in one
//! statement and settles the batch with `ack.lua` (processing → gone, or → delayed for a retry).
//! Long jobs renew their lease; `move_due.lua` is both the reaper (expired leases → ready) and
//! the promotion of due retries (delayed → ready), each to the tail of its clinic's list.
//! Delivery is at-least-once: a handler may run twice and must be idempotent. Every outcome is
//! fenced by the job's delivery count, so a worker that lost its lease can never overwrite the
//! newer attempt's outcome.
//!
//! **Recovery** (the sweep, [`Queue::maintain`]): unfinished jobs that PostgreSQL has and
//! `known` lacks (the push after commit failed, Redis restarted empty or was flushed) are pushed
//! again. `push.lua` pushes only ids `known` lacks, so the sweep, a late push and a replay
//! never queue a job twice.
//!
//! States (`jobs.status`): `queued` → `running` → `succeeded`; a failed attempt → `failed` (retry
//! scheduled at `run_at`, exponential backoff with jitter) → `running` …; out of attempts or a
//! permanent failure → `dead`, which an admin may replay (→ `queued`, attempts from zero).
//! A delivery lost with its worker (the lease expired while the job ran) is handed back twice
//! without using an attempt, since the job may only have been beside the one that brought the
//! worker down; from the third loss on, each counts (`jobs.lost_deliveries`,
//! `repository::claim`).
//!
//! A handler that produced a resource returns its path as `{"location": "/xrays/…", …}`:
//! `GET /jobs/{id}` shows it as `result_url`.

mod delivery;
mod enqueue;
mod handlers;
mod maintenance;
mod presence;
mod repository;
mod routes;
mod status;
mod types;
mod view;
mod waker;
pub mod worker;

pub use handlers::{HandlerResult, Handlers};
pub use maintenance::{MaintenanceReport, SweepReport};
pub use presence::{Leaving, Left, Presence, WakeReason};
pub use routes::{router, routes};
pub use types::*;
pub use view::{JobView, QueueCounters, QueueFigures, RedisQueueSizes};
pub use waker::{WAKE_SOURCE, WakeError, wake_token};
pub use worker::{Drain, DrainReport, StopReason, Worker};

use crate::config::QueueConfig;
use crate::db::{self, DbError, TenantTx};
use crate::http::ApiError;
use crate::ids::{ClinicId, JobId};
use crate::keys::{Keys, QueueKeys};
use crate::pagination::{Page, PageRequest};
use crate::redis::{RedisConnector, RedisUnavailable};
use crate::telemetry::ErrorChain;
use ::redis::Script;
use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A script that moves jobs to or from the ready lists: `ready.lua`'s functions, then the
/// files given (the functions it also uses, then the script itself).
macro_rules! making_ready {
    ($($file:literal),+) => {
        concat!(include_str!("ready.lua") $(, "\n", include_str!($file))+)
    };
}

static DISPATCH: LazyLock<Script> =
    LazyLock::new(|| Script::new(making_ready!("push.lua", "dispatch.lua")));
/// `dispatch.lua` and the wake check in one step: an enqueue's push (`Queue::dispatch`).
static ENQUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(making_ready!("push.lua", "wakes.lua", "enqueue.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(making_ready!("claim.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("ack.lua")));
static MOVE_DUE: LazyLock<Script> = LazyLock::new(|| Script::new(making_ready!("move_due.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(making_ready!("release.lua")));
static REPLAY: LazyLock<Script> = LazyLock::new(|| Script::new(making_ready!("replay.lua")));
static SIZES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("sizes.lua")));

/// Most ids one reaper or promotion call moves; it repeats while it finds that many.
const MOVE_DUE_LIMIT: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("the queue's Redis is unreachable")]
    RedisUnreachable(#[from] RedisUnavailable),
    #[error("the queue's Redis failed")]
    Redis(#[from] ::redis::RedisError),
    /// The clinic already used this idempotency key for a job of another kind.
    #[error("the idempotency key was already used for a job of kind {existing_kind}")]
    IdempotencyKeyReused { existing_kind: String },
    /// The clinic already has `limit` unfinished jobs (`QUEUE_MAX_PENDING_PER_CLINIC`).
    #[error("the clinic has {limit} unfinished jobs already")]
    ClinicQueueFull { limit: u32 },
    /// A bug in the caller: the `jobs.max_attempts` check would reject it.
    #[error("max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {0}")]
    InvalidMaxAttempts(u8),
}

impl From<sqlx::Error> for QueueError {
    fn from(error: sqlx::Error) -> Self {
        QueueError::Db(DbError::from(error))
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        match error {
            QueueError::Db(error) => error.into(),
            QueueError::RedisUnreachable(_) | QueueError::Redis(_) => ApiError::Unavailable {
                source: Box::new(error),
                retry_after_seconds: 5,
            },
            QueueError::IdempotencyKeyReused { existing_kind } => ApiError::Validation {
                field: "Idempotency-Key".into(),
                detail: format!(
                    "This Idempotency-Key was already used for a different request (a job of \
                     kind {existing_kind}); send a new key for a new request."
                ),
            },
            QueueError::ClinicQueueFull { limit } => ApiError::QuotaExceeded {
                detail: format!(
                    "Your clinic has {limit} jobs waiting or running already; retry when some \
                     have finished."
                ),
                retry_after_seconds: 30,
            },
            QueueError::InvalidMaxAttempts(_) => ApiError::internal(error),
        }
    }
}

/// Which jobs a status view covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobScope {
    /// One clinic's jobs (row-level security as that clinic).
    Clinic(ClinicId),
    /// Every clinic's jobs: a platform admin (read through the `jobs_platform_read` policy).
    Platform { caller: ClinicId },
}

/// What [`Queue::replay`] found.
#[derive(Debug)]
pub enum Replay {
    Replayed(Box<JobRecord>),
    NotFound,
    /// Only dead and failed jobs are replayed.
    NotReplayable(JobStatus),
}

/// A job a worker holds: the job and the delivery that owns it (fences its outcome).
#[derive(Clone, Debug)]
pub struct JobLease {
    pub job: Job,
    pub delivery: i32,
    /// The memory (MiB) the claim counted it for: what the worker reserves while it runs.
    pub memory_mib: u32,
}

/// What a claim may fill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRoom {
    /// The memory the worker has free now, MiB.
    pub free_mib: u32,
    /// The worker's whole budget, MiB: a job heavier than this counts as this much (and so
    /// runs alone).
    pub budget_mib: u32,
    /// How many jobs one clinic may run in the worker at once.
    pub clinic_share: u32,
    /// How many each clinic runs there now (clinics running none left out).
    pub running: Vec<(ClinicId, u32)>,
}

/// What one claim took.
#[derive(Debug, Default)]
pub struct Claim {
    /// Jobs to run now.
    pub leases: Vec<JobLease>,
    /// Ids delivered again after their job finished, or unknown to PostgreSQL: settled without
    /// running.
    pub duplicates: usize,
    /// Jobs whose last attempt died with its worker: recorded dead without running.
    pub exhausted: usize,
    /// Ready jobs were passed over for lack of room (memory, or their clinic's share): a
    /// running job's end may let them in.
    pub left_for_room: bool,
    /// Clinics that just got work were not reached: the room ran out first.
    pub fresh_left: bool,
}

/// A handler's answer for one leased job.
#[derive(Debug)]
pub struct Outcome {
    pub lease: JobLease,
    pub result: HandlerResult,
}

/// What recording a batch of outcomes did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    pub succeeded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Outcomes of a delivery that no longer owned its job (its lease expired and the job was
    /// delivered again): ignored.
    pub stale: usize,
}

/// Counter increments of one ack.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    processed: u64,
    failed: u64,
    retried: u64,
    dead: u64,
}

impl Counts {
    fn is_zero(&self) -> bool {
        self.processed + self.failed + self.retried + self.dead == 0
    }
}

#[derive(Clone)]
pub struct Queue {
    redis: Arc<RedisConnector>,
    keys: Keys,
    queue_keys: Arc<QueueKeys>,
    config: Arc<QueueConfig>,
    /// The worker function to wake (`presence.rs`); `None` when none is configured.
    waker: Option<Arc<waker::Waker>>,
}

impl Queue {
    pub fn new(redis: Arc<RedisConnector>, keys: &Keys, config: &QueueConfig) -> Self {
        Self {
            redis,
            queue_keys: Arc::new(keys.queue()),
            keys: keys.clone(),
            config: Arc::new(config.clone()),
            waker: config
                .wake
                .clone()
                .map(|target| Arc::new(waker::Waker::new(target))),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.queue_keys
    }

    /// Exponential backoff with "equal jitter": half the doubled delay, plus up to as much
    /// again at random, so retries of jobs that failed together spread out.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let base = self.config.retry_base.as_millis() as u64;
        let max = self.config.retry_max.as_millis() as u64;
        let doubled = base
            .saturating_mul(1_u64 << attempt.saturating_sub(1).min(40))
            .min(max)
            .max(1);
        let half = doubled / 2;
        Duration::from_millis(half + rand::rng().random_range(0..=doubled - half))
    }
}

/// A transaction that sees the scope's jobs: a tenant transaction, or a platform-admin one.
async fn scoped_transaction(
    db: &PgPool,
    scope: JobScope,
) -> Result<(TenantTx, Option<ClinicId>), QueueError> {
    Ok(match scope {
        JobScope::Clinic(clinic) => (db::begin_tenant(db, clinic).await?, Some(clinic)),
        JobScope::Platform { caller } => (db::begin_platform(db, caller).await?, None),
    })
}

/// Unix time in milliseconds: lease deadlines and retry times in Redis. Every worker compares
/// them with its own clock, so clocks must agree to well within a lease (NTP does).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisConfig;
    use crate::config::Secret;

    fn queue(base_ms: u64, max_ms: u64) -> Queue {
        let redis = RedisConfig {
            url: Secret::new("redis://127.0.0.1:1"),
            url_source: None,
            key_prefix: "unit".into(),
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(50),
            breaker_threshold: 1,
            breaker_cooldown: Duration::from_secs(1),
        };
        let config = QueueConfig {
            lease: Duration::from_secs(60),
            retry_base: Duration::from_millis(base_ms),
            retry_max: Duration::from_millis(max_ms),
            sweep_grace: Duration::from_secs(30),
            worker_concurrency: 4,
            worker_memory_budget_mib: 614,
            worker_batch: 64,
            worker_deadline_margin: Duration::from_secs(30),
            max_pending_per_clinic: 1_000,
            worker_idle_stop: Duration::from_secs(10),
            worker_max_drains: 3,
            wake: None,
        };
        Queue::new(
            Arc::new(RedisConnector::new(&redis).expect("redis url")),
            &Keys::new("unit"),
            &config,
        )
    }

    #[test]
    fn retry_delays_double_with_jitter_and_stop_at_the_cap() {
        let queue = queue(1_000, 10_000);
        for (attempt, low, high) in [(1, 500, 1_000), (2, 1_000, 2_000), (3, 2_000, 4_000)] {
            for _ in 0..200 {
                let ms = queue.retry_delay(attempt).as_millis() as u64;
                assert!((low..=high).contains(&ms), "attempt {attempt}: {ms}");
            }
        }
        for _ in 0..200 {
            let ms = queue.retry_delay(30).as_millis() as u64;
            assert!((5_000..=10_000).contains(&ms), "{ms}");
        }
        assert!(queue.retry_delay(u32::MAX).as_millis() <= 10_000);
    }
}
