//! Replaying a timestamped trace (`--replay FILE`): each record sent at its
//! timestamp, divided by `--replay-speed`, as an open model (latency from
//! the scheduled time; a late start is the generator's schedule lag, as for
//! any arrival). The file is read on a thread of its own, a bounded queue
//! ahead of the schedule: a trace of any length replays in the memory of a
//! few thousand records.
//!
//! The turns of a session (records with one `session_id`) go in order:
//! each is sent at its timestamp or once the turn before it has ended and
//! `--think-time` has passed, whichever is later; its latency counts from
//! when it could go. A segment (`--segment i/n`) sends the records k with
//! k mod n = i − 1, and the sessions of those records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};
use tokio_util::task::TaskTracker;

use super::workers::Workers;
use super::{send_one, Context, ExecReport};
use crate::replay::{Reader, Record};
use crate::timer;

/// How many records are read ahead of the schedule.
const READ_AHEAD: usize = 4096;
/// How long before its time a record's request is built.
const BUILD_LEAD: Duration = Duration::from_millis(20);

/// What a replay needs from the plan.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReplaySource {
    pub file: std::path::PathBuf,
    /// Timestamps are divided by this.
    pub speed: f64,
    /// Records in the file.
    pub records: u64,
    /// Tokens of one `hash_ids` block.
    pub block_tokens: u32,
    /// Mean wait between a session's turns, ms (exponential; 0: none).
    #[serde(default)]
    pub think_ms: f64,
}

/// The next turn of each session: when the last one ended.
type Waiting = HashMap<String, oneshot::Receiver<Instant>>;

pub(super) async fn run(
    src: &ReplaySource,
    max_in_flight: Option<u64>,
    ctx: &Arc<Context>,
    tracker: &TaskTracker,
    workers: &Workers,
) -> ExecReport {
    let segment = ctx.segment;
    let slots = max_in_flight.map(|n| Arc::new(Semaphore::new(segment.share(n).max(1) as usize)));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Record>(READ_AHEAD);
    let file = src.file.clone();
    let reader = std::thread::Builder::new()
        .name("periscope-replay".into())
        .spawn(move || {
            let Ok(records) = Reader::open(&file) else {
                return;
            };
            for r in records {
                if tx.blocking_send(r).is_err() {
                    return;
                }
            }
        });
    if reader.is_err() {
        ctx.soft.cancel();
        return ExecReport::default();
    }
    let mut report = ExecReport::default();
    let mut sessions: Waiting = HashMap::new();
    let mut turns: HashMap<String, u32> = HashMap::new();
    let mut rng = fastrand::Rng::with_seed(ctx.seed);
    let mut index = 0u64;
    loop {
        let rec = tokio::select! {
            biased;
            _ = ctx.soft.cancelled() => break,
            r = rx.recv() => match r { Some(r) => r, None => break },
        };
        let mine = segment.owns(index);
        index += 1;
        if !mine {
            continue;
        }
        let at = Duration::from_secs_f64(rec.timestamp / 1000.0 / src.speed.max(1e-9));
        let scheduled = ctx.origin + at;
        let build_at = scheduled.checked_sub(BUILD_LEAD).unwrap_or(scheduled);
        if build_at > Instant::now() {
            tokio::select! {
                biased;
                _ = ctx.soft.cancelled() => break,
                _ = timer::sleep_until(build_at) => {}
            }
        }
        // The session's turn, and the end of the turn before it.
        let (turn, before, done) = match &rec.session_id {
            Some(id) => {
                let n = turns.entry(id.clone()).or_insert(0);
                *n += 1;
                let (tx, rx) = oneshot::channel();
                (Some(*n), sessions.insert(id.clone(), rx), Some(tx))
            }
            None => (None, None, None),
        };
        let Some(mut req) = ctx.workload.for_record(&rec, turn, &mut rng) else {
            break;
        };
        if before.is_none() {
            tokio::select! {
                biased;
                _ = ctx.soft.cancelled() => break,
                _ = timer::sleep_until(scheduled) => {}
            }
        }
        req.weight = 1.0;
        report.planned += 1;
        report.dispatched += 1;
        let think = (src.think_ms > 0.0)
            .then(|| Duration::from_secs_f64(-(1.0 - rng.f64()).ln() * src.think_ms / 1000.0));
        let ctx2 = ctx.clone();
        let slots = slots.clone();
        workers.spawn(tracker, async move {
            // A later turn waits for the one before it, then thinks.
            let mut due = scheduled;
            if let Some(prev) = before {
                let ended = tokio::select! {
                    biased;
                    _ = ctx2.hard.cancelled() => return,
                    e = prev => e.unwrap_or_else(|_| Instant::now()),
                };
                let ready = ended + think.unwrap_or_default();
                due = due.max(ready);
                timer::sleep_until(due).await;
            }
            let permit = match &slots {
                None => None,
                Some(s) => s.clone().acquire_owned().await.ok(),
            };
            let scheduled_us = due.saturating_duration_since(ctx2.origin).as_micros() as u64;
            let hard = ctx2.hard.cancelled();
            tokio::pin!(hard);
            let mut rec = send_one(&ctx2, &req, Some(scheduled_us), hard).await;
            if let Some(d) = done {
                let _ = d.send(Instant::now());
            }
            ctx2.workload.answered(&rec);
            ctx2.strip(&mut rec);
            let _ = ctx2.records.send(rec);
            drop(permit);
        });
    }
    // The trace's span, as planned, even when its last records came early.
    let end = ctx.origin + Duration::from_secs_f64(ctx.stages.total().as_secs_f64());
    tokio::select! {
        _ = ctx.soft.cancelled() => {}
        _ = timer::sleep_until(end) => {}
    }
    report
}
