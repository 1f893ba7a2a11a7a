//! A training-free baseline: local contrast. `loupe eval` scores every image with it beside the model, so each
//! report shows whether the model beats a naive filter.
//!
//! For an image `I` (grayscale: the mean of R, G, B, as `f32`):
//!
//! 1. `d(p) = |I(p) - mean of I over the window x window square centred on p|`. The mean comes from an integral
//!    image (O(1) per pixel); near the borders the square is cut to the image and the mean is over the pixels
//!    left in it.
//! 2. `z(p) = d(p) / s` with `s` the image's median absolute deviation, `median |I - median I|`, floored at
//!    `1e-3 x (max I - min I)` (a mostly flat image has `s = 0`). The map is then unchanged when the image's
//!    brightness and contrast change (`a I + b`, `a > 0`), so scores of different images are comparable.
//! 3. `z` is averaged over a `smoothing x smoothing` square (cut at the borders like the window), which removes
//!    single-pixel sensor noise.
//! 4. The map is `z / (1 + z)`: the same ranking in `[0, 1)`, so metrics can bin it over a fixed range. A flat
//!    image scores 0 everywhere.
//!
//! The image score is the map's maximum. Defaults: a 15-pixel window, the size of the defects this is meant to
//! flag (a few to a few tens of pixels, e.g. Magnetic-Tile's blowholes and cracks at the original resolution:
//! small against the window's mean, so they stand out; larger ones, like diffuse unevenness, do not), and a 5-pixel
//! smoothing. They were chosen on Magnetic-Tile's training runs, not its test runs.

use loupe_sdk::ScoreMap;
use loupe_sdk::{ImageView, PixelFormat};
use loupe_sdk::{LoupeError, Result};

/// The local-contrast baseline's parameters (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalContrast {
    window: usize,
    smoothing: usize,
}

impl Default for LocalContrast {
    fn default() -> Self {
        Self { window: Self::DEFAULT_WINDOW, smoothing: Self::DEFAULT_SMOOTHING }
    }
}

impl LocalContrast {
    /// Default side of the local-mean window, pixels.
    pub const DEFAULT_WINDOW: usize = 15;
    /// Default side of the smoothing square, pixels.
    pub const DEFAULT_SMOOTHING: usize = 5;

    /// A baseline with a `window`-pixel local mean (odd, at least 3) and a `smoothing`-pixel average of the
    /// contrast (odd, at least 1; 1 is no smoothing).
    pub fn new(window: usize, smoothing: usize) -> Result<Self> {
        if window < 3 || window.is_multiple_of(2) {
            return Err(LoupeError::mismatch("local-contrast window (pixels)", "an odd number >= 3", window));
        }
        if smoothing.is_multiple_of(2) {
            return Err(LoupeError::mismatch("local-contrast smoothing (pixels)", "an odd number >= 1", smoothing));
        }
        Ok(Self { window, smoothing })
    }

    /// Side of the local-mean window, pixels.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Side of the smoothing square, pixels (1: none).
    pub fn smoothing(&self) -> usize {
        self.smoothing
    }

