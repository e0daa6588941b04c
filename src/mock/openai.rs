//! OpenAI request shapes the mock accepts and the response bodies it sends.
//!
//! Responses are written from pre-serialized templates: the per-request part
//! (id, created, model) is serialized once into a chunk head, and each token
//! chunk is `head + token + tail`, one allocation per chunk.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::tokenizer;

/// The body of `POST /v1/chat/completions`, as far as the mock needs it.
/// Strings are borrowed from the request body where they need no unescaping.
#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    #[serde(borrow)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub messages: Option<Vec<Message<'a>>>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    #[serde(borrow, default)]
    pub tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub tool_choice: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// None in the Responses API's function call items.
    #[allow(dead_code)]
    #[serde(borrow, default)]
    pub role: Option<Cow<'a, str>>,
    /// A Responses `function_call_output` item's result.
    #[serde(borrow, default)]
    pub output: Option<Cow<'a, str>>,
    /// A Responses `function_call` item's arguments.
    #[serde(borrow, default)]
    pub arguments: Option<Cow<'a, str>>,
    /// A string or an array of typed parts; kept raw and read by [`Message::text`]
    /// (an untagged enum would buffer every message to try its variants).
    #[serde(borrow)]
    pub content: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct Part<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

impl<'a> Message<'a> {
    /// Tokens of the pictures among its content parts.
    pub fn image_tokens(&self) -> Result<u32, String> {
        self.content.map_or(Ok(0), super::images::tokens)
    }

    /// The message's text: the string, or its parts' texts joined. `Err` when
    /// `content` is neither.
    pub fn text(&self) -> Result<Cow<'a, str>, String> {
        let Some(raw) = self.content else {
            let item = self.output.as_ref().or(self.arguments.as_ref());
            return Ok(item.cloned().unwrap_or_default());
        };
        let json = raw.get();
        if json.starts_with('"') {
            // Borrowed when it has no escapes (the common case), else unescaped.
            if let Ok(s) = serde_json::from_str::<&'a str>(json) {
                return Ok(Cow::Borrowed(s));
            }
            return serde_json::from_str::<String>(json)
                .map(Cow::Owned)
                .map_err(|e| format!("'content': {e}"));
        }
        if json == "null" {
            return Ok(Cow::Borrowed(""));
        }
        let parts: Vec<Part<'_>> = serde_json::from_str(json)
            .map_err(|_| "'content' must be a string or an array of content parts".to_string())?;
        Ok(Cow::Owned(
            parts.iter().filter_map(|p| p.text.as_deref()).collect(),
        ))
    }
}

#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The body of `POST /v1/completions` (legacy text completions).
#[derive(Debug, Deserialize)]
pub struct TextRequest {
    pub model: Option<String>,
    pub prompt: Option<Prompt>,
    #[serde(default)]
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
}

/// The body of `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    pub model: Option<String>,
    pub input: Option<Prompt>,
    pub encoding_format: Option<String>,
    pub dimensions: Option<usize>,
}

/// A prompt or embeddings input: a string, strings, or token arrays.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl Prompt {
    /// The texts and the token count of each (token arrays count their length).
    pub fn items(&self) -> Vec<(String, u32)> {
        match self {
            Prompt::One(s) => vec![(s.clone(), tokenizer::count(s))],
            Prompt::Many(v) => v.iter().map(|s| (s.clone(), tokenizer::count(s))).collect(),
            Prompt::Tokens(t) => vec![(format!("{t:?}"), t.len() as u32)],
            Prompt::ManyTokens(v) => v
                .iter()
                .map(|t| (format!("{t:?}"), t.len() as u32))
                .collect(),
        }
    }
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, kind: &str, code: Option<&str>) -> Bytes {
    let v = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
    Bytes::from(serde_json::to_vec(&v).expect("json"))
}

/// The text of output token `i` of a response: single-token words.
pub fn token_text(i: u32, offset: u32) -> &'static str {
    // Leading-space forms are built once; the first token has no space.
    static SPACED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let spaced = SPACED.get_or_init(|| tokenizer::VOCAB.iter().map(|w| format!(" {w}")).collect());
    let k = ((i as usize) * 7 + offset as usize) % tokenizer::VOCAB.len();
    if i == 0 {
        tokenizer::VOCAB[k]
    } else {
        spaced[k].as_str()
    }
}

