//! periscope: a load generator and benchmark for OpenAI-compatible LLM APIs.
//!
//! # Layout
//!
//! Data flows one way: `Args -> Plan -> executor (workload + client) ->
//! RequestRecord -> metrics -> result model -> report / progress`.
//!
//! - `cli`: clap arguments and value parsers; `plan`: validated configuration.
//! - `workload`: what each request is; `client`: sends one request, parses SSE.
//! - `executor`: closed (VUs) and open (arrival schedule) models.
//! - `metrics`: HDR histograms and per-second windows, owned by a collector task.
//! - `report`: the result model and its formats; `progress`: the live line.
//! - `mock`: the built-in OpenAI-compatible server; `timer`: sub-ms sleeps.

pub mod cli;
pub mod client;
pub mod dataset;
pub mod error;
pub mod executor;
pub mod fmt;
pub mod metrics;
pub mod mock;
pub mod otlp;
pub mod plan;
pub mod preflight;
pub mod probe;
pub mod progress;
pub mod record;
pub mod report;
pub mod scenario;
pub mod sink;
pub mod slo;
pub mod sweep;
pub mod timer;
pub mod tokenizer;
pub mod values;
pub mod worker;
pub mod workload;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::cli::{Args, Command, RunArgs};
use crate::error::{exit, Error, Result};
use crate::executor::describe_load;
use crate::metrics::{Collector, Gauges};
use crate::mock::MockArgs;
use crate::plan::{Plan, Target};
use crate::report::json::JsonOutput;
use crate::report::result::{Inputs, RunResult};

/// Run a command on a new tokio runtime and return the process exit code;
/// errors are printed as one line on stderr.
pub fn main_with(args: Args) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::USAGE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            match &e {
                Error::Other(inner) => eprintln!("error: {inner:#}"),
                other => eprintln!("error: {other}"),
            }
            e.exit_code()
        }
    }
}

/// Run one command; returns the exit code.
pub async fn run(args: Args) -> Result<i32> {
    match args.command {
        Command::Run(a) => run_load(*a).await,
        Command::Mock(a) => run_mock(*a).await,
        Command::Sweep(a) => sweep::run(*a).await,
        Command::Probe(a) => probe::run(*a).await,
        Command::Report(a) => report_cmd(*a),
        Command::Compare(a) => compare_cmd(*a),
        Command::Merge(a) => merge_cmd(*a).await,
        Command::Scenarios => {
            let mut out = String::from("Workloads (periscope run WORKLOAD):\n");
            for (name, what) in workload::NAMES {
                out.push_str(&format!("  {name:<20} {what}\n"));
            }
            out.push_str(
                "\nScenarios (periscope run WORKLOAD --scenario NAME; `load` is the default):\n",
            );
            out.push_str(&scenario::listing());
            print_stdout(&out);
            Ok(exit::OK)
        }
    }
}

/// Print to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn print_stdout(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

async fn run_mock(a: MockArgs) -> Result<i32> {
    let config = mock::MockConfig::from_args(&a).map_err(Error::Usage)?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", a.listen)))?;
    let addr = listener.local_addr().map_err(anyhow::Error::from)?;
    match &config.upstream {
        Some(up) => eprintln!(
            "periscope mock: proxying http://{addr} → {up} with {} added",
            fmt::fmt_dur(config.added_latency)
        ),
        None => eprintln!(
            "periscope mock: listening on http://{addr}/v1 (stats at http://{addr}/mock/stats)"
        ),
    }
    mock::serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(exit::OK)
}

/// A fresh run id: 12 characters of [0-9a-z].
pub(crate) fn new_run_id() -> String {
    let mut rng = fastrand::Rng::new();
    (0..12)
        .map(|_| char::from_digit(rng.u32(0..36), 36).unwrap_or('0'))
        .collect()
}

