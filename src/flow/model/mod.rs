//! The network u(z, r, t) and its optional velocity head v(z, t).
//!
//! Both architectures read the rows' condition c, the embeddings of their times and labels:
//!
//! ```text
//! h = t - r;  c = emb(t, h)                               (unconditional)
//!             c = [emb(t, h) | E[y]]                      (classes > 0: E [C + 1, class_dim],
//!                                                          row C = null)
//!             c = [emb(t, h) | emb(g) | E[y]]             (guidance_input: g = 1 - 1/w, w >= 1
//!                                                          the guidance scale, g in [0, 1))
//!             c = [emb(t, h) | emb(g) | emb(t_min) | emb(t_max) | E[y]]
//!                                   (guidance_interval_input: iMF's guidance interval, the times
//!                                    [t_min, t_max] in which the scale w applies)
//! ```
//!
//! **`mlp`**, a plain multilayer perceptron that sees c once, at its input:
//!
//! ```text
//! a_0 = [z | c]
//! a_{i+1} = act(a_i W_i^T + b_i)        i = 0 .. depth-1   (`trunk.{i}`)
//! features = a_depth
//! ```
//!
//! **`resmlp`**, residual blocks with a pre-normalisation that see c in every block:
//!
//! ```text
//! a_0 = [z | c] W_in^T + b_in                                          (`input`)
//! a_{i+1} = a_i + act([LN(a_i) | c] W1_i^T + b1_i) W2_i^T + b2_i       (`blocks.{i}.fc1`, `.fc2`)
//! features = LN(a_depth)
//! LN(x) = (x - mean(x)) / sqrt(var(x) + 1e-5)   over each row, no gain or bias (PyTorch's
//!          `nn.LayerNorm(width, elementwise_affine=False)`: a gain would fold into the next layer)
//! ```
//!
//! Then the heads on the features:
//!
//! ```text
//! u(z, r, t) = features U_w^T + U_b          (the u-head)
//! v(z, t)    = features(r = t) V_w^T + V_b   (the v-head, when heads = uv)
//! ```
//!
//! Parameters follow PyTorch's `nn.Linear` layout (weight [out, in]) and names (`trunk.{i}.weight`,
//! `trunk.{i}.bias` or `input.*`, `blocks.{i}.fc1.*`, `blocks.{i}.fc2.*`, then `u_head.*`,
//! `v_head.*`); a bias is stored as a [1, out] row. The class embedding follows `nn.Embedding`:
//! `class_embed.weight` [C + 1, class_dim], row c the embedding of class c and row C that of the
//! null class (no label, for classifier-free guidance). On the tape E\[y\] is onehot(y) E, a
//! product the tape already differentiates, and LN is [`Tape::layer_norm`], a primitive whose JVP
//! is recorded as tape ops, so reverse over forward goes through it.

pub mod conditioning;

pub use conditioning::Conditioning;

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;
use crate::rng::Rng;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Which linear heads sit on the trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// u only.
    U,
    /// u and an auxiliary instantaneous-velocity head v(z, t).
    UV,
}

crate::named_enum!(Heads, "heads", { U => "u", UV => "uv" });

/// How the trunk is wired (module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Architecture {
    /// A plain MLP: the condition c joins the input only.
    #[default]
    Mlp,
    /// Residual blocks act([LN(a) | c] W1^T + b1) W2^T + b2 added to a, c in every block.
    Residual,
}

crate::named_enum!(Architecture, "architecture", { Mlp => "mlp", Residual => "resmlp" });

/// The epsilon inside LN's square root: PyTorch's `nn.LayerNorm` default.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// The architecture.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Hidden width of every trunk layer.
    pub width: usize,
    /// Number of hidden layers (`mlp`) or of residual blocks (`resmlp`).
    pub depth: usize,
    /// How the trunk is wired. Not written for `mlp`, so configs without it read and write as
    /// before.
    #[serde(default, skip_serializing_if = "Architecture::is_mlp")]
    pub architecture: Architecture,
    pub activation: Elementwise,
    pub conditioning: Conditioning,
    pub heads: Heads,
    /// Number of classes C the model is conditioned on; 0 for an unconditional model.
    #[serde(default)]
    pub classes: usize,
    /// Width of a class embedding (used when classes > 0).
    #[serde(default)]
    pub class_dim: usize,
    /// The guidance scale w is an input (iMF's guidance as a condition): emb(1 - 1/w) joins a_0.
    #[serde(default)]
    pub guidance_input: bool,
    /// iMF's guidance interval is an input too (Lyy-iiis/imeanflow `imf.py`, `u_fn(x, t, h, omega,
    /// t_min, t_max, y)`): emb(t_min) and emb(t_max) join a_0 after emb(g). Needs
    /// `guidance_input`. Not written when false, so configs without it read and write as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guidance_interval_input: bool,
}

