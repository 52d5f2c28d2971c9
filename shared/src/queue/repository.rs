//! Job SQL. Tenant-facing statements (stage, status, replay, the clinic's figures) run inside a
//! tenant transaction as pulso_app; the worker's batch statements (claim, record) and the sweep
//! run as pulso_system, whose `jobs_system` policy lets one statement cover every clinic.

use super::types::{JobRecord, JobStatus};
use crate::auth::Role;
use crate::ids::{ClinicId, JobId, UserId};
use crate::pagination::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

pub(super) const COLUMNS: &str = "id, clinic_id, kind, status, attempts, max_attempts, replays, \
     run_at, started_at, finished_at, last_error, result, created_by, created_at, updated_at, \
     readers, peak_memory_mib";

/// Deliveries of a job lost with their worker that do not use up an attempt (migration 15).
const FREE_LOST_DELIVERIES: i32 = 2;

/// Stored when the worker running a job's last attempt vanished (its lease expired).
pub(super) const LOST_LAST_ATTEMPT: &str =
    "the worker running the last attempt stopped before it finished (its lease expired)";

pub(super) struct StageRow<'a> {
    pub clinic: ClinicId,
    pub kind: &'a str,
    pub payload: &'a serde_json::Value,
    pub idempotency_key: Option<&'a str>,
    pub created_by: Option<UserId>,
    pub max_attempts: i32,
    pub readers: Option<&'a [Role]>,
    pub peak_memory_mib: i32,
}

/// Inserts the job, or finds the one this clinic already created with the same idempotency key.
/// Returns the id, whether it was created, and the existing job's kind when it was not.
pub(super) async fn stage(
    conn: &mut PgConnection,
    row: &StageRow<'_>,
) -> Result<(JobId, Option<String>), sqlx::Error> {
    let inserted: Option<JobId> = sqlx::query_scalar(
        "INSERT INTO jobs (clinic_id, kind, payload, idempotency_key, created_by, max_attempts,
                           readers, peak_memory_mib)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (clinic_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id",
    )
    .bind(row.clinic)
    .bind(row.kind)
    .bind(sqlx::types::Json(row.payload))
    .bind(row.idempotency_key)
    .bind(row.created_by)
    .bind(row.max_attempts)
    .bind(row.readers)
    .bind(row.peak_memory_mib)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = inserted {
        return Ok((id, None));
    }
    // The key is taken: by a committed job (found now), or by a concurrent transaction that the
    // insert waited for and that committed (READ COMMITTED: this statement sees it).
    let (id, kind): (JobId, String) =
        sqlx::query_as("SELECT id, kind FROM jobs WHERE clinic_id = $1 AND idempotency_key = $2")
            .bind(row.clinic)
            .bind(row.idempotency_key)
            .fetch_one(&mut *conn)
            .await?;
    Ok((id, Some(kind)))
}

/// Whether `clinic` has more than `limit` unfinished jobs; reads at most `limit + 1` entries
/// of `jobs_clinic_unfinished_idx` (a partial index of unfinished jobs).
pub(super) async fn pending_over(
    conn: &mut PgConnection,
    clinic: ClinicId,
    limit: u32,
) -> Result<bool, sqlx::Error> {
    let counted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM jobs
                                WHERE clinic_id = $1 AND status IN ('queued', 'running', 'failed')
                                LIMIT $2) AS pending",
    )
    .bind(clinic)
    .bind(i64::from(limit) + 1)
    .fetch_one(conn)
    .await?;
    Ok(counted > i64::from(limit))
}

pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: JobId,
) -> Result<Option<JobRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE clinic_id = $1 AND id = $2"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A job of this clinic made ready to run again from the start, if it is dead or failed.
pub(super) async fn replay(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: JobId,
) -> Result<Option<JobRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE jobs SET status = 'queued', attempts = 0, replays = replays + 1, run_at = now(),
                         finished_at = NULL, result = NULL, updated_at = now()
         WHERE clinic_id = $1 AND id = $2 AND status IN ('dead', 'failed')
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A job as the worker claimed it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ClaimedRow {
    pub id: JobId,
    pub clinic_id: ClinicId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub deliveries: i32,
    pub created_by: Option<UserId>,
}

