//! The primitives of the tape. Each is a struct whose evaluation, JVP rule and VJP rule sit side by
//! side in one `impl Primitive` block; [`Op`] is the closed set of them, dispatched by exhaustive
//! `match`. An op without all of its rules does not compile.
//!
//! Naming: `x_dot` is a tangent (forward mode), `x_bar` a cotangent (reverse mode), `out` the op's
//! own output. JVP rules record their result as tape ops (so that reverse mode can differentiate
//! through them); VJP rules accumulate into cotangent buffers directly.

use super::pool::BufferPool;
use super::{Node, Tape, Values, Var};
use crate::autodiff::elementwise::Elementwise;
use crate::linalg::float::Float;
use crate::linalg::matmul::gemm;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};
use std::ops::Range;

mod normalization;

pub use normalization::{InverseDeviation, LayerNorm};

/// The rules every primitive provides.
pub(crate) trait Primitive {
    /// The nodes this op reads (at most three).
    fn inputs(&self) -> [Option<Var>; 3];
    /// The output shape; panics, naming the shapes, when the inputs do not fit.
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize);
    /// out <- f(inputs). `out` holds garbage on entry and must be fully written.
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>);
    /// out_dot = J x_dot, recorded as tape ops; `None` tangents are exact zeros. A tangent may
    /// cover a row prefix only (fewer rows than its value); the rule keeps that where it can.
    fn jvp<T: Float>(&self, tape: &mut Tape<T>, out: Var, x_dot: [Option<Var>; 3]) -> Option<Var>;
    /// x_bar += J^T out_bar for every input that requires a gradient.
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        out_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    );
}

/// Cotangent buffers during `backward`, allocated (zeroed, from the pool) on first use. A
/// [`Rows`] view has no buffer of its own: its cotangent is rows of its owner's buffer.
pub(crate) struct Cotangents<'a, T: Float> {
    pub slots: &'a mut Vec<Option<Array2<T>>>,
    /// touched[i]: the rows (start, end) of buffer i that some VJP wrote to.
    pub touched: &'a mut Vec<(usize, usize)>,
    pub nodes: &'a [Node],
    pub values: Values<'a, T>,
    pub pool: &'a mut BufferPool<T>,
    /// Report only the rows written as touched (else a written buffer counts as all touched).
    pub prune_rows: bool,
}

