//! The commands: one module each, called by the crate's `run` with its
//! arguments and returning the process's exit code. `sweep` is a folder of
//! its own at the top (its model and statistics are not a command's).

pub mod compare;
pub mod merge;
pub mod mock;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod trace;
