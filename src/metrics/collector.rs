//! The collector task: owns the aggregates, closes one window per second.
//!
//! Records arrive over a lock-free channel that the collector drains every
//! 20 ms, so sending a record never wakes a task (a wake-up per request cost
//! more CPU than the rest of the bookkeeping). The run is over when every
//! sender is dropped (the executor's tasks have ended), which disconnects the
//! channel. Once a second the collector closes the window of the previous
//! second into a [`WindowSummary`] and hands it, with the total so far, to
//! every live output ([`Observer`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use std::sync::mpsc;

use super::custom::CustomSample;
use super::live::{Observer, SinkReport};
use super::plateau::{NoPlateau, Plateau, PlateauTarget, Steady, WindowLoad};
use super::{histogram, Aggregate};
use crate::record::{Group, RequestRecord};

/// Gauges the executor keeps up to date.
#[derive(Debug, Default)]
pub struct Gauges {
    pub active_vus: AtomicU64,
    pub in_flight: AtomicU64,
}

/// One second of the run, summarized.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WindowSummary {
    /// Seconds since the start of the load (this window covers [t, t+1)).
    pub t: u64,
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub output_tokens: u64,
    pub input_tokens: u64,
    /// VUs running and requests in flight: their mean over [t, t+1)
    /// (sampled every 20 ms), so that they describe the same second as the
    /// counts.
    pub active_vus: u64,
    pub in_flight: u64,
    pub ttft_p50: Option<f64>,
    pub ttft_p95: Option<f64>,
    pub ttft_p99: Option<f64>,
    pub itl_p50: Option<f64>,
    pub itl_p95: Option<f64>,
    pub itl_p99: Option<f64>,
    pub tpot_p50: Option<f64>,
    pub tpot_p95: Option<f64>,
    pub tpot_p99: Option<f64>,
    pub e2e_p50: Option<f64>,
    pub e2e_p95: Option<f64>,
    pub e2e_p99: Option<f64>,
    /// otlp-traces: payload bytes sent (encoded, and on the wire), spans
    /// accepted, and spans the backend rejected in the window.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub payload_bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wire_bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spans: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected_spans: u64,
    /// Requests sent again on a fresh connection (the server had closed
    /// their kept-alive one).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reconnects: u64,
    /// A script's own metrics in this second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<CustomPoint>,
    /// The window's errors by class (`http5xx`, `timeout`…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_class: BTreeMap<String, u64>,
    /// The generator's resident memory at the end of the window, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mib: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One custom metric over one second: its count and its value there (a
/// trend's mean, a counter's sum, a rate's share, a gauge's last value).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CustomPoint {
    pub name: String,
    pub kind: String,
    pub count: u64,
    pub value: f64,
    /// A trend's p95 and max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl CustomPoint {
    fn of(name: &str, m: &super::custom::CustomMetric) -> Option<CustomPoint> {
        use super::custom::MetricKind;
        let kind = m.kind?;
        let trend = kind == MetricKind::Trend;
        Some(CustomPoint {
            name: name.to_string(),
            kind: format!("{kind:?}").to_lowercase(),
            count: m.count,
            value: match kind {
                MetricKind::Trend => m.stat("avg", 1.0)?,
                MetricKind::Counter => m.sum,
                MetricKind::Rate => m.stat("rate", 1.0)?,
                MetricKind::Gauge => m.last?,
            },
            p95: trend.then(|| m.quantile(0.95)).flatten(),
            max: trend.then_some(m.max).flatten(),
        })
    }
}

