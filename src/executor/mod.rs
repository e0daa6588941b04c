//! Executors: who sends when.
//!
//! Every load shape is reduced to stages: a list of (duration,
//! target) steps ramping linearly from a start value. The closed model runs
//! that many virtual users, each with one request in flight; the open model
//! schedules arrivals at that rate and measures latency from each arrival's
//! scheduled time. Both stop starting requests when the stages end, the
//! iterations are used up, or `soft` is cancelled (Ctrl-C); requests still
//! in flight then get `grace` to finish before `hard` cancels them, and they
//! are recorded as interrupted. Completion is signalled by dropping the
//! record senders, which closes the collector's channel.

pub mod adaptive;
mod closed;
mod open;
pub mod replay;
mod scripted;
pub mod segment;
pub mod shape;
pub mod workers;

pub use segment::Segment;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::{Client, Prepared};
use crate::fmt::{fmt_dur, fmt_num};
use crate::metrics::Gauges;
use crate::record::{Outcome, RequestRecord};
use crate::workload::{Turn, Workload};

/// Whether arrivals in the open model are evenly spaced or random.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// One request every 1/rate seconds.
    Constant,
    /// Exponential gaps with mean 1/rate (a Poisson process).
    Poisson,
}

/// One step of a load shape: ramp linearly to `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stage {
    #[serde(with = "crate::fmt::duration_secs")]
    pub duration: Duration,
    pub target: f64,
}

/// A load shape: stages from a start value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stages {
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl Stages {
    /// A constant `value` for `duration`.
    pub fn constant(value: f64, duration: Duration) -> Self {
        Stages {
            start: value,
            stages: vec![Stage {
                duration,
                target: value,
            }],
        }
    }

    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The target at `t` since the start, interpolated linearly.
    pub fn at(&self, t: Duration) -> f64 {
        let mut prev = self.start;
        let mut acc = Duration::ZERO;
        for s in &self.stages {
            if t < acc + s.duration {
                let f = (t - acc).as_secs_f64() / s.duration.as_secs_f64().max(1e-9);
                return prev + (s.target - prev) * f;
            }
            acc += s.duration;
            prev = s.target;
        }
        prev
    }

    /// The index of the stage running at `t` (the last one after the end).
    pub fn index_at(&self, t: Duration) -> usize {
        let mut acc = Duration::ZERO;
        for (i, s) in self.stages.iter().enumerate() {
            acc += s.duration;
            if t < acc {
                return i;
            }
        }
        self.stages.len().saturating_sub(1)
    }

    /// The highest target anywhere in the shape.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The integral of the target over the shape (requests, for a rate).
    pub fn integral(&self) -> f64 {
        let mut prev = self.start;
        let mut sum = 0.0;
        for s in &self.stages {
            sum += (prev + s.target) / 2.0 * s.duration.as_secs_f64();
            prev = s.target;
        }
        sum
    }
}

/// The load to apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum Load {
    /// Virtual users, one request in flight each.
    Closed {
        vus: Stages,
        /// Stop after this many requests in total.
        iterations: Option<u64>,
    },
    /// Arrivals per second, latency measured from the schedule.
    Open {
        rate: Stages,
        arrival: Arrival,
        max_in_flight: Option<u64>,
        /// A replayed trace: arrivals at its records' timestamps (the rate
        /// stages are its mean, for the windows and the schedule check).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replay: Option<replay::ReplaySource>,
    },
}

impl Load {
    pub fn duration(&self) -> Duration {
        match self {
            Load::Closed { vus, .. } => vus.total(),
            Load::Open { rate, .. } => rate.total(),
        }
    }

    /// The open model's mean arrival rate over the whole shape.
    pub fn mean_rate(&self) -> Option<f64> {
        match self {
            Load::Open { rate, .. } => Some(rate.integral() / rate.total().as_secs_f64().max(1e-9)),
            Load::Closed { .. } => None,
        }
    }

    pub fn stages(&self) -> &Stages {
        match self {
            Load::Closed { vus, .. } => vus,
            Load::Open { rate, .. } => rate,
        }
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Load::Open { .. })
    }

    /// Most connections the load can hold at once.
    pub fn max_concurrency(&self) -> usize {
        match self {
            Load::Closed { vus, .. } => vus.peak().ceil() as usize,
            Load::Open {
                max_in_flight,
                rate,
                ..
            } => max_in_flight
                .map(|m| m as usize)
                .unwrap_or((rate.peak().ceil() as usize).clamp(16, 4096)),
        }
    }
}

