//! `--trace-requests`: every request of a run becomes an OpenTelemetry
//! client span, exported over OTLP/HTTP (or gRPC, `--otlp-protocol grpc`)
//! to the URL given.
//!
//! The client gives each request a trace and span id and sends them as a
//! W3C `traceparent` header, so the server's own spans join the client's.
//! When the request's record reaches the collector it is turned into a span
//! (GenAI conventions: operation, model, tokens, the first token as an
//! event, status), batched, and handed to an export task. Like the live
//! outputs, a slow or absent trace backend costs dropped spans (counted),
//! never the run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span, Status};
use tokio::sync::mpsc;

use crate::otlp::gen::{d, export_request, i, s};
use crate::otlp::{Dress, Platform};
use crate::record::{Outcome, RequestRecord};
use crate::sink::{Counters, SinkReport};

/// Spans per export.
const BATCH: usize = 512;
/// Batches waiting for the export task before new ones are dropped.
const QUEUE: usize = 64;
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where request spans go, and how they are dressed.
#[derive(Debug, Clone)]
pub struct TraceTarget {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub dress: Dress,
    /// Export calls over gRPC.
    pub grpc: bool,
}

impl TraceTarget {
    /// `--trace-requests URL` (a URL with no path gets `/v1/traces`; over
    /// gRPC the origin of the calls), with the platform's headers and
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn resolve(
        url: &str,
        platform: Platform,
        project: Option<String>,
        protocol: crate::otlp::Protocol,
    ) -> Result<TraceTarget, String> {
        let grpc = protocol == crate::otlp::Protocol::Grpc;
        if protocol == crate::otlp::Protocol::HttpJson {
            return Err(
                "--trace-requests exports protobuf: use --otlp-protocol http/protobuf or grpc"
                    .into(),
            );
        }
        let url = crate::otlp::traces_url(Some(url), None, grpc)
            .map_err(|e| format!("--trace-requests: {e}"))?;
        let project = crate::otlp::project_name(project, platform);
        let headers = crate::otlp::export_headers(platform, &project, false)?;
        Ok(TraceTarget {
            url,
            headers,
            dress: Dress {
                platform,
                service_name: std::env::var("OTEL_SERVICE_NAME")
                    .ok()
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| "periscope".into()),
                project,
            },
            grpc,
        })
    }

    /// How the target shows in the result: no credentials, no query.
    pub fn label(&self) -> String {
        let shown = crate::endpoint::shown(&self.url);
        match self.grpc {
            true => format!("trace-requests={shown} (gRPC)"),
            false => format!("trace-requests={shown}"),
        }
    }
}

/// What every span of the run says about it.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub model: String,
    pub run_id: String,
    pub scenario: String,
    pub workload: String,
    /// The target's host and port (`server.address`, `server.port`).
    pub server: Option<(String, u16)>,
    pub max_tokens: Option<u32>,
    /// This process's segment of the plan (`--segment i/n`).
    pub segment: Option<String>,
}

/// The collector's side: turns records into spans and hands batches to the
/// export task.
pub struct Tracer {
    tx: mpsc::Sender<Vec<Span>>,
    pending: Vec<Span>,
    run: RunContext,
    dress: Dress,
    origin_ns: u64,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<Option<String>>,
    label: String,
}

impl Tracer {
    /// Start the export task. `origin` is the wall-clock time of the run's
    /// origin instant, from which records count their microseconds.
    pub fn start(target: &TraceTarget, run: RunContext, origin: SystemTime) -> Tracer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let label = target.label();
        let task = tokio::spawn(export_loop(
            target.clone(),
            label.clone(),
            rx,
            counters.clone(),
        ));
        Tracer {
            tx,
            pending: Vec::with_capacity(BATCH),
            run,
            dress: target.dress.clone(),
            origin_ns: origin
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            counters,
            task,
            label,
        }
    }

    /// The span of a traced request (records without ids are skipped).
    pub fn record(&mut self, r: &RequestRecord) {
        if let Some(span) = span_of(r, &self.run, self.dress.platform, self.origin_ns) {
            self.pending.push(span);
            if self.pending.len() >= BATCH {
                self.flush();
            }
        }
    }

    /// Hand the pending spans to the export task; a full queue drops them.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH));
        let n = batch.len() as u64;
        if self.tx.try_send(batch).is_err() {
            self.counters.dropped.fetch_add(n, Ordering::Relaxed);
            super::warn_once(&self.label, "it does not keep up (its queue is full)");
        }
    }

    /// Export what is left and wait (up to `wait`) for the exports to end.
    pub async fn finish(mut self, wait: Duration) -> SinkReport {
        self.flush();
        drop(self.tx);
        super::report_of_task(
            self.label,
            self.task,
            &self.counters,
            wait,
            ("exporter", "exporting"),
        )
        .await
    }
}

