//! The network u(z, r, t) and its optional velocity head v(z, t).
//!
//! ```text
//! h = t - r;  a_0 = [z | emb(t, h)]
//! a_{i+1} = act(a_i W_i^T + b_i)        i = 0 .. depth-1   (the trunk)
//! u(z, r, t) = a_depth U_w^T + U_b         (the u-head)
//! v(z, t)    = a_depth(r = t) V_w^T + V_b   (the v-head, when heads = uv)
//! ```
//!
//! Parameters follow PyTorch's `nn.Linear` layout (weight [out, in]) and names (`trunk.{i}.weight`,
//! `trunk.{i}.bias`, `u_head.*`, `v_head.*`); a bias is stored as a [1, out] row.

pub mod conditioning;

pub use conditioning::Conditioning;

use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;
use crate::rng::Rng;
use ndarray::{Array2, ArrayView2};

/// Which linear heads sit on the trunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heads {
    /// u only.
    U,
    /// u and an auxiliary instantaneous-velocity head v(z, t).
    UV,
}

crate::named_enum!(Heads, "heads", { U => "u", UV => "uv" });

/// The architecture.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Hidden width of every trunk layer.
    pub width: usize,
    /// Number of hidden (trunk) layers.
    pub depth: usize,
    pub activation: Elementwise,
    pub conditioning: Conditioning,
    pub heads: Heads,
}

impl ModelConfig {
    /// Columns of a_0 = [z | emb(t, h)].
    pub fn input_width(&self) -> usize {
        self.dim + self.conditioning.width()
    }

    /// (name, [out, in]) of every linear layer, in the canonical order.
    pub fn layer_shapes(&self) -> Vec<(String, (usize, usize))> {
        let mut shapes = Vec::with_capacity(self.depth + 2);
        for i in 0..self.depth {
            let fan_in = if i == 0 {
                self.input_width()
            } else {
                self.width
            };
            shapes.push((format!("trunk.{i}"), (self.width, fan_in)));
        }
        let features = if self.depth == 0 {
            self.input_width()
        } else {
            self.width
        };
        shapes.push(("u_head".to_string(), (self.dim, features)));
        if self.heads == Heads::UV {
            shapes.push(("v_head".to_string(), (self.dim, features)));
        }
        shapes
    }

    /// Total number of scalar parameters, or None if it does not fit in a usize (a config that
    /// [`crate::train::TrainConfig::validate`] rejects). Counted per kind of layer, not from
    /// [`ModelConfig::layer_shapes`], so that it never allocates or overflows whatever the sizes.
    pub fn checked_parameter_count(&self) -> Option<usize> {
        let layer = |out: usize, fan_in: usize| out.checked_mul(fan_in)?.checked_add(out);
        let input = self.dim.checked_add(self.conditioning.width())?;
        let heads = if self.heads == Heads::UV { 2 } else { 1 };
        let features = if self.depth == 0 { input } else { self.width };
        let mut total = layer(self.dim, features)?.checked_mul(heads)?;
        if self.depth > 0 {
            total = total.checked_add(layer(self.width, input)?)?;
            let hidden = layer(self.width, self.width)?.checked_mul(self.depth - 1)?;
            total = total.checked_add(hidden)?;
        }
        Some(total)
    }

    /// Total number of scalar parameters (sum of out x in + out over [`ModelConfig::layer_shapes`]).
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
    pub trunk: Vec<Linear<T>>,
    pub u_head: Linear<T>,
    pub v_head: Option<Linear<T>>,
}

impl<T: Float> MlpParams<T> {
    /// Fresh parameters with PyTorch's default init, layer by layer in canonical order.
    pub fn init(config: &ModelConfig, rng: &mut Rng) -> Self {
        let mut layers = config
            .layer_shapes()
            .into_iter()
            .map(|(_, (out, fan_in))| Linear::init(out, fan_in, rng));
        let trunk = (0..config.depth).map(|_| layers.next().unwrap()).collect();
        let u_head = layers.next().unwrap();
        let v_head = layers.next();
        MlpParams {
            trunk,
            u_head,
            v_head,
        }
    }

    /// Zeros of the same shapes (gradient and optimizer-moment buffers).
    pub fn zeros_like(&self) -> Self {
        let z = |l: &Linear<T>| Linear {
            weight: Array2::zeros(l.weight.dim()),
            bias: Array2::zeros(l.bias.dim()),
        };
        MlpParams {
            trunk: self.trunk.iter().map(z).collect(),
            u_head: z(&self.u_head),
            v_head: self.v_head.as_ref().map(z),
        }
    }

