//! Study instruments 3 (training curves) and 4 (the MeanFlow identity) on tiny settings: the
//! integrator against closed forms, the identity on a model that satisfies it exactly, the
//! conditional-variance floor against the Gaussian closed form, determinism of the parallel runs,
//! and the `meanflow study curves` / `identity` commands end to end with `--quick`.

use meanflow::data::ToyDataset;
use meanflow::flow::loss::{Batch, LossPreset};
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::flow::sampling::{noise, sample_euler_flow, Evaluator};
use meanflow::rng::Rng;
use meanflow::study::curves::{
    batch_errors, conditional_velocity_variance, least_squares_slope, mean_sd, run_curves,
    CurveSettings, CurvesResult, EvalSet,
};
use meanflow::study::dataset::StudyDataset;
use meanflow::study::fixture::{FixtureSettings, ModelCache};
use meanflow::study::identity::{identity_check, integrate_back, IdentitySettings};
use ndarray::{array, Array2, ArrayView2};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_meanflow");

fn model(dim: usize) -> ModelConfig {
    ModelConfig {
        dim,
        width: 16,
        depth: 2,
        ..ModelConfig::default()
    }
}

fn max_rel(a: ArrayView2<f64>, b: ArrayView2<f64>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs() / y.abs().max(1e-300))
        .fold(0.0, f64::max)
}

/// dz/dtau = a z and dz/dtau = tau z, integrated backwards through several stops: RK4 with 64
/// steps per unit time is exact to ~1e-10 relative.
#[test]
fn rk4_back_integration_matches_closed_forms() {
    let z_t = array![[1.0, -2.0], [0.5, 3.0]];
    let (t, stops) = (0.9, [0.6, 0.25, 0.0]);
    let a = 0.7;
    let mut linear = |z: ArrayView2<f64>, _tau: f64| z.mapv(|x| a * x);
    let got = integrate_back(&mut linear, z_t.view(), t, &stops, 64);
    for (z_r, &r) in got.iter().zip(&stops) {
        let want = z_t.mapv(|x| x * (a * (r - t)).exp());
        assert!(max_rel(z_r.view(), want.view()) < 1e-10, "r = {r}");
    }
    let mut timed = |z: ArrayView2<f64>, tau: f64| z.mapv(|x| tau * x);
    let got = integrate_back(&mut timed, z_t.view(), t, &stops, 64);
    for (z_r, &r) in got.iter().zip(&stops) {
        let want = z_t.mapv(|x| x * (0.5 * (r * r - t * t)).exp());
        assert!(max_rel(z_r.view(), want.view()) < 1e-10, "r = {r}");
    }
    // Fourth order: halving the step divides the error by about 16.
    let err = |n: usize| {
        let mut f = |z: ArrayView2<f64>, tau: f64| z.mapv(|x| (3.0 * tau).sin() * x * 2.0);
        let z = integrate_back(&mut f, z_t.view(), 1.0, &[0.0], n).remove(0);
        let want = z_t.mapv(|x| {
            x * (2.0 / 3.0 * ((3.0f64 * 0.0).cos() - 3.0f64.cos()))
                .exp()
                .recip()
        });
        max_rel(z.view(), want.view())
    };
    let ratio = err(32) / err(64);
    assert!((12.0..20.0).contains(&ratio), "error ratio {ratio}");
}

/// On a trained model, RK4 from t = 1 to 0 agrees with the project's Euler flow sampler
/// (`sample_euler_flow`, first order) as its step shrinks.
#[test]
fn rk4_agrees_with_the_euler_flow_sampler_on_a_trained_model() {
    let mut cache = ModelCache::new(FixtureSettings::quick(1));
    let m = cache
        .get(&ToyDataset::TwoMoons.into(), LossPreset::Imf)
        .clone();
    let z1 = noise::<f64>(64, 2, &mut Rng::seed_from_u64(3));
    let mut eval = Evaluator::new(m.config.model, &m.trained);
    let mut v = |z: ArrayView2<f64>, tau: f64| eval.velocity(z, tau);
    let rk4 = integrate_back(&mut v, z1.view(), 1.0, &[0.0], 64).remove(0);
    let gap = |steps: usize| {
        let euler = sample_euler_flow(m.config.model, &m.trained, z1.view(), steps);
        (&euler - &rk4)
            .mapv(f64::abs)
            .fold(0.0, |a: f64, &b| a.max(b))
    };
    let (coarse, fine) = (gap(250), gap(2000));
    // First order: 8 times the steps, about 1/8 of the gap.
    assert!(fine < 0.2 * coarse && fine < 1e-2, "gaps {coarse} {fine}");
}

