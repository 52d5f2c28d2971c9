//! Reading an upload without trusting it: the format from its first bytes, the header checked
//! against decompression bombs before a pixel is decoded, the structure walked to its end
//! marker, and decoding under a memory limit.

use image::{GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits};
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

    pub(super) fn name(self) -> &'static str {
        match self {
            XrayFormat::Png => "png",
            XrayFormat::Jpeg => "jpeg",
        }
    }

    pub(super) fn image_format(self) -> ImageFormat {
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
    /// What analysing it may hold at its peak: the decoded pixels (width × height × bytes per
    /// pixel of the file's own layout) plus the 8-bit grey copy the metrics read. Checked at
    /// upload from the header, so a file that could never be analysed is refused there (422)
    /// and the worker admits analyses by their peak (`XRAY_ANALYZE`), four at once in 1024 MB.
    pub max_decoded_bytes: u64,
}

impl Default for PixelLimits {
    fn default() -> Self {
        PixelLimits {
            // A real radiograph is hundreds of pixels a side; below this nothing can be judged.
            min_side: 16,
            max_side: 12_000,
            max_pixels: 40_000_000,
            max_alloc: 256 * 1024 * 1024,
            // 40 MP of 16-bit grey (80 MB + 40 MB grey copy) or 30 MP of 8-bit RGB pass; 40 MP
            // of 8-bit RGB (160 MB) or any 16-bit colour of that size do not. Four at once stay
            // under 60 % of a 1024 MB worker.
            max_decoded_bytes: 150_000_000,
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

    /// The decoded pixels in the file's layout plus the 8-bit grey copy, against the budget.
    fn check_decoded_bytes(
        &self,
        width: u32,
        height: u32,
        layout: image::ColorType,
    ) -> Result<(), ImageFault> {
        let pixels = u64::from(width) * u64::from(height);
        let bytes = pixels * (u64::from(layout.bytes_per_pixel()) + 1);
        if bytes > self.max_decoded_bytes {
            return Err(ImageFault::TooManyBytes {
                width,
                height,
                layout: format!("{layout:?}"),
                megabytes: bytes.div_ceil(1_000_000),
                limit_megabytes: self.max_decoded_bytes / 1_000_000,
            });
        }
        Ok(())
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
    #[error(
        "the image is {width}×{height} pixels of {layout}: analysing it would take {megabytes} MB, \
         and at most {limit_megabytes} MB are accepted; save it as 8-bit greyscale"
    )]
    TooManyBytes {
        width: u32,
        height: u32,
        layout: String,
        megabytes: u64,
        limit_megabytes: u64,
    },
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
    let decoder = reader.into_decoder().map_err(|error| match error {
        image::ImageError::Limits(_) => ImageFault::MemoryLimit {
            limit_mib: limits.max_alloc / (1024 * 1024),
        },
        other => ImageFault::UnreadableHeader(describe(&other)),
    })?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    limits.check_decoded_bytes(width, height, decoder.color_type())?;
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

/// Decodes a file [`inspect`] accepted under `limits`, down to its luma, and names the decoded
/// pixel layout (e.g. `L8`, `L16`, `Rgb8`).
pub(super) fn decode_luma(
    bytes: &[u8],
    header: &ImageHeader,
    limits: &PixelLimits,
) -> Result<(GrayImage, String), ImageFault> {
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
    Ok((decoded.into_luma8(), pixel_format))
}

/// Keeps the decoder's own words (they name the defect, e.g. "unexpected end of file") without
/// anything from the image itself.
pub(super) fn describe(error: &image::ImageError) -> String {
    let text = error.to_string();
    text.chars().take(300).collect()
}
