//! The Markdown report: tables that render as-is on a GitHub job page.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::RunResult;
use crate::plan::describe_load;

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|s| s.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    t.to_string()
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

/// What each latency row measures, in the report's order.
const ROWS: &[(&str, &str)] = &[
    (
        "ttft",
        "request start → first chunk carrying output (content, reasoning or tool call)",
    ),
    (
        "ttfo",
        "request start → first chunk of visible output (reasoning excluded)",
    ),
    (
        "itl",
        "every gap between consecutive output chunks (vLLM's ITL, AIPerf's ICL)",
    ),
    (
        "tpot",
        "per request (e2e − ttft) / (output_tokens − 1) (vLLM's TPOT, AIPerf's ITL)",
    ),
    (
        "e2e",
        "request sent → end of the response body (service time)",
    ),
    (
        "latency",
        "scheduled send → end of the response body (open model, free of coordinated omission)",
    ),
    (
        "queue_wait",
        "scheduled send → an in-flight slot was free (--max-in-flight backlog)",
    ),
    (
        "schedule_lag",
        "actual send − scheduled send, less queue_wait: the generator's own lateness",
    ),
];

/// Render the end-of-run report.
pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    let p = &r.plan;
    let _ = writeln!(
        out,
        "## periscope: {} → {} ({})\n",
        p.workload, p.target, p.target_kind
    );
    let _ = writeln!(
        out,
        "model `{}` · {} · {} · max_tokens {} · run `{}`{}\n",
        p.model,
        describe_load(&p.load),
        if p.stream {
            "streaming"
        } else {
            "not streaming"
        },
        p.max_tokens,
        r.run_id,
        if r.interrupted_by_user {
            " · **stopped by Ctrl-C**"
        } else {
            ""
        }
    );

    let s = &r.summary;
    let _ = writeln!(out, "### Summary\n");
    let _ = writeln!(
        out,
        "{}\n",
        table(
            &[
                "req",
                "ok",
                "err",
                "interrupted",
                "error_rate",
                "ok_rps",
                "tokens/s",
                "input tokens",
                "output tokens",
                "duration"
            ],
            vec![vec![
                s.requests.to_string(),
                s.ok.to_string(),
                s.errors.to_string(),
                s.interrupted.to_string(),
                format!("{:.2}%", s.error_rate * 100.0),
                f2(s.ok_rps),
                f1(s.tokens_per_s),
                s.input_tokens.to_string(),
                s.output_tokens.to_string(),
                format!("{:.1}s", r.duration_s),
            ]],
        )
    );

    let rows: Vec<Vec<String>> = ROWS
        .iter()
        .filter_map(|(name, _)| {
            r.latency.get(*name).map(|l| {
                vec![
                    name.to_string(),
                    f2(l.mean),
                    f2(l.p50),
                    f2(l.p90),
                    f2(l.p95),
                    f2(l.p99),
                    f2(l.max),
                    l.count.to_string(),
                ]
            })
        })
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(out, "### Latency (ms)\n");
        let _ = writeln!(
            out,
            "{}\n",
            table(
                &["metric", "mean", "p50", "p90", "p95", "p99", "max", "count"],
                rows
            )
        );
    }

    if !r.errors.is_empty() {
        let _ = writeln!(out, "### Errors\n");
        let total = s.requests.max(1) as f64;
        let rows = r
            .errors
            .iter()
            .map(|e| {
                vec![
                    e.class.clone(),
                    e.status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.count.to_string(),
                    format!("{:.2}%", e.count as f64 / total * 100.0),
                    e.message
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .replace('|', "\\|")
                        .chars()
                        .take(120)
                        .collect(),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}\n",
            table(
                &["class", "status", "count", "share", "first message"],
                rows
            )
        );
    }

    if let Some(sc) = &r.schedule {
        let _ = writeln!(out, "### Schedule\n");
        let _ = writeln!(
            out,
            "{}\n",
            table(
                &[
                    "requested req/s",
                    "achieved req/s",
                    "schedule_lag p99 (ms)",
                    "queued",
                    "kept schedule"
                ],
                vec![vec![
                    f2(sc.requested_rate),
                    f2(sc.achieved_rate),
                    f2(sc.lag_p99_ms),
                    sc.queued.to_string(),
                    if sc.behind {
                        "**no**".into()
                    } else {
                        "yes".into()
                    },
                ]],
            )
        );
    }

    let mut notes: Vec<String> = r
        .warnings
        .iter()
        .map(|w| format!("**warning:** {w}"))
        .collect();
    let sources: Vec<String> = s
        .output_token_sources
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !sources.is_empty() {
        notes.push(format!(
            "output tokens counted from: {}",
            sources.join(", ")
        ));
    }
    if s.reasoning_tokens > 0 {
        notes.push(format!(
            "reasoning tokens (from usage): {}",
            s.reasoning_tokens
        ));
    }
    notes.push(format!(
        "generator: {:.2} CPU-s, peak RSS {:.1} MiB{}",
        r.generator.cpu_seconds,
        r.generator.peak_rss_mib,
        if r.generator.includes_mock {
            " (includes the in-process mock)"
        } else {
            ""
        }
    ));
    let _ = writeln!(out, "### Notes\n");
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(out);
    let defs: Vec<String> = ROWS
        .iter()
        .filter(|(name, _)| r.latency.contains_key(*name))
        .map(|(name, d)| format!("`{name}`: {d}"))
        .collect();
    let _ = writeln!(out, "<sub>Definitions: {}. Latency in HDR histograms (µs, 3 significant digits); errors and interrupted requests are excluded from latency.</sub>", defs.join("; "));
    out
}
