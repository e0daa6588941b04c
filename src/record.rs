//! `RequestRecord`: the one thing that crosses from measuring to reporting.
//!
//! The client fills it in for each request; the executor adds the schedule;
//! the metrics collector aggregates it. Times are microseconds since the
//! run's origin instant.

use serde::{Deserialize, Serialize};

/// Why a request failed: the error classes the README's "What it reports" lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A 4xx answer other than 429.
    Http4xx,
    /// 429 Too Many Requests.
    Http429,
    /// A 5xx answer.
    Http5xx,
    /// The per-request timeout expired.
    Timeout,
    /// No connection: refused, unreachable, or not made in time.
    Connect,
    /// The target's name did not resolve.
    Dns,
    /// The connection closed (EOF or a reset) after the request was
    /// written, or while it was, and before any byte of an answer: not
    /// sent again, as the server may have started on it (a POST is not
    /// idempotent). The message says how far it got.
    ConnectionLost,
    /// The stream closed before a finish_reason or `[DONE]`.
    StreamCut,
    /// A 2xx answer whose body or a chunk of it is not what the API sends.
    BadBody,
    /// An `error` object arrived inside a 2xx stream.
    StreamError,
    // A gRPC call's status other than OK (an OTLP/gRPC export), by code.
    /// gRPC status 1, CANCELLED.
    GrpcCancelled,
    /// gRPC status 2, UNKNOWN.
    GrpcUnknown,
    /// gRPC status 3, INVALID_ARGUMENT.
    GrpcInvalidArgument,
    /// gRPC status 4, DEADLINE_EXCEEDED.
    GrpcDeadlineExceeded,
    /// gRPC status 5, NOT_FOUND.
    GrpcNotFound,
    /// gRPC status 6, ALREADY_EXISTS.
    GrpcAlreadyExists,
    /// gRPC status 7, PERMISSION_DENIED.
    GrpcPermissionDenied,
    /// gRPC status 8, RESOURCE_EXHAUSTED.
    GrpcResourceExhausted,
    /// gRPC status 9, FAILED_PRECONDITION.
    GrpcFailedPrecondition,
    /// gRPC status 10, ABORTED.
    GrpcAborted,
    /// gRPC status 11, OUT_OF_RANGE.
    GrpcOutOfRange,
    /// gRPC status 12, UNIMPLEMENTED.
    GrpcUnimplemented,
    /// gRPC status 13, INTERNAL.
    GrpcInternal,
    /// gRPC status 14, UNAVAILABLE.
    GrpcUnavailable,
    /// gRPC status 15, DATA_LOSS.
    GrpcDataLoss,
    /// gRPC status 16, UNAUTHENTICATED.
    GrpcUnauthenticated,
}

/// The gRPC error classes, by code (1 to 16).
const GRPC: [ErrorClass; 16] = [
    ErrorClass::GrpcCancelled,
    ErrorClass::GrpcUnknown,
    ErrorClass::GrpcInvalidArgument,
    ErrorClass::GrpcDeadlineExceeded,
    ErrorClass::GrpcNotFound,
    ErrorClass::GrpcAlreadyExists,
    ErrorClass::GrpcPermissionDenied,
    ErrorClass::GrpcResourceExhausted,
    ErrorClass::GrpcFailedPrecondition,
    ErrorClass::GrpcAborted,
    ErrorClass::GrpcOutOfRange,
    ErrorClass::GrpcUnimplemented,
    ErrorClass::GrpcInternal,
    ErrorClass::GrpcUnavailable,
    ErrorClass::GrpcDataLoss,
    ErrorClass::GrpcUnauthenticated,
];

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http429 => "http_429",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect",
            ErrorClass::Dns => "dns",
            ErrorClass::ConnectionLost => "connection_lost",
            ErrorClass::StreamCut => "stream_cut",
            ErrorClass::BadBody => "bad_body",
            ErrorClass::StreamError => "stream_error",
            ErrorClass::GrpcCancelled => "grpc_cancelled",
            ErrorClass::GrpcUnknown => "grpc_unknown",
            ErrorClass::GrpcInvalidArgument => "grpc_invalid_argument",
            ErrorClass::GrpcDeadlineExceeded => "grpc_deadline_exceeded",
            ErrorClass::GrpcNotFound => "grpc_not_found",
            ErrorClass::GrpcAlreadyExists => "grpc_already_exists",
            ErrorClass::GrpcPermissionDenied => "grpc_permission_denied",
            ErrorClass::GrpcResourceExhausted => "grpc_resource_exhausted",
            ErrorClass::GrpcFailedPrecondition => "grpc_failed_precondition",
            ErrorClass::GrpcAborted => "grpc_aborted",
            ErrorClass::GrpcOutOfRange => "grpc_out_of_range",
            ErrorClass::GrpcUnimplemented => "grpc_unimplemented",
            ErrorClass::GrpcInternal => "grpc_internal",
            ErrorClass::GrpcUnavailable => "grpc_unavailable",
            ErrorClass::GrpcDataLoss => "grpc_data_loss",
            ErrorClass::GrpcUnauthenticated => "grpc_unauthenticated",
        }
    }

    /// The class of a gRPC status code other than OK (0); a code gRPC
    /// does not define counts as UNKNOWN, as gRPC's libraries read it.
    pub fn from_grpc(code: i32) -> Self {
        match code {
            1..=16 => GRPC[code as usize - 1],
            _ => ErrorClass::GrpcUnknown,
        }
    }

    /// The class of a non-2xx HTTP status.
    pub fn from_status(status: u16) -> Self {
        match status {
            429 => ErrorClass::Http429,
            500..=599 => ErrorClass::Http5xx,
            _ => ErrorClass::Http4xx,
        }
    }
}

