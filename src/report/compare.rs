//! `periscope compare BASELINE CURRENT`: each metric's change, whether it is
//! larger than run-to-run noise, and a verdict against `--max-regression`.
//!
//! Both results are read back into their aggregates (exact sums and HDR
//! histograms), so every figure is computed the way thresholds compute it.
//! Noise, by kind of figure:
//! - a latency percentile: distribution-free 95% confidence intervals of the
//!   quantile from order statistics (ranks nq ± 1.96·√(nq(1−q))), read off
//!   each run's histogram; the change is real when the intervals are apart;
//! - a latency mean: Welch's z over the histograms' means and deviations;
//! - a rate (ok_rps, tokens_per_s, rps, goodput): Welch's z over the runs'
//!   per-second values (the last, partial second left out);
//! - error_rate: the two-proportion z-test.
//!
//! A change is "beyond noise" when its test says so and it is at least
//! `--noise` (default 2%): a shift of half a percent on a quiet mock is real
//! but not worth a word. A change for the worse beyond `--max-regression` is
//! a regression (exit 99) unless the test cannot tell it from noise.

use std::path::Path;

use hdrhistogram::Histogram;

use super::markdown::table;
use super::merge::{parts, target_identity};
use super::RunResult;
use crate::error::Error;
use crate::metrics::WindowSummary;
use crate::slo::Metric;

/// What `compare` looks at unless `--metric` says otherwise (those a run has).
pub const DEFAULT_METRICS: &[&str] = &[
    "ttft.p50",
    "ttft.p95",
    "ttft.p99",
    "itl.p50",
    "itl.p95",
    "tpot.p50",
    "e2e.p50",
    "e2e.p95",
    "e2e.p99",
    "ok_rps",
    "tokens_per_s",
    "error_rate",
];

/// 95%, two-sided.
const Z: f64 = 1.96;

/// Whether a difference stands out of the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    Beyond,
    Within,
    /// No test for this figure (or too little data).
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Regression,
    Improved,
    /// Within the bound, or beyond it but not beyond noise.
    Ok,
    /// One of the runs has no value.
    Missing,
}

/// One metric, baseline vs current.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    /// (current − baseline) / baseline; infinite when the baseline is 0.
    pub change: Option<f64>,
    pub noise: Noise,
    pub verdict: Verdict,
}

/// The comparison of two runs.
pub struct Comparison {
    pub rows: Vec<Row>,
    pub max_regression: f64,
    pub noise_floor: f64,
}

impl Comparison {
    pub fn regressions(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .collect()
    }
}

/// The value at 1-based rank `rank` of a histogram, in ms.
fn at_rank(h: &Histogram<u64>, rank: u64) -> f64 {
    let n = h.len().max(1);
    h.value_at_quantile(rank.clamp(1, n) as f64 / n as f64) as f64 / 1000.0
}

/// Distribution-free 95% interval of the q-quantile, ms.
pub fn quantile_interval(h: &Histogram<u64>, q: f64) -> Option<(f64, f64)> {
    let n = h.len() as f64;
    if n < 2.0 {
        return None;
    }
    let center = n * q;
    let spread = Z * (n * q * (1.0 - q)).sqrt();
    let lo = (center - spread).floor().max(1.0) as u64;
    let hi = (center + spread).ceil().min(n) as u64;
    Some((at_rank(h, lo), at_rank(h, hi)))
}

fn welch(m1: f64, v1: f64, n1: f64, m2: f64, v2: f64, n2: f64) -> Option<f64> {
    if n1 < 2.0 || n2 < 2.0 {
        return None;
    }
    let se = (v1 / n1 + v2 / n2).sqrt();
    if se == 0.0 {
        return Some(if m1 == m2 { 0.0 } else { f64::INFINITY });
    }
    Some((m2 - m1) / se)
}

fn mean_var(xs: &[f64]) -> (f64, f64, f64) {
    let n = xs.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v, n)
}

/// Per-second values of a rate, without the last (partial) second.
fn per_second(series: &[WindowSummary], metric: &str) -> Vec<f64> {
    let full = series.len().saturating_sub(1);
    series[..full]
        .iter()
        .map(|w| match metric {
            "tokens_per_s" => w.output_tokens as f64,
            "rps" => w.requests as f64,
            _ => w.ok as f64,
        })
        .collect()
}

