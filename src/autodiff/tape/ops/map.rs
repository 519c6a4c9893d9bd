//! [`Map`]: a scalar function of [`Elementwise`] or one of its derivatives, elementwise. A new
//! activation is a new `Elementwise` variant, not a new op: `Map` gives it JVP, VJP and
//! derivatives of every order through dual numbers.

use super::row_prefix::first_rows;
use super::{Cotangents, Op, Primitive};
use crate::autodiff::elementwise::Elementwise;
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{s, ArrayView2, ArrayViewMut2, Zip};

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