impl crate::metrics::Observer for Tracer {
    fn record(&mut self, r: &RequestRecord) {
        // Trace queries are the side load, not the requests under test.
        if !r.group.as_ref().is_some_and(crate::record::Group::is_side) {
            Tracer::record(self, r);
        }
    }

    fn window(&mut self, _w: &crate::metrics::WindowSummary, _t: &crate::metrics::Aggregate) {
        self.flush();
    }

    fn finish(self: Box<Self>, wait: Duration) -> crate::metrics::live::Finish {
        Box::pin(async move { vec![Tracer::finish(*self, wait).await] })
    }
}

/// The GenAI operation of an API path, and its OpenInference span kind.
fn operation(path: &str) -> Option<(&'static str, &'static str)> {
    match path.trim_start_matches('/').trim_start_matches("v1/") {
        "chat/completions" => Some(("chat", "LLM")),
        "completions" => Some(("text_completion", "LLM")),
        "embeddings" => Some(("embeddings", "EMBEDDING")),
        _ => None,
    }
}

/// One request as a client span, following the GenAI semantic conventions.
pub fn span_of(
    r: &RequestRecord,
    run: &RunContext,
    platform: Platform,
    origin_ns: u64,
) -> Option<Span> {
    let ids = r.trace?;
    let at = |us: u64| origin_ns + us * 1_000;
    let op = operation(&r.path);
    let name = match op {
        Some((o, _)) => format!("{o} {}", run.model),
        None => format!("HTTP {}", r.path),
    };
    let mut a = Vec::with_capacity(24);
    if let Some((o, _)) = op {
        a.push(s("gen_ai.operation.name", o));
        a.push(s("gen_ai.provider.name", "openai"));
        a.push(s("gen_ai.system", "openai"));
        a.push(s("gen_ai.request.model", run.model.clone()));
        if let (Some(m), true) = (run.max_tokens, o != "embeddings") {
            a.push(i("gen_ai.request.max_tokens", m as i64));
        }
        a.push(i("gen_ai.usage.input_tokens", r.input_tokens as i64));
        if r.is_ok() && o != "embeddings" {
            a.push(i("gen_ai.usage.output_tokens", r.output_tokens as i64));
        }
    }
    a.push(s("url.path", r.path.to_string()));
    if let Some((host, port)) = &run.server {
        a.push(s("server.address", host.clone()));
        a.push(i("server.port", *port as i64));
    }
    if let Some(st) = r.status {
        a.push(i("http.response.status_code", st as i64));
    }
    a.push(s("periscope.run_id", run.run_id.clone()));
    if let Some(seg) = &run.segment {
        a.push(s("periscope.segment", seg.clone()));
    }
    a.push(s("periscope.scenario", run.scenario.clone()));
    a.push(s("periscope.workload", run.workload.clone()));
    a.push(i("periscope.stage", r.stage as i64));
    if let Some(g) = &r.group {
        a.push(s(&format!("periscope.{}", g.kind()), g.label()));
    }
    let lag = r.start_us.saturating_sub(r.scheduled_us);
    if lag > 0 {
        a.push(d("periscope.schedule_lag_ms", lag as f64 / 1e3));
    }
    if let Some(t) = r.ttft_us {
        a.push(d("periscope.ttft_ms", t as f64 / 1e3));
    }
    if let Some(t) = r.tpot_us() {
        a.push(d("periscope.tpot_ms", t as f64 / 1e3));
    }
    if platform == Platform::Phoenix {
        if let Some((_, kind)) = op {
            a.push(s("openinference.span.kind", kind));
            a.push(s("llm.model_name", run.model.clone()));
            a.push(i("llm.token_count.prompt", r.input_tokens as i64));
            if r.is_ok() {
                a.push(i("llm.token_count.completion", r.output_tokens as i64));
                a.push(i(
                    "llm.token_count.total",
                    (r.input_tokens + r.output_tokens) as i64,
                ));
            }
        }
    }
    let status = match r.outcome {
        // Client spans of successful calls leave the status unset.
        Outcome::Ok => Status::default(),
        Outcome::Interrupted => {
            a.push(s("error.type", "cancelled"));
            Status {
                message: "cancelled at the end of the run".into(),
                code: StatusCode::Error as i32,
            }
        }
        Outcome::Error(class) => {
            a.push(s("error.type", class.as_str()));
            // The class and status only: a server's message may echo secrets.
            Status {
                message: match r.status {
                    Some(st) => format!("{} ({st})", class.as_str()),
                    None => class.as_str().to_string(),
                },
                code: StatusCode::Error as i32,
            }
        }
    };
    let events = r
        .ttft_us
        .map(|t| Event {
            time_unix_nano: at(r.start_us + t),
            name: "gen_ai.content.first_token".into(),
            attributes: vec![d("gen_ai.response.time_to_first_token", t as f64 / 1e6)],
            dropped_attributes_count: 0,
        })
        .into_iter()
        .collect();
    Some(Span {
        trace_id: ids.trace_id.to_be_bytes().to_vec(),
        span_id: ids.span_id.to_be_bytes().to_vec(),
        name,
        kind: SpanKind::Client as i32,
        start_time_unix_nano: at(r.start_us),
        end_time_unix_nano: at(r.end_us.max(r.start_us)),
        attributes: a,
        events,
        status: Some(status),
        flags: 0x101, // sampled; the parent (none) known to be local
        ..Default::default()
    })
}

