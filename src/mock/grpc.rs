//! `TraceService/Export` over gRPC: the mock's OTLP/gRPC receiver, on its
//! one port (HTTP/2 by prior knowledge, beside HTTP/1.1).
//!
//! An export is read as gRPC frames (5 bytes: compressed flag and length,
//! then the message; gzip when `grpc-encoding: gzip`), decoded and counted
//! as an OTLP/HTTP export is ([`super::otlp::accept`]: traces, spans,
//! payload bytes, rejects, arrival stamps), and answered with a framed
//! `ExportTraceServiceResponse` and `grpc-status: 0` in the trailers. The
//! mock's faults speak gRPC here: its rate limit answers RESOURCE_EXHAUSTED,
//! `--error-rate` UNAVAILABLE, `--malformed-rate` an answer that is not an
//! `ExportTraceServiceResponse`, a missing key UNAUTHENTICATED.

use std::time::Instant;

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::Request;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::answer::early_faults;
use super::config::MAX_BODY;
use super::stats::{Endpoint, Fault};
use super::{MockBody, Resp, State};

/// gRPC status codes the mock answers with.
const OK: u8 = 0;
const INVALID_ARGUMENT: u8 = 3;
const RESOURCE_EXHAUSTED: u8 = 8;
const INTERNAL: u8 = 13;
const UNAVAILABLE: u8 = 14;
const UNAUTHENTICATED: u8 = 16;

/// The method's path, as the OTLP exporters call it.
pub(super) use crate::client::grpc::EXPORT_PATH;

/// Answer one Export call.
pub(super) async fn export(state: &State, req: Request<Incoming>, arrival: Instant) -> Resp {
    let id = state.next_id();
    let mut rng = state.rng(id);
    let fail = |code: u8, fault: Fault, msg: &str| {
        state
            .stats
            .record(state.simple_record(Endpoint::Traces, 200, fault, arrival));
        status_only(code, msg)
    };
    if let Some(expected) = &state.auth {
        if req.headers().get(hyper::header::AUTHORIZATION) != Some(expected) {
            return fail(
                UNAUTHENTICATED,
                Fault::Unauthorized,
                "a valid authorization is needed",
            );
        }
    }
    if let Err(e) = early_faults(state, &mut rng) {
        return match e.0 {
            429 => fail(
                RESOURCE_EXHAUSTED,
                Fault::RateLimited,
                "the mock's rate limit (--rate-limit)",
            ),
            _ => fail(
                UNAVAILABLE,
                Fault::Error,
                "the mock injected this error (--error-rate)",
            ),
        };
    }
    let gzip = req
        .headers()
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return fail(
                RESOURCE_EXHAUSTED,
                Fault::BadRequest,
                "the message could not be read, or is larger than 64 MiB",
            )
        }
    };
    let raw = match message(&body, gzip) {
        Ok(m) => m,
        Err(e) => return fail(INTERNAL, Fault::BadRequest, &e),
    };
    let export = match ExportTraceServiceRequest::decode(raw.as_slice()) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("not an ExportTraceServiceRequest: {e}");
            return fail(INVALID_ARGUMENT, Fault::BadRequest, &msg);
        }
    };
    let f = &state.config.faults;
    if f.malformed_rate > 0.0 && rng.f64() < f.malformed_rate {
        state
            .stats
            .record(state.simple_record(Endpoint::Traces, 200, Fault::Malformed, arrival));
        // A field whose length runs past the end: no protobuf reader takes it.
        return framed(Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    }
    let answer = super::otlp::accept(state, &export, raw.len(), arrival, &mut rng);
    framed(Bytes::from(answer.encode_to_vec()))
}

/// The one message of a unary call's body (a call carries one).
fn message(body: &[u8], gzip: bool) -> Result<Vec<u8>, String> {
    if body.is_empty() {
        return Err("an empty body: a gRPC call carries a message".into());
    }
    crate::client::grpc::unframe(body, gzip)
}

fn grpc_head(r: &mut Resp) {
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
}

/// A framed answer (not compressed), then `grpc-status: 0`.
fn framed(message: Bytes) -> Resp {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.put_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(u16::from(OK)));
    let mut r = Resp::new(MockBody::Trailed(Some(b.freeze()), Some(trailers)));
    grpc_head(&mut r);
    r
}

/// A trailers-only answer: the status in the head, no message.
fn status_only(code: u8, msg: &str) -> Resp {
    let mut r = Resp::new(MockBody::Full(None));
    grpc_head(&mut r);
    r.headers_mut()
        .insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(
        &percent_encoding::utf8_percent_encode(msg, percent_encoding::CONTROLS).to_string(),
    ) {
        r.headers_mut().insert("grpc-message", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn frames_are_read_plain_or_gzip_and_bad_ones_are_named() {
        assert_eq!(message(&frame(0, b"abc"), false).unwrap(), b"abc");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let z = gz.finish().unwrap();
        assert_eq!(message(&frame(1, &z), true).unwrap(), b"hello");
        assert!(message(&frame(1, &z), false)
            .unwrap_err()
            .contains("grpc-encoding"));
        assert!(message(b"\0\0", false).unwrap_err().contains("5 bytes"));
        let mut short = frame(0, b"abcdef");
        short.truncate(8);
        assert!(message(&short, false).unwrap_err().contains("says 6 bytes"));
    }
}
