//! `periscope sweep`: the same requests at several concurrency (or rate)
//! levels, against a direct endpoint and the same endpoint behind a proxy.
//!
//! Each level runs the full request count against each endpoint, in blocks
//! (`--blocks`, default 4) the endpoints take turns at, the order
//! alternating between blocks and levels, so that drift (a warming cache, a
//! noisy neighbour) hits both alike. The overhead is proxy − direct, with 95%
//! bootstrap intervals over requests for the p50 and mean deltas. A proxy
//! that buffers streams is flagged (its chunks arrive in bursts: itl
//! collapses while ttft grows). With one `--url`, the sweep names the level
//! after which ok_rps stops growing: the saturation point.

mod stats;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cli::{RunArgs, SweepArgs};
use crate::error::{exit, Error, Result};
use crate::metrics::Sample;
use crate::plan::{Plan, ITERATIONS_MAX_DURATION};
use crate::report::sweep::{
    level_name, overhead_table, results_table, Level, Overhead, Row, SweepInputs, SweepResult,
    SCHEMA,
};
use crate::usage;
use stats::{bootstrap, mean, quantile, saturation, sorted_ok, JUDGED_LEVEL_S};

/// The level a sweep runs when none is given (the LLMTrace bench's
/// `--concurrency` default).
const DEFAULT_CONCURRENCY: u64 = 10;

/// Adds one run's output counts to the sweep's, output by output.
fn add_outputs(total: &mut Vec<crate::sink::SinkReport>, run: &[crate::sink::SinkReport]) {
    for r in run {
        match total.iter_mut().find(|t| t.label == r.label) {
            Some(t) => {
                t.written += r.written;
                t.dropped += r.dropped;
                if t.error.is_none() {
                    t.error.clone_from(&r.error);
                }
            }
            None => total.push(r.clone()),
        }
    }
}

/// The exact q-quantile of sorted values (nearest rank).
/// One endpoint's row at one level, from the blocks it ran in.
fn row(endpoint: &str, level: Level, parts: Vec<crate::Executed>) -> Row {
    let sum = |f: &dyn Fn(&crate::report::RunResult) -> u64| -> u64 {
        parts.iter().map(|p| f(&p.result)).sum()
    };
    let (requests, ok, errors) = (
        sum(&|r| r.summary.requests),
        sum(&|r| r.summary.ok),
        sum(&|r| r.summary.errors),
    );
    let duration: f64 = parts.iter().map(|p| p.result.duration_s).sum();
    let block_ok_rps = parts
        .iter()
        .map(|p| p.result.summary.ok as f64 / p.result.duration_s.max(1e-9))
        .collect();
    let mut itl: Vec<f64> = parts
        .iter()
        .filter_map(|p| p.result.latency.get("itl").map(|l| l.p50))
        .collect();
    itl.sort_by(f64::total_cmp);
    let samples: Vec<Sample> = parts.into_iter().flat_map(|p| p.samples).collect();
    let e2e = sorted_ok(&samples, |s| Some(s.e2e_ms));
    let ttft = sorted_ok(&samples, |s| s.ttft_ms);
    let mut statuses = BTreeMap::new();
    for s in samples.iter().filter(|s| !s.interrupted()) {
        let k = s.status.map_or("transport".to_string(), |c| c.to_string());
        *statuses.entry(k).or_insert(0) += 1;
    }
    Row {
        endpoint: endpoint.to_string(),
        level,
        requests,
        ok,
        errors,
        ok_rps: ok as f64 / duration.max(1e-9),
        duration_s: duration,
        mean: mean(&e2e),
        p50: quantile(&e2e, 0.5),
        p95: quantile(&e2e, 0.95),
        p99: quantile(&e2e, 0.99),
        max: e2e.last().copied().unwrap_or(0.0),
        ttft_p50: (!ttft.is_empty()).then(|| quantile(&ttft, 0.5)),
        ttft_p95: (!ttft.is_empty()).then(|| quantile(&ttft, 0.95)),
        itl_p50: (!itl.is_empty()).then(|| quantile(&itl, 0.5)),
        block_ok_rps,
        statuses,
        samples,
    }
}

