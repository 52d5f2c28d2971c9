//! The image-quality check on generated images: formats, bombs, damage, and each finding.

use super::*;
use crate::xrays::test_images::{jpeg, png, png_header_claiming};
use image::{GrayImage, Luma};

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
                .map(|d| i64::from(current.get_pixel((x + d).clamp(0, w - 1) as u32, y as u32)[0]))
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
        sharp_report.sharpness.laplacian_variance > 20.0 * soft_report.sharpness.laplacian_variance,
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
fn an_image_whose_pixels_would_not_fit_the_worker_is_refused_from_its_header() {
    use crate::xrays::test_images::png_header_claiming_layout as claiming;
    let limits = PixelLimits::default();
    // 40 MP of 16-bit RGB: 240 MB decoded plus a 40 MB grey copy.
    match inspect(&claiming(6324, 6324, 16, 2), &limits) {
        Err(ImageFault::TooManyBytes {
            megabytes,
            limit_megabytes,
            ref layout,
            ..
        }) => {
            assert_eq!((megabytes, limit_megabytes), (280, 150));
            assert_eq!(layout, "Rgb16");
        }
        other => panic!("{other:?}"),
    }
    // 40 MP of 8-bit RGB (160 MB) is over too; RGBA of it more so.
    for (depth, colour) in [(8, 2), (8, 6), (16, 4)] {
        assert!(
            matches!(
                inspect(&claiming(6324, 6324, depth, colour), &limits),
                Err(ImageFault::TooManyBytes { .. })
            ),
            "{depth}-bit colour type {colour}"
        );
    }
    // The same size in 16-bit grey (120 MB), and 25 MP of 8-bit RGB (100 MB), are accepted.
    for (width, depth, colour) in [(6324, 16, 0), (5000, 8, 2)] {
        assert_eq!(
            inspect(&claiming(width, width, depth, colour), &limits).map(|h| h.width),
            Ok(width)
        );
    }
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
