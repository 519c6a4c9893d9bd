//! `meanflow study gaussian`: instrument 5 (meanflow::study::gaussian). Isotropic Gaussian data,
//! where the average velocity u* and the conditional variances are closed form:
//!
//! 1. the estimator of instrument 1 with u* itself, against the closed forms (posterior from the
//!    pool and exact posterior draws; d = 1 and d = 8), as z-scores;
//! 2. the trained models (MF and iMF fixtures) against u* on an (r, t) grid;
//! 3. MF's against iMF's target variance measured with the trained networks (their own Jacobians),
//!    with u*, and in closed form: theory says MF's is lower for the narrow Gaussian (the map back
//!    in time contracts, sigma_r < sigma_t) and higher for the wide one. The closed form averaged
//!    over the sampled (r, t) stands beside its exact value over the study's (r, t) distribution
//!    (Gauss-Legendre quadrature, `exact_target_ratio`), with the sample's standard error.
//!
//! Files: `closed_form_check.csv`, `u_error.csv`, `target_ratio.csv`, `exact_ratio.csv`,
//! `summary.json`, and per dataset
//! `u_error_<d>_<loss>.png` (log10 of RMS |u - u*| / target scale over (r, t), the target scale
//! being sqrt(E|v(z, t)|^2 + tr Var[v_c | z])), `u_error_<d>.png` (the same along
//! r = t and the smallest r), `target_ratio_<d>.png` (MF/iMF target variance vs t - r).

use super::report::{chart, file_part, ratio_text, sci, timing_line, write_text};
use super::StudyContext;
use crate::cli::{CliError, CliResult};
use meanflow::plot::{heatmap, palette, Series};
use meanflow::study::conditional_variance::bin_centres;
use meanflow::study::dataset::toys;
use meanflow::study::gaussian::{
    flagged, ratio_of, run_gaussian, target_pairs, worst_z, CheckRow, GaussianDataset,
    GaussianResult, GaussianSettings, ModelError, RatioRow,
};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// `meanflow study gaussian`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = if context.quick {
        GaussianSettings::quick()
    } else {
        GaussianSettings::standard()
    };
    let t0 = Instant::now();
    let result = run_gaussian(
        &toys(&context.datasets),
        &mut context.models,
        &settings,
        context.seed,
    );
    for g in &result.datasets {
        for e in &g.errors {
            error_heatmap(e, settings.grid, dir)?;
        }
        error_lines(&g.name, &result.errors(), dir)?;
        ratio_chart(&g.name, &g.ratios, settings.variance.bins, dir)?;
    }
    write_tables(&result, dir)?;
    crate::cli::common::write_json(
        &dir.join("summary.json"),
        &serde_json::json!({
            "settings": settings,
            "closed_form_check": result.checks,
            "model_error": result.errors(),
            "target_ratio": result.ratios(),
            "exact_ratio": result.datasets.iter().map(|d| &d.exact).collect::<Vec<_>>(),
        }),
    )?;
    let mut text = summary(&settings, &result);
    text.push_str(&timing_line(t0.elapsed().as_secs_f64()));
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}

