//! `meanflow study variance`: instrument 1, the variance given z_t of the tangent, the JVP term,
//! the regression target, the per-sample loss and the per-sample gradient (study::conditional_variance),
//! for MF (beta = 0), iMF (beta = 1) and a beta grid, at the initial and the trained parameters.
//!
//! Files: `averages.csv` (mean over z_t with standard errors, also over the points with ESS >= 10),
//! `by_t.csv` and `by_gap.csv` (binned by t and by t - r), `summary.json`, and per dataset
//! `target_vs_t_<d>.png`, `target_vs_gap_<d>.png`, `gradient_vs_gap_<d>.png`, `beta_<d>.png`.

use super::{picture, write_text, StudyContext};
use crate::cli::output::errln;
use crate::cli::CliResult;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::model::{MlpParams, ModelConfig};
use meanflow::plot::{line_chart, palette, Series};
use meanflow::rng::Rng;
use meanflow::study::conditional_variance::{
    bin_centres, binned, estimate, mean_se, median, BetaVariances, MeanSe, MlpVelocity, Quantity,
};
use meanflow::study::parallel_map;
use meanflow::study::posterior::{draw_points, DataSource, PosteriorDraws};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Points with a smaller posterior effective sample size are flagged (and also left out in the
/// `*_ess_ok` columns).
pub(super) const ESS_MIN: f64 = 10.0;

/// How much instrument 1 computes.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Settings {
    /// Points z_t per dataset.
    pub points: usize,
    /// Posterior redraws of x per point.
    pub draws: usize,
    pub betas: Vec<f64>,
    /// Bins of t and of t - r.
    pub bins: usize,
}

impl Settings {
    pub fn new(quick: bool) -> Self {
        if quick {
            Settings {
                points: 96,
                draws: 16,
                betas: vec![0.0, 0.5, 1.0],
                bins: 5,
            }
        } else {
            Settings {
                points: 2048,
                draws: 128,
                betas: vec![0.0, 0.25, 0.5, 0.75, 1.0],
                bins: 10,
            }
        }
    }
}

/// A stable random-stream index for (instrument, dataset name), independent of the dataset order.
pub(super) fn stream_index(instrument: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (instrument << 56) ^ (h >> 8)
}

/// The line that ends an instrument's summary: the time of its own measurements (the shared
/// models were trained before, by `meanflow study`, and are timed there).
pub(super) fn timing_line(measure_secs: f64) -> String {
    errln!("study: measurement {measure_secs:.1} s");
    format!("\n_(measurement {measure_secs:.1} s)_\n")
}

/// A dataset name as part of a file name (`gaussian:0.5:2` -> `gaussian-0.5-2`).
pub(super) fn file_part(name: &str) -> String {
    name.replace(':', "-")
}

/// Writes a line chart, or says which file could not be written.
pub(super) fn chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> CliResult<()> {
    picture(
        line_chart(path, title, x_label, y_label, series, log_y),
        path,
    )
}

/// A float for CSV / Markdown: `NaN` as such, otherwise 6 significant digits.
pub(super) fn num(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x:.6e}")
    }
}

/// A ratio a / b for the summary ("2.31x").
pub(super) fn ratio_text(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "n/a".into()
    } else {
        format!("{:.3}x", a / b)
    }
}

/// The estimates of one parameter set on one dataset.
pub(super) struct ParamsResult {
    pub label: &'static str,
    pub by_beta: Vec<BetaVariances>,
}

/// Instrument 1 on one dataset: the draws and, per parameter set, the estimates.
pub(super) struct DatasetResult {
    pub name: String,
    pub draws: PosteriorDraws,
    pub params: Vec<ParamsResult>,
}

impl DatasetResult {
    /// The estimates of `quantity` at `beta` for parameter set `label`, one per point.
    pub fn values(&self, label: &str, beta: f64, quantity: Quantity) -> Vec<f64> {
        self.params
            .iter()
            .find(|p| p.label == label)
            .and_then(|p| p.by_beta.iter().find(|b| b.beta == beta))
            .map(|b| b.points.iter().map(|p| quantity.of(p)).collect())
            .unwrap_or_default()
    }

    /// Mean over the points selected by `keep(i)`.
    pub fn mean_where(
        &self,
        label: &str,
        beta: f64,
        quantity: Quantity,
        keep: impl Fn(usize) -> bool,
    ) -> MeanSe {
        let v = self.values(label, beta, quantity);
        mean_se(
            v.iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(_, x)| *x),
        )
    }

    pub fn gaps(&self) -> Vec<f64> {
        self.draws
            .t
            .iter()
            .zip(&self.draws.r)
            .map(|(t, r)| t - r)
            .collect()
    }
}

