//! `periscope run`: plan, run, print the tables, write the outputs (opened
//! before anything is sent), and judge the thresholds.

use crate::cli::RunArgs;
use crate::error::{exit, Result};
use crate::executor::{self, describe_load};
use crate::plan::{Plan, Target};
use crate::print_stdout;
use crate::report::{self, result::RunResult};

pub async fn main(a: RunArgs) -> Result<i32> {
    let plan = Plan::from_args(&a)?;
    if plan.dry_run {
        let target_label = match &plan.target {
            Target::Mock { config: _, .. } => "http://127.0.0.1:<free port>/v1".to_string(),
            Target::Remote(url) => url.clone(),
        };
        let view = plan.view(&target_label);
        let json = serde_json::to_string_pretty(&view).map_err(anyhow::Error::from)?;
        let traces = plan
            .workload
            .otlp
            .as_ref()
            .map(|o| {
                let queries = o
                    .planned_queries()
                    .map(|q| format!("planned queries: {q}\n"))
                    .unwrap_or_default();
                if o.test_type == Some(crate::otlp::TestType::Query) {
                    return queries;
                }
                format!(
                    "planned traces: {}\n{queries}",
                    o.planned(plan.load.shape.mean_rate())
                )
            })
            .unwrap_or_default();
        print_stdout(&format!(
            "{json}\n\nplanned load: {}\n{}{traces}--dry-run: nothing was sent.\n",
            match &plan.load.search {
                Some(s) => format!(
                    "{} (at most {})",
                    s.describe(),
                    humantime::format_duration(s.bound())
                ),
                None => describe_load(&plan.load.shape),
            },
            describe_segment(&plan),
        ));
        return Ok(exit::OK);
    }
    // Every output path is opened before the run: a bad one fails first.
    let exporters = report::export::open(&export_asked(&plan.outputs))?;
    let result = run_n(&plan).await?;
    let written = report::export::write_all(exporters, report::export::Doc::Run(&result));
    if let Some(board) = &plan.outputs.dashboard {
        board.finish(Some(report::html::render(&result))).await;
    }
    written?;
    if !plan.segment.segment.is_whole() {
        // A segment's share is not the plan: the verdict is the merge's.
        if !result.thresholds.is_empty() {
            eprintln!(
                "segment {}: thresholds are judged on the whole run: `periscope merge` the {} segments' results",
                plan.segment.segment, plan.segment.segment.count
            );
        }
        return Ok(if result.interrupted_by_user {
            exit::INTERRUPTED
        } else {
            exit::OK
        });
    }
    verdict(&result, plan.load.strict_schedule)
}

/// The plan run `--runs` times (once by default), each on fresh
/// connections, `--between-runs` between them: the last run's result, with
/// every run's figures when there were several. An interrupted run ends
/// the series there.
async fn run_n(plan: &Plan) -> Result<RunResult> {
    let n = plan.load.runs.max(1);
    let mut results: Vec<RunResult> = Vec::new();
    for i in 0..n {
        if i > 0 {
            if let Some(cmd) = &plan.load.between_runs {
                between(cmd)?;
            }
        }
        let r = crate::runner::execute(plan, false).await?.result;
        if n > 1 {
            eprintln!(
                "run {}/{n}: {} requests, {} errors, {:.2} ok req/s in {:.1}s",
                i + 1,
                r.summary.requests,
                r.summary.errors,
                r.summary.ok_rps,
                r.duration_s
            );
        }
        let stop = r.interrupted_by_user;
        results.push(r);
        if stop {
            break;
        }
    }
    let repeats = (results.len() > 1)
        .then(|| report::runs::Repeats::of(&results, plan.load.between_runs.clone()));
    let mut last = results.pop().expect("at least one run");
    last.runs = repeats;
    Ok(last)
}

/// `--between-runs CMD`, by the shell; a failure is the run's error.
fn between(cmd: &str) -> Result<()> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map_err(|e| {
            crate::error::Error::Usage(format!("--between-runs '{cmd}': cannot run it: {e}"))
        })?;
    if !status.success() {
        return Err(crate::error::Error::Usage(format!(
            "--between-runs '{cmd}' failed ({status}): the runs stop here"
        )));
    }
    Ok(())
}

/// What a segment of the plan runs, for `--dry-run`.
fn describe_segment(plan: &Plan) -> String {
    let seg = plan.segment.segment;
    if seg.is_whole() {
        return String::new();
    }
    let n = seg.count;
    let mut parts = vec![match &plan.load.shape {
        executor::Load::Closed { vus, iterations } => {
            let peak = vus.peak().round() as u64;
            let iters = iterations
                .map(|i| format!(", {} of the {i} iterations", seg.share(i)))
                .unwrap_or_default();
            format!(
                "the VUs at stack positions k with k mod {n} = {} ({} of the peak {peak}){iters}",
                seg.index - 1,
                seg.share(peak)
            )
        }
        executor::Load::Open { .. }
            if plan
                .workload
                .otlp
                .as_ref()
                .is_some_and(|o| o.mb_per_s.is_some()) =>
        {
            format!(
                "1/{n} of the bytes per second, its first arrival shifted by {}/{n} of a mean gap",
                seg.index - 1
            )
        }
        executor::Load::Open { .. } => format!(
            "the arrivals k with k mod {n} = {} (1/{n} of the rate)",
            seg.index - 1
        ),
    }];
    if let Some(d) = &plan.workload.spec.dataset {
        parts.push(format!("{} dataset case(s) of its own", d.len()));
    }
    let start = plan
        .segment
        .start_at
        .map(|t| format!(" from {}", humantime::format_rfc3339_millis(t)))
        .unwrap_or_default();
    format!(
        "this process: segment {seg}{start}, run `{}`: {}\n",
        plan.segment.run_id.as_deref().unwrap_or("?"),
        parts.join("; ")
    )
}

/// The end-of-run formats a run's flags ask for: the tables always, the
/// files named.
fn export_asked(o: &crate::plan::Outputs) -> report::export::Asked<'_> {
    report::export::Asked {
        markdown: true,
        step_summary: true,
        json: o.json.as_deref(),
        vllm: matches!(o.json_format, crate::cli::JsonFormat::Vllm),
        html: o.html.as_deref(),
        csv: o.csv.as_deref(),
        ..Default::default()
    }
}

/// The exit code of a result: 105 when Ctrl-C or SIGTERM stopped it (its
/// thresholds are still judged and printed), else 99 when a threshold
/// failed (or the schedule slipped under --strict-schedule).
pub(crate) fn verdict(result: &RunResult, strict_schedule: bool) -> Result<i32> {
    let failed: Vec<&str> = result
        .thresholds
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.threshold.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("error: thresholds failed: {}", failed.join(", "));
    }
    if result.interrupted_by_user {
        eprintln!(
            "interrupted: the run did not reach its end (exit {})",
            exit::INTERRUPTED
        );
        return Ok(exit::INTERRUPTED);
    }
    if !failed.is_empty() {
        return Ok(exit::THRESHOLD);
    }
    if strict_schedule && result.schedule.as_ref().is_some_and(|s| s.behind) {
        eprintln!("error: the generator fell behind its schedule (--strict-schedule)");
        return Ok(exit::THRESHOLD);
    }
    Ok(exit::OK)
}
