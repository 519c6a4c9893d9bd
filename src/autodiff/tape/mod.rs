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
//! **The functional front door** ([`jvp`], [`vjp`], [`grad`], [`value_and_grad`]): JAX's calls
//! over a closure that records on a fresh tape, built on the stateful calls above.
//!
//! Stop-gradient ([`Tape::stop_gradient`]) cuts both: its output has no cotangent flowing back and
//! a zero tangent flowing forward, as in JAX.
//!
//! [`Tape::clear`] recycles every buffer, so a tape that replays the same computation each step
//! allocates nothing once warmed up.
//!
//! **How the tape is made fast** (docs/architecture.md has the full account; each rule can be
//! switched off through [`Optimizations`] and is tested on against off):
//! - *Tangents on a row prefix.* A tangent may have fewer rows than its value: k rows mean the
//!   tangent of rows 0..k, the rest exactly zero, and every JVP rule keeps that shape, so a JVP
//!   whose tangent is nonzero on k of B rows costs k rows.
//! - *Row views.* [`Tape::rows`] is a view of rows of another node: no copy, and its cotangent is
//!   those rows of the other node's cotangent buffer.
//! - *Dense layers in dual form.* [`Tape::dense`] is f(x W^T + b) as one primitive. When x carries
//!   a tangent and W, b do not, value and tangent are one block [x; x_dot] -> [y; y_dot]: one GEMM
//!   over B + k rows and one elementwise pass for bias, f, f' and the tangent's scaling.
//! - *Pruning.* Backward only visits nodes that received a cotangent, and tracks which rows of a
//!   buffer did: a block whose tangent rows only feed stopped quantities is back-propagated over
//!   its value rows alone.

mod functional;
mod ops;
mod pool;

pub use functional::{grad, jvp, value_and_grad, vjp, Pullback};

pub use ops::{
    Add, AddScalar, Broadcast, ConcatCols, Dense, Div, InverseDeviation, LayerNorm, Leaf,
    LogSoftmax, Map, MatMul, Mul, Op, PadRows, Reduction, Rows, Scale, SliceCols, StackRows,
    StopGradient, Sub, Sum,
};

use crate::autodiff::elementwise::Elementwise;
use crate::linalg::float::Float;
use ndarray::{s, Array2, ArrayView2};
use pool::BufferPool;

/// Read access to every node's value (views resolved) and saved residuals, for the VJP rules.
#[derive(Clone, Copy)]
pub(crate) struct Values<'a, T> {
    nodes: &'a [Node],
    arrays: &'a [Array2<T>],
    saved: &'a [Option<Array2<T>>],
}

impl<'a, T: Float> Values<'a, T> {
    /// The value of v (a view into its owner's buffer for a [`Rows`] view).
    pub(crate) fn get(&self, v: Var) -> ArrayView2<'a, T> {
        match self.nodes[v.index()].view_of {
            Some(w) => self.arrays[w.owner.index()].slice(s![w.start..w.end, ..]),
            None => self.arrays[v.index()].view(),
        }
    }

    /// See [`owner_of`].
    pub(crate) fn owner_of(&self, v: Var) -> (Var, usize) {
        owner_of(self.nodes, v)
    }

    /// What the op of node v saved for its VJP.
    pub(crate) fn saved(&self, v: Var) -> Option<ArrayView2<'a, T>> {
        self.saved[v.index()].as_ref().map(|a| a.view())
    }
}

/// A node of a [`Tape`]: an index into its arena. Only meaningful for the tape that made it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Set for a [`Rows`] view: the node whose buffer (value and cotangent) holds its rows.
    pub(crate) view_of: Option<RowView>,
}

/// The node that holds v's buffer (v itself, or the owner of a [`Rows`] view) and the row of that
/// buffer where v's rows begin.
pub(crate) fn owner_of(nodes: &[Node], v: Var) -> (Var, usize) {
    match nodes[v.index()].view_of {
        Some(w) => (w.owner, w.start),
        None => (v, 0),
    }
}

/// Rows start..end of another node's buffer (never itself a view: chains are resolved).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowView {
    pub(crate) owner: Var,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// The tape's speed rules (module documentation); all on by default. Each one changes the work
