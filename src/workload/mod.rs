//! Workloads: what each request is.
//!
//! A workload builds the requests a virtual user sends; it knows nothing of
//! load or timing. Each one is a module behind [`Workload`], chosen by its
//! [`WorkloadKind`]. A workload hands every VU a [`Session`]: most sessions are
//! stateless, but multi-turn ones (a growing conversation, an IDE's code
//! buffer) see each answer before building their next request.

pub mod affinity;
mod chat;
mod embeddings;
mod http;
mod kind;
mod multiturn;
pub mod otlp;
pub mod probe;
mod prompt;
mod rerank;
mod tools;
pub mod trace_query;
mod vision;

use std::sync::Arc;

use serde::Serialize;

pub use affinity::{Assignment, LoraSpec};
pub use chat::{Chat, ChatKind};
pub use embeddings::Embeddings;
pub use http::{parse_endpoint, Endpoint, Http};
pub use kind::{
    LlmApi, WorkloadKind, DEFAULT_EMBEDDING_INPUT, DEFAULT_EMBEDDING_MODEL, DEFAULT_MODEL,
    DEFAULT_PROMPT,
};
pub use multiturn::{MultiTurn, MultiTurnKind};
pub use prompt::{synthetic_text, PromptSource};
pub use rerank::Rerank;
pub use tools::ToolCalls;
pub use vision::{parse_size, synthetic_image, ImageFormat, Images, Vision};

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
    /// The next request, or None once this session has no more to send (a
    /// corpus sent once through): the executor then ends its VU, and the
    /// load once every VU has ended so.
    fn next(&mut self, turn: Turn) -> Option<Prepared>;
    /// The answer to the last request (its text when it asked to keep it).
    fn observe(&mut self, _rec: &RequestRecord) {}
}

/// Builds sessions.
pub trait Workload: Send + Sync {
    /// The workload's name, as on the command line.
    fn name(&self) -> &'static str;
    /// The answer to a request of the open model, whose sessions live for
    /// one request (its body when the request asked to keep it).
    fn answered(&self, _rec: &RequestRecord) {}
    /// The request for one record of a replayed trace (`turn`: its place in
    /// its session); None for a workload that cannot replay one.
    fn for_record(
        &self,
        _rec: &crate::replay::Record,
        _turn: Option<u32>,
        _rng: &mut fastrand::Rng,
    ) -> Option<Prepared> {
        None
    }
    fn session(&self, vu: u64) -> Box<dyn Session>;
    /// A cheap request to check the target before the load (one output token,
    /// not streamed).
    fn preflight(&self) -> Prepared;
    /// Whether arrivals are spaced by each request's weight (its size, with
    /// `--mb-per-s`) rather than one per 1/rate.
    fn paced_by_weight(&self) -> bool {
        false
    }

    /// Requests whose answers (`keep_body`) tell the workload what to ask
    /// for before the load starts: a query-only run's searches, for the
    /// trace ids its lookups fill in. None for most workloads.
    fn discovery(&self) -> Vec<Prepared> {
        Vec::new()
    }

    /// Learn from the answer of a [`Workload::discovery`] request; how many
    /// things (trace ids) it found.
    fn discovered(&self, _body: &[u8]) -> usize {
        0
    }

    /// What the load needs that discovery did not find, as a warning.
    fn missing(&self) -> Option<String> {
        None
    }
}

/// A VU's random numbers: its own stream, different on every run.
fn session_rng(vu: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(vu.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fastrand::u64(..))
}

/// Everything a workload may be told, resolved from flags, environment and
/// scenario files (`plan.rs`). Each workload reads the fields it needs.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
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
    /// Turns of a multi-turn session before it starts over (tool-calls:
    /// `--tool-turns`).
    pub turns: u32,
    /// The API of a workload that speaks either (`--api`).
    pub api: LlmApi,
    /// The pictures of every `vision` request.
    pub images: Images,
    /// Documents of every `rerank` request.
    pub documents: u32,
    /// Inputs per embeddings request, one load stage per size.
    pub batch_sizes: Vec<u32>,
    /// Plain HTTP endpoints with weights.
    pub endpoints: Vec<Endpoint>,
    /// The endpoints of each stage of the load shape, where a scenario's
    /// stage names its own (an empty entry: `endpoints`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_endpoints: Vec<Vec<Endpoint>>,
    /// Prompts from a dataset, cycled.
    #[serde(skip)]
    pub dataset: Option<Arc<Vec<String>>>,
    /// What `otlp-traces` sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<crate::otlp::OtlpSpec>,
    /// The script a scripted run runs (`periscope run my-test.js`).
    #[serde(skip)]
    pub script: Option<Arc<crate::script::Script>>,
    /// A replayed trace's prompt blocks (`--block-tokens`), and whether to
    /// ask the server to ignore the end of sequence (`--ignore-eos`).
    #[serde(skip)]
    pub block_tokens: u32,
    #[serde(skip)]
    pub ignore_eos: bool,
    /// The header naming a multi-turn session (`--session-header`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_header: Option<String>,
    /// LoRA adapters the requests spread over (`--lora`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraSpec>,
}

