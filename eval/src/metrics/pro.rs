//! Per-region overlap (PRO) and AUPRO, as the MVTec AD evaluation code computes them.
//!
//! Each ground-truth region is an 8-connected component of a mask (scipy's `label` with a 3x3 structure). At a
//! threshold, a region's overlap is the fraction of its pixels scoring at or above it; PRO is the mean overlap over
//! every region of every image, and the FPR is the fraction of all defect-free pixels (of every image, good ones
//! included) at or above it. The curve has one point per distinct score (the exact curve, not a few hundred
//! sampled thresholds), starts at (0, 0) and ends at (1, 1). AUPRO is its area up to an FPR limit (the trapezoid
//! rule, the last segment interpolated linearly at the limit), divided by the limit; the field's limit is 0.3.

use super::histogram::BinnedScores;
use super::{MetricError, MetricResult, check_finite};

/// The field's FPR integration limit.
pub const DEFAULT_FPR_LIMIT: f64 = 0.3;

/// One image's anomaly map and ground-truth mask, both row-major and of the same size.
#[derive(Clone, Copy, Debug)]
pub struct MapAndMask<'a> {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Anomaly scores, `width * height`.
    pub scores: &'a [f32],
    /// Ground truth, `true` = defect, `width * height`.
    pub mask: &'a [bool],
}

impl MapAndMask<'_> {
    fn check(&self, what: &str) -> MetricResult<()> {
        let n = self.width * self.height;
        if self.scores.len() != n {
            return Err(MetricError::mismatch(
                &format!("{what}: anomaly map values"),
                format!("{n} ({}x{})", self.width, self.height),
                self.scores.len(),
            ));
        }
        if self.mask.len() != n {
            return Err(MetricError::mismatch(
                &format!("{what}: mask pixels"),
                format!("{n} ({}x{})", self.width, self.height),
                self.mask.len(),
            ));
        }
        check_finite(what, self.scores)
    }
}

/// Labels the 8-connected regions of `mask`: one label per pixel (0 outside, `k` in the k-th region in scan order
/// of its first pixel) and the size of each region.
pub fn label_regions(mask: &[bool], width: usize, height: usize) -> (Vec<u32>, Vec<u64>) {
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len().min(width * height) {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32 + 1;
        labels[start] = label;
        stack.push(start);
        let mut size = 0u64;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % width, i / width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let j = ny * width + nx;
                    if mask[j] && labels[j] == 0 {
                        labels[j] = label;
                        stack.push(j);
                    }
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

/// A PRO curve: `(FPR, PRO)` points with non-decreasing FPR, from (0, 0) to (1, 1).
#[derive(Clone, Debug, PartialEq)]
pub struct ProCurve {
    fpr: Vec<f64>,
    pro: Vec<f64>,
}

impl ProCurve {
    /// The exact curve of a set of images: every distinct score is a threshold. Keeps all pixels in memory
    /// (16 bytes each); for large sets use [`PixelAccumulator`]. Needs a ground-truth region and a defect-free
    /// pixel.
    pub fn exact(images: &[MapAndMask<'_>]) -> MetricResult<Self> {
        let total: usize = images.iter().map(|m| m.width * m.height).sum();
        // (score, defect-free?, PRO weight)
        let mut pixels: Vec<(f32, bool, f64)> = Vec::with_capacity(total);
        let mut regions = 0u64;
        for (k, image) in images.iter().enumerate() {
            image.check(&format!("image {k}"))?;
            let (labels, sizes) = label_regions(image.mask, image.width, image.height);
            regions += sizes.len() as u64;
            pixels.extend(image.scores.iter().zip(&labels).map(|(&s, &l)| match l {
                0 => (s, true, 0.0),
                l => (s, false, 1.0 / sizes[l as usize - 1] as f64),
            }));
        }
        let ok = pixels.iter().filter(|p| p.1).count() as u64;
        let in_regions = pixels.len() as u64 - ok;
        need_regions_and_ok(in_regions, ok)?;
        pixels.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let mut groups = Vec::new();
        let (mut fp, mut pro) = (0u64, 0.0f64);
        for (i, &(score, is_ok, weight)) in pixels.iter().enumerate() {
            fp += u64::from(is_ok);
            pro += weight;
            if pixels.get(i + 1).is_none_or(|next| next.0 != score) {
                groups.push((fp, pro));
            }
        }
        Ok(Self::from_cumulative(&groups, ok, regions))
    }

    /// A curve from cumulative `(defect-free pixels, summed region weights)` at each threshold, highest first.
    fn from_cumulative(points: &[(u64, f64)], ok: u64, regions: u64) -> Self {
        let mut fpr = Vec::with_capacity(points.len() + 2);
        let mut pro = Vec::with_capacity(points.len() + 2);
        fpr.push(0.0);
        pro.push(0.0);
        for &(fp, weight) in points {
            // As the reference: keep accumulated rounding from passing 1.
            fpr.push((fp as f64 / ok as f64).min(1.0));
            pro.push((weight / regions as f64).min(1.0));
        }
        fpr.push(1.0);
        pro.push(1.0);
        Self { fpr, pro }
    }

    /// The points `(FPR, PRO)`.
    pub fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.fpr.iter().copied().zip(self.pro.iter().copied())
    }

    /// Area under the curve for FPR in `[0, limit]`: trapezoids up to the last point at or below the limit, plus
    /// the segment to the limit with PRO interpolated linearly there. `limit` must be in (0, 1].
    pub fn area_to(&self, limit: f64) -> MetricResult<f64> {
        if !(limit > 0.0 && limit <= 1.0) {
            return Err(MetricError::invalid("FPR limit", "a number in (0, 1]", limit));
        }
        let (x, y) = (&self.fpr, &self.pro);
        let inside = x.partition_point(|&v| v <= limit);
        let mut area = 0.0f64;
        for i in 1..inside {
            area += 0.5 * (y[i] + y[i - 1]) * (x[i] - x[i - 1]);
        }
        if inside < x.len() && x[inside - 1] != limit {
            let (x0, x1, y0, y1) = (x[inside - 1], x[inside], y[inside - 1], y[inside]);
            let y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0);
            area += 0.5 * (y_limit + y0) * (limit - x0);
        }
        Ok(area)
    }

    /// AUPRO: [`ProCurve::area_to`] divided by the limit (so that a perfect detector scores 1).
    pub fn au_pro(&self, limit: f64) -> MetricResult<f64> {
        Ok(self.area_to(limit)? / limit)
    }
}

fn need_regions_and_ok(in_regions: u64, ok: u64) -> MetricResult<()> {
    if in_regions == 0 || ok == 0 {
        return Err(MetricError::one_class("AUPRO", in_regions, ok, "a ground-truth region and a defect-free pixel"));
    }
    Ok(())
}

/// Bounded-memory pixel metrics of a data set: binned positive/negative counts ([`BinnedScores`]) plus, per bin,
/// the summed PRO weights (`1 / region size` of each region pixel). Memory: 24 bytes per bin.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelAccumulator {
    scores: BinnedScores,
    pro: Vec<f64>,
    regions: u64,
}

