//! One request, measured: send it, read its answer (SSE events or a whole
//! body) with the instant each part arrived, and fill in its
//! `RequestRecord` — timings, token counts with their source, the server's
//! own timings, a reconnect, and the error class of a failure.

use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::parse::{self, StreamState};
use super::start::{read_all, Started};
use super::{Client, Expect, Prepared};
use crate::record::TraceIds;
use crate::record::{ErrorClass, Outcome, RequestRecord, TokenSource};

impl Client {
    /// Send one request and measure it. `scheduled_us` is the intended send
    /// time (the open model's schedule), or `None` to use the actual one.
    pub async fn send(&self, req: &Prepared, scheduled_us: Option<u64>) -> RequestRecord {
        if let super::Transport::Grpc(exporter) = &self.transport {
            // Boxed: a rare path whose future would make every request's
            // state as large as tonic's.
            return Box::pin(self.send_grpc(exporter, req, scheduled_us)).await;
        }
        let start = Instant::now();
        let start_us = self.us(start);
        let mut rec = RequestRecord::new(scheduled_us.unwrap_or(start_us).min(start_us), start_us);
        rec.input_tokens = self.local_prompt_tokens(req);
        rec.path = req.path.clone();
        // A request that never got an answer still counts in its turn and
        // its adapter.
        rec.group = req.group.clone();
        rec.adapter = req.adapter.clone();
        rec.trace = self.tracing.then(TraceIds::random);
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let started = tokio::select! {
            biased;
            r = self.start(req, rec.trace, false) => r,
            _ = &mut deadline => Err(timed_out(self.timeout)),
        };
        let Started {
            status,
            mut body,
            reconnect,
            headers,
            http2,
        } = match started {
            Ok(s) => s,
            Err((class, msg)) => {
                rec.end_us = self.now_us();
                return fail(rec, class, msg);
            }
        };
        rec.reconnect = reconnect;
        rec.http2 = http2;
        rec.status = Some(status);
        rec.payload = req.payload;
        rec.exported_trace = req.exported_trace;
        rec.texts = req.texts;
        let mut st = StreamState {
            server_timing: headers,
            dialect: match req.expect {
                Expect::Responses => parse::Dialect::Responses,
                Expect::Messages => parse::Dialect::Messages,
                _ => parse::Dialect::Completions,
            },
            ..StreamState::default()
        };
        let success = match req.expect {
            Expect::Status => status < 400,
            _ => (200..300).contains(&status),
        };
        if success && req.stream {
            read_events(&mut body, deadline.as_mut(), &mut st, self.timeout).await;
            rec.received = body.received;
        } else {
            let whole = tokio::select! {
                biased;
                b = read_all(&mut body) => b,
                _ = &mut deadline => Err(timed_out(self.timeout)),
            };
            let at = Instant::now();
            rec.received = body.received;
            match whole {
                Ok(bytes) => match self.whole_answer(rec, &mut st, &bytes, at, req, status) {
                    ControlFlow::Break(done) => return done,
                    ControlFlow::Continue(r) => rec = r,
                },
                Err(failure) => st.failure = Some(failure),
            }
        }
        rec.end_us = self.now_us();
        if !success {
            let msg = st.failure.map(|f| f.1).unwrap_or_default();
            return fail(rec, ErrorClass::from_status(status), msg);
        }
        let output = self.output_tokens(&st).await;
        self.finish(rec, st, req, output)
    }

    /// A whole (not streamed) answer: an error's message, or what its
    /// kind of answer carries. Break: the record is done; Continue: it goes
    /// on to [`Self::finish`].
    fn whole_answer(
        &self,
        mut rec: RequestRecord,
        st: &mut StreamState,
        bytes: &Bytes,
        at: Instant,
        req: &Prepared,
        status: u16,
    ) -> ControlFlow<RequestRecord, RequestRecord> {
        if req.keep_body {
            rec.body = Some(bytes.clone());
        }
        let success = match req.expect {
            Expect::Status => status < 400,
            _ => (200..300).contains(&status),
        };
        if !success {
            rec.end_us = self.us(at);
            let msg = parse::error_message(bytes);
            return ControlFlow::Break(fail(rec, ErrorClass::from_status(status), msg));
        }
        match req.expect {
            Expect::Completion | Expect::Responses | Expect::Messages => {
                st.on_body(bytes, at);
                return ControlFlow::Continue(rec);
            }
            Expect::Embeddings => {
                rec.end_us = self.us(at);
                rec = embeddings(rec, bytes, req);
            }
            Expect::Rerank => {
                rec.end_us = self.us(at);
                rec = rerank(rec, bytes, req);
            }
            Expect::Status => rec.end_us = self.us(at),
            Expect::Otlp => {
                rec.end_us = self.us(at);
                rec.payload.rejected_spans = parse::rejected_spans(bytes).min(rec.payload.spans);
            }
        }
        ControlFlow::Break(rec)
    }

    /// The output tokens of a 2xx answer read to its end: the server's usage
    /// (and the answer offered to the end-of-run check), else counted here.
    /// Only counting awaits, boxed: asking a server's `/tokenize` is a whole
    /// HTTP request, whose state would otherwise make every request's that
    /// large.
    async fn output_tokens(&self, st: &StreamState) -> (u32, TokenSource) {
        if let Some(n) = st.usage.and_then(|u| u.completion_tokens) {
            self.usage_sample.offer(n, &st.text);
            return (n, TokenSource::Usage);
        }
        let counted = Box::pin(self.count_tokens(&st.text)).await;
        match counted {
            Ok(local) if local > 0 || st.output_chunks == 0 => (local, TokenSource::Tokenizer),
            _ => (st.output_chunks, TokenSource::Chunks),
        }
    }