/// The refusal the guardrail emulation answers with.
pub const REFUSAL: &str = "I'm sorry, but I can't help with that request.";

/// Which API a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Chat,
    Text,
    /// OpenAI's Responses API (`mock/responses.rs`).
    Responses,
    /// Anthropic's Messages API (`mock/messages.rs`).
    Messages,
}

/// Token counts of one response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub prompt: u32,
    pub completion: u32,
    pub cached: u32,
}

impl Usage {
    fn json(&self) -> String {
        format!(
            "{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{}}},\"completion_tokens_details\":{{\"reasoning_tokens\":0}}}}",
            self.prompt,
            self.completion,
            self.prompt + self.completion,
            self.cached
        )
    }
}

/// llama.cpp's `timings` object: the mock's own prompt (arrival → first
/// token) and generation (first → last token) times.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub prompt_ms: f64,
    pub predicted_ms: f64,
    pub prompt_n: u32,
    pub predicted_n: u32,
    pub cache_n: u32,
}

impl Timings {
    fn json(&self) -> String {
        format!(
            "{{\"cache_n\":{},\"prompt_n\":{},\"prompt_ms\":{:.3},\"predicted_n\":{},\"predicted_ms\":{:.3}}}",
            self.cache_n, self.prompt_n, self.prompt_ms, self.predicted_n, self.predicted_ms
        )
    }
}

/// Pre-serialized pieces of one streamed response.
pub struct Templates {
    api: Api,
    /// `data: {"id":…,"choices":[{"index":0,"delta":` (chat) or `…"choices":[{"text":"` (text).
    head: Vec<u8>,
    /// The same object with an empty `choices` array, up to `"choices":[]`.
    usage_head: Vec<u8>,
    /// A Responses stream's events and state.
    responses: Option<Box<super::responses::Stream>>,
    /// A Messages stream's events.
    messages: Option<Box<super::messages::Stream>>,
    /// The tool a chat stream calls instead of writing text.
    tool: Option<Box<super::tools::Call>>,
}

const CHAT_TOKEN_TAIL: &[u8] = b"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
const TEXT_TOKEN_TAIL: &[u8] = b"\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}\n\n";

impl Templates {
    pub fn new(api: Api, id: u64, created: u64, model: &str) -> Self {
        if api == Api::Responses {
            let r = super::responses::Stream::new(id, created, model);
            return Templates {
                api,
                head: r.delta_head().into_bytes(),
                usage_head: Vec::new(),
                responses: Some(Box::new(r)),
                messages: None,
                tool: None,
            };
        }
        let model = serde_json::to_string(model).expect("json string");
        let (prefix, object) = match api {
            Api::Chat | Api::Responses | Api::Messages => ("chatcmpl", "chat.completion.chunk"),
            Api::Text => ("cmpl", "text_completion"),
        };
        let common = format!(
            "data: {{\"id\":\"{prefix}-{id:016x}\",\"object\":\"{object}\",\"created\":{created},\"model\":{model},\"system_fingerprint\":\"fp_periscope\",\"choices\":["
        );
        let head = match api {
            Api::Chat | Api::Responses | Api::Messages => {
                format!("{common}{{\"index\":0,\"delta\":")
            }
            Api::Text => format!("{common}{{\"text\":\""),
        };
        Templates {
            api,
            head: head.into_bytes(),
            usage_head: format!("{common}]").into_bytes(),
            responses: None,
            messages: None,
            tool: None,
        }
    }

    /// Call the tool `name` with the stream's `tokens` tokens as its
    /// arguments, instead of writing text (chat and Responses).
    pub fn call_tool(&mut self, name: String, id: u64, tokens: u32) {
        let call = super::tools::Call::new(name, id, tokens);
        match &mut self.responses {
            Some(r) => r.call_tool(call),
            None => self.tool = Some(Box::new(call)),
        }
    }

