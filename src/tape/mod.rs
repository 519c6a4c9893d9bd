//! The tape: a Wengert list of 2-D array ops in an arena, with reverse mode, forward mode, and
//! reverse over forward.
//!
//! - **Reverse mode.** Every op appends a node (its [`Op`] and its value). [`Tape::backward`] walks
//!   the nodes backwards and applies each op's VJP rule, x_bar += J^T y_bar, accumulating
//!   cotangents of every node that depends on a [`Tape::param`].
//! - **Forward mode.** [`Tape::set_tangent`] seeds a tangent x_dot on a node. From then on every
//!   op whose inputs carry tangents also records its JVP rule, y_dot = J x_dot, *as ordinary tape
//!   ops*; [`Tape::tangent`] returns the tangent node of any value. A missing tangent is an exact
//!   zero and costs nothing.
//! - **Reverse over forward.** Since tangents are ordinary nodes, `backward` of a loss that uses a
//!   tangent differentiates through the JVP: the gradient of a JVP, exactly.
//!
//! Stop-gradient ([`Tape::stop_gradient`]) cuts both: its output has no cotangent flowing back and
//! a zero tangent flowing forward, as in JAX.
//!
//! [`Tape::clear`] recycles every buffer, so a tape that replays the same computation each step
//! allocates nothing once warmed up.

mod ops;
mod pool;

pub use ops::{
    Add, AddScalar, Broadcast, ConcatCols, Div, Leaf, Map, MatMul, Mul, Op, Reduction, Scale,
    SliceCols, StopGradient, Sub, Sum,
};

use crate::elementwise::Elementwise;
use crate::float::Float;
use ndarray::{Array2, ArrayView2};
use pool::BufferPool;

/// A node of a [`Tape`]: an index into its arena. Only meaningful for the tape that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(u32);

impl Var {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    op: Op,
    /// Does a cotangent flow back to this node (does it depend on a parameter, not through sg)?
    pub(crate) requires_grad: bool,
}

/// A Wengert list of array operations; see the module documentation.
#[derive(Debug, Default)]
pub struct Tape<T: Float> {
    nodes: Vec<Node>,
    values: Vec<Array2<T>>,
    /// tangents[i]: the tangent node of node i in forward mode (None: exactly zero).
    tangents: Vec<Option<Var>>,
    /// Cotangents after `backward` (None: zero or not needed).
    grads: Vec<Option<Array2<T>>>,
    /// True while a JVP rule is recording, so that its own ops do not record tangents in turn.
    recording_jvp_rule: bool,
    /// The slope f^(order+1)(x) of the [`Map`] being pushed with a tangent, evaluated in the same
    /// pass as its value and handed to its JVP rule (see [`Tape::push`]).
    map_slope: Option<Array2<T>>,
    pool: BufferPool<T>,
}

impl<T: Float> Tape<T> {
    pub fn new() -> Self {
        Tape {
            nodes: Vec::new(),
            values: Vec::new(),
            tangents: Vec::new(),
            grads: Vec::new(),
            recording_jvp_rule: false,
            map_slope: None,
            pool: BufferPool::default(),
        }
    }

    /// Forgets every node and recycles all buffers; capacity is kept for the next step.
    pub fn clear(&mut self) {
        for v in self.values.drain(..) {
            self.pool.give(v);
        }
        for g in self.grads.drain(..).flatten() {
            self.pool.give(g);
        }
        if let Some(slope) = self.map_slope.take() {
            self.pool.give(slope);
        }
        self.pool.end_batch();
        self.nodes.clear();
        self.tangents.clear();
        self.recording_jvp_rule = false;
    }

    /// Number of nodes recorded.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    // ----- leaves -------------------------------------------------------------------------

    fn push_leaf(&mut self, value: Array2<T>, requires_grad: bool) -> Var {
        let id = Var(u32::try_from(self.nodes.len()).expect("tape holds at most 2^32 nodes"));
        self.nodes.push(Node {
            op: Op::Leaf(Leaf),
            requires_grad,
        });
        self.values.push(value);
        self.tangents.push(None);
        id
    }

    fn copy_into_pooled(&mut self, value: ArrayView2<T>) -> Array2<T> {
        let mut buf = self.pool.take_uninit(value.dim());
        buf.assign(&value);
        buf
    }

    /// A leaf that gradients are taken with respect to (copied into a pooled buffer).
    pub fn param(&mut self, value: ArrayView2<T>) -> Var {
        let buf = self.copy_into_pooled(value);
        self.push_leaf(buf, true)
    }

    /// A leaf that is held constant by reverse mode (copied into a pooled buffer).
    pub fn constant(&mut self, value: ArrayView2<T>) -> Var {
        let buf = self.copy_into_pooled(value);
        self.push_leaf(buf, false)
    }

    /// A constant leaf filled with `c`.
    pub fn full(&mut self, shape: (usize, usize), c: T) -> Var {
        let mut buf = self.pool.take_uninit(shape);
        buf.fill(c);
        self.push_leaf(buf, false)
    }

