//! Order statistics used to put raw distances on a scale.

/// The `q`-quantile of `values` (`0 <= q <= 1`), by the nearest-rank rule on the sorted values: the value at index
/// `ceil(q n) - 1` (the smallest for `q = 0`). `None` for an empty slice. NaN values sort last.
pub fn quantile(values: &[f32], q: f32) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let rank = ((q.clamp(0.0, 1.0) * n as f32).ceil() as usize).clamp(1, n) - 1;
    let mut v = values.to_vec();
    let (_, x, _) = v.select_nth_unstable_by(rank, |a, b| a.total_cmp(b));
    Some(*x)
}

/// The median over groups of each group's `q`-quantile (the median of the upper middle for an even count): a
/// scale of the upper tail of normal scores that a minority of unusual groups (a defective image in a mutual
/// pool, a bad reference) cannot move much. `None` when no group has a value.
pub fn median_of_quantiles<'a>(groups: impl IntoIterator<Item = &'a [f32]>, q: f32) -> Option<f32> {
    let tails: Vec<f32> = groups.into_iter().filter_map(|g| quantile(g, q)).collect();
    quantile(&tails, 0.5)
}

/// The mean of the largest `fraction` of `values` (at least one value); 0 for an empty slice. The image-level
/// summary of a patch-score map: the maximum for small maps, a little less noisy than it on large ones.
pub fn top_mean(values: &[f32], fraction: f32) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let k = ((fraction.clamp(0.0, 1.0) * values.len() as f32).floor() as usize).max(1);
    let mut v = values.to_vec();
    let split = v.len() - k;
    v.select_nth_unstable_by(split, |a, b| a.total_cmp(b));
    v[split..].iter().sum::<f32>() / k as f32
}

/// The mean of the smallest `k` values of `values` (`1 <= k <= len`), reordering `values`.
pub fn lowest_mean(values: &mut [f32], k: usize) -> f32 {
    let k = k.clamp(1, values.len().max(1));
    if values.is_empty() {
        return 0.0;
    }
    if k < values.len() {
        values.select_nth_unstable_by(k - 1, |a, b| a.total_cmp(b));
    }
    values[..k].iter().sum::<f32>() / k as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_by_nearest_rank() {
        let v: Vec<f32> = (1..=100).rev().map(|i| i as f32).collect();
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn median_of_quantiles_ignores_a_minority_of_wild_groups() {
        let normal: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let wild = vec![50.0f32; 100];
        let groups = [normal.as_slice(), normal.as_slice(), wild.as_slice()];
        assert_eq!(median_of_quantiles(groups, 0.99), Some(0.98));
        assert_eq!(median_of_quantiles(std::iter::empty::<&[f32]>(), 0.99), None);
    }

    #[test]
    fn top_and_lowest_means() {
        let v: Vec<f32> = (0..200).map(|i| i as f32).collect();
        assert_eq!(top_mean(&v, 0.01), 198.5);
        assert_eq!(top_mean(&v[..10], 0.01), 9.0, "at least one value: the maximum");
        let mut w = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(lowest_mean(&mut w, 2), 1.5);
        assert_eq!(lowest_mean(&mut w, 9), 3.0, "k is capped at the length");
    }
}
