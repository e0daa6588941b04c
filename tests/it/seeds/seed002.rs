//! The AI-observability scale test: configured in `.env` as its README's
//! examples write it (only the duration shortened and the host made a
//! local mock), run as `periscope run otlp-traces`; what the mock received
//! is what the run reported.

use super::{text, Shell};
use crate::common::{f, get_json, read_json, MockProc};

/// The README's Braintrust example.
const BRAINTRUST: &str = r#"OTEL_PLATFORM=braintrust
OTEL_EXPORTER_OTLP_ENDPOINT=https://api.braintrust.dev/otel/v1/traces
OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer sk-..., x-bt-parent=project_name:scale-test"
SCALE_TEST_CONCURRENCY=50
SCALE_TEST_DURATION=300
SCALE_TEST_RATE_LIMIT=50
"#;

/// The README's LangSmith example.
const LANGSMITH: &str = r#"OTEL_PLATFORM=langsmith
OTEL_EXPORTER_OTLP_ENDPOINT=https://api.smith.langchain.com/otel
OTEL_EXPORTER_OTLP_HEADERS="x-api-key=lsv2_...,Langsmith-Project=scale-test"
SCALE_TEST_CONCURRENCY=50
SCALE_TEST_DURATION=300
"#;

/// `.env` as the user edits it: the example, its host ours, a short run.
fn dotenv(sh: &Shell, example: &str, origin: &str, host: &str, seconds: &str) {
    let text = example.replace(origin, host).replace(
        "SCALE_TEST_DURATION=300",
        &format!("SCALE_TEST_DURATION={seconds}"),
    );
    std::fs::write(sh.path().join(".env"), text).unwrap();
}

async fn headers(m: &MockProc, name: &str) -> serde_json::Value {
    get_json(&m.url("/mock/headers")).await[name].clone()
}