    /// The value of a node.
    pub fn value(&self, v: Var) -> ArrayView2<'_, T> {
        self.values[v.index()].view()
    }

    /// The shape of a node's value.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        self.values[v.index()].dim()
    }

    /// The single element of a [1, 1] node.
    pub fn scalar(&self, v: Var) -> T {
        let a = &self.values[v.index()];
        assert_eq!(
            a.dim(),
            (1, 1),
            "scalar: node {v:?} has shape {:?}, not [1, 1]",
            a.dim()
        );
        a[[0, 0]]
    }

    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.index()].requires_grad
    }

    pub fn op(&self, v: Var) -> Op {
        self.nodes[v.index()].op
    }

    // ----- recording ----------------------------------------------------------------------

    /// Evaluates `op`, appends it, and in forward mode also records its tangent.
    ///
    /// A [`Map`] with a tangent evaluates its value f^(order)(x) and the slope f^(order+1)(x) that
    /// its JVP rule needs in one pass (one dual-number evaluation per element instead of a second
    /// pass over x); the rule then records the slope node with that precomputed value.
    pub fn push(&mut self, op: Op) -> Var {
        let inputs = op.inputs();
        let shape = op.shape(self);
        let input_tangents = inputs.map(|i| i.and_then(|i| self.tangents[i.index()]));
        let record_jvp = !self.recording_jvp_rule && input_tangents.iter().any(Option::is_some);
        let mut out = self.pool.take_uninit(shape);
        match op {
            Op::Map(map) if record_jvp => {
                let mut slope = self.pool.take_uninit(shape);
                map.eval_with_slope(self, out.view_mut(), slope.view_mut());
                self.map_slope = Some(slope);
            }
            _ => op.eval(self, out.view_mut()),
        }
        let id = self.record(op, out);
        if record_jvp {
            self.recording_jvp_rule = true;
            let tangent = op.jvp(self, id, input_tangents);
            self.recording_jvp_rule = false;
            self.tangents[id.index()] = tangent;
        }
        id
    }

    /// Appends `op` with its value already computed (by a JVP rule that had it at hand); records
    /// no tangent.
    pub(crate) fn push_evaluated(&mut self, op: Op, value: Array2<T>) -> Var {
        debug_assert_eq!(value.dim(), op.shape(self), "push_evaluated: {op:?}");
        self.record(op, value)
    }

    /// Appends a computed node.
    fn record(&mut self, op: Op, value: Array2<T>) -> Var {
        let requires_grad = !matches!(op, Op::StopGradient(_))
            && op.inputs().iter().flatten().any(|&i| self.requires_grad(i));
        let id = Var(u32::try_from(self.nodes.len()).expect("tape holds at most 2^32 nodes"));
        self.nodes.push(Node { op, requires_grad });
        self.values.push(value);
        self.tangents.push(None);
        id
    }

    // ----- forward mode -------------------------------------------------------------------

    /// Seeds the tangent of `x` (forward mode): every op computed from `x` after this call
    /// also computes its tangent. Panics if the shapes differ.
    pub fn set_tangent(&mut self, x: Var, x_dot: Var) {
        assert_eq!(
            self.shape(x),
            self.shape(x_dot),
            "set_tangent: value {x:?} has shape {:?} but tangent {x_dot:?} has shape {:?}",
            self.shape(x),
            self.shape(x_dot)
        );
        self.tangents[x.index()] = Some(x_dot);
    }

    /// The tangent node of `v`, or None where the tangent is exactly zero.
    pub fn tangent(&self, v: Var) -> Option<Var> {
        self.tangents[v.index()]
    }

    /// The tangent of `v` as a node, materialising an exact zero as a constant of zeros.
    pub fn tangent_or_zeros(&mut self, v: Var) -> Var {
        match self.tangent(v) {
            Some(t) => t,
            None => self.full(self.shape(v), T::zero()),
        }
    }

    // ----- reverse mode -------------------------------------------------------------------

    /// Reverse mode from a [1, 1] output, seeded with 1: afterwards [`Tape::grad`] gives
    /// d output / d node for every node that requires a gradient.
    pub fn backward(&mut self, output: Var) {
        assert_eq!(
            self.shape(output),
            (1, 1),
            "backward: output {output:?} has shape {:?}; use backward_with for non-scalar outputs",
            self.shape(output)
        );
        let mut seed = self.pool.take_uninit((1, 1));
        seed[[0, 0]] = T::one();
        self.backward_seeded(output, seed);
    }

    /// Reverse mode seeded with the cotangent `output_bar` (same shape as `output`): afterwards
    /// `grad(x)` holds J^T output_bar, the vector-Jacobian product.
    pub fn backward_with(&mut self, output: Var, output_bar: ArrayView2<T>) {
        let seed = self.copy_into_pooled(output_bar);
        self.backward_seeded(output, seed);
    }

    fn backward_seeded(&mut self, output: Var, seed: Array2<T>) {
        assert_eq!(
            seed.dim(),
            self.shape(output),
            "backward_with: cotangent shape {:?} differs from output {output:?} shape {:?}",
            seed.dim(),
            self.shape(output)
        );
        for g in self.grads.drain(..).flatten() {
            self.pool.give(g);
        }
        self.grads.resize_with(self.nodes.len(), || None);
        self.grads[output.index()] = Some(seed);
        let mut grads = ops::Cotangents {
            slots: &mut self.grads,
            nodes_requiring_grad: &self.nodes,
            values: &self.values,
            pool: &mut self.pool,
        };
        for i in (0..=output.index()).rev() {
            if !self.nodes[i].requires_grad && i != output.index() {
                continue;
            }
            let Some(out_bar) = grads.slots[i].take() else {
                continue;
            };
            self.nodes[i]
                .op
                .vjp(&self.values, Var(i as u32), out_bar.view(), &mut grads);
            grads.slots[i] = Some(out_bar);
        }
    }

    /// The cotangent of `v` from the last `backward` (None where it is zero or not tracked).
    pub fn grad(&self, v: Var) -> Option<ArrayView2<'_, T>> {
        self.grads
            .get(v.index())
            .and_then(|g| g.as_ref())
            .map(|g| g.view())
    }

    /// The cotangent of `v` as an owned array, zeros where none flowed back.
    pub fn grad_or_zeros(&self, v: Var) -> Array2<T> {
        match self.grad(v) {
            Some(g) => g.to_owned(),
            None => Array2::zeros(self.shape(v)),
        }
    }

    // ----- op builders ---------------------------------------------------------------------

    /// A B.
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, false, b, false)
    }

    /// op(A) op(B) with op a transpose where asked (a strided view, never a copy).
    pub fn matmul_t(&mut self, a: Var, transpose_a: bool, b: Var, transpose_b: bool) -> Var {
        self.push(Op::MatMul(MatMul {
            a,
            b,
            transpose_a,
            transpose_b,
        }))
    }

    /// x W^T + b for x [m, in], W [out, in] (PyTorch `nn.Linear` layout) and b [1, out].
    pub fn linear(&mut self, x: Var, weight: Var, bias: Var) -> Var {
        let xw = self.matmul_t(x, false, weight, true);
        self.add(xw, bias)
    }

    /// a + b, broadcasting axes of length 1.
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::Add(Add(a, b)))
    }
    /// a - b, broadcasting axes of length 1.
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::Sub(Sub(a, b)))
    }
    /// a * b elementwise, broadcasting axes of length 1.
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::Mul(Mul(a, b)))
    }
    /// a / b elementwise, broadcasting axes of length 1.
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::Div(Div(a, b)))
    }
    /// c x.
    pub fn scale(&mut self, x: Var, c: f64) -> Var {
        self.push(Op::Scale(Scale { x, c }))
    }
    /// -x.
    pub fn neg(&mut self, x: Var) -> Var {
        self.scale(x, -1.0)
    }
    /// x + c.
    pub fn add_scalar(&mut self, x: Var, c: f64) -> Var {
        self.push(Op::AddScalar(AddScalar { x, c }))
    }
    /// f(x) elementwise.
    pub fn map(&mut self, x: Var, f: Elementwise) -> Var {
        self.push(Op::Map(Map { x, f, order: 0 }))
    }
    /// x^2 elementwise.
    pub fn square(&mut self, x: Var) -> Var {
        self.map(x, Elementwise::Square)
    }
    /// [a | b]: columns of a, then columns of b.
    pub fn concat_cols(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::ConcatCols(ConcatCols(a, b)))
    }
    /// Columns start..end of x.
    pub fn slice_cols(&mut self, x: Var, start: usize, end: usize) -> Var {
        self.push(Op::SliceCols(SliceCols { x, start, end }))
    }
    /// x repeated to shape (rows, cols) along its axes of length 1.
    pub fn broadcast(&mut self, x: Var, rows: usize, cols: usize) -> Var {
        self.push(Op::Broadcast(Broadcast { x, rows, cols }))
    }
    /// sum_i x_ij, shape [1, n].
    pub fn sum_rows(&mut self, x: Var) -> Var {
        self.push(Op::Sum(Sum {
            x,
            over: Reduction::Rows,
        }))
    }
    /// sum_j x_ij, shape [m, 1].
    pub fn sum_cols(&mut self, x: Var) -> Var {
        self.push(Op::Sum(Sum {
            x,
            over: Reduction::Cols,
        }))
    }
    /// sum_ij x_ij, shape [1, 1].
    pub fn sum(&mut self, x: Var) -> Var {
        self.push(Op::Sum(Sum {
            x,
            over: Reduction::All,
        }))
    }
    /// The mean of all elements, shape [1, 1].
    pub fn mean(&mut self, x: Var) -> Var {
        let (m, n) = self.shape(x);
        let s = self.sum(x);
        self.scale(s, 1.0 / (m * n) as f64)
    }
    /// sg(x): the value of x, with no cotangent flowing back and a zero tangent flowing forward.
    pub fn stop_gradient(&mut self, x: Var) -> Var {
        self.push(Op::StopGradient(StopGradient(x)))
    }
}
