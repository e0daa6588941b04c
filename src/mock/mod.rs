//! The built-in OpenAI-compatible mock server.
//!
//! `serve(listener, config, shutdown)` is shared by `periscope mock`, by
//! `run --mock` (in-process, on a free loopback port) and by the tests. It
//! answers chat completions, text completions, embeddings, models and health
//! with a latency model (ttft = base + prefill per prompt token, a gap per
//! output token, jitter), injects faults on request, emulates a guardrail,
//! and records when it actually sent each response's headers, first token
//! and last byte (`GET /mock/stats`, `DELETE /mock/stats` to reset) and
//! when each request arrived (`GET /mock/arrivals`). With
//! `--upstream` it is instead a proxy that adds a known delay.
//!
//! Built on hyper directly: routing is a match on the path, responses come
//! from pre-serialized templates, and nothing on the request path takes a
//! lock unless `--prefix-cache` is on.

mod answer;
mod body;
mod config;
mod conn;
mod grpc;
mod images;
mod messages;
mod metrics;
pub mod openai;
mod otlp;
mod proxy;
mod responses;
mod state;
pub mod stats;
#[cfg(test)]
mod tests;
mod tools;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use bytes::Bytes;
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use answer::{completion, early, early_faults, embeddings};
pub use body::MockBody;
use body::{StreamPlan, TokenStream};
pub use config::{
    parse_token_range, Faults, Latency, MockArgs, MockConfig, TokenRange, DEFAULT_BLOCK_PATTERN,
};
use config::{MAX_BODY, MAX_OUTPUT_TOKENS};
use openai::{Api, Usage};
use state::{State, Traceparents};
pub use stats::{Endpoint, Fault, MockRecord, StatsHandle, StatsSnapshot, Summary};

use crate::tokenizer;

/// A mock running on a background task.
pub struct MockServer {
    pub addr: SocketAddr,
    stats: StatsHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// The OpenAI base URL of this mock (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// What the mock has sent so far.
    pub async fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot().await
    }

    /// Stop accepting connections.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Connections waiting to be accepted (the kernel caps it at
/// `net.core.somaxconn`). tokio binds with std's 128, so a burst of new
/// connections beyond that had SYNs dropped and waited a second for the
/// kernel to resend them: a mock that delays connects is no ground truth.
const BACKLOG: u32 = 8192;

/// Listen on `addr` (`host:port`; port 0 for a free one) with room for a
/// burst of connections as large as the load that the tests send.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
    }))
}

/// Bind `addr` (use port 0 for a free one) and serve on a background task.
pub async fn start(config: MockConfig, addr: &str) -> anyhow::Result<MockServer> {
    let listener = bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Requests to the in-process mock never go through a proxy.
    crate::client::proxy::direct(local);
    let state = Arc::new(State::new(config)?);
    let stats = state.stats.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        conn::accept_loop(listener, state, async {
            let _ = rx.await;
        })
        .await
    });
    Ok(MockServer {
        addr: local,
        stats,
        shutdown: Some(tx),
        task,
    })
}

/// Serve on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: MockConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let state = Arc::new(State::new(config)?);
    conn::accept_loop(listener, state, shutdown).await;
    Ok(())
}

type Resp = Response<MockBody>;