struct Side<'a> {
    agg: &'a crate::metrics::Aggregate,
    series: &'a [WindowSummary],
}

fn noise_test(m: &Metric, a: &Side, b: &Side) -> Noise {
    let verdict = |beyond: Option<bool>| match beyond {
        Some(true) => Noise::Beyond,
        Some(false) => Noise::Within,
        None => Noise::Unknown,
    };
    if let Some((metric, stat)) = m.latency() {
        let (Some(ha), Some(hb)) = (a.agg.hist.get(metric), b.agg.hist.get(metric)) else {
            return Noise::Unknown;
        };
        let q = match stat {
            "p50" => 0.50,
            "p90" => 0.90,
            "p95" => 0.95,
            "p99" => 0.99,
            "mean" => {
                let z = welch(
                    ha.mean(),
                    ha.stdev().powi(2),
                    ha.len() as f64,
                    hb.mean(),
                    hb.stdev().powi(2),
                    hb.len() as f64,
                );
                return verdict(z.map(|z| z.abs() > Z));
            }
            _ => return Noise::Unknown,
        };
        return verdict(
            quantile_interval(ha, q)
                .zip(quantile_interval(hb, q))
                .map(|((alo, ahi), (blo, bhi))| ahi < blo || bhi < alo),
        );
    }
    match m.name.as_str() {
        "ok_rps" | "tokens_per_s" | "rps" | "goodput" => {
            let (ma, va, na) = mean_var(&per_second(a.series, &m.name));
            let (mb, vb, nb) = mean_var(&per_second(b.series, &m.name));
            if na < 3.0 || nb < 3.0 {
                return Noise::Unknown;
            }
            verdict(welch(ma, va, na, mb, vb, nb).map(|z| z.abs() > Z))
        }
        "error_rate" => {
            let (ea, na) = (a.agg.errors as f64, (a.agg.ok + a.agg.errors) as f64);
            let (eb, nb) = (b.agg.errors as f64, (b.agg.ok + b.agg.errors) as f64);
            if na == 0.0 || nb == 0.0 {
                return Noise::Unknown;
            }
            let p = (ea + eb) / (na + nb);
            if p == 0.0 {
                return Noise::Within;
            }
            let z = (eb / nb - ea / na) / (p * (1.0 - p) * (1.0 / na + 1.0 / nb)).sqrt();
            verdict(Some(z.abs() > Z))
        }
        _ => Noise::Unknown,
    }
}

/// Welch's t over the runs' values of a figure, when both results were
/// `--runs N` (N ≥ 2) and have it.
fn runs_test(base: &RunResult, cur: &RunResult, name: &str) -> Option<Noise> {
    let a = &base.runs.as_ref()?.figures.get(name)?.values;
    let b = &cur.runs.as_ref()?.figures.get(name)?.values;
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, sa) = crate::stats::mean_sd(a);
    let (mb, sb) = crate::stats::mean_sd(b);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (sa * sa / na, sb * sb / nb);
    if va + vb == 0.0 {
        return Some(if ma == mb {
            Noise::Within
        } else {
            Noise::Beyond
        });
    }
    let t = (mb - ma) / (va + vb).sqrt();
    let df = (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    let critical = crate::stats::t_975(df.floor().max(1.0) as usize);
    Some(if t.abs() > critical {
        Noise::Beyond
    } else {
        Noise::Within
    })
}

fn refuse(path: &Path, msg: String) -> Error {
    Error::Usage(format!("{}: {msg}", path.display()))
}

