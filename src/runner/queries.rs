//! The query load of an otlp-traces run: a workload of its own
//! (`workload::trace_query`) for the executor, beside the load.

use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::{client, executor, otlp, workload};

/// The query load of an otlp-traces run, for the executor beside the load:
/// `rate` queries a second from one gap in (once the first exports are
/// out), on a client of its own, its records to the same collector.
pub(super) fn load(
    q: Arc<otlp::query::QueryPlan>,
    plan: &Plan,
    base: &str,
    ctx: &executor::Context,
    started_at: SystemTime,
) -> Result<(executor::Load, Arc<executor::Context>)> {
    let endpoint = q.endpoint_for(base);
    let pool = (q.rate.ceil() as usize).clamp(4, 256);
    // The query API speaks HTTP, whatever the exports travel over.
    let connect = client::Connect {
        grpc: false,
        ..plan.request.connect.clone()
    };
    let client = client::Client::with_engine(
        &endpoint,
        None,
        &q.headers,
        plan.request.timeout,
        pool,
        ctx.origin,
        &connect,
    )
    .map_err(|e| Error::Usage(format!("--query-endpoint {endpoint}: {e:#}")))?;
    let recent = plan
        .workload
        .spec
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
                duration: plan.load.shape.duration() + plan.load.grace,
                target: q.rate,
            },
        ],
    };
    let load = executor::Load::Open {
        rate: rate.clone(),
        arrival: executor::Arrival::Constant,
        max_in_flight: Some(workload::trace_query::MAX_IN_FLIGHT),
        replay: None,
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
        script: None,
        origin: ctx.origin,
        stages: rate,
        segment: executor::Segment::default(),
        seed: ctx.seed,
        jitter: None,
        think: None,
        adaptive: None,
        keep_texts: false,
    });
    Ok((load, qctx))
}
