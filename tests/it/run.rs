//! The core run (issue 3) against the built-in mock, in its own process: the
//! figures periscope reports are compared with the mock's own send stamps.

use crate::common::{
    f, latency, periscope, periscope_async, read_json, run_ok, s, stderr, stdout, temp_json,
    MockProc,
};

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
    let (out, r) = run_ok(&["run", "--target", &mock.base(), "--iterations", "20"]).await;
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
async fn error_classes_match_what_the_mock_injected() {
    error_classes_match("auto").await;
}

/// The reqwest path (used for https:// targets) classifies errors the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_match_on_the_reqwest_engine() {
    error_classes_match("reqwest").await;
}

async fn error_classes_match(engine: &str) {
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
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--iterations",
        "800",
        "--no-preflight",
        "--http-engine",
        engine,
    ])
    .await;
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
async fn malformed_events_and_cuts_of_every_api_shape_are_classified_errors() {
    let mock = MockProc::start(&[
        "--ttft",
        "2ms",
        "--itl",
        "1ms",
        "--output-tokens",
        "6",
        "--cut-stream-rate",
        "0.2",
        "--malformed-rate",
        "0.2",
    ]);
    for shape in ["responses", "messages", "tool-calls", "vision"] {
        mock.reset().await;
        let base = mock.base();
        let mut args = vec![
            "run",
            shape,
            "--target",
            &base,
            "--vus",
            "4",
            "--iterations",
            "100",
            "--no-preflight",
        ];
        if shape == "vision" {
            args.extend(["--image-size", "32x32"]);
        }
        let (_, r) = run_ok(&args).await;
        let st = mock.stats().await;
        let count = |class: &str| -> u64 {
            r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["class"] == class)
                .map(|e| e["count"].as_u64().unwrap())
                .sum()
        };
        let fault = |f: &str| st["by_fault"][f].as_u64().unwrap_or(0);
        assert!(fault("malformed") > 0 && fault("cut") > 0, "{shape}: {st}");
        assert_eq!(
            count("bad_body"),
            fault("malformed"),
            "{shape}: {}",
            r["errors"]
        );
        assert_eq!(
            count("stream_cut"),
            fault("cut"),
            "{shape}: {}",
            r["errors"]
        );
        let s = &r["summary"];
        assert_eq!(f(&s["ok"]) + f(&s["errors"]), 100.0, "{shape}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_request_timeout_is_classified_as_timeout() {
    let mock = MockProc::start(&["--ttft", "2s", "--itl", "1ms"]);
    for engine in ["h1", "reqwest"] {
        let (_, r) = run_ok(&[
            "run",
            "--target",
            &mock.base(),
            "--iterations",
            "3",
            "--timeout",
            "200ms",
            "--no-preflight",
            "--http-engine",
            engine,
        ])
        .await;
        assert_eq!(r["errors"][0]["class"], "timeout", "{engine}");
        assert_eq!(r["errors"][0]["count"], 3, "{engine}");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_or_sigterm_exit_105_after_writing_every_output() {
    let mock = MockProc::start(&["--ttft", "50ms", "--itl", "10ms", "--output-tokens", "20"]);
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let dir = tempfile::tempdir().unwrap();
        let json = temp_json(&dir, "r.json");
        let html = temp_json(&dir, "r.html");
        let csv = temp_json(&dir, "r.csv");
        let parquet = temp_json(&dir, "rows.parquet");
        let args = [
            "run",
            "--target",
            &mock.base(),
            "--vus",
            "4",
            "--duration",
            "60s",
            "--grace",
            "5s",
            "--requests-out",
            &parquet,
            "--threshold",
            "ok<1",
            "--json",
            &json,
            "--html",
            &html,
            "--csv",
            &csv,
        ];
        let (out, took) =
            crate::common::periscope_signalled(&args, std::time::Duration::from_secs(2), signal)
                .await;
        let err = stderr(&out);
        assert!(
            took.as_secs_f64() < 5.0,
            "{name}: exits within the grace period"
        );
        assert_eq!(out.status.code(), Some(105), "{name}: {err}");
        assert!(stdout(&out).contains("### Summary"), "{name}");
        assert!(
            stdout(&out).contains("**interrupted** (Ctrl-C or SIGTERM)"),
            "{name}"
        );
        // The thresholds are still judged, and said to have failed.
        assert!(err.contains("thresholds failed: ok<1"), "{name}: {err}");
        let r = read_json(&json);
        assert!(r["summary"]["ok"].as_u64().unwrap() > 10, "{name}");
        assert_eq!(r["interrupted_by_user"], true, "{name}");
        assert_eq!(r["thresholds"][0]["pass"], false, "{name}");
        assert!(f(&r["duration_s"]) < 10.0, "{name}");
        assert!(
            std::fs::read_to_string(&html).unwrap().contains("<svg"),
            "{name}"
        );
        let rows = std::fs::read_to_string(&csv).unwrap().lines().count() as u64 - 1;
        let sent = r["summary"]["requests"].as_u64().unwrap();
        assert_eq!(rows, sent, "{name}: one CSV row per request");
        // The Parquet file has its footer: read whole by the crate's reader.
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(&parquet).unwrap()).unwrap();
        assert_eq!(
            reader.metadata().file_metadata().num_rows() as u64,
            sent,
            "{name}: one Parquet row per request"
        );
        assert!(std::path::Path::new(&csv.replace(".csv", "-summary.csv")).exists());
    }
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
        // Negative numbers reach the flag's own check.
        (
            vec!["run", "--mock", "--rate", "-5"],
            "--rate must be a positive number",
        ),
        (
            vec!["run", "--mock", "--vus", "-5"],
            "invalid value '-5' for '--vus <VUS>': must not be negative",
        ),
        (
            vec!["run", "--mock", "--max-tokens", "1.5"],
            "'1.5' is not a whole number",
        ),
        (
            vec!["sweep", "--url", "http://127.0.0.1:1", "--rate-list", "-5"],
            "--rate-list: every rate must be more than 0",
        ),
        (vec!["mock", "--error-rate", "-0.5"], "--error-rate"),
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
fn an_output_that_cannot_be_written_at_the_end_exits_3_and_the_rest_is_written() {
    // /dev/full opens (so the run starts) and refuses every byte at the end.
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let out = periscope(&[
        "run",
        "--mock",
        "--vus",
        "2",
        "--iterations",
        "6",
        "--json",
        "/dev/full",
        "--html",
        html.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.trim().lines().any(|l| l.starts_with("error: --json: ")
            && l.contains("/dev/full")
            && l.contains("No space left")),
        "one line naming the flag, the path and why: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // What was measured is not lost: the summary and the other output.
    assert!(stdout(&out).contains("### Summary"), "{}", stdout(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<html"), "the HTML report is written whole");
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
    let (_, r) = run_ok(&[
        "run",
        "text-completions",
        "--target",
        &mock.base(),
        "--iterations",
        "10",
    ])
    .await;
    assert_eq!(r["summary"]["ok"], 10);
    assert_eq!(r["plan"]["workload"], "text-completions");
    assert!(latency(&r, "ttft")["count"].as_u64().unwrap() == 10);
    assert_eq!(
        mock.stats().await["by_endpoint"]["text"],
        11,
        "10 + the preflight"
    );
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &mock.base(),
        "--no-stream",
        "--iterations",
        "10",
    ])
    .await;
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
