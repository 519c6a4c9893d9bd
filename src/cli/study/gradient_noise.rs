//! `meanflow study gradient-noise`: instrument 2 (meanflow::study::gradient_noise). At fixed
//! parameters (initial, MF-trained, iMF-trained): the trace of the covariance of minibatch
//! gradients per loss and tangent blend beta at several batch sizes, and the angle between the
//! stop-gradient gradient and the exact one (`exact` variants, reverse over forward).
//!
//! Files: `noise.csv`, `angle.csv`, `summary.json`, and per dataset `noise_beta_<d>.png`
//! (B tr Cov vs beta), `noise_batch_<d>.png` (B tr Cov vs batch size), `angle_<d>.png`.

use super::report::{chart, file_part, ratio_text, sci, timing_line, write_text};
use super::StudyContext;
use crate::cli::CliResult;
use meanflow::plot::{palette, Color, Series};
use meanflow::study::dataset::StudyDataset;
use meanflow::study::gradient_noise::{
    loss_rows, run_gradient_noise, AngleEstimate, GradientNoiseResult, NoiseSettings, PARAMS,
};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// `meanflow study gradient-noise`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = if context.quick {
        NoiseSettings::quick()
    } else {
        NoiseSettings::standard()
    };
    let t0 = Instant::now();
    let result = run_gradient_noise(
        &context.datasets,
        &mut context.models,
        &settings,
        context.seed,
        context.threads,
    );
    for ds in &context.datasets {
        figures(&ds.name(), &result, &settings, dir)?;
    }
    write_tables(&result, dir)?;
    crate::cli::common::write_json(
        &dir.join("summary.json"),
        &serde_json::json!({ "settings": settings, "noise": result.noise, "angle": result.angles }),
    )?;
    let mut text = summary(&context.datasets, &result, &settings);
    text.push_str(&timing_line(t0.elapsed().as_secs_f64()));
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}

/// noise.csv and angle.csv.
fn write_tables(result: &GradientNoiseResult, dir: &Path) -> CliResult<()> {
    let mut csv = String::from(
        "dataset,params,loss,beta,fraction_r_eq_t,batch,minibatches,trace_cov,trace_cov_se,batch_times_trace_cov,mean_grad_norm2,loss_value\n",
    );
    for r in &result.noise {
        let e = &r.estimate;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.params,
            r.loss.label,
            r.loss.beta,
            r.loss.fraction_equal,
            e.batch,
            e.minibatches,
            sci(e.trace_cov),
            sci(e.trace_cov_se),
            sci(e.per_sample),
            sci(e.mean_norm2),
            sci(e.loss)
        );
    }
    write_text(&dir.join("noise.csv"), &csv)?;
    let mut csv = String::from(
        "dataset,params,loss,batch,minibatches,cos_mean,cos_se,cos_min,cos_of_means,norm_ratio_exact_over_sg,snr_sg,snr_exact\n",
    );
    for r in &result.angles {
        let e = &r.estimate;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.params,
            r.loss,
            e.batch,
            e.minibatches,
            sci(e.cos_mean),
            sci(e.cos_se),
            sci(e.cos_min),
            sci(e.cos_of_means),
            sci(e.norm_ratio),
            sci(e.snr_sg),
            sci(e.snr_exact)
        );
    }
    write_text(&dir.join("angle.csv"), &csv)
}

/// The lighter shade of a parameter set's colour, for its second curve.
fn shade(pi: usize, second: bool) -> Color {
    if second {
        palette(pi).over(Color::WHITE, 0.5)
    } else {
        palette(pi)
    }
}

fn figures(
    name: &str,
    result: &GradientNoiseResult,
    settings: &NoiseSettings,
    dir: &Path,
) -> CliResult<()> {
    let big = settings.largest_batch();
    let mut series = Vec::new();
    for (pi, p) in PARAMS.iter().enumerate() {
        series.push(Series::new(
            format!("{p} params, iMF time sampler"),
            result.per_sample_by_beta(name, p, big, false),
            shade(pi, false),
        ));
        series.push(Series::new(
            format!("{p} params, MF preset (75% r = t)"),
            result.per_sample_by_beta(name, p, big, true),
            shade(pi, true),
        ));
    }
    chart(
        &dir.join(format!("noise_beta_{}.png", file_part(name))),
        &format!("{name}: B tr Cov[g], B = {big}"),
        "beta (0 = MF, 1 = iMF)",
        "B tr Cov[g]",
        &series,
        true,
    )?;
    let mut series = Vec::new();
    for (pi, p) in PARAMS.iter().enumerate() {
        for (li, loss) in ["mf", "imf"].iter().enumerate() {
            series.push(Series::new(
                format!("{loss} loss, {p} params"),
                result.per_sample_by_batch(name, p, loss),
                shade(pi, li == 1),
            ));
        }
    }
    chart(
        &dir.join(format!("noise_batch_{}.png", file_part(name))),
        &format!("{name}: B tr Cov[g] vs B"),
        "log2 B",
        "B tr Cov[g]",
        &series,
        true,
    )?;
    let mut series = Vec::new();
    for (pi, p) in PARAMS.iter().enumerate() {
        for (li, loss) in ["mf", "imf"].iter().enumerate() {
            let estimates = result.angles_of(name, p, loss);
            let log2_b = |e: &AngleEstimate| (e.batch as f64).log2();
            let pts = estimates.iter().map(|e| (log2_b(e), e.cos_mean)).collect();
            let band = estimates
                .iter()
                .map(|e| {
                    (
                        log2_b(e),
                        e.cos_mean - 2.0 * e.cos_se,
                        e.cos_mean + 2.0 * e.cos_se,
                    )
                })
                .collect();
            series.push(
                Series::new(format!("{loss} loss, {p} params"), pts, shade(pi, li == 1))
                    .with_band(band),
            );
        }
    }
    chart(
        &dir.join(format!("angle_{}.png", file_part(name))),
        &format!("{name}: cos(g_sg, g_exact)"),
        "log2 B",
        "cos angle",
        &series,
        false,
    )
}

