//! `periscope merge`: the results of one plan run as several processes, as
//! one result. Every count and histogram is added exactly (the aggregates are
//! rebuilt from the results' `raw` sums and serialized histograms), so totals
//! are the parts' sums and percentiles are those of the union of their
//! requests, within histogram precision. Per-second series are aligned on
//! wall-clock seconds and summed; their per-second percentiles are the parts'
//! means weighted by ok requests (a window's histogram is not kept).
//! Thresholds, the scenario's figure and the warnings are judged again on
//! the whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::result::{GeneratorUsage, Inputs, RunResult};
use crate::error::Error;
use crate::executor::{ExecReport, Load, Stages};
use crate::metrics::{Aggregate, Sample, WindowSummary};
use crate::record::Group;
use crate::slo::Threshold;

fn bad(path: &std::path::Path, msg: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{}: {msg}", path.display()))
}

/// What must agree for results to be parts of one plan.
fn identity(r: &RunResult) -> [(&'static str, String); 5] {
    let p = &r.plan;
    [
        ("workload", p.workload.to_string()),
        ("target", target_identity(r)),
        ("model", p.model.clone()),
        ("scenario", p.scenario.clone()),
        ("streaming", p.stream.to_string()),
    ]
}

/// The target as compare and merge see it: the built-in mock is the same
/// target whatever free port it got.
pub fn target_identity(r: &RunResult) -> String {
    if r.plan.target_kind == crate::report::view::TargetKind::Mock {
        "the built-in mock".to_string()
    } else {
        r.plan.target.clone()
    }
}

/// The first difference between the plans of `a` and `b`, if any.
pub fn plan_difference(a: &RunResult, b: &RunResult) -> Option<String> {
    identity(a)
        .into_iter()
        .zip(identity(b))
        .find(|(x, y)| x.1 != y.1)
        .map(|((what, x), (_, y))| format!("{what} differs ('{x}' vs '{y}')"))
}

/// Stages of the same shape (durations) add up level by level.
fn add_stages(a: &mut Stages, b: &Stages) -> bool {
    let same_shape = a.stages.len() == b.stages.len()
        && a.stages
            .iter()
            .zip(&b.stages)
            .all(|(x, y)| x.duration == y.duration);
    if same_shape {
        a.start += b.start;
        for (x, y) in a.stages.iter_mut().zip(&b.stages) {
            x.target += y.target;
        }
    }
    same_shape
}

/// The whole load: the parts' VUs or rates added stage by stage.
fn add_load(total: &mut Load, part: &Load) -> bool {
    match (total, part) {
        (
            Load::Closed { vus: a, iterations },
            Load::Closed {
                vus: b,
                iterations: ib,
            },
        ) => {
            *iterations = match (*iterations, ib) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(*y),
            };
            add_stages(a, b)
        }
        (Load::Open { rate: a, .. }, Load::Open { rate: b, .. }) => add_stages(a, b),
        _ => false,
    }
}

fn aggregate(
    path: &std::path::Path,
    what: &str,
    r: Result<Aggregate, String>,
) -> Result<Aggregate, Error> {
    r.map_err(|e| bad(path, format!("{what}: {e}")))
}

/// Rebuild the total, per-group and per-stage aggregates of a result.
pub struct Parts {
    pub total: Aggregate,
    pub by_group: BTreeMap<Group, Aggregate>,
    pub by_stage: BTreeMap<u16, Aggregate>,
}

pub fn parts(path: &std::path::Path, r: &RunResult) -> Result<Parts, Error> {
    let total = aggregate(
        path,
        "raw.total",
        Aggregate::from_counts(&r.raw.total, Some(&r.histograms)),
    )?;
    let mut by_group = BTreeMap::new();
    for g in &r.raw.groups {
        let key = Group::parse(&g.kind, &g.label).ok_or_else(|| {
            bad(
                path,
                format!("raw.groups: unknown group {} {}", g.kind, g.label),
            )
        })?;
        by_group.insert(
            key,
            aggregate(path, "raw.groups", Aggregate::from_counts(&g.counts, None))?,
        );
    }
    let mut by_stage = BTreeMap::new();
    for (k, c) in &r.raw.stages {
        by_stage.insert(
            *k,
            aggregate(path, "raw.stages", Aggregate::from_counts(c, None))?,
        );
    }
    Ok(Parts {
        total,
        by_group,
        by_stage,
    })
}

