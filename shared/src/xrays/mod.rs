//! X-rays of a patient: upload (PNG or JPEG, sniffed, stored in S3 by `crate::media`, sent
//! there through the API or straight from the browser by presigned URL), the background
//! image-quality check (`xray.analyze`: exposure, contrast, sharpness, noise, a thumbnail), and
//! reading the metadata, the report, the original image and the thumbnail.

pub mod analysis;
mod repository;
mod routes;
mod service;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_images;
mod types;
pub mod upkeep;
mod uploads;

use crate::queue::JobKind;

/// The analysis job. A corrupt or oversized image fails it for good (no retry); database
/// trouble is retried with the queue's default three attempts.
/// At its peak an analysis holds the decoded pixels and their grey copy (at most 150 MB, checked
/// at upload: `analysis::PixelLimits::max_decoded_bytes`) plus the file and the thumbnail.
pub const XRAY_ANALYZE: JobKind = JobKind::new("xray.analyze").with_peak_memory_mib(151);

pub use routes::{router, routes};
pub use service::{DirectUpload, Uploaded, XrayError, XrayService, analyze};
pub use types::*;
pub use uploads::{NewUploadRequest, UploadLinks, UploadResponse, UploadStatus};
