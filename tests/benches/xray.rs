//! The `xray.analyze` work in-process: decode, metrics, thumbnail, on generated radiograph-like
//! images. Next to it, the raw floor measured in the same run: decoding the same bytes with the
//! `image` crate and nothing else.
//!
//! Then the worker's worst case for memory (issue 11 §1): four of the largest images the upload
//! accepts, analysed at once as the worker's memory admission allows in a 1024 MB function,
//! with the process's peak resident memory printed beside that budget.
//!
//! `cargo bench -p pulso-tests --bench xray` (release). `XRAY_BENCH_RUNS` sets the runs per
//! row (default 20). Prints; asserts nothing about time or memory.

mod common;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use shared::xrays::analysis::{self, PixelLimits};
use std::hint::black_box;
use std::time::Instant;

/// A smooth exposure gradient, a few bright "crowns" with sharp edges, fine texture and mild
/// noise: what a panoramic looks like to the metrics, at any size.
fn radiograph(width: u32, height: u32) -> Vec<u16> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 6.0
    };
    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (
                f64::from(x) / f64::from(width),
                f64::from(y) / f64::from(height),
            );
            let mut level = 60.0 + 80.0 * (1.0 - (fx - 0.5).abs() * 2.0) + 30.0 * fy;
            let tooth = ((fx * 16.0).fract() - 0.5).abs() < 0.3 && (0.3..0.7).contains(&fy);
            if tooth {
                level += 70.0;
            }
            level += 6.0 * ((f64::from(x) * 0.21).sin() * (f64::from(y) * 0.17).cos());
            pixels.push(((level + noise()).clamp(0.0, 255.0) * 257.0) as u16);
        }
    }
    pixels
}

fn png8(width: u32, height: u32, pixels: &[u16]) -> Vec<u8> {
    let bytes: Vec<u8> = pixels.iter().map(|&v| (v >> 8) as u8).collect();
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&bytes, width, height, ExtendedColorType::L8)
        .expect("encode png");
    out
}

fn png16(width: u32, height: u32, pixels: &[u16]) -> Vec<u8> {
    png16_of(width, height, pixels, ExtendedColorType::L16)
}

/// 16-bit samples as a PNG of `layout` (L16, or Rgb16 with three samples per pixel).
fn png16_of(width: u32, height: u32, pixels: &[u16], layout: ExtendedColorType) -> Vec<u8> {
    // `write_image` takes 16-bit samples in native byte order.
    let bytes: Vec<u8> = pixels.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&bytes, width, height, layout)
        .expect("encode png");
    out
}

fn jpeg(width: u32, height: u32, pixels: &[u16]) -> Vec<u8> {
    let bytes: Vec<u8> = pixels.iter().map(|&v| (v >> 8) as u8).collect();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode(&bytes, width, height, ExtendedColorType::L8)
        .expect("encode jpeg");
    out
}

fn time(runs: usize, mut op: impl FnMut()) -> common::Stats {
    op(); // warm-up: page in the code and the allocator's arenas
    let samples = (0..runs)
        .map(|_| {
            let started = Instant::now();
            op();
            started.elapsed()
        })
        .collect();
    common::Stats::from(samples, None)
}

