//! The "Server metrics" part of the reports: per scrape target, the run's
//! figures as the server counted them (rates, gauges, its own latency
//! histograms) beside the client's, and the `--promql` answers. One set of
//! rows for the Markdown and HTML reports.

use std::fmt::Write as _;

use super::markdown::table;
use super::RunResult;
use crate::server_metrics::{Figures, QueryResult, TargetMetrics};

/// Latency histograms in the report's order.
const LATENCY: &[&str] = &[
    "ttft",
    "queue_time",
    "prefill_time",
    "decode_time",
    "inference_time",
    "e2e",
    "itl",
    "upstream_e2e",
    "proxy_overhead",
];

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".to_string(), f)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn n(x: f64) -> String {
    crate::fmt::fmt_num(x)
}

/// Whether a gauge is a share (shown in %).
fn is_share(name: &str) -> bool {
    name.contains("usage") || name.ends_with("_rate")
}

fn gauge_value(name: &str, v: f64) -> String {
    if is_share(name) {
        pct(v)
    } else if name == "memory_bytes" {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else {
        format!("{v:.2}")
    }
}

/// The counts row: what the server counted over the run, and per second.
pub fn counts_row(t: &TargetMetrics) -> Vec<String> {
    let f = &t.figures;
    let both = |k: &str| match (f.counts.get(k), f.per_s.get(k)) {
        (Some(c), Some(r)) => format!("{} ({:.2}/s)", n(*c), r),
        (Some(c), None) => n(*c),
        _ => "–".to_string(),
    };
    vec![
        both("requests"),
        both("prompt_tokens"),
        both("generation_tokens"),
        opt(f.prefix_cache_hit_rate, pct),
        opt(f.counts.get("preemptions").copied(), n),
        opt(f.spec_acceptance, pct),
    ]
}

/// One row per latency histogram: name, count, mean, p50, p90, p95, p99 (ms).
pub fn latency_rows(t: &TargetMetrics) -> Vec<Vec<String>> {
    let mut names: Vec<&String> = t.figures.latency.keys().collect();
    names.sort_by_key(|k| LATENCY.iter().position(|l| l == k).unwrap_or(LATENCY.len()));
    names
        .into_iter()
        .map(|k| {
            let h = &t.figures.latency[k];
            let ms = |v: Option<f64>| opt(v, |x| format!("{x:.2}"));
            vec![
                k.clone(),
                n(h.count),
                format!("{:.2}", h.mean),
                ms(h.p50),
                ms(h.p90),
                ms(h.p95),
                ms(h.p99),
            ]
        })
        .collect()
}

fn query_rows(qs: &[QueryResult]) -> Vec<Vec<String>> {
    qs.iter()
        .map(|q| {
            let vals: Vec<f64> = q.values().collect();
            let stat = |f: fn(&[f64]) -> f64| {
                if vals.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.4}", f(&vals))
                }
            };
            vec![
                q.name.clone(),
                format!("`{}`", q.expr.replace('|', "\\|")),
                q.series.len().to_string(),
                vals.len().to_string(),
                stat(|v| v.iter().copied().fold(f64::INFINITY, f64::min)),
                stat(|v| v.iter().sum::<f64>() / v.len() as f64),
                stat(|v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                q.error.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// The Markdown section, empty when the run scraped nothing.
pub fn markdown(r: &RunResult) -> String {
    let Some(s) = &r.server else {
        return String::new();
    };
    let mut out = String::new();
    for t in &s.targets {
        target_section(&mut out, t);
    }
    if !s.queries.is_empty() {
        let q = &s.queries[0];
        let _ = writeln!(
            out,
            "### Prometheus queries (the run's window, step {}s)\n\n{}\n",
            q.step_s,
            table(
                &["query", "expr", "series", "samples", "min", "mean", "max", "error"],
                query_rows(&s.queries)
            )
        );
    }
    out
}

/// One target's section: its counts, gauges, latency and notes.
fn target_section(out: &mut String, t: &TargetMetrics) {
    let f = &t.figures;
    let _ = writeln!(
        out,
        "### Server metrics ({} at `{}`: {} scrapes over {:.1}s{})\n",
        t.server.as_deref().unwrap_or("unknown server"),
        t.url,
        t.scrapes,
        f.window_s,
        if t.failed_scrapes > 0 {
            format!(", {} failed", t.failed_scrapes)
        } else {
            String::new()
        }
    );
    if t.scrapes == 0 {
        let _ = writeln!(
            out,
            "No scrape succeeded: {}\n",
            t.first_error.as_deref().unwrap_or("unknown error")
        );
        return;
    }
    let _ = writeln!(
        out,
        "{}\n",
        table(
            &[
                "requests",
                "prompt tokens",
                "generated tokens",
                "prefix cache hit",
                "preemptions",
                "spec acceptance"
            ],
            vec![counts_row(t)],
        )
    );
    if !f.gauges.is_empty() {
        let rows = f
            .gauges
            .iter()
            .map(|(k, g)| {
                vec![
                    k.clone(),
                    gauge_value(k, g.mean),
                    gauge_value(k, g.max),
                    g.samples.to_string(),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}\n",
            table(&["gauge", "mean", "max", "scrapes"], rows)
        );
    }
    let lat = latency_rows(t);
    if !lat.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            table(
                &[
                    "server latency (ms)",
                    "count",
                    "mean",
                    "p50",
                    "p90",
                    "p95",
                    "p99"
                ],
                lat
            )
        );
    }
    for note in target_notes(&t.figures) {
        let _ = writeln!(out, "- {note}");
    }
    out.push('\n');
}

/// What the figures of a target say beside its tables.
fn target_notes(f: &Figures) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(g) = f.ttft_gap_mean_ms {
        notes.push(format!(
            "client ttft − server ttft: {} at p50, {g:.2} ms between the means (the way there and back, gateways, the client's own queueing)",
            opt(f.ttft_gap_ms, |x| format!("{x:.2} ms"))
        ));
    }
    if let (Some(p), Some(d)) = (f.prefill_rate, f.decode_rate) {
        notes.push(format!(
            "the server's own speed: prompt {p:.1} tokens/s, generation {d:.1} tokens/s"
        ));
    }
    if let Some(c) = f.cpu_cores {
        notes.push(format!("server process CPU: {c:.2} cores"));
    }
    if !f.latency.is_empty() {
        notes.push(
            "server quantiles are interpolated within its histogram buckets (as PromQL's histogram_quantile); the means are exact"
                .to_string(),
        );
    }
    notes
}
