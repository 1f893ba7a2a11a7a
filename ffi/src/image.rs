//! Image views: caller memory described by pointer, size, stride and format, borrowed for one call with no copy
//! (an OpenCV `cv::Mat` maps as `{mat.data, mat.cols, mat.rows, mat.step[0], LOUPE_FORMAT_BGR8}`).

use loupe_sdk::{ImageView, PixelFormat};

use crate::status::{FfiError, LoupeStatus};

/// Pixel format: one 8-bit channel (gray).
pub const LOUPE_FORMAT_GRAY8: u32 = 1;
/// Pixel format: three 8-bit channels in the order R, G, B.
pub const LOUPE_FORMAT_RGB8: u32 = 2;
/// Pixel format: three 8-bit channels in the order B, G, R (OpenCV's `CV_8UC3` default).
pub const LOUPE_FORMAT_BGR8: u32 = 3;
/// Pixel format: four 8-bit channels in the order R, G, B, A; alpha is ignored.
pub const LOUPE_FORMAT_RGBA8: u32 = 4;
/// Pixel format: four 8-bit channels in the order B, G, R, A (OpenCV's `CV_8UC4`); alpha is ignored.
pub const LOUPE_FORMAT_BGRA8: u32 = 5;
/// Pixel format: B, G, R and one unused byte per pixel (cameras' `BGRx`/`BGRa8` without alpha).
pub const LOUPE_FORMAT_BGRX8: u32 = 6;
/// Pixel format: R, G, B and one unused byte per pixel.
pub const LOUPE_FORMAT_RGBX8: u32 = 7;
/// Pixel format: one 16-bit word per pixel (native byte order, OpenCV's `CV_16UC1`) holding 10 significant bits
/// (0..1023). 10- to 16-bit gray is reduced to 8 bits by dropping the lowest bits (`value >> (bits - 8)`, values
/// above the bit depth read as 255), so `g << (bits - 8)` inspects exactly as the 8-bit gray `g`.
pub const LOUPE_FORMAT_GRAY10: u32 = 8;
/// Pixel format: 16-bit words holding 12 significant bits (0..4095), as `LOUPE_FORMAT_GRAY10` otherwise.
pub const LOUPE_FORMAT_GRAY12: u32 = 9;
/// Pixel format: 16-bit words holding 14 significant bits (0..16383), as `LOUPE_FORMAT_GRAY10` otherwise.
pub const LOUPE_FORMAT_GRAY14: u32 = 10;
/// Pixel format: 16-bit words, all 16 bits significant, as `LOUPE_FORMAT_GRAY10` otherwise.
pub const LOUPE_FORMAT_GRAY16: u32 = 11;

/// A borrowed image in caller memory: `height` rows, `stride` bytes apart, each holding `width` pixels of
/// `format` (`LOUPE_FORMAT_*`: 1 to 4 bytes per pixel). Loupe reads it only during the call it is passed to and never keeps it.
/// `stride` 0 means tightly packed (`width * bytes per pixel`). Format values start at 1 so that a zeroed view is
/// refused rather than read as gray.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LoupeImageView {
    /// First byte of the first row.
    pub data: *const u8,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from the start of one row to the start of the next (OpenCV: `mat.step[0]`); 0 = packed
    /// (`width * bytes per pixel`).
    pub stride: usize,
    /// A `LOUPE_FORMAT_*` value. Loupe cannot tell BGR from RGB bytes: passing one as the other is accepted and
    /// gives other scores (CLIP models see colour), so match the camera's or OpenCV's order (`loupe_opencv.hpp`).
    pub format: u32,
}

/// The pixel format of a `LOUPE_FORMAT_*` number; the format comes in as an integer because an out-of-range
/// value in a C enum parameter would be undefined behaviour on the Rust side.
pub(crate) fn pixel_format(format: u32, what: &str) -> Result<PixelFormat, FfiError> {
    match format {
        LOUPE_FORMAT_GRAY8 => Ok(PixelFormat::Gray8),
        LOUPE_FORMAT_RGB8 => Ok(PixelFormat::Rgb8),
        LOUPE_FORMAT_BGR8 => Ok(PixelFormat::Bgr8),
        LOUPE_FORMAT_RGBA8 => Ok(PixelFormat::Rgba8),
        LOUPE_FORMAT_BGRA8 => Ok(PixelFormat::Bgra8),
        LOUPE_FORMAT_BGRX8 => Ok(PixelFormat::Bgrx8),
        LOUPE_FORMAT_RGBX8 => Ok(PixelFormat::Rgbx8),
        LOUPE_FORMAT_GRAY10 => Ok(PixelFormat::Gray16 { bits: 10 }),
        LOUPE_FORMAT_GRAY12 => Ok(PixelFormat::Gray16 { bits: 12 }),
        LOUPE_FORMAT_GRAY14 => Ok(PixelFormat::Gray16 { bits: 14 }),
        LOUPE_FORMAT_GRAY16 => Ok(PixelFormat::Gray16 { bits: 16 }),
        other => Err(FfiError::new(
            LoupeStatus::Image,
            format!(
                "`{what}.format`: expected a LOUPE_FORMAT_* value: GRAY8 (1), RGB8 (2), BGR8 (3), RGBA8 (4), \
                 BGRA8 (5), BGRX8 (6), RGBX8 (7), GRAY10 (8), GRAY12 (9), GRAY14 (10) or GRAY16 (11), found {other}"
            ),
        )),
    }
}

