//! OpenAI's Responses API as the mock serves it (`POST /v1/responses`):
//! the request it reads (`input`, `instructions`, `max_output_tokens`), the
//! typed stream events (`response.created` … `response.output_text.delta` …
//! `response.completed` with `input_tokens`/`output_tokens` usage), and the
//! whole response object, in the shapes the official SDK parses.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::openai::{Message, Usage};
use super::tools::{self, Call};

/// The body of `POST /v1/responses`, as far as the mock needs it.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    /// A string, or an array of input items (messages).
    #[serde(borrow)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow)]
    pub instructions: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub max_output_tokens: Option<u32>,
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_choice: Option<&'a RawValue>,
}

impl<'a> ResponsesRequest<'a> {
    /// The texts of the prompt: the instructions, then the input's.
    pub fn texts(&self) -> Result<Vec<Cow<'a, str>>, String> {
        let mut out: Vec<Cow<'a, str>> = self.instructions.iter().cloned().collect();
        let raw = self.input.ok_or("'input' is a required property")?;
        let json = raw.get();
        if json.starts_with('"') {
            let s: String = serde_json::from_str(json).map_err(|e| format!("'input': {e}"))?;
            out.push(Cow::Owned(s));
            return Ok(out);
        }
        let items: Vec<Message<'a>> = serde_json::from_str(json)
            .map_err(|_| "'input' must be a string or an array of input items".to_string())?;
        if items.is_empty() {
            return Err("'input' must contain at least one item".into());
        }
        for m in &items {
            out.push(m.text()?);
        }
        Ok(out)
    }

    /// Tokens of the pictures among the input's items.
    pub fn image_tokens(&self) -> Result<u32, String> {
        let Some(raw) = self.input.filter(|i| i.get().starts_with('[')) else {
            return Ok(0);
        };
        let items: Vec<Message<'_>> = serde_json::from_str(raw.get()).unwrap_or_default();
        items.iter().map(Message::image_tokens).sum()
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// The Responses API's usage object.
pub fn usage_json(u: &Usage) -> String {
    format!(
        "{{\"input_tokens\":{},\"input_tokens_details\":{{\"cached_tokens\":{}}},\"output_tokens\":{},\"output_tokens_details\":{{\"reasoning_tokens\":0}},\"total_tokens\":{}}}",
        u.prompt,
        u.cached,
        u.completion,
        u.prompt + u.completion
    )
}

/// The message output item holding `text` (a refusal, or output text).
fn message_item(msg_id: &str, status: &str, text: Option<&str>, refusal: bool) -> String {
    let content = match text {
        None => "[]".to_string(),
        Some(t) if refusal => format!("[{{\"type\":\"refusal\",\"refusal\":{}}}]", json_str(t)),
        Some(t) => format!(
            "[{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":{}}}]",
            json_str(t)
        ),
    };
    format!(
        "{{\"id\":\"{msg_id}\",\"type\":\"message\",\"status\":\"{status}\",\"content\":{content},\"role\":\"assistant\"}}"
    )
}

/// A response object: `status` is `in_progress`, `completed` or
/// `incomplete` (its output cut by `max_output_tokens`).
pub fn response_json(
    id: &str,
    created: u64,
    model_json: &str,
    status: &str,
    output: &str,
    usage: Option<&Usage>,
) -> String {
    let incomplete = if status == "incomplete" {
        "{\"reason\":\"max_output_tokens\"}"
    } else {
        "null"
    };
    let mut o = format!(
        "{{\"id\":\"{id}\",\"object\":\"response\",\"created_at\":{created},\"status\":\"{status}\",\"background\":false,\"error\":null,\"incomplete_details\":{incomplete},\"instructions\":null,\"max_output_tokens\":null,\"model\":{model_json},\"output\":{output},\"parallel_tool_calls\":true,\"previous_response_id\":null,\"store\":false,\"temperature\":1.0,\"text\":{{\"format\":{{\"type\":\"text\"}}}},\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":"
    );
    match usage {
        Some(u) => o.push_str(&usage_json(u)),
        None => o.push_str("null"),
    }
    o.push('}');
    o
}

/// The status a finish reason gives a response.
pub fn status_of(finish_reason: &str) -> &'static str {
    if finish_reason == "length" {
        "incomplete"
    } else {
        "completed"
    }
}

