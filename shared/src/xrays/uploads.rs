//! Uploads by presigned URL: the shapes of `POST /patients/{id}/xray-uploads` and
//! `GET /xray-uploads/{id}`, and their SQL (`xray_uploads`, one tenant transaction each).
//!
//! An upload's id is the id of the X-ray it becomes, so a client knows `/xrays/{id}` before the
//! file has even left the browser.

use super::types::Sha256Digest;
use crate::http::conditional::hex;
use crate::ids::{ClinicId, JobId, PatientId, UserId, XrayId};
use crate::input::InputError;
use crate::media::PresignedRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// `xray_uploads.status`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "upload_status", rename_all = "snake_case")]
pub enum UploadStatus {
    /// Waiting for the file (PUT it to `upload.url`), then for completion.
    Open,
    /// The file was an acceptable X-ray: it is the X-ray of the same id.
    Accepted,
    /// The file was refused (`error` says why) and deleted.
    Rejected,
}

/// `POST /patients/{id}/xray-uploads`: what the file will be. Its size and SHA-256 are signed
/// into the PUT, so storage refuses any other bytes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUploadRequest {
    /// The file's size in bytes, at most `XRAY_UPLOAD_MAX_BYTES` (50 MiB by default).
    #[schema(example = 8_388_608)]
    pub byte_size: u64,
    /// The file's SHA-256, 64 hex digits (`crypto.subtle.digest("SHA-256", file)`).
    #[schema(example = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")]
    pub sha256: String,
    /// `image/png` or `image/jpeg`: the header the PUT must carry. The file's own bytes decide
    /// its format when the upload completes.
    #[schema(example = "image/png")]
    pub content_type: String,
}

/// A validated [`NewUploadRequest`].
pub struct UploadPlan {
    pub byte_size: u64,
    pub sha256: Sha256Digest,
    pub content_type: &'static str,
}

impl NewUploadRequest {
    pub fn validate(self, max_bytes: u64) -> Result<UploadPlan, InputError> {
        if self.byte_size == 0 {
            return Err(InputError::invalid(
                "byte_size",
                "An empty file is no X-ray.",
            ));
        }
        if self.byte_size > max_bytes {
            return Err(InputError::invalid(
                "byte_size",
                format!("An X-ray file may have at most {max_bytes} bytes."),
            ));
        }
        let sha256 =
            Sha256Digest::from_hex(&self.sha256.trim().to_ascii_lowercase()).ok_or_else(|| {
                InputError::invalid("sha256", "Expected the file's SHA-256 as 64 hex digits.")
            })?;
        let content_type = match self.content_type.trim().to_ascii_lowercase().as_str() {
            "image/png" => "image/png",
            "image/jpeg" | "image/jpg" => "image/jpeg",
            _ => {
                return Err(InputError::invalid(
                    "content_type",
                    "Expected image/png or image/jpeg.",
                ));
            }
        };
        Ok(UploadPlan {
            byte_size: self.byte_size,
            sha256,
            content_type,
        })
    }
}

/// An upload as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UploadRecord {
    pub id: XrayId,
    pub clinic_id: ClinicId,
    pub patient_id: PatientId,
    pub created_by: Option<UserId>,
    pub byte_size: i64,
    pub sha256: Vec<u8>,
    pub status: UploadStatus,
    pub job_id: Option<JobId>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl UploadRecord {
    pub fn digest(&self) -> Sha256Digest {
        // The column's check constraint guarantees 32 bytes.
        Sha256Digest::from_slice(&self.sha256).unwrap_or(Sha256Digest([0; 32]))
    }
}

/// Where to go next with an upload.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadLinks {
    #[serde(rename = "self")]
    pub this: String,
    /// `POST` here once the PUT succeeded.
    pub complete: String,
    /// The X-ray this upload becomes (404 until it is accepted).
    pub xray: String,
}

/// An upload as the API returns it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UploadResponse {
    /// Also the id of the X-ray it becomes.
    pub id: XrayId,
    pub patient_id: PatientId,
    pub status: UploadStatus,
    pub byte_size: i64,
    /// Hex SHA-256 the file must have.
    pub sha256: String,
    /// While `open`: the request that sends the file (a fresh one on every read).
    pub upload: Option<PresignedRequest>,
    /// The analysis job, once accepted.
    pub job_id: Option<JobId>,
    /// Why the file was refused, when `rejected`.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub links: UploadLinks,
}

