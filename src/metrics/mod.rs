//! Aggregation only: HDR histograms, per-second windows, error classes.
//!
//! Workers send `RequestRecord`s over a channel; the [`Collector`] task owns
//! every histogram, so nothing on the request path locks or allocates for
//! metrics. Aggregates merge exactly (`Aggregate::merge`), which is what lets
//! results of several processes be combined.

mod collector;
pub mod counts;
pub mod custom;
pub mod live;
pub mod plateau;

pub use collector::{Collected, Collector, Gauges, Judge, Sample, WindowSummary};
pub use live::{Observer, SinkReport};

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::{ErrorClass, Outcome, RequestRecord, TokenSource};

/// A latency histogram in µs, 3 significant digits, growing as needed.
pub fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits is valid");
    h.auto(true);
    h
}

/// The process's resident memory now, MiB (Linux; None elsewhere).
pub fn current_rss_mib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as f64 / (1024.0 * 1024.0))
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyStats {
    pub count: u64,
    pub mean: f64,
    /// The standard deviation (vLLM's `std_*_ms`); 0 in results written
    /// before it was kept.
    #[serde(default)]
    pub std: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

fn ms(us: u64) -> f64 {
    (us as f64) / 1000.0
}

impl LatencyStats {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencyStats::default();
        }
        LatencyStats {
            count: h.len(),
            mean: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
            std: (h.stdev() / 1000.0 * 1000.0).round() / 1000.0,
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

/// The latency metrics every aggregate keeps, by name.
pub const LATENCY_METRICS: &[&str] = &[
    "ttft",
    "ttfo",
    "itl",
    "tpot",
    "e2e",
    "latency",
    "schedule_lag",
    "queue_wait",
    "server_prefill",
    "server_decode",
    "server_queue",
    "ttft_outside",
];

/// Counts and histograms of a set of requests.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub interrupted: u64,
    /// Errors by class and HTTP status (None for transport errors).
    pub errors_by: BTreeMap<(ErrorClass, Option<u16>), u64>,
    /// The first message seen for each class and status.
    pub error_messages: BTreeMap<(ErrorClass, Option<u16>), String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Pictures sent, and their tokens by the usage (`vision`).
    pub images: u64,
    pub image_tokens: u64,
    pub output_sources: BTreeMap<TokenSource, u64>,
    pub input_sources: BTreeMap<TokenSource, u64>,
    pub usage_mismatch: u64,
    /// Requests whose usage was compared with a local count.
    pub usage_checked: u64,
    /// Requests whose schedule lag was measured (the open model).
    pub scheduled: u64,
    /// Requests that waited for an in-flight slot.
    pub queued: u64,
    pub hist: BTreeMap<&'static str, Histogram<u64>>,
    /// Every answer's HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Inputs embedded by ok embeddings requests.
    pub texts: u64,
    /// Data sent (every request) and spans accepted (ok requests).
    pub payload: crate::record::Payload,
    /// Answer bodies, as sent and decoded (every request that got one).
    pub received: crate::record::Received,
    /// Length of the embedding vectors last seen.
    pub dims: Option<u32>,
    /// Sums over ok requests with a ttft, for the prefill and decode rates.
    pub prefill_tokens: u64,
    pub prefill_us: u64,
    pub decode_tokens: u64,
    pub decode_us: u64,
    /// Ok requests that met every SLO (goodput).
    pub good: u64,
    /// The first send and the last end seen, µs since the origin.
    pub first_start_us: Option<u64>,
    pub last_end_us: u64,
    /// Requests that found their kept-alive connection closed by the server
    /// and went out again on a fresh one.
    pub reconnects: u64,
    /// Requests answered over HTTP/2.
    pub http2: u64,
    /// What the server reported about itself (ok requests).
    pub server: ServerCounts,
    /// A script's own metrics and its failed iterations.
    pub custom: custom::CustomMetrics,
}

/// Sums of what servers reported about their own handling of ok requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounts {
    /// Requests whose answer carried any of it.
    pub requests: u64,
    /// Prompt tokens it processed (llama.cpp `prompt_n`), of the requests
    /// that said.
    pub prompt_tokens: u64,
    /// Prompt tokens served from its cache, and the requests that said.
    pub cached_tokens: u64,
    pub cache_reported: u64,
    /// Tokens it generated by its own count, and the requests that said.
    pub output_tokens: u64,
    pub output_reported: u64,
    /// Of those, the output tokens periscope counted for the same requests.
    pub output_tokens_ours: u64,
}

