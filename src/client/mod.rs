//! Sending one request: reqwest, SSE, timings → `RequestRecord`.
//!
//! The client knows nothing of executors or load: it is given a prepared
//! request (path, serialized body, whether it streams, the local prompt
//! token count) and the run's origin instant, and returns what it measured.

mod h1;
pub mod parse;

use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use reqwest::Method;

use crate::otlp::tracer::TraceIds;
use crate::record::{ErrorClass, Outcome, RequestRecord, TokenSource};
use crate::tokenizer;
use parse::StreamState;

/// A reqwest builder with the TLS provider installed and no system proxy.
pub fn http_builder() -> reqwest::ClientBuilder {
    static TLS: Once = Once::new();
    TLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().no_proxy().tcp_nodelay(true)
}

/// A request ready to send, built by a workload.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    /// Path under the base URL (`chat/completions`), or from the origin's
    /// root when it starts with `/` (`/health`).
    pub path: std::borrow::Cow<'static, str>,
    pub body: Bytes,
    pub stream: bool,
    /// Prompt tokens counted locally.
    pub prompt_tokens: u32,
    /// How to read the answer.
    pub expect: Expect,
    /// The report row this request also counts in.
    pub group: Option<crate::record::Group>,
    /// Inputs of an embeddings request.
    pub texts: u32,
    /// Return the generated text in the record (for multi-turn workloads).
    pub keep_text: bool,
    /// What the request carries (`otlp-traces`): copied into its record.
    pub payload: crate::record::Payload,
    /// Its share of the open model's schedule: 1 for every request, the
    /// trace's size over the mean when arrivals are paced by bytes.
    pub weight: f64,
    /// The id of the trace an OTLP export carries: copied into its record.
    pub exported_trace: Option<[u8; 16]>,
}

/// What a successful answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A chat or text completion, whole or streamed.
    Completion,
    /// An embeddings list with one vector per input.
    Embeddings,
    /// Any answer below 400 (plain HTTP endpoints).
    Status,
    /// An OTLP export: 2xx, maybe with a partial success to count.
    Otlp,
}

impl Prepared {
    /// A POST of a JSON body to an API path.
    pub fn post(path: &'static str, body: Bytes, expect: Expect) -> Self {
        Prepared {
            method: Method::POST,
            path: path.into(),
            body,
            stream: false,
            prompt_tokens: 0,
            expect,
            group: None,
            texts: 0,
            keep_text: false,
            payload: crate::record::Payload::default(),
            weight: 1.0,
            exported_trace: None,
        }
    }
}

/// Normalize a base URL: `http://h:p` and `http://h:p/` become `http://h:p/v1`;
/// any other path is kept (gateways mount the API elsewhere).
pub fn normalize_base(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        format!("--target '{url}' is not a URL ({e}): expected e.g. http://localhost:8000/v1")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "--target '{url}' must start with http:// or https://"
        ));
    }
    if parsed.host_str().is_none() {
        return Err(format!("--target '{url}' has no host"));
    }
    let s = parsed.as_str().trim_end_matches('/').to_string();
    if parsed.path() == "/" || parsed.path().is_empty() {
        Ok(format!("{s}/v1"))
    } else {
        Ok(s)
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// API paths whose URLs are parsed once, not per request.
const KNOWN_PATHS: &[&str] = &["chat/completions", "completions", "embeddings", "models"];

/// Requests whose usage is always checked against a local count; after
/// these, one in [`USAGE_CHECK_EVERY`]. Tokenizing every answer would cost
/// more than the rest of the client's work per request.
const USAGE_CHECK_FIRST: u64 = 64;
const USAGE_CHECK_EVERY: u64 = 16;

/// Which HTTP stack sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// hyper connections for http:// targets, reqwest for https://.
    #[default]
    Auto,
    /// hyper HTTP/1.1 connections (http:// only).
    Hyper,
    /// reqwest (rustls) for every target.
    Reqwest,
}

