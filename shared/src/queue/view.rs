//! What the status routes answer: one job (`GET /jobs/{id}`, the admin lists) and the queue's
//! figures (`GET /admin/queues`).

use super::repository::FiguresRow;
use super::types::{JobRecord, JobStatus};
use crate::ids::{ClinicId, JobId, UserId};
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: JobId,
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` (an attempt failed; the next one is at
    /// `next_attempt_at`) or `dead` (no attempt left, or a failure no retry can fix).
    pub status: JobStatus,
    /// Attempts started so far (the running one included).
    pub attempts: i32,
    pub max_attempts: i32,
    /// Times an admin replayed the job.
    pub replays: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// When a failed job runs again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The error of the latest failed attempt, if any (kept after a successful retry).
    pub last_error: Option<String>,
    /// What the handler returned (succeeded jobs only).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Where the resource the job produced lives (the result's `location`), if it made one.
    pub result_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<UserId>,
    /// Only in platform-wide admin lists, where jobs of several clinics appear together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinic_id: Option<ClinicId>,
}

impl JobView {
    pub fn of(record: JobRecord) -> Self {
        let result_url = record
            .result
            .as_ref()
            .and_then(|result| result.get("location"))
            .and_then(|location| location.as_str())
            .filter(|location| location.starts_with('/') && !location.starts_with("//"))
            .map(str::to_owned);
        Self {
            id: record.id,
            kind: record.kind,
            status: record.status,
            attempts: record.attempts,
            max_attempts: record.max_attempts,
            replays: record.replays,
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            updated_at: record.updated_at,
            next_attempt_at: (record.status == JobStatus::Failed).then_some(record.run_at),
            last_error: record.last_error,
            result: record.result,
            result_url,
            created_by: record.created_by,
            clinic_id: None,
        }
    }

    /// The view with the job's clinic named (platform-wide lists).
    pub fn with_clinic(record: JobRecord) -> Self {
        let clinic = record.clinic_id;
        Self {
            clinic_id: Some(clinic),
            ..Self::of(record)
        }
    }
}

/// The queue as PostgreSQL (the truth) sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueFigures {
    /// Jobs waiting to run now: queued, or failed with their retry due.
    pub depth: i64,
    /// Jobs running (held by a worker).
    pub processing: i64,
    /// Failed jobs waiting for their retry time.
    pub delayed: i64,
    /// Jobs in the dead-letter queue (replayable).
    pub dead: i64,
    /// How long the oldest job of `depth` has been waiting.
    pub oldest_waiting_seconds: Option<f64>,
}

impl From<FiguresRow> for QueueFigures {
    fn from(row: FiguresRow) -> Self {
        Self {
            depth: row.depth,
            processing: row.processing,
            delayed: row.delayed,
            dead: row.dead,
            oldest_waiting_seconds: row.oldest_waiting_seconds.map(|s| s.max(0.0)),
        }
    }
}

/// Counters the workers keep in Redis, since `counting_since` (a Redis restart resets them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueCounters {
    /// Jobs that succeeded.
    pub processed: i64,
    /// Attempts that failed (retried or not).
    pub failed: i64,
    /// Failed attempts that were scheduled for a retry.
    pub retried: i64,
    /// Jobs that went to the dead-letter queue.
    pub dead: i64,
    pub counting_since: Option<DateTime<Utc>>,
}

impl QueueCounters {
    pub(super) fn from_hash(hash: &HashMap<String, i64>) -> Self {
        let field = |name: &str| hash.get(name).copied().unwrap_or(0);
        Self {
            processed: field("processed"),
            failed: field("failed"),
            retried: field("retried"),
            dead: field("dead"),
            counting_since: hash
                .get("since")
                .and_then(|seconds| Utc.timestamp_opt(*seconds, 0).single()),
        }
    }
}

/// How many ids the Redis structures hold (shared by every clinic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedisQueueSizes {
    /// Jobs ready to run, over every clinic.
    pub ready: u64,
    /// Clinics with jobs ready (the claim ring's length).
    pub ready_clinics: u64,
    pub processing: u64,
    pub delayed: u64,
    pub known: u64,
}
