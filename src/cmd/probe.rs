//! `periscope probe`: a labelled prompt corpus sent once through, and
//! whether the service blocked each case (see `workload::probe` for how an
//! answer is judged): the cases' table, the confusion of expected against
//! outcome, and the block rate by category. It runs through the runner and
//! the executor like any load: `--workers` VUs take the cases in turn.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::cli::{ProbeArgs, RunArgs};
use crate::dataset::{Case, Label};
use crate::error::{exit, Error, Result};
use crate::plan::{Plan, Target};
use crate::report::markdown::table;
use crate::runner;
use crate::usage;
use crate::workload::probe::{one_line, Probe, Try, Verdict};

#[derive(Debug, Clone, Serialize)]
struct CaseResult {
    #[serde(flatten)]
    case: Case,
    tries: Vec<Try>,
}

impl CaseResult {
    fn last(&self) -> Verdict {
        self.tries.last().map_or(Verdict::Error, |t| t.verdict)
    }
}

/// The longest a probe may take: it ends when every case is judged.
const PROBE_MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `periscope sweep --mode probe …` (the LLMTrace bench's one command for
/// both modes) as a probe: one `--url`, its workers the sweep's
/// `--concurrency` unless given.
pub fn from_sweep(a: crate::cli::SweepArgs) -> Result<ProbeArgs> {
    if a.direct_url.is_some() || !a.concurrency_list.is_empty() || !a.rate_list.is_empty() {
        return Err(usage!(
            "--mode probe sends each case once to one --url: drop --direct-url/--proxy-url and the level lists"
        ));
    }
    let api = match crate::workload::WorkloadKind::parse(&a.workload) {
        Some(crate::workload::WorkloadKind::Completions) => crate::workload::probe::ProbeApi::Chat,
        Some(crate::workload::WorkloadKind::Responses) => {
            crate::workload::probe::ProbeApi::Responses
        }
        Some(crate::workload::WorkloadKind::Messages) => crate::workload::probe::ProbeApi::Messages,
        _ => {
            return Err(usage!(
                "--mode probe sends chat, responses or messages requests, not --workload {}",
                a.workload
            ))
        }
    };
    Ok(ProbeArgs {
        url: a.url,
        api,
        request: a.request,
        dataset: a.dataset,
        table: a.probe,
        output_json: a.output_json,
        dashboard: a.dashboard,
        progress_every: a.progress_every,
        jitter_ms: a.jitter_ms,
        mode: Some(crate::cli::Mode::Probe),
        concurrency: Some(a.concurrency.unwrap_or(10) as usize),
    })
}

/// `periscope probe`.
pub async fn main(a: ProbeArgs) -> Result<i32> {
    let (url, selection, workers) = checked(&a)?;
    let (retries, preview_chars) = (a.table.retries, a.table.preview_chars);
    let cases = selection.load().map_err(Error::Usage)?;
    if cases.is_empty() {
        return Err(usage!(
            "the corpus has no case left: loosen --dataset-label / --dataset-limit"
        ));
    }
    let exporters = crate::report::export::open(&crate::report::export::Asked {
        json: a.output_json.as_deref(),
        ..Default::default()
    })?;
    let mut request = a.request.clone();
    request.max_tokens = Some(request.max_tokens.unwrap_or(64));
    let plan = Plan::from_args(&RunArgs {
        workload: Some(a.api.workload().into()),
        target: Some(url),
        target_flag: Some("--url"),
        request,
        no_stream: true,
        vus: Some(workers as u64),
        iterations: Some(cases.len() as u64 * (u64::from(retries) + 1)),
        jitter_ms: a.jitter_ms,
        duration: Some(PROBE_MAX_DURATION),
        no_preflight: true,
        progress_every: a.progress_every,
        dashboard: a.dashboard.clone(),
        ..Default::default()
    })?;
    let Target::Remote(base) = &plan.target else {
        unreachable!("a probe's target is its --url")
    };
    let api = crate::workload::WorkloadKind::parse(a.api.workload())
        .and_then(|k| k.apis(Default::default()).first().copied())
        .unwrap_or(crate::endpoint::Api::ChatCompletions);
    let endpoint = format!("{base}/{}", api.path());
    let token_present = plan.request.token.is_some();
    let model = plan.workload.spec.model.clone();
    let agent = a
        .request
        .agent_id
        .as_deref()
        .map(|id| format!(" · agent `{id}`"))
        .unwrap_or_default();
    crate::print_stdout(&format!(
        "## periscope probe: {} cases → {endpoint}\n\nToken present: {token_present} · model `{model}`{agent} · {workers} workers · {retries} retries\n\n",
        cases.len(),
    ));
    let probe = Arc::new(Probe::new(
        cases,
        &plan.workload.spec,
        retries,
        preview_chars,
    ));
    if let Some(board) = plan.outputs.dashboard.clone() {
        show_cases(&probe, board);
    }
    let executed = runner::execute_with(&plan, false, Some(probe.clone())).await?;
    let interrupted = executed.result.interrupted_by_user;
    let (results, unsent): (Vec<CaseResult>, Vec<CaseResult>) = probe
        .results()
        .into_iter()
        .map(|(case, tries)| CaseResult { case, tries })
        .partition(|r| !r.tries.is_empty());

    let mut md = render(&results, a.table.show_prompt, preview_chars);
    if !unsent.is_empty() {
        md.push_str(&format!(
            "**{} of {} cases were not sent**{}: they are left out of the tables.\n\n",
            unsent.len(),
            results.len() + unsent.len(),
            if interrupted { " (interrupted)" } else { "" }
        ));
    }
    crate::print_stdout(&md);
    crate::report::append_step_summary(&md);
    let doc = json!({
            "schema": "periscope.probe/v1",
            "inputs": {
                "url": endpoint,
                "model": model,
                "token_present": token_present,
                "dataset": selection,
                "workers": workers,
                "retries": retries,
                "agent_id": a.request.agent_id,
            },
            "interrupted": interrupted,
            "confusion": confusion(&results),
            "cases": results,
        "unsent": unsent.iter().map(|r| &r.case.id).collect::<Vec<_>>(),
    });
    let written =
        crate::report::export::write_all(exporters, crate::report::export::Doc::Probe(&doc));
    if let Some(b) = &plan.outputs.dashboard {
        b.push(
            "cases",
            &serde_json::json!({ "confusion": doc["confusion"] }),
        );
        b.finish(None).await;
    }
    written?;
    Ok(if interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// The target, the corpus asked for and the workers, checked before
/// anything is loaded or sent.
fn checked(a: &ProbeArgs) -> Result<(String, crate::dataset::Selection, usize)> {
    if a.mode == Some(crate::cli::Mode::Load) {
        return Err(usage!(
            "--mode load is `periscope sweep` (the same flags); probe sends each case once"
        ));
    }
    let url = a
        .url
        .clone()
        .ok_or_else(|| usage!("no target: pass --url URL (or set OPENAI_BASE_URL)"))?;
    let selection = a.dataset.selection(None).map_err(Error::Usage)?;
    if !selection.is_set() {
        return Err(usage!(
            "probe needs a corpus: --dataset-suite core|external|all or --dataset-file PATH"
        ));
    }
    let workers = match a.table.workers {
        Some(0) | None => a.concurrency.unwrap_or(8),
        Some(n) => n,
    };
    if workers == 0 {
        return Err(usage!("--workers must be at least 1"));
    }
    Ok((url, selection, workers))
}

/// Each case's verdict to the dashboard as it ends.
fn show_cases(probe: &Probe, board: crate::dashboard::Board) {
    probe.on_case(Box::new(move |case, t| {
        board.push(
            "case",
            &json!({
                "id": case.id,
                "category": case.category,
                "expected": expected(case.label),
                "verdict": t.verdict,
                "attempt": t.attempt,
                "status": t.status,
                "latency_ms": t.latency_ms,
                "at": board.at(),
            }),
        );
    }));
}

/// Counts of (expected, outcome): expected `block`/`allow`, outcome
/// `blocked`/`allowed`/`error`.
fn confusion(results: &[CaseResult]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut m: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in results {
        let expected = expected(r.case.label);
        let got = match r.last() {
            Verdict::Blocked => "blocked",
            Verdict::Allowed => "allowed",
            Verdict::Error => "error",
        };
        *m.entry(expected.to_string())
            .or_default()
            .entry(got.to_string())
            .or_default() += 1;
    }
    m
}

fn expected(l: Label) -> &'static str {
    match l {
        Label::Benign => "allow",
        Label::Malicious => "block",
    }
}

fn render(results: &[CaseResult], show_prompt: bool, preview_chars: usize) -> String {
    let mut header = vec!["Case", "Try", "HTTP", "Blocked?", "Expected", "Latency(ms)"];
    if show_prompt {
        header.push("Prompt");
    }
    header.push("Preview");
    let mut rows = Vec::new();
    for r in results {
        for t in &r.tries {
            let mut row = vec![
                r.case.id.clone(),
                t.attempt.to_string(),
                t.status.map_or("-".to_string(), |s| s.to_string()),
                match t.verdict {
                    Verdict::Blocked => "yes".to_string(),
                    Verdict::Allowed => "no".to_string(),
                    Verdict::Error => "error".to_string(),
                },
                expected(r.case.label).to_string(),
                format!("{:.1}", t.latency_ms),
            ];
            if show_prompt {
                row.push(one_line(&r.case.text, preview_chars));
            }
            row.push(t.preview.clone());
            rows.push(row);
        }
    }
    let mut out = format!("### Cases\n\n{}\n\n", table(&header, rows));

    let c = confusion(results);
    let get = |e: &str, g: &str| c.get(e).and_then(|m| m.get(g)).copied().unwrap_or(0);
    let crow = |e: &str| {
        let n = get(e, "blocked") + get(e, "allowed") + get(e, "error");
        vec![
            e.to_string(),
            get(e, "blocked").to_string(),
            get(e, "allowed").to_string(),
            get(e, "error").to_string(),
            n.to_string(),
        ]
    };
    out.push_str(&format!(
        "### Confusion (expected × outcome)\n\n{}\n\n",
        table(
            &["expected", "blocked", "allowed", "error", "cases"],
            vec![crow("block"), crow("allow")]
        )
    ));
    let judged = |e: &str| (get(e, "blocked") + get(e, "allowed")).max(1) as f64;
    out.push_str(&format!(
        "Malicious cases blocked: {:.1}% · benign cases blocked (false positives): {:.1}% · errors: {}\n\n",
        get("block", "blocked") as f64 / judged("block") * 100.0,
        get("allow", "blocked") as f64 / judged("allow") * 100.0,
        get("block", "error") + get("allow", "error"),
    ));

    let mut cats: BTreeMap<(String, &'static str), (u64, u64)> = BTreeMap::new();
    for r in results {
        let e = cats
            .entry((r.case.category.clone(), expected(r.case.label)))
            .or_default();
        e.0 += 1;
        if r.last() == Verdict::Blocked {
            e.1 += 1;
        }
    }
    let rows = cats
        .iter()
        .map(|((cat, exp), (n, b))| {
            vec![
                if cat.is_empty() {
                    "-".to_string()
                } else {
                    cat.clone()
                },
                exp.to_string(),
                n.to_string(),
                b.to_string(),
                format!("{:.1}%", *b as f64 / (*n).max(1) as f64 * 100.0),
            ]
        })
        .collect();
    out.push_str(&format!(
        "### Block rate by category\n\n{}\n\n",
        table(
            &["category", "expected", "cases", "blocked", "block rate"],
            rows
        )
    ));
    out
}
