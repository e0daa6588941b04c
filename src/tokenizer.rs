//! Token counting shared by the client and the mock.
//!
//! periscope counts tokens with OpenAI's `cl100k_base` BPE (tiktoken-rs,
//! whose vocabulary ships inside the crate, so no network is needed). The mock
//! uses the same functions for `usage.prompt_tokens`, so a run against the
//! mock can check its local counts against the server's exactly.

use tiktoken_rs::CoreBPE;

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Load the vocabulary now (it takes ~100 ms) rather than on the first request.
pub fn warm_up() {
    let _ = bpe();
}

/// Entries of the per-thread count cache before it is cleared.
const CACHE_ENTRIES: usize = 4096;

thread_local! {
    /// Counts of recently seen texts, by hash. Load tests repeat prompts, and
    /// BPE is the costliest step of a request in the mock; a per-thread map
    /// needs no lock.
    static COUNTS: std::cell::RefCell<std::collections::HashMap<u64, u32>> =
        std::cell::RefCell::new(std::collections::HashMap::with_capacity(CACHE_ENTRIES));
}

/// The number of tokens in `text`.
pub fn count(text: &str) -> u32 {
    if text.is_empty() {
        return 0;
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    let key = h.finish();
    if let Some(n) = COUNTS.with(|c| c.borrow().get(&key).copied()) {
        return n;
    }
    let n = bpe().encode_ordinary(text).len() as u32;
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key, n);
    });
    n
}

/// The token ids of `text`.
pub fn encode(text: &str) -> Vec<u32> {
    bpe().encode_ordinary(text)
}

/// Tokens that OpenAI adds around each chat message (`<|im_start|>role …`).
pub const PER_MESSAGE_OVERHEAD: u32 = 3;
/// Tokens that prime the assistant's reply.
pub const REPLY_PRIMING: u32 = 3;

/// Prompt tokens of a chat request, with OpenAI's per-message accounting.
pub fn count_chat<'a>(contents: impl IntoIterator<Item = &'a str>) -> u32 {
    let mut total = REPLY_PRIMING;
    for c in contents {
        total += PER_MESSAGE_OVERHEAD + count(c);
    }
    total
}

/// Words that are a single `cl100k_base` token each, with or without a
/// leading space; the mock streams them one per chunk, so a local count of
/// its output equals the number of chunks.
pub const VOCAB: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "model", "token", "data",
    "time", "system", "server", "request", "load", "test", "value", "result", "first", "number",
    "stream", "answer",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_words_are_single_tokens_with_and_without_space() {
        for w in VOCAB {
            assert_eq!(count(w), 1, "{w:?}");
            assert_eq!(count(&format!(" {w}")), 1, "' {w}'");
        }
        // And a concatenation counts one per word.
        let text: String = VOCAB.iter().map(|w| format!(" {w}")).collect();
        assert_eq!(count(&text) as usize, VOCAB.len());
    }

    #[test]
    fn chat_accounting_matches_openai_cookbook() {
        // "Hello world" is 2 tokens: 3 + 3 + 2.
        assert_eq!(count_chat(["Hello world"]), 8);
        assert_eq!(count_chat([]), 3);
    }
}
