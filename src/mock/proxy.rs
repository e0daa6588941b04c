//! Proxy mode: forward every request to `--upstream` after `--added-latency`.
//!
//! Streams pass through chunk by chunk, headers are kept (less hop-by-hop
//! ones), so the delay this proxy adds is known exactly: the ground truth of
//! the direct-vs-proxy sweep.

use std::time::Instant;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderName;
use hyper::{Request, Response, StatusCode};

use super::body::{MockBody, ProxyBody};
use super::stats::{Endpoint, Fault};
use super::{error_response, Resp, State};

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
    )
}

pub(super) async fn forward(state: &State, req: Request<Incoming>, arrival: Instant) -> Resp {
    let client = state.proxy.as_ref().expect("proxy mode");
    let upstream = state.config.upstream.as_deref().expect("proxy mode");
    if !state.config.added_latency.is_zero() {
        crate::timer::sleep_until(arrival + state.config.added_latency).await;
    }
    let forwarded_at = Instant::now();
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{upstream}{path}");
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "could not read the request body",
                "invalid_request_error",
                None,
            )
        }
    };
    let mut rb = client.request(parts.method, &url).body(body);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            rb = rb.header(k, v);
        }
    }
    let upstream_resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            let mut rec = state.simple_record(Endpoint::Proxy, 502, Fault::Error, arrival);
            rec.last_byte_at = Instant::now();
            state.stats.record(rec);
            return error_response(
                StatusCode::BAD_GATEWAY,
                &format!("the upstream {upstream} failed: {e}"),
                "server_error",
                None,
            );
        }
    };
    let status = upstream_resp.status();
    let mut resp = Response::builder().status(status.as_u16());
    for (k, v) in upstream_resp.headers() {
        if !hop_by_hop(k) {
            resp = resp.header(k, v);
        }
    }
    let mut rec = state.simple_record(Endpoint::Proxy, status.as_u16(), Fault::None, arrival);
    rec.stream = true;
    rec.forwarded_at = Some(forwarded_at);
    if state.config.buffer_responses {
        let whole = upstream_resp.bytes().await.unwrap_or_default();
        rec.headers_at = Instant::now();
        rec.last_byte_at = rec.headers_at;
        state.stats.record(rec);
        return resp.body(MockBody::full(whole)).unwrap_or_else(|_| {
            error_response(
                StatusCode::BAD_GATEWAY,
                "bad upstream response",
                "server_error",
                None,
            )
        });
    }
    let body = ProxyBody::new(upstream_resp.bytes_stream(), state.stats.clone(), rec);
    resp.body(MockBody::Proxy(Box::new(body)))
        .unwrap_or_else(|_| {
            error_response(
                StatusCode::BAD_GATEWAY,
                "bad upstream response",
                "server_error",
                None,
            )
        })
}
