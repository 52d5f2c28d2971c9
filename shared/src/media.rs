//! Media in object storage: X-ray images, their thumbnails and report PDFs live in one S3 bucket
//! (`MEDIA_BUCKET`), never in PostgreSQL and never through a function's 6 MB payload.
//!
//! - **Uploads** go from the browser straight to S3 by a presigned PUT ([`MediaStore::presign_put`]).
//!   Its `Content-Type`, `Content-Length` and SHA-256 checksum are signed, so S3 itself refuses
//!   a body other than the one announced. It lands under `uploads/`, which the bucket's
//!   lifecycle rule empties after a day; only an accepted upload is copied to its
//!   `clinics/{clinic}/…` key (`shared::xrays::ingest`).
//! - **Downloads** are presigned GETs ([`MediaStore::presign_get`]) that carry the response's
//!   content type, disposition and cache lifetime; every object is also written with them
//!   ([`Download`]), so a store that ignores the `response-*` overrides (moto) answers the same.
//!   They are signed for a window
//!   ([`Window`]): every URL signed within the same window is the same string, so a browser's
//!   cache keeps the image across page loads instead of fetching a new URL each time.
//! - **Keys** ([`MediaKey`]) start with the clinic's id: one clinic's objects are one prefix.
//!   Row-level security decides which row a caller may read; the key is only ever read from
//!   that row, never from a request.
//! - **Encryption** is the bucket's default (SSE-KMS with a bucket key, `template.yaml`), so no
//!   call here names a key and no presigned URL carries one.
//!
//! Locally and in tests the same SDK calls reach moto's S3 (`S3_ENDPOINT_URL`), addressed
//! path-style (`http://127.0.0.1:4402/{bucket}/{key}`) since a stand-in on an IP address has no
//! bucket subdomains.

use crate::aws::{local_credentials, sdk_config, why};
use crate::config::StorageConfig;
use crate::ids::ClinicId;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, timeout::TimeoutConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// Where an object lives in the bucket. Built only from ids, never from a client's string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MediaKey(String);

/// The prefix of uploads not yet accepted (the bucket's lifecycle rule expires them).
pub const UPLOADS_PREFIX: &str = "uploads/";

impl MediaKey {
    /// Where a presigned upload lands before it is checked.
    pub fn upload(clinic: ClinicId, upload: Uuid) -> Self {
        Self(format!("{UPLOADS_PREFIX}{clinic}/{upload}"))
    }

    /// An accepted X-ray's original file.
    pub fn xray_image(clinic: ClinicId, xray: Uuid) -> Self {
        Self(format!("clinics/{clinic}/xrays/{xray}/image"))
    }

    /// An X-ray's JPEG thumbnail (written by the analysis).
    pub fn xray_thumbnail(clinic: ClinicId, xray: Uuid) -> Self {
        Self(format!("clinics/{clinic}/xrays/{xray}/thumbnail.jpg"))
    }

    /// A generated report's PDF.
    pub fn report_pdf(clinic: ClinicId, report: Uuid) -> Self {
        Self(format!("clinics/{clinic}/reports/{report}.pdf"))
    }

    /// The clinic and upload of an `uploads/{clinic}/{upload}` key (an S3 event's object).
    pub fn parse_upload(key: &str) -> Option<(ClinicId, Uuid)> {
        let rest = key.strip_prefix(UPLOADS_PREFIX)?;
        let (clinic, upload) = rest.split_once('/')?;
        let clinic = clinic.parse::<Uuid>().ok()?;
        let upload = upload.parse::<Uuid>().ok()?;
        // Only the canonical spelling: the key must be the one `upload` builds.
        (Self::upload(ClinicId::from(clinic), upload).0 == key)
            .then_some((ClinicId::from(clinic), upload))
    }

