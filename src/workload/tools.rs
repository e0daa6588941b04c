//! `tool-calls`: an agent's loop. Every request defines the same function
//! tools (chat completions' shape, or the Responses API's with `--api
//! responses`); when the answer calls some, the next turn sends the
//! conversation back with the calls and a synthetic result for each, up to
//! `--tool-turns` turns, then starts over. An answer that calls nothing
//! ends the loop early. Reported by turn, ttft included: a call's first
//! delta is the first token, so a tool-only answer has a ttft.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::chat::{chat_body, responses_body};
use super::{LlmApi, PromptSource, Session, Turn, Workload, WorkloadSpec};
use crate::client::{Expect, Prepared};
use crate::record::{Group, RequestRecord};
use crate::tokenizer::{self, Tokenizer};

/// The default question: one that needs the tools.
pub const TOOL_PROMPT: &str =
    "What is the weather in Paris and in Tokyo right now? Use the tools to find out, then compare the two.";

/// What every tool call gets back.
const TOOL_RESULT: &str = r#"{"status":"ok","result":"Partly cloudy, 21 degrees Celsius, light wind from the west, humidity 64 percent; no change expected in the next three hours."}"#;

/// The tools: name, description, parameters.
fn functions() -> Vec<(&'static str, &'static str, Value)> {
    let one = |name: &str, what: &str| json!({"type": "object", "properties": {name: {"type": "string", "description": what}}, "required": [name]});
    vec![
        (
            "get_weather",
            "The current weather of a city.",
            one("city", "The city's name, e.g. Paris"),
        ),
        (
            "search_docs",
            "Search the product documentation and return the best passages.",
            one("query", "What to look for"),
        ),
        (
            "get_order_status",
            "The shipping status of a customer's order.",
            one("order_id", "The order's id, e.g. A-1042"),
        ),
    ]
}

/// The `tools` array in `api`'s shape.
fn tools_json(api: LlmApi) -> Value {
    let tools: Vec<Value> = functions()
        .into_iter()
        .map(|(name, description, parameters)| match api {
            LlmApi::Chat => json!({"type": "function", "function": {
                "name": name, "description": description, "parameters": parameters}}),
            LlmApi::Responses => json!({"type": "function", "name": name,
                "description": description, "parameters": parameters}),
        })
        .collect();
    Value::Array(tools)
}

/// The texts this workload sends whatever the VU, for a server's tokenizer
/// to count before the run.
pub(super) fn known_texts() -> Vec<String> {
    vec![
        TOOL_RESULT.to_string(),
        tools_json(LlmApi::Chat).to_string(),
        tools_json(LlmApi::Responses).to_string(),
    ]
}

pub struct ToolCalls(Arc<Inner>);

struct Inner {
    spec: WorkloadSpec,
    prompts: PromptSource,
    tools: Value,
    /// Tokens of the tool definitions, the system message, one result.
    tools_tokens: u32,
    system_tokens: u32,
    result_tokens: u32,
}

impl ToolCalls {
    pub fn new(spec: &WorkloadSpec, tok: &Tokenizer) -> Self {
        let prompts = PromptSource::new(
            &spec.prompt,
            spec.input_tokens,
            spec.input_tokens_stddev,
            spec.shared_prefix,
            spec.dataset.as_ref(),
            tok,
        );
        let tools = tools_json(spec.api);
        ToolCalls(Arc::new(Inner {
            tools_tokens: tok.count_prompt(&tools.to_string()),
            system_tokens: spec.system.as_deref().map_or(0, |s| tok.count_prompt(s)),
            result_tokens: tok.count_prompt(TOOL_RESULT),
            spec: spec.clone(),
            prompts,
            tools,
        }))
    }
}

struct ToolSession {
    w: Arc<Inner>,
    rng: fastrand::Rng,
    /// Turns done in this loop; None: the next request starts one.
    turn: Option<u32>,
    /// The conversation: chat messages, or Responses input items.
    items: Vec<Value>,
    /// Messages among the items (for the chat template's framing).
    messages: u32,
    /// Content tokens of the items so far.
    tokens: u32,
}

