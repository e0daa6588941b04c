//! Sending one request: reqwest, SSE, timings → `RequestRecord`.
//!
//! The client knows nothing of executors or load: it is given a prepared
//! request (path, serialized body, whether it streams, the local prompt
//! token count) and the run's origin instant, and returns what it measured.

mod decode;
mod dial;
pub use decode::ACCEPT_CODINGS;
pub mod grpc;
mod h1;
mod messages;
pub mod parse;
pub mod proxy;
mod responses;
mod scan;
mod send;
mod sse;
mod start;
mod text;
mod tokens;
mod tools;
mod usage;

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_TYPE, HOST,
};
use reqwest::Method;

use crate::tokenizer::Tokenizer;

/// Make ring the process's TLS provider (once; reqwest and tonic use it).
fn install_tls_provider() {
    static TLS: Once = Once::new();
    TLS.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest builder with the TLS provider installed and the process's
/// proxies (`--proxy`, the environment; see [`proxy`]).
pub fn http_builder() -> reqwest::ClientBuilder {
    install_tls_provider();
    let b = reqwest::Client::builder().no_proxy().tcp_nodelay(true);
    if proxy::proxies().any() {
        b.proxy(reqwest::Proxy::custom(|url| {
            proxy::proxies().for_url(url).map(|p| p.url.clone())
        }))
    } else {
        b
    }
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
    /// Tokens of the prompt's content (messages, prompt or inputs), counted
    /// locally.
    pub prompt_tokens: u32,
    /// Tokens a chat template adds around them, by OpenAI's accounting
    /// (the client corrects it by what the preflight measured).
    pub framing: u32,
    /// How to read the answer.
    pub expect: Expect,
    /// The report row this request also counts in.
    pub group: Option<crate::record::Group>,
    /// Inputs of an embeddings request.
    pub texts: u32,
    /// Pictures the request carries (`vision`).
    pub images: u32,
    /// Return the generated text in the record (for multi-turn workloads).
    pub keep_text: bool,
    /// Return the whole answer's body in the record, whatever its status
    /// (for workloads that judge answers: a probe).
    pub keep_body: bool,
    /// What the request carries (`otlp-traces`): copied into its record.
    pub payload: crate::record::Payload,
    /// Its share of the open model's schedule: 1 for every request, the
    /// trace's size over the mean when arrivals are paced by bytes.
    pub weight: f64,
    /// The id of the trace an OTLP export carries: copied into its record.
    pub exported_trace: Option<[u8; 16]>,
    /// The session's header (`--session-header`) and its id.
    pub session: Option<(HeaderName, HeaderValue)>,
    /// The LoRA adapter the body asks for (`--lora`): copied into its record.
    pub adapter: Option<std::sync::Arc<str>>,
}

/// What a successful answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A chat or text completion, whole or streamed.
    Completion,
    /// A Responses API answer (`/v1/responses`), whole or streamed.
    Responses,
    /// An Anthropic Messages answer (`/v1/messages`), whole or streamed.
    Messages,
    /// An embeddings list with one vector per input.
    Embeddings,
    /// A rerank answer: a score for every document (`results`).
    Rerank,
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
            framing: 0,
            expect,
            group: None,
            texts: 0,
            images: 0,
            keep_text: false,
            keep_body: false,
            payload: crate::record::Payload::default(),
            weight: 1.0,
            exported_trace: None,
            session: None,
            adapter: None,
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

/// Which HTTP stack sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// periscope's own HTTP/1.1 connections for http:// targets, reqwest
    /// for https://.
    #[default]
    Auto,
    /// periscope's own HTTP/1.1 connections (http:// only; `hyper`, its
    /// name before, is accepted too).
    #[value(alias = "hyper")]
    H1,
    /// reqwest (rustls) for every target.
    Reqwest,
}

/// How a client connects (`--http-engine`, `--http2`, `--connections`,
/// `--cacert`).
#[derive(Debug, Clone, Default)]
pub struct Connect {
    pub engine: Engine,
    /// HTTP/2: prior knowledge on http://, ALPN h2 on https://.
    pub http2: bool,
    /// HTTP/2 connections the streams are spread over (at least 1).
    pub connections: usize,
    /// Root certificates to trust besides the system's (PEM).
    pub cacert: Option<Vec<u8>>,
    /// OTLP trace exports over gRPC (`--otlp-protocol grpc`): the target
    /// is the endpoint's origin, every request an Export call.
    pub grpc: bool,
    /// Ask for compressed answers (`--compression`).
    pub compression: bool,
}

