//! `matmul::gemm` against a naive f64 triple loop, on every layout a view can have: transposes as
//! `.t()` views, steps of 1 to 3 in either direction, offsets into larger arrays, C itself strided
//! (and transposed) inside a larger array whose other elements must stay untouched. One test body,
//! generic over `T: Float`, runs for f32 and f64 on every backend of the build
//! ([`GemmBackend::available`]: the `gemm` crate and `matrixmultiply` by default).
//!
//! Tolerance: |C - C_ref| <= tol_T (|alpha| sum_l |a_il| |b_lj| + |beta| |c_ij|), the classical
//! rounding bound of a dot product ([`gemm_rel_tol`], src/verify/check.rs).

use meanflow::linalg::float::Float;
use meanflow::linalg::matmul::{gemm, gemm_on, GemmBackend};
use meanflow::rng::Rng;
use meanflow::verify::check::gemm_rel_tol;
use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut2, SliceInfo, SliceInfoElem};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const CASES: u32 = 64;

/// Where a logical [rows, cols] operand sits inside a larger storage array.
#[derive(Clone, Copy, Debug)]
struct Layout {
    /// Stored as [cols, rows] and seen through a transposed view.
    transposed: bool,
    /// Step along each storage axis; negative walks the axis backwards.
    steps: [isize; 2],
    /// Untouched elements before the view along each storage axis.
    offset: [usize; 2],
    /// Untouched elements after the view along each storage axis.
    pad: [usize; 2],
}

impl Layout {
    const CONTIGUOUS: Layout = Layout {
        transposed: false,
        steps: [1, 1],
        offset: [0, 0],
        pad: [0, 0],
    };
    const TRANSPOSED: Layout = Layout {
        transposed: true,
        ..Layout::CONTIGUOUS
    };

    /// The [rows, cols] of the stored (pre-transpose) view.
    fn stored_dims(&self, rows: usize, cols: usize) -> [usize; 2] {
        if self.transposed {
            [cols, rows]
        } else {
            [rows, cols]
        }
    }

    fn storage_shape(&self, rows: usize, cols: usize) -> (usize, usize) {
        let d = self.stored_dims(rows, cols);
        let len =
            |ax: usize| self.offset[ax] + d[ax] * self.steps[ax].unsigned_abs() + self.pad[ax];
        (len(0), len(1))
    }

    /// The slice of the storage that is the stored view.
    fn slice(
        &self,
        rows: usize,
        cols: usize,
    ) -> SliceInfo<[SliceInfoElem; 2], ndarray::Ix2, ndarray::Ix2> {
        let d = self.stored_dims(rows, cols);
        let [o0, o1] = self.offset;
        let [s0, s1] = self.steps;
        let e0 = o0 + d[0] * s0.unsigned_abs();
        let e1 = o1 + d[1] * s1.unsigned_abs();
        s![o0..e0; s0, o1..e1; s1]
    }

    fn view<'a, T>(&self, storage: &'a Array2<T>, rows: usize, cols: usize) -> ArrayView2<'a, T> {
        let v = storage.slice(self.slice(rows, cols));
        let v = if self.transposed {
            v.reversed_axes()
        } else {
            v
        };
        assert_eq!(v.dim(), (rows, cols));
        v
    }

    fn view_mut<'a, T>(
        &self,
        storage: &'a mut Array2<T>,
        rows: usize,
        cols: usize,
    ) -> ArrayViewMut2<'a, T> {
        let v = storage.slice_mut(self.slice(rows, cols));
        let v = if self.transposed {
            v.reversed_axes()
        } else {
            v
        };
        assert_eq!(v.dim(), (rows, cols));
        v
    }
}

#[derive(Clone, Debug)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Layout,
    b: Layout,
    c: Layout,
    alpha: f64,
    beta: f64,
    seed: u64,
}

