//! The automatic image-quality check of an X-ray file: format sniffing, a header check against
//! decompression bombs, decoding under a memory limit, quality metrics on the luma buffer and a
//! thumbnail. Pure (no I/O, no async), so it is unit-tested on generated images.
//!
//! It measures the *file*: exposure, contrast, sharpness and noise as they show on screen. It is
//! not a diagnosis and says nothing about the patient; the report says so itself.

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, GrayImage, ImageFormat, ImageReader, Limits};
use serde::Serialize;
use std::io::Cursor;

/// The two formats Pulso accepts, told apart by their first bytes (never by a header a client
/// sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XrayFormat {
    Png,
    Jpeg,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
/// SOI followed by the first byte of the next marker: every JPEG (JFIF, Exif, raw) starts so.
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];

impl XrayFormat {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_MAGIC) {
            Some(XrayFormat::Png)
        } else if bytes.starts_with(JPEG_MAGIC) {
            Some(XrayFormat::Jpeg)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            XrayFormat::Png => "image/png",
            XrayFormat::Jpeg => "image/jpeg",
        }
    }

    /// The stored `content_type` column back into a format.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        match content_type {
            "image/png" => Some(XrayFormat::Png),
            "image/jpeg" => Some(XrayFormat::Jpeg),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            XrayFormat::Png => "png",
            XrayFormat::Jpeg => "jpeg",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            XrayFormat::Png => ImageFormat::Png,
            XrayFormat::Jpeg => ImageFormat::Jpeg,
        }
    }
}

/// What an image may cost to decode. A 4 MiB PNG or JPEG of a uniform area can claim any
/// size, so the header is checked against these before a single pixel is decoded.
#[derive(Clone, Copy, Debug)]
pub struct PixelLimits {
    pub min_side: u32,
    pub max_side: u32,
    pub max_pixels: u64,
    /// Everything the decoder may allocate at once (`image::Limits::max_alloc`), output buffer
    /// included: 40 MP of 8-bit RGB is 120 MB, of 16-bit grey 80 MB.
    pub max_alloc: u64,
}

impl Default for PixelLimits {
    fn default() -> Self {
        PixelLimits {
            // A real radiograph is hundreds of pixels a side; below this nothing can be judged.
            min_side: 16,
            max_side: 12_000,
            max_pixels: 40_000_000,
            max_alloc: 256 * 1024 * 1024,
        }
    }
}

impl PixelLimits {
    fn header_limits(&self) -> Limits {
        // Sizes are checked by `check_dimensions` with a clear message; the header reader only
        // needs the allocation bound (ancillary chunks before the first pixel).
        let mut limits = Limits::no_limits();
        limits.max_alloc = Some(self.max_alloc);
        limits
    }

    fn decode_limits(&self) -> Limits {
        let mut limits = Limits::no_limits();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }

    fn check_dimensions(&self, width: u32, height: u32) -> Result<(), ImageFault> {
        if width > self.max_side
            || height > self.max_side
            || u64::from(width) * u64::from(height) > self.max_pixels
        {
            return Err(ImageFault::TooLarge {
                width,
                height,
                max_side: self.max_side,
                max_megapixels: self.max_pixels / 1_000_000,
            });
        }
        if width < self.min_side || height < self.min_side {
            return Err(ImageFault::TooSmall {
                width,
                height,
                min_side: self.min_side,
            });
        }
        Ok(())
    }
}

/// Why a file cannot be analysed. Messages name no pixel values and no patient data: they are
/// stored as the X-ray's error and shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageFault {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a PNG or JPEG image")]
    UnsupportedFormat,
    #[error("the image header cannot be read: {0}")]
    UnreadableHeader(String),
    #[error(
        "the image is {width}×{height} pixels; at most {max_side} pixels a side and \
         {max_megapixels} megapixels are accepted"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_side: u32,
        max_megapixels: u64,
    },
    #[error("the image is {width}×{height} pixels; at least {min_side} pixels a side are needed")]
    TooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
    #[error("decoding the image would need more than the {limit_mib} MiB allowed")]
    MemoryLimit { limit_mib: u64 },
    #[error("the file is truncated: {0}")]
    Truncated(&'static str),
    #[error("the image data is corrupt: {0}")]
    Corrupt(String),
    #[error("the thumbnail could not be encoded: {0}")]
    Thumbnail(String),
}

