//! Anthropic's Messages API as the mock serves it (`POST /v1/messages`):
//! the request it reads (`system`, `messages`, `max_tokens`), the stream
//! events (`message_start` with the input usage, `ping`,
//! `content_block_start`/`_delta`/`_stop`, `message_delta` with the stop
//! reason and output usage, `message_stop`), and the whole message, in the
//! shapes the official Anthropic SDK parses.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::openai::{Message, Usage};

/// The body of `POST /v1/messages`, as far as the mock needs it.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    /// A string or text blocks.
    #[serde(borrow)]
    pub system: Option<&'a RawValue>,
    #[serde(borrow)]
    pub messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub max_tokens: Option<u32>,
}

impl<'a> MessagesRequest<'a> {
    /// The prompt's texts: the system prompt, then the messages'.
    pub fn texts(&self) -> Result<Vec<Cow<'a, str>>, String> {
        let mut out = Vec::new();
        if let Some(raw) = self.system {
            let sys = Message {
                role: Some(Cow::Borrowed("system")),
                content: Some(raw),
                output: None,
                arguments: None,
            };
            out.push(sys.text().map_err(|e| e.replace("'content'", "'system'"))?);
        }
        match &self.messages {
            Some(m) if !m.is_empty() => {
                for msg in m {
                    out.push(msg.text()?);
                }
                Ok(out)
            }
            Some(_) => Err("messages: at least one message is required".into()),
            None => Err("messages: Field required".into()),
        }
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// Anthropic's stop reason for an OpenAI finish reason.
fn stop_reason(finish: &str) -> &'static str {
    if finish == "length" {
        "max_tokens"
    } else {
        "end_turn"
    }
}

fn usage_json(input: u32, cached: u32, output: u32) -> String {
    format!(
        "{{\"input_tokens\":{},\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":{cached},\"output_tokens\":{output}}}",
        input.saturating_sub(cached)
    )
}

/// A whole (non-streamed) message.
pub fn body(id: u64, model: &str, text: &str, finish: &str, usage: Option<Usage>) -> String {
    let u = usage.unwrap_or_default();
    format!(
        "{{\"id\":\"msg_{id:016x}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\"text\":{}}}],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":{}}}",
        json_str(model),
        json_str(text),
        stop_reason(finish),
        usage_json(u.prompt, u.cached, u.completion)
    )
}

/// One streamed message.
pub struct Stream {
    id: String,
    model_json: String,
    /// Input tokens and cached ones, for `message_start`.
    input: (u32, u32),
}

impl Stream {
    pub fn new(id: u64, model: &str, usage: Usage) -> Self {
        Stream {
            id: format!("msg_{id:016x}"),
            model_json: json_str(model),
            input: (usage.prompt, usage.cached),
        }
    }

    /// The bytes a text delta starts with, up to its text.
    pub fn delta_head() -> &'static str {
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
    }

    fn event(b: &mut BytesMut, kind: &str, rest: &str) {
        b.put_slice(format!("event: {kind}\ndata: {{\"type\":\"{kind}\"{rest}}}\n\n").as_bytes());
    }

    /// Before the first token: the message with its input usage, a ping,
    /// and the text block opened.
    pub fn put_start(&self, b: &mut BytesMut) {
        let (input, cached) = self.input;
        Self::event(
            b,
            "message_start",
            &format!(
                ",\"message\":{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{}}}",
                self.id,
                self.model_json,
                usage_json(input, cached, 1)
            ),
        );
        Self::event(
            b,
            "content_block_start",
            ",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}",
        );
        Self::event(b, "ping", "");
    }

    /// One token of text.
    pub fn put_token(&self, b: &mut BytesMut, text: &str) {
        b.put_slice(Self::delta_head().as_bytes());
        b.put_slice(json_str(text).as_bytes());
        b.put_slice(b"}}\n\n");
    }

    /// The end: the block closed, the stop reason and output usage, stop.
    pub fn put_finish(&self, b: &mut BytesMut, finish_reason: &str, usage: Option<Usage>) {
        Self::event(b, "content_block_stop", ",\"index\":0");
        let usage = usage.map_or(String::new(), |u| {
            format!(",\"usage\":{{\"output_tokens\":{}}}", u.completion)
        });
        Self::event(
            b,
            "message_delta",
            &format!(
                ",\"delta\":{{\"stop_reason\":\"{}\",\"stop_sequence\":null}}{usage}",
                stop_reason(finish_reason)
            ),
        );
        Self::event(b, "message_stop", "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_is_named_events_with_usage_at_both_ends() {
        let u = Usage {
            prompt: 20,
            completion: 2,
            cached: 5,
        };
        let s = Stream::new(3, "claude", u);
        let mut b = BytesMut::new();
        s.put_start(&mut b);
        s.put_token(&mut b, "Hi");
        s.put_token(&mut b, " \"you\"");
        s.put_finish(&mut b, "length", Some(u));
        let text = std::str::from_utf8(&b).unwrap();
        let ev: Vec<serde_json::Value> = text
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (event, data) = e.split_once('\n').unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(event.strip_prefix("event: ").unwrap(), v["type"]);
                v
            })
            .collect();
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(ev[0]["message"]["usage"]["input_tokens"], 15);
        assert_eq!(ev[0]["message"]["usage"]["cache_read_input_tokens"], 5);
        assert_eq!(ev[4]["delta"]["text"], " \"you\"");
        assert_eq!(ev[6]["delta"]["stop_reason"], "max_tokens");
        assert_eq!(ev[6]["usage"]["output_tokens"], 2);
    }

    #[test]
    fn requests_need_messages_and_take_a_system_string_or_blocks() {
        let r: MessagesRequest = serde_json::from_str(
            r#"{"model":"c","max_tokens":5,"system":[{"type":"text","text":"be brief"}],"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(r.texts().unwrap(), ["be brief", "hi"]);
        let r: MessagesRequest = serde_json::from_str(r#"{"max_tokens":5}"#).unwrap();
        assert!(r.texts().unwrap_err().contains("messages"));
        let v: serde_json::Value = serde_json::from_str(&body(1, "c", "ok", "stop", None)).unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["content"][0]["text"], "ok");
    }
}
