//! The media upkeep: every tick the scheduler asks a tenth of the clinics (each clinic every ten
//! minutes) whether their files need tending, and stages one `media.upkeep` job for each that
//! does. The job, run by the worker ([`upkeep`]), does two things for its clinic:
//!
//! - settles the X-ray uploads left open after their presigned PUT expired
//!   (`crate::xrays::upkeep`): the browser's completion call and S3's event were both lost (a
//!   closed tab while the worker was busy for over a minute), or the file never came;
//! - moves the files that rows made before media moved to S3 still hold in PostgreSQL (X-ray
//!   images and thumbnails, report PDFs) to their keys, one row at a time.
//!
//! Asking costs three probes of partial indexes that are empty once a clinic is in order
//! (`migrations/…_media_upkeep_indexes.sql`). The job's idempotency key names its clinic's
//! ten-minute window, so a scheduler run twice stages one job, and a job still running when the
//! next window comes is met by at most one more. What one run leaves (a bounded number of
//! uploads and files) the next window's job continues.

use super::clinics::for_each_clinic;
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::ids::ClinicId;
use crate::queue::{IdempotencyKey, Job, JobFailure, JobKind, NewJob, QueueError};
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use crate::xrays::upkeep::{self as xrays, Settled};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::time::Duration;
use tokio::time::Instant;

/// A clinic's media upkeep. At its peak it holds one upload being checked (up to
/// `XRAY_UPLOAD_MAX_BYTES`, 50 MiB by default, and the check's working memory) or one older file
/// being moved. Its jobs say which files moved: admins read them.
pub const MEDIA_UPKEEP: JobKind = JobKind::new("media.upkeep")
    .readable_by(&[Role::Admin])
    .with_peak_memory_mib(160);

/// The clinics are asked in this many slices, one per tick.
const SLICES: u64 = 10;
/// How long after its URL expired an open upload is settled: S3's event may still be on its
/// way, and the clocks of S3 and of the database differ by a little.
const SETTLE_AFTER: TimeDelta = TimeDelta::minutes(1);
/// Clinics asked at once.
const CONCURRENCY: usize = 4;
/// Most uploads one run settles.
const UPLOADS_PER_RUN: i64 = 20;
/// How long one run moves files before it leaves the rest to the next window's job: well within
/// the worker's drain (`template.yaml`: 300 s, jobs stop being taken 30 s before it).
const MOVING_BUDGET: Duration = Duration::from_secs(60);

/// What the media task did on one tick.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UpkeepReport {
    /// Clinics of this tick's slice.
    pub clinics: usize,
    /// Jobs staged for clinics with files to tend.
    pub staged: usize,
    /// Clinics with files to tend whose job of this window was staged already.
    pub already_staged: usize,
    /// Clinics that could not be asked, or whose job could not be staged.
    pub failed: usize,
    /// Clinics not asked because the deadline came first.
    pub out_of_time: usize,
}

/// Whether `clinic` is asked on the tick at `at`: its slice comes round every ten minutes.
pub fn in_slice(clinic: ClinicId, at: DateTime<Utc>) -> bool {
    let slice = (clinic.0.as_u128() % u128::from(SLICES)) as u64;
    let minute = u64::try_from(at.timestamp().div_euclid(60)).unwrap_or(0);
    slice == minute % SLICES
}

/// Asks this tick's slice of `clinics` and stages an upkeep job for each that needs one. No
/// clinic is asked after `stop_at`.
pub async fn stage_due(
    state: &AppState,
    clinics: &[ClinicId],
    at: DateTime<Utc>,
    stop_at: Instant,
) -> UpkeepReport {
    let slice: Vec<ClinicId> = clinics
        .iter()
        .copied()
        .filter(|clinic| in_slice(*clinic, at))
        .collect();
    let outcomes = for_each_clinic(&slice, CONCURRENCY, stop_at, |clinic| {
        stage_for_clinic(state, clinic, at)
    })
    .await;
    let mut report = UpkeepReport {
        clinics: slice.len(),
        ..UpkeepReport::default()
    };
    for outcome in outcomes {
        match outcome {
            Some(Ok(Staging::Staged)) => report.staged += 1,
            Some(Ok(Staging::AlreadyStaged)) => report.already_staged += 1,
            Some(Ok(Staging::NothingToDo)) => {}
            Some(Err(error)) => {
                tracing::warn!(error = %ErrorChain(&error), "media upkeep: a clinic could not be asked");
                report.failed += 1;
            }
            None => report.out_of_time += 1,
        }
    }
    report
}

