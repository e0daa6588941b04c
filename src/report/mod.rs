//! Outputs at the end of a run, read from the result model only.
//!
//! One file per format: `markdown.rs` (the tables on stdout), `json.rs` (the
//! `periscope.result/v1` document's file), `html.rs` (the self-contained
//! report), `csv.rs` (per-request and summary rows), `vllm.rs` (vLLM's
//! benchmark JSON); `export.rs` puts them behind one `Exporter` trait, the
//! way every command writes them. `read.rs` reads results back for
//! `report`, `compare` (`compare.rs`) and `merge` (`merge.rs`).

pub mod chart;
pub mod compare;
pub mod csv;
pub mod export;
mod groups;
pub mod html;
pub mod json;
pub mod markdown;
pub mod merge;
pub mod otlp;
pub mod read;
pub mod result;
pub mod runs;
pub mod scenario;
pub mod script;
mod search;
pub mod server;
pub mod side;
pub mod steady;
pub mod sweep;
pub mod timings;
pub mod view;
pub mod vllm;

pub use result::RunResult;

/// Append `markdown` to the GitHub job summary when `GITHUB_STEP_SUMMARY`
/// names one; a failure is a warning, never the run's failure.
pub fn append_step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(markdown.as_bytes())?;
            f.write_all(b"\n")
        });
    if let Err(e) = res {
        eprintln!(
            "warning: cannot append to GITHUB_STEP_SUMMARY ({}): {e}",
            std::path::Path::new(&path).display()
        );
    }
}
