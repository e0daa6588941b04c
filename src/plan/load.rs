//! The load part of a plan: the load shape (closed model, VUs over time;
//! or open model, arrivals per second) from `--vus`, `--rate`, `--stages`,
//! `--duration`, the environment (`VUS`, `DURATION`) and the scenario, with
//! each stage's phase; the grace for requests in flight; and whether the
//! schedule is held strictly.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::error::{Error, Result};
use crate::executor::shape::{Level, StageSpec};
use crate::executor::{Arrival, Load, Stage, Stages};
use crate::scenario::{Kind, Scenario, ScenarioFile};
use crate::usage;
use crate::values::parse_duration;

use super::{env_var, ITERATIONS_MAX_DURATION};

/// How the load is applied.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub shape: Load,
    /// Each stage's phase (`baseline`, `spike`, …), aligned with the shape's stages.
    pub phases: Vec<Option<String>>,
    /// How long requests in flight may finish after the load.
    pub grace: Duration,
    /// `--strict-schedule`: a generator that fell behind fails the run.
    pub strict_schedule: bool,
    /// `--jitter-ms`: the closed model's VUs wait a random 0..this before
    /// each request.
    pub jitter: Option<Duration>,
    /// `--think-time` of a closed model's multi-turn sessions: the mean
    /// (exponential) wait before each turn after the first.
    pub think: Option<Duration>,
    /// find-and-hold: the steps of the search and the hold.
    pub search: Option<crate::executor::adaptive::Search>,
    /// `--runs`: how many times the test runs (at least 1), and the command
    /// between runs.
    pub runs: u32,
    pub between_runs: Option<String>,
}

impl LoadPlan {
    /// The load of `a` and the scenario `sc`. `paced_rate` is the arrival
    /// rate `--mb-per-s` sets; `batches` the batch sizes of
    /// batch-embeddings, which gets one stage each.
    pub fn from_args(
        a: &RunArgs,
        sc: &Scenario,
        workload: crate::workload::WorkloadKind,
        paced_rate: Option<f64>,
        batches: usize,
    ) -> Result<Self> {
        let f = &sc.file;
        let search = find_and_hold(a, sc)?;
        let (mut load, mut phases) = match (&search, paced_rate) {
            (Some(s), _) if s.open => (
                Load::Open {
                    rate: Stages::constant(s.max as f64, s.bound()),
                    arrival: a.arrival.unwrap_or(Arrival::Constant),
                    max_in_flight: a.max_in_flight,
                    replay: None,
                },
                vec![None],
            ),
            (Some(s), _) => (
                Load::Closed {
                    vus: Stages::constant(s.max as f64, s.bound()),
                    iterations: None,
                },
                vec![None],
            ),
            (None, Some(rate)) => {
                if a.rate.is_some() || f.rate.is_some() {
                    return Err(usage!("--mb-per-s sets the rate: drop --rate"));
                }
                if a.vus.is_some() || a.stages.is_some() {
                    return Err(usage!(
                        "--mb-per-s is an arrival rate (open model): drop --vus and --stages"
                    ));
                }
                let paced = RunArgs {
                    rate: Some(rate),
                    ..a.clone()
                };
                resolve_load(&paced, sc)?
            }
            (None, None) => resolve_load(a, sc)?,
        };
        let shaped = load.stages().stages.len() > 1;
        if workload == crate::workload::WorkloadKind::BatchEmbeddings && !(shaped && batches == 1) {
            if shaped {
                return Err(usage!(
                    "batch-embeddings runs one stage per batch size: with the stages of --stages or of the {} scenario, give one size (--batch-sizes 32)",
                    sc.name
                ));
            }
            // One stage per batch size, splitting the duration evenly.
            load = split_evenly(load, batches);
            phases = vec![None; batches];
        } else if sc.kind == Kind::Soak && !shaped {
            // Tenths of the run, to compare the first with the last.
            load = split_evenly(load, 10);
            phases = vec![None; 10];
        }
        let jitter = a.jitter_ms.filter(|ms| *ms > 0).map(Duration::from_millis);
        if jitter.is_some() && load.is_open() {
            return Err(usage!(
                "--jitter-ms spaces the requests of VUs (closed model); an open model's arrivals are already spread: drop it or use --arrival poisson"
            ));
        }
        if a.runs == Some(0) {
            return Err(usage!("--runs must be at least 1"));
        }
        if a.runs.is_some_and(|n| n > 1)
            && (a.csv.is_some() || a.requests_out.is_some() || a.segments.segment.is_some())
        {
            return Err(usage!(
                "--runs repeats a whole run: its rows go to --json (each run's figures), not --csv, --requests-out or a --segment"
            ));
        }
        Ok(LoadPlan {
            runs: a.runs.unwrap_or(1),
            between_runs: a.between_runs.clone(),
            jitter,
            think: None,
            search,
            shape: load,
            phases,
            grace: a
                .grace
                .or(f.grace.as_ref().map(|v| v.0))
                .unwrap_or(Duration::from_secs(30)),
            strict_schedule: a.strict_schedule,
        })
    }
}

