//! Reference cases: a model, a batch and every expected quantity of the loss in one safetensors
//! file (format `meanflow-golden-v1`, documented in docs/reference-format.md). The engine
//! recomputes each `expect.*` tensor in f64 from the parameters and the batch alone.
//!
//! A conditional case adds `classes`, `class_dim`, `guidance_input`, `guidance` and `label_dropout`
//! to the config (absent: an unconditional model, so older files load as before), the parameter
//! `class_embed.weight`, and the batch's `batch.labels` (\[B\] or \[B, 1\], integer values 0..=C in F64,
//! C the null class) and `batch.scales` ([B, 1], w >= 1, with a guidance input); bad ones are
//! refused with one line naming the file and the tensor ([`ReferenceError::BadValue`]).

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::flow::guidance::Guidance;
use crate::flow::loss::{record_loss, Batch, LossConfig, VSource};
use crate::flow::model::{
    class_rows, Conditioning, Heads, Linear, MlpParams, ModelConfig, CLASS_EMBED,
};
use crate::io::tensor_file::{TensorFile, TensorFileError};
use ndarray::Array2;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What can be wrong with a reference case; one line each.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    File(#[from] TensorFileError),
    #[error("{path}: metadata has no 'config' entry")]
    NoConfig { path: PathBuf },
    #[error("{path}: a meanflow training checkpoint, not a reference case (tests/data/README.md describes those); `meanflow sample --checkpoint` reads checkpoints")]
    TrainingCheckpoint { path: PathBuf },
    #[error("{path}: config: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: missing tensor '{name}'")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: tensor '{name}' has shape {found:?}, expected {expected:?}")]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor '{name}': {reason}")]
    BadValue {
        path: PathBuf,
        name: String,
        reason: String,
    },
}

/// The `config` metadata entry.
#[derive(Clone, Debug, Deserialize)]
struct CaseConfig {
    d: usize,
    width: usize,
    depth: usize,
    activation: String,
    conditioning: String,
    heads: String,
    beta: f64,
    v_source: String,
    p: f64,
    c: f64,
    exact: bool,
    batch: usize,
    #[serde(default)]
    name: Option<String>,
    /// Classes C of a conditional model (0, the default: unconditional).
    #[serde(default)]
    classes: usize,
    #[serde(default)]
    class_dim: usize,
    #[serde(default)]
    guidance_input: bool,
    /// As in a training config: `{"kind": "none"}` (default), `{"kind": "target", "w", "kappa"}`,
    /// `{"kind": "input", "w_max"}`.
    #[serde(default)]
    guidance: Guidance,
    #[serde(default)]
    label_dropout: f64,
}

/// A loaded reference case.
#[derive(Clone, Debug)]
pub struct ReferenceCase {
    pub name: String,
    pub model: ModelConfig,
    pub loss: LossConfig,
    pub params: MlpParams<f64>,
    pub batch: Batch<f64>,
    /// Every `expect.*` tensor, keyed without the prefix (`u`, `grad.trunk.0.weight`, ...).
    pub expected: BTreeMap<String, Array2<f64>>,
}

/// The error of one recomputed quantity against its expected value.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantityError {
    pub name: String,
    pub max_abs: f64,
    /// max |actual - expected| / max(max |expected|, ABS_FLOOR).
    pub max_rel: f64,
}