fn overhead(direct: &Row, proxy: &Row, resamples: u32) -> Overhead {
    let a = sorted_ok(&direct.samples, |s| Some(s.e2e_ms));
    let b = sorted_ok(&proxy.samples, |s| Some(s.e2e_ms));
    let (p50_ci, mean_ci) = bootstrap(&a, &b, resamples, 0x5eed ^ direct.level.value() as u64);
    // A buffering proxy holds chunks back and lets them go together: the
    // first chunk comes late and the gaps between chunks vanish.
    let buffering_note = match (
        direct.ttft_p50,
        proxy.ttft_p50,
        direct.itl_p50,
        proxy.itl_p50,
    ) {
        (Some(dt), Some(pt), Some(di), Some(pi)) if di > 0.0 => {
            let generation = (direct.p50 - dt).max(0.0);
            (pi < 0.5 * di && pt - dt > 0.5 * generation && generation > 0.0).then(|| {
                format!(
                    "the proxy buffers streams: ttft p50 {dt:.1} → {pt:.1} ms while itl p50 {di:.2} → {pi:.2} ms (chunks arrive in bursts)"
                )
            })
        }
        _ => None,
    };
    // Blocks ran in pairs (the endpoints taking turns): the spread of the
    // pairs' differences is the ok_rps delta's noise.
    let pairs: Vec<f64> = proxy
        .block_ok_rps
        .iter()
        .zip(&direct.block_ok_rps)
        .map(|(p, d)| p - d)
        .collect();
    let ok_rps = proxy.ok_rps - direct.ok_rps;
    let ok_rps_ci = crate::stats::mean_ci(&pairs).map(|(lo, hi)| {
        let half = (hi - lo) / 2.0;
        (ok_rps - half, ok_rps + half)
    });
    let rate = |r: &Row| r.errors as f64 / r.requests.max(1) as f64;
    Overhead {
        level: direct.level,
        ok_rps,
        ok_rps_ci,
        error_rate: rate(proxy) - rate(direct),
        error_rate_ci: crate::stats::diff_of_proportions_ci(
            proxy.errors,
            proxy.requests,
            direct.errors,
            direct.requests,
        ),
        mean: proxy.mean - direct.mean,
        p50: proxy.p50 - direct.p50,
        p95: proxy.p95 - direct.p95,
        p99: proxy.p99 - direct.p99,
        p50_ci,
        mean_ci,
        buffering: buffering_note.is_some(),
        buffering_note,
    }
}

/// Where a sweep's run is sent and how its live points are tagged.
struct Leg<'a> {
    name: &'a str,
    /// The flag its URL came from.
    flag: &'static str,
    url: &'a str,
    /// Live points carry the endpoint's name (direct, proxy), not its URL.
    named: bool,
    run_id: &'a str,
}

