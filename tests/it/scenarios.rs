//! Each built-in scenario, compressed to seconds against the mock, reports
//! the figure it exists for; scenario files are read strictly; `--dry-run`
//! sends nothing; the README's CI smoke command passes against the mock.

use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// These runs measure latency against the mock: one at a time, so one
/// test's load does not show up in another's figures.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn phase<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["scenario"]["phases"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["phase"] == name))
        .unwrap_or_else(|| panic!("no phase {name}: {}", r["scenario"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_finds_the_capacity_of_a_rate_limited_mock_within_one_step() {
    let _serial = SERIAL.lock().await;
    // The mock serves 100 req/s and answers 429 beyond. A VU sends one
    // request per service time, so the true capacity is 100 × e2e VUs.
    let mock = MockProc::start(&[
        "--rate-limit",
        "100",
        "--ttft",
        "50ms",
        "--itl",
        "0ms",
        "--output-tokens",
        "1",
    ]);
    let base = mock.base();
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &base,
        "--no-stream",
        "--scenario",
        "stress",
        "--max-vus",
        "10",
        "--duration",
        "10s",
        "--no-preflight",
    ])
    .await;
    let rows = r["stages"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "one row per step: {rows:?}");
    // The service time measured where nothing was refused.
    let e2e_ms = f(&rows[0]["e2e"]["mean"]);
    let truth = 100.0 * e2e_ms / 1000.0;
    let cap = f(&r["scenario"]["capacity"]["target"]);
    let failed = f(&r["scenario"]["first_failure"]["target"]);
    assert!(
        cap <= truth && failed > truth,
        "capacity {cap} VUs, first failure {failed}, truth {truth:.2}"
    );
    assert!(
        truth - cap <= 2.0,
        "within one step (2 VUs) of {truth:.2}: {cap}"
    );
    // The 429s periscope counted are the ones the mock sent.
    let stats = mock.stats().await;
    assert_eq!(
        r["summary"]["errors"].as_u64(),
        stats["by_status"]["429"].as_u64(),
        "{stats}"
    );
    let text = stdout(&out);
    assert!(text.contains("### Scenario: stress"), "{text}");
    assert!(text.contains(&format!("capacity {cap} VUs")), "{text}");
    assert!(text.contains("**fail**: error_rate<0.01"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spike_reports_the_failures_during_the_spike() {
    let _serial = SERIAL.lock().await;
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
    let base = mock.base();
    // 2 VUs (≈ 100 req/s) before and after, 20 during: beyond the limit.
    let (out, r) = run_ok(&[
        "run",
        "--target",
        &base,
        "--no-stream",
        "--scenario",
        "spike",
        "--max-vus",
        "20",
        "--duration",
        "8s",
        "--no-preflight",
    ])
    .await;
    let before = phase(&r, "before");
    let during = phase(&r, "spike");
    let after = phase(&r, "after");
    assert_eq!(before["errors"], 0, "{before}");
    assert!(during["errors"].as_u64().unwrap() > 0, "{during}");
    assert!(f(&during["error_rate"]) > 0.5, "{during}");
    let phases_errors: u64 = [before, during, after]
        .iter()
        .map(|p| p["errors"].as_u64().unwrap())
        .sum();
    let stats = mock.stats().await;
    assert_eq!(
        Some(phases_errors),
        stats["by_status"]["429"].as_u64(),
        "{stats}"
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{} failed of", during["errors"])),
        "the figure names the spike's failures: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reports_how_long_p95_took_to_come_back() {
    let _serial = SERIAL.lock().await;
    // 4 slots of 50 ms: the mock serves 80 req/s. 120 req/s for 3 s leaves a
    // backlog that 24 req/s drains in about 2 s.
    let (out, r) = run_ok(&[
        "run",
        "--mock",
        "--mock-args",
        "--max-concurrency 4 --ttft 50ms --itl 0ms --output-tokens 1",
        "--no-stream",
        "--scenario",
        "recovery",
        "--rate",
        "120",
        "--duration",
        "12s",
    ])
    .await;
    let base = f(&phase(&r, "baseline")["e2e"]["p95"]);
    let stress = f(&phase(&r, "stress")["e2e"]["p95"]);
    assert!(
        stress > 3.0 * base,
        "the high load queued: {base} → {stress}"
    );
    let rec = &r["scenario"]["recovery_s"];
    assert!(rec.is_number(), "a recovery time: {}", r["scenario"]);
    assert!((1.0..=5.0).contains(&f(rec)), "{}", r["scenario"]);
    // After the recovery, the windows are back near the baseline.
    let last = r["series"].as_array().unwrap().iter().rev().nth(1).unwrap();
    assert!(f(&last["e2e_p95"]) <= base * 1.1, "{last}");
    assert!(stdout(&out).contains("after the high load ended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_reports_p95_drift_and_memory_growth() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "soak.json");
    // SOAK_DURATION sets the length, as in the k6 suite.
    let out = Command::new(BIN)
        .args([
            "run",
            "--mock",
            "--mock-args",
            "--ttft 10ms --itl 1ms --output-tokens 8",
            "--scenario",
            "soak",
            "--vus",
            "4",
            "--json",
            &json,
        ])
        .env("SOAK_DURATION", "6s")
        .env_remove("DURATION")
        .env_remove("VUS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    assert!(
        (5.5..8.0).contains(&f(&r["duration_s"])),
        "{}",
        r["duration_s"]
    );
    let sc = &r["scenario"];
    assert_eq!(
        sc["phases"].as_array().unwrap().len(),
        2,
        "first and last tenth"
    );
    let drift = f(&sc["p95_drift_pct"]["ttft"]);
    let first = f(&phase(&r, "first tenth")["ttft"]["p95"]);
    let last = f(&phase(&r, "last tenth")["ttft"]["p95"]);
    assert!(
        (drift - (last - first) / first * 100.0).abs() < 0.01,
        "{sc}"
    );
    let mem = &sc["memory"];
    assert!(
        f(&mem["first_mib"]) > 1.0 && f(&mem["last_mib"]) > 1.0,
        "{mem}"
    );
    assert_eq!(mem["includes_mock"], true);
    let text = stdout(&out);
    assert!(
        text.contains("p95 drift from the first to the last tenth"),
        "{text}"
    );
    assert!(text.contains("generator memory"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_has_a_row_per_step_and_finds_where_throughput_stops() {
    let _serial = SERIAL.lock().await;
    // Two slots: throughput doubles from 1 to 2 VUs and no further.
    for (workload, mock) in [
        (
            "completions",
            "--max-concurrency 2 --ttft 20ms --itl 1ms --output-tokens 8",
        ),
        ("embeddings", "--max-concurrency 2 --embed-latency 20ms"),
    ] {
        let (out, r) = run_ok(&[
            "run",
            workload,
            "--mock",
            "--mock-args",
            mock,
            "--scenario",
            "benchmark",
            "--max-vus",
            "8",
            "--duration",
            "8s",
        ])
        .await;
        let targets: Vec<f64> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| f(&s["target"]))
            .collect();
        assert_eq!(targets, [1.0, 2.0, 4.0, 8.0], "{workload}");
        assert_eq!(
            f(&r["scenario"]["saturation"]["target"]),
            2.0,
            "{workload}: {}",
            r["scenario"]
        );
        assert!(stdout(&out).contains("it stops growing after 2 VUs"));
    }
}

/// The `periscope run …` line of the README's GitHub Actions job, as words.
fn readme_smoke_command() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let line = readme
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("run: periscope run "))
        .expect("the README's CI job runs `periscope run …`");
    let cmd = line.split(" | ").next().unwrap();
    // Shell words: single quotes group, as the README writes thresholds.
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in cmd.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_ci_smoke_command_passes_against_the_mock() {
    let _serial = SERIAL.lock().await;
    let words = readme_smoke_command();
    assert!(words.contains(&"smoke".to_string()), "{words:?}");
    assert!(words.iter().any(|w| w == "--threshold"), "{words:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["run".to_string()];
    args.extend(words.into_iter().map(|w| {
        // The job writes its result next to it; here, to a temporary folder.
        if w.ends_with(".json") || w.ends_with(".html") {
            temp_json(&dir, &w)
        } else {
            w
        }
    }));
    args.push("--mock".to_string());
    let out = periscope_async(args.clone()).await;
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("### Scenario: smoke"), "{text}");
    assert!(text.contains("5 requests, 0 errors: all"), "{text}");
    assert!(text.contains("### Thresholds"), "{text}");
    assert!(
        std::fs::read_to_string(dir.path().join("smoke.html")).is_ok_and(|h| h.contains("<svg")),
        "the job's HTML report"
    );
    // The same command fails the job when the service fails.
    args.extend([
        "--mock-args".into(),
        "--error-rate 1".into(),
        "--no-preflight".into(),
    ]);
    let out = periscope_async(args).await;
    assert_eq!(out.status.code(), Some(99), "{}", stderr(&out));
    assert!(stderr(&out).contains("thresholds failed"));
}

#[test]
fn scenario_file_thresholds_exit_99_when_violated_and_0_when_met() {
    let dir = tempfile::tempdir().unwrap();
    for (bound, code) in [("1ms", 99), ("5s", 0)] {
        let path = dir.path().join(format!("t-{bound}.yaml"));
        std::fs::write(
            &path,
            format!(
                "workload: completions\nvus: 2\niterations: 6\nthresholds:\n  - 'ttft.p95<{bound}'\n  - error_rate<0.01\n"
            ),
        )
        .unwrap();
        let out = periscope(&[
            "run",
            path.to_str().unwrap(),
            "--mock",
            "--mock-args",
            "--ttft 20ms --itl 1ms",
        ]);
        assert_eq!(out.status.code(), Some(code), "{bound}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("| `ttft.p95<"), "{text}");
    }
}

#[test]
fn bad_scenario_files_name_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown.yaml",
            "vus: 2\nduraton: 10s\n",
            ":2:1: unknown field `duraton`",
        ),
        (
            "duration.yaml",
            "vus: 2\nstages:\n  - { duration: 10s, target: 2 }\n  - { duration: ten, target: 4 }\n",
            ":4:17: stages[1].duration: 'ten' is not a duration",
        ),
        (
            "negative.yaml",
            "workload: completions\nvus: -4\n",
            ":2:6: vus: '-4' is not a whole number",
        ),
        (
            "threshold.yaml",
            "thresholds:\n  - 'ttft.p95 800'\n",
            ":2:5: thresholds[0]:",
        ),
        (
            "stage_endpoint.yaml",
            "workload: http\nrate: 5\nstages:\n  - { duration: 2s, target: 5, endpoints: ['/health'] }\n",
            ":4:44: stages[0].endpoints[0]: '/health' is not METHOD:PATH",
        ),
        (
            "stage_endpoint_chat.yaml",
            "workload: completions\nvus: 2\nstages:\n  - { duration: 2s, target: 2, endpoints: ['GET:/health'] }\n",
            ": a stage's endpoints apply to the http workload",
        ),
    ];
    for (name, yaml, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        let file = path.to_str().unwrap();
        let out = periscope(&["run", file, "--mock"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("error: {file}{want}")),
            "{name}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    let out = periscope(&["run", "--mock", "--scenario", "/nonexistent/x.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read the scenario file /nonexistent/x.yaml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_resolved_plan_and_sends_nothing() {
    let _serial = SERIAL.lock().await;
    let mock = MockProc::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.yaml");
    std::fs::write(
        &path,
        format!(
            "target: {}\nworkload: completions\nmax_vus: 6\nsteps:\n  levels: [50%, 100%]\n  hold: 1m\nthresholds: ['ttft.p95<800ms']\ntags: {{env: ci}}\n",
            mock.base()
        ),
    )
    .unwrap();
    let out = periscope_async(s(&["run", path.to_str().unwrap(), "--dry-run"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("planned load: closed model: VUs 3 for 1m, 6 for 1m"),
        "{text}"
    );
    assert!(text.contains("\"ttft.p95<800ms\""), "{text}");
    assert!(text.contains("\"env\": \"ci\""), "{text}");
    assert!(text.contains("nothing was sent"), "{text}");
    // The built-in scenarios too: not even the preflight request.
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--scenario",
        "stress",
        "--dry-run",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mock.stats().await["requests"], 0, "the mock saw no request");
}

#[test]
fn scenarios_lists_every_builtin() {
    let out = periscope(&["scenarios"]);
    let text = stdout(&out);
    for name in [
        "smoke",
        "load",
        "stress",
        "spike",
        "soak",
        "recovery",
        "benchmark",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(name)),
            "{name}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_drives_the_prompts_cycling_the_selected_cases() {
    let _serial = SERIAL.lock().await;
    // The mock's guardrail refuses prompts matching its block pattern: the
    // refusals it counts tell which prompts it received.
    let block = regex::Regex::new(periscope::mock::DEFAULT_BLOCK_PATTERN).unwrap();
    for (label, sub) in [
        ("malicious", "system_override,role_injection"),
        ("benign", ""),
    ] {
        let sel = periscope::dataset::Selection {
            suite: Some("core".into()),
            label: Some(if label == "benign" {
                periscope::dataset::Label::Benign
            } else {
                periscope::dataset::Label::Malicious
            }),
            subcategory_contains: (!sub.is_empty()).then(|| sub.to_string()),
            ..Default::default()
        };
        let cases = sel.load().unwrap();
        let n = cases.len() * 2;
        let expected = cases.iter().filter(|c| block.is_match(&c.text)).count() * 2;
        let mock = MockProc::start(&["--ttft", "1ms", "--itl", "0ms", "--output-tokens", "4"]);
        let mut args = s(&[
            "run",
            "--target",
            &mock.base(),
            "--dataset-suite",
            "core",
            "--dataset-label",
            label,
            "--vus",
            "1",
            "--iterations",
            &n.to_string(),
            "--no-preflight",
        ]);
        if !sub.is_empty() {
            args.extend(s(&["--subcategory-contains", sub]));
        }
        let out = periscope_async(args).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let stats = mock.stats().await;
        assert_eq!(stats["requests"].as_u64(), Some(n as u64), "{stats}");
        let refused = stats["by_fault"]["refused"].as_u64().unwrap_or(0) as usize;
        assert_eq!(refused, expected, "{label}: {stats}");
        if label == "malicious" {
            assert!(refused > 0, "the guardrail saw injections");
        }
    }
}
