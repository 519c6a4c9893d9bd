//! Training: the step ([`trainer`]: batch, loss, gradients, update), the optimiser ([`optim`]:
//! AdamW, clipping, EMA), the persistent threads of the sharded step ([`workers`]) and
//! checkpoints that resume bit for bit ([`checkpoint`]). A run in its folder, as `meanflow train`
//! runs it, is [`crate::run`].

pub mod checkpoint;
pub mod optim;
pub mod trainer;
pub mod workers;

pub use trainer::{
    builtin_pool_points, BatchSampler, ConditionSampler, GradientEngine, NonFiniteStep, Shard,
    StepStats, TrainConfig, Trainer, TrainingData, BUILTIN_POOL_POINTS, MAX_ACTIVATIONS, MAX_DEPTH,
    MAX_DIM, MAX_PARAMETERS,
};
