//! Tokens the server's usage leaves out, counted with the run's tokenizer,
//! and which tokenizer that is (`--tokenizer`): a local one, or the
//! server's own, asked at its `/tokenize` (see `tokenizer::server`).

use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;

use super::{parse, Client};
use crate::tokenizer::server::Api;
use crate::tokenizer::{self, Choice, ServerTokenizer, Tokenizer, MIN_WORDS};

/// Requests to `/tokenize` in flight at once while a run starts.
const ASK_AT_ONCE: usize = 8;

/// The tokenizer a run counts with, and what the report should say about
/// how it was found.
pub struct Resolved {
    pub tokenizer: Arc<Tokenizer>,
    /// Why `auto` fell back to `cl100k_base`, or what the server's
    /// tokenizer could not do.
    pub note: Option<String>,
}

impl Client {
    /// The tokens in `text` by the run's tokenizer: counted here, or asked
    /// of the server.
    pub async fn count_tokens(&self, text: &str) -> Result<u32, String> {
        if let Some(n) = self.tokenizer.count_local(text) {
            return Ok(n);
        }
        match self.tokenizer.server_api() {
            Some((api, at)) => {
                let ask = Ask {
                    api,
                    at,
                    special: self.tokenizer.special(),
                };
                ask.count(self, text).await
            }
            None => Ok(tokenizer::count(text)),
        }
    }

    /// Find the tokenizer `choice` names for this target: for `server` (and
    /// `auto`), the shape its `/tokenize` takes, its single-token words and
    /// its counts of `known` (the texts the workload will send). Asked at a
    /// run's preflight; a later run without one is handed what it found
    /// (`runner::TargetProfile`): nothing is kept in the process.
    pub async fn resolve_tokenizer(
        &self,
        choice: &Choice,
        model: &str,
        known: &[String],
    ) -> Result<Resolved, String> {
        let local = |t: Tokenizer| Resolved {
            tokenizer: Arc::new(t),
            note: None,
        };
        match choice {
            Choice::Tiktoken(tokenizer::Encoding::Cl100k) => {
                return Ok(Resolved {
                    tokenizer: tokenizer::default_tokenizer(),
                    note: None,
                })
            }
            Choice::Tiktoken(e) => return Ok(local(Tokenizer::tiktoken(*e))),
            Choice::File(path) => return Tokenizer::from_file(path).map(local),
            Choice::Auto | Choice::AutoAt(_) | Choice::Server | Choice::ServerAt(_) => {}
        }
        let strict = choice.strict();
        let at = choice.origin();
        let whose = at.unwrap_or(&self.base);
        let fallback = |why: String| -> Result<Resolved, String> {
            if strict {
                Err(format!("--tokenizer server: {why}"))
            } else {
                Ok(Resolved {
                    tokenizer: tokenizer::default_tokenizer(),
                    note: Some(format!("tokens counted with cl100k_base: {why}")),
                })
            }
        };
        let mut tried = Vec::new();
        let mut found = None;
        for api in Api::candidates(model) {
            let mut ask = Ask {
                api: &api,
                at,
                special: 0,
            };
            let probe = async {
                // What it counts for nothing (a BOS it always adds) comes off.
                ask.special = ask.count(self, "").await?;
                ask.count(self, "Hello world, how are you?").await
            };
            match probe.await {
                Ok(n) if (2..=16).contains(&n) => {
                    found = Some((api.clone(), ask.special));
                    break;
                }
                Ok(n) => tried.push(format!("{} {}: a count of {n}", api.label(), api.path())),
                Err(e) => tried.push(format!("{} {}: {e}", api.label(), api.path())),
            }
        }
        let Some((api, special)) = found else {
            if !strict {
                // The usual case for a gateway or a hosted API: say nothing loud.
                return Ok(Resolved {
                    tokenizer: tokenizer::default_tokenizer(),
                    note: None,
                });
            }
            return fallback(format!(
                "{whose} does not answer /tokenize as llama.cpp, vLLM, SGLang or llama-cpp-python do ({})",
                tried.join("; ")
            ));
        };
        let ask = Ask {
            api: &api,
            at,
            special,
        };
        let words = match ask.words(self).await {
            Ok(w) if w.len() >= MIN_WORDS => w,
            Ok(w) => {
                return fallback(format!(
                    "only {} common English words are one token each in the server's tokenizer; synthetic prompts need {MIN_WORDS}",
                    w.len()
                ))
            }
            Err(e) => return fallback(e),
        };
        let mut texts: Vec<String> = known.to_vec();
        texts.sort();
        texts.dedup();
        let counts = match ask.counts(self, &texts).await {
            Ok(c) => c,
            Err(e) => return fallback(e),
        };
        Ok(Resolved {
            tokenizer: Arc::new(Tokenizer::server(ServerTokenizer {
                api: api.clone(),
                at: at.map(String::from),
                special,
                words,
                known: texts.into_iter().zip(counts).collect(),
            })),
            note: None,
        })
    }
}

