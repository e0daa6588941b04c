//! The Markdown of an otlp-traces run: what the trace backend took in
//! (traces, spans, bytes), the query load's table, and the trace mix; a
//! query-only run (`--test-type query`) has the query table alone.

use super::markdown::{f1, f2, table};
use super::result::OtlpFigures;

/// What the trace backend took in, by scenario, and the data volume: the
/// end of an otlp-traces report; a query-only run has its queries only.
pub fn markdown(o: &OtlpFigures, query_only: bool) -> String {
    if query_only {
        let mut out = queries(o);
        out.push_str("\n\n");
        return out;
    }
    let mut out = String::from("### OTLP ingestion\n\n");
    out.push_str(&table(
        &[
            "traces",
            "traces/s",
            "spans accepted",
            "spans/s",
            "rejected spans",
            "failed exports",
            "payload MB/s",
            "wire MB/s",
        ],
        vec![vec![
            o.traces.to_string(),
            f2(o.traces_per_s),
            o.spans_accepted.to_string(),
            f1(o.spans_per_s),
            o.rejected_spans.to_string(),
            o.failed_exports.to_string(),
            format!("{:.3}", o.payload_mb_per_s),
            format!("{:.3}", o.wire_mb_per_s),
        ]],
    ));
    if !o.queries.is_empty() {
        out.push_str("\n\n");
        out.push_str(&queries(o));
    }
    out.push_str("\n\n### Trace mix\n\n");
    let rows = o
        .mix
        .iter()
        .map(|m| {
            vec![
                m.scenario.clone(),
                m.traces.to_string(),
                format!("{:.1}%", m.share * 100.0),
                f2(m.p50_ms),
                f2(m.p95_ms),
                format!("{:.1}", m.mean_bytes / 1e3),
                f1(m.spans_per_trace),
                m.spans.to_string(),
                m.tokens.to_string(),
                format!("{:.1}K", m.tokens as f64 / m.traces.max(1) as f64 / 1e3),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "scenario",
            "traces",
            "share",
            "p50 (ms)",
            "p95 (ms)",
            "mean size (KB)",
            "spans/trace",
            "spans",
            "tokens",
            "tokens/trace",
        ],
        rows,
    ));
    out.push_str(&format!(
        "\n\n**Data volume: {:.2} MB** encoded ({:.2} MB on the wire, gzip), {:.1} KB per request on average, {} spans accepted, {} model tokens recorded.\n\n",
        o.payload_bytes as f64 / 1e6,
        o.wire_bytes as f64 / 1e6,
        o.payload_bytes as f64 / o.traces.max(1) as f64 / 1e3,
        o.spans_accepted,
        o.tokens
    ));
    out
}

/// One row per query template.
fn queries(o: &OtlpFigures) -> String {
    let mut out = String::from("### Trace queries\n\n");
    let rows = o
        .queries
        .iter()
        .map(|q| {
            vec![
                format!("`{}`", q.query.replace('|', "\\|")),
                q.sent.to_string(),
                q.ok.to_string(),
                q.errors.to_string(),
                q.statuses
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                f2(q.per_s),
                f2(q.latency.p50),
                f2(q.latency.p95),
                f2(q.latency.p99),
                f2(q.latency.max),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "query", "sent", "ok", "err", "statuses", "q/s", "p50 (ms)", "p95 (ms)", "p99 (ms)",
            "max (ms)",
        ],
        rows,
    ));
    out
}