impl<T: Float> Cotangents<'_, T> {
    /// The cotangent buffer of `v` to accumulate into, or None if `v` needs no gradient.
    fn slot(&mut self, v: Var) -> Option<ArrayViewMut2<'_, T>> {
        let rows = self.values.get(v).nrows();
        self.slot_rows(v, 0..rows)
    }

    /// Rows `range` of v's cotangent buffer to accumulate into (zeros where nothing was written
    /// yet), or None if `v` needs no gradient.
    fn slot_rows(&mut self, v: Var, range: Range<usize>) -> Option<ArrayViewMut2<'_, T>> {
        if !self.nodes[v.index()].requires_grad {
            return None;
        }
        Some(self.slot_unchecked(v, range))
    }

    /// As [`Self::slot_rows`], also for a node that needs no gradient (the seed of `backward`).
    pub(crate) fn slot_unchecked(&mut self, v: Var, range: Range<usize>) -> ArrayViewMut2<'_, T> {
        let (owner, rows, _) = self.claim(v, range, true);
        self.buffer(owner, rows)
    }

    /// Rows `range` of v's cotangent buffer, and whether nothing was written to them yet: then
    /// the caller must overwrite every element (a GEMM with beta = 0), which saves zeroing them.
    fn slot_rows_to_write(
        &mut self,
        v: Var,
        range: Range<usize>,
    ) -> Option<(ArrayViewMut2<'_, T>, bool)> {
        if !self.nodes[v.index()].requires_grad {
            return None;
        }
        let (owner, rows, fresh) = self.claim(v, range, false);
        Some((self.buffer(owner, rows), fresh))
    }

    /// Makes rows `range` of v's buffer part of its written rows, which stay one contiguous range
    /// (`touched`): rows newly included are zeroed, except, when `zero_range` is false and the
    /// range is wholly new, the range itself (then "fresh", for the caller to overwrite). Returns
    /// the owner's index, the rows in its buffer, and whether they are fresh. A new buffer is
    /// taken from the pool unzeroed; with `prune_rows` off it is zeroed whole and counts as
    /// written everywhere.
    fn claim(
        &mut self,
        v: Var,
        range: Range<usize>,
        zero_range: bool,
    ) -> (usize, Range<usize>, bool) {
        let (owner, offset) = self.values.owner_of(v);
        let owner = owner.index();
        let abs = offset + range.start..offset + range.end;
        let shape = self.values.get(Var(owner as u32)).dim();
        if self.slots[owner].is_none() {
            if self.prune_rows {
                self.slots[owner] = Some(self.pool.take_uninit(shape));
                self.touched[owner] = (abs.start, abs.start);
            } else {
                self.slots[owner] = Some(self.pool.take_zeroed(shape));
                self.touched[owner] = (0, shape.0);
            }
        }
        let (start, end) = self.touched[owner];
        let buf = self.slots[owner].as_mut().expect("allocated above");
        let untouched = start == end;
        let disjoint = untouched || abs.end <= start || abs.start >= end;
        let leave_range = !zero_range && disjoint && !abs.is_empty();
        let (new_start, new_end) = if untouched {
            (abs.start, abs.end)
        } else {
            (start.min(abs.start), end.max(abs.end))
        };
        let mut zero = |rows: Range<usize>| {
            for r in rows {
                if leave_range && abs.contains(&r) {
                    continue;
                }
                buf.row_mut(r).fill(T::zero());
            }
        };
        if untouched {
            zero(new_start..new_end);
        } else {
            zero(new_start..start);
            zero(end..new_end);
        }
        self.touched[owner] = (new_start, new_end);
        (owner, abs, leave_range)
    }

    fn buffer(&mut self, owner: usize, rows: Range<usize>) -> ArrayViewMut2<'_, T> {
        let buf = self.slots[owner].as_mut().expect("claimed");
        buf.slice_mut(s![rows, ..])
    }

    /// The rows of v's own buffer that received a cotangent.
    fn touched_rows(&self, v: Var) -> Range<usize> {
        let (start, end) = self.touched[v.index()];
        start..end.max(start)
    }

    /// Before node v's VJP runs: zeroes the rows of its cotangent buffer that its op reads but no
    /// VJP wrote (a buffer is written only where a cotangent arrived).
    pub(crate) fn prepare(&mut self, v: Var, op: &Op) {
        let rows = self.values.get(v).nrows();
        let touched = self.touched_rows(v);
        let needed = op.cotangent_rows_read(touched.clone(), rows);
        if needed.start < touched.start || needed.end > touched.end {
            self.claim(v, needed, true);
        }
    }
}

// ----- shape helpers ------------------------------------------------------------------------

/// The broadcast shape of two shapes: per axis equal, or one of them 1.
fn broadcast_shape(op: &str, a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    let axis = |x: usize, y: usize| {
        if x == y || y == 1 {
            Some(x)
        } else if x == 1 {
            Some(y)
        } else {
            None
        }
    };
    match (axis(a.0, b.0), axis(a.1, b.1)) {
        (Some(m), Some(n)) => (m, n),
        _ => panic!("{op}: shapes {a:?} and {b:?} do not broadcast"),
    }
}

/// dst += sum over the broadcast axes of f(i, j), (i, j) ranging over `shape`; dst's axes are
/// either of the same length as `shape` or 1.
fn accumulate_reduced<T: Float>(
    mut dst: ArrayViewMut2<T>,
    shape: (usize, usize),
    f: impl Fn(usize, usize) -> T,
) {
    let (p, q) = dst.dim();
    if (p, q) == shape {
        Zip::indexed(&mut dst).for_each(|(i, j), d| *d += f(i, j));
    } else {
        for i in 0..shape.0 {
            let di = if p == 1 { 0 } else { i };
            for j in 0..shape.1 {
                let dj = if q == 1 { 0 } else { j };
                dst[[di, dj]] += f(i, j);
            }
        }
    }
}

