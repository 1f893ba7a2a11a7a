//! Separable Gaussian smoothing with scipy's defaults (`truncate = 4`, border mode `reflect`: `d c b a | a b c d`),
//! which the CLIP anomaly detectors (AnomalyCLIP, AdaCLIP, Crane) apply with sigma 4.

/// Normalised 1-D kernel of radius `ceil(4 sigma)`.
pub fn kernel(sigma: f32) -> Vec<f32> {
    let radius = (4.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-radius..=radius).map(|x| (-(x * x) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// Index `i` reflected into `0..n` (edge pixel repeated), repeating for kernels wider than the image.
fn reflect(mut i: isize, n: isize) -> usize {
    loop {
        if i < 0 {
            i = -i - 1;
        } else if i >= n {
            i = 2 * n - i - 1;
        } else {
            return i as usize;
        }
    }
}

/// Smooths a `width x height` map in place; `sigma <= 0` leaves it unchanged.
pub fn gaussian(data: &mut [f32], width: usize, height: usize, sigma: f32) {
    if sigma <= 0.0 || data.is_empty() {
        return;
    }
    let k = kernel(sigma);
    let r = (k.len() / 2) as isize;
    let mut tmp = vec![0.0f32; data.len()];
    for y in 0..height {
        let row = &data[y * width..(y + 1) * width];
        for x in 0..width {
            tmp[y * width + x] =
                k.iter().enumerate().map(|(j, w)| w * row[reflect(x as isize + j as isize - r, width as isize)]).sum();
        }
    }
    for y in 0..height {
        for x in 0..width {
            data[y * width + x] = k
                .iter()
                .enumerate()
                .map(|(j, w)| w * tmp[reflect(y as isize + j as isize - r, height as isize) * width + x])
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_normalised_symmetric_and_truncated_at_four_sigma() {
        let k = kernel(1.0);
        assert_eq!(k.len(), 9);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(k[0], k[8]);
        assert!(k[4] > k[3]);
    }

    #[test]
    fn reflect_repeats_the_edge() {
        assert_eq!(reflect(-1, 4), 0);
        assert_eq!(reflect(-2, 4), 1);
        assert_eq!(reflect(4, 4), 3);
        assert_eq!(reflect(9, 4), 1);
    }

    #[test]
    fn constant_maps_stay_constant_and_mass_is_kept_away_from_edges() {
        let mut flat = vec![2.0f32; 5 * 3];
        gaussian(&mut flat, 5, 3, 3.0);
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-5));
        let mut spike = vec![0.0f32; 21 * 21];
        spike[10 * 21 + 10] = 1.0;
        gaussian(&mut spike, 21, 21, 1.5);
        assert!((spike.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(spike[10 * 21 + 10] < 0.2);
    }
}