/// A slice of the run that gets its own row in the report: a conversation
/// turn, an embeddings batch size, an HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// The n-th request (from 1) of a multi-turn session.
    Turn(u32),
    /// An embeddings request of this many inputs.
    Batch(u32),
    /// A plain HTTP endpoint, `METHOD /path`.
    Endpoint(std::sync::Arc<str>),
    /// A synthetic trace's scenario (`otlp-traces`).
    TraceScenario(std::borrow::Cow<'static, str>),
    /// A query template of the trace backend's query load (`otlp-traces
    /// --queries-per-s`): counted on its own, never in the run's totals.
    Query(std::sync::Arc<str>),
    /// A query template of a query-only run (`--test-type query`): the
    /// queries are the run, so they count in its totals too.
    QueryOnly(std::sync::Arc<str>),
    /// A LoRA adapter the request asked for (`--lora`): counted beside the
    /// request's own group.
    Adapter(std::sync::Arc<str>),
}

impl Group {
    /// The name of the column this group fills: `turn`, `batch`, `endpoint`.
    pub fn kind(&self) -> &'static str {
        match self {
            Group::Turn(_) => "turn",
            Group::Batch(_) => "batch",
            Group::Endpoint(_) => "endpoint",
            Group::TraceScenario(_) => "trace_scenario",
            Group::Query(_) | Group::QueryOnly(_) => "query",
            Group::Adapter(_) => "adapter",
        }
    }

    /// Requests of a side load (trace queries): they have their own table
    /// and stay out of the run's totals, windows and stages.
    pub fn is_side(&self) -> bool {
        matches!(self, Group::Query(_))
    }

    /// The group back from its `kind` and `label` (a result's rows).
    pub fn parse(kind: &str, label: &str) -> Option<Group> {
        match kind {
            "turn" => label.parse().ok().map(Group::Turn),
            "batch" => label.parse().ok().map(Group::Batch),
            "endpoint" => Some(Group::Endpoint(label.into())),
            "query" => Some(Group::Query(label.into())),
            "trace_scenario" => Some(Group::TraceScenario(label.to_string().into())),
            "adapter" => Some(Group::Adapter(label.into())),
            _ => None,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Group::Turn(n) | Group::Batch(n) => n.to_string(),
            Group::Endpoint(e) | Group::Query(e) | Group::QueryOnly(e) | Group::Adapter(e) => {
                e.to_string()
            }
            Group::TraceScenario(s) => s.to_string(),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error(ErrorClass),
    /// Cancelled at the end of the run or by Ctrl-C: neither ok nor an error.
    Interrupted,
}

/// Where a token count came from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's `usage` object.
    Usage,
    /// Counted locally with the tokenizer.
    #[default]
    Tokenizer,
    /// The number of output-carrying chunks.
    Chunks,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::Tokenizer => "tokenizer",
            TokenSource::Chunks => "chunks",
        }
    }
}

/// What a request carried, for workloads that send data rather than ask
/// for it (`otlp-traces`); summed over many requests in an aggregate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Encoded payload bytes, before compression (every request sent).
    pub sent_bytes: u64,
    /// Bytes on the wire, after compression (every request sent).
    pub wire_bytes: u64,
    /// Spans of accepted exports.
    pub spans: u64,
    /// Spans the backend said it rejected (OTLP partial success).
    pub rejected_spans: u64,
    /// Model tokens the accepted traces record.
    pub tokens: u64,
}

impl Payload {
    pub fn is_empty(&self) -> bool {
        *self == Payload::default()
    }

    pub fn add(&mut self, o: &Payload) {
        self.sent_bytes += o.sent_bytes;
        self.wire_bytes += o.wire_bytes;
        self.spans += o.spans;
        self.rejected_spans += o.rejected_spans;
        self.tokens += o.tokens;
    }

