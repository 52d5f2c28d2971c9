//! X-ray use cases: the upload, either with the file in the request (put in S3, then row and
//! job staged in one transaction) or by presigned URL (the file goes straight to S3 and its
//! completion checks it), the reads, and the `xray.analyze` job handler.

use super::XRAY_ANALYZE;
use super::analysis::{self, Analysed, ImageFault, ImageHeader, PixelLimits};
use super::repository::{self, AnalysisSource};
use super::types::{
    AnalyzePayload, IfNoneMatch, NewXray, Sha256Digest, Stored, StoredImage, StoredThumbnail,
    THUMBNAIL_DOWNLOAD, XrayRecord, XrayStatus, image_download,
};
use super::uploads::{self, UploadPlan, UploadRecord, UploadStatus};
use crate::db::{self, DbError, TenantTx};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, JobId, PatientId, UserId, XrayId};
use crate::media::{MediaError, MediaKey, PresignedRequest, Window};
use crate::pagination::{Page, PageRequest};
use crate::queue::{IdempotencyKey, Job, JobFailure, NewJob, QueueError};
use crate::realtime::DocumentReady;
use crate::state::AppState;
use bytes::Bytes;
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
    #[error("upload not found")]
    UploadNotFound,
    /// Completing an upload whose file is not in storage (yet).
    #[error("the upload's file has not arrived")]
    UploadNotReceived,
    /// Completing an upload refused before; `detail` is why.
    #[error("the upload was rejected: {detail}")]
    UploadRejected { detail: String },
    /// The file that arrived is not the one the upload announced.
    #[error("the uploaded file is not the one announced: {detail}")]
    UploadMismatch { detail: String },
    /// The file is not an acceptable X-ray (format, header, structure).
    #[error(transparent)]
    Image(#[from] ImageFault),
    #[error(transparent)]
    Media(#[from] MediaError),
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
            XrayError::UploadNotFound => ApiError::NotFound { what: "upload" },
            XrayError::UploadNotReceived => ApiError::Conflict {
                kind: ConflictKind::UploadNotReceived,
                detail: "The file of this upload has not arrived in storage: PUT it to the \
                         upload's URL (GET /xray-uploads/{id} gives a fresh one), then complete \
                         the upload."
                    .into(),
                field: None,
            },
            XrayError::UploadRejected { detail } => ApiError::Conflict {
                kind: ConflictKind::UploadRejected,
                detail: format!("This upload was refused ({detail}); start a new upload."),
                field: None,
            },
            XrayError::UploadMismatch { detail } => ApiError::validation("file", detail),
            XrayError::Image(fault) => fault.into(),
            XrayError::Media(error) => error.into(),
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

/// The file of a direct upload, checked at the edge (`analysis::inspect`).
pub struct DirectUpload {
    pub patient_id: PatientId,
    pub uploaded_by: UserId,
    pub header: ImageHeader,
    pub sha256: Sha256Digest,
    pub bytes: Bytes,
}

/// The checks a file passes before it is accepted as an X-ray: it is the file announced
/// (SHA-256), and its format, header and structure are sound (`analysis::inspect`).
fn check_file(bytes: &[u8], announced: &Sha256Digest) -> Result<ImageHeader, XrayError> {
    if Sha256Digest::of(bytes) != *announced {
        return Err(XrayError::UploadMismatch {
            detail: "the file's SHA-256 is not the one the upload announced".into(),
        });
    }
    Ok(analysis::inspect(bytes, &PixelLimits::default())?)
}

/// Deletes an object nothing refers to; one that stays behind is only storage (an upload's
/// expires with the bucket's lifecycle rule), so a failure is logged, not returned.
async fn forget(media: &crate::media::MediaStore, key: &MediaKey) {
    if let Err(error) = media.delete(key).await {
        tracing::warn!(key = %key, error = %error, "an unused object was not deleted");
    }
}

/// What an upload produced: the X-ray, its job, and whether this was a replay of an earlier
/// request with the same idempotency key (or completion of the same upload).
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

    /// Stores the file of a direct upload (`POST /patients/{id}/xrays`, already checked) in S3,
    /// then records it. A file that does not become an X-ray (a replay, a refusal) is deleted
    /// again.
    pub async fn upload(
        &self,
        clinic: ClinicId,
        file: DirectUpload,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Uploaded, XrayError> {
        let media = self.state.media()?;
        let id = XrayId::new_random();
        let key = MediaKey::xray_image(clinic, id.0);
        let byte_size = file.bytes.len() as u64;
        let download = image_download(id, file.header.format.content_type());
        media
            .put(&key, file.bytes, &download.as_download(), &file.sha256.0)
            .await?;
        let xray = NewXray {
            id,
            patient_id: file.patient_id,
            uploaded_by: Some(file.uploaded_by),
            format: file.header.format,
            width: file.header.width,
            height: file.header.height,
            sha256: file.sha256,
            byte_size,
            key,
        };
        let recorded = self.record(clinic, &xray, idempotency_key, None).await;
        if !matches!(&recorded, Ok(uploaded) if !uploaded.replayed) {
            forget(media, &xray.key).await;
        }
        recorded
    }

    /// Stages the analysis job and records the X-ray (and accepts `upload`, when it comes from
    /// one) in one tenant transaction, commits, then dispatches the job. A repeated key answers
    /// with the X-ray its first request stored and writes nothing.
    async fn record(
        &self,
        clinic: ClinicId,
        xray: &NewXray,
        idempotency_key: Option<IdempotencyKey>,
        upload: Option<&UploadRecord>,
    ) -> Result<Uploaded, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        if let Some(upload) = upload {
            // Two completions (the client's and the storage event's) meet here: the second
            // waits for the first and answers with its outcome.
            let current = uploads::find(&mut tx, clinic, upload.id, true)
                .await?
                .ok_or(XrayError::UploadNotFound)?;
            if current.status != UploadStatus::Open {
                tx.rollback().await.map_err(DbError::from)?;
                return self.outcome(clinic, current).await;
            }
        }
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
                    created_by: xray.uploaded_by,
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
        self.check_daily_quota(&mut tx, clinic, xray.byte_size)
            .await?;
        let record = repository::insert(&mut tx, clinic, xray, staged.id).await?;
        if let Some(upload) = upload {
            uploads::accept(&mut tx, clinic, upload.id, staged.id).await?;
        }
        tx.commit().await.map_err(DbError::from)?;
        self.state.queue.dispatch(&staged).await;
        Ok(Uploaded {
            record,
            job_id: staged.id,
            replayed: false,
        })
    }

    /// Opens an upload by presigned URL for a file of `plan`: the row, and the PUT that sends
    /// the file straight to S3 (valid for one to two `MEDIA_URL_TTL_SECONDS`).
    pub async fn open_upload(
        &self,
        clinic: ClinicId,
        patient: PatientId,
        created_by: UserId,
        plan: &UploadPlan,
    ) -> Result<(UploadRecord, PresignedRequest), XrayError> {
        let media = self.state.media()?;
        let id = XrayId::new_random();
        let window = Window::around(Utc::now(), self.state.config.media.url_ttl);
        let put = media
            .presign_put(
                &MediaKey::upload(clinic, id.0),
                plan.content_type,
                plan.byte_size,
                &plan.sha256.0,
                window,
            )
            .await?;
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        match crate::patients::repository::archived_for_update(&mut tx, clinic, patient).await? {
            None => return Err(XrayError::PatientNotFound),
            Some(true) => return Err(XrayError::PatientArchived),
            Some(false) => {}
        }
        let record = uploads::insert(
            &mut tx,
            clinic,
            id,
            patient,
            created_by,
            plan,
            put.expires_at,
        )
        .await?;
        tx.commit().await.map_err(DbError::from)?;
        Ok((record, put))
    }

    /// The upload, with a fresh PUT while it is open.
    pub async fn find_upload(
        &self,
        clinic: ClinicId,
        id: XrayId,
    ) -> Result<(UploadRecord, Option<PresignedRequest>), XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let record = uploads::find(&mut tx, clinic, id, false).await?;
        tx.commit().await.map_err(DbError::from)?;
        let record = record.ok_or(XrayError::UploadNotFound)?;
        let put = match record.status {
            UploadStatus::Open => Some(self.presign_again(&record).await?),
            _ => None,
        };
        Ok((record, put))
    }

    async fn presign_again(&self, record: &UploadRecord) -> Result<PresignedRequest, XrayError> {
        let window = Window::around(Utc::now(), self.state.config.media.url_ttl);
        // The content type is not stored: the file's own bytes decide it on completion, and
        // a PUT of either type is the same file.
        Ok(self
            .state
            .media()?
            .presign_put(
                &MediaKey::upload(record.clinic_id, record.id.0),
                "application/octet-stream",
                u64::try_from(record.byte_size).unwrap_or(0),
                &record.digest().0,
                window,
            )
            .await?)
    }

    /// Checks the file an upload received and makes it the X-ray of the same id: the client's
    /// `POST /xray-uploads/{id}/complete` and S3's "Object Created" event (`crate::worker`) both
    /// come here, in any order, any number of times. The checks are today's upload's: the
    /// announced size and SHA-256, the sniffed format, the header against bombs, the
    /// structure to its end. A refused file is deleted and the upload records why.
    pub async fn complete_upload(
        &self,
        clinic: ClinicId,
        id: XrayId,
    ) -> Result<Uploaded, XrayError> {
        let media = self.state.media()?;
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let upload = uploads::find(&mut tx, clinic, id, false).await?;
        tx.commit().await.map_err(DbError::from)?;
        let upload = upload.ok_or(XrayError::UploadNotFound)?;
        if upload.status != UploadStatus::Open {
            return self.outcome(clinic, upload).await;
        }
        let staged = MediaKey::upload(clinic, id.0);
        let announced = u64::try_from(upload.byte_size).unwrap_or(0);
        let bytes = match media.get(&staged, announced).await {
            Ok(Some(bytes)) => bytes,
            // Not there yet, or taken by a completion running beside this one.
            Ok(None) => return self.not_received(clinic, id).await,
            Err(MediaError::TooLarge { size, .. }) => {
                return self.mismatch(clinic, &upload, size).await;
            }
            Err(error) => return Err(error.into()),
        };
        if bytes.len() as u64 != announced {
            return self.mismatch(clinic, &upload, bytes.len() as u64).await;
        }
        let header = match check_file(&bytes, &upload.digest()) {
            Ok(header) => header,
            Err(refusal) => return self.refuse(clinic, &upload, refusal).await,
        };
        drop(bytes);
        let key = MediaKey::xray_image(clinic, id.0);
        let download = image_download(id, header.format.content_type());
        media.copy(&staged, &key, &download.as_download()).await?;
        let xray = NewXray {
            id,
            patient_id: upload.patient_id,
            uploaded_by: upload.created_by,
            format: header.format,
            width: header.width,
            height: header.height,
            sha256: upload.digest(),
            byte_size: announced,
            key,
        };
        let recorded = self.record(clinic, &xray, None, Some(&upload)).await?;
        if !recorded.replayed {
            forget(media, &staged).await;
        }
        Ok(recorded)
    }

    /// The file in S3 is not the size the upload announced.
    async fn mismatch(
        &self,
        clinic: ClinicId,
        upload: &UploadRecord,
        size: u64,
    ) -> Result<Uploaded, XrayError> {
        let detail = format!(
            "the file has {size} bytes; the upload announced {}",
            upload.byte_size
        );
        self.refuse(clinic, upload, XrayError::UploadMismatch { detail })
            .await
    }

    /// Nothing to check yet, unless a completion beside this one has finished meanwhile.
    async fn not_received(&self, clinic: ClinicId, id: XrayId) -> Result<Uploaded, XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let upload = uploads::find(&mut tx, clinic, id, false).await?;
        tx.commit().await.map_err(DbError::from)?;
        match upload {
            Some(upload) if upload.status != UploadStatus::Open => {
                self.outcome(clinic, upload).await
            }
            Some(_) => Err(XrayError::UploadNotReceived),
            None => Err(XrayError::UploadNotFound),
        }
    }

    /// Records why `upload`'s file is refused, deletes it, and answers with `refusal`.
    async fn refuse(
        &self,
        clinic: ClinicId,
        upload: &UploadRecord,
        refusal: XrayError,
    ) -> Result<Uploaded, XrayError> {
        let reason = match &refusal {
            XrayError::UploadMismatch { detail } => detail.clone(),
            other => other.to_string(),
        };
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let rejected = uploads::reject(&mut tx, clinic, upload.id, &reason).await?;
        tx.commit().await.map_err(DbError::from)?;
        if rejected.is_none() {
            // Accepted meanwhile by another completion (which found the same file acceptable).
            return self.not_received(clinic, upload.id).await;
        }
        forget(self.state.media()?, &MediaKey::upload(clinic, upload.id.0)).await;
        tracing::warn!(upload_id = %upload.id, reason = %reason, "x-ray upload refused");
        Err(refusal)
    }

    /// What a finished upload answers with: its X-ray (a replay) or why it was refused.
    async fn outcome(&self, clinic: ClinicId, upload: UploadRecord) -> Result<Uploaded, XrayError> {
        match (upload.status, upload.job_id) {
            (UploadStatus::Accepted, Some(job_id)) => Ok(Uploaded {
                record: self.find(clinic, upload.id).await?,
                job_id,
                replayed: true,
            }),
            (UploadStatus::Rejected, _) => Err(XrayError::UploadRejected {
                detail: upload.error.unwrap_or_default(),
            }),
            _ => Err(XrayError::UploadNotReceived),
        }
    }

    /// Refuses an upload that would take the clinic past its daily quotas. Read in the upload's
    /// transaction: uploads racing each other at the limit may all pass it, by their number.
    async fn check_daily_quota(
        &self,
        tx: &mut TenantTx,
        clinic: ClinicId,
        bytes: u64,
    ) -> Result<(), XrayError> {
        let config = &self.state.config.xrays;
        let today = repository::uploaded_today(tx, clinic).await?;
        let detail = if today.uploads >= i64::from(config.daily_uploads_per_clinic) {
            format!(
                "Your clinic has uploaded its {} X-rays for today; uploads open again at \
                 midnight, clinic time.",
                config.daily_uploads_per_clinic
            )
        } else if today
            .bytes
            .saturating_add(i64::try_from(bytes).unwrap_or(i64::MAX))
            > config.daily_bytes_per_clinic as i64
        {
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

    /// Where the thumbnail is, with its digest; a conflict while the analysis has not made one.
    pub async fn thumbnail(
        &self,
        clinic: ClinicId,
        id: XrayId,
    ) -> Result<(Stored, Sha256Digest), XrayError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let thumbnail = repository::thumbnail(&mut tx, clinic, id).await?;
        tx.commit().await.map_err(DbError::from)?;
        match thumbnail.ok_or(XrayError::NotFound)? {
            StoredThumbnail {
                stored: Some(Stored::Bytes(bytes)),
                ..
            } => {
                let digest = Sha256Digest::of(&bytes);
                Ok((Stored::Bytes(bytes), digest))
            }
            StoredThumbnail {
                stored: Some(stored),
                sha256: Some(digest),
                ..
            } => Ok((stored, digest)),
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
        AnalysisSource::Image {
            stored,
            byte_size,
            sha256,
        } => match read_source(&state, stored, byte_size, &sha256).await? {
            Ok(image) => image,
            Err(fault) => return fail(&state, clinic, id, fault).await,
        },
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
            tracing::warn!(xray_id = %id, error = %fault, duration_ms, "x-ray analysis failed");
            fail(&state, clinic, id, fault.to_string()).await
        }
    }
}

