//! Running a plan: start the in-process mock if asked, check the target and
//! settle how tokens are counted ([`preflight`]), wait for `--start-at`,
//! wire the collector and its live outputs, run the load (and the trace
//! queries beside it, [`queries`]) through the executor, and build the
//! result. Used by `run`, `sweep` and `probe`; prints nothing but the
//! progress line.

pub mod preflight;
mod queries;
mod signals;
mod wire;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::{self, Collector, Gauges};
use crate::plan::{Plan, Target};
use crate::report::{
    self,
    result::{Inputs, RunResult},
};
use crate::{client, executor, mock, progress, server_metrics, tokenizer, workload};
use signals::{soft_stopped_by_user, wait_for_start, watch_ctrl_c};

/// Start scraping the server's metrics: `--server-metrics` with no URL is
/// the target's origin + `/metrics`, asked with the run's API key (as any
/// URL on that origin is).
async fn start_scraper(
    cfg: &server_metrics::Config,
    base: &str,
    plan: &Plan,
    run_id: &str,
) -> Result<server_metrics::Scraper> {
    let mut cfg = cfg.clone();
    let origin = reqwest::Url::parse(base)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|e| Error::Usage(format!("the target '{base}' is not a URL: {e}")))?;
    for t in cfg.targets.iter_mut().filter(|t| t.is_empty()) {
        *t = format!("{origin}/metrics");
    }
    cfg.targets.dedup();
    cfg.auth = plan.request.token.clone().map(|k| (origin, k));
    server_metrics::Scraper::start(cfg, run_id)
        .await
        .map_err(Error::Usage)
}

/// The full load the steady state is judged against: the shape's peak.
/// What the run's full load is, for its steady state; None for a replayed
/// trace, whose load is the trace's own, with no level to hold.
fn plateau_target(plan: &Plan) -> Option<crate::metrics::plateau::PlateauTarget> {
    use crate::metrics::plateau::PlateauTarget;
    if plan.load.search.is_some() {
        return None; // find-and-hold judges its own steps and its hold
    }
    Some(match &plan.load.shape {
        crate::executor::Load::Open {
            replay: Some(_), ..
        } => return None,
        crate::executor::Load::Closed { vus, .. } => PlateauTarget::Vus {
            peak: vus.peak(),
            idle: plan.workload.spec.script.is_some()
                || plan.load.jitter.is_some()
                || plan.load.think.is_some(),
        },
        crate::executor::Load::Open {
            rate,
            max_in_flight,
            ..
        } => PlateauTarget::Rate {
            peak: rate.peak(),
            cap: max_in_flight.map(|m| m as f64),
        },
    })
}

/// What a script's VUs share: the run's client, channels and defaults.
fn script_run(
    script: &Arc<crate::script::Script>,
    plan: &Plan,
    client: &Arc<client::Client>,
    records: &std::sync::mpsc::Sender<crate::record::RequestRecord>,
    custom: std::sync::mpsc::Sender<Vec<metrics::custom::CustomSample>>,
    gauges: &Arc<Gauges>,
    hard: &CancellationToken,
) -> Result<crate::script::ScriptRun> {
    let w = &plan.workload.spec;
    let stages = plan.load.shape.stages().clone();
    Ok(crate::script::ScriptRun {
        script: (**script).clone(),
        io: Arc::new(crate::script::Io {
            client: client.clone(),
            http: client::http_builder()
                .build()
                .map_err(|e| Error::Start(format!("cannot build k6/http's client: {e}")))?,
            records: records.clone(),
            custom,
            gauges: gauges.clone(),
            stage_of: Box::new(move |us| {
                stages
                    .index_at(std::time::Duration::from_micros(us))
                    .min(u16::MAX as usize) as u16
            }),
            hard: hard.clone(),
            defaults: crate::script::LlmDefaults {
                model: w.model.clone(),
                max_tokens: w.max_tokens,
                stream: w.stream,
                stream_usage: w.stream_usage,
                temperature: w.temperature,
            },
            tokenizer: client.tokenizer().clone(),
            timeout: plan.request.timeout,
        }),
        data: std::sync::OnceLock::new(),
    })
}

