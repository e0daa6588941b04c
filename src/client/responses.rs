//! Reading OpenAI's Responses API (`POST /v1/responses`): its typed stream
//! events and its whole response object, into the same [`StreamState`] as
//! chat chunks, by the README's definitions (What it reports): ttft at the first event that
//! carries output (text, reasoning, refusal or a function call's
//! arguments), ttfo at the first visible one; usage from
//! `response.completed` (`input_tokens`, `output_tokens`, their details);
//! `response.failed` and `error` events are failed requests.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;

use super::parse::{message_of, DetailsIn, PromptDetailsIn, StreamState, TimingsIn, UsageIn};
use crate::record::ErrorClass;

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    delta: Option<Cow<'a, str>>,
    #[serde(default)]
    response: Option<Response>,
    /// An `error` event's message.
    #[serde(default)]
    message: Option<String>,
    /// The item of `response.output_item.done`.
    #[serde(default)]
    item: Option<Item>,
}

#[derive(Debug, Deserialize, Default)]
struct Response {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    output: Option<Vec<Item>>,
    /// llama.cpp's own timings, beside a whole response's fields.
    #[serde(default)]
    timings: Option<TimingsIn>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    input_tokens_details: Option<PromptDetailsIn>,
    #[serde(default)]
    output_tokens_details: Option<DetailsIn>,
}

impl From<Usage> for UsageIn {
    fn from(u: Usage) -> Self {
        UsageIn {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            completion_tokens_details: u.output_tokens_details,
            prompt_tokens_details: u.input_tokens_details,
        }
    }
}

