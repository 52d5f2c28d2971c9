//! The automatic image-quality check of an X-ray file: format sniffing, a header check against
//! decompression bombs, decoding under a memory limit, quality metrics on the luma buffer and a
//! thumbnail. Pure (no I/O, no async), so it is unit-tested on generated images.
//!
//! It measures the *file*: exposure, contrast, sharpness and noise as they show on screen. It is
//! not a diagnosis and says nothing about the patient; the report says so itself.

mod decode;
mod measure;
mod report;
mod thumbnail;

pub use decode::{ImageFault, ImageHeader, PixelLimits, XrayFormat, inspect};
pub use measure::ANALYSIS_MAX_SIDE;
pub use report::{
    AspectScores, BLUR_LAPLACIAN_VARIANCE, BRIGHT_LEVEL, Contrast, DARK_LEVEL, DISCLAIMER,
    EXPOSURE_SHARE_LIMIT, Exposure, ImageFacts, LOW_CONTRAST_SPREAD, NOISE_SIGMA_LIMIT, Noise,
    QualityReport, Sharpness, Thresholds,
};
pub use thumbnail::{THUMBNAIL_MAX_SIDE, Thumbnail};

use measure::Metrics;

/// A decoded, measured X-ray: the report stored as `analysis` and the thumbnail.
#[derive(Debug)]
pub struct Analysed {
    pub report: QualityReport,
    pub thumbnail: Thumbnail,
}

/// Decodes `bytes` under `limits` and measures them. Every failure is an `ImageFault`; nothing
/// here panics on bad input.
pub fn analyse(bytes: &[u8], limits: &PixelLimits) -> Result<Analysed, ImageFault> {
    let header = inspect(bytes, limits)?;
    let (luma, pixel_format) = decode::decode_luma(bytes, &header, limits)?;
    let (width, height) = luma.dimensions();
    let (working, factor) = measure::downscaled(luma);
    let thumbnail = thumbnail::thumbnail(&working)?;
    let metrics = Metrics::measure(&working);
    let report = report::report(
        &metrics,
        ImageFacts {
            format: header.format.name(),
            width,
            height,
            pixel_format,
            analysed_width: working.width(),
            analysed_height: working.height(),
            downscale_factor: factor,
        },
    );
    Ok(Analysed { report, thumbnail })
}

#[cfg(test)]
mod tests;