/// The worker's statements commit without waiting for the WAL flush (`synchronous_commit =
/// off` for that one transaction: `set_config(..., true)` lasts until its commit). A PostgreSQL
/// crash may then forget the last fraction of a second of claims and records, never reorder
/// them, and the queue already recovers both: a forgotten claim fences out its own outcome (the
/// lease expires, the job runs again), a forgotten record leaves the job running and unknown to
/// Redis (the sweep pushes it again). Delivery stays at-least-once; a commit stops costing a
/// disk flush per batch. Enqueues keep the synchronous commit of the caller's transaction.
const ASYNC_COMMIT: &str = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit";

/// Marks the jobs the worker took from Redis as running, one statement for the whole batch.
/// Jobs already final (a duplicate delivery) or unknown are not returned. A job found `running`
/// lost its last delivery with its worker: the first `FREE_LOST_DELIVERIES` such losses are
/// handed back (the attempt runs again under the same number); after that a loss counts, and a
/// job with no attempt left is returned `dead` instead of run again.
///
/// The status test is written `<> ALL (final states)` rather than `IN (unfinished states)`:
/// the latter is the predicate of `jobs_unfinished_idx`, and a planner with stale statistics
/// would scan that whole index (the backlog) instead of looking up the batch's ids.
pub(super) async fn claim(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<ClaimedRow>, sqlx::Error> {
    // A job still `running` lost its last delivery with its worker. Within
    // FREE_LOST_DELIVERIES that delivery is handed back (the same attempt runs again: the job may
    // only have been beside the one that brought the worker down); after that, it counts.
    let handed_back = "(status = 'running' AND lost_deliveries < $3)";
    let runs = format!("({handed_back} OR attempts < max_attempts)");
    sqlx::query_as(&format!(
        "UPDATE jobs SET
             status = CASE WHEN {runs} THEN 'running' ELSE 'dead' END::job_status,
             attempts = CASE WHEN {handed_back} THEN attempts
                             WHEN attempts < max_attempts THEN attempts + 1
                             ELSE attempts END,
             deliveries = deliveries + 1,
             lost_deliveries = lost_deliveries + (status = 'running')::int,
             started_at = CASE WHEN {runs} THEN now() ELSE started_at END,
             finished_at = CASE WHEN {runs} THEN NULL ELSE now() END,
             last_error = CASE WHEN {runs} THEN last_error ELSE $2 END,
             dispatched_at = COALESCE(dispatched_at, now()),
             updated_at = now()
         FROM {ASYNC_COMMIT}
         WHERE id = ANY($1) AND status <> ALL (ARRAY['succeeded', 'dead']::job_status[])
         RETURNING id, clinic_id, kind, payload, status, attempts, max_attempts, deliveries,
                   created_by"
    ))
    .bind(ids)
    .bind(LOST_LAST_ATTEMPT)
    .bind(FREE_LOST_DELIVERIES)
    .fetch_all(pool)
    .await
}

/// One outcome to record; `delivery` fences it (see [`record`]).
pub(super) struct OutcomeRow {
    pub id: JobId,
    pub delivery: i32,
    pub status: JobStatus,
    pub retry_in_ms: i64,
    pub error: Option<String>,
    pub result: Option<String>,
}

/// Records a batch of outcomes in one statement. Only the delivery that currently owns a job
/// records: a worker whose lease expired while it ran (frozen, slow) and whose job was handed to
/// another worker finds `deliveries` moved on, and its late outcome is ignored. (Only a claim
/// moves a job out of `running` other than this statement, and every claim moves `deliveries`,
/// so the fence alone proves the job is still running under this delivery.) Returns the ids
/// recorded.
pub(super) async fn record(
    pool: &PgPool,
    outcomes: &[OutcomeRow],
) -> Result<Vec<JobId>, sqlx::Error> {
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.id.as_uuid()).collect();
    let deliveries: Vec<i32> = outcomes.iter().map(|o| o.delivery).collect();
    let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
    let delays: Vec<i64> = outcomes.iter().map(|o| o.retry_in_ms).collect();
    let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.error.clone()).collect();
    let results: Vec<Option<String>> = outcomes.iter().map(|o| o.result.clone()).collect();
    sqlx::query_scalar(&format!(
        "UPDATE jobs AS j SET
             status = o.status::job_status,
             finished_at = CASE WHEN o.status IN ('succeeded', 'dead') THEN now() END,
             run_at = CASE WHEN o.status = 'failed'
                           THEN now() + o.retry_in_ms * interval '1 millisecond'
                           ELSE j.run_at END,
             last_error = COALESCE(o.error, j.last_error),
             result = o.result::jsonb,
             updated_at = now()
         FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::int8[], $5::text[], $6::text[])
                  AS o(id, delivery, status, retry_in_ms, error, result),
              {ASYNC_COMMIT}
         WHERE j.id = ANY($1) AND j.id = o.id AND j.deliveries = o.delivery
         RETURNING j.id"
    ))
    .bind(&ids)
    .bind(&deliveries)
    .bind(&statuses)
    .bind(&delays)
    .bind(&errors)
    .bind(&results)
    .fetch_all(pool)
    .await
}