/// closed_form_check.csv, u_error.csv, target_ratio.csv and exact_ratio.csv.
fn write_tables(result: &GaussianResult, dir: &Path) -> CliResult<()> {
    let mut csv =
        String::from("sigma,dim,posterior,beta,quantity,estimate,closed_form,z_score,ess_median\n");
    for c in &result.checks {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{:.3},{}",
            c.sigma,
            c.dim,
            c.posterior,
            c.beta,
            c.quantity,
            sci(c.estimate),
            sci(c.closed_form),
            c.z_score,
            sci(c.ess_median)
        );
    }
    write_text(&dir.join("closed_form_check.csv"), &csv)?;
    let mut csv =
        String::from("dataset,loss,r,t,rms_error,rms_exact,relative,relative_to_target\n");
    for e in result.errors() {
        for c in &e.cells {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{}",
                e.dataset,
                e.loss,
                c.r,
                c.t,
                sci(c.rms_error),
                sci(c.rms_exact),
                sci(c.relative),
                sci(c.relative_to_target)
            );
        }
    }
    write_text(&dir.join("u_error.csv"), &csv)?;
    let mut csv = String::from("dataset,model,mf_target,mf_target_se,imf_target,imf_target_se,ratio,ratio_se,ratio_by_gap,ratio_by_t\n");
    for r in result.ratios() {
        let join = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.model,
            sci(r.mf_target),
            sci(r.mf_target_se),
            sci(r.imf_target),
            sci(r.imf_target_se),
            sci(r.ratio),
            sci(r.ratio_se),
            join(&r.ratio_by_gap),
            join(&r.ratio_by_t)
        );
    }
    write_text(&dir.join("target_ratio.csv"), &csv)?;
    let mut csv = String::from(
        "dataset,sigma,dim,exact_mf_target,exact_imf_target,exact_ratio,nodes,ratio_half_nodes,relative_change,sample_points,sample_ratio,sample_ratio_se,z\n",
    );
    for g in &result.datasets {
        let (e, sample) = (&g.exact, sampled(g));
        let _ = writeln!(
            csv,
            "{},{},{},{:.12e},{:.12e},{:.12e},{},{:.12e},{:.2e},{},{},{},{:.3}",
            g.name,
            e.sigma,
            e.dim,
            e.mf_target,
            e.imf_target,
            e.ratio,
            e.nodes,
            e.ratio_half_nodes,
            e.relative_change(),
            sample.map_or(0, |r| r.points),
            sci(sample.map_or(f64::NAN, |r| r.ratio)),
            sci(sample.map_or(f64::NAN, |r| r.ratio_se)),
            sample.map_or(f64::NAN, |r| (r.ratio - e.ratio) / r.ratio_se)
        );
    }
    write_text(&dir.join("exact_ratio.csv"), &csv)
}

/// The dataset's "closed form" row: the sample estimate of its exact ratio.
fn sampled(g: &GaussianDataset) -> Option<&RatioRow> {
    g.ratios.iter().find(|r| r.model == "closed form")
}

