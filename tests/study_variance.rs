//! The study's variance instruments (1, 2 and 5) against independent oracles:
//!
//! - instrument 1's estimator (one linearisation per point, the per-sample gradient through the
//!   Gram matrix G = J_theta J_theta^T) against `record_loss` / `loss_and_gradients` run on a
//!   batch-1 tape for every redraw: the same tangent, JVP term, target, loss and gradient variances
//!   (in 1, 2 and 12 dimensions: the Gram matrix from full rows of J_theta, and by layers);
//! - with the exact average velocity u* of Gaussian data, the estimated variances against their
//!   closed forms (study::gaussian), within 4 Monte Carlo standard errors (fixed seeds), both with
//!   exact posterior draws and with the posterior of a finite pool;
//! - the pool posterior against the analytic Gaussian posterior (mean and variance);
//! - instrument 2: B tr Cov is flat in B for i.i.d. rows, and the exact gradient equals the
//!   stop-gradient one where every row has r = t;
//! - the 64-D digits through instrument 1 (the target variances keep their definitions);
//! - the three `meanflow study` subcommands end to end on tiny settings (`--quick`): exit 0, every
//!   promised file written, the summary section headed as `meanflow study` expects.

use meanflow::autodiff::tape::Tape;
use meanflow::data::ToyDataset;
use meanflow::flow::loss::{loss_and_gradients, record_loss, Batch, LossConfig, LossPreset};
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::flow::time_sampler::{TimeDistribution, TimeSampler};
use meanflow::rng::Rng;
use meanflow::study::conditional_variance::{
    estimate, mean_se, run_variance, AverageVelocity, MlpVelocity, PointVariance, Quantity,
    VarianceSettings, DIRECT_GRAM_MAX_DIM,
};
use meanflow::study::dataset::StudyDataset;
use meanflow::study::fixture::{FixtureSettings, ModelCache};
use meanflow::study::gaussian::GaussianFlow;
use meanflow::study::gradient_noise::{exact_angle, minibatch_noise};
use meanflow::study::posterior::{draw_points, gaussian_posterior, pool_weights, DataSource};
use meanflow::train::TrainConfig;
use meanflow::verify::check::REWRITE_REL_TOL;
use ndarray::{array, Array2};

fn small_model(dim: usize) -> ModelConfig {
    ModelConfig {
        dim,
        width: 8,
        depth: 2,
        ..ModelConfig::default()
    }
}

/// Unbiased variance (summed over columns) of rows.
fn trace_var(rows: &[Vec<f64>]) -> f64 {
    let k = rows.len() as f64;
    let d = rows[0].len();
    (0..d)
        .map(|j| {
            let m = rows.iter().map(|r| r[j]).sum::<f64>() / k;
            rows.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (k - 1.0)
        })
        .sum()
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e3 * REWRITE_REL_TOL * (b.abs() + scale)
}