/// The same load, its duration cut into `n` equal stages (one per step of
/// a workload that changes by stage).
fn split_evenly(load: Load, n: usize) -> Load {
    let split = |s: Stages| {
        let total = s.total();
        let level = s.at(Duration::ZERO);
        Stages {
            start: level,
            stages: (0..n.max(1))
                .map(|_| Stage {
                    duration: total / n.max(1) as u32,
                    target: level,
                })
                .collect(),
        }
    };
    match load {
        Load::Closed { vus, iterations } => Load::Closed {
            vus: split(vus),
            iterations,
        },
        Load::Open {
            rate,
            arrival,
            max_in_flight,
            replay,
        } => Load::Open {
            rate: split(rate),
            arrival,
            max_in_flight,
            replay,
        },
    }
}

/// find-and-hold (`--scenario find-and-hold`, `--adaptive`): VUs from
/// `--vus` (1) up to `--max-vus` (the scenario's 64), each step
/// `--step-duration` (10s), the level found held `--hold` (60s).
fn find_and_hold(a: &RunArgs, sc: &Scenario) -> Result<Option<crate::executor::adaptive::Search>> {
    if !(a.adaptive || sc.kind == Kind::FindAndHold) {
        if a.hold.is_some() || a.step_duration.is_some() || a.max_rate.is_some() {
            return Err(usage!(
                "--hold, --step-duration and --max-rate belong to find-and-hold: add --adaptive (or --scenario find-and-hold)"
            ));
        }
        return Ok(None);
    }
    for (given, flag, instead) in [
        (
            a.rate.is_some() && a.vus.is_some(),
            "--vus or --rate",
            "it raises one: VUs (from --vus) or the rate (from --rate)",
        ),
        (
            a.max_rate.is_some() && a.rate.is_none(),
            "--max-rate",
            "it is the top of a search by rate: give the start with --rate",
        ),
        (a.stages.is_some(), "--stages", "it makes its own steps"),
        (
            a.duration.is_some(),
            "--duration",
            "it ends after --hold; --step-duration sets each step",
        ),
        (
            a.iterations.is_some(),
            "--iterations",
            "it ends after --hold",
        ),
        (a.replay.is_some(), "--replay", "a trace sets its own load"),
    ] {
        if given {
            return Err(usage!("find-and-hold: drop {flag}: {instead}"));
        }
    }
    let f = &sc.file;
    let open = a.rate.is_some();
    let (start, max) = match a.rate {
        Some(r) => {
            let start = r.ceil().max(1.0) as u64;
            (start, a.max_rate.map_or(start * 64, |m| m.ceil() as u64))
        }
        None => {
            let start = a.vus.unwrap_or(1);
            (
                start,
                a.max_vus.or(f.max_vus.as_ref().map(|v| v.0)).unwrap_or(64),
            )
        }
    };
    if max < start {
        return Err(usage!(
            "find-and-hold starts at {start}, above its maximum {max} (--max-vus or --max-rate): lower one"
        ));
    }
    let step = a
        .step_duration
        .or(f.steps.as_ref().map(|s| s.hold.0))
        .unwrap_or(Duration::from_secs(10));
    if step < Duration::from_secs(2) {
        return Err(usage!(
            "--step-duration must be at least 2s: a step is judged on its whole seconds at load"
        ));
    }
    Ok(Some(crate::executor::adaptive::Search {
        start,
        max,
        step,
        hold: a
            .hold
            .unwrap_or(Duration::from_secs(60))
            .max(Duration::from_secs(1)),
        open,
    }))
}