/// Compare `current` with `baseline`. `metrics` empty: the defaults a run has.
pub fn compare(
    (base_path, base): (&Path, &RunResult),
    (cur_path, cur): (&Path, &RunResult),
    metrics: &[String],
    max_regression: f64,
    noise_floor: f64,
    force: bool,
) -> Result<Comparison, Error> {
    if !force {
        for (what, x, y) in [
            (
                "workload",
                base.plan.workload.to_string(),
                cur.plan.workload.to_string(),
            ),
            ("target", target_identity(base), target_identity(cur)),
        ] {
            if x != y {
                return Err(refuse(
                    cur_path,
                    format!(
                        "its {what} ('{y}') differs from the baseline's ('{x}' in {}); --force compares anyway",
                        base_path.display()
                    ),
                ));
            }
        }
    }
    let pa = parts(base_path, base)?;
    let pb = parts(cur_path, cur)?;
    let a = Side {
        agg: &pa.total,
        series: &base.series,
    };
    let b = Side {
        agg: &pb.total,
        series: &cur.series,
    };
    let explicit = !metrics.is_empty();
    let names: Vec<String> = if explicit {
        metrics.to_vec()
    } else {
        DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
    };
    let mut rows = Vec::new();
    for name in names {
        let m = Metric::parse(&name).map_err(|e| Error::Usage(format!("--metric: {e}")))?;
        let x = m.value(a.agg, base.duration_s);
        let y = m.value(b.agg, cur.duration_s);
        if !explicit && (x.is_none() || y.is_none()) {
            continue; // not a figure of this workload
        }
        // Repeated runs on both sides: their spread is the noise.
        let noise = match runs_test(base, cur, &m.name) {
            Some(n) => n,
            None => noise_test(&m, &a, &b),
        };
        rows.push(judge(&m, x, y, noise, max_regression, noise_floor));
    }
    Ok(Comparison {
        rows,
        max_regression,
        noise_floor,
    })
}

/// One metric's row: its change, its noise (within the floor is within),
/// and the verdict against the bound.
fn judge(
    m: &Metric,
    x: Option<f64>,
    y: Option<f64>,
    mut noise: Noise,
    max_regression: f64,
    noise_floor: f64,
) -> Row {
    let change = x.zip(y).map(|(x, y)| {
        if x == 0.0 {
            if y == 0.0 {
                0.0
            } else {
                f64::INFINITY * y.signum()
            }
        } else {
            (y - x) / x.abs()
        }
    });
    if change.is_some_and(|c| c.abs() < noise_floor) {
        noise = Noise::Within;
    }
    let verdict = match change {
        None => Verdict::Missing,
        Some(c) => {
            let worse = if m.lower_is_better() {
                c > 0.0
            } else {
                c < 0.0
            };
            if c.abs() <= max_regression || noise == Noise::Within {
                Verdict::Ok
            } else if worse {
                Verdict::Regression
            } else {
                Verdict::Improved
            }
        }
    };
    Row {
        metric: m.name.clone(),
        unit: m.unit(),
        baseline: x,
        current: y,
        change,
        noise,
        verdict,
    }
}

/// Compare two results known by their figures alone (a vLLM benchmark
/// result on either side): changes and verdicts, with no noise test (a
/// change beyond the bound counts).
pub fn compare_figures(
    base: &dyn Fn(&str) -> Option<f64>,
    cur: &dyn Fn(&str) -> Option<f64>,
    metrics: &[String],
    max_regression: f64,
    noise_floor: f64,
) -> Result<Comparison, Error> {
    let explicit = !metrics.is_empty();
    let names: Vec<String> = if explicit {
        metrics.to_vec()
    } else {
        DEFAULT_METRICS.iter().map(|s| s.to_string()).collect()
    };
    let mut rows = Vec::new();
    for name in names {
        let m = Metric::parse(&name).map_err(|e| Error::Usage(format!("--metric: {e}")))?;
        let (x, y) = (base(&name), cur(&name));
        if !explicit && (x.is_none() || y.is_none()) {
            continue;
        }
        rows.push(judge(&m, x, y, Noise::Unknown, max_regression, noise_floor));
    }
    Ok(Comparison {
        rows,
        max_regression,
        noise_floor,
    })
}

fn value(metric: &str, x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(v) if metric == "error_rate" => format!("{:.2}%", v * 100.0),
        Some(v) => format!("{v:.2}"),
    }
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The comparison as Markdown.
/// How a result file is named in the comparison's heading.
pub fn describe_run(p: &Path, r: &RunResult) -> String {
    format!(
        "`{}` (run `{}`, {}, {} → {})",
        p.display(),
        r.run_id,
        r.started_at,
        r.plan.workload,
        target_identity(r)
    )
}