fn main() {
    let runs: usize = std::env::var("XRAY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let limits = PixelLimits::default();
    println!("xray.analyze in-process, {runs} runs per row (p99 of {runs} is the slowest run)");

    let (width, height) = (2000, 1500);
    let pixels = radiograph(width, height);
    let big = (6000, 4000);
    let big_pixels = radiograph(big.0, big.1);
    let files = [
        ("2000×1500 PNG 8-bit grey", png8(width, height, &pixels)),
        ("2000×1500 PNG 16-bit grey", png16(width, height, &pixels)),
        ("2000×1500 JPEG q90 grey", jpeg(width, height, &pixels)),
        (
            "6000×4000 PNG 8-bit grey (metrics at 1/3)",
            png8(big.0, big.1, &big_pixels),
        ),
    ];
    drop((pixels, big_pixels));
    worst_case_memory(&limits);

    for (name, bytes) in &files {
        let analysed = analysis::analyse(bytes, &limits).expect("the bench image analyses");
        common::header(&format!(
            "{name}: {} KiB, score {}, findings {:?}",
            bytes.len() / 1024,
            analysed.report.quality_score,
            analysed.report.findings
        ));
        let decode = time(runs, || {
            black_box(image::load_from_memory(black_box(bytes)).expect("decode"));
        });
        common::report("raw decode (image::load_from_memory)", &decode);
        let inspect = time(runs, || {
            black_box(analysis::inspect(black_box(bytes), &limits).expect("inspect"));
        });
        common::report("upload check (sniff, header, structure walk)", &inspect);
        let full = time(runs, || {
            black_box(analysis::analyse(black_box(bytes), &limits).expect("analyse"));
        });
        common::report("analyse (decode + luma + metrics + thumbnail)", &full);
        println!(
            "{:<52} {:>10.1}",
            "  analyse p50 − raw decode p50",
            full.p50_us - decode.p50_us
        );
    }
}

/// A 1024 MB function's worker: 60 % of it for the jobs (`shared::config`), X-ray analyses
/// counted at `XRAY_ANALYZE`'s peak.
const FUNCTION_MB: u64 = 1024;

/// This process's resident memory now and at its peak since the last reset, in MiB.
fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Four of the worst accepted images analysed at once, on four threads (the worker runs each
/// analysis on a blocking thread), with the peak resident memory they add.
fn worst_case_memory(limits: &PixelLimits) {
    // The largest of each layout that the upload still accepts: 40 MP of 16-bit grey (80 MB
    // decoded + a 40 MB grey copy), and 16-bit RGB up to the 150 MB analysis bound. Flat
    // images, so the files stay under XRAY_MAX_BYTES (4 MiB) as an attacker's would: memory
    // follows the pixels, not the bytes on the wire.
    let grey = (6324, 6324);
    let rgb = (5300, 4000);
    let grey_png = png16(grey.0, grey.1, &vec![20_000; (grey.0 * grey.1) as usize]);
    let rgb_png = png16_of(
        rgb.0,
        rgb.1,
        &vec![20_000; (rgb.0 * rgb.1 * 3) as usize],
        ExtendedColorType::Rgb16,
    );
    let files = [&grey_png, &grey_png, &rgb_png, &rgb_png];
    for file in [&grey_png, &rgb_png] {
        assert!(file.len() <= 4 << 20, "within the default XRAY_MAX_BYTES");
        analysis::inspect(file, limits).expect("the upload accepts the worst-case image");
    }
    // Peak tracking starts here (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = rss_mib();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for file in files {
            scope.spawn(move || black_box(analysis::analyse(file, limits).expect("analyse")));
        }
    });
    let elapsed = started.elapsed();
    let (_, peak) = rss_mib();
    let budget = FUNCTION_MB * 60 / 100;
    let reserved = 4 * u64::from(shared::xrays::XRAY_ANALYZE.peak_memory_mib());
    println!(
        "4 worst-case accepted images at once (2 × {}×{} PNG 16-bit grey, {} KiB; \
         2 × {}×{} PNG 16-bit RGB, {} KiB), {:.1} s",
        grey.0,
        grey.1,
        grey_png.len() / 1024,
        rgb.0,
        rgb.1,
        rgb_png.len() / 1024,
        elapsed.as_secs_f64()
    );
    println!(
        "{:<52} {:>10} MiB",
        "resident before (the files, the runtime)", before
    );
    println!(
        "{:<52} {:>10} MiB",
        "peak resident during the four analyses", peak
    );
    println!(
        "{:<52} {:>10} MiB",
        "  of which the analyses (peak − before)",
        peak.saturating_sub(before)
    );
    println!(
        "{:<52} {:>10} MiB",
        "what the worker reserves for them (4 × XRAY_ANALYZE)", reserved
    );
    println!(
        "{:<52} {:>10} MiB   (target: peak ≤ 60 % of {FUNCTION_MB} MB)",
        "the worker's memory budget", budget
    );
}