/// A model whose u is a constant b (u-head weight zero) is its own average velocity: residual 0
/// up to rounding, and the 1-step samples are the ODE endpoints.
#[test]
fn a_constant_model_satisfies_the_identity_exactly() {
    let cfg = model(2);
    let mut params = MlpParams::<f64>::init(&cfg, &mut Rng::seed_from_u64(1));
    params.u_head.weight.fill(0.0);
    params.u_head.bias = array![[0.3, -1.2]];
    let pool = ToyDataset::TwoMoons.sample(500, &mut Rng::seed_from_u64(2));
    let r = identity_check(
        &cfg,
        &params,
        pool.view(),
        &ToyDataset::TwoMoons.into(),
        &IdentitySettings::quick(),
        0,
    );
    let g = IdentitySettings::quick().grid;
    assert_eq!(r.cells.len(), g * (g + 1) / 2);
    for c in &r.cells {
        assert!(c.r < c.t);
        assert!(c.residual < 1e-28, "{c:?}");
        assert!((c.u_ode_sq - 1.53).abs() < 1e-12, "{c:?}");
    }
    assert!(r.mean_distance < 1e-13, "{}", r.mean_distance);
    let grid = r.residual_grid();
    for i in 0..g {
        for j in 0..g {
            // Row i is t = (i + 1) / g, column j is r = j / g: defined iff j <= i.
            assert_eq!(grid[[i, j]].is_nan(), j > i, "cell ({i}, {j})");
        }
    }
}

/// On the 64-D digits the identity check runs on the training pool and compares with the 300
/// held-out rows; a constant model satisfies the identity there too.
#[test]
fn the_identity_check_runs_on_the_digits() {
    let digits = StudyDataset::Digits;
    let cfg = model(64);
    let mut params = MlpParams::<f64>::init(&cfg, &mut Rng::seed_from_u64(1));
    params.u_head.weight.fill(0.0);
    params.u_head.bias.fill(0.25);
    let pool = digits.pool(0);
    let settings = IdentitySettings {
        grid: 2,
        points: 16,
        steps_per_unit: 4,
        check_points: 4,
    };
    let r = identity_check(&cfg, &params, pool.view(), &digits, &settings, 0);
    assert_eq!(r.held_out.dim(), (300, 64));
    assert_eq!(r.one_step.dim(), (16, 64));
    for c in &r.cells {
        assert!(c.residual < 1e-28, "{c:?}");
    }
    assert!(r.mean_distance < 1e-13);
    // The floor: 16 training rows against the held-out rows, finite and above 0.
    assert!(r.sw1_floor > 0.0 && r.sw1_floor.is_finite());
    assert!(
        r.sw1_one_step > r.sw1_floor,
        "a constant shift is not the data"
    );
}

/// A random (untrained) model is not self-consistent: its residuals stand far above the
/// integration error, which the halving check keeps tiny.
#[test]
fn an_untrained_model_violates_the_identity_well_above_the_integration_error() {
    let cfg = model(2);
    let params = MlpParams::<f64>::init(&cfg, &mut Rng::seed_from_u64(5));
    let pool = ToyDataset::TwoMoons.sample(500, &mut Rng::seed_from_u64(2));
    let r = identity_check(
        &cfg,
        &params,
        pool.view(),
        &ToyDataset::TwoMoons.into(),
        &IdentitySettings::quick(),
        0,
    );
    let (median, max) = r.residual_median_max();
    assert!(median > 1e-4 && max >= median, "median {median}, max {max}");
    assert!(r.max_integration_error() < 1e-6 * median);
    assert!(r.sw1_one_step.is_finite() && r.sw1_ode.is_finite() && r.sw1_floor > 0.0);
    assert!(r.mean_distance > 0.0);
}

