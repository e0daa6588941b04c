//! Response bodies of the mock: whole, token-streamed on a schedule, or
//! passed through from an upstream (proxy mode).
//!
//! A token stream knows when each token is due (request arrival + ttft +
//! the sum of the gaps), sleeps on the precise timer until then, and stamps
//! the moment it hands each chunk to hyper. Deadlines are absolute, so one
//! late wake-up does not delay the tokens after it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use hyper::body::{Body, Frame, SizeHint};

use super::openai::{token_text, Api, Templates, Timings, Usage};
use super::stats::{Fault, MockRecord, StatsHandle};
use crate::timer::{self, Sleep};

/// The body of every mock response.
pub enum MockBody {
    Full(Option<Bytes>),
    /// A whole body, then trailers (a gRPC answer's `grpc-status`).
    Trailed(Option<Bytes>, Option<hyper::HeaderMap>),
    Tokens(Box<TokenStream>),
    Proxy(Box<ProxyBody>),
}

impl MockBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(b.into()))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Trailed(b, t) => Poll::Ready(match b.take() {
                Some(b) => Some(Ok(Frame::data(b))),
                None => t.take().map(|t| Ok(Frame::trailers(t))),
            }),
            MockBody::Tokens(s) => s.poll_next_frame(cx),
            MockBody::Proxy(p) => p.poll_next_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Trailed(b, t) => b.is_none() && t.is_none(),
            MockBody::Tokens(s) => matches!(s.phase, Phase::Done),
            MockBody::Proxy(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// Everything a token stream needs to know up front.
pub struct StreamPlan {
    pub api: Api,
    pub templates: Templates,
    pub first_due: Instant,
    pub itl: Duration,
    pub jitter: f64,
    /// Tokens to send.
    pub tokens: u32,
    /// Vocabulary offset, so responses differ.
    pub offset: u32,
    /// Send this text as one refusal chunk instead of tokens.
    pub refusal: Option<&'static str>,
    pub cut_at: Option<u32>,
    pub malformed_at: Option<u32>,
    pub finish_reason: &'static str,
    pub usage: Option<Usage>,
    /// Send llama.cpp-style `timings` in the finish chunk.
    pub timings: bool,
    pub rng: fastrand::Rng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Tokens,
    Finish,
    Done,
}

/// An SSE body that sends tokens on schedule.
pub struct TokenStream {
    plan: StreamPlan,
    stats: StatsHandle,
    record: Option<MockRecord>,
    phase: Phase,
    next: u32,
    due: Instant,
    sleep: Option<Sleep>,
    last_sent: Option<Instant>,
    cutting: bool,
    /// The `--max-concurrency` slot this stream holds until it ends.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The stream counts as running (`/metrics`) until it ends.
    pub running: Option<super::metrics::Running>,
}

impl TokenStream {
    pub fn new(plan: StreamPlan, stats: StatsHandle, record: MockRecord) -> Self {
        let due = plan.first_due;
        TokenStream {
            plan,
            stats,
            record: Some(record),
            phase: Phase::Role,
            next: 0,
            due,
            sleep: None,
            last_sent: None,
            cutting: false,
            slot: None,
            running: None,
        }
    }

    fn finish_record(&mut self, fault: Option<Fault>) {
        if let Some(mut r) = self.record.take() {
            r.last_byte_at = Instant::now();
            // A fault already injected (malformed, refused) stays the record's fault.
            if let Some(f) = fault {
                if r.fault == Fault::None {
                    r.fault = f;
                }
            }
            self.stats.record(r);
        }
    }

    /// The stream's own timings, by its send stamps: arrival → first token,
    /// first → last token.
    fn timings(&self) -> Option<Timings> {
        let r = self.record.as_ref().filter(|_| self.plan.timings)?;
        let first = r.first_token.map_or(r.arrival, |(sent, _)| sent);
        let last = self.last_sent.unwrap_or(first);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Some(Timings {
            prompt_ms: ms(first.saturating_duration_since(r.arrival)),
            predicted_ms: ms(last.saturating_duration_since(first)),
            prompt_n: r.prompt_tokens.saturating_sub(r.cached_tokens),
            predicted_n: r.output_tokens,
            cache_n: r.cached_tokens,
        })
    }

    /// Send every chunk that is due, coalesced into one frame: when several
    /// tokens are due at once (a zero gap, or a late wake-up) they leave in
    /// one write, as a real server's would.
    fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let mut out = BytesMut::new();
        let ready = |out: BytesMut| Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
        loop {
            match self.phase {
                Phase::Role => {
                    self.phase = Phase::Tokens;
                    if self.plan.api != Api::Text {
                        out.reserve(self.plan.templates.chunk_len() * 2);
                        self.plan.templates.put_role(&mut out);
                    }
                }
                Phase::Tokens => {
                    let total = if self.plan.refusal.is_some() {
                        1
                    } else {
                        self.plan.tokens
                    };
                    if self.next >= total {
                        self.phase = Phase::Finish;
                        continue;
                    }
                    if self.plan.cut_at == Some(self.next) {
                        if !out.is_empty() {
                            return ready(out);
                        }
                        // Pause once before failing, so hyper flushes what was
                        // sent: the client sees a partial stream, then a close.
                        if !self.cutting {
                            self.cutting = true;
                            let at = Instant::now() + self.plan.itl.max(Duration::from_millis(2));
                            self.sleep = Some(timer::sleep_until(at));
                        }
                        if let Some(sleep) = self.sleep.as_mut() {
                            if Pin::new(sleep).poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                        }
                        self.sleep = None;
                        self.phase = Phase::Done;
                        self.finish_record(Some(Fault::Cut));
                        return Poll::Ready(Some(Err(io::Error::other(
                            "stream cut by fault injection",
                        ))));
                    }
                    if Instant::now() < self.due {
                        if !out.is_empty() {
                            return ready(out);
                        }
                        let due = self.due;
                        let sleep = self.sleep.get_or_insert_with(|| timer::sleep_until(due));
                        if Pin::new(sleep).poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    self.sleep = None;
                    let now = Instant::now();
                    if let Some(r) = self.record.as_mut() {
                        match self.last_sent {
                            None => r.first_token = Some((now, self.due)),
                            Some(prev) => {
                                r.itl_gaps.push(now.duration_since(prev).as_micros() as u32)
                            }
                        }
                        r.token_lags
                            .push(now.saturating_duration_since(self.due).as_micros() as u32);
                    }
                    self.last_sent = Some(now);
                    let t = &self.plan.templates;
                    if self.plan.malformed_at == Some(self.next) {
                        if let Some(r) = self.record.as_mut() {
                            r.fault = Fault::Malformed;
                        }
                        t.put_malformed(&mut out);
                    } else if let Some(text) = self.plan.refusal {
                        t.put_token(&mut out, text, true);
                    } else {
                        t.put_token(&mut out, token_text(self.next, self.plan.offset), false);
                    }
                    self.next += 1;
                    let factor = if self.plan.jitter > 0.0 {
                        1.0 + self.plan.jitter * (self.plan.rng.f64() * 2.0 - 1.0)
                    } else {
                        1.0
                    };
                    self.due += self.plan.itl.mul_f64(factor.max(0.0));
                }
                Phase::Finish => {
                    self.phase = Phase::Done;
                    let timings = self.timings();
                    self.plan.templates.put_finish(
                        &mut out,
                        self.plan.finish_reason,
                        self.plan.usage,
                        timings,
                    );
                    self.finish_record(None);
                    return ready(out);
                }
                Phase::Done => {
                    if !out.is_empty() {
                        return ready(out);
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for TokenStream {
    fn drop(&mut self) {
        // The client went away before the end: still account for the response.
        self.finish_record(Some(Fault::Aborted));
    }
}

/// A streamed upstream response, passed through chunk by chunk.
pub struct ProxyBody {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    stats: StatsHandle,
    record: Option<MockRecord>,
}

impl ProxyBody {
    pub fn new(
        inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
        stats: StatsHandle,
        record: MockRecord,
    ) -> Self {
        ProxyBody {
            inner: Box::pin(inner),
            stats,
            record: Some(record),
        }
    }

    fn poll_next_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(b))) => {
                if let Some(r) = self.record.as_mut() {
                    if r.first_token.is_none() {
                        let now = Instant::now();
                        r.first_token = Some((now, now));
                    }
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(Some(Fault::Cut));
                Poll::Ready(Some(Err(io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.end(None);
                Poll::Ready(None)
            }
        }
    }

    fn end(&mut self, fault: Option<Fault>) {
        if let Some(mut r) = self.record.take() {
            r.last_byte_at = Instant::now();
            if let Some(f) = fault {
                r.fault = f;
            }
            self.stats.record(r);
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.end(Some(Fault::Aborted));
    }
}
