//! The open model: arrivals on a schedule, free of coordinated omission.
//!
//! Arrival times are computed from the rate stages (evenly spaced, or with
//! exponential gaps for Poisson), the scheduler sleeps on the precise timer
//! until each one, and every request records its scheduled time. When
//! `--max-in-flight` slots are all busy, arrivals wait for one: that wait is
//! the target's backlog (`queue_wait`), kept apart from the generator's own
//! lateness (`schedule_lag`), so a slow server shows in latency-from-schedule
//! and a slow generator shows in the lag.
//!
//! A segment (`--segment i/n`) computes every arrival of the plan, with the
//! Poisson gaps seeded from the run id, and sends those of index k with
//! k mod n = i − 1: the segments' union is the requested arrival process.
//! A byte-paced plan (`--mb-per-s`) spaces arrivals by each request's size,
//! which differs from process to process; there each segment paces 1/n of
//! the bytes, its first arrival shifted by (i − 1)/n of a mean gap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::workers::Workers;
use super::{send_one, Context, ExecReport, Stages};
use crate::executor::Arrival;
use crate::timer;

/// How long before its scheduled time an arrival's request is built.
const BUILD_LEAD: Duration = Duration::from_millis(50);

pub(super) async fn run(
    rate: &Stages,
    arrival: Arrival,
    max_in_flight: Option<u64>,
    ctx: &Arc<Context>,
    tracker: &TaskTracker,
    workers: &Workers,
) -> ExecReport {
    let segment = ctx.segment;
    let slots = max_in_flight.map(|n| Arc::new(Semaphore::new(segment.share(n).max(1) as usize)));
    let total = rate.total().as_secs_f64();
    let mut rng = fastrand::Rng::with_seed(ctx.seed);
    // Byte pacing: this segment's 1/n of the bytes, phase-shifted.
    let by_bytes = !segment.is_whole() && ctx.workload.paced_by_weight();
    let scale = if by_bytes {
        f64::from(segment.count)
    } else {
        1.0
    };
    let mut report = ExecReport::default();
    let mut t = 0.0f64;
    let mut index = 0u64;
    let mut blocked_until: Option<Instant> = None;
    loop {
        if paused(ctx, &mut t).await {
            break;
        }
        // Skip stretches where the rate is zero. find-and-hold sets the
        // rate as it goes.
        let rate_at = |t: f64| match &ctx.adaptive {
            Some(c) => c.level.load(std::sync::atomic::Ordering::Relaxed) as f64,
            None => rate.at(Duration::from_secs_f64(t)),
        };
        let mut r = rate_at(t);
        while r <= 0.0 && t < total {
            t += 0.001;
            r = rate_at(t);
        }
        if index == 0 && by_bytes {
            t += f64::from(segment.index - 1) / r.max(1e-9);
        }
        if t >= total {
            break;
        }
        if !by_bytes && !segment.owns(index) {
            // Another segment's arrival: only its gap matters here.
            index += 1;
            t += gap(arrival, &mut rng, 1.0, r);
            continue;
        }
        let scheduled = ctx.origin + Duration::from_secs_f64(t);
        // Built before its time comes, so building it (a large trace takes
        // milliseconds) does not make it late; but not long before, so that
        // what it is built from is fresh (the trace ids a query asks for).
        let build_at = scheduled.checked_sub(BUILD_LEAD).unwrap_or(scheduled);
        if build_at > Instant::now() {
            tokio::select! {
                biased;
                _ = ctx.soft.cancelled() => break,
                _ = timer::sleep_until(build_at) => {}
            }
        }
        let due = Duration::from_secs_f64(t);
        let Some(req) = ctx
            .workload
            .session(index)
            .next(ctx.turn_at(index, index, due))
        else {
            // The workload has nothing more to send.
            break;
        };
        let weight = req.weight * scale;
        tokio::select! {
            biased;
            _ = ctx.soft.cancelled() => break,
            _ = timer::sleep_until(scheduled) => {}
        }
        report.planned += 1;
        let permit = match &slots {
            None => None,
            Some(s) => match slot(s, ctx, scheduled, &mut blocked_until).await {
                Some(p) => Some(p),
                None => break,
            },
        };
        report.dispatched += 1;
        let scheduled_us = Duration::from_secs_f64(t).as_micros() as u64;
        dispatch(ctx, tracker, workers, req, scheduled_us, permit);
        index += 1;
        t += gap(arrival, &mut rng, weight, r);
    }
    // The arrival process spans the whole window even when no arrival
    // falls in its last stretch (a 2.5 MB trace paced at 1.2 MB/s holds
    // the next one back for two seconds): the load lasts what it was
    // planned to, so that its rates are over that time.
    let end = ctx.origin + Duration::from_secs_f64(total);
    tokio::select! {
        _ = ctx.soft.cancelled() => {}
        _ = timer::sleep_until(end) => {}
    }
    report
}

