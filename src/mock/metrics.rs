//! The mock's `GET /metrics`: what it served, in vLLM's Prometheus text
//! format (or llama.cpp's, `--metrics-llamacpp`), true to its own records,
//! so that a test can check every figure periscope derives from a server's
//! metrics against the mock's truth.
//!
//! - Gauges, live: `vllm:num_requests_running` (requests being served),
//!   `vllm:num_requests_waiting` (requests in line for a `--max-concurrency`
//!   slot), `vllm:kv_cache_usage_perc` (the mock has no KV cache: the share
//!   of its slots in use, 0 without `--max-concurrency`).
//! - Counters, from the records of answered completions: requests, prompt
//!   and generated tokens, the prefix cache's queried and hit tokens.
//! - Histograms (seconds, vLLM's buckets): ttft and e2e from the request's
//!   arrival (its queue included), queue, prefill (admission → first
//!   token), decode (first → last token), inter-token latency; prompt and
//!   generation lengths.
//! - The process's resident memory and CPU seconds, as Python's
//!   `prometheus_client` adds them to vLLM's.
//! - llama.cpp's names, as `llama-server --metrics` (build 10434) serves
//!   them: counters of processed and cached prompt tokens, prompt and
//!   generation seconds, predicted tokens (one decode per token), the
//!   longest request in tokens; gauges of the mean prompt and generation
//!   rates, `requests_processing`, `requests_deferred`, and
//!   `n_busy_slots_per_decode` (here the requests in service now).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::stats::{Endpoint, Fault, MockRecord};

/// Requests in service and in line, updated as they come and go.
#[derive(Debug, Default)]
pub struct Live {
    running: AtomicI64,
    waiting: AtomicI64,
}

/// A request in line for a slot; [`Waiting::admit`] when it has one.
pub struct Waiting(Arc<Live>);

/// A request in service, until dropped.
pub struct Running(Arc<Live>);

impl Live {
    pub fn wait(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }
}

