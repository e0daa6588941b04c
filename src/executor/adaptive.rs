//! Find the boundary and hold it (`--scenario find-and-hold`, `--adaptive`).
//!
//! The load goes up in steps, VUs of the closed model or the open model's
//! rate: doubling from the start level until a step breaks a threshold (or
//! the maximum is reached), then halving the gap between the last level
//! that passed and the first that failed. Each step is judged on its own
//! seconds *at load* (the steady-state rule: a second counts once its mean
//! in-flight reaches 95% of the step's VUs, or its completions 95% of the
//! step's rate), so the ramp between steps is left out. When the gap is one
//! VU (or 5% of the rate), the last passing level is held for `--hold`, and
//! the load ends.
//!
//! The [`Controller`] is an observer of the collector: it sees every
//! request and every closed second, judges, and sets the level the
//! executor follows through the shared [`Control`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::metrics::plateau::AT_LOAD;
use crate::metrics::{Aggregate, Observer, WindowSummary};
use crate::record::{Group, RequestRecord};
use crate::slo::Threshold;

/// The search asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// The first level: VUs, or requests per second when `open`.
    pub start: u64,
    /// The highest level tried.
    pub max: u64,
    /// How long each step lasts.
    pub step: Duration,
    /// How long the level found is held.
    pub hold: Duration,
    /// The levels are the open model's rates.
    #[serde(default)]
    pub open: bool,
}

impl Search {
    /// What a level counts.
    pub fn unit(&self) -> &'static str {
        if self.open {
            "req/s"
        } else {
            "VUs"
        }
    }

    /// The plan's line for it.
    pub fn describe(&self) -> String {
        format!(
            "find-and-hold: {} from {} up to {}, steps of {}, the level found held {}",
            self.unit(),
            self.start,
            self.max,
            humantime::format_duration(self.step),
            humantime::format_duration(self.hold)
        )
    }

    /// The longest the search and the hold can take: every doubling step,
    /// every halving step, and the hold.
    pub fn bound(&self) -> Duration {
        let doublings = (self.max as f64 / self.start.max(1) as f64).log2().ceil() as u32 + 1;
        let halvings = (self.max as f64).log2().ceil() as u32 + 1;
        // An open model may wait as long again for backlogs to drain.
        let steps = (doublings + halvings) * if self.open { 2 } else { 1 };
        self.step * steps + self.hold + Duration::from_secs(1)
    }
}

/// What the executor follows and the report reads.
#[derive(Debug, Default)]
pub struct Control {
    /// The VUs the closed executor runs now, or the open one's rate.
    pub level: AtomicU64,
    pub report: Mutex<SearchReport>,
    /// The hold's requests at load and its seconds at load: the run's
    /// thresholds are judged on them.
    pub hold: Mutex<Option<(Aggregate, f64)>>,
}

/// One step of the search.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Step {
    /// VUs, or requests per second (the report's `unit`).
    pub level: u64,
    /// Seconds since the start of the load: [start_s, end_s).
    pub start_s: u64,
    pub end_s: u64,
    /// Its seconds at load, on which it was judged.
    pub seconds_at_load: u64,
    pub requests: u64,
    pub ok_rps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_p95_ms: Option<f64>,
    pub pass: bool,
    /// The first threshold it broke: `ttft.p95<200ms (was 812.4)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broke: Option<String>,
}

/// The search's steps and what it found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SearchReport {
    /// `VUs` or `req/s`.
    pub unit: String,
    pub steps: Vec<Step>,
    /// The level held: the highest that passed (None: none passed).
    pub found: Option<u64>,
    /// How it was found, in a sentence.
    pub how: String,
    /// The hold, judged as a step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Step>,
}

enum Phase {
    Search,
    /// An open model's backlog draining before the next level (or the hold).
    Drain {
        level: u64,
        hold: bool,
    },
    Hold {
        until: u64,
    },
    Done,
}

/// Judges each step and moves the level.
pub struct Controller {
    search: Search,
    thresholds: Vec<Threshold>,
    control: Arc<Control>,
    stop: CancellationToken,
    phase: Phase,
    /// Requests by the second they ended in, not yet in a closed window.
    pending: BTreeMap<u64, Aggregate>,
    /// The step under way: its level, first second, and windows at load.
    level: u64,
    step_start: u64,
    at_load: Aggregate,
    seconds_at_load: u64,
    /// The highest level that passed, the lowest that failed.
    passed: Option<u64>,
    failed: Option<u64>,
}

impl Controller {
    pub fn new(
        search: Search,
        thresholds: Vec<Threshold>,
        control: Arc<Control>,
        stop: CancellationToken,
    ) -> Self {
        control.level.store(search.start, Ordering::Relaxed);
        if let Ok(mut r) = control.report.lock() {
            r.unit = search.unit().to_string();
        }
        Controller {
            level: search.start,
            search,
            thresholds,
            control,
            stop,
            phase: Phase::Search,
            pending: BTreeMap::new(),
            step_start: 0,
            at_load: Aggregate::default(),
            seconds_at_load: 0,
            passed: None,
            failed: None,
        }
    }