// ----- row-prefix tangents ------------------------------------------------------------------
//
// A tangent of k rows belongs to rows 0..k of its value; the other rows' tangent is zero. The
// helpers below keep that shape through the rules: a term stays k rows where the operand it
// pairs with is cut to its first k rows, and only a sum of terms of different lengths (or a rule
// that contracts over rows) pads with zero rows.

/// A tangent term fitted to an output of shape `out`: a term of an operand broadcast along rows
/// (1 row, the output more) covers every row; any other keeps its rows. Columns of length 1
/// are broadcast.
fn fit<T: Float>(tape: &mut Tape<T>, term: Var, operand_rows: usize, out: (usize, usize)) -> Var {
    let (k, c) = tape.shape(term);
    let rows = if operand_rows == 1 && out.0 > 1 {
        out.0
    } else {
        k
    };
    if (k, c) == (rows, out.1) {
        term
    } else {
        tape.broadcast(term, rows, out.1)
    }
}

/// a + b (or a - b) for terms of the output's columns; the shorter row prefix is padded.
fn combine<T: Float>(tape: &mut Tape<T>, a: Var, b: Var, subtract: bool) -> Var {
    let (ra, rb) = (tape.shape(a).0, tape.shape(b).0);
    let a = if ra < rb { tape.pad_rows(a, rb) } else { a };
    let b = if rb < ra { tape.pad_rows(b, ra) } else { b };
    if subtract {
        tape.sub(a, b)
    } else {
        tape.add(a, b)
    }
}

/// The sum of the terms present (None if none is).
fn sum_terms<T: Float>(tape: &mut Tape<T>, terms: [Option<Var>; 2]) -> Option<Var> {
    match terms {
        [Some(a), Some(b)] => Some(combine(tape, a, b, false)),
        [Some(a), None] | [None, Some(a)] => Some(a),
        [None, None] => None,
    }
}

/// x cut to the first `k` rows, to pair with a k-row tangent; x itself where it has k rows or
/// one row (broadcast).
fn first_rows<T: Float>(tape: &mut Tape<T>, x: Var, k: usize) -> Var {
    let m = tape.shape(x).0;
    if m == 1 || m == k {
        x
    } else {
        tape.rows(x, 0, k)
    }
}

/// The operand that multiplies the tangent of `tangent_of` (rows(tangent_of) rows, its tangent
/// `k` rows): `other` cut to k rows, unless `tangent_of` is broadcast along rows.
fn partner<T: Float>(tape: &mut Tape<T>, tangent_of: Var, k: usize, other: Var) -> Var {
    if tape.shape(tangent_of).0 == 1 {
        other
    } else {
        first_rows(tape, other, k)
    }
}

/// x_dot with all `rows` rows (zero rows appended to a prefix).
fn full_rows<T: Float>(tape: &mut Tape<T>, x_dot: Var, rows: usize) -> Var {
    if tape.shape(x_dot).0 == rows {
        x_dot
    } else {
        tape.pad_rows(x_dot, rows)
    }
}

// ----- leaf ---------------------------------------------------------------------------------

/// An input or parameter: its value is given, not computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leaf;

impl Primitive for Leaf {
    fn inputs(&self) -> [Option<Var>; 3] {
        [None, None, None]
    }
    fn shape<T: Float>(&self, _: &Tape<T>) -> (usize, usize) {
        unreachable!("a leaf's shape is that of its given value")
    }
    fn eval<T: Float>(&self, _: &Tape<T>, _: ArrayViewMut2<T>) {
        unreachable!("a leaf's value is given, not evaluated")
    }
    /// A leaf's tangent is whatever `set_tangent` seeded.
    fn jvp<T: Float>(&self, _: &mut Tape<T>, _: Var, _: [Option<Var>; 3]) -> Option<Var> {
        None
    }
    /// Cotangents stop at leaves.
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
}

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

// ----- broadcasting binary ops ----------------------------------------------------------------

macro_rules! binary_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $name(pub Var, pub Var);
    };
}
binary_struct!(
    /// a + b, broadcasting axes of length 1.
    Add
);
binary_struct!(
    /// a - b, broadcasting axes of length 1.
    Sub
);
binary_struct!(
    /// a * b elementwise, broadcasting axes of length 1.
    Mul
);
binary_struct!(
    /// a / b elementwise, broadcasting axes of length 1.
    Div
);

