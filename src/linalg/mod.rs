//! Numbers and GEMM, the bottom layer: the scalar trait every elementary function is written over
//! ([`real`]: f32, f64 and dual numbers), the storage scalar of tensors ([`float`]: f32 for
//! training, f64 for verification) and GEMM on strided views ([`matmul`]: C <- alpha A B + beta C).

pub mod float;
pub mod matmul;
pub mod real;