fn error_heatmap(e: &ModelError, grid: usize, dir: &Path) -> CliResult<()> {
    let cells = e.log10_relative_grid(grid);
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

fn error_lines(name: &str, errors: &[&ModelError], dir: &Path) -> CliResult<()> {
    let mut series = Vec::new();
    for (i, e) in errors.iter().filter(|e| e.dataset == name).enumerate() {
        let (r_min, first) = e.along_smallest_r();
        series.push(Series::new(
            format!("{} loss, r = t (velocity)", e.loss),
            e.along_diagonal(),
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

/// "sigma S d D beta B QUANTITY (+z)" for each check flagged with |z| > 4.
fn over(checks: &[CheckRow], posterior: &str) -> Vec<String> {
    flagged(checks, posterior, 4.0)
        .iter()
        .map(|c| {
            format!(
                "sigma {} d {} beta {} {} ({:+.1})",
                c.sigma, c.dim, c.beta, c.quantity, c.z_score
            )
        })
        .collect()
}

fn summary(settings: &GaussianSettings, result: &GaussianResult) -> String {
    let (checks, errors, ratios) = (&result.checks, result.errors(), result.ratios());
    let mut s = String::from("## 5. A ground truth: Gaussian data\n\n");
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
        worst_z(checks, "exact"),
        if over(checks, "exact").is_empty() { String::new() } else { format!(" (|z| > 4: {})", over(checks, "exact").join(", ")) },
        worst_z(checks, "pool"),
        if over(checks, "pool").is_empty() {
            String::new()
        } else {
            format!(
                " (|z| > 4: {}): there the pool is too sparse for its empirical posterior to be the \
                 population's (each z_t is made from a pool point, which the empirical posterior then \
                 over-weights); the variances of the pool's own posterior are lower than the closed \
                 forms, and that pool is what a model trained on it sees",
                over(checks, "pool").join(", ")
            )
        }
    );
    s.push_str("| sigma | d | posterior | ESS median | target MF: est / closed form (z) | target iMF: est / closed form (z) |\n|---|---|---|---|---|---|\n");
    for (c, i) in target_pairs(checks) {
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
    s.push_str("\n**Trained models vs u*** (relative RMS error of u over z ~ N(0, sigma_t^2), grid over 0 < r <= t < 1):\n\n");
    s.push_str(
        "| dataset | loss | median rel. error over the grid | median error / target scale | one step u(z, 0, 1) rel. error | 1-step sample std (sigma) |\n|---|---|---|---|---|---|\n",
    );
    for e in errors {
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} ({}) |",
            e.dataset,
            e.loss,
            e.median_relative(),
            e.median_relative_to_target(),
            e.one_step_relative,
            e.one_step_std,
            e.sigma
        );
    }
    s.push_str(
        "\n(rel. error = RMS |u - u*| / RMS |u*| per (r, t) cell; target scale = sqrt(E|v(z, t)|^2 + tr Var[v_c | z]), \
         which stays away from 0 where u* crosses 0.)\n",
    );
    s.push_str("\n**MF vs iMF target variance** E_z tr Var[target | z_t] (pool posterior, (r, t) uniform on the triangle):\n\n");
    s.push_str("| dataset | model | MF | iMF | MF/iMF (+- SE) | MF/iMF at smallest / largest t - r bin |\n|---|---|---|---|---|---|\n");
    for r in &ratios {
        let _ = writeln!(
            s,
            "| {} | {} | {:.4} +- {:.4} | {:.4} +- {:.4} | {} +- {:.3} | {:.3} / {:.3} |",
            r.dataset,
            r.model,
            r.mf_target,
            r.mf_target_se,
            r.imf_target,
            r.imf_target_se,
            ratio_text(r.mf_target, r.imf_target),
            r.ratio_se,
            r.ratio_by_gap.first().copied().unwrap_or(f64::NAN),
            r.ratio_by_gap.last().copied().unwrap_or(f64::NAN)
        );
    }
    s.push_str(
        "\n**The closed form, exactly**: the ratio of the closed forms' expectations over the (r, t) the \
         study samples (uniform on 0 < r < t <= 1), E[rho^2 V] / E[V] = \
         ∫∫ sigma_r^2 / sigma_t^4 dr dt / ∫ t / sigma_t^2 dt, by Gauss-Legendre quadrature (n x n nodes \
         on the triangle, n doubled until n / 2 and n agree), beside the sample's estimate of it (the \
         closed form row above):\n\n",
    );
    s.push_str("| dataset | exact MF/iMF | n / 2 and n nodes: relative change | closed form on the sample (points) | (sample - exact) / SE |\n|---|---|---|---|---|\n");
    for g in &result.datasets {
        let e = &g.exact;
        let (sample, se, points) =
            sampled(g).map_or((f64::NAN, f64::NAN, 0), |r| (r.ratio, r.ratio_se, r.points));
        let _ = writeln!(
            s,
            "| {} | {:.6} | {} / {}: {:.1e} | {:.4} +- {:.4} ({}) | {:+.2} |",
            g.name,
            e.ratio,
            e.nodes / 2,
            e.nodes,
            e.relative_change(),
            sample,
            se,
            points,
            (sample - e.ratio) / se
        );
    }
    s.push('\n');
    for g in &result.datasets {
        let d = g.name.as_str();
        let get = |m: &str| ratio_of(&ratios, d, m);
        // The direction the theory predicts is the exact value's; the sample's agrees with it
        // unless the ratio is within a few standard errors of 1.
        let exact = g.exact.ratio;
        let says = |x: f64| if x < 1.0 { "lower" } else { "higher" };
        let agree = |x: f64| {
            if (x < 1.0) == (exact < 1.0) {
                "agrees"
            } else {
                "CONTRADICTS the theory"
            }
        };
        let _ = writeln!(
            s,
            "- {d}: theory MF/iMF = {exact:.4} exact, {:.3} on the sample (MF {}); u* measured {:.3}; MF-trained net {:.3} ({}); iMF-trained net {:.3} ({}).",
            get("closed form"),
            says(exact),
            get("u*"),
            get("mf net"),
            agree(get("mf net")),
            get("imf net"),
            agree(get("imf net")),
        );
    }
    s.push_str(
        "\nFiles: closed_form_check.csv, u_error.csv, target_ratio.csv, exact_ratio.csv, summary.json, u_error_*.png, target_ratio_*.png.\n",
    );
    s
}