/// While find-and-hold has paused the arrivals (a backlog draining), wait,
/// then go on from now. True when the run was stopped meanwhile.
async fn paused(ctx: &Context, t: &mut f64) -> bool {
    let Some(c) = &ctx.adaptive else {
        return false;
    };
    while c.level.load(std::sync::atomic::Ordering::Relaxed) == 0 && !ctx.soft.is_cancelled() {
        tokio::select! {
            biased;
            _ = ctx.soft.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        *t = t.max(ctx.origin.elapsed().as_secs_f64());
    }
    ctx.soft.is_cancelled()
}

/// A `--max-in-flight` slot for an arrival due at `scheduled`, and how long
/// it waited for the target's backlog: for this arrival if it waited
/// itself, or if the scheduler reached it late because it was waiting for
/// an earlier arrival's slot. None when the run was stopped meanwhile.
async fn slot(
    slots: &Arc<Semaphore>,
    ctx: &Context,
    scheduled: Instant,
    blocked_until: &mut Option<Instant>,
) -> Option<(OwnedSemaphorePermit, Duration)> {
    let (p, waited) = match slots.clone().try_acquire_owned() {
        Ok(p) => (p, false),
        Err(_) => {
            let p = tokio::select! {
                biased;
                _ = ctx.soft.cancelled() => return None,
                p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            (p, true)
        }
    };
    let now = Instant::now();
    let backlog = waited || blocked_until.is_some_and(|b| b > scheduled);
    if waited {
        *blocked_until = Some(now);
    }
    let wait = if backlog {
        now.saturating_duration_since(scheduled)
    } else {
        Duration::ZERO
    };
    Some((p, wait))
}

/// Send one arrival's request on a worker; its slot (if any) is held until
/// its record is handed on.
fn dispatch(
    ctx: &Arc<Context>,
    tracker: &TaskTracker,
    workers: &Workers,
    req: crate::client::Prepared,
    scheduled_us: u64,
    permit: Option<(OwnedSemaphorePermit, Duration)>,
) {
    let ctx2 = ctx.clone();
    workers.spawn(tracker, async move {
        let hard = ctx2.hard.cancelled();
        tokio::pin!(hard);
        let mut rec = send_one(&ctx2, &req, Some(scheduled_us), hard).await;
        ctx2.workload.answered(&rec);
        ctx2.strip(&mut rec);
        if let Some((_, wait)) = &permit {
            rec.queue_wait_us = wait.as_micros() as u64;
        }
        let _ = ctx2.records.send(rec);
        drop(permit);
    });
}

/// The time to the next arrival, for a request of `weight` at rate `r`.
fn gap(arrival: Arrival, rng: &mut fastrand::Rng, weight: f64, r: f64) -> f64 {
    match arrival {
        Arrival::Constant => weight / r,
        Arrival::Poisson => -(1.0 - rng.f64()).ln() * weight / r,
    }
}
