//! The raw measurements of a luma buffer: its histogram and two second-derivative filters, on
//! an image first averaged down to at most `ANALYSIS_MAX_SIDE` a side.

use image::GrayImage;

/// Metrics are computed on at most this many pixels a side: larger images are averaged down by
/// an integer factor first (a 12 000 px scan is judged as it shows on a 2 K screen), which keeps
/// a 40 MP analysis within the same time as a 4 MP one.
pub const ANALYSIS_MAX_SIDE: u32 = 2048;
/// `luma` averaged down by the integer factor that brings it within `ANALYSIS_MAX_SIDE`, and
/// that factor (1: kept as it is).
pub(super) fn downscaled(luma: GrayImage) -> (GrayImage, u32) {
    let (width, height) = luma.dimensions();
    let factor = width.max(height).div_ceil(ANALYSIS_MAX_SIDE).max(1);
    if factor > 1 {
        (box_downscale(&luma, factor), factor)
    } else {
        (luma, factor)
    }
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

/// The raw measurements of one luma buffer.
#[derive(Clone, Debug)]
pub(super) struct Metrics {
    pub(super) histogram: [u64; 256],
    pub(super) pixels: u64,
    pub(super) laplacian_variance: f64,
    pub(super) noise_sigma: f64,
}

impl Metrics {
    pub(super) fn measure(image: &GrayImage) -> Self {
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

    pub(super) fn share(&self, levels: impl Iterator<Item = usize>) -> f64 {
        let count: u64 = levels.map(|level| self.histogram[level]).sum();
        count as f64 / self.pixels.max(1) as f64
    }

    /// The smallest level at or below which at least `q` of the pixels lie.
    pub(super) fn percentile(&self, q: f64) -> u8 {
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

    /// The mean luma level.
    pub(super) fn mean(&self) -> f64 {
        let pixels = self.pixels.max(1) as f64;
        self.histogram
            .iter()
            .enumerate()
            .map(|(level, &count)| level as f64 * count as f64)
            .sum::<f64>()
            / pixels
    }

    /// The variance of the luma levels around `mean`.
    pub(super) fn variance(&self, mean: f64) -> f64 {
        let pixels = self.pixels.max(1) as f64;
        self.histogram
            .iter()
            .enumerate()
            .map(|(level, &count)| (level as f64 - mean).powi(2) * count as f64)
            .sum::<f64>()
            / pixels
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
