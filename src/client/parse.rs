//! Reading what OpenAI-compatible servers send: SSE chunks and whole bodies.
//!
//! `StreamState` is fed one SSE `data` payload at a time with the instant it
//! arrived, and keeps the timings and counts the README defines: ttft (first
//! chunk that carries output: content, reasoning, refusal or a tool call;
//! role-only and empty chunks don't count), ttfo (first visible output), the
//! gaps between output chunks, usage wherever it arrives, llama.cpp's
//! `timings`, and mid-stream `error` objects. It does no I/O, so it is tested
//! on fixtures.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;

use super::scan::{self, ChoiceParts, DeltaParts};
use crate::record::{ErrorClass, ServerTiming, ToolCall};

#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    timings: Option<TimingsIn>,
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    message: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
pub struct UsageIn {
    #[serde(default)]
    pub prompt_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens: Option<u32>,
    #[serde(default)]
    pub completion_tokens_details: Option<DetailsIn>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetailsIn>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
pub struct PromptDetailsIn {
    #[serde(default)]
    pub cached_tokens: Option<u32>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
pub struct DetailsIn {
    #[serde(default)]
    pub reasoning_tokens: Option<u32>,
}

/// llama.cpp's `timings` (its last chunk, or a whole answer).
#[derive(Debug, Deserialize, Clone, Copy)]
pub(super) struct TimingsIn {
    #[serde(default)]
    prompt_ms: Option<f64>,
    #[serde(default)]
    predicted_ms: Option<f64>,
    #[serde(default)]
    prompt_n: Option<u32>,
    #[serde(default)]
    predicted_n: Option<u32>,
    #[serde(default)]
    cache_n: Option<u32>,
}

impl<'a> From<Delta<'a>> for DeltaParts<'a> {
    fn from(d: Delta<'a>) -> Self {
        DeltaParts {
            reasoning_content: d.reasoning_content,
            reasoning: d.reasoning,
            content: d.content,
            refusal: d.refusal,
            tool_calls: d.tool_calls.is_some(),
        }
    }
}

impl<'a> From<Choice<'a>> for ChoiceParts<'a> {
    fn from(c: Choice<'a>) -> Self {
        ChoiceParts {
            delta: c.delta.map(Into::into).unwrap_or_default(),
            message: c.message.map(Into::into).unwrap_or_default(),
            text: c.text,
            finished: c.finish_reason.is_some(),
        }
    }
}

/// Which API's events and bodies a response is read as.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Chat and text completions: `choices` chunks, `[DONE]`.
    #[default]
    Completions,
    /// OpenAI's Responses API: typed events (`client/responses.rs`).
    Responses,
    /// Anthropic's Messages API (`client/messages.rs`).
    Messages,
}

/// An error object's `message`, else the whole object.
pub(super) fn message_of(v: &serde_json::Value) -> String {
    v.get("message")
        .and_then(|m| m.as_str())
        .map(String::from)
        .unwrap_or_else(|| v.to_string())
}

/// A stream of `events` in `dialect`, one millisecond apart (tests).
#[cfg(test)]
pub(super) fn feed_events(dialect: Dialect, events: &[&str]) -> StreamState {
    let mut st = StreamState {
        dialect,
        ..StreamState::default()
    };
    let t0 = Instant::now();
    for (i, e) in events.iter().enumerate() {
        if !st.on_event(
            e.as_bytes(),
            t0 + std::time::Duration::from_millis(i as u64),
        ) {
            break;
        }
    }
    st
}

/// What one response told us.
#[derive(Debug, Default)]
pub struct StreamState {
    /// The API the response speaks.
    pub dialect: Dialect,
    pub first_output: Option<Instant>,
    pub first_visible: Option<Instant>,
    pub last_output: Option<Instant>,
    pub gaps_us: Vec<u32>,
    pub output_chunks: u32,
    /// Generated text (content, reasoning and refusal), for local counting.
    pub text: String,
    /// Where the reasoning is in `text` (byte ranges).
    pub reasoning: Vec<std::ops::Range<usize>>,
    pub finished: bool,
    pub done: bool,
    pub usage: Option<UsageIn>,
    pub server_timing: Option<ServerTiming>,
    /// A failure seen in the body, with a message.
    pub failure: Option<(ErrorClass, String)>,
    /// The function calls the answer asked for (their arguments are in
    /// `text` too, counted as output).
    pub tool_calls: Vec<ToolCall>,
    /// What the chunks so far start with, for the fast path.
    pub(super) prefix: scan::Prefix,
    /// The bytes around the text of the stream's last plain chunk.
    pub(super) template: scan::Template,
}

