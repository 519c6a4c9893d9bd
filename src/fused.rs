//! The fused training step: the stop-gradient MeanFlow losses and their parameter gradients for
//! the MLP of [`crate::model`], written directly as matmuls and single elementwise passes over
//! preallocated buffers. It computes exactly what [`crate::loss::record_loss`] + `backward` do
//! (tested to rounding against the tape and the reference cases), faster:
//!
//! - **Rows with r = t skip the tangent.** There (t - r) dudt = 0 exactly, so only the first k rows
//!   (those the time sampler gives r != t) get a tangent row and a v_hat.
//! - **Primal and tangent rows share each matmul.** Layer l computes [a_l; a_dot_l] W_l^T as one
//!   (B + k)-row product: the tangent of x W^T + b along x_dot is x_dot W^T (W is not perturbed).
//! - **One elementwise pass per layer.** pre = p + b; a = f(pre); D = f'(pre) (one dual-number
//!   evaluation gives both); a_dot = D p_dot.
//! - **No backward through what is stopped.** dudt and v_hat are stop-gradient: only the primal
//!   rows are back-propagated, and the boundary pass u(z, t, t) is a plain forward.
//!
//! Backward of layer l (G = dL/d pre_l, A_l its input rows): dW_l = G^T A_l, db_l = 1^T G,
//! dL/dA_l = G W_l, then G_{l-1} = (G W_l) * D_{l-1}.

use crate::float::Float;
use crate::loss::{Batch, LossConfig, LossValues, VSource};
use crate::matmul::gemm;
use crate::model::{Heads, Linear, MlpParams, ModelConfig};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};

/// The activations of one pass: inputs of every layer, f'(pre) of every hidden layer, the output.
#[derive(Debug)]
struct Pass<T> {
    /// acts[l]: the input of linear layer l, [rows, n_l]; acts[depth] feeds the head.
    acts: Vec<Array2<T>>,
    /// derivs[l]: f'(pre_l) for the primal rows of hidden layer l, [B, width].
    derivs: Vec<Array2<T>>,
    /// The head's output, [rows, d].
    out: Array2<T>,
}

impl<T: Float> Pass<T> {
    fn new(model: &ModelConfig, rows: usize, primal_rows: usize) -> Self {
        let mut acts = vec![Array2::zeros((rows, model.input_width()))];
        acts.extend((0..model.depth).map(|_| Array2::zeros((rows, model.width))));
        Pass {
            acts,
            derivs: (0..model.depth)
                .map(|_| Array2::zeros((primal_rows, model.width)))
                .collect(),
            out: Array2::zeros((rows, model.dim)),
        }
    }

    /// Runs the trunk and `head` on `primal` rows and the `tangent` rows stacked below them (the
    /// tangent row i belongs to primal row i). acts[0] must hold the inputs.
    fn forward(
        &mut self,
        model: &ModelConfig,
        trunk: &[Linear<T>],
        head: &Linear<T>,
        primal: usize,
        tangent: usize,
    ) {
        let rows = primal + tangent;
        let act = model.activation;
        for (l, layer) in trunk.iter().enumerate() {
            let (before, after) = self.acts.split_at_mut(l + 1);
            let input = before[l].slice(s![..rows, ..]);
            let mut output = after[0].slice_mut(s![..rows, ..]);
            gemm(
                T::one(),
                input,
                layer.weight.t(),
                T::zero(),
                output.view_mut(),
            );
            let (mut primal_out, mut tangent_out) =
                output.view_mut().split_at(ndarray::Axis(0), primal);
            let mut derivs = self.derivs[l].slice_mut(s![..primal, ..]);
            let contiguous = "row block of a standard-layout buffer";
            act.activate_with_derivative(
                primal_out.as_slice_mut().expect(contiguous),
                derivs.as_slice_mut().expect(contiguous),
                tangent_out.as_slice_mut().expect(contiguous),
                layer.bias.as_slice().expect("bias row is contiguous"),
            );
        }
        let features = self.acts[trunk.len()].slice(s![..rows, ..]);
        let mut out = self.out.slice_mut(s![..rows, ..]);
        gemm(
            T::one(),
            features,
            head.weight.t(),
            T::zero(),
            out.view_mut(),
        );
        let bias = head.bias.row(0);
        for mut row in out.slice_mut(s![..primal, ..]).rows_mut() {
            Zip::from(&mut row).and(&bias).for_each(|o, &b| *o += b);
        }
    }

