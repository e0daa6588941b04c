//! Each scenario's figure: what its load pattern exists to find.
//!
//! Computed once from the per-stage aggregates and the per-second windows:
//! stress judges each step against the thresholds and names the capacity;
//! spike and recovery compare their phases; soak compares the first and last
//! tenth of the run and the generator's memory; benchmark finds where
//! throughput stops growing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::result::StageRow;
use crate::executor::adaptive::SearchReport;
use crate::executor::Stages;
use crate::metrics::{Aggregate, LatencyStats, WindowSummary};
use crate::scenario::Kind;
use crate::slo::{Threshold, ThresholdResult};

/// Share by which p95 may exceed the baseline and still count as recovered.
pub const RECOVERY_BAND: f64 = 0.10;
/// Consecutive windows that must stay in the band to call it recovered.
const RECOVERY_WINDOWS: usize = 3;
/// A step whose ok_rps grows less than this over the previous one has saturated.
const SATURATION_GAIN: f64 = 0.10;

/// The scenario's figure, for the report and the JSON result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub kind: Kind,
    /// The figure in one sentence.
    pub figure: String,
    /// The latency metric phases and recovery are judged on (`ttft` when
    /// streaming, else `e2e`).
    pub metric: String,
    /// Spike and recovery: one row per phase; soak: the first and last tenth.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseRow>,
    /// Stress: the highest step that met the thresholds, and the first that did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<Step>,
    /// Recovery: seconds from the end of the high load until p95 stayed
    /// within 10% of the baseline (None: not within the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
    /// Soak: p95 change from the first to the last tenth, in %.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub p95_drift_pct: BTreeMap<String, f64>,
    /// Soak: the generator's resident memory in the first and last tenth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryGrowth>,
    /// Benchmark: the step with the most ok req/s, and the first step that
    /// added less than 10% over the one before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<Step>,
}

/// A step of a staged load, by its stage row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Index into the plan's stages.
    pub stage: u16,
    /// VUs or req/s.
    pub target: f64,
    pub ok_rps: f64,
    pub p95_ms: f64,
    /// Thresholds this step failed (stress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

/// A named part of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseRow {
    pub phase: String,
    /// The highest VUs or req/s in the phase.
    pub target: f64,
    pub start_s: f64,
    pub duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub ok_rps: f64,
    pub ttft: LatencyStats,
    pub e2e: LatencyStats,
}

/// The generator's memory over a soak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryGrowth {
    /// Mean resident memory over the first and the last tenth, MiB.
    pub first_mib: f64,
    pub last_mib: f64,
    pub growth_mib: f64,
    /// Growth per hour between the middles of the two tenths.
    pub growth_mib_per_hour: f64,
    /// The built-in mock ran in the same process.
    pub includes_mock: bool,
}

/// What the analysis reads.
pub struct Facts<'a> {
    pub name: &'a str,
    pub kind: Kind,
    pub phases: &'a [Option<String>],
    pub stages: &'a Stages,
    pub by_stage: &'a BTreeMap<u16, Aggregate>,
    pub rows: &'a mut [StageRow],
    pub windows: &'a [WindowSummary],
    pub thresholds: &'a [Threshold],
    pub total: &'a Aggregate,
    /// The run's groups (endpoints, turns…), for thresholds on one of them.
    pub by_group: &'a BTreeMap<crate::record::Group, Aggregate>,
    pub duration_s: f64,
    pub streaming: bool,
    pub includes_mock: bool,
    pub open: bool,
    /// find-and-hold: its steps, and the hold's requests and seconds at load.
    pub search: Option<(&'a SearchReport, Option<(&'a Aggregate, f64)>)>,
}

/// find-and-hold's figure, and the verdicts that stand for the run: the
/// thresholds judged on the hold (none held: on the whole run, failing).
fn find_and_hold(f: &Facts<'_>) -> (String, Option<Vec<ThresholdResult>>) {
    let Some((search, hold)) = f.search else {
        return ("find-and-hold ran no step".to_string(), None);
    };
    let last = search.steps.last();
    let figure = match (&search.hold, search.how.is_empty(), last) {
        (Some(h), _, _) => format!(
            "{}; held {} s at {} {}: {:.2} ok req/s, ttft p95 {}, e2e p95 {}",
            search.how,
            h.end_s - h.start_s,
            h.level,
            search.unit,
            h.ok_rps,
            ms(h.ttft_p95_ms),
            ms(h.e2e_p95_ms)
        ),
        (None, false, _) => search.how.clone(),
        (None, true, Some(s)) => format!(
            "the search stopped at step {} ({} {}) before it found the boundary",
            search.steps.len(),
            s.level,
            search.unit
        ),
        (None, true, None) => "the search stopped before its first step ended".to_string(),
    };
    let verdicts = hold.map(|(agg, d)| {
        f.thresholds
            .iter()
            .filter(|t| !t.is_server() && t.group().is_none())
            .map(|t| {
                let mut v = t.check(agg, d);
                v.threshold = format!("{} (the hold)", t.expr);
                v
            })
            .collect()
    });
    (figure, verdicts)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.1} ms"))
}