/// Runs the estimator for each parameter set (initial, MF-trained, iMF-trained) on shared draws.
pub(super) fn run_dataset(
    name: String,
    model: ModelConfig,
    pool: &ndarray::Array2<f64>,
    param_sets: &[(&'static str, &MlpParams<f64>)],
    settings: &Settings,
    seed: u64,
    threads: usize,
) -> DatasetResult {
    let mut rng = Rng::stream(seed, stream_index(1, &name));
    let draws = draw_points(
        DataSource::Pool(pool.view()),
        settings.points,
        settings.draws,
        &mut rng,
    );
    let weight = LossConfig::preset(LossPreset::Mf);
    // Up to `threads` parameter sets at once, each on its own thread.
    let params: Vec<ParamsResult> = parallel_map(param_sets, threads, |&(label, p)| ParamsResult {
        label,
        by_beta: estimate(
            &mut MlpVelocity::new(model, p),
            &draws,
            &settings.betas,
            weight.p,
            weight.c,
        ),
    });
    DatasetResult {
        name,
        draws,
        params,
    }
}

#[derive(Serialize)]
struct AverageRow {
    params: &'static str,
    beta: f64,
    quantity: &'static str,
    all: MeanSe,
    ess_ok: MeanSe,
    gap_over_half: MeanSe,
}

#[derive(Serialize)]
struct DatasetJson {
    dataset: String,
    ess_median: f64,
    ess_below_min_fraction: f64,
    averages: Vec<AverageRow>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    settings: &'a Settings,
    ess_min: f64,
    time_pairs: &'static str,
    weight: (f64, f64),
    datasets: Vec<DatasetJson>,
}

const BINNED_HEADER: &str = "dataset,params,beta,quantity,bin_lo,bin_hi,mean,se,n,ess_median\n";

/// Appends the binned rows of one dataset (by `keys` in [0, 1]) to `csv`.
fn binned_rows(csv: &mut String, res: &DatasetResult, keys: &[f64], bins: usize) {
    let width = 1.0 / bins as f64;
    let ess_by_bin: Vec<f64> = (0..bins)
        .map(|b| {
            median(
                keys.iter()
                    .zip(&res.draws.ess)
                    .filter(|(k, _)| ((**k / width).floor() as usize).min(bins - 1) == b)
                    .map(|(_, e)| *e),
            )
        })
        .collect();
    for p in &res.params {
        for bv in &p.by_beta {
            for q in Quantity::ALL {
                let v: Vec<f64> = bv.points.iter().map(|pt| q.of(pt)).collect();
                for (b, m) in binned(&v, keys, 0.0, 1.0, bins).iter().enumerate() {
                    let _ = writeln!(
                        csv,
                        "{},{},{},{},{},{},{},{},{},{}",
                        res.name,
                        p.label,
                        bv.beta,
                        q.name(),
                        b as f64 / bins as f64,
                        (b + 1) as f64 / bins as f64,
                        num(m.mean),
                        num(m.se),
                        m.n,
                        num(ess_by_bin[b])
                    );
                }
            }
        }
    }
}

/// Curves of `quantity` binned by `keys` for MF and iMF at each parameter set.
fn binned_series(
    res: &DatasetResult,
    keys: &[f64],
    bins: usize,
    quantity: Quantity,
) -> Vec<Series> {
    let centres = bin_centres(0.0, 1.0, bins);
    let mut out = Vec::new();
    for (pi, p) in res.params.iter().enumerate() {
        for (beta, loss) in [(0.0, "MF"), (1.0, "iMF")] {
            let v = res.values(p.label, beta, quantity);
            if v.is_empty() {
                continue;
            }
            let b = binned(&v, keys, 0.0, 1.0, bins);
            let points = centres.iter().zip(&b).map(|(c, m)| (*c, m.mean)).collect();
            let band = centres
                .iter()
                .zip(&b)
                .map(|(c, m)| (*c, m.mean - 2.0 * m.se, m.mean + 2.0 * m.se))
                .collect();
            let mut color = palette(pi);
            if beta == 1.0 {
                color = color.over(meanflow::plot::Color::WHITE, 0.55);
            }
            out.push(
                Series::new(format!("{loss} loss, {} params", p.label), points, color)
                    .with_band(band),
            );
        }
    }
    out
}

/// Writes the four figures of one dataset.
fn figures(res: &DatasetResult, settings: &Settings, dir: &Path) -> CliResult<()> {
    let gaps = res.gaps();
    let name = &res.name;
    let file = file_part(name);
    chart(
        &dir.join(format!("target_vs_t_{file}.png")),
        &format!("{name}: Var[target|z] vs t"),
        "t",
        "tr Var[v_c - (t-r) dudt | z_t]",
        &binned_series(res, &res.draws.t, settings.bins, Quantity::Target),
        true,
    )?;
    chart(
        &dir.join(format!("target_vs_gap_{file}.png")),
        &format!("{name}: Var[target|z] vs t-r"),
        "t - r",
        "tr Var[v_c - (t-r) dudt | z_t]",
        &binned_series(res, &gaps, settings.bins, Quantity::Target),
        true,
    )?;
    chart(
        &dir.join(format!("gradient_vs_gap_{file}.png")),
        &format!("{name}: Var[grad|z] vs t-r"),
        "t - r",
        "tr Var[d loss_i / d theta | z_t]",
        &binned_series(res, &gaps, settings.bins, Quantity::Gradient),
        true,
    )?;
    let mut series = Vec::new();
    for (pi, p) in res.params.iter().enumerate() {
        for (qi, q) in [Quantity::Target, Quantity::Gradient]
            .into_iter()
            .enumerate()
        {
            let points = p
                .by_beta
                .iter()
                .map(|bv| (bv.beta, mean_se(bv.points.iter().map(|pt| q.of(pt))).mean))
                .collect();
            let mut color = palette(pi);
            if qi == 1 {
                color = color.over(meanflow::plot::Color::WHITE, 0.55);
            }
            series.push(Series::new(
                format!("{}, {} params", q.name(), p.label),
                points,
                color,
            ));
        }
    }
    chart(
        &dir.join(format!("beta_{file}.png")),
        &format!("{name}: mean Var[.|z] vs beta"),
        "beta (0 = MF, 1 = iMF)",
        "mean over z_t",
        &series,
        true,
    )
}

/// `meanflow study variance`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = Settings::new(context.quick);
    let t0 = Instant::now();
    let mut results = Vec::new();
    for ds in context.datasets.clone() {
        let mf = context.models.get(&ds, LossPreset::Mf).clone();
        let imf = context.models.get(&ds, LossPreset::Imf).clone();
        let mut sets: Vec<(&'static str, &MlpParams<f64>)> = vec![("initial", &mf.initial)];
        if imf.initial != mf.initial {
            sets.push(("initial-imf", &imf.initial));
        }
        sets.push(("mf", &mf.trained));
        sets.push(("imf", &imf.trained));
        results.push(run_dataset(
            ds.name(),
            mf.config.model,
            &mf.data,
            &sets,
            &settings,
            context.seed,
            context.threads,
        ));
    }

    let mut averages_csv = String::from(
        "dataset,params,beta,quantity,mean,se,n,mean_ess_ok,se_ess_ok,n_ess_ok,mean_gap_over_half,se_gap_over_half,n_gap_over_half\n",
    );
    let (mut by_t, mut by_gap) = (String::from(BINNED_HEADER), String::from(BINNED_HEADER));
    let mut json = Vec::new();
    for res in &results {
        let gaps = res.gaps();
        let ess = &res.draws.ess;
        let mut rows = Vec::new();
        for p in &res.params {
            for bv in &p.by_beta {
                for q in Quantity::ALL {
                    let all = res.mean_where(p.label, bv.beta, q, |_| true);
                    let ok = res.mean_where(p.label, bv.beta, q, |i| ess[i] >= ESS_MIN);
                    let far = res.mean_where(p.label, bv.beta, q, |i| gaps[i] > 0.5);
                    let _ = writeln!(
                        averages_csv,
                        "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                        res.name,
                        p.label,
                        bv.beta,
                        q.name(),
                        num(all.mean),
                        num(all.se),
                        all.n,
                        num(ok.mean),
                        num(ok.se),
                        ok.n,
                        num(far.mean),
                        num(far.se),
                        far.n
                    );
                    rows.push(AverageRow {
                        params: p.label,
                        beta: bv.beta,
                        quantity: q.name(),
                        all,
                        ess_ok: ok,
                        gap_over_half: far,
                    });
                }
            }
        }
        binned_rows(&mut by_t, res, &res.draws.t, settings.bins);
        binned_rows(&mut by_gap, res, &gaps, settings.bins);
        json.push(DatasetJson {
            dataset: res.name.clone(),
            ess_median: median(ess.iter().copied()),
            ess_below_min_fraction: ess.iter().filter(|e| **e < ESS_MIN).count() as f64
                / ess.len() as f64,
            averages: rows,
        });
        figures(res, &settings, dir)?;
    }
    write_text(&dir.join("averages.csv"), &averages_csv)?;
    write_text(&dir.join("by_t.csv"), &by_t)?;
    write_text(&dir.join("by_gap.csv"), &by_gap)?;
    let weight = LossConfig::preset(LossPreset::Mf);
    crate::cli::common::write_json(
        &dir.join("summary.json"),
        &SummaryJson {
            settings: &settings,
            ess_min: ESS_MIN,
            time_pairs: "(r, t) uniform on the triangle 0 < r < t <= 1",
            weight: (weight.p, weight.c),
            datasets: json,
        },
    )?;
    let mut text = summary(&results, &settings);
    text.push_str(&timing_line(t0.elapsed().as_secs_f64()));
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}

/// The Markdown section: a table of MF / iMF ratios and what they say.
fn summary(results: &[DatasetResult], settings: &Settings) -> String {
    let mut s = String::from("## 1. Conditional variance at fixed z_t\n\n");
    let _ = writeln!(
        s,
        "{} points z_t per dataset from the marginal ((r, t) uniform on 0 < r < t <= 1), {} posterior \
         redraws of x each from the training pool; variances are traces (summed over coordinates), \
         averaged over z_t, +- one standard error. MF = beta 0, iMF = beta 1, evaluated at the same \
         parameters (initial, MF-trained, iMF-trained). Target = v_c - (t - r) dudt (u-form).\n",
        settings.points, settings.draws
    );
    s.push_str(
        "| dataset | params | tr Var[target] MF | iMF | MF/iMF | MF/iMF at t-r > 0.5 | MF JVP term | \
         tr Var[grad] MF/iMF | Var[loss] MF/iMF | map gain | ESS median (< 10) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut lower = Vec::new();
    let mut higher = Vec::new();
    for res in results {
        let gaps = res.gaps();
        let ess = &res.draws.ess;
        let low = ess.iter().filter(|e| **e < ESS_MIN).count() as f64 / ess.len() as f64;
        for p in &res.params {
            let m = |beta, q| res.mean_where(p.label, beta, q, |_| true);
            let far = |beta| res.mean_where(p.label, beta, Quantity::Target, |i| gaps[i] > 0.5);
            let (mf, imf) = (m(0.0, Quantity::Target), m(1.0, Quantity::Target));
            let (gm, gi) = (m(0.0, Quantity::Gradient), m(1.0, Quantity::Gradient));
            let (lm, li) = (m(0.0, Quantity::Loss), m(1.0, Quantity::Loss));
            let jvp = m(0.0, Quantity::JvpTerm);
            let gain = mean_se(
                p.by_beta
                    .first()
                    .map(|b| b.points.iter().map(|q| q.map_gain).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            let _ = writeln!(
                s,
                "| {} | {} | {:.4} +- {:.4} | {:.4} +- {:.4} | {} | {} | {:.4} | {} | {} | {:.3} | {:.0} ({:.0}%) |",
                res.name,
                p.label,
                mf.mean,
                mf.se,
                imf.mean,
                imf.se,
                ratio_text(mf.mean, imf.mean),
                ratio_text(far(0.0).mean, far(1.0).mean),
                jvp.mean,
                ratio_text(gm.mean, gi.mean),
                ratio_text(lm.mean, li.mean),
                gain.mean,
                median(ess.iter().copied()),
                100.0 * low
            );
            if p.label != "initial" {
                let label = format!(
                    "{} ({}-trained, {:.2}x, map gain {:.2})",
                    res.name,
                    p.label,
                    mf.mean / imf.mean,
                    gain.mean
                );
                if mf.mean < imf.mean {
                    lower.push(label);
                } else {
                    higher.push(label);
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "\nAt trained parameters, MF's target has the lower conditional variance on: {}; the higher on: {}.",
        if lower.is_empty() { "none".to_string() } else { lower.join(", ") },
        if higher.is_empty() { "none".to_string() } else { higher.join(", ") },
    );
    s.push_str(
        "iMF's target variance is Var[v_c | z_t] itself (its tangent and JVP term are fixed given z_t); \
         MF's is Var[(I - (t - r) J) v_c | z_t], lower where the network's own map z_t -> z_r contracts. \
         `map gain` = E_z |I - (t - r) J|_F^2 / d, the mean squared singular value of that map's Jacobian \
         (< 1: contracts on average). With the presets' plain squared error (p = 0) the per-sample gradient is \
         2 J_theta^T delta, so its conditional covariance is 4 J_theta^T Var[u_tgt | z_t] J_theta: the target's \
         noise, seen through the parameter Jacobian (see the tr Var[grad] column). \
         Points with a small posterior ESS (small t) have almost no redraw variance in the pool's own \
         (empirical) posterior; `averages.csv` repeats every mean over the points with ESS >= 10. \
         Files: averages.csv, by_t.csv, by_gap.csv, summary.json, target_vs_t_*.png, target_vs_gap_*.png, \
         gradient_vs_gap_*.png, beta_*.png.\n",
    );
    s
}