enum Transport {
    /// OTLP/gRPC exports (`Connect::grpc`).
    Grpc(grpc::Exporter),
    Reqwest {
        /// One client, or with HTTP/2 one per connection: reqwest keeps a
        /// single HTTP/2 connection per host and client, and multiplexes
        /// every request over it.
        http: Vec<reqwest::Client>,
        /// The next client, round robin.
        next: std::sync::atomic::AtomicUsize,
        urls: Vec<(&'static str, reqwest::Url)>,
    },
    H1 {
        pool: Arc<h1::Pool>,
        /// Connections for what the run asks besides its load (`/tokenize`),
        /// so that they neither wait for nor reuse the load's; none is kept.
        side: Arc<h1::Pool>,
        /// The base URL's path, e.g. `/v1`; through a proxy, after the
        /// origin (`http://host:port/v1`).
        base_path: String,
        /// Through a proxy, the target's origin (`http://host:port`) that
        /// goes before a path from the root; else empty.
        origin: String,
        /// The headers of every request, as they go on the wire.
        headers: Vec<u8>,
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
    /// Answers kept to check the server's usage at the end of the run.
    usage_sample: usage::UsageSample,
    /// Give every request a client span's ids and send them as `traceparent`.
    tracing: bool,
    /// What counts tokens the server's usage does not give.
    tokenizer: Arc<Tokenizer>,
    /// The proxy requests go through (no credentials), if any.
    proxy: Option<String>,
    /// The server's chat template's tokens less OpenAI's accounting of
    /// them (`Prepared::framing`), measured at the preflight (0 until then).
    template_delta: i64,
}

impl Client {
    /// `pool` is the most connections the load will hold open at once
    /// (over HTTP/1.1).
    pub fn with_engine(
        base: &str,
        token: Option<&str>,
        extra_headers: &[(String, String)],
        timeout: Duration,
        pool: usize,
        origin: Instant,
        connect: &Connect,
    ) -> anyhow::Result<Self> {
        let headers = request_headers(token, extra_headers, connect.compression)?;
        let base = base.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).with_context(|| format!("the target '{base}'"))?;
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let via = proxy::proxies().for_url(&url);
        let transport = if connect.grpc {
            // The key as gRPC clients send it: `authorization` metadata.
            let mut metadata = extra_headers.to_vec();
            if let Some(t) = token {
                metadata.insert(0, ("authorization".into(), format!("Bearer {t}")));
            }
            Transport::Grpc(
                grpc::Exporter::new(
                    &base,
                    &metadata,
                    timeout,
                    connect.connections,
                    connect.cacert.as_deref(),
                )
                .map_err(|e| anyhow::anyhow!(e))?,
            )
        } else if use_hyper(connect, &url, via)? {
            h1_transport(headers, &url, via, pool, connect_timeout)?
        } else {
            reqwest_transport(headers, &base, connect, pool, connect_timeout)?
        };
        Ok(Client {
            proxy: via.filter(|_| !connect.grpc).map(proxy::Proxy::shown),
            transport,
            base,
            timeout,
            origin,
            usage_sample: usage::UsageSample::default(),
            tracing: false,
            tokenizer: crate::tokenizer::default_tokenizer(),
            template_delta: 0,
        })
    }

    /// Close the connections kept for the next request (the load is over):
    /// what they hold is given back before the end-of-run work.
    pub fn close_idle(&self) {
        if let Transport::H1 { pool, side, .. } = &self.transport {
            pool.close_idle();
            side.close_idle();
        }
    }

    /// Count tokens the server's usage leaves out with `t` from now on.
    pub fn set_tokenizer(&mut self, t: Arc<Tokenizer>) {
        self.tokenizer = t;
    }

    /// The proxy requests go through, as it may be shown.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// How many tokens the server's chat template adds beyond OpenAI's
    /// accounting (`Prepared::framing`), added to local prompt counts from
    /// now on.
    pub fn set_template_delta(&mut self, delta: i64) {
        self.template_delta = delta;
    }

    /// A local count of a request's prompt: its content, its framing and
    /// what the preflight measured of the server's template.
    pub fn local_prompt_tokens(&self, req: &Prepared) -> u32 {
        let delta = match req.expect {
            Expect::Completion | Expect::Responses | Expect::Messages => self.template_delta,
            _ => 0,
        };
        req.prompt_tokens + (req.framing as i64 + delta).max(0) as u32
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

/// The headers every request carries: JSON, the key (marked sensitive:
/// never shown), the user's own, and the encodings asked for.
fn request_headers(
    token: Option<&str>,
    extra_headers: &[(String, String)],
    compression: bool,
) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(t) = token {
        let mut v = HeaderValue::from_str(&format!("Bearer {t}"))
            .context("the API key is not a valid header value")?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    for (k, v) in extra_headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).with_context(|| format!("header name '{k}'"))?;
        let value =
            HeaderValue::from_str(v).with_context(|| format!("the value of header '{k}'"))?;
        headers.insert(name, value);
    }
    if compression && !headers.contains_key(ACCEPT_ENCODING) {
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static(ACCEPT_CODINGS));
    }
    Ok(headers)
}