impl ServerCounts {
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    fn add(&mut self, o: &ServerCounts) {
        self.requests += o.requests;
        self.prompt_tokens += o.prompt_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_reported += o.cache_reported;
        self.output_tokens += o.output_tokens;
        self.output_reported += o.output_reported;
        self.output_tokens_ours += o.output_tokens_ours;
    }
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            requests: 0,
            ok: 0,
            errors: 0,
            interrupted: 0,
            errors_by: BTreeMap::new(),
            error_messages: BTreeMap::new(),
            input_tokens: 0,
            output_tokens: 0,
            reasoning_tokens: 0,
            images: 0,
            image_tokens: 0,
            output_sources: BTreeMap::new(),
            input_sources: BTreeMap::new(),
            usage_mismatch: 0,
            usage_checked: 0,
            scheduled: 0,
            queued: 0,
            hist: LATENCY_METRICS.iter().map(|m| (*m, histogram())).collect(),
            statuses: BTreeMap::new(),
            texts: 0,
            payload: crate::record::Payload::default(),
            received: crate::record::Received::default(),
            dims: None,
            prefill_tokens: 0,
            prefill_us: 0,
            decode_tokens: 0,
            decode_us: 0,
            good: 0,
            first_start_us: None,
            last_end_us: 0,
            reconnects: 0,
            http2: 0,
            server: ServerCounts::default(),
            custom: custom::CustomMetrics::default(),
        }
    }
}

impl Aggregate {
    fn rec(&mut self, metric: &'static str, us: u64) {
        if let Some(h) = self.hist.get_mut(metric) {
            let _ = h.record(us.max(1));
        }
    }

    /// Add one request. `open` says the request came from the open model,
    /// whose schedule lag and latency-from-schedule are kept.
    pub fn add(&mut self, r: &RequestRecord, open: bool) {
        self.add_judged(r, open, false);
    }

