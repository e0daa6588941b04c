//! What the mock actually did: send stamps per response, aggregated.
//!
//! Each response sends one [`MockRecord`] over a lock-free channel when it
//! ends, without waking anyone: a background thread drains the channel into
//! the histograms every 100 ms, and `GET /mock/stats` drains it before it
//! answers, so it sees every record sent before it. At tens of thousands of
//! requests a second, a wake-up per record (a tokio channel) cost more than
//! the rest of the request.

use std::collections::BTreeMap;
use std::time::Instant;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Which endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Chat,
    Text,
    /// OpenAI's Responses API (`POST /v1/responses`).
    Responses,
    /// Anthropic's Messages API (`POST /v1/messages`).
    Messages,
    Embeddings,
    /// Rerank (`POST /v1/rerank`).
    Rerank,
    Models,
    Health,
    Proxy,
    /// OTLP/HTTP trace exports (`POST /v1/traces`).
    Traces,
    /// Trace queries (`GET /api/search`, `/api/traces/ID`).
    TraceQuery,
    Other,
}

/// What the mock did to a request on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    None,
    Error,
    RateLimited,
    Cut,
    Malformed,
    Refused,
    Unauthorized,
    BadRequest,
    /// The client went away before the response ended.
    Aborted,
}

/// The stamps of one response.
#[derive(Debug)]
pub struct MockRecord {
    pub endpoint: Endpoint,
    pub status: u16,
    pub fault: Fault,
    pub stream: bool,
    pub arrival: Instant,
    pub headers_at: Instant,
    /// When the first output token was sent, and when it was due.
    pub first_token: Option<(Instant, Instant)>,
    pub last_byte_at: Instant,
    /// Proxy mode: when the request was sent upstream (after the added latency).
    pub forwarded_at: Option<Instant>,
    /// Gaps between consecutive token sends, µs.
    pub itl_gaps: Vec<u32>,
    /// Lateness of every token send against its schedule, µs.
    pub token_lags: Vec<u32>,
    pub output_tokens: u32,
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    /// Time in line for a `--max-concurrency` slot before `arrival` (which
    /// is then the admission).
    pub queued: Duration,
    /// What an OTLP export held.
    pub otlp: Option<OtlpReceived>,
    /// Bytes of the request's body (plain `--ok-path` endpoints).
    pub body_bytes: u64,
}

/// One OTLP export as the mock decoded it.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpReceived {
    /// Distinct trace ids.
    pub traces: u64,
    pub spans: u64,
    pub rejected_spans: u64,
    /// Decoded payload bytes (before compression).
    pub payload_bytes: u64,
}

/// OTLP exports received (`GET /mock/stats`).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct OtlpStats {
    pub exports: u64,
    pub traces: u64,
    pub spans: u64,
    pub rejected_spans: u64,
    pub payload_bytes: u64,
    /// Payload bytes of the last export received.
    pub last_payload_bytes: u64,
    /// First arrival → last arrival, µs: with the bytes before the last
    /// export, the byte rate the sender kept.
    pub arrival_span_us: u64,
}

/// The sending side, cloned into every request.
#[derive(Clone)]
pub struct StatsHandle {
    tx: mpsc::Sender<Box<MockRecord>>,
    shared: Arc<Mutex<Collector>>,
    /// Connections: accepted, closed after a response
    /// (`--close-after-response`), and requests that came over HTTP/2.
    conns: Arc<[std::sync::atomic::AtomicU64; 3]>,
    /// Requests in service and in line, for `/metrics`.
    live: Arc<super::metrics::Live>,
}

struct Collector {
    rx: mpsc::Receiver<Box<MockRecord>>,
    stats: Stats,
    started: Instant,
}

/// How many arrival stamps `GET /mock/arrivals` keeps.
pub const ARRIVALS_KEPT: usize = 100_000;

/// The body of `GET /mock/arrivals`: when requests arrived, by the mock's clock.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Arrivals {
    /// Requests answered since the start or the last reset.
    pub received: u64,
    /// The last (up to 100 000) arrivals, µs since the mock started, sorted.
    pub arrivals_us: Vec<u64>,
}

impl Collector {
    fn drain(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            self.stats.add(&r);
        }
    }
}

