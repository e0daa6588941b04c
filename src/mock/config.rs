//! What the mock is told to do: its flags (`periscope mock`, and
//! `run --mock --mock-args "…"`), validated into a [`MockConfig`] — the
//! latency model, the faults, the emulated servers' extras.

use std::time::Duration;

use hyper::header::HeaderMap;
use regex::Regex;

use crate::values::{count, parse_duration};

/// `periscope mock`'s flags, and `--mock-args` of `run --mock`.
#[derive(Debug, Clone, clap::Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: String,
    /// Require `Authorization: Bearer KEY` (401 otherwise).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Accept only these model names (404 model_not_found otherwise); default: any.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,

    /// Base time to first token.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub ttft: Duration,
    /// Added to the time to first token per prompt token (prefill cost).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub prefill_per_token: Duration,
    /// Gap between output tokens.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub itl: Duration,
    /// Relative jitter on ttft and every gap, e.g. 0.1 for ±10%.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub jitter: f64,
    /// Output tokens per response: N or MIN..MAX (default: max_tokens when given, else 64).
    #[arg(long, value_parser = parse_token_range)]
    pub output_tokens: Option<TokenRange>,
    /// Never send `usage` (as some gateways do).
    #[arg(long)]
    pub no_usage: bool,
    /// Report the mock's own timings as llama.cpp's server does: `timings`
    /// (prompt_ms, predicted_ms, prompt_n, predicted_n, cache_n) in the last
    /// chunk of a stream and in a whole answer, from its send stamps.
    #[arg(long)]
    pub timings: bool,
    /// Answer `GET PATH` with 200 `{"status":"ok"}`, as `/health` is
    /// answered: the plain endpoints of an API under test (e.g. the http
    /// presets' `/` and `/api/v1/llm/providers`). Repeatable, or comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PATH")]
    pub ok_path: Vec<String>,
    /// Count the values of this request header (`GET /mock/headers`):
    /// what a client sent, e.g. `X-LLMTrace-Agent-ID`. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub count_header: Vec<String>,
    /// Count the body's `model` too (`GET /mock/headers`: `model`, and
    /// `NAME+model` pairs with each --count-header's value): which adapter
    /// each session asked for.
    #[arg(long)]
    pub count_model: bool,
    /// Serve llama.cpp's `POST /tokenize {"content"}` (counted with cl100k_base).
    #[arg(long)]
    pub tokenize: bool,
    /// Serve `GET /metrics` in llama.cpp's names (`llamacpp:`, as
    /// `llama-server --metrics` does) instead of vLLM's.
    #[arg(long)]
    pub metrics_llamacpp: bool,
    /// Charge prefill only for the part of a prompt that does not repeat a recent prompt's prefix.
    #[arg(long)]
    pub prefix_cache: bool,

    /// Fixed latency of an embeddings request.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub embed_latency: Duration,
    /// Added latency per input text of an embeddings request.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub embed_per_text: Duration,
    /// Latency of a trace query (GET /api/search, /api/traces/ID).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub query_latency: Duration,
    /// Dimensions of embedding vectors.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>, default_value_t = 1536)]
    pub dims: usize,

    /// Share of requests answered with an error status.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Statuses of injected errors, chosen evenly.
    #[arg(long, value_delimiter = ',', default_value = "500")]
    pub error_status: Vec<u16>,
    /// Requests per second served; beyond it, 429 with Retry-After.
    #[arg(long, allow_negative_numbers = true, value_name = "RPS")]
    pub rate_limit: Option<f64>,
    /// Requests served at once, like an inference server's batch slots; the
    /// rest wait in line (first come, first served) and their latency grows.
    #[arg(long, allow_negative_numbers = true, value_parser = count::<usize>, value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Share of streams closed mid-way, without finish_reason or [DONE].
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub cut_stream_rate: f64,
    /// Share of streams with one chunk that is not JSON.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Share of the spans of each OTLP export (POST /v1/traces) rejected
    /// with a partial success.
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.0)]
    pub otlp_reject_rate: f64,
    /// Share of responses after which the mock closes the connection,
    /// though it advertised keep-alive (as llama.cpp's server does after
    /// every streamed answer): the client's next request on it finds it
    /// closed.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        value_name = "RATE"
    )]
    pub close_after_response: f64,
    /// Delay before the response headers are sent.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub slow_headers: Duration,
    /// Prompts matching this regex get a refusal (default: common prompt-injection phrases).
    #[arg(long, value_name = "REGEX")]
    pub block_pattern: Option<String>,
    /// Turn the guardrail emulation off.
    #[arg(long)]
    pub no_guardrail: bool,

    /// Proxy mode: forward every request to this URL instead of answering.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Proxy mode: delay added before forwarding each request.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub added_latency: Duration,
    /// Proxy mode: read each upstream answer whole before sending it on, as a
    /// gateway that buffers streams does (chunks then arrive all at once).
    #[arg(long, requires = "upstream")]
    pub buffer_responses: bool,
    /// Seed of the mock's random choices (faults, jitter, output lengths).
    #[arg(long, allow_negative_numbers = true, value_parser = count::<u64>)]
    pub seed: Option<u64>,
}