/// The workload a spec names, its prompts counted (and synthetic ones made)
/// with `tok`.
pub fn build(spec: &WorkloadSpec, tok: &Arc<Tokenizer>) -> Arc<dyn Workload> {
    let inner = build_kind(spec, tok);
    let header = spec
        .session_header
        .as_deref()
        .and_then(|h| reqwest::header::HeaderName::from_bytes(h.as_bytes()).ok());
    let llm = !matches!(
        spec.kind,
        WorkloadKind::Http | WorkloadKind::OtlpTraces | WorkloadKind::Script
    );
    if llm && (header.is_some() || spec.lora.is_some()) {
        Arc::new(affinity::Shared(Arc::new(affinity::Affinity::new(
            inner,
            &spec.model,
            header,
            spec.lora.clone(),
        ))))
    } else {
        inner
    }
}

fn build_kind(spec: &WorkloadSpec, tok: &Arc<Tokenizer>) -> Arc<dyn Workload> {
    match spec.kind {
        WorkloadKind::Completions => Arc::new(Chat::new(spec, ChatKind::Chat, tok)),
        WorkloadKind::Responses => Arc::new(Chat::new(spec, ChatKind::Responses, tok)),
        WorkloadKind::Messages => Arc::new(Chat::new(spec, ChatKind::Messages, tok)),
        WorkloadKind::ToolCalls => Arc::new(ToolCalls::new(spec, tok)),
        WorkloadKind::Vision => Arc::new(Vision::new(spec, tok)),
        WorkloadKind::Rerank => Arc::new(Rerank::new(spec, tok)),
        WorkloadKind::TextCompletions => Arc::new(Chat::new(spec, ChatKind::Text, tok)),
        WorkloadKind::PrefillHeavy => Arc::new(Chat::new(spec, ChatKind::PrefillHeavy, tok)),
        WorkloadKind::DecodeHeavy => Arc::new(Chat::new(spec, ChatKind::DecodeHeavy, tok)),
        WorkloadKind::Embeddings => Arc::new(Embeddings::new(spec, false, tok)),
        WorkloadKind::BatchEmbeddings => Arc::new(Embeddings::new(spec, true, tok)),
        WorkloadKind::PrefixCaching => {
            Arc::new(MultiTurn::new(spec, MultiTurnKind::PrefixCaching, tok))
        }
        WorkloadKind::Conversation => {
            Arc::new(MultiTurn::new(spec, MultiTurnKind::Conversation, tok))
        }
        WorkloadKind::Http => Arc::new(Http::new(spec)),
        // A script's VUs run the script; the preflight (when asked) is a chat's.
        WorkloadKind::Script => Arc::new(Chat::new(spec, ChatKind::Chat, tok)),
        WorkloadKind::OtlpTraces => {
            let o = spec
                .otlp
                .clone()
                .expect("the plan sets the OTLP spec of otlp-traces");
            match &o.query_only {
                Some(q) => Arc::new(trace_query::TraceQueries::query_only(
                    q.clone(),
                    o.recent.clone(),
                )),
                None => Arc::new(otlp::OtlpTraces::new(o)),
            }
        }
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
    match spec.kind {
        WorkloadKind::PrefillHeavy | WorkloadKind::DecodeHeavy => v.extend(chat::known_texts()),
        WorkloadKind::PrefixCaching | WorkloadKind::Conversation => {
            v.extend(multiturn::known_texts())
        }
        WorkloadKind::ToolCalls => v.extend(tools::known_texts()),
        WorkloadKind::Rerank => v.extend(rerank::known_texts()),
        _ => {}
    }
    v
}
