//! The symmetric eigen-solver (src/linalg/eigen.rs) and the Fréchet distance
//! (src/verify/frechet.rs):
//!
//! - eigen: A = V diag(l) V^T and V^T V = I on random symmetric matrices from 1 x 1 to 128 x 128;
//!   a prescribed spectrum (repeated, zero, negative eigenvalues) recovered from Q diag(l) Q^T; the
//!   2 x 2 closed form; diagonal matrices; the square root of a PSD matrix (`map_values`) squared back;
//! - Fréchet distance on moments against closed forms: diagonal and commuting covariances
//!   (|dmu|^2 + sum (sqrt a_i - sqrt b_i)^2), non-commuting 2 x 2 covariances
//!   (tr (S_a S_b)^{1/2} = sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b))), 1-D;
//! - Fréchet distance on point sets: symmetric, zero for identical sets, invariant under a joint
//!   rotation and translation, unchanged by embedding both sets in a larger space (rank-deficient
//!   covariances), the moments by hand, samples of two Gaussians against the population value,
//!   NaN for non-finite input, the shape panics.

use meanflow::linalg::eigen::{symmetric_eigen, MAX_SWEEPS};
use meanflow::rng::Rng;
use meanflow::verify::check::*;
use meanflow::verify::frechet::*;
use ndarray::{array, Array1, Array2, ArrayView2, Axis};
use proptest::prelude::*;

/// Relative accuracy of an eigen-decomposition or a Fréchet distance computed from one, against
/// the scale of the matrix: Jacobi's backward error is a modest multiple of eps |A|_F.
const EIGEN_REL_TOL: f64 = 1e-12;

fn normal(rng: &mut Rng, shape: (usize, usize)) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || rng.normal())
}

fn random_symmetric(rng: &mut Rng, n: usize) -> Array2<f64> {
    let a = normal(rng, (n, n));
    (&a + &a.t()) * 0.5
}

