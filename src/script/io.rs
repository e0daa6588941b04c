//! What a VU's calls do: LLM calls sent by periscope's client (every LLM
//! metric measured as for the built-in workloads), k6/http requests sent
//! by a general HTTP client, metrics sent to the collector, and sleeps cut
//! short by the end of the run. A VU's thread blocks on each call, as a k6
//! VU does, while the request runs on one of the load's worker runtimes
//! (beside the built-in workloads' VUs, batched in their event loops): one
//! wake-up of the VU's thread per call, not one per streamed chunk.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, Expect, Prepared};
use crate::metrics::custom::{tagged, CustomSample, MetricKind};
use crate::metrics::Gauges;
use crate::record::{Group, Outcome, RequestRecord};
use crate::tokenizer::Tokenizer;

/// What an LLM call's body gets when it does not say.
#[derive(Debug, Clone)]
pub struct LlmDefaults {
    pub model: String,
    pub max_tokens: u32,
    pub stream: bool,
    pub stream_usage: bool,
    pub temperature: Option<f32>,
}

/// The run as every VU's native calls see it.
pub struct Io {
    /// The run's client (its connections kept per worker runtime).
    pub client: Arc<Client>,
    /// k6/http's client (any URL, the script's own headers).
    pub http: reqwest::Client,
    pub records: Sender<RequestRecord>,
    /// Custom metrics, a VU's batch at a time.
    pub custom: Sender<Vec<CustomSample>>,
    pub gauges: Arc<Gauges>,
    /// The stage a request sent at this many µs belongs to.
    pub stage_of: Box<dyn Fn(u64) -> u16 + Send + Sync>,
    /// Cancel what is in flight (the end of the run's grace, Ctrl-C twice).
    pub hard: CancellationToken,
    pub defaults: LlmDefaults,
    pub tokenizer: Arc<Tokenizer>,
    pub timeout: Duration,
}

impl Io {
    /// A failure outside any VU's iterations (setup, a VU that could not start).
    pub fn fail(&self, msg: String) {
        let _ = self.custom.send(vec![CustomSample::Failed(msg)]);
    }
}

/// One VU's side of the run: the worker runtime its requests run on, and
/// its metrics not yet sent.
pub struct VuIo {
    pub io: Arc<Io>,
    worker: tokio::runtime::Handle,
    pending: std::cell::RefCell<Vec<CustomSample>>,
}

impl Drop for VuIo {
    fn drop(&mut self) {
        self.flush();
    }
}

impl VuIo {
    pub fn new(io: Arc<Io>, worker: tokio::runtime::Handle) -> VuIo {
        VuIo {
            io,
            worker,
            pending: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Run the future `make` makes on the VU's worker runtime and wait for
    /// it; None when the run's hard stop came first. The future is made and
    /// boxed there: a request's state (tens of KB) never passes through
    /// this thread's stack, so a VU's stack stays a few pages.
    fn wait<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
        &self,
        make: impl FnOnce() -> F + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let hard = self.io.hard.clone();
        self.worker.spawn(async move {
            let fut = Box::pin(make());
            tokio::select! {
                biased;
                _ = hard.cancelled() => {}
                r = fut => { let _ = tx.send(r); }
            }
        });
        rx.blocking_recv().ok()
    }

    /// Send the metrics added so far to the collector.
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if !batch.is_empty() {
            let _ = self.io.custom.send(batch);
        }
    }

    /// A failed iteration (its message and line).
    pub fn failed(&self, msg: String) {
        self.pending.borrow_mut().push(CustomSample::Failed(msg));
    }

    /// Add a value to a metric, and to its tagged sub-metric when tagged.
    pub fn metric(
        &self,
        kind: MetricKind,
        name: &str,
        value: f64,
        tags: &[(String, String)],
        time: bool,
    ) {
        let send = |name: String| {
            self.pending.borrow_mut().push(CustomSample::Value {
                name,
                kind,
                value,
                time,
            });
        };
        send(name.to_string());
        if !tags.is_empty() {
            send(tagged(name, tags));
        }
    }

    /// Sleep, or less when the run is cut.
    pub fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.io.hard.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Send `req` with the run's client, record it, and count it in k6's
    /// `http_*` metrics. The prompt's `texts` are counted on the worker
    /// (the tokenizer's caches stay on its few threads, not one per VU).
    fn send(&self, mut req: Prepared, texts: Vec<String>) -> RequestRecord {
        let io = self.io.clone();
        io.gauges.in_flight.fetch_add(1, Ordering::Relaxed);
        let client = io.client.clone();
        let tokenizer = io.tokenizer.clone();
        let start = client.now_us();
        let mut rec = self
            .wait(move || async move {
                req.prompt_tokens = texts.iter().map(|t| tokenizer.count_prompt(t)).sum();
                client.send(&req, None).await
            })
            .unwrap_or_else(|| {
                let mut r = RequestRecord::new(start, start);
                r.end_us = io.client.now_us();
                r.outcome = Outcome::Interrupted;
                r
            });
        io.gauges.in_flight.fetch_sub(1, Ordering::Relaxed);
        rec.stage = (io.stage_of)(rec.scheduled_us);
        self.k6_http(&rec);
        rec
    }