impl PixelAccumulator {
    /// An empty accumulator over the score range `[lo, hi]` in `bins` bins.
    pub fn new(lo: f32, hi: f32, bins: usize) -> MetricResult<Self> {
        Ok(Self { scores: BinnedScores::new(lo, hi, bins)?, pro: vec![0.0; bins], regions: 0 })
    }

    /// Adds one image's map and mask; `what` names it in errors. Nothing is added when the sizes disagree or a
    /// score is NaN or infinite.
    pub fn add_image(&mut self, what: &str, image: &MapAndMask<'_>) -> MetricResult<()> {
        image.check(what)?;
        let (labels, sizes) = label_regions(image.mask, image.width, image.height);
        for (&s, &l) in image.scores.iter().zip(&labels) {
            let b = self.scores.add_one(s, l != 0);
            if l != 0 {
                self.pro[b] += 1.0 / sizes[l as usize - 1] as f64;
            }
        }
        self.regions += sizes.len() as u64;
        Ok(())
    }

    /// Adds another accumulator's counts (same range and bins).
    pub fn merge(&mut self, other: &Self) -> MetricResult<()> {
        self.scores.merge(&other.scores)?;
        self.pro.iter_mut().zip(&other.pro).for_each(|(a, b)| *a += b);
        self.regions += other.regions;
        Ok(())
    }

    /// The pixel counts (AUROC, AP, F1-max through [`BinnedScores::ranked_counts`]).
    pub fn scores(&self) -> &BinnedScores {
        &self.scores
    }

    /// Ground-truth regions seen.
    pub fn regions(&self) -> u64 {
        self.regions
    }

    /// The PRO curve at the non-empty bins' lower edges: each of its points lies on the exact curve.
    pub fn pro_curve(&self) -> MetricResult<ProCurve> {
        let ok = self.scores.negatives();
        need_regions_and_ok(self.scores.positives(), ok)?;
        let (mut fp, mut weight) = (0u64, 0.0f64);
        let mut points = Vec::new();
        for (b, _, n) in self.scores.descending() {
            fp += n;
            weight += self.pro[b];
            points.push((fp, weight));
        }
        Ok(ProCurve::from_cumulative(&points, ok, self.regions))
    }

