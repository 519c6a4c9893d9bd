//! Reductions: [`Sum`] over the axes a [`Reduction`] names, and [`LogSoftmax`], row-wise with the
//! max subtracted (a logsumexp per row), under the softmax cross-entropy.

use super::arithmetic::accumulate_reduced;
use super::row_prefix::first_rows;
use super::{Cotangents, Op, Primitive};
use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Which axes a [`Sum`] adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Over rows: [m, n] -> [1, n].
    Rows,
    /// Over columns: [m, n] -> [m, 1].
    Cols,
    /// Over everything: [m, n] -> [1, 1].
    All,
}

/// Sum of x over the axes named by the reduction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sum {
    pub x: Var,
    pub over: Reduction,
}

impl Primitive for Sum {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        match self.over {
            Reduction::Rows => (1, n),
            Reduction::Cols => (m, 1),
            Reduction::All => (1, 1),
        }
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        out.fill(T::zero());
        let shape = tape.shape(self.x);
        let x = tape.value(self.x);
        accumulate_reduced(out, shape, |i, j| x[[i, j]]);
    }
    /// out_dot = sum(x_dot) (zero rows add nothing, so a row prefix sums as it is)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.push(Op::Sum(Sum { x: x_dot, ..*self })))
    }
    /// x_bar += out_bar broadcast back over the summed axes
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(x_bar) = bars.slot(self.x) {
            let shape = x_bar.dim();
            let g = g
                .broadcast(shape)
                .expect("a sum's cotangent broadcasts to its input");
            Zip::from(x_bar).and(&g).for_each(|b, &g| *b += g);
        }
    }
}

// ----- row-wise log-softmax -----------------------------------------------------------------

/// log_softmax(z) per row: out_ij = z_ij - logsumexp_j(z_ij) = (z_ij - m_i) - ln sum_j exp(z_ij - m_i),
/// m_i = max_j z_ij (the max subtraction keeps every exp in (0, 1], so no logit overflows or
/// underflows the sum). softmax(z) = exp(out) is in (0, 1] and read back from the output by the
/// JVP and VJP rules. With a one-hot row y_i, `-sum_j y_ij out_ij = logsumexp(z_i) - z_i[y_i]` is
/// the cross-entropy ([`Tape::softmax_cross_entropy`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogSoftmax {
    pub z: Var,
}

impl Primitive for LogSoftmax {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.z), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.z);
        assert!(
            n > 0,
            "log_softmax: shape {:?} has no columns to normalise over",
            (m, n)
        );
        (m, n)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let z = tape.value(self.z);
        for (mut out, z) in out.rows_mut().into_iter().zip(z.rows()) {
            let m = z.iter().skip(1).fold(z[0], |m, &x| m.max(x));
            let sum: T = z.iter().map(|&x| (x - m).exp()).sum();
            let ln_sum = sum.ln();
            Zip::from(&mut out)
                .and(&z)
                .for_each(|o, &x| *o = (x - m) - ln_sum);
        }
    }
    /// out_dot_ij = z_dot_ij - sum_l softmax_il z_dot_il, softmax = exp(out) (over the tangent's
    /// rows: each row is its own)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [z_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let z_dot = z_dot?;
        let k = tape.shape(z_dot).0;
        let out = first_rows(tape, out, k);
        let softmax = tape.map(out, Elementwise::Exp);
        let weighted = tape.mul(softmax, z_dot);
        let mean = tape.sum_cols(weighted);
        Some(tape.sub(z_dot, mean))
    }
    /// z_bar_ij += out_bar_ij - softmax_ij sum_l out_bar_il, softmax = exp(out)
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let y = values.get(out);
        if let Some(mut z_bar) = bars.slot(self.z) {
            for ((mut z_bar, g), y) in z_bar.rows_mut().into_iter().zip(g.rows()).zip(y.rows()) {
                let total: T = g.iter().copied().sum();
                Zip::from(&mut z_bar)
                    .and(&g)
                    .and(&y)
                    .for_each(|b, &g, &y| *b += g - y.exp() * total);
            }
        }
    }
}
