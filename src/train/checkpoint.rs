//! Training checkpoints: everything a run needs to continue bit for bit, in one safetensors file
//! that PyTorch's `safetensors.torch.load_file` reads as it is.
//!
//! Tensors (all in the run's precision, F32 or F64):
//! - the parameters under their PyTorch names: `trunk.{i}.weight` [out, in], `trunk.{i}.bias` \[out\]
//!   (1-D), `u_head.weight`, `u_head.bias`, and `v_head.*` when the model has a v-head;
//! - the EMA weights as `ema.<name>` (when the run keeps an EMA);
//! - AdamW's moments as `adam.m.<name>` and `adam.v.<name>`.
//!
//! Metadata (strings):
//! - `format`: [`CHECKPOINT_FORMAT`];
//! - `config`: the [`TrainConfig`] as JSON ([`TrainConfigJson`]);
//! - `precision`: `f32` or `f64`;
//! - `step`: the number of optimizer steps taken, in decimal;
//! - `rng_state`: the batch sampler's RNG as JSON `{"words": [4 decimal strings], "cached_normal":
//!   null or a decimal string}` (strings, so that no JSON reader rounds the u64 words or the f64);
//! - any other entries are kept as they are ([`Checkpoint::extra`]): the command-line tool stores
//!   its own bookkeeping there.
//!
//! Every f32 and f64 value is stored exactly, and floats in the JSON parse back to the same bits,
//! so a run restored with [`Checkpoint::trainer`] draws and computes exactly what the
//! uninterrupted run would have.

use crate::autodiff::elementwise::Elementwise;
use crate::flow::loss::{LossConfig, VSource};
use crate::flow::model::{Conditioning, Heads, Linear, MlpParams, ModelConfig};
use crate::flow::time_sampler::{TimeDistribution, TimeSampler};
use crate::io::tensor_file::{StoredTensor, TensorFile, TensorFileError};
use crate::linalg::float::Float;
use crate::rng::{Rng, RngState};
use crate::train::optim::{Adam, AdamConfig};
use crate::train::{TrainConfig, Trainer};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `format` metadata entry of a checkpoint.
pub const CHECKPOINT_FORMAT: &str = "meanflow-checkpoint-v1";

/// The most steps a run may have, and so a checkpoint's largest `step`: 2^53, the largest count
/// that the learning-rate schedule, computed in f64, holds exactly.
pub const MAX_STEPS: u64 = 1 << 53;

/// The largest normal the RNG's Box-Muller transform gives: sqrt(-2 ln 2^-53) = 8.57 (its
/// uniform u1 is at least 2^-53); a cached normal beyond it was not drawn by the generator.
const MAX_BOX_MULLER_NORMAL: f64 = 8.6;

/// The storage precision of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

crate::named_enum!(Precision, "precision", { F32 => "f32", F64 => "f64" });

impl Precision {
    /// The precision of a [`Float`] type.
    pub fn of<T: Float>() -> Self {
        if T::NAME == "f32" {
            Precision::F32
        } else {
            Precision::F64
        }
    }
}

/// [`ModelConfig`] as JSON: enums by their command-line names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfigJson {
    pub dim: usize,
    pub width: usize,
    pub depth: usize,
    pub activation: String,
    pub conditioning: String,
    pub heads: String,
}

/// [`LossConfig`] as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossConfigJson {
    pub beta: f64,
    pub v_source: String,
    pub exact: bool,
    pub p: f64,
    pub c: f64,
}

/// [`TimeSampler`] as JSON: `distribution` is `logit-normal` (with `mu`, `sigma`) or `uniform`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSamplerJson {
    pub distribution: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    pub fraction_equal: f64,
}

/// [`AdamConfig`] as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfigJson {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub warmup_steps: u64,
    pub clip_norm: Option<f64>,
}

/// [`TrainConfig`] as JSON (the checkpoint's `config` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfigJson {
    pub model: ModelConfigJson,
    pub loss: LossConfigJson,
    pub time: TimeSamplerJson,
    pub adam: AdamConfigJson,
    pub batch: usize,
    pub ema_decay: Option<f64>,
    pub seed: u64,
    /// Data-parallel threads (shards of the batch); absent in older files: 1.
    #[serde(default = "one_thread")]
    pub threads: usize,
}

