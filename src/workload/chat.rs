//! Chat and legacy text completions, and their prefill- and decode-heavy
//! forms.
//!
//! With a fixed prompt the body is serialized once and shared by every
//! request (a `Bytes` clone is a reference-count increment). Synthetic and
//! dataset prompts build a body per request.

use bytes::Bytes;
use serde_json::{json, Value};

use super::{PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::tokenizer::{self, Tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    Chat,
    /// OpenAI's Responses API: `input` and `instructions`, `max_output_tokens`.
    Responses,
    /// Anthropic's Messages API: `messages` and `system`, `max_tokens`.
    Messages,
    Text,
    /// Long documents, a short question, few output tokens.
    PrefillHeavy,
    /// Short prompts asking for long answers.
    DecodeHeavy,
}

/// The question after a prefill-heavy document.
const PREFILL_QUESTION: &str = "\n\nIn one sentence: what is the text above about?";

/// Prompts of the decode-heavy workload: short, asking for a lot.
const DECODE_PROMPTS: &[&str] = &[
    "Write a long, detailed story about a lighthouse keeper who finds a map.",
    "Explain in great detail how a compiler turns source code into machine code.",
    "Write an extensive travel guide to a city you invent, with history and food.",
    "Describe, step by step and at length, how to build a wooden boat.",
    "Write a long essay on the history of timekeeping, from sundials to atomic clocks.",
    "Tell a long fairy tale about a fox, a crow and a stolen moon.",
];

/// The fixed texts of these workloads, for the server's tokenizer to count
/// before the run.
pub(super) fn known_texts() -> Vec<String> {
    let mut v: Vec<String> = DECODE_PROMPTS.iter().map(|s| s.to_string()).collect();
    v.push(PREFILL_QUESTION.to_string());
    v
}

pub struct Chat(std::sync::Arc<Inner>);

struct Inner {
    kind: ChatKind,
    spec: WorkloadSpec,
    prompts: PromptSource,
    /// Content tokens added to every prompt: the system message, the
    /// prefill question.
    extra_tokens: u32,
    /// The chat template's tokens by OpenAI's accounting, until the
    /// preflight measures the server's.
    framing: u32,
    fixed: Option<Prepared>,
    preflight: Prepared,
    /// The run tokenizer's one-token words (a replayed trace's prompts).
    words: std::sync::Arc<[String]>,
}

impl Chat {
    pub fn new(spec: &WorkloadSpec, kind: ChatKind, tok: &Tokenizer) -> Self {
        let decode: std::sync::Arc<Vec<String>> =
            std::sync::Arc::new(DECODE_PROMPTS.iter().map(|s| s.to_string()).collect());
        let prompts = match kind {
            ChatKind::PrefillHeavy => PromptSource::new(
                &spec.prompt,
                Some(spec.input_tokens.unwrap_or(4000)),
                spec.input_tokens_stddev,
                spec.shared_prefix,
                None,
                tok,
            ),
            ChatKind::DecodeHeavy if spec.dataset.is_none() && spec.input_tokens.is_none() => {
                PromptSource::new("", None, 0.0, 0, Some(&decode), tok)
            }
            _ => PromptSource::new(
                &spec.prompt,
                spec.input_tokens,
                spec.input_tokens_stddev,
                spec.shared_prefix,
                spec.dataset.as_ref(),
                tok,
            ),
        };
        let is_chat = kind != ChatKind::Text;
        let system = if is_chat {
            spec.system.as_deref()
        } else {
            None
        };
        let mut extra_tokens = system.map_or(0, |s| tok.count_prompt(s));
        if kind == ChatKind::PrefillHeavy {
            extra_tokens += tok.count_prompt(PREFILL_QUESTION);
        }
        let framing = if is_chat {
            tokenizer::chat_framing(1 + system.is_some() as u32)
        } else {
            0
        };
        let mut w = Inner {
            kind,
            spec: spec.clone(),
            prompts,
            extra_tokens,
            framing,
            fixed: None,
            preflight: Prepared::post("chat/completions", Bytes::new(), Expect::Completion),
            words: tok.words(),
        };
        let mut rng = fastrand::Rng::with_seed(0);
        let (p, n) = w.prompts.next(&mut rng);
        // OpenAI's Responses API takes no max_output_tokens below 16.
        let least = if kind == ChatKind::Responses { 16 } else { 1 };
        w.preflight = w.build(&p, n, least, false);
        if w.prompts.is_fixed() {
            w.fixed = Some(w.build(&p, n, spec.max_tokens, spec.stream));
        }
        Chat(std::sync::Arc::new(w))
    }
}

impl Inner {
    /// A replayed record's request: its prompt, its output length, and
    /// `ignore_eos` when asked.
    fn build_record(&self, prompt: &str, prompt_tokens: u32, max_tokens: u32) -> Prepared {
        let mut p = self.build(prompt, prompt_tokens, max_tokens, self.spec.stream);
        if self.spec.ignore_eos {
            if let Ok(mut v) = serde_json::from_slice::<Value>(&p.body) {
                v["ignore_eos"] = Value::Bool(true);
                p.body = Bytes::from(v.to_string());
            }
        }
        p
    }

    fn build(&self, prompt: &str, prompt_tokens: u32, max_tokens: u32, stream: bool) -> Prepared {
        let s = &self.spec;
        let text;
        let prompt = if self.kind == ChatKind::PrefillHeavy {
            text = format!("{prompt}{PREFILL_QUESTION}");
            text.as_str()
        } else {
            prompt
        };
        let (path, body) = if self.kind == ChatKind::Text {
            let mut b = json!({"model": s.model, "prompt": prompt, "max_tokens": max_tokens, "stream": stream});
            options(&mut b, s.temperature, false);
            ("completions", b)
        } else if self.kind == ChatKind::Responses {
            let input = json!([{"role": "user", "content": prompt}]);
            ("responses", responses_body(s, input, max_tokens, stream))
        } else if self.kind == ChatKind::Messages {
            let mut b = json!({
                "model": s.model,
                "messages": [{"role": "user", "content": prompt}],
                "max_tokens": max_tokens,
                "stream": stream,
            });
            if let Some(sys) = &s.system {
                b["system"] = Value::from(sys.as_str());
            }
            options(&mut b, s.temperature, false);
            ("messages", b)
        } else {
            let mut messages = Vec::with_capacity(2);
            if let Some(sys) = &s.system {
                messages.push(json!({"role": "system", "content": sys}));
            }
            messages.push(json!({"role": "user", "content": prompt}));
            (
                "chat/completions",
                chat_body(
                    &s.model,
                    messages,
                    max_tokens,
                    s.temperature,
                    stream,
                    s.stream_usage,
                ),
            )
        };
        let expect = match self.kind {
            ChatKind::Responses => Expect::Responses,
            ChatKind::Messages => Expect::Messages,
            _ => Expect::Completion,
        };
        let mut p = Prepared::post(path, Bytes::from(body.to_string()), expect);
        p.stream = stream;
        p.prompt_tokens = prompt_tokens + self.extra_tokens;
        p.framing = self.framing;
        p
    }
}

/// A chat completions body; streamed ones ask for usage in the stream
/// unless `stream_usage` is off (`--no-stream-usage`).
pub(super) fn chat_body(
    model: &str,
    messages: Vec<Value>,
    max_tokens: u32,
    temperature: Option<f32>,
    stream: bool,
    stream_usage: bool,
) -> Value {
    let mut b =
        json!({"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream});
    options(&mut b, temperature, stream && stream_usage);
    b
}

/// A Responses API body: `input` items, the system message as
/// `instructions`, `max_output_tokens`; nothing stored.
pub(super) fn responses_body(
    s: &WorkloadSpec,
    input: Value,
    max_tokens: u32,
    stream: bool,
) -> Value {
    let mut b = json!({
        "model": s.model,
        "input": input,
        "max_output_tokens": max_tokens,
        "stream": stream,
        "store": false,
    });
    if let Some(sys) = &s.system {
        b["instructions"] = Value::from(sys.as_str());
    }
    options(&mut b, s.temperature, false);
    b
}

fn options(body: &mut Value, temperature: Option<f32>, usage_in_stream: bool) {
    if usage_in_stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(t) = temperature {
        body["temperature"] = Value::from(t);
    }
}

struct ChatSession {
    w: std::sync::Arc<Inner>,
    rng: fastrand::Rng,
}

impl Session for ChatSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        if let Some(p) = &self.w.fixed {
            return Some(p.clone());
        }
        let (prompt, n) = self.w.prompts.next(&mut self.rng);
        Some(
            self.w
                .build(&prompt, n, self.w.spec.max_tokens, self.w.spec.stream),
        )
    }
}

impl Workload for Chat {
    fn name(&self) -> &'static str {
        match self.0.kind {
            ChatKind::Chat => "completions",
            ChatKind::Responses => "responses",
            ChatKind::Messages => "messages",
            ChatKind::Text => "text-completions",
            ChatKind::PrefillHeavy => "prefill-heavy",
            ChatKind::DecodeHeavy => "decode-heavy",
        }
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(ChatSession {
            w: self.0.clone(),
            rng: super::session_rng(vu),
        })
    }

    fn preflight(&self) -> Prepared {
        self.0.preflight.clone()
    }

    /// A record's prompt: its text when the trace keeps it, else its
    /// blocks, `--block-tokens` synthetic tokens each, the same text for the
    /// same block id in every record (so records sharing a block share that
    /// prefix), cut to `input_length` tokens; `output_length` tokens asked.
    fn for_record(
        &self,
        rec: &crate::replay::Record,
        turn: Option<u32>,
        rng: &mut fastrand::Rng,
    ) -> Option<Prepared> {
        let w = &self.0;
        let s = &w.spec;
        let mut p = match (&rec.messages, &rec.prompt) {
            (Some(m), _) if w.kind == ChatKind::Chat => {
                let mut b = chat_body(
                    &s.model,
                    m.as_array().cloned().unwrap_or_default(),
                    rec.output_length,
                    s.temperature,
                    s.stream,
                    s.stream_usage,
                );
                if s.ignore_eos {
                    b["ignore_eos"] = Value::Bool(true);
                }
                let mut p = Prepared::post(
                    "chat/completions",
                    Bytes::from(b.to_string()),
                    Expect::Completion,
                );
                p.stream = s.stream;
                p.prompt_tokens = rec.input_length;
                p.framing = w.framing;
                p
            }
            (_, Some(text)) => {
                // The trace's length, else a local count (the server's usage
                // says what it was).
                let n = match rec.input_length {
                    0 => tokenizer::count(text),
                    n => n,
                };
                w.build_record(text, n, rec.output_length)
            }
            _ => {
                let text = blocks_text(
                    &w.words,
                    rec.input_length,
                    s.block_tokens.max(1),
                    &rec.hash_ids,
                    rng,
                );
                w.build_record(&text, rec.input_length, rec.output_length)
            }
        };
        p.group = turn.map(crate::record::Group::Turn);
        Some(p)
    }
}

