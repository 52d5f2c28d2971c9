//! X-ray types: the stored row (without its bytes), a validated upload, the job payload and the
//! shapes of the API.

use super::analysis::XrayFormat;
use crate::db::DbError;
use crate::ids::{ClinicId, JobId, PatientId, UserId, XrayId};
use crate::signed_urls::{MediaUrl, UrlSigner};
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

/// A 32-byte SHA-256 digest: the stored checksum and, hex-encoded, the image's ETag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    pub fn hex(&self) -> String {
        hex(&self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(digest))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
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

/// How the contract describes the `If-None-Match` header of the routes that honour it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchHeader {
    /// The `ETag` of the copy the client has: 304 without a body when it is still current.
    #[param(rename = "If-None-Match")]
    pub if_none_match: Option<String>,
}

/// What `If-None-Match` asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IfNoneMatch {
    #[default]
    Absent,
    /// `*`: any current representation.
    Any,
    Tags(Vec<Sha256Digest>),
}

impl IfNoneMatch {
    /// Reads the header (weak comparison, RFC 9110 §13.1.2: `W/` is ignored); entity tags that
    /// are not ours simply never match.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let mut tags = Vec::new();
        let mut present = false;
        for value in headers.get_all(http::header::IF_NONE_MATCH) {
            present = true;
            let Ok(text) = value.to_str() else { continue };
            for tag in text.split(',').map(str::trim) {
                if tag == "*" {
                    return IfNoneMatch::Any;
                }
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                if let Some(digest) = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(Sha256Digest::from_hex)
                {
                    tags.push(digest);
                }
            }
        }
        if present {
            IfNoneMatch::Tags(tags)
        } else {
            IfNoneMatch::Absent
        }
    }

    pub fn matches(&self, digest: &Sha256Digest) -> bool {
        match self {
            IfNoneMatch::Absent => false,
            IfNoneMatch::Any => true,
            IfNoneMatch::Tags(tags) => tags.contains(digest),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = Sha256Digest::of(b"abc");
        assert_eq!(
            digest.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Digest::from_hex(&digest.hex()), Some(digest));
        assert_eq!(Sha256Digest::from_hex("zz"), None);
        assert_eq!(Sha256Digest::from_hex(&"é".repeat(32)), None);
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star() {
        let digest = Sha256Digest::of(b"abc");
        let mut headers = http::HeaderMap::new();
        assert_eq!(IfNoneMatch::from_headers(&headers), IfNoneMatch::Absent);
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_str(&format!("\"other\", W/\"{}\"", digest.hex())).unwrap(),
        );
        let parsed = IfNoneMatch::from_headers(&headers);
        assert!(parsed.matches(&digest));
        assert!(!parsed.matches(&Sha256Digest::of(b"abd")));
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("*"),
        );
        assert_eq!(IfNoneMatch::from_headers(&headers), IfNoneMatch::Any);
    }
}