fn one_thread() -> usize {
    1
}

impl From<&TrainConfig> for TrainConfigJson {
    fn from(c: &TrainConfig) -> Self {
        let (distribution, mu, sigma) = match c.time.distribution {
            TimeDistribution::LogitNormal { mu, sigma } => {
                ("logit-normal".to_string(), Some(mu), Some(sigma))
            }
            TimeDistribution::Uniform => ("uniform".to_string(), None, None),
        };
        TrainConfigJson {
            model: ModelConfigJson {
                dim: c.model.dim,
                width: c.model.width,
                depth: c.model.depth,
                activation: c.model.activation.name(),
                conditioning: c.model.conditioning.name(),
                heads: c.model.heads.name().to_string(),
            },
            loss: LossConfigJson {
                beta: c.loss.beta,
                v_source: c.loss.v_source.name().to_string(),
                exact: c.loss.exact,
                p: c.loss.p,
                c: c.loss.c,
            },
            time: TimeSamplerJson {
                distribution,
                mu,
                sigma,
                fraction_equal: c.time.fraction_equal,
            },
            adam: AdamConfigJson {
                lr: c.adam.lr,
                beta1: c.adam.beta1,
                beta2: c.adam.beta2,
                eps: c.adam.eps,
                weight_decay: c.adam.weight_decay,
                warmup_steps: c.adam.warmup_steps,
                clip_norm: c.adam.clip_norm,
            },
            batch: c.batch,
            ema_decay: c.ema_decay,
            seed: c.seed,
            threads: c.threads,
        }
    }
}

impl TrainConfigJson {
    /// The config it describes, validated; the message names the bad entry.
    pub fn to_config(&self) -> Result<TrainConfig, String> {
        let m = &self.model;
        let activation = m.activation.parse::<Elementwise>()?;
        if !Elementwise::ACTIVATIONS.contains(&activation) {
            return Err(format!("'{}' is not an activation", m.activation));
        }
        let distribution = match self.time.distribution.as_str() {
            "logit-normal" => TimeDistribution::LogitNormal {
                mu: self.time.mu.ok_or("time: logit-normal needs 'mu'")?,
                sigma: self.time.sigma.ok_or("time: logit-normal needs 'sigma'")?,
            },
            "uniform" => TimeDistribution::Uniform,
            other => {
                return Err(format!(
                    "unknown time distribution '{other}' (expected 'logit-normal' or 'uniform')"
                ))
            }
        };
        let config = TrainConfig {
            model: ModelConfig {
                dim: m.dim,
                width: m.width,
                depth: m.depth,
                activation,
                conditioning: m.conditioning.parse::<Conditioning>()?,
                heads: m.heads.parse::<Heads>()?,
            },
            loss: LossConfig {
                beta: self.loss.beta,
                v_source: self.loss.v_source.parse::<VSource>()?,
                exact: self.loss.exact,
                p: self.loss.p,
                c: self.loss.c,
            },
            time: TimeSampler {
                distribution,
                fraction_equal: self.time.fraction_equal,
            },
            adam: AdamConfig {
                lr: self.adam.lr,
                beta1: self.adam.beta1,
                beta2: self.adam.beta2,
                eps: self.adam.eps,
                weight_decay: self.adam.weight_decay,
                warmup_steps: self.adam.warmup_steps,
                clip_norm: self.adam.clip_norm,
            },
            batch: self.batch,
            ema_decay: self.ema_decay,
            seed: self.seed,
            threads: self.threads,
        };
        config.validate()?;
        Ok(config)
    }
}

