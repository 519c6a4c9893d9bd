//! `meanflow study gradient-noise`: instrument 2 (study::gradient_noise). At fixed parameters
//! (initial, MF-trained, iMF-trained): the trace of the covariance of minibatch gradients per loss
//! and tangent blend beta at several batch sizes, and the angle between the stop-gradient gradient
//! and the exact one (`exact` variants, reverse over forward).
//!
//! Files: `noise.csv`, `angle.csv`, `summary.json`, and per dataset `noise_beta_<d>.png`
//! (B tr Cov vs beta), `noise_batch_<d>.png` (B tr Cov vs batch size), `angle_<d>.png`.

use super::conditional_variance::{chart, file_part, num, ratio_text, stream_index, timing_line};
use super::{write_text, StudyContext};
use crate::cli::CliResult;
use meanflow::flow::loss::{LossConfig, LossPreset};
use meanflow::flow::model::MlpParams;
use meanflow::flow::time_sampler::TimeSampler;
use meanflow::plot::{palette, Color, Series};
use meanflow::rng::Rng;
use meanflow::study::fixture::TrainedModel;
use meanflow::study::gradient_noise::{exact_angle, minibatch_noise, AngleEstimate, NoiseEstimate};
use meanflow::study::parallel_map;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
struct Settings {
    batches: Vec<usize>,
    minibatches: usize,
    betas: Vec<f64>,
    angle_batches: Vec<usize>,
    angle_minibatches: usize,
}

impl Settings {
    fn new(quick: bool) -> Self {
        if quick {
            Settings {
                batches: vec![8, 32],
                minibatches: 8,
                betas: vec![0.0, 1.0],
                angle_batches: vec![16],
                angle_minibatches: 3,
            }
        } else {
            Settings {
                batches: vec![16, 64, 256],
                minibatches: 64,
                betas: vec![0.0, 0.5, 1.0],
                angle_batches: vec![16, 64, 256],
                angle_minibatches: 16,
            }
        }
    }
}

/// One loss of the noise table.
#[derive(Clone, Debug, Serialize)]
struct LossRow {
    /// "mf" (beta 0, MF's time sampler), "imf" (beta 1, iMF's sampler), or "beta=b" (iMF's sampler).
    label: String,
    beta: f64,
    /// Fraction of rows with r = t.
    fraction_equal: f64,
    #[serde(skip)]
    time: TimeSampler,
}

fn loss_rows(betas: &[f64]) -> Vec<LossRow> {
    let mf = TimeSampler::mf_default();
    let imf = TimeSampler::imf_default();
    let mut rows = vec![LossRow {
        label: "mf".into(),
        beta: 0.0,
        fraction_equal: mf.fraction_equal,
        time: mf,
    }];
    for &b in betas {
        let label = if b == 1.0 {
            "imf".to_string()
        } else {
            format!("beta={b}")
        };
        rows.push(LossRow {
            label,
            beta: b,
            fraction_equal: imf.fraction_equal,
            time: imf,
        });
    }
    rows
}

#[derive(Serialize)]
struct NoiseRow {
    dataset: String,
    params: &'static str,
    loss: LossRow,
    estimate: NoiseEstimate,
}

#[derive(Serialize)]
struct AngleRow {
    dataset: String,
    params: &'static str,
    loss: &'static str,
    estimate: AngleEstimate,
}

/// What one dataset's measurements share.
#[derive(Clone, Copy)]
struct Job<'a> {
    name: &'a str,
    model: &'a TrainedModel,
    losses: &'a [LossRow],
    settings: &'a Settings,
    seeds: &'a [u64],
    angle_seeds: &'a [u64],
}

impl Job<'_> {
    /// The noise of every loss and batch size, and the angles, at one parameter set.
    fn measure(
        &self,
        label: &'static str,
        params: &MlpParams<f64>,
    ) -> (Vec<NoiseRow>, Vec<AngleRow>) {
        let (mut noise, mut angles) = (Vec::new(), Vec::new());
        let settings = self.settings;
        for loss in self.losses {
            let mut config = self.model.config;
            config.loss = LossConfig {
                beta: loss.beta,
                ..LossConfig::preset(LossPreset::Mf)
            };
            config.time = loss.time;
            for (&b, &seed) in settings.batches.iter().zip(self.seeds) {
                noise.push(NoiseRow {
                    dataset: self.name.to_string(),
                    params: label,
                    loss: loss.clone(),
                    estimate: minibatch_noise(
                        &config,
                        &self.model.data,
                        params,
                        b,
                        settings.minibatches,
                        seed,
                    ),
                });
            }
        }
        for (loss_label, preset, time) in [
            ("mf", LossPreset::Mf, TimeSampler::mf_default()),
            ("imf", LossPreset::Imf, TimeSampler::imf_default()),
        ] {
            for (&b, &seed) in settings.angle_batches.iter().zip(self.angle_seeds) {
                angles.push(AngleRow {
                    dataset: self.name.to_string(),
                    params: label,
                    loss: loss_label,
                    estimate: exact_angle(
                        &self.model.config.model,
                        &LossConfig::preset(preset),
                        time,
                        &self.model.data,
                        params,
                        b,
                        settings.angle_minibatches,
                        seed,
                    ),
                });
            }
        }
        (noise, angles)
    }
}

