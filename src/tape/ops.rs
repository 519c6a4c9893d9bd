//! The primitives of the tape. Each is a struct whose evaluation, JVP rule and VJP rule sit side by
//! side in one `impl Primitive` block; [`Op`] is the closed set of them, dispatched by exhaustive
//! `match`. An op without all of its rules does not compile.
//!
//! Naming: `x_dot` is a tangent (forward mode), `x_bar` a cotangent (reverse mode), `out` the op's
//! own output. JVP rules record their result as tape ops (so that reverse mode can differentiate
//! through them); VJP rules accumulate into cotangent buffers directly.

use super::pool::BufferPool;
use super::{Node, Tape, Var};
use crate::elementwise::Elementwise;
use crate::float::Float;
use crate::matmul::gemm;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2, Zip};

/// The rules every primitive provides.
pub(crate) trait Primitive {
    /// The nodes this op reads (at most two).
    fn inputs(&self) -> [Option<Var>; 2];
    /// The output shape; panics, naming the shapes, when the inputs do not fit.
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize);
    /// out <- f(inputs). `out` holds garbage on entry and must be fully written.
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>);
    /// out_dot = J x_dot, recorded as tape ops; `None` tangents are exact zeros.
    fn jvp<T: Float>(&self, tape: &mut Tape<T>, out: Var, x_dot: [Option<Var>; 2]) -> Option<Var>;
    /// x_bar += J^T out_bar for every input that requires a gradient.
    fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        out: Var,
        out_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    );
}

/// Cotangent buffers during `backward`, allocated (zeroed, from the pool) on first use.
pub(crate) struct Cotangents<'a, T: Float> {
    pub slots: &'a mut Vec<Option<Array2<T>>>,
    pub nodes_requiring_grad: &'a [Node],
    pub values: &'a [Array2<T>],
    pub pool: &'a mut BufferPool<T>,
}

impl<T: Float> Cotangents<'_, T> {
    /// The cotangent buffer of `v` to accumulate into, or None if `v` needs no gradient.
    fn slot(&mut self, v: Var) -> Option<ArrayViewMut2<'_, T>> {
        let i = v.index();
        if !self.nodes_requiring_grad[i].requires_grad {
            return None;
        }
        if self.slots[i].is_none() {
            self.slots[i] = Some(self.pool.take_zeroed(self.values[i].dim()));
        }
        self.slots[i].as_mut().map(|a| a.view_mut())
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

/// The sum of optional tangent terms, each already of the output's shape or broadcastable to it.
fn sum_tangents<T: Float>(
    tape: &mut Tape<T>,
    terms: [Option<Var>; 2],
    shape: (usize, usize),
) -> Option<Var> {
    let widen = |tape: &mut Tape<T>, v: Var| {
        if tape.shape(v) == shape {
            v
        } else {
            tape.broadcast(v, shape.0, shape.1)
        }
    };
    match terms {
        [Some(a), Some(b)] => {
            let s = tape.add(a, b);
            Some(widen(tape, s))
        }
        [Some(a), None] | [None, Some(a)] => Some(widen(tape, a)),
        [None, None] => None,
    }
}

// ----- leaf ---------------------------------------------------------------------------------

/// An input or parameter: its value is given, not computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leaf;

impl Primitive for Leaf {
    fn inputs(&self) -> [Option<Var>; 2] {
        [None, None]
    }
    fn shape<T: Float>(&self, _: &Tape<T>) -> (usize, usize) {
        unreachable!("a leaf's shape is that of its given value")
    }
    fn eval<T: Float>(&self, _: &Tape<T>, _: ArrayViewMut2<T>) {
        unreachable!("a leaf's value is given, not evaluated")
    }
    /// A leaf's tangent is whatever `set_tangent` seeded.
    fn jvp<T: Float>(&self, _: &mut Tape<T>, _: Var, _: [Option<Var>; 2]) -> Option<Var> {
        None
    }
    /// Cotangents stop at leaves.
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.a), Some(self.b)]
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
    /// C_dot = op(A_dot) op(B) + op(A) op(B_dot)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [a_dot, b_dot]: [Option<Var>; 2],
    ) -> Option<Var> {
        let t1 =
            a_dot.map(|a_dot| tape.matmul_t(a_dot, self.transpose_a, self.b, self.transpose_b));
        let t2 =
            b_dot.map(|b_dot| tape.matmul_t(self.a, self.transpose_a, b_dot, self.transpose_b));
        let shape = tape.shape(out);
        sum_tangents(tape, [t1, t2], shape)
    }
    /// op(A)_bar = C_bar op(B)^T, op(B)_bar = op(A)^T C_bar, transposed back where op transposes.
    fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        _: Var,
        c_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let a = op_view(values[self.a.index()].view(), self.transpose_a);
        let b = op_view(values[self.b.index()].view(), self.transpose_b);
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

