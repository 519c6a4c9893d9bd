//! `meanflow study gaussian`: instrument 5 (study::gaussian). Isotropic Gaussian data, where the
//! average velocity u* and the conditional variances are closed form:
//!
//! 1. the estimator of instrument 1 with u* itself, against the closed forms (posterior from the
//!    pool and exact posterior draws; d = 1 and d = 8), as z-scores;
//! 2. the trained models (MF and iMF fixtures) against u* on an (r, t) grid;
//! 3. MF's against iMF's target variance measured with the trained networks (their own Jacobians),
//!    with u*, and in closed form: theory says MF's is lower for the narrow Gaussian (the map back
//!    in time contracts, sigma_r < sigma_t) and higher for the wide one.
//!
//! Files: `closed_form_check.csv`, `u_error.csv`, `target_ratio.csv`, `summary.json`, and per dataset
//! `u_error_<d>_<loss>.png` (log10 of RMS |u - u*| / target scale over (r, t), the target scale
//! being sqrt(E|v(z, t)|^2 + tr Var[v_c | z])), `u_error_<d>.png` (the same along
//! r = t and the smallest r), `target_ratio_<d>.png` (MF/iMF target variance vs t - r).

use super::conditional_variance::{
    chart, file_part, num, ratio_text, stream_index, timing_line, Settings as VarianceSettings,
};
use super::{write_text, StudyContext};
use crate::cli::{CliError, CliResult};
use meanflow::data::toy::{GAUSSIAN_NARROW_SIGMA, GAUSSIAN_WIDE_SIGMA};
use meanflow::data::ToyDataset;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::sampling::Evaluator;
use meanflow::plot::{heatmap, palette, Series};
use meanflow::rng::Rng;
use meanflow::study::conditional_variance::{
    bin_centres, binned, estimate, mean_se, median, MlpVelocity, Quantity,
};
use meanflow::study::gaussian::{u_errors, GaussianFlow, UError};
use meanflow::study::posterior::{draw_points, DataSource, PosteriorDraws};
use meanflow::train::builtin_pool_points;
use ndarray::Array2;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
struct Settings {
    /// Points and redraws of the closed-form check.
    check_points: usize,
    check_draws: usize,
    check_dims: Vec<usize>,
    /// The (r, t) grid of the error of u: `grid` values per axis, `grid_z` points z per cell.
    grid: usize,
    grid_z: usize,
    /// Points and redraws of the MF / iMF target comparison with the trained networks.
    variance: VarianceSettings,
}

impl Settings {
    fn new(quick: bool) -> Self {
        if quick {
            Settings {
                check_points: 128,
                check_draws: 16,
                check_dims: vec![1, 2],
                grid: 6,
                grid_z: 64,
                variance: VarianceSettings::new(true),
            }
        } else {
            Settings {
                check_points: 2048,
                check_draws: 64,
                check_dims: vec![1, 8],
                grid: 20,
                grid_z: 512,
                variance: VarianceSettings::new(false),
            }
        }
    }
}

#[derive(Clone, Debug, Serialize)]
struct CheckRow {
    sigma: f64,
    dim: usize,
    posterior: &'static str,
    beta: f64,
    quantity: &'static str,
    estimate: f64,
    closed_form: f64,
    /// (estimate - closed form) / SE, SE from the per-point differences.
    z_score: f64,
    ess_median: f64,
}

