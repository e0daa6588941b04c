//! OTLP over gRPC: a trace export (`otlp-traces`, `--trace-requests`) as
//! the unary call `TraceService/Export`, over tonic's HTTP/2 channel (its
//! connection, TLS and reconnects).
//!
//! The message arrives gzipped by the workload, as it is for OTLP/HTTP
//! (its sizes measured there, at the same compression level): here it is
//! framed (flag 1, length) and sent with `grpc-encoding: gzip`, the headers
//! as metadata and a `grpc-timeout`. The answer's `grpc-status` (trailers,
//! or the head of a trailers-only answer) is read by tonic; a non-OK code
//! is the error class of its name (`grpc_unavailable`), an HTTP status
//! other than 200 that of the status (`http_5xx`), an answer that is not a
//! gRPC `ExportTraceServiceResponse` `bad_body`, a connection that could
//! not be made `connect` — each with the HTTP status beside it.

use std::future::poll_fn;
use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower_service::Service as _;

use super::{Client, Prepared};
use crate::record::{ErrorClass, RequestRecord};

/// The method every OTLP trace export calls.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What an export call came back with.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Spans the backend said it rejected (a partial success).
    pub rejected_spans: u64,
    /// The backend's message about them.
    pub message: String,
}

/// Why an export call failed: its class, and what the server or the
/// connection said.
pub type Failure = (ErrorClass, String);

/// OTLP/gRPC exports to one endpoint, over one or more HTTP/2 connections.
pub struct Exporter {
    channels: Vec<Channel>,
    next: AtomicUsize,
    uri: hyper::Uri,
    /// Every call's headers: gRPC's, then the metadata.
    headers: HeaderMap,
}

impl Exporter {
    /// An exporter to `url` (`http://host:4317`: h2c; `https://`: TLS with
    /// ALPN h2, the system's roots and `cacert`'s), with `headers` as
    /// metadata (content type and encoding are gRPC's own, so those are
    /// left out). Nothing connects until the first call.
    pub fn new(
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
        connections: usize,
        cacert: Option<&[u8]>,
    ) -> Result<Exporter, String> {
        let parsed = reqwest::Url::parse(url.trim())
            .map_err(|e| format!("'{url}' is not a URL ({e}): expected e.g. http://host:4317"))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| format!("'{url}' has no host: expected e.g. http://host:4317"))?;
        let tls = match parsed.scheme() {
            "http" => false,
            "https" => true,
            s => {
                return Err(format!(
                    "'{url}': OTLP/gRPC needs http:// or https://, not {s}://"
                ))
            }
        };
        let port = parsed.port_or_known_default().unwrap_or(4317);
        // An IPv6 host comes in brackets, as it goes in the URI.
        let origin = format!("{}://{host}:{port}", parsed.scheme());
        let mut endpoint = Endpoint::from_shared(origin.clone())
            .map_err(|e| format!("'{url}': {e}"))?
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            // Exports run to megabytes: windows that do not hold each
            // one back for a round trip per 64 KiB.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20);
        if tls {
            super::install_tls_provider();
            let mut cfg = ClientTlsConfig::new()
                .with_native_roots()
                .domain_name(host.trim_matches(|c| c == '[' || c == ']'));
            if let Some(pem) = cacert {
                cfg = cfg.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(cfg)
                .map_err(|e| format!("'{url}': TLS: {}", super::error_chain(&e)))?;
        }
        let channels = (0..connections.max(1))
            .map(|_| endpoint.connect_lazy())
            .collect();
        let uri = format!("{origin}{EXPORT_PATH}")
            .parse()
            .map_err(|e| format!("'{url}': {e}"))?;
        let mut all = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "gzip"),
        ] {
            all.insert(k, HeaderValue::from_static(v));
        }
        let ms = timeout.as_millis().clamp(1, 99_999_999);
        all.insert(
            "grpc-timeout",
            HeaderValue::from_str(&format!("{ms}m")).expect("digits"),
        );
        metadata(headers, &mut all)?;
        Ok(Exporter {
            channels,
            next: AtomicUsize::new(0),
            uri,
            headers: all,
        })
    }

    /// Call Export with a gzipped `ExportTraceServiceRequest`. Returns the
    /// answer's HTTP status (if one came) and the answer or the failure.
    pub async fn export(&self, gzipped: Bytes) -> (Option<u16>, Result<Answer, Failure>) {
        let mut head = BytesMut::with_capacity(5);
        head.put_u8(1);
        head.put_u32(gzipped.len() as u32);
        let frames = futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Frame::data(head.freeze())),
            Ok(Frame::data(gzipped)),
        ]);
        let body = tonic::body::Body::new(http_body_util::StreamBody::new(frames));
        let mut req = hyper::Request::new(body);
        *req.method_mut() = hyper::Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        let mut ch = self.channels[i].clone();
        let sent = match poll_fn(|cx| ch.poll_ready(cx)).await {
            Ok(()) => ch.call(req).await,
            Err(e) => Err(e),
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return (None, Err((ErrorClass::Connect, super::error_chain(&e)))),
        };
        let status = resp.status().as_u16();
        (Some(status), answer(resp).await)
    }
}

