//! Pictures of a result: heatmap, binary mask and an overlay on the input image, as PNG-ready images.

use image::{GrayImage, Rgb, RgbImage};

use crate::detection::{Detection, ScoreMap};

/// Stops of the "turbo" colormap (dark blue -> cyan -> green -> yellow -> red), every 0.1.
const TURBO: [[f32; 3]; 11] = [
    [48.0, 18.0, 59.0],
    [68.0, 81.0, 191.0],
    [70.0, 134.0, 250.0],
    [39.0, 187.0, 236.0],
    [26.0, 228.0, 182.0],
    [100.0, 253.0, 106.0],
    [164.0, 252.0, 60.0],
    [225.0, 221.0, 55.0],
    [254.0, 163.0, 48.0],
    [232.0, 90.0, 20.0],
    [122.0, 4.0, 3.0],
];

/// Maps `t` in [0, 1] to a colour of the "turbo" colormap (blue = low, red = high), interpolating its stops.
pub fn turbo(t: f32) -> [u8; 3] {
    let pos = t.clamp(0.0, 1.0) * 10.0;
    let i = (pos.floor() as usize).min(9);
    let f = pos - i as f32;
    std::array::from_fn(|c| (TURBO[i][c] + (TURBO[i + 1][c] - TURBO[i][c]) * f).round() as u8)
}

/// The anomaly map as colours, `range` mapping to the top of the scale (use the map's full range, e.g. the number
/// of layers, so that colours mean the same on every image).
pub fn heatmap(map: &ScoreMap, range: f32) -> RgbImage {
    let scale = if range > 0.0 { 1.0 / range } else { 1.0 };
    RgbImage::from_fn(map.width as u32, map.height as u32, |x, y| Rgb(turbo(map.at(x as usize, y as usize) * scale)))
}

/// The mask as an 8-bit image (0 or 255).
pub fn mask_image(d: &Detection) -> GrayImage {
    GrayImage::from_raw(d.anomaly_map.width as u32, d.anomaly_map.height as u32, d.mask.clone()).unwrap_or_default()
}

/// The input with the heatmap blended in where the map is high, the mask outlined in red, and each region boxed.
/// `input` must have the size of the result's maps.
pub fn overlay(input: &RgbImage, d: &Detection, range: f32) -> RgbImage {
    let map = &d.anomaly_map;
    let (w, h) = (map.width, map.height);
    let scale = if range > 0.0 { 1.0 / range } else { 1.0 };
    let mut out = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        for x in 0..w {
            let t = (map.at(x, y) * scale).clamp(0.0, 1.0);
            let heat = turbo(t);
            let base = input.get_pixel(x as u32, y as u32).0;
            // Low scores barely tint the image so the part stays readable.
            let alpha = 0.15 + 0.45 * t;
            let px = std::array::from_fn(|c| {
                (f32::from(base[c]) * (1.0 - alpha) + f32::from(heat[c]) * alpha).round() as u8
            });
            out.put_pixel(x as u32, y as u32, Rgb(px));
        }
    }
    let inside = |x: isize, y: isize| {
        x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && d.mask[y as usize * w + x as usize] != 0
    };
    for y in 0..h as isize {
        for x in 0..w as isize {
            let edge =
                inside(x, y) && [(-1, 0), (1, 0), (0, -1), (0, 1)].iter().any(|(dx, dy)| !inside(x + dx, y + dy));
            if edge {
                out.put_pixel(x as u32, y as u32, Rgb([255, 0, 0]));
            }
        }
    }
    for r in &d.regions {
        draw_box(&mut out, r.bbox, Rgb([255, 255, 0]));
    }
    out
}

fn draw_box(img: &mut RgbImage, [x, y, bw, bh]: [u32; 4], colour: Rgb<u8>) {
    let (w, h) = img.dimensions();
    let (x0, y0) = (x.saturating_sub(1), y.saturating_sub(1));
    let (x1, y1) = ((x + bw).min(w - 1), (y + bh).min(h - 1));
    for xx in x0..=x1 {
        img.put_pixel(xx, y0, colour);
        img.put_pixel(xx, y1, colour);
    }
    for yy in y0..=y1 {
        img.put_pixel(x0, yy, colour);
        img.put_pixel(x1, yy, colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turbo_runs_from_dark_blue_to_dark_red() {
        let lo = turbo(0.0);
        let hi = turbo(1.0);
        assert!(lo[2] > lo[0], "low end is blue: {lo:?}");
        assert!(hi[0] > hi[2], "high end is red: {hi:?}");
        assert_eq!(turbo(-3.0), lo);
    }

    #[test]
    fn heatmap_is_scaled_by_range() {
        let map = ScoreMap { width: 2, height: 1, data: vec![0.0, 4.0] };
        let img = heatmap(&map, 4.0);
        assert_eq!(img.get_pixel(0, 0).0, turbo(0.0));
        assert_eq!(img.get_pixel(1, 0).0, turbo(1.0));
    }
}
