//! GEMM throughput: `meanflow::matmul::gemm` against the raw `matrixmultiply::sgemm` / `dgemm` call
//! on the same buffers, square f32 and f64 matrices of n = 64 .. 1024. Throughput is reported as
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
//! Bench ids are `matmul_<dtype>_n<size>/<gemm|raw_sgemm|raw_dgemm>_threads<t>`.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use meanflow::float::Float;
use meanflow::matmul::gemm;
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

/// The signature shared by `matrixmultiply::sgemm` and `dgemm`.
type RawGemm<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

fn bench_dtype<T: Float>(c: &mut Criterion, raw: RawGemm<T>, raw_name: &str) {
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
        group.bench_function(format!("gemm_threads{threads}"), |bench| {
            bench.iter(|| {
                gemm(
                    one,
                    black_box(a.view()),
                    black_box(b.view()),
                    zero,
                    out.view_mut(),
                )
            })
        });
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

fn benches(c: &mut Criterion) {
    bench_dtype::<f32>(c, matrixmultiply::sgemm, "raw_sgemm");
    bench_dtype::<f64>(c, matrixmultiply::dgemm, "raw_dgemm");
}

criterion_group!(matmul, benches);
criterion_main!(matmul);
