//! Durable background jobs: PostgreSQL holds every job (the truth), Redis carries their ids to
//! the workers (the delivery channel).
//!
//! **Enqueue** (transactional outbox): a context calls [`Queue::stage`] inside the transaction of
//! its domain change, so the job exists exactly when that change commits, then
//! [`Queue::dispatch`] after the commit pushes the id to Redis (`dispatch.lua`). A push that
//! fails is only logged: the sweep pushes it later.
//!
//! **Redis layout** ([`crate::keys::QueueKeys`], one hash tag, so every script runs on one slot):
//! `ready` (LIST of ids), `processing` (ZSET id → lease deadline), `delayed` (ZSET id → retry
//! time) and `known` (SET of every id in one of the three). Job ids only: payloads (and anything
//! about patients) stay in PostgreSQL.
//!
//! **Delivery**: a worker takes a batch with `claim.lua` (ready → processing with a lease, in one
//! step), marks the batch running in one statement, runs the handlers, records the outcomes in one
//! statement and settles the batch with `ack.lua` (processing → gone, or → delayed for a retry).
//! Long jobs renew their lease; `move_due.lua` is both the reaper (expired leases → ready) and
//! the promotion of due retries (delayed → ready). Delivery is at-least-once: a handler may run
//! twice and must be idempotent. Every outcome is fenced by the job's delivery count, so a
//! worker that lost its lease can never overwrite the newer attempt's outcome.
//!
//! **Recovery** (the sweep, [`Queue::maintain`]): unfinished jobs that PostgreSQL has and
//! `known` lacks (the push after commit failed, Redis restarted empty or was flushed) are pushed
//! again. `dispatch.lua` pushes only ids `known` lacks, so the sweep, a late push and a replay
//! never queue a job twice.
//!
//! States (`jobs.status`): `queued` → `running` → `succeeded`; a failed attempt → `failed` (retry
//! scheduled at `run_at`, exponential backoff with jitter) → `running` …; out of attempts or a
//! permanent failure → `dead`, which an admin may replay (→ `queued`, attempts from zero).
//!
//! A handler that produced a resource returns its path as `{"location": "/xrays/…", …}`:
//! `GET /jobs/{id}` shows it as `result_url`.

mod handlers;
mod maintenance;
mod repository;
mod routes;
mod types;
mod view;
pub mod worker;

pub use handlers::{HandlerResult, Handlers};
pub use maintenance::{MaintenanceReport, SweepReport};
pub use routes::router;
pub use types::*;
pub use view::{JobView, QueueCounters, QueueFigures, RedisQueueSizes};
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

static DISPATCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("dispatch.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("claim.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("ack.lua")));
static MOVE_DUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("move_due.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static REPLAY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("replay.lua")));

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
}

impl Queue {
    pub fn new(redis: Arc<RedisConnector>, keys: &Keys, config: &QueueConfig) -> Self {
        Self {
            redis,
            queue_keys: Arc::new(keys.queue()),
            keys: keys.clone(),
            config: Arc::new(config.clone()),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.queue_keys
    }

    // ------------------------------------------------------------------ enqueue

    /// Writes the job inside the caller's tenant transaction (the outbox): it exists exactly when
    /// that transaction commits. With an idempotency key this clinic already used for a job of
    /// the same kind, nothing is written and the earlier job is returned (`created: false`); for
    /// another kind, [`QueueError::IdempotencyKeyReused`] (422).
    pub async fn stage(
        &self,
        tx: &mut TenantTx,
        clinic: ClinicId,
        job: NewJob,
    ) -> Result<StagedJob, QueueError> {
        let max_attempts = job.max_attempts.unwrap_or(job.kind.max_attempts());
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(QueueError::InvalidMaxAttempts(max_attempts));
        }
        let row = repository::StageRow {
            clinic,
            kind: job.kind.as_str(),
            payload: &job.payload,
            idempotency_key: job.idempotency_key.as_ref().map(IdempotencyKey::as_str),
            created_by: job.created_by,
            max_attempts: i32::from(max_attempts),
        };
        let (id, existing_kind) = repository::stage(tx, &row).await?;
        match existing_kind {
            None => Ok(StagedJob { id, created: true }),
            Some(kind) if kind == job.kind.as_str() => Ok(StagedJob { id, created: false }),
            Some(existing_kind) => Err(QueueError::IdempotencyKeyReused { existing_kind }),
        }
    }

