//! Matrix products: [`MatMul`], C = op(A) op(B), and [`Dense`], the dense layer f(x W^T + b) as
//! one primitive, with its dual-block form [x; x_dot] -> [y; y_dot] (one GEMM for value and
//! tangent rows).

use super::row_prefix::{first_rows, fit, full_rows, sum_terms};
use super::{Cotangents, Map, Op, Primitive};
use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use crate::linalg::matmul::gemm;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};

// ----- matmul -------------------------------------------------------------------------------

/// C = op(A) op(B), op(X) = X or X^T (a strided view).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatMul {
    pub a: Var,
    pub b: Var,
    pub transpose_a: bool,
    pub transpose_b: bool,
}

fn op_view<T>(x: ArrayView2<'_, T>, transpose: bool) -> ArrayView2<'_, T> {
    if transpose {
        x.reversed_axes()
    } else {
        x
    }
}

impl Primitive for MatMul {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.a), Some(self.b), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let a = op_view(tape.value(self.a), self.transpose_a).dim();
        let b = op_view(tape.value(self.b), self.transpose_b).dim();
        assert_eq!(
            a.1, b.0,
            "matmul: op(A) is {a:?} and op(B) is {b:?} (A {:?}{}, B {:?}{}): inner dimensions differ",
            tape.shape(self.a),
            if self.transpose_a { " transposed" } else { "" },
            tape.shape(self.b),
            if self.transpose_b { " transposed" } else { "" },
        );
        (a.0, b.1)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        let a = op_view(tape.value(self.a), self.transpose_a);
        let b = op_view(tape.value(self.b), self.transpose_b);
        gemm(T::one(), a, b, T::zero(), out);
    }
    /// C_dot = op(A_dot) op(B) + op(A) op(B_dot). A row prefix of A_dot stays one (rows of A are
    /// rows of C); a transposed A or any B_dot is contracted over its rows, so is padded first.
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let (rows_a, rows_b) = (tape.shape(self.a).0, tape.shape(self.b).0);
        let t1 = a_dot.map(|a_dot| {
            let a_dot = if self.transpose_a {
                full_rows(tape, a_dot, rows_a)
            } else {
                a_dot
            };
            tape.matmul_t(a_dot, self.transpose_a, self.b, self.transpose_b)
        });
        let t2 = b_dot.map(|b_dot| {
            let b_dot = full_rows(tape, b_dot, rows_b);
            tape.matmul_t(self.a, self.transpose_a, b_dot, self.transpose_b)
        });
        sum_terms(tape, [t1, t2])
    }
    /// op(A)_bar = C_bar op(B)^T, op(B)_bar = op(A)^T C_bar, transposed back where op transposes.
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        c_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let a = op_view(values.get(self.a), self.transpose_a);
        let b = op_view(values.get(self.b), self.transpose_b);
        if let Some(a_bar) = bars.slot(self.a) {
            if self.transpose_a {
                gemm(T::one(), b, c_bar.t(), T::one(), a_bar); // A_bar = op(B) C_bar^T
            } else {
                gemm(T::one(), c_bar, b.t(), T::one(), a_bar);
            }
        }
        if let Some(b_bar) = bars.slot(self.b) {
            if self.transpose_b {
                gemm(T::one(), c_bar.t(), a, T::one(), b_bar); // B_bar = C_bar^T op(A)
            } else {
                gemm(T::one(), a.t(), c_bar, T::one(), b_bar);
            }
        }
    }
}

// ----- the dense layer ----------------------------------------------------------------------

/// The elements of a [1, n] row as a slice: the row itself where it is contiguous (a parameter
/// leaf), else a copy in `copy`.
fn row_slice<'a, T: Float>(row: &'a ArrayView2<'a, T>, copy: &'a mut Vec<T>) -> &'a [T] {
    match row.as_slice() {
        Some(r) => r,
        None => {
            copy.extend(row.iter().copied());
            copy
        }
    }
}

/// y = f(x W^T + b) for x [R, in], W [out, in] (PyTorch's `nn.Linear`), b [1, out]; `activation`
/// None is the identity. With `tangent_rows` K > 0, x is a dual block [x_p; x_t]: P = R - K value
/// rows, then K tangent rows, row P + i the tangent of value row i, and the output is the block
///
/// ```text
/// pre = x_p W^T + b,   y_p = f(pre),   y_t = f'(pre[..K]) * (x_t W^T)
/// ```
///
/// computed as one GEMM over all R rows and one elementwise pass (bias, f, f' saved for the VJP,
/// the tangent's scaling). [`Tape::dense`] builds K = 0; its JVP along a tangent of x alone is the
/// K > 0 block (`push_dual`), the shared-product form of forward mode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dense {
    pub x: Var,
    pub weight: Var,
    pub bias: Var,
    pub activation: Option<Elementwise>,
    pub tangent_rows: usize,
}