/// An output item of a whole response: a message's parts, reasoning's
/// summary and content, a function call's arguments.
#[derive(Debug, Deserialize)]
struct Item {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    content: Option<Vec<Part>>,
    #[serde(default)]
    summary: Option<Vec<Part>>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl Item {
    /// A function call's id, name and arguments.
    fn call(&self) -> Option<(&str, &str, &str)> {
        (self.kind == "function_call").then(|| {
            (
                self.call_id.as_deref().unwrap_or_default(),
                self.name.as_deref().unwrap_or_default(),
                self.arguments.as_deref().unwrap_or_default(),
            )
        })
    }
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

impl StreamState {
    /// One event of a Responses stream. False once the stream should stop
    /// being read (not JSON, or an error).
    pub(super) fn responses_event(&mut self, data: &[u8], at: Instant) -> bool {
        let text = String::from_utf8_lossy(data);
        let e: Event<'_> = match serde_json::from_str(text.trim()) {
            Ok(e) => e,
            Err(err) => {
                self.failure = Some((ErrorClass::BadBody, format!("an event is not JSON: {err}")));
                return false;
            }
        };
        let delta = e.delta.as_deref().filter(|d| !d.is_empty());
        match e.kind.as_ref() {
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(d) = delta {
                    self.text.push_str(d);
                    self.output_at(true, at);
                }
            }
            "response.reasoning_text.delta" | "response.reasoning_summary_text.delta" => {
                if let Some(d) = delta {
                    self.push_reasoning(d);
                    self.output_at(false, at);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let Some(d) = delta {
                    self.text.push_str(d);
                    self.output_at(true, at);
                }
            }
            "response.output_item.done" => {
                if let Some((id, name, args)) = e.item.as_ref().and_then(Item::call) {
                    self.responses_tool_call(id, name, args);
                }
            }
            "response.completed" | "response.incomplete" => {
                self.finished = true;
                if let Some(u) = e.response.and_then(|r| r.usage) {
                    self.usage = Some(u.into());
                }
            }
            "response.failed" => {
                let msg = e
                    .response
                    .and_then(|r| r.error)
                    .map_or_else(|| "the response failed".to_string(), |v| message_of(&v));
                self.failure = Some((ErrorClass::StreamError, msg));
                return false;
            }
            "error" => {
                self.failure = Some((
                    ErrorClass::StreamError,
                    e.message.unwrap_or_else(|| "an error event".into()),
                ));
                return false;
            }
            _ => {}
        }
        true
    }

    /// A whole Responses answer received at `at`.
    pub(super) fn responses_body(&mut self, body: &[u8]) {
        let r: Response = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => {
                self.failure = Some((ErrorClass::BadBody, format!("the body is not JSON: {e}")));
                return;
            }
        };
        if let Some(err) = r.error.as_ref().filter(|e| !e.is_null()) {
            self.failure = Some((ErrorClass::StreamError, message_of(err)));
            return;
        }
        if r.status.as_deref() == Some("failed") {
            self.failure = Some((ErrorClass::StreamError, "the response failed".into()));
            return;
        }
        let Some(items) = r.output else {
            self.failure = Some((ErrorClass::BadBody, "the body has no output".into()));
            return;
        };
        for item in &items {
            let reasoning = item.kind == "reasoning";
            for p in item.content.iter().chain(&item.summary).flatten() {
                for t in [&p.text, &p.refusal].into_iter().flatten() {
                    if reasoning {
                        self.push_reasoning(t);
                    } else {
                        self.text.push_str(t);
                    }
                }
            }
            if let Some((id, name, args)) = item.call() {
                self.text.push_str(args);
                self.responses_tool_call(id, name, args);
            }
        }
        self.usage = r.usage.map(Into::into);
        if let Some(t) = r.timings {
            self.take_timings(t);
        }
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(events: &[&str]) -> StreamState {
        super::super::parse::feed_events(super::super::parse::Dialect::Responses, events)
    }

    #[test]
    fn deltas_time_the_output_and_the_completed_event_carries_usage() {
        let st = feed(&[
            r#"{"type":"response.created","sequence_number":0,"response":{"status":"in_progress"}}"#,
            r#"{"type":"response.output_item.added","sequence_number":1,"item":{"type":"reasoning"}}"#,
            r#"{"type":"response.reasoning_summary_text.delta","sequence_number":2,"delta":"think"}"#,
            r#"{"type":"response.output_text.delta","sequence_number":3,"delta":"Hel"}"#,
            r#"{"type":"response.output_text.delta","sequence_number":4,"delta":""}"#,
            r#"{"type":"response.output_text.delta","sequence_number":5,"delta":"lo"}"#,
            r#"{"type":"response.output_text.done","sequence_number":6,"text":"Hello"}"#,
            r#"{"type":"response.completed","sequence_number":7,"response":{"status":"completed","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1},"total_tokens":15}}}"#,
        ]);
        assert!(st.end_class().is_none(), "{:?}", st.end_class());
        assert_eq!(st.text, "thinkHello");
        assert_eq!(st.output_chunks, 3);
        // ttft at the reasoning, ttfo at the first text.
        let d = st.first_visible.unwrap() - st.first_output.unwrap();
        assert_eq!(d, std::time::Duration::from_millis(1));
        assert_eq!(st.gaps_us, vec![1000, 2000]);
        let u = st.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(12), Some(3)));
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(4));
        assert_eq!(
            u.completion_tokens_details.unwrap().reasoning_tokens,
            Some(1)
        );
    }

    #[test]
    fn a_tool_only_answer_has_a_ttft_and_failures_are_errors() {
        let st = feed(&[
            r#"{"type":"response.function_call_arguments.delta","delta":"{\"city\":"}"#,
            r#"{"type":"response.function_call_arguments.delta","delta":"\"Paris\"}"}"#,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":7}}}"#,
        ]);
        assert!(st.first_output.is_some() && st.end_class().is_none());
        let st = feed(&[
            r#"{"type":"response.output_item.added","item":{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":""}}"#,
            r#"{"type":"response.function_call_arguments.delta","delta":"{\"city\":\"Oslo\"}"}"#,
            r#"{"type":"response.output_item.done","item":{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}"#,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":7}}}"#,
        ]);
        assert_eq!(st.tool_calls.len(), 1);
        assert_eq!(st.tool_calls[0].id, "call_1");
        assert_eq!(st.tool_calls[0].name, "get_weather");
        assert_eq!(st.tool_calls[0].arguments, "{\"city\":\"Oslo\"}");
        assert_eq!(st.text, st.tool_calls[0].arguments);
        let mut whole = StreamState::default();
        whole.responses_body(br#"{"status":"completed","output":[{"type":"function_call","call_id":"c9","name":"f","arguments":"{}"}],"usage":{"input_tokens":3,"output_tokens":2}}"#);
        assert_eq!(whole.tool_calls[0].id, "c9");
        assert_eq!(whole.text, "{}");
        let st = feed(&[
            r#"{"type":"response.output_text.delta","delta":"a"}"#,
            r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"the model crashed"}}}"#,
        ]);
        assert_eq!(
            st.end_class(),
            Some((ErrorClass::StreamError, "the model crashed".into()))
        );
        let st = feed(&[r#"{"type":"error","code":"rate_limit_exceeded","message":"slow down"}"#]);
        assert_eq!(
            st.end_class(),
            Some((ErrorClass::StreamError, "slow down".into()))
        );
        // Cut before response.completed.
        let st = feed(&[r#"{"type":"response.output_text.delta","delta":"a"}"#]);
        assert_eq!(st.end_class().unwrap().0, ErrorClass::StreamCut);
        let st = feed(&["{not json"]);
        assert_eq!(st.end_class().unwrap().0, ErrorClass::BadBody);
        // A gateway's `[DONE]` after the events (LiteLLM sends one).
        let st = feed(&[
            r#"{"type":"response.output_text.delta","delta":"a"}"#,
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":1}}}"#,
            "[DONE]",
        ]);
        assert!(st.end_class().is_none(), "{:?}", st.end_class());
    }

    #[test]
    fn a_whole_response_gives_its_text_and_usage() {
        let mut st = StreamState::default();
        st.responses_body(br#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"reasoning","summary":[{"type":"summary_text","text":"hm "}]},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi there","annotations":[]}]}],"usage":{"input_tokens":9,"output_tokens":2}}"#);
        assert!(st.end_class().is_none());
        assert_eq!(st.text, "hm Hi there");
        assert_eq!(st.split_text(), ("Hi there".into(), "hm ".into()));
        assert_eq!(st.usage.unwrap().completion_tokens, Some(2));
        assert!(st.server_timing.is_none());
        // llama.cpp's server puts its own timings beside a whole response.
        let mut st = StreamState::default();
        st.responses_body(br#"{"object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":25,"output_tokens":4},"timings":{"cache_n":20,"prompt_n":5,"prompt_ms":60.6,"predicted_n":4,"predicted_ms":95.1}}"#);
        let t = st.server_timing.unwrap();
        assert_eq!(
            (t.prompt_tokens, t.cached_tokens, t.output_tokens),
            (Some(5), Some(20), Some(4))
        );
        assert_eq!((t.prompt_ms, t.decode_ms), (Some(60.6), Some(95.1)));
        let mut st = StreamState::default();
        st.responses_body(br#"{"object":"list","data":[]}"#);
        assert_eq!(st.end_class().unwrap().0, ErrorClass::BadBody);
    }
}
