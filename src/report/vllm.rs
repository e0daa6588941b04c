//! vLLM's benchmark JSON (`vllm bench serve --save-result`), both ways: a
//! run result written field for field as vLLM writes its own (`--json
//! PATH --format vllm`), so the dashboards and scripts that read vLLM's
//! results read periscope's; and a vLLM result read back as figures, for
//! `compare` and `report --from-vllm`.
//!
//! vLLM's fields: the setup (`date`, `endpoint_type`, `backend`, `label`,
//! `model_id`, `tokenizer_id`, `num_prompts`, `request_rate`, `burstiness`,
//! `max_concurrency`), the totals (`duration`, `completed`, `failed`,
//! `total_input_tokens`, `total_output_tokens`, `request_throughput`,
//! `request_goodput`, `output_throughput`, `total_token_throughput`,
//! `max_output_tokens_per_s`, `max_concurrent_requests`), and for ttft,
//! tpot, itl and e2el their `mean_*_ms`, `median_*_ms`, `std_*_ms` and
//! `pNN_*_ms`. Its time units: ms in those fields, seconds in `duration`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::result::RunResult;
use crate::error::Error;
use crate::workload::WorkloadKind;

/// The percentiles written for each metric (vLLM's default is 99 alone;
/// `--metric-percentiles 50,90,95,99` writes these).
const PERCENTILES: [(f64, &str); 4] = [(0.5, "50"), (0.9, "90"), (0.95, "95"), (0.99, "99")];

/// periscope's latency names and vLLM's.
const METRICS: [(&str, &str); 4] = [
    ("ttft", "ttft"),
    ("tpot", "tpot"),
    ("itl", "itl"),
    ("e2e", "e2el"),
];

/// vLLM's endpoint type of a workload.
fn endpoint_type(workload: WorkloadKind) -> &'static str {
    match workload {
        WorkloadKind::TextCompletions => "openai",
        WorkloadKind::Embeddings | WorkloadKind::BatchEmbeddings => "openai-embeddings",
        WorkloadKind::Rerank => "vllm-rerank",
        _ => "openai-chat",
    }
}

/// The result as vLLM writes one. `parts` are the result's aggregates
/// (for the standard deviations, which periscope's tables leave out).
pub fn to_vllm(r: &RunResult, parts: &super::merge::Parts) -> Value {
    let p = &r.plan;
    let s = &r.summary;
    let dur = r.duration_s.max(1e-9);
    let started = humantime::parse_rfc3339_weak(&r.started_at)
        .ok()
        .or_else(|| humantime::parse_rfc3339(&r.started_at).ok());
    // vLLM's `%Y%m%d-%H%M%S`.
    let date = started
        .map(|t| {
            humantime::format_rfc3339_seconds(t)
                .to_string()
                .replace(['-', ':', 'Z'], "")
                .replace('T', "-")
        })
        .unwrap_or_default();
    let (request_rate, burstiness, max_concurrency) = match &p.load {
        crate::executor::Load::Open {
            arrival,
            max_in_flight,
            ..
        } => (
            json!(p.load.mean_rate().unwrap_or(0.0)),
            match arrival {
                crate::executor::Arrival::Poisson => json!(1.0),
                crate::executor::Arrival::Constant => json!("inf"),
            },
            json!(max_in_flight),
        ),
        crate::executor::Load::Closed { .. } => {
            (json!("inf"), json!(1.0), json!(p.load.max_concurrency()))
        }
    };
    let peak_tokens = r.series.iter().map(|w| w.output_tokens).max().unwrap_or(0);
    let peak_in_flight = r.series.iter().map(|w| w.in_flight).max().unwrap_or(0);
    let mut out: Map<String, Value> = Map::new();
    let mut put = |k: &str, v: Value| {
        out.insert(k.to_string(), v);
    };
    put("date", json!(date));
    put("endpoint_type", json!(endpoint_type(p.workload)));
    put("backend", json!(endpoint_type(p.workload)));
    put("label", json!("periscope"));
    put("model_id", json!(p.model));
    put(
        "tokenizer_id",
        json!(r
            .tokenizer
            .as_ref()
            .map_or_else(|| p.model.clone(), |t| t.name.clone())),
    );
    put("num_prompts", json!(s.requests));
    put("request_rate", request_rate);
    put("burstiness", burstiness);
    put("max_concurrency", max_concurrency);
    put("duration", json!(r.duration_s));
    put("completed", json!(s.ok));
    put("failed", json!(s.errors));
    put("total_input_tokens", json!(s.input_tokens));
    put("total_output_tokens", json!(s.output_tokens));
    put("request_throughput", json!(s.ok as f64 / dur));
    put("request_goodput", json!(s.goodput));
    put("output_throughput", json!(s.output_tokens as f64 / dur));
    put(
        "total_token_throughput",
        json!((s.input_tokens + s.output_tokens) as f64 / dur),
    );
    put("max_output_tokens_per_s", json!(peak_tokens as f64));
    put("max_concurrent_requests", json!(peak_in_flight));
    for (ours, theirs) in METRICS {
        let h = parts.total.hist.get(ours).filter(|h| !h.is_empty());
        let ms = |us: f64| us / 1000.0;
        let (mean, median, std) = match h {
            Some(h) => (
                ms(h.mean()),
                ms(h.value_at_quantile(0.5) as f64),
                ms(h.stdev()),
            ),
            None => (0.0, 0.0, 0.0),
        };
        put(&format!("mean_{theirs}_ms"), json!(mean));
        put(&format!("median_{theirs}_ms"), json!(median));
        put(&format!("std_{theirs}_ms"), json!(std));
        for (q, word) in PERCENTILES {
            let v = h.map_or(0.0, |h| ms(h.value_at_quantile(q) as f64));
            put(&format!("p{word}_{theirs}_ms"), json!(v));
        }
    }
    Value::Object(out)
}

