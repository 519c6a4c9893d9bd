//! A training run in its folder, as `meanflow train` runs it: the run decided before anything is
//! written ([`plan`]), its settings in config.json ([`config`]), its data and their split
//! ([`dataset`]), the folder on disk ([`folder`], owned by one process through [`lock`]), reading a
//! folder to resume it ([`resume`]), the checkpoint with the run's bookkeeping ([`checkpoint`]),
//! the training loop ([`session`]) with its metrics lines ([`metrics_log`]) and evaluations
//! ([`evaluation`]), and the pictures at the end ([`pictures`]).
//!
//! The loop reports to an observer and stops on a flag: signals, terminals and exit codes are
//! the command-line tool's.

pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod divergence;
pub mod evaluation;
pub mod folder;
pub mod lock;
pub mod metrics_log;
pub mod pictures;
pub mod plan;
pub mod resume;
pub mod session;