    /// Back-propagates out_bar [B, d] (the cotangent of the primal outputs) into the gradients:
    /// the head's are overwritten, the trunk's overwritten or (accumulate) added to.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        trunk: &[Linear<T>],
        head: &Linear<T>,
        out_bar: ArrayView2<T>,
        trunk_grads: &mut [Linear<T>],
        head_grad: &mut Linear<T>,
        accumulate: bool,
        scratch: &mut [Array2<T>; 2],
    ) {
        let b = out_bar.nrows();
        let depth = trunk.len();
        let beta = if accumulate { T::one() } else { T::zero() };
        let features = self.acts[depth].slice(s![..b, ..]);
        gemm(
            T::one(),
            out_bar.t(),
            features,
            T::zero(),
            head_grad.weight.view_mut(),
        );
        column_sums(out_bar, head_grad.bias.view_mut(), false);
        let [g, g_next] = scratch;
        let mut g = g.slice_mut(s![..b, ..]);
        let mut g_next = g_next.slice_mut(s![..b, ..]);
        gemm(
            T::one(),
            out_bar,
            head.weight.view(),
            T::zero(),
            g.view_mut(),
        );
        for l in (0..depth).rev() {
            // dL/d pre_l = dL/d a_{l+1} * f'(pre_l), and db_l = 1^T (dL/d pre_l) in the same pass.
            scale_and_sum_columns(
                g.view_mut(),
                self.derivs[l].slice(s![..b, ..]),
                trunk_grads[l].bias.view_mut(),
                accumulate,
            );
            let input = self.acts[l].slice(s![..b, ..]);
            gemm(
                T::one(),
                g.t(),
                input,
                beta,
                trunk_grads[l].weight.view_mut(),
            );
            if l > 0 {
                gemm(
                    T::one(),
                    g.view(),
                    trunk[l].weight.view(),
                    T::zero(),
                    g_next.view_mut(),
                );
                std::mem::swap(&mut g, &mut g_next);
            }
        }
    }
}

/// g <- g * d elementwise, then sums[0, j] (+)= sum_i g[i, j], one row at a time.
fn scale_and_sum_columns<T: Float>(
    mut g: ArrayViewMut2<T>,
    d: ArrayView2<T>,
    mut sums: ArrayViewMut2<T>,
    accumulate: bool,
) {
    if !accumulate {
        sums.fill(T::zero());
    }
    let mut sums = sums.row_mut(0);
    for (mut g_row, d_row) in g.rows_mut().into_iter().zip(d.rows()) {
        Zip::from(&mut g_row)
            .and(&d_row)
            .and(&mut sums)
            .for_each(|g, &d, sum| {
                *g *= d;
                *sum += *g;
            });
    }
}

/// dst[0, j] (+)= sum_i src[i, j].
fn column_sums<T: Float>(src: ArrayView2<T>, mut dst: ArrayViewMut2<T>, accumulate: bool) {
    if !accumulate {
        dst.fill(T::zero());
    }
    let mut dst = dst.row_mut(0);
    for row in src.rows() {
        Zip::from(&mut dst).and(&row).for_each(|d, &s| *d += s);
    }
}

/// Preallocated buffers for the fused loss-and-gradient computation of one model and batch size.
#[derive(Debug)]
pub struct FusedStep<T> {
    model: ModelConfig,
    loss: LossConfig,
    batch: usize,
    z: Array2<T>,
    v_c: Array2<T>,
    /// Primal rows, then up to B tangent rows.
    main: Pass<T>,
    /// The v-head pass (heads = uv): the trunk at r = t, all B rows, kept for its backward.
    v_pass: Option<Pass<T>>,
    u_bar: Array2<T>,
    v_bar: Array2<T>,
    scratch: [Array2<T>; 2],
    /// One time's embedding (values or tangents), width conditioning.width() / 2.
    emb: Vec<T>,
}

impl<T: Float> FusedStep<T> {
    /// The losses the fused step computes: every stop-gradient one (exact variants use the tape).
    pub fn supports(loss: &LossConfig) -> bool {
        !loss.exact
    }

    pub fn new(model: ModelConfig, loss: LossConfig, batch: usize) -> Self {
        assert!(
            Self::supports(&loss),
            "FusedStep: the exact (no stop-gradient) losses need the tape engine"
        );
        let d = model.dim;
        FusedStep {
            main: Pass::new(&model, 2 * batch, batch),
            v_pass: (model.heads == Heads::UV).then(|| Pass::new(&model, batch, batch)),
            z: Array2::zeros((batch, d)),
            v_c: Array2::zeros((batch, d)),
            u_bar: Array2::zeros((batch, d)),
            v_bar: Array2::zeros((batch, d)),
            scratch: [
                Array2::zeros((batch, model.width)),
                Array2::zeros((batch, model.width)),
            ],
            emb: vec![T::zero(); model.conditioning.width() / 2],
            model,
            loss,
            batch,
        }
    }

