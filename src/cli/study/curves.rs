//! `meanflow study curves`: instrument 3, training curves of MF and iMF over several seeds
//! (meanflow::study::curves).
//!
//! Files: `curves.csv` (dataset, loss, seed, step, mse, loss: means over each logged interval),
//! `checkpoints.csv` (dataset, loss, seed, step, sw1, fm, v_mf, v_imf: the EMA weights at each
//! checkpoint), `curves.json` (settings, floors, every run, per-loss means and spreads), and per
//! dataset `mse_<ds>.png`, `loss_<ds>.png`, `sw1_<ds>.png`, `errors_<ds>.png`.

use super::report::{chart, list_or_none, loss_color, loss_label, num, pm, write_text, REFERENCE};
use super::StudyContext;
use crate::cli::common::write_json;
use crate::cli::output::errln;
use crate::cli::CliResult;
use meanflow::flow::loss::LossPreset;
use meanflow::plot::{Color, Series};
use meanflow::study::curves::{
    run_curves, BatchErrors, Comparison, CurveSettings, CurvesResult, DatasetCurves, Direction,
    LossSummary, RunCurve, Trend, PRESETS,
};
use meanflow::study::dataset::toys;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// A horizontal reference line from step 0 to `steps`.
fn level(name: &str, value: f64, steps: u64) -> Series {
    Series::new(name, vec![(0.0, value), (steps as f64, value)], REFERENCE)
}

/// Mean over seeds with a min-max band, one series per loss.
fn banded(data: &DatasetCurves, f: impl Fn(&RunCurve) -> Vec<(f64, f64)>) -> Vec<Series> {
    PRESETS
        .iter()
        .map(|&p| {
            let s = data.band(p, &f);
            Series::new(
                format!(
                    "{} (mean of {}, band min-max)",
                    loss_label(p),
                    data.runs_of(p).len()
                ),
                s.iter().map(|&(x, m, _, _)| (x, m)).collect(),
                loss_color(p),
            )
            .with_band(s.iter().map(|&(x, _, lo, hi)| (x, lo, hi)).collect())
        })
        .collect()
}

fn draw(result: &CurvesResult, dir: &Path) -> CliResult<()> {
    let steps = result.settings.steps;
    for data in &result.datasets {
        let ds = &data.dataset;
        let floor = || level("floor E tr Var[v_c | z_t]", data.floor, steps);
        // `<kind>_<dataset>.png`, titled "<dataset>: <title>", against the step.
        let save = |kind: &str, title: &str, y: &str, series: &[Series], log_y| {
            let path = dir.join(format!("{kind}_{ds}.png"));
            chart(&path, &format!("{ds}: {title}"), "step", y, series, log_y)
        };
        let mut series = banded(data, |r| r.logged(|p| p.mse));
        series.push(floor());
        save(
            "mse",
            "training v-form error |V - v_c|^2",
            "mse",
            &series,
            true,
        )?;
        let series = banded(data, |r| r.logged(|p| p.loss));
        let title = "weighted loss (not comparable across losses)";
        save("loss", title, "loss", &series, false)?;
        let mut series = banded(data, |r| r.at_checkpoints(|c| c.sw1));
        series.push(level("data-vs-data floor", data.sw1_floor, steps));
        save(
            "sw1",
            "SW1 of 1-step samples (EMA)",
            "sliced W1",
            &series,
            true,
        )?;
        let mut series = Vec::new();
        for &p in &PRESETS {
            let mean_of = |f: fn(&BatchErrors) -> f64| {
                data.band(p, |r| r.at_checkpoints(|c| f(&c.errors)))
                    .iter()
                    .map(|&(x, m, _, _)| (x, m))
                    .collect::<Vec<_>>()
            };
            let color = loss_color(p);
            series.push(Series::new(
                format!("{} fm |u(z,t,t) - v_c|^2", loss_label(p)),
                mean_of(|e| e.fm),
                color,
            ));
            series.push(Series::new(
                format!("{} v-form, iMF tangent", loss_label(p)),
                mean_of(|e| e.v_imf),
                color.over(Color::WHITE, 0.55),
            ));
        }
        series.push(floor());
        let title = "EMA errors on r < t rows";
        save("errors", title, "mean squared error", &series, true)?;
    }
    Ok(())
}

