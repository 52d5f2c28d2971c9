//! The worker side of delivery: claim a batch with leases, record outcomes and settle them
//! in Redis, renew leases, promote due retries and reap expired leases.

use super::*;

/// Ids to take out of Redis in one `ack.lua`: finished (gone), or failed with a retry due at
/// a time (to `delayed`); and the counts of each clinic to add to its stats.
#[derive(Default)]
struct Settlement {
    finished: Vec<String>,
    retries: Vec<(String, u64)>,
    by_clinic: HashMap<ClinicId, Counts>,
}

impl Queue {
    /// Takes up to `max` ready jobs that fit in `room` and marks them running (one Redis script,
    /// one statement). `system_db` connects as pulso_system. If PostgreSQL fails, the jobs go
    /// back to the head of their ready lists.
    pub async fn claim(
        &self,
        system_db: &PgPool,
        max: usize,
        room: &ClaimRoom,
    ) -> Result<Claim, QueueError> {
        let (left_for_room, fresh_left, taken) = self.take_ready(max, room).await?;
        let waiting = |claim: Claim| Claim {
            left_for_room: left_for_room == 1,
            fresh_left: fresh_left == 1,
            ..claim
        };
        if taken.is_empty() {
            return Ok(waiting(Claim::default()));
        }
        let mut parsed = Vec::with_capacity(taken.len());
        let mut unreadable = Vec::new();
        for (raw, weight) in &taken {
            match Uuid::parse_str(raw) {
                Ok(id) => parsed.push((id, *weight)),
                Err(_) => unreadable.push(raw.clone()),
            }
        }
        let ids: Vec<Uuid> = parsed.iter().map(|(id, _)| *id).collect();
        let taken: Vec<String> = taken.into_iter().map(|(id, _)| id).collect();
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
        let (claim, settle) = sort_claimed(rows, &parsed, unreadable);
        if !settle.finished.is_empty()
            && let Err(error) = self.ack(&settle).await
        {
            // Harmless: they come back after their lease, and PostgreSQL settles them again.
            tracing::warn!(error = %ErrorChain(&error), "settled jobs not removed from Redis");
        }
        Ok(waiting(claim))
    }

    /// `claim.lua`: whether jobs were left for lack of room, whether fresh clinics were left
    /// unreached, and the ids taken with the memory each was counted for.
    async fn take_ready(
        &self,
        max: usize,
        room: &ClaimRoom,
    ) -> Result<(u8, u8, Vec<(String, u32)>), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let mut invocation = CLAIM.prepare_invoke();
        invocation
            .key(&keys.fresh)
            .key(&keys.active)
            .key(&keys.processing)
            .key(&keys.known)
            .arg(max)
            .arg(now_ms() + self.config.lease.as_millis() as u64)
            .arg(&keys.ready_prefix)
            .arg(room.free_mib)
            .arg(room.budget_mib)
            .arg(room.clinic_share);
        for (clinic, running) in &room.running {
            invocation.arg(clinic.to_string()).arg(*running);
        }
        Ok(invocation.invoke_async(&mut connection).await?)
    }

    async fn release(&self, ids: &[String]) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let keys = &self.queue_keys;
        let mut invocation = RELEASE.prepare_invoke();
        invocation
            .key(&keys.processing)
            .key(&keys.fresh)
            .key(&keys.known)
            .arg(&keys.ready_prefix);
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
        let rows: Vec<_> = outcomes
            .iter()
            .map(|outcome| self.outcome_row(outcome))
            .collect();
        let accepted: HashSet<JobId> = repository::record(system_db, &rows)
            .await?
            .into_iter()
            .collect();
        let (recorded, settle) = sort_recorded(&rows, outcomes, &accepted);
        if let Err(error) = self.ack(&settle).await {
            tracing::warn!(
                error = %ErrorChain(&error),
                "recorded jobs not settled in Redis; their leases expire and they settle then"
            );
        }
        Ok(recorded)
    }

    /// The row that records `outcome`: succeeded, failed with a retry due, or dead.
    fn outcome_row(&self, outcome: &Outcome) -> repository::OutcomeRow {
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
        repository::OutcomeRow {
            id: job.id,
            delivery: outcome.lease.delivery,
            status,
            retry_in_ms: retry_in.map_or(0, |delay| delay.as_millis() as i64),
            error: error.map(types::truncate_error),
            result,
        }
    }

    /// `ack.lua` over the queue's keys, and the per-clinic counters beside it (another slot,
    /// so another command, sent together on the multiplexed connection).
    async fn ack(&self, settle: &Settlement) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let now_seconds = now_ms() / 1000;
        let invocation = self.ack_invocation(settle, now_seconds);
        let counters = self.clinic_counters(&settle.by_clinic, now_seconds);
        let mut counter_connection = connection.clone();
        let (acked, counted) =
            tokio::join!(invocation.invoke_async::<i64>(&mut connection), async {
                if settle.by_clinic.is_empty() {
                    Ok(())
                } else {
                    counters.query_async::<()>(&mut counter_connection).await
                }
            });
        acked?;
        counted?;
        Ok(())
    }

    /// The `ack.lua` call: the ids to settle and the queue-wide counts to add.
    fn ack_invocation(
        &self,
        settle: &Settlement,
        now_seconds: u64,
    ) -> ::redis::ScriptInvocation<'static> {
        let keys = &self.queue_keys;
        let total = settle
            .by_clinic
            .values()
            .fold(Counts::default(), |sum, c| Counts {
                processed: sum.processed + c.processed,
                failed: sum.failed + c.failed,
                retried: sum.retried + c.retried,
                dead: sum.dead + c.dead,
            });
        let mut invocation = ACK.prepare_invoke();
        invocation
            .key(&keys.processing)
            .key(&keys.delayed)
            .key(&keys.known)
            .key(&keys.stats)
            .arg(settle.finished.len())
            .arg(settle.retries.len())
            .arg(total.processed)
            .arg(total.failed)
            .arg(total.retried)
            .arg(total.dead)
            .arg(now_seconds);
        for id in &settle.finished {
            invocation.arg(id);
        }
        for (id, due) in &settle.retries {
            invocation.arg(id).arg(*due);
        }
        invocation
    }

    /// Each clinic's counts, added to its own stats hash.
    fn clinic_counters(
        &self,
        by_clinic: &HashMap<ClinicId, Counts>,
        now_seconds: u64,
    ) -> ::redis::Pipeline {
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
        counters
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

    /// Moves retries whose time has come to their clinics' ready lists; returns how many.
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
            let keys = &self.queue_keys;
            let (examined, moved_now): (usize, usize) = MOVE_DUE
                .key(from)
                .key(&keys.fresh)
                .key(&keys.known)
                .arg(now_ms())
                .arg(MOVE_DUE_LIMIT)
                .arg(&keys.ready_prefix)
                .invoke_async(&mut connection)
                .await?;
            moved += moved_now;
            if examined < MOVE_DUE_LIMIT {
                return Ok(moved);
            }
        }
    }
}