impl UploadResponse {
    pub fn new(record: UploadRecord, upload: Option<PresignedRequest>) -> Self {
        let id = record.id;
        UploadResponse {
            id,
            patient_id: record.patient_id,
            status: record.status,
            byte_size: record.byte_size,
            sha256: hex(&record.sha256),
            upload,
            job_id: record.job_id,
            error: record.error,
            created_at: record.created_at,
            completed_at: record.completed_at,
            links: UploadLinks {
                this: format!("/xray-uploads/{id}"),
                complete: format!("/xray-uploads/{id}/complete"),
                xray: format!("/xrays/{id}"),
            },
        }
    }
}

const COLUMNS: &str = "id, clinic_id, patient_id, created_by, byte_size, sha256, status, job_id, \
                       error, created_at, expires_at, completed_at";

pub(super) async fn insert(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    patient: PatientId,
    created_by: UserId,
    plan: &UploadPlan,
    expires_at: DateTime<Utc>,
) -> Result<UploadRecord, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO xray_uploads (id, clinic_id, patient_id, created_by, byte_size, sha256,
                                   expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(clinic)
    .bind(patient)
    .bind(created_by)
    .bind(i64::try_from(plan.byte_size).unwrap_or(i64::MAX))
    .bind(&plan.sha256.0[..])
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

/// The upload, locked for the rest of the transaction when `lock` (its completion).
pub(super) async fn find(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    lock: bool,
) -> Result<Option<UploadRecord>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM xray_uploads WHERE clinic_id = $1 AND id = $2{lock}"
    ))
    .bind(clinic)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub(super) async fn accept(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    job: JobId,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE xray_uploads SET status = 'accepted', job_id = $3, completed_at = now()
         WHERE clinic_id = $1 AND id = $2 AND status = 'open'",
    )
    .bind(clinic)
    .bind(id)
    .bind(job)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records why the file was refused; an upload accepted meanwhile stays accepted.
pub(super) async fn reject(
    conn: &mut PgConnection,
    clinic: ClinicId,
    id: XrayId,
    error: &str,
) -> Result<Option<UploadRecord>, sqlx::Error> {
    let error: String = error.chars().take(4000).collect();
    sqlx::query_as(&format!(
        "UPDATE xray_uploads SET status = 'rejected', error = $3, completed_at = now()
         WHERE clinic_id = $1 AND id = $2 AND status = 'open'
         RETURNING {COLUMNS}"
    ))
    .bind(clinic)
    .bind(id)
    .bind(error)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(byte_size: u64, sha256: &str, content_type: &str) -> NewUploadRequest {
        NewUploadRequest {
            byte_size,
            sha256: sha256.into(),
            content_type: content_type.into(),
        }
    }

    #[test]
    fn a_plan_names_the_first_bad_field() {
        let digest = "ab".repeat(32);
        let field =
            |r: NewUploadRequest| r.validate(100).err().map(|e| e.field().map(str::to_owned));
        assert!(request(100, &digest, "image/png").validate(100).is_ok());
        assert_eq!(
            field(request(0, &digest, "image/png")),
            Some(Some("byte_size".into()))
        );
        assert_eq!(
            field(request(101, &digest, "image/png")),
            Some(Some("byte_size".into()))
        );
        assert_eq!(
            field(request(1, "ab", "image/png")),
            Some(Some("sha256".into()))
        );
        assert_eq!(
            field(request(1, &"zz".repeat(32), "image/png")),
            Some(Some("sha256".into()))
        );
        assert_eq!(
            field(request(1, &digest, "image/gif")),
            Some(Some("content_type".into()))
        );
        let plan = request(1, &digest.to_uppercase(), " Image/JPG")
            .validate(1)
            .unwrap();
        assert_eq!(plan.content_type, "image/jpeg");
        assert_eq!(plan.sha256.0, [0xab; 32]);
    }
}