/// x ~ N(0, s^2): Var[v_c | z_t] = s^2 / ((1 - t)^2 s^2 + t^2) per dimension.
#[test]
fn the_variance_floor_matches_the_gaussian_closed_form() {
    let s = 0.5;
    let mut rng = Rng::seed_from_u64(3);
    let pool = Array2::from_shape_simple_fn((40_000, 1), || s * rng.normal());
    let ts = [0.1, 0.3, 0.5, 0.8, 0.95];
    let z = Array2::from_shape_fn((ts.len(), 1), |(i, _)| (1.0 - ts[i]) * 0.4 + ts[i] * 0.3);
    let got = conditional_velocity_variance(z.view(), &ts, pool.view());
    for (&t, &g) in ts.iter().zip(&got) {
        let want = s * s / ((1.0 - t).powi(2) * s * s + t * t);
        assert!((g - want).abs() < 0.03 * want, "t = {t}: {g} vs {want}");
    }
}

#[test]
fn slope_and_spread_helpers() {
    let x = [1.0, 2.0, 3.0, 4.0];
    let y: Vec<f64> = x.iter().map(|v| 2.0 - 0.25 * v).collect();
    assert!((least_squares_slope(&x, &y) + 0.25).abs() < 1e-15);
    assert!(least_squares_slope(&[1.0, 1.0], &[0.0, 1.0]).is_nan());
    let (m, sd) = mean_sd(&[1.0, 2.0, 3.0]);
    assert_eq!((m, sd), (2.0, 1.0));
    assert_eq!(mean_sd(&[4.0]), (4.0, 0.0));
}

/// On rows with r = t all three errors are |u(z, t, t) - v_c|^2.
#[test]
fn batch_errors_agree_where_r_equals_t() {
    let cfg = model(2);
    let params = MlpParams::<f64>::init(&cfg, &mut Rng::seed_from_u64(7));
    let mut rng = Rng::seed_from_u64(8);
    let mut normals = |shape| Array2::from_shape_simple_fn(shape, || rng.normal());
    let t = Array2::from_shape_fn((9, 1), |(i, _)| 0.05 + 0.1 * i as f64);
    let batch = Batch {
        x: normals((9, 2)),
        e: normals((9, 2)),
        r: t.clone(),
        t,
        labels: Vec::new(),
        scales: ndarray::Array2::zeros((0, 1)),
        intervals: ndarray::Array2::zeros((0, 2)),
    };
    let e = batch_errors(&cfg, &params, &batch);
    assert!(e.fm > 0.0);
    assert!((e.v_mf - e.fm).abs() < 1e-12 * e.fm && (e.v_imf - e.fm).abs() < 1e-12 * e.fm);
}

fn without_times(mut r: CurvesResult) -> CurvesResult {
    for d in &mut r.datasets {
        for run in &mut d.runs {
            run.seconds = 0.0;
        }
    }
    r
}

/// Quick curves: the shapes, finite values, and the same numbers with one or two workers.
#[test]
fn quick_curves_are_deterministic_whatever_the_workers() {
    let datasets = [ToyDataset::gaussian_narrow()];
    let model = FixtureSettings::quick(0);
    let two = CurveSettings::quick();
    let one = CurveSettings { workers: 1, ..two };
    let a = run_curves(&datasets, &model, &two, 11, &|_| {});
    let b = run_curves(&datasets, &model, &one, 11, &|_| {});
    assert_eq!(without_times(a.clone()).datasets, without_times(b).datasets);
    let d = &a.datasets[0];
    assert_eq!(d.runs.len(), 2 * two.seeds);
    assert!(d.floor > 0.0 && d.sw1_floor > 0.0);
    for run in &d.runs {
        assert_eq!(run.log.len() as u64, two.steps / two.log_every);
        assert_eq!(run.checkpoints.len(), two.checkpoints);
        assert_eq!(run.checkpoints.last().unwrap().step, two.steps);
        assert!(run.final_mse > 0.0 && run.slope_per_1k.is_finite());
        for c in &run.checkpoints {
            assert!(c.sw1 > 0.0 && c.errors.fm > 0.0 && c.errors.v_mf > 0.0);
        }
    }
    // Seeds differ, losses share a seed's initial parameters and data.
    assert_ne!(d.runs[0].log, d.runs[1].log);
    for s in &d.summaries {
        assert!(s.final_mse.0.is_finite() && s.final_mse.1 >= 0.0);
    }
}

