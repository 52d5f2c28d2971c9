//! Enqueue: stage a job in the caller's transaction (the outbox), dispatch it after the
//! commit, or both at once.

use super::*;

impl Queue {
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
            readers: job.kind.readers(),
            peak_memory_mib: job.kind.peak_memory_mib() as i32,
        };
        let (id, existing_kind) = repository::stage(tx, &row).await?;
        match existing_kind {
            None => {
                // Counted with the new job in: over the quota, the error rolls the caller's
                // transaction back, job and all. A repeat (below) is never refused.
                let limit = self.config().max_pending_per_clinic;
                if repository::pending_over(tx, clinic, limit).await? {
                    return Err(QueueError::ClinicQueueFull { limit });
                }
                Ok(StagedJob {
                    id,
                    clinic,
                    peak_memory_mib: job.kind.peak_memory_mib(),
                    created: true,
                })
            }
            Some(kind) if kind == job.kind.as_str() => Ok(StagedJob {
                id,
                clinic,
                peak_memory_mib: job.kind.peak_memory_mib(),
                created: false,
            }),
            Some(existing_kind) => Err(QueueError::IdempotencyKeyReused { existing_kind }),
        }
    }

    /// Pushes a job staged by a committed transaction to Redis, and wakes the worker if no
    /// drain is alive. Never fails: when Redis cannot take it the job waits in PostgreSQL and
    /// the sweep pushes it (within the sweep grace plus a scheduler tick). A job that was not
    /// created (idempotent repeat) is already on its way.
    pub async fn dispatch(&self, job: &StagedJob) {
        if !job.created {
            return;
        }
        let push = Push {
            id: job.id,
            clinic: job.clinic,
            peak_memory_mib: job.peak_memory_mib,
            due_ms: 0,
        };
        let pushed = match &self.waker {
            None => self.push(&[push]).await.map(|_| ()),
            Some(_) => self.push_waking(&push).await,
        };
        if let Err(error) = pushed {
            tracing::warn!(
                job_id = %job.id,
                error = %ErrorChain(&error),
                "job not pushed to Redis; the sweep will push it"
            );
        }
    }

    /// Pushes `job` and, in the same step, checks whether a worker is to be woken for it
    /// (`enqueue.lua`); wakes it if so.
    async fn push_waking(&self, job: &Push) -> Result<(), QueueError> {
        let token = Uuid::new_v4().to_string();
        let keys = &self.queue_keys;
        let mut connection = self.redis.connection().await?;
        let (_added, wake): (u64, u8) = ENQUEUE
            .key(&keys.fresh)
            .key(&keys.delayed)
            .key(&keys.known)
            .key(&keys.drains)
            .key(&keys.waking)
            .key(&keys.active)
            .arg(&keys.ready_prefix)
            .arg(now_ms())
            .arg(&token)
            .arg(presence::WAKE_ARRIVES_WITHIN.as_millis() as u64)
            .arg(job.id.to_string())
            .arg(owner(job.clinic, job.peak_memory_mib))
            .arg(job.due_ms)
            .invoke_async(&mut connection)
            .await?;
        drop(connection);
        if wake == 1 {
            self.invoke_worker(&token, WakeReason::Enqueue).await;
        }
        Ok(())
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

    /// Pushes jobs PostgreSQL already has (inserted in bulk by a test or a benchmark), ready now,
    /// as their enqueues would have; returns how many Redis did not have yet.
    #[cfg(feature = "test-support")]
    pub async fn push_ready(
        &self,
        jobs: &[(JobId, ClinicId)],
        kind: JobKind,
    ) -> Result<usize, QueueError> {
        let mut pushed = 0;
        for chunk in jobs.chunks(5_000) {
            let chunk: Vec<_> = chunk
                .iter()
                .map(|&(id, clinic)| Push {
                    id,
                    clinic,
                    peak_memory_mib: kind.peak_memory_mib(),
                    due_ms: 0,
                })
                .collect();
            pushed += self.push(&chunk).await?;
        }
        Ok(pushed)
    }

    /// Adds jobs to Redis unless it has them.
    pub(super) async fn push(&self, jobs: &[Push]) -> Result<usize, QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let mut invocation = DISPATCH.prepare_invoke();
        invocation
            .key(&keys.fresh)
            .key(&keys.delayed)
            .key(&keys.known)
            .arg(&keys.ready_prefix);
        for job in jobs {
            invocation
                .arg(job.id.to_string())
                .arg(owner(job.clinic, job.peak_memory_mib))
                .arg(job.due_ms);
        }
        Ok(invocation.invoke_async(&mut connection).await?)
    }
}

/// A job to put in Redis.
pub(super) struct Push {
    pub id: JobId,
    pub clinic: ClinicId,
    /// What the claim weighs it by.
    pub peak_memory_mib: u32,
    /// When its retry is due (Unix ms); 0: ready now.
    pub due_ms: u64,
}

/// `jobs.peak_memory_mib` as the claim weighs it (the column's check keeps it 1..=10240).
pub(super) fn stored_peak(peak_memory_mib: i32) -> u32 {
    u32::try_from(peak_memory_mib).unwrap_or(DEFAULT_PEAK_MEMORY_MIB)
}

/// A job's value in `known`: `<clinic id>:<peak MiB>` (`ready.lua` reads it).
pub(super) fn owner(clinic: ClinicId, peak_memory_mib: u32) -> String {
    format!("{clinic}:{peak_memory_mib}")
}
