//! What each server calls its figures: the metric families of vLLM,
//! SGLang, llama.cpp, TGI, LiteLLM and NVIDIA Triton / TensorRT-LLM, mapped
//! onto periscope's names (`requests`, `prompt_tokens`, `running`, `ttft`…),
//! and the reading of one scrape through that map.
//!
//! Names come from the servers' sources: vLLM's `vllm/v1/metrics/loggers.py`
//! (with the names of its v0 engine as fallbacks), SGLang's
//! `metrics/collector.py`, llama.cpp's `server_task_result_metrics`
//! (`--metrics`; its `prompt_tokens_total` excludes the tokens reused from
//! the cache, counted apart), TGI's router, LiteLLM's Prometheus callback
//! and Triton's metrics documentation.

use std::collections::BTreeMap;

use super::expo::{Exposition, Point};

/// Where a figure's value comes from.
#[derive(Debug)]
pub enum Src {
    /// The first of these names the scrape has, over all its label sets.
    Any(&'static [&'static str]),
    /// The sum of those of these that the scrape has.
    Sum(&'static [Src]),
    /// The series of a name whose label has a value.
    Where(&'static str, &'static str, &'static str),
    /// One over the other.
    Ratio(&'static Src, &'static Src),
}

/// How a figure's label sets (engines, models, GPUs) add up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    Sum,
    Mean,
}

/// A histogram's source: Prometheus buckets, or a pair of counters (a
/// total and a count) that give only a mean.
#[derive(Debug)]
pub enum HistSrc {
    /// Base names (the first present wins), in seconds × `scale`.
    Buckets(&'static [&'static str], f64),
    /// `sum` counter over `count` counter, `sum` in seconds × `scale`.
    MeanOf(&'static str, &'static str, f64),
}

/// One server's map.
#[derive(Debug)]
pub struct Family {
    /// `vllm`, `sglang`, `llama.cpp`, `tgi`, `litellm`, `triton`.
    pub server: &'static str,
    /// A name prefix only this server uses.
    pub marker: &'static str,
    pub counters: &'static [(&'static str, Src)],
    pub gauges: &'static [(&'static str, Src, Agg)],
    pub histograms: &'static [(&'static str, HistSrc)],
}

use Src::{Any, Ratio, Sum, Where};

const LLAMA_PROMPT: Src = Sum(&[
    Any(&["llamacpp:prompt_tokens_total"]),
    Any(&["llamacpp:prompt_tokens_cached_total"]),
]);

