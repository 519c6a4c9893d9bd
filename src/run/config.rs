//! A run folder's `config.json` (written by `meanflow train`, read back by `--resume`): every
//! setting needed to rebuild the run, as JSON.
//!
//! [`RunConfig::parse`] is the one entry point from text: it checks the JSON against the schema
//! (unknown fields are errors), the `format` entry, and the training config
//! ([`TrainConfig::validate`]).
//! Any text gives `Ok` or an error, never a panic (tests/fuzz_regressions.rs, fuzz/).

use crate::data::{digits_units, DataUnits};
use crate::run::dataset::DIGITS_NAME;
use crate::train::checkpoint::Precision;
use crate::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// The `format` entry of config.json.
/// Version 1 (before the random stream moved to `rand`) cannot resume: its checkpoints are
/// refused too.
pub const RUN_FORMAT: &str = "meanflow-run-v2";

/// Where the data come from, as stored in config.json.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum DatasetJson {
    Builtin {
        name: String,
    },
    File {
        /// Absolute path.
        path: String,
        rows: usize,
        cols: usize,
        /// FNV-1a of the values and labels ([`fingerprint`](crate::run::dataset::fingerprint)).
        fingerprint: String,
        /// The label column the file was read with (a labelled run), else absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label_column: Option<isize>,
    },
}

/// config.json: everything needed to rebuild the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub format: String,
    pub dataset: DatasetJson,
    pub loss_preset: String,
    pub train: TrainConfig,
    pub precision: Precision,
    /// Total steps of the run.
    pub steps: u64,
    pub threads: usize,
    pub checkpoint_every: u64,
    pub eval_every: u64,
    pub eval_samples: usize,
    pub log_every: u64,
    pub skip_nonfinite: bool,
    /// Points in the training pool and in the held-out set.
    pub pool_points: usize,
    pub held_out_points: usize,
    /// The version of meanflow that started the run.
    pub version: String,
    /// The model's units against the data's (x_model = (x - shift) / scale per column): a
    /// file's columns standardised over the training pool unless `--no-standardize`; absent in
    /// runs started before files were standardised, whose units are [`RunConfig::units`]'s
    /// fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<DataUnits>,
}

/// What can be wrong with the text of a config.json; one line each (the caller adds the path).
#[derive(Debug, thiserror::Error)]
pub enum RunConfigError {
    #[error("{0}")]
    Json(String),
    #[error("format '{found}', expected '{RUN_FORMAT}'")]
    Format { found: String },
    #[error("train: {0}")]
    Config(String),
}

impl RunConfig {
    /// The units the run's model works in: the recorded ones, else (a run from before they were
    /// recorded) the digits' (p - 8) / 8 for the digits and the data's own for any other data.
    pub fn units(&self) -> DataUnits {
        let dim = self.train.model.dim;
        match (&self.units, &self.dataset) {
            (Some(units), _) => units.clone(),
            (None, DatasetJson::Builtin { name }) if name == DIGITS_NAME => digits_units(),
            (None, _) => DataUnits::identity(dim),
        }
    }

    /// Parses and checks the text of a config.json: the run config and its validated training
    /// config.
    pub fn parse(text: &str) -> Result<(RunConfig, TrainConfig), RunConfigError> {
        let json = |e: serde_json::Error| RunConfigError::Json(e.to_string());
        // The format first: another version's layout would otherwise fail on some field of it.
        let value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
        if let Some(found) = value.get("format").and_then(|f| f.as_str()) {
            if found != RUN_FORMAT {
                return Err(RunConfigError::Format {
                    found: found.to_string(),
                });
            }
        }
        // Parsed again from the text, not from `value`, so that an error names its line and column.
        let run: RunConfig = serde_json::from_str(text).map_err(json)?;
        run.train.validate().map_err(RunConfigError::Config)?;
        if let Some(units) = &run.units {
            units
                .validate(run.train.model.dim)
                .map_err(RunConfigError::Json)?;
        }
        let config = run.train;
        Ok((run, config))
    }
}