impl ToolSession {
    fn start(&mut self) {
        let w = self.w.clone();
        let (question, n) = w.prompts.next(&mut self.rng);
        self.items.clear();
        self.messages = 1;
        self.tokens = w.tools_tokens + w.system_tokens + n;
        if let (Some(s), LlmApi::Chat) = (&w.spec.system, w.spec.api) {
            self.items.push(json!({"role": "system", "content": s}));
            self.messages += 1;
        }
        self.items
            .push(json!({"role": "user", "content": question}));
        self.turn = Some(0);
    }

    fn request(&self, max_tokens: u32, stream: bool) -> Prepared {
        let w = &self.w;
        let s = &w.spec;
        let (path, mut body, expect) = match s.api {
            LlmApi::Chat => {
                let b = chat_body(
                    &s.model,
                    self.items.clone(),
                    max_tokens,
                    s.temperature,
                    stream,
                    s.stream_usage,
                );
                ("chat/completions", b, Expect::Completion)
            }
            LlmApi::Responses => {
                let input = Value::Array(self.items.clone());
                let b = responses_body(s, input, max_tokens, stream);
                ("responses", b, Expect::Responses)
            }
        };
        body["tools"] = w.tools.clone();
        body["tool_choice"] = Value::from("auto");
        let mut p = Prepared::post(path, Bytes::from(body.to_string()), expect);
        p.stream = stream;
        p.prompt_tokens = self.tokens;
        p.framing = tokenizer::chat_framing(self.messages);
        p
    }
}

impl Session for ToolSession {
    fn next(&mut self, _turn: Turn) -> Option<Prepared> {
        let turn = match self.turn {
            Some(t) if t < self.w.spec.turns.max(1) => t,
            _ => {
                self.start();
                0
            }
        };
        let mut p = self.request(self.w.spec.max_tokens, self.w.spec.stream);
        p.keep_text = true;
        p.group = Some(Group::Turn(turn + 1));
        Some(p)
    }