/// done, never the result beyond rounding: tests/tape_optimizations.rs runs every rule on against
/// off to 1e-12 in f64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Optimizations {
    /// A dense layer whose input carries a tangent computes value and tangent as one block (one
    /// GEMM, one elementwise pass). Off: the tangent is recorded with the small primitives.
    pub dual_dense: bool,
    /// Backward skips the rows of a block that no cotangent reached (the tangent rows of a JVP
    /// that only stopped quantities use). Off: every row of a buffer that was reached is used.
    pub prune_rows: bool,
    /// Callers that know a tangent is zero past some row seed a row-prefix tangent: the MeanFlow
    /// losses seed rows 0..k, k one past the last row with r != t
    /// ([`crate::flow::loss::tangent_rows`]). Off: tangents on every row.
    pub row_prefix_tangents: bool,
}

impl Default for Optimizations {
    fn default() -> Self {
        Optimizations {
            dual_dense: true,
            prune_rows: true,
            row_prefix_tangents: true,
        }
    }
}

/// A Wengert list of array operations; see the module documentation.
#[derive(Debug, Default)]
pub struct Tape<T: Float> {
    nodes: Vec<Node>,
    values: Vec<Array2<T>>,
    /// tangents[i]: the tangent node of node i in forward mode (None: exactly zero). It may have
    /// fewer rows than node i: k rows are the tangent of rows 0..k, the rest are zero.
    tangents: Vec<Option<Var>>,
    /// Values an op saved for its VJP (a dense layer's f'(pre)), by node.
    saved: Vec<Option<Array2<T>>>,
    /// Cotangents after `backward` (None: zero or not needed).
    grads: Vec<Option<Array2<T>>>,
    /// The rows of each cotangent buffer that a VJP wrote to (start, end), during `backward`.
    touched: Vec<(usize, usize)>,
    optimizations: Optimizations,
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
            saved: Vec::new(),
            grads: Vec::new(),
            touched: Vec::new(),
            optimizations: Optimizations::default(),
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
        for r in self.saved.drain(..).flatten() {
            self.pool.give(r);
        }
        if let Some(slope) = self.map_slope.take() {
            self.pool.give(slope);
        }
        self.pool.end_batch();
        self.nodes.clear();
        self.tangents.clear();
        self.recording_jvp_rule = false;
    }

    /// The speed rules in force (see [`Optimizations`]).
    pub fn optimizations(&self) -> Optimizations {
        self.optimizations
    }

    /// Switches speed rules on or off for what is recorded from now on (for tests and study).
    pub fn set_optimizations(&mut self, optimizations: Optimizations) {
        self.optimizations = optimizations;
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
            view_of: None,
        });
        self.values.push(value);
        self.tangents.push(None);
        self.saved.push(None);
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

    /// A constant leaf of the given shape, written by `fill` (which must write every element)
    /// into a pooled buffer: no allocation once warmed up.
    pub fn constant_from_fn(
        &mut self,
        shape: (usize, usize),
        fill: impl FnOnce(ndarray::ArrayViewMut2<T>),
    ) -> Var {
        let mut buf = self.pool.take_uninit(shape);
        fill(buf.view_mut());
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
        self.values().get(v)
    }

    /// Every node's value, for the VJP rules.
    pub(crate) fn values(&self) -> Values<'_, T> {
        Values {
            nodes: &self.nodes,
            arrays: &self.values,
            saved: &self.saved,
        }
    }

    /// The shape of a node's value.
    pub fn shape(&self, v: Var) -> (usize, usize) {
        match self.nodes[v.index()].view_of {
            Some(view) => (
                view.end - view.start,
                self.values[view.owner.index()].ncols(),
            ),
            None => self.values[v.index()].dim(),
        }
    }

    /// The single element of a [1, 1] node.
    pub fn scalar(&self, v: Var) -> T {
        let a = self.value(v);
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
        if let Op::Dense(dense) = op {
            if record_jvp && self.optimizations.dual_dense {
                if let Some(y) = dense.push_dual(self, input_tangents) {
                    return y;
                }
            }
        }
        if let Op::Rows(rows) = op {
            return self.push_view(rows, record_jvp.then_some(input_tangents));
        }
        let mut out = self.pool.take_uninit(shape);
        let mut saved = None;
        match op {
            Op::Map(map) if record_jvp => {
                let rows = input_tangents[0].map_or(0, |t| self.shape(t).0);
                let mut slope = self.pool.take_uninit((rows, shape.1));
                map.eval_with_slope(self, out.view_mut(), slope.view_mut());
                self.map_slope = Some(slope);
            }
            Op::Dense(dense) => {
                // f'(pre) of the value rows, kept for the VJP (and needed by a block's tangent rows).
                let keep = dense.activation.is_some()
                    && (dense.tangent_rows > 0 || self.op_requires_grad(&op));
                let mut slope = keep.then(|| {
                    self.pool
                        .take_uninit((shape.0 - dense.tangent_rows, shape.1))
                });
                dense.eval_into(self, out.view_mut(), slope.as_mut().map(|s| s.view_mut()));
                saved = slope;
            }
            _ => op.eval(self, out.view_mut()),
        }
        let id = self.record(op, out);
        self.saved[id.index()] = saved;
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

    /// Would a node computing `op` require a gradient?
    pub(crate) fn op_requires_grad(&self, op: &Op) -> bool {
        !matches!(op, Op::StopGradient(_))
            && op.inputs().iter().flatten().any(|&i| self.requires_grad(i))
    }

    /// Appends a computed node.
    fn record(&mut self, op: Op, value: Array2<T>) -> Var {
        self.record_node(op, value, None)
    }

    fn record_node(&mut self, op: Op, value: Array2<T>, view_of: Option<RowView>) -> Var {
        let requires_grad = self.op_requires_grad(&op);
        let id = Var(u32::try_from(self.nodes.len()).expect("tape holds at most 2^32 nodes"));
        self.nodes.push(Node {
            op,
            requires_grad,
            view_of,
        });
        self.values.push(value);
        self.tangents.push(None);
        self.saved.push(None);
        id
    }

    /// Appends a [`Rows`] view: no value of its own (it reads the owner's buffer); its tangent,
    /// when forward mode is on, is the matching rows of the input's tangent.
    fn push_view(&mut self, rows: Rows, input_tangents: Option<[Option<Var>; 3]>) -> Var {
        let (owner, offset) = self.owner_of(rows.x);
        let view = RowView {
            owner,
            start: offset + rows.start,
            end: offset + rows.end,
        };
        let id = self.record_node(
            Op::Rows(rows),
            Array2::from_shape_vec((0, 0), Vec::new()).expect("empty"),
            Some(view),
        );
        if let Some(tangents) = input_tangents {
            let tangent = self.recording_rule(|tape| Op::Rows(rows).jvp(tape, id, tangents));
            self.tangents[id.index()] = tangent;
        }
        id
    }

    /// Records `f` as part of a JVP rule: its ops record no tangents of their own.
    pub(crate) fn recording_rule<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = std::mem::replace(&mut self.recording_jvp_rule, true);
        let r = f(self);
        self.recording_jvp_rule = outer;
        r
    }

    /// Sets the tangent of `v` (used by rules that compute a value and its tangent together).
    pub(crate) fn put_tangent(&mut self, v: Var, tangent: Option<Var>) {
        self.tangents[v.index()] = tangent;
    }

    /// Whether `v` is a view of rows start..end of `owner`'s buffer.
    pub(crate) fn is_view_of(&self, v: Var, owner: Var, start: usize, end: usize) -> bool {
        matches!(self.nodes[v.index()].view_of, Some(w) if w.owner == owner && w.start == start && w.end == end)
    }

    /// The node holding v's buffer and the row of v's first row in it.
    pub(crate) fn owner_of(&self, v: Var) -> (Var, usize) {
        owner_of(&self.nodes, v)
    }

    // ----- forward mode -------------------------------------------------------------------

    /// Seeds the tangent of `x` (forward mode): every op computed from `x` after this call
    /// also computes its tangent. `x_dot` has x's shape, or x's columns and k < rows(x) rows: the
    /// tangent of rows 0..k, the other rows' tangent being exactly zero (they then cost nothing).
    /// Panics if the shapes do not fit.
    pub fn set_tangent(&mut self, x: Var, x_dot: Var) {
        let (value, tangent) = (self.shape(x), self.shape(x_dot));
        assert!(
            tangent.1 == value.1 && tangent.0 <= value.0,
            "set_tangent: value {x:?} has shape {value:?} but tangent {x_dot:?} has shape {tangent:?} (need the same columns and at most as many rows)"
        );
        self.tangents[x.index()] = Some(x_dot);
    }

    /// The tangent node of `v`, or None where the tangent is exactly zero. It may have fewer rows
    /// than `v` (a row prefix; see [`Tape::set_tangent`]).
    pub fn tangent(&self, v: Var) -> Option<Var> {
        self.tangents[v.index()]
    }

    /// The tangent of `v` as a node of v's full shape: zero rows appended to a row-prefix tangent,
    /// an exact zero materialised as a constant of zeros.
    pub fn tangent_or_zeros(&mut self, v: Var) -> Var {
        let shape = self.shape(v);
        match self.tangent(v) {
            Some(t) if self.shape(t) == shape => t,
            Some(t) => self.recording_rule(|tape| tape.pad_rows(t, shape.0)),
            None => self.full(shape, T::zero()),
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
        let one = [T::one()];
        let seed = ArrayView2::from_shape((1, 1), &one).expect("one element");
        self.backward_with_many(&[(output, seed)]);
    }

    /// Reverse mode seeded with the cotangent `output_bar` (same shape as `output`): afterwards
    /// `grad(x)` holds J^T output_bar, the vector-Jacobian product.
    pub fn backward_with(&mut self, output: Var, output_bar: ArrayView2<T>) {
        self.backward_with_many(&[(output, output_bar)]);
    }

    /// Reverse mode from several outputs at once, each seeded with its cotangent (same shape as
    /// the output): afterwards `grad(x)` holds sum_k J_k^T output_bar_k, in one backward pass.
    /// An output listed twice has its cotangents added. Panics, naming the shapes, if a cotangent
    /// does not have its output's shape.
    pub fn backward_with_many(&mut self, seeds: &[(Var, ArrayView2<T>)]) {
        for &(output, ref seed) in seeds {
            assert_eq!(
                seed.dim(),
                self.shape(output),
                "backward_with: cotangent shape {:?} differs from output {output:?} shape {:?}",
                seed.dim(),
                self.shape(output)
            );
        }
        for g in self.grads.drain(..).flatten() {
            self.pool.give(g);
        }
        self.grads.resize_with(self.nodes.len(), || None);
        self.touched.clear();
        self.touched.resize(self.nodes.len(), (0, 0));
        let owner_index = |nodes: &[Node], v: Var| owner_of(nodes, v).0.index();
        let Some(last) = seeds
            .iter()
            .map(|&(v, _)| owner_index(&self.nodes, v))
            .max()
        else {
            return;
        };
        let mut grads = ops::Cotangents {
            slots: &mut self.grads,
            touched: &mut self.touched,
            nodes: &self.nodes,
            values: Values {
                nodes: &self.nodes,
                arrays: &self.values,
                saved: &self.saved,
            },
            pool: &mut self.pool,
            prune_rows: self.optimizations.prune_rows,
        };
        for (output, seed) in seeds {
            // A view shares its owner's buffer: seeding a view that needs no gradient would hand
            // a cotangent to a node (a constant) that must not get one, and nothing flows from it.
            let node = self.nodes[output.index()];
            if node.view_of.is_some() && !node.requires_grad {
                continue;
            }
            let mut slot = grads.slot_unchecked(*output, 0..seed.nrows());
            slot += seed;
        }
        for i in (0..=last).rev() {
            let node = self.nodes[i];
            // A node that requires no gradient is visited only as an output (a seed).
            let is_seed = || seeds.iter().any(|&(v, _)| owner_index(&self.nodes, v) == i);
            if node.view_of.is_some() || (!node.requires_grad && !is_seed()) {
                continue;
            }
            if grads.slots[i].is_none() {
                continue;
            }
            grads.prepare(Var(i as u32), &node.op);
            let Some(out_bar) = grads.slots[i].take() else {
                continue;
            };
            let values = grads.values;
            node.op
                .vjp(&values, Var(i as u32), out_bar.view(), &mut grads);
            grads.slots[i] = Some(out_bar);
        }
        // Rows no cotangent reached were never written: zero them for `grad`.
        for (slot, &(start, end)) in self.grads.iter_mut().zip(&self.touched) {
            if let Some(buf) = slot {
                let rows = buf.nrows();
                for r in (0..start.min(rows)).chain(end.max(start)..rows) {
                    buf.row_mut(r).fill(T::zero());
                }
            }
        }
    }

    /// The cotangent of `v` from the last `backward` (None where it is zero or not tracked).
    pub fn grad(&self, v: Var) -> Option<ArrayView2<'_, T>> {
        let (owner, start) = self.owner_of(v);
        let rows = self.shape(v).0;
        self.grads
            .get(owner.index())
            .and_then(|g| g.as_ref())
            .map(|g| g.slice(s![start..start + rows, ..]))
    }

    /// The cotangent of `v` as an owned array, zeros where none flowed back.
    pub fn grad_or_zeros(&self, v: Var) -> Array2<T> {
        match self.grad(v) {
            Some(g) => g.to_owned(),
            None => Array2::zeros(self.shape(v)),
        }
    }

    /// Writes the cotangent of `v` into `out` (zeros where none flowed back), without allocating.
    pub fn grad_into(&self, v: Var, mut out: ndarray::ArrayViewMut2<T>) {
        match self.grad(v) {
            Some(g) => out.assign(&g),
            None => out.fill(T::zero()),
        }
    }

    // ----- op builders ---------------------------------------------------------------------

    /// f(x W^T + b) as one primitive ([`Dense`]); `activation` None is the identity (a head).
    /// W [out, in] in PyTorch's `nn.Linear` layout, b [1, out].
    pub fn dense(
        &mut self,
        x: Var,
        weight: Var,
        bias: Var,
        activation: Option<Elementwise>,
    ) -> Var {
        self.push(Op::Dense(Dense {
            x,
            weight,
            bias,
            activation,
            tangent_rows: 0,
        }))
    }

    /// Rows start..end of x as a view: no copy; its cotangent is those rows of x's cotangent.
    pub fn rows(&mut self, x: Var, start: usize, end: usize) -> Var {
        self.push(Op::Rows(Rows { x, start, end }))
    }

    /// [a; b]: the rows of a, then those of b.
    pub fn stack_rows(&mut self, a: Var, b: Var) -> Var {
        self.push(Op::StackRows(StackRows(a, b)))
    }

    /// x followed by zero rows, to `rows` rows in all.
    pub fn pad_rows(&mut self, x: Var, rows: usize) -> Var {
        self.push(Op::PadRows(PadRows { x, rows }))
    }

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
    /// Layer normalisation of each row of x [m, n], without gain or bias ([`LayerNorm`]):
    ///
    /// ```text
    /// mu_i = (1/n) sum_j x_ij,   var_i = (1/n) sum_j (x_ij - mu_i)^2
    /// LN(x)_ij = (x_ij - mu_i) / sqrt(var_i + eps)
    /// ```
    ///
    /// Its JVP (x_dot - mean(x_dot) - LN(x) mean(LN(x) x_dot)) / sqrt(var + eps) is recorded with
    /// 1 / sqrt(var + eps) as a node ([`Tape::inverse_deviation`]), so reverse over forward goes
    /// through it. Panics if x has no columns.
    pub fn layer_norm(&mut self, x: Var, eps: f64) -> Var {
        self.push(Op::LayerNorm(LayerNorm { x, eps }))
    }
    /// 1 / sqrt(var_i + eps) of each row of x [m, n], shape [m, 1] ([`InverseDeviation`]), the
    /// variance about the row's mean with divisor n. Panics if x has no columns.
    pub fn inverse_deviation(&mut self, x: Var, eps: f64) -> Var {
        self.push(Op::InverseDeviation(InverseDeviation { x, eps }))
    }
    /// log_softmax of each row: z_ij - logsumexp_j(z_ij), computed with the row's max subtracted
    /// ([`LogSoftmax`]). Panics if z has no columns.
    pub fn log_softmax(&mut self, z: Var) -> Var {
        self.push(Op::LogSoftmax(LogSoftmax { z }))
    }
    /// The softmax cross-entropy of logits z [m, C] against target rows y [m, C], shape [1, 1]:
    ///
    /// ```text
    /// loss = -(1/m) sum_i sum_j y_ij log_softmax(z)_ij
    ///      = (1/m) sum_i (logsumexp(z_i) - z_i[c_i])      for one-hot rows y_i = e_{c_i}
    /// ```
    ///
    /// recorded as [`Tape::log_softmax`], a product with y, a sum and a scale, so its gradient,
    /// JVP and reverse over forward are those primitives' rules: z_bar = (softmax(z) - y) / m
    /// for rows of y that sum to 1. `targets` is usually a constant one-hot matrix
    /// ([`crate::flow::model::one_hot`]); any rows of probabilities (label smoothing) work.
    /// Panics, naming the shapes, if they differ or there are no rows.
    pub fn softmax_cross_entropy(&mut self, logits: Var, targets: Var) -> Var {
        let (z, y) = (self.shape(logits), self.shape(targets));
        assert!(
            z == y && z.0 > 0,
            "softmax_cross_entropy: logits {z:?} and targets {y:?}: need the same shape, at least one row"
        );
        let log_p = self.log_softmax(logits);
        let picked = self.mul(log_p, targets);
        let total = self.sum(picked);
        self.scale(total, -1.0 / z.0 as f64)
    }
    /// sg(x): the value of x, with no cotangent flowing back and a zero tangent flowing forward.
    pub fn stop_gradient(&mut self, x: Var) -> Var {
        self.push(Op::StopGradient(StopGradient(x)))
    }
}
