//! Where derivatives start and where they are cut: a [`Leaf`] (an input or parameter, whose
//! tangent is whatever `set_tangent` seeded and where cotangents stop), and a [`StopGradient`]
//! (the value of x with neither a tangent nor a cotangent through it).

use super::{Cotangents, Primitive};
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};

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