/// Part 1: the estimator with u* against the closed forms.
fn closed_form_check(settings: &Settings, seed: u64) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    for sigma in [GAUSSIAN_NARROW_SIGMA, GAUSSIAN_WIDE_SIGMA] {
        for &dim in &settings.check_dims {
            let ds = ToyDataset::Gaussian { sigma, dim };
            let pool = ds.sample(builtin_pool_points(dim), &mut Rng::stream(seed, 2));
            let mut rng = Rng::stream(seed, stream_index(5, &ds.name()));
            let flow = GaussianFlow::new(sigma, dim);
            for (posterior, source) in [
                ("pool", DataSource::Pool(pool.view())),
                ("exact", DataSource::Gaussian { sigma, dim }),
            ] {
                let draws = draw_points(
                    source,
                    settings.check_points,
                    settings.check_draws,
                    &mut rng,
                );
                let ess = median(draws.ess.iter().copied());
                let betas = [0.0, 0.5, 1.0];
                let got = estimate(&mut flow.clone(), &draws, &betas, 1.0, 1e-3);
                for bv in &got {
                    let b = bv.beta;
                    for q in Quantity::ALL {
                        let Some(cf) = (0..draws.len())
                            .map(|i| flow.closed_form(q, b, draws.r[i], draws.t[i]))
                            .collect::<Option<Vec<f64>>>()
                        else {
                            continue;
                        };
                        let diff = mean_se((0..draws.len()).map(|i| q.of(&bv.points[i]) - cf[i]));
                        let est = mean_se(bv.points.iter().map(|p| q.of(p)));
                        rows.push(CheckRow {
                            sigma,
                            dim,
                            posterior,
                            beta: b,
                            quantity: q.name(),
                            estimate: est.mean,
                            closed_form: mean_se(cf.iter().copied()).mean,
                            z_score: if diff.se > 0.0 {
                                diff.mean / diff.se
                            } else {
                                0.0
                            },
                            ess_median: ess,
                        });
                    }
                }
            }
        }
    }
    rows
}

#[derive(Clone, Debug, Serialize)]
struct ModelError {
    dataset: String,
    sigma: f64,
    loss: &'static str,
    cells: Vec<UError>,
    /// One-step samples x = z_1 - u(z_1, 0, 1): their standard deviation per coordinate vs sigma.
    one_step_std: f64,
    /// Relative RMS error of u(., 0, 1) against u*.
    one_step_relative: f64,
}

/// Part 2: a trained model's u against u* on the (r, t) grid (r <= t, both at bin centres).
fn model_error(
    ds: &ToyDataset,
    loss: &'static str,
    model: &meanflow::study::fixture::TrainedModel,
    flow: &GaussianFlow,
    settings: &Settings,
    rng: &mut Rng,
) -> ModelError {
    let g = settings.grid;
    let centres = bin_centres(0.0, 1.0, g);
    let mut pairs = Vec::new();
    for (j, &t) in centres.iter().enumerate() {
        for &r in &centres[..=j] {
            pairs.push((r, t));
        }
    }
    let cells = u_errors(
        model.config.model,
        &model.trained,
        flow,
        &pairs,
        settings.grid_z,
        rng,
    );
    let one = u_errors(
        model.config.model,
        &model.trained,
        flow,
        &[(0.0, 1.0)],
        4 * settings.grid_z,
        rng,
    );
    let n = 4 * settings.grid_z;
    let z1 = Array2::from_shape_simple_fn((n, flow.dim), || rng.normal());
    let mut eval = Evaluator::new(model.config.model, &model.trained);
    let x = &z1 - &eval.u_at(z1.view(), 0.0, 1.0);
    let var =
        x.mapv(|v| v * v).sum() / (n * flow.dim) as f64 - (x.sum() / (n * flow.dim) as f64).powi(2);
    ModelError {
        dataset: ds.name(),
        sigma: flow.sigma,
        loss,
        cells,
        one_step_std: var.sqrt(),
        one_step_relative: one[0].relative,
    }
}

#[derive(Clone, Debug, Serialize)]
struct RatioRow {
    dataset: String,
    /// "closed form", "u*", "mf net", "imf net", "initial net".
    model: &'static str,
    mf_target: f64,
    mf_target_se: f64,
    imf_target: f64,
    imf_target_se: f64,
    ratio: f64,
    /// MF/iMF per bin of t - r.
    ratio_by_gap: Vec<f64>,
    /// MF/iMF per bin of t.
    ratio_by_t: Vec<f64>,
}

