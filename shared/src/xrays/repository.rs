//! X-ray SQL. Every query runs inside a tenant transaction (row-level security) and also filters
//! on `clinic_id`. Metadata queries never select the `image` or `thumbnail` bytes (rows written
//! before media moved to S3 still hold them; newer rows hold S3 keys instead).

use super::types::{
    IfNoneMatch, NewXray, Sha256Digest, Stored, StoredImage, StoredThumbnail, XrayRecord,
    XrayStatus,
};
use crate::ids::{ClinicId, JobId, PatientId, XrayId};
use crate::media::MediaKey;
use crate::pagination::PageRequest;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

const COLUMNS: &str = "id, clinic_id, patient_id, uploaded_by, content_type, byte_size, sha256, \
                       width, height, status, analysis, error, job_id, created_at, analysed_at, \
                       image_key, thumbnail_key, \
                       (thumbnail IS NOT NULL OR thumbnail_key IS NOT NULL) AS has_thumbnail";

/// The same columns read through the X-ray's job: a pending X-ray whose job is dead (its worker
/// vanished on the last attempt, or PostgreSQL failed every attempt, so the handler never
/// recorded the failure) reads as failed, with the job's error, instead of pending for ever.
const SELECT: &str = "
    SELECT x.id, x.clinic_id, x.patient_id, x.uploaded_by, x.content_type, x.byte_size,
           x.sha256, x.width, x.height,
           CASE WHEN x.status = 'pending' AND j.status = 'dead'
                THEN 'failed'::document_status ELSE x.status END AS status,
           x.analysis,
           CASE WHEN x.status = 'pending' AND j.status = 'dead'
                THEN COALESCE(j.last_error, 'the analysis job ran out of attempts')
                ELSE x.error END AS error,
           x.job_id, x.created_at, x.analysed_at, x.image_key, x.thumbnail_key,
           (x.thumbnail IS NOT NULL OR x.thumbnail_key IS NOT NULL) AS has_thumbnail
      FROM xrays x
      LEFT JOIN jobs j ON j.clinic_id = x.clinic_id AND j.id = x.job_id";

/// What a clinic uploaded since midnight in its own time zone, and the seconds until the next.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UploadedToday {
    pub uploads: i64,
    pub bytes: i64,
    pub seconds_to_midnight: i64,
}

/// The clinic's X-rays of its local day so far (`xrays_clinic_created_idx`).
pub(super) async fn uploaded_today(
    conn: &mut PgConnection,
    clinic: ClinicId,
) -> Result<UploadedToday, sqlx::Error> {
    sqlx::query_as(
        "WITH today AS (
             SELECT date_trunc('day', now() AT TIME ZONE timezone) AT TIME ZONE timezone AS since,
                    (date_trunc('day', now() AT TIME ZONE timezone) + interval '1 day')
                        AT TIME ZONE timezone AS until
             FROM clinics WHERE id = $1
         )
         SELECT count(x.id) AS uploads,
                coalesce(sum(x.byte_size), 0)::bigint AS bytes,
                ceil(extract(epoch FROM today.until - now()))::bigint AS seconds_to_midnight
         FROM today
         LEFT JOIN xrays x ON x.clinic_id = $1 AND x.created_at >= today.since
         GROUP BY today.until",
    )
    .bind(clinic)
    .fetch_one(conn)
    .await
}

pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    xray: &NewXray,
    job: JobId,
) -> Result<XrayRecord, sqlx::Error> {
    // Sizes are bounded by the upload limits (≤ 200 MiB) and the pixel caps (≤ 12 000 a side).
    let byte_size = i32::try_from(xray.byte_size).unwrap_or(i32::MAX);
    let width = i32::try_from(xray.width).unwrap_or(i32::MAX);
    let height = i32::try_from(xray.height).unwrap_or(i32::MAX);
    sqlx::query_as(&format!(
        "INSERT INTO xrays (id, clinic_id, patient_id, uploaded_by, content_type, byte_size, \
                            sha256, image_key, width, height, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING {COLUMNS}"
    ))
    .bind(xray.id)
    .bind(clinic)
    .bind(xray.patient_id)
    .bind(xray.uploaded_by)
    .bind(xray.format.content_type())
    .bind(byte_size)
    .bind(&xray.sha256.0[..])
    .bind(xray.key.as_str())
    .bind(width)
    .bind(height)
    .bind(job)
    .fetch_one(conn)
    .await
}

pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
) -> Result<Option<XrayRecord>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE x.clinic_id = $1 AND x.id = $2"))
        .bind(clinic)
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The X-ray an upload created along with `job` (the idempotent replay of that upload).
pub(super) async fn find_by_job(
    conn: &mut PgConnection,
    clinic: ClinicId,
    job: JobId,
) -> Result<Option<XrayRecord>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE x.clinic_id = $1 AND x.job_id = $2"
    ))
    .bind(clinic)
    .bind(job)
    .fetch_optional(conn)
    .await
}

