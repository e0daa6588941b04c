//! The sweep's result model (`periscope.sweep/v1`): its inputs, a row per
//! endpoint and level, the proxy's overhead with bootstrap intervals, the
//! saturation point — and its Markdown tables. `periscope sweep` fills it;
//! `report` renders it again from its JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::markdown::table;
use crate::metrics::Sample;

/// One level of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Concurrency(u64),
    Rate(f64),
}

impl Level {
    pub fn label(&self) -> String {
        match self {
            Level::Concurrency(n) => n.to_string(),
            Level::Rate(r) => crate::fmt::fmt_num(*r),
        }
    }
    pub fn value(&self) -> f64 {
        match self {
            Level::Concurrency(n) => *n as f64,
            Level::Rate(r) => *r,
        }
    }
}

/// One endpoint at one level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub endpoint: String,
    pub level: Level,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub ok_rps: f64,
    /// Seconds this endpoint's blocks of the level lasted, in all.
    #[serde(default)]
    pub duration_s: f64,
    /// e2e of ok requests, ms, from the raw samples.
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p50: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_p50: Option<f64>,
    /// ok_rps of each block this endpoint ran at the level, in order: the
    /// pairs the ok_rps delta's interval is taken over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_ok_rps: Vec<f64>,
    /// Answers by HTTP status (`transport` for none).
    pub statuses: BTreeMap<String, u64>,
    /// Every request, in the order they ended.
    pub samples: Vec<Sample>,
}

/// Proxy − direct at one level.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Overhead {
    pub level: Level,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// 95% bootstrap intervals of the p50 and mean deltas, ms.
    pub p50_ci: (f64, f64),
    pub mean_ci: (f64, f64),
    /// ok_rps, proxy − direct: negative when throughput drops through the
    /// proxy; its 95% interval over the paired blocks (Student's t; none
    /// with one block).
    #[serde(default)]
    pub ok_rps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_rps_ci: Option<(f64, f64)>,
    /// Error rate (errors / requests), proxy − direct, and its 95%
    /// interval (Newcombe's, for a difference of proportions).
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default)]
    pub error_rate_ci: (f64, f64),
    /// The proxy delivered streams in bursts.
    pub buffering: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering_note: Option<String>,
}

/// The schema name of the sweep's JSON.
pub const SCHEMA: &str = "periscope.sweep/v1";

/// The sweep's JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepResult {
    /// Always `periscope.sweep/v1`.
    pub schema: String,
    pub inputs: SweepInputs,
    pub rows: Vec<Row>,
    pub overhead: Vec<Overhead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saturation: Option<String>,
    /// Stopped by Ctrl-C: the rows are the levels that ran.
    #[serde(default)]
    pub interrupted: bool,
    /// The `run_id` tag of every live point of the sweep.
    #[serde(default)]
    pub run_id: String,
    /// What the live outputs (`--out`) wrote, summed over the sweep's runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::metrics::SinkReport>,
}

/// What the sweep was asked to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepInputs {
    /// (name, base URL) of each endpoint: `direct`, `proxy`, or `target`.
    pub endpoints: Vec<(String, String)>,
    pub levels: Vec<Level>,
    pub requests: u64,
    pub stream: bool,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub token_present: bool,
    pub bootstrap: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<crate::dataset::Selection>,
    /// `--jitter-ms`: each request waited a random 0..this many ms first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// `--agent-id`, sent as `X-LLMTrace-Agent-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

pub fn level_name(l: Level) -> &'static str {
    match l {
        Level::Concurrency(_) => "concurrency",
        Level::Rate(_) => "rate",
    }
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".to_string(), f2)
}

/// The sweep's tables as Markdown, from its document (`periscope report`).
pub fn render_tables(s: &SweepResult) -> String {
    let all: Vec<&Row> = s.rows.iter().collect();
    let mut out = String::new();
    for level in &s.inputs.levels {
        let rows: Vec<&Row> = all.iter().copied().filter(|r| r.level == *level).collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "### Results ({}={})\n\n{}\n\n",
            level_name(*level),
            level.label(),
            results_table(&rows, s.inputs.stream)
        ));
        if let Some(o) = s.overhead.iter().find(|o| o.level == *level) {
            out.push_str(&format!(
                "### Estimated Overhead (proxy - direct), ms\n\n{}\n\n",
                overhead_table(&[o])
            ));
            if let Some(note) = &o.buffering_note {
                out.push_str(&format!("**warning: {note}**\n\n"));
            }
        }
    }
    out.push_str(&format!(
        "### Sweep Results\n\n{}\n\n",
        results_table(&all, s.inputs.stream)
    ));
    if s.overhead.len() > 1 {
        let o: Vec<&Overhead> = s.overhead.iter().collect();
        out.push_str(&format!(
            "### Overhead by level, ms\n\n{}\n\n",
            overhead_table(&o)
        ));
    }
    if let Some(msg) = &s.saturation {
        out.push_str(&format!("**{msg}**\n\n"));
    }
    if s.interrupted {
        out.push_str("**interrupted** (Ctrl-C or SIGTERM): the levels above are all that ran.\n\n");
    }
    out
}

pub fn results_table(rows: &[&Row], stream: bool) -> String {
    let conc = rows.first().map_or("conc", |r| match r.level {
        Level::Concurrency(_) => "conc",
        Level::Rate(_) => "rate",
    });
    let mut header = vec![
        "endpoint", conc, "req", "ok", "err", "ok_rps", "mean", "p50", "p95", "p99", "max",
    ];
    if stream {
        header.extend(["ttft_p50", "ttft_p95", "itl_p50"]);
    }
    let body = rows
        .iter()
        .map(|r| {
            let mut v = vec![
                r.endpoint.clone(),
                r.level.label(),
                r.requests.to_string(),
                r.ok.to_string(),
                r.errors.to_string(),
                f2(r.ok_rps),
                f2(r.mean),
                f2(r.p50),
                f2(r.p95),
                f2(r.p99),
                f2(r.max),
            ];
            if stream {
                v.extend([opt(r.ttft_p50), opt(r.ttft_p95), opt(r.itl_p50)]);
            }
            v
        })
        .collect();
    table(&header, body)
}

pub fn overhead_table(o: &[&Overhead]) -> String {
    let body = o
        .iter()
        .map(|o| {
            vec![
                o.level.label(),
                format!("{:+.2}", o.mean),
                format!("{:+.2}", o.p50),
                format!("{:+.2}", o.p95),
                format!("{:+.2}", o.p99),
                format!("[{:+.2}, {:+.2}]", o.p50_ci.0, o.p50_ci.1),
                format!("[{:+.2}, {:+.2}]", o.mean_ci.0, o.mean_ci.1),
                format!("{:+.2}", o.ok_rps),
                o.ok_rps_ci
                    .map_or("–".into(), |(l, h)| format!("[{l:+.2}, {h:+.2}]")),
                format!("{:+.2}%", 100.0 * o.error_rate),
                format!(
                    "[{:+.2}%, {:+.2}%]",
                    100.0 * o.error_rate_ci.0,
                    100.0 * o.error_rate_ci.1
                ),
                if o.buffering { "**yes**" } else { "no" }.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "level",
            "Δmean",
            "Δp50",
            "Δp95",
            "Δp99",
            "Δp50 95% CI",
            "Δmean 95% CI",
            "Δok_rps",
            "Δok_rps 95% CI",
            "Δerror rate",
            "Δerror rate 95% CI",
            "buffers streams",
        ],
        body,
    )
}
