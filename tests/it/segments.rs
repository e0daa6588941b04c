//! One plan as n processes (`--segment i/n`): the same run as one process,
//! merged exactly, judged once; the open model's union is the requested
//! arrival process by the mock's arrival stamps.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use crate::common::*;
use serde_json::Value;

/// An RFC 3339 time `lead` from now, in whole seconds: every segment's start.
fn start_in(lead: Duration) -> String {
    let at = SystemTime::now() + lead;
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + 1;
    humantime::format_rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// Run `n` segments of `plan` at once, each writing `dir/seg-i.json`.
async fn segments(dir: &tempfile::TempDir, n: u32, run_id: &str, plan: &[String]) -> Vec<Value> {
    let start = start_in(Duration::from_secs(4));
    let children: Vec<_> = (1..=n)
        .map(|i| {
            Command::new(BIN)
                .arg("run")
                .args(plan)
                .args(["--segment", &format!("{i}/{n}"), "--run-id", run_id])
                .args(["--start-at", &start, "--progress-every", "100"])
                .arg("--json")
                .arg(dir.path().join(format!("seg-{i}.json")))
                .env_remove("OPENAI_BASE_URL")
                .env_remove("GITHUB_STEP_SUMMARY")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a segment")
        })
        .collect();
    let outs: Vec<Output> = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect()
    })
    .await
    .unwrap();
    for (i, o) in outs.iter().enumerate() {
        // A segment's exit is not the verdict: that is the merge's.
        assert!(o.status.success(), "segment {}: {}", i + 1, stderr(o));
        assert!(
            stderr(o).contains("waiting"),
            "segment {} did not wait for --start-at: {}",
            i + 1,
            stderr(o)
        );
    }
    (1..=n)
        .map(|i| read_json(&dir.path().join(format!("seg-{i}.json")).to_string_lossy()))
        .collect()
}