/// The figure of the run's scenario; for stress, also the threshold verdicts
/// that stand for the run (those of the capacity step).
pub fn analyze(mut f: Facts<'_>) -> (ScenarioReport, Option<Vec<ThresholdResult>>) {
    let metric = if f.streaming && !f.total.hist["ttft"].is_empty() {
        "ttft"
    } else {
        "e2e"
    };
    let unit = if f.open { "req/s" } else { "VUs" };
    let mut rep = ScenarioReport {
        name: f.name.to_string(),
        kind: f.kind,
        figure: String::new(),
        metric: metric.to_string(),
        phases: Vec::new(),
        capacity: None,
        first_failure: None,
        recovery_s: None,
        p95_drift_pct: BTreeMap::new(),
        memory: None,
        peak: None,
        saturation: None,
    };
    let mut verdicts = None;
    match f.kind {
        Kind::Load => load(&f, &mut rep, metric, unit),
        Kind::Smoke => smoke(&f, &mut rep),
        Kind::Stress => verdicts = stress(&mut f, &mut rep, metric, unit),
        Kind::Spike => spike(&f, &mut rep, metric),
        Kind::Recovery => recovery(&f, &mut rep, metric),
        Kind::Soak => soak(&f, &mut rep, metric),
        Kind::FindAndHold => {
            let (figure, v) = find_and_hold(&f);
            rep.figure = figure;
            verdicts = v;
        }
        Kind::Benchmark => benchmark(&f, &mut rep, metric, unit),
    }
    (rep, verdicts)
}

/// A stage row as a step of a stress or benchmark ladder.
fn step(row: &StageRow, metric: &str, failed: Vec<String>) -> Step {
    Step {
        stage: row.stage,
        target: row.target,
        ok_rps: row.ok_rps,
        p95_ms: if metric == "ttft" {
            row.ttft.p95
        } else {
            row.e2e.p95
        },
        failed,
    }
}

/// A phase's p95 of the scenario's metric.
fn phase_p95(p: &PhaseRow, metric: &str) -> f64 {
    if metric == "ttft" {
        p.ttft.p95
    } else {
        p.e2e.p95
    }
}

/// load: the run at its peak in one line.
fn load(f: &Facts<'_>, rep: &mut ScenarioReport, metric: &str, unit: &str) {
    let s = f.stages;
    rep.figure = format!(
        "{} {unit} for {:.1}s: {:.2} ok req/s, {metric} p95 {:.1} ms, error rate {:.2}%",
        crate::fmt::fmt_num(s.peak()),
        f.duration_s,
        f.total.ok as f64 / f.duration_s.max(1e-9),
        f.total.stats(metric).p95,
        f.total.error_rate() * 100.0
    );
}

/// smoke: requests, errors and the thresholds' verdict.
fn smoke(f: &Facts<'_>, rep: &mut ScenarioReport) {
    let failed: Vec<String> = f
        .thresholds
        .iter()
        .filter(|t| !t.is_server() && !t.check_in(f.total, f.by_group, f.duration_s).pass)
        .map(|t| t.expr.clone())
        .collect();
    rep.figure = format!(
        "{} requests, {} errors: {}",
        f.total.requests,
        f.total.errors,
        if f.thresholds.is_empty() {
            "no thresholds to judge (add --threshold)".to_string()
        } else if failed.is_empty() {
            format!("all {} thresholds met", f.thresholds.len())
        } else {
            format!("FAILED {}", failed.join(", "))
        }
    );
}

