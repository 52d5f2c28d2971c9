//! What one request may carry (a JSON body, an X-ray upload), and how long a media URL lives.

use super::vars::Vars;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest JSON body accepted; larger ones get 413 before any parsing.
    pub max_body_bytes: usize,
}

/// Media: the bucket that holds it (`shared::media`) and the signed URLs that reach it
/// (`shared::signed_urls`, presigned S3 URLs).
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// A URL is valid for one to two of these.
    pub url_ttl: Duration,
    /// The API's public base URL, when the request's own host is not it (a custom domain with a
    /// base path); `None`: the request's scheme and host.
    pub public_url: Option<String>,
    /// The bucket of X-ray images, thumbnails and report PDFs; `None`: no media storage (the
    /// routes that need it answer 503).
    pub storage: Option<StorageConfig>,
}

/// `MEDIA_BUCKET` and how to reach it.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub bucket: String,
    /// `S3_ENDPOINT_URL`: a local stand-in (moto); `None`: S3 itself.
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// S3's own rule for a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit.
fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

impl MediaConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let url_ttl = vars.seconds("MEDIA_URL_TTL_SECONDS", 300);
        vars.check_range("MEDIA_URL_TTL_SECONDS", url_ttl.as_secs(), 30..=3600);
        let public_url = vars.optional("MEDIA_PUBLIC_URL");
        if let Some(url) = &public_url {
            vars.check(
                (url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(['?', '#', ' ']),
                || format!("MEDIA_PUBLIC_URL: expected an http(s) URL without query, got {url:?}"),
            );
        }
        let bucket = vars
            .optional("MEDIA_BUCKET")
            .map(|name| name.trim().to_owned());
        let endpoint = vars.endpoint_url("S3_ENDPOINT_URL");
        if let Some(name) = &bucket {
            vars.check(valid_bucket_name(name), || {
                format!("MEDIA_BUCKET: {name:?} is not a valid S3 bucket name")
            });
        }
        vars.check(bucket.is_some() || endpoint.is_none(), || {
            "S3_ENDPOINT_URL: set without MEDIA_BUCKET (the bucket to use there)".into()
        });
        let storage = bucket.map(|bucket| StorageConfig {
            bucket,
            endpoint,
            region: vars
                .optional("AWS_REGION")
                .map(|region| region.trim().to_owned()),
        });
        Self {
            url_ttl,
            public_url,
            storage,
        }
    }
}

/// X-ray uploads (`shared::xrays`).
#[derive(Clone, Debug)]
pub struct XrayConfig {
    /// Largest image accepted by `POST /patients/{id}/xrays`; larger ones get 413.
    pub max_upload_bytes: usize,
    /// Largest image an upload by presigned URL (`POST /patients/{id}/xray-uploads`) may
    /// announce; it goes straight to S3, so Lambda's payload limit does not bound it.
    pub max_presigned_bytes: u64,
    /// Most X-rays one clinic may upload in a day (its local day); one more gets 429.
    pub daily_uploads_per_clinic: u32,
    /// Most bytes of X-rays one clinic may upload in a day; an upload that would pass it, 429.
    pub daily_bytes_per_clinic: u64,
}

/// API Gateway base64-encodes binary bodies into Lambda's 6 MB (6,291,456-byte) invocation
/// payload: 4/3 of the image plus the event's headers and context must fit. At 4.5 MiB the
/// base64 alone fills the payload, so no larger setting can ever work; the 4 MiB default
/// leaves room for the envelope.
pub const XRAY_MAX_BYTES_CEILING: usize = 4_608 * 1024;

/// The analysis reads a whole upload into the worker's memory (next to the decoded pixels,
/// `xrays::analysis::PixelLimits`): 200 MiB is past any real radiograph's file.
pub const XRAY_UPLOAD_MAX_BYTES_CEILING: u64 = 200 << 20;

impl HttpConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        Self {
            max_body_bytes: vars.parsed("MAX_BODY_BYTES", 64 * 1024, "a number of bytes"),
        }
    }
}

impl XrayConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let max_upload_bytes = vars.parsed("XRAY_MAX_BYTES", 4 * 1024 * 1024, "a number of bytes");
        vars.check(
            (1..=XRAY_MAX_BYTES_CEILING).contains(&max_upload_bytes),
            || {
                format!(
                    "XRAY_MAX_BYTES: must be between 1 and {XRAY_MAX_BYTES_CEILING} (base64 in \
                     Lambda's 6 MB payload)"
                )
            },
        );
        let max_presigned_bytes =
            vars.parsed("XRAY_UPLOAD_MAX_BYTES", 50 << 20, "a number of bytes");
        vars.check_range(
            "XRAY_UPLOAD_MAX_BYTES",
            max_presigned_bytes,
            1..=XRAY_UPLOAD_MAX_BYTES_CEILING,
        );
        let daily_uploads_per_clinic =
            vars.parsed("XRAY_DAILY_UPLOADS_PER_CLINIC", 1_000, "a number of X-rays");
        vars.check_range(
            "XRAY_DAILY_UPLOADS_PER_CLINIC",
            u64::from(daily_uploads_per_clinic),
            1..=1_000_000,
        );
        let daily_bytes_per_clinic =
            vars.parsed("XRAY_DAILY_BYTES_PER_CLINIC", 2 << 30, "a number of bytes");
        vars.check_range(
            "XRAY_DAILY_BYTES_PER_CLINIC",
            daily_bytes_per_clinic,
            1..=1 << 40,
        );
        Self {
            max_upload_bytes,
            max_presigned_bytes,
            daily_uploads_per_clinic,
            daily_bytes_per_clinic,
        }
    }
}
