//! Layer normalisation as two primitives, each with its rules side by side. Per row i of x [m, n]:
//!
//! ```text
//! mu_i = (1/n) sum_j x_ij,   var_i = (1/n) sum_j (x_ij - mu_i)^2,   s_i = 1 / sqrt(var_i + eps)
//! LayerNorm:          y_ij = (x_ij - mu_i) s_i                                   [m, n]
//! InverseDeviation:   s_i                                                        [m, 1]
//! ```
//!
//! LN's JVP, y_dot = s (x_dot - mean(x_dot) - y mean(y x_dot)), is recorded with s as a node
//! (an [`InverseDeviation`]) and y as LN's own output, so reverse mode differentiates through it
//! by these two ops' VJPs: reverse over forward needs no second-order rule. The composition of
//! sums, differences, products and a power in tests/tape_ops.rs is the oracle.

use super::row_prefix::first_rows;
use super::{Cotangents, Primitive};
use crate::autodiff::tape::{Op, Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Zip};

/// (mu, s) of one row: the mean, and 1 / sqrt(var + eps) with the variance taken about the mean
/// (two passes, so a row far from 0 loses nothing to cancellation).
fn row_statistics<T: Float>(x: ArrayView1<T>, eps: f64) -> (T, T) {
    let n = T::from_f64(x.len() as f64);
    let mu = x.sum() / n;
    let var = x.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() / n;
    (mu, (var + T::from_f64(eps)).sqrt().recip())
}

fn check_columns<T: Float>(op: &str, tape: &Tape<T>, x: Var) -> (usize, usize) {
    let (m, n) = tape.shape(x);
    assert!(
        n > 0,
        "{op}: shape {:?} has no columns to normalise over",
        (m, n)
    );
    (m, n)
}

/// y = (x - mu) s per row (module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNorm {
    pub x: Var,
    pub eps: f64,
}

impl Primitive for LayerNorm {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        check_columns("layer_norm", tape, self.x)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let x = tape.value(self.x);
        for (mut y, x) in out.rows_mut().into_iter().zip(x.rows()) {
            let (mu, s) = row_statistics(x, self.eps);
            Zip::from(&mut y)
                .and(&x)
                .for_each(|y, &x| *y = (x - mu) * s);
        }
    }
    /// y_dot = s (x_dot - mean(x_dot) - y mean(y x_dot)) per row (over the tangent's rows)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let x_dot = x_dot?;
        let (k, n) = tape.shape(x_dot);
        let inverse_n = 1.0 / n as f64;
        let s = tape.push(Op::InverseDeviation(InverseDeviation {
            x: self.x,
            eps: self.eps,
        }));
        let s = first_rows(tape, s, k);
        let y = first_rows(tape, out, k);
        let sum = tape.sum_cols(x_dot);
        let mean = tape.scale(sum, inverse_n);
        let centred = tape.sub(x_dot, mean);
        let y_x_dot = tape.mul(y, x_dot);
        let projection_sum = tape.sum_cols(y_x_dot);
        let projection = tape.scale(projection_sum, inverse_n);
        let radial = tape.mul(y, projection);
        let tangential = tape.sub(centred, radial);
        Some(tape.mul(tangential, s))
    }
    /// x_bar += s (y_bar - mean(y_bar) - y mean(y y_bar)) per row: J is symmetric
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let (x, y) = (values.get(self.x), values.get(out));
        if let Some(mut x_bar) = bars.slot(self.x) {
            let n = T::from_f64(x.ncols() as f64);
            for (((mut x_bar, g), y), x) in x_bar
                .rows_mut()
                .into_iter()
                .zip(g.rows())
                .zip(y.rows())
                .zip(x.rows())
            {
                let (_, s) = row_statistics(x, self.eps);
                let mean_g = g.sum() / n;
                let mean_yg = Zip::from(&y).and(&g).fold(T::zero(), |a, &y, &g| a + y * g) / n;
                Zip::from(&mut x_bar)
                    .and(&g)
                    .and(&y)
                    .for_each(|b, &g, &y| *b += s * (g - mean_g - y * mean_yg));
            }
        }
    }
}

/// s = 1 / sqrt(var + eps) per row, shape [m, 1] (module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InverseDeviation {
    pub x: Var,
    pub eps: f64,
}

impl Primitive for InverseDeviation {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        (check_columns("inverse_deviation", tape, self.x).0, 1)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let x = tape.value(self.x);
        for (s, x) in out.iter_mut().zip(x.rows()) {
            *s = row_statistics(x, self.eps).1;
        }
    }
    /// s_dot = -(s^2 / n) sum_j y_j x_dot_j per row, y = LN(x) (over the tangent's rows)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let x_dot = x_dot?;
        let (k, n) = tape.shape(x_dot);
        let y = tape.push(Op::LayerNorm(LayerNorm {
            x: self.x,
            eps: self.eps,
        }));
        let y = first_rows(tape, y, k);
        let s = first_rows(tape, out, k);
        let y_x_dot = tape.mul(y, x_dot);
        let projection = tape.sum_cols(y_x_dot);
        let s_squared = tape.mul(s, s);
        let product = tape.mul(s_squared, projection);
        Some(tape.scale(product, -1.0 / n as f64))
    }
    /// x_bar_ij += -s_bar_i s_i^3 (x_ij - mu_i) / n
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let (x, s) = (values.get(self.x), values.get(out));
        if let Some(mut x_bar) = bars.slot(self.x) {
            let n = T::from_f64(x.ncols() as f64);
            for (i, (mut x_bar, x)) in x_bar.rows_mut().into_iter().zip(x.rows()).enumerate() {
                let mu = x.sum() / n;
                let s = s[[i, 0]];
                let c = -g[[i, 0]] * s * s * s / n;
                Zip::from(&mut x_bar)
                    .and(&x)
                    .for_each(|b, &x| *b += c * (x - mu));
            }
        }
    }
}