/// How batches go out: an OTLP/HTTP POST or an OTLP/gRPC call.
enum Sender {
    Http(reqwest::Client),
    Grpc(Box<crate::client::grpc::Exporter>),
}

impl Sender {
    fn new(target: &TraceTarget) -> Result<Sender, String> {
        if target.grpc {
            let e = crate::client::grpc::Exporter::new(
                &target.url,
                &target.headers,
                EXPORT_TIMEOUT,
                1,
                None,
            )?;
            return Ok(Sender::Grpc(Box::new(e)));
        }
        crate::client::http_builder()
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map(Sender::Http)
            .map_err(|e| format!("cannot build the HTTP client: {e}"))
    }

    /// Export one gzipped batch: the spans the backend rejected, or why
    /// none was taken.
    async fn send(&self, target: &TraceTarget, body: bytes::Bytes) -> Result<u64, String> {
        match self {
            Sender::Http(client) => {
                let mut post = client.post(&target.url).body(body);
                for (k, v) in &target.headers {
                    post = post.header(k, v);
                }
                match post.send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let body = resp.bytes().await.unwrap_or_default();
                        Ok(crate::client::parse::rejected_spans(&body))
                    }
                    Ok(resp) => Err(super::refusal(resp).await),
                    Err(e) => Err(crate::client::error_chain(&e)),
                }
            }
            Sender::Grpc(exporter) => {
                match tokio::time::timeout(EXPORT_TIMEOUT, exporter.export(body)).await {
                    Ok((_, Ok(answer))) => Ok(answer.rejected_spans),
                    Ok((_, Err((class, msg)))) => Err(format!("{}: {msg}", class.as_str())),
                    Err(_) => Err(format!("no answer within {EXPORT_TIMEOUT:?}")),
                }
            }
        }
    }
}