    /// The anomaly map at the image's size, values in `[0, 1)`.
    pub fn anomaly_map(&self, image: &ImageView<'_>) -> ScoreMap {
        let (w, h) = (image.width() as usize, image.height() as usize);
        // Gray levels times 3 (R + G + B): integers, so the median and MAD are exact and counted in O(n), and the
        // map does not depend on the factor.
        let sums = channel_sums(image);
        let gray: Vec<f32> = sums.iter().map(|&v| f32::from(v)).collect();
        let means = BoxMean::new(&gray, w, h).means(self.window / 2);
        let mut z: Vec<f32> = gray.iter().zip(&means).map(|(g, m)| (g - m).abs()).collect();
        let (lo, hi) = sums.iter().fold((u16::MAX, 0), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let scale = median_absolute_deviation(&sums).max(1e-3 * f32::from(hi.saturating_sub(lo)));
        if scale > 0.0 {
            z.iter_mut().for_each(|v| *v /= scale);
        } else {
            // A flat image: no contrast anywhere.
            z.iter_mut().for_each(|v| *v = 0.0);
        }
        let r = self.smoothing / 2;
        if r > 0 {
            z = BoxMean::new(&z, w, h).means(r);
        }
        // Rounding in the box sums can leave tiny negatives where the contrast is 0.
        let data = z.into_iter().map(|v| v.max(0.0)).map(|v| v / (1.0 + v)).collect();
        ScoreMap { width: w, height: h, data }
    }

    /// The image score of a map: its maximum (0 for an empty map).
    pub fn image_score(map: &ScoreMap) -> f32 {
        map.max()
    }
}

/// Largest sum of three 8-bit channels.
const MAX_SUM: usize = 3 * 255;

/// Three times the gray level of each pixel, row-major: R + G + B (alpha ignored; a gray pixel counts 3 times).
fn channel_sums(image: &ImageView<'_>) -> Vec<u16> {
    let (w, h) = (image.width() as usize, image.height());
    let mut out = Vec::with_capacity(w * h as usize);
    let sum3 = |px: &[u8]| u16::from(px[0]) + u16::from(px[1]) + u16::from(px[2]);
    for y in 0..h {
        let row = image.row(y);
        match image.format() {
            PixelFormat::Gray8 => out.extend(row.iter().map(|&v| 3 * u16::from(v))),
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => out.extend(row.chunks_exact(3).map(sum3)),
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Bgrx8 | PixelFormat::Rgbx8 => {
                out.extend(row.chunks_exact(4).map(sum3))
            }
            format @ PixelFormat::Gray16 { .. } => {
                out.extend((0..w).map(|x| 3 * u16::from(format.rgb_at(row, x)[0])));
            }
        }
    }
    out
}

/// Means over squares cut to the image, through an integral image (`f64`: the sums of a large image exceed what
/// `f32` holds exactly).
struct BoxMean {
    width: usize,
    height: usize,
    /// `(width + 1) x (height + 1)`: `sums[y][x]` is the sum over `[0, x) x [0, y)`.
    sums: Vec<f64>,
}

impl BoxMean {
    fn new(values: &[f32], width: usize, height: usize) -> Self {
        let stride = width + 1;
        let mut sums = vec![0.0f64; stride * (height + 1)];
        for y in 0..height {
            let mut row = 0.0f64;
            for x in 0..width {
                row += f64::from(values[y * width + x]);
                sums[(y + 1) * stride + x + 1] = sums[y * stride + x + 1] + row;
            }
        }
        Self { width, height, sums }
    }

    /// Mean over the `(2r + 1)`-square centred on `(x, y)`, cut to the image.
    #[cfg(test)]
    fn at(&self, x: usize, y: usize, r: usize) -> f32 {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(self.height));
        self.mean(x, (y0, y1), r)
    }

    /// The mean of every pixel's `(2r + 1)`-square, row-major.
    fn means(&self, r: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.width * self.height);
        for y in 0..self.height {
            let rows = (y.saturating_sub(r), (y + r + 1).min(self.height));
            out.extend((0..self.width).map(|x| self.mean(x, rows, r)));
        }
        out
    }

    fn mean(&self, x: usize, (y0, y1): (usize, usize), r: usize) -> f32 {
        let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(self.width));
        let s = self.width + 1;
        let sum = self.sums[y1 * s + x1] - self.sums[y0 * s + x1] - self.sums[y1 * s + x0] + self.sums[y0 * s + x0];
        (sum / ((x1 - x0) * (y1 - y0)) as f64) as f32
    }
}

/// `median |v - median v|` of channel sums (medians: the lower middle value for an even count; 0 for no values),
/// counted in a histogram of the `0..=MAX_SUM` values.
fn median_absolute_deviation(values: &[u16]) -> f32 {
    let mut counts = [0u64; MAX_SUM + 1];
    values.iter().for_each(|&v| counts[usize::from(v).min(MAX_SUM)] += 1);
    let m = median_of_counts(&counts);
    let mut deviations = [0u64; MAX_SUM + 1];
    counts.iter().enumerate().for_each(|(v, &c)| deviations[v.abs_diff(m)] += c);
    median_of_counts(&deviations) as f32
}