/// What the header says, read without decoding a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: XrayFormat,
    pub width: u32,
    pub height: u32,
}

/// Sniffs the format, reads the header dimensions (refusing bombs before any pixel buffer
/// exists) and walks the file's structure to its end marker, so a cut-off upload is refused at
/// once. The upload runs this; only decoding (the job) finds damage inside the compressed data.
pub fn inspect(bytes: &[u8], limits: &PixelLimits) -> Result<ImageHeader, ImageFault> {
    if bytes.is_empty() {
        return Err(ImageFault::Empty);
    }
    let format = XrayFormat::sniff(bytes).ok_or(ImageFault::UnsupportedFormat)?;
    let header = read_header(bytes, format, limits)?;
    match format {
        XrayFormat::Png => png_complete(bytes)?,
        XrayFormat::Jpeg => jpeg_complete(bytes)?,
    }
    Ok(header)
}

fn read_header(
    bytes: &[u8],
    format: XrayFormat,
    limits: &PixelLimits,
) -> Result<ImageHeader, ImageFault> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(limits.header_limits());
    let (width, height) = reader.into_dimensions().map_err(|error| match error {
        image::ImageError::Limits(_) => ImageFault::MemoryLimit {
            limit_mib: limits.max_alloc / (1024 * 1024),
        },
        other => ImageFault::UnreadableHeader(describe(&other)),
    })?;
    limits.check_dimensions(width, height)?;
    Ok(ImageHeader {
        format,
        width,
        height,
    })
}

/// Walks the PNG chunks (length, type, data, CRC) up to `IEND`. CRCs and the compressed data
/// are the decoder's business.
fn png_complete(bytes: &[u8]) -> Result<(), ImageFault> {
    let mut at = PNG_MAGIC.len();
    loop {
        let Some(head) = bytes.get(at..at + 8) else {
            return Err(ImageFault::Truncated("the PNG ends before its IEND chunk"));
        };
        let length = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let end = at
            .checked_add(12)
            .and_then(|at| at.checked_add(length))
            .filter(|&end| end <= bytes.len())
            .ok_or(ImageFault::Truncated(
                "a PNG chunk runs past the end of the file",
            ))?;
        if &head[4..8] == b"IEND" {
            return Ok(());
        }
        at = end;
    }
}

