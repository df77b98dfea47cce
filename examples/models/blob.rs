//! A 2-D Gaussian blob on a 32 × 32 image with pixel noise: the blob's position, width and
//! brightness are the parameters (the image example, with a CNN embedding).

use rand_distr::StandardNormal;
use sbi_runtime::prelude::*;

/// Image side in pixels.
pub const SIDE: usize = 32;
/// Pixel noise standard deviation.
pub const NOISE: f64 = 0.1;

/// Pixel (row i, column j) = brightness · exp(−((j − x)² + (i − y)²) / (2 width²)) + noise.
#[simulator]
pub fn blob(rng: &mut impl Rng) -> [[f64; SIDE]; SIDE] {
    let x = sample!(Uniform(8.0, 24.0));
    let y = sample!(Uniform(8.0, 24.0));
    let width = sample!(Uniform(1.5, 4.0));
    let brightness = sample!(Uniform(0.5, 2.0));
    let mut image = [[0.0; SIDE]; SIDE];
    for (i, row) in image.iter_mut().enumerate() {
        for (j, pixel) in row.iter_mut().enumerate() {
            let r2 = (j as f64 - x).powi(2) + (i as f64 - y).powi(2);
            *pixel = brightness * (-r2 / (2.0 * width * width)).exp() + NOISE * rng.sample::<f64, _>(StandardNormal);
        }
    }
    image
}
