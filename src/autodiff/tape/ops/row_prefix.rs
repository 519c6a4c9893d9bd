//! Row-prefix tangents. A tangent of k rows belongs to rows 0..k of its value; the other rows'
//! tangent is zero. The helpers below keep that shape through the rules: a term stays k rows
//! where the operand it pairs with is cut to its first k rows, and only a sum of terms of
//! different lengths (or a rule that contracts over rows) pads with zero rows.

use crate::autodiff::tape::{Tape, Var};
use crate::linalg::float::Float;

/// A tangent term fitted to an output of shape `out`: a term of an operand broadcast along rows
/// (1 row, the output more) covers every row; any other keeps its rows. Columns of length 1
/// are broadcast.
pub(super) fn fit<T: Float>(
    tape: &mut Tape<T>,
    term: Var,
    operand_rows: usize,
    out: (usize, usize),
) -> Var {
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
pub(super) fn combine<T: Float>(tape: &mut Tape<T>, a: Var, b: Var, subtract: bool) -> Var {
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
pub(super) fn sum_terms<T: Float>(tape: &mut Tape<T>, terms: [Option<Var>; 2]) -> Option<Var> {
    match terms {
        [Some(a), Some(b)] => Some(combine(tape, a, b, false)),
        [Some(a), None] | [None, Some(a)] => Some(a),
        [None, None] => None,
    }
}

/// x cut to the first `k` rows, to pair with a k-row tangent; x itself where it has k rows or
/// one row (broadcast).
pub(super) fn first_rows<T: Float>(tape: &mut Tape<T>, x: Var, k: usize) -> Var {
    let m = tape.shape(x).0;
    if m == 1 || m == k {
        x
    } else {
        tape.rows(x, 0, k)
    }
}

/// The operand that multiplies the tangent of `tangent_of` (rows(tangent_of) rows, its tangent
/// `k` rows): `other` cut to k rows, unless `tangent_of` is broadcast along rows.
pub(super) fn partner<T: Float>(tape: &mut Tape<T>, tangent_of: Var, k: usize, other: Var) -> Var {
    if tape.shape(tangent_of).0 == 1 {
        other
    } else {
        first_rows(tape, other, k)
    }
}

/// x_dot with all `rows` rows (zero rows appended to a prefix).
pub(super) fn full_rows<T: Float>(tape: &mut Tape<T>, x_dot: Var, rows: usize) -> Var {
    if tape.shape(x_dot).0 == rows {
        x_dot
    } else {
        tape.pad_rows(x_dot, rows)
    }
}
