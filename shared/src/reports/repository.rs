//! Report SQL. Every query runs inside a tenant transaction (row-level security) and also
//! filters on `clinic_id`: reports by `reports_clinic_id_id_key` and `reports_clinic_job_key`,
//! a patient's appointments by `appointments_clinic_patient_starts_idx`.

use super::types::{InsuranceReportParams, ReportRecord};
use crate::ids::{ClinicId, JobId, PatientId, ReportId, UserId};
use crate::media::{MediaKey, Stored};
use chrono::{NaiveDate, NaiveDateTime};
use sqlx::PgConnection;

/// Everything but the PDF itself, which only the download reads (and the media move).
const COLUMNS: &str = "id, patient_id, params, status, error, job_id, requested_by, created_at, \
                       completed_at, COALESCE(pdf_size, octet_length(pdf)) AS pdf_bytes, pdf_key";

/// The same columns read through the report's job: a pending report whose job is dead (its
/// worker vanished on the last attempt, so the handler never recorded the failure) reads as
/// failed, with the job's error, instead of pending for ever.
const SELECT: &str = "
    SELECT r.id, r.patient_id, r.params,
           CASE WHEN r.status = 'pending' AND j.status = 'dead'
                THEN 'failed'::document_status ELSE r.status END AS status,
           CASE WHEN r.status = 'pending' AND j.status = 'dead'
                THEN COALESCE(j.last_error, 'the job ran out of attempts') ELSE r.error END
               AS error,
           r.job_id, r.requested_by, r.created_at,
           CASE WHEN r.status = 'pending' AND j.status = 'dead'
                THEN j.finished_at ELSE r.completed_at END AS completed_at,
           COALESCE(r.pdf_size, octet_length(r.pdf)) AS pdf_bytes, r.pdf_key
      FROM reports r
      LEFT JOIN jobs j ON j.clinic_id = r.clinic_id AND j.id = r.job_id";

pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
    params: &InsuranceReportParams,
    job: JobId,
    requested_by: UserId,
) -> Result<ReportRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO reports (id, clinic_id, patient_id, kind, params, job_id, requested_by)
         VALUES ($1, $2, $3, 'insurance', $4, $5, $6)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(clinic)
    .bind(params.patient_id)
    .bind(sqlx::types::Json(params.stored()))
    .bind(job)
    .bind(requested_by)
    .fetch_one(conn)
    .await
}

/// The report, locked until commit when `lock` (the job builds it under that lock, so two
/// deliveries of one job cannot both write it).
pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
    lock: bool,
) -> Result<Option<ReportRecord>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE OF r" } else { "" };
    sqlx::query_as(&format!(
        "{SELECT} WHERE r.clinic_id = $1 AND r.id = $2{lock}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The report a job builds.
pub(super) async fn find_by_job(
    conn: &mut PgConnection,
    clinic: ClinicId,
    job: JobId,
) -> Result<Option<ReportRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE r.clinic_id = $1 AND r.job_id = $2"
    ))
    .bind(clinic)
    .bind(job)
    .fetch_optional(conn)
    .await
}

/// Where the report's PDF is (its bytes are read only from an older row, which has no key).
pub(super) async fn pdf(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<(Option<Vec<u8>>, Option<String>)> = sqlx::query_as(
        "SELECT CASE WHEN pdf_key IS NULL THEN pdf END, pdf_key
           FROM reports WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(bytes, key)| Stored::of(bytes, key)))
}

/// A report made before PDFs moved to S3, with its PDF, locked until commit; `None` when the
/// clinic holds none any more (`reports_held_idx`). Rows another run has locked are skipped.
pub(super) async fn lock_held(
    conn: &mut PgConnection,
    clinic: ClinicId,
) -> Result<Option<(ReportRecord, Vec<u8>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Held {
        #[sqlx(flatten)]
        record: ReportRecord,
        pdf: Vec<u8>,
    }
    let held: Option<Held> = sqlx::query_as(&format!(
        "SELECT {COLUMNS}, pdf FROM reports
          WHERE clinic_id = $1 AND pdf IS NOT NULL
          ORDER BY id
          LIMIT 1
          FOR UPDATE SKIP LOCKED"
    ))
    .bind(clinic)
    .fetch_optional(conn)
    .await?;
    Ok(held.map(|held| (held.record, held.pdf)))
}