/// A script's run, when the plan has one; its custom metrics go to the
/// collector.
fn with_script(
    collector: Collector,
    plan: &Plan,
    client: &Arc<client::Client>,
    records: &std::sync::mpsc::Sender<crate::record::RequestRecord>,
    gauges: &Arc<Gauges>,
    hard: &CancellationToken,
) -> Result<(Collector, Option<Arc<crate::script::ScriptRun>>)> {
    let Some(s) = &plan.workload.spec.script else {
        return Ok((collector, None));
    };
    let (custom_tx, custom_rx) = std::sync::mpsc::channel();
    let run = script_run(s, plan, client, records, custom_tx, gauges, hard)?;
    Ok((collector.with_custom(custom_rx), Some(Arc::new(run))))
}

pub use preflight::TargetProfile;

/// What one run measured.
pub struct Executed {
    pub result: RunResult,
    /// Every request, when asked for.
    pub samples: Vec<metrics::Sample>,
    /// What the preflight learned of the target (none for a caller's own
    /// workload), for a later run against it without one.
    pub profile: Option<preflight::TargetProfile>,
}

/// Run a plan to its end (or Ctrl-C) and build its result; nothing is printed
/// but the progress line.
pub async fn execute(plan: &Plan, keep_samples: bool) -> Result<Executed> {
    run_plan(plan, keep_samples, None, None).await
}

/// [`execute`] for a plan with no preflight of its own, counting tokens as
/// an earlier run's preflight against the same target found (`known`).
pub async fn execute_known(
    plan: &Plan,
    keep_samples: bool,
    known: Option<&preflight::TargetProfile>,
) -> Result<Executed> {
    run_plan(plan, keep_samples, None, known).await
}

/// The first stage: the in-process mock (when asked), the client, and the
/// preflight's checks of the target (skipped for a caller's own workload).
struct Prepared {
    mock_server: Option<mock::MockServer>,
    base: String,
    client: client::Client,
    workload: Arc<dyn workload::Workload>,
    profile: Option<preflight::TargetProfile>,
}

async fn prepare(
    plan: &Plan,
    own: Option<Arc<dyn workload::Workload>>,
    known: Option<&preflight::TargetProfile>,
) -> Result<Prepared> {
    let mock_server = match &plan.target {
        Target::Mock { config: cfg, .. } => {
            Some(mock::start((**cfg).clone(), "127.0.0.1:0").await?)
        }
        Target::Remote(_) => None,
    };
    let base = match (&mock_server, &plan.target) {
        (Some(m), _) => m.base_url(),
        (None, Target::Remote(url)) => url.clone(),
        (None, Target::Mock { config: _, .. }) => unreachable!("the mock was started above"),
    };
    let mut client = client::Client::with_engine(
        &base,
        plan.request.token.as_deref(),
        &plan.request.headers,
        plan.request.timeout,
        plan.segment
            .segment
            .share(plan.load.shape.max_concurrency() as u64)
            .max(1) as usize,
        Instant::now(),
        &plan.request.connect,
    )?;
    let (workload, profile) = match own {
        // A script may count its prompts: the vocabulary is loaded before
        // the load (built during it, its ~30 ms of a core would make
        // requests late; see `preflight::prepare`).
        Some(w) => {
            tokenizer::warm_up();
            (w, None)
        }
        None => {
            let ready = preflight::prepare(plan, &mut client, known).await?;
            preflight::discover(&client, ready.workload.as_ref()).await;
            (ready.workload, Some(ready.profile))
        }
    };

    Ok(Prepared {
        mock_server,
        base,
        client,
        workload,
        profile,
    })
}

/// What the run knows at its end, beside the collector's figures.
struct Ending<'a> {
    base: &'a str,
    run_id: String,
    started_at: SystemTime,
    duration_s: f64,
    includes_mock: bool,
    interrupted_by_user: bool,
    exec: &'a executor::ExecReport,
    aborted: Option<(String, u64)>,
    server: Option<server_metrics::ServerMetrics>,
    tokenizer: Option<crate::report::result::TokenizerInfo>,
    search: Option<Arc<executor::adaptive::Control>>,
}