/// A prompt of `n` synthetic tokens made of blocks of `block` tokens: block
/// j is the text of `hash_ids[j]` (the same for that id in every record),
/// or new random text where the trace names no block.
pub(super) fn blocks_text(
    words: &[String],
    n: u32,
    block: u32,
    hash_ids: &[u64],
    rng: &mut fastrand::Rng,
) -> String {
    let mut s = String::with_capacity(n as usize * 6);
    let mut left = n;
    let mut j = 0usize;
    while left > 0 {
        let take = left.min(block);
        let mut r = match hash_ids.get(j) {
            Some(id) => fastrand::Rng::with_seed(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xb10c),
            None => fastrand::Rng::with_seed(rng.u64(..)),
        };
        s.push_str(&super::prompt::synthetic_text(words, take, &mut r));
        left -= take;
        j += 1;
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::workload::WorkloadKind;

    pub(crate) fn spec(name: &str) -> WorkloadSpec {
        WorkloadSpec {
            kind: WorkloadKind::parse(name).unwrap(),
            model: "m".into(),
            system: Some("be brief".into()),
            prompt: "Hello world".into(),
            max_tokens: 16,
            temperature: Some(0.5),
            stream: true,
            stream_usage: true,
            input_tokens: None,
            input_tokens_stddev: 0.0,
            shared_prefix: 0,
            turns: 5,
            api: crate::workload::LlmApi::Chat,
            images: crate::workload::Images::default(),
            documents: 10,
            batch_sizes: vec![],
            endpoints: vec![],
            stage_endpoints: vec![],
            dataset: None,
            otlp: None,
            script: None,
            block_tokens: 512,
            ignore_eos: false,
            session_header: None,
            lora: None,
        }
    }

    fn build(spec: &WorkloadSpec) -> std::sync::Arc<dyn Workload> {
        super::super::build(spec, &tokenizer::default_tokenizer())
    }

    fn first(w: &dyn Workload) -> (Prepared, Value) {
        let r = w
            .session(0)
            .next(Turn {
                vu: 0,
                iteration: 0,
                stage: 0,
            })
            .unwrap();
        let v = serde_json::from_slice(&r.body).unwrap();
        (r, v)
    }

    #[test]
    fn chat_body_asks_for_usage_in_the_stream() {
        let w = build(&spec("completions"));
        let (r, v) = first(w.as_ref());
        assert_eq!(r.path, "chat/completions");
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["messages"][0]["role"], "system");
        assert_eq!(v["max_tokens"], 16);
        // The content's tokens; the template's are the framing (OpenAI's
        // accounting until the preflight measures the server's).
        assert_eq!(
            r.prompt_tokens + r.framing,
            tokenizer::count_chat(["be brief", "Hello world"])
        );
        let p: Value = serde_json::from_slice(&w.preflight().body).unwrap();
        assert_eq!(p["max_tokens"], 1);
        assert_eq!(p["stream"], false);
        assert!(p.get("stream_options").is_none());
    }

    #[test]
    fn no_stream_usage_leaves_stream_options_out() {
        let mut s = spec("completions");
        s.stream_usage = false;
        let (r, v) = first(build(&s).as_ref());
        assert!(r.stream);
        assert_eq!(v["stream"], true);
        assert!(v.get("stream_options").is_none(), "{v}");
    }

    #[test]
    fn text_body_has_a_prompt() {
        let w = build(&spec("text-completions"));
        let (r, v) = first(w.as_ref());
        assert_eq!(r.path, "completions");
        assert_eq!(v["prompt"], "Hello world");
        assert_eq!(w.name(), "text-completions");
    }

    #[test]
    fn synthetic_prompts_count_exactly_as_the_mock_does() {
        let mut s = spec("completions");
        s.input_tokens = Some(500);
        let w = build(&s);
        let (r, v) = first(w.as_ref());
        let content = v["messages"][1]["content"].as_str().unwrap();
        assert_eq!(r.prompt_tokens, 500 + tokenizer::count("be brief"));
        assert_eq!(
            r.prompt_tokens + r.framing,
            tokenizer::count_chat(["be brief", content])
        );
    }

    #[test]
    fn prefill_heavy_sends_a_long_document_and_a_question() {
        let mut s = spec("prefill-heavy");
        s.system = None;
        let w = build(&s);
        let (r, v) = first(w.as_ref());
        let content = v["messages"][0]["content"].as_str().unwrap();
        assert!(content.ends_with(PREFILL_QUESTION));
        assert_eq!(
            r.prompt_tokens + r.framing,
            tokenizer::count_chat([content])
        );
        assert!(r.prompt_tokens > 4000);
    }
}