    /// The step that just ended, judged.
    fn judge(&mut self, end_s: u64) -> Step {
        let a = std::mem::take(&mut self.at_load);
        let secs = std::mem::take(&mut self.seconds_at_load);
        let d = secs.max(1) as f64;
        let broke = if a.requests == 0 {
            Some(if self.search.open {
                format!(
                    "no second's completions reached {:.0}% of {} req/s",
                    AT_LOAD * 100.0,
                    self.level
                )
            } else {
                format!(
                    "no second reached {:.0}% of {} VUs in flight",
                    AT_LOAD * 100.0,
                    self.level
                )
            })
        } else {
            self.thresholds.iter().find_map(|t| {
                let r = t.check(&a, d);
                (!r.pass).then(|| match r.actual {
                    Some(x) => format!("{} (was {})", t.expr, crate::fmt::fmt_num(x)),
                    None => format!("{} (nothing measured)", t.expr),
                })
            })
        };
        let p95 = |m: &str| {
            let s = a.stats(m);
            (s.count > 0).then_some(s.p95)
        };
        Step {
            level: self.level,
            start_s: self.step_start,
            end_s,
            seconds_at_load: secs,
            requests: a.requests,
            ok_rps: a.ok as f64 / d,
            ttft_p95_ms: p95("ttft"),
            e2e_p95_ms: p95("e2e"),
            pass: broke.is_none(),
            broke,
        }
    }

    /// The next level to try, or None once the boundary is found.
    fn next_level(&self) -> Option<u64> {
        match (self.passed, self.failed) {
            (Some(p), None) if p >= self.search.max => None,
            (Some(p), None) => Some((p * 2).min(self.search.max)),
            // One VU apart, or 5% of the rate.
            (Some(p), Some(f)) if f > p + 1 && !(self.search.open && f - p <= p / 20) => {
                Some(p + (f - p) / 2)
            }
            _ => None,
        }
    }

    fn how(&self) -> String {
        let u = self.search.unit();
        let thresholds: Vec<&str> = self.thresholds.iter().map(|t| t.expr.as_str()).collect();
        match (self.passed, self.failed) {
            (Some(p), Some(f)) => format!(
                "{p} {u}: the most that held {} ({f} broke it); found in {} steps, doubling then halving the gap",
                thresholds.join(", "),
                self.report_steps()
            ),
            (Some(p), None) => format!(
                "{p} {u}: the maximum, and it still held {}; the boundary is above it",
                thresholds.join(", ")
            ),
            (None, _) => format!(
                "none: {} {u} already broke {}",
                self.search.start,
                thresholds.join(", ")
            ),
        }
    }

    fn report_steps(&self) -> usize {
        self.control
            .report
            .lock()
            .map(|r| r.steps.len())
            .unwrap_or(0)
    }

    /// Second `t` closed with `agg` ended in it.
    /// Start the next step (or the hold) at second `t1`.
    fn start_level(&mut self, level: u64, hold: bool, t1: u64) {
        self.level = level;
        self.step_start = t1;
        self.at_load = Aggregate::default();
        self.seconds_at_load = 0;
        self.phase = if hold {
            Phase::Hold {
                until: t1 + self.search.hold.as_secs().max(1),
            }
        } else {
            Phase::Search
        };
        self.control.level.store(level, Ordering::Relaxed);
    }

    /// The step that ended at `t1` is judged: move to the next level, the
    /// hold, or the end.
    fn end_step(&mut self, t1: u64) {
        let step = self.judge(t1);
        let pass = step.pass;
        if pass {
            self.passed = Some(self.level);
        } else {
            self.failed = Some(self.level);
        }
        if let Ok(mut r) = self.control.report.lock() {
            r.steps.push(step);
        }
        let (level, hold) = match self.next_level() {
            Some(n) => (n, false),
            None => {
                let how = self.how();
                if let Ok(mut r) = self.control.report.lock() {
                    r.found = self.passed;
                    r.how = how;
                }
                match self.passed {
                    Some(p) => (p, true),
                    None => {
                        self.phase = Phase::Done;
                        self.stop.cancel();
                        return;
                    }
                }
            }
        };
        if self.search.open && !pass {
            // An open model's failing step leaves a backlog in the server's
            // queue: no arrivals until it has drained, so that the next
            // step starts clean.
            self.phase = Phase::Drain { level, hold };
            self.control.level.store(0, Ordering::Relaxed);
        } else {
            self.start_level(level, hold, t1);
        }
    }

    /// Second `t` closed with `agg` ended in it.
    fn second(&mut self, w: &WindowSummary, agg: Aggregate) {
        let t = w.t;
        if let Phase::Drain { level, hold } = self.phase {
            if w.in_flight <= 1 {
                self.start_level(level, hold, t + 1);
            }
            return;
        }
        if t < self.step_start {
            return;
        }
        // A second counts once the step's VUs are in flight, or its
        // completions keep up with its rate.
        let load = if self.search.open {
            agg.requests as f64
        } else {
            w.in_flight as f64
        };
        if load >= AT_LOAD * self.level as f64 {
            self.at_load.merge(&agg);
            self.seconds_at_load += 1;
        }
        match self.phase {
            Phase::Search if t + 1 - self.step_start >= self.search.step.as_secs().max(1) => {
                self.end_step(t + 1);
            }
            Phase::Hold { until } if t + 1 >= until => {
                if let Ok(mut h) = self.control.hold.lock() {
                    *h = Some((self.at_load.clone(), self.seconds_at_load.max(1) as f64));
                }
                let hold = self.judge(t + 1);
                if let Ok(mut r) = self.control.report.lock() {
                    r.hold = Some(hold);
                }
                self.phase = Phase::Done;
                self.stop.cancel();
            }
            _ => {}
        }
    }
}

