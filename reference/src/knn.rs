//! Exact nearest-neighbour search by inner product (the cosine, on L2-normalised rows) as blocked matrix
//! products.
//!
//! The work is cut into tiles of at most [`QUERY_BLOCK`] query rows against at most [`MEMORY_CHUNK`] memory rows
//! of one group; a tile multiplies its blocks [`MEMORY_BLOCK`] columns at a time with matrixmultiply's SGEMM into
//! a buffer of its own (`QUERY_BLOCK x MEMORY_BLOCK` floats, 1 MiB) and keeps the largest product per query row.
//! Tiles run on rayon's pool (all cores unless `RAYON_NUM_THREADS` says otherwise) and their maxima are merged
//! with `max`, which does not depend on the order: results are the same on any number of threads.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{ReferenceError, Result};

/// Query rows per tile.
pub const QUERY_BLOCK: usize = 256;
/// Memory rows per matrix product inside a tile.
pub const MEMORY_BLOCK: usize = 1024;
/// Memory rows per tile at most (a larger group is split over several tiles, so one big memory keeps every core
/// busy).
pub const MEMORY_CHUNK: usize = 4 * MEMORY_BLOCK;

/// For each query row and each group of memory rows, the largest inner product `q . m` over the group's rows:
/// `[queries, groups]`, row-major. `queries` is `[nq, dim]`, `memory` `[nm, dim]`, row-major; each group is a
/// range of memory rows. An empty group gives `f32::NEG_INFINITY`.
pub fn group_maxima(queries: &[f32], memory: &[f32], dim: usize, groups: &[Range<usize>]) -> Result<Vec<f32>> {
    if dim == 0 || !queries.len().is_multiple_of(dim) || !memory.len().is_multiple_of(dim) {
        return Err(ReferenceError::shape(
            "query and memory rows (whole rows of the feature dimension)",
            format!("multiples of {dim}"),
            format!("{} and {} values", queries.len(), memory.len()),
        ));
    }
    let (nq, nm) = (queries.len() / dim, memory.len() / dim);
    if let Some(g) = groups.iter().find(|g| g.start > g.end || g.end > nm) {
        return Err(ReferenceError::shape("memory group", format!("a range within 0..{nm}"), format!("{g:?}")));
    }
    let ng = groups.len();
    let mut out = vec![f32::NEG_INFINITY; nq * ng];
    if nq == 0 || ng == 0 {
        return Ok(out);
    }
    // Tiles: (query block, group, memory chunk of the group).
    let mut tiles = Vec::new();
    for q0 in (0..nq).step_by(QUERY_BLOCK) {
        let q = q0..(q0 + QUERY_BLOCK).min(nq);
        for (g, range) in groups.iter().enumerate() {
            for m0 in (range.start..range.end).step_by(MEMORY_CHUNK) {
                tiles.push((q.clone(), g, m0..(m0 + MEMORY_CHUNK).min(range.end)));
            }
        }
    }
    let maxima: Vec<Vec<f32>> = tiles
        .par_iter()
        .map_init(
            || vec![0.0f32; QUERY_BLOCK * MEMORY_BLOCK],
            |buf, (q, _, m)| {
                tile_maxima(&queries[q.start * dim..q.end * dim], &memory[m.start * dim..m.end * dim], dim, buf)
            },
        )
        .collect();
    for ((q, g, _), tile) in tiles.iter().zip(maxima) {
        for (i, v) in q.clone().zip(tile) {
            let slot = &mut out[i * ng + g];
            *slot = slot.max(v);
        }
    }
    Ok(out)
}

/// For each query row, the largest inner product with any memory row (`f32::NEG_INFINITY` for an empty memory).
pub fn max_inner_products(queries: &[f32], memory: &[f32], dim: usize) -> Result<Vec<f32>> {
    let nm = memory.len().checked_div(dim).unwrap_or(0);
    group_maxima(queries, memory, dim, std::slice::from_ref(&(0..nm)))
}