/// A [m, n] view of node v broadcast to `shape`.
fn view_as<T: Float>(values: &[Array2<T>], v: Var, shape: (usize, usize)) -> ArrayView2<'_, T> {
    values[v.index()]
        .broadcast(shape)
        .expect("shape checked by broadcast_shape")
}

impl Primitive for Add {
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), Some(self.1)]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("add", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a + b);
    }
    /// out_dot = a_dot + b_dot
    fn jvp<T: Float>(&self, tape: &mut Tape<T>, out: Var, x_dot: [Option<Var>; 2]) -> Option<Var> {
        let shape = tape.shape(out);
        sum_tangents(tape, x_dot, shape)
    }
    /// a_bar += out_bar, b_bar += out_bar (summed over broadcast axes)
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        let shape = g.dim();
        for x in [self.0, self.1] {
            if let Some(x_bar) = bars.slot(x) {
                accumulate_reduced(x_bar, shape, |i, j| g[[i, j]]);
            }
        }
    }
}

impl Primitive for Sub {
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), Some(self.1)]
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
        [a_dot, b_dot]: [Option<Var>; 2],
    ) -> Option<Var> {
        let shape = tape.shape(out);
        match (a_dot, b_dot) {
            (Some(a_dot), Some(b_dot)) => {
                let d = tape.sub(a_dot, b_dot);
                sum_tangents(tape, [Some(d), None], shape)
            }
            (a_dot, b_dot) => {
                let minus_b_dot = b_dot.map(|b_dot| tape.neg(b_dot));
                sum_tangents(tape, [a_dot, minus_b_dot], shape)
            }
        }
    }
    /// a_bar += out_bar, b_bar -= out_bar
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), Some(self.1)]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        broadcast_shape("mul", tape.shape(self.0), tape.shape(self.1))
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        eval_broadcast(tape, self.0, self.1, out, |a, b| a * b);
    }
    /// out_dot = a_dot b + a b_dot
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [a_dot, b_dot]: [Option<Var>; 2],
    ) -> Option<Var> {
        let t1 = a_dot.map(|a_dot| tape.mul(a_dot, self.1));
        let t2 = b_dot.map(|b_dot| tape.mul(self.0, b_dot));
        let shape = tape.shape(out);
        sum_tangents(tape, [t1, t2], shape)
    }
    /// a_bar += out_bar b, b_bar += out_bar a
    fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let shape = g.dim();
        let a = view_as(values, self.0, shape);
        let b = view_as(values, self.1, shape);
        if let Some(a_bar) = bars.slot(self.0) {
            accumulate_reduced(a_bar, shape, |i, j| g[[i, j]] * b[[i, j]]);
        }
        if let Some(b_bar) = bars.slot(self.1) {
            accumulate_reduced(b_bar, shape, |i, j| g[[i, j]] * a[[i, j]]);
        }
    }
}

impl Primitive for Div {
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), Some(self.1)]
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
        [a_dot, b_dot]: [Option<Var>; 2],
    ) -> Option<Var> {
        let t1 = a_dot.map(|a_dot| tape.div(a_dot, self.1));
        let t2 = b_dot.map(|b_dot| {
            let ratio = tape.div(b_dot, self.1);
            let prod = tape.mul(out, ratio);
            tape.neg(prod)
        });
        let shape = tape.shape(out);
        sum_tangents(tape, [t1, t2], shape)
    }
    /// a_bar += out_bar / b, b_bar -= out_bar out / b
    fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let shape = g.dim();
        let b = view_as(values, self.1, shape);
        let q = values[out.index()].view();
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
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
        [x_dot, _]: [Option<Var>; 2],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.scale(x_dot, self.c))
    }
    /// x_bar += c out_bar
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
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
    fn jvp<T: Float>(&self, _: &mut Tape<T>, _: Var, [x_dot, _]: [Option<Var>; 2]) -> Option<Var> {
        x_dot
    }
    /// x_bar += out_bar
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
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
    /// out <- f^(order)(x) and slope <- f^(order+1)(x) in one pass; at order 0 both come from a
    /// single dual-number evaluation, whose value part is the same arithmetic as `eval`'s.
    pub(crate) fn eval_with_slope<T: Float>(
        &self,
        tape: &Tape<T>,
        out: ArrayViewMut2<T>,
        slope: ArrayViewMut2<T>,
    ) {
        let (f, order) = (self.f, self.order);
        let zip = Zip::from(out).and(slope).and(tape.value(self.x));
        if order == 0 {
            zip.for_each(|o, s, &x| (*o, *s) = f.value_and_derivative(x));
        } else {
            zip.for_each(|o, s, &x| {
                *o = f.derivative(order, x);
                *s = f.derivative(order + 1, x);
            });
        }
    }
}