#[test]
fn estimator_equals_the_loss_on_batch_one_tapes() {
    // 12 > DIRECT_GRAM_MAX_DIM: the Gram matrix by layers, against the full per-redraw gradients.
    const { assert!(DIRECT_GRAM_MAX_DIM < 12) };
    for dim in [1, 2, 12] {
        let model = small_model(dim);
        let params = MlpParams::<f64>::init(&model, &mut Rng::seed_from_u64(11));
        let pool = ToyDataset::Gaussian { sigma: 1.0, dim }.sample(500, &mut Rng::seed_from_u64(1));
        let draws = draw_points(
            DataSource::Pool(pool.view()),
            4,
            6,
            &mut Rng::seed_from_u64(2),
        );
        let betas = [0.0, 0.3, 1.0];
        let mut net = MlpVelocity::new(model, &params);
        let mut tape = Tape::new();
        // Plain squared error (the presets) and the papers' adaptive weight.
        for (power, c) in [(0.0, 1e-3), (1.0, 1e-3)] {
            let got = estimate(&mut net, &draws, &betas, power, c);
            for (bi, &beta) in betas.iter().enumerate() {
                let loss = LossConfig {
                    beta,
                    p: power,
                    c,
                    ..LossConfig::preset(LossPreset::Mf)
                };
                for i in 0..draws.len() {
                    let (r, t) = (draws.r[i], draws.t[i]);
                    let (mut tangent, mut jvp, mut target, mut ells, mut losses, mut grads) =
                        (vec![], vec![], vec![], vec![], vec![], vec![]);
                    for k in 0..draws.draws() {
                        let x: Vec<f64> = (0..dim).map(|j| draws.x[[i, k, j]]).collect();
                        let e: Vec<f64> = (0..dim)
                            .map(|j| (draws.z[[i, j]] - (1.0 - t) * x[j]) / t)
                            .collect();
                        let batch = Batch {
                            x: Array2::from_shape_vec((1, dim), x).unwrap(),
                            e: Array2::from_shape_vec((1, dim), e).unwrap(),
                            t: array![[t]],
                            r: array![[r]],
                            labels: Vec::new(),
                            scales: ndarray::Array2::zeros((0, 1)),
                            intervals: ndarray::Array2::zeros((0, 2)),
                        };
                        tape.clear();
                        let vars = params.on_tape(&mut tape);
                        let nodes = record_loss(&mut tape, &model, &vars, &loss, &batch);
                        let row = |v| tape.value(v).row(0).to_vec();
                        let v_c = row(nodes.v_c);
                        let dudt = row(nodes.dudt);
                        tangent.push(row(nodes.tangent));
                        let j: Vec<f64> = dudt.iter().map(|d| (t - r) * d).collect();
                        target.push(v_c.iter().zip(&j).map(|(v, j)| v - j).collect::<Vec<_>>());
                        jvp.push(j);
                        ells.push(vec![tape.value(nodes.ell)[[0, 0]]]);
                        losses.push(vec![tape.scalar(nodes.loss)]);
                        let (_, g) = loss_and_gradients(&mut tape, &model, &params, &loss, &batch);
                        grads.push(
                            g.tensors()
                                .flat_map(|a| a.iter().copied())
                                .collect::<Vec<_>>(),
                        );
                    }
                    let p: &PointVariance = &got[bi].points[i];
                    let scale = trace_var(&target) + 1e-12;
                    let checks = [
                        ("tangent", p.tangent, trace_var(&tangent)),
                        ("jvp", p.jvp_term, trace_var(&jvp)),
                        ("target", p.target, trace_var(&target)),
                        ("ell", p.ell, trace_var(&ells)),
                        ("loss", p.loss, trace_var(&losses)),
                        ("gradient", p.gradient, trace_var(&grads)),
                    ];
                    for (name, a, b) in checks {
                        assert!(
                        close(a, b, 1e-6 * scale),
                        "dim {dim} p {power} beta {beta} point {i} {name}: estimator {a} vs tape {b}"
                    );
                    }
                }
            }
        }
    }
}

/// Compares the estimator's mean over points with the mean of the closed forms: |diff| < 4 SE.
fn assert_within_mc_error(flow: &GaussianFlow, source: DataSource, points: usize, seed: u64) {
    let draws = draw_points(source, points, 32, &mut Rng::seed_from_u64(seed));
    let betas = [0.0, 0.5, 1.0];
    let mut exact = *flow;
    let got = estimate(&mut exact, &draws, &betas, 1.0, 1e-3);
    for bv in &got {
        let beta = bv.beta;
        for q in [
            Quantity::Tangent,
            Quantity::JvpTerm,
            Quantity::Target,
            Quantity::Ell,
        ] {
            let form = |r, t| flow.closed_form(q, beta, r, t).unwrap();
            let diffs: Vec<f64> = (0..draws.len())
                .map(|i| q.of(&bv.points[i]) - form(draws.r[i], draws.t[i]))
                .collect();
            let expected = mean_se((0..draws.len()).map(|i| form(draws.r[i], draws.t[i])));
            let d = mean_se(diffs.iter().copied());
            if expected.mean == 0.0 {
                assert!(d.mean.abs() < 1e-20, "{source:?} beta {beta} {q:?}: {d:?}");
                continue;
            }
            assert!(
                d.mean.abs() < 4.0 * d.se,
                "{:?} s {} d {} beta {beta} {}: estimate - closed form = {} (SE {}), closed form {}",
                matches!(source, DataSource::Pool(_)),
                flow.sigma,
                flow.dim,
                q.name(),
                d.mean,
                d.se,
                expected.mean
            );
            // The test has power: the standard error is small against the value. Ell, a square
            // of the heavy-tailed error, has a heavier-tailed SE: over 40 draws of pool and
            // points, SE / value reached 0.084 for Ell and 0.015 for the others.
            let power = if q == Quantity::Ell { 0.12 } else { 0.05 };
            assert!(
                d.se < power * expected.mean,
                "{q:?}: SE {} vs {}",
                d.se,
                expected.mean
            );
        }
        assert!(bv.points.iter().all(|p| p.gradient.is_nan()));
    }
}