impl Observer for Controller {
    fn record(&mut self, r: &RequestRecord) {
        if r.group.as_ref().is_some_and(Group::is_side) {
            return;
        }
        self.pending
            .entry(r.end_us / 1_000_000)
            .or_default()
            .add(r, false);
    }

    fn window(&mut self, w: &WindowSummary, _total: &Aggregate) {
        // Requests that ended in this second or before (late to a closed one).
        let later = self.pending.split_off(&(w.t + 1));
        let mut agg = Aggregate::default();
        for a in std::mem::replace(&mut self.pending, later).values() {
            agg.merge(a);
        }
        self.second(w, agg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(max: u64, bound_ms: u64) -> (Controller, Arc<Control>, CancellationToken) {
        let control = Arc::new(Control::default());
        let stop = CancellationToken::new();
        let c = Controller::new(
            Search {
                start: 1,
                max,
                step: Duration::from_secs(2),
                hold: Duration::from_secs(3),
                open: false,
            },
            vec![Threshold::parse(&format!("e2e.p95<{bound_ms}ms")).unwrap()],
            control.clone(),
            stop.clone(),
        );
        (c, control, stop)
    }

    /// A server that holds `cap` requests at once, each 100 ms; more wait
    /// in line (e2e grows with the excess).
    fn drive(c: &mut Controller, control: &Control, stop: &CancellationToken, cap: u64) {
        for t in 0..200u64 {
            if stop.is_cancelled() {
                return;
            }
            let vus = control.level.load(Ordering::Relaxed);
            let e2e_us = 100_000 * vus.div_ceil(cap);
            for i in 0..10 {
                let mut r = RequestRecord::new(0, t * 1_000_000 + i);
                r.end_us = t * 1_000_000 + 500_000;
                r.start_us = r.end_us - e2e_us;
                c.record(&r);
            }
            let w = WindowSummary {
                t,
                in_flight: vus,
                ..WindowSummary::default()
            };
            c.window(&w, &Aggregate::default());
        }
    }

    #[test]
    fn the_boundary_is_found_by_doubling_then_halving_and_held() {
        let (mut c, control, stop) = controller(64, 150);
        drive(&mut c, &control, &stop, 8);
        assert!(stop.is_cancelled(), "the load ends after the hold");
        let r = control.report.lock().unwrap().clone();
        let levels: Vec<u64> = r.steps.iter().map(|s| s.level).collect();
        // 1 2 4 8 pass, 16 fails, then 12 10 9 fail: 8 is the boundary.
        assert_eq!(levels, [1, 2, 4, 8, 16, 12, 10, 9]);
        assert_eq!(r.found, Some(8));
        assert!(
            r.how
                .starts_with("8 VUs: the most that held e2e.p95<150ms (9 broke it)"),
            "{}",
            r.how
        );
        assert!(r.steps[4]
            .broke
            .as_deref()
            .unwrap()
            .starts_with("e2e.p95<150ms (was "));
        let hold = r.hold.unwrap();
        assert_eq!((hold.level, hold.pass), (8, true));
        assert_eq!(hold.end_s - hold.start_s, 3);
    }

    #[test]
    fn a_level_that_never_breaks_is_the_max_and_one_that_always_does_is_none() {
        let (mut c, control, stop) = controller(4, 10_000);
        drive(&mut c, &control, &stop, 1);
        let r = control.report.lock().unwrap().clone();
        assert_eq!(r.found, Some(4));
        assert!(r.how.contains("the boundary is above it"), "{}", r.how);
        let (mut c, control, stop) = controller(64, 50);
        drive(&mut c, &control, &stop, 8);
        let r = control.report.lock().unwrap().clone();
        assert_eq!((r.found, r.steps.len()), (None, 1));
        assert!(r.how.starts_with("none: 1 VUs already broke"), "{}", r.how);
        assert!(stop.is_cancelled());
    }

    #[test]
    fn the_ramp_into_a_step_is_not_judged() {
        let (mut c, control, stop) = controller(64, 150);
        // Second 0: only half the VUs in flight and slow answers: left out.
        let mut slow = RequestRecord::new(0, 0);
        slow.end_us = 900_000;
        c.record(&slow);
        c.window(
            &WindowSummary {
                t: 0,
                in_flight: 0,
                ..WindowSummary::default()
            },
            &Aggregate::default(),
        );
        assert_eq!(c.seconds_at_load, 0);
        assert_eq!(c.at_load.requests, 0);
        let _ = (control, stop);
    }
}
