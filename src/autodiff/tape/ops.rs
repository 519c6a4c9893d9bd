//! The primitives of the tape. Each is a struct whose evaluation, JVP rule and VJP rule sit side by
//! side in one `impl Primitive` block; [`Op`] is the closed set of them, dispatched by exhaustive
//! `match`. An op without all of its rules does not compile.
//!
//! Naming: `x_dot` is a tangent (forward mode), `x_bar` a cotangent (reverse mode), `out` the op's
//! own output. JVP rules record their result as tape ops (so that reverse mode can differentiate
//! through them); VJP rules accumulate into cotangent buffers directly.
//!
//! The files, in reading order:
//!
//! - this one: the contract ([`Primitive`]) and the closed set ([`Op`] and its `dispatch!`);
//! - `arithmetic.rs`: `Add`, `Sub`, `Mul`, `Div` (broadcasting axes of length 1), `Scale` and
//!   `AddScalar`, with the broadcasting helpers;
//! - `map.rs`: `Map`, a scalar function or one of its derivatives, elementwise;
//! - `reduction.rs`: `Sum` (over rows, columns or everything) and the row-wise `LogSoftmax`;
//! - `shape.rs`: `ConcatCols`, `SliceCols`, `Rows` (a view), `StackRows`, `PadRows`, `Broadcast`;
//! - `boundary.rs`: `Leaf` (values given, not computed) and `StopGradient`;
//! - `linear.rs`: `MatMul`, and `Dense`, the dense layer with its dual-block form;
//! - `normalization.rs`: `LayerNorm` and `InverseDeviation`;
//! - `row_prefix.rs`: the helpers that keep a tangent on a row prefix through the JVP rules;
//! - `cotangents.rs`: `Cotangents`, the gradient buffers during `backward` and the rows each
//!   received.

use super::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::ops::Range;

mod arithmetic;
mod boundary;
mod cotangents;
mod linear;
mod map;
mod normalization;
mod reduction;
mod row_prefix;
mod shape;

pub use arithmetic::{Add, AddScalar, Div, Mul, Scale, Sub};
pub use boundary::{Leaf, StopGradient};
pub(crate) use cotangents::Cotangents;
pub use linear::{Dense, MatMul};
pub use map::Map;
pub use normalization::{InverseDeviation, LayerNorm};
pub use reduction::{LogSoftmax, Reduction, Sum};
pub use shape::{Broadcast, ConcatCols, PadRows, Rows, SliceCols, StackRows};

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