/// Evaluates out = f(a, b) with a and b broadcast to out's shape.
fn eval_broadcast<T: Float>(
    tape: &Tape<T>,
    a: Var,
    b: Var,
    out: ArrayViewMut2<T>,
    f: impl Fn(T, T) -> T,
) {
    let shape = out.dim();
    let a = tape.value(a);
    let b = tape.value(b);
    let a = a
        .broadcast(shape)
        .expect("shape checked by broadcast_shape");
    let b = b
        .broadcast(shape)
        .expect("shape checked by broadcast_shape");
    Zip::from(out)
        .and(&a)
        .and(&b)
        .for_each(|o, &x, &y| *o = f(x, y));
}

/// The fitted tangent terms of a sum or difference.
fn additive_terms<T: Float>(
    tape: &mut Tape<T>,
    out: Var,
    [a, b]: [Var; 2],
    [a_dot, b_dot]: [Option<Var>; 2],
) -> [Option<Var>; 2] {
    let shape = tape.shape(out);
    let (ra, rb) = (tape.shape(a).0, tape.shape(b).0);
    [
        a_dot.map(|a_dot| fit(tape, a_dot, ra, shape)),
        b_dot.map(|b_dot| fit(tape, b_dot, rb, shape)),
    ]
}

impl Primitive for Add {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("add", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a + b);
    }
    /// out_dot = a_dot + b_dot
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let terms = additive_terms(tape, out, [self.0, self.1], [a_dot, b_dot]);
        sum_terms(tape, terms)
    }
    /// a_bar += out_bar, b_bar += out_bar (summed over broadcast axes)
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        let shape = g.dim();
        for x in [self.0, self.1] {
            if let Some(x_bar) = bars.slot(x) {
                accumulate_reduced(x_bar, shape, |i, j| g[[i, j]]);
            }
        }
    }
}

impl Primitive for Sub {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("sub", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a - b);
    }
    /// out_dot = a_dot - b_dot
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        match additive_terms(tape, out, [self.0, self.1], [a_dot, b_dot]) {
            [Some(a_dot), Some(b_dot)] => Some(combine(tape, a_dot, b_dot, true)),
            [a_dot, b_dot] => a_dot.or_else(|| b_dot.map(|b_dot| tape.neg(b_dot))),
        }
    }
    /// a_bar += out_bar, b_bar -= out_bar
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        let shape = g.dim();
        if let Some(a_bar) = bars.slot(self.0) {
            accumulate_reduced(a_bar, shape, |i, j| g[[i, j]]);
        }
        if let Some(b_bar) = bars.slot(self.1) {
            accumulate_reduced(b_bar, shape, |i, j| -g[[i, j]]);
        }
    }
}

impl Primitive for Mul {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("mul", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a * b);
    }
    /// out_dot = a_dot b + a b_dot (each term over its tangent's rows)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let t1 = a_dot.map(|a_dot| {
            let k = tape.shape(a_dot).0;
            let b = partner(tape, self.0, k, self.1);
            tape.mul(a_dot, b)
        });
        let t2 = b_dot.map(|b_dot| {
            let k = tape.shape(b_dot).0;
            let a = partner(tape, self.1, k, self.0);
            tape.mul(a, b_dot)
        });
        sum_terms(tape, [t1, t2])
    }
    /// a_bar += out_bar b, b_bar += out_bar a
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let shape = g.dim();
        let (a, b) = (values.get(self.0), values.get(self.1));
        let broadcast = "shape checked by broadcast_shape";
        let (a, b) = (
            a.broadcast(shape).expect(broadcast),
            b.broadcast(shape).expect(broadcast),
        );
        if let Some(a_bar) = bars.slot(self.0) {
            accumulate_reduced(a_bar, shape, |i, j| g[[i, j]] * b[[i, j]]);
        }
        if let Some(b_bar) = bars.slot(self.1) {
            accumulate_reduced(b_bar, shape, |i, j| g[[i, j]] * a[[i, j]]);
        }
    }
}

