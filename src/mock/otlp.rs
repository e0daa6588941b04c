//! `POST /v1/traces`: an OTLP/HTTP trace receiver, so `otlp-traces` runs
//! with no backend and its figures can be checked against what arrived.
//!
//! It decodes every export (gzip or not, protobuf or JSON), counts traces,
//! spans and payload bytes, and answers an `ExportTraceServiceResponse` —
//! with a partial success when `--otlp-reject-rate` asks for rejections.
//! The traces it keeps (the most recent) answer a Tempo-like query API:
//! `GET /api/search` and `GET /api/traces/ID`, the target of the query load.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read as _;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::stats::{Endpoint, Fault, OtlpReceived};
use super::{bad_request, early, early_faults, Early, MockBody, Resp, State};

/// What the mock keeps of a trace received.
#[derive(Debug, Clone)]
struct TraceInfo {
    service: String,
    root_name: String,
    start_ns: u64,
    end_ns: u64,
    spans: u64,
}

/// Traces received, the most recent kept.
#[derive(Debug, Default)]
pub(super) struct Received {
    order: VecDeque<[u8; 16]>,
    traces: HashMap<[u8; 16], TraceInfo>,
}

/// Traces the query API keeps.
const KEPT: usize = 10_000;

impl Received {
    fn add(&mut self, req: &ExportTraceServiceRequest) {
        for rs in &req.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                        s.clone()
                    }
                    _ => String::new(),
                })
                .unwrap_or_default();
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let Ok(id) = <[u8; 16]>::try_from(s.trace_id.as_slice()) else {
                    continue;
                };
                if !self.traces.contains_key(&id) {
                    if self.order.len() == KEPT {
                        if let Some(old) = self.order.pop_front() {
                            self.traces.remove(&old);
                        }
                    }
                    self.order.push_back(id);
                }
                let t = self.traces.entry(id).or_insert_with(|| TraceInfo {
                    service: service.clone(),
                    root_name: String::new(),
                    start_ns: u64::MAX,
                    end_ns: 0,
                    spans: 0,
                });
                t.spans += 1;
                t.start_ns = t.start_ns.min(s.start_time_unix_nano);
                t.end_ns = t.end_ns.max(s.end_time_unix_nano);
                if s.parent_span_id.is_empty() {
                    t.root_name = s.name.clone();
                    t.service = service.clone();
                }
            }
        }
    }
}

fn trace_json(id: &[u8; 16], t: &TraceInfo) -> serde_json::Value {
    serde_json::json!({
        "traceID": crate::otlp::hex(id),
        "rootServiceName": t.service,
        "rootTraceName": t.root_name,
        "startTimeUnixNano": t.start_ns.to_string(),
        "durationMs": t.end_ns.saturating_sub(t.start_ns) / 1_000_000,
        "spanCount": t.spans,
    })
}

/// `GET /api/search?limit=N&tags=service.name=S` (the most recent traces,
/// newest first) and `GET /api/traces/ID`, in the shape of Tempo's answers.
pub(super) fn query(state: &State, path: &str, query: &str) -> (StatusCode, Bytes) {
    let Ok(r) = state.received.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(b"{}"));
    };
    let body = |v: serde_json::Value| Bytes::from(serde_json::to_vec(&v).expect("json"));
    if let Some(id) = path.strip_prefix("/api/traces/") {
        let found = (0..16)
            .map(|i| {
                id.get(2 * i..2 * i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .filter(|_| id.len() == 32)
            .and_then(|v| <[u8; 16]>::try_from(v).ok())
            .and_then(|k| r.traces.get(&k).map(|t| (k, t)));
        return match found {
            Some((k, t)) => (StatusCode::OK, body(trace_json(&k, t))),
            None => (
                StatusCode::NOT_FOUND,
                body(serde_json::json!({"error": "trace not found"})),
            ),
        };
    }
    let mut limit = 20usize;
    let mut service: Option<String> = None;
    for (k, v) in url_pairs(query) {
        match k.as_str() {
            "limit" => limit = v.parse().unwrap_or(20).min(KEPT),
            "tags" => {
                service = v
                    .split_whitespace()
                    .find_map(|t| t.strip_prefix("service.name="))
                    .map(|s| s.trim_matches('"').to_string())
            }
            _ => {}
        }
    }
    let traces: Vec<serde_json::Value> = r
        .order
        .iter()
        .rev()
        .filter_map(|id| r.traces.get(id).map(|t| (id, t)))
        .filter(|(_, t)| service.as_ref().is_none_or(|s| &t.service == s))
        .take(limit)
        .map(|(id, t)| trace_json(id, t))
        .collect();
    (
        StatusCode::OK,
        body(serde_json::json!({"traces": traces, "metrics": {"inspectedTraces": r.order.len()}})),
    )
}

/// `k=v` pairs of a query string, percent-decoded.
fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// Count an export (its traces, spans and payload bytes), keep its traces
/// for the query API, and answer it: a partial success when
/// `--otlp-reject-rate` rejects some of its spans.
pub(super) fn accept(
    state: &State,
    req: &ExportTraceServiceRequest,
    payload_bytes: usize,
    arrival: Instant,
    rng: &mut fastrand::Rng,
) -> ExportTraceServiceResponse {
    let mut ids = HashSet::new();
    let mut spans = 0u64;
    for rs in &req.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                spans += 1;
                ids.insert(s.trace_id.as_slice());
            }
        }
    }
    if let Ok(mut r) = state.received.lock() {
        r.add(req);
    }
    let rate = state.config.faults.otlp_reject_rate;
    // Whole spans: the rate's share, the fraction drawn.
    let rejected = ((spans as f64 * rate) + rng.f64())
        .floor()
        .min(spans as f64) as u64;
    let mut rec = state.simple_record(Endpoint::Traces, 200, Fault::None, arrival);
    rec.otlp = Some(OtlpReceived {
        traces: ids.len() as u64,
        spans,
        rejected_spans: rejected,
        payload_bytes: payload_bytes as u64,
    });
    state.stats.record(rec);
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: "the mock rejected these spans (--otlp-reject-rate)".into(),
        }),
    }
}

/// The body of an export, decompressed.
fn inflate(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    let gzip = headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body could not be read: {e}"))?;
    Ok(out)
}

pub(super) fn traces(
    state: &State,
    headers: &HeaderMap,
    body: &[u8],
    arrival: Instant,
    rng: &mut fastrand::Rng,
) -> Result<Resp, Early> {
    early_faults(state, rng)?;
    let bad = |m: String| early(400, Fault::BadRequest, bad_request(&m));
    let raw = inflate(headers, body).map_err(bad)?;
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let req: ExportTraceServiceRequest = if json {
        serde_json::from_slice(&raw).map_err(|e| bad(format!("not OTLP/JSON: {e}")))?
    } else {
        ExportTraceServiceRequest::decode(raw.as_slice()).map_err(|e| {
            bad(format!(
                "not an OTLP protobuf ExportTraceServiceRequest: {e}"
            ))
        })?
    };
    let answer = accept(state, &req, raw.len(), arrival, rng);
    let (bytes, ctype) = if json {
        (
            serde_json::to_vec(&answer).expect("json"),
            "application/json",
        )
    } else {
        (answer.encode_to_vec(), "application/x-protobuf")
    };
    let mut r = Resp::new(MockBody::full(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}