/// Part 3: MF vs iMF target variance with the trained networks, u* and the closed form.
fn target_ratios(
    ds: &ToyDataset,
    flow: &GaussianFlow,
    models: [(&'static str, &meanflow::study::fixture::TrainedModel); 2],
    settings: &VarianceSettings,
    seed: u64,
) -> (Vec<RatioRow>, PosteriorDraws) {
    let pool = &models[0].1.data;
    let mut rng = Rng::stream(seed, stream_index(6, &ds.name()));
    let draws = draw_points(
        DataSource::Pool(pool.view()),
        settings.points,
        settings.draws,
        &mut rng,
    );
    let gaps: Vec<f64> = draws.t.iter().zip(&draws.r).map(|(t, r)| t - r).collect();
    let bins = settings.bins;
    let weight = LossConfig::preset(LossPreset::Mf);
    let row = |model: &'static str, mf: Vec<f64>, imf: Vec<f64>| {
        let (a, b) = (mean_se(mf.iter().copied()), mean_se(imf.iter().copied()));
        let by = |keys: &[f64]| {
            binned(&mf, keys, 0.0, 1.0, bins)
                .iter()
                .zip(binned(&imf, keys, 0.0, 1.0, bins))
                .map(|(x, y)| x.mean / y.mean)
                .collect()
        };
        RatioRow {
            dataset: ds.name(),
            model,
            mf_target: a.mean,
            mf_target_se: a.se,
            imf_target: b.mean,
            imf_target_se: b.se,
            ratio: a.mean / b.mean,
            ratio_by_gap: by(&gaps),
            ratio_by_t: by(&draws.t),
        }
    };
    let mut rows = Vec::new();
    let cf = |beta| -> Vec<f64> {
        (0..draws.len())
            .map(|i| flow.var_target(beta, draws.r[i], draws.t[i]))
            .collect()
    };
    rows.push(row("closed form", cf(0.0), cf(1.0)));
    let targets = |est: Vec<meanflow::study::conditional_variance::BetaVariances>| {
        let pick = |k: usize| est[k].points.iter().map(|p| p.target).collect::<Vec<_>>();
        (pick(0), pick(1))
    };
    let (a, b) = targets(estimate(
        &mut flow.clone(),
        &draws,
        &[0.0, 1.0],
        weight.p,
        weight.c,
    ));
    rows.push(row("u*", a, b));
    for (label, params) in [
        ("mf net", &models[0].1.trained),
        ("imf net", &models[1].1.trained),
        ("initial net", &models[0].1.initial),
    ] {
        let mut net = MlpVelocity::new(models[0].1.config.model, params);
        // Only the target is needed: skip the Gram matrices by estimating through a wrapper.
        let (a, b) = targets(estimate(
            &mut TargetOnly(&mut net),
            &draws,
            &[0.0, 1.0],
            weight.p,
            weight.c,
        ));
        rows.push(row(label, a, b));
    }
    (rows, draws)
}

/// A model without the (costly) parameter Gram matrices: the gradient variance becomes NaN.
struct TargetOnly<'m, 'a>(&'m mut MlpVelocity<'a>);

impl meanflow::study::conditional_variance::AverageVelocity for TargetOnly<'_, '_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn linearize(
        &mut self,
        z: ndarray::ArrayView2<f64>,
        r: &[f64],
        t: &[f64],
    ) -> meanflow::study::conditional_variance::Linearization {
        self.0.linearize(z, r, t)
    }
    fn parameter_gram(
        &mut self,
        _z: ndarray::ArrayView2<f64>,
        _r: &[f64],
        _t: &[f64],
    ) -> Option<ndarray::Array3<f64>> {
        None
    }
}

/// The Gaussians of the run: those in `--datasets`, or narrow and wide (1-D) if there are none.
pub(super) fn gaussians(context: &StudyContext) -> Vec<ToyDataset> {
    let listed: Vec<ToyDataset> = context
        .datasets
        .iter()
        .copied()
        .filter(|d| d.gaussian_sigma().is_some())
        .collect();
    if listed.is_empty() {
        vec![ToyDataset::gaussian_narrow(), ToyDataset::gaussian_wide()]
    } else {
        listed
    }
}

