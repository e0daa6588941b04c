//! The Markdown report: tables that render as-is on a GitHub job page.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::Style;

use super::RunResult;
use crate::executor::describe_load;
use crate::workload::WorkloadKind;

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut b = Builder::default();
    b.push_record(header.iter().map(|s| s.to_string()));
    for r in rows {
        b.push_record(r);
    }
    let mut t = b.build();
    t.with(Style::markdown());
    t.to_string()
}

pub(super) fn f1(x: f64) -> String {
    format!("{x:.1}")
}

pub(super) fn f2(x: f64) -> String {
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

/// A figure with a sensible number of decimals.
/// A statistic of a latency metric, or `-` when it measured nothing.
fn ms_or_dash(l: &crate::metrics::LatencyStats, v: f64) -> String {
    if l.count == 0 {
        "-".to_string()
    } else {
        f2(v)
    }
}

pub fn num(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// The figures a workload exists to measure, beside throughput.
fn workload_figures(r: &RunResult) -> String {
    let s = &r.summary;
    let mut header = Vec::new();
    let mut row = Vec::new();
    if let Some(g) = s.goodput {
        header.push("goodput (req/s)".to_string());
        row.push(f2(g));
        header.push("met SLOs".to_string());
        row.push(format!("{:.1}%", s.goodput_ratio.unwrap_or(0.0) * 100.0));
    }
    match r.plan.workload {
        WorkloadKind::PrefillHeavy => {
            if let Some(p) = s.prefill_rate {
                header.push("prefill rate (input tokens/s of ttft)".into());
                row.push(f1(p));
            }
        }
        WorkloadKind::DecodeHeavy => {
            if let Some(d) = s.decode_rate {
                header.push("decode rate (output tokens/s after the first)".into());
                row.push(f1(d));
            }
        }
        _ => {}
    }
    if let Some(t) = s.texts {
        let unit = if r.plan.workload == WorkloadKind::Rerank {
            "documents"
        } else {
            "texts"
        };
        header.push(unit.into());
        row.push(t.to_string());
        header.push(format!("{unit}/s"));
        row.push(f1(s.texts_per_s.unwrap_or(0.0)));
    }
    if let Some(d) = s.embedding_dims {
        header.push("vector dims".into());
        row.push(d.to_string());
    }
    if header.is_empty() {
        return String::new();
    }
    let h: Vec<&str> = header.iter().map(String::as_str).collect();
    format!("### Workload\n\n{}\n\n", table(&h, vec![row]))
}

/// One row per stage of a multi-stage load.
fn stages(r: &RunResult) -> String {
    if r.stages.is_empty() {
        return String::new();
    }
    let unit = if r.plan.load.is_open() {
        "req/s"
    } else {
        "VUs"
    };
    let goodput = r.summary.goodput.is_some();
    let phases = r.stages.iter().any(|st| st.phase.is_some());
    let verdicts = r.stages.iter().any(|st| st.pass.is_some());
    let mut header = vec!["stage"];
    if phases {
        header.push("phase");
    }
    let (_, generates) = tokens_apply(r);
    header.extend(["from (s)", unit, "req", "ok", "err", "error_rate", "ok_rps"]);
    if generates {
        header.extend(["tokens/s", "ttft p50", "ttft p95"]);
    }
    // Without tokens, e2e is the figure: all of its statistics.
    if generates {
        header.extend(["e2e p50", "e2e p95"]);
    } else {
        header.extend([
            "e2e min", "e2e mean", "e2e p50", "e2e p95", "e2e p99", "e2e max",
        ]);
    }
    if goodput {
        header.push("goodput");
    }
    if verdicts {
        header.push("thresholds");
    }
    let rows = r
        .stages
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let mut row = vec![(i + 1).to_string()];
            if phases {
                row.push(st.phase.clone().unwrap_or_default());
            }
            row.extend([
                format!("{:.0}", st.start_s),
                crate::fmt::fmt_num(st.target),
                st.requests.to_string(),
                st.ok.to_string(),
                st.errors.to_string(),
                format!("{:.2}%", st.error_rate * 100.0),
                f2(st.ok_rps),
            ]);
            if generates {
                row.extend([
                    f1(st.tokens_per_s),
                    ms_or_dash(&st.ttft, st.ttft.p50),
                    ms_or_dash(&st.ttft, st.ttft.p95),
                ]);
            }
            if generates {
                row.extend([
                    ms_or_dash(&st.e2e, st.e2e.p50),
                    ms_or_dash(&st.e2e, st.e2e.p95),
                ]);
            } else {
                row.extend(
                    [
                        st.e2e.min,
                        st.e2e.mean,
                        st.e2e.p50,
                        st.e2e.p95,
                        st.e2e.p99,
                        st.e2e.max,
                    ]
                    .map(|v| ms_or_dash(&st.e2e, v)),
                );
            }
            if goodput {
                row.push(f2(st.goodput));
            }
            if let Some(pass) = st.pass {
                row.push(if pass {
                    "pass".to_string()
                } else {
                    format!("**fail**: {}", st.failed.join(", "))
                });
            }
            row
        })
        .collect();
    format!("### By stage (ms)\n\n{}\n\n", table(&header, rows))
}