fn write_files(result: &CurvesResult, dir: &Path) -> CliResult<()> {
    let mut curves = String::from("dataset,loss,seed,step,mse,loss_weighted\n");
    let mut checkpoints = String::from("dataset,loss,seed,step,sw1,fm,v_mf,v_imf\n");
    for data in &result.datasets {
        for run in &data.runs {
            for p in &run.log {
                let _ = writeln!(
                    curves,
                    "{},{},{},{},{:e},{:e}",
                    run.dataset, run.loss, run.seed, p.step, p.mse, p.loss
                );
            }
            for c in &run.checkpoints {
                let _ = writeln!(
                    checkpoints,
                    "{},{},{},{},{:e},{:e},{:e},{:e}",
                    run.dataset,
                    run.loss,
                    run.seed,
                    c.step,
                    c.sw1,
                    c.errors.fm,
                    c.errors.v_mf,
                    c.errors.v_imf
                );
            }
        }
    }
    write_text(&dir.join("curves.csv"), &curves)?;
    write_text(&dir.join("checkpoints.csv"), &checkpoints)?;
    write_json(&dir.join("curves.json"), result)
}

/// "rises" / "falls" / "is flat" for a slope (mean, sd) over seeds ([`Trend`]).
fn trend(slope: (f64, f64)) -> String {
    let Trend {
        direction,
        percent_per_1k: pct,
    } = Trend::of(slope);
    match direction {
        Direction::Rises => format!("rises {pct:.1}% per 1k steps"),
        Direction::Falls => format!("falls {:.1}% per 1k steps", -pct),
        Direction::Flat => format!("is flat ({pct:+.1}% per 1k steps, within one sd of 0)"),
    }
}

/// The per-dataset statements of the summary.
fn statements(data: &DatasetCurves) -> String {
    let (mf, imf) = (data.summary(LossPreset::Mf), data.summary(LossPreset::Imf));
    // MF against iMF, as a phrase.
    let p = |f: fn(&LossSummary) -> (f64, f64)| match data.compare(f) {
        Comparison::Above => "MF above iMF",
        Comparison::Below => "MF below iMF",
        Comparison::WithinSpread => "MF and iMF within the seed spread",
        other => other.name(),
    };
    let floor = data.floor;
    let (mf_over_floor, imf_over_floor) = data.own_tangent_over_floor();
    let excess = data.noisy_tangent_excess();
    let mut s = format!(
        "- **{}**: training mse (last 10% of steps) MF {} vs iMF {} ({}; floor {}). \
         Over the second half MF's mse {}, iMF's {}. \
         On the r < t rows (EMA, last step), the v-form error with each loss's own tangent: \
         MF {} = {:.2} x the floor, iMF {} = {:.2} x the floor; the same MF-trained model with the \
         deterministic iMF tangent: {}, so the noisy tangent adds {} ({}). \
         Errors of functions of z_t alone, comparable across losses: fm MF {} vs iMF {} ({}), \
         v-form with the iMF tangent MF {} vs iMF {} ({}). \
         1-step SW1 MF {} vs iMF {} ({}; data floor {}).{}",
        data.dataset,
        pm(mf.final_mse),
        pm(imf.final_mse),
        p(|s| s.final_mse),
        num(floor),
        trend(mf.slope_per_1k),
        trend(imf.slope_per_1k),
        pm(mf.v_mf),
        mf_over_floor,
        pm(imf.v_imf),
        imf_over_floor,
        pm(mf.v_imf),
        num(excess),
        if excess > 0.0 {
            "the Jacobian term magnifies the noise of v_c"
        } else {
            "here the Jacobian term damps it: MF's V partly tracks v_c"
        },
        pm(mf.fm),
        pm(imf.fm),
        p(|s| s.fm),
        pm(mf.v_imf),
        pm(imf.v_imf),
        p(|s| s.v_imf),
        pm(mf.sw1),
        pm(imf.sw1),
        p(|s| s.sw1),
        num(data.sw1_floor),
        if mf.identity_residual.0.is_nan() {
            String::new()
        } else {
            format!(
                " Identity check of the final EMA weights (instrument 4 on a small grid): median \
                 relative residual MF {} vs iMF {} ({}), 1-step vs ODE endpoint distance \
                 MF {} vs iMF {} ({}).",
                pm(mf.identity_residual),
                pm(imf.identity_residual),
                p(|s| s.identity_residual),
                pm(mf.identity_distance),
                pm(imf.identity_distance),
                p(|s| s.identity_distance),
            )
        },
    );
    // What the claim predicts: MF's errors and SW1 above iMF's.
    let mut agrees = Vec::new();
    let mut contradicts = Vec::new();
    let mut undecided = Vec::new();
    for (what, verdict) in data.claim_checks() {
        match verdict {
            Comparison::Above => agrees.push(what),
            Comparison::Below => contradicts.push(what),
            _ => undecided.push(what),
        }
    }
    let _ = write!(
        s,
        " MF worse than iMF, as the claim predicts: {}; MF better, against it: {}; \
         within the seed spread: {}.",
        list_or_none(&agrees),
        list_or_none(&contradicts),
        list_or_none(&undecided)
    );
    if mf.final_mse.0 < floor {
        let _ = write!(
            s,
            " MF's training mse is below the floor: its V contains v_c through the tangent, so \
             the floor does not bound it."
        );
    }
    s.push('\n');
    s
}