/// `meanflow study gradient-noise`.
pub fn run(context: &mut StudyContext, dir: &Path) -> CliResult<String> {
    let settings = Settings::new(context.quick);
    let t0 = Instant::now();
    let losses = loss_rows(&settings.betas);
    let (mut noise, mut angles) = (Vec::new(), Vec::new());
    for ds in context.datasets.clone() {
        let name = ds.name();
        let mf = context.models.get(&ds, LossPreset::Mf).clone();
        let imf = context.models.get(&ds, LossPreset::Imf).clone();
        let sets: [(&'static str, &MlpParams<f64>); 3] = [
            ("initial", &mf.initial),
            ("mf", &mf.trained),
            ("imf", &imf.trained),
        ];
        let mut rng = Rng::stream(context.seed, stream_index(2, &name));
        // One seed per batch size, shared by every loss and parameter set (common random numbers:
        // the same rows, noise and times, so that differences between losses are not sampling noise).
        let seeds: Vec<u64> = settings.batches.iter().map(|_| rng.next_u64()).collect();
        let angle_seeds: Vec<u64> = settings
            .angle_batches
            .iter()
            .map(|_| rng.next_u64())
            .collect();
        let job = Job {
            name: &name,
            model: &mf,
            losses: &losses,
            settings: &settings,
            seeds: &seeds,
            angle_seeds: &angle_seeds,
        };
        // Up to `threads` parameter sets at once, each on its own thread.
        let done = parallel_map(&sets, context.threads, |&(label, params)| {
            job.measure(label, params)
        });
        for (n, a) in done {
            noise.extend(n);
            angles.extend(a);
        }
        figures(&name, &noise, &angles, &settings, dir)?;
    }

    let mut csv = String::from(
        "dataset,params,loss,beta,fraction_r_eq_t,batch,minibatches,trace_cov,trace_cov_se,batch_times_trace_cov,mean_grad_norm2,loss_value\n",
    );
    for r in &noise {
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
            num(e.trace_cov),
            num(e.trace_cov_se),
            num(e.per_sample),
            num(e.mean_norm2),
            num(e.loss)
        );
    }
    write_text(&dir.join("noise.csv"), &csv)?;
    let mut csv = String::from(
        "dataset,params,loss,batch,minibatches,cos_mean,cos_se,cos_min,cos_of_means,norm_ratio_exact_over_sg,snr_sg,snr_exact\n",
    );
    for r in &angles {
        let e = &r.estimate;
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.dataset,
            r.params,
            r.loss,
            e.batch,
            e.minibatches,
            num(e.cos_mean),
            num(e.cos_se),
            num(e.cos_min),
            num(e.cos_of_means),
            num(e.norm_ratio),
            num(e.snr_sg),
            num(e.snr_exact)
        );
    }
    write_text(&dir.join("angle.csv"), &csv)?;
    crate::cli::common::write_json(
        &dir.join("summary.json"),
        &serde_json::json!({ "settings": settings, "noise": noise, "angle": angles }),
    )?;
    let mut text = summary(context, &noise, &angles, &settings);
    text.push_str(&timing_line(t0.elapsed().as_secs_f64()));
    write_text(&dir.join("summary.md"), &text)?;
    Ok(text)
}