/// The original's bytes: from S3, checked against the digest recorded when it was accepted,
/// or from an older row. The inner error is a file that can never be analysed.
async fn read_source(
    state: &AppState,
    stored: Stored,
    byte_size: u64,
    sha256: &Sha256Digest,
) -> Result<Result<Vec<u8>, String>, JobFailure> {
    let key = match stored {
        Stored::Bytes(bytes) => return Ok(Ok(bytes)),
        Stored::Object(key) => key,
    };
    let media = state.media()?;
    let Some(bytes) = media.get(&key, byte_size).await? else {
        return Ok(Err("the X-ray's file is missing from storage".into()));
    };
    if Sha256Digest::of(&bytes) != *sha256 {
        return Ok(Err(
            "the stored file does not match the checksum recorded when it was accepted".into(),
        ));
    }
    Ok(Ok(bytes))
}

/// Records why X-ray `id` cannot be analysed: a permanent failure of its job.
async fn fail(
    state: &AppState,
    clinic: ClinicId,
    id: XrayId,
    message: String,
) -> Result<serde_json::Value, JobFailure> {
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    repository::mark_failed(&mut tx, clinic, id, &message).await?;
    tx.commit().await?;
    Err(JobFailure::Permanent(message))
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
    // The thumbnail first: a row never names an object that is not there.
    let key = MediaKey::xray_thumbnail(clinic, id.0);
    let digest = Sha256Digest::of(&analysed.thumbnail.bytes);
    state
        .media()?
        .put(
            &key,
            Bytes::from(analysed.thumbnail.bytes),
            &THUMBNAIL_DOWNLOAD,
            &digest.0,
        )
        .await?;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let found = repository::mark_ready(
        &mut tx,
        clinic,
        id,
        &report,
        (&key, &digest),
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
