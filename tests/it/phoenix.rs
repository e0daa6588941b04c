//! otlp-traces into Arize Phoenix (from PyPI), over OTLP/HTTP and over its
//! OTLP gRPC port: it lists exactly the traces and spans periscope reported
//! accepted; and `--trace-requests` over both.

use crate::common::*;
use crate::otlp::{otlp_run, received_traceparents};
use serde_json::Value;

/// Arize Phoenix from PyPI (scripts/test-env.sh installs it in the
/// background into .venv-phoenix while the tests build).
struct Phoenix {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    base: String,
    /// Its OTLP gRPC receiver.
    grpc: String,
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn phoenix() -> Option<Phoenix> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-phoenix");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // The install may still be running: wait for its end (up to 15 min).
    for _ in 0..1800 {
        if venv.join(".ready").exists() || venv.join(".failed").exists() {
            break;
        }
        if !venv.exists() && !ci {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    if !venv.join(".ready").exists() {
        let log = std::fs::read_to_string(venv.join("install.log")).unwrap_or_default();
        if ci {
            panic!("Arize Phoenix is not installed in .venv-phoenix (scripts/test-env.sh): CI=true makes it a failure\n{log}");
        }
        eprintln!("note: Arize Phoenix is not installed; skipping");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let grpc_port = free_port();
    let child = std::process::Command::new(venv.join("bin/phoenix"))
        .arg("serve")
        .env("PHOENIX_WORKING_DIR", dir.path())
        .env("PHOENIX_HOST", "127.0.0.1")
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start phoenix");
    let base = format!("http://127.0.0.1:{port}");
    let mut p = Phoenix {
        child,
        _dir: dir,
        base,
        grpc: format!("http://127.0.0.1:{grpc_port}"),
    };
    for _ in 0..600 {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("phoenix exited: {status}");
        }
        if blocking_get(&format!("{}/v1/projects", p.base)).is_ok_and(|s| s == 200) {
            return Some(p);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("phoenix did not answer at {} within 2 min", p.base);
}

/// Every item of a Phoenix list endpoint, following its cursor (none
/// while the project does not exist).
async fn phoenix_list(base: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
        url.query_pairs_mut().append_pair("limit", "1000");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let resp = http().get(url).send().await.unwrap();
        if resp.status() == 404 {
            // The project appears with its first span.
            return items;
        }
        let page: Value = resp.json().await.unwrap();
        items.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

/// A project's traces and spans once Phoenix (which writes in the
/// background) has stored at least `traces` and `spans`, or after 30 s.
async fn settled(base: &str, project: &str, traces: u64, spans: u64) -> (Vec<Value>, Vec<Value>) {
    let (mut t, mut sp) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        t = phoenix_list(base, &format!("/v1/projects/{project}/traces")).await;
        sp = phoenix_list(base, &format!("/v1/projects/{project}/spans")).await;
        if t.len() as u64 >= traces && sp.len() as u64 >= spans {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    (t, sp)
}

/// `completions` against `mock`, `n` requests, each exported as a span to
/// Phoenix's `project` (ARGS: the URL and protocol): the result.
async fn traced(mock: &MockProc, n: &str, project: &str, args: &[&str]) -> Value {
    let mut a = vec!["run", "completions", "--target"];
    let base = mock.base();
    a.push(&base);
    a.extend_from_slice(&[
        "--vus",
        "2",
        "--iterations",
        n,
        "--max-tokens",
        "6",
        "--no-preflight",
        "--platform",
        "phoenix",
        "--project",
        project,
    ]);
    a.extend_from_slice(args);
    run_ok(&a).await.1
}

#[tokio::test(flavor = "multi_thread")]
async fn phoenix_lists_exactly_the_traces_and_spans_periscope_reported_accepted() {
    let Some(px) = tokio::task::spawn_blocking(phoenix).await.unwrap() else {
        return;
    };
    let (_, r) = otlp_run(
        &format!("{}/v1/traces", px.base),
        &[
            "--platform",
            "phoenix",
            "--project",
            "periscope-ci",
            // Phoenix stores every attribute in SQLite from Python: the
            // smallest scenario keeps its ingestion (not periscope's) out of
            // the test's time.
            "--mix",
            "simple_query",
            "--rate",
            "10",
            "--duration",
            "20s",
            // Phoenix's own span and trace lists, queried alongside.
            "--query-endpoint",
            &px.base,
            "--queries-per-s",
            "2",
        ],
    )
    .await;
    let o = &r["otlp"];
    let queries = o["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2, "{o}");
    let answered: u64 = queries.iter().map(|q| q["sent"].as_u64().unwrap()).sum();
    let ok: u64 = queries.iter().map(|q| q["ok"].as_u64().unwrap()).sum();
    assert!((38..=40).contains(&answered), "{queries:?}");
    // The project exists once its first spans are stored: only the first
    // queries may find nothing.
    assert!(ok + 4 >= answered, "{queries:?}");
    let traces = o["traces"].as_u64().unwrap();
    assert!((190..=210).contains(&traces), "{o}");
    assert_eq!(o["failed_exports"], 0, "{o}");
    // Phoenix writes in the background: wait until the counts settle.
    let accepted = o["spans_accepted"].as_u64().unwrap();
    let (t, sp) = settled(&px.base, "periscope-ci", traces, accepted).await;
    assert_eq!(t.len() as u64, traces);
    assert_eq!(sp.len() as u64, o["spans_accepted"].as_u64().unwrap());
    // Dressed for Phoenix: OpenInference span kinds.
    let kinds: std::collections::BTreeSet<&str> =
        sp.iter().filter_map(|s| s["span_kind"].as_str()).collect();
    assert!(
        kinds.contains("LLM") && kinds.contains("TOOL") && kinds.contains("AGENT"),
        "{kinds:?}"
    );

    // --trace-requests: one span per LLM request, with its first-token
    // event, joined to the traceparent the target received.
    let mock = MockProc::start(&["--ttft", "20ms", "--itl", "2ms"]);
    let rr = traced(
        &mock,
        "30",
        "periscope-requests",
        &["--trace-requests", &px.base],
    )
    .await;
    assert_eq!(rr["outputs"][0]["written"], 30, "{}", rr["outputs"]);
    let mut spans = Vec::new();
    for _ in 0..60 {
        spans = phoenix_list(&px.base, "/v1/projects/periscope-requests/spans").await;
        if spans.len() >= 30 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(spans.len(), 30);
    let received: std::collections::BTreeSet<String> =
        received_traceparents(&mock).await.into_iter().collect();
    assert_eq!(received.len(), 30);
    for sp in &spans {
        let tp = format!(
            "00-{}-{}-01",
            sp["context"]["trace_id"].as_str().unwrap(),
            sp["context"]["span_id"].as_str().unwrap()
        );
        assert!(received.contains(&tp), "{tp} was not sent to the target");
        assert_eq!(sp["span_kind"], "LLM", "{sp}");
        assert!(sp["parent_id"].is_null(), "{sp}");
        let events = sp["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["name"] == "gen_ai.content.first_token"),
            "{sp}"
        );
    }

    // The same over Phoenix's OTLP gRPC port.
    let (out, r) = otlp_run(
        &px.grpc,
        &[
            "--otlp-protocol",
            "grpc",
            "--platform",
            "phoenix",
            "--project",
            "periscope-grpc",
            "--mix",
            "simple_query",
            "--rate",
            "10",
            "--duration",
            "8s",
        ],
    )
    .await;
    let o = &r["otlp"];
    let traces = o["traces"].as_u64().unwrap();
    assert!((75..=85).contains(&traces), "{o}");
    assert_eq!(o["failed_exports"], 0, "{o}");
    assert_eq!(r["summary"]["http2"], r["summary"]["requests"]);
    assert!(stdout(&out).contains("OTLP/gRPC"));
    let accepted = o["spans_accepted"].as_u64().unwrap();
    let (t, sp) = settled(&px.base, "periscope-grpc", traces, accepted).await;
    assert_eq!(t.len() as u64, traces);
    assert_eq!(sp.len() as u64, accepted);
    let args = ["--otlp-protocol", "grpc", "--trace-requests", &px.grpc];
    let rr = traced(&mock, "20", "periscope-requests-grpc", &args).await;
    assert_eq!(rr["outputs"][0]["written"], 20, "{}", rr["outputs"]);
    let (_, spans) = settled(&px.base, "periscope-requests-grpc", 0, 20).await;
    assert_eq!(spans.len(), 20);
    assert!(spans.iter().all(|s| s["span_kind"] == "LLM"), "{spans:?}");
}
