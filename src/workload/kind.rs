//! Every workload periscope runs, by kind: its name on the command line,
//! what it is for, its defaults (model and the variable that sets it,
//! prompt, output length, turns) and what it can take. Adding a workload
//! is adding an arm here and a module of its own.

use serde::Serialize;

use crate::endpoint::Api;

/// Default model, as in the k6 suite periscope replaces.
pub const DEFAULT_MODEL: &str = "gpt-3.5-turbo";
/// Default prompt of the completions workloads.
pub const DEFAULT_PROMPT: &str =
    "Explain in a few sentences how a load balancer spreads requests across a pool of servers.";
/// [`DEFAULT_PROMPT`]'s tokens in `cl100k_base` (a test checks it): a
/// default run needs no vocabulary before its first request.
pub const DEFAULT_PROMPT_CL100K: u32 = 19;
/// Default embeddings model and input.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";
/// Default rerank model.
pub const DEFAULT_RERANK_MODEL: &str = "rerank-english-v3.0";
pub const DEFAULT_EMBEDDING_INPUT: &str =
    "A load balancer spreads incoming requests across a pool of servers.";

/// The API a workload that can speak either sends (`--api`): chat
/// completions or OpenAI's Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LlmApi {
    #[default]
    Chat,
    Responses,
}

/// A workload; serialized as its name (the result's `plan.workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    #[serde(alias = "chat")]
    Completions,
    Responses,
    Messages,
    ToolCalls,
    Vision,
    TextCompletions,
    Embeddings,
    BatchEmbeddings,
    Rerank,
    PrefixCaching,
    Conversation,
    PrefillHeavy,
    DecodeHeavy,
    Http,
    OtlpTraces,
    /// A k6-style JavaScript test (`periscope run my-test.js`): not in
    /// [`WorkloadKind::ALL`], since it is named by its file.
    Script,
}

