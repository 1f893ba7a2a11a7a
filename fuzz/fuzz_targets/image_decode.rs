//! Fuzz target `image_decode`: the input is an encoded image file (PNG, JPEG, BMP or TIFF, or anything else)
//! fed to [`loupe_sdk::OwnedImage::decode_with_limits`], the decoder behind `loupe inspect`, the C API's
//! `loupe_image_decode` and profile creation. The pixel limit is 4 Mpx (2048 x 2048) instead of the default
//! 64 Mpx: an 825-byte JPEG declaring 63244 x 247 pixels decodes, within the default limit, to 15.6 Mpx in over
//! a second under AddressSanitizer, which libFuzzer reports as a hang (`fuzz/regressions/image_decode`). Work
//! that grows with an allowed size is not a hang; a smaller limit keeps each input fast and checks the same
//! code paths (header check, allocation cap, decoded size).
//!
//! Checks: decoding never panics, aborts or runs out of memory; an `Ok` image is self-consistent (width and
//! height > 0, `data.len() == width * height * bytes_per_pixel`, a format `decode` documents: 8-bit gray, RGB or
//! RGBA) and its view converts to RGB (`view().to_rgb()`) of the same size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_sdk::{Limits, OwnedImage, PixelFormat};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_image_pixels: 1 << 22, ..Limits::default() };
    let Ok(img) = OwnedImage::decode_with_limits(data, &limits) else { return };
    assert!(u64::from(img.width) * u64::from(img.height) <= limits.max_image_pixels, "decoded past the limit");
    assert!(img.width > 0 && img.height > 0, "decoded an empty image {}x{}", img.width, img.height);
    assert!(
        matches!(img.format, PixelFormat::Gray8 | PixelFormat::Rgb8 | PixelFormat::Rgba8),
        "decode gave {:?}, documented: Gray8, Rgb8 or Rgba8",
        img.format
    );
    let expected = img.width as usize * img.height as usize * img.format.bytes_per_pixel();
    assert_eq!(img.data.len(), expected, "{}x{} {:?}", img.width, img.height, img.format);
    let view = img.view();
    assert_eq!((view.width(), view.height()), (img.width, img.height));
    let rgb = view.to_rgb();
    assert_eq!(rgb.dimensions(), (img.width, img.height));
    // The view must also pass the checks a caller-made view goes through.
    let checked = loupe_sdk::ImageView::packed(&img.data, img.width, img.height, img.format)
        .expect("a decoded image is a valid packed view");
    assert_eq!(checked.to_rgb(), rgb);
});