    fn observe(&mut self, rec: &RequestRecord) {
        let Some(done) = self.turn.map(|t| t + 1) else {
            return;
        };
        // A failed turn or one that calls nothing ends the loop; so does
        // the last turn.
        if !rec.is_ok() || rec.tool_calls.is_empty() || done >= self.w.spec.turns.max(1) {
            self.turn = None;
            return;
        }
        self.turn = Some(done);
        let api = self.w.spec.api;
        let ids: Vec<String> = rec
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| match c.id.as_str() {
                "" => format!("call_{done}_{i}"),
                id => id.to_string(),
            })
            .collect();
        match api {
            LlmApi::Chat => {
                let calls: Vec<Value> = rec
                    .tool_calls
                    .iter()
                    .zip(&ids)
                    .map(|(c, id)| json!({"id": id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
                self.items.push(
                    json!({"role": "assistant", "content": Value::Null, "tool_calls": calls}),
                );
                for id in &ids {
                    self.items
                        .push(json!({"role": "tool", "tool_call_id": id, "content": TOOL_RESULT}));
                }
                self.messages += 1 + ids.len() as u32;
            }
            LlmApi::Responses => {
                for (c, id) in rec.tool_calls.iter().zip(&ids) {
                    self.items
                        .push(json!({"type": "function_call", "call_id": id,
                        "name": c.name, "arguments": c.arguments}));
                }
                for id in &ids {
                    self.items
                        .push(json!({"type": "function_call_output", "call_id": id,
                        "output": TOOL_RESULT}));
                }
                self.messages += 2 * ids.len() as u32;
            }
        }
        self.tokens += rec.output_tokens + self.w.result_tokens * ids.len() as u32;
    }
}

impl Workload for ToolCalls {
    fn name(&self) -> &'static str {
        "tool-calls"
    }

    fn session(&self, vu: u64) -> Box<dyn Session> {
        Box::new(ToolSession {
            w: self.0.clone(),
            rng: super::session_rng(vu),
            turn: None,
            items: Vec::new(),
            messages: 0,
            tokens: 0,
        })
    }

    fn preflight(&self) -> Prepared {
        let mut s = ToolSession {
            w: self.0.clone(),
            rng: fastrand::Rng::with_seed(0),
            turn: None,
            items: Vec::new(),
            messages: 0,
            tokens: 0,
        };
        s.start();
        // OpenAI's Responses API takes no max_output_tokens below 16.
        let least = match self.0.spec.api {
            LlmApi::Chat => 1,
            LlmApi::Responses => 16,
        };
        s.request(least, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ToolCall;

    const T: Turn = Turn {
        vu: 0,
        iteration: 0,
        stage: 0,
    };

    fn called(calls: &[(&str, &str)], output_tokens: u32) -> RequestRecord {
        let mut r = RequestRecord::new(0, 0);
        r.output_tokens = output_tokens;
        r.tool_calls = calls
            .iter()
            .map(|(id, name)| ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                arguments: "{\"city\":\"Paris\"}".into(),
            })
            .collect();
        r
    }

    fn session(api: LlmApi, turns: u32) -> Box<dyn Session> {
        let mut spec = super::super::chat::tests::spec("tool-calls");
        spec.api = api;
        spec.turns = turns;
        ToolCalls::new(&spec, &tokenizer::default_tokenizer()).session(0)
    }

    fn body(p: &Prepared) -> Value {
        serde_json::from_slice(&p.body).unwrap()
    }

    #[test]
    fn each_turn_answers_the_calls_of_the_last_and_the_loop_starts_over() {
        let mut s = session(LlmApi::Chat, 3);
        let first = s.next(T).unwrap();
        assert_eq!(first.group, Some(Group::Turn(1)));
        let v = body(&first);
        assert_eq!(v["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(v["tool_choice"], "auto");
        s.observe(&called(
            &[("call_1", "get_weather"), ("", "search_docs")],
            12,
        ));
        let second = s.next(T).unwrap();
        assert_eq!(second.group, Some(Group::Turn(2)));
        let v = body(&second);
        let roles: Vec<&str> = v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "tool"]);
        assert_eq!(v["messages"][2]["tool_calls"][0]["id"], "call_1");
        assert_eq!(v["messages"][4]["tool_call_id"], "call_1_1");
        assert!(second.prompt_tokens > first.prompt_tokens + 12);
        s.observe(&called(&[("c", "get_weather")], 5));
        assert_eq!(s.next(T).unwrap().group, Some(Group::Turn(3)));
        s.observe(&called(&[("d", "get_weather")], 5));
        // Three turns done: a new loop.
        let again = s.next(T).unwrap();
        assert_eq!(again.group, Some(Group::Turn(1)));
        assert_eq!(again.prompt_tokens, first.prompt_tokens);
    }

    #[test]
    fn an_answer_without_calls_ends_the_loop() {
        let mut s = session(LlmApi::Chat, 3);
        s.next(T).unwrap();
        s.observe(&called(&[], 4));
        assert_eq!(s.next(T).unwrap().group, Some(Group::Turn(1)));
    }

    #[test]
    fn the_responses_api_gets_its_own_items() {
        let mut s = session(LlmApi::Responses, 2);
        let first = s.next(T).unwrap();
        assert_eq!(first.path, "responses");
        let v = body(&first);
        assert_eq!(v["tools"][0]["name"], "get_weather");
        assert_eq!(v["instructions"], "be brief");
        s.observe(&called(&[("call_9", "get_weather")], 7));
        let v = body(&s.next(T).unwrap());
        let kinds: Vec<&str> = v["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().or(i["role"].as_str()).unwrap())
            .collect();
        assert_eq!(kinds, ["user", "function_call", "function_call_output"]);
        assert_eq!(v["input"][2]["call_id"], "call_9");
    }
}