enum Staging {
    NothingToDo,
    Staged,
    AlreadyStaged,
}

async fn stage_for_clinic(
    state: &AppState,
    clinic: ClinicId,
    at: DateTime<Utc>,
) -> Result<Staging, QueueError> {
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let due = xrays::needs_upkeep(&mut tx, clinic, at - SETTLE_AFTER)
        .await
        .map_err(DbError::from)?
        || crate::reports::holds_pdfs(&mut tx, clinic)
            .await
            .map_err(DbError::from)?;
    if !due {
        tx.rollback().await.map_err(DbError::from)?;
        return Ok(Staging::NothingToDo);
    }
    let window = at.timestamp().div_euclid(60 * SLICES as i64);
    let job = NewJob {
        kind: MEDIA_UPKEEP,
        payload: serde_json::json!({}),
        idempotency_key: Some(IdempotencyKey::scheduled(MEDIA_UPKEEP, window)),
        created_by: None,
        max_attempts: None,
    };
    let staged = state.queue.stage(&mut tx, clinic, job).await?;
    tx.commit().await.map_err(DbError::from)?;
    state.queue.dispatch(&staged).await;
    Ok(if staged.created {
        Staging::Staged
    } else {
        Staging::AlreadyStaged
    })
}

/// Runs one `media.upkeep` job: settles the clinic's stalled uploads, then moves its older files
/// until none is left or [`MOVING_BUDGET`] is spent. Storage or database trouble is a retry;
/// what was done before it stays done.
pub async fn upkeep(state: AppState, job: Job) -> Result<serde_json::Value, JobFailure> {
    let clinic = job.clinic;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let stalled =
        xrays::stalled_uploads(&mut tx, clinic, Utc::now() - SETTLE_AFTER, UPLOADS_PER_RUN).await?;
    tx.commit().await?;
    let (mut completed, mut rejected) = (0, 0);
    for upload in stalled {
        match xrays::settle_upload(&state, clinic, upload).await? {
            Settled::Completed => completed += 1,
            Settled::Rejected => rejected += 1,
            Settled::Gone => {}
        }
    }
    let started = Instant::now();
    let (mut xrays_moved, mut pdfs_moved) = (0, 0);
    while started.elapsed() < MOVING_BUDGET {
        if xrays::move_one(&state, clinic).await?.is_some() {
            xrays_moved += 1;
        } else if crate::reports::move_held_pdf(&state, clinic)
            .await?
            .is_some()
        {
            pdfs_moved += 1;
        } else {
            break;
        }
    }
    if completed + rejected + xrays_moved + pdfs_moved > 0 {
        tracing::info!(
            uploads_completed = completed,
            uploads_rejected = rejected,
            xrays_moved,
            pdfs_moved,
            "media upkeep"
        );
    }
    Ok(serde_json::json!({
        "uploads_completed": completed,
        "uploads_rejected": rejected,
        "xrays_moved": xrays_moved,
        "pdfs_moved": pdfs_moved,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;

    #[test]
    fn every_clinic_is_asked_once_in_ten_ticks() {
        let start = Utc
            .timestamp_opt(1_800_000_000, 0) // a multiple of ten minutes
            .unwrap();
        for _ in 0..50 {
            let clinic = ClinicId::from(Uuid::new_v4());
            let asked = (0..10)
                .filter(|minute| in_slice(clinic, start + TimeDelta::minutes(*minute)))
                .count();
            assert_eq!(asked, 1);
            // Seconds within the minute do not matter.
            let minute = (0..10)
                .find(|minute| in_slice(clinic, start + TimeDelta::minutes(*minute)))
                .unwrap();
            let later = start + TimeDelta::minutes(minute) + TimeDelta::seconds(59);
            assert!(in_slice(clinic, later));
        }
    }
}
