//! `meanflow study curves` (being written).

use super::StudyContext;
use crate::cli::{CliError, CliResult};
use std::path::Path;

pub fn run(_context: &mut StudyContext, _dir: &Path) -> CliResult<String> {
    Err(CliError::failed("study curves: not written yet"))
}
