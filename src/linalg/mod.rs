//! Numbers and GEMM, the bottom layer: the scalar trait every elementary function is written over
//! ([`real`]: f32, f64 and dual numbers), the storage scalar of tensors ([`float`]: f32 for
//! training, f64 for verification), GEMM on strided views ([`matmul`]: C <- alpha A B + beta C),
//! and the eigen-decomposition of a symmetric matrix by Jacobi rotations ([`eigen`], for the
//! Fréchet distance of `verify`).

pub mod eigen;
pub mod float;
pub mod matmul;
pub mod real;