/// The run's exports are the mock's, trace for trace and byte for byte.
fn exports_agree(r: &serde_json::Value, st: &serde_json::Value) {
    let o = &r["otlp"];
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    assert_eq!(o["traces"], st["otlp"]["traces"], "{o} vs {}", st["otlp"]);
    assert_eq!(
        o["spans_accepted"], st["otlp"]["spans"],
        "{o} vs {}",
        st["otlp"]
    );
    assert_eq!(
        o["payload_bytes"], st["otlp"]["payload_bytes"],
        "{o} vs {}",
        st["otlp"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_braintrust_example_from_dotenv() {
    let mock = MockProc::start(&[
        "--count-header",
        "x-bt-parent",
        "--count-header",
        "authorization",
    ]);
    let sh = Shell::new();
    dotenv(
        &sh,
        BRAINTRUST,
        "https://api.braintrust.dev",
        &format!("http://{}", mock.addr),
        "2",
    );
    let out = sh.run("periscope run otlp-traces --json r.json", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("read .env: OTEL_PLATFORM, OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("sk-..."),
        "a secret from .env was printed"
    );
    let r = read_json(sh.path().join("r.json").to_str().unwrap());
    // The whole endpoint, not doubled; the platform and load of .env.
    assert_eq!(
        r["plan"]["otlp"]["url"],
        format!("http://{}/otel/v1/traces", mock.addr)
    );
    assert_eq!(r["plan"]["otlp"]["platform"], "braintrust");
    assert_eq!(r["plan"]["load"]["model"], "open");
    assert_eq!(r["plan"]["load"]["max_in_flight"], 50);
    assert!(
        (f(&r["duration_s"]) - 2.0).abs() < 1.0,
        "{}",
        r["duration_s"]
    );
    let st = mock.stats().await;
    exports_agree(&r, &st);
    // 50 traces/s for 2 s.
    assert!(
        (80.0..=102.0).contains(&f(&r["otlp"]["traces"])),
        "{}",
        r["otlp"]
    );
    // The variable's x-bt-parent, not the platform's default beside it.
    let parents = headers(&mock, "x-bt-parent").await;
    assert_eq!(parents.as_object().unwrap().len(), 1, "{parents}");
    assert!(
        parents["project_name:scale-test"].as_u64().unwrap() >= 80,
        "{parents}"
    );
    assert!(
        headers(&mock, "authorization").await["Bearer sk-..."]
            .as_u64()
            .unwrap()
            >= 80
    );
    // The scenarios' token counts as the README states them (~5K, ~18K, ~40K, ~185K).
    for m in r["otlp"]["mix"].as_array().unwrap() {
        let per = f(&m["tokens"]) / f(&m["traces"]).max(1.0);
        let want = match m["scenario"].as_str().unwrap() {
            "simple_query" => 5_000.0,
            "single_service_search" => 18_000.0,
            "delegated_booking" => 40_000.0,
            _ => 185_000.0,
        };
        assert!((per / want - 1.0).abs() < 0.15, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_langsmith_example_from_dotenv_runs_its_workers_flat_out() {
    let mock = MockProc::start(&[
        "--count-header",
        "langsmith-project",
        "--count-header",
        "x-api-key",
    ]);
    let sh = Shell::new();
    dotenv(
        &sh,
        LANGSMITH,
        "https://api.smith.langchain.com",
        &format!("http://{}", mock.addr),
        "1",
    );
    let out = sh.run(
        "periscope run otlp-traces --mix simple_query --json r.json",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = read_json(sh.path().join("r.json").to_str().unwrap());
    // A base gets /v1/traces; no rate limit: 50 workers as fast as they go.
    assert_eq!(
        r["plan"]["otlp"]["url"],
        format!("http://{}/otel/v1/traces", mock.addr)
    );
    assert_eq!(r["plan"]["otlp"]["platform"], "langsmith");
    assert_eq!(r["plan"]["load"]["model"], "closed");
    assert_eq!(r["plan"]["load"]["vus"]["start"], 50.0);
    exports_agree(&r, &mock.stats().await);
    let n = f(&r["otlp"]["traces"]);
    // Every export carried both (and so did the preflight's empty one).
    for (h, v) in [
        ("langsmith-project", "scale-test"),
        ("x-api-key", "lsv2_..."),
    ] {
        let got = headers(&mock, h).await[v].as_u64().unwrap() as f64;
        assert!(got == n || got == n + 1.0, "{h}: {got} of {n}");
    }
}

/// A scenario declared in a file as workflow steps, and the console
/// platform printing what is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_scenario_and_the_console_platform() {
    let mock = MockProc::start(&[]);
    let sh = Shell::new();
    std::fs::write(
        sh.path().join("lounge.yaml"),
        "workload: otlp-traces\nrate: 20\nduration: 1s\notlp:\n  scenarios:\n    - name: lounge_lookup\n      bytes: 60000\n      tokens: 6000\n      steps:\n        - llm\n        - route:\n            - {agent: hotel_agent, steps: [llm, {call: search_hotels}]}\n            - {agent: flight_agent, steps: [llm, {tool: search_flights}]}\n        - parallel: [{tool: get_weather}, {tool: lookup_customer}]\n        - llm\n",
    )
    .unwrap();
    let endpoint = format!("--endpoint http://{}/v1/traces", mock.addr);
    let out = sh.run(
        &format!("periscope run lounge.yaml {endpoint} --platform console --json r.json"),
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = read_json(sh.path().join("r.json").to_str().unwrap());
    exports_agree(&r, &mock.stats().await);
    let mix = &r["otlp"]["mix"][0];
    assert_eq!(mix["scenario"], "lounge_lookup");
    // root, llm, router, agent + 2 or 3 spans, 2 tools, llm: 9 or 10 spans.
    let per = f(&mix["spans"]) / f(&mix["traces"]);
    assert!((9.0..=10.0).contains(&per), "{mix}");
    // Every trace printed as a tree.
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.matches(" lounge_lookup · ").count() as f64,
        f(&mix["traces"]),
        "{printed}"
    );
    assert!(printed.contains("    route request ("), "{printed}");
}
