//! Sending one request: reqwest, SSE, timings → `RequestRecord`.
//!
//! The client knows nothing of executors or load: it is given a prepared
//! request (path, serialized body, whether it streams, the local prompt
//! token count) and the run's origin instant, and returns what it measured.

pub mod parse;

use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

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
    /// Path under the base URL, e.g. `chat/completions`.
    pub path: &'static str,
    pub body: Bytes,
    pub stream: bool,
    /// Prompt tokens counted locally.
    pub prompt_tokens: u32,
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

/// API paths whose URLs are parsed once, not per request.
const KNOWN_PATHS: &[&str] = &["chat/completions", "completions", "embeddings", "models"];

/// Requests whose usage is always checked against a local count; after
/// these, one in [`USAGE_CHECK_EVERY`]. Tokenizing every answer would cost
/// more than the rest of the client's work per request.
const USAGE_CHECK_FIRST: u64 = 64;
const USAGE_CHECK_EVERY: u64 = 16;

/// The HTTP client of one run.
pub struct Client {
    http: reqwest::Client,
    base: String,
    urls: Vec<(&'static str, reqwest::Url)>,
    origin: Instant,
    usage_checks: std::sync::atomic::AtomicU64,
}

impl Client {
    /// `pool` is the most connections the load will hold open at once.
    pub fn new(
        base: &str,
        token: Option<&str>,
        extra_headers: &[(String, String)],
        timeout: Duration,
        pool: usize,
        origin: Instant,
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
        let http = http_builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(pool.max(1))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .context("building the HTTP client")?;
        let base = base.trim_end_matches('/').to_string();
        let urls = KNOWN_PATHS
            .iter()
            .filter_map(|p| {
                reqwest::Url::parse(&format!("{base}/{p}"))
                    .ok()
                    .map(|u| (*p, u))
            })
            .collect();
        Ok(Client {
            http,
            base,
            urls,
            origin,
            usage_checks: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Count times from `origin` (the start of the load) from now on.
    pub fn set_origin(&mut self, origin: Instant) {
        self.origin = origin;
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

    /// Send one request and measure it. `scheduled_us` is the intended send
    /// time (the open model's schedule), or `None` to use the actual one.
    pub async fn send(&self, req: &Prepared, scheduled_us: Option<u64>) -> RequestRecord {
        let start = Instant::now();
        let start_us = self.us(start);
        let mut rec = RequestRecord::new(scheduled_us.unwrap_or(start_us).min(start_us), start_us);
        rec.input_tokens = req.prompt_tokens;
        let url = match self.urls.iter().find(|(p, _)| *p == req.path) {
            Some((_, u)) => u.clone(),
            None => match reqwest::Url::parse(&format!("{}/{}", self.base, req.path)) {
                Ok(u) => u,
                Err(e) => {
                    rec.end_us = self.now_us();
                    return fail(rec, ErrorClass::Connect, format!("bad URL: {e}"));
                }
            },
        };
        let sent = self.http.post(url).body(req.body.clone()).send().await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                rec.end_us = self.now_us();
                let class = if e.is_timeout() {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Connect
                };
                return fail(rec, class, error_chain(&e));
            }
        };
        let status = resp.status().as_u16();
        rec.status = Some(status);
        if !resp.status().is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            rec.end_us = self.now_us();
            return fail(
                rec,
                ErrorClass::from_status(status),
                parse::error_message(&body),
            );
        }
        let mut st = StreamState::default();
        if req.stream {
            let mut events = resp.bytes_stream().eventsource();
            while let Some(ev) = events.next().await {
                let at = Instant::now();
                match ev {
                    Ok(ev) => {
                        if !st.on_event(&ev.data, at) {
                            break;
                        }
                    }
                    Err(EventStreamError::Transport(e)) => {
                        let class = if e.is_timeout() {
                            ErrorClass::Timeout
                        } else {
                            ErrorClass::StreamCut
                        };
                        st.failure = Some((class, error_chain(&e)));
                        break;
                    }
                    Err(e) => {
                        st.failure = Some((ErrorClass::BadBody, e.to_string()));
                        break;
                    }
                }
            }
        } else {
            match resp.bytes().await {
                Ok(body) => st.on_body(&body, Instant::now()),
                Err(e) => {
                    let class = if e.is_timeout() {
                        ErrorClass::Timeout
                    } else {
                        ErrorClass::StreamCut
                    };
                    st.failure = Some((class, error_chain(&e)));
                }
            }
        }
        rec.end_us = self.now_us();
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
        rec
    }
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
