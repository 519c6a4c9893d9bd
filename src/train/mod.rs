//! Training: the step ([`trainer`]: batch, loss, gradients, update), the optimiser ([`optim`]:
//! AdamW, clipping, EMA), the persistent threads of the sharded step ([`workers`]), checkpoints
//! that resume bit for bit ([`checkpoint`]) and a run folder's config.json ([`run_config`]).
//!
//! A training run in a run folder, as `meanflow train` runs it: the run decided before anything
//! is written ([`run_plan`]), its data and their split ([`run_data`]), the folder on disk
//! ([`run_folder`], owned by one process through [`run_lock`]), reading a folder to resume it
//! ([`resume`]), the checkpoint with the run's bookkeeping ([`run_checkpoint`]), the training loop
//! ([`session`]) with its metrics lines ([`metrics_log`]) and evaluations ([`evaluation`]), and
//! the pictures at the end ([`run_pictures`]).

pub mod checkpoint;
pub mod evaluation;
pub mod metrics_log;
pub mod optim;
pub mod resume;
pub mod run_checkpoint;
pub mod run_config;
pub mod run_data;
pub mod run_folder;
pub mod run_lock;
pub mod run_pictures;
pub mod run_plan;
pub mod session;
pub mod trainer;
pub mod workers;

pub use trainer::{
    builtin_pool_points, BatchSampler, GradientEngine, NonFiniteStep, Shard, StepStats,
    TrainConfig, Trainer, BUILTIN_POOL_POINTS, MAX_ACTIVATIONS, MAX_DEPTH, MAX_DIM, MAX_PARAMETERS,
};