    /// Writes [z | emb(t) | emb(h)] of rows 0..n into `acts0`, with h = t - r, or h = 0 when
    /// `boundary` (the trunk at r = t).
    fn write_inputs(&mut self, acts0: &mut Array2<T>, batch: &Batch<T>, n: usize, boundary: bool) {
        let d = self.model.dim;
        let half = self.emb.len();
        for i in 0..n {
            let t = batch.t[[i, 0]];
            let h = if boundary {
                T::zero()
            } else {
                t - batch.r[[i, 0]]
            };
            let mut row = acts0.row_mut(i);
            for j in 0..d {
                row[j] = self.z[[i, j]];
            }
            for (offset, s) in [(d, t), (d + half, h)] {
                self.model.conditioning.embed_scalar(s, &mut self.emb);
                for (k, &e) in self.emb.iter().enumerate() {
                    row[offset + k] = e;
                }
            }
        }
    }

    /// Writes the tangent rows B..B+k of acts0: [tangent | d emb(t)/dt | d emb(h)/dh], the
    /// derivative along (z, r, t) -> (tangent, 0, 1), so dt = dh = 1.
    fn write_input_tangents(
        &self,
        acts0: &mut Array2<T>,
        batch: &Batch<T>,
        tangent: ArrayView2<T>,
        k: usize,
    ) {
        use crate::dual::Dual;
        let d = self.model.dim;
        let half = self.emb.len();
        let b = self.batch;
        let mut emb = [Dual::<T>::default(); 2 * (1 + 2 * 16)];
        for i in 0..k {
            let t = batch.t[[i, 0]];
            let h = t - batch.r[[i, 0]];
            let mut row = acts0.row_mut(b + i);
            for j in 0..d {
                row[j] = tangent[[i, j]];
            }
            for (offset, s) in [(d, t), (d + half, h)] {
                self.model
                    .conditioning
                    .embed_scalar(Dual::variable(s), &mut emb[..half]);
                for (k, e) in emb[..half].iter().enumerate() {
                    row[offset + k] = e.tangent;
                }
            }
        }
    }