/// The guardrail's default: common prompt-injection phrasings.
pub const DEFAULT_BLOCK_PATTERN: &str = r"(?i)(ignore\s+(all\s+)?(of\s+)?(the\s+|your\s+)?(previous|prior|above|earlier)\s+(instructions|rules|prompts?)|disregard\s+(all\s+)?(your\s+|the\s+)?(previous\s+|prior\s+)?(instructions|rules|guidelines)|you\s+are\s+now\s+(dan|in\s+developer\s+mode|unrestricted)|(reveal|print|show|repeat)\s+(me\s+)?(your|the)\s+(system\s+prompt|hidden\s+instructions|initial\s+instructions)|pretend\s+(that\s+)?(you\s+have|there\s+are)\s+no\s+(rules|restrictions|guidelines)|jailbreak)";

/// Most output tokens one mock response will produce.
pub(super) const MAX_OUTPUT_TOKENS: u32 = 100_000;
/// Largest request body accepted.
pub(super) const MAX_BODY: usize = 64 * 1024 * 1024;

/// Latency model; every field can be overridden per request by an
/// `x-mock-…` header (e.g. `x-mock-ttft: 250ms`).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub ttft: Duration,
    pub prefill_per_token: Duration,
    pub itl: Duration,
    pub jitter: f64,
    pub output_tokens: Option<TokenRange>,
    pub embed_latency: Duration,
    pub embed_per_text: Duration,
    /// Latency of a trace query.
    pub query_latency: Duration,
    pub slow_headers: Duration,
    /// Whether `usage` is sent at all.
    pub usage: bool,
}

impl Latency {
    /// Apply `x-mock-*` request headers.
    pub(super) fn with_headers(mut self, headers: &HeaderMap) -> Result<Self, String> {
        for (name, value) in headers {
            let name = name.as_str();
            let Some(key) = name.strip_prefix("x-mock-") else {
                continue;
            };
            let v = value
                .to_str()
                .map_err(|_| format!("header {name} is not text"))?;
            let dur = || parse_duration(v).map_err(|e| format!("header {name}: {e}"));
            match key {
                "ttft" => self.ttft = dur()?,
                "prefill-per-token" => self.prefill_per_token = dur()?,
                "itl" => self.itl = dur()?,
                "embed-latency" => self.embed_latency = dur()?,
                "embed-per-text" => self.embed_per_text = dur()?,
                "slow-headers" => self.slow_headers = dur()?,
                "jitter" => {
                    self.jitter = v
                        .parse::<f64>()
                        .ok()
                        .filter(|j| (0.0..=1.0).contains(j))
                        .ok_or_else(|| format!("header {name}: expected a number in 0..1"))?
                }
                "output-tokens" => {
                    self.output_tokens = Some(
                        crate::mock::parse_token_range(v)
                            .map_err(|e| format!("header {name}: {e}"))?,
                    )
                }
                "usage" => {
                    self.usage = match v {
                        "true" | "on" | "1" => true,
                        "false" | "off" | "0" => false,
                        _ => return Err(format!("header {name}: expected true or false")),
                    }
                }
                _ => {}
            }
        }
        Ok(self)
    }
}

/// Output length of the mock: a fixed count or a uniform range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRange {
    Fixed(u32),
    Range(u32, u32),
}

/// Parse `64` or `16..128`.
pub fn parse_token_range(s: &str) -> Result<TokenRange, String> {
    let bad = || format!("'{s}': expected a token count N or a range MIN..MAX, e.g. 16..128");
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u32 = a.trim().parse().map_err(|_| bad())?;
            let b: u32 = b.trim().parse().map_err(|_| bad())?;
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok(TokenRange::Range(a, b))
        }
        None => {
            let n: u32 = s.trim().parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(TokenRange::Fixed(n))
        }
    }
}

/// Injected faults.
#[derive(Debug, Clone)]
pub struct Faults {
    pub error_rate: f64,
    pub error_status: Vec<u16>,
    pub rate_limit: Option<f64>,
    pub cut_stream_rate: f64,
    pub malformed_rate: f64,
    pub otlp_reject_rate: f64,
    /// Close the connection after this share of responses.
    pub close_after_response: f64,
}