/// stress: each step judged by the thresholds; capacity is the last step
/// before the first that fails. The verdicts of the step that stands.
fn stress(
    f: &mut Facts<'_>,
    rep: &mut ScenarioReport,
    metric: &str,
    unit: &str,
) -> Option<Vec<ThresholdResult>> {
    let mut verdicts = None;
    let mut capacity: Option<usize> = None;
    let mut first_failure: Option<usize> = None;
    for (i, row) in f.rows.iter_mut().enumerate() {
        let empty = Aggregate::default();
        let agg = f.by_stage.get(&row.stage).unwrap_or(&empty);
        let failed: Vec<String> = if agg.requests == 0 {
            vec!["no requests".to_string()]
        } else {
            f.thresholds
                .iter()
                // A group's bound is on the whole run, not a step.
                .filter(|t| t.group().is_none())
                .filter(|t| !t.is_server() && !t.check(agg, row.duration_s).pass)
                .map(|t| t.expr.clone())
                .collect()
        };
        row.pass = Some(failed.is_empty());
        row.failed = failed.clone();
        if first_failure.is_none() {
            if failed.is_empty() {
                capacity = Some(i);
            } else {
                first_failure = Some(i);
            }
        }
    }
    rep.capacity = capacity.map(|i| step(&f.rows[i], metric, Vec::new()));
    rep.first_failure = first_failure.map(|i| step(&f.rows[i], metric, f.rows[i].failed.clone()));
    let judged = capacity.or(first_failure);
    if let Some(i) = judged {
        let empty = Aggregate::default();
        let agg = f.by_stage.get(&f.rows[i].stage).unwrap_or(&empty);
        let d = f.rows[i].duration_s;
        verdicts = Some(
            f.thresholds
                .iter()
                .filter(|t| !t.is_server() && t.group().is_none())
                .map(|t| {
                    let mut v = t.check(agg, d);
                    v.threshold = format!("{} (step {})", t.expr, i + 1);
                    v
                })
                .collect(),
        );
    }
    let n = crate::fmt::fmt_num;
    rep.figure = match (&rep.capacity, &rep.first_failure) {
        (Some(c), Some(x)) => format!(
            "capacity {} {unit} ({:.2} ok req/s, {metric} p95 {:.1} ms); at {} {unit} it failed {}",
            n(c.target),
            c.ok_rps,
            c.p95_ms,
            n(x.target),
            x.failed.join(", ")
        ),
        (Some(c), None) => format!(
            "every step met the thresholds: capacity is at least {} {unit} ({:.2} ok req/s); raise the peak to find it",
            n(c.target),
            c.ok_rps
        ),
        (None, Some(x)) => format!(
            "no step met the thresholds: capacity is below {} {unit} (it failed {})",
            n(x.target),
            x.failed.join(", ")
        ),
        (None, None) => "no steps were run".to_string(),
    };
    verdicts
}

/// spike: errors and p95 before, during and after; how long it took to
/// come back.
fn spike(f: &Facts<'_>, rep: &mut ScenarioReport, metric: &str) {
    rep.phases = phase_rows(f);
    let get = |name: &str| rep.phases.iter().find(|p| p.phase == name);
    let m = |p: &PhaseRow| phase_p95(p, metric);
    let during = get("spike");
    let after = get("after");
    let before = get("before");
    // How long after the spike p95 was back near the level
    // before it, as the recovery scenario judges it.
    if let (Some(base), Some(a)) = (before.map(m).filter(|b| *b > 0.0), after) {
        rep.recovery_s =
            recovery_time(f.windows, metric, base, a.start_s, a.start_s + a.duration_s);
    }
    let recovered = match (rep.recovery_s, after) {
        (Some(s), _) => format!(
            "; back within {:.0}% of the p95 before it {s:.0} s after",
            RECOVERY_BAND * 100.0
        ),
        (None, Some(a)) if before.is_some() => format!(
            "; not back within {:.0}% of the p95 before it in the {:.0} s observed after",
            RECOVERY_BAND * 100.0,
            a.duration_s
        ),
        _ => String::new(),
    };
    rep.figure = match during {
        Some(s) => format!(
            "{} failed of {} requests during the spike ({:.2}%), {} after it; {metric} p95 before / during / after: {} / {:.1} / {} ms{recovered}",
            s.errors,
            s.requests,
            s.error_rate * 100.0,
            after.map_or("-".to_string(), |a| a.errors.to_string()),
            before.map_or("-".to_string(), |b| format!("{:.1}", m(b))),
            m(s),
            after.map_or("-".to_string(), |a| format!("{:.1}", m(a))),
        ),
        None => "the plan has no stage in phase `spike`".to_string(),
    };
}

