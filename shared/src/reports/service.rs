//! Report use cases: accept a request (report row and job in one transaction, Idempotency-Key
//! honoured), read a report's status, hand out its PDF.

use super::jobs::REPORT_INSURANCE;
use super::repository;
use super::types::{
    InsurancePayload, InsuranceReportParams, PdfDownload, ReportRecord, ReportStatus,
};
use crate::catalogs::{self, CatalogCode, CatalogKind};
use crate::db::{self, DbError};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, ReportId, UserId};
use crate::media::Stored;
use crate::queue::{IdempotencyKey, NewJob, Queue, QueueError};
use crate::state::AppState;
use sqlx::{PgConnection, PgPool};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report not found")]
    NotFound,
    #[error("no such patient in the clinic")]
    NoSuchPatient,
    #[error("the insurer is not an active insurer of the clinic")]
    UnknownInsurer,
    #[error("the idempotency key was used for another request")]
    KeyReused,
    #[error("the report is {0}, not ready")]
    NotReady(ReportStatus),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ReportError {
    fn from(error: sqlx::Error) -> Self {
        ReportError::Db(DbError::from(error))
    }
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::NotFound => ApiError::NotFound { what: "report" },
            ReportError::NoSuchPatient => ApiError::NotFound { what: "patient" },
            ReportError::UnknownInsurer => ApiError::validation(
                "insurer",
                "must be the code of an active insurer in your clinic's catalog \
                 (GET /catalogs/insurer)",
            ),
            // As the queue answers a key reused for another kind of job, and as the IETF
            // Idempotency-Key draft asks for a key reused with another payload.
            ReportError::KeyReused => ApiError::validation(
                "Idempotency-Key",
                "This Idempotency-Key was already used for a different request; send a new key \
                 for a new report.",
            ),
            ReportError::NotReady(ReportStatus::Failed) => ApiError::Conflict {
                kind: ConflictKind::ReportFailed,
                detail: "The report could not be generated, so it has no PDF; \
                         GET /reports/{id} says why. Request a new report."
                    .into(),
                field: None,
            },
            ReportError::NotReady(_) => ApiError::Conflict {
                kind: ConflictKind::ReportNotReady,
                detail: "The report is still being generated; poll GET /reports/{id} until its \
                         status is ready."
                    .into(),
                field: None,
            },
            ReportError::Queue(error) => error.into(),
            ReportError::Db(error) => error.into(),
        }
    }
}

/// What `POST /reports/insurance` did.
#[derive(Debug)]
pub struct Requested {
    pub record: ReportRecord,
    /// `true`: the Idempotency-Key matched an earlier request, whose report this is.
    pub replayed: bool,
}

/// A ready report's PDF: where it is, and how it is served.
pub struct ReportPdf {
    pub stored: Stored,
    pub download: PdfDownload,
}

pub struct ReportService<'a> {
    db: &'a PgPool,
    queue: &'a Queue,
}

impl<'a> ReportService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            queue: &state.queue,
        }
    }

    /// Stages the `report.insurance` job first, so a repeated Idempotency-Key is recognised
    /// before anything else: the repeat gets the first request's report (whatever its status by
    /// now) and writes nothing. A new request checks the patient and the insurer, writes the
    /// pending report with its job, commits both at once and only then pushes the job to Redis.
    pub async fn request_insurance(
        &self,
        clinic: ClinicId,
        requested_by: UserId,
        params: &InsuranceReportParams,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Requested, ReportError> {
        let report_id = ReportId::new_random();
        let job = NewJob {
            kind: REPORT_INSURANCE,
            payload: InsurancePayload { report_id }.to_json(),
            idempotency_key,
            created_by: Some(requested_by),
            max_attempts: None,
        };
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let staged = self.queue.stage(&mut tx, clinic, job).await?;
        if !staged.created {
            let existing = repository::find_by_job(&mut tx, clinic, staged.id).await?;
            tx.rollback().await?;
            return match existing {
                Some(record) if record.answers(params) => Ok(Requested {
                    record,
                    replayed: true,
                }),
                // The key was used for a report of another patient, period or insurer.
                _ => Err(ReportError::KeyReused),
            };
        }
        if !crate::patients::repository::exists(&mut tx, clinic, params.patient_id).await? {
            return Err(ReportError::NoSuchPatient);
        }
        if !insurer_is_active(&mut tx, clinic, &params.insurer).await? {
            return Err(ReportError::UnknownInsurer);
        }
        let record =
            repository::insert(&mut tx, clinic, report_id, params, staged.id, requested_by).await?;
        tx.commit().await?;
        self.queue.dispatch(&staged).await;
        Ok(Requested {
            record,
            replayed: false,
        })
    }

    pub async fn show(&self, clinic: ClinicId, id: ReportId) -> Result<ReportRecord, ReportError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let record = repository::find(&mut tx, clinic, id, false).await?;
        tx.commit().await?;
        record.ok_or(ReportError::NotFound)
    }

    /// The PDF of a ready report; a pending or failed one has none yet (409, not 404: the
    /// report exists, and its status link says when that changes).
    pub async fn pdf(&self, clinic: ClinicId, id: ReportId) -> Result<ReportPdf, ReportError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let record = repository::find(&mut tx, clinic, id, false)
            .await?
            .ok_or(ReportError::NotFound)?;
        if record.status != ReportStatus::Ready {
            tx.commit().await?;
            return Err(ReportError::NotReady(record.status));
        }
        let stored = repository::pdf(&mut tx, clinic, id).await?;
        tx.commit().await?;
        // `reports_ready_has_pdf` guarantees it; a report without one is not ready.
        let stored = stored.ok_or(ReportError::NotReady(ReportStatus::Pending))?;
        Ok(ReportPdf {
            stored,
            download: PdfDownload::of(&record),
        })
    }
}

/// Whether `code` is an active insurer of the clinic's merged catalog (an override may hide a
/// global insurer; a retired global one cannot be revived).
async fn insurer_is_active(
    conn: &mut PgConnection,
    clinic: ClinicId,
    code: &CatalogCode,
) -> Result<bool, sqlx::Error> {
    let rows =
        catalogs::repository::merged(conn, Some(clinic), CatalogKind::Insurer, Some(code)).await?;
    Ok(rows.iter().any(|row| row.active))
}
