//! Tests of the fast path (`scan.rs`): generated and mutated chunks and
//! whole streams cut at random places, read by the fast path and by the
//! full parser (and sse-parse), which must agree on every one.

use std::time::{Duration, Instant};

use super::*;
use crate::client::parse::StreamState;

const TEXTS: &[&str] = &[
    "\"\"",
    "\"Hello\"",
    "\" world\"",
    "\"line\\nbreak \\\"quoted\\\" back\\\\slash\"",
    "\"caf\\u00e9 \\ud83d\\ude00 \u{e9}\u{1F600}\"",
    "\"\\/ \\b\\f\\r\\t\"",
    "null",
];

/// Values the full parser refuses in a string field.
const BAD_TEXTS: &[&str] = &[
    "\"lone \\ud800 surrogate\"",
    "\"bad \\x escape\"",
    "\"ctrl \u{1} char\"",
    "42",
    "[\"a\"]",
];

fn text(rng: &mut fastrand::Rng) -> String {
    if rng.u8(..) < 8 {
        pick(rng, BAD_TEXTS)
    } else {
        pick(rng, TEXTS)
    }
    .to_string()
}

/// What a stream's state says, but the fast path's own cache.
fn same(st: &mut StreamState) -> String {
    let prefix = std::mem::take(&mut st.prefix);
    let template = std::mem::take(&mut st.template);
    let text = format!("{st:?}");
    st.prefix = prefix;
    st.template = template;
    text
}

fn quick(data: &str) -> Option<Quick<'_>> {
    let mut q = Quick::default();
    chunk(
        data.as_bytes(),
        &mut q,
        &mut Prefix::default(),
        &mut Template::default(),
    )
    .then_some(q)
}

fn pick<'a>(rng: &mut fastrand::Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

fn members(rng: &mut fastrand::Rng, fields: &[(&str, String)]) -> String {
    let mut out: Vec<String> = fields
        .iter()
        .filter(|_| rng.u8(..) < 200)
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    rng.shuffle(&mut out);
    // Now and then a key twice.
    if rng.u8(..) < 10 && !out.is_empty() {
        let again = out[rng.usize(..out.len())].clone();
        out.push(again);
    }
    let ws = pick(rng, &["", " ", "\n  ", "\t"]);
    format!("{{{ws}{}{ws}}}", out.join(&format!(",{ws}")))
}

fn delta(rng: &mut fastrand::Rng) -> String {
    if rng.u8(..) < 20 {
        return "null".into();
    }
    let tool = pick(
        rng,
        &[
            "null",
            "[]",
            "[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]",
            "[{\"index\":0,\"function\":{\"arguments\":\"1.5e-3\"}}]",
        ],
    );
    let fields = [
        ("role", "\"assistant\"".to_string()),
        ("content", text(rng)),
        ("reasoning_content", text(rng)),
        ("reasoning", text(rng)),
        ("refusal", text(rng)),
        ("tool_calls", tool.to_string()),
    ];
    members(rng, &fields)
}

fn choice(rng: &mut fastrand::Rng) -> String {
    let fields = [
        (
            "index",
            pick(rng, &["0", "1", "-0", "2e5", "0", "1", "0", "01", "1."]).to_string(),
        ),
        ("delta", delta(rng)),
        ("message", delta(rng)),
        ("text", text(rng)),
        (
            "logprobs",
            pick(rng, &["null", "{\"content\":[]}"]).to_string(),
        ),
        (
            "finish_reason",
            pick(rng, &["null", "\"stop\"", "\"length\"", "\"\"", "3"]).to_string(),
        ),
    ];
    members(rng, &fields)
}

