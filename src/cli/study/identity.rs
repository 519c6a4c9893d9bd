//! `meanflow study identity`: instrument 4, the MeanFlow identity on the shared trained models
//! (meanflow::study::identity).
//!
//! Files: `identity.csv` (dataset, loss, r, t, residual, residual_abs, u_ode_sq,
//! integration_error per grid cell), `identity.json` (settings, cells and sample comparisons per
//! model), and per model `residual_<ds>_<loss>.png` (heat map of log10 of the relative residual
//! over (r, t)) and `samples_<ds>_<loss>.png` (held-out data, 1-step samples, ODE endpoints).

use super::report::{loss_label, num, picture, write_text};
use super::StudyContext;
use crate::cli::common::write_json;
use crate::cli::output::errln;
use crate::cli::CliResult;
use meanflow::plot::{heatmap, palette, scatter_panels, Panel};
use meanflow::study::dataset::DIGITS_NAME;
use meanflow::study::identity::{
    compare_losses, integration_against_residuals, run_identity, IdentitySettings, ModelIdentity,
    OneSeedVerdict,
};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

fn draw(m: &ModelIdentity, dir: &Path) -> CliResult<()> {
    let (ds, loss) = (&m.dataset, m.loss);
    let g = m.result.settings.grid as f64;
    let grid = m.result.residual_grid().mapv(f64::log10);
    let path = dir.join(format!("residual_{ds}_{loss}.png"));
    let title = format!("{ds} {}: log10 residual", loss_label(m.preset));
    let drawn = heatmap(
        &path,
        &title,
        "r",
        "t",
        grid.view(),
        (-0.5 / g, 1.0 - 0.5 / g),
        (0.5 / g, 1.0 + 0.5 / g),
    );
    picture(drawn, &path)?;
    let r = &m.result;
    if r.held_out.ncols() > 2 {
        // A scatter of two of 64 pixels says nothing: no samples picture for the digits.
        return Ok(());
    }
    let path = dir.join(format!("samples_{ds}_{loss}.png"));
    let panels = [
        Panel::new("held-out data", r.held_out.view(), palette(2)),
        Panel::new("1 step: z - u(z, 0, 1)", r.one_step.view(), palette(0)),
        Panel::new("ODE of u(z, t, t), RK4", r.ode.view(), palette(1)),
    ];
    let title = format!(
        "{ds} {loss}: 1-step samples and ODE endpoints of the same noise (mean distance {})",
        num(r.mean_distance)
    );
    picture(scatter_panels(&path, &panels, &title), &path)
}

fn write_files(models: &[ModelIdentity], dir: &Path) -> CliResult<()> {
    let mut csv =
        String::from("dataset,loss,r,t,residual,residual_abs,u_ode_sq,integration_error\n");
    for m in models {
        for c in &m.result.cells {
            let _ = writeln!(
                csv,
                "{},{},{},{},{:e},{:e},{:e},{:e}",
                m.dataset,
                m.loss,
                c.r,
                c.t,
                c.residual,
                c.residual_abs,
                c.u_ode_sq,
                c.integration_error
            );
        }
    }
    write_text(&dir.join("identity.csv"), &csv)?;
    write_json(&dir.join("identity.json"), &models)
}

/// How a ratio MF / iMF from one seed reads ([`OneSeedVerdict`]).
fn verdict(ratio: f64, above: &'static str, below: &'static str) -> &'static str {
    match OneSeedVerdict::of(ratio) {
        OneSeedVerdict::MfAbove => above,
        OneSeedVerdict::MfBelow => below,
        OneSeedVerdict::Unclear => "no clear difference (within 25%, one seed)",
    }
}

/// "closer to the data" / "farther from the data" for SW1(1-step) / SW1(ODE).
fn closer(ratio: f64) -> &'static str {
    if ratio < 1.0 {
        "closer to the data"
    } else {
        "farther from the data"
    }
}

