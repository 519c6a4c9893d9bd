//! Structural ops: they move, copy or repeat elements and compute nothing. Columns
//! ([`ConcatCols`], [`SliceCols`]), rows ([`Rows`], a view with no buffer of its own,
//! [`StackRows`], [`PadRows`]) and [`Broadcast`].

use super::arithmetic::{accumulate_reduced, broadcast_shape};
use super::row_prefix::{fit, full_rows};
use super::{Cotangents, Primitive};
use crate::autodiff::tape::{Tape, Values, Var};
use crate::linalg::float::Float;
use ndarray::{s, ArrayView2, ArrayViewMut2, Zip};

/// [a | b]: the columns of a followed by those of b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConcatCols(pub Var, pub Var);

impl Primitive for ConcatCols {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
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
    /// out_dot = [a_dot | b_dot] (over the longer of the two row prefixes)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let rows = [a_dot, b_dot]
            .iter()
            .flatten()
            .map(|&t| tape.shape(t).0)
            .max()?;
        let mut fill = |x: Var, x_dot: Option<Var>| match x_dot {
            Some(x_dot) => full_rows(tape, x_dot, rows),
            None => tape.full((rows, tape.shape(x).1), T::zero()),
        };
        let a_dot = fill(self.0, a_dot);
        let b_dot = fill(self.1, b_dot);
        Some(tape.concat_cols(a_dot, b_dot))
    }
    /// a_bar += out_bar[:, ..na], b_bar += out_bar[:, na..]
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let na = values.get(self.0).ncols();
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
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
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
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot.map(|x_dot| tape.slice_cols(x_dot, self.start, self.end))
    }
    /// x_bar[:, start..end] += out_bar
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(mut x_bar) = bars.slot(self.x) {
            Zip::from(x_bar.slice_mut(s![.., self.start..self.end]))
                .and(g)
                .for_each(|b, &g| *b += g);
        }
    }
}

/// x[start..end, :] as a view: it has no buffer of its own, neither for its value nor for its
/// cotangent (both are rows of x's), so it costs no copy either way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rows {
    pub x: Var,
    pub start: usize,
    pub end: usize,
}

impl Primitive for Rows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        assert!(
            self.start <= self.end && self.end <= m,
            "rows: rows {}..{} out of range for shape {:?}",
            self.start,
            self.end,
            (m, n)
        );
        (self.end - self.start, n)
    }
    /// A view is not evaluated: `Tape::push` records it over x's buffer (`Tape::push_view`), so
    /// its value is rows start..end of x's without a copy.
    fn eval<T: Float>(&self, _: &Tape<T>, _: ArrayViewMut2<T>) {
        unreachable!("Tape::push records a row view over its owner's buffer")
    }
    /// out_dot = x_dot[start..end] (the part of x_dot's row prefix that falls in the range)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let x_dot = x_dot?;
        let k = tape.shape(x_dot).0;
        if self.start >= k {
            return None;
        }
        let end = self.end.min(k);
        Some(if self.start == 0 && end == k {
            x_dot
        } else {
            tape.rows(x_dot, self.start, end)
        })
    }
    /// Nothing to do: the view's cotangent already is rows start..end of x's.
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, _: ArrayView2<T>, _: &mut Cotangents<T>) {}
}

/// [a; b]: the rows of a, then those of b.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackRows(pub Var, pub Var);