impl Default for ModelConfig {
    /// The command line's 2-D default: an unconditional MLP 3 x 128, silu, (t, h) raw, a u-head,
    /// on 2-D points; a literal says what differs (`ModelConfig { dim: 64, ..Default::default() }`).
    fn default() -> Self {
        ModelConfig {
            dim: 2,
            width: 128,
            depth: 3,
            architecture: Architecture::Mlp,
            activation: Elementwise::Silu,
            conditioning: Conditioning::Raw,
            heads: Heads::U,
            classes: 0,
            class_dim: 0,
            guidance_input: false,
            guidance_interval_input: false,
        }
    }
}

impl Architecture {
    fn is_mlp(&self) -> bool {
        *self == Architecture::Mlp
    }

    /// The name of trunk layer i (`trunk.{i}`; `input`, `blocks.{k}.fc1`, `blocks.{k}.fc2`).
    pub fn trunk_layer_name(self, i: usize) -> String {
        match self {
            Architecture::Mlp => format!("trunk.{i}"),
            Architecture::Residual if i == 0 => "input".to_string(),
            Architecture::Residual => {
                let fc = if i % 2 == 1 { 1 } else { 2 };
                format!("blocks.{}.fc{fc}", (i - 1) / 2)
            }
        }
    }

    /// The number of linear layers in a trunk of `depth` layers or blocks.
    pub fn trunk_layers(self, depth: usize) -> usize {
        match self {
            Architecture::Mlp => depth,
            Architecture::Residual => 2 * depth + 1,
        }
    }
}

impl ModelConfig {
    /// Columns of the network's input [z | c]: d plus [`ModelConfig::condition_width`].
    pub fn input_width(&self) -> usize {
        self.dim + self.condition_width()
    }

    /// Columns of the condition c = [emb(t, h) (+ emb(g) with a guidance input, + emb(t_min),
    /// emb(t_max) with the interval input, + class_dim with classes)].
    pub fn condition_width(&self) -> usize {
        self.conditioning.width()
            + self.guidance_input_width()
            + self.interval_input_width()
            + self.class_embedding_width()
    }

    /// Columns of emb(t_min) and emb(t_max) in a_0: two times' embeddings with the guidance
    /// interval as an input, else 0.
    pub fn interval_input_width(&self) -> usize {
        if self.guidance_interval_input {
            2 * self.conditioning.one_time_width()
        } else {
            0
        }
    }

    /// Columns of emb(g) in a_0: the width of one time's embedding with a guidance input, else 0.
    pub fn guidance_input_width(&self) -> usize {
        if self.guidance_input {
            self.conditioning.one_time_width()
        } else {
            0
        }
    }

    /// Columns of the class embedding in a_0: class_dim for a conditional model, else 0.
    pub fn class_embedding_width(&self) -> usize {
        if self.classes > 0 {
            self.class_dim
        } else {
            0
        }
    }

    /// The class settings agree: at most [`crate::data::MAX_CLASSES`] classes, a class embedding
    /// width >= 1 for a conditional model and none for an unconditional one (a width nothing
    /// reads means a config, e.g. a hand-edited checkpoint's, that is not what it says).
    pub fn check_classes(&self) -> Result<(), String> {
        if self.classes > crate::data::MAX_CLASSES {
            return Err(format!(
                "classes must be at most {}, got {}",
                crate::data::MAX_CLASSES,
                self.classes
            ));
        }
        match (self.classes, self.class_dim) {
            (1.., 0) => Err("a class-conditional model needs a class embedding width >= 1".into()),
            (0, 1..) => Err(format!(
                "class embedding width {} given for an unconditional model (classes = 0)",
                self.class_dim
            )),
            _ => Ok(()),
        }
    }

    /// [C + 1, class_dim], the shape of `class_embed.weight`, for a conditional model.
    pub fn class_embedding_shape(&self) -> Option<(usize, usize)> {
        (self.classes > 0).then_some((self.classes + 1, self.class_dim))
    }

