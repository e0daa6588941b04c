//! `completions` (chat) and `text-completions` (legacy): one fixed prompt.
//!
//! The body is serialized once and shared by every request (a `Bytes` clone
//! is a reference-count increment), so building a request costs nothing on
//! the hot path.

use bytes::Bytes;
use serde_json::{json, Value};

use super::Workload;
use crate::client::Prepared;
use crate::tokenizer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionsKind {
    Chat,
    Text,
}

/// What a completions request says.
#[derive(Debug, Clone)]
pub struct CompletionsSpec {
    pub kind: CompletionsKind,
    pub model: String,
    pub system: Option<String>,
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    pub stream: bool,
}

pub struct Completions {
    kind: CompletionsKind,
    request: Prepared,
    preflight: Prepared,
}

impl Completions {
    pub fn new(spec: &CompletionsSpec) -> Self {
        let request = build(spec, spec.max_tokens, spec.stream);
        let preflight = build(spec, 1, false);
        Completions {
            kind: spec.kind,
            request,
            preflight,
        }
    }
}

fn build(spec: &CompletionsSpec, max_tokens: u32, stream: bool) -> Prepared {
    let mut body = match spec.kind {
        CompletionsKind::Chat => {
            let mut messages = Vec::new();
            if let Some(s) = &spec.system {
                messages.push(json!({"role": "system", "content": s}));
            }
            messages.push(json!({"role": "user", "content": spec.prompt}));
            json!({"model": spec.model, "messages": messages, "max_tokens": max_tokens, "stream": stream})
        }
        CompletionsKind::Text => {
            json!({"model": spec.model, "prompt": spec.prompt, "max_tokens": max_tokens, "stream": stream})
        }
    };
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = spec.temperature {
        body["temperature"] = Value::from(t);
    }
    let prompt_tokens = match spec.kind {
        CompletionsKind::Chat => {
            let mut texts: Vec<&str> = spec.system.iter().map(String::as_str).collect();
            texts.push(&spec.prompt);
            tokenizer::count_chat(texts)
        }
        CompletionsKind::Text => tokenizer::count(&spec.prompt),
    };
    Prepared {
        method: reqwest::Method::POST,
        path: match spec.kind {
            CompletionsKind::Chat => "chat/completions".into(),
            CompletionsKind::Text => "completions".into(),
        },
        body: Bytes::from(serde_json::to_vec(&body).expect("json")),
        stream,
        prompt_tokens,
    }
}

impl Workload for Completions {
    fn name(&self) -> &'static str {
        match self.kind {
            CompletionsKind::Chat => "completions",
            CompletionsKind::Text => "text-completions",
        }
    }

    fn request(&self, _vu: u64, _iteration: u64) -> Prepared {
        self.request.clone()
    }

    fn preflight(&self) -> Prepared {
        self.preflight.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: CompletionsKind) -> CompletionsSpec {
        CompletionsSpec {
            kind,
            model: "m".into(),
            system: Some("be brief".into()),
            prompt: "Hello world".into(),
            max_tokens: 16,
            temperature: Some(0.5),
            stream: true,
        }
    }

    #[test]
    fn chat_body_asks_for_usage_in_the_stream() {
        let w = Completions::new(&spec(CompletionsKind::Chat));
        let r = w.request(0, 0);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.path, "chat/completions");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(v["max_tokens"], 16);
        assert_eq!(
            r.prompt_tokens,
            tokenizer::count_chat(["be brief", "Hello world"])
        );
        let p: Value = serde_json::from_slice(&w.preflight().body).unwrap();
        assert_eq!(p["max_tokens"], 1);
        assert_eq!(p["stream"], false);
        assert!(p.get("stream_options").is_none());
    }

    #[test]
    fn text_body_has_a_prompt() {
        let w = Completions::new(&spec(CompletionsKind::Text));
        let r = w.request(0, 0);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(r.path, "completions");
        assert_eq!(v["prompt"], "Hello world");
        assert_eq!(w.name(), "text-completions");
    }
}