fn json_response(status: StatusCode, body: Bytes) -> Resp {
    let mut r = Response::new(MockBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Resp {
    json_response(status, openai::error_body(message, kind, code))
}

fn bad_request(message: &str) -> Resp {
    error_response(
        StatusCode::BAD_REQUEST,
        message,
        "invalid_request_error",
        None,
    )
}

/// `--count-model`: the body's model, alone and paired with the value of
/// each counted header (a session's id and the adapter it asked for).
fn count_model(state: &State, headers: &hyper::HeaderMap, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Model {
        model: Option<String>,
    }
    let model = serde_json::from_slice::<Model>(body)
        .ok()
        .and_then(|m| m.model)
        .unwrap_or_else(|| "(none)".into());
    let Ok(mut counts) = state.header_counts.lock() else {
        return;
    };
    let mut add = |key: String, value: String| {
        *counts.entry(key).or_default().entry(value).or_default() += 1;
    };
    add("model".into(), model.clone());
    for name in &state.config.count_headers {
        let v = headers
            .get(name.as_str())
            .map_or("(none)".to_string(), |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            });
        add(format!("{name}+model"), format!("{v} {model}"));
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let arrival = Instant::now();
    if req.version() == hyper::Version::HTTP_2 {
        state.stats.note_http2_request();
    }
    if let Some(tp) = req.headers().get("traceparent") {
        if let Ok(mut t) = state.traceparents.lock() {
            t.note(tp);
        }
    }
    if !state.config.count_headers.is_empty() && !req.uri().path().starts_with("/mock/") {
        if let Ok(mut counts) = state.header_counts.lock() {
            for name in &state.config.count_headers {
                let value = req
                    .headers()
                    .get(name.as_str())
                    .map_or("(none)".to_string(), |v| {
                        String::from_utf8_lossy(v.as_bytes()).into_owned()
                    });
                *counts
                    .entry(name.clone())
                    .or_default()
                    .entry(value)
                    .or_default() += 1;
            }
        }
    }
    // The proxy answers for its own stamps; everything else goes upstream.
    if state.proxy.is_some() && !req.uri().path().starts_with("/mock/") {
        return Ok(proxy::forward(&state, req, arrival).await);
    }
    let path = req.uri().path();
    let route = path.strip_prefix("/v1").unwrap_or(path);
    let endpoint = match route {
        "/chat/completions" => Endpoint::Chat,
        "/responses" => Endpoint::Responses,
        "/messages" => Endpoint::Messages,
        "/completions" => Endpoint::Text,
        "/embeddings" => Endpoint::Embeddings,
        "/rerank" => Endpoint::Rerank,
        "/models" => Endpoint::Models,
        "/health" => Endpoint::Health,
        "/traces" => Endpoint::Traces,
        // OTLP mounted under a gateway's prefix (`/otel/v1/traces`).
        _ if path.ends_with("/v1/traces") => Endpoint::Traces,
        _ if path == "/api/search" || path.starts_with("/api/traces/") => Endpoint::TraceQuery,
        _ if state.config.ok_paths.iter().any(|p| p == path) => Endpoint::Health,
        _ => Endpoint::Other,
    };
    if path == "/mock/stats" {
        return Ok(match *req.method() {
            Method::GET => {
                let snap = state.stats.snapshot().await;
                json_response(
                    StatusCode::OK,
                    Bytes::from(serde_json::to_vec(&snap).expect("json")),
                )
            }
            Method::DELETE => {
                state.stats.reset();
                if let Ok(mut t) = state.traceparents.lock() {
                    *t = Traceparents::default();
                }
                json_response(StatusCode::OK, Bytes::from_static(b"{\"reset\":true}"))
            }
            _ => error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "use GET or DELETE",
                "invalid_request_error",
                None,
            ),
        });
    }
    if path == grpc::EXPORT_PATH && req.method() == Method::POST {
        return Ok(grpc::export(&state, req, arrival).await);
    }
    if path == "/tokenize" && state.config.tokenize {
        // llama.cpp's shape; not a request of the load, so not counted.
        let body = Limited::new(req.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Ok(match openai::tokenize(&body) {
            Ok(b) => json_response(StatusCode::OK, b),
            Err(e) => bad_request(&e),
        });
    }
    if path == "/metrics" && req.method() == Method::GET {
        let model = state
            .config
            .models
            .first()
            .map_or("periscope-mock", String::as_str);
        let text = state.stats.metrics(
            model,
            state.config.max_concurrency,
            state.config.metrics_llamacpp,
        );
        let mut r = Response::new(MockBody::full(Bytes::from(text)));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return Ok(r);
    }
    if path == "/mock/arrivals" {
        let a = state.stats.arrivals().await;
        return Ok(json_response(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&a).expect("json")),
        ));
    }
    if path == "/mock/headers" {
        let body = match state.header_counts.lock() {
            Ok(c) => serde_json::to_vec(&*c).expect("json"),
            Err(_) => b"{}".to_vec(),
        };
        return Ok(json_response(StatusCode::OK, Bytes::from(body)));
    }
    if path == "/mock/traceparents" {
        let body = match state.traceparents.lock() {
            Ok(t) => serde_json::to_vec(&*t).expect("json"),
            Err(_) => b"{}".to_vec(),
        };
        return Ok(json_response(StatusCode::OK, Bytes::from(body)));
    }
    // An `--ok-path` answers any method, and counts the body it was sent
    // (a webhook's event).
    let plain = state.config.ok_paths.iter().any(|p| p == path);
    if plain {
        let method = req.method().clone();
        let body_bytes = match http_body_util::BodyExt::collect(req.into_body()).await {
            Ok(b) => b.to_bytes().len() as u64,
            Err(_) => 0,
        };
        let mut rec = state.simple_record(endpoint, 200, Fault::None, arrival);
        rec.body_bytes = body_bytes;
        state.stats.record(rec);
        return Ok(json_response(
            StatusCode::OK,
            Bytes::from(format!(
                "{{\"status\":\"ok\",\"method\":\"{method}\",\"received_bytes\":{body_bytes}}}"
            )),
        ));
    }
    let expected_method = match endpoint {
        Endpoint::Models | Endpoint::Health | Endpoint::TraceQuery => Method::GET,
        Endpoint::Other => {
            let r = error_response(
                StatusCode::NOT_FOUND,
                &format!("Invalid URL ({} {})", req.method(), path),
                "invalid_request_error",
                Some("unknown_url"),
            );
            state
                .stats
                .record(state.simple_record(endpoint, 404, Fault::BadRequest, arrival));
            return Ok(r);
        }
        _ => Method::POST,
    };
    if req.method() != expected_method {
        state
            .stats
            .record(state.simple_record(endpoint, 405, Fault::BadRequest, arrival));
        return Ok(error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Invalid method for {path}: use {expected_method}"),
            "invalid_request_error",
            None,
        ));
    }
    if endpoint == Endpoint::Health {
        state
            .stats
            .record(state.simple_record(endpoint, 200, Fault::None, arrival));
        return Ok(json_response(
            StatusCode::OK,
            Bytes::from_static(b"{\"status\":\"ok\"}"),
        ));
    }
    if let Some(expected) = &state.auth {
        // Anthropic's clients send the key as `x-api-key`.
        let x_api_key = req
            .headers()
            .get("x-api-key")
            .and_then(|k| k.to_str().ok())
            .is_some_and(|k| expected.as_bytes().strip_prefix(b"Bearer ") == Some(k.as_bytes()));
        if req.headers().get(hyper::header::AUTHORIZATION) != Some(expected) && !x_api_key {
            state
                .stats
                .record(state.simple_record(endpoint, 401, Fault::Unauthorized, arrival));
            let msg = if req.headers().contains_key(hyper::header::AUTHORIZATION) {
                "Incorrect API key provided. You can find your API key at your provider's dashboard."
            } else {
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            };
            return Ok(error_response(
                StatusCode::UNAUTHORIZED,
                msg,
                "invalid_request_error",
                Some("invalid_api_key"),
            ));
        }
    }
    if endpoint == Endpoint::TraceQuery {
        if !state.config.latency.query_latency.is_zero() {
            crate::timer::sleep_until(arrival + state.config.latency.query_latency).await;
        }
        let (status, body) = otlp::query(&state, path, req.uri().query().unwrap_or(""));
        state
            .stats
            .record(state.simple_record(endpoint, status.as_u16(), Fault::None, arrival));
        return Ok(json_response(status, body));
    }
    if endpoint == Endpoint::Models {
        state
            .stats
            .record(state.simple_record(endpoint, 200, Fault::None, arrival));
        return Ok(models_response(&state.config.models));
    }
    let latency = match state.config.latency.with_headers(req.headers()) {
        Ok(l) => l,
        Err(e) => {
            state
                .stats
                .record(state.simple_record(endpoint, 400, Fault::BadRequest, arrival));
            return Ok(bad_request(&e));
        }
    };
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            state
                .stats
                .record(state.simple_record(endpoint, 400, Fault::BadRequest, arrival));
            return Ok(bad_request(
                "The request body could not be read, or is larger than 64 MiB.",
            ));
        }
    };
    if state.config.count_model {
        count_model(&state, &headers, &body);
    }
    let id = state.next_id();
    let mut rng = state.rng(id);
    // Wait in line for a slot; the service starts when one is free.
    let waiting = state.stats.live().wait();
    let slot = match &state.slots {
        Some(s) => s.clone().acquire_owned().await.ok(),
        None => None,
    };
    let running = waiting.admit();
    let (arrival, queued) = if slot.is_some() {
        let now = Instant::now();
        (now, now.saturating_duration_since(arrival))
    } else {
        (arrival, Duration::ZERO)
    };
    let admitted = answer::Admitted {
        at: arrival,
        queued,
    };
    let result = match endpoint {
        Endpoint::Chat => {
            completion(&state, Api::Chat, &body, latency, admitted, id, &mut rng).await
        }
        Endpoint::Text => {
            completion(&state, Api::Text, &body, latency, admitted, id, &mut rng).await
        }
        Endpoint::Responses => {
            completion(
                &state,
                Api::Responses,
                &body,
                latency,
                admitted,
                id,
                &mut rng,
            )
            .await
        }
        Endpoint::Messages => {
            completion(
                &state,
                Api::Messages,
                &body,
                latency,
                admitted,
                id,
                &mut rng,
            )
            .await
        }
        Endpoint::Traces => otlp::traces(&state, &headers, &body, arrival, &mut rng),
        Endpoint::Rerank => answer::rerank(&state, &body, latency, arrival, &mut rng).await,
        _ => embeddings(&state, &body, latency, arrival, &mut rng).await,
    };
    Ok(match result {
        Ok(mut r) => {
            // A stream holds its slot until its last chunk is sent.
            if let MockBody::Tokens(ts) = r.body_mut() {
                ts.slot = slot;
                ts.running = Some(running);
            }
            r
        }
        Err(e) => {
            let (status, fault, r) = *e;
            state
                .stats
                .record(state.simple_record(endpoint, status, fault, arrival));
            r
        }
    })
}

fn models_response(models: &[String]) -> Resp {
    let names: Vec<&str> = if models.is_empty() {
        vec!["periscope-mock"]
    } else {
        models.iter().map(String::as_str).collect()
    };
    let data: Vec<_> = names
        .iter()
        .map(|m| serde_json::json!({"id": m, "object": "model", "created": 0, "owned_by": "periscope"}))
        .collect();
    let body = serde_json::json!({"object": "list", "data": data});
    json_response(
        StatusCode::OK,
        Bytes::from(serde_json::to_vec(&body).expect("json")),
    )
}

/// A response that ends a request early, with what to record about it.
pub(super) type Early = Box<(u16, Fault, Resp)>;
