//! The oracles every derivative is checked against, and the tolerances, chosen once.
//!
//! Central finite differences in f64, extrapolated ([`central_difference`]): their truncation
//! error is O(h^4 |f^(5)|) and their rounding error about 1.5 eps |f| / h; with h = 1e-5 both are
//! near 1e-10 relative for functions of unit scale, so [`FD_REL_TOL`] = 1e-6 leaves room for
//! curvature (a saturated unit's f''' can be 1e5 times its f') and cancellation.
//!
//! | comparison | tolerance | why |
//! |---|---|---|
//! | exact JVP / VJP vs central FD, f64 | [`FD_REL_TOL`] 1e-6 (relative to the scale) | FD error above |
//! | adjoint identity <w, J v> = <J^T w, v>, f64 | [`ADJOINT_REL_TOL`] 1e-12 | both sides exact, only rounding |
//! | one quantity by two algebraically equal formulas, f64 | [`REWRITE_REL_TOL`] 1e-10 | both exact, only rounding order differs |
//! | f32 path vs f64 path | [`F32_REL_TOL`] 1e-4 | f32 rounding through a few layers of sums |
//! | golden reference cases, f64 | [`GOLDEN_REL_TOL`] 1e-9 | required by the reference's contract |
//! | dual-number derivative vs its closed form, f64 | [`CLOSED_FORM_REL_TOL`] 1e-12 | two exact formulas, only rounding |
//! | optimiser step (AdamW, clip, EMA) vs PyTorch's, f64 | [`OPTIMIZER_REL_TOL`] 1e-12 | same formulas, only rounding order differs |
//! | GEMM vs naive f64 triple loop, f64 / f32 | [`GEMM_F64_REL_TOL`] 1e-12, [`GEMM_F32_REL_TOL`] 1e-5 (relative to sum \|a\|\|b\|) | dot-product rounding bound k eps for k <= ~100 |
//!
//! Relative errors are measured against a scale: |a - b| / max(|b|_max, [`ABS_FLOOR`]), so that
//! entries near zero do not inflate them. Where the rounding of a quantity is set by a larger
//! magnitude than its own (f'(x) = 1 - tanh^2 x computed from tanh x ~ 1, or a finite difference
//! whose rounding error is eps |f| / h), [`scaled_error`] takes that scale explicitly. A finite
//! difference cannot resolve a derivative much
//! smaller than its rounding error eps |f| / h ~ 2e-11 |f|, so [`fd_relative_error`] also floors
//! the scale at [`FD_VALUE_SCALE`] times the size of the function's values.

use crate::linalg::float::Float;
use ndarray::{Array2, ArrayView2, Zip};