/// What can be wrong with a checkpoint; each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    File(#[from] TensorFileError),
    #[error("{path}: not a meanflow checkpoint (metadata 'format' is {found:?}, expected '{CHECKPOINT_FORMAT}')")]
    Format {
        path: PathBuf,
        found: Option<String>,
    },
    #[error("{path}: metadata has no '{key}' entry")]
    MissingMetadata { path: PathBuf, key: String },
    #[error("{path}: metadata '{key}': {reason}")]
    BadMetadata {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("{path}: missing tensor '{name}'")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' holds {value}, but {reason}")]
    ImpossibleValue {
        path: PathBuf,
        name: String,
        value: f64,
        reason: &'static str,
    },
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error(
        "{path}: unexpected tensor '{name}' (not a parameter, EMA or Adam tensor of this model)"
    )]
    Unexpected { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' is stored as {found}, but the checkpoint's precision is {expected}")]
    Dtype {
        path: PathBuf,
        name: String,
        found: Precision,
        expected: Precision,
    },
    #[error("checkpoint precision is {stored}, cannot restore it into a {requested} run")]
    PrecisionMismatch {
        stored: Precision,
        requested: Precision,
    },
    #[error("the data have {data} columns but the checkpoint's model has dimension {model}")]
    DimMismatch { data: usize, model: usize },
    #[error("the checkpoint has no Adam moments (adam.m.*, adam.v.*): it cannot resume training")]
    NoOptimizerState,
}

/// AdamW's first and second moments.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamMoments {
    pub m: MlpParams<f64>,
    pub v: MlpParams<f64>,
}

/// A training checkpoint held in f64 (exact for both precisions; see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub config: TrainConfig,
    pub precision: Precision,
    /// Optimizer steps taken.
    pub step: u64,
    /// The batch sampler's RNG.
    pub rng: RngState,
    pub params: MlpParams<f64>,
    pub ema: Option<MlpParams<f64>>,
    pub adam: Option<AdamMoments>,
    /// Other metadata entries, kept as they are.
    pub extra: BTreeMap<String, String>,
}

/// The `rng_state` metadata entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RngStateJson {
    words: [String; 4],
    cached_normal: Option<String>,
}

const RESERVED_KEYS: [&str; 5] = ["format", "config", "precision", "step", "rng_state"];

fn params_to_f64<T: Float>(p: &MlpParams<T>) -> MlpParams<f64> {
    p.cast::<f64>()
}

impl Checkpoint {
    /// The state of a trainer, now.
    pub fn from_trainer<T: Float>(trainer: &Trainer<T>) -> Self {
        Checkpoint {
            config: trainer.config,
            precision: Precision::of::<T>(),
            step: trainer.step_count(),
            rng: trainer.rng_state(),
            params: params_to_f64(&trainer.params),
            ema: trainer.ema.as_ref().map(params_to_f64),
            adam: Some(AdamMoments {
                m: params_to_f64(&trainer.adam.m),
                v: params_to_f64(&trainer.adam.v),
            }),
            extra: BTreeMap::new(),
        }
    }

    /// A trainer in exactly the saved state, drawing batches from `data` (the same pool as the
    /// saved run for an exact continuation). `T` must be the checkpoint's precision.
    pub fn trainer<T: Float>(&self, data: Array2<f64>) -> Result<Trainer<T>, CheckpointError> {
        if Precision::of::<T>() != self.precision {
            return Err(CheckpointError::PrecisionMismatch {
                stored: self.precision,
                requested: Precision::of::<T>(),
            });
        }
        if data.ncols() != self.config.model.dim {
            return Err(CheckpointError::DimMismatch {
                data: data.ncols(),
                model: self.config.model.dim,
            });
        }
        let moments = self
            .adam
            .as_ref()
            .ok_or(CheckpointError::NoOptimizerState)?;
        let adam = Adam {
            config: self.config.adam,
            m: moments.m.cast::<T>(),
            v: moments.v.cast::<T>(),
            step: self.step,
        };
        let mut trainer = Trainer::from_parts(
            self.config,
            data,
            self.params.cast::<T>(),
            Some(adam),
            Rng::from_state(self.rng),
        );
        if self.config.ema_decay.is_some() {
            trainer.ema = Some(self.ema.as_ref().unwrap_or(&self.params).cast::<T>());
        }
        Ok(trainer)
    }

    /// The weights to sample with: the EMA when asked for (None if there is none), else the
    /// parameters.
    pub fn weights(&self, ema: bool) -> Option<&MlpParams<f64>> {
        if ema {
            self.ema.as_ref()
        } else {
            Some(&self.params)
        }
    }

