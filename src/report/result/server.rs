//! How tokens were counted, and the server's own account of the requests
//! it answered (its timings and token counts), as the result keeps them.

use serde::{Deserialize, Serialize};

/// The tokenizer of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// `cl100k_base`, `o200k_base`, `tokenizer.json (PATH)` or
    /// `server /tokenize (llama.cpp)`.
    pub name: String,
    /// Tokens the server's chat template added to the preflight request
    /// beyond its messages' content (its `usage.prompt_tokens` less the
    /// content's tokens): synthetic prompts of `--input-tokens N` reach the
    /// model as N plus these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_tokens: Option<u32>,
    /// What the reader should know about how tokens were counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The server's own account of the requests it answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerTimings {
    /// Ok requests whose answer carried timings or counts of the server's.
    pub requests: u64,
    /// Prompt tokens it processed (not from its cache), where it said.
    pub prompt_tokens: u64,
    /// Prompt tokens it served from its cache, and their share of the
    /// prompt tokens of the requests that said.
    pub cached_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_hit_rate: Option<f64>,
    /// Output tokens by its own count, and periscope's count of the same
    /// requests' output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_counted: Option<u64>,
}

impl ServerTimings {
    pub(super) fn of(s: &crate::metrics::ServerCounts) -> Option<Self> {
        (!s.is_empty()).then(|| ServerTimings {
            requests: s.requests,
            prompt_tokens: s.prompt_tokens,
            cached_tokens: s.cached_tokens,
            cache_hit_rate: (s.cache_reported > 0 && s.prompt_tokens + s.cached_tokens > 0)
                .then(|| s.cached_tokens as f64 / (s.prompt_tokens + s.cached_tokens) as f64),
            output_tokens: (s.output_reported > 0).then_some(s.output_tokens),
            output_tokens_counted: (s.output_reported > 0).then_some(s.output_tokens_ours),
        })
    }
}
