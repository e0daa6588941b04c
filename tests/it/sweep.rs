//! `periscope sweep` against the mock, the mock's own proxy and nginx; and
//! `periscope probe` against the mock's guardrail.

use crate::common::*;
use serde_json::Value;

/// Sweeps measure latency: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn sweep(args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "sweep.json");
    let mut all = s(&["sweep"]);
    all.extend(s(args));
    all.extend(s(&["--json", &json]));
    let out = periscope_async(all).await;
    assert!(out.status.success(), "{}", stderr(&out));
    (stdout(&out), read_json(&json))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_speaks_every_llm_api_shape() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    for (workload, endpoint) in [
        ("responses", "responses"),
        ("messages", "messages"),
        ("tool-calls", "chat"),
        ("rerank", "rerank"),
    ] {
        mock.reset().await;
        let (_, r) = sweep(&[
            "--url",
            &mock.base(),
            "--workload",
            workload,
            "--concurrency-list",
            "1,2",
            "--requests",
            "6",
        ])
        .await;
        for row in r["rows"].as_array().unwrap() {
            assert_eq!(
                (row["ok"].as_u64(), row["errors"].as_u64()),
                (Some(6), Some(0)),
                "{workload}: {row}"
            );
        }
        // The preflight, then both levels.
        let sent = mock.stats().await["by_endpoint"][endpoint].as_u64();
        assert_eq!(sent, Some(13), "{workload}");
    }
    let out = periscope_async(s(&["sweep", "--url", &mock.base(), "--workload", "http"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("LLM API"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_proxy_adds_its_5ms_at_every_level() {
    let _serial = SERIAL.lock().await;
    let mock = [
        "--ttft",
        "20ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "1",
        "--jitter",
        "0.05",
    ];
    // The same mock twice: one direct, one behind the proxy, so each side's
    // own stamps say what it did.
    let direct = MockProc::start(&mock);
    let upstream = MockProc::start(&mock);
    let proxy = MockProc::start(&[
        "--upstream",
        &format!("http://{}", upstream.addr),
        "--added-latency",
        "5ms",
    ]);
    let (text, r) = sweep(&[
        "--direct-url",
        &direct.base(),
        "--proxy-url",
        &proxy.base(),
        "--concurrency-list",
        "1,2,4",
        "--requests",
        "300",
        "--no-stream",
    ])
    .await;
    // The truth: what the proxy added around its upstream, by their stamps
    // (its 5 ms hold, and its own forwarding).
    let p = proxy.stats().await;
    let u = upstream.stats().await;
    let hold = f(&p["proxy_hold_us"]["p50"]) / 1000.0;
    assert!(
        (5.0..5.5).contains(&hold),
        "the proxy held requests {hold} ms"
    );
    let truth = (f(&p["e2e_us"]["p50"]) - f(&u["e2e_us"]["p50"])) / 1000.0;
    assert!((5.0..6.0).contains(&truth), "the proxy added {truth} ms");
    let overhead = r["overhead"].as_array().unwrap();
    assert_eq!(overhead.len(), 3);
    for o in overhead {
        let p50 = f(&o["p50"]);
        let (lo, hi) = (f(&o["p50_ci"][0]), f(&o["p50_ci"][1]));
        assert!((3.5..=6.5).contains(&p50), "p50 overhead {p50} ms: {o}");
        // The stamps see the proxy from the server side; the client's view
        // of the same path differs by its own loopback hop and wake-ups, a
        // bias of up to ~0.2 ms that no number of requests removes.
        const STAMP_SLACK_MS: f64 = 0.25;
        assert!(
            lo - STAMP_SLACK_MS <= truth && truth <= hi + STAMP_SLACK_MS,
            "the interval [{lo}, {hi}] contains the {truth:.2} ms the proxy added: {o}"
        );
        assert_eq!(o["buffering"], false);
    }
    // Every level ran both endpoints, and the raw latencies are kept.
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|row| row["samples"].as_array().unwrap().len() == 300));
    assert_eq!(r["inputs"]["token_present"], false);
    for needle in [
        "### Results (concurrency=1)",
        "### Estimated Overhead (proxy - direct)",
        "### Sweep Results",
        "| endpoint | conc | req | ok  | err | ok_rps | mean",
        "Token present: false",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_in_front_of_the_mock_adds_a_small_positive_overhead() {
    let _serial = SERIAL.lock().await;
    // Sub-millisecond delays: the mock times them to a few microseconds,
    // where a delay of whole milliseconds lands on the runtime's 1 ms timer
    // ticks, a phase that differs between the legs by up to ±0.1 ms at the
    // median — more than the ~0.03 ms nginx adds.
    let direct = MockProc::start(&["--ttft", "1ms", "--itl", "100us", "--output-tokens", "16"]);
    let Some(nginx) = Nginx::proxy(&direct.addr) else {
        return;
    };
    let (_, r) = sweep(&[
        "--direct-url",
        &direct.base(),
        "--proxy-url",
        &nginx.base(),
        "--concurrency-list",
        "1,4",
        "--requests",
        "300",
    ])
    .await;
    for o in r["overhead"].as_array().unwrap() {
        // The median shift is what nginx adds (~0.02–0.08 ms here); the mean also
        // carries the tails of a shared 2-core machine, which can push it
        // below 0 by chance, so it is only bounded.
        let (p50, mean) = (f(&o["p50"]), f(&o["mean"]));
        let (p50_lo, p50_hi) = (f(&o["p50_ci"][0]), f(&o["p50_ci"][1]));
        assert!(
            p50 > 0.0 && p50 < 3.0 && p50_lo > 0.0 && p50_lo <= p50 && p50 <= p50_hi,
            "a local nginx adds a little, well under 3 ms, and the interval says so: {o}"
        );
        assert!(mean.abs() < 3.0, "{o}");
        let (lo, hi) = (f(&o["mean_ci"][0]), f(&o["mean_ci"][1]));
        assert!(
            lo <= mean && mean <= hi && hi - lo < 3.0,
            "an interval around it: {o}"
        );
        assert_eq!(
            o["buffering"], false,
            "nginx with proxy_buffering off streams: {o}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_buffers_streams_is_flagged() {
    let _serial = SERIAL.lock().await;
    // A slow stream: 32 tokens 20 ms apart.
    let direct = MockProc::start(&["--ttft", "30ms", "--itl", "20ms", "--output-tokens", "32"]);
    let up = format!("http://{}", direct.addr);
    // A gateway that reads each answer whole before passing it on, and nginx
    // with proxy_buffering off, which streams.
    let buffered = MockProc::start(&["--upstream", &up, "--buffer-responses"]);
    let Some(nginx) = Nginx::proxy(&direct.addr) else {
        return;
    };
    for (proxy, flagged) in [(buffered.base(), true), (nginx.base(), false)] {
        let (text, r) = sweep(&[
            "--direct-url",
            &direct.base(),
            "--proxy-url",
            &proxy,
            "--concurrency-list",
            "2",
            "--requests",
            "20",
        ])
        .await;
        assert_eq!(
            r["overhead"][0]["buffering"], flagged,
            "{proxy}: {}",
            r["overhead"]
        );
        assert_eq!(
            text.contains("the proxy buffers streams"),
            flagged,
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_is_named_at_the_rate_limit() {
    let _serial = SERIAL.lock().await;
    // 150 req/s served; a VU sends one request per 20 ms (50 req/s): 1 and
    // 2 VUs fit, 4 VUs reach the limit, 8 get no more. Each level lasts at
    // least 3 s, so the limiter's burst (15 requests) adds at most 5 req/s
    // to ok_rps: 4 and 8 VUs both get ~155 req/s (issue 19: levels of 0.1 s
    // read 164 and 178, a burst, not a rate).
    let mock = MockProc::start(&[
        "--rate-limit",
        "150",
        "--ttft",
        "20ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "1",
    ]);
    let (text, r) = sweep(&[
        "--url",
        &mock.base(),
        "--concurrency-list",
        "1,2,4,8",
        "--requests",
        "150",
        "--min-level-duration",
        "3s",
        "--no-stream",
    ])
    .await;
    let sat = r["saturation"].as_str().unwrap();
    assert!(sat.starts_with("saturation at concurrency 4:"), "{sat}");
    assert!(text.contains(sat), "{text}");
    for row in r["rows"].as_array().unwrap() {
        assert!(f(&row["duration_s"]) >= 3.0, "{row}");
        // No level's rate exceeds what the mock served, burst included.
        assert!(f(&row["ok_rps"]) <= 150.0 + 15.0 / 3.0 + 1.0, "{row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_too_short_to_judge_are_named_not_judged() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--output-tokens", "1"]);
    let (text, r) = sweep(&[
        "--url",
        &mock.base(),
        "--concurrency-list",
        "1,2",
        "--requests",
        "20",
        "--no-stream",
    ])
    .await;
    let sat = r["saturation"].as_str().unwrap();
    assert!(
        sat.starts_with("no saturation judged among the levels that lasted 1 s or more (2 of 2"),
        "{sat}"
    );
    assert_eq!(
        text.matches("too short for its ok_rps to be a rate")
            .count(),
        2,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_gives_the_exact_confusion_matrix_of_the_guardrail() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "probe.json");
    // The same verdicts whatever the API speaks: the mock refuses in each
    // one's shape (a refusal field, a refusal part, a refusal in the text).
    let mut out = None;
    for api in ["responses", "messages", "chat"] {
        mock.reset().await;
        let o = periscope_async(s(&[
            "probe",
            "--api",
            api,
            "--url",
            &mock.base(),
            "--dataset-suite",
            "core",
            "--workers",
            "8",
            "--show-prompt",
            "--output-json",
            &json,
        ]))
        .await;
        assert!(o.status.success(), "{}", stderr(&o));
        let sent = mock.stats().await["by_endpoint"][api].as_u64();
        assert_eq!(sent, Some(124), "{api}");
        verdicts_are_the_guardrails(&read_json(&json));
        out = Some(o);
    }
    let text = stdout(&out.unwrap());
    for needle in [
        "| Case ",
        "| Try | HTTP | Blocked? | Expected | Latency(ms) | Prompt ",
        "### Confusion (expected × outcome)",
        "### Block rate by category",
        "Token present: false",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// A probe's confusion matrix is what the mock's guardrail pattern makes of
/// the core corpus.
fn verdicts_are_the_guardrails(r: &Value) {
    // What the mock's guardrail blocks: its pattern matches the prompt.
    let block = regex::Regex::new(periscope::mock::DEFAULT_BLOCK_PATTERN).unwrap();
    let cases = periscope::dataset::suite_cases("core").unwrap();
    let count = |malicious: bool, blocked: bool| {
        cases
            .iter()
            .filter(|c| (c.label == periscope::dataset::Label::Malicious) == malicious)
            .filter(|c| block.is_match(&c.text) == blocked)
            .count() as u64
    };
    let c = &r["confusion"];
    let got = |e: &str, g: &str| c[e][g].as_u64().unwrap_or(0);
    assert_eq!(got("block", "blocked"), count(true, true), "{c}");
    assert_eq!(got("block", "allowed"), count(true, false), "{c}");
    assert_eq!(got("allow", "blocked"), count(false, true), "{c}");
    assert_eq!(got("allow", "allowed"), count(false, false), "{c}");
    assert_eq!(got("block", "error") + got("allow", "error"), 0);
    assert!(
        count(true, true) > 10,
        "the core corpus trips the guardrail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_never_counts_a_transport_error_as_blocked() {
    let _serial = SERIAL.lock().await;
    // Nothing listens here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "probe.json");
    let out = periscope_async(s(&[
        "probe",
        "--url",
        &format!("http://127.0.0.1:{port}/v1"),
        "--dataset-suite",
        "core",
        "--dataset-limit",
        "3",
        "--retries",
        "1",
        "--output-json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let cases = r["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for c in cases {
        let tries = c["tries"].as_array().unwrap();
        assert_eq!(tries.len(), 2, "one retry: {c}");
        assert!(tries.iter().all(|t| t["verdict"] == "error"), "{c}");
    }
    assert!(
        r["confusion"]["block"]["blocked"].is_null(),
        "{}",
        r["confusion"]
    );
}

#[test]
fn bad_sweep_and_probe_input_gets_one_line_errors() {
    for (args, needle) in [
        (
            vec![
                "sweep",
                "--url",
                "http://127.0.0.1:1/v1",
                "--direct-url",
                "http://127.0.0.1:2/v1",
                "--concurrency-list",
                "1",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "sweep",
                "--url",
                "http://127.0.0.1:1/v1",
                "--concurrency-list",
                "",
            ],
            "invalid value",
        ),
        (
            vec![
                "sweep",
                "--url",
                "http://127.0.0.1:1/v1",
                "--concurrency",
                "2",
                "--concurrency-list",
                "1,2",
            ],
            "cannot be used with",
        ),
        (
            vec!["sweep", "--url", "http://127.0.0.1:1/v1/embeddings"],
            "--url names the /embeddings (embeddings) endpoint, but the completions workload sends to /chat/completions",
        ),
        (
            vec![
                "sweep",
                "--mode",
                "probe",
                "--direct-url",
                "http://127.0.0.1:1/v1",
                "--proxy-url",
                "http://127.0.0.1:2/v1",
                "--dataset-suite",
                "core",
            ],
            "--mode probe sends each case once to one --url",
        ),
        (
            vec![
                "probe",
                "--mode",
                "load",
                "--url",
                "http://127.0.0.1:1/v1",
            ],
            "--mode load is `periscope sweep`",
        ),
        (
            vec![
                "probe",
                "--url",
                "http://127.0.0.1:1/v1/messages",
                "--dataset-suite",
                "core",
            ],
            "--url names the /messages (Anthropic's Messages API) endpoint",
        ),
        (
            vec![
                "sweep",
                "--url",
                "http://127.0.0.1:1/v1",
                "--concurrency-list",
                "0,2",
            ],
            "at least 1",
        ),
        (
            vec![
                "probe",
                "--url",
                "http://127.0.0.1:1/v1",
                "--dataset-suite",
                "core",
                "--dataset-label",
                "evil",
            ],
            "invalid value 'evil'",
        ),
        (
            vec!["probe", "--url", "http://127.0.0.1:1/v1"],
            "probe needs a corpus",
        ),
        (
            vec![
                "probe",
                "--url",
                "http://127.0.0.1:1/v1",
                "--dataset-suite",
                "nope",
            ],
            "expected core, external or all",
        ),
    ] {
        let out = periscope(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