    /// u(z, r, t) for the batch's rows alone (no tangent, no loss): the forward pass the step's
    /// cost is compared with.
    pub fn forward_u(&mut self, params: &MlpParams<T>, batch: &Batch<T>) -> ArrayView2<'_, T> {
        let b = self.batch;
        assert_eq!(
            batch.x.dim(),
            (b, self.model.dim),
            "FusedStep::forward_u: batch shape"
        );
        Zip::from(&mut self.z)
            .and(&batch.x)
            .and(&batch.e)
            .and_broadcast(&batch.t)
            .for_each(|z, &x, &e, &t| *z = (T::one() - t) * x + t * e);
        let mut acts0 = std::mem::take(&mut self.main.acts[0]);
        self.write_inputs(&mut acts0, batch, b, false);
        self.main.acts[0] = acts0;
        let model = self.model;
        self.main
            .forward(&model, &params.trunk, &params.u_head, b, 0);
        self.main.out.slice(s![..b, ..])
    }

    /// The loss of one batch and its gradient, written into `grads`. Rows from `rows_with_gap` on
    /// must have r = t (pass B when unsure); they get no tangent.
    pub fn loss_and_gradients(
        &mut self,
        params: &MlpParams<T>,
        batch: &Batch<T>,
        rows_with_gap: usize,
        grads: &mut MlpParams<T>,
    ) -> LossValues {
        let b = self.batch;
        let k = rows_with_gap;
        assert!(
            batch.x.dim() == (b, self.model.dim) && k <= b,
            "FusedStep: batch x {:?} with {k} gap rows, but the step was built for [{b}, {}]",
            batch.x.dim(),
            self.model.dim
        );
        debug_assert!((k..b).all(|i| batch.t[[i, 0]] == batch.r[[i, 0]]));
        let loss = self.loss;
        let model = self.model;

        // z = (1 - t) x + t e,  v_c = e - x
        Zip::from(&mut self.z)
            .and(&mut self.v_c)
            .and(&batch.x)
            .and(&batch.e)
            .and_broadcast(&batch.t)
            .for_each(|z, v, &x, &e, &t| {
                *z = (T::one() - t) * x + t * e;
                *v = e - x;
            });

        // The v-head pass (all rows, kept for its backward).
        if let (Some(mut v_pass), Some(v_head)) = (self.v_pass.take(), params.v_head.as_ref()) {
            self.write_inputs(&mut v_pass.acts[0], batch, b, true);
            v_pass.forward(&model, &params.trunk, v_head, b, 0);
            self.v_pass = Some(v_pass);
        }

        // tangent = (1 - beta) v_c + beta v_hat for the k gap rows, into the tangent input rows.
        let mut acts0 = std::mem::take(&mut self.main.acts[0]);
        let beta = T::from_f64(loss.beta);
        let one_minus_beta = T::from_f64(1.0 - loss.beta);
        if loss.beta > 0.0 {
            match loss.v_source {
                VSource::Head => {
                    let v = &self
                        .v_pass
                        .as_ref()
                        .expect("v_source = head needs heads = uv")
                        .out;
                    self.u_bar
                        .slice_mut(s![..k, ..])
                        .assign(&v.slice(s![..k, ..]));
                }
                VSource::Boundary => {
                    // u(z, t, t) on the main pass's buffers, before the main pass overwrites them.
                    self.write_inputs(&mut acts0, batch, k, true);
                    self.main.acts[0] = acts0;
                    self.main
                        .forward(&model, &params.trunk, &params.u_head, k, 0);
                    acts0 = std::mem::take(&mut self.main.acts[0]);
                    self.u_bar
                        .slice_mut(s![..k, ..])
                        .assign(&self.main.out.slice(s![..k, ..]));
                }
            }
            // u_bar doubles as v_hat storage until the loss overwrites it.
            Zip::from(self.u_bar.slice_mut(s![..k, ..]))
                .and(self.v_c.slice(s![..k, ..]))
                .for_each(|tan, &v| *tan = one_minus_beta * v + beta * *tan);
        } else {
            self.u_bar
                .slice_mut(s![..k, ..])
                .assign(&self.v_c.slice(s![..k, ..]));
        }
        self.write_inputs(&mut acts0, batch, b, false);
        self.write_input_tangents(&mut acts0, batch, self.u_bar.view(), k);
        self.main.acts[0] = acts0;

        // The main pass: u for all rows and dudt for the gap rows, stacked.
        self.main
            .forward(&model, &params.trunk, &params.u_head, b, k);

        // delta = u + (t - r) sg(dudt) - v_c;  u_bar = dL/du = 2 w delta / B.
        let inv_b = 1.0 / b as f64;
        let mut loss_u = 0.0;
        let mut mse = 0.0;
        for i in 0..b {
            let h = batch.t[[i, 0]] - batch.r[[i, 0]];
            let mut ell = T::zero();
            for j in 0..model.dim {
                let dudt = if i < k {
                    self.main.out[[b + i, j]]
                } else {
                    T::zero()
                };
                let delta = self.main.out[[i, j]] + h * dudt - self.v_c[[i, j]];
                self.u_bar[[i, j]] = delta;
                ell += delta * delta;
            }
            let w = (ell + T::from_f64(loss.c)).powf(T::from_f64(-loss.p));
            loss_u += (w * ell).to_f64() * inv_b;
            mse += ell.to_f64() * inv_b;
            let scale = T::from_f64(2.0 * inv_b) * w;
            self.u_bar.row_mut(i).iter_mut().for_each(|g| *g *= scale);
        }

        // delta_v = v - v_c, likewise.
        let mut loss_v = None;
        if let Some(v_pass) = &self.v_pass {
            let mut total = 0.0;
            for i in 0..b {
                let mut ell = T::zero();
                for j in 0..model.dim {
                    let delta = v_pass.out[[i, j]] - self.v_c[[i, j]];
                    self.v_bar[[i, j]] = delta;
                    ell += delta * delta;
                }
                let w = (ell + T::from_f64(loss.c)).powf(T::from_f64(-loss.p));
                total += (w * ell).to_f64() * inv_b;
                let scale = T::from_f64(2.0 * inv_b) * w;
                self.v_bar.row_mut(i).iter_mut().for_each(|g| *g *= scale);
            }
            loss_v = Some(total);
        }

        // Backward through the primal rows only.
        self.main.backward(
            &params.trunk,
            &params.u_head,
            self.u_bar.view(),
            &mut grads.trunk,
            &mut grads.u_head,
            false,
            &mut self.scratch,
        );
        if let (Some(v_pass), Some(v_head), Some(v_grad)) = (
            self.v_pass.as_mut(),
            params.v_head.as_ref(),
            grads.v_head.as_mut(),
        ) {
            v_pass.backward(
                &params.trunk,
                v_head,
                self.v_bar.view(),
                &mut grads.trunk,
                v_grad,
                true,
                &mut self.scratch,
            );
        }
        LossValues {
            loss: loss_u + loss_v.unwrap_or(0.0),
            loss_u,
            loss_v,
            mse,
        }
    }
}
