//! Outputs at the end of a run, read from the result model only.
//!
//! One file per format: `markdown.rs` (the tables on stdout) and `json.rs`
//! (the `periscope.result/v1` document).

pub mod json;
pub mod markdown;
pub mod result;
pub mod scenario;

pub use result::RunResult;