/// The report's PDF is now in S3 at `key`; the row lets go of its bytes.
pub(super) async fn pdf_moved(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
    key: &MediaKey,
    size: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET pdf = NULL, pdf_key = $3, pdf_size = $4
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(key.as_str())
    .bind(i32::try_from(size).unwrap_or(i32::MAX))
    .execute(conn)
    .await
    .map(drop)
}

/// Whether the clinic still holds a PDF in PostgreSQL: one probe of `reports_held_idx`.
pub async fn holds_pdfs(conn: &mut PgConnection, clinic: ClinicId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM reports WHERE clinic_id = $1 AND pdf IS NOT NULL)",
    )
    .bind(clinic)
    .fetch_one(conn)
    .await
}

/// Who and where a report is about, and the moment it is generated, in the clinic's time zone.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SubjectRow {
    pub clinic_name: String,
    pub timezone: String,
    pub generated_at: NaiveDateTime,
    pub utc_offset_minutes: i32,
    pub first_name: String,
    pub last_name: String,
    pub national_id: Option<String>,
}

/// The clinic and the patient, without the patient's clinical notes (never read here).
pub(super) async fn subject(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: PatientId,
) -> Result<Option<SubjectRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.name AS clinic_name,
                c.timezone,
                now() AT TIME ZONE c.timezone AS generated_at,
                (extract(epoch FROM (now() AT TIME ZONE c.timezone) - (now() AT TIME ZONE 'UTC'))
                    / 60)::integer AS utc_offset_minutes,
                p.first_name,
                p.last_name,
                p.national_id
           FROM clinics c
           JOIN patients p ON p.clinic_id = c.id AND p.id = $2
          WHERE c.id = $1",
    )
    .bind(clinic)
    .bind(patient)
    .fetch_optional(conn)
    .await
}

/// The patient's completed appointments whose start falls on a day of `from..=to` in
/// `timezone`, oldest first: the local day and the procedure code, nothing else (the reason is
/// clinical text). The day boundaries are local midnights, daylight-saving days included.
pub(super) async fn completed_procedures(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: PatientId,
    from: NaiveDate,
    to: NaiveDate,
    timezone: &str,
) -> Result<Vec<(NaiveDate, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT (a.starts_at AT TIME ZONE $5)::date AS day, a.procedure_code
           FROM appointments a
          WHERE a.clinic_id = $1
            AND a.patient_id = $2
            AND a.starts_at >= $3::date::timestamp AT TIME ZONE $5
            AND a.starts_at < ($4::date + 1)::timestamp AT TIME ZONE $5
            AND a.status = 'completed'
          ORDER BY a.starts_at, a.id",
    )
    .bind(clinic)
    .bind(patient)
    .bind(from)
    .bind(to)
    .bind(timezone)
    .fetch_all(conn)
    .await
}

/// The report is ready, its PDF (`size` bytes) in S3 at `key`.
pub(super) async fn mark_ready(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
    key: &MediaKey,
    size: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports
            SET status = 'ready', pdf_key = $3, pdf_size = $4, pdf = NULL, error = NULL,
                completed_at = now()
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(key.as_str())
    .bind(i32::try_from(size).unwrap_or(i32::MAX))
    .execute(conn)
    .await
    .map(drop)
}

/// Records why the report could not be built; a report that is ready stays ready.
pub(super) async fn mark_failed(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: ReportId,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE reports SET status = 'failed', error = $3, completed_at = now()
          WHERE clinic_id = $1 AND id = $2 AND status <> 'ready'",
    )
    .bind(clinic)
    .bind(id)
    .bind(error)
    .execute(conn)
    .await
    .map(drop)
}
