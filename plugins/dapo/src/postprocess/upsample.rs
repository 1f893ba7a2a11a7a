//! Bilinear upsampling with `align_corners = true` (as `torch.nn.functional.interpolate` does): output pixel 0 and
//! the last output pixel sample exactly the first and last grid cells.

/// Per output coordinate: the two source indices and the weight of the second.
#[derive(Clone, Debug)]
pub struct Axis {
    taps: Vec<(usize, usize, f32)>,
}

impl Axis {
    /// Sampling positions of `out` pixels over `input` cells.
    pub fn new(input: usize, out: usize) -> Self {
        let scale = if out > 1 { (input as f32 - 1.0) / (out as f32 - 1.0) } else { 0.0 };
        let taps = (0..out)
            .map(|o| {
                let src = o as f32 * scale;
                let i0 = (src.floor() as usize).min(input - 1);
                let i1 = (i0 + 1).min(input - 1);
                (i0, i1, src - i0 as f32)
            })
            .collect();
        Self { taps }
    }

    /// Per output coordinate: the two source indices and the weight of the second (the GPU kernels use them as
    /// they are, so both paths sample the same positions).
    pub fn taps(&self) -> &[(usize, usize, f32)] {
        &self.taps
    }
}

/// A bilinear sampler from a `grid_w x grid_h` grid to a `width x height` map.
#[derive(Clone, Debug)]
pub struct Bilinear {
    xs: Axis,
    ys: Axis,
    grid_w: usize,
}

impl Bilinear {
    /// Plans upsampling from the grid to the output size.
    pub fn new(grid_w: usize, grid_h: usize, width: usize, height: usize) -> Self {
        Self { xs: Axis::new(grid_w, width), ys: Axis::new(grid_h, height), grid_w }
    }

    /// Sampling positions along x (output columns) and y (output rows).
    pub fn axes(&self) -> (&Axis, &Axis) {
        (&self.xs, &self.ys)
    }

    /// The value at output pixel `(x, y)` of `grid` (row-major, `grid_w` wide).
    #[inline]
    pub fn sample(&self, grid: &[f32], x: usize, y: usize) -> f32 {
        let (x0, x1, wx) = self.xs.taps[x];
        let (y0, y1, wy) = self.ys.taps[y];
        let row0 = &grid[y0 * self.grid_w..];
        let row1 = &grid[y1 * self.grid_w..];
        let top = row0[x0] + (row0[x1] - row0[x0]) * wx;
        let bottom = row1[x0] + (row1[x1] - row1[x0]) * wx;
        top + (bottom - top) * wy
    }

    /// Upsamples a whole grid.
    pub fn apply(&self, grid: &[f32]) -> Vec<f32> {
        let (w, h) = (self.xs.taps.len(), self.ys.taps.len());
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                out.push(self.sample(grid, x, y));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corners_are_exact_and_midpoints_interpolate() {
        // 2x2 grid -> 3x3: the centre is the mean of the four cells.
        let grid = [0.0, 1.0, 2.0, 3.0];
        let up = Bilinear::new(2, 2, 3, 3).apply(&grid);
        assert_eq!(up, vec![0.0, 0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 2.5, 3.0]);
    }

    #[test]
    fn same_size_is_identity_and_single_pixel_takes_the_first_cell() {
        let grid: Vec<f32> = (0..12).map(|i| i as f32).collect();
        assert_eq!(Bilinear::new(4, 3, 4, 3).apply(&grid), grid);
        assert_eq!(Bilinear::new(4, 3, 1, 1).apply(&grid), vec![0.0]);
    }
}
