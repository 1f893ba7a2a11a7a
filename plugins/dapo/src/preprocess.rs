//! CLIP preprocessing: resize to the model's input size (bicubic, as CLIP's transform), scale to 0..1, subtract
//! the mean and divide by the std per channel, lay out as CHW.

use image::imageops::FilterType;
use loupe_sdk::{ImageView, InputGeometry};

/// Appends the `[3, H, W]` normalised tensor of `image` to `out`. An image already at the input size is not
/// resampled, so its pixels reach the model unchanged.
pub fn push_normalized(image: &ImageView<'_>, geometry: &InputGeometry, out: &mut Vec<f32>) {
    let [h, w] = geometry.input_size;
    let mut rgb = image.to_rgb();
    if rgb.dimensions() != (w, h) {
        rgb = image::imageops::resize(&rgb, w, h, FilterType::CatmullRom);
    }
    for c in 0..3 {
        let (mean, std) = (geometry.mean[c], geometry.std[c]);
        out.extend(rgb.pixels().map(|p| (f32::from(p.0[c]) / 255.0 - mean) / std));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_sdk::PixelFormat;

    fn geometry(size: u32) -> InputGeometry {
        InputGeometry {
            input_size: [size, size],
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
            grid: [1, 1],
            feature_dim: 1,
            layers: 1,
        }
    }

    #[test]
    fn normalises_per_channel_in_chw_order() {
        let px = [255u8, 0, 51, 0, 255, 102];
        let view = ImageView::packed(&px, 2, 1, PixelFormat::Rgb8).unwrap();
        let g = InputGeometry { input_size: [1, 2], ..geometry(1) };
        let mut out = Vec::new();
        push_normalized(&view, &g, &mut out);
        let expect = [1.0, -1.0, -1.0, 3.0, 0.2, 0.4];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn other_sizes_are_resized_to_the_input() {
        let px = vec![128u8; 10 * 7];
        let view = ImageView::packed(&px, 10, 7, PixelFormat::Gray8).unwrap();
        let mut out = Vec::new();
        push_normalized(&view, &geometry(4), &mut out);
        assert_eq!(out.len(), 3 * 4 * 4);
        // A flat image stays flat through bicubic resampling.
        assert!(out[..16].iter().all(|v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6));
    }
}
