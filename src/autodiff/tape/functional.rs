//! The functional front door: [`jvp`], [`vjp`], [`grad`] and [`value_and_grad`] over a closure
//! that records on a tape, with JAX's names and argument order.
//!
//! A function is a closure `f(tape, inputs) -> outputs` that records its computation on the
//! [`Tape`] it is given, from the input nodes it is given. Each call here makes a fresh tape,
//! puts the primals on it as leaves, records `f` once and reads the result back as arrays:
//!
//! | call | returns | math |
//! |---|---|---|
//! | `jvp(f, primals, tangents)` | `(outputs, output_tangents)` | out_dot = J x_dot (forward mode) |
//! | `vjp(f, primals)` | `(outputs, pullback)`; `pullback.call(out_bars)` | x_bar = J^T out_bar (reverse mode) |
//! | `grad(f, primals)` | the gradient of a [1, 1] output | x_bar = J^T 1 |
//! | `value_and_grad(f, primals)` | `(output, gradient)` | the same, with the value |
//!
//! J is the Jacobian of all outputs with respect to all inputs: out_dot_k = sum_i J_ki x_dot_i
//! and x_bar_i = sum_k J_ki^T out_bar_k.
//!
//! Underneath it is the stateful mechanism of [`Tape`]: `jvp` seeds each input's tangent with
//! [`Tape::set_tangent`] before `f` records, so every op records its tangent too, and reads
//! [`Tape::tangent`] of the outputs; `vjp` makes the inputs [`Tape::param`]s and its pullback
//! runs [`Tape::backward_with_many`]. Inside `f` every tape op is available, including
//! [`Tape::stop_gradient`] (a zero tangent forward, no cotangent back) and nested forward mode
//! of its own.
//!
//! ```
//! use meanflow::autodiff::tape::{grad, jvp, vjp, Tape, Var};
//! use ndarray::array;
//!
//! // f(x) = sum_j x_j^2 over a [1, 2] input: J = 2 x^T.
//! let f = |tape: &mut Tape<f64>, x: &[Var]| {
//!     let sq = tape.square(x[0]);
//!     vec![tape.sum(sq)]
//! };
//! let x = array![[1.0, 2.0]];
//! let v = array![[1.0, 0.0]];
//!
//! // Forward mode: out_dot = J v = 2 x . v.
//! let (out, out_dot) = jvp(f, &[x.view()], &[v.view()]);
//! assert_eq!(out[0], array![[5.0]]);
//! assert_eq!(out_dot[0], array![[2.0]]);
//!
//! // Reverse mode: x_bar = J^T out_bar = 2 x out_bar.
//! let (_, mut pullback) = vjp(f, &[x.view()]);
//! assert_eq!(pullback.call(&[array![[3.0]].view()])[0], array![[6.0, 12.0]]);
//!
//! // The gradient of a [1, 1] output.
//! let g = grad(|tape: &mut Tape<f64>, x: &[Var]| f(tape, x)[0], &[x.view()]);
//! assert_eq!(g[0], array![[2.0, 4.0]]);
//! ```

use super::{Tape, Var};
use crate::linalg::float::Float;
use ndarray::{s, Array2, ArrayView2};

/// Forward mode: the outputs of `f` at `primals` and their tangents out_dot = J x_dot along
/// `tangents` (one per primal), as JAX's `jax.jvp(f, primals, tangents)`.
///
/// `f` records on a fresh tape from the input nodes (constants, in the order of `primals`) and
/// returns its output nodes. A tangent has its primal's shape, or its columns and fewer rows: a
/// row prefix, the tangent of the other rows being zero (see [`Tape::set_tangent`]). Output
/// tangents always have their output's full shape: zeros where the tangent is exactly zero (an
/// output with no path from an input, or one behind [`Tape::stop_gradient`]).
///
/// Panics, naming the shapes, if the number of tangents differs from the number of primals or
/// a tangent does not fit its primal.
pub fn jvp<T, F>(
    f: F,
    primals: &[ArrayView2<T>],
    tangents: &[ArrayView2<T>],
) -> (Vec<Array2<T>>, Vec<Array2<T>>)
where
    T: Float,
    F: FnOnce(&mut Tape<T>, &[Var]) -> Vec<Var>,
{
    assert_eq!(
        primals.len(),
        tangents.len(),
        "jvp: {} primals but {} tangents (need one tangent per primal)",
        primals.len(),
        tangents.len()
    );
    let mut tape = Tape::new();
    let mut inputs = Vec::with_capacity(primals.len());
    for (i, (x, x_dot)) in primals.iter().zip(tangents).enumerate() {
        let (value, tangent) = (x.dim(), x_dot.dim());
        assert!(
            tangent.1 == value.1 && tangent.0 <= value.0,
            "jvp: primal {i} has shape {value:?} but its tangent has shape {tangent:?} \
             (need the same columns and at most as many rows)"
        );
        let xv = tape.constant(x.view());
        let x_dot = tape.constant(x_dot.view());
        tape.set_tangent(xv, x_dot);
        inputs.push(xv);
    }
    let outputs = f(&mut tape, &inputs);
    let values = outputs.iter().map(|&y| tape.value(y).to_owned()).collect();
    let output_tangents = outputs
        .iter()
        .map(|&y| {
            let mut y_dot = Array2::zeros(tape.shape(y));
            if let Some(t) = tape.tangent(y) {
                let t = tape.value(t);
                y_dot.slice_mut(s![..t.nrows(), ..]).assign(&t);
            }
            y_dot
        })
        .collect();
    (values, output_tangents)
}

