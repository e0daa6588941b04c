//! Wiring a run's collector: the live outputs (InfluxDB, the dashboard,
//! client spans, CSV and JSONL rows), the judge of per-request objectives,
//! abort-on-fail and find-and-hold's controller, each an observer of the
//! collector, in the order they see a record.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::metrics::Collector;
use crate::plan::Plan;
use crate::{client, dashboard, executor, server_metrics, sink, slo, workload};

/// What the observers are made from.
pub(super) struct Wiring<'a> {
    pub plan: &'a Plan,
    /// The target's base URL (the mock's, when in process).
    pub base: &'a str,
    pub run_id: &'a str,
    pub scraper: Option<&'a server_metrics::Scraper>,
    pub origin: Instant,
    pub started_at: SystemTime,
    /// Cancels the load (abort-on-fail, find-and-hold's end).
    pub soft: &'a CancellationToken,
}

/// The collector wired, with what the run reads back at its end.
pub(super) struct Wired {
    pub collector: Collector,
    /// abort-on-fail's verdict: the threshold that stopped the load, and when.
    pub aborted: Option<slo::Fired>,
    /// find-and-hold's steps and hold.
    pub adaptive: Option<Arc<executor::adaptive::Control>>,
}

/// Every observer the plan asks for, on `collector`; client spans also
/// turn on `client`'s trace headers.
pub(super) fn observers(
    w: Wiring<'_>,
    mut collector: Collector,
    client: &mut client::Client,
) -> Result<Wired> {
    let plan = w.plan;
    if let Some(feed) = influx_feed(&w) {
        collector = collector.with_observer(Box::new(feed));
    }
    if let Some(feed) = dashboard_feed(plan, w.base, w.scraper, w.origin)? {
        collector = collector.with_observer(Box::new(feed));
    }
    if let Some(t) = &plan.outputs.trace_requests {
        client.set_tracing(true);
        let server = reqwest::Url::parse(w.base)
            .ok()
            .and_then(|u| Some((u.host_str()?.to_string(), u.port_or_known_default()?)));
        collector = collector.with_observer(Box::new(sink::tracer::Tracer::start(
            t,
            sink::tracer::RunContext {
                model: plan.workload.spec.model.clone(),
                run_id: w.run_id.to_string(),
                scenario: plan.scenario.name.clone(),
                workload: plan.workload_name().to_string(),
                server,
                max_tokens: Some(plan.workload.spec.max_tokens),
                segment: (!plan.segment.segment.is_whole())
                    .then(|| plan.segment.segment.to_string()),
            },
            w.started_at,
        )));
    }
    if let (Some(_), Some(o)) = (&plan.workload.queries, &plan.workload.spec.otlp) {
        collector =
            collector.with_observer(Box::new(workload::otlp::AcceptedTraces(o.recent.clone())));
    }
    if let Some(path) = &plan.outputs.csv {
        collector = collector.with_observer(Box::new(
            sink::csv::RequestRows::create(path, w.run_id, w.started_at, plan.load.shape.is_open())
                .map_err(Error::Usage)?,
        ));
    }
    if let Some(path) = &plan.outputs.requests_out {
        collector = collector.with_observer(Box::new(
            sink::rows::RequestFile::create(
                path,
                w.run_id,
                w.started_at,
                plan.load.shape.is_open(),
            )
            .map_err(Error::Usage)?,
        ));
    }
    let mut aborted = None;
    if let Some(judge) = slo::judge(plan.checks.slos.clone()) {
        collector = collector.with_judge(judge);
    }
    if plan.checks.abort_on_fail && !plan.checks.thresholds.is_empty() {
        let a = slo::AbortOnFail::new(plan.checks.thresholds.clone(), w.soft.clone(), w.origin);
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
                w.soft.clone(),
            );
            collector = collector.with_observer(Box::new(c));
            Some(control)
        }
        None => None,
    };
    Ok(Wired {
        collector,
        aborted,
        adaptive,
    })
}

/// The InfluxDB feed (`--out`), tagged with the run's facts; the scraper's
/// points go to it too.
fn influx_feed(w: &Wiring<'_>) -> Option<sink::Feed> {
    let plan = w.plan;
    if plan.outputs.live.is_empty() {
        return None;
    }
    let mut tags = vec![("run_id".to_string(), w.run_id.to_string())];
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
                .unwrap_or_else(|| w.base.to_string()),
        ),
        ("model".to_string(), plan.workload.spec.model.clone()),
    ]);
    tags.extend(plan.outputs.tags.iter().cloned());
    let feed = sink::Feed::start(
        &plan.outputs.live,
        &plan.outputs.credentials,
        &sink::Tags { pairs: tags },
        w.started_at,
        plan.outputs.request_sample,
    );
    if let Some(s) = w.scraper {
        let side = feed.side();
        s.add_hook(Box::new(move |points| side.server(points)));
    }
    Some(feed)
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