    /// (name, [out, in]) of every linear layer, in the canonical order: the trunk's, then the
    /// u-head, then the v-head.
    pub fn layer_shapes(&self) -> Vec<(String, (usize, usize))> {
        let layers = self.architecture.trunk_layers(self.depth);
        let mut shapes = Vec::with_capacity(layers + 2);
        for i in 0..layers {
            let fan_in = match (self.architecture, i) {
                (_, 0) => self.input_width(),
                (Architecture::Mlp, _) => self.width,
                (Architecture::Residual, _) if i % 2 == 1 => self.width + self.condition_width(),
                (Architecture::Residual, _) => self.width,
            };
            let name = self.architecture.trunk_layer_name(i);
            shapes.push((name, (self.width, fan_in)));
        }
        let features = self.features_width();
        shapes.push(("u_head".to_string(), (self.dim, features)));
        if self.heads == Heads::UV {
            shapes.push(("v_head".to_string(), (self.dim, features)));
        }
        shapes
    }

    /// Columns of the trunk's features, what the heads read: the input's for an `mlp` of depth
    /// 0, else the width.
    fn features_width(&self) -> usize {
        match (self.architecture, self.depth) {
            (Architecture::Mlp, 0) => self.input_width(),
            _ => self.width,
        }
    }

    /// Total number of scalar parameters, or None if it does not fit in a usize (a config that
    /// [`crate::train::TrainConfig::validate`] rejects). Counted per kind of layer, not from
    /// [`ModelConfig::layer_shapes`], so that it never allocates or overflows whatever the sizes.
    pub fn checked_parameter_count(&self) -> Option<usize> {
        let layer = |out: usize, fan_in: usize| out.checked_mul(fan_in)?.checked_add(out);
        let condition = self
            .conditioning
            .width()
            .checked_add(self.guidance_input_width())?
            .checked_add(self.interval_input_width())?
            .checked_add(self.class_embedding_width())?;
        let input = self.dim.checked_add(condition)?;
        let heads = if self.heads == Heads::UV { 2 } else { 1 };
        let features = match (self.architecture, self.depth) {
            (Architecture::Mlp, 0) => input,
            _ => self.width,
        };
        let mut total = layer(self.dim, features)?.checked_mul(heads)?;
        match self.architecture {
            Architecture::Mlp if self.depth > 0 => {
                total = total.checked_add(layer(self.width, input)?)?;
                let hidden = layer(self.width, self.width)?.checked_mul(self.depth - 1)?;
                total = total.checked_add(hidden)?;
            }
            Architecture::Mlp => {}
            Architecture::Residual => {
                total = total.checked_add(layer(self.width, input)?)?;
                let fc1 = layer(self.width, self.width.checked_add(condition)?)?;
                let block = fc1.checked_add(layer(self.width, self.width)?)?;
                total = total.checked_add(block.checked_mul(self.depth)?)?;
            }
        }
        if let Some((rows, cols)) = self.class_embedding_shape() {
            total = total.checked_add(rows.checked_mul(cols)?)?;
        }
        Some(total)
    }

    /// Total number of scalar parameters (sum of out x in + out over [`ModelConfig::layer_shapes`],
    /// plus the class embedding).
    pub fn parameter_count(&self) -> usize {
        self.checked_parameter_count().unwrap_or_else(|| {
            panic!("parameter_count: {self:?} has more parameters than a usize holds")
        })
    }
}

/// y = x W^T + b, weight [out, in], bias [1, out].
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T> {
    pub weight: Array2<T>,
    pub bias: Array2<T>,
}

impl<T: Float> Linear<T> {
    /// PyTorch's default `nn.Linear` init: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))
    /// (kaiming_uniform with a = sqrt(5) gives exactly this bound for the weight).
    pub fn init(out: usize, fan_in: usize, rng: &mut Rng) -> Self {
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let mut draw = || T::from_f64(rng.uniform_range(-bound, bound));
        let weight = Array2::from_shape_simple_fn((out, fan_in), &mut draw);
        let bias = Array2::from_shape_simple_fn((1, out), &mut draw);
        Linear { weight, bias }
    }

    pub fn cast<U: Float>(&self) -> Linear<U> {
        Linear {
            weight: self.weight.mapv(|x| U::from_f64(x.to_f64())),
            bias: self.bias.mapv(|x| U::from_f64(x.to_f64())),
        }
    }
}

/// All parameters of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpParams<T> {
    /// How the trunk's layers are wired, which also names them.
    pub architecture: Architecture,
    /// The trunk's linear layers in canonical order (`trunk.{i}`; `input`, then `fc1`, `fc2` of
    /// each block).
    pub trunk: Vec<Linear<T>>,
    pub u_head: Linear<T>,
    pub v_head: Option<Linear<T>>,
    /// E [C + 1, class_dim] of a conditional model (`class_embed.weight`).
    pub class_embed: Option<Array2<T>>,
}