    fn k6_http(&self, rec: &RequestRecord) {
        if rec.outcome == Outcome::Interrupted {
            return;
        }
        self.metric(MetricKind::Counter, "http_reqs", 1.0, &[], false);
        let ms = rec.e2e_us() as f64 / 1000.0;
        self.metric(MetricKind::Trend, "http_req_duration", ms, &[], true);
        let failed = if rec.is_ok() { 0.0 } else { 1.0 };
        self.metric(MetricKind::Rate, "http_req_failed", failed, &[], false);
    }

    /// An LLM call of `kind` (chat, complete, embed, responses, messages)
    /// with the script's body; the answer as JSON for the script.
    pub fn llm(&self, kind: &str, body: &str) -> Result<String, String> {
        let mut b: Map<String, Value> = serde_json::from_str(body)
            .map_err(|e| format!("periscope.{kind}(): the body is not a JSON object: {e}"))?;
        let d = &self.io.defaults;
        b.entry("model").or_insert_with(|| json!(d.model));
        let (path, expect, max_key) = match kind {
            "chat" => ("chat/completions", Expect::Completion, Some("max_tokens")),
            "complete" => ("completions", Expect::Completion, Some("max_tokens")),
            "responses" => ("responses", Expect::Responses, Some("max_output_tokens")),
            "messages" => ("messages", Expect::Messages, Some("max_tokens")),
            "embed" => ("embeddings", Expect::Embeddings, None),
            _ => return Err(format!("unknown LLM call '{kind}'")),
        };
        let mut texts = Vec::new();
        let mut messages = 0u32;
        match kind {
            "chat" | "messages" => {
                let Some(list) = b.get("messages").and_then(Value::as_array) else {
                    return Err(format!(
                        "periscope.{kind}(): give messages: [{{role: 'user', content: '…'}}] (or a string)"
                    ));
                };
                messages = list.len() as u32;
                for m in list {
                    collect_text(m.get("content"), &mut texts);
                }
                if let Some(s) = b.get("system") {
                    collect_text(Some(s), &mut texts);
                }
            }
            "complete" => collect_text(b.get("prompt"), &mut texts),
            "responses" => {
                collect_text(b.get("input"), &mut texts);
                collect_text(b.get("instructions"), &mut texts);
            }
            _ => collect_text(b.get("input"), &mut texts),
        }
        let mut stream = false;
        if let Some(key) = max_key {
            b.entry(key).or_insert_with(|| json!(d.max_tokens));
            stream = *b.entry("stream").or_insert(json!(d.stream)) == json!(true);
            if let Some(t) = d.temperature {
                b.entry("temperature").or_insert_with(|| json!(t));
            }
            if stream && d.stream_usage && matches!(kind, "chat" | "complete") {
                b.entry("stream_options")
                    .or_insert_with(|| json!({"include_usage": true}));
            }
        }
        let inputs = match b.get("input") {
            Some(Value::Array(a)) if kind == "embed" => a.len() as u32,
            _ => 1,
        };
        let mut req = Prepared::post(
            path,
            serde_json::to_vec(&b).unwrap_or_default().into(),
            expect,
        );
        req.stream = stream;
        if kind == "chat" {
            req.framing = crate::tokenizer::chat_framing(messages);
        }
        req.texts = if kind == "embed" { inputs } else { 0 };
        req.keep_text = true;
        let mut rec = self.send(req, texts);
        let answer = json!({
            "ok": rec.is_ok(),
            "status": rec.status,
            "content": rec.output_text.take().unwrap_or_default(),
            "reasoning": rec.reasoning_text.take().unwrap_or_default(),
            "tool_calls": rec.tool_calls.iter().map(|t| json!({"id": t.id, "name": t.name, "arguments": t.arguments})).collect::<Vec<_>>(),
            "usage": {
                "input_tokens": rec.input_tokens,
                "output_tokens": rec.output_tokens,
                "reasoning_tokens": rec.reasoning_tokens,
            },
            "ttft_ms": rec.ttft_us.map(|u| u as f64 / 1000.0),
            "e2e_ms": rec.e2e_us() as f64 / 1000.0,
            "error": rec.error_message.clone(),
            "error_class": match rec.outcome {
                Outcome::Error(c) => Some(c.as_str()),
                _ => None,
            },
        });
        rec.tool_calls.clear();
        let _ = self.io.records.send(rec);
        Ok(answer.to_string())
    }