    /// Spans the backend kept.
    pub fn accepted_spans(&self) -> u64 {
        self.spans.saturating_sub(self.rejected_spans)
    }
}

/// What came back: answer bodies as the server sent them (`wire_bytes`,
/// compressed or not) and once decoded (`bytes`), and how many were
/// compressed; summed over many requests in an aggregate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// Body bytes, decoded.
    pub bytes: u64,
    /// Body bytes as they came over the connection.
    pub wire_bytes: u64,
    /// Answers with a `Content-Encoding` periscope decoded.
    pub compressed: u64,
}

impl Received {
    pub fn is_empty(&self) -> bool {
        *self == Received::default()
    }

    pub fn add(&mut self, o: &Received) {
        self.bytes += o.bytes;
        self.wire_bytes += o.wire_bytes;
        self.compressed += o.compressed;
    }
}

/// What a server reported about its own handling of one request:
/// llama.cpp's `timings`, the usage's cached prompt tokens, TGI's timing
/// headers. Each field is there only when the server sent it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerTiming {
    /// Prompt processing (prefill) of the tokens not in its cache, ms
    /// (llama.cpp `timings.prompt_ms`).
    pub prompt_ms: Option<f64>,
    /// Generating the answer's tokens, ms (llama.cpp `timings.predicted_ms`).
    pub decode_ms: Option<f64>,
    /// Waiting in its queue, ms (TGI `x-queue-time`).
    pub queue_ms: Option<f64>,
    /// The engine's whole time, ms (TGI `x-inference-time`).
    pub inference_ms: Option<f64>,
    /// Prompt tokens it processed (llama.cpp `timings.prompt_n`).
    pub prompt_tokens: Option<u32>,
    /// Prompt tokens it served from its cache (llama.cpp `timings.cache_n`,
    /// or `usage.prompt_tokens_details.cached_tokens`).
    pub cached_tokens: Option<u32>,
    /// Tokens it generated, by its own count (llama.cpp
    /// `timings.predicted_n`, TGI `x-generated-tokens`).
    pub output_tokens: Option<u32>,
}

impl ServerTiming {
    /// Fill what this one lacks from `o`.
    pub fn or(self, o: ServerTiming) -> ServerTiming {
        ServerTiming {
            prompt_ms: self.prompt_ms.or(o.prompt_ms),
            decode_ms: self.decode_ms.or(o.decode_ms),
            queue_ms: self.queue_ms.or(o.queue_ms),
            inference_ms: self.inference_ms.or(o.inference_ms),
            prompt_tokens: self.prompt_tokens.or(o.prompt_tokens),
            cached_tokens: self.cached_tokens.or(o.cached_tokens),
            output_tokens: self.output_tokens.or(o.output_tokens),
        }
    }
}

/// The ids of one request's client span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceIds {
    /// Fresh random ids (never the all-zero ids W3C calls invalid).
    pub fn random() -> Self {
        TraceIds {
            trace_id: fastrand::u128(1..),
            span_id: fastrand::u64(1..),
        }
    }

    /// The W3C `traceparent` header value, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }
}

/// A function call an answer asked for: the next turn of `tool-calls`
/// answers it with a tool result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// `id` in chat completions, `call_id` in the Responses API.
    pub id: String,
    pub name: String,
    /// The arguments, as the model wrote them (JSON text).
    pub arguments: String,
}

/// Everything measured about one request.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// When the request was meant to be sent (the open model's schedule;
    /// equal to `start_us` in the closed model).
    pub scheduled_us: u64,
    /// When it was actually sent.
    pub start_us: u64,
    /// When the response ended (or the request was given up).
    pub end_us: u64,
    /// Time waiting for an in-flight slot (`--max-in-flight`), µs.
    pub queue_wait_us: u64,
    /// Time to the first output-carrying chunk, from `start_us`.
    pub ttft_us: Option<u64>,
    /// Time to the first visible (non-reasoning) output, from `start_us`.
    pub ttfo_us: Option<u64>,
    /// Gaps between consecutive output-carrying chunks.
    pub itl_us: Vec<u32>,
    pub input_tokens: u32,
    pub input_source: TokenSource,
    pub output_tokens: u32,
    pub output_source: TokenSource,
    pub reasoning_tokens: Option<u32>,
    /// Pictures the request carried (`vision`).
    pub images: u32,
    /// What the usage's prompt tokens hold beyond the text's: the pictures'.
    pub image_tokens: Option<u32>,
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// The server's message, for failed requests.
    pub error_message: Option<String>,
    pub server_timing: Option<ServerTiming>,
    /// It found its kept-alive connection closed by the server before any
    /// byte of an answer, and went out again on a fresh one.
    pub reconnect: bool,
    /// The answer came over HTTP/2 (else HTTP/1.x, or no answer).
    pub http2: bool,
    /// The report row this request also counts in.
    pub group: Option<Group>,
    /// The LoRA adapter the request asked for (`--lora`).
    pub adapter: Option<std::sync::Arc<str>>,
    /// The request's body, kept for `--requests-text`.
    pub prompt: Option<bytes::Bytes>,
    /// The stage of the load shape the request was sent in.
    pub stage: u16,
    /// Inputs of an embeddings request.
    pub texts: u32,
    /// Length of the returned embedding vectors.
    pub dims: Option<u32>,
    /// The generated text, when the workload needs it for its next request
    /// (the answer, reasoning left out).
    pub output_text: Option<String>,
    /// The reasoning the answer came with, when the text is kept.
    pub reasoning_text: Option<String>,
    /// The function calls the answer asked for, when the workload keeps its
    /// text.
    pub tool_calls: Vec<ToolCall>,
    /// The answer's body (not streamed), when the workload asked for it.
    pub body: Option<bytes::Bytes>,
    /// The path the request was sent to.
    pub path: std::borrow::Cow<'static, str>,
    /// What it carried (`otlp-traces`).
    pub payload: Payload,
    /// Its answer's body, as sent and decoded.
    pub received: Received,
    /// Its client span's ids, sent as `traceparent` (`--trace-requests`).
    pub trace: Option<TraceIds>,
    /// The id of the trace an `otlp-traces` export carried.
    pub exported_trace: Option<[u8; 16]>,
}

