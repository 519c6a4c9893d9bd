//! `meanflow bench`: times the training step of src/bench/step.rs for the named configs, losses and
//! thread counts; one JSON line per measurement, then a table. First, unless `--no-peak`, it
//! measures one core's f32 FMA peak on the widest vector unit the CPU has (about 0.7 s), which the
//! in-GEMM speed is compared with.

use super::common::{count, MAX_THREADS};
use super::output::{errln, outln};
use super::{CliError, CliResult};
use clap::Args;
use meanflow::bench::fma_peak::{fma_peak, REPETITIONS};
use meanflow::bench::{default_counts, measure, table, BenchConfig, CONFIGS, MAX_BENCH_STEPS};
use meanflow::flow::loss::LossPreset;
use meanflow::linalg::matmul::set_matmul_threads;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Configs, mlp (c1 = d 2, width 128, depth 3, batch 256; c2 = 2, 256, 4, 1024;
    /// c3 = 2, 512, 4, 2048; c4 = 64, 512, 4, 1024) or resmlp, depth = residual blocks
    /// (r1 = 64, 256, 3, 256; r2 = 2, 256, 3, 1024) [default: c1,c2,c3,c4]
    #[arg(
        long = "config",
        value_name = "c1|c2|c3|c4|r1|r2",
        value_delimiter = ','
    )]
    pub configs: Vec<String>,
    /// Losses [default: mf,imf]
    #[arg(long = "loss", value_name = "mf|imf", value_delimiter = ',')]
    pub losses: Vec<String>,
    /// Thread counts, each 1 to 256 (the batch is split into this many shards) [default: 1,2]
    #[arg(long, value_delimiter = ',', value_parser = count::<usize>(1, MAX_THREADS))]
    pub threads: Vec<usize>,
    /// Untimed warm-up steps, 0 to 100000 [default: c1 200, c2 and r1 20, c3, c4 and r2 5]
    #[arg(long, value_parser = count::<usize>(0, MAX_BENCH_STEPS as u64))]
    pub warmup: Option<usize>,
    /// Timed steps, 1 to 100000 [default: c1 1000, c2 and r1 100, c3, c4 and r2 30]
    #[arg(long, value_parser = count::<usize>(1, MAX_BENCH_STEPS as u64))]
    pub repeats: Option<usize>,
    /// Print only the JSON lines
    #[arg(long)]
    pub json: bool,
    /// Skip measuring the FMA peak (and the "% of FMA peak" it gives)
    #[arg(long)]
    pub no_peak: bool,
    /// Also time the exact variant of each loss (gradient through dudt, no stop-gradient)
    #[arg(long)]
    pub exact: bool,
}

/// Length of one repetition of the FMA peak loop: long enough for a steady clock, short enough
/// that the peak costs under a second.
const PEAK_SECONDS_PER_REPETITION: f64 = 0.2;

/// Peak resident memory of this process (VmHWM), in MiB, where /proc tells it.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

pub fn run(args: BenchArgs) -> CliResult<i32> {
    let configs = if args.configs.is_empty() {
        CONFIGS.to_vec()
    } else {
        args.configs
            .iter()
            .map(|name| {
                BenchConfig::by_name(name).ok_or_else(|| {
                    CliError::usage(format!(
                        "unknown bench config '{name}' (expected c1, c2, c3, c4, r1 or r2)"
                    ))
                })
            })
            .collect::<CliResult<Vec<_>>>()?
    };
    let losses = if args.losses.is_empty() {
        vec![LossPreset::Mf, LossPreset::Imf]
    } else {
        args.losses
            .iter()
            .map(|l| match l.as_str() {
                "mf" => Ok(LossPreset::Mf),
                "imf" => Ok(LossPreset::Imf),
                other => Err(CliError::usage(format!(
                    "unknown bench loss '{other}' (expected mf or imf)"
                ))),
            })
            .collect::<CliResult<Vec<_>>>()?
    };
    let threads = if args.threads.is_empty() {
        vec![1, 2]
    } else {
        args.threads.clone()
    };
    // Threads split the batch; every product runs on one thread.
    set_matmul_threads(1);
    // One core's peak, since in-GEMM GFLOP/s is per thread too.
    let peak = (!args.no_peak).then(|| fma_peak(1, PEAK_SECONDS_PER_REPETITION));
    if let Some(peak) = peak {
        if args.json {
            outln!(
                "{{\"fma_peak_gflops\":{:.1},\"fma_peak_unit\":\"{}\",\"threads\":1}}",
                peak.gflops,
                peak.unit
            );
        } else {
            outln!(
                "FMA peak (measured): {:.1} GFLOP/s per core on {} ({}, best of {REPETITIONS} x {PEAK_SECONDS_PER_REPETITION} s)",
                peak.gflops, peak.unit, peak.kernel
            );
        }
    }
    let mut all = Vec::new();
    for config in &configs {
        let (warmup, repeats) = default_counts(config);
        let (warmup, repeats) = (
            args.warmup.unwrap_or(warmup),
            args.repeats.unwrap_or(repeats),
        );
        let variants: &[bool] = if args.exact { &[false, true] } else { &[false] };
        for &loss in &losses {
            for (&exact, &t) in variants
                .iter()
                .flat_map(|e| threads.iter().map(move |t| (e, t)))
            {
                let m = measure(config, loss, exact, t, warmup, repeats, peak);
                if !m.flops_match_analytic() {
                    errln!(
                        "warning: {} {} at {t} threads: the products counted {} flops per step, \
                         the analytic count (matmul GFLOP/s) says {}",
                        config.name,
                        loss.name(),
                        m.gemm_flops_per_step,
                        meanflow::bench::step_matmul_flops(config, loss, exact)
                    );
                }
                let json = m.json();
                let rss = peak_rss_mb()
                    .map(|mb| format!(",\"peak_rss_mb\":{mb:.1}"))
                    .unwrap_or_default();
                outln!("{}{rss}}}", &json[..json.len() - 1]);
                all.push(m);
            }
        }
    }
    if !args.json {
        super::output::write_text(super::output::Stream::Stdout, &table(&all));
    }
    Ok(0)
}
