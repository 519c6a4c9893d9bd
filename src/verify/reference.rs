//! Reference cases: a model, a batch and every expected quantity of the loss in one safetensors
//! file (format `meanflow-golden-v1`, documented in docs/reference-format.md). The engine
//! recomputes each `expect.*` tensor in f64 from the parameters and the batch alone.
//!
//! A conditional case adds `classes`, `class_dim`, `guidance_input`, `guidance` and `label_dropout`
//! to the config (absent: an unconditional model, so older files load as before), the parameter
//! `class_embed.weight`, and the batch's `batch.labels` (\[B\] or \[B, 1\], integer values 0..=C in F64,
//! C the null class) and `batch.scales` ([B, 1], w >= 1, with a guidance input); a model with
//! iMF's guidance interval as an input (`guidance_interval_input`) has `batch.intervals` ([B, 2],
//! each row's [t_min, t_max], 0 <= t_min <= t_max <= 1); bad ones are refused with one line naming
//! the file and the tensor ([`ReferenceError::BadValue`]).

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::flow::guidance::Guidance;
use crate::flow::loss::LossPreset;
use crate::flow::loss::{record_loss, Batch, LossConfig, VSource};
use crate::flow::model::{
    class_rows, Architecture, Conditioning, Heads, Linear, MlpParams, ModelConfig, CLASS_EMBED,
};
use crate::flow::time_sampler::TimeSampler;
use crate::io::tensor_file::{TensorFile, TensorFileError};
use crate::train::optim::AdamConfig;
use crate::train::{TrainConfig, MAX_PARAMETERS};
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
    /// `expected` as the format writes it: `[8, 2]`, `[8] or [8, 1]`.
    #[error("{path}: tensor '{name}' has shape {}, expected {expected}", shape_text(.found))]
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: String,
    },
    #[error("{path}: tensor '{name}': {reason}")]
    BadValue {
        path: PathBuf,
        name: String,
        reason: String,
    },
    /// A tensor the format does not define for this case's config (another model's parameter, a
    /// misspelt quantity).
    #[error("{path}: unexpected tensor '{name}': {reason}")]
    Unexpected {
        path: PathBuf,
        name: String,
        reason: String,
    },
}

/// `[8, 2]`.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// The checks and size caps of a training checkpoint's config ([`TrainConfig::validate`]: at most
/// [`crate::train::MAX_DIM`] dimensions, [`crate::train::MAX_DEPTH`] layers,
/// [`MAX_PARAMETERS`] parameters, [`crate::train::MAX_ACTIVATIONS`] values per activation buffer,
/// [`crate::data::MAX_CLASSES`] classes, the loss options against each other), applied to a
/// reference case's model, loss and batch before anything is allocated. A case may have no trunk
/// (depth 0), which a training config may not: its parameters are counted as they are, its
/// activations as those of one hidden layer as wide as its input (which has at least as many).
pub fn validate_case_config(
    model: &ModelConfig,
    loss: &LossConfig,
    batch: usize,
) -> Result<(), String> {
    // TrainConfig::validate counts the parameters of a model with a trunk.
    if model.depth == 0
        && model
            .checked_parameter_count()
            .is_none_or(|n| n > MAX_PARAMETERS)
    {
        return Err(format!(
            "width {}, depth {} on {}-D data (input width {}) give over {MAX_PARAMETERS} parameters: the model is too large",
            model.width,
            model.depth,
            model.dim,
            model.input_width()
        ));
    }
    // Without a trunk the width is unused: the stand-in layer is at most as wide as the input.
    let width = match model.depth {
        0 => model.width.min(model.input_width()),
        _ => model.width,
    };
    let as_trained = TrainConfig {
        model: ModelConfig {
            depth: model.depth.max(1),
            width,
            ..*model
        },
        loss: *loss,
        time: TimeSampler::preset_default(LossPreset::Imf),
        adam: AdamConfig::default(),
        batch,
        ema_decay: None,
        seed: 0,
        threads: 1,
    };
    as_trained.validate()?;
    Ok(())
}

