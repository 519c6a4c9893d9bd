//! The cotangent buffers during `backward`: taken from the pool on first use, with the rows of
//! each that some VJP wrote, so that rows no cotangent reached are never zeroed or read.

use crate::autodiff::tape::pool::BufferPool;
use crate::autodiff::tape::{Node, Op, Values, Var};
use crate::linalg::float::Float;
use ndarray::{s, Array2, ArrayViewMut2};
use std::ops::Range;

/// Cotangent buffers during `backward`, allocated (zeroed, from the pool) on first use. A
/// [`Rows`](super::Rows) view has no buffer of its own: its cotangent is rows of its owner's
/// buffer.
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
    pub(super) fn slot(&mut self, v: Var) -> Option<ArrayViewMut2<'_, T>> {
        let rows = self.values.get(v).nrows();
        self.slot_rows(v, 0..rows)
    }

    /// Rows `range` of v's cotangent buffer to accumulate into (zeros where nothing was written
    /// yet), or None if `v` needs no gradient.
    pub(super) fn slot_rows(
        &mut self,
        v: Var,
        range: Range<usize>,
    ) -> Option<ArrayViewMut2<'_, T>> {
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
    pub(super) fn slot_rows_to_write(
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
    pub(super) fn touched_rows(&self, v: Var) -> Range<usize> {
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