#[test]
fn gaussian_closed_forms_with_exact_posterior_draws() {
    for (s, d, seed) in [(0.3, 1, 1), (3.0, 1, 2), (0.3, 3, 3), (3.0, 8, 4)] {
        let flow = GaussianFlow::new(s, d);
        assert_within_mc_error(&flow, DataSource::Gaussian { sigma: s, dim: d }, 3000, seed);
    }
}

#[test]
fn gaussian_closed_forms_with_a_pool_posterior() {
    for (s, seed) in [(0.3, 5), (3.0, 6)] {
        let pool = ToyDataset::Gaussian { sigma: s, dim: 1 }
            .sample(1 << 16, &mut Rng::seed_from_u64(seed));
        let flow = GaussianFlow::new(s, 1);
        assert_within_mc_error(&flow, DataSource::Pool(pool.view()), 1500, seed + 10);
    }
}

#[test]
fn pool_posterior_matches_the_gaussian_posterior() {
    for (s, dim) in [(0.3, 1), (3.0, 1), (1.0, 2)] {
        let pool =
            ToyDataset::Gaussian { sigma: s, dim }.sample(1 << 17, &mut Rng::seed_from_u64(21));
        let mut rng = Rng::seed_from_u64(22);
        for &t in &[0.05, 0.2, 0.5, 0.8, 1.0] {
            let sigma_t = ((1.0 - t) * (1.0 - t) * s * s + t * t).sqrt();
            let z = Array2::from_shape_simple_fn((1, dim), || sigma_t * rng.normal());
            let w = pool_weights(pool.view(), z.row(0), t);
            let (mean, var) = w.mean_and_variance(pool.view());
            let (m_exact, v_exact) = gaussian_posterior(s, z.row(0), t);
            // Self-normalised importance sampling: SE ~ sd / sqrt(ESS), and sd^2 sqrt(2 / ESS).
            let se_mean = (v_exact / w.ess).sqrt();
            let se_var = v_exact * (2.0 / w.ess).sqrt();
            for j in 0..dim {
                assert!(
                    (mean[j] - m_exact[j]).abs() < 4.0 * se_mean,
                    "s {s} t {t}: mean {} vs {} (SE {se_mean}, ESS {})",
                    mean[j],
                    m_exact[j],
                    w.ess
                );
                assert!(
                    (var[j] - v_exact).abs() < 4.0 * se_var,
                    "s {s} t {t}: var {} vs {v_exact} (SE {se_var}, ESS {})",
                    var[j],
                    w.ess
                );
            }
        }
    }
}

#[test]
fn theory_narrow_mf_lower_wide_mf_higher() {
    // Averaged over the triangle 0 < r < t < 1 (midpoint grid), MF's target variance against iMF's.
    let ratio = |s: f64| {
        let f = GaussianFlow::new(s, 1);
        let (mut mf, mut imf) = (0.0, 0.0);
        let n = 200;
        for a in 0..n {
            for b in 0..a {
                let (t, r) = ((a as f64 + 0.5) / n as f64, (b as f64 + 0.5) / n as f64);
                mf += f.var_target(0.0, r, t);
                imf += f.var_target(1.0, r, t);
            }
        }
        mf / imf
    };
    assert!(ratio(0.3) < 1.0, "narrow {}", ratio(0.3));
    assert!(ratio(3.0) > 1.0, "wide {}", ratio(3.0));
}