/// The shapes an `expect.*` quantity may have (the name without the prefix), None for a name the
/// format does not define for `model` (see docs/reference-format.md).
fn expected_shapes(name: &str, model: &ModelConfig, b: usize) -> Option<Vec<Vec<usize>>> {
    let d = model.dim;
    let uv = model.heads == Heads::UV;
    let matrix = [
        "z", "v_c", "v_target", "v_hat", "tangent", "u", "dudt", "delta",
    ];
    let per_row = ["ell", "w"];
    let scalar = ["loss_u", "loss"];
    let (matrix_v, per_row_v, scalar_v) = (["v_head", "delta_v"], ["ell_v", "w_v"], ["loss_v"]);
    if matrix.contains(&name) || (uv && matrix_v.contains(&name)) {
        return Some(vec![vec![b, d]]);
    }
    if per_row.contains(&name) || (uv && per_row_v.contains(&name)) {
        return Some(vec![vec![b], vec![b, 1]]);
    }
    if scalar.contains(&name) || (uv && scalar_v.contains(&name)) {
        return Some(vec![vec![1], vec![1, 1]]);
    }
    let parameter = name.strip_prefix("grad.")?;
    parameter_shapes(model)
        .into_iter()
        .find(|(p, _)| p == parameter)
        .map(|(_, shape)| vec![shape])
}

/// Every parameter tensor of `model` with its stored shape (a bias is `[out]`).
fn parameter_shapes(model: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let mut shapes = Vec::new();
    for (name, (out, fan_in)) in model.layer_shapes() {
        shapes.push((format!("{name}.weight"), vec![out, fan_in]));
        shapes.push((format!("{name}.bias"), vec![out]));
    }
    if let Some((rows, cols)) = model.class_embedding_shape() {
        shapes.push((CLASS_EMBED.to_string(), vec![rows, cols]));
    }
    shapes
}

/// The batch's tensors (`batch.labels` and `batch.scales` are checked against the config on
/// their own).
const BATCH_TENSORS: [&str; 7] = [
    "batch.intervals",
    "batch.x",
    "batch.e",
    "batch.t",
    "batch.r",
    "batch.labels",
    "batch.scales",
];

/// "trunk.0 to trunk.2, u_head, class_embed": the parameter tensors of `model` in short.
fn parameter_summary(model: &ModelConfig) -> String {
    let mut parts = Vec::new();
    match model.depth {
        0 => {}
        1 => parts.push("trunk.0".to_string()),
        n => parts.push(format!("trunk.0 to trunk.{}", n - 1)),
    }
    parts.push("u_head".into());
    if model.heads == Heads::UV {
        parts.push("v_head".into());
    }
    if model.classes > 0 {
        parts.push(CLASS_EMBED.into());
    }
    parts.join(", ")
}

