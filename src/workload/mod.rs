//! Workloads: what each request is.
//!
//! A workload builds the request a virtual user sends next; it knows nothing
//! of load or timing. Each workload is one module behind [`Workload`], chosen
//! by name in `plan.rs`.

mod completions;

pub use completions::{Completions, CompletionsKind, CompletionsSpec};

use crate::client::Prepared;

/// Builds requests.
pub trait Workload: Send + Sync {
    /// The workload's name, as on the command line.
    fn name(&self) -> &'static str;
    /// The request for a VU's `iteration`-th turn (the open model passes its
    /// arrival index as both).
    fn request(&self, vu: u64, iteration: u64) -> Prepared;
    /// A cheap request to check the target before the load (one output token,
    /// not streamed).
    fn preflight(&self) -> Prepared;
}

/// Every workload name, for `periscope scenarios` and error messages.
pub const NAMES: &[(&str, &str)] = &[
    (
        "completions",
        "chat completions (POST /v1/chat/completions), streamed by default",
    ),
    (
        "text-completions",
        "legacy text completions (POST /v1/completions)",
    ),
];