/// Read an answer to its end: its grpc-status, then its message.
async fn answer(resp: hyper::Response<tonic::body::Body>) -> Result<Answer, Failure> {
    let (parts, body) = resp.into_parts();
    let status = parts.status.as_u16();
    let grpc = parts
        .headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if status != 200 {
        return Err((
            ErrorClass::from_status(status),
            format!("HTTP {status} (a gRPC server answers 200)"),
        ));
    }
    if !grpc {
        let ct = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err((
            ErrorClass::BadBody,
            format!("not a gRPC answer (content-type {ct})"),
        ));
    }
    // A trailers-only answer has its status in the head.
    let mut code = tonic::Status::from_header_map(&parts.headers);
    let collected = match code {
        Some(_) => None,
        None => Some(
            body.collect()
                .await
                .map_err(|e| (ErrorClass::StreamCut, super::error_chain(&e)))?,
        ),
    };
    if code.is_none() {
        code = collected
            .as_ref()
            .and_then(|c| c.trailers())
            .and_then(tonic::Status::from_header_map);
    }
    let Some(code) = code else {
        return Err((
            ErrorClass::BadBody,
            "the answer ended with no grpc-status".into(),
        ));
    };
    if code.code() != tonic::Code::Ok {
        return Err((
            ErrorClass::from_grpc(code.code() as i32),
            format!("{:?}: {}", code.code(), code.message()),
        ));
    }
    let bytes = collected.map(|c| c.to_bytes()).unwrap_or_default();
    let gzip = parts
        .headers
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let msg = unframe(&bytes, gzip).map_err(|e| (ErrorClass::BadBody, e))?;
    let r = ExportTraceServiceResponse::decode(msg.as_slice()).map_err(|e| {
        (
            ErrorClass::BadBody,
            format!("the answer is not an ExportTraceServiceResponse: {e}"),
        )
    })?;
    let p = r.partial_success.unwrap_or_default();
    Ok(Answer {
        rejected_spans: p.rejected_spans.max(0) as u64,
        message: p.error_message,
    })
}

/// The message of a unary call's one frame, gunzipped when it says so
/// (`gzip`: the call's `grpc-encoding` is gzip); no frame is an empty
/// message. The mock reads requests with it too.
pub fn unframe(body: &[u8], gzip: bool) -> Result<Vec<u8>, String> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if body.len() < 5 {
        return Err(format!(
            "a {}-byte body is not a gRPC frame (5 bytes of header, then the message)",
            body.len()
        ));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let payload = body
        .get(5..5 + len)
        .ok_or_else(|| format!("the frame says {len} bytes, {} came", body.len() - 5))?;
    match body[0] {
        0 => Ok(payload.to_vec()),
        1 if gzip => {
            let mut out = Vec::with_capacity(payload.len() * 4);
            flate2::read::GzDecoder::new(payload)
                .read_to_end(&mut out)
                .map_err(|e| format!("the gzip message could not be read: {e}"))?;
            Ok(out)
        }
        1 => Err("a compressed message without grpc-encoding: gzip".into()),
        f => Err(format!("a frame flag of {f} is not gRPC's")),
    }
}