/// Newest first; keyset pagination over `(created_at, id)`, served by
/// `xrays_clinic_patient_created_idx`.
pub(super) async fn list(
    conn: &mut PgConnection,
    clinic: ClinicId,
    patient: PatientId,
    page: &PageRequest<(DateTime<Utc>, XrayId)>,
) -> Result<Vec<XrayRecord>, sqlx::Error> {
    let (before_at, before_id) = match &page.after {
        Some((at, id)) => (Some(*at), Some(*id)),
        None => (None, None),
    };
    sqlx::query_as(&format!(
        "{SELECT}
         WHERE x.clinic_id = $1 AND x.patient_id = $2
           AND ($3::timestamptz IS NULL OR (x.created_at, x.id) < ($3, $4))
         ORDER BY x.created_at DESC, x.id DESC
         LIMIT $5"
    ))
    .bind(clinic)
    .bind(patient)
    .bind(before_at)
    .bind(before_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await
}

/// Where the original is, unless the caller's copy (`If-None-Match`) is current: then only the
/// digest comes back and the megabytes of an older row stay in PostgreSQL.
pub(super) async fn image(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    if_none_match: &IfNoneMatch,
) -> Result<Option<StoredImage>, sqlx::Error> {
    let (any, tags): (bool, Vec<Vec<u8>>) = match if_none_match {
        IfNoneMatch::Absent => (false, Vec::new()),
        IfNoneMatch::Any => (true, Vec::new()),
        IfNoneMatch::Tags(tags) => (false, tags.iter().map(|t| t.0.to_vec()).collect()),
    };
    type Row = (String, Vec<u8>, Option<Vec<u8>>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT content_type, sha256,
                CASE WHEN $3 OR sha256 = ANY($4) THEN NULL ELSE image END,
                CASE WHEN $3 OR sha256 = ANY($4) THEN NULL ELSE image_key END
         FROM xrays WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(any)
    .bind(tags)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(content_type, sha256, bytes, key)| StoredImage {
        content_type,
        // The column's check constraint guarantees 32 bytes.
        sha256: Sha256Digest::from_slice(&sha256).unwrap_or(Sha256Digest([0; 32])),
        stored: Stored::of(bytes, key),
    }))
}

pub(super) async fn thumbnail(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
) -> Result<Option<StoredThumbnail>, sqlx::Error> {
    type Row = (XrayStatus, Option<Vec<u8>>, Option<String>, Option<Vec<u8>>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT CASE WHEN x.status = 'pending' AND j.status = 'dead'
                         THEN 'failed'::document_status ELSE x.status END,
                    x.thumbnail, x.thumbnail_key, x.thumbnail_sha256
               FROM xrays x
               LEFT JOIN jobs j ON j.clinic_id = x.clinic_id AND j.id = x.job_id
              WHERE x.clinic_id = $1 AND x.id = $2",
    )
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(status, bytes, key, sha256)| StoredThumbnail {
        status,
        sha256: sha256.as_deref().and_then(Sha256Digest::from_slice),
        stored: Stored::of(bytes, key),
    }))
}

/// What the analysis job finds. The bytes of an older row are read only while there is
/// something to do, so a repeated delivery of a finished job does not pull megabytes out of
/// PostgreSQL.
pub(super) enum AnalysisSource {
    Missing,
    AlreadyReady,
    Image {
        stored: Stored,
        byte_size: u64,
        sha256: Sha256Digest,
    },
}

pub(super) async fn analysis_source(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
) -> Result<AnalysisSource, sqlx::Error> {
    type Row = (XrayStatus, Option<Vec<u8>>, Option<String>, i32, Vec<u8>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT status, CASE WHEN status = 'ready' THEN NULL ELSE image END, image_key,
                byte_size, sha256
         FROM xrays WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => AnalysisSource::Missing,
        Some((XrayStatus::Ready, ..)) => AnalysisSource::AlreadyReady,
        Some((_, bytes, key, byte_size, sha256)) => match Stored::of(bytes, key) {
            Some(stored) => AnalysisSource::Image {
                stored,
                byte_size: u64::try_from(byte_size).unwrap_or(0),
                sha256: Sha256Digest::from_slice(&sha256).unwrap_or(Sha256Digest([0; 32])),
            },
            // The row's check constraint keeps one of the two.
            None => AnalysisSource::Missing,
        },
    })
}

/// Stores the report and the thumbnail's key (the thumbnail is in S3 already). Running it twice
/// with the same result changes nothing a reader can tell (at-least-once delivery).
#[allow(clippy::too_many_arguments)]
pub(super) async fn mark_ready(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    analysis: &serde_json::Value,
    thumbnail: (&MediaKey, &Sha256Digest),
    width: u32,
    height: u32,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE xrays
         SET status = 'ready', analysis = $3, thumbnail = NULL, thumbnail_key = $4,
             thumbnail_sha256 = $7, width = $5, height = $6, error = NULL, analysed_at = now()
         WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(analysis)
    .bind(thumbnail.0.as_str())
    .bind(i32::try_from(width).unwrap_or(i32::MAX))
    .bind(i32::try_from(height).unwrap_or(i32::MAX))
    .bind(&thumbnail.1.0[..])
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Records why the analysis failed; never turns a ready X-ray (a concurrent run that succeeded)
/// into a failed one.
pub(super) async fn mark_failed(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    error: &str,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(4000).collect();
    sqlx::query(
        "UPDATE xrays SET status = 'failed', error = $3, analysed_at = now()
         WHERE clinic_id = $1 AND id = $2 AND status <> 'ready'",
    )
    .bind(clinic)
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}