impl Waiting {
    pub fn admit(self) -> Running {
        let live = self.0.clone();
        drop(self);
        live.running.fetch_add(1, Ordering::Relaxed);
        Running(live)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// A Prometheus histogram: cumulative counts per upper bound, sum, count.
#[derive(Debug, Clone)]
struct Hist {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Self {
        Hist {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

/// The counters and histograms, from the records of answered completions.
#[derive(Debug, Clone)]
pub struct Families {
    requests: u64,
    prompt_tokens: u64,
    generation_tokens: u64,
    prefix_queries: u64,
    prefix_hits: u64,
    /// The most tokens (prompt and output) of one request.
    n_tokens_max: u64,
    ttft: Hist,
    e2e: Hist,
    queue: Hist,
    prefill: Hist,
    decode: Hist,
    itl: Hist,
    prompt_len: Hist,
    generation_len: Hist,
}

impl Default for Families {
    fn default() -> Self {
        Families {
            requests: 0,
            prompt_tokens: 0,
            generation_tokens: 0,
            prefix_queries: 0,
            prefix_hits: 0,
            n_tokens_max: 0,
            ttft: Hist::new(TTFT_BUCKETS),
            e2e: Hist::new(REQUEST_BUCKETS),
            queue: Hist::new(REQUEST_BUCKETS),
            prefill: Hist::new(REQUEST_BUCKETS),
            decode: Hist::new(REQUEST_BUCKETS),
            itl: Hist::new(ITL_BUCKETS),
            prompt_len: Hist::new(TOKEN_BUCKETS),
            generation_len: Hist::new(TOKEN_BUCKETS),
        }
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

impl Families {
    /// Count a response, if it was a completion the mock answered in full.
    pub fn add(&mut self, r: &MockRecord) {
        if !matches!(
            r.endpoint,
            Endpoint::Chat | Endpoint::Text | Endpoint::Responses
        ) || r.status != 200
            || r.fault != Fault::None
        {
            return;
        }
        let queued = r.queued.as_secs_f64();
        self.requests += 1;
        self.prompt_tokens += r.prompt_tokens as u64;
        self.generation_tokens += r.output_tokens as u64;
        self.prefix_queries += r.prompt_tokens as u64;
        self.prefix_hits += r.cached_tokens as u64;
        self.n_tokens_max = self
            .n_tokens_max
            .max(r.prompt_tokens as u64 + r.output_tokens as u64);
        self.queue.observe(queued);
        self.e2e.observe(queued + secs(r.arrival, r.last_byte_at));
        if let Some((sent, _)) = r.first_token {
            self.ttft.observe(queued + secs(r.arrival, sent));
            self.prefill.observe(secs(r.arrival, sent));
            self.decode.observe(secs(sent, r.last_byte_at));
        }
        for g in &r.itl_gaps {
            self.itl.observe(*g as f64 / 1e6);
        }
        self.prompt_len.observe(r.prompt_tokens as f64);
        self.generation_len.observe(r.output_tokens as f64);
    }

    /// The text exposition in llama.cpp's names (no labels, as it serves).
    pub fn render_llamacpp(&self, live: &Live) -> String {
        let mut out = String::with_capacity(2048);
        let processed = self.prompt_tokens.saturating_sub(self.prefix_hits);
        let (prefill, decode) = (self.prefill.sum, self.decode.sum);
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let running = live.running.load(Ordering::Relaxed).max(0) as f64;
        let waiting = live.waiting.load(Ordering::Relaxed).max(0) as f64;
        for (name, kind, v) in [
            ("prompt_tokens_total", "counter", processed as f64),
            (
                "prompt_tokens_cached_total",
                "counter",
                self.prefix_hits as f64,
            ),
            ("prompt_seconds_total", "counter", prefill),
            (
                "tokens_predicted_total",
                "counter",
                self.generation_tokens as f64,
            ),
            ("tokens_predicted_seconds_total", "counter", decode),
            ("n_decode_total", "counter", self.generation_tokens as f64),
            ("n_tokens_max", "counter", self.n_tokens_max as f64),
            ("spec_decode_num_draft_tokens_total", "counter", 0.0),
            ("spec_decode_num_accepted_tokens_total", "counter", 0.0),
            ("spec_decode_num_drafts_total", "counter", 0.0),
            ("prompt_tokens_seconds", "gauge", rate(processed, prefill)),
            (
                "predicted_tokens_seconds",
                "gauge",
                rate(self.generation_tokens, decode),
            ),
            ("requests_processing", "gauge", running),
            ("requests_deferred", "gauge", waiting),
            ("n_busy_slots_per_decode", "gauge", running),
        ] {
            let _ = writeln!(out, "# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {v}");
        }
        out
    }

    /// The text exposition: `model` labels every series; `slots` is
    /// `--max-concurrency`.
    pub fn render(&self, live: &Live, model: &str, slots: Option<usize>) -> String {
        let labels = format!("model_name=\"{}\"", model.replace(['"', '\\', '\n'], "_"));
        let mut out = String::with_capacity(8192);
        let running = live.running.load(Ordering::Relaxed).max(0);
        let waiting = live.waiting.load(Ordering::Relaxed).max(0);
        let usage = slots.map_or(0.0, |n| running as f64 / n.max(1) as f64);
        for (name, help, v) in [
            (
                "num_requests_running",
                "Number of requests in model execution batches.",
                running as f64,
            ),
            (
                "num_requests_waiting",
                "Number of requests waiting to be processed.",
                waiting as f64,
            ),
            (
                "kv_cache_usage_perc",
                "KV-cache usage. 1 means 100 percent usage.",
                usage,
            ),
        ] {
            let _ = writeln!(out, "# HELP vllm:{name} {help}\n# TYPE vllm:{name} gauge");
            let _ = writeln!(out, "vllm:{name}{{{labels}}} {v}");
        }
        for (name, help, v) in [
            (
                "request_success",
                "Count of successfully processed requests.",
                self.requests,
            ),
            (
                "prompt_tokens",
                "Number of prefill tokens processed.",
                self.prompt_tokens,
            ),
            (
                "generation_tokens",
                "Number of generation tokens processed.",
                self.generation_tokens,
            ),
            (
                "prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried tokens.",
                self.prefix_queries,
            ),
            (
                "prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                self.prefix_hits,
            ),
            (
                "num_preemptions",
                "Cumulative number of preemption from the engine.",
                0,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP vllm:{name}_total {help}\n# TYPE vllm:{name}_total counter"
            );
            let _ = writeln!(out, "vllm:{name}_total{{{labels}}} {v}");
        }
        self.render_histograms(&mut out, &labels);
        process(&mut out);
        out
    }

    /// vLLM's histograms, in its names, every bucket cumulative.
    fn render_histograms(&self, out: &mut String, labels: &str) {
        for (name, help, h) in [
            (
                "time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                &self.ttft,
            ),
            (
                "e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                &self.e2e,
            ),
            (
                "request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                &self.queue,
            ),
            (
                "request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
                &self.prefill,
            ),
            (
                "request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
                &self.decode,
            ),
            (
                "inter_token_latency_seconds",
                "Histogram of inter-token latency in seconds.",
                &self.itl,
            ),
            (
                "request_prompt_tokens",
                "Number of prefill tokens processed.",
                &self.prompt_len,
            ),
            (
                "request_generation_tokens",
                "Number of generation tokens processed.",
                &self.generation_len,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP vllm:{name} {help}\n# TYPE vllm:{name} histogram"
            );
            for (b, c) in h.bounds.iter().zip(&h.counts) {
                let _ = writeln!(out, "vllm:{name}_bucket{{{labels},le=\"{b:?}\"}} {c}");
            }
            let _ = writeln!(
                out,
                "vllm:{name}_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "vllm:{name}_sum{{{labels}}} {:?}", h.sum);
            let _ = writeln!(out, "vllm:{name}_count{{{labels}}} {}", h.count);
        }
    }
}

/// The process figures Python's `prometheus_client` adds to vLLM's (and
/// SGLang's, LiteLLM's) metrics: resident memory and CPU seconds.
fn process(out: &mut String) {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0 {
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {}",
            secs(ru.ru_utime) + secs(ru.ru_stime)
        );
    }
    // The second field of statm: resident pages.
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let (Some(pages), true) = (rss, page > 0) {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}",
            pages * page as u64
        );
    }
}