impl<T: Float> MlpParams<T> {
    /// Fresh parameters with PyTorch's default init, layer by layer in canonical order, then the
    /// class embedding ~ N(0, 1) (`nn.Embedding`'s default).
    pub fn init(config: &ModelConfig, rng: &mut Rng) -> Self {
        let mut layers = config
            .layer_shapes()
            .into_iter()
            .map(|(_, (out, fan_in))| Linear::init(out, fan_in, rng));
        let trunk = (0..config.architecture.trunk_layers(config.depth))
            .map(|_| layers.next().unwrap())
            .collect();
        let u_head = layers.next().unwrap();
        let v_head = layers.next();
        let class_embed = config
            .class_embedding_shape()
            .map(|shape| Array2::from_shape_simple_fn(shape, || T::from_f64(rng.normal())));
        MlpParams {
            architecture: config.architecture,
            trunk,
            u_head,
            v_head,
            class_embed,
        }
    }

    /// Zeros of the same shapes (gradient and optimizer-moment buffers).
    pub fn zeros_like(&self) -> Self {
        let z = |l: &Linear<T>| Linear {
            weight: Array2::zeros(l.weight.dim()),
            bias: Array2::zeros(l.bias.dim()),
        };
        MlpParams {
            architecture: self.architecture,
            trunk: self.trunk.iter().map(z).collect(),
            u_head: z(&self.u_head),
            v_head: self.v_head.as_ref().map(z),
            class_embed: self.class_embed.as_ref().map(|e| Array2::zeros(e.dim())),
        }
    }

    /// The linear layers in canonical order with their names (`trunk.0`, ... or `input`,
    /// `blocks.0.fc1`, ..., then `u_head`, `v_head`).
    pub fn layers(&self) -> Vec<(String, &Linear<T>)> {
        let mut out: Vec<(String, &Linear<T>)> = self
            .trunk
            .iter()
            .enumerate()
            .map(|(i, l)| (self.architecture.trunk_layer_name(i), l))
            .collect();
        out.push(("u_head".into(), &self.u_head));
        if let Some(v) = &self.v_head {
            out.push(("v_head".into(), v));
        }
        out
    }

    /// Every tensor (weight, bias, layer by layer, then the class embedding) in canonical order,
    /// without allocating.
    pub fn tensors(&self) -> impl Iterator<Item = &Array2<T>> {
        self.trunk
            .iter()
            .chain(std::iter::once(&self.u_head))
            .chain(self.v_head.iter())
            .flat_map(|l| [&l.weight, &l.bias])
            .chain(self.class_embed.iter())
    }

    /// Every tensor, mutably, in canonical order, without allocating.
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = &mut Array2<T>> {
        self.trunk
            .iter_mut()
            .chain(std::iter::once(&mut self.u_head))
            .chain(self.v_head.iter_mut())
            .flat_map(|l| [&mut l.weight, &mut l.bias])
            .chain(self.class_embed.iter_mut())
    }

    /// Every tensor with its PyTorch name (`trunk.0.weight`, `trunk.0.bias`, ...,
    /// `class_embed.weight`), biases as [1, out], in the order of [`MlpParams::tensors`].
    pub fn named_tensors(&self) -> Vec<(String, ArrayView2<'_, T>)> {
        self.layers()
            .into_iter()
            .flat_map(|(name, l)| {
                [
                    (format!("{name}.weight"), l.weight.view()),
                    (format!("{name}.bias"), l.bias.view()),
                ]
            })
            .chain(
                self.class_embed
                    .as_ref()
                    .map(|e| (CLASS_EMBED.to_string(), e.view())),
            )
            .collect()
    }

    pub fn cast<U: Float>(&self) -> MlpParams<U> {
        MlpParams {
            architecture: self.architecture,
            trunk: self.trunk.iter().map(Linear::cast).collect(),
            u_head: self.u_head.cast(),
            v_head: self.v_head.as_ref().map(Linear::cast),
            class_embed: self
                .class_embed
                .as_ref()
                .map(|e| e.mapv(|x| U::from_f64(x.to_f64()))),
        }
    }

    /// Places every parameter on the tape as a leaf that gradients are taken with respect to.
    pub fn on_tape(&self, tape: &mut Tape<T>) -> ParamVars {
        let mut vars = ParamVars::default();
        self.on_tape_into(tape, &mut vars);
        vars
    }