/// A job the sweep looks at: not finished, and not changed for a while.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PendingRow {
    pub id: JobId,
    pub clinic_id: ClinicId,
    pub peak_memory_mib: i32,
    pub status: JobStatus,
    pub run_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Up to `limit` unfinished jobs (every clinic) untouched for `grace_ms` (running ones for
/// `running_grace_ms`: their lease may still be alive), after the keyset position `after`.
pub(super) async fn pending(
    pool: &PgPool,
    grace_ms: i64,
    running_grace_ms: i64,
    after: Option<(DateTime<Utc>, JobId)>,
    limit: i64,
) -> Result<Vec<PendingRow>, sqlx::Error> {
    let (after_at, after_id) = after.unwrap_or((DateTime::<Utc>::UNIX_EPOCH, JobId(Uuid::nil())));
    sqlx::query_as(
        "SELECT id, clinic_id, peak_memory_mib, status, run_at, updated_at FROM jobs
         WHERE status IN ('queued', 'running', 'failed')
           AND updated_at < now() - $1 * interval '1 millisecond'
           AND (status <> 'running' OR updated_at < now() - $2 * interval '1 millisecond')
           AND (updated_at, id) > ($3, $4)
         ORDER BY updated_at, id
         LIMIT $5",
    )
    .bind(grace_ms)
    .bind(running_grace_ms)
    .bind(after_at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The queue as PostgreSQL sees it, for one clinic or (platform admins) all of them.
#[derive(Debug, Default, sqlx::FromRow)]
pub(super) struct FiguresRow {
    pub depth: i64,
    pub processing: i64,
    pub delayed: i64,
    pub dead: i64,
    pub oldest_waiting_seconds: Option<f64>,
}

/// Written as an OR of the two partial indexes' predicates (`jobs_unfinished_idx`,
/// `jobs_dead_idx`), so platform-wide figures read only unfinished and dead jobs, never the
/// history of succeeded ones.
pub(super) async fn figures(
    conn: &mut PgConnection,
    clinic: Option<ClinicId>,
) -> Result<FiguresRow, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT
             count(*) FILTER (WHERE status = 'queued' OR (status = 'failed' AND run_at <= now())) AS depth,
             count(*) FILTER (WHERE status = 'running') AS processing,
             count(*) FILTER (WHERE status = 'failed' AND run_at > now()) AS delayed,
             count(*) FILTER (WHERE status = 'dead') AS dead,
             extract(epoch FROM now() - min(run_at) FILTER (
                 WHERE status = 'queued' OR (status = 'failed' AND run_at <= now())
             ))::float8 AS oldest_waiting_seconds
         FROM jobs WHERE (status IN ('queued', 'running', 'failed') OR status = 'dead')",
    );
    if let Some(clinic) = clinic {
        query.push(" AND clinic_id = ").push_bind(clinic);
    }
    query.build_query_as().fetch_one(conn).await
}

/// One page of jobs, newest first, of one clinic or (platform admins) of all.
pub(super) async fn list(
    conn: &mut PgConnection,
    clinic: Option<ClinicId>,
    status: Option<JobStatus>,
    page: &PageRequest<(DateTime<Utc>, JobId)>,
) -> Result<Vec<JobRecord>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM jobs WHERE true"));
    if let Some(clinic) = clinic {
        query.push(" AND clinic_id = ").push_bind(clinic);
    }
    if let Some(status) = status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some((created_at, id)) = page.after {
        query
            .push(" AND (created_at, id) < (")
            .push_bind(created_at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(page.fetch_limit());
    query.build_query_as().fetch_all(conn).await
}
