//! # meanflow
//!
//! A from-scratch CPU engine for one-step generative models: MeanFlow (MF) and improved MeanFlow
//! (iMF). Forward mode (dual numbers, tensor JVPs), reverse mode (a tape), and reverse over forward
//! (the gradient of a JVP), each checked against finite differences.
//!
//! Layers, bottom up (each uses only the ones above it):
//! - [`real`], [`dual`]: scalars and dual numbers; [`elementwise`]: functions written once over them.
//! - [`float`], [`matmul`]: the storage scalar (f32/f64) and GEMM on strided views;
//!   [`fma_peak`]: the measured f32 FMA peak that [`bench`](mod@bench) compares the GEMM speed with.
//! - [`tape`]: tensors, ops with their evaluation / JVP / VJP rules, reverse and forward mode, the
//!   speed rules, and the functional front door [`tape::jvp`], [`tape::vjp`], [`tape::grad`]
//!   (JAX's names).
//! - [`names`]: command-line names of enums; [`rng`]: the random stream; [`check`]: the oracles and
//!   tolerances of the tests.
//! - [`model`]: the network u(z, r, t) (+ v-head) on the tape; [`loss`]: the MeanFlow losses;
//!   [`time_sampler`]: (r, t); [`sampling`]: one-step, n-step and Euler samplers.
//! - [`optim`]: AdamW, clipping, EMA; [`workers`]: the persistent threads of the sharded step;
//!   [`train`]: the training step.
//! - [`tensor_file`]: safetensors files and atomic writes; [`checkpoint`]: checkpoints that resume
//!   bit for bit; [`run_config`]: a run folder's config.json; [`reference`](mod@reference): reference cases for
//!   `verify`.
//! - [`data`]: built-in toy datasets and CSV / NPY files; [`metrics`]: sliced W1, energy distance.
//! - [`plot`]: PNG figures (sample scatter panels, loss curves, heat maps) with a bundled font.
//! - [`study`]: the MF vs iMF study's computation; [`bench`](mod@bench): the benchmark step.

pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod data;
pub mod dual;
pub mod elementwise;
pub mod float;
pub mod fma_peak;
pub mod loss;
pub mod matmul;
pub mod metrics;
pub mod model;
pub mod names;
pub mod optim;
pub mod plot;
pub mod real;
pub mod reference;
pub mod rng;
pub mod run_config;
pub mod sampling;
pub mod study;
pub mod tape;
pub mod tensor_file;
pub mod time_sampler;
pub mod train;
pub mod workers;
