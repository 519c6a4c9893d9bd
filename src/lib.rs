//! # meanflow
//!
//! A from-scratch CPU engine for one-step generative models: MeanFlow (MF) and improved MeanFlow
//! (iMF). Forward mode (dual numbers, tensor JVPs), reverse mode (a tape), and reverse over forward
//! (the gradient of a JVP), each checked against finite differences.
//!
//! Layers, bottom up:
//! - [`real`], [`dual`]: scalars and dual numbers; [`elementwise`]: functions written once over them.
//! - [`float`], [`matmul`]: the storage scalar (f32/f64) and GEMM on strided views;
//!   [`fma_peak`]: the measured f32 FMA peak that [`bench`](mod@bench) compares the GEMM speed with.
//! - [`tape`]: tensors, ops with their evaluation / JVP / VJP rules, reverse and forward mode, and
//!   the functional front door [`tape::jvp`], [`tape::vjp`], [`tape::grad`] (JAX's names).
//! - [`data`]: built-in toy datasets and CSV / NPY files; [`metrics`]: sliced W1, energy distance.
//! - [`plot`]: PNG figures (sample scatter panels, loss curves, heat maps) with an embedded font.
//! - [`train`], [`checkpoint`]: training steps, and checkpoints that resume them bit for bit;
//!   [`run_config`]: a run folder's config.json.

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