impl RequestRecord {
    /// A record with nothing measured yet.
    pub fn new(scheduled_us: u64, start_us: u64) -> Self {
        RequestRecord {
            scheduled_us,
            start_us,
            end_us: start_us,
            queue_wait_us: 0,
            ttft_us: None,
            ttfo_us: None,
            itl_us: Vec::new(),
            input_tokens: 0,
            input_source: TokenSource::Tokenizer,
            output_tokens: 0,
            output_source: TokenSource::Tokenizer,
            reasoning_tokens: None,
            images: 0,
            image_tokens: None,
            status: None,
            outcome: Outcome::Ok,
            error_message: None,
            server_timing: None,
            reconnect: false,
            http2: false,
            group: None,
            adapter: None,
            prompt: None,
            stage: 0,
            texts: 0,
            dims: None,
            output_text: None,
            reasoning_text: None,
            tool_calls: Vec::new(),
            body: None,
            path: std::borrow::Cow::Borrowed(""),
            payload: Payload::default(),
            received: Received::default(),
            trace: None,
            exported_trace: None,
        }
    }

    /// Service time: actual send → end.
    pub fn e2e_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }

    /// Latency from the scheduled send time → end (no coordinated omission).
    pub fn latency_us(&self) -> u64 {
        self.end_us.saturating_sub(self.scheduled_us)
    }

    /// `(e2e − ttft) / (output_tokens − 1)`; undefined for one token.
    pub fn tpot_us(&self) -> Option<u64> {
        let ttft = self.ttft_us?;
        if self.output_tokens < 2 {
            return None;
        }
        Some(self.e2e_us().saturating_sub(ttft) / (self.output_tokens as u64 - 1))
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// ttft less the server's own prompt time: what the network, gateways
    /// and queues outside the engine added to the first token.
    pub fn ttft_outside_us(&self) -> Option<u64> {
        let ttft = self.ttft_us?;
        let prompt_ms = self.server_timing?.prompt_ms?;
        Some(ttft.saturating_sub((prompt_ms * 1000.0).round() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpot_follows_the_vllm_formula() {
        let mut r = RequestRecord::new(0, 0);
        r.end_us = 400_000;
        r.ttft_us = Some(100_000);
        r.output_tokens = 16;
        assert_eq!(r.tpot_us(), Some(20_000));
        r.output_tokens = 1;
        assert_eq!(r.tpot_us(), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        assert_eq!(ErrorClass::from_status(429), ErrorClass::Http429);
        assert_eq!(ErrorClass::from_status(503), ErrorClass::Http5xx);
        assert_eq!(ErrorClass::from_status(401), ErrorClass::Http4xx);
    }

    #[test]
    fn grpc_codes_map_to_classes_named_as_serde_writes_them() {
        assert_eq!(ErrorClass::from_grpc(14), ErrorClass::GrpcUnavailable);
        assert_eq!(ErrorClass::from_grpc(8), ErrorClass::GrpcResourceExhausted);
        assert_eq!(ErrorClass::from_grpc(99), ErrorClass::GrpcUnknown);
        for code in 1..=16 {
            let c = ErrorClass::from_grpc(code);
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json.as_str(), Some(c.as_str()), "code {code}");
            assert!(c.as_str().starts_with("grpc_"));
        }
        assert_eq!(ErrorClass::from_grpc(4).as_str(), "grpc_deadline_exceeded");
    }
}
