//! X-ray use cases: the idempotent upload (row and job staged in one transaction), the reads,
//! and the `xray.analyze` job handler.

use super::XRAY_ANALYZE;
use super::analysis::{self, Analysed, ImageFault, PixelLimits};
use super::repository::{self, AnalysisSource};
use super::types::{
    AnalyzePayload, IfNoneMatch, NewXray, StoredImage, StoredThumbnail, XrayRecord, XrayStatus,
};
use crate::db::{self, DbError, TenantTx};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, JobId, PatientId, XrayId};
use crate::pagination::{Page, PageRequest};
use crate::queue::{IdempotencyKey, Job, JobFailure, NewJob, QueueError};
use crate::realtime::DocumentReady;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum XrayError {
    #[error("x-ray not found")]
    NotFound,
    #[error("patient not found")]
    PatientNotFound,
    #[error("patient is archived")]
    PatientArchived,
    /// The idempotency key belongs to an earlier request that was not this upload (another
    /// patient, another file, or another kind of job).
    #[error("idempotency key reused for a different request")]
    IdempotencyKeyReused,
    #[error("x-ray has no thumbnail yet")]
    NotAnalysed { status: XrayStatus },
    /// The clinic's uploads of its local day would pass `XRAY_DAILY_UPLOADS_PER_CLINIC` or
    /// `XRAY_DAILY_BYTES_PER_CLINIC`.
    #[error("the clinic's daily X-ray quota is used up")]
    DailyQuota {
        detail: String,
        seconds_to_midnight: u64,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<sqlx::Error> for XrayError {
    fn from(error: sqlx::Error) -> Self {
        XrayError::Db(DbError::from(error))
    }
}

impl From<XrayError> for ApiError {
    fn from(error: XrayError) -> Self {
        match error {
            XrayError::NotFound => ApiError::NotFound { what: "X-ray" },
            XrayError::PatientNotFound => ApiError::NotFound { what: "patient" },
            XrayError::PatientArchived => ApiError::Conflict {
                kind: ConflictKind::PatientArchived,
                detail: "The patient is archived; archived records cannot be changed.".into(),
                field: None,
            },
            // 422 like the queue's own reuse check (and the IETF Idempotency-Key draft).
            XrayError::IdempotencyKeyReused => ApiError::Validation {
                field: "Idempotency-Key".into(),
                detail: "This Idempotency-Key was already used for a different request (another \
                         file or patient); send a new key for a new upload."
                    .into(),
            },
            XrayError::NotAnalysed {
                status: XrayStatus::Failed,
            } => ApiError::Conflict {
                kind: ConflictKind::XrayAnalysisFailed,
                detail: "The analysis of this X-ray failed, so it has no thumbnail; \
                         GET /xrays/{id} shows the error. The original image is still served."
                    .into(),
                field: None,
            },
            XrayError::NotAnalysed { .. } => ApiError::Conflict {
                kind: ConflictKind::XrayNotReady,
                detail: "The X-ray is still being analysed; its thumbnail exists once its \
                         status is ready (GET /xrays/{id}, or the job's status)."
                    .into(),
                field: None,
            },
            XrayError::DailyQuota {
                detail,
                seconds_to_midnight,
            } => ApiError::QuotaExceeded {
                detail,
                retry_after_seconds: seconds_to_midnight,
            },
            XrayError::Db(error) => error.into(),
            XrayError::Queue(error) => error.into(),
        }
    }
}

impl From<ImageFault> for ApiError {
    fn from(fault: ImageFault) -> Self {
        match fault {
            ImageFault::Empty => ApiError::BadRequest {
                detail: "The body is empty: send the PNG or JPEG file itself as the body.".into(),
                field: None,
            },
            ImageFault::UnsupportedFormat => ApiError::UnsupportedMediaType {
                expected: "a PNG or JPEG image (the file's own bytes are checked, not its \
                           Content-Type)",
            },
            other => ApiError::validation("image", other.to_string()),
        }
    }
}

/// What an upload produced: the X-ray, its job, and whether this was a replay of an earlier
/// request with the same idempotency key.
pub struct Uploaded {
    pub record: XrayRecord,
    pub job_id: JobId,
    pub replayed: bool,
}

pub struct XrayService<'a> {
    state: &'a AppState,
}

impl<'a> XrayService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// Stages the analysis job and stores the X-ray in one tenant transaction, commits, then
    /// dispatches the job. A repeated key answers with the X-ray its first request stored and
    /// writes nothing.
    pub async fn upload(
        &self,
        clinic: ClinicId,
        xray: &NewXray,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Uploaded, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let staged = self
            .state
            .queue
            .stage(
                &mut tx,
                clinic,
                NewJob {
                    kind: XRAY_ANALYZE,
                    payload: json!(AnalyzePayload { xray_id: xray.id }),
                    idempotency_key,
                    created_by: Some(xray.uploaded_by),
                    max_attempts: None,
                },
            )
            .await?;
        if !staged.created {
            let existing = repository::find_by_job(&mut tx, clinic, staged.id).await?;
            tx.rollback().await.map_err(DbError::from)?;
            let existing = existing
                .filter(|found| {
                    found.patient_id == xray.patient_id && found.sha256[..] == xray.sha256.0[..]
                })
                .ok_or(XrayError::IdempotencyKeyReused)?;
            return Ok(Uploaded {
                record: existing,
                job_id: staged.id,
                replayed: true,
            });
        }
        match crate::patients::repository::archived_for_update(&mut tx, clinic, xray.patient_id)
            .await?
        {
            None => return Err(XrayError::PatientNotFound),
            Some(true) => return Err(XrayError::PatientArchived),
            Some(false) => {}
        }
        self.check_daily_quota(&mut tx, clinic, xray.bytes.len())
            .await?;
        let record = repository::insert(&mut tx, clinic, xray, staged.id).await?;
        tx.commit().await.map_err(DbError::from)?;
        self.state.queue.dispatch(&staged).await;
        Ok(Uploaded {
            record,
            job_id: staged.id,
            replayed: false,
        })
    }

    /// Refuses an upload that would take the clinic past its daily quotas. Read in the upload's
    /// transaction: uploads racing each other at the limit may all pass it, by their number.
    async fn check_daily_quota(
        &self,
        tx: &mut TenantTx,
        clinic: ClinicId,
        bytes: usize,
    ) -> Result<(), XrayError> {
        let config = &self.state.config.xrays;
        let today = repository::uploaded_today(tx, clinic).await?;
        let detail = if today.uploads >= i64::from(config.daily_uploads_per_clinic) {
            format!(
                "Your clinic has uploaded its {} X-rays for today; uploads open again at \
                 midnight, clinic time.",
                config.daily_uploads_per_clinic
            )
        } else if today.bytes.saturating_add(bytes as i64) > config.daily_bytes_per_clinic as i64 {
            format!(
                "This X-ray would take your clinic past its {} of uploads for today; uploads \
                 open again at midnight, clinic time.",
                size(config.daily_bytes_per_clinic)
            )
        } else {
            return Ok(());
        };
        Err(XrayError::DailyQuota {
            detail,
            seconds_to_midnight: u64::try_from(today.seconds_to_midnight.max(1)).unwrap_or(1),
        })
    }

    pub async fn find(&self, clinic: ClinicId, id: XrayId) -> Result<XrayRecord, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let record = repository::find(&mut tx, clinic, id).await?;
        tx.commit().await.map_err(DbError::from)?;
        record.ok_or(XrayError::NotFound)
    }

    pub async fn list(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        page: &PageRequest<(DateTime<Utc>, XrayId)>,
    ) -> Result<Page<XrayRecord>, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        if !crate::patients::repository::exists(&mut tx, clinic, patient).await? {
            return Err(XrayError::PatientNotFound);
        }
        let rows = repository::list(&mut tx, clinic, patient, page).await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(Page::from_rows(rows, page.limit, |x| (x.created_at, x.id)))
    }

    pub async fn image(
        &self,
        clinic: ClinicId,
        id: XrayId,
        if_none_match: &IfNoneMatch,
    ) -> Result<StoredImage, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let image = repository::image(&mut tx, clinic, id, if_none_match).await?;
        tx.commit().await.map_err(DbError::from)?;
        image.ok_or(XrayError::NotFound)
    }

    /// The thumbnail bytes; a conflict while the analysis has not made one.
    pub async fn thumbnail(&self, clinic: ClinicId, id: XrayId) -> Result<Vec<u8>, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let thumbnail = repository::thumbnail(&mut tx, clinic, id).await?;
        tx.commit().await.map_err(DbError::from)?;
        match thumbnail.ok_or(XrayError::NotFound)? {
            StoredThumbnail {
                bytes: Some(bytes), ..
            } => Ok(bytes),
            StoredThumbnail { status, .. } => Err(XrayError::NotAnalysed { status }),
        }
    }
}

