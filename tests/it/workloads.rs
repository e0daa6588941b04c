//! Each workload, run for a few seconds against the built-in mock, shows the
//! figure it exists for.

use crate::common::*;
use serde_json::Value;

fn groups<'a>(r: &'a Value, kind: &str) -> Vec<&'a Value> {
    r["groups"]
        .as_array()
        .map(|a| a.iter().filter(|g| g["kind"] == kind).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_per_text_latency_falls_with_batch_size() {
    // A fixed cost of 20 ms per request dominates 50 µs per text.
    let (out, r) = run_ok(&[
        "run",
        "batch-embeddings",
        "--mock",
        "--mock-args",
        "--embed-latency 20ms --embed-per-text 50us --dims 256",
        "--vus",
        "2",
        "--duration",
        "3s",
        "--batch-sizes",
        "1,8,32",
    ])
    .await;
    let rows = groups(&r, "batch");
    assert_eq!(rows.len(), 3, "one row per batch size: {rows:?}");
    let per_text = |label: &str| {
        rows.iter()
            .find(|g| g["label"] == label)
            .map(|g| f(&g["per_text_ms"]))
            .unwrap()
    };
    assert!(per_text("1") > 2.0 * per_text("8"), "{rows:?}");
    assert!(per_text("8") > 2.0 * per_text("32"), "{rows:?}");
    assert_eq!(r["summary"]["embedding_dims"], 256);
    assert!(stdout(&out).contains("### By batch size"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_caching_ttft_is_flat_with_a_cache_and_grows_without() {
    let run = |cache: bool| async move {
        let mock = format!(
            "--ttft 5ms --prefill-per-token 200us --itl 500us{}",
            if cache { " --prefix-cache" } else { "" }
        );
        let (_, r) = run_ok(&[
            "run",
            "prefix-caching",
            "--mock",
            "--mock-args",
            &mock,
            "--vus",
            "2",
            "--duration",
            "4s",
            "--max-tokens",
            "32",
            "--turns",
            "6",
        ])
        .await;
        let rows = groups(&r, "turn");
        let at = |t: &str| {
            let g = rows.iter().find(|g| g["label"] == t).expect("turn row");
            (f(&g["ttft"]["p50"]), f(&g["input_tokens_mean"]))
        };
        (at("2"), at("6"), r)
    };
    let ((ttft2, tok2), (ttft6, tok6), r) = run(true).await;
    // The server's cache as its usage tells it (`prompt_tokens` counts the
    // cached tokens too): the hit rate is cached / prompt, never 100%.
    let t = &r["server_timings"];
    let (cached, prompt) = (f(&t["cached_tokens"]), f(&r["summary"]["input_tokens"]));
    assert!(cached > 0.0 && cached < prompt, "{t} of {prompt}");
    assert!(
        (f(&t["cache_hit_rate"]) - cached / prompt).abs() < 1e-9,
        "{t} of {prompt}"
    );
    assert_eq!(f(&t["prompt_tokens"]) + cached, prompt, "{t}");
    assert!(tok6 > tok2 + 100.0, "the prompt grows: {tok2} → {tok6}");
    assert!(
        (ttft6 - ttft2).abs() < 3.0,
        "cached: ttft {ttft2} → {ttft6} ms"
    );
    let ((ttft2, _), (ttft6, _), _) = run(false).await;
    // 4 more turns × 32 tokens × 0.2 ms = 25.6 ms more prefill.
    assert!(ttft6 - ttft2 > 20.0, "uncached: ttft {ttft2} → {ttft6} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefill_and_decode_rates_match_the_mock() {
    // 50 µs per prompt token = 20,000 tokens/s of prefill.
    let (out, r) = run_ok(&[
        "run",
        "prefill-heavy",
        "--mock",
        "--mock-args",
        "--ttft 0ms --prefill-per-token 50us --itl 1ms",
        "--vus",
        "2",
        "--duration",
        "3s",
    ])
    .await;
    let prefill = f(&r["summary"]["prefill_rate"]);
    assert!(
        (prefill / 20_000.0 - 1.0).abs() < 0.05,
        "prefill rate {prefill}"
    );
    assert!(f(&r["summary"]["input_tokens"]) / f(&r["summary"]["ok"]) > 4000.0);
    assert!(stdout(&out).contains("prefill rate"));
    // 4 ms per token = 250 tokens/s of decode.
    let (_, r) = run_ok(&[
        "run",
        "decode-heavy",
        "--mock",
        "--mock-args",
        "--ttft 5ms --itl 4ms",
        "--vus",
        "4",
        "--duration",
        "3s",
        "--max-tokens",
        "100",
    ])
    .await;
    let decode = f(&r["summary"]["decode_rate"]);
    assert!((decode / 250.0 - 1.0).abs() < 0.05, "decode rate {decode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_endpoints_split_by_weight_with_a_status_table() {
    let (out, r) = run_ok(&[
        "run",
        "http",
        "--mock",
        "--vus",
        "2",
        "--iterations",
        "400",
        "--endpoint",
        "GET:/health:3",
        "--endpoint",
        "GET:/v1/models:1",
        "--endpoint",
        "GET:/missing:1",
    ])
    .await;
    let rows = groups(&r, "endpoint");
    let n = |label: &str, status: &str| {
        rows.iter()
            .find(|g| g["label"] == label)
            .and_then(|g| g["statuses"][status].as_u64())
            .unwrap_or(0)
    };
    let health = n("GET /health", "200");
    assert!((180..=300).contains(&health), "{health} of 400");
    assert!(n("GET /missing", "404") > 30);
    assert_eq!(r["summary"]["requests"], 400);
    assert!(stdout(&out).contains("### By endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_grows_turn_by_turn() {
    let (_, r) = run_ok(&[
        "run",
        "conversation",
        "--mock",
        "--mock-args",
        "--ttft 2ms --itl 500us",
        "--vus",
        "2",
        "--duration",
        "2s",
        "--turns",
        "3",
        "--max-tokens",
        "20",
    ])
    .await;
    let rows = groups(&r, "turn");
    let tokens: Vec<f64> = rows.iter().map(|g| f(&g["input_tokens_mean"])).collect();
    assert_eq!(tokens.len(), 3, "{rows:?}");
    assert!(tokens[0] < tokens[1] && tokens[1] < tokens[2], "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_exit_99_when_violated_and_0_when_met() {
    let args = |threshold: &str| {
        s(&[
            "run",
            "--mock",
            "--mock-args",
            "--ttft 30ms --itl 1ms --output-tokens 4",
            "--vus",
            "2",
            "--duration",
            "2s",
            "--threshold",
            threshold,
            "--threshold",
            "error_rate<0.01",
            "--slo",
            "ttft<500ms",
        ])
    };
    let met = periscope_async(args("ttft.p95<500ms")).await;
    assert_eq!(met.status.code(), Some(0), "{}", stderr(&met));
    assert!(stdout(&met).contains("### Thresholds"));
    assert!(stdout(&met).contains("goodput"));
    let failed = periscope_async(args("ttft.p95<10ms")).await;
    assert_eq!(failed.status.code(), Some(99), "{}", stderr(&failed));
    assert!(stdout(&failed).contains("**FAIL**"));
    assert!(stderr(&failed).contains("ttft.p95<10ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_load_early() {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--mock",
        "--mock-args",
        "--ttft 5ms --itl 1ms --error-rate 0.5",
        "--vus",
        "2",
        "--duration",
        "30s",
        "--threshold",
        "error_rate<0.1",
        "--abort-on-fail",
        // The preflight would meet the injected errors half the time.
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    let r = read_json(&json);
    assert!(f(&r["duration_s"]) < 10.0, "ran {}", r["duration_s"]);
    assert_eq!(r["aborted"]["threshold"], "error_rate<0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_times_its_events_by_the_mocks_stamps_and_counts_its_usage() {
    let mock = MockProc::start(&["--ttft", "30ms", "--itl", "3ms", "--output-tokens", "12"]);
    let (out, r) = run_ok(&[
        "run",
        "responses",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "2",
        "--iterations",
        "30",
        "--system",
        "Be brief.",
    ])
    .await;
    let st = mock.stats().await;
    assert_eq!(st["by_endpoint"]["responses"], 30, "{st}");
    // Tokens from the usage of `response.completed`, as the mock sent it;
    // ttft at the first output_text.delta, itl between them.
    usage_and_stamps_agree(&r, &st, 30);
    assert!(stdout(&out).contains("## periscope: responses"));
    // Whole answers: the response object's output and usage.
    let (_, r) = run_ok(&[
        "run",
        "responses",
        "--target",
        &mock.base(),
        "--no-stream",
        "--vus",
        "1",
        "--iterations",
        "5",
    ])
    .await;
    assert_eq!(r["summary"]["ok"], 5, "{}", r["errors"]);
    assert_eq!(r["summary"]["output_tokens"], 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_speaks_anthropics_api_timed_by_the_mocks_stamps() {
    let mock = MockProc::start(&[
        "--ttft",
        "30ms",
        "--itl",
        "3ms",
        "--output-tokens",
        "12",
        "--api-key",
        "sk-ant-test",
    ]);
    // The key as x-api-key (not a bearer token), from ANTHROPIC_API_KEY,
    // and the target from ANTHROPIC_BASE_URL.
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "messages",
            "--no-preflight",
            "--vus",
            "2",
            "--iterations",
            "30",
        ])
        .args(["--system", "Be brief.", "--json", &json])
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env("ANTHROPIC_BASE_URL", mock.base())
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert!(
        !r.to_string().contains("sk-ant-test"),
        "the key is in the result"
    );
    let st = mock.stats().await;
    assert_eq!(st["by_endpoint"]["messages"], 30, "{st}");
    // ttft at the first content_block_delta, itl between them.
    usage_and_stamps_agree(&r, &st, 30);
    // Whole messages, and a wrong key refused as Anthropic's clients see it.
    let (_, r) = run_ok(&[
        "run",
        "messages",
        "--target",
        &mock.base(),
        "--token",
        "sk-ant-test",
        "--no-stream",
        "--vus",
        "1",
        "--iterations",
        "5",
    ])
    .await;
    assert_eq!(r["summary"]["ok"], 5, "{}", r["errors"]);
    assert_eq!(r["summary"]["output_tokens"], 60);
    let out = periscope(&[
        "run",
        "messages",
        "--target",
        &mock.base(),
        "--token",
        "wrong",
        "--iterations",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_time_every_turn_of_the_agents_loop_by_the_mocks_stamps() {
    // Prefill costs 1 ms a prompt token: each turn's prompt is longer by a
    // call and its result, so each turn's first token comes tens of
    // milliseconds later, and the mock's stamps fall in three tight bands.
    let mock = MockProc::start(&[
        "--ttft",
        "10ms",
        "--itl",
        "2ms",
        "--output-tokens",
        "8",
        "--prefill-per-token",
        "1ms",
    ]);
    for api in ["chat", "responses"] {
        mock.reset().await;
        let (out, r) = run_ok(&[
            "run",
            "tool-calls",
            "--api",
            api,
            "--target",
            &mock.base(),
            "--no-preflight",
            "--tool-turns",
            "3",
            "--vus",
            "2",
            "--iterations",
            "12",
        ])
        .await;
        let st = mock.stats().await;
        let rows = groups(&r, "turn");
        assert_eq!(rows.len(), 3, "{}", stdout(&out));
        // Every answer is a call and nothing else, and every one has a ttft.
        for row in &rows {
            assert_eq!(row["ok"], 4, "{row}");
            assert_eq!(
                row["ttft"]["count"], 4,
                "a tool-only answer has a ttft: {row}"
            );
        }
        // Turn k's ttft is the mock's k-th band: its fastest, its median, its
        // slowest first token.
        let mock_ms = |q: &str| f(&st["ttft_us"][q]) / 1000.0;
        for (row, band) in rows.iter().zip(["min", "p50", "max"]) {
            let ttft = f(&row["ttft"]["p50"]);
            assert!(
                (ttft - mock_ms(band)).abs() < 2.0,
                "{api} turn {}: ttft {ttft} vs the mock's {band} {}",
                row["label"],
                mock_ms(band)
            );
        }
        assert!(f(&rows[2]["ttft"]["p50"]) > f(&rows[0]["ttft"]["p50"]) + 20.0);
        // The prompt grows by each call and its result.
        assert!(f(&rows[1]["input_tokens_mean"]) > f(&rows[0]["input_tokens_mean"]));
        // Tokens and itl as the mock sent them (the call's arguments).
        usage_and_stamps_agree(&r, &st, 12);
        assert_eq!(r["summary"]["usage_mismatch"], 0, "{api}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vision_sends_new_pictures_and_reports_their_tokens_from_the_usage() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "3ms", "--output-tokens", "10"]);
    // Without a preflight, the chat template's tokens are OpenAI's
    // accounting (the mock's); with one (the text alone), as it measured.
    for (api, format, preflight) in [
        ("chat", "png", "--no-preflight"),
        ("responses", "jpeg", "--stream"),
    ] {
        mock.reset().await;
        let (out, r) = run_ok(&[
            "run",
            "vision",
            "--api",
            api,
            "--image-format",
            format,
            preflight,
            "--target",
            &mock.base(),
            "--images",
            "2",
            "--image-size",
            "700x300",
            "--vus",
            "2",
            "--iterations",
            "16",
        ])
        .await;
        let st = mock.stats().await;
        if preflight == "--no-preflight" {
            usage_and_stamps_agree(&r, &st, 16);
        }
        let s = &r["summary"];
        assert_eq!(s["ok"], 16, "{}", r["errors"]);
        assert_eq!(s["images"], 32, "{api}");
        // The mock counts 85 + 170 a 512-pixel tile: 700x300 is 2 tiles. The
        // usage holds them beside the text, and the client finds them.
        assert_eq!(
            s["image_tokens"],
            32 * (85 + 2 * 170),
            "{api}: {}",
            stdout(&out)
        );
        assert!(
            stdout(&out).contains("pictures sent: 32"),
            "{}",
            stdout(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerank_reports_documents_per_second_and_per_document_latency() {
    let mock = MockProc::start(&["--embed-latency", "8ms", "--embed-per-text", "1ms"]);
    let (out, r) = run_ok(&[
        "run",
        "rerank",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--documents",
        "12",
        "--vus",
        "2",
        "--iterations",
        "30",
    ])
    .await;
    let st = mock.stats().await;
    assert_eq!(st["by_endpoint"]["rerank"], 30, "{st}");
    let s = &r["summary"];
    assert_eq!(s["ok"], 30, "{}", r["errors"]);
    assert_eq!(s["texts"], 360);
    // Tokens as the mock's usage counted them (the query beside each document).
    assert_eq!(f(&s["input_tokens"]), f(&st["prompt_tokens"]));
    // Latency by the mock's stamps (8 ms + 1 ms a document).
    let e2e = f(&latency(&r, "e2e")["p50"]);
    let mock_e2e = f(&st["e2e_us"]["p50"]) / 1000.0;
    assert!(
        (e2e - mock_e2e).abs() < 2.0,
        "e2e {e2e} vs the mock's {mock_e2e}"
    );
    let g = groups(&r, "batch");
    assert_eq!(g[0]["label"], "12");
    let per_doc = f(&g[0]["per_text_ms"]);
    assert!(
        (per_doc - f(&g[0]["e2e"]["mean"]) / 12.0).abs() < 1e-6,
        "{}",
        g[0]
    );
    let text = stdout(&out);
    assert!(text.contains("per-document latency"), "{text}");
    assert!(text.contains("documents/s"), "{text}");
}