/// Everything the mock is told to do.
#[derive(Debug, Clone)]
pub struct MockConfig {
    pub api_key: Option<String>,
    pub models: Vec<String>,
    pub latency: Latency,
    pub faults: Faults,
    pub prefix_cache: bool,
    pub dims: usize,
    pub guardrail: Option<Regex>,
    pub upstream: Option<String>,
    pub added_latency: Duration,
    pub seed: Option<u64>,
    /// Requests served at once; the rest queue.
    pub max_concurrency: Option<usize>,
    /// Proxy mode: answers are read whole before they are sent on.
    pub buffer_responses: bool,
    /// Send llama.cpp-style `timings`.
    pub timings: bool,
    /// Serve `POST /tokenize`.
    pub tokenize: bool,
    /// `GET /metrics` in llama.cpp's names.
    pub metrics_llamacpp: bool,
    /// Paths answered as `/health` is.
    pub ok_paths: Vec<String>,
    /// Request headers whose values are counted (lower case).
    pub count_headers: Vec<String>,
    /// Count the body's model, alone and with each counted header's value.
    pub count_model: bool,
}

pub(super) fn rate(name: &str, v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("--{name} must be between 0 and 1, got {v}"))
    }
}

impl MockConfig {
    /// Validate `periscope mock` flags.
    pub fn from_args(a: &MockArgs) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&a.jitter) {
            return Err(format!(
                "--jitter must be between 0 and 1, got {}",
                a.jitter
            ));
        }
        if a.error_status.iter().any(|s| !(100..=599).contains(s)) {
            return Err("--error-status takes HTTP statuses between 100 and 599".into());
        }
        if let Some(r) = a.rate_limit {
            if !(r > 0.0 && r.is_finite()) {
                return Err(format!(
                    "--rate-limit must be a positive number of requests per second, got {r}"
                ));
            }
        }
        if a.max_concurrency == Some(0) {
            return Err("--max-concurrency must be at least 1".into());
        }
        if a.dims == 0 || a.dims > 65_536 {
            return Err(format!(
                "--dims must be between 1 and 65536, got {}",
                a.dims
            ));
        }
        let guardrail = if a.no_guardrail {
            None
        } else {
            let pattern = a.block_pattern.as_deref().unwrap_or(DEFAULT_BLOCK_PATTERN);
            Some(
                Regex::new(pattern)
                    .map_err(|e| format!("--block-pattern is not a valid regex: {e}"))?,
            )
        };
        if let Some(p) = a.ok_path.iter().find(|p| !p.starts_with('/')) {
            return Err(format!(
                "--ok-path '{p}' must be a path from the root, e.g. /api/v1/status"
            ));
        }
        let upstream = match &a.upstream {
            Some(u) => {
                let url = reqwest::Url::parse(u)
                    .map_err(|e| format!("--upstream '{u}' is not a URL: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "--upstream '{u}' must be an http:// or https:// URL"
                    ));
                }
                Some(u.trim_end_matches('/').to_string())
            }
            None => None,
        };
        Ok(MockConfig {
            api_key: a.api_key.clone(),
            models: a.models.clone(),
            latency: Latency {
                ttft: a.ttft,
                prefill_per_token: a.prefill_per_token,
                itl: a.itl,
                jitter: a.jitter,
                output_tokens: a.output_tokens,
                embed_latency: a.embed_latency,
                embed_per_text: a.embed_per_text,
                query_latency: a.query_latency,
                slow_headers: a.slow_headers,
                usage: !a.no_usage,
            },
            faults: Faults {
                error_rate: rate("error-rate", a.error_rate)?,
                error_status: if a.error_status.is_empty() {
                    vec![500]
                } else {
                    a.error_status.clone()
                },
                rate_limit: a.rate_limit,
                cut_stream_rate: rate("cut-stream-rate", a.cut_stream_rate)?,
                malformed_rate: rate("malformed-rate", a.malformed_rate)?,
                otlp_reject_rate: rate("otlp-reject-rate", a.otlp_reject_rate)?,
                close_after_response: rate("close-after-response", a.close_after_response)?,
            },
            prefix_cache: a.prefix_cache,
            dims: a.dims,
            guardrail,
            upstream,
            added_latency: a.added_latency,
            seed: a.seed,
            max_concurrency: a.max_concurrency,
            buffer_responses: a.buffer_responses,
            timings: a.timings,
            tokenize: a.tokenize,
            metrics_llamacpp: a.metrics_llamacpp,
            ok_paths: a.ok_path.clone(),
            count_headers: a
                .count_header
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            count_model: a.count_model,
        })
    }

    /// Parse a `--mock-args "…"` string as `periscope mock` flags.
    pub fn from_flag_string(s: &str) -> Result<Self, String> {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        #[command(name = "--mock-args", no_binary_name = true)]
        struct Wrapper {
            #[command(flatten)]
            args: MockArgs,
        }
        let words = s.split_whitespace();
        let w = Wrapper::try_parse_from(words).map_err(|e| {
            let msg = e.to_string();
            let first = msg
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            format!("--mock-args: {first}")
        })?;
        Self::from_args(&w.args)
    }
}
