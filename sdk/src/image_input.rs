//! Input images: borrowed views over caller memory (so an OpenCV `cv::Mat` maps with no copy) and decoding from
//! files. Everything is converted to packed 8-bit RGB before a backbone sees it.

use std::path::Path;

use crate::error::{LoupeError, Result};

/// Pixel layout of an 8-bit image view.
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
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            Self::Gray8 => 1,
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 => 4,
        }
    }
}

/// A borrowed 8-bit image: `height` rows of `stride` bytes, each holding `width` pixels of `format`.
#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    stride: usize,
    format: PixelFormat,
}

impl<'a> ImageView<'a> {
    /// Wraps caller memory, checking that `data` holds `height` rows of `stride >= width * channels` bytes.
    pub fn new(data: &'a [u8], width: u32, height: u32, stride: usize, format: PixelFormat) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(LoupeError::mismatch("image size", "width and height > 0", format!("{width}x{height}")));
        }
        let row = width as usize * format.channels();
        if stride < row {
            return Err(LoupeError::mismatch("image stride (bytes per row)", format!(">= {row}"), stride));
        }
        let needed = stride * (height as usize - 1) + row;
        if data.len() < needed {
            return Err(LoupeError::mismatch("image buffer length", format!(">= {needed} bytes"), data.len()));
        }
        Ok(Self { data, width, height, stride, format })
    }

    /// A tightly packed view (stride = width * channels).
    pub fn packed(data: &'a [u8], width: u32, height: u32, format: PixelFormat) -> Result<Self> {
        Self::new(data, width, height, width as usize * format.channels(), format)
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

    /// Row `y` as bytes (`width * channels` long).
    pub fn row(&self, y: u32) -> &'a [u8] {
        let start = y as usize * self.stride;
        &self.data[start..start + self.width as usize * self.format.channels()]
    }

    /// The image as packed RGB bytes (gray replicated, BGR swapped, alpha dropped).
    pub fn to_rgb(&self) -> image::RgbImage {
        let mut out = image::RgbImage::new(self.width, self.height);
        for y in 0..self.height {
            let row = self.row(y);
            for x in 0..self.width as usize {
                let px = match self.format {
                    PixelFormat::Gray8 => [row[x]; 3],
                    PixelFormat::Rgb8 => [row[3 * x], row[3 * x + 1], row[3 * x + 2]],
                    PixelFormat::Bgr8 => [row[3 * x + 2], row[3 * x + 1], row[3 * x]],
                    PixelFormat::Rgba8 => [row[4 * x], row[4 * x + 1], row[4 * x + 2]],
                };
                out.put_pixel(x as u32, y, image::Rgb(px));
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
            stride: self.width as usize * self.format.channels(),
            format: self.format,
        }
    }

    /// Decodes an image file. 8-bit gray, gray+alpha, RGB and RGBA are kept as they are; 16-bit and float images are
    /// reduced to 8 bits. A corrupt or unsupported file gives [`LoupeError::Image`] naming the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| LoupeError::io(path, e))?;
        Self::decode(&bytes).map_err(|reason| LoupeError::Image { path: path.to_path_buf(), reason })
    }

    /// Decodes encoded bytes (PNG, JPEG, BMP, TIFF); the error is a human-readable reason.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read: {e}"))?;
        if reader.format().is_none() {
            return Err("unknown image format (supported: PNG, JPEG, BMP, TIFF)".into());
        }
        let img = reader.decode().map_err(|e| format!("cannot decode: {e}"))?;
        let (width, height) = (img.width(), img.height());
        if width == 0 || height == 0 {
            return Err(format!("empty image ({width}x{height})"));
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
}