fn non_empty<'b>(s: &'b Option<Cow<'_, str>>) -> Option<&'b str> {
    s.as_deref().filter(|s| !s.is_empty())
}

impl StreamState {
    /// Take one SSE data payload. Returns false once the stream should stop
    /// being read (a bad chunk or an error event). The fast path reads the
    /// bytes; what it declines is read as text (lossy UTF-8, trimmed) by the
    /// full parser.
    pub fn on_event(&mut self, data: &[u8], at: Instant) -> bool {
        let d = data.trim_ascii();
        if d.is_empty() {
            return true;
        }
        // Gateways end every stream so, whatever its API (LiteLLM's
        // Responses streams do), and the official SDKs stop there.
        if d == b"[DONE]" {
            self.done = true;
            return true;
        }
        match self.dialect {
            Dialect::Responses => return self.responses_event(d, at),
            Dialect::Messages => return self.messages_event(d, at),
            Dialect::Completions => {}
        }
        if let Some((field, text)) = self.template.read(d) {
            if !text.is_empty() {
                match field.visible() {
                    true => self.text.push_str(&text),
                    false => self.push_reasoning(&text),
                }
                self.output_at(field.visible(), at);
            }
            return true;
        }
        let mut q = scan::Quick::default();
        if scan::chunk(d, &mut q, &mut self.prefix, &mut self.template) {
            let choices = &q.choices[..q.n];
            self.take_output(choices, at, true);
            if choices
                .iter()
                .any(|c| c.delta.tool_calls || c.message.tool_calls)
            {
                self.chat_tool_calls(d);
            }
            return true;
        }
        let text = match std::str::from_utf8(data) {
            Ok(t) => Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(data),
        };
        match text.trim() {
            "" => true,
            "[DONE]" => {
                self.done = true;
                true
            }
            t => self.full_event(t, at),
        }
    }

    /// A trimmed SSE data payload, parsed whole: what [`scan::chunk`]
    /// declines, and the reference its answers are tested against.
    pub(super) fn full_event(&mut self, data: &str, at: Instant) -> bool {
        let chunk: Chunk<'_> = match serde_json::from_str(data) {
            Ok(c) => c,
            Err(e) => {
                self.failure = Some((ErrorClass::BadBody, format!("a chunk is not JSON: {e}")));
                return false;
            }
        };
        let go_on = self.absorb(chunk, at, true);
        // After the text, as the fast path takes them.
        if data.contains("\"tool_calls\"") {
            self.chat_tool_calls(data.as_bytes());
        }
        go_on
    }

    /// Take a whole (non-streamed) response body received at `at`.
    pub fn on_body(&mut self, body: &[u8], at: Instant) {
        match self.dialect {
            Dialect::Responses => return self.responses_body(body),
            Dialect::Messages => return self.messages_body(body),
            Dialect::Completions => {}
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => {
                self.failure = Some((ErrorClass::BadBody, format!("the body is not JSON: {e}")));
                return;
            }
        };
        if chunk.error.is_none() && chunk.choices.as_ref().is_none_or(|c| c.is_empty()) {
            self.failure = Some((ErrorClass::BadBody, "the body has no choices".into()));
            return;
        }
        self.absorb(chunk, at, false);
        if memchr::memmem::find(body, b"\"tool_calls\"").is_some() {
            self.chat_tool_calls(body);
        }
        if self.failure.is_none() {
            self.finished = true;
        }
    }

    fn absorb(&mut self, chunk: Chunk<'_>, at: Instant, streaming: bool) -> bool {
        if let Some(err) = chunk.error {
            let msg = err
                .get("message")
                .and_then(|m| m.as_str())
                .map(String::from)
                .unwrap_or_else(|| err.to_string());
            self.failure = Some((ErrorClass::StreamError, msg));
            return false;
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(u);
        }
        if let Some(t) = chunk.timings {
            self.take_timings(t);
        }
        let choices: Vec<ChoiceParts> = chunk
            .choices
            .into_iter()
            .flatten()
            .map(ChoiceParts::from)
            .collect();
        self.take_output(&choices, at, streaming);
        true
    }

    /// llama.cpp's `timings` of a chunk or a whole answer (of any API).
    pub(super) fn take_timings(&mut self, t: TimingsIn) {
        let body = ServerTiming {
            prompt_ms: t.prompt_ms,
            decode_ms: t.predicted_ms,
            prompt_tokens: t.prompt_n,
            output_tokens: t.predicted_n,
            cached_tokens: t.cache_n,
            ..ServerTiming::default()
        };
        // What the body says wins over the headers (sent before it).
        self.server_timing = Some(match self.server_timing {
            Some(h) => body.or(h),
            None => body,
        });
    }

    /// The output of a chunk's (or a whole answer's) choices, in the order
    /// the metrics read it: a completion's text, then for the delta and the
    /// message, reasoning before content and refusal.
    fn take_output(&mut self, choices: &[ChoiceParts], at: Instant, streaming: bool) {
        let mut carries_output = false;
        let mut visible = false;
        for choice in choices {
            if choice.finished {
                self.finished = true;
            }
            if let Some(t) = non_empty(&choice.text) {
                self.text.push_str(t);
                carries_output = true;
                visible = true;
            }
            for d in [&choice.delta, &choice.message] {
                for r in [non_empty(&d.reasoning_content), non_empty(&d.reasoning)]
                    .into_iter()
                    .flatten()
                {
                    self.push_reasoning(r);
                    carries_output = true;
                }
                for v in [non_empty(&d.content), non_empty(&d.refusal)]
                    .into_iter()
                    .flatten()
                {
                    self.text.push_str(v);
                    carries_output = true;
                    visible = true;
                }
                if d.tool_calls {
                    carries_output = true;
                    visible = true;
                }
            }
        }
        if carries_output && streaming {
            self.output_at(visible, at);
        }
    }

    /// A chunk of a stream that carried output arrived at `at`.
    pub(super) fn output_at(&mut self, visible: bool, at: Instant) {
        self.output_chunks += 1;
        if self.first_output.is_none() {
            self.first_output = Some(at);
        }
        if visible && self.first_visible.is_none() {
            self.first_visible = Some(at);
        }
        if let Some(prev) = self.last_output {
            self.gaps_us
                .push(at.saturating_duration_since(prev).as_micros() as u32);
        }
        self.last_output = Some(at);
    }

    /// How the response ended, once the body is exhausted.
    pub fn end_class(&self) -> Option<(ErrorClass, String)> {
        if let Some(f) = &self.failure {
            return Some(f.clone());
        }
        if self.finished || self.done {
            None
        } else {
            Some((
                ErrorClass::StreamCut,
                "the stream closed before a finish_reason".into(),
            ))
        }
    }
}

