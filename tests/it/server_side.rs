//! The server's side of each request, as it reports it: its own timings
//! beside the client's (llama.cpp's `timings`, served by the mock with
//! `--timings` from its send stamps), and its own tokenizer counting what
//! its usage leaves out (`--tokenizer server`, the mock's `--tokenize`), a
//! Hugging Face tokenizer.json, or a tiktoken encoding.

use crate::common::*;
use serde_json::{json, Value};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timings_stand_beside_the_clients_and_agree_with_its_stamps() {
    let mock = MockProc::start(&[
        "--ttft",
        "30ms",
        "--itl",
        "2ms",
        "--output-tokens",
        "8",
        "--timings",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("r.csv");
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "1",
        "--iterations",
        "40",
        "--no-preflight",
        "--csv",
        csv.to_str().unwrap(),
    ])
    .await;
    let st = mock.stats().await;
    let lat = &r["latency"];
    for m in ["server_prefill", "server_decode", "ttft_outside"] {
        assert_eq!(u(&lat[m]["count"]), 40, "{m}: {lat}");
    }
    // The mock's prompt time is its arrival → first token, as its stamps say.
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    let prefill = f(&lat["server_prefill"]["p50"]);
    assert!(
        (prefill - mock_ttft).abs() < 0.5,
        "{prefill} vs {mock_ttft}"
    );
    // What is left of the client's ttft is the way there and back.
    let outside = f(&lat["ttft_outside"]["p50"]);
    let client = f(&lat["ttft"]["p50"]);
    assert!(
        outside >= 0.0 && (outside - (client - mock_ttft)).abs() < 1.0,
        "ttft_outside {outside}, ttft {client}, the mock's ttft {mock_ttft}"
    );
    let t = &r["server_timings"];
    assert_eq!(u(&t["requests"]), 40);
    assert_eq!(u(&t["output_tokens"]), 320);
    assert_eq!(u(&t["output_tokens_counted"]), 320);
    // The Markdown table and the per-request CSV carry them.
    let text = stdout(&out);
    assert!(
        text.contains("### Server timings (as the server reported them, ms)"),
        "{text}"
    );
    assert!(text.contains("| ttft_outside "), "{text}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    let header: Vec<&str> = rows.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let first: Vec<&str> = rows.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first[col("server_output_tokens")], "8");
    assert!(first[col("server_prompt_ms")].parse::<f64>().unwrap() > 25.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_tokenizer_counts_what_its_usage_leaves_out() {
    let mock = MockProc::start(&[
        "--ttft",
        "1ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "12",
        "--no-usage",
        "--tokenize",
    ]);
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--tokenizer",
        "server",
        "--vus",
        "2",
        "--iterations",
        "10",
        "--input-tokens",
        "40",
    ])
    .await;
    let s = &r["summary"];
    assert_eq!(r["tokenizer"]["name"], "server /tokenize (llama.cpp)");
    assert_eq!(u(&s["output_token_sources"]["tokenizer"]), 10);
    // The mock's words are one token each by its /tokenize.
    assert_eq!(u(&s["output_tokens"]), 120);
    // Prompts: 40 synthetic tokens and the chat framing, as the mock counted.
    let st = mock.stats().await;
    assert_eq!(u(&s["input_tokens"]), u(&st["prompt_tokens"]) - 46, "{st}");
    assert!(
        stdout(&out).contains("counted with the server's own tokenizer"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenizer_that_cannot_be_had_is_refused_with_what_to_do() {
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms"]);
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--tokenizer",
        "server",
        "--iterations",
        "1",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--tokenizer server:") && err.contains("/tokenize"),
        "{err}"
    );
    let out = periscope_async(s(&["run", "--mock", "--tokenizer", "gpt2-ish"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("expected server, cl100k_base, o200k_base, the URL of a server"),
        "{}",
        stderr(&out)
    );
    let out = periscope_async(s(&[
        "run",
        "--mock",
        "--tokenizer",
        "/nonexistent/tokenizer.json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a Hugging Face tokenizer.json"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokenizer_json_or_an_encoding_counts_when_usage_is_missing() {
    // A word-level tokenizer.json whose vocabulary has the mock's words.
    let words: Vec<&str> = periscope::tokenizer::VOCAB.to_vec();
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), json!(0));
    for (i, w) in words.iter().enumerate() {
        vocab.insert(w.to_string(), json!(i + 1));
    }
    let file = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let mock = MockProc::start(&[
        "--ttft",
        "1ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "7",
        "--no-usage",
    ]);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--tokenizer",
        path.to_str().unwrap(),
        "--iterations",
        "5",
    ])
    .await;
    assert!(
        r["tokenizer"]["name"]
            .as_str()
            .unwrap()
            .starts_with("tokenizer.json ("),
        "{}",
        r["tokenizer"]
    );
    assert_eq!(u(&r["summary"]["output_tokens"]), 35);
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--tokenizer",
        "o200k_base",
        "--iterations",
        "5",
    ])
    .await;
    assert_eq!(r["tokenizer"]["name"], "o200k_base");
    assert_eq!(u(&r["summary"]["output_token_sources"]["tokenizer"]), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_is_measured_and_stream_usage_can_be_left_out() {
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--output-tokens", "6"]);
    // The mock counts as OpenAI does: the auto tokenizer stays cl100k, and
    // the template of a system and a user message is 3 + 3 + 3 tokens.
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--system",
        "be brief",
        "--iterations",
        "4",
    ])
    .await;
    assert_eq!(
        r["tokenizer"],
        json!({"name": "cl100k_base", "template_tokens": 9})
    );
    assert_eq!(u(&r["summary"]["output_token_sources"]["usage"]), 4);
    // Not asked for usage in the stream, the mock sends none: counted locally.
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--no-stream-usage",
        "--iterations",
        "4",
    ])
    .await;
    assert_eq!(r["plan"]["stream_usage"], false);
    assert_eq!(u(&r["summary"]["output_token_sources"]["tokenizer"]), 4);
    assert_eq!(u(&r["summary"]["output_tokens"]), 24);
    assert_eq!(u(&r["summary"]["usage_mismatch"]), 0);
}

/// A sample of a Prometheus text exposition: the value of the series
/// `name` (any labels but `le`), or of its bucket `le`.
fn sample(text: &str, name: &str, le: Option<&str>) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let series = l.split(' ').next().unwrap_or("");
            series.split('{').next() == Some(name)
                && le.is_none_or(|le| series.contains(&format!("le=\"{le}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {le:?} in\n{text}"))
}

async fn scrape(url: &str) -> String {
    http().get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mocks_metrics_are_vllms_and_true_to_what_it_served() {
    // 12 streams at once, 4 slots: 8 wait, in three waves of ≈ 0.2 s.
    let mock = MockProc::start(&[
        "--max-concurrency",
        "4",
        "--ttft",
        "100ms",
        "--itl",
        "5ms",
        "--output-tokens",
        "20",
        "--models",
        "m",
    ]);
    let metrics = mock.url("/metrics");
    let before = http().get(&metrics).send().await.unwrap();
    assert!(before.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let load = tokio::spawn(fire(
        mock.url("/v1/chat/completions"),
        chat("hello there", true, 20),
        12,
        12,
    ));
    let (mut running, mut waiting) = (0.0f64, 0.0f64);
    while !load.is_finished() {
        let text = scrape(&metrics).await;
        running = running.max(sample(&text, "vllm:num_requests_running", None));
        waiting = waiting.max(sample(&text, "vllm:num_requests_waiting", None));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let answers = load.await.unwrap();
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!((running, waiting), (4.0, 8.0));

    let text = scrape(&metrics).await;
    let stats = mock.stats().await;
    let n = |name: &str| sample(&text, name, None);
    assert!(
        text.contains("vllm:request_success_total{model_name=\"m\"} 12"),
        "{text}"
    );
    assert_eq!(
        n("vllm:generation_tokens_total"),
        stats["output_tokens"].as_f64().unwrap()
    );
    assert_eq!(n("vllm:generation_tokens_total"), 240.0);
    assert_eq!(
        n("vllm:prompt_tokens_total"),
        stats["prompt_tokens"].as_f64().unwrap()
    );
    assert_eq!(n("vllm:num_requests_running"), 0.0);
    assert_eq!(n("vllm:num_requests_waiting"), 0.0);
    for h in [
        "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
    ] {
        assert_eq!(n(&format!("{h}_count")), 12.0, "{h}");
        assert_eq!(
            sample(&text, &format!("{h}_bucket"), Some("+Inf")),
            12.0,
            "{h}"
        );
    }
    assert_eq!(n("vllm:inter_token_latency_seconds_count"), 12.0 * 19.0);
    // Prefill is the mock's ttft after admission (100 ms); the queue is the
    // rest of what a client waited: 4 streams none, 4 one service time
    // (100 ms + 19 × 5 ms ≈ 0.2 s), 4 two.
    let mean = |h: &str| n(&format!("{h}_sum")) / n(&format!("{h}_count"));
    let prefill = mean("vllm:request_prefill_time_seconds");
    assert!((0.099..0.13).contains(&prefill), "prefill {prefill}");
    let queue = n("vllm:request_queue_time_seconds_sum");
    let service =
        mean("vllm:e2e_request_latency_seconds") - mean("vllm:request_queue_time_seconds");
    assert!(
        (queue - 12.0 * service).abs() < 0.25 * 12.0 * service,
        "queue {queue} s in all, service {service} s"
    );
    let ttft = mean("vllm:time_to_first_token_seconds");
    assert!(
        (ttft - (prefill + mean("vllm:request_queue_time_seconds"))).abs() < 1e-6,
        "ttft {ttft} = queue + prefill"
    );
    // Nothing waited longer than two services.
    assert_eq!(
        sample(&text, "vllm:request_queue_time_seconds_bucket", Some("0.3")),
        8.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mocks_metrics_in_llama_cpps_names_count_what_it_served() {
    let mock = MockProc::start(&[
        "--max-concurrency",
        "1",
        "--ttft",
        "50ms",
        "--itl",
        "2ms",
        "--output-tokens",
        "10",
        "--models",
        "m",
        "--metrics-llamacpp",
    ]);
    let metrics = mock.url("/metrics");
    let load = tokio::spawn(fire(
        mock.url("/v1/chat/completions"),
        chat("hello there", true, 10),
        3,
        3,
    ));
    let mut deferred = 0.0f64;
    while !load.is_finished() {
        let text = scrape(&metrics).await;
        deferred = deferred.max(sample(&text, "llamacpp:requests_deferred", None));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(load.await.unwrap().iter().all(|(s, _)| *s == 200));
    assert_eq!(deferred, 2.0, "one slot, three requests");
    let text = scrape(&metrics).await;
    let stats = mock.stats().await;
    let n = |name: &str| sample(&text, name, None);
    assert_eq!(n("llamacpp:tokens_predicted_total"), 30.0);
    assert_eq!(
        n("llamacpp:prompt_tokens_total") + n("llamacpp:prompt_tokens_cached_total"),
        stats["prompt_tokens"].as_f64().unwrap()
    );
    // Prefill: admission → first token; decode: first token → last byte;
    // by the mock's own stamps (its stats: means of 3 requests, in µs).
    let mean = |k: &str| stats[k]["mean"].as_f64().unwrap() * 3.0 / 1e6;
    let (ttft, e2e) = (mean("ttft_us"), mean("e2e_us"));
    let prefill = n("llamacpp:prompt_seconds_total");
    assert!(
        (prefill - ttft).abs() < 0.02 * ttft,
        "prefill {prefill} vs {ttft}"
    );
    let decode = n("llamacpp:tokens_predicted_seconds_total");
    assert!(
        (decode - (e2e - ttft)).abs() < 0.02 * e2e,
        "decode {decode} vs {}",
        e2e - ttft
    );
    assert_eq!(n("llamacpp:requests_processing"), 0.0);
    assert!(!text.contains("vllm:"));
}

/// A server whose usage says 40 output tokens for an answer of two words,
/// to every request on every connection (HTTP/1.1, kept alive).
fn overcounting_server() -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let answer = json!({
                        "id": "x", "object": "chat.completion", "model": "m",
                        "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "Hello world"}}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 40, "total_tokens": 47}
                    })
                    .to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        answer.len()
                    );
                    if w.write_all(head.as_bytes()).is_err()
                        || w.write_all(answer.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_that_disagrees_with_the_text_is_found_on_a_sample_at_the_end() {
    let base = overcounting_server();
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope(&[
        "run",
        "--target",
        &base,
        "--no-stream",
        "--vus",
        "4",
        "--iterations",
        "400",
        "--json",
        &json,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let s = &r["summary"];
    // 400 answers (and the preflight's) carried usage; 256 of them, a
    // uniform sample, were counted at the end: every one disagrees.
    assert_eq!(u(&s["output_tokens"]), 400 * 40, "usage is what counts");
    assert_eq!(u(&s["usage_checked"]), 256);
    assert_eq!(u(&s["usage_mismatch"]), 256);
    let text = stdout(&out);
    assert!(
        text.contains(
            "for 256 of 256 checked requests the server's usage and the local token count disagree"
        ),
        "{text}"
    );
}
