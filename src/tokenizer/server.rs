//! A server's own tokenizer, behind its `/tokenize` endpoint: the request
//! shapes and the answers, with no I/O (the client sends them).
//!
//! - llama.cpp's server: `POST /tokenize {"content": TEXT}` answers
//!   `{"tokens": [ids]}`; it adds no BOS unless asked (`add_special`).
//! - vLLM, and SGLang, which follows it: `POST /tokenize {"model": M,
//!   "prompt": TEXT, "add_special_tokens": false}` answers `{"count": n,
//!   "tokens": [ids], "max_model_len": …}`; BOS is added unless
//!   `add_special_tokens` is false.
//! - llama-cpp-python's server: `POST /extras/tokenize/count {"input":
//!   TEXT}` answers `{"count": n}`, BOS included (the caller measures what
//!   an empty text counts and takes it off).
//!
//! All are served from the origin's root, not under `/v1`.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

/// Which request shape the server takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// llama.cpp's `{"content"}`.
    LlamaCpp,
    /// vLLM's and SGLang's `{"model", "prompt", "add_special_tokens"}`.
    Vllm { model: String },
    /// llama-cpp-python's `/extras/tokenize/count {"input"}`.
    LlamaCppPython,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    tokens: Option<Vec<serde::de::IgnoredAny>>,
}

impl Api {
    /// The shapes to try, in order, for a server that serves `model`.
    pub fn candidates(model: &str) -> [Api; 3] {
        [
            Api::LlamaCpp,
            Api::Vllm {
                model: model.to_string(),
            },
            Api::LlamaCppPython,
        ]
    }

    /// The endpoint's path, from the origin's root.
    pub fn path(&self) -> &'static str {
        match self {
            Api::LlamaCpp | Api::Vllm { .. } => "/tokenize",
            Api::LlamaCppPython => "/extras/tokenize/count",
        }
    }

    /// The request body that asks for the tokens of `text`, with no special
    /// tokens added.
    pub fn body(&self, text: &str) -> Bytes {
        let v = match self {
            Api::LlamaCpp => json!({"content": text, "add_special": false}),
            Api::Vllm { model } => {
                json!({"model": model, "prompt": text, "add_special_tokens": false})
            }
            Api::LlamaCppPython => json!({"input": text}),
        };
        Bytes::from(v.to_string())
    }

    /// The count in an answer: its `count`, or the length of its `tokens`.
    pub fn parse(body: &[u8]) -> Option<u32> {
        let a: Answer = serde_json::from_slice(body).ok()?;
        a.count.or(a.tokens.map(|t| t.len() as u32))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Api::LlamaCpp => "llama.cpp",
            Api::Vllm { .. } => "vLLM/SGLang",
            Api::LlamaCppPython => "llama-cpp-python",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_both_shapes_parse() {
        // llama.cpp, with and without pieces.
        assert_eq!(Api::parse(br#"{"tokens":[9259,1902,236764]}"#), Some(3));
        assert_eq!(
            Api::parse(br#"{"tokens":[{"id":9259,"piece":"Hello"},{"id":1902,"piece":" world"}]}"#),
            Some(2)
        );
        // vLLM: the count wins.
        assert_eq!(
            Api::parse(br#"{"count":2,"max_model_len":8192,"tokens":[101,102],"token_strs":null}"#),
            Some(2)
        );
        assert_eq!(Api::parse(br#"{"detail":"Not Found"}"#), None);
        assert_eq!(Api::parse(b"<html>"), None);
    }

    #[test]
    fn bodies_ask_for_no_special_tokens() {
        let l: serde_json::Value = serde_json::from_slice(&Api::LlamaCpp.body("hi")).unwrap();
        assert_eq!(l, json!({"content": "hi", "add_special": false}));
        let v: serde_json::Value =
            serde_json::from_slice(&Api::Vllm { model: "m".into() }.body("hi")).unwrap();
        assert_eq!(v["add_special_tokens"], false);
        assert_eq!(v["prompt"], "hi");
        assert_eq!(v["model"], "m");
    }
}