/// `meanflow study gaussian`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = Settings::new(context.quick);
    let datasets = gaussians(context);
    let t0 = Instant::now();
    let checks = closed_form_check(&settings, context.seed);
    let mut errors = Vec::new();
    let mut ratios = Vec::new();
    for ds in datasets {
        let (sigma, dim) = match ds {
            ToyDataset::Gaussian { sigma, dim } => (sigma, dim),
            _ => unreachable!("filtered to Gaussians"),
        };
        let flow = GaussianFlow::new(sigma, dim);
        let mf = context.models.get(&ds, LossPreset::Mf).clone();
        let imf = context.models.get(&ds, LossPreset::Imf).clone();
        let mut rng = Rng::stream(context.seed, stream_index(7, &ds.name()));
        for (loss, model) in [("mf", &mf), ("imf", &imf)] {
            let e = model_error(&ds, loss, model, &flow, &settings, &mut rng);
            error_heatmap(&e, settings.grid, dir)?;
            errors.push(e);
        }
        error_lines(&ds.name(), &errors, dir)?;
        let (rows, _) = target_ratios(
            &ds,
            &flow,
            [("mf", &mf), ("imf", &imf)],
            &settings.variance,
            context.seed,
        );
        ratio_chart(&ds.name(), &rows, settings.variance.bins, dir)?;
        ratios.extend(rows);
    }

    let mut csv =
        String::from("sigma,dim,posterior,beta,quantity,estimate,closed_form,z_score,ess_median\n");
    for c in &checks {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.3},{}",
            c.sigma,
            c.dim,
            c.posterior,
            c.beta,
            c.quantity,
            num(c.estimate),
            num(c.closed_form),
            c.z_score,
            num(c.ess_median)
        );
    }
    write_text(&dir.join("closed_form_check.csv"), &csv)?;
    let mut csv =
        String::from("dataset,loss,r,t,rms_error,rms_exact,relative,relative_to_target\n");
    for e in &errors {
        for c in &e.cells {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{}",
                e.dataset,
                e.loss,
                c.r,
                c.t,
                num(c.rms_error),
                num(c.rms_exact),
                num(c.relative),
                num(c.relative_to_target)
            );
        }
    }
    write_text(&dir.join("u_error.csv"), &csv)?;
    let mut csv = String::from("dataset,model,mf_target,mf_target_se,imf_target,imf_target_se,ratio,ratio_by_gap,ratio_by_t\n");
    for r in &ratios {
        let join = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.model,
            num(r.mf_target),
            num(r.mf_target_se),
            num(r.imf_target),
            num(r.imf_target_se),
            num(r.ratio),
            join(&r.ratio_by_gap),
            join(&r.ratio_by_t)
        );
    }
    write_text(&dir.join("target_ratio.csv"), &csv)?;
    crate::cli::common::write_json(
        &dir.join("summary.json"),
        &serde_json::json!({
            "settings": settings,
            "closed_form_check": checks,
            "model_error": errors,
            "target_ratio": ratios,
        }),
    )?;
    let mut text = summary(&settings, &checks, &errors, &ratios);
    text.push_str(&timing_line(t0.elapsed().as_secs_f64()));
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}

fn error_heatmap(e: &ModelError, grid: usize, dir: &Path) -> CliResult<()> {
    let mut cells = Array2::from_elem((grid, grid), f64::NAN);
    let width = 1.0 / grid as f64;
    for c in &e.cells {
        let (i, j) = ((c.r / width) as usize, (c.t / width) as usize);
        if i < grid && j < grid {
            cells[[i, j]] = c.relative_to_target.log10();
        }
    }
    let path = dir.join(format!("u_error_{}_{}.png", file_part(&e.dataset), e.loss));
    heatmap(
        &path,
        &format!("{} {}: log10 rel err", e.dataset, e.loss),
        "t",
        "r",
        cells.view(),
        (0.0, 1.0),
        (0.0, 1.0),
    )
    .map_err(|err| {
        CliError::failed(format!(
            "{}: cannot write the figure: {err}",
            path.display()
        ))
    })
}

