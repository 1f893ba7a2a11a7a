//! Greedy coreset subsampling (k-center), as PatchCore does it: starting from one row, repeatedly take the row
//! farthest from every row taken so far, so the subset covers the whole memory with few rows and rare patches
//! survive. Distances are Euclidean after a seeded Gaussian random projection to [`PROJECTION_DIM`] dimensions
//! (Johnson-Lindenstrauss: distances kept within a small factor), which makes each step cheap on wide features.
//!
//! Cost: `target` passes over all `n` projected rows (`n x target x 128` multiply-adds), plus one projection;
//! memory: the projected rows and one distance per row.

use rayon::prelude::*;

use crate::error::{ReferenceError, Result};
use crate::rng::SplitMix64;

/// Dimension of the random projection (PatchCore's); narrower features are used as they are.
pub const PROJECTION_DIM: usize = 128;

/// Rows of the projection matrix per parallel task of the distance updates.
const CHUNK_ROWS: usize = 2048;

/// The indices, ascending, of `target` rows of `points` (`[n, dim]` row-major) chosen greedily farthest-first
/// (fewer when the rows hold fewer distinct values). The first row is chosen by `seed`; the same inputs and seed
/// give the same subset on any machine and thread count. `target >= n` keeps every row.
pub fn greedy_coreset(points: &[f32], dim: usize, target: usize, seed: u64) -> Result<Vec<usize>> {
    if dim == 0 || !points.len().is_multiple_of(dim) {
        return Err(ReferenceError::shape("coreset points (whole rows)", format!("multiples of {dim}"), points.len()));
    }
    let n = points.len() / dim;
    if target >= n {
        return Ok((0..n).collect());
    }
    if target == 0 {
        return Err(ReferenceError::invalid("coreset size", "at least 1 row", 0));
    }
    let mut rng = SplitMix64::new(seed);
    let (projected, width) = project(points, dim, &mut rng);
    let mut nearest = vec![f32::INFINITY; n];
    let mut chosen = Vec::with_capacity(target);
    let mut next = (rng.next_u64() % n as u64) as usize;
    for _ in 0..target {
        chosen.push(next);
        nearest[next] = 0.0;
        let centre = &projected[next * width..(next + 1) * width];
        // Update every row's distance to the subset and find the farthest row, chunk by chunk in parallel; ties go
        // to the lowest index, whatever the chunking.
        let (farthest, far) = nearest
            .par_chunks_mut(CHUNK_ROWS)
            .zip(projected.par_chunks(CHUNK_ROWS * width))
            .enumerate()
            .map(|(c, (dist, rows))| {
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for (i, (d, row)) in dist.iter_mut().zip(rows.chunks(width)).enumerate() {
                    let e: f32 = row.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
                    if e < *d {
                        *d = e;
                    }
                    if *d > best.0 {
                        best = (*d, c * CHUNK_ROWS + i);
                    }
                }
                best
            })
            .reduce(
                || (f32::NEG_INFINITY, usize::MAX),
                |a, b| if b.0 > a.0 || (b.0 == a.0 && b.1 < a.1) { b } else { a },
            );
        if far == usize::MAX || farthest <= 0.0 {
            break; // Every row equals one already taken: the memory has fewer distinct rows than the target.
        }
        next = far;
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

/// `points` projected to [`PROJECTION_DIM`] dimensions by a seeded Gaussian matrix scaled by `1/sqrt(128)`, or
/// copied when they are not wider than that; with the width used.
fn project(points: &[f32], dim: usize, rng: &mut SplitMix64) -> (Vec<f32>, usize) {
    if dim <= PROJECTION_DIM {
        return (points.to_vec(), dim);
    }
    let k = PROJECTION_DIM;
    let scale = 1.0 / (k as f64).sqrt();
    let matrix: Vec<f32> = (0..dim * k).map(|_| (rng.next_gaussian() * scale) as f32).collect();
    let n = points.len() / dim;
    let mut out = vec![0.0f32; n * k];
    out.par_chunks_mut(CHUNK_ROWS * k).zip(points.par_chunks(CHUNK_ROWS * dim)).for_each(|(o, p)| {
        let rows = p.len() / dim;
        // SAFETY: A = p is rows x dim (row stride dim), B = matrix is dim x k (row stride k), C = o is rows x k
        // (row stride k); the slices hold exactly these elements, C aliases neither, beta = 0.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                dim,
                k,
                1.0,
                p.as_ptr(),
                dim as isize,
                1,
                matrix.as_ptr(),
                k as isize,
                1,
                0.0,
                o.as_mut_ptr(),
                k as isize,
                1,
            );
        }
    });
    (out, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_when_asked_for_as_many_rows() {
        let p = vec![0.0f32; 10 * 3];
        assert_eq!(greedy_coreset(&p, 3, 10, 0).unwrap(), (0..10).collect::<Vec<_>>());
        assert!(greedy_coreset(&p, 3, 0, 0).is_err());
        assert!(greedy_coreset(&p[..7], 3, 2, 0).is_err());
    }

    #[test]
    fn covers_every_cluster_before_adding_a_second_point_to_any() {
        // Four tight clusters far apart, 50 points each: a 4-point coreset takes one from each.
        let mut g = SplitMix64::new(3);
        let centres = [[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]];
        let mut p = Vec::new();
        for c in centres {
            for _ in 0..50 {
                p.push(c[0] + g.next_gaussian() as f32);
                p.push(c[1] + g.next_gaussian() as f32);
            }
        }
        let chosen = greedy_coreset(&p, 2, 4, 9).unwrap();
        let mut clusters: Vec<usize> = chosen.iter().map(|i| i / 50).collect();
        clusters.sort_unstable();
        assert_eq!(clusters, vec![0, 1, 2, 3]);
    }

    #[test]
    fn duplicates_stop_the_subset_early() {
        let p: Vec<f32> = (0..40).map(|i| (i % 4) as f32).collect(); // 20 rows of dim 2, 2 distinct values
        let chosen = greedy_coreset(&p, 2, 10, 0).unwrap();
        assert_eq!(chosen.len(), 2, "{chosen:?}");
    }

    #[test]
    fn deterministic_for_a_seed_and_thread_count_independent() {
        let mut g = SplitMix64::new(5);
        let dim = 200; // wider than the projection
        let p: Vec<f32> = (0..3000 * dim).map(|_| g.next_gaussian() as f32).collect();
        let a = greedy_coreset(&p, dim, 60, 11).unwrap();
        assert_eq!(a.len(), 60);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let b = pool.install(|| greedy_coreset(&p, dim, 60, 11).unwrap());
        assert_eq!(a, b);
        assert_ne!(a, greedy_coreset(&p, dim, 60, 12).unwrap(), "another seed starts elsewhere");
    }
}
