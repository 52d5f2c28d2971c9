//! What staff and admins read and do to jobs: a job's status, replay of dead jobs, lists by
//! status, figures and counters, and the Redis sizes.

use super::*;

impl Queue {
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
        if let Replay::Replayed(record) = &outcome {
            match self.make_ready(record).await {
                Ok(()) => {
                    self.wake(1, WakeReason::Enqueue).await;
                }
                Err(error) => tracing::warn!(
                    job_id = %id,
                    error = %ErrorChain(&error),
                    "replayed job not pushed to Redis; the sweep will push it"
                ),
            }
        }
        Ok(outcome)
    }

    async fn make_ready(&self, job: &JobRecord) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let _: i64 = REPLAY
            .key(&keys.fresh)
            .key(&keys.delayed)
            .key(&keys.known)
            .arg(&keys.ready_prefix)
            .arg(job.id.to_string())
            .arg(enqueue::owner(
                job.clinic_id,
                enqueue::stored_peak(job.peak_memory_mib),
            ))
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

    /// The queue as PostgreSQL sees it over every clinic, read through `system_db` (pulso_system,
    /// which sees every clinic's jobs): what the scheduler reports as metrics each minute.
    pub async fn platform_figures(&self, system_db: &PgPool) -> Result<QueueFigures, QueueError> {
        let mut connection = system_db.acquire().await.map_err(DbError::from)?;
        let row = repository::figures(&mut connection, None).await?;
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

    /// How many ids each Redis structure holds, over every clinic (one script: a consistent
    /// view).
    pub async fn redis_sizes(&self) -> Result<RedisQueueSizes, QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let (ready, ready_clinics, processing, delayed, known): (u64, u64, u64, u64, u64) = SIZES
            .key(&keys.fresh)
            .key(&keys.active)
            .key(&keys.processing)
            .key(&keys.delayed)
            .key(&keys.known)
            .arg(&keys.ready_prefix)
            .invoke_async(&mut connection)
            .await?;
        Ok(RedisQueueSizes {
            ready,
            ready_clinics,
            processing,
            delayed,
            known,
        })
    }
}