/// A chat or text completion chunk as servers send them, with the
/// fields and values the fast path must read or decline.
fn chunk_text(rng: &mut fastrand::Rng) -> String {
    let choices = match rng.u8(..4) {
        0 => "null".to_string(),
        _ => {
            let n = [0, 1, 1, 1, 1, 2, 3][rng.usize(..7)];
            let all: Vec<String> = (0..n).map(|_| choice(rng)).collect();
            format!("[{}]", all.join(","))
        }
    };
    let rare = |rng: &mut fastrand::Rng, v: &str| {
        if rng.u8(..) < 25 {
            v.to_string()
        } else {
            "null".to_string()
        }
    };
    let fields = [
        ("id", "\"chatcmpl-123\"".to_string()),
        ("object", "\"chat.completion.chunk\"".to_string()),
        ("created", "1733000000".to_string()),
        ("model", "\"gemma\"".to_string()),
        ("system_fingerprint", "null".to_string()),
        ("choices", choices),
        (
            "usage",
            rare(rng, "{\"prompt_tokens\":12,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":4}}"),
        ),
        ("error", rare(rng, "{\"message\":\"overloaded\",\"code\":503}")),
        ("timings", rare(rng, "{\"prompt_ms\":1.5,\"predicted_ms\":20,\"cache_n\":2}")),
        ("x_extra", pick(rng, &["true", "false", "[1,{\"a\":[null]}]", "-1.5E+2"]).to_string()),
    ];
    let text = members(rng, &fields);
    let text = mutate(rng, text);
    match rng.u8(..20) {
        0 => format!("  {text}\n"),
        1 => format!("{text} trailing"),
        _ => text,
    }
}

/// `text` with a few bytes changed, dropped or added where JSON is fragile,
/// now and then.
fn mutate(rng: &mut fastrand::Rng, mut text: String) -> String {
    // Mutations: bytes changed, dropped or added where JSON is fragile.
    for _ in 0..rng.usize(0..3) {
        if rng.u8(..4) > 0 || text.is_empty() {
            continue;
        }
        let mut b: Vec<char> = text.chars().collect();
        let at = rng.usize(..b.len());
        let c = pick(
            rng,
            &[
                "{", "}", "[", "]", "\"", ",", ":", "\\", " ", "0", "e", "-", "n", "\u{2}",
            ],
        );
        match rng.u8(..3) {
            0 => b[at] = c.chars().next().unwrap(),
            1 => {
                b.remove(at);
            }
            _ => b.insert(at, c.chars().next().unwrap()),
        }
        text = b.into_iter().collect();
    }
    text
}

/// A stream as servers send most of them: the same bytes around one text
/// field's string, chunk after chunk (the template's case), with now and
/// then a chunk that differs: a finish, a null, a value that is not one
/// string, a mutation.
fn templated_events(rng: &mut fastrand::Rng) -> Vec<String> {
    let field = pick(
        rng,
        &[
            "content",
            "reasoning_content",
            "reasoning",
            "refusal",
            "text",
        ],
    );
    let head = pick(
        rng,
        &[
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1733000000,"model":"m","#,
            r#"{ "id": "x", "#,
            "{",
        ],
    );
    let usage = pick(rng, &["", ",\"usage\":null", ",\"timings\":null"]);
    let n = rng.usize(2..12);
    (0..n)
        .map(|i| {
            let t = match rng.u8(..10) {
                0 => pick(rng, &["\"a\",\"refusal\":\"b\"", "\"a\"} ", "\"\\\"\"", "\"a\"\"b\""]).to_string(),
                _ => text(rng),
            };
            let finish = if i == n - 1 || rng.u8(..) < 10 {
                "\"stop\""
            } else {
                "null"
            };
            let choice = match field {
                "text" => format!("\"text\":{t}"),
                f => format!("\"delta\":{{\"{f}\":{t}}}"),
            };
            let e = format!(
                r#"{head}"choices":[{{"index":0,{choice},"logprobs":null,"finish_reason":{finish}}}]{usage}}}"#
            );
            mutate(rng, e)
        })
        .collect()
}

/// A stream's chunks: most repeat the first one's start up to its
/// `choices` (as servers repeat `id`, `model`, …), so the fast path
/// resumes after it; some are new throughout.
fn stream_events(rng: &mut fastrand::Rng) -> Vec<String> {
    if rng.u8(..3) == 0 {
        return templated_events(rng);
    }
    let first = chunk_text(rng);
    let mut out = vec![first.clone()];
    for _ in 0..rng.usize(0..5) {
        let next = chunk_text(rng);
        out.push(
            match (first.find("\"choices\""), next.find("\"choices\"")) {
                (Some(a), Some(b)) if rng.u8(..4) > 0 => {
                    format!("{}{}", &first[..a], &next[b..])
                }
                _ => next,
            },
        );
    }
    out
}