fn summary(result: &CurvesResult, secs: f64) -> String {
    let st = &result.settings;
    let mut s = String::from("## 3. Training curves\n\n");
    let _ = writeln!(
        s,
        "{} seeds x (MF, iMF) x {} datasets, {} steps each (MLP {} x {}, batch {}, each preset's \
         time sampler: MF 25% of rows r != t, iMF 50%), {:.0} s on {} threads. \
         mse = training v-form error |V - v_c|^2 (mean per {} steps); fm = |u(z,t,t) - v_c|^2 and \
         the v-forms are measured with the EMA weights at the last step on a fixed batch of {} \
         rows with r < t; floor = E tr Var[v_c | z_t] on that batch (posterior over {} data \
         points), the least any function of z_t can reach. SW1 of {} 1-step samples against as \
         many held-out points. Values: mean ± sd over seeds. \"above\" / \"below\" = the means \
         differ by more than the two spreads added.\n",
        st.seeds,
        result.datasets.len(),
        st.steps,
        result.depth,
        result.width,
        result.batch,
        secs,
        st.workers,
        st.log_every,
        st.eval_rows,
        st.posterior_points,
        st.eval_samples,
    );
    if let Some(id) = &st.identity {
        let _ = writeln!(
            s,
            "identity residual = median over a {g} x {g} grid of (r, t) of instrument 4's \
             mean |u - u_ode|^2 / mean |u_ode|^2 on each run's final EMA weights ({} states per t, \
             RK4 with {} steps per unit time).\n",
            id.points,
            id.steps_per_unit,
            g = id.grid,
        );
    }
    s.push_str(
        "| dataset | loss | train mse | slope ln mse /1k | fm | v-form own tangent | v-form iMF tangent | floor | SW1 1-step | SW1 floor | identity residual |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for data in &result.datasets {
        for &p in &PRESETS {
            let m = data.summary(p);
            let own = if p == LossPreset::Mf { m.v_mf } else { m.v_imf };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                data.dataset,
                loss_label(p),
                pm(m.final_mse),
                pm(m.slope_per_1k),
                pm(m.fm),
                pm(own),
                pm(m.v_imf),
                num(data.floor),
                pm(m.sw1),
                num(data.sw1_floor),
                pm(m.identity_residual),
            );
        }
    }
    s.push('\n');
    for data in &result.datasets {
        s.push_str(&statements(data));
    }
    s.push_str(
        "\nFiles: curves.csv, checkpoints.csv, curves.json; mse_, loss_, sw1_, errors_<dataset>.png.\n",
    );
    s
}

/// `meanflow study curves`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    // Each run is single-threaded; the parallelism is across runs.
    let settings = CurveSettings {
        workers: context.threads,
        ..if context.quick {
            CurveSettings::quick()
        } else {
            CurveSettings::standard()
        }
    };
    let started = Instant::now();
    // The curves train many seeds per loss on a generator's draws: the toys only.
    let datasets = toys(&context.datasets);
    let skipped: Vec<String> = context
        .datasets
        .iter()
        .filter(|d| d.toy().is_none())
        .map(|d| d.name())
        .collect();
    let total = datasets.len() * PRESETS.len() * settings.seeds;
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let done = |run: &RunCurve| {
        let k = finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        errln!(
            "study curves: [{k}/{total}] {} {} seed {}: mse {} at the end, {:.1} s",
            run.dataset,
            run.loss,
            run.seed,
            num(run.final_mse),
            run.seconds
        );
    };
    let result = run_curves(
        &datasets,
        &context.models.settings,
        &settings,
        context.seed,
        &done,
    );
    let secs = started.elapsed().as_secs_f64();
    write_files(&result, dir)?;
    draw(&result, dir)?;
    let mut text = summary(&result, secs);
    if !skipped.is_empty() {
        text.push_str(&format!(
            "\nNot run on {} (the curves are for the toy generators: {} seeds per loss would take \
             too long on a 64-D model).\n",
            skipped.join(", "),
            settings.seeds
        ));
    }
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}
