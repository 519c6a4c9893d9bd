//! The Fréchet distance between two point sets (rows = points): the squared 2-Wasserstein
//! distance between the Gaussians with the sets' means and covariances (Dowson and Landau, 1982),
//! as FID computes it in an Inception network's features (Heusel et al., 2017); here it is
//! computed in the features of [`crate::verify::classifier::Classifier`] or any other.
//!
//! ```text
//! FD = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})
//! ```
//!
//! # The trace of the matrix square root
//! S_a S_b is not symmetric, but it is similar to M = S_a^{1/2} S_b S_a^{1/2}
//! (S_a S_b = S_a^{1/2} M S_a^{-1/2} where S_a is invertible, and by continuity otherwise), which
//! is symmetric positive semi-definite; so the eigenvalues of S_a S_b are those of M, real and
//! >= 0, and
//!
//! ```text
//! tr (S_a S_b)^{1/2} = sum_i sqrt(l_i(M))
//! ```
//!
//! computed with two symmetric eigen-decompositions ([`crate::linalg::eigen`]): S_a^{1/2} =
//! V diag(sqrt l) V^T from S_a's, then M's eigenvalues.
//!
//! A covariance of rank r < d (fewer points than dimensions, a constant feature) has d - r zero
//! eigenvalues, which rounding turns into values of size eps |S|; their square roots,
//! sqrt(eps |S|) ~ 1e-8 sqrt|S|, would each add that much to the trace. So in both
//! decompositions eigenvalues below the rank tolerance d eps max_i |l_i| (numpy's
//! `matrix_rank` default) count as 0: rank-deficient covariances are then as accurate as full
//! ones, with no regularising epsilon added to the diagonal as the usual FID code does. A true
//! eigenvalue below that tolerance changes the trace by at most its square root.
//!
//! # Estimates from points
//! [`moments`] takes the sample mean and the unbiased covariance (divided by n - 1, as numpy's
//! `cov`); the FD of two sample sets is biased upward by about (tr S_a / n_a + tr S_b / n_b) in
//! the mean term alone, so compare values at equal set sizes. A negative rounding residue (of
//! size eps (tr S_a + tr S_b)) is clamped to 0. Any non-finite input value makes the result NaN.

use crate::linalg::eigen::symmetric_eigen;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// The first two moments of a point set (or of a Gaussian).
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    /// mu, of d entries.
    pub mean: Array1<f64>,
    /// S [d, d], symmetric positive semi-definite.
    pub covariance: Array2<f64>,
}

/// The sample mean (1/n) sum_i x_i and the unbiased covariance
/// (1/(n - 1)) sum_i (x_i - mu)(x_i - mu)^T of the rows of `points`.
///
/// # Panics
/// If there are fewer than 2 rows or no columns.
pub fn moments(points: ArrayView2<f64>) -> Moments {
    let (n, d) = points.dim();
    assert!(
        n >= 2 && d >= 1,
        "moments: need at least 2 points of at least 1 dimension, got {:?}",
        (n, d)
    );
    let mean = points.mean_axis(Axis(0)).expect("n >= 2");
    let centred = &points - &mean.view().insert_axis(Axis(0));
    let mut covariance = centred.t().dot(&centred) / (n - 1) as f64;
    // Exactly symmetric (the GEMM may round the two triangles differently).
    for i in 0..d {
        for j in 0..i {
            let s = 0.5 * (covariance[[i, j]] + covariance[[j, i]]);
            covariance[[i, j]] = s;
            covariance[[j, i]] = s;
        }
    }
    Moments { mean, covariance }
}

/// tr (S_a S_b)^{1/2} = sum_i sqrt(l_i(S_a^{1/2} S_b S_a^{1/2})) (module documentation).
///
/// # Panics
/// If the matrices are not square of one size, or have a non-finite element.
pub fn trace_sqrt_product(s_a: ArrayView2<f64>, s_b: ArrayView2<f64>) -> f64 {
    assert_eq!(
        s_a.dim(),
        s_b.dim(),
        "trace_sqrt_product: covariances of shapes {:?} and {:?}",
        s_a.dim(),
        s_b.dim()
    );
    let e_a = symmetric_eigen(s_a);
    let floor_a = rank_tolerance(&e_a.values);
    let root_a = e_a.map_values(|l| if l > floor_a { l.sqrt() } else { 0.0 });
    let m = root_a.dot(&s_b).dot(&root_a);
    let e_m = symmetric_eigen(m.view());
    let floor_m = rank_tolerance(&e_m.values);
    e_m.values
        .iter()
        .map(|&l| if l > floor_m { l.sqrt() } else { 0.0 })
        .sum()
}

/// d eps max_i |l_i|: eigenvalues at or below it are rounding (module documentation).
fn rank_tolerance(values: &[f64]) -> f64 {
    let largest = values.iter().fold(0.0f64, |m, l| m.max(l.abs()));
    values.len() as f64 * f64::EPSILON * largest
}

/// The Fréchet distance between N(mu_a, S_a) and N(mu_b, S_b):
/// |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2}), clamped at 0; NaN if any input is not
/// finite.
///
/// # Panics
/// If the dimensions differ.
pub fn frechet_distance_gaussians(a: &Moments, b: &Moments) -> f64 {
    let d = a.mean.len();
    for (what, m) in [("a", a), ("b", b)] {
        assert!(
            m.mean.len() == d && m.covariance.dim() == (d, d),
            "frechet_distance: moments {what} have mean [{}] and covariance {:?}, the first mean is [{d}]",
            m.mean.len(),
            m.covariance.dim()
        );
    }
    let finite = |x: ArrayView1<f64>, s: ArrayView2<f64>| x.iter().chain(s).all(|v| v.is_finite());
    if !finite(a.mean.view(), a.covariance.view()) || !finite(b.mean.view(), b.covariance.view()) {
        return f64::NAN;
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let trace = |s: &Array2<f64>| s.diag().sum();
    let cross = trace_sqrt_product(a.covariance.view(), b.covariance.view());
    (mean_term + trace(&a.covariance) + trace(&b.covariance) - 2.0 * cross).max(0.0)
}

/// The Fréchet distance between two point sets: [`frechet_distance_gaussians`] of their
/// [`moments`]. NaN if any value is not finite.
///
/// # Panics
/// If the sets have different numbers of columns, or either has fewer than 2 rows.
pub fn frechet_distance(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    assert_eq!(
        a.ncols(),
        b.ncols(),
        "frechet_distance: the sets have {} and {} columns",
        a.ncols(),
        b.ncols()
    );
    // A non-finite value makes its set's moments non-finite, and the result NaN.
    frechet_distance_gaussians(&moments(a), &moments(b))
}