/// The largest `q . m` per query row of one tile, `[rows of q]`.
fn tile_maxima(q: &[f32], m: &[f32], dim: usize, buf: &mut [f32]) -> Vec<f32> {
    let nq = q.len() / dim;
    let mut best = vec![f32::NEG_INFINITY; nq];
    for block in m.chunks(MEMORY_BLOCK * dim) {
        let nb = block.len() / dim;
        let c = &mut buf[..nq * nb];
        // SAFETY: A = q is nq x dim (row stride dim), B = block^T is dim x nb (block is nb x dim row-major, so
        // B's row stride is 1 and column stride dim), C = c is nq x nb (row stride nb); all three slices hold
        // exactly these elements and C does not alias A or B. beta = 0, so C's old contents are not read.
        unsafe {
            matrixmultiply::sgemm(
                nq,
                dim,
                nb,
                1.0,
                q.as_ptr(),
                dim as isize,
                1,
                block.as_ptr(),
                1,
                dim as isize,
                0.0,
                c.as_mut_ptr(),
                nb as isize,
                1,
            );
        }
        for (b, row) in best.iter_mut().zip(c.chunks(nb)) {
            *b = b.max(row_max(row));
        }
    }
    best
}

/// The largest value of a row, in eight lanes so the compiler vectorises it.
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l = l.max(*v);
        }
    }
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    lanes.into_iter().fold(tail, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut g = SplitMix64::new(seed);
        (0..n * dim).map(|_| g.next_gaussian() as f32).collect()
    }

    /// The plain double loop the blocked search must equal.
    fn naive(q: &[f32], m: &[f32], dim: usize, groups: &[Range<usize>]) -> Vec<f32> {
        let mut out = Vec::new();
        for qi in q.chunks(dim) {
            for g in groups {
                let best = m[g.start * dim..g.end * dim]
                    .chunks(dim)
                    .map(|mi| qi.iter().zip(mi).map(|(a, b)| a * b).sum::<f32>())
                    .fold(f32::NEG_INFINITY, f32::max);
                out.push(best);
            }
        }
        out
    }

    #[test]
    fn blocked_search_equals_the_double_loop_across_block_edges() {
        let dim = 13;
        // More rows than one query block and one memory chunk, so tiles split and merge.
        let q = random_rows(QUERY_BLOCK + 7, dim, 1);
        let m = random_rows(MEMORY_CHUNK + MEMORY_BLOCK + 3, dim, 2);
        let nm = m.len() / dim;
        let groups = vec![0..5, 5..5, 5..MEMORY_CHUNK + 10, MEMORY_CHUNK + 10..nm];
        let got = group_maxima(&q, &m, dim, &groups).unwrap();
        let want = naive(&q, &m, dim, &groups);
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            if b.is_infinite() {
                assert_eq!(a, b, "empty group at {i}");
            } else {
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{i}: {a} vs {b}");
            }
        }
        let all = max_inner_products(&q, &m, dim).unwrap();
        let want_all = naive(&q, &m, dim, std::slice::from_ref(&(0..nm)));
        assert!(all.iter().zip(&want_all).all(|(a, b)| (a - b).abs() <= 1e-4 * b.abs().max(1.0)));
    }

    #[test]
    fn same_result_on_one_thread_and_on_many() {
        let dim = 32;
        let q = random_rows(300, dim, 3);
        let m = random_rows(9000, dim, 4);
        let many = max_inner_products(&q, &m, dim).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let one = pool.install(|| max_inner_products(&q, &m, dim).unwrap());
        assert_eq!(one, many);
    }

    #[test]
    fn ragged_buffers_and_bad_groups_are_refused() {
        assert!(group_maxima(&[1.0; 5], &[1.0; 4], 2, std::slice::from_ref(&(0..2))).is_err());
        let err = group_maxima(&[1.0; 4], &[1.0; 4], 2, std::slice::from_ref(&(0..3))).unwrap_err().to_string();
        assert!(err.contains("0..3") && err.contains("0..2"), "{err}");
        assert!(group_maxima(&[], &[1.0; 4], 0, &[]).is_err());
    }

    #[test]
    fn row_max_handles_any_length() {
        for n in [1, 7, 8, 9, 33] {
            let row: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            assert_eq!(row_max(&row), row.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        }
    }
}
