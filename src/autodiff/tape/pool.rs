//! A pool of array buffers keyed by element count, so that a tape replaying the same computation
//! every training step allocates nothing once warmed up.

use crate::linalg::float::Float;
use ndarray::Array2;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(crate) struct BufferPool<T> {
    free: HashMap<usize, Vec<Vec<T>>>,
    /// How many buffers of each length were handed back since the last `end_batch`.
    returned: HashMap<usize, usize>,
    /// How many buffers of each length `take_uninit` allocated and `end_batch` has not dropped:
    /// a bound on how many can come back, to size the free lists ahead of time.
    made: HashMap<usize, usize>,
}

impl<T: Float> BufferPool<T> {
    /// An array of the given shape; its contents are unspecified (old values), not zeroed.
    pub fn take_uninit(&mut self, shape: (usize, usize)) -> Array2<T> {
        let len = shape.0 * shape.1;
        let buf = match self.free.get_mut(&len).and_then(|list| list.pop()) {
            Some(buf) => buf,
            None if len == 0 => Vec::new(),
            None => {
                // Book room now for this buffer's eventual return: the free list (empty here) gets
                // capacity for every buffer of this length ever made, so `give` (the first
                // `clear` after a warm-up step) never allocates.
                let made = self.made.entry(len).or_insert(0);
                *made += 1;
                let list = self.free.entry(len).or_default();
                if list.capacity() < *made {
                    list.reserve(*made);
                }
                self.returned.entry(len).or_insert(0);
                vec![T::zero(); len]
            }
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
            let keep = self.returned.get(len).copied().unwrap_or(0).max(1);
            if list.len() > keep {
                if let Some(made) = self.made.get_mut(len) {
                    *made = made.saturating_sub(list.len() - keep);
                }
                list.truncate(keep);
            }
        }
        for count in self.returned.values_mut() {
            *count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alternating a large and a small workload: the free list is trimmed after the small one,
    /// the large one allocates again, and the bookkeeping stays bounded by the peak.
    #[test]
    fn alternating_workloads_keep_bookkeeping_bounded() {
        let mut pool = BufferPool::<f32>::default();
        for _ in 0..50 {
            for n in [100, 10] {
                let bufs: Vec<_> = (0..n).map(|_| pool.take_uninit((2, 2))).collect();
                for b in bufs {
                    pool.give(b);
                }
                pool.end_batch();
            }
        }
        assert!(pool.made[&4] <= 100, "made {}", pool.made[&4]);
        assert!(pool.free[&4].capacity() <= 200);
    }
}