/// How to ask a server for counts.
struct Ask<'a> {
    api: &'a Api,
    /// Another origin than the target's.
    at: Option<&'a str>,
    /// What it counts for an empty text, taken off.
    special: u32,
}

impl Ask<'_> {
    /// The server's count of `text`.
    async fn count(&self, client: &Client, text: &str) -> Result<u32, String> {
        let path = self.api.path();
        let (status, body) = match self.at {
            None => client.post_raw(path, self.api.body(text)).await?,
            Some(origin) => {
                post_elsewhere(origin, path, self.api.body(text), client.timeout).await?
            }
        };
        if !(200..300).contains(&status) {
            return Err(format!(
                "{path} answered {status}: {}",
                parse::error_message(&body)
            ));
        }
        Api::parse(&body)
            .map(|n| n.saturating_sub(self.special))
            .ok_or_else(|| format!("{path} answered no token count"))
    }

    /// Counts of many texts, [`ASK_AT_ONCE`] at a time.
    async fn counts(&self, client: &Client, texts: &[String]) -> Result<Vec<u32>, String> {
        futures_util::stream::iter(texts)
            .map(|t| self.count(client, t))
            .buffered(ASK_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// The candidate words that are one token each in the server's
    /// tokenizer and stay one each side by side (checked on random
    /// sequences; a word that merges with its neighbours is dropped).
    async fn words(&self, client: &Client) -> Result<Vec<String>, String> {
        let candidates: Vec<String> = tokenizer::CANDIDATES
            .iter()
            .map(|w| format!(" {w}"))
            .collect();
        let counts = self.counts(client, &candidates).await?;
        let mut words: Vec<String> = candidates
            .into_iter()
            .zip(counts)
            .filter(|(_, n)| *n == 1)
            .map(|(w, _)| w)
            .collect();
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..3 {
            if words.len() < 2 {
                break;
            }
            let seqs: Vec<Vec<usize>> = (0..3)
                .map(|_| (0..300).map(|_| rng.usize(..words.len())).collect())
                .collect();
            let texts: Vec<String> = seqs
                .iter()
                .map(|s| s.iter().map(|&i| words[i].as_str()).collect())
                .collect();
            let got = self.counts(client, &texts).await?;
            if seqs.iter().zip(&got).all(|(s, n)| s.len() == *n as usize) {
                return Ok(words);
            }
            if round == 2 {
                break;
            }
            // Each word beside every other one, in one text per word: a
            // word whose text counts more than its pairs merges with some.
            let pairs: Vec<String> = words
                .iter()
                .map(|w| words.iter().map(|x| format!("{w}{x}")).collect())
                .collect();
            let got = self.counts(client, &pairs).await?;
            let n = words.len();
            let keep: Vec<bool> = got.iter().map(|c| *c as usize == 2 * n).collect();
            let mut k = keep.iter();
            words.retain(|_| *k.next().unwrap_or(&true));
        }
        Err(format!(
            "common English words side by side do not count one token each in the server's tokenizer ({} words kept)",
            words.len()
        ))
    }
}

/// POST to another origin's tokenize endpoint (the model server behind a
/// gateway), on a client of its own.
async fn post_elsewhere(
    origin: &str,
    path: &str,
    body: bytes::Bytes,
    timeout: std::time::Duration,
) -> Result<(u16, bytes::Bytes), String> {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    let http = HTTP.get_or_init(|| {
        super::http_builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default()
    });
    let url = format!("{}{path}", origin.trim_end_matches('/'));
    let resp = http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {}", super::error_chain(&e)))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{url}: {}", super::error_chain(&e)))?;
    Ok((status, bytes))
}
