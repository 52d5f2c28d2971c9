//! X-rays of a patient: upload (PNG or JPEG, sniffed, stored in PostgreSQL), the background
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

use crate::queue::JobKind;

/// The analysis job. A corrupt or oversized image fails it for good (no retry); database
/// trouble is retried with the queue's default three attempts.
pub const XRAY_ANALYZE: JobKind = JobKind::new("xray.analyze");

pub use routes::router;
pub use service::{Uploaded, XrayError, XrayService, analyze};
pub use types::*;