enum Transport {
    Reqwest {
        http: reqwest::Client,
        urls: Vec<(&'static str, reqwest::Url)>,
    },
    Hyper {
        pool: h1::Pool,
        /// The base URL's path, e.g. `/v1`.
        base_path: String,
        headers: HeaderMap,
    },
}

/// A response's body, whichever stack it came from.
type BodyStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, String>> + Send>>;

/// The HTTP client of one run.
pub struct Client {
    transport: Transport,
    base: String,
    timeout: Duration,
    origin: Instant,
    usage_checks: std::sync::atomic::AtomicU64,
    /// Give every request a client span's ids and send them as `traceparent`.
    tracing: bool,
}

impl Client {
    /// `pool` is the most connections the load will hold open at once.
    pub fn with_engine(
        base: &str,
        token: Option<&str>,
        extra_headers: &[(String, String)],
        timeout: Duration,
        pool: usize,
        origin: Instant,
        engine: Engine,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
                .context("the API key is not a valid header value")?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (k, v) in extra_headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .with_context(|| format!("header name '{k}'"))?;
            let value =
                HeaderValue::from_str(v).with_context(|| format!("the value of header '{k}'"))?;
            headers.insert(name, value);
        }
        let base = base.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).with_context(|| format!("the target '{base}'"))?;
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let use_hyper = match engine {
            Engine::Auto => url.scheme() == "http",
            Engine::Hyper if url.scheme() != "http" => {
                anyhow::bail!(
                    "--http-engine hyper speaks plain http:// only; use auto or reqwest for {base}"
                )
            }
            Engine::Hyper => true,
            Engine::Reqwest => false,
        };
        let transport = if use_hyper {
            let host = url.host_str().context("the target has no host")?;
            let port = url.port_or_known_default().unwrap_or(80);
            let authority = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            };
            if !headers.contains_key(HOST) {
                headers.insert(
                    HOST,
                    HeaderValue::from_str(&authority).context("the target's host")?,
                );
            }
            Transport::Hyper {
                pool: h1::Pool::new(host, port, pool, connect_timeout),
                base_path: url.path().trim_end_matches('/').to_string(),
                headers,
            }
        } else {
            let http = http_builder()
                .default_headers(headers)
                .connect_timeout(connect_timeout)
                .pool_max_idle_per_host(pool.max(1))
                .pool_idle_timeout(Duration::from_secs(90))
                .build()
                .context("building the HTTP client")?;
            let urls = KNOWN_PATHS
                .iter()
                .filter_map(|p| {
                    reqwest::Url::parse(&format!("{base}/{p}"))
                        .ok()
                        .map(|u| (*p, u))
                })
                .collect();
            Transport::Reqwest { http, urls }
        };
        Ok(Client {
            transport,
            base,
            timeout,
            origin,
            usage_checks: std::sync::atomic::AtomicU64::new(0),
            tracing: false,
        })
    }

    /// Count times from `origin` (the start of the load) from now on.
    pub fn set_origin(&mut self, origin: Instant) {
        self.origin = origin;
    }

    /// Send a W3C `traceparent` with every request from now on, and keep
    /// its ids in the record (`--trace-requests`).
    pub fn set_tracing(&mut self, on: bool) {
        self.tracing = on;
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn us(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// Microseconds since the run's origin, now.
    pub fn now_us(&self) -> u64 {
        self.us(Instant::now())
    }

    /// Send the request; on an answer, its status, body and (on the hyper
    /// path) the connection to give back once the body is read.
    async fn start(
        &self,
        req: &Prepared,
        trace: Option<TraceIds>,
    ) -> Result<(u16, BodyStream, Option<h1::Sender>), (ErrorClass, String)> {
        let traceparent = trace.and_then(|t| HeaderValue::from_str(&t.traceparent()).ok());
        let connect = |e: String| (ErrorClass::Connect, e);
        match &self.transport {
            Transport::Hyper {
                pool,
                base_path,
                headers,
            } => {
                let uri = match req.path.strip_prefix('/') {
                    Some(_) => hyper::Uri::try_from(req.path.as_ref()),
                    None => hyper::Uri::try_from(format!("{base_path}/{}", req.path)),
                }
                .map_err(|e| connect(format!("bad path '{}': {e}", req.path)))?;
                let mut r = hyper::Request::new(http_body_util::Full::new(req.body.clone()));
                *r.method_mut() = req.method.clone();
                *r.uri_mut() = uri;
                *r.headers_mut() = headers.clone();
                if let Some(tp) = traceparent {
                    r.headers_mut().insert(TRACEPARENT, tp);
                }
                let (resp, sender) = pool.send(r).await.map_err(|e| connect(error_chain(&e)))?;
                let status = resp.status().as_u16();
                let body = http_body_util::BodyExt::into_data_stream(resp.into_body())
                    .map(|r| r.map_err(|e| error_chain(&e)));
                Ok((status, Box::pin(body), Some(sender)))
            }
            Transport::Reqwest { http, urls } => {
                let url = match urls.iter().find(|(p, _)| *p == req.path.as_ref()) {
                    Some((_, u)) => u.clone(),
                    None => match req.path.strip_prefix('/') {
                        Some(_) => {
                            let mut u = reqwest::Url::parse(&self.base)
                                .map_err(|e| connect(e.to_string()))?;
                            u.set_path(&req.path);
                            u
                        }
                        None => reqwest::Url::parse(&format!("{}/{}", self.base, req.path))
                            .map_err(|e| connect(format!("bad URL: {e}")))?,
                    },
                };
                let mut builder = http.request(req.method.clone(), url).body(req.body.clone());
                if let Some(tp) = traceparent {
                    builder = builder.header(TRACEPARENT, tp);
                }
                let resp = builder.send().await.map_err(|e| connect(error_chain(&e)))?;
                let status = resp.status().as_u16();
                let body = resp.bytes_stream().map(|r| r.map_err(|e| error_chain(&e)));
                Ok((status, Box::pin(body), None))
            }
        }
    }

    fn give_back(&self, sender: Option<h1::Sender>) {
        if let (Some(s), Transport::Hyper { pool, .. }) = (sender, &self.transport) {
            pool.put_back(s);
        }
    }

    /// Send one request and measure it. `scheduled_us` is the intended send
    /// time (the open model's schedule), or `None` to use the actual one.
    pub async fn send(&self, req: &Prepared, scheduled_us: Option<u64>) -> RequestRecord {
        let start = Instant::now();
        let start_us = self.us(start);
        let mut rec = RequestRecord::new(scheduled_us.unwrap_or(start_us).min(start_us), start_us);
        rec.input_tokens = req.prompt_tokens;
        rec.path = req.path.clone();
        rec.trace = self.tracing.then(TraceIds::random);
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let timed_out = || {
            (
                ErrorClass::Timeout,
                format!("no complete answer within --timeout {:?}", self.timeout),
            )
        };
        let started = tokio::select! {
            biased;
            r = self.start(req, rec.trace) => r,
            _ = &mut deadline => Err(timed_out()),
        };
        let (status, mut body, sender) = match started {
            Ok(s) => s,
            Err((class, msg)) => {
                rec.end_us = self.now_us();
                return fail(rec, class, msg);
            }
        };
        rec.status = Some(status);
        rec.group = req.group.clone();
        rec.payload = req.payload;
        rec.exported_trace = req.exported_trace;
        rec.texts = req.texts;
        let mut st = StreamState::default();
        let success = match req.expect {
            Expect::Status => status < 400,
            _ => (200..300).contains(&status),
        };
        if success && req.stream {
            // Events that arrive in one read share its arrival instant.
            let mut sse = sse_parse::SseParser::new();
            let mut clean_end = false;
            'read: loop {
                let chunk = tokio::select! {
                    biased;
                    c = body.next() => c,
                    _ = &mut deadline => {
                        st.failure = Some(timed_out());
                        break;
                    }
                };
                let at = Instant::now();
                match chunk {
                    None => {
                        clean_end = true;
                        break;
                    }
                    Some(Ok(bytes)) => {
                        sse.feed(&bytes);
                        while let Some(ev) = sse.next_event() {
                            if !st.on_event(&ev.data, at) {
                                break 'read;
                            }
                        }
                    }
                    Some(Err(e)) => {
                        st.failure = Some((ErrorClass::StreamCut, e));
                        break;
                    }
                }
            }
            if clean_end {
                self.give_back(sender);
            }
        } else {
            let whole = tokio::select! {
                biased;
                b = read_all(&mut body) => b,
                _ = &mut deadline => Err(timed_out()),
            };
            let at = Instant::now();
            match whole {
                Ok(bytes) => {
                    self.give_back(sender);
                    if !success {
                        rec.end_us = self.us(at);
                        return fail(
                            rec,
                            ErrorClass::from_status(status),
                            parse::error_message(&bytes),
                        );
                    }
                    match req.expect {
                        Expect::Completion => st.on_body(&bytes, at),
                        Expect::Embeddings => {
                            rec.end_us = self.us(at);
                            return embeddings(rec, &bytes, req);
                        }
                        Expect::Status => {
                            rec.end_us = self.us(at);
                            return rec;
                        }
                        Expect::Otlp => {
                            rec.end_us = self.us(at);
                            rec.payload.rejected_spans =
                                crate::otlp::rejected_spans(&bytes).min(rec.payload.spans);
                            return rec;
                        }
                    }
                }
                Err(failure) => st.failure = Some(failure),
            }
        }
        rec.end_us = self.now_us();
        if !success {
            let msg = st.failure.map(|f| f.1).unwrap_or_default();
            return fail(rec, ErrorClass::from_status(status), msg);
        }
        self.finish(rec, st, req)
    }

    fn finish(&self, mut rec: RequestRecord, st: StreamState, req: &Prepared) -> RequestRecord {
        rec.ttft_us = st
            .first_output
            .map(|t| self.us(t).saturating_sub(rec.start_us));
        rec.ttfo_us = st
            .first_visible
            .map(|t| self.us(t).saturating_sub(rec.start_us));
        rec.server_timing = st.server_timing;
        match st.usage.and_then(|u| u.completion_tokens) {
            Some(n) => {
                rec.output_tokens = n;
                rec.output_source = TokenSource::Usage;
                let k = self
                    .usage_checks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k < USAGE_CHECK_FIRST || k % USAGE_CHECK_EVERY == 0 {
                    let local = tokenizer::count(&st.text);
                    let diff = (n as f64 - local as f64).abs();
                    rec.usage_checked = true;
                    rec.usage_mismatch = diff > 0.10 * (n.max(1) as f64);
                }
            }
            None => {
                let local = tokenizer::count(&st.text);
                if local == 0 && st.output_chunks > 0 {
                    rec.output_tokens = st.output_chunks;
                    rec.output_source = TokenSource::Chunks;
                } else {
                    rec.output_tokens = local;
                    rec.output_source = TokenSource::Tokenizer;
                }
            }
        }
        if let Some(p) = st.usage.and_then(|u| u.prompt_tokens) {
            rec.input_tokens = p;
            rec.input_source = TokenSource::Usage;
        } else {
            rec.input_tokens = req.prompt_tokens;
            rec.input_source = TokenSource::Tokenizer;
        }
        rec.reasoning_tokens = st
            .usage
            .and_then(|u| u.completion_tokens_details)
            .and_then(|d| d.reasoning_tokens);
        if let Some((class, msg)) = st.end_class() {
            return fail(rec, class, msg);
        }
        rec.itl_us = st.gaps_us;
        if req.keep_text {
            rec.output_text = Some(st.text);
        }
        rec
    }
}