/// The scenario's figure, and its phases.
fn scenario(r: &RunResult) -> String {
    let sc = &r.scenario;
    let mut out = format!(
        "### Scenario: {}

**{}**

",
        sc.name, sc.figure
    );
    if !sc.phases.is_empty() {
        let unit = if r.plan.load.is_open() {
            "req/s"
        } else {
            "VUs"
        };
        let rows = sc
            .phases
            .iter()
            .map(|p| {
                vec![
                    p.phase.clone(),
                    format!("{:.0}", p.start_s),
                    format!("{:.0}", p.duration_s),
                    crate::fmt::fmt_num(p.target),
                    p.requests.to_string(),
                    p.errors.to_string(),
                    format!("{:.2}%", p.error_rate * 100.0),
                    f2(p.ok_rps),
                    ms_or_dash(&p.ttft, p.ttft.p50),
                    ms_or_dash(&p.ttft, p.ttft.p95),
                    ms_or_dash(&p.e2e, p.e2e.p50),
                    ms_or_dash(&p.e2e, p.e2e.p95),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}\n",
            table(
                &[
                    "phase",
                    "from (s)",
                    "for (s)",
                    unit,
                    "req",
                    "err",
                    "error_rate",
                    "ok_rps",
                    "ttft p50",
                    "ttft p95",
                    "e2e p50",
                    "e2e p95"
                ],
                rows
            )
        );
    }
    out
}

/// Render the end-of-run report.
pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    header(&mut out, r);
    if r.plan.scenario != crate::scenario::DEFAULT || r.plan.kind != crate::scenario::Kind::Load {
        out.push_str(&scenario(r));
    }
    summary(&mut out, r);
    latency(&mut out, r);
    errors(&mut out, r);
    out.push_str(&super::search::markdown(r));
    out.push_str(&super::steady::markdown(r));
    out.push_str(&super::timings::markdown(r));
    out.push_str(&super::server::markdown(r));
    out.push_str(&workload_figures(r));
    out.push_str(&super::groups::markdown(r));
    out.push_str(&stages(r));
    schedule(&mut out, r);
    out.push_str(&super::script::markdown(&r.raw.total.custom, r.duration_s));
    thresholds(&mut out, r);
    notes(&mut out, r);
    footer(&mut out, r);
    out
}

/// The title and the line under it: the target, the model, the load, the run.
fn header(out: &mut String, r: &RunResult) {
    let p = &r.plan;
    let _ = writeln!(
        out,
        "## periscope: {} → {} ({})\n",
        p.workload,
        match (&p.otlp, p.sent_to.is_empty()) {
            (Some(o), _) => &o.url,
            (None, false) => &p.sent_to,
            (None, true) => &p.target,
        },
        p.target_kind
    );
    let stopped = plan_extras(r);
    match &p.otlp {
        Some(o) if o.test_type == Some(crate::otlp::TestType::Query) => {
            let _ = writeln!(
                out,
                "query-only: queries to `{}` · platform `{}` · {} · run `{}`{stopped}\n",
                o.queries
                    .as_ref()
                    .and_then(|q| q.endpoint.as_deref())
                    .unwrap_or(&o.url),
                o.platform,
                load_words(p),
                r.run_id,
            );
        }
        Some(o) => {
            let _ = writeln!(
                out,
                "traces to `{}` · platform `{}` · {} + gzip · mix `{}` · {}{} · run `{}`{stopped}\n",
                o.url,
                o.platform,
                match (o.json, o.protocol) {
                    (true, _) => "OTLP/JSON",
                    (_, Some(crate::otlp::Protocol::Grpc)) => "OTLP/gRPC",
                    _ => "protobuf",
                },
                o.mix,
                load_words(p),
                o.mb_per_s
                    .map(|m| format!(" paced to {m} MB/s"))
                    .unwrap_or_default(),
                r.run_id,
            );
        }
        // Plain HTTP requests have no model, stream or token budget.
        None if !tokens_apply(r).0 => {
            let _ = writeln!(out, "{} · run `{}`{stopped}\n", load_words(p), r.run_id);
        }
        None => {
            let _ = writeln!(
                out,
                "model `{}` · {} · {} · {} · run `{}`{stopped}\n",
                p.model,
                load_words(p),
                if p.stream {
                    "streaming"
                } else {
                    "not streaming"
                },
                match &p.load {
                    crate::executor::Load::Open {
                        replay: Some(_), ..
                    } => "max_tokens: each record's output_length".to_string(),
                    _ => format!("max_tokens {}", p.max_tokens),
                },
                r.run_id,
            );
        }
    }
}