fn summary(
    datasets: &[StudyDataset],
    result: &GradientNoiseResult,
    settings: &NoiseSettings,
) -> String {
    let mut s = String::from("## 2. Gradient noise\n\n");
    let big = settings.largest_batch();
    let _ = writeln!(
        s,
        "tr Cov of the minibatch gradient (all parameters) from {} minibatches per batch size {:?}, at fixed \
         parameters, the same rows for every loss (common random numbers). B tr Cov is the per-sample noise. \
         `mf` uses MF's time sampler (75% rows r = t), `imf` and the beta grid iMF's (50%).\n",
        settings.minibatches, settings.batches
    );
    s.push_str("| dataset | params |");
    let labels: Vec<String> = loss_rows(&settings.betas)
        .into_iter()
        .map(|l| l.label)
        .collect();
    for l in &labels {
        let _ = write!(s, " B tr Cov {l} |");
    }
    let _ = writeln!(
        s,
        " MF/iMF | flat in B? (mf, imf: B tr Cov at B = {:?}) |",
        settings.batches
    );
    s.push_str("|---|---|");
    for _ in &labels {
        s.push_str("---|");
    }
    s.push_str("---|---|\n");
    for ds in datasets {
        let name = ds.name();
        for p in PARAMS {
            let _ = write!(s, "| {name} | {p} |");
            for l in &labels {
                match result.noise_at(&name, p, l, big) {
                    Some(e) => {
                        let _ = write!(
                            s,
                            " {:.4e} +- {:.1e} |",
                            e.per_sample,
                            big as f64 * e.trace_cov_se
                        );
                    }
                    None => s.push_str(" - |"),
                }
            }
            let r = match (
                result.noise_at(&name, p, "mf", big),
                result.noise_at(&name, p, "imf", big),
            ) {
                (Some(a), Some(b)) => ratio_text(a.per_sample, b.per_sample),
                _ => "n/a".into(),
            };
            let flat = |l: &str| {
                settings
                    .batches
                    .iter()
                    .filter_map(|&b| {
                        result
                            .noise_at(&name, p, l, b)
                            .map(|e| format!("{:.3e}", e.per_sample))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, " {r} | mf: {}; imf: {} |", flat("mf"), flat("imf"));
        }
    }
    let ratios = result.mf_imf_ratios(datasets, big);
    let below = ratios.iter().filter(|(_, r)| *r < 1.0).count();
    let _ = writeln!(
        s,
        "\nPer-sample gradient noise MF/iMF (each with its own time sampler, B = {big}): below 1 in {below} of {} \
         (dataset/params) cases: {}.\n",
        ratios.len(),
        ratios
            .iter()
            .map(|(k, r)| format!("{k} {r:.2}x"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s.push_str(
        "Rows with r = t (75% of an MF batch, 50% of an iMF batch) have the same loss under every beta, \
         so they dilute the difference the r != t rows make; a row's gradient is 2 J_theta^T delta \
         (plain squared error, p = 0), whose noise is the target's seen through the parameter Jacobian.\n\n",
    );
    let ab = settings.largest_angle_batch();
    let _ = writeln!(
        s,
        "Angle between the stop-gradient gradient (as trained) and the exact gradient (through dudt), \
         {} minibatches of B = {ab}: mean cos +- SE, cos of the summed gradients, |g_exact| / |g_sg|.\n",
        settings.angle_minibatches
    );
    s.push_str(
        "| dataset | params | loss | cos | cos of means | SNR of mean g_sg / g_exact | norm ratio |\n|---|---|---|---|---|---|---|\n",
    );
    for r in result.angles.iter().filter(|r| r.estimate.batch == ab) {
        let e = &r.estimate;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.4} +- {:.4} | {:.4} | {:.1} / {:.1} | {:.3} |",
            r.dataset,
            r.params,
            r.loss,
            e.cos_mean,
            e.cos_se,
            e.cos_of_means,
            e.snr_sg,
            e.snr_exact,
            e.norm_ratio
        );
    }
    let (lo, hi) = result.trained_cos_range(ab);
    let resolved: Vec<String> = result
        .resolved_angles(ab, 4.0)
        .iter()
        .map(|r| {
            format!(
                "{}/{}/{} {:.3}",
                r.dataset, r.params, r.loss, r.estimate.cos_of_means
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "\nAt trained parameters the per-minibatch cos(g_sg, g_exact) ranges over [{lo:.3}, {hi:.3}] (B = {ab}). \
         The cos of the summed gradients measures the angle of the expected gradients only where the mean \
         stands above its noise (SNR > 4 for both): {}; elsewhere the trained sg gradient averages to about \
         its own noise level and that cos is not informative.",
        if resolved.is_empty() { "no case".to_string() } else { resolved.join(", ") }
    );
    s.push_str("\nFiles: noise.csv, angle.csv, summary.json, noise_beta_*.png, noise_batch_*.png, angle_*.png.\n");
    s
}