/// Walks the JPEG segments and the entropy-coded data of every scan up to the `EOI` marker.
/// zune-jpeg fills a cut-off scan with grey rather than failing, so this is what tells a
/// truncated upload from a whole one. Bytes after `EOI` (some cameras append data) are ignored.
fn jpeg_complete(bytes: &[u8]) -> Result<(), ImageFault> {
    const CUT: ImageFault = ImageFault::Truncated("the JPEG ends before its EOI marker");
    let mut at = 2; // after SOI
    loop {
        // A marker is 0xFF (any number of fill bytes) and a code.
        if bytes.get(at) != Some(&0xFF) {
            return Err(if at >= bytes.len() {
                CUT
            } else {
                ImageFault::Corrupt("a JPEG segment is not followed by a marker".into())
            });
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let marker = *bytes.get(at).ok_or(CUT)?;
        at += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = bytes
            .get(at..at + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            .ok_or(CUT)?;
        if length < 2 {
            return Err(ImageFault::Corrupt(
                "a JPEG segment has an invalid length".into(),
            ));
        }
        at += length;
        if at > bytes.len() {
            return Err(CUT);
        }
        if marker == 0xDA {
            // Entropy-coded data: 0xFF00 is a stuffed byte and 0xFFD0–D7 are restart markers;
            // any other marker ends the scan.
            loop {
                let offset = bytes[at..].iter().position(|&b| b == 0xFF).ok_or(CUT)?;
                at += offset;
                match bytes.get(at + 1) {
                    None => return Err(CUT),
                    Some(0x00 | 0xD0..=0xD7) => at += 2,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Metrics are computed on at most this many pixels a side: larger images are averaged down by
/// an integer factor first (a 12 000 px scan is judged as it shows on a 2 K screen), which keeps
/// a 40 MP analysis within the same time as a 4 MP one.
pub const ANALYSIS_MAX_SIDE: u32 = 2048;
pub const THUMBNAIL_MAX_SIDE: u32 = 256;
const THUMBNAIL_JPEG_QUALITY: u8 = 80;

/// Luma levels (of 0–255) below which a pixel counts as dark, at or above which as bright.
pub const DARK_LEVEL: u8 = 32;
pub const BRIGHT_LEVEL: u8 = 224;
/// Findings fire past these values; see `Thresholds` in the report for the full list.
pub const EXPOSURE_SHARE_LIMIT: f64 = 0.6;
pub const LOW_CONTRAST_SPREAD: f64 = 0.2;
/// Conservative on purpose: a "retake" means another exposure for the patient, so only clearly
/// soft images are flagged. For scale: a 256 px checkerboard measures about 7600 sharp, 150
/// under a σ ≈ 1.4 px blur, 13 under σ ≈ 3.5 px; a smooth but crisp gradient about 70.
pub const BLUR_LAPLACIAN_VARIANCE: f64 = 15.0;
pub const NOISE_SIGMA_LIMIT: f64 = 6.0;
/// Below this 5–95 % spread (in levels) the image has no structure whose sharpness could be
/// judged: it is reported as low contrast, not as blurred.
const MIN_SPREAD_TO_JUDGE_SHARPNESS: u8 = 8;

pub const DISCLAIMER: &str = "Automatic image-quality check of the file (exposure, contrast, \
sharpness, noise). It is not a diagnosis, detects no pathology and says nothing about the \
patient's health; a clinician must read the X-ray.";

/// A decoded, measured X-ray: the report stored as `analysis` and the thumbnail.
#[derive(Debug)]
pub struct Analysed {
    pub report: QualityReport,
    pub thumbnail: Thumbnail,
}

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

/// The stored `analysis` document. Levels are of 8-bit luma (0–255); shares are of all analysed
/// pixels (0–1).
#[derive(Clone, Debug, Serialize)]
pub struct QualityReport {
    pub kind: &'static str,
    pub version: u32,
    pub disclaimer: &'static str,
    /// 0–100: half the weakest of the four aspect scores, half their weighted mean, so one bad
    /// aspect cannot hide behind three good ones.
    pub quality_score: u8,
    pub findings: Vec<&'static str>,
    pub image: ImageFacts,
    pub exposure: Exposure,
    pub contrast: Contrast,
    pub sharpness: Sharpness,
    pub noise: Noise,
    pub aspect_scores: AspectScores,
    pub thresholds: Thresholds,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageFacts {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// The decoded pixel layout, e.g. `L8`, `L16`, `Rgb8`.
    pub pixel_format: String,
    pub analysed_width: u32,
    pub analysed_height: u32,
    /// Each analysed pixel is the mean of `downscale_factor`² original pixels.
    pub downscale_factor: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Exposure {
    pub mean_level: f64,
    pub p5_level: u8,
    pub median_level: u8,
    pub p95_level: u8,
    /// Share of pixels below `DARK_LEVEL` / at or above `BRIGHT_LEVEL`.
    pub dark_share: f64,
    pub bright_share: f64,
    /// Share of pixels at exactly 0 / 255: detail lost for good.
    pub clipped_black_share: f64,
    pub clipped_white_share: f64,
    /// 16 equal bins over 0–255, as shares of the pixels.
    pub histogram: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Contrast {
    /// Standard deviation of luma over its range (0–1).
    pub rms: f64,
    /// (p95 − p5) / 255.
    pub spread_5_95: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sharpness {
    pub method: &'static str,
    /// Variance of the 4-neighbour Laplacian, in levels².
    pub laplacian_variance: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Noise {
    pub method: &'static str,
    /// Estimated standard deviation of additive noise, in levels.
    pub sigma: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AspectScores {
    pub exposure: f64,
    pub contrast: f64,
    pub sharpness: f64,
    pub noise: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Thresholds {
    pub dark_level: u8,
    pub bright_level: u8,
    pub exposure_share: f64,
    pub low_contrast_spread: f64,
    pub blur_laplacian_variance: f64,
    pub noise_sigma: f64,
    pub analysis_max_side: u32,
}

/// Decodes `bytes` under `limits` and measures them. Every failure is an `ImageFault`; nothing
/// here panics on bad input.
pub fn analyse(bytes: &[u8], limits: &PixelLimits) -> Result<Analysed, ImageFault> {
    let header = inspect(bytes, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), header.format.image_format());
    reader.limits(limits.decode_limits());
    let decoded = reader.decode().map_err(|error| match error {
        image::ImageError::Limits(_) => ImageFault::MemoryLimit {
            limit_mib: limits.max_alloc / (1024 * 1024),
        },
        other => ImageFault::Corrupt(describe(&other)),
    })?;
    let pixel_format = format!("{:?}", decoded.color());
    // One channel is all the metrics need; dropping the decoded image right away halves the peak.
    let luma = decoded.into_luma8();
    let (width, height) = luma.dimensions();
    let factor = width.max(height).div_ceil(ANALYSIS_MAX_SIDE).max(1);
    let working = if factor > 1 {
        box_downscale(&luma, factor)
    } else {
        luma
    };
    let thumbnail = thumbnail(&working)?;
    let metrics = Metrics::measure(&working);
    let report = metrics.report(ImageFacts {
        format: header.format.name(),
        width,
        height,
        pixel_format,
        analysed_width: working.width(),
        analysed_height: working.height(),
        downscale_factor: factor,
    });
    Ok(Analysed { report, thumbnail })
}

/// Keeps the decoder's own words (they name the defect, e.g. "unexpected end of file") without
/// anything from the image itself.
fn describe(error: &image::ImageError) -> String {
    let text = error.to_string();
    text.chars().take(300).collect()
}

/// Mean of each `factor`×`factor` block; a partial block at the right or bottom edge is dropped.
fn box_downscale(image: &GrayImage, factor: u32) -> GrayImage {
    let (width, height) = image.dimensions();
    let (out_width, out_height) = ((width / factor).max(1), (height / factor).max(1));
    let factor = factor as usize;
    let source = image.as_raw();
    let stride = width as usize;
    let area = (factor * factor) as u32;
    let mut sums = vec![0u32; out_width as usize];
    let mut out = Vec::with_capacity(out_width as usize * out_height as usize);
    for out_y in 0..out_height as usize {
        sums.iter_mut().for_each(|sum| *sum = 0);
        for y in out_y * factor..((out_y + 1) * factor).min(height as usize) {
            let row = &source[y * stride..(y + 1) * stride];
            for (sum, block) in sums.iter_mut().zip(row.chunks_exact(factor)) {
                *sum += block.iter().map(|&v| u32::from(v)).sum::<u32>();
            }
        }
        out.extend(sums.iter().map(|&sum| ((sum + area / 2) / area) as u8));
    }
    GrayImage::from_raw(out_width, out_height, out).unwrap_or_else(|| GrayImage::new(1, 1))
}

fn thumbnail(working: &GrayImage) -> Result<Thumbnail, ImageFault> {
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

/// The raw measurements of one luma buffer.
#[derive(Clone, Debug)]
struct Metrics {
    histogram: [u64; 256],
    pixels: u64,
    laplacian_variance: f64,
    noise_sigma: f64,
}

impl Metrics {
    fn measure(image: &GrayImage) -> Self {
        let mut histogram = [0u64; 256];
        for &value in image.as_raw() {
            histogram[usize::from(value)] += 1;
        }
        let (laplacian_variance, noise_sigma) = second_derivatives(image);
        Metrics {
            histogram,
            pixels: u64::from(image.width()) * u64::from(image.height()),
            laplacian_variance,
            noise_sigma,
        }
    }

    fn share(&self, levels: impl Iterator<Item = usize>) -> f64 {
        let count: u64 = levels.map(|level| self.histogram[level]).sum();
        count as f64 / self.pixels.max(1) as f64
    }

    /// The smallest level at or below which at least `q` of the pixels lie.
    fn percentile(&self, q: f64) -> u8 {
        let target = (q * self.pixels as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (level, &count) in self.histogram.iter().enumerate() {
            seen += count;
            if seen >= target {
                return level as u8;
            }
        }
        u8::MAX
    }

    fn report(&self, image: ImageFacts) -> QualityReport {
        let pixels = self.pixels.max(1) as f64;
        let mean = self
            .histogram
            .iter()
            .enumerate()
            .map(|(level, &count)| level as f64 * count as f64)
            .sum::<f64>()
            / pixels;
        let variance = self
            .histogram
            .iter()
            .enumerate()
            .map(|(level, &count)| (level as f64 - mean).powi(2) * count as f64)
            .sum::<f64>()
            / pixels;
        let (p5, p50, p95) = (
            self.percentile(0.05),
            self.percentile(0.50),
            self.percentile(0.95),
        );
        let exposure = Exposure {
            mean_level: round3(mean),
            p5_level: p5,
            median_level: p50,
            p95_level: p95,
            dark_share: round4(self.share(0..usize::from(DARK_LEVEL))),
            bright_share: round4(self.share(usize::from(BRIGHT_LEVEL)..256)),
            clipped_black_share: round4(self.share(0..1)),
            clipped_white_share: round4(self.share(255..256)),
            histogram: (0..16)
                .map(|bin| round4(self.share(bin * 16..(bin + 1) * 16)))
                .collect(),
        };
        let contrast = Contrast {
            rms: round4(variance.sqrt() / 255.0),
            spread_5_95: round4(f64::from(p95 - p5) / 255.0),
        };

        let scores = AspectScores {
            exposure: round3(
                1.0 - clamp01((exposure.dark_share.max(exposure.bright_share) - 0.3) / 0.5),
            ),
            contrast: round3(clamp01(contrast.spread_5_95 / (2.0 * LOW_CONTRAST_SPREAD))),
            // Log scale: 0 at a tenth of the blur threshold, 1 at ten times it.
            sharpness: round3(clamp01(
                ((self.laplacian_variance / BLUR_LAPLACIAN_VARIANCE)
                    .max(1e-9)
                    .log10()
                    + 1.0)
                    / 2.0,
            )),
            noise: round3(1.0 - clamp01((self.noise_sigma - 2.0) / 10.0)),
        };
        let weakest = scores
            .exposure
            .min(scores.contrast)
            .min(scores.sharpness)
            .min(scores.noise);
        let weighted = 0.25 * scores.exposure
            + 0.25 * scores.contrast
            + 0.30 * scores.sharpness
            + 0.20 * scores.noise;
        let quality_score = (100.0 * (0.5 * weakest + 0.5 * weighted)).round() as u8;

        let mut findings = Vec::new();
        if exposure.dark_share > EXPOSURE_SHARE_LIMIT {
            findings.push("underexposed");
        }
        if exposure.bright_share > EXPOSURE_SHARE_LIMIT {
            findings.push("overexposed");
        }
        if contrast.spread_5_95 < LOW_CONTRAST_SPREAD {
            findings.push("low contrast");
        }
        if p95 - p5 >= MIN_SPREAD_TO_JUDGE_SHARPNESS
            && self.laplacian_variance < BLUR_LAPLACIAN_VARIANCE
        {
            findings.push("blurred — retake");
        }
        if self.noise_sigma > NOISE_SIGMA_LIMIT {
            findings.push("noisy");
        }

        QualityReport {
            kind: "image-quality-check",
            version: 1,
            disclaimer: DISCLAIMER,
            quality_score,
            findings,
            image,
            exposure,
            contrast,
            sharpness: Sharpness {
                method: "variance of the 4-neighbour Laplacian",
                laplacian_variance: round3(self.laplacian_variance),
            },
            noise: Noise {
                method: "Immerkær fast noise variance estimation (1996)",
                sigma: round3(self.noise_sigma),
            },
            aspect_scores: scores,
            thresholds: Thresholds {
                dark_level: DARK_LEVEL,
                bright_level: BRIGHT_LEVEL,
                exposure_share: EXPOSURE_SHARE_LIMIT,
                low_contrast_spread: LOW_CONTRAST_SPREAD,
                blur_laplacian_variance: BLUR_LAPLACIAN_VARIANCE,
                noise_sigma: NOISE_SIGMA_LIMIT,
                analysis_max_side: ANALYSIS_MAX_SIDE,
            },
        }
    }
}

/// One pass over the interior pixels computing both second-derivative filters:
/// - the 4-neighbour Laplacian `[0 1 0; 1 -4 1; 0 1 0]`, whose variance falls as edges soften
///   (Pech-Pacheco et al., 2000);
/// - Immerkær's mask `[1 -2 1; -2 4 -2; 1 -2 1]`, the difference of two Laplacians, which
///   cancels straight edges and smooth gradients and leaves mostly noise:
///   σ = √(π/2) · Σ|I∗N| / (6 (W−2)(H−2)) (Immerkær, CVIU 64(2), 1996).
fn second_derivatives(image: &GrayImage) -> (f64, f64) {
    let (width, height) = (image.width() as usize, image.height() as usize);
    if width < 3 || height < 3 {
        return (0.0, 0.0);
    }
    let data = image.as_raw();
    let (mut sum, mut sum_squares, mut abs_noise) = (0i64, 0i64, 0i64);
    for y in 1..height - 1 {
        let above = &data[(y - 1) * width..y * width];
        let row = &data[y * width..(y + 1) * width];
        let below = &data[(y + 1) * width..(y + 2) * width];
        for x in 1..width - 1 {
            let at = |line: &[u8], dx: usize| i64::from(line[x + dx - 1]);
            let (nw, n, ne) = (at(above, 0), at(above, 1), at(above, 2));
            let (w, c, e) = (at(row, 0), at(row, 1), at(row, 2));
            let (sw, s, se) = (at(below, 0), at(below, 1), at(below, 2));
            let laplacian = n + s + w + e - 4 * c;
            sum += laplacian;
            sum_squares += laplacian * laplacian;
            abs_noise += (nw + ne + sw + se - 2 * (n + s + w + e) + 4 * c).abs();
        }
    }
    let count = ((width - 2) * (height - 2)) as f64;
    let mean = sum as f64 / count;
    let laplacian_variance = (sum_squares as f64 / count - mean * mean).max(0.0);
    let noise_sigma = (std::f64::consts::PI / 2.0).sqrt() * abs_noise as f64 / (6.0 * count);
    (laplacian_variance, noise_sigma)
}

fn clamp01(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

fn round3(value: f64) -> f64 {
    (value * 1e3).round() / 1e3
}

fn round4(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xrays::test_images::{jpeg, png, png_header_claiming};
    use image::Luma;

    fn checkerboard(size: u32, cell: u32) -> GrayImage {
        GrayImage::from_fn(size, size, |x, y| {
            Luma([if (x / cell + y / cell).is_multiple_of(2) {
                40
            } else {
                210
            }])
        })
    }

    /// A separable box blur of radius `r`, applied `passes` times (≈ Gaussian).
    fn blurred(image: &GrayImage, r: i64, passes: usize) -> GrayImage {
        let (w, h) = (image.width() as i64, image.height() as i64);
        let mut current = image.clone();
        for _ in 0..passes {
            let horizontal = GrayImage::from_fn(w as u32, h as u32, |x, y| {
                let (x, y) = (x as i64, y as i64);
                let sum: i64 = (-r..=r)
                    .map(|d| {
                        i64::from(current.get_pixel((x + d).clamp(0, w - 1) as u32, y as u32)[0])
                    })
                    .sum();
                Luma([(sum / (2 * r + 1)) as u8])
            });
            current = GrayImage::from_fn(w as u32, h as u32, |x, y| {
                let (x, y) = (x as i64, y as i64);
                let sum: i64 = (-r..=r)
                    .map(|d| {
                        i64::from(horizontal.get_pixel(x as u32, (y + d).clamp(0, h - 1) as u32)[0])
                    })
                    .sum();
                Luma([(sum / (2 * r + 1)) as u8])
            });
        }
        current
    }

    /// Deterministic, roughly Gaussian noise (sum of uniforms) of standard deviation `sigma`.
    fn with_noise(image: &GrayImage, sigma: f64, seed: u64) -> GrayImage {
        let mut state = seed;
        let mut uniform = move || {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        GrayImage::from_fn(image.width(), image.height(), |x, y| {
            // Sum of 12 uniforms − 6: mean 0, variance 1.
            let z: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
            let value = f64::from(image.get_pixel(x, y)[0]) + sigma * z;
            Luma([value.round().clamp(0.0, 255.0) as u8])
        })
    }

    /// A smooth, well exposed gradient with some structure: no finding expected.
    fn good_image(width: u32, height: u32) -> GrayImage {
        GrayImage::from_fn(width, height, |x, y| {
            let base = 40.0 + 170.0 * f64::from(x) / f64::from(width);
            let ring = if ((x / 24) + (y / 24)).is_multiple_of(3) {
                25.0
            } else {
                0.0
            };
            Luma([(base + ring).min(255.0) as u8])
        })
    }

    fn report(bytes: &[u8]) -> QualityReport {
        analyse(bytes, &PixelLimits::default())
            .expect("analysable")
            .report
    }

    #[test]
    fn formats_are_sniffed_from_magic_bytes() {
        let image = good_image(64, 48);
        assert_eq!(XrayFormat::sniff(&png(&image)), Some(XrayFormat::Png));
        assert_eq!(XrayFormat::sniff(&jpeg(&image, 90)), Some(XrayFormat::Jpeg));
        assert_eq!(XrayFormat::sniff(b"GIF89a\x01\x00\x01\x00"), None);
        assert_eq!(XrayFormat::sniff(b"%PDF-1.7\n"), None);
        assert_eq!(XrayFormat::sniff(b""), None);
        assert_eq!(
            inspect(b"", &PixelLimits::default()),
            Err(ImageFault::Empty)
        );
        assert_eq!(
            inspect(b"GIF89a\x01\x00\x01\x00", &PixelLimits::default()),
            Err(ImageFault::UnsupportedFormat)
        );
        assert_eq!(
            inspect(&png(&image), &PixelLimits::default()),
            Ok(ImageHeader {
                format: XrayFormat::Png,
                width: 64,
                height: 48
            })
        );
    }

    #[test]
    fn a_well_exposed_sharp_image_has_no_finding() {
        let report = report(&png(&good_image(400, 300)));
        assert!(report.findings.is_empty(), "{report:#?}");
        assert!(report.quality_score >= 70, "{report:#?}");
        assert_eq!(report.kind, "image-quality-check");
        assert_eq!((report.image.width, report.image.height), (400, 300));
        assert_eq!(report.image.downscale_factor, 1);
        let total: f64 = report.exposure.histogram.iter().sum();
        assert!((total - 1.0).abs() < 1e-3, "{total}");
    }

    #[test]
    fn uniform_dark_is_underexposed_and_low_contrast() {
        let dark = GrayImage::from_pixel(200, 150, Luma([12]));
        let report = report(&png(&dark));
        assert!(report.findings.contains(&"underexposed"), "{report:#?}");
        assert!(report.findings.contains(&"low contrast"), "{report:#?}");
        // Nothing to judge sharpness on: not called blurred.
        assert!(!report.findings.contains(&"blurred — retake"));
        assert_eq!(report.exposure.dark_share, 1.0);
        assert!(report.quality_score < 30, "{}", report.quality_score);

        let bright = GrayImage::from_pixel(200, 150, Luma([250]));
        let report = super::tests::report(&png(&bright));
        assert!(report.findings.contains(&"overexposed"), "{report:#?}");
        assert!(!report.findings.contains(&"underexposed"));
    }

    #[test]
    fn blur_lowers_the_laplacian_variance_below_the_threshold() {
        let sharp = checkerboard(256, 16);
        let soft = blurred(&sharp, 4, 3);
        let sharp_report = report(&png(&sharp));
        let soft_report = report(&png(&soft));
        assert!(
            sharp_report.sharpness.laplacian_variance
                > 20.0 * soft_report.sharpness.laplacian_variance,
            "sharp {} vs blurred {}",
            sharp_report.sharpness.laplacian_variance,
            soft_report.sharpness.laplacian_variance
        );
        assert!(!sharp_report.findings.contains(&"blurred — retake"));
        assert!(
            soft_report.findings.contains(&"blurred — retake"),
            "{soft_report:#?}"
        );
        assert!(soft_report.quality_score < sharp_report.quality_score);
    }

    #[test]
    fn added_noise_raises_the_noise_estimate() {
        let clean = good_image(320, 240);
        let noisy = with_noise(&clean, 12.0, 7);
        let clean_report = report(&png(&clean));
        let noisy_report = report(&png(&noisy));
        assert!(
            clean_report.noise.sigma < 2.0,
            "{}",
            clean_report.noise.sigma
        );
        // The estimator should land near the true σ (12), clipping aside.
        assert!(
            (9.0..15.0).contains(&noisy_report.noise.sigma),
            "{}",
            noisy_report.noise.sigma
        );
        assert!(
            noisy_report.findings.contains(&"noisy"),
            "{noisy_report:#?}"
        );
        assert!(!clean_report.findings.contains(&"noisy"));
        assert!(noisy_report.quality_score < clean_report.quality_score);
    }

    #[test]
    fn a_header_bomb_is_refused_before_decoding() {
        let bomb = png_header_claiming(30_000, 30_000);
        assert!(bomb.len() < 100);
        let expected = ImageFault::TooLarge {
            width: 30_000,
            height: 30_000,
            max_side: 12_000,
            max_megapixels: 40,
        };
        assert_eq!(
            inspect(&bomb, &PixelLimits::default()),
            Err(expected.clone())
        );
        assert_eq!(
            analyse(&bomb, &PixelLimits::default()).map(|a| a.report.quality_score),
            Err(expected)
        );
        // Within each side but over the pixel budget.
        assert!(matches!(
            inspect(
                &png_header_claiming(11_000, 11_000),
                &PixelLimits::default()
            ),
            Err(ImageFault::TooLarge { .. })
        ));
        // A valid header with no real pixel data behind it fails in decoding, cleanly.
        assert!(matches!(
            analyse(&png_header_claiming(1000, 1000), &PixelLimits::default()),
            Err(ImageFault::Corrupt(_))
        ));
    }

    #[test]
    fn the_memory_limit_applies_when_decoding() {
        let image = good_image(512, 512);
        let limits = PixelLimits {
            max_alloc: 64 * 1024,
            ..PixelLimits::default()
        };
        assert!(matches!(
            analyse(&png(&image), &limits),
            Err(ImageFault::MemoryLimit { .. })
        ));
    }

    #[test]
    fn truncated_and_corrupt_files_fail_cleanly() {
        let image = good_image(320, 240);
        let jpeg = jpeg(&image, 90);
        let limits = PixelLimits::default();
        // The header survives, the scan data does not: the decoder alone would paint the rest
        // grey, the structure walk refuses it.
        for cut in [jpeg.len() / 2, jpeg.len() - 2, jpeg.len() - 1] {
            let error = analyse(&jpeg[..cut], &limits).err();
            assert!(
                matches!(error, Some(ImageFault::Truncated(_))),
                "cut at {cut}: {error:?}"
            );
        }
        // Cut inside the header.
        assert!(inspect(&jpeg[..20], &limits).is_err());
        // Data after EOI is tolerated.
        let mut trailer = jpeg.clone();
        trailer.extend_from_slice(b"camera trailer");
        assert!(inspect(&trailer, &limits).is_ok());

        let png = png(&image);
        for cut in [png.len() / 2, png.len() - 1] {
            let error = analyse(&png[..cut], &limits).err();
            assert!(
                matches!(error, Some(ImageFault::Truncated(_))),
                "cut at {cut}: {error:?}"
            );
        }
        // Cut right after IHDR: the header reader already misses the rest.
        assert!(matches!(
            inspect(&png[..40], &limits),
            Err(ImageFault::UnreadableHeader(_))
        ));
        // Structure intact, compressed data garbled: only decoding can tell.
        let mut garbled = png.clone();
        for byte in garbled.iter_mut().skip(60).take(200) {
            *byte ^= 0x5A;
        }
        assert!(inspect(&garbled, &limits).is_ok());
        let error = analyse(&garbled, &limits).err();
        assert!(matches!(error, Some(ImageFault::Corrupt(_))), "{error:?}");
        assert!(matches!(
            inspect(&png_header_claiming(8, 8), &PixelLimits::default()),
            Err(ImageFault::TooSmall { .. })
        ));
    }

    #[test]
    fn large_images_are_analysed_downscaled_and_thumbnailed() {
        let image = good_image(4100, 1000);
        let analysed = analyse(&png(&image), &PixelLimits::default()).expect("analysable");
        assert_eq!(analysed.report.image.downscale_factor, 3);
        assert_eq!(analysed.report.image.analysed_width, 1366);
        assert_eq!(analysed.thumbnail.width, THUMBNAIL_MAX_SIDE);
        assert_eq!(analysed.thumbnail.height, 62);
        assert_eq!(
            XrayFormat::sniff(&analysed.thumbnail.bytes),
            Some(XrayFormat::Jpeg)
        );

        // A small image keeps its size in the thumbnail (no upscaling).
        let small =
            analyse(&jpeg(&good_image(100, 80), 90), &PixelLimits::default()).expect("analysable");
        assert_eq!((small.thumbnail.width, small.thumbnail.height), (100, 80));
        assert!(small.report.findings.is_empty(), "{:#?}", small.report);
    }

    #[test]
    fn the_report_is_labelled_as_a_quality_check() {
        let json = serde_json::to_value(report(&png(&good_image(64, 64)))).expect("json");
        assert_eq!(json["kind"], "image-quality-check");
        assert!(
            json["disclaimer"]
                .as_str()
                .is_some_and(|d| d.contains("not a diagnosis"))
        );
        assert!(json["quality_score"].as_u64().is_some_and(|s| s <= 100));
    }
}