fn random_storage<T: Float>(shape: (usize, usize), rng: &mut Rng) -> Array2<T> {
    Array2::from_shape_simple_fn(shape, || T::from_f64(rng.uniform_range(-1.0, 1.0)))
}

/// Runs one case in precision T and checks every element of the big C storage.
fn check_case<T: Float>(backend: GemmBackend, case: &Case) -> Result<(), TestCaseError> {
    let Case {
        m,
        k,
        n,
        alpha,
        beta,
        ..
    } = *case;
    let mut rng = Rng::seed_from_u64(case.seed);
    let a_store: Array2<T> = random_storage(case.a.storage_shape(m, k), &mut rng);
    let b_store: Array2<T> = random_storage(case.b.storage_shape(k, n), &mut rng);
    let mut c_store: Array2<T> = random_storage(case.c.storage_shape(m, n), &mut rng);
    if beta == 0.0 {
        // With beta = 0, C is garbage that must not be read.
        case.c
            .view_mut(&mut c_store, m, n)
            .fill(T::from_f64(f64::NAN));
    }
    let c_before = c_store.clone();
    let (alpha_t, beta_t) = (T::from_f64(alpha), T::from_f64(beta));

    let a = case.a.view(&a_store, m, k);
    let b = case.b.view(&b_store, k, n);
    gemm_on(
        backend,
        alpha_t,
        a,
        b,
        beta_t,
        case.c.view_mut(&mut c_store, m, n),
    );

    // Elements of the storage outside the view are untouched (bit for bit).
    let mut inside = Array2::from_elem(c_store.dim(), false);
    case.c.view_mut(&mut inside, m, n).fill(true);
    for ((idx, &after), (&before, &is_in)) in c_store
        .indexed_iter()
        .zip(c_before.iter().zip(inside.iter()))
    {
        if !is_in {
            prop_assert!(
                after.to_f64().to_bits() == before.to_f64().to_bits(),
                "{} on {}: storage element {:?} outside C changed from {} to {}",
                T::NAME,
                backend.name(),
                idx,
                before,
                after
            );
        }
    }

    let (alpha, beta) = (alpha_t.to_f64(), beta_t.to_f64());
    let c0 = case.c.view(&c_before, m, n);
    let c = case.c.view(&c_store, m, n);
    let tol = gemm_rel_tol::<T>();
    for i in 0..m {
        for j in 0..n {
            let (mut dot, mut abs_dot) = (0.0f64, 0.0f64);
            for l in 0..k {
                let p = a[[i, l]].to_f64() * b[[l, j]].to_f64();
                dot += p;
                abs_dot += p.abs();
            }
            let (c_term, c_abs) = if beta == 0.0 {
                (0.0, 0.0)
            } else {
                let c0 = c0[[i, j]].to_f64();
                (beta * c0, (beta * c0).abs())
            };
            let expected = alpha * dot + c_term;
            let scale = alpha.abs() * abs_dot + c_abs;
            let got = c[[i, j]].to_f64();
            prop_assert!(
                (got - expected).abs() <= tol * scale,
                "{} on {}: C[{}, {}] = {}, expected {} (scale {}, tolerance {})",
                T::NAME,
                backend.name(),
                i,
                j,
                got,
                expected,
                scale,
                tol
            );
        }
    }
    Ok(())
}

/// The case in f64 and f32 on every backend.
fn check_both(case: &Case) -> Result<(), TestCaseError> {
    for &backend in GemmBackend::available() {
        check_case::<f64>(backend, case)?;
        check_case::<f32>(backend, case)?;
    }
    Ok(())
}

fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 3 => 1usize..=4, 3 => 5usize..=70]
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        any::<bool>(),
        [1isize..=3, 1isize..=3],
        [any::<bool>(), any::<bool>()],
        [0usize..=2, 0usize..=2],
        [0usize..=2, 0usize..=2],
    )
        .prop_map(|(transposed, steps, negative, offset, pad)| Layout {
            transposed,
            steps: [0, 1].map(|ax| if negative[ax] { -steps[ax] } else { steps[ax] }),
            offset,
            pad,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        (dim(), dim(), dim()),
        (layout(), layout(), layout()),
        prop_oneof![Just(1.0), Just(-1.0), Just(0.0), Just(0.5), -3.0f64..3.0],
        prop_oneof![Just(0.0), Just(1.0), Just(-1.0), -2.0f64..2.0],
        any::<u64>(),
    )
        .prop_map(|((m, k, n), (a, b, c), alpha, beta, seed)| Case {
            m,
            k,
            n,
            a,
            b,
            c,
            alpha,
            beta,
            seed,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Random shapes, layouts, alpha and beta, in f64 and f32.
    #[test]
    fn gemm_matches_naive_loop(case in case()) {
        check_both(&case)?;
    }
}

/// All four transpose combinations, on fixed shapes from empty and 1x1 to odd sizes around 70,
/// with contiguous and strided/reversed layouts, beta = 0 (NaN in C) and beta != 0.
#[test]
fn gemm_transposes_and_edge_shapes() {
    let strided = Layout {
        transposed: false,
        steps: [-2, 3],
        offset: [1, 2],
        pad: [2, 1],
    };
    let strided_t = Layout {
        transposed: true,
        steps: [3, -1],
        offset: [0, 1],
        pad: [1, 0],
    };
    let shapes = [
        (1, 1, 1),
        (0, 0, 0),
        (0, 3, 2),
        (3, 0, 2),
        (3, 2, 0),
        (1, 5, 1),
        (2, 1, 3),
        (7, 13, 5),
        (69, 71, 67),
    ];
    let mut seed = 0;
    for (m, k, n) in shapes {
        for a in [Layout::CONTIGUOUS, Layout::TRANSPOSED, strided, strided_t] {
            for b in [Layout::CONTIGUOUS, Layout::TRANSPOSED, strided, strided_t] {
                for c in [Layout::CONTIGUOUS, strided, strided_t] {
                    for (alpha, beta) in [(1.0, 0.0), (-0.75, 0.5)] {
                        seed += 1;
                        let case = Case {
                            m,
                            k,
                            n,
                            a,
                            b,
                            c,
                            alpha,
                            beta,
                            seed,
                        };
                        if let Err(e) = check_both(&case) {
                            panic!("{e}\n{case:?}");
                        }
                    }
                }
            }
        }
    }
}

/// k = 0: C <- beta C, and with beta = 0 the NaN garbage becomes exact zeros.
#[test]
fn gemm_with_empty_inner_dimension_scales_c() {
    fn run<T: Float>(backend: GemmBackend) {
        let a = Array2::<T>::zeros((3, 0));
        let b = Array2::<T>::zeros((0, 2));
        let mut c = Array2::from_elem((3, 2), T::from_f64(f64::NAN));
        gemm_on(
            backend,
            T::from_f64(1.0),
            a.view(),
            b.view(),
            T::from_f64(0.0),
            c.view_mut(),
        );
        assert!(
            c.iter().all(|&x| x == T::from_f64(0.0)),
            "{} on {}: {c:?}",
            T::NAME,
            backend.name()
        );
        let mut c = Array2::from_elem((3, 2), T::from_f64(4.0));
        gemm_on(
            backend,
            T::from_f64(1.0),
            a.view(),
            b.view(),
            T::from_f64(-0.5),
            c.view_mut(),
        );
        assert!(
            c.iter().all(|&x| x == T::from_f64(-2.0)),
            "{} on {}: {c:?}",
            T::NAME,
            backend.name()
        );
    }
    for &backend in GemmBackend::available() {
        run::<f32>(backend);
        run::<f64>(backend);
    }
}

/// Broadcast (zero-stride) operands: every row of A is the same vector.
#[test]
fn gemm_with_broadcast_operand() {
    fn run<T: Float>(backend: GemmBackend) {
        let row = Array1::from_shape_fn(4, |i| T::from_f64(i as f64 + 1.0)); // 1 2 3 4
        let a = row.broadcast((3, 4)).unwrap();
        let b = Array2::from_shape_fn((4, 2), |(i, j)| T::from_f64((i + j) as f64));
        let mut c = Array2::from_elem((3, 2), T::from_f64(f64::NAN));
        gemm_on(
            backend,
            T::from_f64(1.0),
            a,
            b.view(),
            T::from_f64(0.0),
            c.view_mut(),
        );
        // column j: sum_i (i + 1)(i + j) = 20 + 10 j
        for ((_, j), &x) in c.indexed_iter() {
            assert_eq!(
                x,
                T::from_f64(20.0 + 10.0 * j as f64),
                "{} on {}",
                T::NAME,
                backend.name()
            );
        }
    }
    for &backend in GemmBackend::available() {
        run::<f32>(backend);
        run::<f64>(backend);
    }
}

#[test]
#[should_panic(expected = "gemm: shapes do not fit: A (2, 3) B (4, 5) C (2, 5)")]
fn gemm_inner_dimension_mismatch_panics() {
    let mut c = Array2::<f64>::zeros((2, 5));
    gemm(
        1.0,
        Array2::zeros((2, 3)).view(),
        Array2::zeros((4, 5)).view(),
        0.0,
        c.view_mut(),
    );
}

#[test]
#[should_panic(expected = "gemm: shapes do not fit: A (2, 3) B (3, 5) C (3, 5)")]
fn gemm_output_rows_mismatch_panics() {
    let mut c = Array2::<f32>::zeros((3, 5));
    gemm(
        1.0,
        Array2::zeros((2, 3)).view(),
        Array2::zeros((3, 5)).view(),
        0.0,
        c.view_mut(),
    );
}

#[test]
#[should_panic(expected = "gemm: shapes do not fit: A (2, 3) B (3, 5) C (2, 4)")]
fn gemm_output_cols_mismatch_panics() {
    let mut c = Array2::<f64>::zeros((2, 4));
    let a = Array2::zeros((3, 2));
    gemm(1.0, a.t(), Array2::zeros((3, 5)).view(), 1.0, c.view_mut());
}

/// The default build has both backends, the gemm crate first; `MEANFLOW_GEMM` picks one.
#[test]
fn backends_of_the_build() {
    let names: Vec<&str> = GemmBackend::available().iter().map(|b| b.name()).collect();
    if cfg!(feature = "gemm") {
        assert_eq!(names, ["gemm", "matrixmultiply"]);
    } else {
        assert_eq!(names, ["matrixmultiply"]);
    }
    let chosen = meanflow::linalg::matmul::gemm_backend();
    match std::env::var("MEANFLOW_GEMM").as_deref() {
        Ok("matrixmultiply") => assert_eq!(chosen, GemmBackend::Matrixmultiply),
        Ok("gemm") if cfg!(feature = "gemm") => assert_eq!(chosen, GemmBackend::GemmCrate),
        _ => assert_eq!(chosen, GemmBackend::available()[0]),
    }
}

/// A `MEANFLOW_GEMM` the build does not have is a one-line usage error of the tool (exit 2), not a
/// silent fallback; a known one runs.
#[test]
fn the_tool_refuses_an_unknown_gemm_backend() {
    let run = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_meanflow"))
            .args(["bench", "--config", "c1", "--loss", "mf", "--threads", "1"])
            .args(["--warmup", "1", "--repeats", "1", "--no-peak", "--json"])
            .env("MEANFLOW_GEMM", value)
            .output()
            .expect("the meanflow binary runs")
    };
    let refused = run("openblas");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MEANFLOW_GEMM=\"openblas\""), "{stderr}");
    assert!(refused.stdout.is_empty());
    let accepted = run("matrixmultiply");
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(
        String::from_utf8_lossy(&accepted.stdout).contains("\"gemm_backend\":\"matrixmultiply\"")
    );
}