/// The last stage: the result, and every request when the caller asked
/// (`keep_samples`); the dashboard gets the run's summary.
fn build_result(
    plan: &Plan,
    e: Ending<'_>,
    mut collected: metrics::Collected,
    outputs: Vec<metrics::SinkReport>,
    keep_samples: bool,
) -> (RunResult, Vec<metrics::Sample>) {
    let mut samples = collected.samples;
    let requests = match (plan.outputs.keep_requests, keep_samples) {
        (true, true) => samples.clone(),
        (true, false) => std::mem::take(&mut samples),
        (false, _) => Vec::new(),
    };
    let result = RunResult::build(Inputs {
        plan: plan.view(e.base),
        total: &collected.total,
        windows: collected.windows,
        exec: e.exec,
        run_id: e.run_id,
        started_at: e.started_at,
        duration_s: e.duration_s,
        requested_rate: plan
            .load
            .shape
            .mean_rate()
            .map(|r| r / f64::from(plan.segment.segment.count)),
        includes_mock: e.includes_mock,
        interrupted_by_user: e.interrupted_by_user,
        thresholds: &plan.checks.thresholds,
        has_slos: !plan.checks.slos.is_empty(),
        by_group: &collected.by_group,
        by_stage: &collected.by_stage,
        stages: plan.load.shape.stages(),
        aborted: e.aborted,
        generator: report::result::generator_usage(e.includes_mock),
        requests,
        merged_from: Vec::new(),
        outputs,
        tokenizer: e.tokenizer,
        server: e.server,
        steady: collected.steady.take(),
        search: e.search.map(|c| {
            let report = c.report.lock().map(|r| r.clone()).unwrap_or_default();
            let hold = c.hold.lock().ok().and_then(|mut h| h.take());
            (report, hold)
        }),
    });
    if let Some(b) = &plan.outputs.dashboard {
        b.end_run(serde_json::json!({
            "duration_s": result.duration_s,
            "summary": result.summary,
            "latency": result.latency,
            "errors": result.errors,
            "thresholds": result.thresholds,
            "interrupted": result.interrupted_by_user,
        }));
    }
    (result, samples)
}

/// What the progress line counts toward: requests for a closed model with
/// a count of iterations, else time.
fn progress_goal(plan: &Plan) -> progress::Goal {
    match &plan.load.shape {
        executor::Load::Closed {
            iterations: Some(n),
            ..
        } => progress::Goal::Requests(plan.segment.segment.share(*n)),
        load => progress::Goal::Time(load.duration()),
    }
}

/// The load stage: the executor, and the trace queries beside it.
async fn run_load(
    plan: &Plan,
    base: &str,
    ctx: Arc<executor::Context>,
    started_at: SystemTime,
) -> Result<executor::ExecReport> {
    let queries = match &plan.workload.queries {
        Some(q) => Some(queries::load(q.clone(), plan, base, &ctx, started_at)?),
        None => None,
    };
    // Queries stop with the load (its end, Ctrl-C, --abort-on-fail): their
    // `soft` is a child of the load's, which the executor cancels at its end.
    let grace = plan.load.grace;
    let queries = queries
        .map(|(load, qctx)| tokio::spawn(async move { executor::run(&load, qctx, grace).await }));
    let exec = executor::run(&plan.load.shape, ctx, plan.load.grace).await;
    if let Some(q) = queries {
        let _ = q.await;
    }
    Ok(exec)
}

/// The server's usage against the local count, now that the load is over,
/// with its connections given back first: the vocabulary the count may
/// build takes memory the load no longer holds.
async fn check_usage(client: &client::Client, total: &mut metrics::Aggregate) {
    client.close_idle();
    crate::alloc::give_back();
    let usage = client.check_usage().await;
    total.usage_checked += usage.checked;
    total.usage_mismatch += usage.mismatched;
}

/// The scraper's last scrape, and the server's figures over the run.
async fn finish_scraper(
    s: Option<server_metrics::Scraper>,
    started_at: SystemTime,
) -> Option<server_metrics::ServerMetrics> {
    let s = s?;
    let unix = |t: SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    Some(s.finish((unix(started_at), unix(SystemTime::now()))).await)
}