/// One request, kept whole: for statistics over requests (the sweep's
/// bootstrap intervals), the per-request CSV and the `requests` of a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// When it was sent, seconds since the start of the load.
    pub t_s: f64,
    /// The path it was sent to (`chat/completions`, `/health`).
    pub endpoint: std::borrow::Cow<'static, str>,
    /// The stage of the load shape (index into the plan's stages).
    pub stage: u16,
    /// The report row it also counts in: `turn 3`, `batch 32`, `endpoint GET /health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The HTTP status, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub ok: bool,
    /// Why it failed; neither ok nor an error: interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::record::ErrorClass>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Request sent → end of the body, ms.
    pub e2e_ms: f64,
    /// The open model: scheduled send → end of the body, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Where the output count came from: `usage`, `tokenizer`, `chunks`.
    #[serde(default)]
    pub output_source: crate::record::TokenSource,
    /// It went out again on a fresh connection (the server had closed the
    /// kept-alive one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconnect: bool,
    /// The answer came over HTTP/2.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// The server's own prompt (prefill) and generation time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_prompt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_decode_ms: Option<f64>,
    /// Prompt tokens it served from its cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u32>,
    /// The tokens it generated, by its own count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_output_tokens: Option<u32>,
    /// The LoRA adapter it asked for (`--lora`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// `--requests-text`: the request's body and the answer's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

impl Sample {
    pub fn of(r: &RequestRecord, open_model: bool) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Sample {
            t_s: r.start_us as f64 / 1e6,
            endpoint: r.path.clone(),
            stage: r.stage,
            group: r
                .group
                .as_ref()
                .map(|g| format!("{} {}", g.kind(), g.label())),
            status: r.status,
            ok: r.is_ok(),
            error: match r.outcome {
                crate::record::Outcome::Error(c) => Some(c),
                _ => None,
            },
            ttft_ms: r.ttft_us.map(ms),
            e2e_ms: ms(r.e2e_us()),
            latency_ms: open_model.then(|| ms(r.latency_us())),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            output_source: r.output_source,
            reconnect: r.reconnect,
            http2: r.http2,
            server_prompt_ms: r.server_timing.and_then(|t| t.prompt_ms),
            server_decode_ms: r.server_timing.and_then(|t| t.decode_ms),
            cached_tokens: r.server_timing.and_then(|t| t.cached_tokens),
            server_output_tokens: r.server_timing.and_then(|t| t.output_tokens),
            adapter: r.adapter.as_deref().map(str::to_string),
            request_body: r
                .prompt
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            answer: r.prompt.as_ref().and(r.output_text.clone()),
        }
    }

    /// Neither ok nor failed: cancelled at the end or by Ctrl-C.
    pub fn interrupted(&self) -> bool {
        !self.ok && self.error.is_none()
    }
}

/// What the collector hands back at the end.
pub struct Collected {
    /// Every request, when asked for (`Collector::with_samples`).
    pub samples: Vec<Sample>,
    pub total: Aggregate,
    pub windows: Vec<WindowSummary>,
    /// By turn, batch size or endpoint.
    pub by_group: BTreeMap<Group, Aggregate>,
    /// By stage of the load shape (index into its stages).
    pub by_stage: BTreeMap<u16, Aggregate>,
    /// What the live outputs wrote, once finished.
    pub outputs: Vec<SinkReport>,
    /// The run's plateau at full load, or why it had none (when asked).
    pub steady: Option<Result<Steady, NoPlateau>>,
}

/// Whether an ok request met every SLO (goodput).
pub type Judge = Box<dyn Fn(&RequestRecord) -> bool + Send>;

pub struct Collector {
    rx: mpsc::Receiver<RequestRecord>,
    /// A script's custom metrics, when the run has one.
    custom: Option<mpsc::Receiver<Vec<CustomSample>>>,
    origin: Instant,
    open_model: bool,
    gauges: Arc<Gauges>,
    judge: Option<Judge>,
    keep_samples: bool,
    /// The live outputs, fed every record and window.
    observers: Vec<Box<dyn Observer>>,
    /// How long the outputs may take to finish at the end.
    finish_wait: Duration,
    /// Finds the steady state, when the run has a load to judge it by.
    plateau: Option<Plateau>,
}