/// Check an embeddings answer: one vector per input; note their length.
fn embeddings(mut rec: RequestRecord, body: &[u8], req: &Prepared) -> RequestRecord {
    match parse::embeddings(body) {
        Ok(e) => {
            if e.vectors != req.texts {
                return fail(
                    rec,
                    ErrorClass::BadBody,
                    format!("{} vectors for {} inputs", e.vectors, req.texts),
                );
            }
            rec.dims = e.dims;
            match e.prompt_tokens {
                Some(n) => {
                    rec.input_tokens = n;
                    rec.input_source = TokenSource::Usage;
                }
                None => rec.input_source = TokenSource::Tokenizer,
            }
            rec
        }
        Err(msg) => fail(rec, ErrorClass::BadBody, msg),
    }
}

/// Read a body to its end. The error is a stream cut (the class the caller
/// records when the body stops early).
async fn read_all(body: &mut BodyStream) -> Result<Bytes, (ErrorClass, String)> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| (ErrorClass::StreamCut, e))?;
        match &first {
            None => first = Some(chunk),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok(if rest.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(rest)
    })
}

fn fail(mut rec: RequestRecord, class: ErrorClass, message: String) -> RequestRecord {
    rec.outcome = Outcome::Error(class);
    rec.error_message = Some(message);
    rec
}

/// An error with its sources, on one line ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_normalize() {
        assert_eq!(
            normalize_base("http://localhost:8000").unwrap(),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            normalize_base("http://localhost:8000/").unwrap(),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            normalize_base("http://localhost:8000/v1").unwrap(),
            "http://localhost:8000/v1"
        );
        assert_eq!(
            normalize_base("http://gw/openai/v1/").unwrap(),
            "http://gw/openai/v1"
        );
        assert!(normalize_base("localhost:8000").is_err());
        assert!(normalize_base("ftp://x").is_err());
    }
}
