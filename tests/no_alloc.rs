//! Nothing allocates per step once warmed up: neither a reused tape nor a training step.
//!
//! A counting global allocator (System underneath) counts every allocation made
//! - while a step of a small MLP runs on a reused [`Tape`]: clear, parameters, forward,
//!   forward-mode JVP, backward of a loss that uses both the output and its JVP;
//! - while [`Trainer::step`] runs (the benchmark's and `meanflow train`'s path, on the tape:
//!   batch draw, loss, JVP, gradients, Adam, EMA) for MF and iMF (both v_hat sources), on one
//!   thread and on two (the persistent worker pool).
//!
//! After warm-up steps, both must make zero allocations of their own.
//!
//! What is left is not ours: both GEMM backends allocate per product and take no buffer from the
//! caller (`matrixmultiply` one packing buffer, `make_packing_buffer` in its gemm.rs; the `gemm`
//! crate its packing buffer and a vector of per-block flags). The allocator tells the two apart by
//! asking [`inside_gemm_kernel`], which the product wrapper sets around the backend's call: the
//! test requires zero allocations outside the kernel, and inside it exactly one per product for
//! `matrixmultiply` and at most two for the `gemm` crate ([`kernel_allocations_fit`]: a backend
//! that starts allocating per row or per block would fail it).
//!
//! Its own test binary (`harness = false`): the global allocator sees the whole process, and
//! without libtest no other thread allocates while it counts.

use meanflow::autodiff::elementwise::Elementwise;
use meanflow::autodiff::tape::{Tape, Var};
use meanflow::flow::guidance::Guidance;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::model::{Architecture, Conditioning, Heads, ModelConfig};
use meanflow::flow::time_sampler::TimeSampler;
use meanflow::linalg::matmul::{
    gemm_backend, inside_gemm_kernel, start_matmul_accounting, take_matmul_accounting, GemmBackend,
    MatmulAccounting,
};
use meanflow::rng::Rng;
use meanflow::train::optim::AdamConfig;
use meanflow::train::{TrainConfig, Trainer, TrainingData};
use ndarray::Array2;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

