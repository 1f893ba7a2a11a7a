//! Input images: borrowed views over caller memory (so an OpenCV `cv::Mat` maps with no copy) and decoding from
//! files. Everything is converted to packed 8-bit RGB before a backbone sees it.

use std::path::Path;

use crate::error::{LoupeError, Result};
use crate::limits::Limits;

/// Pixel layout of an image view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// One channel, 8 bits.
    Gray8,
    /// Three channels, R G B.
    Rgb8,
    /// Three channels, B G R (OpenCV's default).
    Bgr8,
    /// Four channels, R G B A; alpha is ignored.
    Rgba8,
    /// Four channels, B G R A (OpenCV's `CV_8UC4`, Windows DIBs); alpha is ignored.
    Bgra8,
    /// Four bytes, B G R and one unused (cameras' `BGRx` / GigE Vision `BGRa8` without alpha).
    Bgrx8,
    /// Four bytes, R G B and one unused.
    Rgbx8,
    /// One channel in a 16-bit word (native byte order) holding `bits` significant bits (10, 12, 14 or 16: a
    /// 12-bit camera's values are 0..4095). Reduced to 8 bits by dropping the `bits - 8` lowest bits, so a value
    /// `g << (bits - 8)` reads exactly as the 8-bit gray `g`; values above `2^bits - 1` read as 255.
    Gray16 {
        /// Significant bits per value, 9 to 16.
        bits: u8,
    },
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Gray16 { .. } => 2,
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 | Self::Bgrx8 | Self::Rgbx8 => 4,
        }
    }

    /// Checks what the type cannot: a 16-bit format's bit depth is 9 to 16.
    pub fn validate(self) -> Result<()> {
        match self {
            Self::Gray16 { bits } if !(9..=16).contains(&bits) => {
                Err(LoupeError::mismatch("16-bit gray image: significant bits", "9 to 16 (10, 12, 14 or 16)", bits))
            }
            _ => Ok(()),
        }
    }

    /// The RGB value of pixel `x` of a row of this format (gray replicated, BGR swapped, the fourth byte dropped,
    /// 16-bit gray reduced to 8 bits). `row` must hold pixel `x`.
    pub fn rgb_at(self, row: &[u8], x: usize) -> [u8; 3] {
        let px = &row[x * self.bytes_per_pixel()..];
        match self {
            Self::Gray8 => [px[0]; 3],
            Self::Rgb8 | Self::Rgba8 | Self::Rgbx8 => [px[0], px[1], px[2]],
            Self::Bgr8 | Self::Bgra8 | Self::Bgrx8 => [px[2], px[1], px[0]],
            Self::Gray16 { bits } => {
                let v = u16::from_ne_bytes([px[0], px[1]]) >> (bits.saturating_sub(8) as u32);
                [v.min(255) as u8; 3]
            }
        }
    }
}

/// A borrowed image: `height` rows of `stride` bytes, each holding `width` pixels of `format`.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// Wraps caller memory, checking that `data` holds `height` rows of `stride >= width * bytes per pixel` bytes.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize, format: PixelFormat) -> Result<Self> {
        format.validate()?;
        if width == 0 || height == 0 {
            return Err(LoupeError::mismatch("image size", "width and height > 0", format!("{width}x{height}")));
        }
        let row = width as usize * format.bytes_per_pixel();
        if stride < row {
            return Err(LoupeError::mismatch("image stride (bytes per row)", format!(">= {row}"), stride));
        }
        let needed = stride.checked_mul(height as usize - 1).and_then(|n| n.checked_add(row));
        let needed = needed.ok_or_else(|| {
            LoupeError::mismatch("image stride x height", "a size that fits in memory", format!("{stride} x {height}"))
        })?;
        if data.len() < needed {
            return Err(LoupeError::mismatch("image buffer length", format!(">= {needed} bytes"), data.len()));
        }
        Ok(Self { data, width, height, stride, format })
    }

    /// A tightly packed view (stride = width * channels).
    pub fn packed(data: &'a [u8], width: u32, height: u32, format: PixelFormat) -> Result<Self> {
        Self::new(data, width, height, width as usize * format.bytes_per_pixel(), format)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Row `y` as bytes (`width * bytes per pixel` long).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.format.bytes_per_pixel()]
    }

    /// The image as packed RGB bytes (gray replicated, BGR swapped, alpha or padding dropped, 16-bit gray reduced
    /// to 8 bits).
    pub fn to_rgb(&self) -> image::RgbImage {
        let mut out = image::RgbImage::new(self.width, self.height);
        for y in 0..self.height {
            let row = self.row(y);
            for x in 0..self.width as usize {
                out.put_pixel(x as u32, y, image::Rgb(self.format.rgb_at(row, x)));
            }
        }
        out
    }
}

/// An image decoded from a file, owning its pixels.
#[derive(Clone, Debug)]
pub struct OwnedImage {
    /// Pixels, packed.
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout.
    pub format: PixelFormat,
}