/// A human line describing the load, for `--dry-run` and the report.
pub fn describe_load(load: &Load) -> String {
    fn shape(s: &Stages, unit: &str) -> String {
        if s.stages.len() == 1 && s.stages[0].target == s.start {
            format!(
                "{} {unit} for {}",
                fmt_num(s.start),
                fmt_dur(s.stages[0].duration)
            )
        } else {
            // Jumps (0s stages) show as the level of the next step.
            let mut prev = s.start;
            let mut steps = Vec::new();
            for st in &s.stages {
                if !st.duration.is_zero() {
                    steps.push(if st.target == prev {
                        format!("{} for {}", fmt_num(st.target), fmt_dur(st.duration))
                    } else {
                        format!(
                            "{}→{} over {}",
                            fmt_num(prev),
                            fmt_num(st.target),
                            fmt_dur(st.duration)
                        )
                    });
                }
                prev = st.target;
            }
            format!("{unit} {}", steps.join(", "))
        }
    }
    match load {
        Load::Closed { vus, iterations } => {
            let mut s = format!("closed model: {}", shape(vus, "VUs"));
            if let Some(n) = iterations {
                s.push_str(&format!(", stopping after {n} requests"));
            }
            s
        }
        Load::Open {
            rate,
            max_in_flight,
            replay: Some(r),
            ..
        } => {
            let mut s = format!(
                "replay of {} ({} records over {} at {}× speed, ≈ {} req/s)",
                r.file.display(),
                r.records,
                fmt_dur(rate.total()),
                fmt_num(r.speed),
                fmt_num(rate.start)
            );
            if r.think_ms > 0.0 {
                s.push_str(&format!(
                    ", sessions' turns {} ms apart on average",
                    fmt_num(r.think_ms)
                ));
            }
            if let Some(m) = max_in_flight {
                s.push_str(&format!(", at most {m} in flight"));
            }
            s
        }
        Load::Open {
            rate,
            arrival,
            max_in_flight,
            replay: None,
        } => {
            let mut s = format!(
                "open model: {} ({} arrivals, ≈ {} requests)",
                shape(rate, "req/s"),
                match arrival {
                    Arrival::Constant => "constant",
                    Arrival::Poisson => "Poisson",
                },
                rate.integral().round()
            );
            if let Some(m) = max_in_flight {
                s.push_str(&format!(", at most {m} in flight"));
            }
            s
        }
    }
}

/// What the executor shares with its tasks.
pub struct Context {
    pub client: Arc<Client>,
    pub workload: Arc<dyn Workload>,
    /// Completed requests, to the collector (a lock-free send that wakes no one).
    pub records: std::sync::mpsc::Sender<RequestRecord>,
    pub gauges: Arc<Gauges>,
    /// Stop starting new requests.
    pub soft: CancellationToken,
    /// Cancel requests in flight.
    pub hard: CancellationToken,
    pub origin: Instant,
    /// The load's stages, to tell which one a request belongs to.
    pub stages: Stages,
    /// This process's share of the plan (`--segment i/n`).
    pub segment: Segment,
    /// Seeds the open model's Poisson gaps: every segment of a run computes
    /// the same arrivals (`segment::seed_of` the run id).
    pub seed: u64,
    /// A script's run: its VUs run the script instead of sessions.
    pub script: Option<Arc<crate::script::ScriptRun>>,
    /// `--jitter-ms`: a VU waits a random 0..this before each request.
    pub jitter: Option<Duration>,
    /// `--think-time`: a VU waits an exponential wait of this mean before
    /// each turn of a session after its first.
    pub think: Option<Duration>,
    /// find-and-hold: the VUs to run now, set by its controller (instead of
    /// the stages).
    pub adaptive: Option<Arc<adaptive::Control>>,
    /// `--requests-text`: records keep the request's body and the answer's
    /// text for the per-request rows.
    pub keep_texts: bool,
}

impl Context {
    /// What only a session reads goes no further (the answer's text stays
    /// for `--requests-text`).
    pub fn strip(&self, rec: &mut RequestRecord) {
        if !self.keep_texts {
            rec.output_text = None;
        }
        rec.reasoning_text = None;
        rec.body = None;
    }

    /// Where the load is now, for a VU's next request.
    pub fn turn(&self, vu: u64, iteration: u64) -> Turn {
        self.turn_at(vu, iteration, self.origin.elapsed())
    }

    /// The turn of a request due `at` after the origin.
    pub fn turn_at(&self, vu: u64, iteration: u64, at: Duration) -> Turn {
        Turn {
            vu,
            iteration,
            stage: self.stages.index_at(at),
        }
    }
}