/// Whether `kernel` allocations inside the backend's kernel are what `products` products make:
/// `matrixmultiply` exactly one each (its packing buffer), the `gemm` crate at most two (its
/// packing buffer and block flags; none for a product too small to pack).
fn kernel_allocations_fit(kernel: usize, products: usize) -> bool {
    match gemm_backend() {
        GemmBackend::Matrixmultiply => kernel == products,
        GemmBackend::GemmCrate => kernel <= 2 * products,
    }
}

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Allocations outside the GEMM kernel: meanflow's.
static OURS: AtomicUsize = AtomicUsize::new(0);
/// Allocations inside the GEMM kernel: the backend's.
static KERNEL: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn count() {
        if COUNTING.load(Ordering::Relaxed) {
            if inside_gemm_kernel() {
                KERNEL.fetch_add(1, Ordering::Relaxed);
            } else {
                OURS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::count();
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::count();
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::count();
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// (ours, the GEMM kernel's) allocations made by `f`.
fn count_allocations(f: impl FnOnce()) -> (usize, usize) {
    OURS.store(0, Ordering::SeqCst);
    KERNEL.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    (OURS.load(Ordering::SeqCst), KERNEL.load(Ordering::SeqCst))
}

struct Problem {
    params: Vec<Array2<f32>>,
    x: Array2<f32>,
    v: Array2<f32>,
    c: Array2<f32>,
}

/// One training-like step; returns the loss and the number of GEMM calls it made.
/// `p` is scratch space for the parameter nodes, reused so that the test itself does not allocate.
fn step(t: &mut Tape<f32>, pb: &Problem, p: &mut Vec<Var>, grad_sums: &mut [f32]) -> (f32, usize) {
    t.clear();
    p.clear();
    p.extend(pb.params.iter().map(|a| t.param(a.view())));
    let x = t.constant(pb.x.view());
    let v = t.constant(pb.v.view());
    let c = t.constant(pb.c.view());
    t.set_tangent(x, v);
    let mut h = x;
    let layers = p.len() / 2;
    for l in 0..layers {
        h = t.linear(h, p[2 * l], p[2 * l + 1]);
        if l + 1 < layers {
            h = t.map(h, Elementwise::Silu);
        }
    }
    let jvp = t.tangent(h).expect("x carries a tangent");
    // loss = sum(out^2) + <c, jvp>: reverse mode through the forward and the JVP ops.
    let sq = t.square(h);
    let s1 = t.sum(sq);
    let cj = t.mul(c, jvp);
    let s2 = t.sum(cj);
    let loss = t.add(s1, s2);
    t.backward(loss);
    for (sum, &q) in grad_sums.iter_mut().zip(p.iter()) {
        *sum = t.grad(q).expect("every parameter gets a gradient").sum();
    }
    // GEMM calls per layer: forward, the primal product and its tangent's (x_dot W^T); backward,
    // one per operand needing a cotangent of each: W always, h and h_dot beyond the first layer
    // (x and x_dot are constants). Total 2 L + 2 L + 2 (L - 1).
    let gemms = 6 * layers - 2;
    (t.scalar(loss), gemms)
}

/// Training steps on the tape: (ours, the kernel's) allocations of `steps` steps after
/// warm-up and the number of products they made, checking that the steps went through.
/// With `guidance` other than None, a conditional model of 3 classes with label dropout 0.2; with
/// `interval`, one that takes iMF's guidance interval as an input too.
fn trainer_allocations(
    preset: LossPreset,
    guidance: Guidance,
    interval: bool,
    architecture: Architecture,
    threads: usize,
    steps: usize,
) -> (usize, usize, u64) {
    let conditional = guidance != Guidance::None;
    let heads = if preset == LossPreset::ImfHead {
        Heads::UV
    } else {
        Heads::U
    };
    let config = TrainConfig {
        model: ModelConfig {
            dim: 2,
            width: 16,
            depth: 2,
            architecture,
            activation: Elementwise::Silu,
            conditioning: Conditioning::Raw,
            heads,
            classes: if conditional { 3 } else { 0 },
            class_dim: if conditional { 4 } else { 0 },
            guidance_input: guidance.is_input(),
            guidance_interval_input: interval,
        },
        loss: LossConfig {
            guidance,
            label_dropout: if conditional { 0.2 } else { 0.0 },
            ..LossConfig::preset(preset)
        },
        time: TimeSampler::imf_default(),
        adam: AdamConfig::default(),
        batch: 33,
        ema_decay: Some(0.99),
        seed: 5,
        threads,
    };
    config.validate().expect("a valid config");
    let mut rng = Rng::seed_from_u64(3);
    let points = Array2::from_shape_simple_fn((200, 2), || rng.normal());
    let labels = if conditional {
        (0..200).map(|i| i % 3).collect()
    } else {
        Vec::new()
    };
    let mut trainer = Trainer::<f32>::new(config, TrainingData { points, labels });
    for _ in 0..3 {
        trainer.step().expect("a finite warm-up step");
    }
    let mut finite = true;
    let mut products = MatmulAccounting::default();
    let (ours, kernel) = count_allocations(|| {
        start_matmul_accounting();
        for _ in 0..steps {
            finite &= trainer.step().is_ok();
        }
        products = take_matmul_accounting();
    });
    assert!(
        finite,
        "{preset:?} {guidance:?}, {threads} threads: a step was not finite"
    );
    assert_eq!(trainer.step_count(), 3 + steps as u64);
    (ours, kernel, products.calls)
}

fn main() {
    // One GEMM thread: no worker threads allocating on their own.
    assert!(meanflow::linalg::matmul::set_matmul_threads(1));
    let mut rng = Rng::seed_from_u64(11);
    let dims = [3, 16, 16, 2];
    let mut params = Vec::new();
    for io in dims.windows(2) {
        let scale = 1.0 / (io[0] as f64).sqrt();
        params.push(Array2::from_shape_simple_fn((io[1], io[0]), || {
            (scale * rng.normal()) as f32
        }));
        params.push(Array2::from_shape_simple_fn((1, io[1]), || {
            0.1 * rng.normal() as f32
        }));
    }
    let batch = 8;
    let mut random = |shape| Array2::from_shape_simple_fn(shape, || rng.normal() as f32);
    let pb = Problem {
        params,
        x: random((batch, dims[0])),
        v: random((batch, dims[0])),
        c: random((batch, dims[3])),
    };
    let mut grad_sums = vec![0.0f32; pb.params.len()];

    let mut t = Tape::new();
    let mut p = Vec::with_capacity(pb.params.len());
    let (warm_loss, gemms) = step(&mut t, &pb, &mut p, &mut grad_sums);
    let warm_grads = grad_sums.clone();
    let steps = 3;
    let mut results = Vec::with_capacity(steps);
    let mut sums = vec![0.0f32; pb.params.len()];
    let (ours, kernel) = count_allocations(|| {
        for _ in 0..steps {
            results.push(step(&mut t, &pb, &mut p, &mut sums));
        }
    });
    for &(loss, g) in &results {
        assert_eq!(loss, warm_loss, "a reused tape changed the loss");
        assert_eq!(g, gemms);
    }
    assert_eq!(sums, warm_grads, "a reused tape changed the gradients");
    println!(
        "no_alloc: {} nodes per step, {steps} steps after warm-up: {ours} tape allocations, \
         {kernel} inside the {} kernel ({gemms} GEMM calls per step)",
        t.len(),
        gemm_backend().name()
    );
    assert_eq!(
        ours, 0,
        "the reused tape allocated {ours} times in {steps} steps"
    );
    assert!(
        kernel_allocations_fit(kernel, steps * gemms),
        "the {} kernel allocated {kernel} times in {} products",
        gemm_backend().name(),
        steps * gemms
    );

    // The training step: zero allocations of ours; the kernel's as kernel_allocations_fit says for
    // the products the matmul accounting counted on every thread.
    let cases = [
        (LossPreset::Mf, Guidance::None, false),
        (LossPreset::Imf, Guidance::None, false),
        (LossPreset::ImfHead, Guidance::None, false),
        (
            LossPreset::Mf,
            Guidance::Target { w: 2.0, kappa: 0.5 },
            false,
        ),
        (LossPreset::Imf, Guidance::Input { w_max: 3.0 }, false),
        (LossPreset::ImfHead, Guidance::Input { w_max: 3.0 }, false),
        (LossPreset::Imf, Guidance::Input { w_max: 7.0 }, true),
        (LossPreset::ImfHead, Guidance::Input { w_max: 7.0 }, true),
    ];
    let mlp = cases.map(|(p, g, i)| (p, g, i, Architecture::Mlp));
    // The residual trunk: its layer norms and the condition fed to every block.
    let residual = [
        (LossPreset::Mf, Guidance::None, false),
        (LossPreset::Imf, Guidance::Input { w_max: 7.0 }, true),
        (LossPreset::ImfHead, Guidance::Input { w_max: 3.0 }, false),
    ]
    .map(|(p, g, i)| (p, g, i, Architecture::Residual));
    for (preset, guidance, interval, architecture) in mlp.into_iter().chain(residual) {
        for threads in [1, 2] {
            let (ours, kernel, products) =
                trainer_allocations(preset, guidance, interval, architecture, threads, steps);
            let guidance = format!(
                "{guidance:?}{} {architecture}",
                if interval { " interval" } else { "" }
            );
            println!(
                "no_alloc: training step, {preset:?} {guidance}, {threads} threads, {steps} steps: \
                 {ours} allocations, {kernel} inside the {} kernel ({products} products)",
                gemm_backend().name()
            );
            assert_eq!(
                ours, 0,
                "{preset:?} {guidance} with {threads} threads allocated {ours} times in {steps} steps"
            );
            assert!(
                products > 0,
                "{preset:?} {guidance} with {threads} threads: no products"
            );
            assert!(
                kernel_allocations_fit(kernel, products as usize),
                "{preset:?} {guidance} with {threads} threads: the {} kernel allocated {kernel} \
                 times in {products} products",
                gemm_backend().name()
            );
        }
    }
    println!("no_alloc: ok");
}