fn error_lines(name: &str, errors: &[ModelError], dir: &Path) -> CliResult<()> {
    let mut series = Vec::new();
    for (i, e) in errors.iter().filter(|e| e.dataset == name).enumerate() {
        let diag = e
            .cells
            .iter()
            .filter(|c| c.r == c.t)
            .map(|c| (c.t, c.relative_to_target))
            .collect();
        let r_min = e.cells.iter().map(|c| c.r).fold(f64::INFINITY, f64::min);
        let first = e
            .cells
            .iter()
            .filter(|c| c.r == r_min)
            .map(|c| (c.t, c.relative_to_target))
            .collect();
        series.push(Series::new(
            format!("{} loss, r = t (velocity)", e.loss),
            diag,
            palette(2 * i),
        ));
        series.push(Series::new(
            format!("{} loss, r = {r_min:.3}", e.loss),
            first,
            palette(2 * i + 1),
        ));
    }
    chart(
        &dir.join(format!("u_error_{}.png", file_part(name))),
        &format!("{name}: rel. error of u vs t"),
        "t",
        "RMS |u - u*| / target scale",
        &series,
        true,
    )
}

fn ratio_chart(name: &str, rows: &[RatioRow], bins: usize, dir: &Path) -> CliResult<()> {
    let centres = bin_centres(0.0, 1.0, bins);
    let series: Vec<Series> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            Series::new(
                r.model,
                centres
                    .iter()
                    .copied()
                    .zip(r.ratio_by_gap.iter().copied())
                    .collect(),
                palette(i),
            )
        })
        .collect();
    chart(
        &dir.join(format!("target_ratio_{}.png", file_part(name))),
        &format!("{name}: MF/iMF Var[target|z]"),
        "t - r",
        "MF / iMF",
        &series,
        true,
    )
}