impl Primitive for Div {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("div", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a / b);
    }
    /// out_dot = a_dot / b - out b_dot / b
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let t1 = a_dot.map(|a_dot| {
            let k = tape.shape(a_dot).0;
            let b = partner(tape, self.0, k, self.1);
            tape.div(a_dot, b)
        });
        let t2 = b_dot.map(|b_dot| {
            let k = tape.shape(b_dot).0;
            let b = partner(tape, self.1, k, self.1);
            let q = partner(tape, self.1, k, out);
            let ratio = tape.div(b_dot, b);
            let prod = tape.mul(q, ratio);
            tape.neg(prod)
        });
        sum_terms(tape, [t1, t2])
    }
    /// a_bar += out_bar / b, b_bar -= out_bar out / b
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let shape = g.dim();
        let b = values.get(self.1);
        let b = b
            .broadcast(shape)
            .expect("shape checked by broadcast_shape");
        let q = values.get(out);
        if let Some(a_bar) = bars.slot(self.0) {
            accumulate_reduced(a_bar, shape, |i, j| g[[i, j]] / b[[i, j]]);
        }
        if let Some(b_bar) = bars.slot(self.1) {
            accumulate_reduced(b_bar, shape, |i, j| -g[[i, j]] * q[[i, j]] / b[[i, j]]);
        }
    }
}

// ----- unary elementwise ops ------------------------------------------------------------------

/// c x for a constant c.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub x: Var,
    pub c: f64,
}

impl Primitive for Scale {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.x)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        let c = T::from_f64(self.c);
        Zip::from(out)
            .and(tape.value(self.x))
            .for_each(|o, &x| *o = c * x);
    }
    /// out_dot = c x_dot
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.scale(x_dot, self.c))
    }
    /// x_bar += c out_bar
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        let c = T::from_f64(self.c);
        if let Some(x_bar) = bars.slot(self.x) {
            Zip::from(x_bar).and(g).for_each(|b, &g| *b += c * g);
        }
    }
}

/// x + c for a constant c.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddScalar {
    pub x: Var,
    pub c: f64,
}

impl Primitive for AddScalar {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.x)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        let c = T::from_f64(self.c);
        Zip::from(out)
            .and(tape.value(self.x))
            .for_each(|o, &x| *o = x + c);
    }
    /// out_dot = x_dot
    fn jvp<T: Float>(
        &self,
        _: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot
    }
    /// x_bar += out_bar
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(x_bar) = bars.slot(self.x) {
            Zip::from(x_bar).and(g).for_each(|b, &g| *b += g);
        }
    }
}

/// f^(order)(x) elementwise: the function itself (order 0) or one of its derivatives, all from
/// the single formula in [`Elementwise::eval`] through nested dual numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Map {
    pub x: Var,
    pub f: Elementwise,
    pub order: usize,
}

impl Map {
    /// out <- f^(order)(x) and, for the first slope.nrows() rows (those a tangent covers),
    /// slope <- f^(order+1)(x) in the same pass; at order 0 both come from a single dual-number
    /// evaluation, whose value part is the same arithmetic as `eval`'s.
    pub(crate) fn eval_with_slope<T: Float>(
        &self,
        tape: &Tape<T>,
        out: ArrayViewMut2<T>,
        slope: ArrayViewMut2<T>,
    ) {
        let (f, order) = (self.f, self.order);
        let x = tape.value(self.x);
        let k = slope.nrows();
        let (head, tail) = out.split_at(ndarray::Axis(0), k);
        let zip = Zip::from(head).and(slope).and(x.slice(s![..k, ..]));
        if order == 0 {
            zip.for_each(|o, s, &x| (*o, *s) = f.value_and_derivative(x));
        } else {
            zip.for_each(|o, s, &x| {
                *o = f.derivative(order, x);
                *s = f.derivative(order + 1, x);
            });
        }
        let tail_x = x.slice(s![k.., ..]);
        Map { ..*self }.eval_view(tail_x, tail);
    }

    fn eval_view<T: Float>(&self, x: ArrayView2<T>, out: ArrayViewMut2<T>) {
        let (f, order) = (self.f, self.order);
        let zip = Zip::from(out).and(x);
        // Order 1 (the hot one: slopes of activations) through the always-inlined
        // `value_and_derivative`; `derivative` is an out-of-line call matching on the order.
        match order {
            0 => zip.for_each(|o, &x| *o = f.eval(x)),
            1 => zip.for_each(|o, &x| *o = f.value_and_derivative(x).1),
            _ => zip.for_each(|o, &x| *o = f.derivative(order, x)),
        }
    }
}