impl StatsHandle {
    /// Start the collector (a thread that drains the channel every 100 ms).
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Mutex::new(Collector {
            rx,
            stats: Stats::default(),
            started: Instant::now(),
        }));
        let weak = Arc::downgrade(&shared);
        // On its own thread: a drain adds a few thousand records to the
        // histograms, a millisecond or more of work that must not hold up a
        // runtime worker whose tasks have tokens due.
        let drainer = std::thread::Builder::new()
            .name("mock-stats".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(shared) = weak.upgrade() else { return };
                if let Ok(mut c) = shared.lock() {
                    c.drain();
                };
            });
        if let Err(e) = drainer {
            // Without it, `GET /mock/stats` still drains before it answers.
            eprintln!("warning: mock: no stats thread ({e}); records are drained when read");
        }
        StatsHandle {
            tx,
            shared,
            conns: Arc::default(),
            live: Arc::default(),
        }
    }

    /// A connection was closed after a response, keep-alive notwithstanding.
    pub fn note_closed_after_response(&self) {
        self.conns[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A connection was accepted.
    pub fn note_connection(&self) {
        self.conns[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A request came over HTTP/2.
    pub fn note_http2_request(&self) {
        self.conns[2].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Requests in service and in line.
    pub fn live(&self) -> &Arc<super::metrics::Live> {
        &self.live
    }

    /// `GET /metrics`: every record so far, in vLLM's format.
    pub fn metrics(&self, model: &str, slots: Option<usize>, llamacpp: bool) -> String {
        let families = match self.shared.lock() {
            Ok(mut c) => {
                c.drain();
                c.stats.prom.clone()
            }
            Err(_) => Default::default(),
        };
        if llamacpp {
            families.render_llamacpp(&self.live)
        } else {
            families.render(&self.live, model, slots)
        }
    }

    pub fn record(&self, r: MockRecord) {
        let _ = self.tx.send(Box::new(r));
    }

    pub async fn snapshot(&self) -> StatsSnapshot {
        match self.shared.lock() {
            Ok(mut c) => {
                c.drain();
                let mut s = c.stats.snapshot();
                let n = |i: usize| self.conns[i].load(std::sync::atomic::Ordering::Relaxed);
                (s.connections, s.closed_after_response, s.http2_requests) = (n(0), n(1), n(2));
                s
            }
            Err(_) => StatsSnapshot::default(),
        }
    }

    pub async fn arrivals(&self) -> Arrivals {
        match self.shared.lock() {
            Ok(mut c) => {
                c.drain();
                let mut arrivals_us: Vec<u64> =
                    c.stats.arrivals.iter().map(|a| us(c.started, *a)).collect();
                arrivals_us.sort_unstable();
                Arrivals {
                    received: c.stats.requests,
                    arrivals_us,
                }
            }
            Err(_) => Arrivals::default(),
        }
    }

    pub fn reset(&self) {
        for c in self.conns.iter() {
            c.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        if let Ok(mut c) = self.shared.lock() {
            c.drain();
            c.stats = Stats::default();
        }
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new(3).expect("histogram")
}

struct Stats {
    requests: u64,
    by_status: BTreeMap<u16, u64>,
    by_fault: BTreeMap<Fault, u64>,
    by_endpoint: BTreeMap<Endpoint, u64>,
    body_bytes: BTreeMap<Endpoint, u64>,
    streams: u64,
    output_tokens: u64,
    prompt_tokens: u64,
    cached_tokens: u64,
    headers: Histogram<u64>,
    ttft: Histogram<u64>,
    itl: Histogram<u64>,
    e2e: Histogram<u64>,
    first_token_lag: Histogram<u64>,
    token_lag: Histogram<u64>,
    hold: Histogram<u64>,
    otlp: OtlpStats,
    otlp_first: Option<Instant>,
    /// The last arrivals, in the order their responses ended.
    arrivals: std::collections::VecDeque<Instant>,
    /// What `/metrics` reports.
    prom: super::metrics::Families,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            prom: Default::default(),
            requests: 0,
            by_status: BTreeMap::new(),
            by_fault: BTreeMap::new(),
            by_endpoint: BTreeMap::new(),
            body_bytes: BTreeMap::new(),
            streams: 0,
            output_tokens: 0,
            prompt_tokens: 0,
            cached_tokens: 0,
            headers: hist(),
            ttft: hist(),
            itl: hist(),
            e2e: hist(),
            first_token_lag: hist(),
            token_lag: hist(),
            hold: hist(),
            otlp: OtlpStats::default(),
            otlp_first: None,
            arrivals: std::collections::VecDeque::new(),
        }
    }
}

fn us(a: Instant, b: Instant) -> u64 {
    b.saturating_duration_since(a).as_micros() as u64
}

impl Stats {
    fn add(&mut self, r: &MockRecord) {
        self.prom.add(r);
        self.requests += 1;
        if self.arrivals.len() == ARRIVALS_KEPT {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(r.arrival);
        *self.by_status.entry(r.status).or_default() += 1;
        *self.by_fault.entry(r.fault).or_default() += 1;
        *self.by_endpoint.entry(r.endpoint).or_default() += 1;
        if r.body_bytes > 0 {
            *self.body_bytes.entry(r.endpoint).or_default() += r.body_bytes;
        }
        self.streams += r.stream as u64;
        self.output_tokens += r.output_tokens as u64;
        self.prompt_tokens += r.prompt_tokens as u64;
        self.cached_tokens += r.cached_tokens as u64;
        let _ = self.headers.record(us(r.arrival, r.headers_at));
        let _ = self.e2e.record(us(r.arrival, r.last_byte_at));
        if let Some((sent, due)) = r.first_token {
            let _ = self.ttft.record(us(r.arrival, sent));
            let _ = self.first_token_lag.record(us(due, sent));
        }
        if let Some(f) = r.forwarded_at {
            let _ = self.hold.record(us(r.arrival, f));
        }
        if let Some(o) = &r.otlp {
            let first = *self.otlp_first.get_or_insert(r.arrival);
            let s = &mut self.otlp;
            s.exports += 1;
            s.traces += o.traces;
            s.spans += o.spans;
            s.rejected_spans += o.rejected_spans;
            s.payload_bytes += o.payload_bytes;
            s.last_payload_bytes = o.payload_bytes;
            s.arrival_span_us = s.arrival_span_us.max(us(first, r.arrival));
        }
        for g in &r.itl_gaps {
            let _ = self.itl.record(*g as u64);
        }
        for l in &r.token_lags {
            let _ = self.token_lag.record(*l as u64);
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests,
            by_status: self
                .by_status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            by_fault: self
                .by_fault
                .iter()
                .map(|(k, v)| (fault_name(*k), *v))
                .collect(),
            by_endpoint: self
                .by_endpoint
                .iter()
                .map(|(k, v)| (endpoint_name(*k), *v))
                .collect(),
            body_bytes: self
                .body_bytes
                .iter()
                .map(|(k, v)| (endpoint_name(*k), *v))
                .collect(),
            streams: self.streams,
            output_tokens: self.output_tokens,
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
            headers_us: Summary::of(&self.headers),
            ttft_us: Summary::of(&self.ttft),
            itl_us: Summary::of(&self.itl),
            e2e_us: Summary::of(&self.e2e),
            first_token_lag_us: Summary::of(&self.first_token_lag),
            token_lag_us: Summary::of(&self.token_lag),
            proxy_hold_us: Summary::of(&self.hold),
            otlp: self.otlp.clone(),
            closed_after_response: 0,
            connections: 0,
            http2_requests: 0,
        }
    }
}

fn fault_name(f: Fault) -> String {
    serde_json::to_value(f)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn endpoint_name(e: Endpoint) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Percentiles of one histogram, µs.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    /// The standard deviation.
    #[serde(default)]
    pub std: f64,
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean: (h.mean() * 10.0).round() / 10.0,
            std: (h.stdev() * 10.0).round() / 10.0,
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The body of `GET /mock/stats`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_fault: BTreeMap<String, u64>,
    pub by_endpoint: BTreeMap<String, u64>,
    /// Request body bytes received, by endpoint (those that had any).
    #[serde(default)]
    pub body_bytes: BTreeMap<String, u64>,
    pub streams: u64,
    pub output_tokens: u64,
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    /// Request arrival → response headers.
    pub headers_us: Summary,
    /// Request arrival → first output token sent.
    pub ttft_us: Summary,
    /// Gaps between consecutive token sends.
    pub itl_us: Summary,
    /// Request arrival → last byte sent.
    pub e2e_us: Summary,
    /// First token sent − first token due.
    pub first_token_lag_us: Summary,
    /// Every token sent − its due time.
    pub token_lag_us: Summary,
    /// Proxy mode: request arrival → sent upstream (the added latency, as kept).
    pub proxy_hold_us: Summary,
    /// OTLP exports received.
    #[serde(default)]
    pub otlp: OtlpStats,
    /// Connections the mock closed after a response, though it had
    /// advertised keep-alive (`--close-after-response`).
    #[serde(default)]
    pub closed_after_response: u64,
    /// Connections accepted.
    #[serde(default)]
    pub connections: u64,
    /// Requests that came over HTTP/2 (h2c).
    #[serde(default)]
    pub http2_requests: u64,
}