fn plan_for(a: &SweepArgs, leg: &Leg, level: Level, requests: u64, first: bool) -> Result<Plan> {
    let mut sink = a.sink.clone();
    sink.endpoint_tag = leg.named.then(|| leg.name.to_string());
    sink.tags.push((
        "level".into(),
        format!("{}={}", level_name(level), level.label()),
    ));
    let mut request = a.request.clone();
    if request.tokenizer.is_none() {
        // Behind a gateway the tokenizer is the model server's: the direct
        // endpoint's `/tokenize` counts for both legs.
        request.tokenizer = a
            .direct_url
            .as_deref()
            .and_then(crate::tokenizer::origin_of)
            .map(crate::tokenizer::Choice::AutoAt);
    }
    let mut ra = RunArgs {
        workload: Some(a.workload.clone()),
        target: Some(leg.url.to_string()),
        target_flag: Some(leg.flag),
        sink,
        request,
        no_stream: a.no_stream,
        dataset: a.dataset.clone(),
        progress_every: a.progress_every,
        jitter_ms: a.jitter_ms,
        no_preflight: !first,
        segments: crate::cli::SegmentArgs {
            run_id: Some(leg.run_id.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match level {
        Level::Concurrency(n) => {
            ra.vus = Some(n);
            ra.iterations = Some(requests);
            ra.duration = Some(ITERATIONS_MAX_DURATION);
        }
        Level::Rate(rate) => {
            ra.rate = Some(rate);
            ra.duration = Some(Duration::from_secs_f64(requests as f64 / rate));
        }
    }
    Plan::from_args(&ra)
}

/// `periscope sweep`.
pub async fn run(a: SweepArgs) -> Result<i32> {
    check_workload(&a)?;
    let endpoints = endpoints_of(&a)?;
    let levels = levels_of(&a)?;
    if a.requests == 0 {
        return Err(usage!("--requests must be at least 1"));
    }
    // Every plan is checked before anything is sent.
    let run_id = crate::new_run_id();
    let legs: Vec<Leg> = endpoints
        .iter()
        .map(|(name, url, flag)| Leg {
            name,
            url,
            flag,
            named: endpoints.len() > 1,
            run_id: &run_id,
        })
        .collect();
    let mut checked = Vec::new();
    for leg in &legs {
        checked.push(plan_for(&a, leg, levels[0], a.requests, true)?);
    }
    // What every leg sends, as resolved (flags over --seed-defaults).
    let spec = &checked[0].workload.spec;
    let (stream, model, max_tokens) = (spec.stream, spec.model.clone(), spec.max_tokens);
    let exporters = crate::report::export::open(&crate::report::export::Asked {
        json: a.output_json.as_deref(),
        html: a.html.as_deref(),
        ..Default::default()
    })?;
    let board = a.dashboard.board().map_err(crate::error::Error::Usage)?;
    let mut out = header(&a, &endpoints, &checked, &model, stream);
    crate::print_stdout(&out);
    let mut summary_md = std::mem::take(&mut out);

    let mut rows: Vec<Row> = Vec::new();
    let mut overheads: Vec<Overhead> = Vec::new();
    let mut interrupted = false;
    let mut outputs: Vec<crate::sink::SinkReport> = Vec::new();
    // What each leg's preflight learned of its target.
    let mut profiles = vec![None; legs.len()];
    for (i, level) in levels.iter().enumerate() {
        let (parts, stopped) =
            run_blocks(&a, &legs, *level, i, &board, &mut outputs, &mut profiles).await?;
        interrupted = stopped;
        let level_rows: Vec<Row> = endpoints
            .iter()
            .zip(parts)
            .filter(|(_, p)| !p.is_empty())
            .map(|((name, _, _), p)| row(name, *level, p))
            .collect();
        let refs: Vec<&Row> = level_rows.iter().collect();
        let one = endpoints.len() == 1;
        let text = level_text(&a, &refs, *level, stream, one, &mut overheads);
        crate::print_stdout(&text);
        summary_md.push_str(&text);
        rows.extend(level_rows);
        if interrupted {
            break;
        }
    }

    let sat = closing(
        &mut out,
        &rows,
        &overheads,
        endpoints.len() == 1,
        stream,
        interrupted,
        &outputs,
        &run_id,
    );
    crate::print_stdout(&out);
    summary_md.push_str(&out);
    crate::report::append_step_summary(&summary_md);
    let selection = a.dataset.selection(None).map_err(Error::Usage)?;
    let doc = SweepResult {
        schema: SCHEMA.to_string(),
        inputs: SweepInputs {
            endpoints: endpoints
                .iter()
                .map(|(n, u, _)| (n.to_string(), u.to_string()))
                .collect(),
            levels,
            requests: a.requests,
            stream,
            model: Some(model),
            max_tokens: Some(max_tokens),
            jitter_ms: a.jitter_ms.filter(|j| *j > 0),
            agent_id: a.request.agent_id.clone(),
            token_present: a.request.token.as_deref().is_some_and(|t| !t.is_empty()),
            bootstrap: a.bootstrap,
            dataset: selection.is_set().then_some(selection),
        },
        rows,
        overhead: overheads,
        saturation: sat,
        interrupted,
        run_id,
        outputs,
    };
    let written =
        crate::report::export::write_all(exporters, crate::report::export::Doc::Sweep(&doc));
    if let Some(b) = &board {
        b.finish(Some(crate::report::html::render_sweep(&doc)))
            .await;
    }
    written?;
    Ok(if interrupted {
        exit::INTERRUPTED
    } else {
        exit::OK
    })
}

/// A sweep takes an LLM API's workload.
fn check_workload(a: &SweepArgs) -> Result<()> {
    match crate::workload::WorkloadKind::parse(&a.workload) {
        Some(k) if k.counts_input_tokens() => Ok(()),
        _ => Err(usage!(
            "sweep --workload takes an LLM API's workload (completions, responses, messages, tool-calls, vision, rerank, embeddings, …), not '{}'",
            a.workload
        )),
    }
}

/// The endpoints swept: one (`--url`), or direct and proxy; each with the
/// flag its URL came from.
fn endpoints_of(a: &SweepArgs) -> Result<Vec<(&str, &str, &'static str)>> {
    Ok(match (&a.url, &a.direct_url, &a.proxy_url) {
        (Some(u), None, None) => vec![("target", u.as_str(), "--url")],
        (None, Some(d), Some(p)) => vec![
            ("direct", d.as_str(), "--direct-url"),
            ("proxy", p.as_str(), "--proxy-url"),
        ],
        _ => {
            return Err(usage!(
                "give --url URL (saturation), or --direct-url URL and --proxy-url URL (overhead)"
            ))
        }
    })
}

/// The levels: `--concurrency-list`, `--rate-list`, or one concurrency.
fn levels_of(a: &SweepArgs) -> Result<Vec<Level>> {
    Ok(if !a.concurrency_list.is_empty() {
        if a.concurrency_list.contains(&0) {
            return Err(usage!("--concurrency-list: every level must be at least 1"));
        }
        a.concurrency_list
            .iter()
            .map(|n| Level::Concurrency(*n))
            .collect()
    } else if !a.rate_list.is_empty() {
        if a.rate_list.iter().any(|r| !(*r > 0.0 && r.is_finite())) {
            return Err(usage!("--rate-list: every rate must be more than 0"));
        }
        a.rate_list.iter().map(|r| Level::Rate(*r)).collect()
    } else {
        // One level: --concurrency, else the LLMTrace bench's default of 10.
        match a.concurrency.unwrap_or(DEFAULT_CONCURRENCY) {
            0 => return Err(usage!("--concurrency must be at least 1")),
            n => vec![Level::Concurrency(n)],
        }
    })
}

/// The sweep's title and what every leg sends.
fn header(
    a: &SweepArgs,
    endpoints: &[(&str, &str, &'static str)],
    checked: &[Plan],
    model: &str,
    stream: bool,
) -> String {
    format!(
        "## periscope sweep: {}\n\nToken present: {} · model `{model}`{} · {} requests per endpoint per level · {}{}\n\n",
        endpoints
            .iter()
            .zip(checked)
            .map(|((n, _, _), p)| format!("{n} {}", p.sent_to()))
            .collect::<Vec<_>>()
            .join(" vs "),
        a.request.token.as_deref().is_some_and(|t| !t.is_empty()),
        a.request
            .agent_id
            .as_deref()
            .map(|id| format!(" · agent `{id}`"))
            .unwrap_or_default(),
        a.requests,
        if stream { "streaming" } else { "not streaming" },
        a.jitter_ms
            .filter(|j| *j > 0)
            .map(|j| format!(" · jitter 0–{j} ms before each request"))
            .unwrap_or_default(),
    )
}

/// One level's requests in blocks, the endpoints taking turns (ABBA…), so
/// that drift over the level hits both alike: `--requests` in `--blocks`
/// blocks, then (`--min-level-duration`) more blocks of the same size
/// until every endpoint's blocks lasted that long. Each endpoint's runs,
/// and whether Ctrl-C stopped them.
async fn run_blocks(
    a: &SweepArgs,
    legs: &[Leg<'_>],
    level: Level,
    i: usize,
    board: &Option<crate::dashboard::Board>,
    outputs: &mut Vec<crate::sink::SinkReport>,
    profiles: &mut [Option<crate::runner::TargetProfile>],
) -> Result<(Vec<Vec<crate::Executed>>, bool)> {
    let mut interrupted = false;
    // Blocks of requests, the endpoints taking turns (ABBA…), so drift
    // over the level hits both alike.
    let blocks = a.blocks.clamp(1, a.requests.max(1));
    let min_s = a.min_level_duration.map_or(0.0, |d| d.as_secs_f64());
    let mut parts: Vec<Vec<crate::Executed>> = legs.iter().map(|_| Vec::new()).collect();
    // The level's requests in `blocks` blocks, then (--min-level-duration)
    // more blocks of the same size until every endpoint's blocks lasted
    // that long.
    let lasted = |p: &[crate::Executed]| p.iter().map(|e| e.result.duration_s).sum::<f64>();
    'blocks: for j in 0.. {
        if j >= blocks && parts.iter().all(|p| lasted(p) >= min_s) {
            break;
        }
        let n = if j < blocks {
            a.requests / blocks + u64::from(j < a.requests % blocks)
        } else {
            (a.requests / blocks).max(1)
        };
        let mut order: Vec<usize> = (0..legs.len()).collect();
        if (i as u64 + j) % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let mut plan = plan_for(a, &legs[k], level, n, i == 0 && j == 0)?;
            plan.outputs.dashboard = board.clone();
            // The leg's first block (the sweep's first) has the preflight;
            // the rest count tokens as it found.
            let ex = crate::runner::execute_known(&plan, true, profiles[k].as_ref()).await?;
            if ex.profile.is_some() && plan.request.preflight {
                profiles[k] = ex.profile.clone();
            }
            add_outputs(outputs, &ex.result.outputs);
            interrupted = ex.result.interrupted_by_user;
            parts[k].push(ex);
            if interrupted {
                break 'blocks;
            }
        }
    }
    Ok((parts, interrupted))
}

/// A level's results, with its notes and, for direct and proxy, the
/// overhead (kept in `overheads`).
fn level_text(
    a: &SweepArgs,
    refs: &[&Row],
    level: Level,
    stream: bool,
    one_endpoint: bool,
    overheads: &mut Vec<Overhead>,
) -> String {
    let mut text = format!(
        "### Results ({}={})\n\n{}\n\n",
        level_name(level),
        level.label(),
        results_table(refs, stream)
    );
    if one_endpoint {
        for r in refs.iter().filter(|r| r.duration_s < JUDGED_LEVEL_S) {
            text.push_str(&format!(
                "**note:** this level lasted {:.2} s: too short for its ok_rps to be a rate (a rate limiter's burst or a warming cache dominates), so it is not judged for saturation; give more --requests or --min-level-duration 5s\n\n",
                r.duration_s
            ));
        }
    }
    if let [direct, proxy] = refs[..] {
        let o = overhead(direct, proxy, a.bootstrap);
        text.push_str(&format!(
            "### Estimated Overhead (proxy - direct)\n\nLatency in ms, ok_rps in req/s (negative: throughput drops through the proxy), error rate in percentage points.\n\n{}\n\n",
            overhead_table(&[&o])
        ));
        if let Some(note) = &o.buffering_note {
            text.push_str(&format!("**warning: {note}**\n\n"));
        }
        overheads.push(o);
    }
    text
}

/// The sweep's closing tables and verdict, into `out`; the saturation
/// verdict of a one-endpoint sweep.
#[allow(clippy::too_many_arguments)]
fn closing(
    out: &mut String,
    rows: &[Row],
    overheads: &[Overhead],
    one_endpoint: bool,
    stream: bool,
    interrupted: bool,
    outputs: &[crate::sink::SinkReport],
    run_id: &str,
) -> Option<String> {
    let all: Vec<&Row> = rows.iter().collect();
    out.push_str(&format!(
        "### Sweep Results\n\n{}\n\n",
        results_table(&all, stream)
    ));
    if overheads.len() > 1 {
        let o: Vec<&Overhead> = overheads.iter().collect();
        out.push_str(&format!(
            "### Overhead by level (proxy - direct)\n\n{}\n\n",
            overhead_table(&o)
        ));
    }
    let sat = if one_endpoint {
        let msg = match saturation(&all) {
            Some((_, msg)) => msg,
            None if all.iter().any(|r| r.duration_s < JUDGED_LEVEL_S) => format!(
                "no saturation judged among the levels that lasted {JUDGED_LEVEL_S:.0} s or more ({} of {} lasted less: see the notes)",
                all.iter().filter(|r| r.duration_s < JUDGED_LEVEL_S).count(),
                all.len()
            ),
            None => "no saturation within the levels tried: ok_rps kept growing (or latency stayed flat)".to_string(),
        };
        out.push_str(&format!("**{msg}**\n\n"));
        Some(msg)
    } else {
        None
    };
    if interrupted {
        out.push_str("**interrupted** (Ctrl-C or SIGTERM): the levels above are all that ran.\n\n");
    }
    for o in outputs {
        out.push_str(&format!("- {} (run_id {run_id})\n", o.summary()));
    }
    if !outputs.is_empty() {
        out.push('\n');
    }
    sat
}
