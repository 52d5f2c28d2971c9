//! X-ray types: the stored row (without its bytes), a validated upload, the job payload and the
//! shapes of the API.

use super::analysis::XrayFormat;
use crate::http::ApiError;
use crate::ids::{ClinicId, JobId, PatientId, UserId, XrayId};
use crate::media::Download;
use crate::signed_urls::MediaUrl;
use crate::state::AppState;

// The image's checksum and ETag, and `If-None-Match`, are HTTP's: `crate::http::conditional`.
use crate::http::conditional::hex;
pub use crate::http::conditional::{IfNoneMatch, IfNoneMatchHeader, Sha256Digest};
pub use crate::media::{MediaKey, Stored};
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
    /// The original's S3 key; `None` for a row whose bytes are still in PostgreSQL.
    pub image_key: Option<String>,
    /// The thumbnail's S3 key, once the analysis made one (or an older row's is in PostgreSQL).
    pub thumbnail_key: Option<String>,
    pub has_thumbnail: bool,
}

/// A checked file (sniffed format, whole structure, header dimensions within the limits), in S3
/// at `key`, about to become an X-ray.
#[derive(Clone, Debug)]
pub struct NewXray {
    pub id: XrayId,
    pub patient_id: PatientId,
    pub uploaded_by: Option<UserId>,
    pub format: XrayFormat,
    pub width: u32,
    pub height: u32,
    pub sha256: Sha256Digest,
    pub byte_size: u64,
    pub key: MediaKey,
}

/// What the `xray.analyze` job carries: the id only. The clinic is the job's own; the image is
/// read from S3 (or an older row's PostgreSQL), never put into Redis.
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
    pub stored: Option<Stored>,
}

/// The X-ray's status and its thumbnail, if the analysis produced one.
pub struct StoredThumbnail {
    pub status: XrayStatus,
    /// Recorded with a thumbnail in S3 (an older row's is computed from its bytes).
    pub sha256: Option<Sha256Digest>,
    pub stored: Option<Stored>,
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
    /// URLs of `record`'s parts: presigned S3 GETs for what is in S3, the API's own signed
    /// routes (starting with `base`) for what an older row still holds in PostgreSQL.
    pub async fn sign(
        state: &AppState,
        base: &str,
        record: &XrayRecord,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let (clinic, id) = (record.clinic_id, record.id);
        let image = match &record.image_key {
            Some(key) => {
                let download = image_download(id, &record.content_type);
                state
                    .presigned(&MediaKey::stored(key.clone()), &download.as_download(), now)
                    .await?
            }
            None => {
                state
                    .signer
                    .sign(base, clinic, &signed_image_path(id), now)
                    .await?
            }
        };
        let thumbnail = match (&record.thumbnail_key, record.has_thumbnail) {
            (Some(key), _) => Some(
                state
                    .presigned(&MediaKey::stored(key.clone()), &THUMBNAIL_DOWNLOAD, now)
                    .await?,
            ),
            (None, true) => Some(
                state
                    .signer
                    .sign(base, clinic, &signed_thumbnail_path(id), now)
                    .await?,
            ),
            (None, false) => None,
        };
        Ok(XrayMedia { image, thumbnail })
    }
}

/// How the original is served: its type, a file name for a download, and kept privately (the
/// bytes under an id never change).
pub(super) struct ImageDownload {
    content_type: &'static str,
    disposition: String,
}

impl ImageDownload {
    pub(super) fn as_download(&self) -> Download<'_> {
        Download {
            content_type: self.content_type,
            disposition: &self.disposition,
            cache_control: IMAGE_CACHE_CONTROL,
        }
    }
}

pub(super) fn image_download(id: XrayId, content_type: &str) -> ImageDownload {
    let format = XrayFormat::from_content_type(content_type);
    let extension = match format {
        Some(XrayFormat::Png) => "png",
        Some(XrayFormat::Jpeg) => "jpg",
        None => "bin",
    };
    ImageDownload {
        content_type: format.map_or("application/octet-stream", XrayFormat::content_type),
        disposition: format!("inline; filename=\"xray-{id}.{extension}\""),
    }
}

/// The original never changes under its id: clients and the browser may keep it for good, but
/// only in their own cache (`private`), never in a shared proxy.
pub(super) const IMAGE_CACHE_CONTROL: &str = "private, max-age=31536000, immutable";
/// A thumbnail could be regenerated by a later version of the analysis.
pub(super) const THUMBNAIL_CACHE_CONTROL: &str = "private, max-age=86400";

pub(super) const THUMBNAIL_DOWNLOAD: Download<'static> = Download {
    content_type: "image/jpeg",
    disposition: "inline",
    cache_control: THUMBNAIL_CACHE_CONTROL,
};

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