/// Every server periscope knows, in the order a scrape is matched.
pub static FAMILIES: &[Family] = &[
    Family {
        server: "vllm",
        marker: "vllm:",
        counters: &[
            ("requests", Any(&["vllm:request_success_total"])),
            ("prompt_tokens", Any(&["vllm:prompt_tokens_total"])),
            ("generation_tokens", Any(&["vllm:generation_tokens_total"])),
            (
                "prefix_cache_hits",
                Any(&[
                    "vllm:prefix_cache_hits_total",
                    "vllm:gpu_prefix_cache_hits_total",
                ]),
            ),
            (
                "prefix_cache_queries",
                Any(&[
                    "vllm:prefix_cache_queries_total",
                    "vllm:gpu_prefix_cache_queries_total",
                ]),
            ),
            ("preemptions", Any(&["vllm:num_preemptions_total"])),
            (
                "spec_accepted",
                Any(&["vllm:spec_decode_num_accepted_tokens_total"]),
            ),
            (
                "spec_drafted",
                Any(&["vllm:spec_decode_num_draft_tokens_total"]),
            ),
        ],
        gauges: &[
            ("running", Any(&["vllm:num_requests_running"]), Agg::Sum),
            ("waiting", Any(&["vllm:num_requests_waiting"]), Agg::Sum),
            (
                "kv_cache_usage",
                Any(&["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"]),
                Agg::Mean,
            ),
        ],
        histograms: &[
            (
                "ttft",
                HistSrc::Buckets(&["vllm:time_to_first_token_seconds"], 1.0),
            ),
            (
                "queue_time",
                HistSrc::Buckets(&["vllm:request_queue_time_seconds"], 1.0),
            ),
            (
                "prefill_time",
                HistSrc::Buckets(&["vllm:request_prefill_time_seconds"], 1.0),
            ),
            (
                "decode_time",
                HistSrc::Buckets(&["vllm:request_decode_time_seconds"], 1.0),
            ),
            (
                "e2e",
                HistSrc::Buckets(&["vllm:e2e_request_latency_seconds"], 1.0),
            ),
            (
                "itl",
                HistSrc::Buckets(
                    &[
                        "vllm:inter_token_latency_seconds",
                        "vllm:time_per_output_token_seconds",
                    ],
                    1.0,
                ),
            ),
        ],
    },
    Family {
        server: "sglang",
        marker: "sglang:",
        counters: &[
            (
                "requests",
                Any(&[
                    "sglang:num_requests_total",
                    "sglang:e2e_request_latency_seconds_count",
                ]),
            ),
            ("prompt_tokens", Any(&["sglang:prompt_tokens_total"])),
            (
                "generation_tokens",
                Any(&["sglang:generation_tokens_total"]),
            ),
            ("prefix_cache_hits", Any(&["sglang:cached_tokens_total"])),
            ("prefix_cache_queries", Any(&["sglang:prompt_tokens_total"])),
        ],
        gauges: &[
            ("running", Any(&["sglang:num_running_reqs"]), Agg::Sum),
            ("waiting", Any(&["sglang:num_queue_reqs"]), Agg::Sum),
            ("kv_cache_usage", Any(&["sglang:token_usage"]), Agg::Mean),
            (
                "prefix_cache_hit_rate",
                Any(&["sglang:cache_hit_rate"]),
                Agg::Mean,
            ),
            (
                "spec_accept_length",
                Any(&["sglang:spec_accept_length"]),
                Agg::Mean,
            ),
        ],
        histograms: &[
            (
                "ttft",
                HistSrc::Buckets(&["sglang:time_to_first_token_seconds"], 1.0),
            ),
            (
                "queue_time",
                HistSrc::Buckets(&["sglang:queue_time_seconds"], 1.0),
            ),
            (
                "e2e",
                HistSrc::Buckets(&["sglang:e2e_request_latency_seconds"], 1.0),
            ),
            (
                "itl",
                HistSrc::Buckets(
                    &[
                        "sglang:inter_token_latency_seconds",
                        "sglang:time_per_output_token_seconds",
                    ],
                    1.0,
                ),
            ),
        ],
    },
    Family {
        server: "llama.cpp",
        marker: "llamacpp:",
        counters: &[
            ("prompt_tokens", LLAMA_PROMPT),
            (
                "prompt_tokens_processed",
                Any(&["llamacpp:prompt_tokens_total"]),
            ),
            ("prompt_seconds", Any(&["llamacpp:prompt_seconds_total"])),
            (
                "generation_tokens",
                Any(&["llamacpp:tokens_predicted_total"]),
            ),
            (
                "generation_seconds",
                Any(&["llamacpp:tokens_predicted_seconds_total"]),
            ),
            (
                "prefix_cache_hits",
                Any(&["llamacpp:prompt_tokens_cached_total"]),
            ),
            ("prefix_cache_queries", LLAMA_PROMPT),
            (
                "spec_accepted",
                Any(&["llamacpp:spec_decode_num_accepted_tokens_total"]),
            ),
            (
                "spec_drafted",
                Any(&["llamacpp:spec_decode_num_draft_tokens_total"]),
            ),
        ],
        gauges: &[
            ("running", Any(&["llamacpp:requests_processing"]), Agg::Sum),
            ("waiting", Any(&["llamacpp:requests_deferred"]), Agg::Sum),
            (
                "kv_cache_usage",
                Any(&["llamacpp:kv_cache_usage_ratio"]),
                Agg::Mean,
            ),
        ],
        histograms: &[],
    },
    Family {
        server: "tgi",
        marker: "tgi_",
        counters: &[
            (
                "requests",
                Any(&["tgi_request_success", "tgi_request_success_total"]),
            ),
            ("prompt_tokens", Any(&["tgi_request_input_length_sum"])),
            (
                "generation_tokens",
                Any(&["tgi_request_generated_tokens_sum"]),
            ),
        ],
        gauges: &[
            ("running", Any(&["tgi_batch_current_size"]), Agg::Sum),
            ("waiting", Any(&["tgi_queue_size"]), Agg::Sum),
        ],
        histograms: &[
            (
                "queue_time",
                HistSrc::Buckets(&["tgi_request_queue_duration"], 1.0),
            ),
            (
                "inference_time",
                HistSrc::Buckets(&["tgi_request_inference_duration"], 1.0),
            ),
            ("e2e", HistSrc::Buckets(&["tgi_request_duration"], 1.0)),
            (
                "itl",
                HistSrc::Buckets(&["tgi_request_mean_time_per_token_duration"], 1.0),
            ),
        ],
    },
    Family {
        server: "litellm",
        marker: "litellm_",
        counters: &[
            (
                "requests",
                Any(&["litellm_proxy_total_requests_metric_total"]),
            ),
            (
                "failed_requests",
                Any(&["litellm_proxy_failed_requests_metric_total"]),
            ),
            (
                "prompt_tokens",
                Any(&[
                    "litellm_input_tokens_metric_total",
                    "litellm_input_tokens_total",
                ]),
            ),
            (
                "generation_tokens",
                Any(&[
                    "litellm_output_tokens_metric_total",
                    "litellm_output_tokens_total",
                ]),
            ),
        ],
        gauges: &[],
        histograms: &[
            (
                "ttft",
                HistSrc::Buckets(&["litellm_llm_api_time_to_first_token_metric"], 1.0),
            ),
            (
                "e2e",
                HistSrc::Buckets(&["litellm_request_total_latency_metric"], 1.0),
            ),
            (
                "upstream_e2e",
                HistSrc::Buckets(&["litellm_llm_api_latency_metric"], 1.0),
            ),
            (
                "proxy_overhead",
                HistSrc::Buckets(&["litellm_overhead_latency_metric"], 1.0),
            ),
        ],
    },
    Family {
        server: "triton",
        marker: "nv_",
        counters: &[
            ("requests", Any(&["nv_inference_request_success"])),
            ("failed_requests", Any(&["nv_inference_request_failure"])),
        ],
        gauges: &[
            (
                "running",
                Where("nv_trt_llm_request_metrics", "request_type", "active"),
                Agg::Sum,
            ),
            (
                "waiting",
                Any(&["nv_inference_pending_request_count"]),
                Agg::Sum,
            ),
            (
                "kv_cache_usage",
                Ratio(
                    &Where(
                        "nv_trt_llm_kv_cache_block_metrics",
                        "kv_cache_block_type",
                        "used",
                    ),
                    &Where(
                        "nv_trt_llm_kv_cache_block_metrics",
                        "kv_cache_block_type",
                        "max",
                    ),
                ),
                Agg::Mean,
            ),
        ],
        histograms: &[
            (
                "queue_time",
                HistSrc::MeanOf(
                    "nv_inference_queue_duration_us",
                    "nv_inference_request_success",
                    1e-6,
                ),
            ),
            (
                "inference_time",
                HistSrc::MeanOf(
                    "nv_inference_compute_infer_duration_us",
                    "nv_inference_request_success",
                    1e-6,
                ),
            ),
            (
                "e2e",
                HistSrc::MeanOf(
                    "nv_inference_request_duration_us",
                    "nv_inference_request_success",
                    1e-6,
                ),
            ),
        ],
    },
];