    /// A Messages stream: its first event carries the input `usage`.
    pub fn messages(id: u64, model: &str, usage: Usage) -> Self {
        Templates {
            api: Api::Messages,
            head: super::messages::Stream::delta_head().as_bytes().to_vec(),
            usage_head: Vec::new(),
            responses: None,
            messages: Some(Box::new(super::messages::Stream::new(id, model, usage))),
            tool: None,
        }
    }

    /// Room for one token chunk.
    pub fn chunk_len(&self) -> usize {
        self.head.len() + 80
    }

    /// The first chat chunk: the role, before any output.
    pub fn put_role(&self, b: &mut BytesMut) {
        if let Some(r) = &self.responses {
            return r.put_start(b);
        }
        if let Some(m) = &self.messages {
            return m.put_start(b);
        }
        b.put_slice(&self.head);
        if self.tool.is_some() {
            b.put_slice(b"{\"role\":\"assistant\",\"content\":null,\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
            return;
        }
        b.put_slice(b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }

    /// A chunk carrying one token of output (`content`, or `refusal`).
    pub fn put_token(&self, b: &mut BytesMut, text: &str, refusal: bool) {
        if let Some(r) = &self.responses {
            return r.put_token(b, text, refusal);
        }
        if let Some(m) = &self.messages {
            return m.put_token(b, text);
        }
        if let Some(c) = &self.tool {
            return c.put_chat_token(b, &self.head, text);
        }
        b.reserve(self.head.len() + text.len() + 64);
        b.put_slice(&self.head);
        match self.api {
            Api::Chat | Api::Responses | Api::Messages => {
                b.put_slice(if refusal {
                    b"{\"refusal\":\""
                } else {
                    b"{\"content\":\""
                });
                put_escaped(b, text);
                b.put_slice(CHAT_TOKEN_TAIL);
            }
            Api::Text => {
                put_escaped(b, text);
                b.put_slice(TEXT_TOKEN_TAIL);
            }
        }
    }

    /// The end of a stream: the finish chunk (with the `timings`, as
    /// llama.cpp's, when asked), the usage chunk when asked, `[DONE]`.
    pub fn put_finish(
        &self,
        b: &mut BytesMut,
        finish_reason: &str,
        usage: Option<Usage>,
        timings: Option<Timings>,
    ) {
        if let Some(r) = &self.responses {
            return r.put_finish(b, finish_reason, usage);
        }
        if let Some(m) = &self.messages {
            return m.put_finish(b, finish_reason, usage);
        }
        b.reserve(self.head.len() * 2 + 384);
        b.put_slice(&self.head);
        match self.api {
            Api::Chat | Api::Responses | Api::Messages => {
                b.put_slice(b"{},\"logprobs\":null,\"finish_reason\":\"")
            }
            Api::Text => b.put_slice(b"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\""),
        }
        b.put_slice(finish_reason.as_bytes());
        b.put_slice(b"\"}]");
        if let Some(t) = timings {
            b.put_slice(b",\"timings\":");
            b.put_slice(t.json().as_bytes());
        }
        b.put_slice(b"}\n\n");
        if let Some(u) = usage {
            b.put_slice(&self.usage_head);
            b.put_slice(b",\"usage\":");
            b.put_slice(u.json().as_bytes());
            b.put_slice(b"}\n\n");
        }
        b.put_slice(b"data: [DONE]\n\n");
    }

    /// A chunk that is not JSON (fault injection).
    pub fn put_malformed(&self, b: &mut BytesMut) {
        b.put_slice(&self.head[..self.head.len() / 2]);
        b.put_slice(b"\n\n");
    }
}

fn put_escaped(b: &mut BytesMut, text: &str) {
    if text
        .bytes()
        .all(|c| c >= 0x20 && c != b'"' && c != b'\\' && c < 0x7f)
    {
        b.put_slice(text.as_bytes());
    } else {
        let s = serde_json::to_string(text).expect("json string");
        b.put_slice(&s.as_bytes()[1..s.len() - 1]);
    }
}

/// A whole (non-streamed) completion.
pub struct Completion<'a> {
    pub api: Api,
    pub id: u64,
    pub created: u64,
    pub model: &'a str,
    pub text: &'a str,
    /// The text is a refusal (`message.refusal`, `content` null).
    pub refusal: bool,
    pub finish_reason: &'a str,
    pub usage: Option<Usage>,
    pub timings: Option<Timings>,
    /// The tool called, `text` being its arguments (chat and Responses).
    pub tool: Option<&'a str>,
}

impl Completion<'_> {
    pub fn body(&self) -> Bytes {
        if self.api == Api::Responses {
            return Bytes::from(super::responses::body(self));
        }
        if self.api == Api::Messages {
            let c = self;
            return Bytes::from(super::messages::body(
                c.id,
                c.model,
                c.text,
                c.finish_reason,
                c.usage,
            ));
        }
        let mut body = completion_body(self);
        if let Some(t) = self.timings {
            body.pop();
            body.push_str(",\"timings\":");
            body.push_str(&t.json());
            body.push('}');
        }
        Bytes::from(body)
    }
}