impl ReferenceCase {
    pub fn load(path: &Path) -> Result<Self, ReferenceError> {
        let file = TensorFile::read(path)?;
        let p = || path.to_path_buf();
        if file.metadata.get("format").map(String::as_str)
            == Some(crate::train::checkpoint::CHECKPOINT_FORMAT)
        {
            return Err(ReferenceError::TrainingCheckpoint { path: p() });
        }
        let config_json = file
            .metadata
            .get("config")
            .ok_or(ReferenceError::NoConfig { path: p() })?;
        let cfg: CaseConfig =
            serde_json::from_str(config_json).map_err(|e| ReferenceError::Config {
                path: p(),
                reason: e.to_string(),
            })?;
        let bad = |reason: String| ReferenceError::Config { path: p(), reason };
        let model = ModelConfig {
            dim: cfg.d,
            width: cfg.width,
            depth: cfg.depth,
            activation: cfg.activation.parse::<Elementwise>().map_err(bad)?,
            conditioning: cfg.conditioning.parse::<Conditioning>().map_err(bad)?,
            heads: cfg.heads.parse::<Heads>().map_err(bad)?,
            classes: cfg.classes,
            class_dim: cfg.class_dim,
            guidance_input: cfg.guidance_input,
        };
        let loss = LossConfig {
            beta: cfg.beta,
            v_source: cfg.v_source.parse::<VSource>().map_err(bad)?,
            exact: cfg.exact,
            p: cfg.p,
            c: cfg.c,
            guidance: cfg.guidance,
            label_dropout: cfg.label_dropout,
        };
        loss.validate(&model).map_err(bad)?;
        if model.dim == 0 || cfg.batch == 0 {
            return Err(bad("d and batch must be positive".into()));
        }
        model.check_classes().map_err(bad)?;

        let tensor = |name: &str, expected: &[usize]| -> Result<Array2<f64>, ReferenceError> {
            let t = file
                .tensors
                .get(name)
                .ok_or_else(|| ReferenceError::Missing {
                    path: p(),
                    name: name.to_string(),
                })?;
            if t.shape != expected {
                return Err(ReferenceError::Shape {
                    path: p(),
                    name: name.to_string(),
                    found: t.shape.clone(),
                    expected: expected.to_vec(),
                });
            }
            Ok(t.values.clone())
        };
        let mut layers = Vec::new();
        for (name, (out, fan_in)) in model.layer_shapes() {
            layers.push(Linear {
                weight: tensor(&format!("{name}.weight"), &[out, fan_in])?,
                bias: tensor(&format!("{name}.bias"), &[out])?,
            });
        }
        let v_head = (model.heads == Heads::UV).then(|| layers.pop().expect("v_head layer"));
        let u_head = layers.pop().expect("u_head layer");
        let class_embed = match model.class_embedding_shape() {
            Some((rows, cols)) => Some(tensor(CLASS_EMBED, &[rows, cols])?),
            None => None,
        };
        let params = MlpParams {
            trunk: layers,
            u_head,
            v_head,
            class_embed,
        };
        let (b, d) = (cfg.batch, cfg.d);
        let bad_value = |name: &str, reason: String| ReferenceError::BadValue {
            path: p(),
            name: name.to_string(),
            reason,
        };
        // Per-row vectors may be [B] or [B, 1]; the values come back in row order either way.
        let per_row = |name: &str| -> Result<Option<Vec<f64>>, ReferenceError> {
            let Some(t) = file.tensors.get(name) else {
                return Ok(None);
            };
            if t.shape != [b] && t.shape != [b, 1] {
                return Err(ReferenceError::Shape {
                    path: p(),
                    name: name.to_string(),
                    found: t.shape.clone(),
                    expected: vec![b],
                });
            }
            Ok(Some(t.values.iter().copied().collect()))
        };
        let labels = match (model.classes, per_row("batch.labels")?) {
            (0, None) => Vec::new(),
            (0, Some(_)) => {
                return Err(bad_value(
                    "batch.labels",
                    "labels for an unconditional model (config classes = 0)".into(),
                ))
            }
            (_, None) => {
                return Err(ReferenceError::Missing {
                    path: p(),
                    name: "batch.labels".into(),
                })
            }
            (classes, Some(values)) => {
                let mut labels = Vec::with_capacity(b);
                for (i, &v) in values.iter().enumerate() {
                    if v.fract() != 0.0 || !(0.0..=classes as f64).contains(&v) {
                        return Err(bad_value(
                            "batch.labels",
                            format!(
                                "row {i} holds {v}, not a class: labels are integers 0 to {classes} (the null class)"
                            ),
                        ));
                    }
                    labels.push(v as usize);
                }
                labels
            }
        };
        let scales =
            match (model.guidance_input, per_row("batch.scales")?) {
                (false, None) => Array2::zeros((0, 1)),
                (false, Some(_)) => return Err(bad_value(
                    "batch.scales",
                    "scales for a model without a guidance input (config guidance_input = false)"
                        .into(),
                )),
                (true, None) => {
                    return Err(ReferenceError::Missing {
                        path: p(),
                        name: "batch.scales".into(),
                    })
                }
                (true, Some(values)) => {
                    if let Some(i) = values.iter().position(|&w| w.is_nan() || w < 1.0) {
                        return Err(bad_value(
                            "batch.scales",
                            format!(
                                "row {i} holds {}, but a guidance scale w is >= 1",
                                values[i]
                            ),
                        ));
                    }
                    Array2::from_shape_vec((b, 1), values).expect("b values")
                }
            };
        let batch = Batch {
            x: tensor("batch.x", &[b, d])?,
            e: tensor("batch.e", &[b, d])?,
            t: tensor("batch.t", &[b, 1])?,
            r: tensor("batch.r", &[b, 1])?,
            labels,
            scales,
        };
        let expected = file
            .tensors
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix("expect.")
                    .map(|k| (k.to_string(), t.values.clone()))
            })
            .collect();
        Ok(ReferenceCase {
            name: cfg.name.unwrap_or_else(|| path.display().to_string()),
            model,
            loss,
            params,
            batch,
            expected,
        })
    }

    /// Recomputes every quantity the format defines, in f64, keyed like `expected`.
    pub fn recompute(&self) -> BTreeMap<String, Array2<f64>> {
        let mut tape = Tape::<f64>::new();
        // v_hat and the tangent are checked on every row, also past the last row with r != t
        // (where training leaves them out).
        tape.set_optimizations(crate::autodiff::tape::Optimizations {
            row_prefix_tangents: false,
            ..Default::default()
        });
        let vars = self.params.on_tape(&mut tape);
        let n = record_loss(&mut tape, &self.model, &vars, &self.loss, &self.batch);
        tape.backward(n.loss);
        let v_hat = n.v_hat.unwrap_or_else(|| {
            // MF's loss does not use v_hat = sg(v^(z, t | c, w)); the format defines it all the
            // same, with the rows' own classes and scales.
            let t = tape.constant(self.batch.t.view());
            let mut net = crate::flow::model::TapeModel::new(self.model, &vars);
            if self.model.classes > 0 {
                let onehot = class_rows::<f64>(&self.batch.labels, self.model.classes);
                net.classes = Some(tape.constant(onehot.view()));
            }
            if self.model.guidance_input {
                net.scales = Some(tape.constant(self.batch.scales.view()));
            }
            match self.loss.v_source {
                VSource::Boundary => net.u(&mut tape, n.z, t, t),
                VSource::Head => net.v_head(&mut tape, n.z, t),
            }
        });
        let mut out = BTreeMap::new();
        let mut put = |name: &str, v: Var| {
            out.insert(name.to_string(), tape.value(v).to_owned());
        };
        put("z", n.z);
        put("v_c", n.v_c);
        put("v_target", n.v_target);
        put("v_hat", v_hat);
        put("tangent", n.tangent);
        put("u", n.u);
        put("dudt", n.dudt);
        put("delta", n.delta);
        put("ell", n.ell);
        put("w", n.w);
        put("loss_u", n.loss_u);
        put("loss", n.loss);
        if let Some(v) = n.v_head {
            put("v_head", v.v_head);
            put("delta_v", v.delta_v);
            put("ell_v", v.ell_v);
            put("w_v", v.w_v);
            put("loss_v", v.loss_v);
        }
        let grads = MlpParams::gradients_from(&tape, &vars);
        for (name, g) in grads.named_tensors() {
            out.insert(format!("grad.{name}"), g.to_owned());
        }
        out
    }

    /// The error of every expected quantity; a quantity the engine does not compute, or whose
    /// element count differs, gets an infinite error.
    pub fn compare(&self) -> Vec<QuantityError> {
        let actual = self.recompute();
        self.expected
            .iter()
            .map(|(name, expected)| {
                let (max_abs, max_rel) = match actual.get(name) {
                    Some(a) if a.len() == expected.len() => {
                        // [B] is stored as [1, B] and computed as [B, 1]: compare element by element.
                        let a = Array2::from_shape_vec(expected.dim(), a.iter().copied().collect())
                            .expect("same element count");
                        crate::verify::check::compare(a.view(), expected.view())
                    }
                    _ => (f64::INFINITY, f64::INFINITY),
                };
                QuantityError {
                    name: name.clone(),
                    max_abs,
                    max_rel,
                }
            })
            .collect()
    }
}