    /// Bound on `|AUPRO_binned - AUPRO_exact|` at `limit`: between two binned points the exact curve is monotone
    /// inside the box they span, so a full segment can be off by half the box's area, the segment cut at the
    /// limit by its whole clipped area; summed and divided by the limit.
    pub fn aupro_error_bound(&self, limit: f64) -> MetricResult<f64> {
        let curve = self.pro_curve()?;
        let mut bound = 0.0f64;
        let pts: Vec<(f64, f64)> = curve.points().collect();
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            if x0 >= limit {
                break;
            }
            bound += if x1 <= limit { 0.5 * (x1 - x0) * (y1 - y0) } else { (limit - x0) * (y1 - y0) };
        }
        Ok(bound / limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_eight_connected() {
        #[rustfmt::skip]
        let mask = [
            true, false, false, true,
            false, true, false, true,
            false, false, false, false,
            true, true, false, false,
        ];
        let (labels, sizes) = label_regions(&mask, 4, 4);
        assert_eq!(sizes, vec![2, 2, 2], "diagonal neighbours join, the three groups stay apart");
        assert_eq!(labels[0], labels[5]);
        assert_ne!(labels[0], labels[3]);
    }

    #[test]
    fn hand_computed_curve() {
        // One image 1x4: pixels 0,1 form one region; 2,3 defect-free. Scores 4, 2, 3, 1.
        let img = MapAndMask { width: 4, height: 1, scores: &[4.0, 2.0, 3.0, 1.0], mask: &[true, true, false, false] };
        let c = ProCurve::exact(&[img]).unwrap();
        let pts: Vec<(f64, f64)> = c.points().collect();
        assert_eq!(pts, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0), (1.0, 1.0)]);
        // Up to FPR 0.3: PRO is 0.5 from 0 to 0.3.
        assert!((c.au_pro(0.3).unwrap() - 0.5).abs() < 1e-12);
        assert!((c.area_to(1.0).unwrap() - 0.75).abs() < 1e-12);
        assert!(c.au_pro(0.0).is_err());
    }

    #[test]
    fn each_region_weighs_the_same_whatever_its_size() {
        // A 1-pixel region found first, a 3-pixel region last: PRO 0.5 up to FPR 1.
        let img = MapAndMask {
            width: 6,
            height: 1,
            scores: &[9.0, 0.6, 0.2, 0.2, 0.2, 0.5],
            mask: &[true, false, true, true, true, false],
        };
        let c = ProCurve::exact(&[img]).unwrap();
        assert!((c.au_pro(0.3).unwrap() - 0.5).abs() < 1e-12);
        let mut acc = PixelAccumulator::new(0.0, 10.0, 100).unwrap();
        acc.add_image("img", &img).unwrap();
        assert_eq!(acc.regions(), 2);
        assert!((acc.pro_curve().unwrap().au_pro(0.3).unwrap() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn no_region_or_no_defect_free_pixel_is_an_error() {
        let none = MapAndMask { width: 2, height: 1, scores: &[0.1, 0.2], mask: &[false, false] };
        assert!(matches!(ProCurve::exact(&[none]), Err(MetricError::OneClass { .. })));
        let all = MapAndMask { width: 2, height: 1, scores: &[0.1, 0.2], mask: &[true, true] };
        assert!(ProCurve::exact(&[all]).is_err());
        let bad = MapAndMask { width: 3, height: 1, scores: &[0.1, 0.2], mask: &[true, true] };
        assert!(matches!(ProCurve::exact(&[bad]), Err(MetricError::Mismatch { .. })));
        let mut acc = PixelAccumulator::new(0.0, 1.0, 4).unwrap();
        acc.add_image("good", &none).unwrap();
        assert!(acc.pro_curve().is_err());
    }

    #[test]
    fn binned_aupro_within_its_bound() {
        let mut seed = 3u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 40) as f32 / (1u64 << 24) as f32
        };
        let (w, h) = (24usize, 24usize);
        let mut maps = Vec::new();
        let mut masks = Vec::new();
        for k in 0..4 {
            let mask: Vec<bool> = (0..w * h)
                .map(|i| {
                    let (x, y) = (i % w, i / w);
                    k > 0 && x.abs_diff(4 * k) < 3 && y.abs_diff(6 + 2 * k) < 2 + k
                })
                .collect();
            let map: Vec<f32> = mask.iter().map(|&m| next() * 0.7 + if m { 0.3 } else { 0.0 }).collect();
            maps.push(map);
            masks.push(mask);
        }
        let views: Vec<MapAndMask> =
            (0..4).map(|k| MapAndMask { width: w, height: h, scores: &maps[k], mask: &masks[k] }).collect();
        let exact = ProCurve::exact(&views).unwrap().au_pro(0.3).unwrap();
        for bins in [8usize, 64, 4096] {
            let mut acc = PixelAccumulator::new(0.0, 1.0, bins).unwrap();
            for (k, v) in views.iter().enumerate() {
                acc.add_image(&format!("image {k}"), v).unwrap();
            }
            let binned = acc.pro_curve().unwrap().au_pro(0.3).unwrap();
            let bound = acc.aupro_error_bound(0.3).unwrap();
            assert!((binned - exact).abs() <= bound + 1e-12, "bins {bins}: {binned} vs {exact}, bound {bound}");
        }
    }
}
