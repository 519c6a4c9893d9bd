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
//! - `config`: the [`TrainConfig`] as JSON (its serde form: enums by their command-line names);
//! - `precision`: `f32` or `f64`;
//! - `step`: the number of optimizer steps taken, in decimal;
//! - `rng_state`: the batch sampler's xoshiro256++ state as JSON, `{"s": [4 u64 words]}`;
//! - any other entries are kept as they are ([`Checkpoint::extra`]): the command-line tool stores
//!   its own bookkeeping there.
//!
//! Every f32 and f64 value is stored exactly, and floats in the JSON parse back to the same bits,
//! so a run restored with [`Checkpoint::trainer`] draws and computes exactly what the
//! uninterrupted run would have.

use crate::flow::model::{Heads, Linear, MlpParams, CLASS_EMBED};
use crate::io::tensor_file::{StoredTensor, TensorFile, TensorFileError};
use crate::linalg::float::Float;
use crate::rng::Rng;
use crate::train::optim::Adam;
use crate::train::{TrainConfig, Trainer, TrainingData};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `format` metadata entry of a checkpoint.
/// Version 1 (before the random stream moved to `rand`) is refused by name: its generator
/// state and config layout are not this version's.
pub const CHECKPOINT_FORMAT: &str = "meanflow-checkpoint-v2";

/// The most steps a run may have, and so a checkpoint's largest `step`: 2^53, the largest count
/// that the learning-rate schedule, computed in f64, holds exactly.
pub const MAX_STEPS: u64 = 1 << 53;

/// The storage precision of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

crate::named_enum!(Precision, "precision", { F32 => "f32", F64 => "f64" });

impl Precision {
    /// The largest parameter magnitude a checkpoint in this precision may hold: 2^-10 sqrt(MAX),
    /// 1.8e16 in f32 and 1.3e151 in f64, the bound of the data (`run::dataset::max_data_magnitude`).
    /// A layer squares and sums products of such values; beyond it the model's outputs, the
    /// samples and the SW1 of an evaluation overflow, so such a file is refused by every reader.
    pub fn max_weight_magnitude(self) -> f64 {
        let max = match self {
            Precision::F32 => f64::from(f32::MAX),
            Precision::F64 => f64::MAX,
        };
        max.sqrt() / 1024.0
    }

    /// The precision of a [`Float`] type.
    pub fn of<T: Float>() -> Self {
        if T::NAME == "f32" {
            Precision::F32
        } else {
            Precision::F64
        }
    }
}

/// A training config from its JSON (the checkpoint's `config` entry, config.json's `train`),
/// validated; the message names the bad entry.
pub fn parse_train_config(text: &str) -> Result<TrainConfig, String> {
    let config: TrainConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

/// What can be wrong with a checkpoint; each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    File(#[from] TensorFileError),
    #[error("{path}: not a meanflow checkpoint ({}; expected '{CHECKPOINT_FORMAT}')", format_found(.found))]
    Format {
        path: PathBuf,
        found: Option<String>,
    },
    #[error("{path}: checkpoint format '{found}' was written by an older meanflow (another random stream and config layout); this version reads '{CHECKPOINT_FORMAT}' only: train again, or use the meanflow that wrote it")]
    OldFormat { path: PathBuf, found: String },
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
    #[error("{path}: tensor '{name}' holds {value:.3e}, beyond {limit:.1e} = 2^-10 sqrt(MAX) of {precision}, the largest weight a model is evaluated with in {precision} (its products square and sum such values)")]
    WeightOutOfRange {
        path: PathBuf,
        name: String,
        value: f64,
        limit: f64,
        precision: Precision,
    },
    #[error("{path}: tensor '{name}' has shape {}, expected {}", shape_text(.found), shape_text(.expected))]
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
    #[error("the data have {labels} labels (classes up to {largest}) for {rows} points, but the checkpoint's model has {classes} classes")]
    ClassMismatch {
        labels: usize,
        largest: usize,
        rows: usize,
        classes: usize,
    },
    #[error("the checkpoint has no Adam moments (adam.m.*, adam.v.*): it cannot resume training")]
    NoOptimizerState,
}