/// A whole (non-streamed) response.
pub fn body(c: &super::openai::Completion<'_>) -> String {
    let id = c.id;
    let item = match c.tool {
        Some(name) => tools::responses_item(
            &format!("fc_{id:016x}"),
            &format!("call_{id:016x}"),
            name,
            c.text,
            "completed",
        ),
        None => message_item(
            &format!("msg_{id:016x}"),
            "completed",
            Some(c.text),
            c.refusal,
        ),
    };
    response_json(
        &format!("resp_{id:016x}"),
        c.created,
        &json_str(c.model),
        status_of(c.finish_reason),
        &format!("[{item}]"),
        c.usage.as_ref(),
    )
}

/// One streamed response: its ids, the text sent so far and the events'
/// sequence numbers.
pub struct Stream {
    id: String,
    msg_id: String,
    created: u64,
    model_json: String,
    text: RefCell<String>,
    refusal: Cell<bool>,
    seq: Cell<u32>,
    /// The function it calls instead of writing text.
    tool: Option<Call>,
}

impl Stream {
    pub fn new(id: u64, created: u64, model: &str) -> Self {
        Stream {
            id: format!("resp_{id:016x}"),
            msg_id: format!("msg_{id:016x}"),
            created,
            model_json: json_str(model),
            text: RefCell::new(String::new()),
            refusal: Cell::new(false),
            seq: Cell::new(0),
            tool: None,
        }
    }

    pub fn call_tool(&mut self, call: Call) {
        self.tool = Some(call);
    }

    /// The function call item's id.
    fn fc_id(&self) -> String {
        self.msg_id.replacen("msg_", "fc_", 1)
    }

    /// A function call item, its arguments so far.
    fn call_item(&self, c: &Call, status: &str) -> String {
        let args = self.text.borrow();
        tools::responses_item(&self.fc_id(), &c.id, &c.name, &args, status)
    }

    /// The bytes a delta event starts with, up to its text (for the
    /// malformed-chunk fault: half of it).
    pub fn delta_head(&self) -> String {
        format!(
            "event: response.output_text.delta\ndata: {{\"type\":\"response.output_text.delta\",\"item_id\":\"{}\",\"output_index\":0,\"content_index\":0,\"delta\":\"",
            self.msg_id
        )
    }

    fn event(&self, b: &mut BytesMut, kind: &str, rest: &str) {
        let n = self.seq.get();
        self.seq.set(n + 1);
        let _ = write!(
            Writer(b),
            "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{n},{rest}}}\n\n"
        );
    }

    /// Before the first token: the response and its message item open.
    pub fn put_start(&self, b: &mut BytesMut) {
        let r = response_json(
            &self.id,
            self.created,
            &self.model_json,
            "in_progress",
            "[]",
            None,
        );
        self.event(b, "response.created", &format!("\"response\":{r}"));
        self.event(b, "response.in_progress", &format!("\"response\":{r}"));
        if let Some(c) = &self.tool {
            let item = self.call_item(c, "in_progress");
            self.event(
                b,
                "response.output_item.added",
                &format!("\"output_index\":0,\"item\":{item}"),
            );
            return;
        }
        let item = message_item(&self.msg_id, "in_progress", None, false);
        self.event(
            b,
            "response.output_item.added",
            &format!("\"output_index\":0,\"item\":{item}"),
        );
        self.event(
            b,
            "response.content_part.added",
            &format!(
                "\"item_id\":\"{}\",\"output_index\":0,\"content_index\":0,\"part\":{{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\"}}",
                self.msg_id
            ),
        );
    }

    /// One token of output text (or of a refusal).
    pub fn put_token(&self, b: &mut BytesMut, text: &str, refusal: bool) {
        if let Some(c) = &self.tool {
            let piece = c.piece(text);
            self.text.borrow_mut().push_str(&piece);
            self.event(
                b,
                "response.function_call_arguments.delta",
                &format!(
                    "\"item_id\":\"{}\",\"output_index\":0,\"delta\":{}",
                    self.fc_id(),
                    json_str(&piece)
                ),
            );
            return;
        }
        self.text.borrow_mut().push_str(text);
        self.refusal.set(refusal);
        let kind = if refusal {
            "response.refusal.delta"
        } else {
            "response.output_text.delta"
        };
        let logprobs = if refusal { "" } else { ",\"logprobs\":[]" };
        self.event(
            b,
            kind,
            &format!(
                "\"item_id\":\"{}\",\"output_index\":0,\"content_index\":0,\"delta\":{}{logprobs}",
                self.msg_id,
                json_str(text)
            ),
        );
    }

