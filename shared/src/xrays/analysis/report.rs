//! The stored `analysis` document: the measurements as exposure, contrast, sharpness and noise,
//! a score per aspect, the overall quality score and the findings, with the thresholds used.

use super::measure::{ANALYSIS_MAX_SIDE, Metrics};
use serde::Serialize;

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

/// The report of `metrics`, measured on the image `image` describes.
pub(super) fn report(metrics: &Metrics, image: ImageFacts) -> QualityReport {
    let mean = metrics.mean();
    let exposure = exposure(metrics, mean);
    let contrast = Contrast {
        rms: round4(metrics.variance(mean).sqrt() / 255.0),
        spread_5_95: round4(f64::from(exposure.p95_level - exposure.p5_level) / 255.0),
    };
    let aspect_scores = aspect_scores(metrics, &exposure, &contrast);
    let findings = findings(metrics, &exposure, &contrast);
    QualityReport {
        kind: "image-quality-check",
        version: 1,
        disclaimer: DISCLAIMER,
        quality_score: quality_score(&aspect_scores),
        findings,
        image,
        exposure,
        contrast,
        sharpness: Sharpness {
            method: "variance of the 4-neighbour Laplacian",
            laplacian_variance: round3(metrics.laplacian_variance),
        },
        noise: Noise {
            method: "Immerkær fast noise variance estimation (1996)",
            sigma: round3(metrics.noise_sigma),
        },
        aspect_scores,
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

fn exposure(metrics: &Metrics, mean: f64) -> Exposure {
    Exposure {
        mean_level: round3(mean),
        p5_level: metrics.percentile(0.05),
        median_level: metrics.percentile(0.50),
        p95_level: metrics.percentile(0.95),
        dark_share: round4(metrics.share(0..usize::from(DARK_LEVEL))),
        bright_share: round4(metrics.share(usize::from(BRIGHT_LEVEL)..256)),
        clipped_black_share: round4(metrics.share(0..1)),
        clipped_white_share: round4(metrics.share(255..256)),
        histogram: (0..16)
            .map(|bin| round4(metrics.share(bin * 16..(bin + 1) * 16)))
            .collect(),
    }
}

fn aspect_scores(metrics: &Metrics, exposure: &Exposure, contrast: &Contrast) -> AspectScores {
    AspectScores {
        exposure: round3(
            1.0 - clamp01((exposure.dark_share.max(exposure.bright_share) - 0.3) / 0.5),
        ),
        contrast: round3(clamp01(contrast.spread_5_95 / (2.0 * LOW_CONTRAST_SPREAD))),
        // Log scale: 0 at a tenth of the blur threshold, 1 at ten times it.
        sharpness: round3(clamp01(
            ((metrics.laplacian_variance / BLUR_LAPLACIAN_VARIANCE)
                .max(1e-9)
                .log10()
                + 1.0)
                / 2.0,
        )),
        noise: round3(1.0 - clamp01((metrics.noise_sigma - 2.0) / 10.0)),
    }
}

fn quality_score(scores: &AspectScores) -> u8 {
    let weakest = scores
        .exposure
        .min(scores.contrast)
        .min(scores.sharpness)
        .min(scores.noise);
    let weighted = 0.25 * scores.exposure
        + 0.25 * scores.contrast
        + 0.30 * scores.sharpness
        + 0.20 * scores.noise;
    (100.0 * (0.5 * weakest + 0.5 * weighted)).round() as u8
}

fn findings(metrics: &Metrics, exposure: &Exposure, contrast: &Contrast) -> Vec<&'static str> {
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
    if exposure.p95_level - exposure.p5_level >= MIN_SPREAD_TO_JUDGE_SHARPNESS
        && metrics.laplacian_variance < BLUR_LAPLACIAN_VARIANCE
    {
        findings.push("blurred — retake");
    }
    if metrics.noise_sigma > NOISE_SIGMA_LIMIT {
        findings.push("noisy");
    }
    findings
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