    /// The linear layers in canonical order with their names (`trunk.0`, ..., `u_head`, `v_head`).
    pub fn layers(&self) -> Vec<(String, &Linear<T>)> {
        let mut out: Vec<(String, &Linear<T>)> = self
            .trunk
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("trunk.{i}"), l))
            .collect();
        out.push(("u_head".into(), &self.u_head));
        if let Some(v) = &self.v_head {
            out.push(("v_head".into(), v));
        }
        out
    }

    /// Every tensor (weight, bias, layer by layer) in canonical order, without allocating.
    pub fn tensors(&self) -> impl Iterator<Item = &Array2<T>> {
        self.trunk
            .iter()
            .chain(std::iter::once(&self.u_head))
            .chain(self.v_head.iter())
            .flat_map(|l| [&l.weight, &l.bias])
    }

    /// Every tensor, mutably, in canonical order, without allocating.
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = &mut Array2<T>> {
        self.trunk
            .iter_mut()
            .chain(std::iter::once(&mut self.u_head))
            .chain(self.v_head.iter_mut())
            .flat_map(|l| [&mut l.weight, &mut l.bias])
    }

    /// Mutable layers in canonical order.
    pub fn layers_mut(&mut self) -> Vec<&mut Linear<T>> {
        let mut out: Vec<&mut Linear<T>> = self.trunk.iter_mut().collect();
        out.push(&mut self.u_head);
        if let Some(v) = &mut self.v_head {
            out.push(v);
        }
        out
    }

    /// Every tensor with its PyTorch name (`trunk.0.weight`, `trunk.0.bias`, ...), biases as [1, out].
    pub fn named_tensors(&self) -> Vec<(String, ArrayView2<'_, T>)> {
        self.layers()
            .into_iter()
            .flat_map(|(name, l)| {
                [
                    (format!("{name}.weight"), l.weight.view()),
                    (format!("{name}.bias"), l.bias.view()),
                ]
            })
            .collect()
    }

    pub fn cast<U: Float>(&self) -> MlpParams<U> {
        MlpParams {
            trunk: self.trunk.iter().map(Linear::cast).collect(),
            u_head: self.u_head.cast(),
            v_head: self.v_head.as_ref().map(Linear::cast),
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
        vars.trunk.clear();
        for l in &self.trunk {
            let wb = put(l);
            vars.trunk.push(wb);
        }
        vars.u_head = put(&self.u_head);
        vars.v_head = self.v_head.as_ref().map(put);
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
    }

    /// Reads the gradient of every parameter from the tape after `backward` (zeros where none flowed).
    pub fn gradients_from(tape: &Tape<T>, vars: &ParamVars) -> Self {
        let get = |&(w, b): &(Var, Var)| Linear {
            weight: tape.grad_or_zeros(w),
            bias: tape.grad_or_zeros(b),
        };
        MlpParams {
            trunk: vars.trunk.iter().map(get).collect(),
            u_head: get(&vars.u_head),
            v_head: vars.v_head.as_ref().map(get),
        }
    }
}

/// The tape nodes of the parameters: (weight, bias) per layer.
#[derive(Clone, Debug, Default)]
pub struct ParamVars {
    pub trunk: Vec<(Var, Var)>,
    pub u_head: (Var, Var),
    pub v_head: Option<(Var, Var)>,
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
    }
}

/// The model as recorded on a tape: config plus the parameter nodes.
pub struct TapeModel<'p> {
    pub config: ModelConfig,
    pub params: &'p ParamVars,
}

impl TapeModel<'_> {
    /// The trunk's features a_depth for inputs z [B, d], t [B, 1], h [B, 1].
    pub fn trunk<T: Float>(&self, tape: &mut Tape<T>, z: Var, t: Var, h: Var) -> Var {
        let emb = self.config.conditioning.embed(tape, t, h);
        let mut a = tape.concat_cols(z, emb);
        for &(w, b) in &self.params.trunk {
            a = tape.dense(a, w, b, Some(self.config.activation));
        }
        a
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
        for depth in [0, 1, 3] {
            for heads in [Heads::U, Heads::UV] {
                for conditioning in [Conditioning::Raw, Conditioning::Fourier { frequencies: 3 }] {
                    let config = ModelConfig {
                        dim: 5,
                        width: 7,
                        depth,
                        activation: Elementwise::Silu,
                        conditioning,
                        heads,
                    };
                    let from_shapes: usize = config
                        .layer_shapes()
                        .iter()
                        .map(|(_, (o, i))| o * i + o)
                        .sum();
                    let params = MlpParams::<f64>::init(&config, &mut Rng::seed_from_u64(1));
                    let from_tensors: usize = params.tensors().map(|a| a.len()).sum();
                    assert_eq!(config.parameter_count(), from_shapes, "{config:?}");
                    assert_eq!(config.parameter_count(), from_tensors, "{config:?}");
                }
            }
        }
        let huge = ModelConfig {
            dim: 2,
            width: usize::MAX / 2,
            depth: 3,
            activation: Elementwise::Silu,
            conditioning: Conditioning::Raw,
            heads: Heads::U,
        };
        assert_eq!(huge.checked_parameter_count(), None);
    }
}