/// recovery: how long after the high load p95 came back to the baseline.
fn recovery(f: &Facts<'_>, rep: &mut ScenarioReport, metric: &str) {
    rep.phases = phase_rows(f);
    let get = |name: &str| rep.phases.iter().find(|p| p.phase == name);
    let m = |p: &PhaseRow| phase_p95(p, metric);
    let baseline = get("baseline").map(m).filter(|b| *b > 0.0);
    let stress = get("stress").map(m);
    let rec = get("recovery").cloned();
    match (baseline, rec) {
        (Some(base), Some(rec)) => {
            rep.recovery_s = recovery_time(
                f.windows,
                metric,
                base,
                rec.start_s,
                rec.start_s + rec.duration_s,
            );
            rep.figure = match rep.recovery_s {
                Some(s) => format!(
                    "{metric} p95 was back within {:.0}% of the baseline ({base:.1} ms) {s:.0} s after the high load ended (under it: {:.1} ms)",
                    RECOVERY_BAND * 100.0,
                    stress.unwrap_or(0.0)
                ),
                None => format!(
                    "{metric} p95 did not return within {:.0}% of the baseline ({base:.1} ms) in the {:.0} s observed after the high load (under it: {:.1} ms)",
                    RECOVERY_BAND * 100.0,
                    rec.duration_s,
                    stress.unwrap_or(0.0)
                ),
            };
        }
        _ => {
            rep.figure =
                "no baseline or recovery phase was measured: nothing to compare".to_string()
        }
    }
}

/// soak: drift of p95 and of the generator's memory from the first tenth
/// to the last.
fn soak(f: &Facts<'_>, rep: &mut ScenarioReport, metric: &str) {
    let rows: Vec<&StageRow> = f.rows.iter().collect();
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        for (label, row) in [("first tenth", first), ("last tenth", last)] {
            let empty = Aggregate::default();
            let agg = f.by_stage.get(&row.stage).unwrap_or(&empty);
            rep.phases.push(phase_row(
                label,
                agg,
                row.target,
                row.start_s,
                row.duration_s,
            ));
        }
        for m in ["ttft", "e2e"] {
            let pick = |r: &StageRow| if m == "ttft" { r.ttft.p95 } else { r.e2e.p95 };
            let (a, b) = (pick(first), pick(last));
            if a > 0.0 && b > 0.0 {
                rep.p95_drift_pct.insert(m.to_string(), (b - a) / a * 100.0);
            }
        }
        let rss = |from: f64, to: f64| {
            let v: Vec<f64> = f
                .windows
                .iter()
                .filter(|w| (w.t as f64) >= from.floor() && ((w.t + 1) as f64) <= to.ceil())
                .filter_map(|w| w.rss_mib)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        let a = rss(first.start_s, first.start_s + first.duration_s);
        let b = rss(last.start_s, last.start_s + last.duration_s);
        if let (Some(a), Some(b)) = (a, b) {
            let hours = ((last.start_s + last.duration_s / 2.0)
                - (first.start_s + first.duration_s / 2.0))
                / 3600.0;
            rep.memory = Some(MemoryGrowth {
                first_mib: a,
                last_mib: b,
                growth_mib: b - a,
                growth_mib_per_hour: if hours > 0.0 { (b - a) / hours } else { 0.0 },
                includes_mock: f.includes_mock,
            });
        }
        let drift = rep
            .p95_drift_pct
            .get(metric)
            .map_or("-".to_string(), |d| format!("{d:+.1}%"));
        rep.figure = format!(
            "{metric} p95 drift from the first to the last tenth: {drift} ({:.1} → {:.1} ms); generator memory {}",
            if metric == "ttft" { first.ttft.p95 } else { first.e2e.p95 },
            if metric == "ttft" { last.ttft.p95 } else { last.e2e.p95 },
            rep.memory.as_ref().map_or("not measured".to_string(), |m| format!(
                "{:+.1} MiB ({:.1} → {:.1} MiB, {:+.1} MiB/h){}",
                m.growth_mib,
                m.first_mib,
                m.last_mib,
                m.growth_mib_per_hour,
                if m.includes_mock { ", mock included" } else { "" }
            ))
        );
    } else {
        rep.figure = "no stages were run".to_string();
    }
}

