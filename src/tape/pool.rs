//! A pool of array buffers keyed by element count, so that a tape replaying the same computation
//! every training step allocates nothing once warmed up.

use crate::float::Float;
use ndarray::Array2;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct BufferPool<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    /// How many buffers of each length were handed back by the last `recycle_all` batch.
    returned: HashMap<usize, usize>,
}

impl<T: Float> BufferPool<T> {
    /// An array of the given shape; its contents are unspecified (old values), not zeroed.
    pub fn take_uninit(&mut self, shape: (usize, usize)) -> Array2<T> {
        let len = shape.0 * shape.1;
        let buf = match self.free.get_mut(&len).and_then(|list| list.pop()) {
            Some(buf) => buf,
            None => vec![T::zero(); len],
        };
        Array2::from_shape_vec(shape, buf).expect("pooled buffer has the requested length")
    }

    /// An array of the given shape filled with zeros.
    pub fn take_zeroed(&mut self, shape: (usize, usize)) -> Array2<T> {
        let mut a = self.take_uninit(shape);
        a.fill(T::zero());
        a
    }

    /// Hands a buffer back for reuse.
    pub fn give(&mut self, array: Array2<T>) {
        let (buf, offset) = array.into_raw_vec_and_offset();
        if offset.unwrap_or(0) != 0 || buf.is_empty() {
            return;
        }
        let len = buf.len();
        *self.returned.entry(len).or_insert(0) += 1;
        self.free.entry(len).or_default().push(buf);
    }

    /// Ends a batch of `give`s (one tape clear): keeps at most as many free buffers of each length
    /// as that batch returned, so buffers the caller hands in anew every step do not pile up.
    pub fn end_batch(&mut self) {
        for (len, list) in self.free.iter_mut() {
            let keep = self.returned.get(len).copied().unwrap_or(0);
            list.truncate(keep.max(1));
        }
        for count in self.returned.values_mut() {
            *count = 0;
        }
    }
}