/// What the title line adds about how requests went: jitter, think time,
/// sessions, a proxy, compression, LoRA, the part of a plan, an interruption.
fn plan_extras(r: &RunResult) -> String {
    let p = &r.plan;
    let stopped = if r.interrupted_by_user {
        " · **interrupted** (Ctrl-C or SIGTERM)"
    } else {
        ""
    };
    let part = match (&p.segment, r.merged_from.len()) {
        (Some(seg), _) => format!(" · segment {seg} of the plan"),
        (None, 0) => String::new(),
        (None, n) => format!(" · merged from {n} results"),
    };
    let mut jitter = p
        .jitter_ms
        .map(|j| format!(" · jitter 0–{j} ms before each request"))
        .unwrap_or_default();
    if let Some(t) = p.think_ms {
        let _ = write!(jitter, " · think time {} ms (mean) between turns", num(t));
    }
    if let Some(h) = &p.session_header {
        let _ = write!(jitter, " · sessions named in `{h}`");
    }
    if let Some(x) = &p.proxy {
        let _ = write!(jitter, " · through the proxy {x}");
    }
    if let Some(x) = &p.accept_encoding {
        let _ = write!(jitter, " · compressed answers asked for ({x})");
    }
    if let Some(l) = &p.lora {
        let _ = write!(
            jitter,
            " · LoRA {} ({})",
            l.adapters.join(", "),
            l.assignment
        );
    }
    format!("{jitter}{part}{stopped}")
}

/// The summary table and the cost.
fn summary(out: &mut String, r: &RunResult) {
    let s = &r.summary;
    let _ = writeln!(out, "### Summary\n");
    let mut header = vec!["req", "ok", "err", "interrupted"];
    let mut row = vec![
        s.requests.to_string(),
        s.ok.to_string(),
        s.errors.to_string(),
        s.interrupted.to_string(),
    ];
    if s.reconnects > 0 {
        header.push("reconnects");
        row.push(s.reconnects.to_string());
    }
    header.extend(["error_rate", "ok_rps"]);
    row.extend([format!("{:.2}%", s.error_rate * 100.0), f2(s.ok_rps)]);
    let (inputs, generates) = tokens_apply(r);
    if generates {
        header.push("tokens/s");
        row.push(f1(s.tokens_per_s));
    }
    if inputs {
        header.push("input tokens");
        row.push(s.input_tokens.to_string());
    }
    if generates {
        header.push("output tokens");
        row.push(s.output_tokens.to_string());
    }
    header.push("duration");
    row.push(format!("{:.1}s", r.duration_s));
    let _ = writeln!(out, "{}\n", table(&header, vec![row]));
    if let (Some(c), Some(p)) = (&s.cost, &r.plan.prices) {
        let _ = writeln!(
            out,
            "**Cost: ${:.4}** (input ${:.4}, output ${:.4}) · ${:.6} per request · ${:.4} per 1000 requests, at ${}/M input and ${}/M output tokens\n",
            c.total_usd,
            c.input_usd,
            c.output_usd,
            c.per_request_usd,
            c.per_1k_requests_usd,
            p.input_per_mtok,
            p.output_per_mtok
        );
    }
}