/// Add window `w` into `into` (same second).
fn add_window(into: &mut WindowSummary, w: &WindowSummary) {
    let (n0, n1) = (into.ok as f64, w.ok as f64);
    let mean = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) if n0 + n1 > 0.0 => Some((x * n0 + y * n1) / (n0 + n1)),
        (x, y) => x.or(y),
    };
    into.ttft_p50 = mean(into.ttft_p50, w.ttft_p50);
    into.ttft_p95 = mean(into.ttft_p95, w.ttft_p95);
    into.ttft_p99 = mean(into.ttft_p99, w.ttft_p99);
    into.itl_p50 = mean(into.itl_p50, w.itl_p50);
    into.itl_p95 = mean(into.itl_p95, w.itl_p95);
    into.itl_p99 = mean(into.itl_p99, w.itl_p99);
    into.tpot_p50 = mean(into.tpot_p50, w.tpot_p50);
    into.tpot_p95 = mean(into.tpot_p95, w.tpot_p95);
    into.tpot_p99 = mean(into.tpot_p99, w.tpot_p99);
    into.e2e_p50 = mean(into.e2e_p50, w.e2e_p50);
    into.e2e_p95 = mean(into.e2e_p95, w.e2e_p95);
    into.e2e_p99 = mean(into.e2e_p99, w.e2e_p99);
    into.requests += w.requests;
    into.ok += w.ok;
    into.errors += w.errors;
    into.output_tokens += w.output_tokens;
    into.input_tokens += w.input_tokens;
    into.payload_bytes += w.payload_bytes;
    into.wire_bytes += w.wire_bytes;
    into.spans += w.spans;
    into.rejected_spans += w.rejected_spans;
    into.reconnects += w.reconnects;
    for (class, n) in &w.errors_by_class {
        *into.errors_by_class.entry(class.clone()).or_default() += n;
    }
    into.active_vus += w.active_vus;
    into.in_flight += w.in_flight;
    into.rss_mib = match (into.rss_mib, w.rss_mib) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
}

fn started(path: &std::path::Path, r: &RunResult) -> Result<SystemTime, Error> {
    humantime::parse_rfc3339_weak(&r.started_at)
        .map_err(|e| bad(path, format!("started_at '{}': {e}", r.started_at)))
}

/// Whether the parts are segments of one run (`--segment i/n`): then they
/// share the count and the run id, no segment comes twice, and a missing one
/// is a warning. Mixing segments with whole runs is refused.
fn check_segments(results: &[(PathBuf, RunResult)], force: bool) -> Result<bool, Error> {
    let (first_path, first) = &results[0];
    let Some(seg0) = results.iter().find_map(|(_, r)| r.plan.segment) else {
        return Ok(false);
    };
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (path, r) in results {
        let Some(seg) = r.plan.segment else {
            return Err(bad(
                path,
                "a whole run cannot be merged with segments (--segment i/n) of one",
            ));
        };
        if !force {
            if seg.count != seg0.count {
                return Err(bad(
                    path,
                    format!(
                        "segment {seg} is not of the same {} segments as the others (--force merges anyway)",
                        seg0.count
                    ),
                ));
            }
            if r.run_id != first.run_id {
                return Err(bad(
                    path,
                    format!(
                        "segment {seg} belongs to run '{}', not '{}' of {} (--force merges anyway)",
                        r.run_id,
                        first.run_id,
                        first_path.display()
                    ),
                ));
            }
        }
        if let Some(other) = seen.insert(seg.index, path) {
            return Err(bad(
                path,
                format!(
                    "segment {seg} was given twice (also {}): its requests would count twice",
                    other.display()
                ),
            ));
        }
    }
    let missing: Vec<String> = (1..=seg0.count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{}", seg0.count))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: segment(s) {} of run '{}' missing: the merged result covers {} of {} segments, not the whole plan",
            missing.join(", "),
            first.run_id,
            seen.len(),
            seg0.count
        );
    }
    Ok(true)
}