    /// Pushes a job staged by a committed transaction to Redis. Never fails: when Redis cannot
    /// take it the job waits in PostgreSQL and the sweep pushes it (within the sweep grace plus
    /// a scheduler tick). A job that was not created (idempotent repeat) is already on its way.
    pub async fn dispatch(&self, job: &StagedJob) {
        if !job.created {
            return;
        }
        if let Err(error) = self.push(&[(job.id, 0)]).await {
            tracing::warn!(
                job_id = %job.id,
                error = %ErrorChain(&error),
                "job not pushed to Redis; the sweep will push it"
            );
        }
    }

    /// Stages the job in a transaction of its own, commits and dispatches: for callers whose
    /// job is the whole change.
    pub async fn enqueue(
        &self,
        db: &PgPool,
        clinic: ClinicId,
        job: NewJob,
    ) -> Result<StagedJob, QueueError> {
        let mut tx = db::begin_tenant(db, clinic).await?;
        let staged = self.stage(&mut tx, clinic, job).await?;
        tx.commit().await.map_err(DbError::from)?;
        self.dispatch(&staged).await;
        Ok(staged)
    }

    /// Adds jobs to Redis unless it has them: `(id, due Unix ms)`, 0 meaning ready now.
    async fn push(&self, jobs: &[(JobId, u64)]) -> Result<usize, QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let mut invocation = DISPATCH.prepare_invoke();
        invocation
            .key(&keys.ready)
            .key(&keys.delayed)
            .key(&keys.known);
        for (id, due) in jobs {
            invocation.arg(id.to_string()).arg(*due);
        }
        Ok(invocation.invoke_async(&mut connection).await?)
    }

    // ------------------------------------------------------------------ status and replay

    /// One job of `clinic`; `None` for another clinic's job exactly as for a missing one.
    pub async fn status(
        &self,
        db: &PgPool,
        clinic: ClinicId,
        id: JobId,
    ) -> Result<Option<JobRecord>, QueueError> {
        let mut tx = db::begin_tenant(db, clinic).await?;
        let record = repository::find(&mut tx, clinic, id).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(record)
    }

    /// Runs a dead or failed job of `clinic` again from its first attempt (its last error is
    /// kept until the next attempt's outcome). The job is pushed at once; if Redis cannot take
    /// it, the sweep does.
    pub async fn replay(
        &self,
        db: &PgPool,
        clinic: ClinicId,
        id: JobId,
    ) -> Result<Replay, QueueError> {
        let mut tx = db::begin_tenant(db, clinic).await?;
        let outcome = match repository::replay(&mut tx, clinic, id).await? {
            Some(record) => Replay::Replayed(Box::new(record)),
            None => match repository::find(&mut tx, clinic, id).await? {
                Some(record) => Replay::NotReplayable(record.status),
                None => Replay::NotFound,
            },
        };
        tx.commit().await.map_err(DbError::from)?;
        if let Replay::Replayed(_) = outcome
            && let Err(error) = self.make_ready(id).await
        {
            tracing::warn!(
                job_id = %id,
                error = %ErrorChain(&error),
                "replayed job not pushed to Redis; the sweep will push it"
            );
        }
        Ok(outcome)
    }

    async fn make_ready(&self, id: JobId) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let _: i64 = REPLAY
            .key(&keys.ready)
            .key(&keys.delayed)
            .key(&keys.known)
            .arg(id.to_string())
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// One page of jobs, newest first, optionally of one status.
    pub async fn list(
        &self,
        db: &PgPool,
        scope: JobScope,
        status: Option<JobStatus>,
        page: &PageRequest<(DateTime<Utc>, JobId)>,
    ) -> Result<Page<JobRecord>, QueueError> {
        let (mut tx, clinic) = scoped_transaction(db, scope).await?;
        let rows = repository::list(&mut tx, clinic, status, page).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(Page::from_rows(rows, page.limit, |row| {
            (row.created_at, row.id)
        }))
    }

    /// The queue as PostgreSQL sees it (depth, processing, delayed, dead, oldest waiting age).
    pub async fn figures(&self, db: &PgPool, scope: JobScope) -> Result<QueueFigures, QueueError> {
        let (mut tx, clinic) = scoped_transaction(db, scope).await?;
        let row = repository::figures(&mut tx, clinic).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(QueueFigures::from(row))
    }

    /// Counters kept in Redis since `since` (a Redis restart resets them): of one clinic, or of
    /// every clinic together.
    pub async fn counters(&self, clinic: Option<ClinicId>) -> Result<QueueCounters, QueueError> {
        let mut connection = self.redis.connection().await?;
        let key = match clinic {
            Some(clinic) => self.keys.queue_stats(clinic),
            None => self.queue_keys.stats.clone(),
        };
        let hash: HashMap<String, i64> = ::redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut connection)
            .await?;
        Ok(QueueCounters::from_hash(&hash))
    }

    /// How many ids each Redis structure holds (every clinic: the structures are shared).
    pub async fn redis_sizes(&self) -> Result<RedisQueueSizes, QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let (ready, processing, delayed, known): (u64, u64, u64, u64) = ::redis::pipe()
            .llen(&keys.ready)
            .zcard(&keys.processing)
            .zcard(&keys.delayed)
            .scard(&keys.known)
            .query_async(&mut connection)
            .await?;
        Ok(RedisQueueSizes {
            ready,
            processing,
            delayed,
            known,
        })
    }

    // ------------------------------------------------------------------ worker side

    /// Takes up to `max` ready jobs and marks them running (one Redis script, one statement).
    /// `system_db` connects as pulso_system. If PostgreSQL fails, the jobs go back to the head
    /// of the ready list.
    pub async fn claim(&self, system_db: &PgPool, max: usize) -> Result<Claim, QueueError> {
        let taken = self.take_ready(max).await?;
        if taken.is_empty() {
            return Ok(Claim::default());
        }
        let mut ids = Vec::with_capacity(taken.len());
        let mut unreadable = Vec::new();
        for raw in &taken {
            match Uuid::parse_str(raw) {
                Ok(id) => ids.push(id),
                Err(_) => unreadable.push(raw.clone()),
            }
        }
        let rows = match repository::claim(system_db, &ids).await {
            Ok(rows) => rows,
            Err(error) => {
                if let Err(release) = self.release(&taken).await {
                    tracing::warn!(
                        error = %ErrorChain(&release),
                        "claimed jobs not released; they return when their lease expires"
                    );
                }
                return Err(error.into());
            }
        };

        let mut claim = Claim::default();
        let mut settled: Vec<String> = unreadable;
        let mut runnable: HashSet<Uuid> = HashSet::with_capacity(rows.len());
        let mut dead_by_clinic: HashMap<ClinicId, Counts> = HashMap::new();
        for row in rows {
            runnable.insert(row.id.as_uuid());
            if row.status == JobStatus::Dead {
                tracing::warn!(
                    job_id = %row.id,
                    clinic_id = %row.clinic_id,
                    kind = %row.kind,
                    "job dead: its worker stopped during the last attempt"
                );
                settled.push(row.id.to_string());
                claim.exhausted += 1;
                let counts = dead_by_clinic.entry(row.clinic_id).or_default();
                counts.failed += 1;
                counts.dead += 1;
                continue;
            }
            claim.leases.push(JobLease {
                job: Job {
                    id: row.id,
                    clinic: row.clinic_id,
                    kind: row.kind,
                    payload: row.payload,
                    attempt: u32::try_from(row.attempts).unwrap_or(0),
                    max_attempts: u32::try_from(row.max_attempts).unwrap_or(0),
                    created_by: row.created_by,
                },
                delivery: row.deliveries,
            });
        }
        for id in &ids {
            if !runnable.contains(id) {
                settled.push(id.to_string());
                claim.duplicates += 1;
            }
        }
        if !settled.is_empty()
            && let Err(error) = self.ack(&settled, &[], &dead_by_clinic).await
        {
            // Harmless: they come back after their lease, and PostgreSQL settles them again.
            tracing::warn!(error = %ErrorChain(&error), "settled jobs not removed from Redis");
        }
        Ok(claim)
    }

    async fn take_ready(&self, max: usize) -> Result<Vec<String>, QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        Ok(CLAIM
            .key(&keys.ready)
            .key(&keys.processing)
            .arg(max)
            .arg(now_ms() + self.config.lease.as_millis() as u64)
            .invoke_async(&mut connection)
            .await?)
    }

    async fn release(&self, ids: &[String]) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let mut invocation = RELEASE.prepare_invoke();
        invocation.key(&keys.processing).key(&keys.ready);
        for id in ids {
            invocation.arg(id);
        }
        let _: i64 = invocation.invoke_async(&mut connection).await?;
        Ok(())
    }

    /// Records a batch of outcomes (one statement) and settles them in Redis (one script).
    /// A failed attempt with attempts left is retried after an exponential backoff with
    /// jitter; otherwise a failure is final (`dead`). Fails only when PostgreSQL does: the
    /// caller keeps the outcomes (and their leases) and tries again. Redis failing afterwards is
    /// logged: the leases expire and PostgreSQL, already final, settles the redelivery.
    pub async fn record(
        &self,
        system_db: &PgPool,
        outcomes: &[Outcome],
    ) -> Result<Recorded, QueueError> {
        if outcomes.is_empty() {
            return Ok(Recorded::default());
        }
        let mut rows = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let job = &outcome.lease.job;
            let (status, retry_in, error, result) = match &outcome.result {
                Ok(value) => (JobStatus::Succeeded, None, None, Some(value.to_string())),
                Err(JobFailure::Retry(message)) if job.attempt < job.max_attempts => (
                    JobStatus::Failed,
                    Some(self.retry_delay(job.attempt)),
                    Some(message.as_str()),
                    None,
                ),
                Err(failure) => (JobStatus::Dead, None, Some(failure.message()), None),
            };
            rows.push(repository::OutcomeRow {
                id: job.id,
                delivery: outcome.lease.delivery,
                status,
                retry_in_ms: retry_in.map_or(0, |delay| delay.as_millis() as i64),
                error: error.map(types::truncate_error),
                result,
            });
        }
        let accepted: HashSet<JobId> = repository::record(system_db, &rows)
            .await?
            .into_iter()
            .collect();

        let mut recorded = Recorded::default();
        let mut finished = Vec::new();
        let mut retries = Vec::new();
        let mut by_clinic: HashMap<ClinicId, Counts> = HashMap::new();
        let now = now_ms();
        for (row, outcome) in rows.iter().zip(outcomes) {
            let job = &outcome.lease.job;
            if !accepted.contains(&row.id) {
                recorded.stale += 1;
                tracing::info!(
                    job_id = %job.id,
                    clinic_id = %job.clinic,
                    "outcome ignored: the job was delivered again after this lease expired"
                );
                continue;
            }
            let counts = by_clinic.entry(job.clinic).or_default();
            match row.status {
                JobStatus::Succeeded => {
                    recorded.succeeded += 1;
                    counts.processed += 1;
                    finished.push(row.id.to_string());
                }
                JobStatus::Failed => {
                    recorded.retried += 1;
                    counts.failed += 1;
                    counts.retried += 1;
                    retries.push((row.id.to_string(), now + row.retry_in_ms as u64));
                }
                _ => {
                    recorded.dead += 1;
                    counts.failed += 1;
                    counts.dead += 1;
                    finished.push(row.id.to_string());
                }
            }
        }
        if let Err(error) = self.ack(&finished, &retries, &by_clinic).await {
            tracing::warn!(
                error = %ErrorChain(&error),
                "recorded jobs not settled in Redis; their leases expire and they settle then"
            );
        }
        Ok(recorded)
    }

    /// `ack.lua` over the queue's keys, and the per-clinic counters beside it (another slot,
    /// so another command, sent together on the multiplexed connection).
    async fn ack(
        &self,
        finished: &[String],
        retries: &[(String, u64)],
        by_clinic: &HashMap<ClinicId, Counts>,
    ) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let total = by_clinic.values().fold(Counts::default(), |sum, c| Counts {
            processed: sum.processed + c.processed,
            failed: sum.failed + c.failed,
            retried: sum.retried + c.retried,
            dead: sum.dead + c.dead,
        });
        let now_seconds = now_ms() / 1000;
        let mut invocation = ACK.prepare_invoke();
        invocation
            .key(&keys.processing)
            .key(&keys.delayed)
            .key(&keys.known)
            .key(&keys.stats)
            .arg(finished.len())
            .arg(retries.len())
            .arg(total.processed)
            .arg(total.failed)
            .arg(total.retried)
            .arg(total.dead)
            .arg(now_seconds);
        for id in finished {
            invocation.arg(id);
        }
        for (id, due) in retries {
            invocation.arg(id).arg(*due);
        }
        let mut counters = ::redis::pipe();
        for (clinic, counts) in by_clinic.iter().filter(|(_, counts)| !counts.is_zero()) {
            let key = self.keys.queue_stats(*clinic);
            for (field, count) in [
                ("processed", counts.processed),
                ("failed", counts.failed),
                ("retried", counts.retried),
                ("dead", counts.dead),
            ] {
                if count > 0 {
                    counters.hincr(&key, field, count).ignore();
                }
            }
            counters.hset_nx(&key, "since", now_seconds).ignore();
        }
        let mut counter_connection = connection.clone();
        let (acked, counted) =
            tokio::join!(invocation.invoke_async::<i64>(&mut connection), async {
                if by_clinic.is_empty() {
                    Ok(())
                } else {
                    counters.query_async::<()>(&mut counter_connection).await
                }
            });
        acked?;
        counted?;
        Ok(())
    }

    /// Extends the leases of jobs still running (only those still leased: `ZADD XX`).
    pub async fn renew(&self, ids: &[JobId]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut connection = self.redis.connection().await?;
        let deadline = now_ms() + self.config.lease.as_millis() as u64;
        let mut command = ::redis::cmd("ZADD");
        command.arg(&self.queue_keys.processing).arg("XX");
        for id in ids {
            command.arg(deadline).arg(id.to_string());
        }
        command.query_async::<()>(&mut connection).await?;
        Ok(())
    }

    /// Moves retries whose time has come to the ready list; returns how many.
    pub async fn promote_due(&self) -> Result<usize, QueueError> {
        self.move_due(&self.queue_keys.delayed).await
    }

    /// The reaper: requeues jobs whose lease expired (their worker died or froze).
    pub async fn reap_expired(&self) -> Result<usize, QueueError> {
        let reaped = self.move_due(&self.queue_keys.processing).await?;
        if reaped > 0 {
            tracing::warn!(reaped, "expired job leases requeued");
        }
        Ok(reaped)
    }

    async fn move_due(&self, from: &str) -> Result<usize, QueueError> {
        let mut connection = self.redis.connection().await?;
        let mut moved = 0;
        loop {
            let ids: Vec<String> = MOVE_DUE
                .key(from)
                .key(&self.queue_keys.ready)
                .arg(now_ms())
                .arg(MOVE_DUE_LIMIT)
                .invoke_async(&mut connection)
                .await?;
            moved += ids.len();
            if ids.len() < MOVE_DUE_LIMIT {
                return Ok(moved);
            }
        }
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
            worker_batch: 64,
            worker_deadline_margin: Duration::from_secs(30),
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
