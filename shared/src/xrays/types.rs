//! X-ray types: the stored row (without its bytes), a validated upload, the job payload and the
//! shapes of the API.

use super::analysis::XrayFormat;
use crate::db::DbError;
use crate::ids::{ClinicId, JobId, PatientId, UserId, XrayId};
use crate::signed_urls::{MediaUrl, UrlSigner};

// The image's checksum and ETag, and `If-None-Match`, are HTTP's: `crate::http::conditional`.
use crate::http::conditional::hex;
pub use crate::http::conditional::{IfNoneMatch, IfNoneMatchHeader, Sha256Digest};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `xrays.status` (the `document_status` type).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "document_status", rename_all = "snake_case")]
pub enum XrayStatus {
    /// Stored; the analysis job has not finished yet.
    Pending,
    Ready,
    /// The file could not be decoded or measured; `error` says why.
    Failed,
}

impl XrayStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            XrayStatus::Pending => "pending",
            XrayStatus::Ready => "ready",
            XrayStatus::Failed => "failed",
        }
    }
}

/// An X-ray as stored, minus the image and thumbnail bytes (read only by the routes that serve
/// them, so lists and metadata never pull megabytes out of PostgreSQL).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct XrayRecord {
    pub id: XrayId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub uploaded_by: Option<UserId>,
    pub content_type: String,
    pub byte_size: i32,
    pub sha256: Vec<u8>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub status: XrayStatus,
    pub analysis: Option<serde_json::Value>,
    pub error: Option<String>,
    pub job_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub analysed_at: Option<DateTime<Utc>>,
    pub has_thumbnail: bool,
}

/// An upload that passed the edge: a sniffed format, header dimensions within the limits.
#[derive(Clone)]
pub struct NewXray {
    pub id: XrayId,
    pub patient_id: PatientId,
    pub uploaded_by: UserId,
    pub format: XrayFormat,
    pub width: u32,
    pub height: u32,
    pub sha256: Sha256Digest,
    pub bytes: Bytes,
}

/// What the `xray.analyze` job carries: the id only. The clinic is the job's own; the image is
/// read from PostgreSQL, never put into Redis.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzePayload {
    pub xray_id: XrayId,
}

/// The original image (or nothing, when the client's copy is current).
pub struct StoredImage {
    pub content_type: String,
    pub sha256: Sha256Digest,
    /// `None` when the caller's `If-None-Match` matched: answer 304 without reading the bytes.
    pub bytes: Option<Vec<u8>>,
}

/// The X-ray's status and its thumbnail, if the analysis produced one.
pub struct StoredThumbnail {
    pub status: XrayStatus,
    pub bytes: Option<Vec<u8>>,
}

/// `GET /patients/{id}/xrays` query string.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListXraysQuery {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Where to find an X-ray's parts.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct XrayLinks {
    #[serde(rename = "self")]
    pub this: String,
    pub image: String,
    /// Present once the analysis made one.
    pub thumbnail: Option<String>,
    /// The analysis job's status (`GET /jobs/{id}`).
    pub job: Option<String>,
}

impl XrayLinks {
    fn new(id: XrayId, has_thumbnail: bool, job: Option<JobId>) -> Self {
        XrayLinks {
            this: format!("/xrays/{id}"),
            image: format!("/xrays/{id}/image"),
            thumbnail: has_thumbnail.then(|| format!("/xrays/{id}/thumbnail")),
            job: job.map(|job| format!("/jobs/{job}")),
        }
    }
}

/// `202` to `POST /patients/{id}/xrays`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadAccepted {
    pub xray_id: XrayId,
    pub job_id: JobId,
    pub status: XrayStatus,
    pub links: XrayLinks,
}

impl UploadAccepted {
    pub fn new(record: &XrayRecord, job_id: JobId) -> Self {
        UploadAccepted {
            xray_id: record.id,
            job_id,
            status: record.status,
            links: XrayLinks::new(record.id, record.has_thumbnail, Some(job_id)),
        }
    }
}

/// Signed URLs of an X-ray's image and thumbnail, for a browser to load without a token
/// (`<img src>`); see `crate::signed_urls`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct XrayMedia {
    pub image: MediaUrl,
    /// Present once the analysis made one.
    pub thumbnail: Option<MediaUrl>,
}

impl XrayMedia {
    /// Signs the URLs of `record`'s parts for its clinic, starting with `base`.
    pub async fn sign(
        signer: &UrlSigner,
        base: &str,
        record: &XrayRecord,
        now: DateTime<Utc>,
    ) -> Result<Self, DbError> {
        let (clinic, id) = (record.clinic_id, record.id);
        let thumbnail = match record.has_thumbnail {
            true => Some(
                signer
                    .sign(base, clinic, &signed_thumbnail_path(id), now)
                    .await?,
            ),
            false => None,
        };
        Ok(XrayMedia {
            image: signer
                .sign(base, clinic, &signed_image_path(id), now)
                .await?,
            thumbnail,
        })
    }
}

/// The signed (token-free) route of an X-ray's image.
pub fn signed_image_path(id: XrayId) -> String {
    format!("/media/xrays/{id}/image")
}

/// The signed (token-free) route of an X-ray's thumbnail.
pub fn signed_thumbnail_path(id: XrayId) -> String {
    format!("/media/xrays/{id}/thumbnail")
}

/// An X-ray as the API returns it: metadata, and the quality report once there is one.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct XrayResponse {
    pub id: XrayId,
    pub patient_id: PatientId,
    pub status: XrayStatus,
    pub content_type: String,
    pub byte_size: i32,
    /// Hex SHA-256 of the original bytes (also the image's ETag).
    pub sha256: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub uploaded_by: Option<UserId>,
    pub job_id: Option<JobId>,
    pub created_at: DateTime<Utc>,
    pub analysed_at: Option<DateTime<Utc>>,
    /// The automatic image-quality check (`kind: "image-quality-check"`), not a diagnosis.
    #[schema(value_type = Option<Object>)]
    pub analysis: Option<serde_json::Value>,
    /// Why the analysis failed, when `status` is `failed`.
    pub error: Option<String>,
    pub links: XrayLinks,
    pub media: XrayMedia,
}

impl XrayResponse {
    pub fn new(record: XrayRecord, media: XrayMedia) -> Self {
        XrayResponse {
            media,
            links: XrayLinks::new(record.id, record.has_thumbnail, record.job_id),
            id: record.id,
            patient_id: record.patient_id,
            status: record.status,
            content_type: record.content_type,
            byte_size: record.byte_size,
            sha256: hex(&record.sha256),
            width: record.width,
            height: record.height,
            uploaded_by: record.uploaded_by,
            job_id: record.job_id,
            created_at: record.created_at,
            analysed_at: record.analysed_at,
            analysis: record.analysis,
            error: record.error,
        }
    }
}
