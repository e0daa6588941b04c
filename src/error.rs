//! The top-level error type and the documented exit codes.
//!
//! Every failure that reaches `main` is one of these; `main` prints it as one
//! line (`error: …`) and exits with [`Error::exit_code`]. Per-request failures
//! are not errors here: they are counted by class in `metrics`.

/// Exit codes (the k6 convention for thresholds), as the README states them.
pub mod exit {
    /// The run finished and every threshold passed.
    pub const OK: i32 = 0;
    /// Bad usage or configuration: nothing was sent.
    pub const USAGE: i32 = 1;
    /// The run could not start (the target failed its preflight check).
    pub const START: i32 = 2;
    /// The run was measured, but an output could not be written at its end
    /// (a disk full, a path gone): the summary was printed, and every other
    /// output written.
    pub const IO: i32 = 3;
    /// A threshold failed (or the schedule slipped under `--strict-schedule`).
    pub const THRESHOLD: i32 = 99;
    /// Stopped by Ctrl-C or SIGTERM before its end (k6's "external abort"):
    /// the summary and every output were still written, and the thresholds
    /// judged on what was measured.
    pub const INTERRUPTED: i32 = 105;
}

/// Errors that end a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something invalid; the message says what to fix.
    #[error("{0}")]
    Usage(String),
    /// The target could not be used (unreachable, auth refused, model unknown).
    #[error("{0}")]
    Start(String),
    /// An output could not be written at the end of the run.
    #[error("{0}")]
    Io(String),
    /// Anything else; printed with its context chain.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Start(_) => exit::START,
            Error::Io(_) => exit::IO,
            Error::Other(_) => exit::USAGE,
        }
    }
}

/// Shorthand for a usage error built with `format!`.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => { $crate::error::Error::Usage(format!($($arg)*)) };
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