async fn export_loop(
    target: TraceTarget,
    label: String,
    mut rx: mpsc::Receiver<Vec<Span>>,
    counters: Arc<Counters>,
) -> Option<String> {
    let sender = match Sender::new(&target) {
        Ok(s) => s,
        Err(e) => return Some(e),
    };
    let mut first_error: Option<String> = None;
    while let Some(spans) = rx.recv().await {
        let n = spans.len() as u64;
        let req = export_request(&target.dress, "periscope.requests", spans);
        let (body, _) = crate::otlp::encode(&req, false);
        let failure = match sender.send(&target, body).await {
            Ok(rejected) => {
                let rejected = rejected.min(n);
                counters.written.fetch_add(n - rejected, Ordering::Relaxed);
                counters.dropped.fetch_add(rejected, Ordering::Relaxed);
                (rejected > 0).then(|| format!("the backend rejected {rejected} of {n} spans"))
            }
            Err(msg) => {
                counters.dropped.fetch_add(n, Ordering::Relaxed);
                Some(msg)
            }
        };
        if let Some(msg) = failure {
            super::warn_once(&label, &format!("export failed ({msg})"));
            first_error.get_or_insert(msg);
        }
    }
    first_error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ErrorClass;
    use crate::record::TraceIds;
    use opentelemetry_proto::tonic::common::v1::any_value;

    fn run() -> RunContext {
        RunContext {
            model: "m1".into(),
            run_id: "r".into(),
            scenario: "load".into(),
            workload: "completions".into(),
            server: Some(("127.0.0.1".into(), 8089)),
            max_tokens: Some(32),
            segment: Some("2/4".into()),
        }
    }

    fn attr<'a>(sp: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        sp.attributes
            .iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    #[test]
    fn traceparent_is_w3c() {
        let ids = TraceIds {
            trace_id: 0x4bf92f3577b34da6a3ce929d0e0e4736,
            span_id: 0x00f067aa0ba902b7,
        };
        assert_eq!(
            ids.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let r = TraceIds::random();
        assert!(r.trace_id != 0 && r.span_id != 0);
    }

    #[test]
    fn a_streamed_chat_is_a_client_span_with_its_first_token_event() {
        let mut r = RequestRecord::new(1_000, 1_500);
        r.end_us = 201_500;
        r.ttft_us = Some(50_000);
        r.input_tokens = 12;
        r.output_tokens = 9;
        r.status = Some(200);
        r.path = "chat/completions".into();
        r.trace = Some(TraceIds {
            trace_id: 7,
            span_id: 9,
        });
        let origin = 1_700_000_000_000_000_000;
        let sp = span_of(&r, &run(), Platform::Phoenix, origin).unwrap();
        assert_eq!(sp.name, "chat m1");
        assert_eq!(sp.kind, SpanKind::Client as i32);
        assert_eq!(sp.trace_id, 7u128.to_be_bytes().to_vec());
        assert_eq!(sp.span_id, 9u64.to_be_bytes().to_vec());
        assert_eq!(sp.start_time_unix_nano, origin + 1_500_000);
        assert_eq!(sp.end_time_unix_nano, origin + 201_500_000);
        assert_eq!(sp.events.len(), 1);
        assert_eq!(sp.events[0].name, "gen_ai.content.first_token");
        assert_eq!(sp.events[0].time_unix_nano, origin + 51_500_000);
        assert_eq!(
            attr(&sp, "gen_ai.operation.name"),
            Some(&any_value::Value::StringValue("chat".into()))
        );
        assert_eq!(
            attr(&sp, "gen_ai.usage.output_tokens"),
            Some(&any_value::Value::IntValue(9))
        );
        assert_eq!(
            attr(&sp, "openinference.span.kind"),
            Some(&any_value::Value::StringValue("LLM".into()))
        );
        assert_eq!(
            attr(&sp, "periscope.schedule_lag_ms"),
            Some(&any_value::Value::DoubleValue(0.5))
        );
        assert_eq!(
            attr(&sp, "periscope.segment"),
            Some(&any_value::Value::StringValue("2/4".into()))
        );
        assert_eq!(sp.status, Some(Status::default()));
    }

    #[test]
    fn a_failed_request_is_an_error_span_without_the_servers_message() {
        let mut r = RequestRecord::new(0, 0);
        r.path = "embeddings".into();
        r.status = Some(401);
        r.outcome = Outcome::Error(ErrorClass::Http4xx);
        r.error_message = Some("Incorrect API key provided: sk-abc".into());
        r.trace = Some(TraceIds::random());
        let sp = span_of(&r, &run(), Platform::Otlp, 0).unwrap();
        assert_eq!(sp.name, "embeddings m1");
        let st = sp.status.clone().unwrap();
        assert_eq!(st.code, StatusCode::Error as i32);
        assert_eq!(st.message, "http_4xx (401)");
        assert_eq!(
            attr(&sp, "error.type"),
            Some(&any_value::Value::StringValue("http_4xx".into()))
        );
        assert!(attr(&sp, "openinference.span.kind").is_none());
        assert!(attr(&sp, "gen_ai.usage.output_tokens").is_none());
        // An untraced record has no span.
        r.trace = None;
        assert!(span_of(&r, &run(), Platform::Otlp, 0).is_none());
    }

    #[test]
    fn targets_get_the_traces_path_and_hide_credentials() {
        let t = TraceTarget::resolve(
            "http://u:secret@127.0.0.1:6006",
            Platform::Otlp,
            None,
            Default::default(),
        )
        .unwrap();
        assert_eq!(t.url, "http://u:secret@127.0.0.1:6006/v1/traces");
        assert_eq!(t.label(), "trace-requests=http://127.0.0.1:6006/v1/traces");
        assert!(
            TraceTarget::resolve("127.0.0.1:6006", Platform::Otlp, None, Default::default())
                .unwrap_err()
                .contains("--trace-requests")
        );
    }
}