impl Primitive for Map {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.x)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        self.eval_view(tape.value(self.x), out);
    }
    /// out_dot = f^(order+1)(x) x_dot over the tangent's rows (the slope's value comes
    /// precomputed from `Tape::push`)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot.map(|x_dot| {
            let k = tape.shape(x_dot).0;
            let x = first_rows(tape, self.x, k);
            let slope_op = Op::Map(Map {
                x,
                order: self.order + 1,
                ..*self
            });
            let slope = match tape.map_slope.take() {
                Some(value) => tape.push_evaluated(slope_op, value),
                None => tape.push(slope_op),
            };
            tape.mul(slope, x_dot)
        })
    }
    /// x_bar += f^(order+1)(x) out_bar
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let x = values.get(self.x);
        let (f, order) = (self.f, self.order + 1);
        if let Some(x_bar) = bars.slot(self.x) {
            let zip = Zip::from(x_bar).and(g).and(x);
            if order == 1 {
                zip.for_each(|b, &g, &x| *b += g * f.value_and_derivative(x).1);
            } else {
                zip.for_each(|b, &g, &x| *b += g * f.derivative(order, x));
            }
        }
    }
}

// ----- structural ops -------------------------------------------------------------------------

/// [a | b]: the columns of a followed by those of b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConcatCols(pub Var, pub Var);

impl Primitive for ConcatCols {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (a, b) = (tape.shape(self.0), tape.shape(self.1));
        assert_eq!(a.0, b.0, "concat_cols: row counts differ: {a:?} and {b:?}");
        (a.0, a.1 + b.1)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let na = tape.shape(self.0).1;
        out.slice_mut(s![.., ..na]).assign(&tape.value(self.0));
        out.slice_mut(s![.., na..]).assign(&tape.value(self.1));
    }
    /// out_dot = [a_dot | b_dot] (over the longer of the two row prefixes)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let rows = [a_dot, b_dot]
            .iter()
            .flatten()
            .map(|&t| tape.shape(t).0)
            .max()?;
        let mut fill = |x: Var, x_dot: Option<Var>| match x_dot {
            Some(x_dot) => full_rows(tape, x_dot, rows),
            None => tape.full((rows, tape.shape(x).1), T::zero()),
        };
        let a_dot = fill(self.0, a_dot);
        let b_dot = fill(self.1, b_dot);
        Some(tape.concat_cols(a_dot, b_dot))
    }
    /// a_bar += out_bar[:, ..na], b_bar += out_bar[:, na..]
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let na = values.get(self.0).ncols();
        if let Some(a_bar) = bars.slot(self.0) {
            Zip::from(a_bar)
                .and(g.slice(s![.., ..na]))
                .for_each(|b, &g| *b += g);
        }
        if let Some(b_bar) = bars.slot(self.1) {
            Zip::from(b_bar)
                .and(g.slice(s![.., na..]))
                .for_each(|b, &g| *b += g);
        }
    }
}

/// x[:, start..end].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SliceCols {
    pub x: Var,
    pub start: usize,
    pub end: usize,
}

impl Primitive for SliceCols {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        assert!(
            self.start <= self.end && self.end <= n,
            "slice_cols: columns {}..{} out of range for shape {:?}",
            self.start,
            self.end,
            (m, n)
        );
        (m, self.end - self.start)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        out.assign(&tape.value(self.x).slice(s![.., self.start..self.end]));
    }
    /// out_dot = x_dot[:, start..end]
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.slice_cols(x_dot, self.start, self.end))
    }
    /// x_bar[:, start..end] += out_bar
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(mut x_bar) = bars.slot(self.x) {
            Zip::from(x_bar.slice_mut(s![.., self.start..self.end]))
                .and(g)
                .for_each(|b, &g| *b += g);
        }
    }
}

/// x[start..end, :] as a view: it has no buffer of its own, neither for its value nor for its
/// cotangent (both are rows of x's), so it costs no copy either way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rows {
    pub x: Var,
    pub start: usize,
    pub end: usize,
}

