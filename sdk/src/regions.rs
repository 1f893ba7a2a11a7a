//! Connected regions of a binary mask (8-connectivity), with their box, area, defect type and scores.

use crate::detection::{Region, ScoreMap};

/// Finds the 8-connected regions of `mask` (non-zero = in). Regions smaller than `min_area` pixels are erased from
/// `mask` and `type_map` so that the mask and the region list always agree. Regions are returned in scan order of
/// their first pixel.
pub fn extract_regions(
    mask: &mut [u8],
    type_map: &mut [u16],
    anomaly: &ScoreMap,
    classes: &[String],
    min_area: u32,
) -> Vec<Region> {
    let (w, h) = (anomaly.width, anomaly.height);
    let mut seen = vec![false; w * h];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    let mut pixels = Vec::new();
    for start in 0..w * h {
        if mask[start] == 0 || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        pixels.clear();
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] != 0 && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if (pixels.len() as u64) < u64::from(min_area) {
            for &i in &pixels {
                mask[i] = 0;
                type_map[i] = 0;
            }
            continue;
        }
        regions.push(describe(&pixels, w, type_map, anomaly, classes));
    }
    regions
}

fn describe(pixels: &[usize], w: usize, type_map: &[u16], anomaly: &ScoreMap, classes: &[String]) -> Region {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let mut votes = vec![0u32; classes.len().max(1)];
    let (mut sum, mut max) = (0.0f64, f32::NEG_INFINITY);
    for &i in pixels {
        let (x, y) = (i % w, i / w);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
        if let Some(v) = votes.get_mut(type_map[i] as usize) {
            *v += 1;
        }
        let s = anomaly.data[i];
        sum += f64::from(s);
        max = max.max(s);
    }
    // Ties go to the lower type id so the result is deterministic.
    let best = votes.iter().enumerate().skip(1).max_by_key(|&(k, &n)| (n, std::cmp::Reverse(k))).map_or(0, |(k, _)| k);
    Region {
        bbox: [x0 as u32, y0 as u32, (x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32],
        area: pixels.len() as u32,
        defect_type: classes.get(best).cloned().unwrap_or_default(),
        mean_score: (sum / pixels.len() as f64) as f32,
        max_score: max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["normal".into(), "hole".into(), "scratch".into()]
    }

    #[test]
    fn diagonal_pixels_join_and_small_regions_are_erased() {
        // 5x4: a diagonal pair (8-connected), an L of 3 pixels, and a lone pixel.
        #[rustfmt::skip]
        let mut mask = vec![
            1, 0, 0, 0, 1,
            0, 1, 0, 0, 0,
            0, 0, 0, 1, 1,
            0, 0, 0, 0, 1,
        ];
        #[rustfmt::skip]
        let mut types = vec![
            1, 0, 0, 0, 2,
            0, 1, 0, 0, 0,
            0, 0, 0, 2, 2,
            0, 0, 0, 0, 1,
        ];
        let anomaly = ScoreMap { width: 5, height: 4, data: (0..20).map(|i| i as f32).collect() };
        let regions = extract_regions(&mut mask, &mut types, &anomaly, &classes(), 2);
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[0].bbox, [0, 0, 2, 2]);
        assert_eq!(regions[0].area, 2);
        assert_eq!(regions[0].defect_type, "hole");
        assert_eq!(regions[0].max_score, 6.0);
        assert_eq!(regions[0].mean_score, 3.0);
        assert_eq!(regions[1].bbox, [3, 2, 2, 2]);
        assert_eq!(regions[1].area, 3);
        assert_eq!(regions[1].defect_type, "scratch");
        // The lone pixel at (4, 0) was below min_area: gone from mask and type map.
        assert_eq!(mask[4], 0);
        assert_eq!(types[4], 0);
    }

    #[test]
    fn empty_mask_has_no_regions() {
        let mut mask = vec![0u8; 6];
        let mut types = vec![0u16; 6];
        let anomaly = ScoreMap::zeros(3, 2);
        assert!(extract_regions(&mut mask, &mut types, &anomaly, &classes(), 1).is_empty());
    }
}