/// What the executor did, for the schedule check.
#[derive(Debug, Clone, Default)]
pub struct ExecReport {
    /// Open model: arrivals whose scheduled time came before the end.
    pub planned: u64,
    /// Requests started.
    pub dispatched: u64,
    /// From the origin to the moment the executor stopped starting requests.
    pub load_elapsed: Duration,
    /// The grace period ran out and requests were cancelled.
    pub cancelled_in_flight: bool,
}

/// Apply `load`, then let in-flight requests finish within `grace`.
pub async fn run(load: &Load, ctx: Arc<Context>, grace: Duration) -> ExecReport {
    let tracker = TaskTracker::new();
    let pool = match workers::Workers::start(crate::worker::count()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: could not start the worker threads: {e}");
            ctx.soft.cancel();
            return ExecReport::default();
        }
    };
    // setup() before the first VU; its failure is the run's (k6's way).
    if !scripted::once("setup", &ctx, &pool).await {
        ctx.soft.cancel();
        return ExecReport::default();
    }
    let mut report = match load {
        Load::Closed { vus, iterations } => {
            closed::run(vus, *iterations, &ctx, &tracker, &pool).await
        }
        Load::Open {
            max_in_flight,
            replay: Some(src),
            ..
        } => replay::run(src, *max_in_flight, &ctx, &tracker, &pool).await,
        Load::Open {
            rate,
            arrival,
            max_in_flight,
            replay: None,
        } => open::run(rate, *arrival, *max_in_flight, &ctx, &tracker, &pool).await,
    };
    report.load_elapsed = ctx.origin.elapsed();
    ctx.soft.cancel();
    tracker.close();
    tokio::select! {
        _ = tracker.wait() => {}
        _ = tokio::time::sleep(grace) => {
            report.cancelled_in_flight = true;
            ctx.hard.cancel();
            tracker.wait().await;
        }
        _ = ctx.hard.cancelled() => {
            report.cancelled_in_flight = true;
            tracker.wait().await;
        }
    }
    if !ctx.hard.is_cancelled() {
        scripted::once("teardown", &ctx, &pool).await;
    }
    report
}

/// Send one request, unless `hard` (the run's hard stop, `ctx.hard.cancelled()`,
/// made once per VU: waiting on it registers with the token) ends first;
/// then it is interrupted.
async fn send_one(
    ctx: &Context,
    req: &Prepared,
    scheduled_us: Option<u64>,
    hard: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> RequestRecord {
    // `--requests-text`: every answer's text is read and kept.
    let owned;
    let req = if ctx.keep_texts && !req.keep_text {
        owned = Prepared {
            keep_text: true,
            ..req.clone()
        };
        &owned
    } else {
        req
    };
    ctx.gauges.in_flight.fetch_add(1, Ordering::Relaxed);
    let start_us = ctx.client.now_us();
    let rec = tokio::select! {
        biased;
        _ = hard => {
            let mut r = RequestRecord::new(scheduled_us.unwrap_or(start_us).min(start_us), start_us);
            r.end_us = ctx.client.now_us();
            r.outcome = Outcome::Interrupted;
            r
        }
        r = ctx.client.send(req, scheduled_us) => r,
    };
    let mut rec = rec;
    if ctx.keep_texts {
        rec.prompt = Some(req.body.clone());
    }
    rec.stage = ctx
        .stages
        .index_at(Duration::from_micros(rec.scheduled_us))
        .min(u16::MAX as usize) as u16;
    ctx.gauges.in_flight.fetch_sub(1, Ordering::Relaxed);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_know_their_index() {
        let s = Stages {
            start: 1.0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(2),
                    target: 1.0,
                },
                Stage {
                    duration: Duration::from_secs(3),
                    target: 2.0,
                },
            ],
        };
        assert_eq!(s.index_at(Duration::from_millis(1999)), 0);
        assert_eq!(s.index_at(Duration::from_secs(2)), 1);
        assert_eq!(s.index_at(Duration::from_secs(9)), 1);
    }

    #[test]
    fn stages_interpolate_and_integrate() {
        let s = Stages {
            start: 0.0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 10.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 10.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 0.0,
                },
            ],
        };
        assert_eq!(s.at(Duration::from_secs(5)), 5.0);
        assert_eq!(s.at(Duration::from_secs(15)), 10.0);
        assert_eq!(s.at(Duration::from_secs(25)), 5.0);
        assert_eq!(s.at(Duration::from_secs(40)), 0.0);
        assert_eq!(s.total(), Duration::from_secs(30));
        assert_eq!(s.integral(), 200.0);
        assert_eq!(s.peak(), 10.0);
        assert_eq!(
            Stages::constant(50.0, Duration::from_secs(10)).integral(),
            500.0
        );
    }
}