#[test]
fn exact_model_linearization_matches_finite_differences() {
    let mut flow = GaussianFlow::new(0.7, 2);
    let z = array![[0.3, -1.2], [2.0, 0.5]];
    let (r, t) = ([0.1, 0.4], [0.6, 0.9]);
    let lin = flow.linearize(z.view(), &r, &t);
    let h = 1e-6;
    for i in 0..2 {
        let ti = [t[i] + h];
        let tm = [t[i] - h];
        let zi = z.slice(ndarray::s![i..i + 1, ..]);
        let up = flow.u(zi, &r[i..i + 1], &ti);
        let dn = flow.u(zi, &r[i..i + 1], &tm);
        for j in 0..2 {
            let fd = (up[[0, j]] - dn[[0, j]]) / (2.0 * h);
            assert!((fd - lin.dt[[i, j]]).abs() < 1e-6 * (1.0 + fd.abs()));
        }
        assert_eq!(lin.jac[[i, 0, 1]], 0.0);
        assert!((lin.v_hat[[i, 0]] - flow.velocity_coef(t[i]) * z[[i, 0]]).abs() < 1e-15);
    }
}

#[test]
fn per_sample_noise_is_flat_in_batch_size_for_iid_rows() {
    let model = small_model(2);
    let params = MlpParams::<f64>::init(&model, &mut Rng::seed_from_u64(5));
    let data = ToyDataset::TwoMoons.sample(2000, &mut Rng::seed_from_u64(6));
    let mut config = TrainConfig {
        model,
        loss: LossConfig::preset(LossPreset::Mf),
        time: TimeSampler {
            distribution: TimeDistribution::Uniform,
            fraction_equal: 0.0,
            r_distribution: None,
        },
        adam: Default::default(),
        batch: 1,
        ema_decay: None,
        seed: 0,
        threads: 1,
    };
    for preset in [LossPreset::Mf, LossPreset::Imf] {
        config.loss = LossConfig::preset(preset);
        let small = minibatch_noise(&config, &data, &params, 2, 600, 7);
        let large = minibatch_noise(&config, &data, &params, 16, 600, 8);
        let diff = small.per_sample - large.per_sample;
        let se = ((2.0 * small.trace_cov_se).powi(2) + (16.0 * large.trace_cov_se).powi(2)).sqrt();
        assert!(
            diff.abs() < 4.0 * se,
            "{preset:?}: B tr Cov {} (B = 2) vs {} (B = 16), SE {se}",
            small.per_sample,
            large.per_sample
        );
    }
}

#[test]
fn exact_gradient_equals_stop_gradient_where_r_equals_t() {
    let model = small_model(2);
    let params = MlpParams::<f64>::init(&model, &mut Rng::seed_from_u64(5));
    let data = ToyDataset::TwoMoons.sample(500, &mut Rng::seed_from_u64(6));
    let all_equal = TimeSampler {
        fraction_equal: 1.0,
        ..TimeSampler::imf_default()
    };
    for preset in [LossPreset::Mf, LossPreset::Imf] {
        let loss = LossConfig::preset(preset);
        let a = exact_angle(&model, &loss, all_equal, &data, &params, 8, 3, 1);
        assert!((a.cos_mean - 1.0).abs() < 1e-12, "{a:?}");
        assert!((a.norm_ratio - 1.0).abs() < 1e-12, "{a:?}");
        let b = exact_angle(
            &model,
            &loss,
            TimeSampler::mf_default(),
            &data,
            &params,
            8,
            3,
            1,
        );
        assert!(b.cos_mean < 1.0 - 1e-9 && b.cos_mean > -1.0, "{b:?}");
    }
}

#[test]
fn mlp_gram_trace_is_the_squared_parameter_jacobian() {
    // tr G = sum_a |d u_a / d theta|^2 > 0, and G is symmetric positive semi-definite.
    let model = small_model(2);
    let params = MlpParams::<f64>::init(&model, &mut Rng::seed_from_u64(3));
    let mut net = MlpVelocity::new(model, &params);
    let z = array![[0.5, -0.1]];
    let g = net.parameter_gram(z.view(), &[0.2], &[0.7]).unwrap();
    assert_eq!(g[[0, 0, 1]], g[[0, 1, 0]]);
    assert!(g[[0, 0, 0]] > 0.0 && g[[0, 1, 1]] > 0.0);
    assert!(g[[0, 0, 0]] * g[[0, 1, 1]] >= g[[0, 0, 1]].powi(2));
}

// ----- the instruments end to end -----------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_meanflow");

fn run_instrument(name: &str, datasets: &str) -> std::path::PathBuf {
    run_instrument_in(name, name, datasets)
}