    /// A key read back from a row (the row was written with one of the constructors above).
    pub fn stored(key: String) -> Self {
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MediaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a stored file's bytes are: in S3 (every file since media moved there), or still in
/// PostgreSQL (an older row the media move has not reached yet).
#[derive(Clone, Debug)]
pub enum Stored {
    Object(MediaKey),
    Bytes(Vec<u8>),
}

impl Stored {
    /// From a row's bytes and key columns; `None` when neither is there (nothing stored yet, or
    /// the caller's copy is current and nothing was selected).
    pub fn of(bytes: Option<Vec<u8>>, key: Option<String>) -> Option<Self> {
        match (key, bytes) {
            (Some(key), _) => Some(Stored::Object(MediaKey::stored(key))),
            (None, Some(bytes)) => Some(Stored::Bytes(bytes)),
            (None, None) => None,
        }
    }

    /// The bytes, when they are in PostgreSQL.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Stored::Bytes(bytes) => Some(bytes),
            Stored::Object(_) => None,
        }
    }
}

/// A presigned request a client sends as is: the method, the URL and the headers it must carry
/// (they are signed; S3 refuses the request without them or with other values).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PresignedRequest {
    /// Always `PUT` for an upload.
    #[schema(example = "PUT")]
    pub method: String,
    /// Where to send the file: the storage's own address, not the API's.
    pub url: String,
    /// Send exactly these headers with the file.
    #[schema(example = json!({"content-type": "image/png", "content-length": "1048576",
                              "x-amz-checksum-sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}))]
    pub headers: BTreeMap<String, String>,
    /// After this instant S3 refuses the request.
    pub expires_at: DateTime<Utc>,
}

/// What a download answers with: the object's type, how the browser shows it, and how long it
/// may keep it. Written with the object and asked for again by each presigned GET.
#[derive(Clone, Copy, Debug)]
pub struct Download<'a> {
    pub content_type: &'a str,
    pub disposition: &'a str,
    pub cache_control: &'a str,
}

/// A signing window: URLs signed within one window are identical and valid until its end plus
/// one more window (so a URL handed out at the end of a window still lives one full window).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub starts: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Window {
    pub fn around(now: DateTime<Utc>, ttl: Duration) -> Self {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        let start = now.timestamp().div_euclid(ttl) * ttl;
        let starts = Utc.timestamp_opt(start, 0).single().unwrap_or(now);
        Window {
            starts,
            expires: starts + chrono::Duration::seconds(2 * ttl),
        }
    }

    fn presigning(&self) -> Result<PresigningConfig, MediaError> {
        let lifetime = (self.expires - self.starts)
            .to_std()
            .unwrap_or(Duration::ZERO);
        PresigningConfig::builder()
            .start_time(SystemTime::from(self.starts))
            .expires_in(lifetime)
            .build()
            .map_err(|error| MediaError::Unavailable(format!("presigning: {error}")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// `MEDIA_BUCKET` is not set: this deployment stores no media.
    #[error("no media bucket is configured (MEDIA_BUCKET)")]
    NotConfigured,
    /// The object is larger than the caller may read into memory.
    #[error("the object is {size} bytes, more than the {limit} allowed")]
    TooLarge { size: u64, limit: u64 },
    /// S3 did not answer, or answered with an error: worth another try.
    #[error("object storage is unavailable: {0}")]
    Unavailable(String),
}

impl From<MediaError> for crate::http::ApiError {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::TooLarge { limit, .. } => crate::http::ApiError::PayloadTooLarge {
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            },
            other => crate::http::ApiError::Unavailable {
                source: Box::new(other),
                retry_after_seconds: 5,
            },
        }
    }
}

impl From<MediaError> for crate::queue::JobFailure {
    fn from(error: MediaError) -> Self {
        match error {
            MediaError::TooLarge { .. } => crate::queue::JobFailure::permanent(error),
            other => crate::queue::JobFailure::retry(other),
        }
    }
}

/// The bucket and a client of it, built on first use (a function that never touches media
/// never loads the SDK's configuration).
pub struct MediaStore {
    config: StorageConfig,
    client: OnceCell<Client>,
}

impl MediaStore {
    pub fn new(config: StorageConfig) -> Self {
        Self {
            config,
            client: OnceCell::new(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.config.bucket
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let endpoint = self.config.endpoint.as_deref();
                let credentials = endpoint.map(|_| local_credentials());
                let sdk = sdk_config(self.config.region.as_deref(), credentials).await;
                // A request waits for these calls; a large object's transfer is bounded by
                // the operation timeout, not by a per-attempt one.
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(Duration::from_secs(60))
                    .build();
                let mut config = aws_sdk_s3::config::Builder::from(&sdk)
                    .timeout_config(timeouts)
                    // Checksums only where S3 requires one, or where we sign our own: otherwise
                    // a presigned PUT would carry the CRC32 of an empty body.
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
                if let Some(endpoint) = endpoint {
                    config = config.endpoint_url(endpoint).force_path_style(true);
                }
                Client::from_conf(config.build())
            })
            .await
    }

