//! Arithmetic: the broadcasting binary ops [`Add`], [`Sub`], [`Mul`], [`Div`] (an axis of length
//! 1 is repeated to the other operand's length), then [`Scale`] and [`AddScalar`] by a constant,
//! then the broadcasting helpers, which the shape ops and [`Sum`](super::Sum) share.

use super::row_prefix::{combine, fit, partner, sum_terms};
use super::{Cotangents, Primitive};
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

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

// ----- broadcasting helpers -------------------------------------------------------------------

/// The broadcast shape of two shapes: per axis equal, or one of them 1.
pub(super) fn broadcast_shape(op: &str, a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
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
pub(super) fn accumulate_reduced<T: Float>(
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