    /// A k6/http request: any method and URL, the script's headers; the
    /// response in k6's shape.
    pub fn http(
        &self,
        method: &str,
        url: &str,
        body: Option<String>,
        params: &str,
    ) -> Result<String, String> {
        let p: Value = serde_json::from_str(params).unwrap_or(json!({}));
        let m = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("http.request: bad method '{method}'"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("http: bad URL '{url}': {e}"))?;
        let timeout = match p.get("timeout").and_then(Value::as_str) {
            Some(t) => parse_timeout(t)?,
            None => self.io.timeout,
        };
        let mut rb = self.io.http.request(m, parsed.clone()).timeout(timeout);
        if let Some(h) = p.get("headers").and_then(Value::as_object) {
            for (k, v) in h {
                rb = rb.header(
                    k.as_str(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                );
            }
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let label = p
            .pointer("/tags/name")
            .and_then(Value::as_str)
            .map_or_else(|| parsed.path().to_string(), str::to_string);
        let mut rec = RequestRecord::new(0, 0);
        rec.path = parsed.path().to_string().into();
        rec.group = Some(Group::Endpoint(format!("{method} {label}").into()));
        self.io.gauges.in_flight.fetch_add(1, Ordering::Relaxed);
        let client = self.io.client.clone();
        rec.start_us = client.now_us();
        rec.scheduled_us = rec.start_us;
        let outcome = self.wait(move || async move {
            let start = Instant::now();
            let resp = rb.send().await?;
            let status = resp.status().as_u16();
            let headers: Map<String, Value> = resp
                .headers()
                .iter()
                .map(|(k, v)| (canonical(k.as_str()), json!(v.to_str().unwrap_or(""))))
                .collect();
            let waiting = start.elapsed();
            let text = resp.text().await?;
            Ok::<_, reqwest::Error>((status, headers, text, waiting, client.now_us()))
        });
        self.io.gauges.in_flight.fetch_sub(1, Ordering::Relaxed);
        rec.end_us = match &outcome {
            Some(Ok((.., end))) => *end,
            _ => self.io.client.now_us(),
        };
        let duration_ms = (rec.end_us - rec.start_us) as f64 / 1000.0;
        rec.stage = (self.io.stage_of)(rec.start_us);
        let answer = match outcome {
            None => {
                rec.outcome = Outcome::Interrupted;
                json!({"status": 0, "body": "", "headers": {}, "error": "interrupted", "url": url, "timings": {"duration": duration_ms}})
            }
            Some(Ok((status, headers, text, waiting, _))) => {
                rec.status = Some(status);
                if status >= 400 {
                    rec.outcome = Outcome::Error(crate::record::ErrorClass::from_status(status));
                    rec.error_message = Some(crate::client::parse::error_message(text.as_bytes()));
                }
                json!({
                    "status": status, "body": text, "headers": headers, "url": url, "error": "",
                    "timings": {"duration": duration_ms, "waiting": waiting.as_secs_f64() * 1000.0},
                })
            }
            Some(Err(e)) => {
                let class = if e.is_timeout() {
                    crate::record::ErrorClass::Timeout
                } else if e.is_connect() {
                    crate::record::ErrorClass::Connect
                } else {
                    crate::record::ErrorClass::StreamCut
                };
                let msg = crate::client::error_chain(&e);
                rec.outcome = Outcome::Error(class);
                rec.error_message = Some(msg.clone());
                json!({"status": 0, "body": "", "headers": {}, "url": url, "error": msg, "timings": {"duration": duration_ms}})
            }
        };
        self.k6_http(&rec);
        let _ = self.io.records.send(rec);
        Ok(answer.to_string())
    }
}

/// `Content-Type`, as k6 names a response's headers.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// k6's timeout param: `"60s"`, `"500ms"` or a number of ms.
fn parse_timeout(t: &str) -> Result<Duration, String> {
    if let Ok(ms) = t.trim().parse::<f64>() {
        return Ok(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    crate::values::parse_duration(t).map_err(|e| format!("http timeout '{t}': {e}"))
}

/// The texts of a message's content: a string, or its parts' `text`.
fn collect_text(v: Option<&Value>, out: &mut Vec<String>) {
    match v {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(parts)) => {
            for p in parts {
                match p {
                    Value::String(s) => out.push(s.clone()),
                    Value::Object(o) => {
                        collect_text(o.get("text"), out);
                        collect_text(o.get("content"), out);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// `periscope.dataset(name, {label, limit, shuffle_seed, category})`: the
/// cases of a built-in suite (`core`, `external`, `all`) or a file (next to
/// the script), as JSON.
pub fn dataset(dir: &std::path::Path, name: &str, opts: &str) -> Result<String, String> {
    let o: Value = serde_json::from_str(opts).unwrap_or(json!({}));
    let builtin = matches!(name, "core" | "external" | "all");
    let sel = crate::dataset::Selection {
        file: (!builtin).then(|| dir.join(name).to_string_lossy().to_string()),
        suite: builtin.then(|| name.to_string()),
        label: o
            .get("label")
            .and_then(|l| serde_json::from_value(l.clone()).ok()),
        category_contains: o
            .get("category")
            .and_then(Value::as_str)
            .map(str::to_string),
        subcategory_contains: o
            .get("subcategory")
            .and_then(Value::as_str)
            .map(str::to_string),
        limit: o.get("limit").and_then(Value::as_u64),
        shuffle_seed: o.get("shuffle_seed").and_then(Value::as_u64),
    };
    let cases = sel.load().map_err(|e| format!("dataset('{name}'): {e}"))?;
    serde_json::to_string(&cases).map_err(|e| e.to_string())
}
