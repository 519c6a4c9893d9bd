//! `--resume FOLDER`: the run folder read through [`meanflow::run::resume`], the flags given with
//! it checked against the stored settings (a resumed run keeps them), and the options a resume may
//! change (--steps, --threads, the periods, --skip-nonfinite, a moved --dataset) applied.

use super::args::TrainArgs;
use super::settings::{
    check_run_options, parse_activation, parse_ema, parse_guidance, parse_guidance_interval,
    parse_time_dist, show_guidance, show_guidance_interval, usage, IntervalSetting, FOR_A_RUN,
};
use crate::cli::common::{data_error, parse_dataset};
use crate::cli::{CliError, CliResult};
use meanflow::flow::loss::{LossPreset, VSource};
use meanflow::flow::model::{Architecture, Conditioning, Heads};
use meanflow::flow::time_sampler::TimeDistribution;
use meanflow::run::config::{DatasetJson, RunConfig};
use meanflow::run::dataset::{self, DataSource, RunDataError};
use meanflow::run::folder::{CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE};
use meanflow::run::lock::RunLock;
use meanflow::run::metrics_log;
use meanflow::run::plan::RunPlan;
use meanflow::run::resume;
use meanflow::train::checkpoint::{CheckpointError, Precision};
use meanflow::train::TrainConfig;
use std::fmt::Display;
use std::path::Path;

/// The plan of a resumed run, with the run folder locked; nothing is written yet, and a refused
/// resume leaves the folder as it was.
pub fn resolve_resume(args: &TrainArgs, folder: &Path) -> CliResult<RunPlan> {
    if let Some(out) = &args.out {
        return Err(CliError::usage(format!(
            "--out {}: cannot be used with --resume (the run stays in {})",
            out.display(),
            folder.display()
        )));
    }
    if !folder.is_dir() {
        return Err(CliError::usage(format!(
            "--resume {}: not a folder",
            folder.display()
        )));
    }
    resume::check_run_folder(folder).map_err(usage)?;
    // The lock first, so that what is read next is not being rewritten by a live run.
    let lock = RunLock::acquire(folder).map_err(usage)?;
    match resolve_resume_locked(args, folder) {
        Ok(plan) => Ok(RunPlan {
            lock: Some(lock),
            ..plan
        }),
        Err(e) => {
            // A refused resume leaves the folder as it was, the lock file included.
            lock.release_unchanged();
            Err(e)
        }
    }
}

/// [`resolve_resume`] once the run folder is locked.
fn resolve_resume_locked(args: &TrainArgs, folder: &Path) -> CliResult<RunPlan> {
    let config_path = folder.join(CONFIG_FILE);
    let (mut run, config) = resume::read_run_config(folder).map_err(usage)?;
    check_resume_flags(args, &run, &config, &config_path)?;
    let (ck, accumulator) = resume::read_checkpoint(folder, &run, &config).map_err(usage)?;
    let source = match &args.dataset {
        Some(spec) => resume_dataset(spec, &mut run, &config_path)?,
        None => {
            dataset::load_recorded(&run.dataset, &config_path, run.precision).map_err(
                |e| match e {
                    RunDataError::Load(e) => data_error(e, run.precision, FOR_A_RUN),
                    RunDataError::FileGone { .. } => CliError::usage(format!(
                        "{e}; if it moved, give its new path with --dataset"
                    )),
                    e => usage(e),
                },
            )?
        }
    };
    if source.dim() != config.model.dim {
        return Err(usage(CheckpointError::DimMismatch {
            data: source.dim(),
            model: config.model.dim,
        }));
    }
    if let Some(s) = args.steps {
        // A run never goes back: fewer steps than done would rewrite config.json and the
        // pictures of a later state with an earlier one's. Equal steps redo the end of the run
        // (the final evaluation and pictures).
        if s < ck.step {
            return Err(CliError::usage(format!(
                "--steps {s}: the run is already at step {} ({}); give --steps {} or more",
                ck.step,
                folder.join(CHECKPOINT_FILE).display(),
                ck.step
            )));
        }
        run.steps = s;
    }
    if let Some(t) = args.threads {
        run.threads = t;
    }
    if let Some(c) = args.checkpoint_every {
        run.checkpoint_every = c;
    }
    if let Some(e) = args.eval_every {
        run.eval_every = e;
    }
    if let Some(l) = args.log_every {
        run.log_every = l;
    }
    if args.skip_nonfinite {
        run.skip_nonfinite = true;
    }
    check_run_options(&run, &config)?;
    let kept_metrics = metrics_log::kept_lines(&folder.join(METRICS_FILE), ck.step, &accumulator);
    Ok(RunPlan {
        run,
        config,
        source,
        folder: folder.to_path_buf(),
        resume: Some(ck),
        kept_metrics,
        accumulator,
        lock: None,
        default_folder: false,
    })
}

