//! Reading Anthropic's Messages API (`POST /v1/messages`): its stream
//! events (`message_start`, `content_block_delta` of text, thinking or a
//! tool's input JSON, `message_delta` with the usage, `message_stop`,
//! `ping`, `error`) and its whole message, into the same [`StreamState`]
//! as chat chunks: ttft at the first delta that carries output, ttfo at the
//! first that is not thinking; input tokens are `input_tokens` plus the
//! cache's reads and writes (Anthropic counts them apart), output tokens
//! the last `output_tokens` sent.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;

use super::parse::{message_of, PromptDetailsIn, StreamState, UsageIn};
use crate::record::ErrorClass;

#[derive(Debug, Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
struct Message {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    content: Option<Vec<Block>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
}

impl Usage {
    /// Later counts win; a field left out keeps the earlier one.
    fn update(self, into: &mut Option<UsageIn>) {
        let u = into.get_or_insert(UsageIn {
            prompt_tokens: None,
            completion_tokens: None,
            completion_tokens_details: None,
            prompt_tokens_details: None,
        });
        if let Some(i) = self.input_tokens {
            let read = self.cache_read_input_tokens.unwrap_or(0);
            let wrote = self.cache_creation_input_tokens.unwrap_or(0);
            u.prompt_tokens = Some(i + read + wrote);
            u.prompt_tokens_details = Some(PromptDetailsIn {
                cached_tokens: self.cache_read_input_tokens,
            });
        }
        if let Some(o) = self.output_tokens {
            u.completion_tokens = Some(o);
        }
    }
}

impl StreamState {
    /// One event of a Messages stream. False once the stream should stop
    /// being read (not JSON, or an error).
    pub(super) fn messages_event(&mut self, data: &[u8], at: Instant) -> bool {
        let text = String::from_utf8_lossy(data);
        let e: Event<'_> = match serde_json::from_str(text.trim()) {
            Ok(e) => e,
            Err(err) => {
                self.failure = Some((ErrorClass::BadBody, format!("an event is not JSON: {err}")));
                return false;
            }
        };
        match e.kind.as_ref() {
            "message_start" => {
                if let Some(u) = e.message.and_then(|m| m.usage) {
                    u.update(&mut self.usage);
                }
            }
            "content_block_delta" => {
                let Some(d) = e.delta else { return true };
                let some = |s: &Option<Cow<'_, str>>| {
                    s.as_deref().filter(|t| !t.is_empty()).map(String::from)
                };
                match d.kind.as_deref() {
                    Some("thinking_delta") => {
                        if let Some(t) = some(&d.thinking) {
                            self.push_reasoning(&t);
                            self.output_at(false, at);
                        }
                    }
                    Some("input_json_delta") => {
                        if some(&d.partial_json).is_some() {
                            self.output_at(true, at);
                        }
                    }
                    _ => {
                        if let Some(t) = some(&d.text) {
                            self.text.push_str(&t);
                            self.output_at(true, at);
                        }
                    }
                }
            }
            "message_delta" => {
                if let Some(u) = e.usage {
                    u.update(&mut self.usage);
                }
                if e.delta.is_some_and(|d| d.stop_reason.is_some()) {
                    self.finished = true;
                }
            }
            "message_stop" => self.finished = true,
            "error" => {
                let msg = e
                    .error
                    .map_or_else(|| "an error event".to_string(), |v| message_of(&v));
                self.failure = Some((ErrorClass::StreamError, msg));
                return false;
            }
            _ => {}
        }
        true
    }

    /// A whole message.
    pub(super) fn messages_body(&mut self, body: &[u8]) {
        let m: Message = match serde_json::from_slice(body) {
            Ok(m) => m,
            Err(e) => {
                self.failure = Some((ErrorClass::BadBody, format!("the body is not JSON: {e}")));
                return;
            }
        };
        if m.kind.as_deref() == Some("error") {
            let msg = m
                .error
                .as_ref()
                .map_or_else(|| "an error".into(), message_of);
            self.failure = Some((ErrorClass::StreamError, msg));
            return;
        }
        let Some(blocks) = m.content else {
            self.failure = Some((ErrorClass::BadBody, "the body has no content".into()));
            return;
        };
        for b in &blocks {
            if let Some(t) = &b.thinking {
                self.push_reasoning(t);
            }
            if let Some(t) = &b.text {
                self.text.push_str(t);
            }
        }
        if let Some(u) = m.usage {
            u.update(&mut self.usage);
        }
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(events: &[&str]) -> StreamState {
        super::super::parse::feed_events(super::super::parse::Dialect::Messages, events)
    }

    #[test]
    fn thinking_starts_ttft_text_starts_ttfo_and_usage_adds_the_cache() {
        let mut st = feed(&[
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":10,"cache_read_input_tokens":30,"cache_creation_input_tokens":2,"output_tokens":1}}}"#,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            r#"{"type":"ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"abc"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" there"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#,
            r#"{"type":"message_stop"}"#,
        ]);
        assert!(st.end_class().is_none(), "{:?}", st.end_class());
        assert_eq!(st.text, "hmmHi there");
        assert_eq!(st.output_chunks, 3);
        let d = st.first_visible.unwrap() - st.first_output.unwrap();
        assert_eq!(d, std::time::Duration::from_millis(3));
        let u = st.usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (Some(42), Some(5)));
        assert_eq!(u.prompt_tokens_details.unwrap().cached_tokens, Some(30));
        assert_eq!(st.split_text(), ("Hi there".into(), "hmm".into()));
    }

    #[test]
    fn tool_input_has_a_ttft_errors_fail_and_a_cut_stream_is_cut() {
        let st = feed(&[
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        ]);
        assert!(st.first_output.is_some() && st.end_class().is_none());
        let st = feed(&[
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ]);
        assert_eq!(
            st.end_class(),
            Some((ErrorClass::StreamError, "Overloaded".into()))
        );
        let st = feed(&[
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}"#,
        ]);
        assert_eq!(st.end_class().unwrap().0, ErrorClass::StreamCut);
    }

    #[test]
    fn a_whole_message_gives_its_text_and_usage() {
        let mut st = StreamState::default();
        st.messages_body(br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":1}}"#);
        assert!(st.end_class().is_none());
        assert_eq!(st.text, "Hello");
        assert_eq!(st.usage.unwrap().prompt_tokens, Some(7));
        let mut st = StreamState::default();
        st.messages_body(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
        );
        assert_eq!(
            st.end_class(),
            Some((ErrorClass::StreamError, "bad".into()))
        );
    }
}