/// Process figures every Prometheus client library exports.
const PROCESS_COUNTERS: &[(&str, Src)] = &[("cpu_seconds", Any(&["process_cpu_seconds_total"]))];
const PROCESS_GAUGES: &[(&str, Src, Agg)] = &[(
    "memory_bytes",
    Any(&["process_resident_memory_bytes"]),
    Agg::Sum,
)];

/// A histogram at one scrape: cumulative finite buckets `(le, count)`
/// (none for a mean-only source; the +Inf bucket is `count`), and its sum
/// (seconds) and count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HistAt {
    /// Unix seconds of the scrape.
    pub t: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<[f64; 2]>,
    pub sum: f64,
    pub count: f64,
}

/// One scrape read through a family's map.
#[derive(Debug, Default)]
pub struct Reading {
    pub counters: BTreeMap<&'static str, f64>,
    pub gauges: BTreeMap<&'static str, f64>,
    pub histograms: BTreeMap<&'static str, HistAt>,
}

/// The family a scrape speaks: the first whose marker its names carry.
pub fn detect(e: &Exposition) -> Option<&'static Family> {
    FAMILIES.iter().find(|f| e.has_prefix(f.marker))
}

fn total(points: &[Point], agg: Agg) -> f64 {
    let sum: f64 = points.iter().map(|p| p.value).sum();
    match agg {
        Agg::Sum => sum,
        Agg::Mean => sum / points.len().max(1) as f64,
    }
}