fn merge(dir: &tempfile::TempDir, n: u32, extra: &[&str]) -> (Output, String) {
    let merged = temp_json(dir, "merged.json");
    let mut args = vec!["merge".to_string()];
    args.extend((1..=n).map(|i| {
        dir.path()
            .join(format!("seg-{i}.json"))
            .display()
            .to_string()
    }));
    args.extend(["--output".to_string(), merged.clone()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    (periscope(&refs), merged)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The exact quantile of the union of the segments' requests.
fn union_quantile(parts: &[Value], metric: &str, q: f64) -> f64 {
    let mut all: Vec<f64> = parts
        .iter()
        .flat_map(|r| r["requests"].as_array().unwrap().iter())
        .filter(|s| s["ok"] == true)
        .filter_map(|s| s[metric].as_f64())
        .collect();
    all.sort_by(f64::total_cmp);
    ranks(&all, q).0
}

/// The merge is exact: its totals are the parts' sums, and its percentiles
/// those of the union of the parts' requests, within histogram precision.
fn assert_exact_merge(parts: &[Value], merged: &Value) {
    for key in ["requests", "ok", "errors", "output_tokens"] {
        let sum: u64 = parts.iter().map(|r| u(&r["summary"][key])).sum();
        assert_eq!(u(&merged["summary"][key]), sum, "{key}");
    }
    for (metric, key) in [("ttft", "ttft_ms"), ("e2e", "e2e_ms")] {
        for (stat, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let exact = union_quantile(parts, key, q);
            let ours = f(&merged["latency"][metric][stat]);
            assert!(
                ours >= exact - 0.002 && ours <= exact * 1.001 + 0.002,
                "{metric}.{stat}: merged {ours} vs union {exact}"
            );
        }
    }
}

/// Each threshold and whether it passed.
fn verdicts(r: &Value) -> Vec<(String, bool)> {
    r["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["threshold"].as_str().unwrap().to_string(),
                t["pass"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn four_segments_are_the_same_run_as_one_process_merged_and_judged_once() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "2ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    // The same plan as 4 segments and as one process. An arrival rate fixes
    // the number of requests by the plan, whatever else runs on this machine
    // (a closed model's count follows its latency, which a loaded machine
    // changes from one run to the next).
    let plan = s(&[
        "--target",
        &mock.base(),
        "--rate",
        "150",
        "--duration",
        "4s",
        "--no-preflight",
        "--keep-requests",
        "--threshold",
        "ttft.p95<2s",
        "--threshold",
        "e2e.p50<1ms",
        "--server-metrics",
    ]);
    let parts = segments(&dir, 4, "segrun1", &plan).await;
    for (i, r) in parts.iter().enumerate() {
        assert_eq!(r["run_id"], "segrun1");
        assert_eq!(r["plan"]["segment"]["index"], i + 1);
        assert_eq!(r["plan"]["segment"]["count"], 4);
    }
    let starts: Vec<&str> = parts
        .iter()
        .map(|r| r["started_at"].as_str().unwrap())
        .collect();
    assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
    let (out, merged_path) = merge(&dir, 4, &[]);
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    assert!(stderr(&out).contains("e2e.p50<1ms"), "{}", stderr(&out));
    assert!(stdout(&out).contains("merged from 4 results"));
    let merged = read_json(&merged_path);
    assert!(merged["plan"].get("segment").is_none());
    assert_eq!(merged["run_id"], "segrun1");
    assert_eq!(merged["plan"]["load"], parts[0]["plan"]["load"]);
    assert_exact_merge(&parts, &merged);
    // The four scraped one server: the merge joins their samples, and its
    // count of requests over the union of their windows is every one.
    let targets = merged["server"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(
        f(&targets[0]["figures"]["counts"]["requests"]),
        f(&merged["summary"]["ok"])
    );
    let scrapes: u64 = parts
        .iter()
        .map(|r| u(&r["server"]["targets"][0]["scrapes"]))
        .sum();
    assert_eq!(u(&targets[0]["scrapes"]), scrapes);

    let whole_path = temp_json(&dir, "whole.json");
    let mut args = s(&["run"]);
    args.extend(plan.iter().cloned());
    args.extend(s(&["--run-id", "wholerun1", "--json", &whole_path]));
    let whole_out = periscope_async(args).await;
    assert_eq!(whole_out.status.code(), Some(99), "{}", stderr(&whole_out));
    let whole = read_json(&whole_path);
    // Total requests within 1%, and the same verdict, threshold by threshold.
    let (m, w) = (
        u(&merged["summary"]["requests"]) as f64,
        u(&whole["summary"]["requests"]) as f64,
    );
    assert!((m - w).abs() <= 0.01 * w, "merged {m} vs one process {w}");
    eprintln!("requests: 4 segments merged {m}, one process {w}");
    assert_eq!(verdicts(&merged), verdicts(&whole));
    assert_eq!(
        verdicts(&merged),
        [
            ("ttft.p95<2s".to_string(), true),
            ("e2e.p50<1ms".to_string(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_model_segments_add_up_to_the_plans_vus_live_and_merged() {
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "2ms", "--output-tokens", "8"]);
    let influx = Server::influxdb();
    let dir = tempfile::tempdir().unwrap();
    // A ramp and a hold: VUs split by stack position add up at every moment.
    let mut plan = s(&[
        "--target",
        &mock.base(),
        "--stages",
        "1s:8,3s:8",
        "--no-preflight",
        "--keep-requests",
    ]);
    if let Some(i) = &influx {
        plan.extend(s(&["--out", &format!("influxdb={}/periscope", i.base)]));
    }
    let parts = segments(&dir, 4, "segrun2", &plan).await;
    for (i, r) in parts.iter().enumerate() {
        // Each segment drives 2 of the 8 VUs.
        let peak = r["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| u(&w["active_vus"]))
            .max()
            .unwrap();
        assert_eq!(peak, 2, "segment {}", i + 1);
    }
    let (out, merged_path) = merge(&dir, 4, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let merged = read_json(&merged_path);
    assert_exact_merge(&parts, &merged);
    assert_eq!(merged["summary"]["errors"], 0);
    // Every second of the hold, the segments' VUs add up to the plan's 8.
    for wdw in merged["series"].as_array().unwrap() {
        let t = u(&wdw["t"]);
        if (1..=2).contains(&t) {
            assert_eq!(u(&wdw["active_vus"]), 8, "second {t}: {wdw}");
        }
    }

    // The dashboards add the segments up by run id, and drill down by segment.
    if let Some(i) = &influx {
        let d = dashboard("periscope-load-test.json");
        let var = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "segment")
            .unwrap();
        let q = var["query"].as_str().unwrap().replace("$run_id", "segrun2");
        let tags: Vec<String> = values_or_tags(&influxql(&i.base, &q).await)
            .iter()
            .map(|v| v[1].as_str().unwrap().to_string())
            .collect();
        assert_eq!(tags, ["1", "2", "3", "4"]);
        let panel = |title: &str| {
            d["panels"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["title"] == title)
                .unwrap()["targets"][0]["query"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let requests = |segment: &str| {
            panel("Requests")
                .replace("$run_id", "segrun2")
                .replace("$scenario", ".*")
                .replace("$endpoint", ".*")
                .replace("$segment", segment)
                .replace("$timeFilter", "time > now() - 1h")
        };
        let all: f64 = values(&influxql(&i.base, &requests(".*")).await)
            .iter()
            .sum();
        assert_eq!(all as u64, u(&merged["summary"]["requests"]));
        let second: f64 = values(&influxql(&i.base, &requests("2")).await)
            .iter()
            .sum();
        assert_eq!(second as u64, u(&parts[1]["summary"]["requests"]));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn open_model_segments_make_the_requested_arrival_process_without_bursts() {
    let mock = MockProc::start(&["--ttft", "2ms", "--itl", "1ms", "--output-tokens", "2"]);
    let dir = tempfile::tempdir().unwrap();

    // Constant arrivals at 400/s split over 4 processes.
    let plan = s(&[
        "--target",
        &mock.base(),
        "--rate",
        "400",
        "--duration",
        "4s",
        "--no-preflight",
        "--no-stream",
    ]);
    let parts = segments(&dir, 4, "openrun1", &plan).await;
    let stamps = mock.arrivals().await;
    let sent: u64 = parts.iter().map(|r| u(&r["summary"]["requests"])).sum();
    assert_eq!(stamps.len() as u64, sent);
    assert!(
        sent.abs_diff(1600) <= 16,
        "{sent} arrivals for 1600 planned"
    );
    let span_s = (stamps[stamps.len() - 1] - stamps[0]) as f64 / 1e6;
    let rate = (stamps.len() - 1) as f64 / span_s;
    assert!((rate - 400.0).abs() <= 8.0, "union rate {rate:.1}/s");
    // Interleaved, not stacked: four processes each at 100/s from the same
    // instant would land in fours (gaps of 0 then 10 ms); the union's gaps
    // are 2.5 ms.
    let mut gaps: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    let close = gaps.iter().filter(|g| **g < 0.5).count() as f64 / gaps.len() as f64;
    assert!((median - 2.5).abs() <= 0.5, "median gap {median} ms");
    assert!(
        close < 0.15,
        "{:.0}% of the gaps under 0.5 ms",
        close * 100.0
    );
    // No burst anywhere, the start included: no 100 ms holds more than
    // 1.5 × its 40 arrivals (a process the machine woke late catches up on
    // its schedule, which is what the open model must do).
    let mut densest = 0;
    let mut lo = 0;
    for (hi, t) in stamps.iter().enumerate() {
        while *t - stamps[lo] >= 100_000 {
            lo += 1;
        }
        densest = densest.max(hi + 1 - lo);
    }
    assert!(densest <= 60, "{densest} arrivals within 100 ms");
    eprintln!(
        "constant 400/s: {sent} arrivals, union rate {rate:.1}/s, median gap {median:.2} ms, {:.1}% of gaps under 0.5 ms, at most {densest} in 100 ms",
        close * 100.0
    );

    // Poisson arrivals: the gaps come from the run id, so the segments'
    // union is the very process one process draws with the same id.
    let poisson = s(&[
        "--target",
        &mock.base(),
        "--rate",
        "300",
        "--arrival",
        "poisson",
        "--duration",
        "3s",
        "--no-preflight",
        "--no-stream",
    ]);
    let parts = segments(&dir, 4, "poisson1", &poisson).await;
    let union = mock.arrivals().await;
    let whole_path = temp_json(&dir, "whole.json");
    let mut args = s(&["run"]);
    args.extend(poisson.iter().cloned());
    args.extend(s(&[
        "--run-id",
        "poisson1",
        "--start-at",
        &start_in(Duration::from_secs(2)),
        "--json",
        &whole_path,
    ]));
    let out = periscope_async(args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let one = mock.arrivals().await;
    let sent: u64 = parts.iter().map(|r| u(&r["summary"]["requests"])).sum();
    assert_eq!(sent, u(&read_json(&whole_path)["summary"]["requests"]));
    assert_eq!(union.len(), one.len());
    // The two runs' clocks differ by an offset (when each woke at its
    // start); past that, arrival k of the union is arrival k of the one process.
    let offsets: Vec<f64> = union
        .iter()
        .zip(&one)
        .map(|(a, b)| (*a as f64 - *b as f64) / 1000.0)
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort_by(f64::total_cmp);
    let offset = sorted[sorted.len() / 2];
    let mut diffs: Vec<f64> = offsets.iter().map(|d| (d - offset).abs()).collect();
    diffs.sort_by(f64::total_cmp);
    let p50 = diffs[diffs.len() / 2];
    let p90 = diffs[diffs.len() * 9 / 10];
    assert!(
        p50 < 1.0 && p90 < 3.0,
        "arrival time differences p50 {p50} ms, p90 {p90} ms"
    );
    eprintln!(
        "poisson 300/s: {} arrivals both ways, union vs one process p50 {p50:.2} ms, p90 {p90:.2} ms",
        one.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn merge_refuses_what_is_not_one_runs_segments_and_waits_for_late_ones() {
    let mock = MockProc::start(&["--ttft", "1ms", "--output-tokens", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let plan = s(&[
        "--target",
        &mock.base(),
        "--iterations",
        "10",
        "--vus",
        "2",
        "--no-preflight",
    ]);
    let parts = segments(&dir, 2, "mergerun", &plan).await;
    // The iterations are shared out: 5 each.
    for r in &parts {
        assert_eq!(u(&r["summary"]["requests"]), 5);
    }
    let p = |name: &str| dir.path().join(name).display().to_string();
    let out_path = p("m.json");
    let run = |inputs: &[String], extra: &[&str]| {
        let mut args = vec!["merge".to_string()];
        args.extend(inputs.iter().cloned());
        args.extend(["--output".to_string(), out_path.clone()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        periscope(&refs)
    };
    // The same segment twice.
    let o = run(&[p("seg-1.json"), p("seg-1.json")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("segment 1/2 was given twice"),
        "{}",
        stderr(&o)
    );
    // A segment with a whole run.
    let mut args = vec!["run"];
    args.extend(plan.iter().map(String::as_str));
    let (_, whole) = run_ok(&args).await;
    std::fs::write(p("whole.json"), whole.to_string()).unwrap();
    let o = run(&[p("seg-1.json"), p("whole.json")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("whole run"), "{}", stderr(&o));
    // Another run's segment.
    let mut other = parts[1].clone();
    other["run_id"] = "another".into();
    std::fs::write(p("other.json"), other.to_string()).unwrap();
    let o = run(&[p("seg-1.json"), p("other.json")], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("belongs to run 'another'"),
        "{}",
        stderr(&o)
    );
    // A missing segment: merged, with a warning.
    let o = run(&[p("seg-1.json")], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2/2 of run 'mergerun' missing"),
        "{}",
        stderr(&o)
    );

    // --wait: a segment still being written (here: not there yet) is waited for.
    let late = p("late.json");
    let inputs = [p("seg-1.json"), late.clone()];
    let waiting = {
        let mut args = vec!["merge".to_string()];
        args.extend(inputs.iter().cloned());
        args.extend(s(&["--output", &out_path, "--wait", "20s"]));
        Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    std::fs::write(&late, "").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    std::fs::copy(p("seg-2.json"), &late).unwrap();
    let o = tokio::task::spawn_blocking(move || waiting.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(u(&read_json(&out_path)["summary"]["requests"]), 10);
    // ...within its limit.
    let o = run(&[p("seg-1.json"), p("never.json")], &["--wait", "1s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("still not there"), "{}", stderr(&o));

    // A start time already past is refused, before anything is sent.
    let o = periscope(&[
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "2",
        "--duration",
        "1s",
        "--segment",
        "1/2",
        "--run-id",
        "late",
        "--start-at",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give a later time"), "{}", stderr(&o));
    // Kubernetes' index: JOB_COMPLETION_INDEX from 0, with --segments.
    let indexed = |index: &str| {
        Command::new(BIN)
            .args(["run", "--mock", "--vus", "4", "--segments", "4"])
            .args(["--run-id", "k", "--dry-run"])
            .env("JOB_COMPLETION_INDEX", index)
            .output()
            .unwrap()
    };
    let o = indexed("3");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("segment 4/4"), "{}", stdout(&o));
    let o = indexed("4");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("from 0 to 3"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn byte_paced_segments_share_the_byte_rate_by_the_receivers_stamps() {
    // Over OTLP/HTTP, and over gRPC (the endpoint its origin).
    for (protocol, path) in [("http/protobuf", "/v1/traces"), ("grpc", "")] {
        byte_paced_segments(protocol, path).await;
    }
}

async fn byte_paced_segments(protocol: &str, path: &str) {
    let mock = MockProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let plan = s(&[
        "otlp-traces",
        "--otlp-protocol",
        protocol,
        "--endpoint",
        &mock.url(path),
        "--mb-per-s",
        "1",
        "--duration",
        "10s",
        "--no-preflight",
        // Small traces, many exports: one export more or less (each
        // segment's last) is a small part of the bytes.
        "--mix",
        "simple_query",
    ]);
    let parts = segments(
        &dir,
        2,
        &format!("bytes-{}", protocol.replace('/', "-")),
        &plan,
    )
    .await;
    let o = &mock.stats().await["otlp"];
    // From the first arrival to the last, all bytes but the last export's
    // were due at the rate: 1 MB/s for the two segments together.
    let bytes = o["payload_bytes"].as_f64().unwrap() - o["last_payload_bytes"].as_f64().unwrap();
    let secs = o["arrival_span_us"].as_f64().unwrap() / 1e6;
    let rate = bytes / secs / 1e6;
    assert!(
        (rate - 1.0).abs() <= 0.05,
        "{protocol}: {rate:.3} MB/s over {secs:.1}s"
    );
    assert!(secs > 8.0, "{secs}");
    // Each segment paced its half, and sent what the receiver got.
    let sent: Vec<f64> = parts
        .iter()
        .map(|r| r["otlp"]["payload_bytes"].as_f64().unwrap())
        .collect();
    assert_eq!(
        sent.iter().sum::<f64>(),
        o["payload_bytes"].as_f64().unwrap()
    );
    for b in &sent {
        let share = b / (sent[0] + sent[1]);
        assert!((share - 0.5).abs() <= 0.05, "{sent:?}");
    }
    eprintln!("{protocol} --mb-per-s 1 in 2 segments: {rate:.3} MB/s by the receiver over {secs:.1}s, split {sent:?}");
}