/// A replayed trace's load (`--replay FILE`): its records at their
/// timestamps over the trace's span (or `--duration`, if shorter).
fn replay_load(a: &RunArgs, path: &std::path::Path) -> Result<(Load, Vec<Option<String>>)> {
    for (given, flag) in [
        (a.rate.is_some(), "--rate"),
        (a.vus.is_some(), "--vus"),
        (a.stages.is_some(), "--stages"),
        (a.iterations.is_some(), "--iterations"),
        (a.jitter_ms.is_some(), "--jitter-ms"),
        (a.arrival.is_some(), "--arrival"),
    ] {
        if given {
            return Err(usage!(
                "--replay sends each record at its timestamp: drop {flag}"
            ));
        }
    }
    let speed = a.replay_speed.unwrap_or(1.0);
    if !(speed > 0.0 && speed.is_finite()) {
        return Err(usage!(
            "--replay-speed must be more than 0 (2 replays twice as fast)"
        ));
    }
    let block_tokens = a.block_tokens.unwrap_or(512);
    if block_tokens == 0 {
        return Err(usage!("--block-tokens must be at least 1"));
    }
    // A `--duration` shorter than the trace sends the records stamped
    // before it (in the trace's time, at this speed).
    let cut_ms = a
        .duration
        .map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0 * speed);
    let shape = crate::replay::check(path, cut_ms).map_err(Error::Usage)?;
    // The span of the trace, so that its last record is inside it.
    let span = Duration::from_secs_f64((shape.last_ms / 1000.0 / speed).max(0.001) + 0.001);
    let span = a.duration.map_or(span, |d| d.min(span));
    let rate = shape.within as f64 / span.as_secs_f64();
    let think_ms = a.think_time.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok((
        Load::Open {
            rate: Stages::constant(rate, span),
            arrival: Arrival::Constant,
            max_in_flight: a.max_in_flight,
            replay: Some(crate::executor::replay::ReplaySource {
                file: path.to_path_buf(),
                speed,
                records: shape.within,
                block_tokens,
                think_ms,
            }),
        },
        vec![None],
    ))
}

/// The load and each stage's phase, from the flags, the environment and the
/// scenario (in that order of precedence).
fn resolve_load(a: &RunArgs, sc: &Scenario) -> Result<(Load, Vec<Option<String>>)> {
    if let Some(path) = &a.replay {
        return replay_load(a, path);
    }
    let f = &sc.file;
    let env_vus = match env_var("VUS") {
        Some(v) if a.rate.is_none() && a.stages.is_none() => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| usage!("VUS='{v}' is not a whole number of virtual users"))?,
        ),
        _ => None,
    };
    let env_duration = match env_var("DURATION") {
        Some(v) if a.stages.is_none() => {
            Some(parse_duration(&v).map_err(|e| usage!("DURATION: {e}"))?)
        }
        _ => None,
    };
    let cli_vus = a.vus.or(env_vus);
    let duration = a.duration.or(env_duration);
    check_combinations(a, cli_vus, duration)?;

    let open = a.rate.is_some() || (f.rate.is_some() && cli_vus.is_none() && a.max_vus.is_none());
    // The peak asked for on the command line, and the scenario's own.
    let cli_peak = if open {
        a.rate
    } else {
        a.max_vus.or(cli_vus).map(|v| v as f64)
    };
    let file_peak = if open {
        f.rate.as_ref().map(|r| r.0)
    } else {
        f.max_vus.as_ref().or(f.vus.as_ref()).map(|v| v.0 as f64)
    };

    // The shape over time: --stages as given, or the scenario's, fitted to
    // the peak and the duration asked for.
    let shape: Option<Vec<(Duration, f64, Option<String>)>> = match &a.stages {
        Some(list) => Some(cli_stages(a, open, list)?),
        None => match sc.shape(cli_peak.or(file_peak))? {
            None => None,
            Some(specs) => Some(fit_shape(sc, &specs, open, cli_peak, file_peak, duration)?),
        },
    };
    if let Some(shape) = &shape {
        if shape.iter().all(|(d, _, _)| d.is_zero()) {
            return Err(usage!("--stages: the stages add up to no time at all"));
        }
    }
    let phases = shape
        .as_ref()
        .map(|s| s.iter().map(|(_, _, p)| p.clone()).collect())
        .unwrap_or_else(|| vec![None]);
    if open {
        return Ok((open_load(a, f, shape, duration)?, phases));
    }

    Ok((closed_load(a, sc, shape, cli_vus, duration)?, phases))
}

