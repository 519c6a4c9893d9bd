//! GEMM throughput: `meanflow::linalg::matmul::gemm_on` on every backend of the build (the `gemm`
//! crate, `matrixmultiply`) against the raw `matrixmultiply::sgemm` / `dgemm` call on the same
//! buffers, square f32 and f64 matrices of n = 4 .. 1024. Throughput is reported as
//! 2 n^3 "elements" per product, so criterion's "elem/s" reads as flop/s (Gelem/s = GFLOP/s).
//!
//! Threads: matrixmultiply reads `MATMUL_NUM_THREADS` once per process (default: the number of
//! physical cores, clamped to 1..=4), so compare thread counts with separate runs:
//!
//! ```text
//! MATMUL_NUM_THREADS=1 cargo bench --bench matmul
//! MATMUL_NUM_THREADS=2 cargo bench --bench matmul
//! # one dtype / some sizes, shorter:
//! MATMUL_NUM_THREADS=1 cargo bench --bench matmul -- 'f32_n(128|1024)/' --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Bench ids are `matmul_<dtype>_n<size>/<gemm_on_gemm|gemm_on_matrixmultiply|raw_sgemm|raw_dgemm>_threads<t>`,
//! and `step_<config>_products/<backend>/...` for the products of one training step of each
//! benchmark config (see [`bench_step_products`]):
//!
//! ```text
//! MATMUL_NUM_THREADS=1 taskset -c 0 cargo bench --bench matmul -- step_ --warm-up-time 1 --measurement-time 2
//! python3 benches/sum_step_products.py   # per config and backend: the sum, the GEMM floor of a step
//! ```

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use meanflow::bench::step::CONFIGS;
use meanflow::linalg::float::{Float, MatrixmultiplyGemm};
use meanflow::linalg::matmul::{gemm_on, GemmBackend};
use meanflow::rng::Rng;
use ndarray::Array2;
use std::hint::black_box;

/// n = 4 exposes the wrapper's fixed per-call cost (shape check, stride reads), which the larger
/// sizes hide in the O(n^3) work.
const SIZES: [usize; 6] = [4, 64, 128, 256, 512, 1024];

/// The thread count matrixmultiply will use: `MATMUL_NUM_THREADS`, else the physical cores,
/// clamped to its supported 1..=4 (see matrixmultiply's threading.rs).
fn matmul_threads() -> usize {
    let requested = match std::env::var("MATMUL_NUM_THREADS") {
        Ok(s) if !s.is_empty() => s.parse().unwrap_or(1),
        _ => num_cpus::get_physical(),
    };
    requested.clamp(1, 4)
}

fn bench_dtype<T: Float>(c: &mut Criterion, raw: MatrixmultiplyGemm<T>, raw_name: &str) {
    let threads = matmul_threads();
    let mut rng = Rng::seed_from_u64(7);
    for n in SIZES {
        let mut random =
            || Array2::from_shape_simple_fn((n, n), || T::from_f64(rng.uniform_range(-1.0, 1.0)));
        let a = random();
        let b = random();
        let mut out = Array2::<T>::zeros((n, n));
        let (one, zero) = (T::from_f64(1.0), T::from_f64(0.0));

        let mut group: BenchmarkGroup<WallTime> =
            c.benchmark_group(format!("matmul_{}_n{n}", T::NAME));
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        group.sampling_mode(SamplingMode::Flat);
        if n >= 512 {
            group.sample_size(10);
        }
        for &backend in GemmBackend::available() {
            group.bench_function(
                format!("gemm_on_{}_threads{threads}", backend.name()),
                |bench| {
                    bench.iter(|| {
                        gemm_on(
                            backend,
                            one,
                            black_box(a.view()),
                            black_box(b.view()),
                            zero,
                            out.view_mut(),
                        )
                    })
                },
            );
        }
        group.bench_function(format!("{raw_name}_threads{threads}"), |bench| {
            bench.iter(|| {
                let ni = n as isize;
                // SAFETY: a, b and out are contiguous n x n row-major arrays; out is distinct.
                unsafe {
                    raw(
                        n,
                        n,
                        n,
                        one,
                        black_box(a.as_ptr()),
                        ni,
                        1,
                        black_box(b.as_ptr()),
                        ni,
                        1,
                        zero,
                        out.as_mut_ptr(),
                        ni,
                        1,
                    )
                }
            })
        });
        group.finish();
        black_box(&out);
    }
}

/// The products of one mf training step of each benchmark config (`meanflow bench`: d, width w,
/// depth L, batch B, of which k = B / 4 rows carry a tangent), with the step's layouts: forward
/// X W^T over B + k rows (W^T a transposed view), backward dW = G^T A (G^T a view) and G W over B
/// rows. Each runs alone, in f32, on every backend, so the sum of (time x count) is the GEMM floor
/// of the step on this machine. Ids:
/// `step_<config>_products/<backend>/<what>_m<m>_k<k>_n<n>_x<count>`.
fn bench_step_products(c: &mut Criterion) {
    for config in CONFIGS {
        let (b, w, d, depth) = (config.batch, config.width, config.dim, config.depth);
        let rows = b + b / 4;
        let input = d + 2;
        // (what, m, k, n, A is a transposed view, B is a transposed view, count per step)
        let products = [
            ("forward_first", rows, input, w, false, true, 1),
            ("forward_hidden", rows, w, w, false, true, depth - 1),
            ("forward_head", rows, w, d, false, true, 1),
            ("backward_head_dw", d, b, w, true, false, 1),
            ("backward_head_g", b, d, w, false, false, 1),
            ("backward_hidden_dw", w, b, w, true, false, depth - 1),
            ("backward_first_dw", w, b, input, true, false, 1),
            ("backward_hidden_g", b, w, w, false, false, depth - 1),
        ];
        let mut rng = Rng::seed_from_u64(9);
        let mut group = c.benchmark_group(format!("step_{}_products", config.name));
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        for (what, m, k, n, a_transposed, b_transposed, count) in products {
            let mut random = |rows, cols| {
                Array2::from_shape_simple_fn((rows, cols), || rng.uniform_range(-1.0, 1.0) as f32)
            };
            // A stored as its transpose [k, m] when the step multiplies by a view of one.
            let a = if a_transposed {
                random(k, m)
            } else {
                random(m, k)
            };
            let bm = if b_transposed {
                random(n, k)
            } else {
                random(k, n)
            };
            let mut out = Array2::<f32>::zeros((m, n));
            group.throughput(Throughput::Elements(2 * (m * k * n) as u64));
            for &backend in GemmBackend::available() {
                let id = format!("{}/{what}_m{m}_k{k}_n{n}_x{count}", backend.name());
                group.bench_function(id, |bench| {
                    bench.iter(|| {
                        let a = if a_transposed { a.t() } else { a.view() };
                        let bv = if b_transposed { bm.t() } else { bm.view() };
                        gemm_on(
                            backend,
                            1.0,
                            black_box(a),
                            black_box(bv),
                            0.0,
                            out.view_mut(),
                        )
                    })
                });
            }
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_dtype::<f32>(c, matrixmultiply::sgemm, "raw_sgemm");
    bench_dtype::<f64>(c, matrixmultiply::dgemm, "raw_dgemm");
    bench_step_products(c);
}

criterion_group!(matmul, benches);
criterion_main!(matmul);
