//! Running a plan: start the in-process mock if asked, check the target and
//! settle how tokens are counted ([`preflight`]), wait for `--start-at`,
//! wire the collector and its live outputs, run the load (and the trace
//! queries beside it, [`queries`]) through the executor, and build the
//! result. Used by `run`, `sweep` and `probe`; prints nothing but the
//! progress line.

pub mod preflight;
mod queries;
mod signals;

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
use crate::{
    client, dashboard, executor, mock, progress, server_metrics, sink, slo, tokenizer, workload,
};
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

/// What one run measured.
pub struct Executed {
    pub result: RunResult,
    /// Every request, when asked for.
    pub samples: Vec<metrics::Sample>,
}

/// Run a plan to its end (or Ctrl-C) and build its result; nothing is printed
/// but the progress line.
pub async fn execute(plan: &Plan, keep_samples: bool) -> Result<Executed> {
    execute_with(plan, keep_samples, None).await
}

/// `--dashboard`: serve the page (from the first run of the command on)
/// and feed it this run: what runs, each second, each scrape.
fn dashboard_feed(
    plan: &Plan,
    base: &str,
    scraper: Option<&server_metrics::Scraper>,
    origin: Instant,
) -> Result<Option<dashboard::feed::Feed>> {
    let Some(board) = &plan.outputs.dashboard else {
        return Ok(None);
    };
    board.serve().map_err(Error::Usage)?;
    let meta = serde_json::json!({
        "scenario": plan.scenario.name,
        "workload": plan.workload_name(),
        "model": plan.workload.spec.model,
        "target": crate::endpoint::shown(base),
        "endpoint": plan.outputs.endpoint_tag,
        "load": executor::describe_load(&plan.load.shape),
        "open_model": plan.load.shape.is_open(),
        "stages": plan.load.shape.stages(),
        "duration_s": plan.load.shape.duration().as_secs_f64(),
        "thresholds": plan.checks.thresholds.iter().map(|t| &t.expr).collect::<Vec<_>>(),
        "server_metrics": scraper.is_some(),
    });
    let feed = dashboard::feed::Feed::start(board, meta, plan.checks.thresholds.clone(), origin);
    if let Some(s) = scraper {
        s.add_hook(Box::new(feed.server_hook()));
    }
    Ok(Some(feed))
}