async fn run_load(a: RunArgs) -> Result<i32> {
    let plan = Plan::from_args(&a)?;
    if plan.dry_run {
        let target_label = match &plan.target {
            Target::Mock(_) => "http://127.0.0.1:<free port>/v1".to_string(),
            Target::Remote(url) => url.clone(),
        };
        let view = plan.view(&target_label);
        let json = serde_json::to_string_pretty(&view).map_err(anyhow::Error::from)?;
        let traces = plan
            .otlp_view
            .as_ref()
            .map(|o| {
                let queries = o
                    .planned_queries()
                    .map(|q| format!("planned queries: {q}\n"))
                    .unwrap_or_default();
                format!(
                    "planned traces: {}\n{queries}",
                    o.planned(plan.load.mean_rate())
                )
            })
            .unwrap_or_default();
        print_stdout(&format!(
            "{json}\n\nplanned load: {}\n{}{traces}--dry-run: nothing was sent.\n",
            describe_load(&plan.load),
            describe_segment(&plan),
        ));
        return Ok(exit::OK);
    }
    // Every output path is opened before the run: a bad one fails first.
    let json_out = plan.json.as_deref().map(JsonOutput::open).transpose()?;
    let html_out = open_html(plan.html.as_deref())?;
    let csv_out = plan.csv.as_deref().map(open_csv).transpose()?;
    let result = execute(&plan, false).await?.result;
    let markdown = report::markdown::render(&result);
    print_stdout(&markdown);
    report::append_step_summary(&markdown);
    if let Some(out) = json_out {
        out.write(&result)?;
    }
    if let Some(out) = html_out {
        out.write_str(&report::html::render(&result))?;
    }
    if let Some(path) = csv_out {
        report::csv::write(&result, &path, None)?;
    }
    if !plan.segment.is_whole() {
        // A segment's share is not the plan: the verdict is the merge's.
        if !result.thresholds.is_empty() {
            eprintln!(
                "segment {}: thresholds are judged on the whole run: `periscope merge` the {} segments' results",
                plan.segment, plan.segment.count
            );
        }
        return Ok(exit::OK);
    }
    verdict(&result, plan.strict_schedule)
}