/// Finite-difference step for central differences in f64.
pub const FD_STEP: f64 = 1e-5;
/// Tolerance of an exact derivative against central finite differences (f64).
pub const FD_REL_TOL: f64 = 1e-6;
/// Tolerance of the adjoint identity (f64).
pub const ADJOINT_REL_TOL: f64 = 1e-12;
/// Tolerance between two algebraically identical formulas of one quantity, both evaluated exactly
/// in f64 but in a different order (e.g. MF's velocity form u + (t - r) sg(dudt) - v_c against the
/// classic u - sg(v_c - (t - r) dudt), or a dual-number derivative against its closed form): only
/// rounding separates them. Looser than [`ADJOINT_REL_TOL`] because a gradient is a sum over the
/// batch whose terms may cancel: rounding of about eps relative to the terms is then up to ~1e4
/// times larger relative to the sum (seen: 1e-12 for a bias gradient over three rows).
pub const REWRITE_REL_TOL: f64 = 1e-10;
/// Tolerance of an f32 computation against the same computation in f64.
pub const F32_REL_TOL: f64 = 1e-4;
/// Tolerance of the reference cases in tests/data (f64).
pub const GOLDEN_REL_TOL: f64 = 1e-9;
/// Tolerance of a derivative from dual numbers against its closed form (f64). Both are exact
/// formulas evaluated in a few floating-point operations, so they differ only by rounding (a few
/// ulps of the scale); 1e-12 leaves room for the products of the nested chain rule.
pub const CLOSED_FORM_REL_TOL: f64 = 1e-12;
/// Tolerance of meanflow's optimiser (AdamW step, global-norm clip, EMA) against PyTorch's
/// (tests/optimizer_oracle.rs), f64, relative to each tensor's largest entry. Both evaluate the
/// same elementwise formulas, only the rounding order differs (PyTorch decays p before the
/// Adam step, lerps the first moment, divides by sqrt(1 - b2^k) instead of multiplying), so a
/// few ulps per step, carried over 6 to 10 steps; 1e-12 leaves room for that and still catches any
/// change of a formula (a sign, a bias correction, the warm-up, the decay: 1e-3 or more).
pub const OPTIMIZER_REL_TOL: f64 = 1e-12;
/// Tolerance of an f64 GEMM against a naive triple loop in f64, relative to the per-entry scale
/// |alpha| sum_l |a_il| |b_lj| + |beta| |c_ij|. The classical bound for a length-k dot product is
/// k eps times that scale: k = 70 gives ~1.6e-14, so 1e-12 covers k up to several thousand.
pub const GEMM_F64_REL_TOL: f64 = 1e-12;
/// As [`GEMM_F64_REL_TOL`] for an f32 GEMM (eps = 6e-8 for round-to-nearest): k = 70 gives a
/// worst case of ~4.3e-6, typical errors are ~sqrt(k) eps ~ 5e-7.
pub const GEMM_F32_REL_TOL: f64 = 1e-5;
/// Floor of the scale of a finite-difference comparison, as a fraction of the size of the
/// function's values (see [`fd_relative_error`]): central differences carry a rounding error of
/// about eps |f| / FD_STEP ~ 2e-11 |f| (a few times that after sums through a network), so with
/// this floor the check still bounds the absolute error by FD_REL_TOL * 1e-3 |f| = 1e-9 |f|.
pub const FD_VALUE_SCALE: f64 = 1e-3;
/// Scales below this count as this, so that relative errors of near-zero quantities stay meaningful.
pub const ABS_FLOOR: f64 = 1e-8;

/// The derivative at 0 of a scalar function of an offset s (the caller forms x + s v), by
/// central differences with their h^2 error cancelled. With D(h) = (f(h) - f(-h)) / 2h, whose
/// error is h^2 f''' / 6 + O(h^4), Richardson extrapolation gives
/// (4 D(h) - D(2h)) / 3 = (8 (f(h) - f(-h)) - (f(2h) - f(-2h))) / 12h = f'(0) + O(h^4 f^(5)),
/// h = FD_STEP. D(h) alone was not enough where the third derivative dwarfs the first: a JVP
/// that a saturated width-1 layer makes ~1e-7, differentiated again, has |f'''| ~ 2e5 |f'|, and
/// D(h) was 2e-6 off. The rounding error, about 1.5 eps |f| / h, is 1.5 times D(h)'s.
pub fn central_difference(f: impl Fn(f64) -> f64) -> f64 {
    let (h, h2) = (FD_STEP, 2.0 * FD_STEP);
    (8.0 * (f(h) - f(-h)) - (f(h2) - f(-h2))) / (12.0 * FD_STEP)
}

/// [`central_difference`] of an array-valued function of a scalar offset s, elementwise.
pub fn central_difference_array<T: Float>(f: impl Fn(f64) -> Array2<T>) -> Array2<f64> {
    let (h, h2) = (FD_STEP, 2.0 * FD_STEP);
    let at = |s: f64| f(s).mapv(|x| x.to_f64());
    (8.0 * (at(h) - at(-h)) - (at(h2) - at(-h2))) / (12.0 * FD_STEP)
}

