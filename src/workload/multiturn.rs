//! Multi-turn workloads, whose next request contains the previous answers.
//!
//! - `prefix-caching`: each VU keeps a code buffer, as an IDE does, asks for
//!   its continuation and appends the answer: the prompt grows every turn
//!   while its start stays the same, which is what a prefix cache serves.
//! - `conversation`: a chat whose history grows by a question and an answer
//!   every turn.
//!
//! Both start over after `--turns` turns and report by turn.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::chat::chat_body;
use super::{PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::record::{Group, RequestRecord};
use crate::tokenizer::{self, Tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiTurnKind {
    PrefixCaching,
    Conversation,
}

const CODER_SYSTEM: &str =
    "You are a code completion engine. Continue the code exactly where it stops.";

/// The start of every VU's code buffer (after a line naming its file).
const CODE_SEED: &str = r#"import json
from dataclasses import dataclass


@dataclass
class Request:
    model: str
    prompt: str
    max_tokens: int = 64


def load_requests(path):
    with open(path) as f:
        return [Request(**row) for row in json.load(f)]


def summarize(results):
    total = len(results)
"#;

const QUESTIONS: &[&str] = &[
    "What is a load test, in two sentences?",
    "How does that differ from a stress test?",
    "Which latency percentiles should I watch, and why?",
    "What does time to first token tell me about a language model server?",
    "How would I find the saturation point of a service?",
    "Summarize what we discussed so far.",
];

pub struct MultiTurn(Arc<Inner>);

struct Inner {
    kind: MultiTurnKind,
    spec: WorkloadSpec,
    questions: PromptSource,
    tok: Arc<Tokenizer>,
    /// Tokens of the system message (conversation) or the coder's system
    /// message and the code seed (prefix-caching).
    start_tokens: u32,
}

/// The texts a multi-turn session starts from, whatever the VU: for the
/// server's tokenizer to count before the run.
pub(super) fn known_texts() -> Vec<String> {
    let mut v: Vec<String> = QUESTIONS.iter().map(|q| q.to_string()).collect();
    v.extend([CODER_SYSTEM.to_string(), CODE_SEED.to_string()]);
    v
}

impl MultiTurn {
    pub fn new(spec: &WorkloadSpec, kind: MultiTurnKind, tok: &Arc<Tokenizer>) -> Self {
        let fixed: Arc<Vec<String>> = Arc::new(QUESTIONS.iter().map(|q| q.to_string()).collect());
        let questions = match (&spec.dataset, spec.input_tokens) {
            (None, None) => PromptSource::new("", None, 0.0, 0, Some(&fixed), tok),
            _ => PromptSource::new(
                &spec.prompt,
                spec.input_tokens,
                spec.input_tokens_stddev,
                0,
                spec.dataset.as_ref(),
                tok,
            ),
        };
        let start_tokens = match kind {
            // The file-name line differs by VU: counted apart, per session.
            MultiTurnKind::PrefixCaching => {
                tok.count_prompt(CODER_SYSTEM) + tok.count_prompt(CODE_SEED)
            }
            MultiTurnKind::Conversation => {
                spec.system.as_deref().map_or(0, |s| tok.count_prompt(s))
            }
        };
        MultiTurn(Arc::new(Inner {
            kind,
            spec: spec.clone(),
            questions,
            tok: tok.clone(),
            start_tokens,
        }))
    }
}

struct MultiSession {
    w: Arc<Inner>,
    vu: u64,
    rng: fastrand::Rng,
    /// Turns done in this round (0 = a fresh start).
    turn: u32,
    /// prefix-caching: the code so far.
    code: String,
    /// conversation: the history, and the question asked last.
    history: Vec<Value>,
    pending: Option<(String, u32)>,
    /// Tokens of the messages' content so far: the start, and every turn's
    /// question and answer (the answer's by the server's usage when it
    /// gave one), so a growing prompt is never tokenized again.
    tokens: u32,
}

impl MultiSession {
    fn reset(&mut self) {
        self.turn = 0;
        let header = format!("# file: service_{}.py\n", self.vu);
        self.tokens = self.w.start_tokens;
        if self.w.kind == MultiTurnKind::PrefixCaching {
            self.tokens += self.w.tok.count_prompt(&header);
        }
        self.code = format!("{header}{CODE_SEED}");
        self.history.clear();
        if let Some(s) = &self.w.spec.system {
            self.history.push(json!({"role": "system", "content": s}));
        }
        self.pending = None;
    }
}

impl Session for MultiSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        if self.turn >= self.w.spec.turns.max(1) {
            self.reset();
        }
        let w = self.w.clone();
        let s = &w.spec;
        let messages = match self.w.kind {
            MultiTurnKind::PrefixCaching => vec![
                json!({"role": "system", "content": CODER_SYSTEM}),
                json!({"role": "user", "content": self.code}),
            ],
            MultiTurnKind::Conversation => {
                let (q, n) = self.w.questions.next(&mut self.rng);
                let mut m = self.history.clone();
                m.push(json!({"role": "user", "content": q}));
                self.pending = Some((q, n));
                m
            }
        };
        let question = self.pending.as_ref().map_or(0, |(_, n)| *n);
        let framing = tokenizer::chat_framing(messages.len() as u32);
        let body = chat_body(
            &s.model,
            messages,
            s.max_tokens,
            s.temperature,
            s.stream,
            s.stream_usage,
        );
        let mut p = Prepared::post(
            "chat/completions",
            Bytes::from(body.to_string()),
            Expect::Completion,
        );
        p.stream = s.stream;
        p.prompt_tokens = self.tokens + question;
        p.framing = framing;
        p.keep_text = true;
        p.group = Some(Group::Turn(self.turn + 1));
        Some(p)
    }

    fn observe(&mut self, rec: &RequestRecord) {
        self.turn += 1;
        let Some(text) = rec.output_text.as_deref().filter(|_| rec.is_ok()) else {
            // A failed turn adds nothing; the next one asks again.
            self.pending = None;
            return;
        };
        let answer = match rec.output_tokens {
            0 => self.w.tok.count_prompt(text),
            n => n,
        };
        match self.w.kind {
            MultiTurnKind::PrefixCaching => {
                self.code.push_str(text);
                self.tokens += answer;
            }
            MultiTurnKind::Conversation => {
                if let Some((q, n)) = self.pending.take() {
                    self.history.push(json!({"role": "user", "content": q}));
                    self.history
                        .push(json!({"role": "assistant", "content": text}));
                    self.tokens += n + answer;
                }
            }
        }
    }
}