/// The `format` of a reference case (`crate::verify::reference`, a layer above this one), which
/// the message of a checkpoint reader handed one names.
const REFERENCE_CASE_FORMAT: &str = "meanflow-golden-v1";

/// What a file's `format` entry says, in words.
fn format_found(found: &Option<String>) -> String {
    match found.as_deref() {
        None => "its metadata has no 'format' entry".into(),
        Some(f) if f == REFERENCE_CASE_FORMAT => {
            format!("metadata 'format' is '{f}', a reference case, which `meanflow verify` reads")
        }
        Some(f) => format!("metadata 'format' is '{f}'"),
    }
}

/// `[8, 2]`.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
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
    /// The batch sampler's generator, in the state the next batch draws from.
    pub rng: Rng,
    pub params: MlpParams<f64>,
    pub ema: Option<MlpParams<f64>>,
    pub adam: Option<AdamMoments>,
    /// Other metadata entries, kept as they are.
    pub extra: BTreeMap<String, String>,
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
            rng: trainer.sampler.rng.clone(),
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
    pub fn trainer<T: Float>(
        &self,
        data: impl Into<TrainingData>,
    ) -> Result<Trainer<T>, CheckpointError> {
        let data = data.into();
        if Precision::of::<T>() != self.precision {
            return Err(CheckpointError::PrecisionMismatch {
                stored: self.precision,
                requested: Precision::of::<T>(),
            });
        }
        if data.points.ncols() != self.config.model.dim {
            return Err(CheckpointError::DimMismatch {
                data: data.points.ncols(),
                model: self.config.model.dim,
            });
        }
        let classes = self.config.model.classes;
        let largest = data.labels.iter().copied().max().unwrap_or(0);
        let expected_labels = if classes > 0 { data.points.nrows() } else { 0 };
        if data.labels.len() != expected_labels || (classes > 0 && largest >= classes) {
            return Err(CheckpointError::ClassMismatch {
                labels: data.labels.len(),
                largest,
                rows: data.points.nrows(),
                classes,
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
            self.rng.clone(),
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
            if let Some(table) = &params.class_embed {
                tensors.insert(
                    format!("{prefix}{CLASS_EMBED}"),
                    StoredTensor {
                        shape: vec![table.nrows(), table.ncols()],
                        values: table.clone(),
                        was_f32: self.precision == Precision::F32,
                    },
                );
            }
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
        let config = serde_json::to_string(&self.config).expect("a config serialises");
        metadata.insert("format".into(), CHECKPOINT_FORMAT.into());
        metadata.insert("config".into(), config);
        metadata.insert("precision".into(), self.precision.name().into());
        metadata.insert("step".into(), self.step.to_string());
        metadata.insert(
            "rng_state".into(),
            serde_json::to_string(&self.rng).expect("a generator state serialises"),
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
        let file = TensorFile::read_as(path, crate::io::limits::InputKind::Checkpoint)?;
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
        if let Some(old) = format.filter(|f| f.as_str() == "meanflow-checkpoint-v1") {
            return Err(CheckpointError::OldFormat {
                path: p(),
                found: old.clone(),
            });
        }
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
        let config = parse_train_config(meta("config")?).map_err(|e| bad("config", e))?;
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
        let rng: Rng = serde_json::from_str(meta("rng_state")?)
            .map_err(|e| bad("rng_state", e.to_string()))?;
        if rng.is_stuck_at_zero() {
            return Err(bad(
                "rng_state",
                "all four words are 0, a state xoshiro256++ never reaches (its stream would be stuck at 0)".into(),
            ));
        }

        let shapes = config.model.layer_shapes();
        let mut used = 0usize;
        let mut read_params = |prefix: &str| -> Result<Option<MlpParams<f64>>, CheckpointError> {
            let first = format!("{prefix}{}.weight", shapes[0].0);
            if !prefix.is_empty() && !file.tensors.contains_key(&first) {
                return Ok(None);
            }
            let mut get = |full: String, expected: Vec<usize>| {
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
            let mut layers = Vec::with_capacity(shapes.len());
            for (name, (out, fan_in)) in &shapes {
                layers.push(Linear {
                    weight: get(format!("{prefix}{name}.weight"), vec![*out, *fan_in])?,
                    bias: get(format!("{prefix}{name}.bias"), vec![*out])?,
                });
            }
            let class_embed = match config.model.class_embedding_shape() {
                Some((rows, cols)) => {
                    Some(get(format!("{prefix}{CLASS_EMBED}"), vec![rows, cols])?)
                }
                None => None,
            };
            let v_head = (config.model.heads == Heads::UV).then(|| layers.pop().expect("v_head"));
            let u_head = layers.pop().expect("u_head");
            Ok(Some(MlpParams {
                architecture: config.model.architecture,
                trunk: layers,
                u_head,
                v_head,
                class_embed,
            }))
        };
        let params = read_params("")?.expect("parameters are required");
        let ema = read_params("ema.")?;
        let limit = precision.max_weight_magnitude();
        for (prefix, weights) in [("", Some(&params)), ("ema.", ema.as_ref())] {
            for (name, values) in weights.map(MlpParams::named_tensors).unwrap_or_default() {
                if let Some(&value) = values.iter().find(|x| x.abs() > limit) {
                    return Err(CheckpointError::WeightOutOfRange {
                        path: p(),
                        name: format!("{prefix}{name}"),
                        value,
                        limit,
                        precision,
                    });
                }
            }
        }
        if ema.is_some() && config.ema_decay.is_none() {
            return Err(CheckpointError::Unexpected {
                path: p(),
                name: format!("ema.{}.weight", shapes[0].0),
            });
        }
        let adam_m = read_params("adam.m.")?;
        let adam_v = read_params("adam.v.")?;
        if let Some(v) = &adam_v {
            for (name, values) in v.named_tensors() {
                {
                    if let Some(&value) = values.iter().find(|x| **x < 0.0) {
                        return Err(CheckpointError::ImpossibleValue {
                            path: p(),
                            name: format!("adam.v.{name}"),
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
                        (config.model.classes > 0 && rest == CLASS_EMBED)
                            || shapes.iter().any(|(layer, _)| {
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
            rng,
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

    use crate::flow::loss::{LossConfig, LossPreset};
    use crate::flow::model::{Conditioning, ModelConfig};
    use crate::flow::time_sampler::TimeSampler;
    use crate::train::optim::AdamConfig;
    use ndarray::Array2;

    fn config(heads: Heads, ema: Option<f64>) -> TrainConfig {
        let loss = if heads == Heads::UV {
            LossConfig::preset(LossPreset::ImfHead)
        } else {
            LossConfig::preset(LossPreset::Imf)
        };
        TrainConfig {
            model: ModelConfig {
                width: 8,
                depth: 2,
                conditioning: Conditioning::Fourier { frequencies: 2 },
                heads,
                ..ModelConfig::default()
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

    /// A conditional model's table is written under its `nn.Embedding` name (with the EMA and Adam
    /// prefixes) and read back into the same parameters.
    #[test]
    fn class_embedding_is_written_and_read_back() {
        let mut cfg = config(Heads::U, Some(0.9));
        cfg.model.classes = 3;
        cfg.model.class_dim = 2;
        let params = MlpParams::<f64>::init(&cfg.model, &mut Rng::seed_from_u64(5));
        let checkpoint = Checkpoint {
            config: cfg,
            precision: Precision::F64,
            step: 7,
            rng: Rng::seed_from_u64(6),
            params: params.clone(),
            ema: Some(params.clone()),
            adam: Some(AdamMoments {
                m: params.zeros_like(),
                v: params.zeros_like(),
            }),
            extra: BTreeMap::new(),
        };
        let file = checkpoint.to_tensor_file();
        for prefix in ["", "ema.", "adam.m.", "adam.v."] {
            let t = &file.tensors[&format!("{prefix}{CLASS_EMBED}")];
            assert_eq!(t.shape, vec![4, 2], "{prefix}");
        }
        assert_eq!(
            file.tensors[CLASS_EMBED].values,
            *params.class_embed.as_ref().unwrap()
        );
        let back = Checkpoint::from_tensor_file(file, Path::new("c.safetensors")).unwrap();
        assert_eq!(back.config, cfg);
        assert_eq!(back.params, params);
        assert_eq!(back.ema, Some(params));
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
