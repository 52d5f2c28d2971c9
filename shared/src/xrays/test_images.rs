//! PNG and JPEG files built in memory for tests: the one encoder the unit tests of `analysis`
//! and the integration tests (`pulso-tests`, through the `test-support` feature) share.
//! Not part of the API.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, GrayImage, ImageEncoder};

/// An 8-bit grey PNG of `image`.
pub fn png(image: &GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::L8,
        )
        .expect("encode png");
    bytes
}

/// An 8-bit grey JPEG of `image` at `quality` (1–100).
pub fn jpeg(image: &GrayImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode(
            image.as_raw(),
            image.width(),
            image.height(),
            ExtendedColorType::L8,
        )
        .expect("encode jpeg");
    bytes
}

/// An image with some texture (a diagonal ramp), enough for every upload check.
pub fn textured(width: u32, height: u32) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([((x * 3 + y * 5) % 256) as u8])
    })
}

/// A PNG whose IHDR (with a valid CRC) claims `width`×`height` of 8-bit grey, followed by a
/// token IDAT and IEND: a header bomb, refused before decoding.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    png_header_claiming_layout(width, height, 8, 0)
}

/// [`png_header_claiming`] with another pixel layout: PNG `bit_depth` and `color_type` (0 grey,
/// 2 RGB, 4 grey + alpha, 6 RGBA).
pub fn png_header_claiming_layout(
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // Deflate, no filter, no interlace.
    ihdr.extend_from_slice(&[bit_depth, color_type, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