/// What a segment of the plan runs, for `--dry-run`.
fn describe_segment(plan: &Plan) -> String {
    let seg = plan.segment;
    if seg.is_whole() {
        return String::new();
    }
    let n = seg.count;
    let mut parts = vec![match &plan.load {
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
                .otlp_view
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
    if let Some(d) = &plan.workload.dataset {
        parts.push(format!("{} dataset case(s) of its own", d.len()));
    }
    let start = plan
        .start_at
        .map(|t| format!(" from {}", humantime::format_rfc3339_millis(t)))
        .unwrap_or_default();
    format!(
        "this process: segment {seg}{start}, run `{}`: {}\n",
        plan.run_id.as_deref().unwrap_or("?"),
        parts.join("; ")
    )
}

fn open_html(path: Option<&std::path::Path>) -> Result<Option<JsonOutput>> {
    path.map(|p| JsonOutput::open_for(p, "--html")).transpose()
}

/// Check that both CSV files can be written, before anything runs.
fn open_csv(path: &std::path::Path) -> Result<std::path::PathBuf> {
    JsonOutput::open_for(path, "--csv")?;
    JsonOutput::open_for(&report::csv::summary_path(path), "--csv")?;
    Ok(path.to_path_buf())
}

/// The exit code of a result: 99 when a threshold failed (or the schedule
/// slipped under --strict-schedule).
fn verdict(result: &RunResult, strict_schedule: bool) -> Result<i32> {
    let failed: Vec<&str> = result
        .thresholds
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.threshold.as_str())
        .collect();
    if !failed.is_empty() {
        eprintln!("error: thresholds failed: {}", failed.join(", "));
        return Ok(exit::THRESHOLD);
    }
    if strict_schedule && result.schedule.as_ref().is_some_and(|s| s.behind) {
        eprintln!("error: the generator fell behind its schedule (--strict-schedule)");
        return Ok(exit::THRESHOLD);
    }
    Ok(exit::OK)
}

/// `periscope report`: print the tables of a result, or write its HTML and CSV.
fn report_cmd(a: cli::ReportArgs) -> Result<i32> {
    let doc = report::read::document(&a.result)?;
    let html_out = open_html(a.html.as_deref())?;
    match doc {
        report::read::Document::Run(r) => {
            if let Some(path) = &a.csv {
                report::csv::write(&r, path, Some(&a.result))?;
            }
            if let Some(out) = html_out {
                out.write_str(&report::html::render(&r))?;
            }
            if a.csv.is_none() && a.html.is_none() {
                print_stdout(&report::markdown::render(&r));
            }
        }
        report::read::Document::Sweep(s) => {
            if a.csv.is_some() {
                return Err(Error::Usage(format!(
                    "{}: --csv is for run results; a sweep's raw latencies are in its JSON (rows[].samples)",
                    a.result.display()
                )));
            }
            if let Some(out) = html_out {
                out.write_str(&report::html::render_sweep(&s))?;
            } else {
                print_stdout(&report::sweep::render_tables(&s));
            }
        }
    }
    Ok(exit::OK)
}

/// `periscope compare`: exit 99 on a regression beyond the bound.
fn compare_cmd(a: cli::CompareArgs) -> Result<i32> {
    let base = report::read::run_result(&a.baseline)?;
    let cur = report::read::run_result(&a.current)?;
    let c = report::compare::compare(
        (&a.baseline, &base),
        (&a.current, &cur),
        &a.metrics,
        a.max_regression,
        a.noise,
        a.force,
    )?;
    let md = report::compare::render(&c, (&a.baseline, &base), (&a.current, &cur));
    print_stdout(&md);
    report::append_step_summary(&md);
    let regressions = c.regressions();
    if regressions.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "error: {} regression(s) beyond {:.0}%: {}",
            regressions.len(),
            a.max_regression * 100.0,
            regressions
                .iter()
                .map(|r| r.metric.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(exit::THRESHOLD)
    }
}

/// `periscope merge`: the merged result, its tables, and its thresholds' verdict.
async fn merge_cmd(a: cli::MergeArgs) -> Result<i32> {
    let results = match a.wait {
        Some(limit) => wait_for_results(&a.inputs, limit).await?,
        None => a
            .inputs
            .iter()
            .map(|p| report::read::run_result(p).map(|r| (p.clone(), r)))
            .collect::<Result<Vec<_>>>()?,
    };
    let out = JsonOutput::open_for(&a.output, "--output")?;
    let html_out = open_html(a.html.as_deref())?;
    let merged = report::merge::merge(&results, a.force)?;
    let md = report::markdown::render(&merged);
    print_stdout(&md);
    report::append_step_summary(&md);
    out.write(&merged)?;
    if let Some(h) = html_out {
        h.write_str(&report::html::render(&merged))?;
    }
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
                fmt::fmt_dur(limit),
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

/// What one run measured.
pub struct Executed {
    pub result: RunResult,
    /// Every request, when asked for.
    pub samples: Vec<metrics::Sample>,
}

/// Run a plan to its end (or Ctrl-C) and build its result; nothing is printed
/// but the progress line.
pub async fn execute(plan: &Plan, keep_samples: bool) -> Result<Executed> {
    tokenizer::warm_up();
    let mock_server = match &plan.target {
        Target::Mock(cfg) => Some(mock::start((**cfg).clone(), "127.0.0.1:0").await?),
        Target::Remote(_) => None,
    };
    let base = match (&mock_server, &plan.target) {
        (Some(m), _) => m.base_url(),
        (None, Target::Remote(url)) => url.clone(),
        (None, Target::Mock(_)) => unreachable!("the mock was started above"),
    };
    let mut client = client::Client::with_engine(
        &base,
        plan.token.as_deref(),
        &plan.headers,
        plan.timeout,
        plan.segment
            .share(plan.load.max_concurrency() as u64)
            .max(1) as usize,
        Instant::now(),
        plan.http_engine,
    )?;
    let ready = preflight::prepare(plan, &mut client).await?;
    let workload = ready.workload;

    // The load starts now (or at --start-at): every time in the result
    // counts from here.
    let (origin, started_at) = match plan.start_at {
        Some(at) => wait_for_start(at).await?,
        None => (Instant::now(), SystemTime::now()),
    };
    client.set_origin(origin);
    let (tx, rx) = std::sync::mpsc::channel();
    let gauges = Arc::new(Gauges::default());
    let mut collector = Collector::new(rx, origin, plan.load.is_open(), gauges.clone())
        .with_samples(keep_samples || plan.keep_requests);
    let soft = CancellationToken::new();
    let hard = CancellationToken::new();
    let run_id = plan.run_id.clone().unwrap_or_else(new_run_id);
    if !plan.outputs.is_empty() {
        let mut tags = vec![("run_id".to_string(), run_id.clone())];
        if !plan.segment.is_whole() {
            tags.push(("segment".to_string(), plan.segment.index.to_string()));
        }
        tags.extend([
            ("scenario".to_string(), plan.scenario.clone()),
            ("workload".to_string(), plan.workload_name().to_string()),
            (
                "endpoint".to_string(),
                plan.endpoint_tag.clone().unwrap_or_else(|| base.clone()),
            ),
            ("model".to_string(), plan.workload.model.clone()),
        ]);
        tags.extend(plan.tags.iter().cloned());
        collector = collector.with_observer(Box::new(sink::Feed::start(
            &plan.outputs,
            &plan.sink_credentials,
            &sink::Tags { pairs: tags },
            started_at,
            plan.request_sample,
        )));
    }
    if let Some(t) = &plan.trace_requests {
        client.set_tracing(true);
        let server = reqwest::Url::parse(&base)
            .ok()
            .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)));
        collector = collector.with_observer(Box::new(sink::tracer::Tracer::start(
            t,
            sink::tracer::RunContext {
                model: plan.workload.model.clone(),
                run_id: run_id.clone(),
                scenario: plan.scenario.clone(),
                workload: plan.workload_name().to_string(),
                server,
                max_tokens: Some(plan.workload.max_tokens),
                segment: (!plan.segment.is_whole()).then(|| plan.segment.to_string()),
            },
            started_at,
        )));
    }
    if let (Some(_), Some(o)) = (&plan.otlp_queries, &plan.workload.otlp) {
        collector =
            collector.with_observer(Box::new(workload::otlp::AcceptedTraces(o.recent.clone())));
    }
    if let Some(judge) = slo::judge(plan.slos.clone()) {
        collector = collector.with_judge(judge);
    }
    let mut aborted = None;
    if plan.abort_on_fail && !plan.thresholds.is_empty() {
        let a = slo::AbortOnFail::new(plan.thresholds.clone(), soft.clone(), origin);
        aborted = Some(a.fired.clone());
        collector = collector.with_observer(Box::new(a));
    }
    let (progress_feed, progress) =
        progress::start(origin, plan.load.duration(), plan.progress_every);
    let collector = tokio::spawn(collector.with_observer(progress_feed).run());

    let ctrl_c = tokio::spawn(watch_ctrl_c(soft.clone(), hard.clone(), plan.grace));
    let ctx = Arc::new(executor::Context {
        client: Arc::new(client),
        workload,
        records: tx,
        gauges,
        soft: soft.clone(),
        hard,
        origin,
        stages: plan.load.stages().clone(),
        segment: plan.segment,
        seed: executor::segment::seed_of(&run_id),
    });
    let queries = match &plan.otlp_queries {
        Some(q) => Some(query_load(q.clone(), plan, &base, &ctx, started_at)?),
        None => None,
    };
    // Queries stop with the load (its end, Ctrl-C, --abort-on-fail): their
    // `soft` is a child of the load's, which the executor cancels at its end.
    let grace = plan.grace;
    let queries = queries
        .map(|(load, qctx)| tokio::spawn(async move { executor::run(&load, qctx, grace).await }));
    let exec = executor::run(&plan.load, ctx, plan.grace).await;
    if let Some(q) = queries {
        let _ = q.await;
    }
    let interrupted_by_user = ctrl_c.is_finished() || soft_stopped_by_user(&ctrl_c);
    ctrl_c.abort();
    let mut collected = collector
        .await
        .map_err(|e| anyhow::anyhow!("the metrics collector failed: {e}"))?;
    let _ = progress.await;
    let outputs = std::mem::take(&mut collected.outputs);
    let aborted = aborted.and_then(|a| a.lock().unwrap_or_else(|p| p.into_inner()).take());
    let duration_s = origin.elapsed().as_secs_f64();

    let mut samples = collected.samples;
    let requests = match (plan.keep_requests, keep_samples) {
        (true, true) => samples.clone(),
        (true, false) => std::mem::take(&mut samples),
        (false, _) => Vec::new(),
    };
    let result = RunResult::build(Inputs {
        plan: plan.view(&base),
        total: &collected.total,
        windows: collected.windows,
        exec: &exec,
        run_id,
        started_at,
        duration_s,
        requested_rate: plan
            .load
            .mean_rate()
            .map(|r| r / f64::from(plan.segment.count)),
        includes_mock: mock_server.is_some(),
        interrupted_by_user,
        thresholds: &plan.thresholds,
        has_slos: !plan.slos.is_empty(),
        by_group: &collected.by_group,
        by_stage: &collected.by_stage,
        stages: plan.load.stages(),
        aborted,
        generator: report::result::generator_usage(mock_server.is_some()),
        requests,
        merged_from: Vec::new(),
        outputs,
        tokenizer: Some(ready.tokenizer),
    });
    if let Some(m) = mock_server {
        m.shutdown().await;
    }
    Ok(Executed { result, samples })
}

