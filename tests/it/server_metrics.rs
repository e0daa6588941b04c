//! `--server-metrics`: the server's Prometheus metrics scraped beside the
//! load, checked against what the mock recorded it served (its `/stats`),
//! the client's own figures, and a target that is down or sends garbage.

use crate::common::*;
use serde_json::Value;

fn target(r: &Value) -> &Value {
    &r["server"]["targets"][0]
}

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (± {tol})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_figures_for_the_run_equal_what_the_mock_served() {
    // 12 VUs on 4 slots: 8 always wait; each request ≈ 100 ms + 19 × 5 ms.
    let mock = MockProc::start(&[
        "--max-concurrency",
        "4",
        "--ttft",
        "100ms",
        "--itl",
        "5ms",
        "--output-tokens",
        "20",
    ]);
    // Traffic before the run: the server's totals are not the run's figures.
    fire(
        mock.url("/v1/chat/completions"),
        chat("before", true, 20),
        5,
        5,
    )
    .await;
    let before = mock.stats().await;
    let (cpu_before, _) = mock.usage();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("server.csv");
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "12",
        "--iterations",
        "48",
        "--server-metrics",
        "--scrape-interval",
        "150ms",
        "--server-csv",
        csv.to_str().unwrap(),
        "--json",
        &json,
        "--threshold",
        "server.waiting.max>=8",
        "--threshold",
        "server.kv_cache_usage.max<0.9",
    ]))
    .await;
    // kv_cache_usage (the share of slots in use) was 100%: that one fails.
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    let r = read_json(&json);
    let st = mock.stats().await;
    let (cpu_after, rss) = mock.usage();
    let delta = |k: &str| f(&st[k]) - f(&before[k]);
    let t = target(&r);
    assert_eq!(t["server"], "vllm");
    assert_eq!(t["failed_scrapes"], 0);
    let fig = &t["figures"];
    let count = |k: &str| f(&fig["counts"][k]);
    assert_eq!(count("requests"), 48.0);
    assert_eq!(count("requests"), delta("requests"));
    assert_eq!(count("generation_tokens"), delta("output_tokens"));
    assert_eq!(
        count("generation_tokens"),
        f(&r["summary"]["output_tokens"])
    );
    assert_eq!(count("prompt_tokens"), delta("prompt_tokens"));
    // The queue: 4 running, 8 waiting, at every scrape of the load's middle.
    assert_eq!(f(&fig["gauges"]["waiting"]["max"]), 8.0);
    assert_eq!(f(&fig["gauges"]["running"]["max"]), 4.0);
    // The server's latencies: its means are exact sums over counts.
    let lat = |k: &str| f(&fig["latency"][k]["mean"]);
    assert_eq!(f(&fig["latency"]["ttft"]["count"]), 48.0);
    let client_ttft = f(&r["latency"]["ttft"]["mean"]);
    // What the client waited beyond the server's own prefill is the queue.
    close(
        client_ttft - lat("prefill_time"),
        lat("queue_time"),
        2.0,
        "queue vs client excess",
    );
    close(lat("prefill_time"), 100.0, 3.0, "prefill");
    let gap = f(&fig["ttft_gap_mean_ms"]);
    assert!((0.0..2.0).contains(&gap), "client − server ttft {gap} ms");
    // The mock's stamps (HDR, µs) time the first token from admission to a
    // slot, as its prefill histogram does.
    close(
        lat("prefill_time"),
        f(&st["ttft_us"]["mean"]) / 1000.0,
        1.0,
        "prefill vs the mock's stamps",
    );
    // The process's own figures, as /proc tells them: CPU over the run
    // (/proc counts in 10 ms ticks) and resident memory.
    let cpu = count("cpu_seconds");
    assert!(
        cpu > 0.0 && cpu <= cpu_after - cpu_before + 0.03,
        "{cpu} s in the window, {} s in all",
        cpu_after - cpu_before
    );
    assert!(f(&fig["cpu_cores"]) > 0.0);
    let mem = f(&fig["gauges"]["memory_bytes"]["max"]);
    close(mem, rss, 0.25 * rss, "resident bytes");
    let verdicts = r["thresholds"].as_array().unwrap();
    assert_eq!(verdicts[0]["pass"], true, "{verdicts:?}");
    assert_eq!(verdicts[1]["pass"], false, "{verdicts:?}");
    assert_eq!(f(&verdicts[1]["actual"]), 1.0);
    // Per-scrape series: the queue is seen during the run.
    let series = t["series"].as_array().unwrap();
    assert!(series.len() >= 5, "{series:?}");
    assert!(series.iter().any(|row| row["gauges"]["waiting"] == 8.0));
    // The CSV: one row per sample per series per scrape.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let mut per_series = std::collections::BTreeMap::<(String, String), u64>::new();
    for row in rdr.records() {
        let row = row.unwrap();
        assert_eq!(&row[1], "scrape");
        *per_series
            .entry((row[3].to_string(), row[4].to_string()))
            .or_default() += 1;
    }
    let scrapes = t["scrapes"].as_u64().unwrap();
    assert!(per_series.len() > 50, "{per_series:?}");
    assert!(per_series.values().all(|n| *n == scrapes), "{per_series:?}");
    assert!(per_series.contains_key(&(
        "vllm:time_to_first_token_seconds_bucket".to_string(),
        "{le=\"0.1\",model_name=\"periscope-mock\"}".to_string()
    )));
    let md = stdout(&out);
    assert!(md.contains("### Server metrics (vllm at "), "{md}");
    assert!(md.contains("| waiting "), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_caching_run_gives_the_hit_rate_the_mock_served() {
    let mock = MockProc::start(&["--prefix-cache", "--ttft", "5ms", "--itl", "1ms"]);
    let (_, r) = run_ok(&[
        "run",
        "prefix-caching",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "2",
        "--iterations",
        "24",
        "--turns",
        "6",
        "--max-tokens",
        "16",
        "--server-metrics=",
        "--threshold",
        "server.prefix_cache_hit_rate>0.5",
    ])
    .await;
    let st = mock.stats().await;
    let fig = &target(&r)["figures"];
    let (cached, prompt) = (f(&st["cached_tokens"]), f(&st["prompt_tokens"]));
    assert!(cached > 0.0, "{st}");
    assert_eq!(f(&fig["counts"]["prefix_cache_hits"]), cached);
    assert_eq!(f(&fig["counts"]["prefix_cache_queries"]), prompt);
    assert_eq!(f(&fig["prefix_cache_hit_rate"]), cached / prompt);
    // The client's view of the same cache, from the usage it was sent.
    assert_eq!(f(&r["server_timings"]["cached_tokens"]), cached);
    assert_eq!(r["thresholds"][0]["pass"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_or_garbage_metrics_target_warns_once_and_changes_nothing() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "2ms", "--output-tokens", "8"]);
    let down = format!("http://127.0.0.1:{}/metrics", free_port());
    // JSON, not the Prometheus text format.
    let garbage = mock.url("/v1/models");
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "2",
        "--duration",
        "2s",
        "--server-metrics",
        &down,
        "--server-metrics",
        &garbage,
        "--scrape-interval",
        "200ms",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for url in [&down, &garbage] {
        let warned = err
            .lines()
            .filter(|l| l.starts_with(&format!("warning: server metrics at {url}:")))
            .count();
        assert_eq!(warned, 1, "{err}");
    }
    assert!(err.contains("not the Prometheus text format"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let r = read_json(&json);
    let targets = r["server"]["targets"].as_array().unwrap();
    for t in targets {
        assert_eq!(t["scrapes"], 0, "{t}");
        assert!(t["failed_scrapes"].as_u64().unwrap() >= 8, "{t}");
    }
    let warnings = r["warnings"].to_string();
    assert!(
        warnings.contains(&format!("server metrics at {down}")),
        "{warnings}"
    );
    // The client's figures are the mock's, as without scraping.
    let st = mock.stats().await;
    assert_eq!(r["summary"]["errors"], 0);
    assert_eq!(
        r["summary"]["ok"].as_u64(),
        st["by_endpoint"]["chat"].as_u64(),
        "{st}"
    );
    close(
        f(&r["latency"]["ttft"]["p50"]),
        f(&st["ttft_us"]["p50"]) / 1000.0,
        2.0,
        "ttft p50 vs the mock's stamps",
    );
}

#[test]
fn server_flags_that_cannot_work_are_refused_with_what_to_do() {
    for (args, says) in [
        (&["--promql", "up"][..], "--promql needs --prometheus URL"),
        (
            &["--prometheus", "http://127.0.0.1:9090"][..],
            "--prometheus needs a query",
        ),
        (&["--server-metrics", "chat"][..], "is not an http(s) URL"),
        (&["--server-csv", "x.csv"][..], "need --server-metrics"),
        (
            &["--threshold", "server.waiting.max<1"][..],
            "add --server-metrics",
        ),
        (
            &["--server-metrics=", "--threshold", "server.waiting<1"][..],
            "say mean, min or max",
        ),
        (
            &["--server-metrics=", "--threshold", "server.nope<1"][..],
            "unknown server figure 'nope'",
        ),
    ] {
        let mut all = vec!["run", "--mock", "--iterations", "1"];
        all.extend_from_slice(args);
        let out = periscope(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_in_llama_cpps_names_is_read_as_llama_cpp() {
    let mock = MockProc::start(&["--metrics-llamacpp", "--prefix-cache", "--ttft", "5ms"]);
    let (_, r) = run_ok(&[
        "run",
        "prefix-caching",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "2",
        "--iterations",
        "12",
        "--max-tokens",
        "8",
        "--server-metrics=",
    ])
    .await;
    let st = mock.stats().await;
    let t = target(&r);
    assert_eq!(t["server"], "llama.cpp", "{t}");
    let count = |k: &str| f(&t["figures"]["counts"][k]);
    // Prompt tokens: processed plus cached, as the usage counts them.
    assert_eq!(count("prompt_tokens"), f(&st["prompt_tokens"]));
    assert_eq!(count("prompt_tokens"), f(&r["summary"]["input_tokens"]));
    assert_eq!(count("prefix_cache_hits"), f(&st["cached_tokens"]));
    assert_eq!(count("generation_tokens"), f(&st["output_tokens"]));
    // llama.cpp has no request counter; its speeds come from its seconds.
    assert!(t["figures"]["counts"].get("requests").is_none(), "{t}");
    assert!(f(&t["figures"]["decode_rate"]) > 0.0, "{t}");
}
