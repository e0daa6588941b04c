//! The console platform (`--platform console`, `OTEL_PLATFORM=console`): each
//! generated trace printed as an indented tree of its spans — name,
//! duration, tokens, payload sizes — for looking at what a scale test sends
//! before pointing it at a backend. The AI-observability scale test
//! periscope replaces had the same platform.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::Trace;

fn attr<'a>(sp: &'a Span, key: &str) -> Option<&'a Value> {
    sp.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The trace as lines of text: a heading, then one line per span under its
/// parent.
pub fn render(t: &Trace, encoded_bytes: usize) -> String {
    let spans = &t.request.resource_spans[0].scope_spans[0].spans;
    let mut out = format!(
        "trace {} {} · {} spans · depth {} · {:.1} KB · {} tokens\n",
        hex(&t.trace_id),
        t.kind.name(),
        t.spans,
        t.depth,
        encoded_bytes as f64 / 1e3,
        t.tokens
    );
    fn walk(spans: &[Span], k: usize, depth: usize, out: &mut String) {
        let sp = &spans[k];
        let ms = (sp.end_time_unix_nano - sp.start_time_unix_nano) as f64 / 1e6;
        let _ = write!(out, "{}{} ({ms:.0} ms)", "  ".repeat(depth + 1), sp.name);
        let int = |key: &str| match attr(sp, key) {
            Some(Value::IntValue(v)) => Some(*v),
            _ => None,
        };
        if let (Some(i), Some(o)) = (
            int("gen_ai.usage.input_tokens"),
            int("gen_ai.usage.output_tokens"),
        ) {
            let _ = write!(out, " · {i} tokens in, {o} out");
        }
        for key in ["gen_ai.tool.call.result", "router.decision"] {
            if let Some(Value::StringValue(v)) = attr(sp, key) {
                let _ = match key {
                    "router.decision" => write!(out, " · to {v}"),
                    _ => write!(out, " · result {:.1} KB", v.len() as f64 / 1e3),
                };
            }
        }
        out.push('\n');
        for (c, child) in spans.iter().enumerate() {
            if child.parent_span_id == sp.span_id && c != k {
                walk(spans, c, depth + 1, out);
            }
        }
    }
    if let Some(root) = spans.iter().position(|s| s.parent_span_id.is_empty()) {
        walk(spans, root, 0, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Dress, Generator, Kind, Platform};

    #[test]
    fn every_span_is_a_line_under_its_parent() {
        let mut g = Generator::new(
            3,
            Dress {
                platform: Platform::Console,
                service_name: "s".into(),
                project: "p".into(),
            },
        );
        let t = g.trace(Kind::DelegatedBooking, 1_800_000_000_000_000_000);
        let text = super::render(&t, 470_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("delegated_booking") && lines[0].contains("470.0 KB"),
            "{text}"
        );
        assert_eq!(lines.len() as u32, t.spans + 1, "{text}");
        assert!(
            lines[1].starts_with("  invoke_agent travel_assistant ("),
            "{text}"
        );
        assert!(text.contains("tokens in,"), "{text}");
        // Children are indented deeper than the root.
        assert!(lines[2..].iter().all(|l| l.starts_with("    ")), "{text}");
    }
}