/// `base` and `cur` are the two sides as [`describe_run`] names them.
pub fn render(c: &Comparison, base: &str, cur: &str) -> String {
    let rows = c
        .rows
        .iter()
        .map(|r| {
            let name = if r.unit.is_empty() {
                r.metric.clone()
            } else {
                format!("{} ({})", r.metric, r.unit)
            };
            vec![
                name,
                value(&r.metric, r.baseline),
                value(&r.metric, r.current),
                match r.change {
                    None => "—".into(),
                    Some(x) if x.is_infinite() => "new".into(),
                    Some(x) => format!("{:+.1}%", x * 100.0),
                },
                match r.noise {
                    Noise::Beyond => "yes",
                    Noise::Within => "no",
                    Noise::Unknown => "—",
                }
                .into(),
                match r.verdict {
                    Verdict::Regression => "**regression**",
                    Verdict::Improved => "improved",
                    Verdict::Ok => "ok",
                    Verdict::Missing => "n/a",
                }
                .into(),
            ]
        })
        .collect();
    let mut out = format!(
        "## periscope compare\n\nbaseline {}\n\ncurrent {}\n\nmax regression {} · noise floor {}\n\n{}\n\n",
        base,
        cur,
        pct(c.max_regression),
        pct(c.noise_floor),
        table(
            &["metric", "baseline", "current", "change", "beyond noise", "verdict"],
            rows
        )
    );
    let regressions = c.regressions();
    if c.rows.iter().all(|r| r.noise != Noise::Beyond) {
        out.push_str("No significant change: every difference is within the noise.\n\n");
    }
    if regressions.is_empty() {
        out.push_str(&format!(
            "No regression beyond {}.\n",
            pct(c.max_regression)
        ));
    } else {
        let list: Vec<String> = regressions
            .iter()
            .map(|r| match r.change {
                Some(x) if x.is_finite() => format!("{} {:+.1}%", r.metric, x * 100.0),
                _ => format!("{} (new)", r.metric),
            })
            .collect();
        out.push_str(&format!(
            "**{} regression{} beyond {}: {}**\n",
            regressions.len(),
            if regressions.len() == 1 { "" } else { "s" },
            pct(c.max_regression),
            list.join(", ")
        ));
    }
    out.push_str(
        "\n<sub>beyond noise: results of `--runs N` on both sides — Welch's t over the runs' values; otherwise percentiles — the runs' distribution-free 95% intervals (order statistics of the HDR histograms) do not overlap; means — Welch's z; rates — Welch's z over per-second values; error_rate — two-proportion z; and the change is at least the noise floor. A change beyond the bound that is not beyond noise is not a regression.</sub>\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl Iterator<Item = u64>) -> Histogram<u64> {
        let mut h = crate::metrics::histogram();
        for v in values {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn quantile_intervals_cover_the_quantile_and_shrink_with_n() {
        // Uniform 1..=1000 ms: the median is 500 ms.
        let small = hist((1..=1000u64).step_by(10).map(|v| v * 1000));
        let large = hist((1..=1000u64).map(|v| v * 1000));
        let (lo_s, hi_s) = quantile_interval(&small, 0.5).unwrap();
        let (lo_l, hi_l) = quantile_interval(&large, 0.5).unwrap();
        assert!(lo_s < 500.0 && 500.0 < hi_s, "{lo_s}..{hi_s}");
        assert!(lo_l < 501.0 && 499.0 < hi_l, "{lo_l}..{hi_l}");
        assert!(hi_l - lo_l < hi_s - lo_s);
        // About ±1.96·√250 ≈ 31 ranks around the median of 1000.
        assert!((hi_l - lo_l - 62.0).abs() < 8.0, "{}", hi_l - lo_l);
    }

    #[test]
    fn welch_sees_a_shift_and_not_its_absence() {
        let a: Vec<f64> = (0..30).map(|i| 100.0 + (i % 5) as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 10.0).collect();
        let (ma, va, na) = mean_var(&a);
        let (mb, vb, nb) = mean_var(&b);
        assert!(welch(ma, va, na, mb, vb, nb).unwrap() > Z);
        assert!(welch(ma, va, na, ma, va, na).unwrap().abs() < Z);
    }
}