/// Compares a flag given with --resume to the stored value.
fn same<T: PartialEq + Display>(
    flag: &str,
    given: Option<T>,
    stored: T,
    file: &Path,
) -> CliResult<()> {
    match given {
        Some(g) if g != stored => Err(CliError::usage(format!(
            "--{flag} {g} conflicts with the resumed run's {flag} {stored} ({}); a resumed run keeps its settings",
            file.display()
        ))),
        _ => Ok(()),
    }
}

fn show_opt(x: Option<f64>) -> String {
    x.map_or("none".into(), |v| v.to_string())
}

fn show_column(column: Option<isize>) -> String {
    column.map_or("none".into(), |c| c.to_string())
}

/// Refuses a setting flag whose value differs from the resumed run's (stored in `file`).
fn check_resume_flags(
    args: &TrainArgs,
    run: &RunConfig,
    config: &TrainConfig,
    file: &Path,
) -> CliResult<()> {
    if let Some(l) = &args.loss {
        let l = l.parse::<LossPreset>().map_err(usage)?;
        same(
            "loss",
            Some(l.name().to_string()),
            run.loss_preset.clone(),
            file,
        )?;
    }
    let (m, l, t, a) = (&config.model, &config.loss, &config.time, &config.adam);
    same("beta", args.beta, l.beta, file)?;
    if let Some(v) = &args.v_source {
        same(
            "v-source",
            Some(v.parse::<VSource>().map_err(usage)?),
            l.v_source,
            file,
        )?;
    }
    if args.exact && !l.exact {
        return Err(CliError::usage(format!(
            "--exact conflicts with the resumed run, which uses the stop-gradient loss ({})",
            file.display()
        )));
    }
    same("p", args.p, l.p, file)?;
    same("c", args.c, l.c, file)?;
    let (stored_dist, mu, sigma) = match t.distribution {
        TimeDistribution::LogitNormal { mu, sigma } => ("logit-normal", Some(mu), Some(sigma)),
        TimeDistribution::Uniform => ("uniform", None, None),
    };
    if let Some(d) = &args.time_dist {
        same("time-dist", Some(parse_time_dist(d)?), stored_dist, file)?;
    }
    if let Some(g) = args.time_mu {
        same("time-mu", Some(g.to_string()), show_opt(mu), file)?;
    }
    if let Some(g) = args.time_sigma {
        same("time-sigma", Some(g.to_string()), show_opt(sigma), file)?;
    }
    let (r_mu, r_sigma) = match t.r_distribution {
        Some(TimeDistribution::LogitNormal { mu, sigma }) => (Some(mu), Some(sigma)),
        _ => (None, None),
    };
    if let Some(g) = args.r_time_mu {
        same("r-time-mu", Some(g.to_string()), show_opt(r_mu), file)?;
    }
    if let Some(g) = args.r_time_sigma {
        same("r-time-sigma", Some(g.to_string()), show_opt(r_sigma), file)?;
    }
    same("frac-equal", args.frac_equal, t.fraction_equal, file)?;
    same("width", args.width, m.width, file)?;
    same("depth", args.depth, m.depth, file)?;
    if let Some(x) = &args.activation {
        same("activation", Some(parse_activation(x)?), m.activation, file)?;
    }
    if let Some(x) = &args.conditioning {
        same(
            "conditioning",
            Some(x.parse::<Conditioning>().map_err(usage)?),
            m.conditioning,
            file,
        )?;
    }
    if let Some(x) = &args.architecture {
        same(
            "architecture",
            Some(x.parse::<Architecture>().map_err(usage)?),
            m.architecture,
            file,
        )?;
    }
    if let Some(x) = &args.heads {
        same(
            "heads",
            Some(x.parse::<Heads>().map_err(usage)?),
            m.heads,
            file,
        )?;
    }
    let stored_column = match &run.dataset {
        DatasetJson::File { label_column, .. } => show_column(*label_column),
        DatasetJson::Builtin { .. } => show_column(None),
    };
    same(
        "label-column",
        args.label_column.map(|c| show_column(Some(c))),
        stored_column,
        file,
    )?;
    if args.unconditional && m.classes > 0 {
        return Err(CliError::usage(format!(
            "--unconditional conflicts with the resumed run's class-conditional model ({} classes, {}); a resumed run keeps its settings",
            m.classes,
            file.display()
        )));
    }
    if args.no_standardize {
        // It says "this file's own units": true only of a file run that kept them.
        let file_in_own_units =
            matches!(run.dataset, DatasetJson::File { .. }) && run.units().is_identity();
        if !file_in_own_units {
            return Err(CliError::usage(format!(
                "--no-standardize conflicts with the resumed run, whose model works in units of its own ({}: a built-in dataset's, or standardised columns); a resumed run keeps its settings",
                file.display()
            )));
        }
    }
    same("class-dim", args.class_dim, m.class_dim, file)?;
    same("label-dropout", args.label_dropout, l.label_dropout, file)?;
    if let Some(g) = &args.guidance {
        same(
            "guidance",
            Some(show_guidance(parse_guidance(g)?)),
            show_guidance(l.guidance),
            file,
        )?;
    }
    if let Some(i) = &args.guidance_interval {
        let given = match parse_guidance_interval(i)? {
            IntervalSetting::Fixed([lo, hi]) => format!("{lo},{hi}"),
            IntervalSetting::Random => "random".into(),
        };
        same(
            "guidance-interval",
            Some(given),
            show_guidance_interval(config),
            file,
        )?;
    }
    same("batch", args.batch, config.batch, file)?;
    same("lr", args.lr, a.lr, file)?;
    same("warmup", args.warmup, a.warmup_steps, file)?;
    same("beta1", args.beta1, a.beta1, file)?;
    same("beta2", args.beta2, a.beta2, file)?;
    same("weight-decay", args.weight_decay, a.weight_decay, file)?;
    if let Some(c) = args.clip {
        same("clip", Some(c.to_string()), show_opt(a.clip_norm), file)?;
    }
    if let Some(e) = &args.ema {
        same(
            "ema",
            Some(show_opt(parse_ema(e)?)),
            show_opt(config.ema_decay),
            file,
        )?;
    }
    same("seed", args.seed, config.seed, file)?;
    if let Some(p) = &args.precision {
        same(
            "precision",
            Some(p.parse::<Precision>().map_err(usage)?),
            run.precision,
            file,
        )?;
    }
    same("eval-samples", args.eval_samples, run.eval_samples, file)?;
    Ok(())
}

/// The data of a resumed run given with `--dataset`: the run's built-in dataset, or a file with the
/// same values as the run's (rows, columns, fingerprint), wherever it is now; a file that moved is
/// recorded at its new path.
fn resume_dataset(spec: &str, run: &mut RunConfig, file: &Path) -> CliResult<DataSource> {
    let label_column = match &run.dataset {
        DatasetJson::File { label_column, .. } => *label_column,
        DatasetJson::Builtin { .. } => None,
    };
    let given = parse_dataset(spec, label_column, run.precision, FOR_A_RUN)?;
    let given_record = dataset::record(&given).map_err(usage)?;
    if dataset::same_data(&given_record, &run.dataset) {
        run.dataset = given_record;
        return Ok(given);
    }
    let stored = match &run.dataset {
        DatasetJson::Builtin { name } => name.clone(),
        DatasetJson::File {
            path, rows, cols, ..
        } => {
            format!("{path} ({rows} x {cols}; a file with other values is another dataset)")
        }
    };
    Err(CliError::usage(format!(
        "--dataset {spec} conflicts with the resumed run's dataset {stored} ({}); a resumed run keeps its data",
        file.display()
    )))
}