impl WorkloadKind {
    /// Every workload, in the order `periscope scenarios` lists them.
    pub const ALL: &'static [WorkloadKind] = &[
        WorkloadKind::Completions,
        WorkloadKind::Responses,
        WorkloadKind::Messages,
        WorkloadKind::ToolCalls,
        WorkloadKind::Vision,
        WorkloadKind::TextCompletions,
        WorkloadKind::Embeddings,
        WorkloadKind::BatchEmbeddings,
        WorkloadKind::Rerank,
        WorkloadKind::PrefixCaching,
        WorkloadKind::Conversation,
        WorkloadKind::PrefillHeavy,
        WorkloadKind::DecodeHeavy,
        WorkloadKind::Http,
        WorkloadKind::OtlpTraces,
    ];

    /// The workload a name on the command line or in a file means (`chat`
    /// is `completions`).
    pub fn parse(name: &str) -> Option<WorkloadKind> {
        // (Serde reads the same names: a test checks both ways.)
        match name {
            "chat" => return Some(WorkloadKind::Completions),
            "script" => return Some(WorkloadKind::Script),
            _ => {}
        }
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Completions => "completions",
            WorkloadKind::Responses => "responses",
            WorkloadKind::Messages => "messages",
            WorkloadKind::ToolCalls => "tool-calls",
            WorkloadKind::Vision => "vision",
            WorkloadKind::TextCompletions => "text-completions",
            WorkloadKind::Embeddings => "embeddings",
            WorkloadKind::BatchEmbeddings => "batch-embeddings",
            WorkloadKind::Rerank => "rerank",
            WorkloadKind::PrefixCaching => "prefix-caching",
            WorkloadKind::Conversation => "conversation",
            WorkloadKind::PrefillHeavy => "prefill-heavy",
            WorkloadKind::DecodeHeavy => "decode-heavy",
            WorkloadKind::Http => "http",
            WorkloadKind::OtlpTraces => "otlp-traces",
            WorkloadKind::Script => "script",
        }
    }

    /// What it sends, and the figure it exists for.
    pub fn description(self) -> &'static str {
        match self {
            WorkloadKind::Completions => {
                "chat completions (POST /v1/chat/completions), streamed by default"
            }
            WorkloadKind::Responses => {
                "OpenAI's Responses API (POST /v1/responses), streamed by default"
            }
            WorkloadKind::Messages => {
                "Anthropic's Messages API (POST /v1/messages, x-api-key), streamed by default"
            }
            WorkloadKind::ToolCalls => {
                "an agent's loop: chat (or --api responses) with tools; each call answered, --tool-turns N turns; ttft by turn"
            }
            WorkloadKind::Vision => {
                "chat (or --api responses) with --images N new pictures of --image-size WxH as data URLs; image tokens by usage"
            }
            WorkloadKind::TextCompletions => "legacy text completions (POST /v1/completions)",
            WorkloadKind::Embeddings => {
                "one input per POST /v1/embeddings (ENABLE_BATCH_MODE=true: batch-embeddings)"
            }
            WorkloadKind::BatchEmbeddings => {
                "embeddings of --batch-sizes inputs, one stage per size: latency, per-text latency, texts/s"
            }
            WorkloadKind::Rerank => {
                "a query and --documents N documents per POST /v1/rerank; latency, documents/s, per-document latency"
            }
            WorkloadKind::PrefixCaching => {
                "IDE-style: each VU's code buffer grows by every completion; ttft and prompt tokens by turn"
            }
            WorkloadKind::Conversation => {
                "multi-turn chat with growing history (--turns N); ttft by turn"
            }
            WorkloadKind::PrefillHeavy => {
                "long synthetic documents (--input-tokens, default 4000), short answers; prefill rate"
            }
            WorkloadKind::DecodeHeavy => {
                "short prompts, long answers (--max-tokens, default 1024); decode rate"
            }
            WorkloadKind::Http => {
                "plain HTTP endpoints with weights (--endpoint GET:/health:3); status codes per endpoint"
            }
            WorkloadKind::OtlpTraces => {
                "synthetic GenAI agent traces over OTLP/HTTP (--endpoint URL, --rate or --mb-per-s, --mix); traces/s, spans/s, MB/s"
            }
            WorkloadKind::Script => {
                "a k6-style JavaScript test: k6, k6/http, k6/metrics and periscope's LLM calls; checks and custom metrics"
            }
        }
    }

    /// The environment variable that names its model.
    pub fn model_env(self) -> &'static str {
        match self {
            WorkloadKind::Embeddings | WorkloadKind::BatchEmbeddings => "OPENAI_EMBEDDING_MODEL",
            WorkloadKind::Rerank => "OPENAI_RERANK_MODEL",
            WorkloadKind::PrefixCaching => "OPENAI_CODING_MODEL",
            _ => "OPENAI_COMPLETION_MODEL",
        }
    }

    pub fn default_model(self) -> &'static str {
        if self.is_embeddings() {
            DEFAULT_EMBEDDING_MODEL
        } else if self == WorkloadKind::Rerank {
            DEFAULT_RERANK_MODEL
        } else {
            DEFAULT_MODEL
        }
    }

    pub fn default_prompt(self) -> &'static str {
        if self.is_embeddings() {
            DEFAULT_EMBEDDING_INPUT
        } else if self == WorkloadKind::Rerank {
            super::rerank::RERANK_QUERY
        } else if self == WorkloadKind::ToolCalls {
            super::tools::TOOL_PROMPT
        } else if self == WorkloadKind::Vision {
            "Describe what you see in the pictures, in two sentences."
        } else {
            DEFAULT_PROMPT
        }
    }

    /// `max_tokens` when none is given.
    pub fn default_max_tokens(self) -> u32 {
        match self {
            WorkloadKind::PrefillHeavy => 16,
            WorkloadKind::DecodeHeavy => 1024,
            _ => 64,
        }
    }

    /// Turns of a session before it starts over.
    pub fn default_turns(self) -> u32 {
        match self {
            WorkloadKind::PrefixCaching => 10,
            WorkloadKind::ToolCalls => 1,
            _ => 5,
        }
    }

    pub fn is_embeddings(self) -> bool {
        matches!(
            self,
            WorkloadKind::Embeddings | WorkloadKind::BatchEmbeddings
        )
    }

    /// Whether its requests score or embed texts rather than generate.
    pub fn reads_texts(self) -> bool {
        self.is_embeddings() || self == WorkloadKind::Rerank
    }

    /// The API endpoints its requests go to (`--api` choosing for tool-calls
    /// and vision); none for plain HTTP and scripts, which name their own
    /// paths.
    pub fn apis(self, api: LlmApi) -> &'static [Api] {
        match self {
            WorkloadKind::Completions
            | WorkloadKind::PrefixCaching
            | WorkloadKind::Conversation
            | WorkloadKind::PrefillHeavy
            | WorkloadKind::DecodeHeavy => &[Api::ChatCompletions],
            WorkloadKind::ToolCalls | WorkloadKind::Vision => match api {
                LlmApi::Chat => &[Api::ChatCompletions],
                LlmApi::Responses => &[Api::Responses],
            },
            WorkloadKind::Responses => &[Api::Responses],
            WorkloadKind::Messages => &[Api::Messages],
            WorkloadKind::TextCompletions => &[Api::Completions],
            WorkloadKind::Embeddings | WorkloadKind::BatchEmbeddings => &[Api::Embeddings],
            WorkloadKind::Rerank => &[Api::Rerank],
            WorkloadKind::OtlpTraces => &[Api::Traces],
            WorkloadKind::Http | WorkloadKind::Script => &[],
        }
    }

    /// Whether `--api` chooses its API.
    pub fn takes_api(self) -> bool {
        matches!(self, WorkloadKind::ToolCalls | WorkloadKind::Vision)
    }

    /// Whether it has turns (`--turns`, a table by turn).
    pub fn has_turns(self) -> bool {
        matches!(
            self,
            WorkloadKind::Conversation | WorkloadKind::PrefixCaching | WorkloadKind::ToolCalls
        )
    }

    /// Whether its requests carry tokens in (a prompt, texts to embed).
    pub fn counts_input_tokens(self) -> bool {
        !matches!(self, WorkloadKind::Http | WorkloadKind::OtlpTraces)
    }

    /// Whether its answers are generated tokens: ttft, itl, tpot and
    /// tokens/s mean something.
    pub fn generates(self) -> bool {
        self.counts_input_tokens() && !self.reads_texts()
    }

    /// Whether a dataset can drive its prompts.
    pub fn takes_dataset(self) -> bool {
        matches!(
            self,
            WorkloadKind::Completions
                | WorkloadKind::Responses
                | WorkloadKind::Messages
                | WorkloadKind::ToolCalls
                | WorkloadKind::Vision
                | WorkloadKind::Rerank
                | WorkloadKind::TextCompletions
                | WorkloadKind::Conversation
                | WorkloadKind::PrefillHeavy
                | WorkloadKind::DecodeHeavy
        )
    }
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_chat_is_completions() {
        for k in WorkloadKind::ALL {
            assert_eq!(WorkloadKind::parse(k.name()), Some(*k));
            assert!(!k.description().is_empty());
        }
        assert_eq!(WorkloadKind::parse("chat"), Some(WorkloadKind::Completions));
        assert_eq!(WorkloadKind::parse("nope"), None);
        // A result's plan.workload is the name, read back as the kind.
        for k in WorkloadKind::ALL.iter().chain([&WorkloadKind::Script]) {
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<WorkloadKind>(&json).unwrap(), *k);
        }
        assert_eq!(
            serde_json::from_str::<WorkloadKind>("\"chat\"").unwrap(),
            WorkloadKind::Completions
        );
        assert_eq!(
            WorkloadKind::BatchEmbeddings.model_env(),
            "OPENAI_EMBEDDING_MODEL"
        );
        assert_eq!(WorkloadKind::DecodeHeavy.default_max_tokens(), 1024);
    }
}