fn figures(
    name: &str,
    noise: &[NoiseRow],
    angles: &[AngleRow],
    settings: &Settings,
    dir: &Path,
) -> CliResult<()> {
    let params = ["initial", "mf", "imf"];
    let big = *settings.batches.last().expect("a batch size");
    let mut series = Vec::new();
    for (pi, p) in params.iter().enumerate() {
        let pts: Vec<(f64, f64)> = noise
            .iter()
            .filter(|r| r.dataset == name && r.params == *p && r.estimate.batch == big)
            .filter(|r| r.loss.label != "mf")
            .map(|r| (r.loss.beta, r.estimate.per_sample))
            .collect();
        series.push(Series::new(
            format!("{p} params, iMF time sampler"),
            pts,
            palette(pi),
        ));
        let mf: Vec<(f64, f64)> = noise
            .iter()
            .filter(|r| r.dataset == name && r.params == *p && r.estimate.batch == big)
            .filter(|r| r.loss.label == "mf")
            .map(|r| (r.loss.beta, r.estimate.per_sample))
            .collect();
        series.push(Series::new(
            format!("{p} params, MF preset (75% r = t)"),
            mf,
            palette(pi).over(Color::WHITE, 0.5),
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
    for (pi, p) in params.iter().enumerate() {
        for (li, loss) in ["mf", "imf"].iter().enumerate() {
            let pts = noise
                .iter()
                .filter(|r| r.dataset == name && r.params == *p && r.loss.label == *loss)
                .map(|r| ((r.estimate.batch as f64).log2(), r.estimate.per_sample))
                .collect();
            let mut c = palette(pi);
            if li == 1 {
                c = c.over(Color::WHITE, 0.5);
            }
            series.push(Series::new(format!("{loss} loss, {p} params"), pts, c));
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
    for (pi, p) in params.iter().enumerate() {
        for (li, loss) in ["mf", "imf"].iter().enumerate() {
            let rows: Vec<&AngleRow> = angles
                .iter()
                .filter(|r| r.dataset == name && r.params == *p && r.loss == *loss)
                .collect();
            let pts = rows
                .iter()
                .map(|r| ((r.estimate.batch as f64).log2(), r.estimate.cos_mean))
                .collect();
            let band = rows
                .iter()
                .map(|r| {
                    let e = &r.estimate;
                    (
                        (e.batch as f64).log2(),
                        e.cos_mean - 2.0 * e.cos_se,
                        e.cos_mean + 2.0 * e.cos_se,
                    )
                })
                .collect();
            let mut c = palette(pi);
            if li == 1 {
                c = c.over(Color::WHITE, 0.5);
            }
            series.push(Series::new(format!("{loss} loss, {p} params"), pts, c).with_band(band));
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
    context: &StudyContext,
    noise: &[NoiseRow],
    angles: &[AngleRow],
    settings: &Settings,
) -> String {
    let mut s = String::from("## 2. Gradient noise\n\n");
    let big = *settings.batches.last().expect("a batch size");
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
    let find = |ds: &str, p: &str, l: &str, b: usize| {
        noise
            .iter()
            .find(|r| {
                r.dataset == ds && r.params == p && r.loss.label == l && r.estimate.batch == b
            })
            .map(|r| r.estimate)
    };
    let mut ratios = Vec::new();
    for ds in &context.datasets {
        let name = ds.name();
        for p in ["initial", "mf", "imf"] {
            let _ = write!(s, "| {name} | {p} |");
            for l in &labels {
                match find(&name, p, l, big) {
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
            let (a, b) = (find(&name, p, "mf", big), find(&name, p, "imf", big));
            let r = match (a, b) {
                (Some(a), Some(b)) => {
                    ratios.push((format!("{name}/{p}"), a.per_sample / b.per_sample));
                    ratio_text(a.per_sample, b.per_sample)
                }
                _ => "n/a".into(),
            };
            let flat = |l: &str| {
                settings
                    .batches
                    .iter()
                    .filter_map(|&b| find(&name, p, l, b).map(|e| format!("{:.3e}", e.per_sample)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, " {r} | mf: {}; imf: {} |", flat("mf"), flat("imf"));
        }
    }
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
    let ab = *settings.angle_batches.last().expect("an angle batch size");
    let _ = writeln!(
        s,
        "Angle between the stop-gradient gradient (as trained) and the exact gradient (through dudt), \
         {} minibatches of B = {ab}: mean cos +- SE, cos of the summed gradients, |g_exact| / |g_sg|.\n",
        settings.angle_minibatches
    );
    s.push_str(
        "| dataset | params | loss | cos | cos of means | SNR of mean g_sg / g_exact | norm ratio |\n|---|---|---|---|---|---|---|\n",
    );
    for r in angles.iter().filter(|r| r.estimate.batch == ab) {
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
    let trained: Vec<&AngleEstimate> = angles
        .iter()
        .filter(|r| r.estimate.batch == ab && r.params != "initial")
        .map(|r| &r.estimate)
        .collect();
    let lo = trained
        .iter()
        .map(|e| e.cos_mean)
        .fold(f64::INFINITY, f64::min);
    let hi = trained
        .iter()
        .map(|e| e.cos_mean)
        .fold(f64::NEG_INFINITY, f64::max);
    let resolved: Vec<String> = angles
        .iter()
        .filter(|r| r.estimate.batch == ab && r.params != "initial")
        .filter(|r| r.estimate.snr_sg > 4.0 && r.estimate.snr_exact > 4.0)
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