/// The latency table.
fn latency(out: &mut String, r: &RunResult) {
    let rows: Vec<Vec<String>> = ROWS
        .iter()
        .filter_map(|(name, _)| {
            r.latency.get(*name).map(|l| {
                vec![
                    name.to_string(),
                    f2(l.min),
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
                &["metric", "min", "mean", "p50", "p90", "p95", "p99", "max", "count"],
                rows
            )
        );
    }
}

/// Errors by class and status, with their first message.
fn errors(out: &mut String, r: &RunResult) {
    let s = &r.summary;
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
}

/// An open model's schedule: asked for and kept.
fn schedule(out: &mut String, r: &RunResult) {
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
}

/// Every threshold and its verdict; where the load was stopped.
fn thresholds(out: &mut String, r: &RunResult) {
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "### Thresholds\n");
        let rows = r
            .thresholds
            .iter()
            .map(|t| {
                vec![
                    format!("`{}`", t.threshold),
                    t.actual
                        .map(|a| format!("{} {}", num(a), t.unit).trim().to_string())
                        .unwrap_or_else(|| "no data".into()),
                    if t.pass {
                        "pass".into()
                    } else {
                        "**FAIL**".into()
                    },
                ]
            })
            .collect();
        let _ = writeln!(out, "{}\n", table(&["threshold", "actual", "result"], rows));
        if let Some(a) = &r.aborted {
            let _ = writeln!(
                out,
                "**The load was stopped at {} s: `{}` failed (--abort-on-fail).**\n",
                a.at_s, a.threshold
            );
        }
    }
}

/// Warnings and how figures were counted.
fn notes(out: &mut String, r: &RunResult) {
    let s = &r.summary;
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
    if let Some(t) = r.tokenizer.as_ref().filter(|_| tokens_apply(r).0) {
        notes.push(format!(
            "tokens the usage leaves out counted by {}{}",
            t.name,
            t.template_tokens
                .map(|n| format!(
                    "; the chat template adds {n} tokens to a prompt (measured at the preflight)"
                ))
                .unwrap_or_default()
        ));
    }
    if s.images > 0 {
        notes.push(format!(
            "pictures sent: {} · their tokens (the usage's prompt tokens beyond the text's): {} in all, {:.1} a picture",
            s.images,
            s.image_tokens,
            s.image_tokens as f64 / s.images as f64
        ));
    }
    if s.reasoning_tokens > 0 {
        notes.push(format!(
            "reasoning tokens (from usage): {}",
            s.reasoning_tokens
        ));
    }
    notes.extend(s.protocol_note());
    notes.extend(s.received_note());
    notes.push(r.generator.note());
    for o in &r.outputs {
        notes.push(o.summary());
    }
    let _ = writeln!(out, "### Notes\n");
    for n in notes {
        let _ = writeln!(out, "- {n}");
    }
    let _ = writeln!(out);
}

/// The OTLP and runs sections, and the definitions of what was measured.
fn footer(out: &mut String, r: &RunResult) {
    let mut defs: Vec<String> = ROWS
        .iter()
        .filter(|(name, _)| r.latency.contains_key(*name))
        .map(|(name, d)| format!("`{name}`: {d}"))
        .collect();
    defs.extend(super::timings::definitions(r));
    if let Some(o) = &r.otlp {
        let query_only = r
            .plan
            .otlp
            .as_ref()
            .is_some_and(|v| v.test_type == Some(crate::otlp::TestType::Query));
        out.push_str(&super::otlp::markdown(o, query_only));
    }
    if let Some(runs) = &r.runs {
        out.push_str(&runs.markdown());
    }
    if !defs.is_empty() {
        let _ = writeln!(out, "<sub>Definitions: {}. Latency in HDR histograms (µs, 3 significant digits); errors and interrupted requests are excluded from latency.</sub>", defs.join("; "));
    }
}

/// Whether input tokens, and generated tokens (tokens/s, ttft), mean
/// something for the run's workload (all do for a workload not known here).
/// The plan's load in words: its shape, or the search that drives it.
pub(super) fn load_words(p: &super::view::PlanView) -> String {
    match &p.search {
        Some(s) => s.describe(),
        None => describe_load(&p.load),
    }
}

fn tokens_apply(r: &RunResult) -> (bool, bool) {
    let k = r.plan.workload;
    (k.counts_input_tokens(), k.generates())
}
