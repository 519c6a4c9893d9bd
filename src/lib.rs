//! # meanflow
//!
//! A from-scratch CPU engine for one-step generative models: MeanFlow (MF) and improved MeanFlow
//! (iMF). Forward mode (dual numbers, tensor JVPs), reverse mode (a tape), and reverse over forward
//! (the gradient of a JVP), each checked against finite differences.
//!
//! Layers, bottom up; each folder uses only the ones above it (tests and doc links aside), and
//! the command-line tool (src/cli/, not part of the library) only parses arguments, calls these
//! and prints:
//! - [`linalg`]: the scalar trait ([`linalg::real`]), the storage scalar f32 / f64
//!   ([`linalg::float`]), GEMM on strided views ([`linalg::matmul`]) and a symmetric eigen-solver
//!   ([`linalg::eigen`]).
//! - [`autodiff`]: dual numbers ([`autodiff::dual`]), elementary functions written once over reals
//!   and duals ([`autodiff::elementwise`]), and the tape ([`autodiff::tape`]: every primitive's
//!   evaluation / JVP / VJP rules, reverse mode, forward mode, reverse over forward, the speed
//!   rules, and JAX's front door [`autodiff::tape::jvp`], [`autodiff::tape::vjp`],
//!   [`autodiff::tape::grad`]).
//! - [`names`]: command-line names of enums; [`rng`]: the random stream.
//! - [`flow`]: the network u(z, r, t) (+ v-head), the MeanFlow losses, the (r, t) sampler and the
//!   one-step, n-step and Euler samplers.
//! - [`io`]: safetensors files and atomic writes.
//! - [`train`]: the training step, AdamW / clipping / EMA, worker threads, checkpoints that resume
//!   bit for bit.
//! - [`data`]: built-in toy datasets and CSV / NPY files.
//! - [`verify`]: the tests' oracles and tolerances, reference cases for `verify`, sample metrics,
//!   a classifier trained on labelled data and the Fréchet distance in its features.
//! - [`plot`]: PNG figures with a bundled font.
//! - [`run`]: a training run in its folder (plan, config.json, data split, staging, lock, resume,
//!   the loop with its metrics and evaluations, the pictures), as `meanflow train` runs it.
//! - [`study`]: the MF vs iMF study's computation; [`bench`](mod@bench): the benchmark step and
//!   the FMA peak.

pub mod autodiff;
pub mod bench;
pub mod data;
pub mod flow;
pub mod io;
pub mod linalg;
pub mod names;
pub mod plot;
pub mod rng;
pub mod run;
pub mod study;
pub mod train;
pub mod verify;