impl Dense {
    /// The JVP of a K = 0 layer along a tangent x_dot of x alone (W and b carry none), in dual
    /// form: [x; x_dot] -> [y; y_dot] by one K = k block. Returns y, with y_dot as its tangent
    /// (both row views of the block), or None where this form does not apply.
    pub(crate) fn push_dual<T: Float>(
        self,
        tape: &mut Tape<T>,
        [x_dot, w_dot, b_dot]: [Option<Var>; 3],
    ) -> Option<Var> {
        let (Some(x_dot), None, None, 0) = (x_dot, w_dot, b_dot, self.tangent_rows) else {
            return None;
        };
        let p = tape.shape(self.x).0;
        let k = tape.shape(x_dot).0;
        Some(tape.recording_rule(|tape| {
            // The previous dense layer's block already is [x; x_dot]: use it as it stands.
            let (owner, _) = tape.owner_of(self.x);
            let is_block = tape.shape(owner).0 == p + k
                && tape.is_view_of(self.x, owner, 0, p)
                && tape.is_view_of(x_dot, owner, p, p + k);
            let block = if is_block {
                owner
            } else {
                tape.stack_rows(self.x, x_dot)
            };
            let y_block = tape.push(Op::Dense(Dense {
                x: block,
                tangent_rows: k,
                ..self
            }));
            let y = tape.rows(y_block, 0, p);
            let y_dot = tape.rows(y_block, p, p + k);
            tape.put_tangent(y, Some(y_dot));
            y
        }))
    }

    /// out <- the block's value; `slope` (P x out, when given) <- f'(pre) of the value rows.
    pub(crate) fn eval_into<T: Float>(
        &self,
        tape: &Tape<T>,
        mut out: ArrayViewMut2<T>,
        slope: Option<ArrayViewMut2<T>>,
    ) {
        let x = tape.value(self.x);
        let w = tape.value(self.weight);
        let bias = tape.value(self.bias);
        gemm(T::one(), x, w.t(), T::zero(), out.view_mut());
        let p = out.nrows() - self.tangent_rows;
        let (mut value_rows, mut tangent_rows) = out.view_mut().split_at(ndarray::Axis(0), p);
        let mut copy = Vec::new();
        let bias = row_slice(&bias, &mut copy);
        let contiguous = "a fresh pooled buffer is in standard layout";
        match (self.activation, slope) {
            (None, _) => {
                for mut row in value_rows.rows_mut() {
                    Zip::from(&mut row)
                        .and(&ndarray::aview1(bias))
                        .for_each(|o, &b| *o += b);
                }
            }
            (Some(f), Some(mut slope)) => f.activate_with_derivative(
                value_rows.as_slice_mut().expect(contiguous),
                slope.as_slice_mut().expect(contiguous),
                tangent_rows.as_slice_mut().expect(contiguous),
                bias,
            ),
            (Some(f), None) => {
                assert_eq!(
                    self.tangent_rows, 0,
                    "dense: a dual block needs its slope (eval through Tape::push)"
                );
                for mut row in value_rows.rows_mut() {
                    Zip::from(&mut row)
                        .and(&ndarray::aview1(bias))
                        .for_each(|o, &b| *o = f.eval(*o + b));
                }
            }
        }
    }
}