/// Headers as gRPC metadata, into `into`: lowercase ASCII keys; the API
/// keys among them marked sensitive. gRPC's own headers are left out.
fn metadata(headers: &[(String, String)], into: &mut HeaderMap) -> Result<(), String> {
    for (k, v) in headers {
        let key = k.trim().to_ascii_lowercase();
        if matches!(
            key.as_str(),
            "content-type" | "content-encoding" | "te" | "grpc-encoding" | "grpc-timeout"
        ) {
            continue;
        }
        if key.ends_with("-bin") {
            return Err(format!(
                "header '{k}': binary gRPC metadata (-bin) is not supported; send it as text"
            ));
        }
        let name = HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("header '{k}' is not a valid gRPC metadata key"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("the value of header '{k}' is not valid gRPC metadata"))?;
        if matches!(key.as_str(), "authorization" | "x-api-key" | "api-key") {
            value.set_sensitive(true);
        }
        into.append(name, value);
    }
    Ok(())
}

impl Client {
    /// Send an OTLP export over gRPC and measure it as [`Client::send`]
    /// measures an HTTP request.
    pub(super) async fn send_grpc(
        &self,
        exporter: &Exporter,
        req: &Prepared,
        scheduled_us: Option<u64>,
    ) -> RequestRecord {
        let start = Instant::now();
        let start_us = self.us(start);
        let mut rec = RequestRecord::new(scheduled_us.unwrap_or(start_us).min(start_us), start_us);
        rec.path = req.path.clone();
        rec.group = req.group.clone();
        rec.exported_trace = req.exported_trace;
        let call = tokio::time::timeout(self.timeout, exporter.export(req.body.clone()));
        let outcome = call.await;
        rec.end_us = self.now_us();
        let (status, result) = match outcome {
            Ok(r) => r,
            Err(_) => (
                None,
                Err((
                    ErrorClass::Timeout,
                    format!("no complete answer within --timeout {:?}", self.timeout),
                )),
            ),
        };
        rec.status = status;
        rec.http2 = status.is_some();
        if status.is_some() {
            rec.payload = req.payload;
        }
        match result {
            Ok(a) => {
                rec.payload.rejected_spans = a.rejected_spans.min(rec.payload.spans);
                rec
            }
            Err((class, msg)) => super::send::fail(rec, class, msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_metadata_without_the_http_ones() {
        let mut m = HeaderMap::new();
        metadata(
            &[
                ("Content-Type".into(), "application/x-protobuf".into()),
                ("Content-Encoding".into(), "gzip".into()),
                ("Authorization".into(), "Bearer k".into()),
                ("x-bt-parent".into(), "project_name:p".into()),
            ],
            &mut m,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("authorization").unwrap(), "Bearer k");
        assert!(m.get("authorization").unwrap().is_sensitive());
        assert_eq!(m.get("x-bt-parent").unwrap(), "project_name:p");
        let bin = metadata(&[("k-bin".into(), "x".into())], &mut m);
        assert!(bin.unwrap_err().contains("-bin"));
        let bad = metadata(&[("bad key".into(), "x".into())], &mut m);
        assert!(bad.unwrap_err().contains("bad key"));
    }

    #[test]
    fn answers_are_unframed_and_bad_frames_are_named() {
        let msg = ExportTraceServiceResponse::default().encode_to_vec();
        let mut f = vec![0, 0, 0, 0, msg.len() as u8];
        f.extend_from_slice(&msg);
        assert_eq!(unframe(&f, false).unwrap(), msg);
        assert!(unframe(&[], false).unwrap().is_empty());
        assert!(unframe(&[0, 0], false).unwrap_err().contains("2-byte"));
        assert!(unframe(&[0, 0, 0, 0, 9, 1], false)
            .unwrap_err()
            .contains("says 9 bytes"));
        assert!(unframe(&[1, 0, 0, 0, 0], false)
            .unwrap_err()
            .contains("grpc-encoding"));
        assert!(unframe(&[7, 0, 0, 0, 0], false)
            .unwrap_err()
            .contains("flag"));
    }

    #[test]
    fn bad_endpoints_say_what_to_fix() {
        let e = |u: &str| {
            Exporter::new(u, &[], Duration::from_secs(1), 1, None)
                .err()
                .unwrap()
        };
        assert!(e("localhost:4317").contains("http://"));
        assert!(e("ftp://h:4317").contains("http://"));
        assert!(e("nonsense").contains("not a URL"));
    }
}
