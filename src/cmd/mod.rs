//! The commands: one module each, called by `run` with its arguments and
//! returning the process's exit code. `sweep` and `probe` are modules of
//! their own at the top.

pub mod compare;
pub mod merge;
pub mod mock;
pub mod report;
pub mod run;
pub mod scenarios;
