//! Token counting: the tokenizer a run counts with, and the `cl100k_base`
//! helpers the mock uses.
//!
//! A run counts tokens with one [`Tokenizer`], chosen by `--tokenizer`:
//! - `server`: the target's own `/tokenize` endpoint (llama.cpp's, or the
//!   shape vLLM and SGLang share; see [`server`]). Counting there costs a
//!   request to the server, so it happens only where the server's usage is
//!   missing or sampled for the usage check, after the request has ended;
//!   texts known before the run (a fixed prompt, a dataset) are counted once
//!   at the start.
//! - a Hugging Face `tokenizer.json` file (the `tokenizers` crate);
//! - a tiktoken encoding: `cl100k_base` or `o200k_base` (tiktoken-rs's
//!   encoder, with the vocabularies built into the binary: no network; see
//!   [`vocab`]).
//!
//! The default is `server` when the target answers `/tokenize`, else
//! `cl100k_base`. Each tokenizer also finds its *words*: common English
//! words that are one token each with a leading space, and stay one each
//! side by side. Synthetic prompts are made of them, so a prompt of n words
//! is n tokens of that tokenizer without tokenizing it.
//!
//! The mock counts with `cl100k_base` (the free functions below), so a run
//! against the mock can check its local counts against the server's exactly.

pub mod server;
mod vocab;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tiktoken_rs::CoreBPE;

fn bpe() -> &'static CoreBPE {
    vocab::cl100k()
}

/// Load the vocabulary now (~30 ms) rather than on the first count.
pub fn warm_up() {
    let _ = bpe();
}

/// `cl100k_base`, shared: what counts when nothing else was chosen.
pub fn default_tokenizer() -> Arc<Tokenizer> {
    static DEFAULT: std::sync::OnceLock<Arc<Tokenizer>> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| Arc::new(Tokenizer::tiktoken(Encoding::Cl100k)))
        .clone()
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

/// The tokens OpenAI's chat format adds to `messages` messages: an
/// estimate of a chat template's, until the preflight measures the server's.
pub fn chat_framing(messages: u32) -> u32 {
    REPLY_PRIMING + PER_MESSAGE_OVERHEAD * messages
}

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

/// What `--tokenizer` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// The server's `/tokenize` when the preflight's usage disagrees with
    /// `cl100k_base` and the server answers it, else `cl100k_base`.
    #[default]
    Auto,
    /// As `Auto`, but the `/tokenize` of another origin: the model server
    /// behind the gateway under test (a sweep's direct endpoint).
    AutoAt(String),
    /// The target's `/tokenize`, or a refusal to start.
    Server,
    /// The `/tokenize` of this origin (`--tokenizer http://llama:8080`), or
    /// a refusal to start.
    ServerAt(String),
    /// A tiktoken encoding.
    Tiktoken(Encoding),
    /// A Hugging Face `tokenizer.json`.
    File(PathBuf),
}

impl Choice {
    /// Whether a tokenizer that cannot be had stops the run.
    pub fn strict(&self) -> bool {
        !matches!(self, Choice::Auto | Choice::AutoAt(_))
    }

    /// The origin whose `/tokenize` is asked, when not the target's.
    pub fn origin(&self) -> Option<&str> {
        match self {
            Choice::AutoAt(o) | Choice::ServerAt(o) => Some(o),
            _ => None,
        }
    }
}

/// `http://host:port/anything` → `http://host:port`.
pub fn origin_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

impl std::str::FromStr for Choice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" => Err("--tokenizer needs a value: server, cl100k_base, o200k_base, a server's URL or the path of a tokenizer.json".into()),
            "auto" => Ok(Choice::Auto),
            "server" => Ok(Choice::Server),
            "cl100k_base" | "cl100k" => Ok(Choice::Tiktoken(Encoding::Cl100k)),
            "o200k_base" | "o200k" => Ok(Choice::Tiktoken(Encoding::O200k)),
            url if url.starts_with("http://") || url.starts_with("https://") => origin_of(url)
                .map(Choice::ServerAt)
                .ok_or_else(|| format!("--tokenizer '{url}' is not a URL: expected e.g. http://localhost:8080")),
            path if path.ends_with(".json") || Path::new(path).exists() => {
                Ok(Choice::File(PathBuf::from(path)))
            }
            other => Err(format!(
                "--tokenizer '{other}': expected server, cl100k_base, o200k_base, the URL of a server with /tokenize, or the path of a Hugging Face tokenizer.json"
            )),
        }
    }
}

/// A tiktoken encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Encoding {
    #[serde(rename = "cl100k_base")]
    Cl100k,
    #[serde(rename = "o200k_base")]
    O200k,
}

impl Encoding {
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::Cl100k => vocab::cl100k(),
            Encoding::O200k => vocab::o200k(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Encoding::Cl100k => "cl100k_base",
            Encoding::O200k => "o200k_base",
        }
    }
}

enum Kind {
    Tiktoken(Encoding),
    File {
        path: PathBuf,
        tok: Box<tokenizers::Tokenizer>,
    },
    Server {
        api: server::Api,
        /// Another origin than the target's.
        at: Option<String>,
    },
}