/// Append `text` as a JSON string literal.
fn push_json_str(out: &mut String, text: &str) {
    if text
        .bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
    {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).expect("json string"));
    }
}

fn completion_body(c: &Completion<'_>) -> String {
    use std::fmt::Write as _;
    let Completion {
        api,
        id,
        created,
        model,
        text,
        refusal,
        finish_reason,
        usage,
        tool,
        ..
    } = *c;
    let mut o = String::with_capacity(text.len() + model.len() + 512);
    let (prefix, object) = match api {
        Api::Chat | Api::Responses | Api::Messages => ("chatcmpl", "chat.completion"),
        Api::Text => ("cmpl", "text_completion"),
    };
    let _ = write!(
        o,
        "{{\"id\":\"{prefix}-{id:016x}\",\"object\":\"{object}\",\"created\":{created},\"model\":"
    );
    push_json_str(&mut o, model);
    o.push_str(",\"system_fingerprint\":\"fp_periscope\",\"choices\":[{");
    match api {
        Api::Chat | Api::Responses | Api::Messages if tool.is_some() => {
            o.push_str("\"index\":0,\"message\":");
            o.push_str(&super::tools::chat_message(
                tool.unwrap_or_default(),
                id,
                text,
            ));
            o.push_str(",\"logprobs\":null,\"finish_reason\":\"");
        }
        Api::Chat | Api::Responses | Api::Messages => {
            o.push_str("\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            if refusal {
                o.push_str("null,\"refusal\":");
                push_json_str(&mut o, text);
            } else {
                push_json_str(&mut o, text);
                o.push_str(",\"refusal\":null");
            }
            o.push_str("},\"logprobs\":null,\"finish_reason\":\"");
        }
        Api::Text => {
            o.push_str("\"text\":");
            push_json_str(&mut o, text);
            o.push_str(",\"index\":0,\"logprobs\":null,\"finish_reason\":\"");
        }
    }
    o.push_str(finish_reason);
    o.push_str("\"}]");
    if let Some(u) = usage {
        o.push_str(",\"usage\":");
        o.push_str(&u.json());
    }
    o.push('}');
    o
}

/// llama.cpp's `POST /tokenize {"content": TEXT}` → `{"tokens": [ids]}`,
/// with `cl100k_base` ids.
pub fn tokenize(body: &[u8]) -> Result<Bytes, String> {
    #[derive(serde::Deserialize)]
    struct In {
        content: String,
    }
    let i: In =
        serde_json::from_slice(body).map_err(|e| format!("expected {{\"content\": TEXT}}: {e}"))?;
    let tokens = crate::tokenizer::encode(&i.content);
    Ok(Bytes::from(
        serde_json::json!({ "tokens": tokens }).to_string(),
    ))
}

/// A deterministic unit vector of `dims` floats derived from `text`.
pub fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let mut rng = fastrand::Rng::with_seed(h);
    let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The body of an embeddings response.
