//! The function calls a chat answer asks for: `tool_calls` in stream
//! deltas (an `index`, the `id` and name in its first delta, the arguments
//! in pieces) and in a whole answer's message. Read only from chunks that
//! carry them, so every other chunk stays on the fast path; the arguments
//! are output text too (counted when the server sends no usage).

use std::borrow::Cow;

use serde::Deserialize;

use super::parse::StreamState;
use crate::record::ToolCall;

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Calls<'a>>,
    #[serde(borrow, default)]
    message: Option<Calls<'a>>,
}

#[derive(Deserialize)]
struct Calls<'a> {
    #[serde(borrow, default)]
    tool_calls: Option<Vec<CallDelta<'a>>>,
}

#[derive(Deserialize)]
struct CallDelta<'a> {
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

impl StreamState {
    /// Take the `tool_calls` of a chat chunk or whole answer: a call's
    /// `index` says which one a delta continues (a whole message's calls
    /// have none: their place in the list).
    pub(super) fn chat_tool_calls(&mut self, data: &[u8]) {
        // Read as text, as the main parser does (lossy UTF-8).
        let text = String::from_utf8_lossy(data);
        let Ok(chunk) = serde_json::from_str::<Chunk<'_>>(text.trim()) else {
            // What is not JSON is the main parser's to report.
            return;
        };
        for choice in chunk.choices {
            for calls in [choice.delta, choice.message].into_iter().flatten() {
                for (pos, d) in calls.tool_calls.into_iter().flatten().enumerate() {
                    let i = d.index.unwrap_or(pos).min(1024);
                    if self.tool_calls.len() <= i {
                        self.tool_calls.resize_with(i + 1, ToolCall::default);
                    }
                    let call = &mut self.tool_calls[i];
                    if let Some(id) = d.id.filter(|s| !s.is_empty()) {
                        call.id = id.into_owned();
                    }
                    if let Some(f) = d.function {
                        if let Some(n) = f.name.filter(|s| !s.is_empty()) {
                            call.name.push_str(&n);
                        }
                        if let Some(a) = f.arguments {
                            call.arguments.push_str(&a);
                            self.text.push_str(&a);
                        }
                    }
                }
            }
        }
    }

    /// A function call the Responses API finished (`response.output_item.done`,
    /// or an item of a whole response).
    pub(super) fn responses_tool_call(&mut self, call_id: &str, name: &str, arguments: &str) {
        self.tool_calls.push(ToolCall {
            id: call_id.to_string(),
            name: name.to_string(),
            arguments: arguments.to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{feed_events, Dialect};
    use super::*;

    #[test]
    fn streamed_calls_are_put_together_by_index_and_count_as_output() {
        let st = feed_events(
            Dialect::Completions,
            &[
                r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"search","arguments":"{}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}"#,
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            ],
        );
        assert!(st.end_class().is_none(), "{:?}", st.end_class());
        assert_eq!(
            st.tool_calls,
            [
                ToolCall {
                    id: "call_a".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into()
                },
                ToolCall {
                    id: "call_b".into(),
                    name: "search".into(),
                    arguments: "{}".into()
                }
            ]
        );
        // A tool-only answer: timed from its first call delta.
        assert!(st.first_output.is_some());
        assert_eq!(st.text, "{\"city\":{}\"Paris\"}");
    }

    #[test]
    fn a_whole_answers_calls_are_read_in_order() {
        let mut st = StreamState::default();
        st.on_body(
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},{"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":9}}"#,
            std::time::Instant::now(),
        );
        assert!(st.end_class().is_none());
        let names: Vec<&str> = st.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(st.tool_calls[0].arguments, "{\"x\":1}");
        assert_eq!(st.tool_calls[1].id, "c2");
    }
}