/// The fast path agrees with the full parser on every chunk it reads,
/// over streams of several chunks (gaps, first output, text, finish):
/// the same state either way, whether it read or declined each one.
#[test]
fn fuzz_the_fast_path_against_the_full_parser() {
    let mut rng = fastrand::Rng::with_seed(0xfa57);
    let t0 = Instant::now();
    let (mut read, mut declined, mut templated) = (0, 0, 0);
    for case in 0..30_000 {
        let events = stream_events(&mut rng);
        let (mut fast, mut full) = (StreamState::default(), StreamState::default());
        for (i, e) in events.iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64 * 7);
            if fast.template.read(e.trim().as_bytes()).is_some() {
                templated += 1;
            }
            let quick = quick(e.trim()).is_some();
            if quick {
                read += 1;
            } else {
                declined += 1;
            }
            let a = fast.on_event(e.as_bytes(), at);
            let b = full.full_event(e.trim(), at);
            assert_eq!(a, b, "case {case}: {e}");
            assert_eq!(
                same(&mut fast),
                same(&mut full),
                "case {case}, event {i} (fast path read it: {quick}): {e}"
            );
            if !a {
                break;
            }
        }
    }
    // Both sides are exercised: many chunks read fast, many declined.
    assert!(
        read > 20_000 && declined > 10_000 && templated > 10_000,
        "{read} read ({templated} by a template), {declined} declined"
    );
}

/// Whole streams, their bytes cut at random places and several events
/// in one read: the client's framing and fast path give the state that
/// sse-parse and the full parser give, read by read.
#[test]
fn fuzz_split_and_merged_events_end_to_end() {
    let mut rng = fastrand::Rng::with_seed(0x5917);
    let t0 = Instant::now();
    for case in 0..5_000 {
        let mut body = String::new();
        for e in stream_events(&mut rng) {
            let sep = pick(&mut rng, &["\n\n", "\r\n\r\n", "\n\n: ping\n\n"]);
            body.push_str(&format!("data: {}{sep}", e.replace('\n', " ")));
        }
        if rng.bool() {
            body.push_str("data: [DONE]\n\n");
        }
        // Now and then a byte that is not UTF-8 (in a value, a key, a text).
        let mut bytes = body.into_bytes();
        for _ in 0..rng.usize(0..3) {
            if rng.u8(..4) == 0 && !bytes.is_empty() {
                let at = rng.usize(..bytes.len());
                bytes.insert(at, [0xFF, 0xC3, 0x80][rng.usize(..3)]);
            }
        }
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let bytes = &bytes[..];
        let mut cuts: Vec<usize> = (0..rng.usize(0..8))
            .map(|_| rng.usize(0..=bytes.len()))
            .collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let (mut framer, mut fast) = (
            crate::client::sse::Framer::default(),
            StreamState::default(),
        );
        let (mut reference, mut full) = (sse_parse::SseParser::new(), StreamState::default());
        let (mut at_byte, mut fast_on, mut full_on) = (0, true, true);
        for (i, cut) in cuts.into_iter().enumerate() {
            let read = &bytes[at_byte..cut];
            at_byte = cut;
            let at = t0 + Duration::from_millis(i as u64 * 3);
            if fast_on {
                fast_on = framer.feed(read, |d| fast.on_event(d, at));
            }
            if full_on {
                reference.feed(read);
                while let Some(ev) = reference.next_event() {
                    let d = ev.data.trim();
                    let more = match d {
                        "" => true,
                        "[DONE]" => {
                            full.done = true;
                            true
                        }
                        _ => full.full_event(d, at),
                    };
                    if !more {
                        full_on = false;
                        break;
                    }
                }
            }
        }
        assert_eq!(same(&mut fast), same(&mut full), "case {case}: {body:?}");
    }
}

#[test]
fn the_word_at_a_time_search_finds_the_first_special_byte() {
    let mut rng = fastrand::Rng::with_seed(8);
    let alphabet = b"ab\"\\\x01\x1f \x7f\x80\xff\xc3\xa9";
    for _ in 0..100_000 {
        let b: Vec<u8> = (0..rng.usize(0..40))
            .map(|_| {
                if rng.u8(..) < 230 {
                    b'x'
                } else {
                    alphabet[rng.usize(..alphabet.len())]
                }
            })
            .collect();
        let naive = b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        assert_eq!(special_at(&b), naive, "{b:?}");
    }
}