/// [`execute`], with a workload of the caller's (`probe`'s corpus) in place
/// of the plan's: no preflight, tokens counted by the default tokenizer.
pub async fn execute_with(
    plan: &Plan,
    keep_samples: bool,
    own: Option<Arc<dyn workload::Workload>>,
) -> Result<Executed> {
    run_plan(plan, keep_samples, own, None).await
}

async fn run_plan(
    plan: &Plan,
    keep_samples: bool,
    own: Option<Arc<dyn workload::Workload>>,
    known: Option<&preflight::TargetProfile>,
) -> Result<Executed> {
    let Prepared {
        mock_server,
        base,
        mut client,
        workload,
        profile,
    } = prepare(plan, own, known).await?;
    let run_id = plan
        .segment
        .run_id
        .clone()
        .unwrap_or_else(crate::new_run_id);
    // The server's metrics: a baseline scrape before the first request.
    let scraper = match &plan.outputs.server {
        Some(cfg) => Some(start_scraper(cfg, &base, plan, &run_id).await?),
        None => None,
    };
    // The load starts now (or at --start-at): every time in the result
    // counts from here.
    let (origin, started_at) = match plan.segment.start_at {
        Some(at) => wait_for_start(at).await?,
        None => (Instant::now(), SystemTime::now()),
    };
    client.set_origin(origin);
    let (tx, rx) = std::sync::mpsc::channel();
    let gauges = Arc::new(Gauges::default());
    let collector = Collector::new(rx, origin, plan.load.shape.is_open(), gauges.clone())
        .with_samples(keep_samples || plan.outputs.keep_requests)
        .with_plateau(plateau_target(plan));
    let soft = CancellationToken::new();
    let hard = CancellationToken::new();
    let wired = wire::observers(
        wire::Wiring {
            plan,
            base: &base,
            run_id: &run_id,
            scraper: scraper.as_ref(),
            origin,
            started_at,
            soft: &soft,
        },
        collector,
        &mut client,
    )?;
    let (collector, aborted, adaptive) = (wired.collector, wired.aborted, wired.adaptive);
    let (progress_feed, progress) =
        progress::start(origin, progress_goal(plan), plan.outputs.progress_every);

    let client = Arc::new(client);
    let checker = client.clone();
    let (collector, script) = with_script(collector, plan, &client, &tx, &gauges, &hard)?;
    let collector = tokio::spawn(collector.with_observer(progress_feed).run());

    let ctrl_c = tokio::spawn(watch_ctrl_c(soft.clone(), hard.clone(), plan.load.grace));
    let ctx = Arc::new(executor::Context {
        client,
        workload,
        script,
        records: tx,
        gauges,
        soft: soft.clone(),
        hard,
        origin,
        stages: plan.load.shape.stages().clone(),
        segment: plan.segment.segment,
        seed: executor::segment::seed_of(&run_id),
        jitter: plan.load.jitter,
        think: plan.load.think,
        adaptive: adaptive.clone(),
        keep_texts: plan.outputs.requests_text,
    });
    let exec = run_load(plan, &base, ctx, started_at).await?;
    let interrupted_by_user = ctrl_c.is_finished() || soft_stopped_by_user(&ctrl_c);
    ctrl_c.abort();
    let mut collected = collector
        .await
        .map_err(|e| anyhow::anyhow!("the metrics collector failed: {e}"))?;
    let _ = progress.await;
    check_usage(&checker, &mut collected.total).await;
    let outputs = std::mem::take(&mut collected.outputs);
    let aborted = aborted.and_then(|a| a.lock().unwrap_or_else(|p| p.into_inner()).take());
    let duration_s = origin.elapsed().as_secs_f64();
    let server = finish_scraper(scraper, started_at).await;

    let (result, samples) = build_result(
        plan,
        Ending {
            base: &base,
            run_id,
            started_at,
            duration_s,
            includes_mock: mock_server.is_some(),
            interrupted_by_user,
            exec: &exec,
            aborted,
            server,
            tokenizer: profile.as_ref().map(|p| p.info.clone()),
            search: adaptive,
        },
        collected,
        outputs,
        keep_samples,
    );
    if let Some(m) = mock_server {
        m.shutdown().await;
    }
    Ok(Executed {
        result,
        samples,
        profile,
    })
}
