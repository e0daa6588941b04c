//! The Markdown tables by group: by turn of a session (prompt tokens, the
//! server's cache hits, ttft by turn), by batch size or documents, by plain
//! HTTP endpoint, and by LoRA adapter.

use std::fmt::Write as _;

use super::markdown::{f1, f2, table};
use super::result::GroupRow;
use super::RunResult;

/// A group's row: its label and counts, then `rest`.
fn counts(g: &GroupRow, rest: Vec<String>) -> Vec<String> {
    let mut row = vec![
        g.label.clone(),
        g.requests.to_string(),
        g.ok.to_string(),
        g.errors.to_string(),
    ];
    row.extend(rest);
    row
}

/// Every table by group the run has, in a fixed order.
pub fn markdown(r: &RunResult) -> String {
    let mut out = String::new();
    for kind in ["turn", "batch", "endpoint", "adapter"] {
        let rows: Vec<&GroupRow> = r.groups.iter().filter(|g| g.kind == kind).collect();
        if rows.is_empty() {
            continue;
        }
        let (title, header, cells) = match kind {
            "turn" => by_turn(&rows),
            "batch" => by_batch(r, &rows),
            "endpoint" => by_endpoint(&rows),
            _ => by_adapter(r, &rows),
        };
        let h: Vec<&str> = header.iter().map(String::as_str).collect();
        let _ = writeln!(out, "### {title} (ms)\n\n{}\n", table(&h, cells));
    }
    out
}

type Table = (&'static str, Vec<String>, Vec<Vec<String>>);

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// ttft and prompt tokens by turn; the server's cache hits where it said.
fn by_turn(rows: &[&GroupRow]) -> Table {
    let cache = rows.iter().any(|g| g.cache_hit_rate.is_some());
    let mut header = strings(&["turn", "req", "ok", "err", "prompt tokens (mean)"]);
    if cache {
        header.extend(strings(&["cached tokens (mean)", "cache hits"]));
    }
    header.extend(strings(&["ttft p50", "ttft p95", "e2e p50"]));
    let cells = rows
        .iter()
        .map(|g| {
            let mut rest = vec![f1(g.input_tokens_mean)];
            if cache {
                match (g.cached_tokens, g.cache_hit_rate) {
                    (Some(c), Some(rate)) => {
                        rest.push(f1(c as f64 / g.ok.max(1) as f64));
                        rest.push(format!("{:.1}%", rate * 100.0));
                    }
                    _ => rest.extend(["-".to_string(), "-".to_string()]),
                }
            }
            rest.extend([f2(g.ttft.p50), f2(g.ttft.p95), f2(g.e2e.p50)]);
            counts(g, rest)
        })
        .collect();
    ("By turn", header, cells)
}

/// Embeddings by batch size, or rerank by documents per request.
fn by_batch(r: &RunResult, rows: &[&GroupRow]) -> Table {
    let rerank = r.plan.workload == crate::workload::WorkloadKind::Rerank;
    let (title, unit, per) = if rerank {
        ("By documents per request", "documents", "document")
    } else {
        ("By batch size", "batch", "text")
    };
    let header = vec![
        unit.to_string(),
        "req".into(),
        "ok".into(),
        "err".into(),
        "latency p50".into(),
        "latency p95".into(),
        format!("per-{per} latency (mean)"),
        format!(
            "{unit_s}/s",
            unit_s = if rerank { "documents" } else { "texts" }
        ),
    ];
    let cells = rows
        .iter()
        .map(|g| {
            counts(
                g,
                vec![
                    f2(g.e2e.p50),
                    f2(g.e2e.p95),
                    g.per_text_ms.map(f2).unwrap_or_else(|| "-".into()),
                    g.texts_per_s.map(f1).unwrap_or_else(|| "-".into()),
                ],
            )
        })
        .collect();
    (title, header, cells)
}

/// Plain HTTP endpoints: statuses and every e2e statistic.
fn by_endpoint(rows: &[&GroupRow]) -> Table {
    let header = strings(&[
        "endpoint", "req", "ok", "err", "statuses", "min", "mean", "p50", "p95", "p99", "max",
    ]);
    let cells = rows
        .iter()
        .map(|g| {
            let statuses = g
                .statuses
                .iter()
                .map(|(k, v)| {
                    let share = 100.0 * *v as f64 / g.requests.max(1) as f64;
                    format!("{k}: {v} ({share:.1}%)")
                })
                .collect::<Vec<_>>()
                .join(", ");
            counts(
                g,
                vec![
                    statuses,
                    f2(g.e2e.min),
                    f2(g.e2e.mean),
                    f2(g.e2e.p50),
                    f2(g.e2e.p95),
                    f2(g.e2e.p99),
                    f2(g.e2e.max),
                ],
            )
        })
        .collect();
    ("By endpoint", header, cells)
}

/// LoRA adapters: each one's throughput and latency over the whole run.
fn by_adapter(r: &RunResult, rows: &[&GroupRow]) -> Table {
    let d = r.duration_s.max(1e-9);
    let header = strings(&[
        "adapter",
        "req",
        "ok",
        "err",
        "error_rate",
        "ok_rps",
        "tokens/s",
        "ttft p50",
        "ttft p95",
        "e2e p50",
        "e2e p95",
    ]);
    let cells = rows
        .iter()
        .map(|g| {
            counts(
                g,
                vec![
                    format!("{:.2}%", 100.0 * g.errors as f64 / g.requests.max(1) as f64),
                    f2(g.ok as f64 / d),
                    f1(g.output_tokens as f64 / d),
                    f2(g.ttft.p50),
                    f2(g.ttft.p95),
                    f2(g.e2e.p50),
                    f2(g.e2e.p95),
                ],
            )
        })
        .collect();
    ("By adapter", header, cells)
}