impl Primitive for Dense {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), Some(self.weight), Some(self.bias)]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (x, w, b) = (
            tape.shape(self.x),
            tape.shape(self.weight),
            tape.shape(self.bias),
        );
        assert!(
            x.1 == w.1 && b == (1, w.0) && 2 * self.tangent_rows <= x.0,
            "dense: x {x:?}, W {w:?}, b {b:?} with {} tangent rows: need x [R, in], W [out, in], b [1, out], tangent rows <= R / 2",
            self.tangent_rows
        );
        (x.0, w.0)
    }
    fn eval<T: Float>(&self, _: &Tape<T>, _: ArrayViewMut2<T>) {
        unreachable!("Tape::push evaluates a dense layer through Dense::eval_into, keeping f'(pre) for its VJP")
    }
    /// pre_dot = x_dot W^T + x W_dot^T + b_dot,  y_dot = f'(pre) pre_dot, recorded with the small
    /// primitives (the general rule; a tangent on x alone takes the dual form, `push_dual`).
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [x_dot, w_dot, b_dot]: [Option<Var>; 3],
    ) -> Option<Var> {
        assert_eq!(
            self.tangent_rows, 0,
            "dense: forward mode over a dual block would be second order"
        );
        let shape = tape.shape(out);
        let t1 = x_dot.map(|x_dot| tape.matmul_t(x_dot, false, self.weight, true));
        let t2 = w_dot.map(|w_dot| {
            // W's rows are the output's columns: a row prefix of W_dot is padded first.
            let w_dot = full_rows(tape, w_dot, shape.1);
            tape.matmul_t(self.x, false, w_dot, true)
        });
        let t3 = b_dot.map(|b_dot| fit(tape, b_dot, 1, shape));
        let lin = sum_terms(tape, [t1, t2]);
        let pre_dot = sum_terms(tape, [lin, t3])?;
        Some(match self.activation {
            None => pre_dot,
            Some(f) => {
                let k = tape.shape(pre_dot).0;
                let x = first_rows(tape, self.x, k);
                let pre = tape.linear(x, self.weight, self.bias);
                let slope = tape.push(Op::Map(Map {
                    x: pre,
                    f,
                    order: 1,
                }));
                tape.mul(slope, pre_dot)
            }
        })
    }
    /// With G = the cotangent of pre = [x_p; x_t] W^T (+ b on value rows):
    /// G_p = y_bar_p * f'(pre) + [i < K] y_bar_t * (x_t W^T) * f''(pre),  G_t = y_bar_t * f'(pre[..K]);
    /// W_bar += G^T x,  b_bar += 1^T G_p,  x_bar += G W. Rows of the block that no cotangent
    /// reached (the tangent rows, when only stopped quantities used them) are left out.
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        y_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let x = values.get(self.x);
        let w = values.get(self.weight);
        let (rows, width) = y_bar.dim();
        let k = self.tangent_rows;
        let p = rows - k;
        let touched = bars.touched_rows(out);
        let tangent_rows_reached = k > 0 && touched.end > p;
        let used = if tangent_rows_reached { rows } else { p };
        let mut g = bars.pool.take_uninit((used, width));
        let second_order = tangent_rows_reached && self.activation.is_some();
        let mut pre = second_order.then(|| bars.pool.take_uninit((k, width)));
        let mut pre_dot = second_order.then(|| bars.pool.take_uninit((k, width)));
        let slope = values.saved(out);
        let mut b_bar = bars.slot(self.bias);
        if let Some(b_bar) = b_bar.as_mut() {
            debug_assert_eq!(b_bar.dim(), (1, width));
        }
        // G row <- y_bar row * f'(pre) of value row `value_row` (the identity: a copy).
        let scale_row = |g: &mut Array2<T>, row: usize, value_row: usize| {
            let mut g_row = g.row_mut(row);
            let y_row = y_bar.row(row);
            match slope {
                Some(d) => Zip::from(&mut g_row)
                    .and(&y_row)
                    .and(&d.row(value_row))
                    .for_each(|g, &y, &d| *g = y * d),
                None => g_row.assign(&y_row),
            }
        };
        // Value rows: G, and b_bar += column sums of G while the row is in cache.
        for i in 0..p {
            scale_row(&mut g, i, i);
            if let Some(b_bar) = b_bar.as_mut() {
                Zip::from(b_bar.row_mut(0))
                    .and(&g.row(i))
                    .for_each(|b, &g| *b += g);
            }
        }
        if tangent_rows_reached {
            for i in 0..k {
                scale_row(&mut g, p + i, i);
            }
            if let (Some(f), Some(pre), Some(pre_dot)) =
                (self.activation, pre.as_mut(), pre_dot.as_mut())
            {
                // The second-order term through f'(pre): recompute pre and x_t W^T for K rows.
                let bias = values.get(self.bias);
                gemm(
                    T::one(),
                    x.slice(s![..k, ..]),
                    w.t(),
                    T::zero(),
                    pre.view_mut(),
                );
                gemm(
                    T::one(),
                    x.slice(s![p.., ..]),
                    w.t(),
                    T::zero(),
                    pre_dot.view_mut(),
                );
                // pre <- y_bar_t * (x_t W^T) * f''(pre + b): the increment of G_p[..K].
                let mut copy = Vec::new();
                let bias = row_slice(&bias, &mut copy);
                f.second_derivative_in_place(
                    pre.as_slice_mut()
                        .expect("a pooled buffer is in standard layout"),
                    bias,
                );
                Zip::from(&mut *pre)
                    .and(y_bar.slice(s![p.., ..]))
                    .and(&*pre_dot)
                    .for_each(|pre, &y_t, &pre_dot| *pre *= y_t * pre_dot);
                Zip::from(g.slice_mut(s![..k, ..]))
                    .and(&*pre)
                    .for_each(|g, &inc| *g += inc);
                if let Some(b_bar) = b_bar.as_mut() {
                    for row in pre.rows() {
                        Zip::from(b_bar.row_mut(0))
                            .and(&row)
                            .for_each(|b, &inc| *b += inc);
                    }
                }
            }
        }
        for scratch in [pre, pre_dot].into_iter().flatten() {
            bars.pool.give(scratch);
        }
        let beta = |fresh: bool| if fresh { T::zero() } else { T::one() };
        let weight_rows = w.nrows();
        if let Some((w_bar, fresh)) = bars.slot_rows_to_write(self.weight, 0..weight_rows) {
            gemm(T::one(), g.t(), x.slice(s![..used, ..]), beta(fresh), w_bar);
        }
        if let Some((x_bar, fresh)) = bars.slot_rows_to_write(self.x, 0..used) {
            gemm(T::one(), g.view(), w, beta(fresh), x_bar);
        }
        bars.pool.give(g);
    }
}