    /// Add one request; `good` says it met every SLO.
    pub fn add_judged(&mut self, r: &RequestRecord, open: bool, good: bool) {
        self.requests += 1;
        if let Some(s) = r.status {
            *self.statuses.entry(s).or_default() += 1;
        }
        self.first_start_us = Some(
            self.first_start_us
                .map_or(r.start_us, |f| f.min(r.start_us)),
        );
        self.last_end_us = self.last_end_us.max(r.end_us);
        self.reconnects += r.reconnect as u64;
        self.http2 += r.http2 as u64;
        if open {
            self.scheduled += 1;
            let lag = r.start_us.saturating_sub(r.scheduled_us + r.queue_wait_us);
            self.rec("schedule_lag", lag);
            if r.queue_wait_us > 0 {
                self.queued += 1;
                self.rec("queue_wait", r.queue_wait_us);
            }
        }
        if r.outcome != Outcome::Interrupted {
            self.payload.sent_bytes += r.payload.sent_bytes;
            self.payload.wire_bytes += r.payload.wire_bytes;
            self.received.add(&r.received);
        }
        match r.outcome {
            Outcome::Interrupted => {
                self.interrupted += 1;
            }
            Outcome::Error(class) => {
                self.errors += 1;
                let key = (class, r.status);
                *self.errors_by.entry(key).or_default() += 1;
                if let Some(m) = &r.error_message {
                    self.error_messages.entry(key).or_insert_with(|| m.clone());
                }
            }
            Outcome::Ok => {
                self.ok += 1;
                self.good += good as u64;
                self.texts += r.texts as u64;
                self.payload.spans += r.payload.spans;
                self.payload.rejected_spans += r.payload.rejected_spans;
                self.payload.tokens += r.payload.tokens;
                if r.dims.is_some() {
                    self.dims = r.dims;
                }
                if let Some(t) = r.ttft_us {
                    self.prefill_tokens += r.input_tokens as u64;
                    self.prefill_us += t;
                    self.decode_tokens += r.output_tokens as u64;
                    self.decode_us += r.e2e_us().saturating_sub(t);
                }
                self.input_tokens += r.input_tokens as u64;
                self.output_tokens += r.output_tokens as u64;
                self.reasoning_tokens += r.reasoning_tokens.unwrap_or(0) as u64;
                self.images += r.images as u64;
                self.image_tokens += r.image_tokens.unwrap_or(0) as u64;
                // Plain HTTP and embeddings answers have no output tokens to source.
                if r.output_tokens > 0
                    || r.ttft_us.is_some()
                    || r.output_source != TokenSource::Tokenizer
                {
                    *self.output_sources.entry(r.output_source).or_default() += 1;
                }
                *self.input_sources.entry(r.input_source).or_default() += 1;
                if let Some(t) = r.ttft_us {
                    self.rec("ttft", t);
                }
                if let Some(t) = r.ttfo_us {
                    self.rec("ttfo", t);
                }
                if let Some(t) = r.tpot_us() {
                    self.rec("tpot", t);
                }
                self.rec("e2e", r.e2e_us());
                if open {
                    self.rec("latency", r.latency_us());
                }
                if let Some(h) = self.hist.get_mut("itl") {
                    for g in &r.itl_us {
                        let _ = h.record((*g as u64).max(1));
                    }
                }
                if let Some(st) = &r.server_timing {
                    self.add_server(r, st);
                }
            }
        }
    }

    fn add_server(&mut self, r: &RequestRecord, st: &crate::record::ServerTiming) {
        let us = |ms: f64| (ms * 1000.0).round().max(0.0) as u64;
        let s = &mut self.server;
        s.requests += 1;
        s.prompt_tokens += st.prompt_tokens.unwrap_or(0) as u64;
        if let Some(c) = st.cached_tokens {
            s.cached_tokens += c as u64;
            s.cache_reported += 1;
        }
        if let Some(n) = st.output_tokens {
            s.output_tokens += n as u64;
            s.output_reported += 1;
            s.output_tokens_ours += r.output_tokens as u64;
        }
        for (metric, v) in [
            ("server_prefill", st.prompt_ms),
            ("server_decode", st.decode_ms),
            ("server_queue", st.queue_ms),
        ] {
            if let Some(ms) = v {
                self.rec(metric, us(ms));
            }
        }
        if let Some(o) = r.ttft_outside_us() {
            self.rec("ttft_outside", o);
        }
    }

    /// Add another aggregate to this one, exactly.
    pub fn merge(&mut self, other: &Aggregate) {
        self.requests += other.requests;
        self.ok += other.ok;
        self.errors += other.errors;
        self.interrupted += other.interrupted;
        for (k, v) in &other.errors_by {
            *self.errors_by.entry(*k).or_default() += v;
        }
        for (k, v) in &other.error_messages {
            self.error_messages.entry(*k).or_insert_with(|| v.clone());
        }
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.images += other.images;
        self.image_tokens += other.image_tokens;
        for (k, v) in &other.output_sources {
            *self.output_sources.entry(*k).or_default() += v;
        }
        for (k, v) in &other.input_sources {
            *self.input_sources.entry(*k).or_default() += v;
        }
        self.usage_mismatch += other.usage_mismatch;
        self.usage_checked += other.usage_checked;
        self.scheduled += other.scheduled;
        self.queued += other.queued;
        for (k, h) in &other.hist {
            if let Some(mine) = self.hist.get_mut(k) {
                let _ = mine.add(h);
            }
        }
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        self.texts += other.texts;
        self.payload.add(&other.payload);
        self.received.add(&other.received);
        self.dims = self.dims.or(other.dims);
        self.prefill_tokens += other.prefill_tokens;
        self.prefill_us += other.prefill_us;
        self.decode_tokens += other.decode_tokens;
        self.decode_us += other.decode_us;
        self.good += other.good;
        self.first_start_us = match (self.first_start_us, other.first_start_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end_us = self.last_end_us.max(other.last_end_us);
        self.reconnects += other.reconnects;
        self.http2 += other.http2;
        self.server.add(&other.server);
        self.custom.merge(&other.custom);
    }

    /// errors / (ok + errors); 0 when nothing was answered.
    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / (self.ok + self.errors).max(1) as f64
    }

