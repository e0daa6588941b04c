//! `POST /v1/traces`: an OTLP/HTTP trace receiver, so `otlp-traces` runs
//! with no backend and its figures can be checked against what arrived.
//!
//! It decodes every export (gzip or not, protobuf or JSON), counts traces,
//! spans and payload bytes, and answers an `ExportTraceServiceResponse` —
//! with a partial success when `--otlp-reject-rate` asks for rejections.

use std::collections::HashSet;
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
    let rate = state.config.faults.otlp_reject_rate;
    // Whole spans: the rate's share, the fraction drawn.
    let rejected = ((spans as f64 * rate) + rng.f64())
        .floor()
        .min(spans as f64) as u64;
    let answer = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: "the mock rejected these spans (--otlp-reject-rate)".into(),
        }),
    };
    let (bytes, ctype) = if json {
        (
            serde_json::to_vec(&answer).expect("json"),
            "application/json",
        )
    } else {
        (answer.encode_to_vec(), "application/x-protobuf")
    };
    let mut rec = state.simple_record(Endpoint::Traces, 200, Fault::None, arrival);
    rec.otlp = Some(OtlpReceived {
        traces: ids.len() as u64,
        spans,
        rejected_spans: rejected,
        payload_bytes: raw.len() as u64,
    });
    state.stats.record(rec);
    let mut r = Resp::new(MockBody::full(Bytes::from(bytes)));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(r)
}