/// Whether `--http-engine` (and what the target and proxy need) picks the
/// HTTP/1.1 client of `h1.rs` over reqwest's.
fn use_hyper(
    connect: &Connect,
    url: &reqwest::Url,
    route: Option<&proxy::Proxy>,
) -> anyhow::Result<bool> {
    // An https:// proxy needs TLS to the proxy: reqwest's.
    let tls_proxy = route.is_some_and(|p| p.url.scheme() == "https");
    Ok(match connect.engine {
        Engine::Auto => url.scheme() == "http" && !connect.http2 && !tls_proxy,
        Engine::H1 if connect.http2 => {
            anyhow::bail!("--http2 needs --http-engine auto or reqwest")
        }
        Engine::H1 if url.scheme() != "http" => {
            anyhow::bail!(
                "--http-engine h1 speaks plain http:// only; use auto or reqwest for {}",
                url.as_str().trim_end_matches('/')
            )
        }
        Engine::H1 if tls_proxy => {
            anyhow::bail!(
                "--http-engine h1 reaches http:// proxies only; use auto or reqwest behind an https:// proxy"
            )
        }
        Engine::H1 => true,
        Engine::Reqwest => false,
    })
}

/// The HTTP/1.1 client's pools and the head every request writes: the
/// headers on the wire, and through a proxy the whole URL in the request
/// line (absolute form) and the proxy's credentials.
fn h1_transport(
    mut headers: HeaderMap,
    url: &reqwest::Url,
    route: Option<&proxy::Proxy>,
    pool: usize,
    connect_timeout: Duration,
) -> anyhow::Result<Transport> {
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
    let mut wire = Vec::new();
    for (name, value) in &headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    let (host, port, origin) = match route {
        Some(p) => {
            if let Some(auth) = &p.auth {
                wire.extend_from_slice(b"proxy-authorization: ");
                wire.extend_from_slice(auth.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            (p.host.as_str(), p.port, format!("http://{authority}"))
        }
        None => (host, port, String::new()),
    };
    Ok(Transport::H1 {
        pool: Arc::new(h1::Pool::new(host, port, pool.max(1), connect_timeout)),
        // None kept: a server with a thread per connection (llama.cpp's)
        // would hold a thread for each until its keep-alive timeout, and
        // the load would wait for them.
        side: Arc::new(h1::Pool::new(host, port, 0, connect_timeout)),
        base_path: format!("{origin}{}", url.path().trim_end_matches('/')),
        origin,
        headers: wire,
    })
}

/// reqwest's clients (one per connection under `--http2`, whose streams
/// would otherwise share one), the CA certificates asked for, and the
/// endpoints' URLs parsed once.
fn reqwest_transport(
    headers: HeaderMap,
    base: &str,
    connect: &Connect,
    pool: usize,
    connect_timeout: Duration,
) -> anyhow::Result<Transport> {
    let certs = match &connect.cacert {
        Some(pem) => {
            reqwest::Certificate::from_pem_bundle(pem).context("--cacert: not PEM certificates")?
        }
        None => Vec::new(),
    };
    let clients = if connect.http2 {
        connect.connections.max(1)
    } else {
        1
    };
    let http = (0..clients)
        .map(|_| {
            let mut b = http_builder()
                .default_headers(headers.clone())
                .connect_timeout(connect_timeout)
                .pool_max_idle_per_host(pool.max(1))
                .pool_idle_timeout(Duration::from_secs(90));
            if !certs.is_empty() {
                b = b.tls_certs_merge(certs.iter().cloned());
            }
            if connect.http2 {
                b = b.http2_prior_knowledge();
            }
            b.build().context("building the HTTP client")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let urls = KNOWN_PATHS
        .iter()
        .filter_map(|p| {
            reqwest::Url::parse(&format!("{base}/{p}"))
                .ok()
                .map(|u| (*p, u))
        })
        .collect();
    Ok(Transport::Reqwest {
        http,
        next: std::sync::atomic::AtomicUsize::new(0),
        urls,
    })
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
#[cfg(test)]
mod state_size {
    /// A request in flight holds its `send` future: at 10 000 concurrent
    /// streams, each KiB of it is 10 MiB of the process. Rare paths (gRPC
    /// exports, asking a server's `/tokenize`) are boxed so that their
    /// state is not every request's; this keeps them so (it was 5.4 KiB).
    #[test]
    fn a_requests_state_stays_small() {
        let c = super::Client::with_engine(
            "http://127.0.0.1:1/v1",
            None,
            &[],
            std::time::Duration::from_secs(1),
            1,
            std::time::Instant::now(),
            &Default::default(),
        )
        .unwrap();
        let req = super::Prepared::post(
            "chat/completions",
            bytes::Bytes::new(),
            super::Expect::Completion,
        );
        let f = c.send(&req, None);
        let size = std::mem::size_of_val(&f);
        assert!(size <= 3 * 1024, "send's future is {size} bytes");
    }
}