impl LoupeImageView {
    /// Borrows the caller's pixels as an SDK view after checking every field.
    ///
    /// # Safety
    /// `self.data` must point to at least `stride * (height - 1) + width * channels` readable bytes that stay
    /// unchanged for `'a`.
    pub(crate) unsafe fn borrow<'a>(&self, what: &str) -> Result<ImageView<'a>, FfiError> {
        let format = pixel_format(self.format, what)?;
        if self.data.is_null() {
            return Err(FfiError::null(&format!("{what}.data")));
        }
        let invalid = |field: &str, expected: String, found: String| {
            FfiError::new(LoupeStatus::Image, format!("`{what}.{field}`: expected {expected}, found {found}"))
        };
        if self.width == 0 || self.height == 0 {
            return Err(invalid("width/height", "both > 0".into(), format!("{}x{}", self.width, self.height)));
        }
        let row = (self.width as usize)
            .checked_mul(format.bytes_per_pixel())
            .ok_or_else(|| invalid("width", "a row that fits in memory".into(), self.width.to_string()))?;
        let stride = if self.stride == 0 { row } else { self.stride };
        if stride < row {
            return Err(invalid(
                "stride",
                format!(">= width * channels = {row} bytes (or 0 for packed)"),
                stride.to_string(),
            ));
        }
        let len = stride
            .checked_mul(self.height as usize - 1)
            .and_then(|n| n.checked_add(row))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| invalid("height", "an image that fits in memory".into(), self.height.to_string()))?;
        // SAFETY: the caller guarantees `len` readable bytes at `data` for 'a (the function's contract); `len` was
        // computed with overflow checks and is at most isize::MAX.
        let bytes = unsafe { std::slice::from_raw_parts(self.data, len) };
        ImageView::new(bytes, self.width, self.height, stride, format)
            .map_err(|e| FfiError::new(LoupeStatus::Image, format!("`{what}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(data: &[u8], width: u32, height: u32, stride: usize, format: u32) -> LoupeImageView {
        LoupeImageView { data: data.as_ptr(), width, height, stride, format }
    }

    #[test]
    fn fields_are_checked_and_named() {
        let data = [0u8; 12];
        let err = |v: LoupeImageView| unsafe { v.borrow("image") }.unwrap_err();
        let e = err(view(&data, 2, 2, 0, 0));
        assert_eq!(e.status, LoupeStatus::Image);
        assert!(e.message.contains("image.format") && e.message.contains("found 0"), "{}", e.message);
        let e = err(view(&data, 2, 2, 5, LOUPE_FORMAT_RGB8));
        assert!(e.message.contains("image.stride") && e.message.contains(">= width * channels = 6"), "{}", e.message);
        let e = err(view(&data, 0, 2, 0, LOUPE_FORMAT_GRAY8));
        assert!(e.message.contains("0x2"), "{}", e.message);
        let e = err(LoupeImageView { data: std::ptr::null(), width: 1, height: 1, stride: 0, format: 1 });
        assert_eq!(e.status, LoupeStatus::NullArgument);
        let e = err(view(&data, u32::MAX, u32::MAX, 0, LOUPE_FORMAT_RGBA8));
        assert!(e.message.contains("image.height"), "{}", e.message);
    }

    #[test]
    fn padded_rows_are_skipped() {
        let data = [1u8, 2, 9, 3, 4, 9];
        let v = unsafe { view(&data, 2, 2, 3, LOUPE_FORMAT_GRAY8).borrow("image") }.unwrap();
        assert_eq!(v.row(1), &[3, 4]);
        let packed = unsafe { view(&data, 3, 2, 0, LOUPE_FORMAT_GRAY8).borrow("image") }.unwrap();
        assert_eq!(packed.row(1), &[3, 4, 9]);
    }
}