/// A random orthogonal matrix: Gram-Schmidt (twice, for orthogonality to rounding) on normals.
fn random_orthogonal(rng: &mut Rng, n: usize) -> Array2<f64> {
    let mut q = normal(rng, (n, n));
    for j in 0..n {
        for _ in 0..2 {
            for k in 0..j {
                let proj = q.column(j).dot(&q.column(k));
                let qk = q.column(k).to_owned();
                q.column_mut(j).scaled_add(-proj, &qk);
            }
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        q.column_mut(j).mapv_inplace(|x| x / norm);
    }
    q
}

/// Q diag(l) Q^T.
fn with_spectrum(q: &Array2<f64>, l: &[f64]) -> Array2<f64> {
    let scaled = Array2::from_shape_fn(q.dim(), |(i, j)| q[[i, j]] * l[j]);
    scaled.dot(&q.t())
}

fn frobenius(a: ArrayView2<f64>) -> f64 {
    a.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Checks A = V diag(l) V^T, V^T V = I, ascending values, convergence.
fn check_decomposition(a: &Array2<f64>) -> Result<(), TestCaseError> {
    let n = a.nrows();
    let e = symmetric_eigen(a.view());
    prop_assert!(
        e.sweeps < MAX_SWEEPS,
        "no convergence in {} sweeps",
        e.sweeps
    );
    prop_assert!(
        e.values.windows(2).all(|w| w[0] <= w[1]),
        "not ascending: {:?}",
        e.values
    );
    let rebuilt = e.map_values(|l| l);
    let scale = frobenius(a.view()).max(ABS_FLOOR);
    let err = frobenius((&rebuilt - a).view()) / scale;
    prop_assert!(
        err < EIGEN_REL_TOL,
        "n = {}: |V diag(l) V^T - A| / |A| = {:e}",
        n,
        err
    );
    let gram = e.vectors.t().dot(&e.vectors);
    let err = frobenius((&gram - &Array2::<f64>::eye(n)).view());
    prop_assert!(err < EIGEN_REL_TOL, "n = {}: |V^T V - I| = {:e}", n, err);
    Ok(())
}

fn gaussian(mean: Array1<f64>, covariance: Array2<f64>) -> Moments {
    Moments { mean, covariance }
}

/// The closed form for covariances with common eigenvectors: |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2.
fn commuting_closed_form(dmu: &Array1<f64>, a: &[f64], b: &[f64]) -> f64 {
    dmu.dot(dmu)
        + a.iter()
            .zip(b)
            .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
            .sum::<f64>()
}

/// Points x_i = mu + L z_i, z ~ N(0, I).
fn gaussian_points(rng: &mut Rng, n: usize, mu: &Array1<f64>, l: &Array2<f64>) -> Array2<f64> {
    let z = normal(rng, (n, mu.len()));
    z.dot(&l.t()) + mu.view().insert_axis(Axis(0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn eigen_reconstructs_random_symmetric(n in 1usize..=24, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        check_decomposition(&random_symmetric(&mut rng, n))?;
        // Entries of very different sizes: a graded matrix D A D.
        let d: Vec<f64> = (0..n).map(|i| 10f64.powi(i as i32 % 7 - 3)).collect();
        let a = random_symmetric(&mut rng, n);
        check_decomposition(&Array2::from_shape_fn((n, n), |(i, j)| d[i] * a[[i, j]] * d[j]))?;
    }

    /// Q diag(l) Q^T with repeated, zero and negative eigenvalues gives back l.
    #[test]
    fn eigen_recovers_a_prescribed_spectrum(n in 1usize..=16, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let mut l: Vec<f64> = (0..n).map(|_| rng.uniform_range(-3.0, 3.0)).collect();
        if n >= 3 {
            l[1] = l[0];
            l[2] = 0.0;
        }
        let q = random_orthogonal(&mut rng, n);
        let a = with_spectrum(&q, &l);
        let e = symmetric_eigen(a.view());
        l.sort_by(f64::total_cmp);
        let scale = l.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (got, want) in e.values.iter().zip(&l) {
            prop_assert!((got - want).abs() < EIGEN_REL_TOL * scale * n as f64,
                "{:?} vs {:?}", e.values, l);
        }
        check_decomposition(&a)?;
    }

    /// FD of Gaussians with covariances Q diag(a) Q^T, Q diag(b) Q^T (diagonal when Q = I).
    #[test]
    fn frechet_commuting_covariances(d in 1usize..=12, diagonal in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let q = if diagonal { Array2::eye(d) } else { random_orthogonal(&mut rng, d) };
        let a: Vec<f64> = (0..d).map(|_| rng.uniform_range(0.01, 4.0)).collect();
        let b: Vec<f64> = (0..d).map(|_| rng.uniform_range(0.01, 4.0)).collect();
        let mu_a = Array1::from_shape_simple_fn(d, || rng.normal());
        let mu_b = Array1::from_shape_simple_fn(d, || rng.normal());
        let expected = commuting_closed_form(&(&mu_a - &mu_b), &a, &b);
        let ga = gaussian(mu_a, with_spectrum(&q, &a));
        let gb = gaussian(mu_b, with_spectrum(&q, &b));
        let fd = frechet_distance_gaussians(&ga, &gb);
        // Rounding is relative to the traces, not to the (possibly small) distance.
        let scale: f64 = a.iter().chain(&b).sum::<f64>() + expected;
        prop_assert!(scaled_error(fd, expected, scale) < EIGEN_REL_TOL, "{} vs {}", fd, expected);
    }

    /// Non-commuting 2 x 2 covariances: tr (S_a S_b)^{1/2} = sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b)),
    /// as (sqrt l_1 + sqrt l_2)^2 = l_1 + l_2 + 2 sqrt(l_1 l_2) for the eigenvalues of S_a S_b.
    #[test]
    fn frechet_two_by_two_closed_form(seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let spd = |rng: &mut Rng| {
            let l = normal(rng, (2, 2));
            l.dot(&l.t()) + Array2::<f64>::eye(2) * 0.1
        };
        let (sa, sb) = (spd(&mut rng), spd(&mut rng));
        let det = |s: &Array2<f64>| s[[0, 0]] * s[[1, 1]] - s[[0, 1]] * s[[1, 0]];
        let product = sa.dot(&sb);
        let expected_cross = (product[[0, 0]] + product[[1, 1]] + 2.0 * (det(&sa) * det(&sb)).sqrt()).sqrt();
        let cross = trace_sqrt_product(sa.view(), sb.view());
        let scale = sa.diag().sum() + sb.diag().sum();
        prop_assert!(scaled_error(cross, expected_cross, scale) < EIGEN_REL_TOL,
            "{} vs {}", cross, expected_cross);
        let mu = array![0.3, -1.2];
        let fd = frechet_distance_gaussians(&gaussian(mu.clone(), sa.clone()), &gaussian(Array1::zeros(2), sb.clone()));
        let expected = mu.dot(&mu) + scale - 2.0 * expected_cross;
        prop_assert!(scaled_error(fd, expected, scale) < EIGEN_REL_TOL, "{} vs {}", fd, expected);
    }

    /// On point sets: FD(a, b) = FD(b, a), FD(a, a) = 0, FD(Q a + c, Q b + c) = FD(a, b).
    #[test]
    fn frechet_symmetric_zero_and_invariant(d in 1usize..=10, na in 2usize..=40, nb in 2usize..=40, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let a = normal(&mut rng, (na, d)) * 2.0;
        let b = normal(&mut rng, (nb, d)) + 0.5;
        let fd = frechet_distance(a.view(), b.view());
        let scale = {
            let (ma, mb) = (moments(a.view()), moments(b.view()));
            ma.covariance.diag().sum() + mb.covariance.diag().sum() + fd
        };
        let swapped = frechet_distance(b.view(), a.view());
        prop_assert!(scaled_error(swapped, fd, scale) < EIGEN_REL_TOL, "{} vs {}", swapped, fd);
        let same = frechet_distance(a.view(), a.view());
        prop_assert!(same.abs() < EIGEN_REL_TOL * scale, "FD(a, a) = {}", same);
        let q = random_orthogonal(&mut rng, d);
        let c = Array1::from_shape_simple_fn(d, || 10.0 * rng.normal()).insert_axis(Axis(0));
        let moved = |x: &Array2<f64>| x.dot(&q.t()) + &c;
        let fd_moved = frechet_distance(moved(&a).view(), moved(&b).view());
        // The translation by |c| ~ 30 costs its rounding, eps |c|, in every coordinate.
        prop_assert!(scaled_error(fd_moved, fd, scale) < 1e-10, "{} vs {}", fd_moved, fd);
    }
}

#[test]
fn eigen_of_large_matrices() {
    let mut rng = Rng::seed_from_u64(7);
    for n in [64, 128] {
        check_decomposition(&random_symmetric(&mut rng, n)).unwrap();
        // A covariance of rank 40 < n (zero eigenvalues), as of 40 features' worth of points.
        let x = normal(&mut rng, (40, n));
        check_decomposition(&x.t().dot(&x)).unwrap();
    }
}

#[test]
fn eigen_small_closed_forms() {
    let (a, b, c) = (2.0, -0.7, 0.5);
    let e = symmetric_eigen(array![[a, b], [b, c]].view());
    let (mid, radius) = ((a + c) / 2.0, (((a - c) / 2.0f64).powi(2) + b * b).sqrt());
    assert!(scalar_relative_error(e.values[0], mid - radius) < CLOSED_FORM_REL_TOL);
    assert!(scalar_relative_error(e.values[1], mid + radius) < CLOSED_FORM_REL_TOL);
    // A diagonal matrix: no rotation, its diagonal sorted, exactly.
    let e = symmetric_eigen(Array2::from_diag(&array![3.0, -1.0, 2.0, 0.0]).view());
    assert_eq!(e.values, vec![-1.0, 0.0, 2.0, 3.0]);
    assert_eq!(e.sweeps, 1);
    assert_eq!(e.vectors.column(0).to_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    let e = symmetric_eigen(array![[-4.5]].view());
    assert_eq!((e.values, e.vectors), (vec![-4.5], array![[1.0]]));
    let e = symmetric_eigen(Array2::zeros((3, 3)).view());
    assert_eq!(e.values, vec![0.0; 3]);
    // Only the symmetric part is read.
    let e = symmetric_eigen(array![[1.0, 2.0], [0.0, 1.0]].view());
    assert!((e.values[0] - 0.0).abs() < 1e-15 && (e.values[1] - 2.0).abs() < 1e-15);
}

#[test]
fn square_root_squares_back() {
    let mut rng = Rng::seed_from_u64(3);
    let x = normal(&mut rng, (5, 9));
    let s = x.t().dot(&x); // rank 5 of 9
    let r = symmetric_eigen(s.view()).map_values(|l| l.max(0.0).sqrt());
    let err = frobenius((&r.dot(&r) - &s).view()) / frobenius(s.view());
    assert!(err < EIGEN_REL_TOL, "{err:e}");
    assert!(frobenius((&r - &r.t()).view()) < 1e-14 * frobenius(r.view()));
}

#[test]
fn frechet_one_dimensional_is_w2_squared() {
    let (ma, sa, mb, sb) = (0.5, 2.0, -1.0, 0.3);
    let g = |m: f64, s: f64| gaussian(array![m], array![[s * s]]);
    let fd = frechet_distance_gaussians(&g(ma, sa), &g(mb, sb));
    let expected = (ma - mb).powi(2) + (sa - sb).powi(2);
    assert!(
        scalar_relative_error(fd, expected) < CLOSED_FORM_REL_TOL,
        "{fd} vs {expected}"
    );
}

#[test]
fn moments_by_hand() {
    let x = array![[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]];
    let m = moments(x.view());
    assert_eq!(m.mean, array![3.0, 2.0]);
    // Centred rows (-2, 0), (0, -2), (2, 2); sums of products / (n - 1) = 2.
    assert_eq!(m.covariance, array![[4.0, 2.0], [2.0, 4.0]]);
}

/// Both sets in a common 2-D plane of R^7 (covariances of rank 2 or less): the FD is that of the
/// 2-D sets, with no regularising epsilon.
#[test]
fn frechet_rank_deficient_equals_the_subspace_value() {
    let mut rng = Rng::seed_from_u64(11);
    let q = random_orthogonal(&mut rng, 7);
    let basis = q.slice(ndarray::s![.., ..2]).to_owned(); // 7 x 2, orthonormal columns
    let offset = Array1::from_shape_simple_fn(7, || rng.normal()).insert_axis(Axis(0));
    for (na, nb) in [(50, 80), (2, 3)] {
        let a = normal(&mut rng, (na, 2));
        let b = normal(&mut rng, (nb, 2)) * 1.5 + 1.0;
        let fd_2d = frechet_distance(a.view(), b.view());
        let embed = |x: &Array2<f64>| x.dot(&basis.t()) + &offset;
        let fd_7d = frechet_distance(embed(&a).view(), embed(&b).view());
        assert!(
            scaled_error(fd_7d, fd_2d, 1.0 + fd_2d) < 1e-10,
            "{fd_7d} vs {fd_2d}"
        );
    }
}

/// Samples of N(mu_a, S_a) and N(mu_b, S_b) in 4-D (non-commuting covariances): the FD of
/// 20000 points each against the population value (4.78) from the closed-form-checked moments
/// path. Over 50 draws the estimate's error had mean 0.002 and standard deviation 0.044; 0.2 is
/// 4.5 of them.
#[test]
fn frechet_of_samples_approaches_the_population_value() {
    let mut rng = Rng::seed_from_u64(5);
    let (la, lb) = (
        normal(&mut rng, (4, 4)) * 0.4,
        normal(&mut rng, (4, 4)) * 0.3,
    );
    let (mu_a, mu_b) = (array![1.0, 0.0, -1.0, 0.5], array![0.0, 0.5, 0.0, 0.0]);
    let population = frechet_distance_gaussians(
        &gaussian(mu_a.clone(), la.dot(&la.t())),
        &gaussian(mu_b.clone(), lb.dot(&lb.t())),
    );
    let n = 20_000;
    let a = gaussian_points(&mut rng, n, &mu_a, &la);
    let b = gaussian_points(&mut rng, n, &mu_b, &lb);
    let fd = frechet_distance(a.view(), b.view());
    assert!(
        population > 1.0,
        "a distance worth estimating: {population}"
    );
    assert!((fd - population).abs() < 0.2, "{fd} vs {population}");
}

#[test]
fn frechet_of_non_finite_points_is_nan() {
    let a = array![[0.0, 1.0], [1.0, f64::NAN], [2.0, 0.0]];
    let b = array![[0.0, 1.0], [1.0, 2.0]];
    assert!(frechet_distance(a.view(), b.view()).is_nan());
    assert!(frechet_distance(b.view(), a.view()).is_nan());
    let inf = array![[0.0, f64::INFINITY], [1.0, 2.0]];
    assert!(frechet_distance(inf.view(), b.view()).is_nan());
}

#[test]
#[should_panic(expected = "frechet_distance: the sets have 2 and 3 columns")]
fn frechet_dimensions_differ() {
    frechet_distance(Array2::zeros((4, 2)).view(), Array2::zeros((4, 3)).view());
}

#[test]
#[should_panic(expected = "moments: need at least 2 points of at least 1 dimension, got (1, 2)")]
fn frechet_needs_two_points() {
    frechet_distance(Array2::zeros((1, 2)).view(), Array2::zeros((4, 2)).view());
}

#[test]
#[should_panic(expected = "symmetric_eigen: the matrix is (2, 3), not square")]
fn eigen_needs_a_square_matrix() {
    symmetric_eigen(Array2::zeros((2, 3)).view());
}