    /// The checkpoint as named tensors and metadata.
    pub fn to_tensor_file(&self) -> TensorFile {
        let mut tensors = BTreeMap::new();
        let mut put = |prefix: &str, params: &MlpParams<f64>| {
            for (name, layer) in params.layers() {
                tensors.insert(
                    format!("{prefix}{name}.weight"),
                    StoredTensor {
                        shape: vec![layer.weight.nrows(), layer.weight.ncols()],
                        values: layer.weight.clone(),
                        was_f32: self.precision == Precision::F32,
                    },
                );
                tensors.insert(
                    format!("{prefix}{name}.bias"),
                    StoredTensor {
                        shape: vec![layer.bias.ncols()],
                        values: layer.bias.clone(),
                        was_f32: self.precision == Precision::F32,
                    },
                );
            }
        };
        put("", &self.params);
        if let Some(ema) = &self.ema {
            put("ema.", ema);
        }
        if let Some(adam) = &self.adam {
            put("adam.m.", &adam.m);
            put("adam.v.", &adam.v);
        }
        let mut metadata = self.extra.clone();
        let config = serde_json::to_string(&TrainConfigJson::from(&self.config))
            .expect("a config serialises");
        let rng = RngStateJson {
            words: self.rng.words.map(|w| w.to_string()),
            cached_normal: self.rng.cached_normal.map(|z| format!("{z:?}")),
        };
        metadata.insert("format".into(), CHECKPOINT_FORMAT.into());
        metadata.insert("config".into(), config);
        metadata.insert("precision".into(), self.precision.name().into());
        metadata.insert("step".into(), self.step.to_string());
        metadata.insert(
            "rng_state".into(),
            serde_json::to_string(&rng).expect("an RNG state serialises"),
        );
        TensorFile { metadata, tensors }
    }