/// The lower middle value of a histogram (`counts[v]` values equal to `v`); 0 when empty.
fn median_of_counts(counts: &[u64]) -> usize {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0;
    }
    let mid = (n - 1) / 2;
    let mut seen = 0;
    for (v, &c) in counts.iter().enumerate() {
        seen += c;
        if seen > mid {
            return v;
        }
    }
    counts.len() - 1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

    use super::*;
    use crate::metrics::RankedCounts;
    use crate::metrics::pro::{MapAndMask, ProCurve};

    /// A packed gray image from a function of `(x, y)`.
    fn gray(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Vec<u8> {
        (0..w * h).map(|i| f(i % w, i / w).round().clamp(0.0, 255.0) as u8).collect()
    }

    fn map_of(lc: &LocalContrast, data: &[u8], w: usize, h: usize, format: PixelFormat) -> ScoreMap {
        lc.anomaly_map(&ImageView::packed(data, w as u32, h as u32, format).unwrap())
    }

    fn argmax(m: &ScoreMap) -> (usize, usize) {
        let i = (0..m.data.len()).max_by(|&a, &b| m.data[a].total_cmp(&m.data[b])).unwrap();
        (i % m.width, i / m.width)
    }

    /// A smooth ramp with a dark 3x3 dot centred at `(cx, cy)`, plus a deterministic texture of +-2 levels.
    fn dotted(w: usize, h: usize, (cx, cy): (usize, usize)) -> Vec<u8> {
        gray(w, h, |x, y| {
            let texture = ((x * 7 + y * 13) % 5) as f32 - 2.0;
            let dot = x.abs_diff(cx) <= 1 && y.abs_diff(cy) <= 1;
            60.0 + 0.8 * x as f32 + 0.3 * y as f32 + texture - if dot { 50.0 } else { 0.0 }
        })
    }

    #[test]
    fn a_flat_image_scores_zero_everywhere() {
        for (w, h) in [(1, 1), (7, 3), (64, 40)] {
            let m = map_of(&LocalContrast::default(), &vec![117; w * h], w, h, PixelFormat::Gray8);
            assert_eq!((m.width, m.height, m.data.len()), (w, h, w * h));
            assert!(m.data.iter().all(|&v| v == 0.0), "{w}x{h}");
            assert_eq!(LocalContrast::image_score(&m), 0.0);
        }
    }

    #[test]
    fn a_dark_dot_on_a_ramp_is_the_peak_wherever_it_is() {
        let (w, h) = (90, 60);
        // Inside, next to an edge and in a corner: the cut windows still find it.
        for centre in [(45, 30), (1, 30), (88, 1)] {
            let m = map_of(&LocalContrast::default(), &dotted(w, h, centre), w, h, PixelFormat::Gray8);
            let (x, y) = argmax(&m);
            assert!(x.abs_diff(centre.0) <= 1 && y.abs_diff(centre.1) <= 1, "peak at {:?}, dot at {centre:?}", (x, y));
            assert!(m.data.iter().all(|v| (0.0..1.0).contains(v)));
            assert_eq!(LocalContrast::image_score(&m), m.data[y * w + x]);
            // Far from the dot the ramp and texture score well below it.
            let far = m.data[(centre.1 + h / 2) % h * w + (centre.0 + w / 2) % w];
            assert!(far < 0.5 * m.data[y * w + x], "far {far}, peak {}", m.data[y * w + x]);
        }
    }

    #[test]
    fn brightness_and_contrast_do_not_change_the_map() {
        let (w, h) = (50, 40);
        let base = dotted(w, h, (20, 15));
        let changed: Vec<u8> = base.iter().map(|&v| (2.0 * f32::from(v) - 10.0).clamp(0.0, 255.0) as u8).collect();
        assert!(base.iter().zip(&changed).all(|(&a, &b)| f32::from(b) == 2.0 * f32::from(a) - 10.0), "no clipping");
        let lc = LocalContrast::default();
        let (a, b) = (map_of(&lc, &base, w, h, PixelFormat::Gray8), map_of(&lc, &changed, w, h, PixelFormat::Gray8));
        let worst = a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest change {worst}");
    }

    #[test]
    fn colour_formats_use_the_mean_of_the_channels() {
        let (w, h) = (30, 20);
        let g = dotted(w, h, (10, 10));
        let rgb: Vec<u8> = g.iter().flat_map(|&v| [v, v, v]).collect();
        let rgba: Vec<u8> = g.iter().flat_map(|&v| [v, v, v, 9]).collect();
        // Channels that differ but average to the gray value.
        let bgr: Vec<u8> = g.iter().flat_map(|&v| [v.saturating_sub(3), v, v.saturating_add(3)]).collect();
        assert!(g.iter().all(|&v| (3..=252).contains(&v)), "no saturation in the test image");
        let lc = LocalContrast::default();
        let reference = map_of(&lc, &g, w, h, PixelFormat::Gray8);
        for (data, format) in [(rgb, PixelFormat::Rgb8), (rgba, PixelFormat::Rgba8), (bgr, PixelFormat::Bgr8)] {
            let m = map_of(&lc, &data, w, h, format);
            let worst = m.data.iter().zip(&reference.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "{format:?}: {worst}");
        }
    }

    #[test]
    fn strided_views_read_only_the_pixels() {
        let (w, h, stride) = (20, 10, 27);
        let g = dotted(w, h, (5, 5));
        let mut padded = vec![255u8; stride * h];
        for y in 0..h {
            padded[y * stride..y * stride + w].copy_from_slice(&g[y * w..(y + 1) * w]);
        }
        let lc = LocalContrast::default();
        let view = ImageView::new(&padded, w as u32, h as u32, stride, PixelFormat::Gray8).unwrap();
        assert_eq!(lc.anomaly_map(&view), map_of(&lc, &g, w, h, PixelFormat::Gray8));
    }

    #[test]
    fn the_box_mean_is_cut_at_the_borders() {
        let (w, h) = (4, 3);
        let v: Vec<f32> = (0..w * h).map(|i| i as f32).collect();
        let b = BoxMean::new(&v, w, h);
        // Corner (0, 0) with radius 1: pixels (0..2) x (0..2) = 0, 1, 4, 5.
        assert_eq!(b.at(0, 0, 1), 2.5);
        // Centre (1, 1): (0..3) x (0..3) = 0, 1, 2, 4, 5, 6, 8, 9, 10.
        assert_eq!(b.at(1, 1, 1), 5.0);
        // Radius 0 is the pixel; a radius past the image is the whole image.
        assert_eq!(b.at(3, 2, 0), 11.0);
        assert_eq!(b.at(2, 1, 9), 5.5);
    }

    #[test]
    fn median_and_mad_are_the_lower_middle_values() {
        assert_eq!(median_absolute_deviation(&[]), 0.0);
        assert_eq!(median_absolute_deviation(&[7]), 0.0);
        // Median 3 (lower middle of 1 3 8 9); deviations 2 0 5 6 -> lower middle 2.
        assert_eq!(median_absolute_deviation(&[9, 1, 8, 3]), 2.0);
        // Median 10; deviations 10 0 0 5 755 -> 5.
        assert_eq!(median_absolute_deviation(&[0, 10, 10, 15, 765]), 5.0);
    }

    #[test]
    fn windows_must_be_odd_and_large_enough() {
        assert!(LocalContrast::new(15, 5).is_ok());
        assert!(LocalContrast::new(3, 1).is_ok());
        for (window, smoothing) in [(14, 5), (1, 1), (15, 0), (15, 4)] {
            let e = LocalContrast::new(window, smoothing).unwrap_err().to_string();
            assert!(e.contains("local-contrast") && e.contains("odd"), "{e}");
        }
        let lc = LocalContrast::new(7, 3).unwrap();
        assert_eq!((lc.window(), lc.smoothing()), (7, 3));
        // Without smoothing the map still peaks on the dot.
        let (w, h) = (40, 30);
        let m = map_of(&LocalContrast::new(7, 1).unwrap(), &dotted(w, h, (20, 12)), w, h, PixelFormat::Gray8);
        let (x, y) = argmax(&m);
        assert!(x.abs_diff(20) <= 1 && y.abs_diff(12) <= 1);
    }

    #[test]
    fn a_known_dark_spot_is_found_by_the_pixel_metrics() {
        // Several textured ramps, each with a dark 5x5 spot somewhere: the map ranks the spots' pixels above the
        // background (pixel AUROC) and covers them at a low false-positive rate (AUPRO).
        let (w, h) = (80, 60);
        let lc = LocalContrast::default();
        let mut maps = Vec::new();
        let mut masks = Vec::new();
        for (k, (cx, cy)) in [(20usize, 15usize), (60, 40), (3, 55), (40, 30)].into_iter().enumerate() {
            let data = gray(w, h, |x, y| {
                let texture = (((x + 3 * k) * 7 + y * 13) % 5) as f32 - 2.0;
                let spot = x.abs_diff(cx) <= 2 && y.abs_diff(cy) <= 2;
                80.0 + 0.5 * x as f32 - 0.4 * y as f32 + texture - if spot { 40.0 } else { 0.0 }
            });
            maps.push(map_of(&lc, &data, w, h, PixelFormat::Gray8).data);
            masks.push((0..w * h).map(|i| (i % w).abs_diff(cx) <= 2 && (i / w).abs_diff(cy) <= 2).collect::<Vec<_>>());
        }
        let scores: Vec<f32> = maps.concat();
        let labels: Vec<bool> = masks.concat();
        let auroc = RankedCounts::from_scores(&scores, &labels).unwrap().roc_auc().unwrap();
        assert!(auroc > 0.9, "pixel AUROC {auroc}");
        let views: Vec<MapAndMask<'_>> =
            maps.iter().zip(&masks).map(|(s, m)| MapAndMask { width: w, height: h, scores: s, mask: m }).collect();
        let aupro = ProCurve::exact(&views).unwrap().au_pro(0.3).unwrap();
        assert!(aupro > 0.5, "AUPRO {aupro}");
    }
}
