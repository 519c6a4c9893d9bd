//! The process-wide matmul accounting (`matmul::start_matmul_accounting`) and what `meanflow
//! bench` builds on it. The counters are global, so these tests live in their own binary and take
//! a lock: no other product may run while one of them counts.

use meanflow::bench::fma_peak::{FmaPeak, VectorUnit};
use meanflow::bench::{measure, step_matmul_flops, BenchConfig};
use meanflow::flow::loss::LossPreset;
use meanflow::linalg::matmul::{gemm, start_matmul_accounting, take_matmul_accounting};
use ndarray::Array2;
use std::sync::Mutex;

static COUNTERS: Mutex<()> = Mutex::new(());

#[test]
fn accounting_counts_2_m_n_k_per_product_and_nothing_when_off() {
    let _lock = COUNTERS.lock().unwrap();
    let (m, k, n) = (7, 5, 3);
    let a = Array2::<f32>::ones((m, k));
    let b = Array2::<f32>::ones((k, n));
    let mut c = Array2::<f32>::zeros((m, n));

    gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
    start_matmul_accounting();
    gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
    gemm(1.0, b.t(), a.t(), 0.0, c.view_mut().reversed_axes()); // C^T = B^T A^T: the same m n k
    let empty = Array2::<f32>::zeros((0, k));
    gemm(
        1.0,
        empty.view(),
        b.view(),
        0.0,
        Array2::zeros((0, n)).view_mut(),
    );
    let counted = take_matmul_accounting();
    gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());

    assert_eq!(
        counted.calls, 2,
        "the empty product never reaches the kernel"
    );
    assert_eq!(counted.flops, 2 * 2 * (m * n * k) as u64);
    assert!(counted.seconds > 0.0);
    assert_eq!(
        take_matmul_accounting(),
        Default::default(),
        "products outside start..take are not counted"
    );
    assert!(c.iter().all(|&x| x == k as f32));
}

/// c1 for the `mlp` trunk, r1 and r2 for `resmlp` (its fc1 layers read [LN(a) | c], the input
/// layer and fc2 have no activation): every variant, one and two threads.
#[test]
fn the_counted_flops_of_a_bench_step_are_the_analytic_count() {
    let _lock = COUNTERS.lock().unwrap();
    for name in ["c1", "r1", "r2"] {
        let config = BenchConfig::by_name(name).unwrap();
        for (loss, exact) in [
            (LossPreset::Mf, false),
            (LossPreset::Imf, false),
            (LossPreset::Mf, true),
            (LossPreset::Imf, true),
        ] {
            for threads in [1, 2] {
                let peak = FmaPeak {
                    gflops: 100.0,
                    unit: VectorUnit::Avx512,
                    kernel: "given",
                };
                let m = measure(&config, loss, exact, threads, 1, 3, Some(peak));
                assert_eq!(
                    m.gemm_flops_per_step,
                    step_matmul_flops(&config, loss, exact),
                    "{name} {} (exact: {exact}) at {threads} threads",
                    loss.name()
                );
                assert!(m.flops_match_analytic());
                assert!(m.matmul_ms > 0.0 && m.matmul_ms <= m.max_ms * threads as f64);
                assert!(m.gemm_gflops_per_thread > 0.0);
                assert_eq!(m.peak_fraction(), Some(m.gemm_gflops_per_thread / 100.0));
                let json = m.json();
                assert!(
                    json.contains("\"fma_peak_gflops\":100.0,\"fma_peak_unit\":\"avx512\","),
                    "{json}"
                );
                let architecture = format!("\"architecture\":\"{}\",", config.architecture);
                assert!(json.contains(&architecture), "{json}");
            }
        }
    }
}