/// Merge `results` (path, result) into one.
pub fn merge(results: &[(PathBuf, RunResult)], force: bool) -> Result<RunResult, Error> {
    let Some((first_path, first)) = results.first() else {
        return Err(Error::Usage("merge: give at least one result".into()));
    };
    check_same_plan(results, force)?;
    let segmented = check_segments(results, force)?;
    let starts = results
        .iter()
        .map(|(p, r)| started(p, r))
        .collect::<Result<Vec<_>, _>>()?;
    let origin = *starts.iter().min().expect("at least one result");
    // Each part's offset from the earliest start, in µs and whole seconds.
    let offsets: Vec<Duration> = starts
        .iter()
        .map(|s| s.duration_since(origin).unwrap_or_default())
        .collect();

    let mut plan = first.plan.clone();
    let mut same_shape = true;
    let mut sum = Sums::default();
    for (i, ((path, r), off)) in results.iter().zip(&offsets).enumerate() {
        // Segments each carry the whole plan's load; other parts add up.
        if i > 0 && !segmented {
            same_shape &= add_load(&mut plan.load, &r.plan.load);
        }
        sum.add(path, r, *off)?;
    }
    if !same_shape {
        eprintln!(
            "warning: the parts' load shapes differ; the merged plan shows the first part's load"
        );
        plan.load = first.plan.load.clone();
    }
    let thresholds = plan
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(first_path, format!("plan.thresholds: {e}")))?;
    plan.segment = None;
    let run_id = merged_run_id(results);
    let stages = plan.load.stages().clone();
    let requested_rate = plan.load.mean_rate();
    let has_slos = !plan.slos.is_empty();
    let includes_mock = sum.generator.includes_mock;
    Ok(RunResult::build(Inputs {
        plan,
        total: &sum.total,
        windows: sum.windows.into_values().collect(),
        exec: &sum.exec,
        run_id,
        started_at: origin,
        duration_s: sum.duration_s,
        requested_rate,
        includes_mock,
        interrupted_by_user: results.iter().any(|(_, r)| r.interrupted_by_user),
        thresholds: &thresholds,
        has_slos,
        by_group: &sum.by_group,
        by_stage: &sum.by_stage,
        stages: &stages,
        aborted: sum.aborted,
        generator: sum.generator,
        requests: sum.requests,
        merged_from: results
            .iter()
            .map(|(_, r)| match r.plan.segment {
                Some(seg) => format!("{} (segment {seg})", r.run_id),
                None => r.run_id.clone(),
            })
            .collect(),
        outputs: Vec::new(),
        tokenizer: first.tokenizer.clone(),
        server: results
            .iter()
            .fold(None, |acc, (_, r)| match (acc, &r.server) {
                (None, s) => s.clone(),
                (Some(mut a), Some(b)) => {
                    a.merge(b);
                    Some(a)
                }
                (a, None) => a,
            }),
        // Segments' plateaus fall in different seconds: none merges exactly.
        steady: None,
        search: None,
    }))
}

/// Every part is of the first one's plan (or `force` says merge anyway).
fn check_same_plan(results: &[(PathBuf, RunResult)], force: bool) -> Result<(), Error> {
    let (first_path, first) = &results[0];
    for (path, r) in &results[1..] {
        if let Some(diff) = plan_difference(first, r) {
            if !force {
                return Err(bad(
                    path,
                    format!(
                        "not a part of the same plan as {}: {diff} (--force merges anyway)",
                        first_path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The parts' run id when they share one, else a new one.
fn merged_run_id(results: &[(PathBuf, RunResult)]) -> String {
    let first = &results[0].1.run_id;
    if results.iter().all(|(_, r)| r.run_id == *first) {
        first.clone()
    } else {
        crate::new_run_id()
    }
}

/// The parts added up, each shifted by its start's offset from the earliest.
#[derive(Default)]
struct Sums {
    total: Aggregate,
    by_group: BTreeMap<Group, Aggregate>,
    by_stage: BTreeMap<u16, Aggregate>,
    windows: BTreeMap<u64, WindowSummary>,
    requests: Vec<Sample>,
    exec: ExecReport,
    duration_s: f64,
    generator: GeneratorUsage,
    aborted: Option<(String, u64)>,
}

impl Sums {
    fn add(&mut self, path: &Path, r: &RunResult, off: Duration) -> Result<(), Error> {
        let p = parts(path, r)?;
        self.total.merge(&p.total);
        for (k, a) in &p.by_group {
            self.by_group.entry(k.clone()).or_default().merge(a);
        }
        for (k, a) in &p.by_stage {
            self.by_stage.entry(*k).or_default().merge(a);
        }
        let shift = off.as_secs_f64().round() as u64;
        for w in &r.series {
            let t = w.t + shift;
            let slot = self.windows.entry(t).or_insert_with(|| WindowSummary {
                t,
                ..WindowSummary::default()
            });
            add_window(slot, w);
        }
        self.requests
            .extend(r.requests.iter().cloned().map(|mut s| {
                s.t_s += off.as_secs_f64();
                s
            }));
        let e = ExecReport::from(&r.raw.exec);
        let exec = &mut self.exec;
        exec.planned += e.planned;
        exec.dispatched += e.dispatched;
        exec.load_elapsed = exec.load_elapsed.max(e.load_elapsed + off);
        exec.cancelled_in_flight |= e.cancelled_in_flight;
        self.duration_s = self.duration_s.max(off.as_secs_f64() + r.duration_s);
        self.generator.cpu_seconds += r.generator.cpu_seconds;
        self.generator.peak_rss_mib += r.generator.peak_rss_mib;
        self.generator.includes_mock |= r.generator.includes_mock;
        if self.aborted.is_none() {
            self.aborted = r.aborted.as_ref().map(|a| (a.threshold.clone(), a.at_s));
        }
        Ok(())
    }
}