/// Spans an OTLP answer says were rejected (`partial_success`), from its
/// protobuf or JSON body; 0 for an empty or unreadable body.
pub fn rejected_spans(body: &[u8]) -> u64 {
    if body.is_empty() {
        return 0;
    }
    if body.first() == Some(&b'{') {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let r = &v["partialSuccess"]["rejectedSpans"];
        return r
            .as_u64()
            .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
    }
    use prost::Message as _;
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
        .map_or(0, |p| p.rejected_spans.max(0) as u64)
}

/// The `error.message` of an error body, or the body's start.
/// What an embeddings answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingsInfo {
    pub vectors: u32,
    /// Length of the first vector (floats, or base64-decoded f32s).
    pub dims: Option<u32>,
    pub prompt_tokens: Option<u32>,
}

/// The length of an embedding without building it: counts a float array's
/// elements, or derives it from a base64 string's length.
struct Dims(u32);

impl<'de> Deserialize<'de> for Dims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Dims;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of floats or a base64 string")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Dims, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Dims(n))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Dims, E> {
                let pad = s.bytes().rev().take_while(|b| *b == b'=').count();
                let bytes = (s.len() / 4 * 3).saturating_sub(pad);
                Ok(Dims((bytes / 4) as u32))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct EmbeddingsIn {
    data: Vec<EmbeddingIn>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct EmbeddingIn {
    embedding: Dims,
}

/// Read an embeddings answer (`{"data":[{"embedding":…}],"usage":…}`).
pub fn embeddings(body: &[u8]) -> Result<EmbeddingsInfo, String> {
    let e: EmbeddingsIn = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an embeddings list: {e}"))?;
    Ok(EmbeddingsInfo {
        vectors: e.data.len() as u32,
        dims: e.data.first().map(|d| d.embedding.0),
        prompt_tokens: e.usage.and_then(|u| u.prompt_tokens),
    })
}

/// The scores of a rerank answer and its prompt tokens: `results` (Cohere,
/// Jina, vLLM), or a bare list (TEI's `/rerank`); tokens from
/// `usage.prompt_tokens`, else `usage.total_tokens`, else Cohere's
/// `meta.billed_units.input_tokens`.
pub fn rerank(body: &[u8]) -> Result<(u32, Option<u32>), String> {
    #[derive(Deserialize)]
    struct Score {
        #[allow(dead_code)]
        index: u32,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Results {
            results: Vec<Score>,
            #[serde(default)]
            usage: Option<serde_json::Value>,
            #[serde(default)]
            meta: Option<serde_json::Value>,
        },
        Bare(Vec<Score>),
    }
    let a: Answer = serde_json::from_slice(body)
        .map_err(|_| "the body is not a rerank answer (no results with an index)".to_string())?;
    Ok(match a {
        Answer::Bare(s) => (s.len() as u32, None),
        Answer::Results {
            results,
            usage,
            meta,
        } => {
            let n = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_u64()).map(|n| n as u32);
            let u = usage.as_ref();
            let tokens = n(u.and_then(|u| u.get("prompt_tokens")))
                .or_else(|| n(u.and_then(|u| u.get("total_tokens"))))
                .or_else(|| {
                    n(meta
                        .as_ref()
                        .and_then(|m| m.pointer("/billed_units/input_tokens")))
                });
            (results.len() as u32, tokens)
        }
    })
}

pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.pointer("/error/message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_string();
        }
        if let Some(m) = v.get("error").and_then(|m| m.as_str()) {
            return m.to_string();
        }
    }
    // Not JSON (an HTML error page, say): its first 200 characters on one line.
    let s = String::from_utf8_lossy(body);
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Run SSE text split into the given pieces through the parser; the
    /// i-th event arrives at i × 10 ms.
    async fn feed(pieces: &[&str]) -> StreamState {
        let mut framer = super::super::sse::Framer::default();
        let mut st = StreamState::default();
        let t0 = Instant::now();
        let mut i = 0u64;
        for p in pieces {
            let more = framer.feed(p.as_bytes(), |data| {
                i += 1;
                st.on_event(data, t0 + Duration::from_millis(i * 10))
            });
            if !more {
                break;
            }
        }
        st
    }

    #[test]
    fn embeddings_dims_from_floats_and_base64() {
        let floats = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]},{"object":"embedding","index":1,"embedding":[1,2,3]}],"model":"m","usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(
            embeddings(floats).unwrap(),
            EmbeddingsInfo {
                vectors: 2,
                dims: Some(3),
                prompt_tokens: Some(7)
            }
        );
        // 4 f32 = 16 bytes = 24 base64 characters ("==" padded).
        let b64 = br#"{"data":[{"embedding":"AACAPwAAAEAAAEBAAACAQA=="}]}"#;
        let one = embeddings(b64).unwrap();
        assert_eq!(one.dims, Some(4));
        assert!(embeddings(b"{\"data\":1}").is_err());
    }

    const OPENAI: &str = concat!(
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"finish_reason\":null}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n"
    );

    #[tokio::test]
    async fn openai_stream_role_chunk_does_not_stop_the_clock() {
        let st = feed(&[OPENAI]).await;
        // Events: role=1, hello=2, world=3 (the comment is not an event).
        assert_eq!(st.output_chunks, 2);
        assert_eq!(st.gaps_us, vec![10_000]);
        assert_eq!(st.text, "Hello world");
        assert!(st.finished && st.done);
        assert_eq!(st.usage.unwrap().completion_tokens, Some(2));
        assert!(st.end_class().is_none());
    }

    #[tokio::test]
    async fn events_split_across_reads_and_merged_in_one() {
        // Split inside a field, and two events in one read.
        let cut = OPENAI.len() / 3;
        let a = &OPENAI[..cut];
        let b = &OPENAI[cut..cut + 7];
        let c = &OPENAI[cut + 7..];
        let st = feed(&[a, b, c]).await;
        assert_eq!(st.text, "Hello world");
        assert!(st.done);
    }

    #[tokio::test]
    async fn close_after_finish_without_done_is_success() {
        let body = OPENAI.replace("data: [DONE]\n\n", "");
        let st = feed(&[&body]).await;
        assert!(!st.done);
        assert!(st.end_class().is_none());
    }

    #[tokio::test]
    async fn close_before_finish_is_stream_cut() {
        let cut = OPENAI
            .find("data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},")
            .unwrap();
        let st = feed(&[&OPENAI[..cut]]).await;
        assert_eq!(st.end_class().unwrap().0, ErrorClass::StreamCut);
    }

    #[tokio::test]
    async fn reasoning_counts_for_ttft_not_ttfo() {
        let s = concat!(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"think\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"reasoning\":\" more\"}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"answer\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":3,\"completion_tokens_details\":{\"reasoning_tokens\":2}},\"timings\":{\"prompt_ms\":12.5,\"predicted_ms\":40.0}}\n\n",
        );
        let mut st = feed(&[s]).await;
        let t_first = st.first_output.unwrap();
        let t_visible = st.first_visible.unwrap();
        assert_eq!(t_visible.duration_since(t_first), Duration::from_millis(20));
        assert_eq!(
            st.usage
                .unwrap()
                .completion_tokens_details
                .unwrap()
                .reasoning_tokens,
            Some(2)
        );
        assert_eq!(st.server_timing.unwrap().prompt_ms, Some(12.5));
        assert_eq!(st.server_timing.unwrap().decode_ms, Some(40.0));
        assert!(st.end_class().is_none());
        // All of it is counted; a kept answer has the reasoning apart.
        assert_eq!(st.text, "think moreanswer");
        assert_eq!(st.split_text(), ("answer".into(), "think more".into()));
    }

    #[tokio::test]
    async fn tool_calls_and_text_completions_carry_output() {
        let s = concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"text\":\" legacy\",\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n",
        );
        let st = feed(&[s]).await;
        assert_eq!(st.output_chunks, 2);
        assert!(st.finished);
    }

    #[tokio::test]
    async fn malformed_chunk_and_error_event_fail_the_request() {
        let st =
            feed(&["data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n"])
                .await;
        assert_eq!(st.end_class().unwrap().0, ErrorClass::BadBody);
        let st =
            feed(&["data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n"])
                .await;
        let (class, msg) = st.end_class().unwrap();
        assert_eq!(class, ErrorClass::StreamError);
        assert_eq!(msg, "overloaded");
    }

    #[tokio::test]
    async fn llama_cpp_timings_and_cached_tokens_are_kept() {
        // llama.cpp's last chunk: timings beside the usage.
        let s = concat!(
            "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
            "data: {\"choices\":[{\"finish_reason\":\"length\",\"delta\":{}}],\"usage\":{\"completion_tokens\":2,\"prompt_tokens\":26,\"prompt_tokens_details\":{\"cached_tokens\":21}},\"timings\":{\"cache_n\":21,\"prompt_n\":5,\"prompt_ms\":162.057,\"predicted_n\":2,\"predicted_ms\":80.5}}\n\n",
            "data: [DONE]\n\n",
        );
        let st = feed(&[s]).await;
        let t = st.server_timing.unwrap();
        assert_eq!(t.prompt_ms, Some(162.057));
        assert_eq!(t.decode_ms, Some(80.5));
        assert_eq!(
            (t.prompt_tokens, t.output_tokens, t.cached_tokens),
            (Some(5), Some(2), Some(21))
        );
        assert_eq!(
            st.usage
                .unwrap()
                .prompt_tokens_details
                .unwrap()
                .cached_tokens,
            Some(21)
        );
        // Timings in the body fill in beside what the headers said.
        let mut st = StreamState {
            server_timing: Some(ServerTiming {
                queue_ms: Some(3.0),
                ..Default::default()
            }),
            ..StreamState::default()
        };
        st.on_body(br#"{"choices":[{"message":{"content":"x"},"finish_reason":"stop"}],"timings":{"prompt_ms":9.0}}"#, Instant::now());
        let t = st.server_timing.unwrap();
        assert_eq!((t.queue_ms, t.prompt_ms), (Some(3.0), Some(9.0)));
    }

    #[test]
    fn partial_success_is_read_from_protobuf_and_json() {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let r = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "too big".into(),
            }),
        };
        use prost::Message as _;
        assert_eq!(rejected_spans(&r.encode_to_vec()), 7);
        assert_eq!(
            rejected_spans(br#"{"partialSuccess":{"rejectedSpans":"5"}}"#),
            5
        );
        assert_eq!(rejected_spans(b"{}"), 0);
        assert_eq!(rejected_spans(b""), 0);
    }

    #[test]
    fn whole_bodies() {
        let mut st = StreamState::default();
        st.on_body(br#"{"choices":[{"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#, Instant::now());
        assert!(st.end_class().is_none());
        assert_eq!(st.text, "hi there");
        let mut st = StreamState::default();
        st.on_body(b"<html>", Instant::now());
        assert_eq!(st.end_class().unwrap().0, ErrorClass::BadBody);
        assert_eq!(
            error_message(br#"{"error":{"message":"Incorrect API key provided"}}"#),
            "Incorrect API key provided"
        );
    }
}
