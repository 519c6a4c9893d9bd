//! `meanflow study conditional_variance` (being written).

use super::StudyContext;
use crate::cli::{CliError, CliResult};
use std::path::Path;

pub fn run(_context: &mut StudyContext, _dir: &Path) -> CliResult<String> {
    Err(CliError::failed(
        "study conditional_variance: not written yet",
    ))
}