/// [`execute`], with a workload of the caller's (`probe`'s corpus) in place
/// of the plan's: no preflight, tokens counted by the default tokenizer.
pub async fn execute_with(
    plan: &Plan,
    keep_samples: bool,
    own: Option<Arc<dyn workload::Workload>>,
) -> Result<Executed> {
    // Loaded before the first request: loaded beside the start, even on a
    // thread at nice 19, its ~30 ms of a core made a replay's first starts
    // late by the mock's stamps (p99 1.2-1.3 ms).
    tokenizer::warm_up();
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
    let (workload, tokenizer) = match own {
        Some(w) => (w, None),
        None => {
            let ready = preflight::prepare(plan, &mut client).await?;
            preflight::discover(&client, ready.workload.as_ref()).await;
            (ready.workload, Some(ready.tokenizer))
        }
    };

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
    let mut collector = Collector::new(rx, origin, plan.load.shape.is_open(), gauges.clone())
        .with_samples(keep_samples || plan.outputs.keep_requests)
        .with_plateau(plateau_target(plan));
    let soft = CancellationToken::new();
    let hard = CancellationToken::new();
    if !plan.outputs.live.is_empty() {
        let mut tags = vec![("run_id".to_string(), run_id.clone())];
        if !plan.segment.segment.is_whole() {
            tags.push((
                "segment".to_string(),
                plan.segment.segment.index.to_string(),
            ));
        }
        tags.extend([
            ("scenario".to_string(), plan.scenario.name.clone()),
            ("workload".to_string(), plan.workload_name().to_string()),
            (
                "endpoint".to_string(),
                plan.outputs
                    .endpoint_tag
                    .clone()
                    .unwrap_or_else(|| base.clone()),
            ),
            ("model".to_string(), plan.workload.spec.model.clone()),
        ]);
        tags.extend(plan.outputs.tags.iter().cloned());
        let feed = sink::Feed::start(
            &plan.outputs.live,
            &plan.outputs.credentials,
            &sink::Tags { pairs: tags },
            started_at,
            plan.outputs.request_sample,
        );
        if let Some(s) = &scraper {
            let side = feed.side();
            s.add_hook(Box::new(move |points| side.server(points)));
        }
        collector = collector.with_observer(Box::new(feed));
    }
    if let Some(feed) = dashboard_feed(plan, &base, scraper.as_ref(), origin)? {
        collector = collector.with_observer(Box::new(feed));
    }
    if let Some(t) = &plan.outputs.trace_requests {
        client.set_tracing(true);
        let server = reqwest::Url::parse(&base)
            .ok()
            .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)));
        collector = collector.with_observer(Box::new(sink::tracer::Tracer::start(
            t,
            sink::tracer::RunContext {
                model: plan.workload.spec.model.clone(),
                run_id: run_id.clone(),
                scenario: plan.scenario.name.clone(),
                workload: plan.workload_name().to_string(),
                server,
                max_tokens: Some(plan.workload.spec.max_tokens),
                segment: (!plan.segment.segment.is_whole())
                    .then(|| plan.segment.segment.to_string()),
            },
            started_at,
        )));
    }
    if let (Some(_), Some(o)) = (&plan.workload.queries, &plan.workload.spec.otlp) {
        collector =
            collector.with_observer(Box::new(workload::otlp::AcceptedTraces(o.recent.clone())));
    }
    if let Some(path) = &plan.outputs.csv {
        collector = collector.with_observer(Box::new(
            sink::csv::RequestRows::create(path, &run_id, started_at, plan.load.shape.is_open())
                .map_err(Error::Usage)?,
        ));
    }
    if let Some(path) = &plan.outputs.requests_out {
        collector = collector.with_observer(Box::new(
            sink::rows::RequestFile::create(path, &run_id, started_at, plan.load.shape.is_open())
                .map_err(Error::Usage)?,
        ));
    }
    if let Some(judge) = slo::judge(plan.checks.slos.clone()) {
        collector = collector.with_judge(judge);
    }
    let mut aborted = None;
    if plan.checks.abort_on_fail && !plan.checks.thresholds.is_empty() {
        let a = slo::AbortOnFail::new(plan.checks.thresholds.clone(), soft.clone(), origin);
        aborted = Some(a.fired.clone());
        collector = collector.with_observer(Box::new(a));
    }
    // find-and-hold: its controller judges each step and sets the VUs.
    let adaptive = match plan.load.search.clone() {
        Some(search) => {
            let control = Arc::new(executor::adaptive::Control::default());
            let c = executor::adaptive::Controller::new(
                search,
                plan.checks.step_thresholds(),
                control.clone(),
                soft.clone(),
            );
            collector = collector.with_observer(Box::new(c));
            Some(control)
        }
        None => None,
    };
    let goal = match &plan.load.shape {
        executor::Load::Closed {
            iterations: Some(n),
            ..
        } => progress::Goal::Requests(plan.segment.segment.share(*n)),
        load => progress::Goal::Time(load.duration()),
    };
    let (progress_feed, progress) = progress::start(origin, goal, plan.outputs.progress_every);

    let client = Arc::new(client);
    let script = match &plan.workload.spec.script {
        Some(s) => {
            let (custom_tx, custom_rx) = std::sync::mpsc::channel();
            collector = collector.with_custom(custom_rx);
            Some(Arc::new(script_run(
                s, plan, &client, &tx, custom_tx, &gauges, &hard,
            )?))
        }
        None => None,
    };
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
    let queries = match &plan.workload.queries {
        Some(q) => Some(queries::load(q.clone(), plan, &base, &ctx, started_at)?),
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
    let interrupted_by_user = ctrl_c.is_finished() || soft_stopped_by_user(&ctrl_c);
    ctrl_c.abort();
    let mut collected = collector
        .await
        .map_err(|e| anyhow::anyhow!("the metrics collector failed: {e}"))?;
    let _ = progress.await;
    let outputs = std::mem::take(&mut collected.outputs);
    let aborted = aborted.and_then(|a| a.lock().unwrap_or_else(|p| p.into_inner()).take());
    let duration_s = origin.elapsed().as_secs_f64();
    let server = match scraper {
        Some(s) => {
            let unix = |t: SystemTime| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            };
            Some(s.finish((unix(started_at), unix(SystemTime::now()))).await)
        }
        None => None,
    };

    let mut samples = collected.samples;
    let requests = match (plan.outputs.keep_requests, keep_samples) {
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
            .shape
            .mean_rate()
            .map(|r| r / f64::from(plan.segment.segment.count)),
        includes_mock: mock_server.is_some(),
        interrupted_by_user,
        thresholds: &plan.checks.thresholds,
        has_slos: !plan.checks.slos.is_empty(),
        by_group: &collected.by_group,
        by_stage: &collected.by_stage,
        stages: plan.load.shape.stages(),
        aborted,
        generator: report::result::generator_usage(mock_server.is_some()),
        requests,
        merged_from: Vec::new(),
        outputs,
        tokenizer,
        server,
        steady: collected.steady.take(),
        search: adaptive.map(|c| {
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
    if let Some(m) = mock_server {
        m.shutdown().await;
    }
    Ok(Executed { result, samples })
}
