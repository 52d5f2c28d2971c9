//! The small JPEG preview of an analysed X-ray.

use super::decode::{ImageFault, describe};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, GrayImage};

pub const THUMBNAIL_MAX_SIDE: u32 = 256;
const THUMBNAIL_JPEG_QUALITY: u8 = 80;

/// A thumbnail: at most `THUMBNAIL_MAX_SIDE` a side, never upscaled.
pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Sizes only: image bytes never reach a log line or a test failure message.
impl std::fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnail")
            .field("bytes", &format_args!("{} bytes", self.bytes.len()))
            .field("content_type", &self.content_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

pub(super) fn thumbnail(working: &GrayImage) -> Result<Thumbnail, ImageFault> {
    let (width, height) = working.dimensions();
    let scaled;
    let small = if width.max(height) > THUMBNAIL_MAX_SIDE {
        let (w, h) = if width >= height {
            (
                THUMBNAIL_MAX_SIDE,
                (u64::from(height) * u64::from(THUMBNAIL_MAX_SIDE) / u64::from(width)).max(1)
                    as u32,
            )
        } else {
            (
                (u64::from(width) * u64::from(THUMBNAIL_MAX_SIDE) / u64::from(height)).max(1)
                    as u32,
                THUMBNAIL_MAX_SIDE,
            )
        };
        scaled = image::imageops::thumbnail(working, w, h);
        &scaled
    } else {
        working
    };
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, THUMBNAIL_JPEG_QUALITY)
        .encode(
            small.as_raw(),
            small.width(),
            small.height(),
            ExtendedColorType::L8,
        )
        .map_err(|error| ImageFault::Thumbnail(describe(&error)))?;
    Ok(Thumbnail {
        bytes,
        content_type: "image/jpeg",
        width: small.width(),
        height: small.height(),
    })
}