    /// The end: the text, part and item done, then `response.completed`
    /// (or `response.incomplete` at `max_output_tokens`) with the usage.
    pub fn put_finish(&self, b: &mut BytesMut, finish_reason: &str, usage: Option<Usage>) {
        if let Some(c) = &self.tool {
            let args = json_str(&self.text.borrow());
            self.event(
                b,
                "response.function_call_arguments.done",
                &format!(
                    "\"item_id\":\"{}\",\"output_index\":0,\"arguments\":{args}",
                    self.fc_id()
                ),
            );
            let item = self.call_item(c, "completed");
            return self.done(b, &item, finish_reason, usage);
        }
        let text = self.text.borrow().clone();
        let refusal = self.refusal.get();
        let (m, t) = (&self.msg_id, json_str(&text));
        if refusal {
            self.event(
                b,
                "response.refusal.done",
                &format!(
                    "\"item_id\":\"{m}\",\"output_index\":0,\"content_index\":0,\"refusal\":{t}"
                ),
            );
        } else {
            self.event(
                b,
                "response.output_text.done",
                &format!("\"item_id\":\"{m}\",\"output_index\":0,\"content_index\":0,\"text\":{t},\"logprobs\":[]"),
            );
        }
        let item = message_item(m, "completed", Some(&text), refusal);
        let part = item
            .split_once("\"content\":[")
            .and_then(|(_, rest)| rest.rsplit_once("],\"role\""))
            .map_or("{}", |(p, _)| p)
            .to_string();
        self.event(
            b,
            "response.content_part.done",
            &format!("\"item_id\":\"{m}\",\"output_index\":0,\"content_index\":0,\"part\":{part}"),
        );
        self.done(b, &item, finish_reason, usage);
    }

    /// The output item done, then the response with its usage.
    fn done(&self, b: &mut BytesMut, item: &str, finish_reason: &str, usage: Option<Usage>) {
        self.event(
            b,
            "response.output_item.done",
            &format!("\"output_index\":0,\"item\":{item}"),
        );
        let status = status_of(finish_reason);
        let r = response_json(
            &self.id,
            self.created,
            &self.model_json,
            status,
            &format!("[{item}]"),
            usage.as_ref(),
        );
        self.event(
            b,
            &format!("response.{status}"),
            &format!("\"response\":{r}"),
        );
    }
}

/// `fmt::Write` into a `BytesMut`.
struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(b: &BytesMut) -> Vec<serde_json::Value> {
        std::str::from_utf8(b)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (event, data) = e.split_once('\n').unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(event.strip_prefix("event: ").unwrap(), v["type"]);
                v
            })
            .collect()
    }

    #[test]
    fn a_stream_is_typed_events_numbered_in_order_ending_with_usage() {
        let s = Stream::new(7, 100, "m\"1");
        let mut b = BytesMut::new();
        s.put_start(&mut b);
        s.put_token(&mut b, "Hello", false);
        s.put_token(&mut b, " \"world\"", false);
        let usage = Usage {
            prompt: 10,
            completion: 2,
            cached: 3,
        };
        s.put_finish(&mut b, "length", Some(usage));
        let ev = events(&b);
        let kinds: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.incomplete",
            ]
        );
        for (i, e) in ev.iter().enumerate() {
            assert_eq!(e["sequence_number"], i);
        }
        assert_eq!(ev[5]["delta"], " \"world\"");
        assert_eq!(ev[6]["text"], "Hello \"world\"");
        assert_eq!(ev[7]["part"]["text"], "Hello \"world\"");
        let r = &ev[9]["response"];
        assert_eq!(r["model"], "m\"1");
        assert_eq!(r["status"], "incomplete");
        assert_eq!(r["output"][0]["content"][0]["text"], "Hello \"world\"");
        assert_eq!(r["usage"]["input_tokens"], 10);
        assert_eq!(r["usage"]["output_tokens"], 2);
        assert_eq!(r["usage"]["input_tokens_details"]["cached_tokens"], 3);
    }

    #[test]
    fn requests_take_a_string_or_items_and_whole_bodies_are_responses() {
        let r: ResponsesRequest = serde_json::from_str(
            r#"{"model":"m","instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"hi"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.texts().unwrap(), ["be brief", "hi"]);
        let r: ResponsesRequest = serde_json::from_str(r#"{"input":"just this"}"#).unwrap();
        assert_eq!(r.texts().unwrap(), ["just this"]);
        let r: ResponsesRequest = serde_json::from_str(r#"{"input":[]}"#).unwrap();
        assert!(r.texts().is_err());
        let body = body(&super::super::openai::Completion {
            api: super::super::openai::Api::Responses,
            id: 1,
            created: 5,
            model: "m",
            text: "ok",
            refusal: false,
            finish_reason: "stop",
            usage: None,
            timings: None,
            tool: None,
        });
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    }
}