fn value(e: &Exposition, src: &Src, agg: Agg) -> Option<f64> {
    match src {
        Any(names) => names
            .iter()
            .find_map(|n| e.get(n).filter(|p| !p.is_empty()))
            .map(|p| total(p, agg)),
        Sum(parts) => {
            let present: Vec<f64> = parts.iter().filter_map(|s| value(e, s, agg)).collect();
            (!present.is_empty()).then(|| present.iter().sum())
        }
        Where(name, label, want) => {
            let points: Vec<Point> = e
                .get(name)?
                .iter()
                .filter(|p| p.label(label) == Some(want))
                .cloned()
                .collect();
            (!points.is_empty()).then(|| total(&points, agg))
        }
        Ratio(a, b) => {
            let (a, b) = (value(e, a, agg)?, value(e, b, agg)?);
            (b > 0.0).then(|| a / b)
        }
    }
}

fn histogram(e: &Exposition, src: &HistSrc, t: f64) -> Option<HistAt> {
    match src {
        HistSrc::Buckets(names, scale) => {
            let base = names
                .iter()
                .find(|n| e.get(&format!("{n}_count")).is_some())?;
            let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
            for p in e.get(&format!("{base}_bucket")).unwrap_or_default() {
                // The +Inf bucket is the count (and JSON has no infinity).
                let Some(le) = p
                    .label("le")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|le| le.is_finite())
                else {
                    continue;
                };
                let le = le * scale;
                // Bounds as ordered keys (every le is ≥ 0 in practice;
                // the bit order of non-negative floats is their order).
                let slot = by_le.entry(le.max(0.0).to_bits()).or_insert((le, 0.0));
                slot.1 += p.value;
            }
            let sum = total(e.get(&format!("{base}_sum")).unwrap_or_default(), Agg::Sum) * scale;
            let count = total(e.get(&format!("{base}_count"))?, Agg::Sum);
            Some(HistAt {
                t,
                buckets: by_le.into_values().map(|(le, c)| [le, c]).collect(),
                sum,
                count,
            })
        }
        HistSrc::MeanOf(sum, count, scale) => Some(HistAt {
            t,
            buckets: Vec::new(),
            sum: total(e.get(sum)?, Agg::Sum) * scale,
            count: total(e.get(count)?, Agg::Sum),
        }),
    }
}

