//! Workloads: what each request is.
//!
//! A workload builds the requests a virtual user sends; it knows nothing of
//! load or timing. Each one is a module behind [`Workload`], chosen by name
//! ([`NAMES`]). A workload hands every VU a [`Session`]: most sessions are
//! stateless, but multi-turn ones (a growing conversation, an IDE's code
//! buffer) see each answer before building their next request.

mod chat;
mod embeddings;
mod http;
mod multiturn;
pub mod otlp;
mod prompt;
pub mod trace_query;

use std::sync::Arc;

use serde::Serialize;

pub use chat::{Chat, ChatKind};
pub use embeddings::Embeddings;
pub use http::{parse_endpoint, Endpoint, Http};
pub use multiturn::{MultiTurn, MultiTurnKind};
pub use prompt::{synthetic_text, PromptSource};

use crate::client::Prepared;
use crate::record::RequestRecord;
use crate::tokenizer::Tokenizer;

/// Where a VU is when it asks for its next request.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub vu: u64,
    /// Requests this VU sent before (the open model: the arrival index).
    pub iteration: u64,
    /// The stage of the load shape now.
    pub stage: usize,
}

/// The requests of one VU.
pub trait Session: Send {
    fn next(&mut self, turn: Turn) -> Prepared;
    /// The answer to the last request (its text when it asked to keep it).
    fn observe(&mut self, _rec: &RequestRecord) {}
}

/// Builds sessions.
pub trait Workload: Send + Sync {
    /// The workload's name, as on the command line.
    fn name(&self) -> &'static str;
    fn session(&self, vu: u64) -> Box<dyn Session>;
    /// A cheap request to check the target before the load (one output token,
    /// not streamed).
    fn preflight(&self) -> Prepared;
    /// Whether arrivals are spaced by each request's weight (its size, with
    /// `--mb-per-s`) rather than one per 1/rate.
    fn paced_by_weight(&self) -> bool {
        false
    }
}

/// Everything a workload may be told, resolved from flags, environment and
/// scenario files (`plan.rs`). Each workload reads the fields it needs.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSpec {
    pub name: String,
    pub model: String,
    pub system: Option<String>,
    /// The fixed user prompt, when no synthetic length or dataset is asked.
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub stream: bool,
    /// Ask chat streams for usage (`stream_options.include_usage`).
    pub stream_usage: bool,
    /// Synthetic prompts of this many tokens (mean), new on every request.
    pub input_tokens: Option<u32>,
    pub input_tokens_stddev: f64,
    /// Tokens every synthetic prompt shares at its start.
    pub shared_prefix: u32,
    /// Turns of a multi-turn session before it starts over.
    pub turns: u32,
    /// Inputs per embeddings request, one load stage per size.
    pub batch_sizes: Vec<u32>,
    /// Plain HTTP endpoints with weights.
    pub endpoints: Vec<Endpoint>,
    /// Prompts from a dataset, cycled.
    #[serde(skip)]
    pub dataset: Option<Arc<Vec<String>>>,
    /// What `otlp-traces` sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<crate::otlp::OtlpSpec>,
}

/// The workload a spec names, its prompts counted (and synthetic ones made)
/// with `tok`.
pub fn build(spec: &WorkloadSpec, tok: &Arc<Tokenizer>) -> Arc<dyn Workload> {
    match spec.name.as_str() {
        "text-completions" => Arc::new(Chat::new(spec, ChatKind::Text, tok)),
        "prefill-heavy" => Arc::new(Chat::new(spec, ChatKind::PrefillHeavy, tok)),
        "decode-heavy" => Arc::new(Chat::new(spec, ChatKind::DecodeHeavy, tok)),
        "embeddings" => Arc::new(Embeddings::new(spec, false, tok)),
        "batch-embeddings" => Arc::new(Embeddings::new(spec, true, tok)),
        "prefix-caching" => Arc::new(MultiTurn::new(spec, MultiTurnKind::PrefixCaching, tok)),
        "conversation" => Arc::new(MultiTurn::new(spec, MultiTurnKind::Conversation, tok)),
        "http" => Arc::new(Http::new(spec)),
        "otlp-traces" => Arc::new(otlp::OtlpTraces::new(
            spec.otlp
                .clone()
                .expect("the plan sets the OTLP spec of otlp-traces"),
        )),
        _ => Arc::new(Chat::new(spec, ChatKind::Chat, tok)),
    }
}

/// The texts a spec's requests are built from that are known before the
/// run (prompts, system messages, datasets), for a tokenizer that must be
/// asked (the server's) to count them once at the start.
pub fn known_texts(spec: &WorkloadSpec) -> Vec<String> {
    let mut v: Vec<String> = vec![spec.prompt.clone()];
    v.extend(spec.system.clone());
    if let Some(d) = &spec.dataset {
        v.extend(d.iter().cloned());
    }
    match spec.name.as_str() {
        "prefill-heavy" | "decode-heavy" => v.extend(chat::known_texts()),
        "prefix-caching" | "conversation" => v.extend(multiturn::known_texts()),
        _ => {}
    }
    v
}

/// Every workload name, for `periscope scenarios` and error messages.
pub const NAMES: &[(&str, &str)] = &[
    (
        "completions",
        "chat completions (POST /v1/chat/completions), streamed by default",
    ),
    (
        "text-completions",
        "legacy text completions (POST /v1/completions)",
    ),
    (
        "embeddings",
        "one input per POST /v1/embeddings (ENABLE_BATCH_MODE=true: batch-embeddings)",
    ),
    (
        "batch-embeddings",
        "embeddings of --batch-sizes inputs, one stage per size: latency, per-text latency, texts/s",
    ),
    (
        "prefix-caching",
        "IDE-style: each VU's code buffer grows by every completion; ttft and prompt tokens by turn",
    ),
    (
        "conversation",
        "multi-turn chat with growing history (--turns N); ttft by turn",
    ),
    (
        "prefill-heavy",
        "long synthetic documents (--input-tokens, default 4000), short answers; prefill rate",
    ),
    (
        "decode-heavy",
        "short prompts, long answers (--max-tokens, default 1024); decode rate",
    ),
    (
        "http",
        "plain HTTP endpoints with weights (--endpoint GET:/health:3); status codes per endpoint",
    ),
    (
        "otlp-traces",
        "synthetic GenAI agent traces over OTLP/HTTP (--endpoint URL, --rate or --mb-per-s, --mix); traces/s, spans/s, MB/s",
    ),
];

/// The default model of a workload, and the environment variable that sets it.
pub fn model_env(name: &str) -> &'static str {
    match name {
        "embeddings" | "batch-embeddings" => "OPENAI_EMBEDDING_MODEL",
        "prefix-caching" => "OPENAI_CODING_MODEL",
        _ => "OPENAI_COMPLETION_MODEL",
    }
}

/// The default `max_tokens` of a workload.
pub fn default_max_tokens(name: &str) -> u32 {
    match name {
        "prefill-heavy" => 16,
        "decode-heavy" => 1024,
        _ => 64,
    }
}