#[test]
fn a_repeated_start_is_read_once_per_stream() {
    let head = r#"{"id":"c1","object":"chat.completion.chunk","usage":null,"#;
    let mut prefix = Prefix::default();
    let mut q = Quick::default();
    let first = format!(r#"{head}"choices":[{{"delta":{{"content":"a"}}}}]}}"#);
    assert!(chunk(
        first.as_bytes(),
        &mut q,
        &mut prefix,
        &mut Template::default()
    ));
    assert_eq!(prefix.bytes, head.as_bytes());
    // The next chunk resumes after the same start, and its own seen keys
    // still count: a second `usage` is a duplicate.
    for (rest, reads, content) in [
        (r#""choices":[{"delta":{"content":"b"}}]}"#, true, Some("b")),
        (r#""choices":[],"usage":null}"#, false, None),
        (
            r#""choices":[{"delta":{"content":"c"}}],"x":[1,]}"#,
            false,
            None,
        ),
    ] {
        let text = format!("{head}{rest}");
        let mut q = Quick::default();
        assert_eq!(
            chunk(
                text.as_bytes(),
                &mut q,
                &mut prefix,
                &mut Template::default()
            ),
            reads,
            "{text}"
        );
        if reads {
            assert_eq!(q.choices[0].delta.content.as_deref(), content);
        }
    }
}

#[test]
fn what_the_fast_path_reads_and_declines() {
    let q = quick(r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi \"you\""},"finish_reason":null}]}"#).unwrap();
    assert_eq!(q.n, 1);
    assert_eq!(q.choices[0].delta.content.as_deref(), Some("Hi \"you\""));
    assert!(!q.choices[0].finished);
    let q = quick(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]},"finish_reason":"tool_calls"}],"usage":null}"#).unwrap();
    assert!(q.choices[0].delta.tool_calls && q.choices[0].finished);
    for declined in [
        r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
        r#"{"error":{"message":"x"}}"#,
        r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        r#"{"choices":[{"delta":{"content":1}}]}"#,
        r#"{"cho\u0069ces":[]}"#,
        r#"{"choices":[{},{},{}]}"#,
        r#"{"choices":[{"delta":{}}]"#,
        r#"{"choices":[]} x"#,
    ] {
        assert!(quick(declined).is_none(), "{declined}");
    }
}

#[test]
fn a_chunk_with_the_bytes_around_the_last_ones_text_is_read_by_them() {
    let (mut prefix, mut template) = (Prefix::default(), Template::default());
    let frame = |t: &str, finish: &str| {
        format!(
            r#"{{"id":"c","choices":[{{"index":0,"delta":{{"reasoning":{t}}},"finish_reason":{finish}}}]}}"#
        )
    };
    let first = frame("\"a\"", "null");
    assert!(chunk(
        first.as_bytes(),
        &mut Quick::default(),
        &mut prefix,
        &mut template
    ));
    for (t, read) in [
        ("\"b\"", Some("b")),
        ("\"caf\\u00e9 \\\"q\\\"\"", Some("café \"q\"")),
        ("\"\"", Some("")),
        // Not one string between the same bytes: read otherwise.
        ("null", None),
        ("\"a\",\"content\":\"b\"", None),
        ("\"lone \\ud800\"", None),
        ("7", None),
    ] {
        let e = frame(t, "null");
        let got = template.read(e.as_bytes());
        assert_eq!(got.as_ref().map(|(_, t)| t.as_ref()), read, "{e}");
        if let Some((field, _)) = got {
            assert_eq!(field, Field::Reasoning);
            assert!(!field.visible());
        }
    }
    // A finish is not the template's: neither read by it nor learned.
    let last = frame("\"z\"", "\"stop\"");
    assert!(template.read(last.as_bytes()).is_none());
    assert!(chunk(
        last.as_bytes(),
        &mut Quick::default(),
        &mut prefix,
        &mut template
    ));
    assert!(template.read(frame("\"y\"", "null").as_bytes()).is_some());
    assert!(template.read(last.as_bytes()).is_none());
}