    /// Timings, token counts and the verdict of a 2xx answer read to its
    /// end, with its output tokens found.
    fn finish(
        &self,
        mut rec: RequestRecord,
        mut st: StreamState,
        req: &Prepared,
        output: (u32, TokenSource),
    ) -> RequestRecord {
        rec.ttft_us = st
            .first_output
            .map(|t| self.us(t).saturating_sub(rec.start_us));
        rec.ttfo_us = st
            .first_visible
            .map(|t| self.us(t).saturating_sub(rec.start_us));
        rec.server_timing = st.server_timing;
        (rec.output_tokens, rec.output_source) = output;
        if let Some(p) = st.usage.and_then(|u| u.prompt_tokens) {
            rec.input_tokens = p;
            rec.input_source = TokenSource::Usage;
        } else {
            rec.input_tokens = self.local_prompt_tokens(req);
            rec.input_source = TokenSource::Tokenizer;
        }
        if req.images > 0 {
            rec.images = req.images;
            if rec.input_source == TokenSource::Usage {
                let text = self.local_prompt_tokens(req);
                rec.image_tokens = Some(rec.input_tokens.saturating_sub(text));
            }
        }
        if let Some(cached) = st
            .usage
            .and_then(|u| u.prompt_tokens_details)
            .and_then(|d| d.cached_tokens)
        {
            // OpenAI's `usage.prompt_tokens` counts the cached tokens too:
            // what the server processed is the rest (llama.cpp's own
            // `timings.prompt_n`, when it sent one, wins).
            let t = rec.server_timing.get_or_insert_with(Default::default);
            t.cached_tokens = t.cached_tokens.or(Some(cached));
            if rec.input_source == TokenSource::Usage {
                t.prompt_tokens = t
                    .prompt_tokens
                    .or(Some(rec.input_tokens.saturating_sub(cached)));
            }
        }
        rec.reasoning_tokens = st
            .usage
            .and_then(|u| u.completion_tokens_details)
            .and_then(|d| d.reasoning_tokens);
        if let Some((class, msg)) = st.end_class() {
            return fail(rec, class, msg);
        }
        rec.itl_us = std::mem::take(&mut st.gaps_us);
        if req.keep_text {
            let (answer, reasoning) = st.split_text();
            rec.output_text = Some(answer);
            rec.reasoning_text = (!reasoning.is_empty()).then_some(reasoning);
            rec.tool_calls = st.tool_calls;
        }
        rec
    }
}

/// Check an embeddings answer: one vector per input; note their length.
fn embeddings(mut rec: RequestRecord, body: &[u8], req: &Prepared) -> RequestRecord {
    match parse::embeddings(body) {
        Ok(e) => {
            if e.vectors != req.texts {
                return fail(
                    rec,
                    ErrorClass::BadBody,
                    format!("{} vectors for {} inputs", e.vectors, req.texts),
                );
            }
            rec.dims = e.dims;
            match e.prompt_tokens {
                Some(n) => {
                    rec.input_tokens = n;
                    rec.input_source = TokenSource::Usage;
                }
                None => rec.input_source = TokenSource::Tokenizer,
            }
            rec
        }
        Err(msg) => fail(rec, ErrorClass::BadBody, msg),
    }
}

/// Check a rerank answer: a score for every document.
fn rerank(mut rec: RequestRecord, body: &[u8], req: &Prepared) -> RequestRecord {
    match parse::rerank(body) {
        Ok((scores, tokens)) if scores == req.texts => {
            match tokens {
                Some(n) => {
                    rec.input_tokens = n;
                    rec.input_source = TokenSource::Usage;
                }
                None => rec.input_tokens = req.prompt_tokens,
            }
            rec
        }
        Ok((scores, _)) => fail(
            rec,
            ErrorClass::BadBody,
            format!("{scores} scores for {} documents", req.texts),
        ),
        Err(msg) => fail(rec, ErrorClass::BadBody, msg),
    }
}

pub(super) fn fail(mut rec: RequestRecord, class: ErrorClass, message: String) -> RequestRecord {
    rec.outcome = Outcome::Error(class);
    rec.error_message = Some(message);
    rec
}

/// What a request that outlived `--timeout` ends as.
fn timed_out(timeout: Duration) -> (ErrorClass, String) {
    (
        ErrorClass::Timeout,
        format!("no complete answer within --timeout {timeout:?}"),
    )
}

/// Read an SSE stream to its end, its failure or the deadline, each event
/// to `st`. Events that arrive in one read share its arrival instant.
async fn read_events(
    body: &mut super::decode::Body,
    mut deadline: Pin<&mut tokio::time::Sleep>,
    st: &mut StreamState,
    timeout: Duration,
) {
    let mut sse = super::sse::Framer::default();
    loop {
        let chunk = tokio::select! {
            biased;
            c = body.next() => c,
            _ = &mut deadline => {
                st.failure = Some(timed_out(timeout));
                return;
            }
        };
        let at = Instant::now();
        match chunk {
            // The body gave its connection back to the pool.
            None => return,
            Some(Ok(bytes)) => {
                if !sse.feed(&bytes, |data| st.on_event(data, at)) {
                    return;
                }
            }
            Some(Err(failure)) => {
                st.failure = Some(failure);
                return;
            }
        }
    }
}