/// What the collector adds up as records come.
#[derive(Default)]
struct Tally {
    total: Aggregate,
    by_group: BTreeMap<Group, Aggregate>,
    by_stage: BTreeMap<u16, Aggregate>,
    samples: Vec<Sample>,
    open: BTreeMap<u64, OpenWindow>,
}

/// A window still open: the same aggregate as the total, per second, and
/// the gauges sampled while it lasted.
#[derive(Default)]
struct OpenWindow {
    agg: Aggregate,
    vus_sum: u64,
    in_flight_sum: u64,
    samples: u64,
}

fn p(h: &hdrhistogram::Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

impl Collector {
    pub fn new(
        rx: mpsc::Receiver<RequestRecord>,
        origin: Instant,
        open_model: bool,
        gauges: Arc<Gauges>,
    ) -> Self {
        Collector {
            rx,
            custom: None,
            origin,
            open_model,
            gauges,
            judge: None,
            keep_samples: false,
            observers: Vec::new(),
            finish_wait: Duration::from_secs(10),
            plateau: None,
        }
    }

    /// Find the run's steady state against this full load (None: none).
    pub fn with_plateau(mut self, target: Option<PlateauTarget>) -> Self {
        self.plateau = target.map(Plateau::new);
        self
    }

    /// Count the ok requests `judge` passes as goodput.
    pub fn with_judge(mut self, judge: Judge) -> Self {
        self.judge = Some(judge);
        self
    }

    /// Feed a live output.
    pub fn with_observer(mut self, o: Box<dyn Observer>) -> Self {
        self.observers.push(o);
        self
    }

    /// Add a script's custom metrics, sent on `rx`.
    pub fn with_custom(mut self, rx: mpsc::Receiver<Vec<CustomSample>>) -> Self {
        self.custom = Some(rx);
        self
    }

    /// Keep every request as a [`Sample`].
    pub fn with_samples(mut self, keep: bool) -> Self {
        self.keep_samples = keep;
        self
    }

    pub async fn run(mut self) -> Collected {
        let mut t = Tally::default();
        // Kept on disk as the run goes (an hour's soak holds its memory flat).
        let mut closed: crate::spool::Spool<WindowSummary> = Default::default();
        // Close window k-1 a little after second k, so records of requests
        // that ended just before the boundary are in.
        let mut next_close = 1u64;
        let origin = self.origin;
        let tick_at = move |k: u64| origin + Duration::from_secs(k) + Duration::from_millis(100);
        let mut tick = Box::pin(tokio::time::sleep_until(tick_at(next_close).into()));
        let mut drain = tokio::time::interval(Duration::from_millis(20));
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let close = tokio::select! {
                _ = drain.tick() => false,
                _ = &mut tick => true,
            };
            // The gauges describe the second they were read in: sampled
            // every tick, averaged per window.
            let now_sec = tokio::time::Instant::now()
                .saturating_duration_since(self.origin.into())
                .as_secs();
            if now_sec + 1 >= next_close {
                let w = t.open.entry(now_sec).or_default();
                w.vus_sum += self.gauges.active_vus.load(Ordering::Relaxed);
                w.in_flight_sum += self.gauges.in_flight.load(Ordering::Relaxed);
                w.samples += 1;
            }
            let disconnected = self.take_records(&mut t, next_close - 1);
            self.take_custom(&mut t, now_sec.max(next_close - 1));
            if close {
                let w = t.open.remove(&(next_close - 1));
                let summary = self.close_window(next_close - 1, w);
                for o in &mut self.observers {
                    o.window(&summary, &t.total);
                }
                closed.push(summary);
                next_close += 1;
                tick.as_mut().reset(tick_at(next_close).into());
            }
            if disconnected {
                break;
            }
        }
        // The channel closed: every request has been recorded. Close the rest.
        let end_sec = self.origin.elapsed().as_secs();
        self.take_custom(&mut t, end_sec.max(next_close - 1));
        while next_close - 1 <= end_sec || !t.open.is_empty() {
            let w = t.open.remove(&(next_close - 1));
            let s = self.close_window(next_close - 1, w);
            // The last, partial second is kept only when something happened in it.
            if next_close - 1 < end_sec || s.requests > 0 {
                for o in &mut self.observers {
                    o.window(&s, &t.total);
                }
                closed.push(s);
            }
            next_close += 1;
        }
        let mut outputs = Vec::new();
        for o in std::mem::take(&mut self.observers) {
            outputs.extend(o.finish(self.finish_wait).await);
        }
        Collected {
            samples: t.samples,
            total: t.total,
            windows: closed.into_vec(),
            by_group: t.by_group,
            by_stage: t.by_stage,
            outputs,
            steady: self.plateau.take().map(Plateau::finish),
        }
    }

    /// Every record waiting, into the tally; `oldest` is the oldest window
    /// still open. True when the channel has closed (every sender gone).
    fn take_records(&mut self, t: &mut Tally, oldest: u64) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(r) => self.record(t, &r, oldest),
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// One request: to the live outputs, the total, its group, stage and
    /// window. A side request (a group of its own) counts in its group only.
    fn record(&mut self, t: &mut Tally, r: &RequestRecord, oldest: u64) {
        for o in &mut self.observers {
            o.record(r);
        }
        if r.group.as_ref().is_some_and(Group::is_side) {
            if let Some(g) = &r.group {
                t.by_group
                    .entry(g.clone())
                    .or_default()
                    .add_judged(r, true, r.is_ok());
            }
            return;
        }
        let open_model = self.open_model;
        let good = r.is_ok() && self.judge.as_ref().is_none_or(|j| j(r));
        if self.keep_samples {
            t.samples.push(Sample::of(r, open_model));
        }
        t.total.add_judged(r, open_model, good);
        if let Some(g) = &r.group {
            t.by_group
                .entry(g.clone())
                .or_default()
                .add_judged(r, open_model, good);
        }
        if let Some(a) = &r.adapter {
            t.by_group
                .entry(Group::Adapter(a.clone()))
                .or_default()
                .add_judged(r, open_model, good);
        }
        t.by_stage
            .entry(r.stage)
            .or_default()
            .add_judged(r, open_model, good);
        // A record for an already-closed second goes into the oldest open one.
        let sec = (r.end_us / 1_000_000).max(oldest);
        t.open
            .entry(sec)
            .or_default()
            .agg
            .add_judged(r, open_model, good);
    }

    /// Summarize window `t` and show it to the plateau.
    fn close_window(&mut self, t: u64, w: Option<OpenWindow>) -> WindowSummary {
        let w = w.unwrap_or_default();
        if let Some(p) = &mut self.plateau {
            let mean = |sum: u64, now: &std::sync::atomic::AtomicU64| match w.samples {
                0 => now.load(Ordering::Relaxed) as f64,
                n => sum as f64 / n as f64,
            };
            let e2e = w.agg.hist.get("e2e").filter(|h| !h.is_empty());
            p.window(
                WindowLoad {
                    t,
                    in_flight: mean(w.in_flight_sum, &self.gauges.in_flight),
                    vus: mean(w.vus_sum, &self.gauges.active_vus),
                    mean_e2e_s: e2e.map(|h| h.mean() / 1e6),
                    completed: w.agg.requests as f64,
                },
                &w.agg,
            );
        }
        self.summarize(t, Some(w))
    }

    /// A script's custom metrics sent so far, into the total and the window
    /// of second `sec`.
    fn take_custom(&self, t: &mut Tally, sec: u64) {
        let Some(rx) = &self.custom else {
            return;
        };
        let w = &mut t.open.entry(sec).or_default().agg;
        for c in rx.try_iter().flatten() {
            t.total.custom.add(&c);
            w.custom.add(&c);
        }
    }

    fn summarize(&self, t: u64, w: Option<OpenWindow>) -> WindowSummary {
        let w = w.unwrap_or_default();
        // The mean of the window's samples; the gauge now, when none was
        // taken in it (a window closed late).
        let gauge = |sum: u64, now: &std::sync::atomic::AtomicU64| match w.samples {
            0 => now.load(Ordering::Relaxed),
            n => (sum + n / 2) / n,
        };
        let active_vus = gauge(w.vus_sum, &self.gauges.active_vus);
        let in_flight = gauge(w.in_flight_sum, &self.gauges.in_flight);
        let agg = w.agg;
        let empty = histogram();
        let h = |m: &str| agg.hist.get(m).unwrap_or(&empty);
        WindowSummary {
            t,
            requests: agg.requests,
            ok: agg.ok,
            errors: agg.errors,
            output_tokens: agg.output_tokens,
            input_tokens: agg.input_tokens,
            active_vus,
            in_flight,
            ttft_p50: p(h("ttft"), 0.5),
            ttft_p95: p(h("ttft"), 0.95),
            ttft_p99: p(h("ttft"), 0.99),
            itl_p50: p(h("itl"), 0.5),
            itl_p95: p(h("itl"), 0.95),
            itl_p99: p(h("itl"), 0.99),
            tpot_p50: p(h("tpot"), 0.5),
            tpot_p95: p(h("tpot"), 0.95),
            tpot_p99: p(h("tpot"), 0.99),
            e2e_p50: p(h("e2e"), 0.5),
            e2e_p95: p(h("e2e"), 0.95),
            e2e_p99: p(h("e2e"), 0.99),
            reconnects: agg.reconnects,
            custom: agg
                .custom
                .metrics
                .iter()
                .filter_map(|(n, m)| CustomPoint::of(n, m))
                .collect(),
            payload_bytes: agg.payload.sent_bytes,
            wire_bytes: agg.payload.wire_bytes,
            spans: agg.payload.accepted_spans(),
            rejected_spans: agg.payload.rejected_spans,
            errors_by_class: agg
                .errors_by
                .iter()
                .fold(BTreeMap::new(), |mut m, ((c, _), n)| {
                    *m.entry(c.as_str().to_string()).or_default() += n;
                    m
                }),
            rss_mib: super::current_rss_mib(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn windows_cover_every_second_and_sum_to_the_total() {
        let origin = Instant::now();
        let (tx, rx) = mpsc::channel();
        let gauges = Arc::new(Gauges::default());
        let c = Collector::new(rx, origin, false, gauges);
        let task = tokio::spawn(c.run());
        for i in 0..30u64 {
            let mut r = RequestRecord::new(0, i * 100_000);
            r.end_us = i * 100_000 + 50_000;
            r.output_tokens = 2;
            tx.send(r).unwrap();
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        drop(tx);
        let out = task.await.unwrap();
        assert_eq!(out.total.requests, 30);
        let sum: u64 = out.windows.iter().map(|w| w.requests).sum();
        assert_eq!(sum, 30);
        assert!(out.windows.len() >= 3);
        assert_eq!(out.windows[0].t, 0);
        assert_eq!(out.windows[0].requests, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn gauges_describe_the_second_they_are_labelled_with() {
        let origin = Instant::now();
        let (tx, rx) = mpsc::channel::<RequestRecord>();
        let gauges = Arc::new(Gauges::default());
        gauges.active_vus.store(2, Ordering::Relaxed);
        let task = tokio::spawn(Collector::new(rx, origin, false, gauges.clone()).run());
        // 2 VUs until 3 s, then 20: the change lands after window 2 closed
        // its second but before the collector closes it (at 3.1 s).
        tokio::time::sleep_until((origin + Duration::from_secs(3)).into()).await;
        gauges.active_vus.store(20, Ordering::Relaxed);
        tokio::time::sleep_until((origin + Duration::from_millis(5500)).into()).await;
        drop(tx);
        let out = task.await.unwrap();
        let vus: Vec<u64> = out.windows.iter().map(|w| w.active_vus).collect();
        assert_eq!(&vus[..3], &[2, 2, 2], "{vus:?}");
        assert_eq!(vus[3], 20, "{vus:?}");
    }
}