/// The flags that cannot go together, and those out of range.
fn check_combinations(a: &RunArgs, cli_vus: Option<u64>, duration: Option<Duration>) -> Result<()> {
    if a.vus.is_some() && a.rate.is_some() {
        return Err(usage!(
            "--vus (closed model) and --rate (open model) can't be combined: choose one"
        ));
    }
    if a.max_vus.is_some() && a.rate.is_some() {
        return Err(usage!(
            "--max-vus is the peak of the closed model; with --rate, the rate is the peak: drop one"
        ));
    }
    if a.stages.is_some() && a.duration.is_some() {
        return Err(usage!("--stages sets the duration: drop --duration"));
    }
    if a.stages.is_some() && a.vus.is_some() {
        return Err(usage!("--stages sets the VUs over time: drop --vus"));
    }
    if duration.is_some_and(|d| d.is_zero()) {
        return Err(usage!("--duration must be more than 0"));
    }
    if cli_vus == Some(0) || a.max_vus == Some(0) {
        return Err(usage!("--vus must be at least 1"));
    }
    if let Some(rate) = a.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(usage!(
                "--rate must be a positive number of requests per second, got {rate}"
            ));
        }
        if a.iterations.is_some() {
            return Err(usage!(
                "--iterations counts requests of the closed model (--vus); with --rate, use --duration"
            ));
        }
    }
    if a.max_in_flight == Some(0) {
        return Err(usage!("--max-in-flight must be at least 1"));
    }
    if a.iterations == Some(0) {
        return Err(usage!("--iterations must be at least 1"));
    }
    Ok(())
}

/// `--stages` as given: levels in % are shares of `--max-vus` (`--rate`).
fn cli_stages(
    a: &RunArgs,
    open: bool,
    list: &crate::executor::shape::StageList,
) -> Result<Vec<(Duration, f64, Option<String>)>> {
    let peak = if open {
        a.rate
    } else {
        a.max_vus.map(|v| v as f64)
    };
    let mut out = Vec::new();
    for st in &list.0 {
        let level = match (st.target, peak) {
            (Level::Pct(_), None) => {
                return Err(usage!(
                    "--stages in % are shares of a peak: pass --max-vus N (or --rate R)"
                ))
            }
            (l, p) => l.resolve(p.unwrap_or(0.0)),
        };
        out.push((st.duration, level, st.phase.clone()));
    }
    Ok(out)
}

/// A shape as stages from `start`.
fn to_stages(start: f64, shape: Vec<(Duration, f64, Option<String>)>) -> Stages {
    Stages {
        start,
        stages: shape
            .into_iter()
            .map(|(duration, target, _)| Stage { duration, target })
            .collect(),
    }
}

/// The open model: a rate (constant, or the shape's), its arrivals and
/// the most requests it lets be in flight.
fn open_load(
    a: &RunArgs,
    f: &ScenarioFile,
    shape: Option<Vec<(Duration, f64, Option<String>)>>,
    duration: Option<Duration>,
) -> Result<Load> {
    let rate = a.rate.or(f.rate.as_ref().map(|r| r.0)).unwrap_or(1.0);
    let rate = match shape {
        Some(shape) => {
            // --stages ramps from --rate; a scenario from its first level.
            let start = if a.stages.is_some() {
                rate
            } else {
                shape.first().map(|s| s.1).unwrap_or(rate)
            };
            to_stages(start, shape)
        }
        None => Stages::constant(
            rate,
            duration
                .or(f.duration.as_ref().map(|d| d.0))
                .unwrap_or(Duration::from_secs(30)),
        ),
    };
    if rate.peak() <= 0.0 {
        return Err(usage!(
            "the rate never rises above 0: nothing would be sent"
        ));
    }
    let load = Load::Open {
        rate,
        arrival: a
            .arrival
            .or(f.arrival.as_ref().map(|v| v.0))
            .unwrap_or(Arrival::Constant),
        max_in_flight: a.max_in_flight.or(f.max_in_flight.as_ref().map(|v| v.0)),
        replay: None,
    };
    Ok(load)
}

