//! `meanflow study gradient_noise` (being written).

use super::StudyContext;
use crate::cli::{CliError, CliResult};
use std::path::Path;

pub fn run(_context: &mut StudyContext, _dir: &Path) -> CliResult<String> {
    Err(CliError::failed("study gradient_noise: not written yet"))
}