    /// As [`MlpParams::on_tape`], reusing `vars` (no allocation once it has held these layers).
    pub fn on_tape_into(&self, tape: &mut Tape<T>, vars: &mut ParamVars) {
        let mut put = |l: &Linear<T>| (tape.param(l.weight.view()), tape.param(l.bias.view()));
        vars.architecture = self.architecture;
        vars.trunk.clear();
        for l in &self.trunk {
            let wb = put(l);
            vars.trunk.push(wb);
        }
        vars.u_head = put(&self.u_head);
        vars.v_head = self.v_head.as_ref().map(put);
        vars.class_embed = self.class_embed.as_ref().map(|e| tape.param(e.view()));
    }

    /// Writes the gradient of every parameter from the tape after `backward` into `self` (zeros
    /// where none flowed), without allocating.
    pub fn gradients_into(&mut self, tape: &Tape<T>, vars: &ParamVars) {
        let get = |l: &mut Linear<T>, &(w, b): &(Var, Var)| {
            tape.grad_into(w, l.weight.view_mut());
            tape.grad_into(b, l.bias.view_mut());
        };
        for (l, wb) in self.trunk.iter_mut().zip(&vars.trunk) {
            get(l, wb);
        }
        get(&mut self.u_head, &vars.u_head);
        if let (Some(l), Some(wb)) = (self.v_head.as_mut(), vars.v_head.as_ref()) {
            get(l, wb);
        }
        if let (Some(e), Some(node)) = (self.class_embed.as_mut(), vars.class_embed) {
            tape.grad_into(node, e.view_mut());
        }
    }

    /// Reads the gradient of every parameter from the tape after `backward` (zeros where none flowed).
    pub fn gradients_from(tape: &Tape<T>, vars: &ParamVars) -> Self {
        let get = |&(w, b): &(Var, Var)| Linear {
            weight: tape.grad_or_zeros(w),
            bias: tape.grad_or_zeros(b),
        };
        MlpParams {
            architecture: vars.architecture,
            trunk: vars.trunk.iter().map(get).collect(),
            u_head: get(&vars.u_head),
            v_head: vars.v_head.as_ref().map(get),
            class_embed: vars.class_embed.map(|node| tape.grad_or_zeros(node)),
        }
    }
}

/// The tape nodes of the parameters: (weight, bias) per layer.
#[derive(Clone, Debug, Default)]
pub struct ParamVars {
    pub architecture: Architecture,
    pub trunk: Vec<(Var, Var)>,
    pub u_head: (Var, Var),
    pub v_head: Option<(Var, Var)>,
    pub class_embed: Option<Var>,
}

impl ParamVars {
    /// Every parameter node (weight, bias, layer by layer) in the order of
    /// [`MlpParams::tensors`].
    pub fn nodes(&self) -> impl Iterator<Item = Var> + '_ {
        self.trunk
            .iter()
            .chain(std::iter::once(&self.u_head))
            .chain(self.v_head.iter())
            .flat_map(|&(w, b)| [w, b])
            .chain(self.class_embed)
    }
}

/// The `class_embed.weight` tensor's name.
pub const CLASS_EMBED: &str = "class_embed.weight";

/// Writes rows e_{labels\[i\]} of the identity into `out` [labels.len(), columns], every other
/// entry 0 (`out` may hold anything before).
///
/// # Panics
/// If the row count differs from the labels' or a label is not below the column count.
pub fn fill_one_hot<T: Float>(mut out: ArrayViewMut2<T>, labels: &[usize]) {
    let columns = out.ncols();
    assert_eq!(
        out.nrows(),
        labels.len(),
        "one_hot: {} rows for {} labels",
        out.nrows(),
        labels.len()
    );
    out.fill(T::zero());
    for (i, &c) in labels.iter().enumerate() {
        assert!(
            c < columns,
            "one_hot: label {c} at row {i} is not below {columns} columns"
        );
        out[[i, c]] = T::one();
    }
}

/// Rows e_{labels\[i\]} of the identity in R^columns: cross-entropy targets, class inputs.
pub fn one_hot<T: Float>(labels: &[usize], columns: usize) -> Array2<T> {
    let mut out = Array2::zeros((labels.len(), columns));
    fill_one_hot(out.view_mut(), labels);
    out
}

/// The one-hot rows [B, C + 1] of `labels` (each in 0..=C, C = `classes` meaning the null class),
/// the constant a conditional [`TapeModel`] takes its classes from.
pub fn class_rows<T: Float>(labels: &[usize], classes: usize) -> Array2<T> {
    one_hot(labels, classes + 1)
}