/// A vLLM result, as the figures `compare` and thresholds name
/// (`ttft.p50`, `ok_rps`, …).
#[derive(Debug, Clone)]
pub struct VllmResult {
    pub figures: BTreeMap<String, f64>,
    pub model: String,
    pub backend: String,
    pub duration_s: f64,
    pub completed: u64,
    pub failed: u64,
}

/// Whether a JSON document is vLLM's benchmark result.
pub fn is_vllm(v: &Value) -> bool {
    v.get("schema").is_none()
        && v.get("request_throughput").is_some_and(Value::is_number)
        && (v.get("backend").is_some() || v.get("endpoint_type").is_some())
}

/// Read a vLLM result's figures.
pub fn from_vllm(v: &Value) -> Result<VllmResult, String> {
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    let need = |k: &str| num(k).ok_or_else(|| format!("a vLLM result without `{k}`"));
    let completed = need("completed")? as u64;
    let failed = num("failed").unwrap_or(0.0) as u64;
    let mut figures = BTreeMap::new();
    figures.insert("ok_rps".to_string(), need("request_throughput")?);
    if let Some(t) = num("output_throughput") {
        figures.insert("tokens_per_s".to_string(), t);
    }
    figures.insert(
        "error_rate".to_string(),
        failed as f64 / (completed + failed).max(1) as f64,
    );
    for (ours, theirs) in METRICS {
        for (stat, key) in [
            ("mean", format!("mean_{theirs}_ms")),
            ("p50", format!("median_{theirs}_ms")),
            ("p90", format!("p90_{theirs}_ms")),
            ("p95", format!("p95_{theirs}_ms")),
            ("p99", format!("p99_{theirs}_ms")),
        ] {
            if let Some(x) = num(&key) {
                figures.insert(format!("{ours}.{stat}"), x);
            }
        }
    }
    Ok(VllmResult {
        figures,
        model: v["model_id"].as_str().unwrap_or("").to_string(),
        backend: v["backend"]
            .as_str()
            .or(v["endpoint_type"].as_str())
            .unwrap_or("")
            .to_string(),
        duration_s: num("duration").unwrap_or(0.0),
        completed,
        failed,
    })
}

/// A figure of a periscope result by the same names.
pub fn figure_of(r: &RunResult, name: &str) -> Option<f64> {
    match name.split_once('.') {
        Some((m, stat)) => {
            let l = r.latency.get(m).filter(|l| l.count > 0)?;
            Some(match stat {
                "mean" => l.mean,
                "p50" => l.p50,
                "p90" => l.p90,
                "p95" => l.p95,
                "p99" => l.p99,
                _ => return None,
            })
        }
        None => match name {
            "ok_rps" => Some(r.summary.ok_rps),
            "tokens_per_s" => (r.summary.output_tokens > 0).then_some(r.summary.tokens_per_s),
            "error_rate" => Some(r.summary.error_rate),
            _ => None,
        },
    }
}

/// `report --from-vllm FILE`: the figures of a vLLM result as tables.
pub fn markdown(path: &std::path::Path, v: &VllmResult) -> String {
    let mut out = format!(
        "## vLLM benchmark result: {} ({} · model `{}`)\n\n",
        path.display(),
        v.backend,
        v.model
    );
    out.push_str(&super::markdown::table(
        &["completed", "failed", "duration", "ok_rps", "tokens/s"],
        vec![vec![
            v.completed.to_string(),
            v.failed.to_string(),
            format!("{:.1}s", v.duration_s),
            format!("{:.2}", v.figures.get("ok_rps").copied().unwrap_or(0.0)),
            v.figures
                .get("tokens_per_s")
                .map_or("–".into(), |t| format!("{t:.1}")),
        ]],
    ));
    let rows = ["ttft", "tpot", "itl", "e2e"]
        .iter()
        .filter(|m| v.figures.contains_key(&format!("{m}.mean")))
        .map(|m| {
            let mut row = vec![m.to_string()];
            for stat in ["mean", "p50", "p90", "p95", "p99"] {
                row.push(
                    v.figures
                        .get(&format!("{m}.{stat}"))
                        .map_or("–".into(), |x| format!("{x:.2}")),
                );
            }
            row
        })
        .collect();
    out.push_str("\n\n### Latency (ms)\n\n");
    out.push_str(&super::markdown::table(
        &["metric", "mean", "p50", "p90", "p95", "p99"],
        rows,
    ));
    out.push_str("\n\n");
    out
}

/// Read `path` if it is a vLLM result.
pub fn read(path: &std::path::Path) -> Result<Option<VllmResult>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("{}: cannot read: {e}", path.display())))?;
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return Ok(None);
    };
    if !is_vllm(&v) {
        return Ok(None);
    }
    from_vllm(&v)
        .map(Some)
        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))
}