/// The `xray.analyze` handler: decodes and measures the stored image, stores the report and
/// thumbnail (status `ready`) or the reason it could not (status `failed`, a permanent job
/// failure). Database trouble is a retry. Safe to run twice: a ready X-ray is left as it is.
pub async fn analyze(state: AppState, job: Job) -> Result<serde_json::Value, JobFailure> {
    let payload: AnalyzePayload = serde_json::from_value(job.payload.clone()).map_err(|error| {
        JobFailure::permanent(format!("the job payload names no X-ray: {error}"))
    })?;
    let (clinic, id) = (job.clinic, payload.xray_id);

    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let source = repository::analysis_source(&mut tx, clinic, id).await?;
    tx.commit().await?;
    let image = match source {
        AnalysisSource::Image(image) => image,
        AnalysisSource::Missing => {
            return Err(JobFailure::permanent("the X-ray does not exist (any more)"));
        }
        AnalysisSource::AlreadyReady => {
            // Realtime (issue 6): a run that crashed before notifying is made good; sent once.
            let ready = DocumentReady::xray_analysed(id, job.id);
            crate::realtime::document_ready(&state, clinic, job.created_by, ready).await;
            return Ok(json!({
                "location": format!("/xrays/{id}"),
                "xray_id": id,
                "status": XrayStatus::Ready,
                "skipped": "already analysed",
            }));
        }
    };

    let started = Instant::now();
    // CPU-bound work off the async threads; a panic in a decoder is caught as a JoinError and
    // becomes a failed X-ray, not a dead worker.
    let outcome =
        tokio::task::spawn_blocking(move || analysis::analyse(&image, &PixelLimits::default()))
            .await
            .unwrap_or_else(|join_error| {
                tracing::error!(xray_id = %id, error = %join_error, "x-ray analysis panicked");
                Err(ImageFault::Corrupt(
                    "the decoder failed on this file".into(),
                ))
            });
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(analysed) => store_analysis(&state, &job, id, analysed, duration_ms).await,
        Err(fault) => {
            let message = fault.to_string();
            let mut tx = db::begin_tenant(&state.db, clinic).await?;
            repository::mark_failed(&mut tx, clinic, id, &message).await?;
            tx.commit().await?;
            tracing::warn!(xray_id = %id, error = %message, duration_ms, "x-ray analysis failed");
            Err(JobFailure::Permanent(message))
        }
    }
}