fn summary(
    settings: &Settings,
    checks: &[CheckRow],
    errors: &[ModelError],
    ratios: &[RatioRow],
) -> String {
    let mut s = String::from("## 5. A ground truth: Gaussian data\n\n");
    let worst = |posterior: &str| {
        checks
            .iter()
            .filter(|c| c.closed_form > 0.0 && c.posterior == posterior)
            .map(|c| c.z_score.abs())
            .fold(0.0, f64::max)
    };
    let over = |posterior: &str| {
        checks
            .iter()
            .filter(|c| c.closed_form > 0.0 && c.posterior == posterior && c.z_score.abs() > 4.0)
            .map(|c| {
                format!(
                    "sigma {} d {} beta {} {} ({:+.1})",
                    c.sigma, c.dim, c.beta, c.quantity, c.z_score
                )
            })
            .collect::<Vec<_>>()
    };
    let _ = writeln!(
        s,
        "**Estimator vs closed forms** (u* itself, {} points x {} redraws, sigma 0.3 and 3, d = {:?}, \
         beta 0 / 0.5 / 1, tangent / JVP term / target / ell; z = (estimate - closed form) / SE): \
         {} comparisons. Exact posterior draws: largest |z| {:.2}{}. Posterior of the finite pool \
         (2^17 points): largest |z| {:.2}{}.\n",
        settings.check_points,
        settings.check_draws,
        settings.check_dims,
        checks.len(),
        worst("exact"),
        if over("exact").is_empty() { String::new() } else { format!(" (|z| > 4: {})", over("exact").join(", ")) },
        worst("pool"),
        if over("pool").is_empty() {
            String::new()
        } else {
            format!(
                " (|z| > 4: {}): there the pool is too sparse for its empirical posterior to be the \
                 population's (each z_t is made from a pool point, which the empirical posterior then \
                 over-weights); the variances of the pool's own posterior are lower than the closed \
                 forms, and that pool is what a model trained on it sees",
                over("pool").join(", ")
            )
        }
    );
    s.push_str("| sigma | d | posterior | ESS median | target MF: est / closed form (z) | target iMF: est / closed form (z) |\n|---|---|---|---|---|---|\n");
    for c in checks
        .iter()
        .filter(|c| c.quantity == "target" && c.beta == 0.0)
    {
        if let Some(i) = checks.iter().find(|o| {
            o.quantity == "target"
                && o.beta == 1.0
                && o.sigma == c.sigma
                && o.dim == c.dim
                && o.posterior == c.posterior
        }) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} | {:.4} / {:.4} ({:+.2}) | {:.4} / {:.4} ({:+.2}) |",
                c.sigma,
                c.dim,
                c.posterior,
                c.ess_median,
                c.estimate,
                c.closed_form,
                c.z_score,
                i.estimate,
                i.closed_form,
                i.z_score
            );
        }
    }
    s.push_str("\n**Trained models vs u*** (relative RMS error of u over z ~ N(0, sigma_t^2), grid over 0 < r <= t < 1):\n\n");
    s.push_str(
        "| dataset | loss | median rel. error over the grid | median error / target scale | one step u(z, 0, 1) rel. error | 1-step sample std (sigma) |\n|---|---|---|---|---|---|\n",
    );
    for e in errors {
        let med = median(e.cells.iter().map(|c| c.relative));
        let scaled = median(e.cells.iter().map(|c| c.relative_to_target));
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} ({}) |",
            e.dataset, e.loss, med, scaled, e.one_step_relative, e.one_step_std, e.sigma
        );
    }
    s.push_str(
        "\n(rel. error = RMS |u - u*| / RMS |u*| per (r, t) cell; target scale = sqrt(E|v(z, t)|^2 + tr Var[v_c | z]), \
         which stays away from 0 where u* crosses 0.)\n",
    );
    s.push_str("\n**MF vs iMF target variance** E_z tr Var[target | z_t] (pool posterior, (r, t) uniform on the triangle):\n\n");
    s.push_str("| dataset | model | MF | iMF | MF/iMF | MF/iMF at smallest / largest t - r bin |\n|---|---|---|---|---|---|\n");
    for r in ratios {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} +- {:.4} | {:.4} +- {:.4} | {} | {:.3} / {:.3} |",
            r.dataset,
            r.model,
            r.mf_target,
            r.mf_target_se,
            r.imf_target,
            r.imf_target_se,
            ratio_text(r.mf_target, r.imf_target),
            r.ratio_by_gap.first().copied().unwrap_or(f64::NAN),
            r.ratio_by_gap.last().copied().unwrap_or(f64::NAN)
        );
    }
    s.push('\n');
    let mut datasets: Vec<&str> = ratios.iter().map(|r| r.dataset.as_str()).collect();
    datasets.dedup();
    for d in datasets {
        let get = |m: &str| {
            ratios
                .iter()
                .find(|r| r.dataset == d && r.model == m)
                .map(|r| r.ratio)
                .unwrap_or(f64::NAN)
        };
        let theory = get("closed form");
        let says = |x: f64| if x < 1.0 { "lower" } else { "higher" };
        let agree = |x: f64| {
            if (x < 1.0) == (theory < 1.0) {
                "agrees"
            } else {
                "CONTRADICTS the theory"
            }
        };
        let _ = writeln!(
            s,
            "- {d}: theory MF/iMF = {theory:.3} (MF {}); u* measured {:.3}; MF-trained net {:.3} ({}); iMF-trained net {:.3} ({}).",
            says(theory),
            get("u*"),
            get("mf net"),
            agree(get("mf net")),
            get("imf net"),
            agree(get("imf net")),
        );
    }
    s.push_str(
        "\nFiles: closed_form_check.csv, u_error.csv, target_ratio.csv, summary.json, u_error_*.png, target_ratio_*.png.\n",
    );
    s
}