/// The query load of an otlp-traces run, for the executor beside the load:
/// `rate` queries a second from one gap in (once the first exports are
/// out), on a client of its own, its records to the same collector.
fn query_load(
    q: Arc<otlp::query::QueryPlan>,
    plan: &Plan,
    base: &str,
    ctx: &executor::Context,
    started_at: SystemTime,
) -> Result<(executor::Load, Arc<executor::Context>)> {
    let endpoint = q.endpoint_for(base);
    let pool = (q.rate.ceil() as usize).clamp(4, 256);
    let client = client::Client::with_engine(
        &endpoint,
        None,
        &q.headers,
        plan.timeout,
        pool,
        ctx.origin,
        plan.http_engine,
    )
    .map_err(|e| Error::Usage(format!("--query-endpoint {endpoint}: {e:#}")))?;
    let recent = plan
        .workload
        .otlp
        .as_ref()
        .map(|o| o.recent.clone())
        .unwrap_or_default();
    let start_ns = started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // The first query leaves one gap in, once the first exports are out.
    let gap = std::time::Duration::from_secs_f64(1.0 / q.rate);
    let rate = executor::Stages {
        start: 0.0,
        stages: vec![
            executor::Stage {
                duration: gap,
                target: 0.0,
            },
            executor::Stage {
                duration: std::time::Duration::ZERO,
                target: q.rate,
            },
            executor::Stage {
                duration: plan.load.duration() + plan.grace,
                target: q.rate,
            },
        ],
    };
    let load = executor::Load::Open {
        rate: rate.clone(),
        arrival: executor::Arrival::Constant,
        max_in_flight: Some(workload::trace_query::MAX_IN_FLIGHT),
    };
    let qctx = Arc::new(executor::Context {
        client: Arc::new(client),
        workload: Arc::new(workload::trace_query::TraceQueries::new(
            q, recent, start_ns,
        )),
        records: ctx.records.clone(),
        gauges: Arc::default(),
        soft: ctx.soft.child_token(),
        hard: ctx.hard.child_token(),
        origin: ctx.origin,
        stages: rate,
        segment: executor::Segment::default(),
        seed: ctx.seed,
    });
    Ok((load, qctx))
}