/// "[8] or [8, 1]".
fn shapes_text(shapes: &[Vec<usize>]) -> String {
    let texts: Vec<String> = shapes.iter().map(|s| shape_text(s)).collect();
    texts.join(" or ")
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
    /// iMF's guidance interval is an input (`batch.intervals` [B, 2]).
    #[serde(default)]
    guidance_interval_input: bool,
    /// `mlp` (when absent) or `resmlp`.
    #[serde(default = "mlp_name")]
    architecture: String,
    /// As in a training config: `{"kind": "none"}` (default), `{"kind": "target", "w", "kappa"}`,
    /// `{"kind": "input", "w_max"}`.
    #[serde(default)]
    guidance: Guidance,
    #[serde(default)]
    label_dropout: f64,
    /// MF's guidance interval [t_min, t_max] (absent: every t).
    #[serde(default)]
    guidance_interval: Option<[f64; 2]>,
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
        let file = TensorFile::read_as(path, crate::io::limits::InputKind::ReferenceCase)?;
        Self::from_tensor_file(&file, path)
    }

    /// Checks and converts the contents of a reference-case file; `path` only names it in
    /// errors. The config is validated as a training checkpoint's is ([`validate_case_config`])
    /// before anything of its size is allocated; then every tensor: the parameters and the batch
    /// have exactly the shapes the config gives, an `expect.*` tensor the shape of its quantity,
    /// 0 <= r <= t <= 1 on every row, and a tensor the format does not define for the config is
    /// refused.
    pub fn from_tensor_file(file: &TensorFile, path: &Path) -> Result<Self, ReferenceError> {
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
            architecture: cfg.architecture.parse::<Architecture>().map_err(bad)?,
            activation: cfg.activation.parse::<Elementwise>().map_err(bad)?,
            conditioning: cfg.conditioning.parse::<Conditioning>().map_err(bad)?,
            heads: cfg.heads.parse::<Heads>().map_err(bad)?,
            classes: cfg.classes,
            class_dim: cfg.class_dim,
            guidance_input: cfg.guidance_input,
            guidance_interval_input: cfg.guidance_interval_input,
        };
        let loss = LossConfig {
            beta: cfg.beta,
            v_source: cfg.v_source.parse::<VSource>().map_err(bad)?,
            exact: cfg.exact,
            p: cfg.p,
            c: cfg.c,
            guidance: cfg.guidance,
            label_dropout: cfg.label_dropout,
            guidance_interval: cfg.guidance_interval,
        };
        validate_case_config(&model, &loss, cfg.batch).map_err(bad)?;

        let (b, d) = (cfg.batch, cfg.d);
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
                    expected: shape_text(expected),
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
            architecture: model.architecture,
            trunk: layers,
            u_head,
            v_head,
            class_embed,
        };
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
                    expected: shapes_text(&[vec![b], vec![b, 1]]),
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
        let intervals = match (
            model.guidance_interval_input,
            file.tensors.contains_key("batch.intervals"),
        ) {
            (false, false) => Array2::zeros((0, 2)),
            (false, true) => return Err(bad_value(
                "batch.intervals",
                "intervals for a model without the interval input (config guidance_interval_input = false)"
                    .into(),
            )),
            (true, _) => {
                let intervals = tensor("batch.intervals", &[b, 2])?;
                for (i, row) in intervals.rows().into_iter().enumerate() {
                    let (lo, hi) = (row[0], row[1]);
                    if !(0.0 <= lo && lo <= hi && hi <= 1.0) {
                        return Err(bad_value(
                            "batch.intervals",
                            format!(
                                "row {i} holds [{lo}, {hi}], but a guidance interval has 0 <= t_min <= t_max <= 1"
                            ),
                        ));
                    }
                }
                intervals
            }
        };
        let batch = Batch {
            x: tensor("batch.x", &[b, d])?,
            e: tensor("batch.e", &[b, d])?,
            t: tensor("batch.t", &[b, 1])?,
            r: tensor("batch.r", &[b, 1])?,
            labels,
            scales,
            intervals,
        };
        for (i, (&t, &r)) in batch.t.iter().zip(batch.r.iter()).enumerate() {
            if !(0.0..=1.0).contains(&t) {
                return Err(bad_value(
                    "batch.t",
                    format!("row {i} holds {t}, outside [0, 1]: a time t is in [0, 1]"),
                ));
            }
            if !(0.0..=t).contains(&r) {
                return Err(bad_value(
                    "batch.r",
                    format!("row {i} holds {r}, outside [0, t] = [0, {t}]: r is in [0, t]"),
                ));
            }
        }
        let mut expected = BTreeMap::new();
        let parameters = parameter_shapes(&model);
        for (name, t) in &file.tensors {
            if let Some(quantity) = name.strip_prefix("expect.") {
                let Some(shapes) = expected_shapes(quantity, &model, b) else {
                    return Err(ReferenceError::Unexpected {
                        path: p(),
                        name: name.clone(),
                        reason: format!(
                            "not a quantity the format defines for this case (heads {}, {} parameter tensors; docs/reference-format.md lists them)",
                            model.heads, parameters.len()
                        ),
                    });
                };
                if !shapes.contains(&t.shape) {
                    return Err(ReferenceError::Shape {
                        path: p(),
                        name: name.clone(),
                        found: t.shape.clone(),
                        expected: shapes_text(&shapes),
                    });
                }
                expected.insert(quantity.to_string(), t.values.clone());
            } else if !BATCH_TENSORS.contains(&name.as_str())
                && !parameters.iter().any(|(p, _)| p == name)
            {
                return Err(ReferenceError::Unexpected {
                    path: p(),
                    name: name.clone(),
                    reason: format!(
                        "not a parameter of this case's model (depth {}, heads {}, classes {}: {}) nor part of the batch",
                        model.depth,
                        model.heads,
                        model.classes,
                        parameter_summary(&model),
                    ),
                });
            }
        }
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
            if self.model.guidance_interval_input {
                // The estimates' conditions: the scale w' (w inside the row's interval, 1
                // outside) and the interval [0, 1] (src/flow/loss.rs, estimate_net).
                let b = self.batch.len();
                let w = Array2::from_shape_fn((b, 1), |(i, _)| self.batch.estimate_scale(i));
                net.scales = Some(tape.constant(w.view()));
                net.intervals = Some((tape.full((b, 1), 0.0), tape.full((b, 1), 1.0)));
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

/// The architecture a reference case names when it names none.
fn mlp_name() -> String {
    Architecture::Mlp.name().to_string()
}