/// The closed model: VUs (constant, or the shape's) and the iterations.
fn closed_load(
    a: &RunArgs,
    sc: &Scenario,
    shape: Option<Vec<(Duration, f64, Option<String>)>>,
    cli_vus: Option<u64>,
    duration: Option<Duration>,
) -> Result<Load> {
    let f = &sc.file;
    if a.max_in_flight.is_some() {
        return Err(usage!(
            "--max-in-flight applies to the open model (--rate); in the closed model, --vus is the concurrency"
        ));
    }
    if a.strict_schedule {
        return Err(usage!(
            "--strict-schedule applies to the open model (--rate)"
        ));
    }
    let iterations = a.iterations.or(f.iterations.as_ref().map(|v| v.0));
    if iterations == Some(0) {
        return Err(sc.error("iterations: must be at least 1"));
    }
    let vus = match shape {
        Some(shape) => to_stages(0.0, shape),
        None => {
            let n = cli_vus
                .or(a.max_vus)
                .or(f.vus.as_ref().map(|v| v.0))
                .or(f.max_vus.as_ref().map(|v| v.0))
                .unwrap_or(1);
            if n == 0 {
                return Err(usage!("--vus must be at least 1"));
            }
            // --iterations alone runs until the count, within a bound.
            let d = duration
                .or_else(|| {
                    a.iterations
                        .is_none()
                        .then(|| f.duration.as_ref().map(|d| d.0))
                        .flatten()
                })
                .unwrap_or(if iterations.is_some() {
                    ITERATIONS_MAX_DURATION
                } else {
                    Duration::from_secs(30)
                });
            Stages::constant(n as f64, d)
        }
    };
    if vus.peak() < 1.0 {
        return Err(usage!("the stages never reach 1 VU: nothing would be sent"));
    }
    Ok(Load::Closed { vus, iterations })
}