impl Workload for MultiTurn {
    fn name(&self) -> &'static str {
        match self.0.kind {
            MultiTurnKind::PrefixCaching => "prefix-caching",
            MultiTurnKind::Conversation => "conversation",
        }
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        let mut s = MultiSession {
            w: self.0.clone(),
            vu,
            rng: super::session_rng(vu),
            turn: 0,
            code: String::new(),
            history: Vec::new(),
            pending: None,
            tokens: 0,
        };
        s.reset();
        Box::new(s)
    }

    fn preflight(&self) -> Prepared {
        let mut p = self
            .session(0)
            .next(Turn {
                vu: 0,
                iteration: 0,
                stage: 0,
            })
            .expect("a conversation always has a next turn");
        let mut v: Value = serde_json::from_slice(&p.body).unwrap_or_default();
        v["max_tokens"] = json!(1);
        v["stream"] = json!(false);
        if let Some(o) = v.as_object_mut() {
            o.remove("stream_options");
        }
        p.body = Bytes::from(v.to_string());
        p.stream = false;
        p.keep_text = false;
        p.group = None;
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> RequestRecord {
        let mut r = RequestRecord::new(0, 0);
        r.output_text = Some(text.into());
        r
    }

    const T: Turn = Turn {
        vu: 0,
        iteration: 0,
        stage: 0,
    };

    #[test]
    fn the_code_buffer_grows_by_each_answer_and_starts_over() {
        let mut spec = super::super::chat::tests::spec("prefix-caching");
        spec.turns = 3;
        let w = MultiTurn::new(
            &spec,
            MultiTurnKind::PrefixCaching,
            &tokenizer::default_tokenizer(),
        );
        let mut s = w.session(7);
        let first = s.next(T).unwrap();
        assert_eq!(first.group, Some(Group::Turn(1)));
        s.observe(&answer("    return total\n"));
        let second = s.next(T).unwrap();
        assert_eq!(second.group, Some(Group::Turn(2)));
        assert!(second.prompt_tokens > first.prompt_tokens);
        let v: Value = serde_json::from_slice(&second.body).unwrap();
        let code = v["messages"][1]["content"].as_str().unwrap();
        assert!(code.starts_with("# file: service_7.py"));
        assert!(code.ends_with("    return total\n"));
        s.observe(&answer(" x"));
        s.next(T).unwrap();
        s.observe(&answer(" y"));
        let again = s.next(T).unwrap();
        assert_eq!(again.group, Some(Group::Turn(1)));
        assert_eq!(again.prompt_tokens, first.prompt_tokens);
    }

    #[test]
    fn a_conversation_keeps_its_history() {
        let spec = super::super::chat::tests::spec("conversation");
        let w = MultiTurn::new(
            &spec,
            MultiTurnKind::Conversation,
            &tokenizer::default_tokenizer(),
        );
        let mut s = w.session(0);
        s.next(T).unwrap();
        s.observe(&answer("An answer."));
        let second = s.next(T).unwrap();
        let v: Value = serde_json::from_slice(&second.body).unwrap();
        let roles: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(v["messages"][2]["content"], "An answer.");
    }
}