/// Stores the report and thumbnail of X-ray `id` (status `ready`) and tells the requester and
/// the reception desk.
async fn store_analysis(
    state: &AppState,
    job: &Job,
    id: XrayId,
    analysed: Analysed,
    duration_ms: f64,
) -> Result<serde_json::Value, JobFailure> {
    let clinic = job.clinic;
    let report = serde_json::to_value(&analysed.report)
        .map_err(|error| JobFailure::permanent(format!("the report did not serialise: {error}")))?;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let found = repository::mark_ready(
        &mut tx,
        clinic,
        id,
        &report,
        &analysed.thumbnail.bytes,
        analysed.report.image.width,
        analysed.report.image.height,
    )
    .await?;
    tx.commit().await?;
    if !found {
        return Err(JobFailure::permanent("the X-ray does not exist (any more)"));
    }
    tracing::info!(
        xray_id = %id,
        quality_score = analysed.report.quality_score,
        findings = analysed.report.findings.len(),
        duration_ms,
        "x-ray analysed"
    );
    // Realtime (issue 6): the requester and the reception desk hear it is ready; once.
    let ready = DocumentReady::xray_analysed(id, job.id);
    crate::realtime::document_ready(state, clinic, job.created_by, ready).await;
    // `location` becomes the job's `result_url` in GET /jobs/{id}.
    Ok(json!({
        "location": format!("/xrays/{id}"),
        "xray_id": id,
        "status": XrayStatus::Ready,
        "quality_score": analysed.report.quality_score,
        "findings": analysed.report.findings,
    }))
}

/// A quota in the unit a person reads it in.
fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{b} bytes"),
    }
}
