//! The payloads of a generated trace: the messages of each model call and
//! the arguments and results of each tool call, as travel-booking JSON,
//! sized so the encoded trace lands on its byte target.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{i, s, Generator, Platform, CITIES, WORDS};

impl Generator {
    /// Adds the messages and tool payloads, sized so the encoded request is
    /// `target` bytes; returns the model tokens they stand for.
    pub(super) fn fill_payloads(
        &mut self,
        req: &mut ExportTraceServiceRequest,
        slots: &[(usize, Slot)],
        target: usize,
    ) -> u64 {
        let base = req.encoded_len();
        // Each attribute costs its key and some framing besides its value.
        let framing: usize = slots
            .iter()
            .map(|(_, sl)| sl.key(self.dress.platform).len() + 12)
            .sum();
        let budget = target.saturating_sub(base + framing);
        let weights: usize = slots
            .iter()
            .map(|(_, sl)| sl.weight())
            .sum::<usize>()
            .max(1);
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        let mut tokens = 0u64;
        for (k, slot) in slots {
            let len = budget * slot.weight() / weights;
            let text = match slot {
                Slot::Input => self.messages(len),
                Slot::Output => self.answer(len),
                Slot::Arguments => self.arguments(len),
                Slot::Result => self.results(len),
            };
            let span = &mut spans[*k];
            match slot {
                Slot::Input | Slot::Output => {
                    let t = (text.len() / 4) as i64;
                    tokens += t as u64;
                    let key = if *slot == Slot::Input {
                        "gen_ai.usage.input_tokens"
                    } else {
                        "gen_ai.usage.output_tokens"
                    };
                    span.attributes.push(i(key, t));
                    if self.dress.platform == Platform::Phoenix {
                        let key = if *slot == Slot::Input {
                            "llm.token_count.prompt"
                        } else {
                            "llm.token_count.completion"
                        };
                        span.attributes.push(i(key, t));
                    }
                }
                _ => {}
            }
            span.attributes.push(s(slot.key(self.dress.platform), text));
        }
        tokens
    }

    fn words(&mut self, out: &mut String, len: usize) {
        while out.len() < len {
            out.push_str(WORDS[self.rng.usize(..WORDS.len())]);
            out.push(' ');
        }
    }

    /// The chat history sent to the model (JSON, as `gen_ai.input.messages`).
    fn messages(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 64);
        out.push_str("[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"You are a travel booking assistant. ");
        let sys = len / 5;
        self.words(&mut out, sys);
        out.push_str("\"}]},{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"");
        self.words(&mut out, len.saturating_sub(24));
        out.push_str("\"}]}]");
        out
    }

    fn answer(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 64);
        out.push_str("[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"");
        self.words(&mut out, len.saturating_sub(24));
        out.push_str("\"}],\"finish_reason\":\"stop\"}]");
        out
    }

    fn arguments(&mut self, len: usize) -> String {
        let from = CITIES[self.rng.usize(..CITIES.len())];
        let to = CITIES[self.rng.usize(..CITIES.len())];
        let mut out = format!(
            "{{\"origin\":\"{from}\",\"destination\":\"{to}\",\"date\":\"2026-12-{:02}\",\"passengers\":{},\"notes\":\"",
            self.rng.u8(1..29),
            self.rng.u8(1..5)
        );
        self.words(&mut out, len.saturating_sub(2));
        out.push_str("\"}");
        out
    }

    /// Search results as a tool returns them: a JSON list of offers.
    fn results(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 256);
        out.push_str("{\"results\":[");
        let mut first = true;
        while out.len() + 2 < len {
            if !first {
                out.push(',');
            }
            first = false;
            let from = CITIES[self.rng.usize(..CITIES.len())];
            let to = CITIES[self.rng.usize(..CITIES.len())];
            let _ = write!(
                out,
                "{{\"id\":\"{:08x}\",\"carrier\":\"{}{}\",\"from\":\"{from}\",\"to\":\"{to}\",\"depart\":\"2026-12-{:02}T{:02}:{:02}\",\"stops\":{},\"price\":{}.{:02},\"currency\":\"USD\",\"seats_left\":{}}}",
                self.rng.u32(..),
                ["UA", "DL", "BA", "AF", "LH"][self.rng.usize(..5)],
                self.rng.u16(100..9999),
                self.rng.u8(1..29),
                self.rng.u8(0..24),
                self.rng.u8(0..60),
                self.rng.u8(0..3),
                self.rng.u16(80..2400),
                self.rng.u8(0..100),
                self.rng.u8(1..9),
            );
        }
        out.push_str("]}");
        out
    }
}

/// A payload attribute of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    Input,
    Output,
    Arguments,
    Result,
}

impl Slot {
    fn key(self, p: Platform) -> &'static str {
        match (self, p) {
            (Slot::Input, Platform::Phoenix) => "input.value",
            (Slot::Output, Platform::Phoenix) => "output.value",
            (Slot::Input, _) => "gen_ai.input.messages",
            (Slot::Output, _) => "gen_ai.output.messages",
            (Slot::Arguments, _) => "gen_ai.tool.call.arguments",
            (Slot::Result, _) => "gen_ai.tool.call.result",
        }
    }
    /// Share of the payload budget: tool results and prompts are big,
    /// arguments small.
    fn weight(self) -> usize {
        match self {
            Slot::Input => 4,
            Slot::Output => 1,
            Slot::Arguments => 0,
            Slot::Result => 5,
        }
    }
}