pub fn embeddings_body(
    model: &str,
    vectors: &[Vec<f32>],
    base64: bool,
    prompt_tokens: u32,
) -> Bytes {
    use base64::Engine as _;
    let mut out =
        String::with_capacity(vectors.len() * vectors.first().map_or(0, |v| v.len()) * 12 + 128);
    out.push_str("{\"object\":\"list\",\"data\":[");
    for (i, v) in vectors.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"object\":\"embedding\",\"index\":");
        out.push_str(&i.to_string());
        out.push_str(",\"embedding\":");
        if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            out.push('"');
        } else {
            // serde_json writes floats with ryu: the shortest round-trip form.
            out.push_str(&serde_json::to_string(v).expect("json floats"));
        }
        out.push('}');
    }
    out.push_str("],\"model\":");
    out.push_str(&serde_json::to_string(model).expect("json"));
    out.push_str(&format!(
        ",\"usage\":{{\"prompt_tokens\":{prompt_tokens},\"total_tokens\":{prompt_tokens}}}}}"
    ));
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(t: &Templates) -> BytesMut {
        let mut b = BytesMut::new();
        t.put_role(&mut b);
        b
    }

    fn token(t: &Templates, text: &str, refusal: bool) -> BytesMut {
        let mut b = BytesMut::new();
        t.put_token(&mut b, text, refusal);
        b
    }

    #[test]
    fn message_content_is_a_string_or_parts() {
        let r: ChatRequest = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"plain"},{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]},{"role":"assistant","content":null},{"role":"user","content":"esc\"aped"}]}"#,
        )
        .unwrap();
        let m = r.messages.unwrap();
        assert!(matches!(m[0].text().unwrap(), Cow::Borrowed("plain")));
        assert_eq!(m[1].text().unwrap(), "ab");
        assert_eq!(m[2].text().unwrap(), "");
        assert_eq!(m[3].text().unwrap(), "esc\"aped");
        let bad: ChatRequest =
            serde_json::from_str(r#"{"messages":[{"role":"user","content":5}]}"#).unwrap();
        assert!(bad.messages.unwrap()[0].text().is_err());
    }

    #[test]
    fn chunks_are_json_events() {
        let t = Templates::new(Api::Chat, 7, 1, "m\"x");
        for chunk in [role(&t), token(&t, " the", false), token(&t, "a\"b", true)] {
            let s = std::str::from_utf8(&chunk).unwrap();
            let data = s
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["object"], "chat.completion.chunk");
            assert_eq!(v["model"], "m\"x");
        }
        let mut end = BytesMut::new();
        t.put_finish(
            &mut end,
            "stop",
            Some(Usage {
                prompt: 5,
                completion: 2,
                cached: 0,
            }),
            Some(Timings {
                prompt_ms: 12.5,
                predicted_ms: 40.0,
                prompt_n: 5,
                predicted_n: 2,
                cache_n: 0,
            }),
        );
        let s = std::str::from_utf8(&end).unwrap();
        let events: Vec<&str> = s.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 3);
        let finish: serde_json::Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["timings"]["prompt_ms"], 12.5);
        assert_eq!(finish["timings"]["predicted_n"], 2);
        let usage: serde_json::Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert_eq!(usage["choices"].as_array().unwrap().len(), 0);
        assert_eq!(events[2], "data: [DONE]");
    }

    #[test]
    fn text_chunks_are_json() {
        let t = Templates::new(Api::Text, 1, 1, "m");
        let c = token(&t, " x", false);
        let v: serde_json::Value =
            serde_json::from_str(std::str::from_utf8(&c).unwrap()[6..].trim()).unwrap();
        assert_eq!(v["choices"][0]["text"], " x");
        let body = Completion {
            api: Api::Text,
            id: 1,
            created: 1,
            model: "m",
            text: "hi",
            refusal: false,
            finish_reason: "stop",
            usage: None,
            tool: None,
            timings: Some(Timings {
                prompt_ms: 1.0,
                predicted_ms: 2.0,
                prompt_n: 3,
                predicted_n: 1,
                cache_n: 0,
            }),
        }
        .body();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["choices"][0]["text"], "hi");
        assert_eq!(v["timings"]["predicted_ms"], 2.0);
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello", 64);
        assert_eq!(a, embedding("hello", 64));
        assert_ne!(a, embedding("hello!", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        let body = embeddings_body("m", std::slice::from_ref(&a), true, 1);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["data"][0]["embedding"].is_string());
    }
}