impl Primitive for Rows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        assert!(
            self.start <= self.end && self.end <= m,
            "rows: rows {}..{} out of range for shape {:?}",
            self.start,
            self.end,
            (m, n)
        );
        (self.end - self.start, n)
    }
    /// A view is not evaluated: `Tape::push` records it over x's buffer (`Tape::push_view`), so
    /// its value is rows start..end of x's without a copy.
    fn eval<T: Float>(&self, _: &Tape<T>, _: ArrayViewMut2<T>) {
        unreachable!("Tape::push records a row view over its owner's buffer")
    }
    /// out_dot = x_dot[start..end] (the part of x_dot's row prefix that falls in the range)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let x_dot = x_dot?;
        let k = tape.shape(x_dot).0;
        if self.start >= k {
            return None;
        }
        let end = self.end.min(k);
        Some(if self.start == 0 && end == k {
            x_dot
        } else {
            tape.rows(x_dot, self.start, end)
        })
    }
    /// Nothing to do: the view's cotangent already is rows start..end of x's.
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
}

/// [a; b]: the rows of a, then those of b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackRows(pub Var, pub Var);

impl Primitive for StackRows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (a, b) = (tape.shape(self.0), tape.shape(self.1));
        assert_eq!(
            a.1, b.1,
            "stack_rows: column counts differ: {a:?} and {b:?}"
        );
        (a.0 + b.0, a.1)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let ma = tape.shape(self.0).0;
        out.slice_mut(s![..ma, ..]).assign(&tape.value(self.0));
        out.slice_mut(s![ma.., ..]).assign(&tape.value(self.1));
    }
    /// out_dot = [a_dot; b_dot] (a_dot alone is already a row prefix of the output)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let Some(b_dot) = b_dot else {
            return a_dot;
        };
        let (ma, n) = tape.shape(self.0);
        let a_dot = match a_dot {
            Some(a_dot) => full_rows(tape, a_dot, ma),
            None => tape.full((ma, n), T::zero()),
        };
        Some(tape.stack_rows(a_dot, b_dot))
    }
    /// a_bar += out_bar[..ma], b_bar += out_bar[ma..] (where a cotangent reached those rows)
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let (ma, rows) = (values.get(self.0).nrows(), g.nrows());
        let touched = bars.touched_rows(out);
        let a_rows = touched.start.min(ma)..touched.end.min(ma);
        let b_rows = touched.start.max(ma) - ma..touched.end.max(ma) - ma;
        if !a_rows.is_empty() {
            if let Some(a_bar) = bars.slot_rows(self.0, a_rows.clone()) {
                Zip::from(a_bar)
                    .and(g.slice(s![a_rows, ..]))
                    .for_each(|b, &g| *b += g);
            }
        }
        if !b_rows.is_empty() {
            if let Some(b_bar) = bars.slot_rows(self.1, b_rows.clone()) {
                Zip::from(b_bar)
                    .and(g.slice(s![ma + b_rows.start..ma + b_rows.end, ..]))
                    .for_each(|b, &g| *b += g);
            }
        }
        debug_assert!(touched.end <= rows);
    }
}

/// x followed by zero rows, `rows` rows in all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PadRows {
    pub x: Var,
    pub rows: usize,
}

impl Primitive for PadRows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        assert!(
            m <= self.rows,
            "pad_rows: cannot pad {:?} to {} rows",
            (m, n),
            self.rows
        );
        (self.rows, n)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let m = tape.shape(self.x).0;
        out.slice_mut(s![..m, ..]).assign(&tape.value(self.x));
        out.slice_mut(s![m.., ..]).fill(T::zero());
    }
    /// out_dot = x_dot (a row prefix of x is one of the padded output too)
    fn jvp<T: Float>(
        &self,
        _: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot
    }
    /// x_bar += out_bar[..m]
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let m = values.get(self.x).nrows();
        if let Some(x_bar) = bars.slot(self.x) {
            Zip::from(x_bar)
                .and(g.slice(s![..m, ..]))
                .for_each(|b, &g| *b += g);
        }
    }
}

/// x repeated along its axes of length 1 to shape (rows, cols).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Broadcast {
    pub x: Var,
    pub rows: usize,
    pub cols: usize,
}