/// `meanflow study <name> --quick` into `study-variance/<folder>` (one folder per test).
fn run_instrument_in(folder: &str, name: &str, datasets: &str) -> std::path::PathBuf {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("study-variance")
        .join(folder);
    let _ = std::fs::remove_dir_all(&out);
    let status = std::process::Command::new(BIN)
        .args(["study", name, "--quick", "--datasets", datasets, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "study {name}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out.join(name)
}

fn assert_files(dir: &std::path::Path, names: &[&str]) {
    for n in names {
        let p = dir.join(n);
        let len = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .len();
        assert!(len > 0, "{} is empty", p.display());
    }
}

fn summary_heading(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    text.lines().next().unwrap_or_default().to_string()
}

#[test]
fn study_variance_quick_writes_its_files() {
    let dir = run_instrument("variance", "two_moons,gaussian_narrow");
    assert_files(
        &dir,
        &[
            "averages.csv",
            "by_t.csv",
            "by_gap.csv",
            "summary.json",
            "target_vs_t_two_moons.png",
            "target_vs_gap_gaussian_narrow.png",
            "gradient_vs_gap_two_moons.png",
            "beta_gaussian_narrow.png",
        ],
    );
    assert_eq!(
        summary_heading(&dir),
        "## 1. Conditional variance at fixed z_t"
    );
    let csv = std::fs::read_to_string(dir.join("averages.csv")).unwrap();
    // 2 datasets x 3 parameter sets x 3 betas x 6 quantities, and the header.
    assert_eq!(csv.lines().count(), 1 + 2 * 3 * 3 * 6);
    assert!(!csv.contains("inf"), "{csv}");
}

#[test]
fn study_gradient_noise_quick_writes_its_files() {
    let dir = run_instrument("gradient-noise", "gaussian_wide");
    assert_files(
        &dir,
        &[
            "noise.csv",
            "angle.csv",
            "summary.json",
            "noise_beta_gaussian_wide.png",
            "noise_batch_gaussian_wide.png",
            "angle_gaussian_wide.png",
        ],
    );
    assert_eq!(summary_heading(&dir), "## 2. Gradient noise");
}

#[test]
fn study_gaussian_quick_writes_its_files() {
    let dir = run_instrument("gaussian", "two_moons");
    assert_files(
        &dir,
        &[
            "closed_form_check.csv",
            "u_error.csv",
            "target_ratio.csv",
            "exact_ratio.csv",
            "summary.json",
            "u_error_gaussian_narrow_mf.png",
            "u_error_gaussian_wide_imf.png",
            "u_error_gaussian_narrow.png",
            "target_ratio_gaussian_wide.png",
        ],
    );
    assert_eq!(summary_heading(&dir), "## 5. A ground truth: Gaussian data");
    // With no Gaussian among --datasets, the instrument uses narrow and wide.
    let ratios = std::fs::read_to_string(dir.join("target_ratio.csv")).unwrap();
    assert!(ratios.contains("gaussian_narrow,closed form"));
    assert!(ratios.contains("gaussian_wide,u*"));
    // The exact ratios (quadrature), whatever the sample: 0.601324 narrow, 3.429074 wide.
    let exact = std::fs::read_to_string(dir.join("exact_ratio.csv")).unwrap();
    let ratio_of = |name: &str| -> f64 {
        let line = exact.lines().find(|l| l.starts_with(name)).unwrap();
        line.split(',').nth(5).unwrap().parse().unwrap()
    };
    assert!((ratio_of("gaussian_narrow,") - 0.601_324_377).abs() < 1e-8);
    assert!((ratio_of("gaussian_wide,") - 3.429_073_862).abs() < 1e-8);
}

/// The 64-D digits through instrument 1 end to end, at a tiny size: the shared models train on
/// the 1497 training rows in model units, the posterior redraws are training rows, and the
/// estimates keep their definitions in 64-D: iMF's target variance is tr Var[v_c | z_t] itself
/// (the same at every parameter set), MF's is tr Var[(I - (t - r) J) v_c | z_t] with J the
/// model's own Jacobian, and the report's ratio is the one of their means.
#[test]
fn the_digits_go_through_instrument_1() {
    let fixture = FixtureSettings {
        steps: 20,
        ..FixtureSettings::quick(2)
    };
    let mut models = ModelCache::with_digits(FixtureSettings::quick(2), fixture);
    let settings = VarianceSettings {
        points: 2,
        digits_points: 24,
        draws: 6,
        betas: vec![0.0, 1.0],
        bins: 2,
    };
    let digits = StudyDataset::Digits;
    let results = run_variance(&[digits], &mut models, &settings, 5, 1);
    let mf = models.get(&digits, LossPreset::Mf).clone();
    assert_eq!(mf.config.model.dim, 64);
    assert_eq!(mf.data, digits.pool(0), "the pool is the training split");
    let res = &results[0];
    assert_eq!(res.name, "digits");
    assert_eq!(res.draws.z.dim(), (24, 64), "digits_points, not points");
    assert_eq!(res.draws.x.dim(), (24, 6, 64));
    // Every redraw is a training row.
    let first = res.draws.x.slice(ndarray::s![0, 0, ..]);
    assert!(mf.data.rows().into_iter().any(|row| row == first));
    let labels: Vec<&str> = res.params.iter().map(|p| p.label).collect();
    assert_eq!(labels, vec!["initial", "mf", "imf"]);

    // tr Var[v_c | z_t] per point, from the draws alone.
    let v_c_var: Vec<f64> = (0..24)
        .map(|i| {
            let t = res.draws.t[i];
            let rows: Vec<Vec<f64>> = (0..6)
                .map(|k| {
                    (0..64)
                        .map(|j| (res.draws.z[[i, j]] - res.draws.x[[i, k, j]]) / t)
                        .collect()
                })
                .collect();
            trace_var(&rows)
        })
        .collect();
    assert!(
        v_c_var.iter().any(|v| *v > 0.0),
        "no point with posterior spread: {v_c_var:?}"
    );
    let sets = [
        ("initial", &mf.initial),
        ("mf", &mf.trained),
        ("imf", &models.get(&digits, LossPreset::Imf).trained.clone()),
    ];
    for (label, params) in sets {
        let imf_target = res.values(label, 1.0, Quantity::Target);
        let mf_target = res.values(label, 0.0, Quantity::Target);
        let gradient = res.values(label, 0.0, Quantity::Gradient);
        assert_eq!(imf_target.len(), 24);
        for i in 0..24 {
            assert!(close(imf_target[i], v_c_var[i], 1e-12), "{label} point {i}");
            assert!(mf_target[i].is_finite() && mf_target[i] >= 0.0);
            assert!(gradient[i].is_finite() && gradient[i] >= 0.0);
        }
        // MF's target: (I - h J) v_c up to a constant, with J from the model's linearisation.
        let mut velocity = MlpVelocity::new(mf.config.model, params);
        let lin = velocity.linearize(res.draws.z.view(), &res.draws.r, &res.draws.t);
        for (i, &mf_target_i) in mf_target.iter().enumerate() {
            let (t, h) = (res.draws.t[i], res.draws.t[i] - res.draws.r[i]);
            let rows: Vec<Vec<f64>> = (0..6)
                .map(|k| {
                    let v: Vec<f64> = (0..64)
                        .map(|j| (res.draws.z[[i, j]] - res.draws.x[[i, k, j]]) / t)
                        .collect();
                    (0..64)
                        .map(|a| v[a] - h * (0..64).map(|b| lin.jac[[i, a, b]] * v[b]).sum::<f64>())
                        .collect()
                })
                .collect();
            assert!(
                close(mf_target_i, trace_var(&rows), 1e-12),
                "{label} point {i}"
            );
        }
    }
    let summaries = res.summaries();
    for row in &summaries {
        assert!(
            row.target.1.mean > 0.0 && row.target.0.mean > 0.0,
            "{row:?}"
        );
        assert_eq!(row.target_ratio(), row.target.0.mean / row.target.1.mean);
        assert!(row.map_gain.mean.is_finite() && row.map_gain.mean > 0.0);
        assert!(row.ess_median >= 1.0);
    }
}

#[test]
fn study_variance_quick_runs_on_the_digits() {
    let dir = run_instrument_in("variance-digits", "variance", "two_moons,digits");
    assert_files(
        &dir,
        &[
            "averages.csv",
            "summary.json",
            "target_vs_gap_digits.png",
            "beta_two_moons.png",
        ],
    );
    let averages = std::fs::read_to_string(dir.join("averages.csv")).unwrap();
    assert!(averages.contains("\ndigits,mf,0,target,"));
    assert!(averages.contains("\ntwo_moons,imf,1,target,"));
}