/// The eval set is a function of the dataset, settings and seed.
#[test]
fn the_eval_set_is_reproducible() {
    let s = CurveSettings::quick();
    let a = EvalSet::new(&ToyDataset::TwoMoons, &s, 4);
    let b = EvalSet::new(&ToyDataset::TwoMoons, &s, 4);
    assert_eq!(a.batch, b.batch);
    assert_eq!(a.floor, b.floor);
    assert!(a.batch.r.iter().zip(a.batch.t.iter()).all(|(r, t)| r < t));
}

/// Instrument 4 on a quick fixture model: every cell finite and far above the integration error.
#[test]
fn quick_identity_on_a_trained_fixture_model() {
    let mut cache = ModelCache::new(FixtureSettings::quick(2));
    let ds = StudyDataset::Toy(ToyDataset::TwoMoons);
    let m = cache.get(&ds, LossPreset::Mf).clone();
    let r = identity_check(
        &m.config.model,
        &m.trained,
        m.data.view(),
        &ds,
        &IdentitySettings::quick(),
        2,
    );
    for c in &r.cells {
        assert!(c.residual.is_finite() && c.residual > 0.0, "{c:?}");
        assert!(c.integration_error < 1e-6 * c.residual, "{c:?}");
    }
    assert!(r.cell(0.0, 1.0).is_some());
    assert_eq!(r.one_step.dim(), (IdentitySettings::quick().points, 2));
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("study_training")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn study(instrument: &str, out: &Path) -> String {
    let output = Command::new(BIN)
        .args(["study", instrument, "--quick", "--datasets"])
        .args(["gaussian_narrow,two_moons", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "study {instrument} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(out.join(instrument).join("summary.md")).expect("summary.md")
}

#[test]
fn study_curves_quick_writes_its_files() {
    let out = scratch("curves");
    let summary = study("curves", &out);
    assert!(summary.starts_with("## 3. Training curves"), "{summary}");
    assert!(
        summary.contains("| two_moons | MF |") && summary.contains("| gaussian_narrow | iMF |")
    );
    let dir = out.join("curves");
    for f in ["curves.csv", "checkpoints.csv", "curves.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for ds in ["two_moons", "gaussian_narrow"] {
        for kind in ["mse", "loss", "sw1", "errors"] {
            assert!(
                dir.join(format!("{kind}_{ds}.png")).is_file(),
                "{kind}_{ds}"
            );
        }
    }
    let csv = std::fs::read_to_string(dir.join("curves.csv")).unwrap();
    // 2 datasets x 2 losses x 2 seeds x 10 logged points, plus the header.
    assert_eq!(csv.lines().count(), 1 + 2 * 2 * 2 * 10);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("curves.json")).unwrap()).unwrap();
    assert_eq!(json["datasets"].as_array().unwrap().len(), 2);
}

#[test]
fn study_identity_quick_writes_its_files() {
    let out = scratch("identity");
    let summary = study("identity", &out);
    assert!(
        summary.starts_with("## 4. The MeanFlow identity"),
        "{summary}"
    );
    let dir = out.join("identity");
    assert!(dir.join("identity.csv").is_file() && dir.join("identity.json").is_file());
    for ds in ["two_moons", "gaussian_narrow"] {
        for loss in ["mf", "imf"] {
            for kind in ["residual", "samples"] {
                let f = dir.join(format!("{kind}_{ds}_{loss}.png"));
                assert!(f.is_file(), "{}", f.display());
            }
        }
    }
    let csv = std::fs::read_to_string(dir.join("identity.csv")).unwrap();
    let g = IdentitySettings::quick().grid;
    assert_eq!(csv.lines().count(), 1 + 4 * g * (g + 1) / 2);
}
