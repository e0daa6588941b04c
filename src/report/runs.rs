//! Repeated runs (`--runs N`): the same plan run N times on fresh
//! connections, each run's headline figures kept, and per figure the mean,
//! standard deviation, coefficient of variation and a 95% interval of the
//! mean (Student's t over the runs), as vLLM's `--num-runs` and AIPerf
//! report them. `compare` reads the runs' values to tell a change from the
//! spread between runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::markdown::table;
use super::result::RunResult;

/// The figures each run keeps (those a run has): those `compare` judges.
pub const FIGURES: &[&str] = super::compare::DEFAULT_METRICS;

/// One figure over the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Each run's value, in order.
    pub values: Vec<f64>,
    pub mean: f64,
    pub sd: f64,
    /// sd / |mean|.
    pub cv: f64,
    /// 95% interval of the mean (Student's t over the runs).
    pub ci: Option<(f64, f64)>,
}

impl Spread {
    pub fn of(values: Vec<f64>) -> Spread {
        let (mean, sd) = crate::stats::mean_sd(&values);
        Spread {
            cv: crate::stats::cv(&values),
            ci: crate::stats::mean_ci(&values),
            mean,
            sd,
            values,
        }
    }
}

/// One run of the N, as kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunFacts {
    pub run_id: String,
    pub started_at: String,
    pub duration_s: f64,
    pub requests: u64,
    pub errors: u64,
}

/// The runs of a `--runs N` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Repeats {
    pub runs: Vec<RunFacts>,
    /// By figure name (`ttft.p50`, `ok_rps`).
    pub figures: BTreeMap<String, Spread>,
    /// The command run between runs (`--between-runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub between_runs: Option<String>,
}

/// A figure's value in a result, as thresholds name it.
fn figure(r: &RunResult, name: &str) -> Option<f64> {
    match name.split_once('.') {
        Some((m, stat)) => {
            let l = r.latency.get(m).filter(|l| l.count > 0)?;
            Some(match stat {
                "p50" => l.p50,
                "p90" => l.p90,
                "p95" => l.p95,
                "p99" => l.p99,
                _ => l.mean,
            })
        }
        None => Some(match name {
            "ok_rps" => r.summary.ok_rps,
            "tokens_per_s" if r.summary.output_tokens > 0 => r.summary.tokens_per_s,
            "error_rate" => r.summary.error_rate,
            _ => return None,
        }),
    }
}

impl Repeats {
    /// The spread of `results`' figures (every run must have a figure for
    /// it to count).
    pub fn of(results: &[RunResult], between_runs: Option<String>) -> Repeats {
        let figures = FIGURES
            .iter()
            .filter_map(|name| {
                let values: Option<Vec<f64>> = results.iter().map(|r| figure(r, name)).collect();
                values.map(|v| (name.to_string(), Spread::of(v)))
            })
            .collect();
        Repeats {
            runs: results
                .iter()
                .map(|r| RunFacts {
                    run_id: r.run_id.clone(),
                    started_at: r.started_at.clone(),
                    duration_s: r.duration_s,
                    requests: r.summary.requests,
                    errors: r.summary.errors,
                })
                .collect(),
            figures,
            between_runs,
        }
    }

    /// `### Runs`: each run's value of each figure, and their spread.
    pub fn markdown(&self) -> String {
        let n = self.runs.len();
        let mut header: Vec<String> = vec!["figure".into()];
        header.extend((1..=n).map(|i| format!("run {i}")));
        header.extend(["mean", "sd", "CV", "95% CI of the mean"].map(String::from));
        let rows = self
            .figures
            .iter()
            .map(|(name, s)| {
                let fmt = |x: f64| match name.as_str() {
                    "error_rate" => format!("{:.2}%", 100.0 * x),
                    _ => format!("{x:.2}"),
                };
                let mut row = vec![name.clone()];
                row.extend(s.values.iter().map(|v| fmt(*v)));
                row.push(fmt(s.mean));
                row.push(fmt(s.sd));
                row.push(format!("{:.2}%", 100.0 * s.cv));
                row.push(s.ci.map_or("–".into(), |(lo, hi)| {
                    format!("[{}, {}]", fmt(lo), fmt(hi))
                }));
                row
            })
            .collect();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let between = self
            .between_runs
            .as_deref()
            .map(|c| format!(", `{c}` between them"))
            .unwrap_or_default();
        format!(
            "### Runs\n\nThe same plan {n} times, each on fresh connections{between}; the report above is the last run's. Latency in ms.\n\n{}\n\n",
            table(&header, rows)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_of_known_values() {
        let s = Spread::of(vec![10.0, 12.0, 11.0, 13.0, 9.0]);
        assert_eq!(s.mean, 11.0);
        assert!((s.sd - 1.5811).abs() < 1e-3);
        assert!((s.cv - 0.1437).abs() < 1e-3);
        let (lo, hi) = s.ci.unwrap();
        assert!((lo - 9.037).abs() < 1e-2 && (hi - 12.963).abs() < 1e-2);
        assert!(Spread::of(vec![5.0]).ci.is_none());
    }
}