/// A scenario's stages, in levels: shares resolved against its peak, then
/// scaled to the peak and stretched to the duration the command line asks for.
fn fit_shape(
    sc: &Scenario,
    specs: &[StageSpec],
    open: bool,
    cli_peak: Option<f64>,
    file_peak: Option<f64>,
    duration: Option<Duration>,
) -> Result<Vec<(Duration, f64, Option<String>)>> {
    let base = file_peak.or(cli_peak);
    let mut levels = Vec::with_capacity(specs.len());
    for st in specs {
        levels.push(match (st.target, base) {
            (Level::Pct(_), None) => {
                return Err(sc.error(
                    "its stages are shares of a peak: set max_vus (or rate), or pass --max-vus N",
                ))
            }
            (l, b) => l.resolve(b.unwrap_or(0.0)),
        });
    }
    let top = levels.iter().copied().fold(0.0, f64::max);
    if let (Some(peak), true) = (cli_peak, top > 0.0) {
        for l in &mut levels {
            *l *= peak / top;
        }
    }
    if !open {
        // Whole VUs, and never a step of none where the scenario asked for some.
        for (l, st) in levels.iter_mut().zip(specs) {
            let r = l.round();
            *l = if r == 0.0 && *l > 0.0 && st.target != Level::Abs(0.0) {
                1.0
            } else {
                r
            };
        }
    }
    let total: Duration = specs.iter().map(|s| s.duration).sum();
    let per_phase = sc.file.duration_per_phase == Some(true);
    if let (true, Some(d)) = (per_phase, duration) {
        // Every phase lasts --duration.
        return Ok(specs
            .iter()
            .zip(levels)
            .map(|(st, level)| (d, level, st.phase.clone()))
            .collect());
    }
    let stretch = match duration {
        Some(d) if !total.is_zero() => d.as_secs_f64() / total.as_secs_f64(),
        _ => 1.0,
    };
    Ok(specs
        .iter()
        .zip(levels)
        .map(|(st, level)| {
            (
                Duration::from_secs_f64(st.duration.as_secs_f64() * stretch),
                level,
                st.phase.clone(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::executor::{describe_load, Load, Stages};
    use crate::plan::tests::plan;
    use crate::plan::Plan;
    use crate::scenario::Kind;

    #[test]
    fn closed_model_defaults() {
        let p = plan(&["--mock"]).unwrap();
        assert_eq!(
            p.load.shape,
            Load::Closed {
                vus: Stages::constant(10.0, Duration::from_secs(30)),
                iterations: None
            },
            "the load scenario: 10 VUs for 30s"
        );
        assert_eq!(p.scenario.name, "load");
        assert!(p.workload.spec.stream);
        assert_eq!(p.workload.spec.max_tokens, 64);
    }

    #[test]
    fn open_model_and_stages() {
        let p = plan(&[
            "--mock",
            "--rate",
            "50",
            "--duration",
            "10s",
            "--max-in-flight",
            "5",
        ])
        .unwrap();
        assert!(describe_load(&p.load.shape).contains("≈ 500 requests"));
        let p = plan(&["--mock", "--stages", "10s:10,20s:10,10s:0"]).unwrap();
        assert_eq!(p.load.shape.duration(), Duration::from_secs(40));
        assert_eq!(
            describe_load(&p.load.shape),
            "closed model: VUs 0→10 over 10s, 10 for 20s, 10→0 over 10s"
        );
    }

    fn holds(p: &Plan) -> Vec<(u64, f64)> {
        p.load
            .shape
            .stages()
            .stages
            .iter()
            .filter(|s| !s.duration.is_zero())
            .map(|s| (s.duration.as_secs(), s.target))
            .collect()
    }

    #[test]
    fn scenarios_fit_the_peak_and_duration_asked_for() {
        // stress: 5 steps of 20%, scaled to --max-vus and stretched to --duration.
        let p = plan(&[
            "--mock",
            "--scenario",
            "stress",
            "--max-vus",
            "10",
            "--duration",
            "20s",
        ])
        .unwrap();
        assert_eq!(p.scenario.kind, Kind::Stress);
        assert_eq!(
            holds(&p),
            vec![(4, 2.0), (4, 4.0), (4, 6.0), (4, 8.0), (4, 10.0)]
        );
        assert_eq!(
            p.checks.thresholds[0].expr, "error_rate<0.01",
            "the file's thresholds"
        );
        // --vus is the peak of a staged scenario too.
        let p = plan(&["--mock", "--scenario", "stress", "--vus", "5"]).unwrap();
        assert_eq!(
            holds(&p).iter().map(|h| h.1).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0]
        );
        // benchmark doubles up to the peak.
        let p = plan(&[
            "--mock",
            "--scenario",
            "benchmark",
            "--max-vus",
            "8",
            "--duration",
            "8s",
        ])
        .unwrap();
        assert_eq!(holds(&p), vec![(2, 1.0), (2, 2.0), (2, 4.0), (2, 8.0)]);
        // With --rate the same shape is an arrival rate, and phases follow their stages.
        let p = plan(&[
            "--mock",
            "--scenario",
            "spike",
            "--rate",
            "100",
            "--duration",
            "10s",
        ])
        .unwrap();
        assert!(p.load.shape.is_open());
        assert_eq!(p.load.shape.stages().peak(), 100.0);
        let named: Vec<&str> = p.load.phases.iter().flatten().map(String::as_str).collect();
        assert_eq!(named, ["before", "spike", "after"]);
        // soak compares tenths.
        let p = plan(&["--mock", "--scenario", "soak", "--duration", "20s"]).unwrap();
        assert_eq!(holds(&p), vec![(2, 10.0); 10]);
        // --stages in % need a peak.
        let e = plan(&["--mock", "--stages", "5s:50%"]).unwrap_err();
        assert!(e.to_string().contains("--max-vus"), "{e}");
        let p = plan(&["--mock", "--stages", "5s:50%", "--max-vus", "8"]).unwrap();
        assert_eq!(p.load.shape.stages().peak(), 4.0);
        // batch-embeddings owns its stages.
        let e = plan(&["batch-embeddings", "--mock", "--scenario", "stress"]).unwrap_err();
        assert!(e.to_string().contains("one stage per batch size"), "{e}");
        let p = plan(&[
            "batch-embeddings",
            "--mock",
            "--scenario",
            "stress",
            "--batch-sizes",
            "32",
        ])
        .unwrap();
        assert_eq!(holds(&p).len(), 5, "one size, the scenario's steps");
    }
}
