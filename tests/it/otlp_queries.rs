//! otlp-traces' query load: trace queries sent beside the ingestion at
//! their own rate, to a query server here that stamps what it got, and to
//! the mock, which answers about the traces it received; query-only and
//! combined runs (`--test-type`).

use std::sync::{Arc, Mutex};

use crate::common::*;
use crate::otlp::{capture, otlp_run, serve};
use serde_json::Value;

/// One query as a query server saw it: path and query, arrival, answer,
/// method, content type and body.
pub(crate) type Seen = (
    String,
    std::time::Instant,
    std::time::Instant,
    hyper::Method,
    String,
    bytes::Bytes,
);

/// A trace backend's query API: answers every query after `hold`, stamping
/// when each arrived and when it was answered.
pub(crate) async fn query_server(hold: std::time::Duration) -> (String, Arc<Mutex<Vec<Seen>>>) {
    use http_body_util::BodyExt;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let store = seen.clone();
    let addr = serve(move |req: hyper::Request<hyper::body::Incoming>| {
        let store = store.clone();
        async move {
            let at = std::time::Instant::now();
            let uri = req.uri().path_and_query().unwrap().to_string();
            let method = req.method().clone();
            let kind = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            tokio::time::sleep_until((at + hold).into()).await;
            store
                .lock()
                .unwrap()
                .push((uri, at, std::time::Instant::now(), method, kind, body));
            bytes::Bytes::from_static(b"{\"traces\":[]}")
        }
    })
    .await;
    (format!("http://{addr}"), seen)
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_go_alongside_ingestion_at_their_rate_with_their_own_latency_table() {
    let (traces_url, got) = capture().await;
    let (query_url, seen) = query_server(std::time::Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let (t, q, j) = (traces_url.clone(), query_url.clone(), json.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
        .args(["run", "otlp-traces", "--endpoint", &t])
        .args(["--mix", "simple_query", "--rate", "20", "--duration", "10s"])
        .args(["--query-endpoint", &format!("{q}/tempo/")])
        .args(["--queries-per-s", "10"])
        .args([
            "--query",
            "/api/search?q={ resource.service.name = \"{{service}}\" }&start={{start}}&end={{end}}",
            "--query",
            "/api/traces/{{trace_id}}",
        ])
        .args(["--json", &j])
        .env("OTEL_SERVICE_NAME", "agent one")
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let seen = seen.lock().unwrap().clone();
    let rows = r["otlp"]["queries"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let sent: u64 = rows.iter().map(|q| q["sent"].as_u64().unwrap()).sum();
    assert_eq!(
        sent as usize,
        seen.len(),
        "every query answered is counted once"
    );
    assert!((95..=100).contains(&sent), "{sent} queries in 10 s at 10/s");
    // Queries stay out of the export figures.
    let exports = got.lock().unwrap().len() as u64;
    assert_eq!(r["summary"]["requests"], exports);
    assert_eq!(r["otlp"]["traces"], exports);
    // The rate, by the server's arrival stamps.
    let first = seen.iter().map(|s| s.1).min().unwrap();
    let last = seen.iter().map(|s| s.1).max().unwrap();
    let gap = (last - first).as_secs_f64() / (seen.len() - 1) as f64;
    assert!((gap - 0.1).abs() < 0.005, "mean gap {gap} s");
    // Placeholders: the service (encoded with TraceQL's braces), the run's
    // times, and trace ids the run exported.
    let exported: std::collections::HashSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|g| hex(&g.spans[0].trace_id))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (mut searches, mut lookups) = (0, 0);
    for (uri, _, _, method, _, body) in &seen {
        assert_eq!((method, body.len()), (&hyper::Method::GET, 0), "{uri}");
        if let Some(id) = uri.strip_prefix("/tempo/api/traces/") {
            lookups += 1;
            assert!(exported.contains(id), "{id} was not exported");
        } else {
            searches += 1;
            let q = uri
                .strip_prefix("/tempo/api/search?q=%7B%20resource.service.name%20=%20%22agent%20one%22%20%7D&start=")
                .unwrap_or_else(|| panic!("{uri}"));
            let (start, end) = q.split_once("&end=").unwrap();
            let (start, end): (u64, u64) = (start.parse().unwrap(), end.parse().unwrap());
            assert!(start <= end && end <= now + 1 && now - start < 60, "{uri}");
        }
    }
    assert!(
        (searches as i64 - lookups as i64).abs() <= 1,
        "templates in turn"
    );
    // Latency: what the server held each query, plus little.
    let mut held: Vec<f64> = seen
        .iter()
        .map(|s| (s.2 - s.1).as_secs_f64() * 1e3)
        .collect();
    let held_p50 = pct(&mut held, 0.5);
    for row in rows {
        let p50 = f(&row["latency"]["p50"]);
        assert!(
            p50 >= held_p50 - 0.5 && p50 < held_p50 + 5.0,
            "query p50 {p50} ms, server held {held_p50} ms"
        );
        assert_eq!(row["errors"], 0);
    }
    let text = stdout(&out);
    assert!(text.contains("### Trace queries"), "{text}");
    let at = |s: &str| text.find(s).unwrap();
    assert!(at("### Trace queries") < at("### Trace mix"));
}

#[tokio::test(flavor = "multi_thread")]
async fn post_queries_carry_their_json_body_with_the_placeholders_filled_in() {
    let (traces_url, got) = capture().await;
    let (query_url, seen) = query_server(std::time::Duration::from_millis(5)).await;
    let (out, r) = otlp_run(
        &traces_url,
        &[
            "--mix",
            "simple_query",
            "--rate",
            "20",
            "--duration",
            "3s",
            "--platform",
            "phoenix",
            "--project",
            "load \"tests\"",
            "--query-endpoint",
            &format!("{query_url}/phoenix"),
            "--queries-per-s",
            "10",
            "--query",
            r#"POST /graphql {"query": "{ trace(traceId: \"{{trace_id}}\") { spans } }", "project": "{{project}}", "since": {{start_ms}}}"#,
            "--query",
            "/v1/projects/{{project}}/traces?limit=20",
        ],
    )
    .await;
    let rows = r["otlp"]["queries"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", stdout(&out));
    let seen = seen.lock().unwrap().clone();
    let sent: u64 = rows.iter().map(|q| q["sent"].as_u64().unwrap()).sum();
    assert_eq!(sent as usize, seen.len());
    let exported: std::collections::HashSet<String> = got
        .lock()
        .unwrap()
        .iter()
        .map(|g| hex(&g.spans[0].trace_id))
        .collect();
    let (mut posts, mut gets) = (0, 0);
    for (uri, _, _, method, kind, body) in &seen {
        if *method == hyper::Method::POST {
            posts += 1;
            assert_eq!(uri, "/phoenix/graphql");
            assert_eq!(kind, "application/json");
            let b: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(b["project"], "load \"tests\"", "{b}");
            let q = b["query"].as_str().unwrap();
            let id = q
                .strip_prefix("{ trace(traceId: \"")
                .and_then(|q| q.strip_suffix("\") { spans } }"))
                .unwrap_or_else(|| panic!("{q}"));
            assert!(exported.contains(id), "{id} was not exported");
            assert!(b["since"].as_u64().unwrap() > 1_700_000_000_000, "{b}");
        } else {
            gets += 1;
            assert_eq!(
                uri,
                "/phoenix/v1/projects/load%20%22tests%22/traces?limit=20"
            );
            assert!(body.is_empty());
        }
    }
    assert!(
        posts >= 12 && (posts as i64 - gets as i64).abs() <= 1,
        "{posts} POST, {gets} GET"
    );
    for row in rows {
        assert_eq!(row["errors"], 0, "{row}");
    }
    // The report names each template as given.
    assert!(stdout(&out).contains("POST /graphql"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_answers_trace_queries_about_the_traces_it_received() {
    let mock = MockProc::start(&["--query-latency", "5ms"]);
    let (out, r) = otlp_run(
        &mock.url("/v1/traces"),
        &[
            "--mix",
            "simple_query",
            "--rate",
            "20",
            "--duration",
            "3s",
            "--query-endpoint",
            &format!("http://{}", mock.addr),
            "--queries-per-s",
            "10",
        ],
    )
    .await;
    // Tempo's search and trace-by-id (the default templates) find the
    // traces just exported.
    let rows = r["otlp"]["queries"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{}", stdout(&out));
    for row in rows {
        assert!(row["sent"].as_u64().unwrap() >= 14, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
        assert!(f(&row["latency"]["p50"]) >= 5.0, "{row}");
    }
    let st = mock.stats().await;
    let answered: u64 = rows.iter().map(|q| q["sent"].as_u64().unwrap()).sum();
    assert_eq!(st["by_endpoint"]["trace_query"].as_u64().unwrap(), answered);
    let search =
        get_json(&mock.url("/api/search?limit=5&tags=service.name%3Dperiscope-agent")).await;
    let traces = search["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 5, "{search}");
    let id = traces[0]["traceID"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(traces[0]["rootServiceName"], "periscope-agent");
    assert_eq!(traces[0]["spanCount"], 5);
    let one = http()
        .get(mock.url(&format!("/api/traces/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let none = http()
        .get(mock.url(&format!("/api/traces/{}", "0".repeat(32))))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_only_run_holds_its_rate_by_the_servers_stamps_and_asks_for_traces_it_found() {
    let mock = MockProc::start(&[]);
    // Traces sent before the run, as a backend has them.
    let (_, ing) = otlp_run(
        &mock.url("/v1/traces"),
        &["--mix", "small", "--rate", "40", "--duration", "1s"],
    )
    .await;
    assert!(
        ing["otlp"]["traces"].as_u64().unwrap() >= 35,
        "{}",
        ing["otlp"]
    );
    mock.reset().await;
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "q.json");
    let out = periscope_async(s(&[
        "run",
        "otlp-traces",
        "--test-type",
        "query",
        "--query-endpoint",
        &format!("http://{}", mock.addr),
        "--queries-per-s",
        "25",
        "--duration",
        "8s",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = read_json(&json);
    let n = r["summary"]["requests"].as_u64().unwrap() as usize;
    assert!((195..=205).contains(&n), "{n}");
    // The searches found the traces: every lookup asks for one it has.
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    let st = mock.stats().await;
    assert_eq!(st["by_status"].as_object().unwrap().len(), 1, "{st}");
    assert!(!stderr(&out).contains("found no trace"), "{}", stderr(&out));
    let stamps = mock.arrivals().await;
    // Before the load: the search that found the trace ids.
    assert_eq!(stamps.len(), n + 1, "{}", stamps.len());
    let load = &stamps[1..];
    let span_s = (load[load.len() - 1] - load[0]) as f64 / 1e6;
    let rate = (load.len() - 1) as f64 / span_s;
    assert!((rate - 25.0).abs() <= 25.0 * 0.05, "{rate:.2} queries/s");
    // Only the query table: no ingestion in a query-only run.
    let text = stdout(&out);
    assert!(text.contains("### Trace queries"), "{text}");
    assert!(!text.contains("### OTLP ingestion"), "{text}");
    assert!(text.contains("query-only"), "{text}");
    assert_eq!(r["plan"]["otlp"]["test_type"], "query");
    let rows = r["otlp"]["queries"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let sent: u64 = rows.iter().map(|q| q["sent"].as_u64().unwrap()).sum();
    assert_eq!(sent as usize, n);
}

#[tokio::test(flavor = "multi_thread")]
async fn combined_runs_report_both_tables_and_ingestion_sends_no_query() {
    let (out, r) = run_ok(&[
        "run",
        "otlp-traces",
        "--mock",
        "--mix",
        "small",
        "--rate",
        "20",
        "--queries-per-s",
        "5",
        "--duration",
        "3s",
    ])
    .await;
    assert_eq!(r["plan"]["otlp"]["test_type"], "combined");
    let text = stdout(&out);
    assert!(text.contains("### OTLP ingestion"), "{text}");
    assert!(text.contains("### Trace queries"), "{text}");
    assert!(r["otlp"]["queries"].as_array().unwrap().len() == 2);
    // A profile's query rate, and ingestion only asked for.
    let (out, r) = run_ok(&[
        "run",
        "--scenario",
        "otlp-small",
        "--mock",
        "--test-type",
        "ingestion",
        "--duration",
        "2s",
    ])
    .await;
    assert_eq!(r["plan"]["otlp"]["test_type"], "ingestion");
    assert!(r["otlp"]["queries"].is_null(), "{}", r["otlp"]);
    assert!(!stdout(&out).contains("### Trace queries"));
    for (args, want) in [
        (
            vec![
                "--test-type",
                "query",
                "--endpoint",
                "http://127.0.0.1:4318",
            ],
            "--query-endpoint",
        ),
        (
            vec![
                "--test-type",
                "query",
                "--mock",
                "--queries-per-s",
                "5",
                "--mb-per-s",
                "1",
            ],
            "drop it",
        ),
        (vec!["--test-type", "nonsense", "--mock"], "--test-type"),
    ] {
        let mut a = vec!["run", "otlp-traces", "--dry-run"];
        a.extend_from_slice(&args);
        let out = periscope(&a);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