fn summary(models: &[ModelIdentity], settings: &IdentitySettings, secs: f64) -> String {
    let mut s = String::from("## 4. The MeanFlow identity on a trained model\n\n");
    let _ = writeln!(
        s,
        "For each shared model (EMA weights, f64): u(z_t, r, t) against u_ode = (z_t - z_r) / (t - r), \
         z_r from RK4 integration of the model's own v(z, tau) = u(z, tau, tau) from t back to r \
         ({} steps per unit time), on a {g} x {g} grid of 0 <= r < t <= 1 with {} states z_t per t \
         drawn from the data marginal. residual = mean |u - u_ode|^2 / mean |u_ode|^2 per cell; \
         the integration error (RK4 at h against 2h on {} states, divided by 15^2) is on the same \
         scale. The identity holds for the exact average velocity of the model's own field, so the \
         residual measures self-consistency, not fit to the data. Samples: from the same {} noise \
         draws z_1, 1 step x = z_1 - u(z_1, 0, 1) against the ODE endpoint z_0; SW1 against as \
         many held-out points. {:.1} s for the measurements (the models' training is not \
         included).\n",
        settings.steps_per_unit,
        settings.points,
        settings.check_points,
        settings.points,
        secs,
        g = settings.grid,
    );
    if models.iter().any(|m| m.dataset == DIGITS_NAME) {
        let held_out = models
            .iter()
            .find(|m| m.dataset == DIGITS_NAME)
            .map_or(0, |m| m.result.held_out.nrows());
        let _ = writeln!(
            s,
            "On the digits (64-D, model units [-1, 1]): SW1 against the {held_out} held-out rows, \
             the floor is SW1 of {} training rows against them; no samples picture.\n",
            settings.points
        );
    }
    s.push_str(
        "| dataset | loss | residual median | residual max (r, t) | residual (0, 1) | max integration error | mean abs x1 - x_ode (rms x_ode) | SW1 1-step | SW1 ODE | SW1 floor |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in models {
        let r = &m.result;
        let at = m
            .worst_cell()
            .map_or(String::from("-"), |c| format!("({}, {})", c.r, c.t));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {} | {} | {} ({}) | {} | {} | {} |",
            m.dataset,
            loss_label(m.preset),
            num(m.residual_median),
            num(m.residual_max),
            at,
            num(m.residual_at_0_1),
            num(m.max_integration_error),
            num(r.mean_distance),
            num(r.ode_rms),
            num(r.sw1_one_step),
            num(r.sw1_ode),
            num(r.sw1_floor),
        );
    }
    s.push('\n');
    // The integrator against the residuals.
    let (worst_integration, smallest_residual) = integration_against_residuals(models);
    if worst_integration < smallest_residual {
        let _ = writeln!(
            s,
            "- The largest integration error ({}) is below the smallest residual ({}), by {:.1} decades: \
             the residuals are the models', not the integrator's.",
            num(worst_integration),
            num(smallest_residual),
            (smallest_residual / worst_integration).log10()
        );
    } else {
        let _ = writeln!(
            s,
            "- The largest integration error ({}) is not below the smallest residual ({}): some \
             cells' residuals are at the integrator's precision and say nothing about the model.",
            num(worst_integration),
            num(smallest_residual)
        );
    }
    // MF against iMF per dataset: the claim predicts MF less self-consistent.
    for c in compare_losses(models) {
        let (ds, mf, imf) = (c.dataset, c.mf, c.imf);
        let _ = writeln!(
            s,
            "- **{ds}**: median residual MF {} vs iMF {} (MF / iMF = {:.2}: {}); mean 1-step vs \
             ODE distance MF {} vs iMF {} (MF / iMF = {:.2}: {}). 1-step SW1 MF {} vs iMF {}; ODE \
             SW1 MF {} vs iMF {} (floor {}): the 1-step samples are {} than the model's own ODE \
             endpoints for MF, {} for iMF.",
            num(mf.residual_median),
            num(imf.residual_median),
            c.residual_ratio,
            verdict(
                c.residual_ratio,
                "MF less self-consistent, as the claim predicts",
                "MF more self-consistent, against the claim"
            ),
            num(mf.result.mean_distance),
            num(imf.result.mean_distance),
            c.distance_ratio,
            verdict(
                c.distance_ratio,
                "MF's 1-step map farther from its ODE, as the claim predicts",
                "MF's 1-step map closer to its ODE, against the claim"
            ),
            num(mf.result.sw1_one_step),
            num(imf.result.sw1_one_step),
            num(mf.result.sw1_ode),
            num(imf.result.sw1_ode),
            num(mf.result.sw1_floor),
            closer(c.sw1_ratio_mf),
            closer(c.sw1_ratio_imf),
        );
    }
    s.push_str(
        "\nOne seed per model (the shared fixture): differences between MF and iMF here carry no \
         seed spread; instrument 3 gives the spread over seeds.\n\
         \nFiles: identity.csv, identity.json; residual_<dataset>_<loss>.png, samples_<dataset>_<loss>.png.\n",
    );
    s
}

/// `meanflow study identity`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = if context.quick {
        IdentitySettings::quick()
    } else {
        IdentitySettings::standard()
    };
    let started = Instant::now();
    let models = run_identity(
        &context.datasets,
        &mut context.models,
        &settings,
        context.seed,
        context.threads,
        &|m: &ModelIdentity| {
            errln!(
                "study identity: {} {}: median residual {}",
                m.dataset,
                m.loss,
                num(m.residual_median)
            );
        },
    );
    let secs = started.elapsed().as_secs_f64();
    write_files(&models, dir)?;
    for m in &models {
        draw(m, dir)?;
    }
    let text = summary(&models, &settings, secs);
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}