    /// Seconds from the first send to the last end.
    pub fn span_s(&self) -> f64 {
        self.first_start_us
            .map_or(0.0, |f| self.last_end_us.saturating_sub(f) as f64 / 1e6)
    }

    /// Input tokens per second of ttft (prompt processing speed).
    pub fn prefill_rate(&self) -> Option<f64> {
        (self.prefill_us > 0).then(|| self.prefill_tokens as f64 / (self.prefill_us as f64 / 1e6))
    }

    /// Output tokens per second of generation after the first token.
    pub fn decode_rate(&self) -> Option<f64> {
        (self.decode_us > 0).then(|| self.decode_tokens as f64 / (self.decode_us as f64 / 1e6))
    }

    pub fn stats(&self, metric: &str) -> LatencyStats {
        self.hist
            .get(metric)
            .map(LatencyStats::of)
            .unwrap_or_default()
    }

    /// The requests of one error class, any status.
    pub fn errors_of(&self, class: ErrorClass) -> u64 {
        self.errors_by
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ttft: u64, e2e: u64, tokens: u32) -> RequestRecord {
        let mut r = RequestRecord::new(0, 0);
        r.end_us = e2e;
        r.ttft_us = Some(ttft);
        r.output_tokens = tokens;
        r.itl_us = vec![1000; tokens.saturating_sub(1) as usize];
        r
    }

    #[test]
    fn aggregates_count_and_merge_exactly() {
        let mut a = Aggregate::default();
        let mut b = Aggregate::default();
        for i in 0..100 {
            a.add(&ok(100_000 + i, 400_000, 16), false);
            b.add(&ok(200_000 + i, 500_000, 16), false);
        }
        let mut err = RequestRecord::new(0, 0);
        err.status = Some(503);
        err.outcome = Outcome::Error(ErrorClass::Http5xx);
        b.add(&err, false);
        let mut union = Aggregate::default();
        union.merge(&a);
        union.merge(&b);
        assert_eq!(union.requests, 201);
        assert_eq!(union.ok, 200);
        assert_eq!(union.errors_of(ErrorClass::Http5xx), 1);
        assert_eq!(union.stats("ttft").count, 200);
        assert_eq!(union.stats("itl").count, 200 * 15);
        // The merged median lies between the two halves.
        let p50 = union.stats("ttft").p50;
        assert!((100.0..=200.2).contains(&p50), "{p50}");
        let tpot = union.stats("tpot").p50;
        assert!((tpot - 20.0).abs() < 0.05, "{tpot}");
    }

    #[test]
    fn open_model_keeps_lag_and_latency_from_schedule() {
        let mut a = Aggregate::default();
        let mut r = ok(10_000, 50_000, 2);
        r.scheduled_us = 0;
        r.queue_wait_us = 30_000;
        r.start_us = 32_000;
        r.end_us = 82_000;
        a.add(&r, true);
        let near = |x: f64, y: f64| (x - y).abs() <= y * 0.001;
        assert!(near(a.stats("schedule_lag").max, 2.0));
        assert!(near(a.stats("latency").max, 82.0));
        assert!(near(a.stats("e2e").max, 50.0));
        assert_eq!(a.queued, 1);
    }
}