/// A server's tokenizer, as the caller found it.
pub struct ServerTokenizer {
    pub api: server::Api,
    /// Another origin than the target's.
    pub at: Option<String>,
    /// What it counts for an empty text (a BOS it always adds), taken off
    /// every count.
    pub special: u32,
    pub words: Vec<String>,
    /// Its counts of texts known before the run (already less `special`).
    pub known: HashMap<String, u32>,
}

/// The tokenizer a run counts with.
pub struct Tokenizer {
    kind: Kind,
    /// Words, each with its leading space, that are one token each and stay
    /// one each side by side.
    words: Arc<[String]>,
    /// The server's counts of texts known before the run.
    known: HashMap<String, u32>,
    /// What the server counts for an empty text.
    special: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// Fewer single-token words than this and synthetic prompts would repeat
/// themselves too often to be new on every request.
pub const MIN_WORDS: usize = 16;

impl Tokenizer {
    /// A tiktoken encoding.
    pub fn tiktoken(enc: Encoding) -> Self {
        // Every candidate is one token in both encodings, side by side too
        // (a test checks it): no vocabulary to load before the first request.
        let words: Arc<[String]> = CANDIDATES.iter().map(|w| format!(" {w}")).collect();
        Tokenizer {
            kind: Kind::Tiktoken(enc),
            words,
            known: HashMap::new(),
            special: 0,
        }
    }

    /// A Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            format!(
                "--tokenizer {}: not a Hugging Face tokenizer.json ({e})",
                path.display()
            )
        })?;
        let count = |t: &str| tok.encode(t, false).map_or(0, |e| e.len() as u32);
        let words = single_token_words(count);
        if words.len() < MIN_WORDS {
            return Err(format!(
                "--tokenizer {}: only {} common English words are one token each in it; synthetic prompts need {MIN_WORDS}",
                path.display(),
                words.len()
            ));
        }
        Ok(Tokenizer {
            kind: Kind::File {
                path: path.to_path_buf(),
                tok: Box::new(tok),
            },
            words,
            known: HashMap::new(),
            special: 0,
        })
    }

    /// The server's tokenizer, with its words and its counts of the texts
    /// known before the run (found by the caller, which does the I/O).
    pub fn server(s: ServerTokenizer) -> Self {
        Tokenizer {
            kind: Kind::Server {
                api: s.api,
                at: s.at,
            },
            words: s.words.into(),
            known: s.known,
            special: s.special,
        }
    }

    /// What the server counts for an empty text, taken off its counts.
    pub fn special(&self) -> u32 {
        self.special
    }

    /// How the report names it: `cl100k_base`, `tokenizer.json (PATH)`,
    /// `server /tokenize (llama.cpp)`.
    pub fn label(&self) -> String {
        match &self.kind {
            Kind::Tiktoken(e) => e.name().to_string(),
            Kind::File { path, .. } => format!("tokenizer.json ({})", path.display()),
            Kind::Server { api, at } => format!(
                "server {}{} ({})",
                at.as_deref().unwrap_or(""),
                api.path(),
                api.label()
            ),
        }
    }

    /// The server's API, and the origin to ask when not the target's, when
    /// counting means asking a server.
    pub fn server_api(&self) -> Option<(&server::Api, Option<&str>)> {
        match &self.kind {
            Kind::Server { api, at } => Some((api, at.as_deref())),
            _ => None,
        }
    }

    /// Whether this counts with `cl100k_base`.
    pub fn is_cl100k(&self) -> bool {
        matches!(self.kind, Kind::Tiktoken(Encoding::Cl100k))
    }

    /// Build a local vocabulary now rather than at its first count.
    pub fn warm_up(&self) {
        if let Kind::Tiktoken(e) = &self.kind {
            let _ = e.bpe();
        }
    }

    /// The words synthetic prompts are made of.
    pub fn words(&self) -> Arc<[String]> {
        self.words.clone()
    }

    /// The tokens in `text`, counted here: exact for a local tokenizer; for
    /// the server's, its count of a text known before the run, else None
    /// (ask the server).
    pub fn count_local(&self, text: &str) -> Option<u32> {
        if text.is_empty() {
            return Some(0);
        }
        match &self.kind {
            Kind::Tiktoken(Encoding::Cl100k) => Some(count(text)),
            Kind::Tiktoken(e) => Some(e.bpe().encode_ordinary(text).len() as u32),
            Kind::File { tok, .. } => Some(tok.encode(text, false).map_or(0, |e| e.len() as u32)),
            Kind::Server { .. } => self.known.get(text).copied(),
        }
    }

    /// The tokens in a text a workload builds a request from: the count
    /// [`Tokenizer::count_local`] gives, or, for a text the server's
    /// tokenizer was not asked about before the run, `cl100k_base`'s (only
    /// used where the server's usage is missing).
    pub fn count_prompt(&self, text: &str) -> u32 {
        self.count_local(text).unwrap_or_else(|| count(text))
    }
}