/// What PostgreSQL's answer to a claim means for each id taken from Redis: a lease to run, or
/// an id to settle at once (unreadable, dead with the worker of its last attempt, or already
/// final or unknown: a duplicate delivery).
fn sort_claimed(
    rows: Vec<repository::ClaimedRow>,
    taken: &[(Uuid, u32)],
    unreadable: Vec<String>,
) -> (Claim, Settlement) {
    let mut claim = Claim::default();
    let mut settle = Settlement {
        finished: unreadable,
        ..Settlement::default()
    };
    let mut rows: HashMap<Uuid, repository::ClaimedRow> = rows
        .into_iter()
        .map(|row| (row.id.as_uuid(), row))
        .collect();
    // In the order the claim took them (its turns), which is the order they start in.
    for &(id, memory_mib) in taken {
        let Some(row) = rows.remove(&id) else {
            settle.finished.push(id.to_string());
            claim.duplicates += 1;
            continue;
        };
        if row.status == JobStatus::Dead {
            tracing::warn!(
                job_id = %row.id,
                clinic_id = %row.clinic_id,
                kind = %row.kind,
                "job dead: its worker stopped during the last attempt"
            );
            settle.finished.push(row.id.to_string());
            claim.exhausted += 1;
            let counts = settle.by_clinic.entry(row.clinic_id).or_default();
            counts.failed += 1;
            counts.dead += 1;
            continue;
        }
        claim.leases.push(JobLease {
            memory_mib,
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
    (claim, settle)
}

/// What recording `rows` did, given the ids PostgreSQL `accepted` (an outcome it did not was
/// fenced out: stale), and what to settle in Redis for them.
fn sort_recorded(
    rows: &[repository::OutcomeRow],
    outcomes: &[Outcome],
    accepted: &HashSet<JobId>,
) -> (Recorded, Settlement) {
    let mut recorded = Recorded::default();
    let mut settle = Settlement::default();
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
        let counts = settle.by_clinic.entry(job.clinic).or_default();
        match row.status {
            JobStatus::Succeeded => {
                recorded.succeeded += 1;
                counts.processed += 1;
                settle.finished.push(row.id.to_string());
            }
            JobStatus::Failed => {
                recorded.retried += 1;
                counts.failed += 1;
                counts.retried += 1;
                settle
                    .retries
                    .push((row.id.to_string(), now + row.retry_in_ms as u64));
            }
            _ => {
                recorded.dead += 1;
                counts.failed += 1;
                counts.dead += 1;
                settle.finished.push(row.id.to_string());
            }
        }
    }
    (recorded, settle)
}