/// Read a scrape taken at `t` (Unix seconds) through a family's map (and
/// the process figures every server may have).
pub fn read(e: &Exposition, family: Option<&Family>, t: f64) -> Reading {
    let mut r = Reading::default();
    let counters = family.map_or(&[][..], |f| f.counters);
    for (name, src) in counters.iter().chain(PROCESS_COUNTERS) {
        if let Some(v) = value(e, src, Agg::Sum).filter(|v| v.is_finite()) {
            r.counters.insert(name, v);
        }
    }
    let gauges = family.map_or(&[][..], |f| f.gauges);
    for (name, src, agg) in gauges.iter().chain(PROCESS_GAUGES) {
        if let Some(v) = value(e, src, *agg).filter(|v| v.is_finite()) {
            r.gauges.insert(name, v);
        }
    }
    for (name, src) in family.map_or(&[][..], |f| f.histograms) {
        if let Some(h) = histogram(e, src, t).filter(|h| h.sum.is_finite() && h.count.is_finite()) {
            r.histograms.insert(name, h);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Exposition {
        Exposition::parse(text).unwrap()
    }

    #[test]
    fn vllm_engines_add_up_and_usage_is_their_mean() {
        let e = parse(
            "vllm:num_requests_running{engine=\"0\"} 3\n\
             vllm:num_requests_running{engine=\"1\"} 2\n\
             vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\n\
             vllm:kv_cache_usage_perc{engine=\"1\"} 0.25\n\
             vllm:prompt_tokens_total{engine=\"0\"} 10\n\
             vllm:prompt_tokens_total{engine=\"1\"} 5\n\
             # TYPE vllm:time_to_first_token_seconds histogram\n\
             vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.1\"} 1\n\
             vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\"} 2\n\
             vllm:time_to_first_token_seconds_bucket{engine=\"1\",le=\"0.1\"} 3\n\
             vllm:time_to_first_token_seconds_bucket{engine=\"1\",le=\"+Inf\"} 3\n\
             vllm:time_to_first_token_seconds_sum{engine=\"0\"} 0.5\n\
             vllm:time_to_first_token_seconds_sum{engine=\"1\"} 0.25\n\
             vllm:time_to_first_token_seconds_count{engine=\"0\"} 2\n\
             vllm:time_to_first_token_seconds_count{engine=\"1\"} 3\n",
        );
        let f = detect(&e).unwrap();
        assert_eq!(f.server, "vllm");
        let r = read(&e, Some(f), 7.0);
        assert_eq!(r.gauges["running"], 5.0);
        assert_eq!(r.gauges["kv_cache_usage"], 0.375);
        assert_eq!(r.counters["prompt_tokens"], 15.0);
        let h = &r.histograms["ttft"];
        assert_eq!(h.buckets, vec![[0.1, 4.0]]);
        assert_eq!((h.sum, h.count, h.t), (0.75, 5.0, 7.0));
    }

    #[test]
    fn llama_cpp_prompt_tokens_are_processed_plus_cached() {
        let e = parse(
            "llamacpp:prompt_tokens_total 25\nllamacpp:prompt_tokens_cached_total 75\n\
             llamacpp:tokens_predicted_total 5\nllamacpp:requests_deferred 2\n",
        );
        let f = detect(&e).unwrap();
        assert_eq!(f.server, "llama.cpp");
        let r = read(&e, Some(f), 0.0);
        assert_eq!(r.counters["prompt_tokens"], 100.0);
        assert_eq!(r.counters["prompt_tokens_processed"], 25.0);
        assert_eq!(r.counters["prefix_cache_hits"], 75.0);
        assert_eq!(r.gauges["waiting"], 2.0);
        assert!(!r.counters.contains_key("requests"));
    }

    #[test]
    fn triton_means_come_from_counter_pairs_and_trt_llm_usage_from_blocks() {
        let e = parse(
            "nv_inference_request_success{model=\"a\"} 4\n\
             nv_inference_queue_duration_us{model=\"a\"} 2000\n\
             nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"used\"} 30\n\
             nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"max\"} 120\n\
             nv_trt_llm_request_metrics{request_type=\"active\"} 3\n\
             nv_trt_llm_request_metrics{request_type=\"max\"} 64\n",
        );
        let f = detect(&e).unwrap();
        assert_eq!(f.server, "triton");
        let r = read(&e, Some(f), 0.0);
        assert_eq!(r.gauges["kv_cache_usage"], 0.25);
        assert_eq!(r.gauges["running"], 3.0);
        let q = &r.histograms["queue_time"];
        assert!(q.buckets.is_empty());
        assert_eq!((q.sum, q.count), (0.002, 4.0));
    }
}