/// Candidate words for synthetic prompts: common English words.
pub const CANDIDATES: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "model", "token", "data",
    "time", "system", "server", "request", "load", "test", "value", "result", "first", "number",
    "stream", "answer", "what", "about", "out", "up", "them", "some", "then", "she", "do", "how",
    "its", "our", "new", "other", "could", "into", "may", "only", "over", "also", "after",
];

/// The candidates that `count` makes one token each (with a leading space),
/// and that stay one each side by side (checked on random sequences).
pub fn single_token_words(count: impl Fn(&str) -> u32) -> Arc<[String]> {
    let mut words: Vec<String> = CANDIDATES
        .iter()
        .map(|w| format!(" {w}"))
        .filter(|w| count(w) == 1)
        .collect();
    // A word that merges with a neighbour is dropped, one at a time, until
    // random sequences count one token a word.
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..words.len() {
        let seq: Vec<usize> = (0..400).map(|_| rng.usize(..words.len().max(1))).collect();
        let text: String = seq.iter().map(|&i| words[i].as_str()).collect();
        if words.is_empty() || count(&text) as usize == seq.len() {
            break;
        }
        // Drop the word whose pairs miscount most.
        let bad = (0..words.len()).max_by_key(|&i| {
            (0..words.len())
                .filter(|&j| count(&format!("{}{}", words[i], words[j])) != 2)
                .count()
        });
        if let Some(i) = bad {
            words.remove(i);
        }
    }
    words.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_candidate_is_a_word_of_both_tiktoken_encodings() {
        for enc in [Encoding::Cl100k, Encoding::O200k] {
            let bpe = enc.bpe();
            let found = single_token_words(|t| bpe.encode_ordinary(t).len() as u32);
            assert_eq!(found, Tokenizer::tiktoken(enc).words(), "{}", enc.name());
        }
    }

    #[test]
    fn tokenizer_choices_parse_with_messages_that_say_what_to_write() {
        let p = |s: &str| s.parse::<Choice>();
        assert_eq!(p("server"), Ok(Choice::Server));
        assert_eq!(p("auto"), Ok(Choice::Auto));
        assert_eq!(p("cl100k_base"), Ok(Choice::Tiktoken(Encoding::Cl100k)));
        assert_eq!(p("o200k_base"), Ok(Choice::Tiktoken(Encoding::O200k)));
        // A server behind a gateway: its origin, whatever path was given.
        assert_eq!(
            p("http://llama:8080/v1"),
            Ok(Choice::ServerAt("http://llama:8080".into()))
        );
        assert_eq!(
            p("models/tokenizer.json"),
            Ok(Choice::File("models/tokenizer.json".into()))
        );
        let e = p("gpt2").unwrap_err();
        assert!(
            e.contains("--tokenizer 'gpt2'") && e.contains("tokenizer.json"),
            "{e}"
        );
        assert!(p("").is_err());
        assert!(Choice::Server.strict() && !Choice::Auto.strict());
        assert_eq!(
            Choice::AutoAt("http://a:1".into()).origin(),
            Some("http://a:1")
        );
    }

    #[test]
    fn encodings_find_enough_words_that_stay_one_token_each() {
        for enc in [Encoding::Cl100k, Encoding::O200k] {
            let t = Tokenizer::tiktoken(enc);
            let words = t.words();
            assert!(words.len() >= MIN_WORDS, "{enc:?}: {}", words.len());
            let text: String = words
                .iter()
                .rev()
                .cycle()
                .take(500)
                .map(String::as_str)
                .collect();
            assert_eq!(t.count_local(&text), Some(500), "{enc:?}");
        }
        // A word that merges with its neighbours is dropped: here a counter
        // that merges " the" with anything that follows it.
        let merging = |s: &str| {
            let n = s.split(' ').filter(|w| !w.is_empty()).count() as u32;
            n - s.matches(" the ").count() as u32
        };
        let words = single_token_words(merging);
        assert!(!words.iter().any(|w| w == " the"), "{words:?}");
        assert!(words.len() >= MIN_WORDS);
    }

    #[test]
    fn a_server_tokenizer_counts_only_the_texts_it_was_asked_about() {
        let known: HashMap<String, u32> = [("hello there".to_string(), 3)].into();
        let t = Tokenizer::server(ServerTokenizer {
            api: server::Api::LlamaCpp,
            at: None,
            special: 0,
            words: vec![" a".into()],
            known,
        });
        assert_eq!(t.count_local("hello there"), Some(3));
        assert_eq!(t.count_local("something else"), None);
        assert_eq!(t.count_local(""), Some(0));
        assert_eq!(t.label(), "server /tokenize (llama.cpp)");
        let at = Tokenizer::server(ServerTokenizer {
            api: server::Api::LlamaCpp,
            at: Some("http://m:8080".into()),
            special: 0,
            words: vec![],
            known: HashMap::new(),
        });
        assert_eq!(at.label(), "server http://m:8080/tokenize (llama.cpp)");
    }

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