impl Primitive for Broadcast {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let target = (self.rows, self.cols);
        let shape = broadcast_shape("broadcast", tape.shape(self.x), target);
        assert_eq!(
            shape,
            target,
            "broadcast: {:?} cannot widen to {target:?}",
            tape.shape(self.x)
        );
        target
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let shape = out.dim();
        out.assign(&tape.value(self.x).broadcast(shape).expect("shape checked"));
    }
    /// out_dot = broadcast(x_dot) (over x_dot's rows, unless x is broadcast along rows)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let rows_x = tape.shape(self.x).0;
        let shape = tape.shape(out);
        x_dot.map(|x_dot| fit(tape, x_dot, rows_x, shape))
    }
    /// x_bar += out_bar summed over the broadcast axes
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(x_bar) = bars.slot(self.x) {
            accumulate_reduced(x_bar, g.dim(), |i, j| g[[i, j]]);
        }
    }
}

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

/// sg(x): the value of x; no cotangent flows back, and its tangent is zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopGradient(pub Var);

impl Primitive for StopGradient {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.0)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        out.assign(&tape.value(self.0));
    }
    /// out_dot = 0
    fn jvp<T: Float>(&self, _: &mut Tape<T>, _: Var, _: [Option<Var>; 3]) -> Option<Var> {
        None
    }
    /// nothing flows back
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
}

// ----- the closed set -------------------------------------------------------------------------

/// Every primitive the tape knows. Adding a variant forces its rules into every dispatch below.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Leaf(Leaf),
    MatMul(MatMul),
    Dense(Dense),
    Add(Add),
    Sub(Sub),
    Mul(Mul),
    Div(Div),
    Scale(Scale),
    AddScalar(AddScalar),
    Map(Map),
    ConcatCols(ConcatCols),
    SliceCols(SliceCols),
    Rows(Rows),
    StackRows(StackRows),
    PadRows(PadRows),
    Broadcast(Broadcast),
    Sum(Sum),
    LogSoftmax(LogSoftmax),
    LayerNorm(LayerNorm),
    InverseDeviation(InverseDeviation),
    StopGradient(StopGradient),
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            Op::Leaf($p) => $body,
            Op::MatMul($p) => $body,
            Op::Dense($p) => $body,
            Op::Add($p) => $body,
            Op::Sub($p) => $body,
            Op::Mul($p) => $body,
            Op::Div($p) => $body,
            Op::Scale($p) => $body,
            Op::AddScalar($p) => $body,
            Op::Map($p) => $body,
            Op::ConcatCols($p) => $body,
            Op::SliceCols($p) => $body,
            Op::Rows($p) => $body,
            Op::StackRows($p) => $body,
            Op::PadRows($p) => $body,
            Op::Broadcast($p) => $body,
            Op::Sum($p) => $body,
            Op::LogSoftmax($p) => $body,
            Op::LayerNorm($p) => $body,
            Op::InverseDeviation($p) => $body,
            Op::StopGradient($p) => $body,
        }
    };
}

impl Op {
    pub(crate) fn inputs(&self) -> [Option<Var>; 3] {
        dispatch!(self, p => p.inputs())
    }
    /// The rows of its output's cotangent that the op's VJP reads, given the rows `touched`
    /// that received one: all of them, but for the ops that skip unreached rows of a block.
    pub(crate) fn cotangent_rows_read(&self, touched: Range<usize>, rows: usize) -> Range<usize> {
        match self {
            Op::Dense(d) if d.tangent_rows > 0 && touched.end <= rows - d.tangent_rows => {
                0..rows - d.tangent_rows
            }
            Op::StackRows(_) => touched,
            _ => 0..rows,
        }
    }
    pub(crate) fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        dispatch!(self, p => p.shape(tape))
    }
    pub(crate) fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        dispatch!(self, p => p.eval(tape, out))
    }
    pub(crate) fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        x_dot: [Option<Var>; 3],
    ) -> Option<Var> {
        dispatch!(self, p => p.jvp(tape, out, x_dot))
    }
    pub(crate) fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        out_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        dispatch!(self, p => p.vjp(values, out, out_bar, bars))
    }
}