impl Primitive for Map {
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.x)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, out: ArrayViewMut2<T>) {
        let (f, order) = (self.f, self.order);
        let zip = Zip::from(out).and(tape.value(self.x));
        // Order 1 (the hot one: slopes of activations) through the always-inlined
        // `value_and_derivative`; `derivative` is an out-of-line call matching on the order.
        match order {
            0 => zip.for_each(|o, &x| *o = f.eval(x)),
            1 => zip.for_each(|o, &x| *o = f.value_and_derivative(x).1),
            _ => zip.for_each(|o, &x| *o = f.derivative(order, x)),
        }
    }
    /// out_dot = f^(order+1)(x) x_dot (the slope's value comes precomputed from `Tape::push`)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _]: [Option<Var>; 2],
    ) -> Option<Var> {
        x_dot.map(|x_dot| {
            let slope_op = Op::Map(Map {
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
        values: &[Array2<T>],
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let x = values[self.x.index()].view();
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), Some(self.1)]
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
    /// out_dot = [a_dot | b_dot]
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot]: [Option<Var>; 2],
    ) -> Option<Var> {
        if a_dot.is_none() && b_dot.is_none() {
            return None;
        }
        let a_dot = a_dot.unwrap_or_else(|| tape.full(tape.shape(self.0), T::zero()));
        let b_dot = b_dot.unwrap_or_else(|| tape.full(tape.shape(self.1), T::zero()));
        Some(tape.concat_cols(a_dot, b_dot))
    }
    /// a_bar += out_bar[:, ..na], b_bar += out_bar[:, na..]
    fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let na = values[self.0.index()].ncols();
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
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
        [x_dot, _]: [Option<Var>; 2],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.slice_cols(x_dot, self.start, self.end))
    }
    /// x_bar[:, start..end] += out_bar
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(mut x_bar) = bars.slot(self.x) {
            Zip::from(x_bar.slice_mut(s![.., self.start..self.end]))
                .and(g)
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
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
    /// out_dot = broadcast(x_dot)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _]: [Option<Var>; 2],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.broadcast(x_dot, self.rows, self.cols))
    }
    /// x_bar += out_bar summed over the broadcast axes
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
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
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.x), None]
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
    /// out_dot = sum(x_dot)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _]: [Option<Var>; 2],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.push(Op::Sum(Sum { x: x_dot, ..*self })))
    }
    /// x_bar += out_bar broadcast back over the summed axes
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(x_bar) = bars.slot(self.x) {
            let shape = x_bar.dim();
            let g = g
                .broadcast(shape)
                .expect("a sum's cotangent broadcasts to its input");
            Zip::from(x_bar).and(&g).for_each(|b, &g| *b += g);
        }
    }
}

/// sg(x): the value of x; no cotangent flows back, and its tangent is zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StopGradient(pub Var);

impl Primitive for StopGradient {
    fn inputs(&self) -> [Option<Var>; 2] {
        [Some(self.0), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        tape.shape(self.0)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        out.assign(&tape.value(self.0));
    }
    /// out_dot = 0
    fn jvp<T: Float>(&self, _: &mut Tape<T>, _: Var, _: [Option<Var>; 2]) -> Option<Var> {
        None
    }
    /// nothing flows back
    fn vjp<T: Float>(&self, _: &[Array2<T>], _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
}

// ----- the closed set -------------------------------------------------------------------------

/// Every primitive the tape knows. Adding a variant forces its rules into every dispatch below.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Leaf(Leaf),
    MatMul(MatMul),
    Add(Add),
    Sub(Sub),
    Mul(Mul),
    Div(Div),
    Scale(Scale),
    AddScalar(AddScalar),
    Map(Map),
    ConcatCols(ConcatCols),
    SliceCols(SliceCols),
    Broadcast(Broadcast),
    Sum(Sum),
    StopGradient(StopGradient),
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            Op::Leaf($p) => $body,
            Op::MatMul($p) => $body,
            Op::Add($p) => $body,
            Op::Sub($p) => $body,
            Op::Mul($p) => $body,
            Op::Div($p) => $body,
            Op::Scale($p) => $body,
            Op::AddScalar($p) => $body,
            Op::Map($p) => $body,
            Op::ConcatCols($p) => $body,
            Op::SliceCols($p) => $body,
            Op::Broadcast($p) => $body,
            Op::Sum($p) => $body,
            Op::StopGradient($p) => $body,
        }
    };
}

impl Op {
    pub(crate) fn inputs(&self) -> [Option<Var>; 2] {
        dispatch!(self, p => p.inputs())
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
        x_dot: [Option<Var>; 2],
    ) -> Option<Var> {
        dispatch!(self, p => p.jvp(tape, out, x_dot))
    }
    pub(crate) fn vjp<T: Float>(
        &self,
        values: &[Array2<T>],
        out: Var,
        out_bar: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        dispatch!(self, p => p.vjp(values, out, out_bar, bars))
    }
}
