//! The payloads of a generated trace: the messages of each model call and
//! the arguments and results of each tool call, as travel-booking JSON,
//! sized so the encoded trace lands on its byte target.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{i, s, Generator, Platform, CITIES, WORDS};

impl Generator {
    /// Adds the messages and tool payloads, sized so the encoded request is
    /// `target` bytes and the model calls' messages stand for `tokens`
    /// tokens (four bytes of text a token); tool results take the rest.
    /// Returns the model tokens recorded.
    pub(super) fn fill_payloads(
        &mut self,
        req: &mut ExportTraceServiceRequest,
        slots: &[(usize, Slot)],
        target: usize,
        tokens: usize,
    ) -> u64 {
        let base = req.encoded_len();
        // Each attribute costs its key and some framing besides its value.
        let framing: usize = slots
            .iter()
            .map(|(_, sl)| sl.key(self.dress.platform).len() + 12)
            .sum();
        let budget = target.saturating_sub(base + framing);
        let is_chat = |sl: &Slot| matches!(sl, Slot::Input | Slot::Output);
        let has_tools = slots.iter().any(|(_, sl)| !is_chat(sl) && sl.weight() > 0);
        // Messages get the tokens' bytes (all of the budget when no tool
        // result can take the rest); tool results what is left.
        let chat_budget = match has_tools {
            true => (tokens * 4).min(budget),
            false => budget,
        };
        let tool_budget = budget - chat_budget;
        let weight_of = |chat: bool| -> usize {
            slots
                .iter()
                .filter(|(_, sl)| is_chat(sl) == chat)
                .map(|(_, sl)| sl.weight())
                .sum::<usize>()
                .max(1)
        };
        let (chat_w, tool_w) = (weight_of(true), weight_of(false));
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        let mut recorded = 0u64;
        for (k, slot) in slots {
            let len = match is_chat(slot) {
                true => chat_budget * slot.weight() / chat_w,
                false => tool_budget * slot.weight() / tool_w,
            };
            let span = &mut spans[*k];
            let tool = span
                .attributes
                .iter()
                .find(|a| a.key == "gen_ai.tool.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v) => {
                        Some(v.clone())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let text = match slot {
                Slot::Input => self.messages(len),
                Slot::Output => self.answer(len),
                Slot::Arguments => self.arguments(len),
                Slot::Result if tool.contains("hotel") => self.hotels(len),
                Slot::Result => self.results(len),
            };
            if is_chat(slot) {
                let t = (text.len() / 4) as i64;
                recorded += t as u64;
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
            span.attributes.push(s(slot.key(self.dress.platform), text));
        }
        recorded
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

impl Generator {
    /// Hotel search results: a JSON list of offers of rooms.
    fn hotels(&mut self, len: usize) -> String {
        const NAMES: [&str; 6] = ["Grand", "Harbor", "Central", "Park", "Riverside", "Plaza"];
        const ROOMS: [&str; 4] = ["standard", "deluxe", "suite", "family"];
        let mut out = String::with_capacity(len + 256);
        out.push_str("{\"hotels\":[");
        let mut first = true;
        while out.len() + 2 < len {
            if !first {
                out.push(',');
            }
            first = false;
            let city = CITIES[self.rng.usize(..CITIES.len())];
            let _ = write!(
                out,
                "{{\"id\":\"h{:07x}\",\"name\":\"{} {city} Hotel\",\"city\":\"{city}\",\"stars\":{},\"room\":\"{}\",\"check_in\":\"2026-12-{:02}\",\"nights\":{},\"rate\":{}.{:02},\"currency\":\"USD\",\"free_cancellation\":{},\"rooms_left\":{}}}",
                self.rng.u32(..0x0fff_ffff),
                NAMES[self.rng.usize(..NAMES.len())],
                self.rng.u8(2..6),
                ROOMS[self.rng.usize(..ROOMS.len())],
                self.rng.u8(1..29),
                self.rng.u8(1..8),
                self.rng.u16(60..900),
                self.rng.u8(0..100),
                self.rng.bool(),
                self.rng.u8(1..12),
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
