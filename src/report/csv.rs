//! CSV for spreadsheets and pandas: one row per request (written during a
//! run by `sink::csv`; here from a result that kept them), the summary in
//! long form (`scope,metric,value`: one figure per row, so any scope — the
//! run, a stage, a turn — pivots the same way), and the per-second series.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::RunResult;
use crate::error::Error;
use crate::metrics::LatencyStats;
use crate::sink::csv::{write_row, REQUEST_HEADER};

/// `run.csv` → `run-summary.csv`.
pub fn summary_path(path: &Path) -> PathBuf {
    sibling(path, "summary")
}

/// `run.csv` → `run-WHAT.csv`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "periscope".into());
    path.with_file_name(format!("{stem}-{what}.csv"))
}

/// The run's start, and `path` opened with its header written.
fn open(
    r: &RunResult,
    path: &Path,
    header: &[&str],
) -> anyhow::Result<(std::time::SystemTime, csv::Writer<std::fs::File>)> {
    let start = humantime::parse_rfc3339_weak(&r.started_at)
        .with_context(|| format!("started_at '{}'", r.started_at))?;
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(header)?;
    Ok((start, w))
}

/// Write the per-request CSV of `r` (which must have kept its requests).
pub fn write_requests(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let (start, mut w) = open(r, path, REQUEST_HEADER)?;
    for s in &r.requests {
        write_row(&mut w, &r.run_id, start, s)?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// The columns of the per-second series.
const SERIES_HEADER: &[&str] = &[
    "run_id",
    "timestamp",
    "t_s",
    "requests",
    "ok",
    "errors",
    "active_vus",
    "in_flight",
    "input_tokens",
    "output_tokens",
    "reconnects",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "itl_p50_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "tpot_p99_ms",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "rss_mib",
];

/// `run.csv` → `run-series.csv`.
pub fn series_path(path: &Path) -> PathBuf {
    sibling(path, "series")
}

/// Write the per-second series of `r`: one row per window `[t, t+1)` s,
/// stamped with its start (as the JSON series and InfluxDB points are).
pub fn write_series(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let (start, mut w) = open(r, path, SERIES_HEADER)?;
    let opt = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
    for s in &r.series {
        let at = start + std::time::Duration::from_secs(s.t);
        w.write_record([
            r.run_id.clone(),
            humantime::format_rfc3339_millis(at).to_string(),
            s.t.to_string(),
            s.requests.to_string(),
            s.ok.to_string(),
            s.errors.to_string(),
            s.active_vus.to_string(),
            s.in_flight.to_string(),
            s.input_tokens.to_string(),
            s.output_tokens.to_string(),
            s.reconnects.to_string(),
            opt(s.ttft_p50),
            opt(s.ttft_p95),
            opt(s.ttft_p99),
            opt(s.itl_p50),
            opt(s.itl_p95),
            opt(s.itl_p99),
            opt(s.tpot_p50),
            opt(s.tpot_p95),
            opt(s.tpot_p99),
            opt(s.e2e_p50),
            opt(s.e2e_p95),
            opt(s.e2e_p99),
            opt(s.rss_mib),
        ])?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// The summary rows: (scope, metric, value).
pub fn summary_rows(r: &RunResult) -> Vec<(String, String, f64)> {
    let mut rows = Vec::new();
    let mut push = |scope: &str, metric: &str, v: f64| {
        rows.push((scope.to_string(), metric.to_string(), v));
    };
    let s = &r.summary;
    let total = "total";
    for (k, v) in [
        ("requests", s.requests as f64),
        ("ok", s.ok as f64),
        ("errors", s.errors as f64),
        ("interrupted", s.interrupted as f64),
        ("error_rate", s.error_rate),
        ("ok_rps", s.ok_rps),
        ("tokens_per_s", s.tokens_per_s),
        ("input_tokens", s.input_tokens as f64),
        ("output_tokens", s.output_tokens as f64),
        ("reconnects", s.reconnects as f64),
        ("duration_s", r.duration_s),
    ] {
        push(total, k, v);
    }
    for (k, v) in [
        ("goodput", s.goodput),
        ("goodput_ratio", s.goodput_ratio),
        ("prefill_rate", s.prefill_rate),
        ("decode_rate", s.decode_rate),
        ("texts_per_s", s.texts_per_s),
    ] {
        if let Some(v) = v {
            push(total, k, v);
        }
    }
    let mut latency = |scope: &str, name: &str, l: &LatencyStats| {
        if l.count == 0 {
            return;
        }
        for (stat, v) in [
            ("count", l.count as f64),
            ("mean", l.mean),
            ("min", l.min),
            ("p50", l.p50),
            ("p90", l.p90),
            ("p95", l.p95),
            ("p99", l.p99),
            ("max", l.max),
        ] {
            rows.push((scope.to_string(), format!("{name}.{stat}"), v));
        }
    };
    for (name, l) in &r.latency {
        latency(total, name, l);
    }
    for st in &r.stages {
        let scope = format!("stage {}", st.stage);
        latency(&scope, "ttft", &st.ttft);
        latency(&scope, "e2e", &st.e2e);
    }
    for g in &r.groups {
        let scope = format!("{} {}", g.kind, g.label);
        latency(&scope, "ttft", &g.ttft);
        latency(&scope, "e2e", &g.e2e);
    }
    for st in &r.stages {
        let scope = format!("stage {}", st.stage);
        for (k, v) in [
            ("target", st.target),
            ("requests", st.requests as f64),
            ("ok", st.ok as f64),
            ("errors", st.errors as f64),
            ("error_rate", st.error_rate),
            ("ok_rps", st.ok_rps),
            ("tokens_per_s", st.tokens_per_s),
        ] {
            rows.push((scope.clone(), k.to_string(), v));
        }
    }
    for g in &r.groups {
        let scope = format!("{} {}", g.kind, g.label);
        for (k, v) in [
            ("requests", Some(g.requests as f64)),
            ("ok", Some(g.ok as f64)),
            ("errors", Some(g.errors as f64)),
            ("input_tokens_mean", Some(g.input_tokens_mean)),
            ("per_text_ms", g.per_text_ms),
            ("texts_per_s", g.texts_per_s),
        ] {
            if let Some(v) = v {
                rows.push((scope.clone(), k.to_string(), v));
            }
        }
    }
    for e in &r.errors {
        let metric = match e.status {
            Some(code) => format!("errors.{}.{code}", e.class),
            None => format!("errors.{}", e.class),
        };
        rows.push(("total".into(), metric, e.count as f64));
    }
    rows
}

/// Write the summary CSV of `r`.
pub fn write_summary(r: &RunResult, path: &Path) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("writing {}", path.display()))?;
    w.write_record(["run_id", "scope", "metric", "value"])?;
    for (scope, metric, v) in summary_rows(r) {
        w.write_record([r.run_id.as_str(), &scope, &metric, &v.to_string()])?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// `periscope report --csv PATH`: the requests a result kept to PATH, its
/// summary and per-second series beside it. A result without its requests
/// is refused before anything is written.
pub fn write(r: &RunResult, path: &Path, source: &Path) -> Result<(), Error> {
    has_rows(r, source)?;
    write_requests(r, path)?;
    write_after_run(r, path)
}

/// Whether the result `source` kept its per-request rows, as `report
/// --csv` needs: checked before any file is made.
pub fn has_rows(r: &RunResult, source: &Path) -> Result<(), Error> {
    if r.requests.is_empty() && r.summary.requests > 0 {
        return Err(Error::Usage(format!(
            "{}: the result has no per-request rows; run it with --keep-requests (or write the rows during the run with --csv)",
            source.display()
        )));
    }
    Ok(())
}

/// What `run --csv PATH` writes at the end, its rows having been written
/// during the run: the summary and the per-second series beside PATH.
pub fn write_after_run(r: &RunResult, path: &Path) -> Result<(), Error> {
    write_summary(r, &summary_path(path))?;
    write_series(r, &series_path(path))?;
    Ok(())
}
