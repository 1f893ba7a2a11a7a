//! Fuzz target `image_view`: caller memory as the C API and `cv::Mat` integrations pass it. From the input, an
//! [`arbitrary`] width, height, stride and [`PixelFormat`] (every variant, `Gray16 { bits }` with any `bits`) and
//! the rest as the pixel buffer go to [`ImageView::new`] (explicit stride) and [`ImageView::packed`].
//!
//! Checks: nothing panics, overflow included (a huge stride x height must be refused, not wrap); an `Ok` view
//! reports what it was given, every `row(y)` is `width * bytes_per_pixel` long and inside the buffer, and
//! `to_rgb()` gives an RGB image of the view's size whose pixels equal `format.rgb_at` of the rows.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use loupe_sdk::{ImageView, PixelFormat};

/// [`PixelFormat`] has no `Arbitrary`: every variant, and any `bits` for 16-bit gray.
#[derive(Arbitrary, Debug)]
enum Format {
    Gray8,
    Rgb8,
    Bgr8,
    Rgba8,
    Bgra8,
    Bgrx8,
    Rgbx8,
    Gray16(u8),
}

impl Format {
    fn pixel_format(&self) -> PixelFormat {
        match *self {
            Self::Gray8 => PixelFormat::Gray8,
            Self::Rgb8 => PixelFormat::Rgb8,
            Self::Bgr8 => PixelFormat::Bgr8,
            Self::Rgba8 => PixelFormat::Rgba8,
            Self::Bgra8 => PixelFormat::Bgra8,
            Self::Bgrx8 => PixelFormat::Bgrx8,
            Self::Rgbx8 => PixelFormat::Rgbx8,
            Self::Gray16(bits) => PixelFormat::Gray16 { bits },
        }
    }
}

/// A size field: mostly small (so views succeed and rows get read), sometimes anything (overflow).
#[derive(Arbitrary, Debug)]
enum Dim {
    Small(u8),
    Any(u32),
}

impl Dim {
    fn get(&self) -> u32 {
        match *self {
            Self::Small(v) => u32::from(v),
            Self::Any(v) => v,
        }
    }
}

/// A stride: the packed one plus a small padding, or anything (up to `usize::MAX`).
#[derive(Arbitrary, Debug)]
enum Stride {
    Padded(u8),
    Any(usize),
    Huge(u8),
}

fn exercise(view: &ImageView<'_>, data: &[u8], width: u32, height: u32, format: PixelFormat) {
    assert_eq!((view.width(), view.height(), view.format()), (width, height, format));
    let row_len = width as usize * format.bytes_per_pixel();
    let data_range = data.as_ptr_range();
    for y in 0..height {
        let row = view.row(y);
        assert_eq!(row.len(), row_len, "row {y}");
        let r = row.as_ptr_range();
        assert!(data_range.start <= r.start && r.end <= data_range.end, "row {y} outside the buffer");
    }
    let rgb = view.to_rgb();
    assert_eq!(rgb.dimensions(), (width, height));
    for y in 0..height {
        let row = view.row(y);
        for x in 0..width {
            assert_eq!(rgb.get_pixel(x, y).0, format.rgb_at(row, x as usize), "pixel ({x}, {y})");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut u = Unstructured::new(input);
    let (Ok(w), Ok(h), Ok(stride), Ok(format)) =
        (Dim::arbitrary(&mut u), Dim::arbitrary(&mut u), Stride::arbitrary(&mut u), Format::arbitrary(&mut u))
    else {
        return;
    };
    let data = u.take_rest();
    let (width, height, format) = (w.get(), h.get(), format.pixel_format());
    let packed = width as usize * format.bytes_per_pixel();
    let stride = match stride {
        Stride::Padded(p) => packed + usize::from(p),
        Stride::Any(s) => s,
        Stride::Huge(k) => usize::MAX - usize::from(k),
    };
    if let Ok(view) = ImageView::new(data, width, height, stride, format) {
        assert!(format.validate().is_ok(), "accepted {format:?}");
        assert!(width > 0 && height > 0 && stride >= packed);
        let needed = (stride as u128) * (u128::from(height) - 1) + packed as u128;
        assert!(needed <= data.len() as u128, "accepted a buffer of {} bytes, needs {needed}", data.len());
        assert_eq!(view.stride(), stride);
        exercise(&view, data, width, height, format);
    }
    if let Ok(view) = ImageView::packed(data, width, height, format) {
        let needed = packed as u128 * u128::from(height);
        assert!(needed <= data.len() as u128, "accepted a packed buffer of {} bytes, needs {needed}", data.len());
        assert_eq!(view.stride(), packed);
        exercise(&view, data, width, height, format);
    }
});
