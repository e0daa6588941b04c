//! The server's own account of the run beside the client's: the latency
//! rows it reported (llama.cpp's `timings`, TGI's timing headers), what its
//! prompt cache served, and `ttft_outside` (ttft less the server's prompt
//! time: the network, gateways and queues outside the engine). One set of
//! rows for the Markdown and HTML reports.

use super::RunResult;

/// The server's latency metrics, in the report's order, with what each is.
pub const ROWS: &[(&str, &str)] = &[
    (
        "server_prefill",
        "the server's own prompt processing time (llama.cpp `timings.prompt_ms`)",
    ),
    (
        "server_decode",
        "the server's own time generating the answer (llama.cpp `timings.predicted_ms`)",
    ),
    (
        "server_queue",
        "time in the server's queue (TGI `x-queue-time`)",
    ),
    (
        "ttft_outside",
        "per request ttft − the server's prompt time: what the network, gateways and queues outside the engine added",
    ),
];

/// One row per server metric the run has: name, mean, p50, p90, p95, p99,
/// max, count.
pub fn latency_rows(r: &RunResult) -> Vec<Vec<String>> {
    ROWS.iter()
        .filter_map(|(name, _)| {
            r.latency.get(*name).map(|l| {
                let mut row = vec![name.to_string()];
                row.extend([l.mean, l.p50, l.p90, l.p95, l.p99, l.max].map(|v| format!("{v:.2}")));
                row.push(l.count.to_string());
                row
            })
        })
        .collect()
}

/// The counts line: how many requests carried timings, what the cache
/// served, the server's own output count beside periscope's.
pub fn summary_line(r: &RunResult) -> Option<String> {
    let t = r.server_timings.as_ref()?;
    let mut parts = vec![format!(
        "{} of {} ok requests carried the server's own figures",
        t.requests, r.summary.ok
    )];
    if t.prompt_tokens > 0 || t.cached_tokens > 0 {
        parts.push(format!(
            "prompt tokens it processed {}, from its cache {}{}",
            t.prompt_tokens,
            t.cached_tokens,
            t.cache_hit_rate
                .map(|h| format!(" ({:.1}%)", h * 100.0))
                .unwrap_or_default()
        ));
    }
    if let (Some(theirs), Some(ours)) = (t.output_tokens, t.output_tokens_counted) {
        parts.push(format!(
            "output tokens by its own count {theirs} (periscope's {ours})"
        ));
    }
    Some(parts.join(" · "))
}

/// The Markdown section, or nothing when the server reported nothing.
pub fn markdown(r: &RunResult) -> String {
    let Some(line) = summary_line(r) else {
        return String::new();
    };
    let rows = latency_rows(r);
    let mut out = String::from("### Server timings (as the server reported them, ms)\n\n");
    if !rows.is_empty() {
        out.push_str(&super::markdown::table(
            &["metric", "mean", "p50", "p90", "p95", "p99", "max", "count"],
            rows,
        ));
        out.push_str("\n\n");
    }
    out.push_str(&line);
    out.push_str("\n\n");
    out
}

/// Definitions of the server rows the run has, for the definitions line.
pub fn definitions(r: &RunResult) -> Vec<String> {
    ROWS.iter()
        .filter(|(name, _)| r.latency.contains_key(*name))
        .map(|(name, d)| format!("`{name}`: {d}"))
        .collect()
}
