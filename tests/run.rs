//! The core run (issue 3) against the built-in mock, in its own process: the
//! figures periscope reports are compared with the mock's own send stamps.

mod common;

use common::{periscope, periscope_async, read_json, stderr, stdout, temp_json, MockProc};
use serde_json::Value;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn latency<'a>(r: &'a Value, metric: &str) -> &'a Value {
    &r["latency"][metric]
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_agree_with_the_mocks_send_stamps() {
    let mock = MockProc::start(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--duration",
        "4s",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    assert_eq!(r["schema"], "periscope.result/v1");
    let ok = r["summary"]["ok"].as_u64().unwrap();
    assert!(ok >= 60, "ok {ok}");
    assert_eq!(
        st["requests"].as_u64().unwrap(),
        ok,
        "every request the mock served was counted ok"
    );
    // ttft p50 within 2 ms, itl p50 within 1 ms of the mock's own stamps.
    let ttft = f(&latency(&r, "ttft")["p50"]);
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (ttft - mock_ttft).abs() <= 2.0,
        "ttft {ttft} vs mock {mock_ttft}"
    );
    let itl = f(&latency(&r, "itl")["p50"]);
    let mock_itl = f(&st["itl_us"]["p50"]) / 1000.0;
    assert!(
        (itl - mock_itl).abs() <= 1.0,
        "itl {itl} vs mock {mock_itl}"
    );
    // e2e is consistent with the stamps: ttft + 15 gaps ≈ 400 ms.
    let e2e = f(&latency(&r, "e2e")["p50"]);
    let mock_e2e = f(&st["e2e_us"]["p50"]) / 1000.0;
    assert!(
        (e2e - mock_e2e).abs() <= 3.0,
        "e2e {e2e} vs mock {mock_e2e}"
    );
    assert!((390.0..430.0).contains(&e2e), "e2e {e2e}");
    let tpot = f(&latency(&r, "tpot")["p50"]);
    assert!((tpot - (e2e - ttft) / 15.0).abs() <= 1.0, "tpot {tpot}");
    // Output tokens exactly 16 per request, from usage.
    assert_eq!(r["summary"]["output_tokens"].as_u64().unwrap(), 16 * ok);
    assert_eq!(
        r["summary"]["output_token_sources"]["usage"]
            .as_u64()
            .unwrap(),
        ok
    );
    assert_eq!(r["summary"]["usage_mismatch"], 0);
    assert!(
        r["warnings"].as_array().unwrap().is_empty(),
        "{}",
        r["warnings"]
    );
    // Histograms are serialized; series cover the run.
    assert!(r["histograms"]["ttft"]
        .as_str()
        .unwrap()
        .starts_with("HISTF"));
    let series_ok: u64 = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["ok"].as_u64().unwrap())
        .sum();
    assert_eq!(series_ok, ok);
    assert!(r["generator"]["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["generator"]["peak_rss_mib"].as_f64().unwrap() > 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usage_tokens_are_estimated_and_flagged() {
    let mock = MockProc::start(&[
        "--ttft",
        "5ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "16",
        "--no-usage",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--iterations",
        "20",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert_eq!(r["summary"]["ok"], 20);
    assert_eq!(r["summary"]["output_token_sources"]["tokenizer"], 20);
    assert_eq!(r["summary"]["output_tokens"], 16 * 20);
    assert_eq!(r["summary"]["input_token_sources"]["tokenizer"], 20);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("estimated"), "{warnings}");
    assert!(
        stdout(&out).contains("estimated locally"),
        "the table says so"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_keeps_schedule_with_256_streams() {
    // Issue 2's timing point: 256 concurrent streams at ttft 100 ms, itl 20 ms.
    let mock = MockProc::start(&["--ttft", "100ms", "--itl", "20ms", "--output-tokens", "16"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "256",
        "--iterations",
        "1024",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    assert_eq!(r["summary"]["ok"], 1024);
    let lag_p99 = f(&st["first_token_lag_us"]["p99"]);
    assert!(
        lag_p99 <= 1000.0,
        "first tokens left {lag_p99} µs late at p99"
    );
    let ttft = f(&latency(&r, "ttft")["p50"]);
    let mock_ttft = f(&st["ttft_us"]["p50"]) / 1000.0;
    assert!(
        (ttft - mock_ttft).abs() <= 2.0,
        "client ttft p50 {ttft} vs mock {mock_ttft}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_sends_the_requested_rate() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--rate",
        "50",
        "--duration",
        "10s",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let sent = mock.stats().await["requests"].as_u64().unwrap();
    assert!(
        (490..=510).contains(&sent),
        "the mock received {sent} requests"
    );
    assert_eq!(r["summary"]["requests"].as_u64().unwrap(), sent);
    let sc = &r["schedule"];
    assert_eq!(sc["behind"], false, "{sc}");
    assert!(f(&sc["lag_p99_ms"]) < 10.0);
    assert!(latency(&r, "latency")["count"].as_u64().unwrap() > 0);
    assert!(stdout(&out).contains("### Schedule"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_backlog_grows_latency_not_service_time() {
    // 5 slots of 200 ms serve 25 req/s; 50 req/s arrive: a growing backlog.
    let mock = MockProc::start(&["--ttft", "200ms", "--itl", "0ms", "--output-tokens", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--no-stream",
        "--rate",
        "50",
        "--duration",
        "4s",
        "--max-in-flight",
        "5",
        "--grace",
        "30s",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let service = latency(&r, "e2e");
    let from_schedule = latency(&r, "latency");
    // Service time stays at the mock's 200 ms; latency from the schedule grows.
    assert!(f(&service["p99"]) < 260.0, "service {service}");
    assert!(
        f(&from_schedule["p50"]) > 2.0 * f(&service["p50"]),
        "latency {from_schedule} vs service {service}"
    );
    assert!(
        f(&from_schedule["max"]) > 1500.0,
        "the backlog grew: {from_schedule}"
    );
    assert!(latency(&r, "queue_wait")["count"].as_u64().unwrap() > 0);
    // The generator itself kept its schedule: this is the target's backlog.
    assert_eq!(r["schedule"]["behind"], false);
    assert!(r["warnings"].to_string().contains("backlog"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_match_what_the_mock_injected() {
    let mock = MockProc::start(&[
        "--ttft",
        "2ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "8",
        "--error-rate",
        "0.15",
        "--error-status",
        "500,503,400",
        "--cut-stream-rate",
        "0.08",
        "--malformed-rate",
        "0.08",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--iterations",
        "800",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    let count = |class: &str, status: Option<u64>| -> u64 {
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["class"] == class && (status.is_none() || e["status"].as_u64() == status))
            .map(|e| e["count"].as_u64().unwrap())
            .sum()
    };
    let by_status = |s: &str| st["by_status"][s].as_u64().unwrap_or(0);
    assert_eq!(count("http_5xx", Some(500)), by_status("500"));
    assert_eq!(count("http_5xx", Some(503)), by_status("503"));
    assert_eq!(count("http_4xx", Some(400)), by_status("400"));
    assert_eq!(
        count("stream_cut", None),
        st["by_fault"]["cut"].as_u64().unwrap()
    );
    assert_eq!(
        count("bad_body", None),
        st["by_fault"]["malformed"].as_u64().unwrap()
    );
    assert!(count("stream_cut", None) > 0 && count("bad_body", None) > 0 && by_status("503") > 0);
    let errors = r["summary"]["errors"].as_u64().unwrap();
    assert_eq!(errors + r["summary"]["ok"].as_u64().unwrap(), 800);
    // And the Markdown table says the same.
    let md = stdout(&out);
    for class in ["http_5xx", "http_4xx", "stream_cut", "bad_body"] {
        assert!(
            md.contains(&format!("| {class}")),
            "{class} row missing:\n{md}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_request_timeout_is_classified_as_timeout() {
    let mock = MockProc::start(&["--ttft", "2s", "--itl", "1ms"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--iterations",
        "3",
        "--timeout",
        "200ms",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert_eq!(r["errors"][0]["class"], "timeout");
    assert_eq!(r["errors"][0]["count"], 3);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_the_summary_and_writes_the_result() {
    let mock = MockProc::start(&["--ttft", "50ms", "--itl", "10ms", "--output-tokens", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let child = std::process::Command::new(common::BIN)
        .args([
            "run",
            "--target",
            &mock.base(),
            "--vus",
            "4",
            "--duration",
            "60s",
            "--grace",
            "5s",
            "--json",
            &json,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let t = std::time::Instant::now();
    // SAFETY: sending SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "exits within the grace period"
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("### Summary"));
    assert!(stdout(&out).contains("stopped by Ctrl-C"));
    let r = read_json(&json);
    assert!(r["summary"]["ok"].as_u64().unwrap() > 10);
    assert_eq!(r["interrupted_by_user"], true);
    assert!(f(&r["duration_s"]) < 10.0);
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    for (args, needle) in [
        (vec!["run", "embeddingz", "--mock"], "unknown workload"),
        (vec!["run", "--mock", "--duration", "ten"], "not a duration"),
        (vec!["run", "--mock", "--stages", "10s"], "no ':'"),
        (
            vec!["run", "--mock", "--rate", "5", "--vus", "2"],
            "can't be combined",
        ),
        (vec!["run"], "no target"),
        (
            vec!["run", "--mock", "--mock-args", "--ttft never"],
            "--mock-args",
        ),
        (
            vec!["run", "--mock", "--json", "/nonexistent-dir/r.json"],
            "--json",
        ),
    ] {
        let out = periscope(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.trim().lines().count() <= 3, "{args:?}: short: {err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn an_unreachable_target_exits_2_before_the_load() {
    let out = periscope(&[
        "run",
        "--target",
        "http://127.0.0.1:1/v1",
        "--duration",
        "2s",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("error: cannot reach http://127.0.0.1:1/v1"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_reports_the_servers_own_message() {
    let mock = MockProc::start(&["--api-key", "sk-right", "--ttft", "0ms"]);
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--token",
        "sk-wrong",
        "--duration",
        "2s",
    ]))
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("answered 401: Incorrect API key provided"),
        "{err}"
    );
    assert!(!err.contains("sk-wrong"), "the key is never printed");
    // Nothing but the preflight was sent.
    assert_eq!(mock.stats().await["requests"], 1);
    let mock = MockProc::start(&["--models", "real-model", "--ttft", "0ms"]);
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--model",
        "nope",
        "--duration",
        "2s",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("answered 404: The model `nope` does not exist"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_sends_nothing() {
    let mock = MockProc::start(&[]);
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--rate",
        "20",
        "--duration",
        "5s",
        "--token",
        "sk-secret",
        "--dry-run",
    ]))
    .await;
    assert!(out.status.success());
    let o = stdout(&out);
    assert!(o.contains("≈ 100 requests"), "{o}");
    assert!(o.contains("\"token_present\": true"));
    assert!(!o.contains("sk-secret"));
    assert_eq!(mock.stats().await["requests"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_completions_and_non_streaming_runs() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "text-completions",
        "--target",
        &mock.base(),
        "--iterations",
        "10",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert_eq!(r["summary"]["ok"], 10);
    assert_eq!(r["plan"]["workload"], "text-completions");
    assert!(latency(&r, "ttft")["count"].as_u64().unwrap() == 10);
    assert_eq!(
        mock.stats().await["by_endpoint"]["text"],
        11,
        "10 + the preflight"
    );
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--no-stream",
        "--iterations",
        "10",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success());
    let r = read_json(&json);
    assert_eq!(r["summary"]["ok"], 10);
    assert!(
        r["latency"].get("ttft").is_none(),
        "no ttft without streaming"
    );
    assert_eq!(r["summary"]["output_tokens"], 80);
}

#[test]
fn readme_first_command_prints_the_tables() {
    // The README's first command, on the binary this test suite built.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let first = readme
        .lines()
        .find(|l| l.trim_start().starts_with("cargo run") && l.contains("--mock"))
        .expect("the README shows a run against the built-in mock");
    let args: Vec<&str> = first
        .split("-- ")
        .nth(1)
        .expect("cargo run … -- ARGS")
        .split_whitespace()
        .collect();
    let out = periscope(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    for section in [
        "### Summary",
        "### Latency (ms)",
        "| ttft",
        "| itl",
        "| tpot",
        "| e2e",
        "built-in mock",
    ] {
        assert!(o.contains(section), "{section} missing:\n{o}");
    }
}
