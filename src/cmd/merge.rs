//! `periscope merge`: the segments of one run (or results of one plan) into
//! one result, exactly, and its thresholds' verdict.

use std::time::Instant;

use crate::cli::MergeArgs;
use crate::error::{Error, Result};
use crate::report::{self, result::RunResult};

use super::run::verdict;

/// `periscope merge`: the merged result, its tables, and its thresholds' verdict.
pub async fn main(a: MergeArgs) -> Result<i32> {
    let results = match a.wait {
        Some(limit) => wait_for_results(&a.inputs, limit).await?,
        None => a
            .inputs
            .iter()
            .map(|p| report::read::run_result(p).map(|r| (p.clone(), r)))
            .collect::<Result<Vec<_>>>()?,
    };
    let exporters = report::export::open(&report::export::Asked {
        markdown: true,
        step_summary: true,
        json: Some(&a.output),
        json_flag: Some("--output"),
        html: a.html.as_deref(),
        ..Default::default()
    })?;
    let merged = report::merge::merge(&results, a.force)?;
    report::export::write_all(exporters, report::export::Doc::Run(&merged))?;
    verdict(&merged, false)
}

/// Read every input once it is a whole result, within `limit`: the error
/// at the deadline names what is still missing and why.
async fn wait_for_results(
    inputs: &[std::path::PathBuf],
    limit: std::time::Duration,
) -> Result<Vec<(std::path::PathBuf, RunResult)>> {
    let deadline = Instant::now() + limit;
    let mut done: Vec<Option<RunResult>> = vec![None; inputs.len()];
    loop {
        let mut missing = Vec::new();
        for (slot, path) in done.iter_mut().zip(inputs) {
            if slot.is_none() {
                match report::read::run_result(path) {
                    Ok(r) => *slot = Some(r),
                    Err(e) => missing.push(e.to_string()),
                }
            }
        }
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "--wait {}: {} of {} result(s) still not there: {}",
                crate::fmt::fmt_dur(limit),
                missing.len(),
                inputs.len(),
                missing.join("; ")
            )));
        }
        tokio::time::sleep(std::time::Duration::from_secs(2).min(limit)).await;
    }
    Ok(inputs
        .iter()
        .cloned()
        .zip(done.into_iter().flatten())
        .collect())
}