    /// Writes the file atomically, tensors in the checkpoint's precision.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        Ok(self
            .to_tensor_file()
            .write(path, self.precision == Precision::F32)?)
    }

    /// Reads and checks a checkpoint file.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let file = TensorFile::read(path)?;
        Self::from_tensor_file(file, path)
    }

    /// Parses and checks the bytes of a checkpoint file; `path` only names it in errors. Any bytes
    /// give `Ok` or an error, never a panic (tests/fuzz_regressions.rs, fuzz/).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        Self::from_tensor_file(TensorFile::parse(bytes, path)?, path)
    }

    /// Checks and converts the contents of a file; `path` only names it in errors.
    pub fn from_tensor_file(file: TensorFile, path: &Path) -> Result<Self, CheckpointError> {
        let p = || path.to_path_buf();
        let format = file.metadata.get("format");
        if format.map(String::as_str) != Some(CHECKPOINT_FORMAT) {
            return Err(CheckpointError::Format {
                path: p(),
                found: format.cloned(),
            });
        }
        let meta = |key: &str| {
            file.metadata
                .get(key)
                .ok_or_else(|| CheckpointError::MissingMetadata {
                    path: p(),
                    key: key.into(),
                })
        };
        let bad = |key: &str, reason: String| CheckpointError::BadMetadata {
            path: p(),
            key: key.into(),
            reason,
        };
        let config_json: TrainConfigJson =
            serde_json::from_str(meta("config")?).map_err(|e| bad("config", e.to_string()))?;
        let config = config_json.to_config().map_err(|e| bad("config", e))?;
        let precision = meta("precision")?
            .parse::<Precision>()
            .map_err(|e| bad("precision", e))?;
        let step = meta("step")?
            .parse::<u64>()
            .map_err(|e| bad("step", format!("not a step count: {e}")))?;
        if step > MAX_STEPS {
            return Err(bad(
                "step",
                format!("{step} is beyond 2^53 = {MAX_STEPS}, the most steps a run may have"),
            ));
        }
        let rng_json: RngStateJson = serde_json::from_str(meta("rng_state")?)
            .map_err(|e| bad("rng_state", e.to_string()))?;
        let mut words = [0u64; 4];
        for (w, text) in words.iter_mut().zip(&rng_json.words) {
            *w = text
                .parse::<u64>()
                .map_err(|e| bad("rng_state", format!("word '{text}': {e}")))?;
        }
        if words == [0; 4] {
            return Err(bad(
                "rng_state",
                "all four words are 0, a state xoshiro256++ never reaches (its stream would be stuck at 0)".into(),
            ));
        }
        let cached_normal = match &rng_json.cached_normal {
            None => None,
            Some(text) => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|z| z.is_finite())
                    .ok_or_else(|| bad("rng_state", format!("cached normal '{text}'")))?,
            ),
        };
        if let Some(z) = cached_normal.filter(|z| z.abs() > MAX_BOX_MULLER_NORMAL) {
            return Err(bad(
                "rng_state",
                format!("cached normal {z} is beyond {MAX_BOX_MULLER_NORMAL}, more than the generator's normals reach"),
            ));
        }

        let shapes = config.model.layer_shapes();
        let mut used = 0usize;
        let mut read_params = |prefix: &str| -> Result<Option<MlpParams<f64>>, CheckpointError> {
            let first = format!("{prefix}{}.weight", shapes[0].0);
            if !prefix.is_empty() && !file.tensors.contains_key(&first) {
                return Ok(None);
            }
            let mut layers = Vec::with_capacity(shapes.len());
            for (name, (out, fan_in)) in &shapes {
                let mut get = |suffix: &str, expected: Vec<usize>| {
                    let full = format!("{prefix}{name}.{suffix}");
                    let t = file
                        .tensors
                        .get(&full)
                        .ok_or_else(|| CheckpointError::Missing {
                            path: p(),
                            name: full.clone(),
                        })?;
                    if t.shape != expected {
                        return Err(CheckpointError::Shape {
                            path: p(),
                            name: full,
                            found: t.shape.clone(),
                            expected,
                        });
                    }
                    let found = if t.was_f32 {
                        Precision::F32
                    } else {
                        Precision::F64
                    };
                    if found != precision {
                        return Err(CheckpointError::Dtype {
                            path: p(),
                            name: full,
                            found,
                            expected: precision,
                        });
                    }
                    used += 1;
                    Ok(t.values.clone())
                };
                layers.push(Linear {
                    weight: get("weight", vec![*out, *fan_in])?,
                    bias: get("bias", vec![*out])?,
                });
            }
            let v_head = (config.model.heads == Heads::UV).then(|| layers.pop().expect("v_head"));
            let u_head = layers.pop().expect("u_head");
            Ok(Some(MlpParams {
                trunk: layers,
                u_head,
                v_head,
            }))
        };
        let params = read_params("")?.expect("parameters are required");
        let ema = read_params("ema.")?;
        if ema.is_some() && config.ema_decay.is_none() {
            return Err(CheckpointError::Unexpected {
                path: p(),
                name: format!("ema.{}.weight", shapes[0].0),
            });
        }
        let adam_m = read_params("adam.m.")?;
        let adam_v = read_params("adam.v.")?;
        if let Some(v) = &adam_v {
            for (name, layer) in v.layers() {
                for (suffix, values) in [("weight", &layer.weight), ("bias", &layer.bias)] {
                    if let Some(&value) = values.iter().find(|x| **x < 0.0) {
                        return Err(CheckpointError::ImpossibleValue {
                            path: p(),
                            name: format!("adam.v.{name}.{suffix}"),
                            value,
                            reason: "Adam's second moment is a mean of squared gradients, never negative",
                        });
                    }
                }
            }
        }
        let adam = match (adam_m, adam_v) {
            (Some(m), Some(v)) => Some(AdamMoments { m, v }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(CheckpointError::Missing {
                    path: p(),
                    name: format!("adam.v.{}.weight", shapes[0].0),
                })
            }
            (None, Some(_)) => {
                return Err(CheckpointError::Missing {
                    path: p(),
                    name: format!("adam.m.{}.weight", shapes[0].0),
                })
            }
        };
        if used != file.tensors.len() {
            let known = |name: &str| {
                ["", "ema.", "adam.m.", "adam.v."].iter().any(|prefix| {
                    name.strip_prefix(prefix).is_some_and(|rest| {
                        shapes.iter().any(|(layer, _)| {
                            rest == format!("{layer}.weight") || rest == format!("{layer}.bias")
                        })
                    })
                })
            };
            let name = file
                .tensors
                .keys()
                .find(|n| !known(n))
                .cloned()
                .unwrap_or_default();
            return Err(CheckpointError::Unexpected { path: p(), name });
        }
        let extra = file
            .metadata
            .iter()
            .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Checkpoint {
            config,
            precision,
            step,
            rng: RngState {
                words,
                cached_normal,
            },
            params,
            ema,
            adam,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::loss::LossPreset;
    use crate::flow::model::Conditioning;

    fn config(heads: Heads, ema: Option<f64>) -> TrainConfig {
        let loss = if heads == Heads::UV {
            LossConfig::preset(LossPreset::ImfHead)
        } else {
            LossConfig::preset(LossPreset::Imf)
        };
        TrainConfig {
            model: ModelConfig {
                dim: 2,
                width: 8,
                depth: 2,
                activation: Elementwise::Silu,
                conditioning: Conditioning::Fourier { frequencies: 2 },
                heads,
            },
            loss,
            time: TimeSampler::imf_default(),
            adam: AdamConfig {
                clip_norm: Some(1.5),
                warmup_steps: 3,
                ..AdamConfig::default()
            },
            batch: 16,
            ema_decay: ema,
            seed: 11,
            threads: 2,
        }
    }

    fn data() -> Array2<f64> {
        let mut rng = Rng::seed_from_u64(3);
        Array2::from_shape_simple_fn((64, 2), || rng.normal())
    }

    fn roundtrip_and_continue<T: Float>(heads: Heads, ema: Option<f64>) {
        let cfg = config(heads, ema);
        let mut a = Trainer::<T>::new(cfg, data());
        for _ in 0..5 {
            a.step().unwrap();
        }
        let mut ck = Checkpoint::from_trainer(&a);
        ck.extra.insert("note".into(), "kept".into());
        let bytes = ck.to_tensor_file().to_bytes(ck.precision == Precision::F32);
        let back = Checkpoint::from_tensor_file(
            TensorFile::parse(&bytes, Path::new("x")).unwrap(),
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(back, ck);
        let mut b = back.trainer::<T>(data()).unwrap();
        for _ in 0..4 {
            let sa = a.step().unwrap();
            let sb = b.step().unwrap();
            assert_eq!(sa, sb);
        }
        assert_eq!(a.params, b.params);
        assert_eq!(a.ema, b.ema);
        assert_eq!(a.adam, b.adam);
    }

    #[test]
    fn exact_roundtrip_and_continuation() {
        roundtrip_and_continue::<f32>(Heads::U, Some(0.99));
        roundtrip_and_continue::<f64>(Heads::UV, None);
    }

    #[test]
    fn names_shapes_and_errors() {
        let t = Trainer::<f32>::new(config(Heads::U, Some(0.9)), data());
        let ck = Checkpoint::from_trainer(&t);
        let file = ck.to_tensor_file();
        assert_eq!(file.tensors["trunk.0.bias"].shape, vec![8]);
        assert_eq!(file.tensors["trunk.0.weight"].shape, vec![8, 2 + 10]);
        assert!(file.tensors.contains_key("ema.u_head.bias"));
        assert!(file.tensors.contains_key("adam.v.trunk.1.weight"));
        assert_eq!(file.tensors.len(), 4 * 6);
        let path = Path::new("c.safetensors");

        let mut missing = file.clone();
        missing.tensors.remove("adam.m.u_head.bias");
        let e = Checkpoint::from_tensor_file(missing, path).unwrap_err();
        assert!(e.to_string().contains("adam.m.u_head.bias"), "{e}");

        let mut extra = file.clone();
        extra
            .tensors
            .insert("bogus".into(), file.tensors["trunk.0.bias"].clone());
        let e = Checkpoint::from_tensor_file(extra, path).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");

        let mut wrong = file.clone();
        wrong.metadata.insert("format".into(), "other".into());
        assert!(matches!(
            Checkpoint::from_tensor_file(wrong, path),
            Err(CheckpointError::Format { .. })
        ));

        let e = ck.trainer::<f64>(data()).unwrap_err();
        assert!(matches!(e, CheckpointError::PrecisionMismatch { .. }));
        let e = ck
            .trainer::<f32>(Array2::zeros((4, 3)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 columns"), "{e}");
    }
}
