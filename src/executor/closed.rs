//! The closed model: N virtual users, each sending its next request when the
//! previous one ends. A controller follows the stages every 10 ms, starting
//! VUs or asking the newest ones to stop after their current request (k6's
//! graceful ramp-down). A segment (`--segment i/n`) keeps the same stack of
//! VUs but runs only the positions it owns, so the segments' VUs add up to
//! the target at every moment. A VU whose session has nothing more to send
//! ends; when the last one has, so does the load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use super::workers::Workers;
use super::{send_one, Context, ExecReport, Stages};
use crate::record::{ErrorClass, Group, Outcome};

pub(super) async fn run(
    vus: &Stages,
    iterations: Option<u64>,
    ctx: &Arc<Context>,
    tracker: &TaskTracker,
    workers: &Workers,
) -> ExecReport {
    let segment = ctx.segment;
    let remaining = iterations.map(|n| Arc::new(AtomicU64::new(segment.share(n))));
    let dispatched = Arc::new(AtomicU64::new(0));
    let total = vus.total();
    // The whole stack of VUs: each position is this segment's or another's.
    let mut running: Vec<Option<Arc<AtomicBool>>> = Vec::new();
    let mut next_id = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let elapsed = ctx.origin.elapsed();
        if elapsed >= total || ctx.soft.is_cancelled() {
            break;
        }
        let target = match &ctx.adaptive {
            Some(c) => c.level.load(Ordering::Relaxed) as usize,
            None => vus.at(elapsed).round() as usize,
        };
        while running.len() < target {
            let id = next_id;
            next_id += 1;
            if !segment.owns(running.len() as u64) {
                running.push(None);
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            running.push(Some(stop.clone()));
            let ctx = ctx.clone();
            let remaining = remaining.clone();
            let dispatched = dispatched.clone();
            match ctx.script.clone() {
                Some(s) => super::scripted::spawn(
                    id,
                    stop,
                    (ctx, s, workers.next()),
                    remaining,
                    dispatched,
                    tracker,
                ),
                None => workers.spawn(tracker, vu(id, stop, ctx, remaining, dispatched)),
            }
        }
        while running.len() > target {
            if let Some(Some(stop)) = running.pop() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.soft.cancelled() => break,
        }
    }
    ExecReport {
        dispatched: dispatched.load(Ordering::Relaxed),
        ..Default::default()
    }
}

/// Take one of the run's `--iterations`; false once none is left (the
/// load then stops starting new ones).
pub(super) fn claim(remaining: Option<&AtomicU64>, ctx: &Context) -> bool {
    let Some(rem) = remaining else {
        return true;
    };
    let took = rem.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    if took.is_err() {
        ctx.soft.cancel();
    }
    took.is_ok()
}

async fn vu(
    id: u64,
    stop: Arc<AtomicBool>,
    ctx: Arc<Context>,
    remaining: Option<Arc<AtomicU64>>,
    dispatched: Arc<AtomicU64>,
) {
    ctx.gauges.active_vus.fetch_add(1, Ordering::Relaxed);
    let mut session = ctx.workload.session(id);
    let mut iteration = 0u64;
    let mut exhausted = false;
    let hard = ctx.hard.cancelled();
    tokio::pin!(hard);
    loop {
        if stop.load(Ordering::Relaxed) || ctx.soft.is_cancelled() {
            break;
        }
        if !claim(remaining.as_deref(), &ctx) {
            break;
        }
        let Some(req) = session.next(ctx.turn(id, iteration)) else {
            // The workload has nothing more for this VU (a corpus sent once
            // through): the VU ends, and the load once none is left.
            exhausted = true;
            if let Some(rem) = &remaining {
                rem.fetch_add(1, Ordering::AcqRel);
            }
            break;
        };
        let think = ctx
            .think
            .filter(|_| matches!(req.group, Some(Group::Turn(n)) if n > 1))
            .map(|mean| mean.mul_f64(-(1.0 - fastrand::f64()).ln()));
        let jitter = ctx.jitter.map(|j| j.mul_f64(fastrand::f64()));
        if let Some(wait) = think.or(jitter) {
            // A user reading the last answer (think time), or a random wait
            // against lockstep bursts: before the request's clock starts.
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = ctx.soft.cancelled() => {
                    if let Some(rem) = &remaining {
                        rem.fetch_add(1, Ordering::AcqRel);
                    }
                    break;
                }
            }
        }
        dispatched.fetch_add(1, Ordering::Relaxed);
        let mut rec = send_one(&ctx, &req, None, hard.as_mut()).await;
        session.observe(&rec);
        ctx.strip(&mut rec);
        let refused = matches!(
            rec.outcome,
            Outcome::Error(ErrorClass::Connect | ErrorClass::Dns | ErrorClass::ConnectionLost)
        );
        if ctx.records.send(rec).is_err() {
            break;
        }
        iteration += 1;
        if refused {
            // A dead target refuses (or closes) at once: don't spin a
            // core on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let left = ctx.gauges.active_vus.fetch_sub(1, Ordering::Relaxed) - 1;
    if exhausted && left == 0 {
        ctx.soft.cancel();
    }
}