impl Primitive for StackRows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.0), Some(self.1), None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (a, b) = (tape.shape(self.0), tape.shape(self.1));
        assert_eq!(
            a.1, b.1,
            "stack_rows: column counts differ: {a:?} and {b:?}"
        );
        (a.0 + b.0, a.1)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let ma = tape.shape(self.0).0;
        out.slice_mut(s![..ma, ..]).assign(&tape.value(self.0));
        out.slice_mut(s![ma.., ..]).assign(&tape.value(self.1));
    }
    /// out_dot = [a_dot; b_dot] (a_dot alone is already a row prefix of the output)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        _: Var,
        [a_dot, b_dot, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let Some(b_dot) = b_dot else {
            return a_dot;
        };
        let (ma, n) = tape.shape(self.0);
        let a_dot = match a_dot {
            Some(a_dot) => full_rows(tape, a_dot, ma),
            None => tape.full((ma, n), T::zero()),
        };
        Some(tape.stack_rows(a_dot, b_dot))
    }
    /// a_bar += out_bar[..ma], b_bar += out_bar[ma..] (where a cotangent reached those rows)
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        out: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let (ma, rows) = (values.get(self.0).nrows(), g.nrows());
        let touched = bars.touched_rows(out);
        let a_rows = touched.start.min(ma)..touched.end.min(ma);
        let b_rows = touched.start.max(ma) - ma..touched.end.max(ma) - ma;
        if !a_rows.is_empty() {
            if let Some(a_bar) = bars.slot_rows(self.0, a_rows.clone()) {
                Zip::from(a_bar)
                    .and(g.slice(s![a_rows, ..]))
                    .for_each(|b, &g| *b += g);
            }
        }
        if !b_rows.is_empty() {
            if let Some(b_bar) = bars.slot_rows(self.1, b_rows.clone()) {
                Zip::from(b_bar)
                    .and(g.slice(s![ma + b_rows.start..ma + b_rows.end, ..]))
                    .for_each(|b, &g| *b += g);
            }
        }
        debug_assert!(touched.end <= rows);
    }
}

/// x followed by zero rows, `rows` rows in all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PadRows {
    pub x: Var,
    pub rows: usize,
}

impl Primitive for PadRows {
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
    }
    fn shape<T: Float>(&self, tape: &Tape<T>) -> (usize, usize) {
        let (m, n) = tape.shape(self.x);
        assert!(
            m <= self.rows,
            "pad_rows: cannot pad {:?} to {} rows",
            (m, n),
            self.rows
        );
        (self.rows, n)
    }
    fn eval<T: Float>(&self, tape: &Tape<T>, mut out: ArrayViewMut2<T>) {
        let m = tape.shape(self.x).0;
        out.slice_mut(s![..m, ..]).assign(&tape.value(self.x));
        out.slice_mut(s![m.., ..]).fill(T::zero());
    }
    /// out_dot = x_dot (a row prefix of x is one of the padded output too)
    fn jvp<T: Float>(
        &self,
        _: &mut Tape<T>,
        _: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        x_dot
    }
    /// x_bar += out_bar[..m]
    fn vjp<T: Float>(
        &self,
        values: &Values<T>,
        _: Var,
        g: ArrayView2<T>,
        bars: &mut Cotangents<T>,
    ) {
        let m = values.get(self.x).nrows();
        if let Some(x_bar) = bars.slot(self.x) {
            Zip::from(x_bar)
                .and(g.slice(s![..m, ..]))
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
    fn inputs(&self) -> [Option<Var>; 3] {
        [Some(self.x), None, None]
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
    /// out_dot = broadcast(x_dot) (over x_dot's rows, unless x is broadcast along rows)
    fn jvp<T: Float>(
        &self,
        tape: &mut Tape<T>,
        out: Var,
        [x_dot, _, _]: [Option<Var>; 3],
    ) -> Option<Var> {
        let rows_x = tape.shape(self.x).0;
        let shape = tape.shape(out);
        x_dot.map(|x_dot| fit(tape, x_dot, rows_x, shape))
    }
    /// x_bar += out_bar summed over the broadcast axes
    fn vjp<T: Float>(&self, _: &Values<T>, _: Var, g: ArrayView2<T>, bars: &mut Cotangents<T>) {
        if let Some(x_bar) = bars.slot(self.x) {
            accumulate_reduced(x_bar, g.dim(), |i, j| g[[i, j]]);
        }
    }
}