    /// A PUT of exactly `length` bytes of `content_type` whose SHA-256 is `sha256`, to `key`,
    /// valid for `window`.
    pub async fn presign_put(
        &self,
        key: &MediaKey,
        content_type: &str,
        length: u64,
        sha256: &[u8; 32],
        window: Window,
    ) -> Result<PresignedRequest, MediaError> {
        let presigned = self
            .client()
            .await
            .put_object()
            .bucket(&self.config.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(i64::try_from(length).unwrap_or(i64::MAX))
            .checksum_sha256(base64_digest(sha256))
            .presigned(window.presigning()?)
            .await
            .map_err(|error| MediaError::Unavailable(format!("presigning a PUT: {error}")))?;
        // Only the signed headers: the SDK also adds unsigned ones of its environment (Lambda's
        // `x-amzn-trace-id`), which a browser would have to clear through CORS for nothing.
        let signed = signed_headers(presigned.uri());
        let mut headers: BTreeMap<String, String> = presigned
            .headers()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .filter(|(name, _)| signed.contains(name))
            .collect();
        // A browser sets Content-Length itself; it is listed so other clients send it too.
        headers
            .entry("content-length".into())
            .or_insert_with(|| length.to_string());
        Ok(PresignedRequest {
            method: presigned.method().to_owned(),
            url: presigned.uri().to_owned(),
            headers,
            expires_at: window.expires,
        })
    }

    /// A GET of `key` that answers with `download`'s headers, valid for `window`.
    pub async fn presign_get(
        &self,
        key: &MediaKey,
        download: &Download<'_>,
        window: Window,
    ) -> Result<String, MediaError> {
        let presigned = self
            .client()
            .await
            .get_object()
            .bucket(&self.config.bucket)
            .key(key.as_str())
            .response_content_type(download.content_type)
            .response_content_disposition(download.disposition)
            .response_cache_control(download.cache_control)
            .presigned(window.presigning()?)
            .await
            .map_err(|error| MediaError::Unavailable(format!("presigning a GET: {error}")))?;
        Ok(presigned.uri().to_owned())
    }

    /// Stores `bytes` at `key`, served as `download` says; S3 checks them against `sha256` on
    /// arrival.
    pub async fn put(
        &self,
        key: &MediaKey,
        bytes: Bytes,
        download: &Download<'_>,
        sha256: &[u8; 32],
    ) -> Result<(), MediaError> {
        self.client()
            .await
            .put_object()
            .bucket(&self.config.bucket)
            .key(key.as_str())
            .content_type(download.content_type)
            .content_disposition(download.disposition)
            .cache_control(download.cache_control)
            .checksum_sha256(base64_digest(sha256))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The whole object, if it exists and holds at most `limit` bytes; a larger one is refused
    /// from its declared length, and cut off if it grows past it while being read.
    pub async fn get(&self, key: &MediaKey, limit: u64) -> Result<Option<Vec<u8>>, MediaError> {
        let answer = match self
            .client()
            .await
            .get_object()
            .bucket(&self.config.bucket)
            .key(key.as_str())
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|service| service.is_no_such_key()) =>
            {
                return Ok(None);
            }
            Err(error) => return Err(unavailable(error)),
        };
        let declared = answer
            .content_length()
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(0);
        if declared > limit {
            return Err(MediaError::TooLarge {
                size: declared,
                limit,
            });
        }
        let mut body = answer.body;
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|error| MediaError::Unavailable(format!("reading {key}: {error}")))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(MediaError::TooLarge {
                    size: (bytes.len() + chunk.len()) as u64,
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    /// Copies `from` to `to` inside the bucket, served as `download` says (the sniffed type,
    /// not what the uploader declared).
    pub async fn copy(
        &self,
        from: &MediaKey,
        to: &MediaKey,
        download: &Download<'_>,
    ) -> Result<(), MediaError> {
        self.client()
            .await
            .copy_object()
            .bucket(&self.config.bucket)
            .copy_source(format!("{}/{}", self.config.bucket, from.as_str()))
            .key(to.as_str())
            .content_type(download.content_type)
            .content_disposition(download.disposition)
            .cache_control(download.cache_control)
            .metadata_directive(MetadataDirective::Replace)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes `key`; deleting what is not there succeeds.
    pub async fn delete(&self, key: &MediaKey) -> Result<(), MediaError> {
        self.client()
            .await
            .delete_object()
            .bucket(&self.config.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Creates the bucket if it does not exist: the local stand-in and the tests. In the
    /// cloud the template makes it (with its encryption, lifecycle and policy).
    pub async fn ensure_bucket(&self) -> Result<(), MediaError> {
        let client = self.client().await;
        if client
            .head_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let mut create = client.create_bucket().bucket(&self.config.bucket);
        if let Some(region) = self.config.region.as_deref().filter(|r| *r != "us-east-1") {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => Ok(()),
            Err(error)
                if error.as_service_error().is_some_and(|service| {
                    service.is_bucket_already_owned_by_you() || service.is_bucket_already_exists()
                }) =>
            {
                Ok(())
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Every key in the bucket, in order: what the tests check was written or left behind.
    pub async fn keys(&self) -> Result<Vec<String>, MediaError> {
        let client = self.client().await;
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let listed = client
                .list_objects_v2()
                .bucket(&self.config.bucket)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(unavailable)?;
            keys.extend(
                listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = listed.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes every object and then the bucket: a test's cleanup.
    pub async fn remove_bucket(&self) -> Result<(), MediaError> {
        for key in self.keys().await? {
            self.delete(&MediaKey::stored(key)).await?;
        }
        let client = self.client().await;
        client
            .delete_bucket()
            .bucket(&self.config.bucket)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The names in a presigned URL's `X-Amz-SignedHeaders` (lowercase, as SigV4 lists them).
fn signed_headers(uri: &str) -> Vec<String> {
    let query = uri.split_once('?').map_or("", |(_, query)| query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "X-Amz-SignedHeaders")
        .map(|(_, names)| names.split(';').map(str::to_owned).collect())
        .unwrap_or_default()
}

/// An S3 call that failed: worth another try, said in a line.
fn unavailable<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: SdkError<E, HttpResponse>,
) -> MediaError {
    MediaError::Unavailable(why(&error, "S3"))
}

/// A SHA-256 digest as S3's checksum headers carry it.
fn base64_digest(sha256: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_keys_parse_back_and_nothing_else_does() {
        let clinic = ClinicId::from(Uuid::new_v4());
        let upload = Uuid::new_v4();
        let key = MediaKey::upload(clinic, upload);
        assert_eq!(MediaKey::parse_upload(key.as_str()), Some((clinic, upload)));
        for other in [
            MediaKey::xray_image(clinic, upload).0,
            format!("uploads/{clinic}/{upload}/x"),
            format!("uploads/{clinic}/{}", upload.simple()),
            format!("uploads/{}/{upload}", "x"),
            format!("uploads/{}", upload),
        ] {
            assert_eq!(MediaKey::parse_upload(&other), None, "{other}");
        }
    }

    #[test]
    fn only_signed_headers_are_named() {
        let uri = "http://s3/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=\
                   content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256&X-Amz-Signature=0";
        assert_eq!(
            signed_headers(uri),
            [
                "content-length",
                "content-type",
                "host",
                "x-amz-checksum-sha256"
            ]
        );
        assert!(signed_headers("http://s3/b/k").is_empty());
    }

    #[test]
    fn urls_signed_in_one_window_share_it_and_live_at_least_one_more() {
        let ttl = Duration::from_secs(300);
        let now = Utc.timestamp_opt(1_800_000_123, 0).unwrap();
        let window = Window::around(now, ttl);
        assert_eq!(window.starts.timestamp() % 300, 0);
        assert!(window.starts <= now);
        assert!(window.expires - now >= chrono::Duration::seconds(300));
        let later = Window::around(now + chrono::Duration::seconds(100), ttl);
        assert_eq!(later.starts, window.starts);
    }
}
