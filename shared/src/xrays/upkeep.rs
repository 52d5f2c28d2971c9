//! A clinic's X-ray files put in order, by the `media.upkeep` job (`crate::scheduler::media`):
//!
//! - **Uploads left open.** An upload whose presigned PUT has expired can receive no more bytes,
//!   so one look settles it: a file that arrived (the browser's completion call and S3's event
//!   both lost) is completed like any other ([`XrayService::complete_upload`]); no file means it
//!   never will, and the upload is rejected with that reason, so `GET /xray-uploads/{id}` stops
//!   saying `open`.
//! - **Older rows.** An X-ray made before media moved to S3 still holds its image (and thumbnail)
//!   in PostgreSQL. One row at a time, under its row lock: the bytes are put at the row's keys,
//!   then the row names the keys and drops the bytes. A put whose commit fails is put again by
//!   the next run; the keys are the X-ray's own.

use super::XrayError;
use super::service::XrayService;
use super::types::{Sha256Digest, THUMBNAIL_DOWNLOAD, image_download};
use super::uploads;
use crate::db;
use crate::ids::{ClinicId, XrayId};
use crate::media::MediaKey;
use crate::queue::JobFailure;
use crate::state::AppState;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// How an upload left open was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// Its file was there and became the X-ray.
    Completed,
    /// Its file was there but refused, or never arrived.
    Rejected,
    /// Gone meanwhile (the clinic's data removed): nothing to settle.
    Gone,
}

/// Why an upload is rejected when its file never came.
const NEVER_ARRIVED: &str = "the file did not arrive before the upload's URL expired";

/// The clinic's uploads whose presigned PUT expired before `expired_before` and that are still
/// open, oldest first, at most `limit` (`xray_uploads_open_idx`).
pub async fn stalled_uploads(
    conn: &mut PgConnection,
    clinic: ClinicId,
    expired_before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<XrayId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM xray_uploads
          WHERE clinic_id = $1 AND status = 'open' AND expires_at < $2
          ORDER BY expires_at, id
          LIMIT $3",
    )
    .bind(clinic)
    .bind(expired_before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Settles upload `id`: completed if its file is there and sound, rejected otherwise. Storage or
/// database trouble is worth another try.
pub async fn settle_upload(
    state: &AppState,
    clinic: ClinicId,
    id: XrayId,
) -> Result<Settled, JobFailure> {
    let reason = match XrayService::new(state).complete_upload(clinic, id).await {
        Ok(_) => return Ok(Settled::Completed),
        Err(XrayError::UploadNotFound) => return Ok(Settled::Gone),
        Err(XrayError::UploadNotReceived) => NEVER_ARRIVED.to_owned(),
        Err(error @ (XrayError::Media(_) | XrayError::Db(_) | XrayError::Queue(_))) => {
            return Err(JobFailure::retry(error));
        }
        // Refused (and recorded so) by the completion, or refused for a reason it does not
        // record, such as a patient archived since: either way this upload is over.
        Err(refusal) => refusal.to_string(),
    };
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    uploads::reject(&mut tx, clinic, id, &reason).await?;
    tx.commit().await?;
    Ok(Settled::Rejected)
}

/// An X-ray whose bytes are still in PostgreSQL.
#[derive(sqlx::FromRow)]
struct HeldXray {
    id: XrayId,
    content_type: String,
    sha256: Vec<u8>,
    image: Option<Vec<u8>>,
    thumbnail: Option<Vec<u8>>,
}

/// Moves one of the clinic's older X-rays to S3: `Some(id)` when one was moved, `None` when the
/// clinic holds none any more (`xrays_held_idx`). Rows another run has locked are skipped.
pub async fn move_one(state: &AppState, clinic: ClinicId) -> Result<Option<XrayId>, JobFailure> {
    let media = state.media()?;
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let held: Option<HeldXray> = sqlx::query_as(
        "SELECT id, content_type, sha256, image, thumbnail FROM xrays
          WHERE clinic_id = $1 AND (image IS NOT NULL OR thumbnail IS NOT NULL)
          ORDER BY id
          LIMIT 1
          FOR UPDATE SKIP LOCKED",
    )
    .bind(clinic)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(held) = held else {
        tx.commit().await?;
        return Ok(None);
    };
    let id = held.id;
    let mut image_key = None;
    if let Some(image) = held.image {
        let digest = Sha256Digest::of(&image);
        if digest.0[..] != held.sha256[..] {
            // Moved as they are: the bytes are the record, and the analysis says they no
            // longer match when it reads them.
            tracing::warn!(
                xray_id = %id,
                "an older X-ray's bytes do not match their recorded checksum; moved as they are"
            );
        }
        let key = MediaKey::xray_image(clinic, id.0);
        let download = image_download(id, &held.content_type);
        media
            .put(&key, Bytes::from(image), &download.as_download(), &digest.0)
            .await?;
        image_key = Some(key);
    }
    let mut thumbnail = None;
    if let Some(bytes) = held.thumbnail {
        let key = MediaKey::xray_thumbnail(clinic, id.0);
        let digest = Sha256Digest::of(&bytes);
        media
            .put(&key, Bytes::from(bytes), &THUMBNAIL_DOWNLOAD, &digest.0)
            .await?;
        thumbnail = Some((key, digest));
    }
    sqlx::query(
        "UPDATE xrays
            SET image = NULL, image_key = COALESCE($3, image_key),
                thumbnail = NULL, thumbnail_key = COALESCE($4, thumbnail_key),
                thumbnail_sha256 = COALESCE($5, thumbnail_sha256)
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(image_key.as_ref().map(MediaKey::as_str))
    .bind(thumbnail.as_ref().map(|(key, _)| key.as_str()))
    .bind(thumbnail.as_ref().map(|(_, digest)| digest.0.to_vec()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// Whether the clinic has work for the upkeep: an older X-ray to move, or an upload whose URL
/// expired before `expired_before` still open. Two index probes.
pub async fn needs_upkeep(
    conn: &mut PgConnection,
    clinic: ClinicId,
    expired_before: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM xrays
                         WHERE clinic_id = $1 AND (image IS NOT NULL OR thumbnail IS NOT NULL))
             OR EXISTS (SELECT 1 FROM xray_uploads
                         WHERE clinic_id = $1 AND status = 'open' AND expires_at < $2)",
    )
    .bind(clinic)
    .bind(expired_before)
    .fetch_one(conn)
    .await
}