/// benchmark: where throughput peaks and where it stops growing.
fn benchmark(f: &Facts<'_>, rep: &mut ScenarioReport, metric: &str, unit: &str) {
    let best = f.rows.iter().max_by(|a, b| a.ok_rps.total_cmp(&b.ok_rps));
    rep.peak = best.map(|r| step(r, metric, Vec::new()));
    rep.saturation = f.rows.windows(2).find_map(|w| {
        (w[1].target > w[0].target
            && w[0].ok_rps > 0.0
            && w[1].ok_rps < w[0].ok_rps * (1.0 + SATURATION_GAIN))
            .then(|| step(&w[0], metric, Vec::new()))
    });
    let n = crate::fmt::fmt_num;
    rep.figure = match (&rep.peak, &rep.saturation) {
        (Some(p), Some(s)) => format!(
            "throughput peaks at {:.2} ok req/s ({} {unit}); it stops growing after {} {unit} ({:.2} ok req/s, {metric} p95 {:.1} ms)",
            p.ok_rps,
            n(p.target),
            n(s.target),
            s.ok_rps,
            s.p95_ms
        ),
        (Some(p), None) => format!(
            "throughput peaks at {:.2} ok req/s ({} {unit}) and was still growing: raise the peak to find where it stops",
            p.ok_rps,
            n(p.target)
        ),
        _ => "no steps were run".to_string(),
    };
}

fn phase_row(phase: &str, a: &Aggregate, target: f64, start_s: f64, duration_s: f64) -> PhaseRow {
    PhaseRow {
        phase: phase.to_string(),
        target,
        start_s,
        duration_s,
        requests: a.requests,
        ok: a.ok,
        errors: a.errors,
        error_rate: a.error_rate(),
        ok_rps: a.ok as f64 / duration_s.max(1e-9),
        ttft: a.stats("ttft"),
        e2e: a.stats("e2e"),
    }
}

/// One row per named phase, in the order they first appear.
fn phase_rows(f: &Facts<'_>) -> Vec<PhaseRow> {
    let mut order: Vec<String> = Vec::new();
    let mut parts: BTreeMap<String, (Aggregate, f64, f64, f64)> = BTreeMap::new();
    let mut start = 0.0;
    for (i, st) in f.stages.stages.iter().enumerate() {
        let d = st.duration.as_secs_f64();
        if let Some(Some(name)) = f.phases.get(i) {
            let e = parts.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                (Aggregate::default(), 0.0, start, 0.0)
            });
            if let Some(a) = f.by_stage.get(&(i as u16)) {
                e.0.merge(a);
            }
            e.1 = e.1.max(st.target);
            e.3 += d;
        }
        start += d;
    }
    order
        .iter()
        .map(|name| {
            let (a, target, s, d) = &parts[name];
            phase_row(name, a, *target, *s, *d)
        })
        .collect()
}

/// Seconds from `start` until the window p95 of `metric` stays within the
/// band over `baseline` for a few windows in a row (or to the end).
pub fn recovery_time(
    windows: &[WindowSummary],
    metric: &str,
    baseline: f64,
    start: f64,
    end: f64,
) -> Option<f64> {
    let bound = baseline * (1.0 + RECOVERY_BAND);
    let seen: Vec<(u64, f64)> = windows
        .iter()
        .filter(|w| (w.t as f64) >= start.ceil() - 1e-9 && (w.t as f64) < end)
        .filter_map(|w| {
            let v = if metric == "ttft" {
                w.ttft_p95
            } else {
                w.e2e_p95
            };
            v.map(|v| (w.t, v))
        })
        .collect();
    (0..seen.len())
        .find(|&i| {
            seen[i..]
                .iter()
                .take(RECOVERY_WINDOWS)
                .all(|(_, v)| *v <= bound)
        })
        .map(|i| (seen[i].0 as f64 - start).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: u64, p95: f64) -> WindowSummary {
        WindowSummary {
            t,
            e2e_p95: Some(p95),
            ..Default::default()
        }
    }

    #[test]
    fn recovery_is_the_first_window_that_stays_in_the_band() {
        // Baseline 100 ms: in the band up to 110 ms. One good window at t=11
        // is a blip (12 is bad again); from 13 on it stays.
        let ws: Vec<WindowSummary> = [
            (9, 400.0),
            (10, 300.0),
            (11, 105.0),
            (12, 150.0),
            (13, 108.0),
            (14, 101.0),
            (15, 99.0),
            (16, 100.0),
        ]
        .iter()
        .map(|&(t, p)| w(t, p))
        .collect();
        assert_eq!(recovery_time(&ws, "e2e", 100.0, 10.0, 17.0), Some(3.0));
        // Never back within the band.
        let ws: Vec<WindowSummary> = (10..20).map(|t| w(t, 200.0)).collect();
        assert_eq!(recovery_time(&ws, "e2e", 100.0, 10.0, 20.0), None);
    }
}
