//! The AIOps API load test: its four documented commands (`python
//! benchmarks/load_test.py [--scenario light|medium|heavy] [--duration
//! 120 --rps 100 --url …]` → `periscope run --scenario …` with the same
//! flags), planned as it documents them; then a short real run against a
//! mock serving the service's endpoints, judged by its latency targets per
//! endpoint, with a webhook POST that carries a body.

use super::{text, Shell};
use crate::common::{f, read_json, MockProc};

/// The plan of a command: its JSON and the planned-load line.
fn plan(sh: &Shell, cmd: &str) -> (serde_json::Value, String) {
    let out = sh.run(&format!("{cmd} --dry-run"), &[]);
    assert!(out.status.success(), "{cmd}: {}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::Deserializer::from_str(&s)
        .into_iter::<serde_json::Value>()
        .next()
        .unwrap()
        .unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with("planned load:"))
        .unwrap()
        .to_string();
    (json, line)
}

#[test]
fn the_documented_commands_plan_as_the_readme_says() {
    let sh = Shell::new();
    for (seed_cmd, ours, target, phase_s, rps) in [
        (
            "python benchmarks/load_test.py",
            "periscope run --scenario light",
            "http://localhost:8000/v1",
            30,
            10,
        ),
        (
            "python benchmarks/load_test.py --scenario medium",
            "periscope run --scenario medium",
            "http://localhost:8000/v1",
            60,
            20,
        ),
        (
            "python benchmarks/load_test.py --scenario heavy",
            "periscope run --scenario heavy",
            "http://localhost:8000/v1",
            90,
            50,
        ),
        (
            "python benchmarks/load_test.py --duration 120 --rps 100 --url http://api.example.com",
            "periscope run --scenario light --duration 120 --rps 100 --url http://api.example.com",
            "http://api.example.com/v1",
            120,
            100,
        ),
    ] {
        let (p, line) = plan(&sh, ours);
        assert_eq!(p["target"], target, "{seed_cmd}");
        assert_eq!(p["workload"], "http", "{seed_cmd}");
        // Health check, then the mixed endpoints: each phase the duration.
        let stages = p["load"]["rate"]["stages"].as_array().unwrap();
        assert_eq!(stages.len(), 2, "{seed_cmd}: {line}");
        for st in stages {
            assert_eq!(f(&st["duration"]), phase_s as f64, "{seed_cmd}: {line}");
            assert_eq!(f(&st["target"]), rps as f64, "{seed_cmd}: {line}");
        }
        assert_eq!(
            p["phases"],
            serde_json::json!(["health", "mixed"]),
            "{seed_cmd}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_judged_by_the_latency_targets_per_endpoint_with_a_webhook_body() {
    let mock = MockProc::start(&[
        "--ok-path",
        "/,/api/v1/llm/providers,/api/v1/webhooks/status,/api/v1/webhooks/github",
    ]);
    let sh = Shell::new();
    std::fs::write(
        sh.path().join("push.json"),
        r#"{"action":"opened","number":7}"#,
    )
    .unwrap();
    let cmd = format!(
        "periscope run --scenario light --url http://{} --duration 2 --rps 50 \
         --endpoint GET:/health:3 --endpoint GET:/api/v1/llm/providers \
         --endpoint 'POST:/api/v1/webhooks/github @push.json' \
         --threshold 'e2e{{endpoint:GET /health}}.p95<10ms' \
         --threshold 'e2e{{endpoint:GET /api/v1/llm/providers}}.p95<100ms' \
         --threshold 'ok_rps{{endpoint:GET /health}}>10' \
         --json r.json",
        mock.addr
    );
    let out = sh.run(&cmd, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let r = read_json(sh.path().join("r.json").to_str().unwrap());
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    // Every threshold judged on its endpoint, each with a value.
    let th = r["thresholds"].as_array().unwrap();
    assert_eq!(th.len(), 3, "{th:?}");
    for t in th {
        assert_eq!(t["pass"], true, "{t}");
        assert!(t["actual"].is_number(), "{t}");
    }
    // The endpoints' requests are those the mock answered, and every
    // webhook carried its body.
    let st = mock.stats().await;
    let groups = r["groups"].as_array().unwrap();
    let count = |label: &str| {
        groups
            .iter()
            .find(|g| g["label"] == label)
            .map_or(0.0, |g| f(&g["requests"]))
    };
    let hooks = count("POST /api/v1/webhooks/github");
    assert!(hooks > 10.0, "{groups:?}");
    assert_eq!(f(&st["body_bytes"]["health"]), hooks * 30.0, "{st}");
    // …and the preflight besides.
    assert_eq!(
        f(&st["requests"]),
        f(&r["summary"]["requests"]) + 1.0,
        "{st}"
    );
    let md = String::from_utf8_lossy(&out.stdout);
    for needle in ["| endpoint ", "| min ", "| e2e min ", "200: "] {
        assert!(md.contains(needle), "{needle}: {md}");
    }
}