impl OwnedImage {
    /// Borrows the image as a view.
    pub fn view(&self) -> ImageView<'_> {
        ImageView {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.width as usize * self.format.bytes_per_pixel(),
            format: self.format,
        }
    }

    /// Decodes an image file within the default [`Limits`]. 8-bit gray, gray+alpha, RGB and RGBA are kept as they
    /// are; 16-bit and float images are reduced to 8 bits. A corrupt or unsupported file gives
    /// [`LoupeError::Image`] naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// As [`OwnedImage::open`], within `limits`: a file over `max_image_bytes`, or whose header declares more
    /// than `max_image_pixels`, is refused before it is read or decoded.
    pub fn open_with_limits(path: &Path, limits: &Limits) -> Result<Self> {
        limits.check_file(path, "max_image_bytes", limits.max_image_bytes)?;
        let bytes = std::fs::read(path).map_err(|e| LoupeError::io(path, e))?;
        Self::decode_named(&bytes, path, limits)
    }

    /// Decodes encoded bytes (PNG, JPEG, BMP, TIFF) within the default [`Limits`]; the error is a human-readable
    /// reason.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        Self::decode_with_limits(bytes, &Limits::default()).map_err(|e| match e {
            LoupeError::Image { reason, .. } => reason,
            other => other.to_string(),
        })
    }

    /// Decodes encoded bytes within `limits`; errors name the image `<memory>`.
    pub fn decode_with_limits(bytes: &[u8], limits: &Limits) -> Result<Self> {
        Self::decode_named(bytes, Path::new("<memory>"), limits)
    }

    fn decode_named(bytes: &[u8], name: &Path, limits: &Limits) -> Result<Self> {
        let bad = |reason: String| LoupeError::Image { path: name.to_path_buf(), reason };
        Limits::check(
            format!("image {} (bytes)", name.display()),
            "max_image_bytes",
            bytes.len() as u64,
            limits.max_image_bytes,
        )?;
        let reader = || {
            image::ImageReader::new(std::io::Cursor::new(bytes))
                .with_guessed_format()
                .map_err(|e| bad(format!("cannot read: {e}")))
        };
        if reader()?.format().is_none() {
            return Err(bad("unknown image format (supported: PNG, JPEG, BMP, TIFF)".into()));
        }
        // The header's size is checked before any pixel buffer exists, so a small file declaring a huge image
        // (a decompression bomb) costs nothing.
        let (width, height) = reader()?.into_dimensions().map_err(|e| bad(format!("cannot decode: {e}")))?;
        if width == 0 || height == 0 {
            return Err(bad(format!("empty image ({width}x{height})")));
        }
        limits.check_image_size(&format!("image {}", name.display()), width, height)?;
        let mut decoder_limits = image::Limits::default();
        // The decoder's own buffer: at most 16 bytes per pixel (four 32-bit float channels).
        decoder_limits.max_alloc = Some(limits.max_image_pixels.saturating_mul(16));
        let mut reader = reader()?;
        reader.limits(decoder_limits);
        let img = reader.decode().map_err(|e| bad(format!("cannot decode: {e}")))?;
        if (img.width(), img.height()) != (width, height) {
            return Err(bad(format!(
                "decoded size {}x{} differs from the header's {width}x{height}",
                img.width(),
                img.height()
            )));
        }
        use image::DynamicImage as D;
        let (data, format) = match img {
            D::ImageLuma8(i) => (i.into_raw(), PixelFormat::Gray8),
            D::ImageLuma16(_) => (img.to_luma8().into_raw(), PixelFormat::Gray8),
            D::ImageRgb8(i) => (i.into_raw(), PixelFormat::Rgb8),
            D::ImageRgba8(i) => (i.into_raw(), PixelFormat::Rgba8),
            other if other.color().has_alpha() => (other.to_rgba8().into_raw(), PixelFormat::Rgba8),
            other if other.color().has_color() => (other.to_rgb8().into_raw(), PixelFormat::Rgb8),
            other => (other.to_luma8().into_raw(), PixelFormat::Gray8),
        };
        Ok(Self { data, width, height, format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_rejects_short_buffers_and_strides() {
        let data = vec![0u8; 10];
        assert!(matches!(ImageView::new(&data, 4, 3, 4, PixelFormat::Gray8), Err(LoupeError::Mismatch { .. })));
        assert!(ImageView::new(&data, 4, 2, 3, PixelFormat::Gray8).is_err());
        assert!(ImageView::new(&data, 4, 2, 5, PixelFormat::Gray8).is_ok());
    }

    #[test]
    fn formats_convert_to_the_same_rgb() {
        let rgb = [10u8, 20, 30, 40, 50, 60];
        let bgr = [30u8, 20, 10, 60, 50, 40];
        let rgba = [10u8, 20, 30, 255, 40, 50, 60, 0];
        let a = ImageView::packed(&rgb, 2, 1, PixelFormat::Rgb8).unwrap().to_rgb();
        let b = ImageView::packed(&bgr, 2, 1, PixelFormat::Bgr8).unwrap().to_rgb();
        let c = ImageView::packed(&rgba, 2, 1, PixelFormat::Rgba8).unwrap().to_rgb();
        assert_eq!(a, b);
        assert_eq!(a, c);
        let g = ImageView::packed(&[7u8, 9], 2, 1, PixelFormat::Gray8).unwrap().to_rgb();
        assert_eq!(g.into_raw(), vec![7, 7, 7, 9, 9, 9]);
    }

    #[test]
    fn four_byte_and_sixteen_bit_formats_read_as_rgb8() {
        let rgb = [10u8, 20, 30, 40, 50, 60];
        let expect = ImageView::packed(&rgb, 2, 1, PixelFormat::Rgb8).unwrap().to_rgb();
        let bgrx = [30u8, 20, 10, 7, 60, 50, 40, 9];
        let rgbx = [10u8, 20, 30, 7, 40, 50, 60, 9];
        for (data, format) in [(bgrx, PixelFormat::Bgra8), (bgrx, PixelFormat::Bgrx8), (rgbx, PixelFormat::Rgbx8)] {
            assert_eq!(ImageView::packed(&data, 2, 1, format).unwrap().to_rgb(), expect, "{format:?}");
        }
        let gray = [0u8, 7, 128, 255];
        let expect = ImageView::packed(&gray, 4, 1, PixelFormat::Gray8).unwrap().to_rgb();
        for bits in [10u8, 12, 16] {
            let words: Vec<u8> = gray.iter().flat_map(|&g| (u16::from(g) << (bits - 8)).to_ne_bytes()).collect();
            let view = ImageView::packed(&words, 4, 1, PixelFormat::Gray16 { bits }).unwrap();
            assert_eq!(view.to_rgb(), expect, "{bits} bits");
        }
        // Out-of-range values saturate; a 12-bit full scale is white.
        let words: Vec<u8> = [4095u16, 65535].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = ImageView::packed(&words, 2, 1, PixelFormat::Gray16 { bits: 12 }).unwrap();
        assert_eq!(view.to_rgb().into_raw(), vec![255; 6]);
    }

    #[test]
    fn sixteen_bit_depth_is_checked() {
        let words = [0u8; 4];
        for bits in [0u8, 8, 17] {
            let err = ImageView::packed(&words, 2, 1, PixelFormat::Gray16 { bits }).unwrap_err().to_string();
            assert!(err.contains("significant bits") && err.contains(&bits.to_string()), "{err}");
        }
        // A 16-bit row needs 2 bytes per pixel.
        assert!(ImageView::new(&words, 2, 1, 3, PixelFormat::Gray16 { bits: 12 }).is_err());
    }

    #[test]
    fn stride_padding_is_skipped() {
        // 2x2 gray with 2 bytes of padding per row.
        let data = [1u8, 2, 99, 99, 3, 4];
        let v = ImageView::new(&data, 2, 2, 4, PixelFormat::Gray8).unwrap();
        assert_eq!(v.row(1), &[3, 4]);
    }

    #[test]
    fn corrupt_bytes_give_a_reason() {
        let err = OwnedImage::decode(b"\x89PNG\r\n\x1a\nnot really").unwrap_err();
        assert!(err.contains("decode") || err.contains("read"), "{err}");
        let err = OwnedImage::decode(b"hello").unwrap_err();
        assert!(err.contains("unknown image format"), "{err}");
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let img = image::GrayImage::from_fn(width, height, |x, y| image::Luma([(x * 7 + y * 3) as u8]));
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    /// CRC-32 (PNG's chunk checksum), bit by bit: the test must forge a valid header.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn images_over_the_limits_are_refused_before_decoding() {
        let small = png(16, 16);
        let limits = Limits { max_image_pixels: 255, ..Limits::default() };
        let err = OwnedImage::decode_with_limits(&small, &limits).unwrap_err();
        assert!(matches!(err, LoupeError::Limit { limit: "max_image_pixels", value: 256, max: 255, .. }), "{err}");
        assert_eq!(OwnedImage::decode_with_limits(&small, &Limits::default()).unwrap().data.len(), 256);
        let limits = Limits { max_image_bytes: small.len() as u64 - 1, ..Limits::default() };
        let err = OwnedImage::decode_with_limits(&small, &limits).unwrap_err().to_string();
        assert!(err.contains("max_image_bytes"), "{err}");

        // A 16x16 file whose header claims 100000 x 100000 (a decompression bomb): refused by its header alone.
        let mut bomb = small.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = OwnedImage::decode(&bomb).unwrap_err();
        assert!(err.contains("100000 x 100000") && err.contains("max_image_pixels"), "{err}");
    }

    #[test]
    fn a_stride_that_overflows_is_an_error() {
        let data = [0u8; 16];
        let err = ImageView::new(&data, 2, 3, usize::MAX / 2, PixelFormat::Gray8).unwrap_err().to_string();
        assert!(err.contains("stride x height"), "{err}");
    }
}