/// Max absolute difference and the relative error max|a - b| / max(max|b|, ABS_FLOOR).
pub fn compare<T: Float, U: Float>(actual: ArrayView2<T>, expected: ArrayView2<U>) -> (f64, f64) {
    assert_eq!(
        actual.dim(),
        expected.dim(),
        "compare: shapes differ: actual {:?} expected {:?}",
        actual.dim(),
        expected.dim()
    );
    let mut max_abs = 0.0f64;
    let mut scale = 0.0f64;
    Zip::from(&actual).and(&expected).for_each(|&a, &b| {
        let (a, b) = (a.to_f64(), b.to_f64());
        let diff = (a - b).abs();
        // f64::max ignores NaN, so once a NaN is seen it must stick explicitly.
        max_abs = if diff.is_nan() || max_abs.is_nan() {
            f64::NAN
        } else {
            max_abs.max(diff)
        };
        scale = scale.max(b.abs());
    });
    (max_abs, max_abs / scale.max(ABS_FLOOR))
}

/// The relative error of [`compare`].
pub fn relative_error<T: Float, U: Float>(actual: ArrayView2<T>, expected: ArrayView2<U>) -> f64 {
    compare(actual, expected).1
}

/// Relative error of two scalars against the scale max(|expected|, ABS_FLOOR).
pub fn scalar_relative_error(actual: f64, expected: f64) -> f64 {
    (actual - expected).abs() / expected.abs().max(ABS_FLOOR)
}

/// |actual - expected| / max(scale, ABS_FLOOR): the error of a scalar against an explicit scale
/// (see the module documentation for when the scale is not |expected| itself).
pub fn scaled_error(actual: f64, expected: f64, scale: f64) -> f64 {
    (actual - expected).abs() / scale.abs().max(ABS_FLOOR)
}

/// The GEMM tolerance for the storage type T: [`GEMM_F32_REL_TOL`] or [`GEMM_F64_REL_TOL`].
pub fn gemm_rel_tol<T: Float>() -> f64 {
    if T::NAME == "f32" {
        GEMM_F32_REL_TOL
    } else {
        GEMM_F64_REL_TOL
    }
}

/// Relative error of a derivative against its central finite difference `fd`, for a function
/// whose values are of size `value_scale` (max |f|): |actual - fd| measured against
/// max(|fd|, FD_VALUE_SCALE value_scale, ABS_FLOOR), so that a derivative far smaller than the
/// function, which finite differences cannot resolve relatively, is not failed for their rounding.
pub fn fd_relative_error(actual: f64, fd: f64, value_scale: f64) -> f64 {
    let scale = fd
        .abs()
        .max(FD_VALUE_SCALE * value_scale.abs())
        .max(ABS_FLOOR);
    (actual - fd).abs() / scale
}

/// [`fd_relative_error`] for arrays: max |actual - fd| against max(max |fd|, FD_VALUE_SCALE
/// value_scale, ABS_FLOOR).
pub fn fd_relative_error_array<T: Float>(
    actual: ArrayView2<T>,
    fd: ArrayView2<f64>,
    value_scale: f64,
) -> f64 {
    let (max_abs, _) = compare(actual, fd);
    let fd_max = fd.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    max_abs
        / fd_max
            .max(FD_VALUE_SCALE * value_scale.abs())
            .max(ABS_FLOOR)
}

/// <a, b> = sum_ij a_ij b_ij, in f64.
pub fn inner<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> f64 {
    assert_eq!(
        a.dim(),
        b.dim(),
        "inner: shapes differ: {:?} vs {:?}",
        a.dim(),
        b.dim()
    );
    let mut s = 0.0;
    Zip::from(&a)
        .and(&b)
        .for_each(|&x, &y| s += x.to_f64() * y.to_f64());
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn compare_reports_nan_anywhere() {
        let expected = array![[1.0f64, 2.0, 3.0]];
        for i in 0..3 {
            let mut actual = expected.clone();
            actual[[0, i]] = f64::NAN;
            let (max_abs, rel) = compare(actual.view(), expected.view());
            assert!(max_abs.is_nan() && rel.is_nan(), "NaN at {i} lost");
        }
    }
}