/// Sleep until `at` (the origin of the load, as an instant and a wall-clock
/// time); a time already past by more than a second is an error, since the
/// segments would not start together. Ctrl-C while waiting stops the run.
async fn wait_for_start(at: SystemTime) -> Result<(Instant, SystemTime)> {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let stamp = humantime::format_rfc3339_millis(at);
    match at.duration_since(wall) {
        Ok(ahead) => {
            eprintln!(
                "waiting {} for --start-at {stamp}",
                fmt::fmt_dur(ahead)
            );
            let origin = now + ahead;
            tokio::select! {
                _ = timer::sleep_until(origin) => Ok((origin, at)),
                _ = tokio::signal::ctrl_c() => Err(Error::Start(format!(
                    "interrupted while waiting for --start-at {stamp}: nothing was sent"
                ))),
            }
        }
        Err(e) if e.duration() <= std::time::Duration::from_secs(1) => {
            Ok((now - e.duration(), at))
        }
        Err(e) => Err(Error::Start(format!(
            "--start-at {stamp} passed {} ago (after the preflight): give a later time, so that every segment starts together",
            fmt::fmt_dur(e.duration())
        ))),
    }
}

fn soft_stopped_by_user(task: &tokio::task::JoinHandle<bool>) -> bool {
    // The Ctrl-C task only finishes (returning true) after a first Ctrl-C.
    task.is_finished()
}

/// First Ctrl-C: stop starting requests and give in-flight ones the grace
/// period. Second: cancel them now. Returns once the first one arrived.
async fn watch_ctrl_c(
    soft: CancellationToken,
    hard: CancellationToken,
    grace: std::time::Duration,
) -> bool {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    eprintln!(
        "\ninterrupted: finishing requests in flight (up to {}); Ctrl-C again to stop now",
        fmt::fmt_dur(grace)
    );
    soft.cancel();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            hard.cancel();
        }
    });
    true
}