/// Reverse mode: the outputs of `f` at `primals`, and a [`Pullback`] that maps output cotangents
/// to input cotangents x_bar = J^T out_bar, as JAX's `jax.vjp(f, *primals)`.
///
/// `f` records on a fresh tape from the input nodes ([`Tape::param`]s, in the order of
/// `primals`) and returns its output nodes. The pullback owns that tape and may be called any
/// number of times.
pub fn vjp<T, F>(f: F, primals: &[ArrayView2<T>]) -> (Vec<Array2<T>>, Pullback<T>)
where
    T: Float,
    F: FnOnce(&mut Tape<T>, &[Var]) -> Vec<Var>,
{
    let mut tape = Tape::new();
    let inputs: Vec<Var> = primals.iter().map(|x| tape.param(x.view())).collect();
    let outputs = f(&mut tape, &inputs);
    let values = outputs.iter().map(|&y| tape.value(y).to_owned()).collect();
    (
        values,
        Pullback {
            tape,
            inputs,
            outputs,
        },
    )
}

/// The gradient of a function with a [1, 1] output: d f / d x_i for each primal x_i, each of
/// its primal's shape (zeros for an input the output does not depend on), as JAX's
/// `jax.grad(f, argnums=(0, 1, ...))(*primals)`.
///
/// Panics, naming the shape, if the output is not [1, 1].
pub fn grad<T, F>(f: F, primals: &[ArrayView2<T>]) -> Vec<Array2<T>>
where
    T: Float,
    F: FnOnce(&mut Tape<T>, &[Var]) -> Var,
{
    value_and_grad(f, primals).1
}

/// The value of a function with a [1, 1] output and its gradient (see [`grad`]), from one
/// recording and one backward pass, as JAX's `jax.value_and_grad`.
///
/// Panics, naming the shape, if the output is not [1, 1].
pub fn value_and_grad<T, F>(f: F, primals: &[ArrayView2<T>]) -> (T, Vec<Array2<T>>)
where
    T: Float,
    F: FnOnce(&mut Tape<T>, &[Var]) -> Var,
{
    let mut tape = Tape::new();
    let inputs: Vec<Var> = primals.iter().map(|x| tape.param(x.view())).collect();
    let output = f(&mut tape, &inputs);
    let shape = tape.shape(output);
    assert_eq!(
        shape,
        (1, 1),
        "grad: the function's output has shape {shape:?}, not [1, 1] (use vjp for other outputs)"
    );
    tape.backward(output);
    let gradients = inputs.iter().map(|&x| tape.grad_or_zeros(x)).collect();
    (tape.scalar(output), gradients)
}

/// The linear map out_bar -> x_bar = J^T out_bar of a function at the point [`vjp`] recorded it
/// at: JAX's `vjp_fun`. It owns the recorded tape.
#[derive(Debug)]
pub struct Pullback<T: Float> {
    tape: Tape<T>,
    inputs: Vec<Var>,
    outputs: Vec<Var>,
}

impl<T: Float> Pullback<T> {
    /// x_bar_i = sum_k J_ki^T out_bar_k for each input i, given one cotangent per output (each of
    /// its output's shape), in one backward pass. An input with no path to any output gets
    /// zeros.
    ///
    /// Panics, naming the shapes, if the number of cotangents differs from the number of outputs
    /// or a cotangent does not have its output's shape.
    pub fn call(&mut self, output_cotangents: &[ArrayView2<T>]) -> Vec<Array2<T>> {
        assert_eq!(
            output_cotangents.len(),
            self.outputs.len(),
            "vjp pullback: {} cotangents for {} outputs (need one per output)",
            output_cotangents.len(),
            self.outputs.len()
        );
        let mut seeds = Vec::with_capacity(self.outputs.len());
        for (k, (&y, y_bar)) in self.outputs.iter().zip(output_cotangents).enumerate() {
            let shape = self.tape.shape(y);
            assert_eq!(
                y_bar.dim(),
                shape,
                "vjp pullback: cotangent {k} has shape {:?} but output {k} has shape {shape:?}",
                y_bar.dim()
            );
            seeds.push((y, y_bar.view()));
        }
        self.tape.backward_with_many(&seeds);
        self.inputs
            .iter()
            .map(|&x| self.tape.grad_or_zeros(x))
            .collect()
    }

    /// The recorded tape (for inspection: node count, values of intermediate nodes).
    pub fn tape(&self) -> &Tape<T> {
        &self.tape
    }

    /// The output shapes, in order: the shapes `call` expects its cotangents in.
    pub fn output_shapes(&self) -> Vec<(usize, usize)> {
        self.outputs.iter().map(|&y| self.tape.shape(y)).collect()
    }
}