/// The model as recorded on a tape: config, the parameter nodes and the rows' conditions: for a
/// conditional model their classes as one-hot rows [B, C + 1] (a constant; column C = the null
/// class), for a model with a guidance input their scales w [B, 1] (a constant, w >= 1), for a
/// model with the guidance interval as an input their intervals (t_min, t_max), each [B, 1].
pub struct TapeModel<'p> {
    pub config: ModelConfig,
    pub params: &'p ParamVars,
    pub classes: Option<Var>,
    pub scales: Option<Var>,
    pub intervals: Option<(Var, Var)>,
}

impl<'p> TapeModel<'p> {
    /// An unconditional model's recording.
    pub fn new(config: ModelConfig, params: &'p ParamVars) -> Self {
        TapeModel {
            config,
            params,
            classes: None,
            scales: None,
            intervals: None,
        }
    }

    /// The same model on rows 0..k of its conditions (the inputs are sliced by the caller).
    pub fn rows<T: Float>(&self, tape: &mut Tape<T>, k: usize) -> TapeModel<'p> {
        TapeModel {
            config: self.config,
            params: self.params,
            classes: self.classes.map(|c| tape.rows(c, 0, k)),
            scales: self.scales.map(|w| tape.rows(w, 0, k)),
            intervals: self
                .intervals
                .map(|(lo, hi)| (tape.rows(lo, 0, k), tape.rows(hi, 0, k))),
        }
    }

    /// A conditional model's recording, its rows of class `classes` (one-hot [B, C + 1]).
    pub fn conditioned(config: ModelConfig, params: &'p ParamVars, classes: Var) -> Self {
        TapeModel {
            classes: Some(classes),
            ..Self::new(config, params)
        }
    }

    /// The rows' condition c = \[emb(t, h) | emb(g) | emb(t_min) | emb(t_max) | E\[y\]\] (the parts
    /// the model has) for t [B, 1], h [B, 1].
    pub fn condition<T: Float>(&self, tape: &mut Tape<T>, t: Var, h: Var) -> Var {
        let mut c = self.config.conditioning.embed(tape, t, h);
        match (self.config.guidance_input, self.scales) {
            (true, Some(w)) => {
                // g = 1 - 1/w: w = 1 (no guidance) is 0, and any w >= 1 stays in [0, 1).
                let inverse = tape.map(w, Elementwise::Pow(-1.0));
                let negated = tape.scale(inverse, -1.0);
                let g = tape.add_scalar(negated, 1.0);
                let emb_g = self.config.conditioning.embed_one(tape, g);
                c = tape.concat_cols(c, emb_g);
            }
            (false, None) => {}
            (true, None) => panic!("trunk: a model with a guidance input needs the rows' scales"),
            (false, Some(_)) => panic!("trunk: scales given to a model without a guidance input"),
        }
        match (self.config.guidance_interval_input, self.intervals) {
            (true, Some((lo, hi))) => {
                let emb_lo = self.config.conditioning.embed_one(tape, lo);
                let emb_hi = self.config.conditioning.embed_one(tape, hi);
                c = tape.concat_cols(c, emb_lo);
                c = tape.concat_cols(c, emb_hi);
            }
            (false, None) => {}
            (true, None) => {
                panic!("trunk: a model with the interval input needs the rows' intervals")
            }
            (false, Some(_)) => {
                panic!("trunk: intervals given to a model without the interval input")
            }
        }
        match (self.params.class_embed, self.classes) {
            (Some(table), Some(onehot)) => {
                // E[y] = onehot(y) E: the embedding lookup as a product.
                let class_rows = tape.matmul(onehot, table);
                c = tape.concat_cols(c, class_rows);
            }
            (None, None) => {}
            (Some(_), None) => panic!("trunk: a conditional model needs the rows' classes"),
            (None, Some(_)) => panic!("trunk: classes given to an unconditional model"),
        }
        c
    }

    /// The trunk's features (a_depth, or LN(a_depth) for `resmlp`) for inputs z [B, d],
    /// t [B, 1], h [B, 1].
    pub fn trunk<T: Float>(&self, tape: &mut Tape<T>, z: Var, t: Var, h: Var) -> Var {
        assert_eq!(
            self.params.architecture, self.config.architecture,
            "trunk: parameters for a {} trunk given to a {} config",
            self.params.architecture, self.config.architecture
        );
        let c = self.condition(tape, t, h);
        let input = tape.concat_cols(z, c);
        match self.config.architecture {
            Architecture::Mlp => {
                let mut a = input;
                for &(w, b) in &self.params.trunk {
                    a = tape.dense(a, w, b, Some(self.config.activation));
                }
                a
            }
            Architecture::Residual => {
                let (first, blocks) = self
                    .params
                    .trunk
                    .split_first()
                    .expect("trunk: a resmlp has an input layer");
                let mut a = tape.dense(input, first.0, first.1, None);
                for pair in blocks.chunks_exact(2) {
                    let ((w1, b1), (w2, b2)) = (pair[0], pair[1]);
                    let normed = tape.layer_norm(a, LAYER_NORM_EPS);
                    let block_input = tape.concat_cols(normed, c);
                    let hidden = tape.dense(block_input, w1, b1, Some(self.config.activation));
                    let update = tape.dense(hidden, w2, b2, None);
                    a = tape.add(a, update);
                }
                tape.layer_norm(a, LAYER_NORM_EPS)
            }
        }
    }

    /// u(z, r, t); h = t - r is part of the recorded function.
    pub fn u<T: Float>(&self, tape: &mut Tape<T>, z: Var, r: Var, t: Var) -> Var {
        let h = tape.sub(t, r);
        let features = self.trunk(tape, z, t, h);
        let (w, b) = self.params.u_head;
        tape.dense(features, w, b, None)
    }

    /// v(z, t): the v-head on the trunk evaluated at r = t. Panics if the model has no v-head.
    pub fn v_head<T: Float>(&self, tape: &mut Tape<T>, z: Var, t: Var) -> Var {
        let (w, b) = self
            .params
            .v_head
            .expect("v_head: this model was built with heads = u, it has no v-head");
        let h = tape.sub(t, t);
        let features = self.trunk(tape, z, t, h);
        tape.dense(features, w, b, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form count equals the layer shapes' and the initialised tensors' sizes.
    #[test]
    fn parameter_count_matches_the_layers_and_the_tensors() {
        for (depth, architecture) in [0, 1, 3]
            .into_iter()
            .flat_map(|d| [(d, Architecture::Mlp), (d, Architecture::Residual)])
        {
            for heads in [Heads::U, Heads::UV] {
                for (conditioning, classes) in [
                    (Conditioning::Raw, 0),
                    (Conditioning::Fourier { frequencies: 3 }, 0),
                    (Conditioning::Raw, 4),
                ] {
                    let config = ModelConfig {
                        dim: 5,
                        width: 7,
                        depth,
                        architecture,
                        conditioning,
                        heads,
                        classes,
                        class_dim: 3,
                        ..ModelConfig::default()
                    };
                    let from_shapes: usize = config
                        .layer_shapes()
                        .iter()
                        .map(|(_, (o, i))| o * i + o)
                        .sum::<usize>()
                        + config
                            .class_embedding_shape()
                            .map_or(0, |(rows, cols)| rows * cols);
                    let params = MlpParams::<f64>::init(&config, &mut Rng::seed_from_u64(1));
                    let from_tensors: usize = params.tensors().map(|a| a.len()).sum();
                    assert_eq!(config.parameter_count(), from_shapes, "{config:?}");
                    assert_eq!(config.parameter_count(), from_tensors, "{config:?}");
                }
            }
        }
        let huge = ModelConfig {
            width: usize::MAX / 2,
            ..ModelConfig::default()
        };
        assert_eq!(huge.checked_parameter_count(), None);
        // The interval input adds two times' embeddings to the first layer's fan-in.
        let mut with_interval = ModelConfig {
            classes: 3,
            class_dim: 2,
            guidance_input: true,
            guidance_interval_input: true,
            conditioning: Conditioning::Fourier { frequencies: 2 },
            ..huge
        };
        with_interval.width = 7;
        assert_eq!(with_interval.input_width(), 2 + 10 + 5 + 10 + 2);
        let params = MlpParams::<f64>::init(&with_interval, &mut Rng::seed_from_u64(1));
        let from_tensors: usize = params.tensors().map(|a| a.len()).sum();
        assert_eq!(with_interval.parameter_count(), from_tensors);
    }

    fn conditional_config() -> ModelConfig {
        ModelConfig {
            dim: 3,
            width: 5,
            depth: 2,
            activation: Elementwise::Tanh,
            conditioning: Conditioning::Fourier { frequencies: 2 },
            heads: Heads::UV,
            classes: 4,
            class_dim: 3,
            ..ModelConfig::default()
        }
    }

    /// sum(u(z, r, t | c)^2 + v(z, t | c)^2) recorded on a fresh tape, with its gradient.
    fn loss_and_grads(
        config: &ModelConfig,
        params: &MlpParams<f64>,
        labels: &[usize],
    ) -> (f64, MlpParams<f64>) {
        let b = labels.len();
        let mut tape = Tape::<f64>::new();
        let vars = params.on_tape(&mut tape);
        let z = tape.constant(
            Array2::from_shape_fn((b, config.dim), |(i, j)| 0.3 * i as f64 - 0.2 * j as f64).view(),
        );
        let t = tape.constant(Array2::from_shape_fn((b, 1), |(i, _)| 0.9 - 0.1 * i as f64).view());
        let r = tape.constant(Array2::from_shape_fn((b, 1), |(i, _)| 0.2 + 0.05 * i as f64).view());
        let onehot = tape.constant(class_rows::<f64>(labels, config.classes).view());
        let net = TapeModel::conditioned(*config, &vars, onehot);
        let u = net.u(&mut tape, z, r, t);
        let v = net.v_head(&mut tape, z, t);
        let (uu, vv) = (tape.mul(u, u), tape.mul(v, v));
        let both = tape.add(uu, vv);
        let loss = tape.sum(both);
        tape.backward(loss);
        let value = tape.value(loss)[[0, 0]];
        (value, MlpParams::gradients_from(&tape, &vars))
    }

    /// The class embedding's gradient (and the first layer's, which sees E[c]) against central
    /// differences in f64; rows of the null class read row C of the table, other rows their own.
    #[test]
    fn class_embedding_gradient_matches_finite_differences() {
        use crate::verify::check::{central_difference, fd_relative_error, FD_REL_TOL};
        let config = conditional_config();
        let params = MlpParams::<f64>::init(&config, &mut Rng::seed_from_u64(3));
        // Classes 0, 2 and the null class 4 are used; rows 1 and 3 of E get no gradient.
        let labels = [0, 2, 4, 2];
        let (value, grads) = loss_and_grads(&config, &params, &labels);
        let g = grads
            .class_embed
            .as_ref()
            .expect("a conditional model has a class embedding");
        assert_eq!(g.dim(), (5, 3));
        for c in 0..5 {
            for k in 0..3 {
                let fd = central_difference(|s| {
                    let mut p = params.clone();
                    p.class_embed.as_mut().unwrap()[[c, k]] += s;
                    loss_and_grads(&config, &p, &labels).0
                });
                let err = fd_relative_error(g[[c, k]], fd, value);
                assert!(
                    err < FD_REL_TOL,
                    "E[{c}, {k}]: tape {} vs FD {fd}",
                    g[[c, k]]
                );
                if c == 1 || c == 3 {
                    assert_eq!(g[[c, k]], 0.0, "class {c} is in no row");
                } else {
                    assert!(g[[c, k]] != 0.0, "class {c} is in a row");
                }
            }
        }
        // The first layer's columns that read E[c] are its last class_dim columns.
        let w0 = &grads.trunk[0].weight;
        assert_eq!(w0.ncols(), config.input_width());
        let (i, j) = (1, config.input_width() - 1);
        let fd = central_difference(|s| {
            let mut p = params.clone();
            p.trunk[0].weight[[i, j]] += s;
            loss_and_grads(&config, &p, &labels).0
        });
        assert!(fd_relative_error(w0[[i, j]], fd, value) < FD_REL_TOL);
    }

    /// The class changes u; the same class gives the same u; the tensors and their names line up.
    #[test]
    fn classes_condition_the_output_and_name_their_table() {
        let config = conditional_config();
        let params = MlpParams::<f64>::init(&config, &mut Rng::seed_from_u64(4));
        let u_of = |labels: &[usize]| {
            let mut tape = Tape::<f64>::new();
            let vars = params.on_tape(&mut tape);
            let z = tape
                .constant(Array2::from_shape_fn((labels.len(), 3), |(_, j)| 0.1 * j as f64).view());
            let t = tape.full((labels.len(), 1), 0.7);
            let r = tape.full((labels.len(), 1), 0.1);
            let onehot = tape.constant(class_rows::<f64>(labels, config.classes).view());
            let u = TapeModel::conditioned(config, &vars, onehot).u(&mut tape, z, r, t);
            tape.value(u).to_owned()
        };
        let u = u_of(&[1, 1, 3, 4]);
        assert_eq!(u.row(0), u.row(1));
        assert_ne!(u.row(0), u.row(2));
        assert_ne!(u.row(2), u.row(3));
        let names: Vec<String> = params.named_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.last().map(String::as_str), Some(CLASS_EMBED));
        assert_eq!(params.tensors().count(), names.len());
        assert_eq!(params.class_embed.as_ref().unwrap().dim(), (5, 3));
    }

    #[test]
    #[should_panic(expected = "one_hot: label 5 at row 1 is not below 5 columns")]
    fn class_rows_refuse_a_label_beyond_the_null_class() {
        class_rows::<f64>(&[0, 5], 4);
    }
}
