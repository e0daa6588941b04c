//! OTLP over gRPC (`--otlp-protocol grpc`): otlp-traces and
//! `--trace-requests` against the mock's gRPC receiver, which decodes and
//! counts every export as it does over HTTP; its faults as gRPC statuses;
//! an endpoint that is down. (Arize Phoenix's gRPC port: phoenix.rs.)

use crate::common::*;
use crate::otlp::otlp_run;
use serde_json::Value;

fn origin(mock: &MockProc) -> String {
    format!("http://{}", mock.addr)
}

/// `periscope run otlp-traces --otlp-protocol grpc --endpoint URL ARGS…
/// --json`, succeeding or not: its output (never a panic) and its result.
async fn grpc_run(url: &str, args: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let mut a = s(&[
        "run",
        "otlp-traces",
        "--otlp-protocol",
        "grpc",
        "--endpoint",
        url,
    ]);
    a.extend(s(args));
    a.extend(s(&["--json", &json]));
    let out = periscope_async(a).await;
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    // A run stopped before its load leaves no result.
    let r = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    (out, r)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_traces_over_grpc_are_what_the_mock_decoded() {
    let mock = MockProc::start(&["--otlp-reject-rate", "0.05"]);
    let (out, r) = otlp_run(
        &origin(&mock),
        &[
            "--otlp-protocol",
            "grpc",
            "--mix",
            "simple_query:3,single_service_search:1,small:1",
            "--vus",
            "8",
            "--iterations",
            "1000",
            "--duration",
            "2m",
        ],
    )
    .await;
    let st = mock.stats().await;
    let o = &st["otlp"];
    let mine = &r["otlp"];
    assert_eq!(u(&r["summary"]["ok"]), 1000, "{}", r["errors"]);
    // The preflight's export is empty: one export more, no trace or byte.
    assert_eq!(u(&o["exports"]), 1001, "{st}");
    assert_eq!(mine["traces"], o["traces"], "{mine}\n{o}");
    assert_eq!(u(&mine["traces"]), 1000);
    assert_eq!(mine["payload_bytes"], o["payload_bytes"]);
    let received = u(&o["spans"]);
    let rejected = u(&o["rejected_spans"]);
    assert!(rejected > 0, "{o}");
    assert_eq!(mine["rejected_spans"], o["rejected_spans"]);
    assert_eq!(u(&mine["spans_accepted"]), received - rejected);
    // gzip and a 5-byte frame: fewer bytes on the wire than decoded.
    let wire = u(&mine["wire_bytes"]);
    assert!(wire > 1000 * 5 && wire < u(&o["payload_bytes"]), "{mine}");
    // Every call over HTTP/2, multiplexed on one connection (the other
    // is this stats request's own).
    assert_eq!(u(&st["http2_requests"]), 1001, "{st}");
    assert_eq!(u(&st["connections"]) - 1, 1, "{st}");
    assert_eq!(u(&r["summary"]["http2"]), 1000);
    let text = stdout(&out);
    assert!(text.contains("OTLP/gRPC"), "{text}");
    assert!(
        text.contains("protocol: HTTP/2 for 1000 requests"),
        "{text}"
    );
    assert_eq!(r["plan"]["otlp"]["protocol"], "grpc");
}

#[tokio::test(flavor = "multi_thread")]
async fn mb_per_s_over_grpc_holds_by_the_mocks_stamps() {
    let mock = MockProc::start(&[]);
    let (_, r) = otlp_run(
        &origin(&mock),
        &[
            "--otlp-protocol",
            "grpc",
            "--mb-per-s",
            "1",
            "--duration",
            "15s",
            "--no-preflight",
        ],
    )
    .await;
    let o = &mock.stats().await["otlp"];
    // Arrival k is due when the bytes before it are sent at the rate.
    let bytes = o["payload_bytes"].as_f64().unwrap() - o["last_payload_bytes"].as_f64().unwrap();
    let secs = o["arrival_span_us"].as_f64().unwrap() / 1e6;
    let rate = bytes / secs / 1e6;
    assert!((rate - 1.0).abs() <= 0.05, "{rate:.3} MB/s over {secs:.1}s");
    assert!(secs > 11.0, "{secs}");
    assert_eq!(r["otlp"]["payload_bytes"], o["payload_bytes"]);
    assert_eq!(r["otlp"]["spans_accepted"], o["spans"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_garbage_and_a_dead_endpoint_are_classified_never_a_panic() {
    let mock = MockProc::start(&[
        "--rate-limit",
        "60",
        "--error-rate",
        "0.15",
        "--malformed-rate",
        "0.15",
    ]);
    let (out, r) = grpc_run(
        &origin(&mock),
        &[
            "--mix",
            "small",
            "--rate",
            "120",
            "--duration",
            "3s",
            "--no-preflight",
        ],
    )
    .await;
    let st = mock.stats().await;
    let class = |name: &str| -> u64 {
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["class"] == name)
            .map(|e| u(&e["count"]))
            .sum()
    };
    let faults = &st["by_fault"];
    let exhausted = class("grpc_resource_exhausted");
    let unavailable = class("grpc_unavailable");
    let garbage = class("bad_body");
    assert!(
        exhausted > 0 && unavailable > 0 && garbage > 0,
        "{}",
        r["errors"]
    );
    assert_eq!(exhausted, u(&faults["rate_limited"]), "{st}");
    assert_eq!(unavailable, u(&faults["error"]), "{st}");
    assert_eq!(garbage, u(&faults["malformed"]), "{st}");
    assert_eq!(
        u(&r["summary"]["errors"]),
        exhausted + unavailable + garbage,
        "{}",
        r["errors"]
    );
    // The HTTP status beside the gRPC code: a gRPC server answers 200.
    for e in r["errors"].as_array().unwrap() {
        assert_eq!(e["status"], 200, "{e}");
    }
    assert_eq!(u(&r["summary"]["ok"]), u(&st["otlp"]["exports"]));
    let text = stdout(&out);
    assert!(text.contains("grpc_unavailable"), "{text}");
    assert!(text.contains("ResourceExhausted"), "{text}");

    // Nothing listens: connect errors, a result all the same.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_, r) = grpc_run(&dead, &["--iterations", "5", "--no-preflight"]).await;
    assert_eq!(u(&r["summary"]["errors"]), 5, "{r}");
    assert_eq!(r["errors"][0]["class"], "connect", "{}", r["errors"]);
    // With the preflight, a dead endpoint stops the run before the load.
    let (out, _) = grpc_run(&dead, &["--iterations", "5"]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "could not start: {err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_requests_over_grpc_reach_the_backend_one_span_per_request() {
    let target = MockProc::start(&["--ttft", "5ms", "--itl", "1ms"]);
    let backend = MockProc::start(&[]);
    let (_, r) = run_ok(&[
        "run",
        "completions",
        "--target",
        &target.base(),
        "--vus",
        "4",
        "--iterations",
        "60",
        "--max-tokens",
        "4",
        "--otlp-protocol",
        "grpc",
        "--trace-requests",
        &origin(&backend),
    ])
    .await;
    assert_eq!(u(&r["summary"]["ok"]), 60);
    let o = &r["outputs"][0];
    assert_eq!(u(&o["written"]), 60, "{o}");
    assert_eq!(u(&o["dropped"]), 0, "{o}");
    assert!(o["label"].as_str().unwrap().contains("(gRPC)"), "{o}");
    let st = backend.stats().await;
    assert_eq!(u(&st["otlp"]["spans"]), 60, "{st}");
    assert_eq!(u(&st["otlp"]["traces"]), 60, "{st}");
    assert!(u(&st["http2_requests"]) >= 1, "{st}");
    // The target got the traceparent of every span.
    assert_eq!(crate::otlp::received_traceparents(&target).await.len(), 60);
}

#[test]
fn the_protocol_comes_from_the_flag_the_file_or_the_environment() {
    let plan = |args: &[&str], env: &[(&str, String)]| {
        let mut a = vec!["run", "otlp-traces", "--mock", "--dry-run"];
        a.extend_from_slice(args);
        periscope_with_env(&a, env)
    };
    let out = plan(&["--otlp-protocol", "grpc"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"protocol\": \"grpc\""),
        "{}",
        stdout(&out)
    );
    let env = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string())];
    assert!(stdout(&plan(&[], &env)).contains("\"protocol\": \"grpc\""));
    // The traces variable wins over the general one; the flag over both.
    let env = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "http/json".to_string(),
        ),
    ];
    assert!(stdout(&plan(&[], &env)).contains("\"protocol\": \"http/json\""));
    let out = plan(&["--otlp-protocol", "http/protobuf"], &env);
    assert!(stdout(&out).contains("\"protocol\": \"http/protobuf\""));
    for (args, want) in [
        (
            vec!["--otlp-protocol", "thrift"],
            "expected grpc, http/protobuf or http/json",
        ),
        (vec!["--otlp-protocol", "grpc", "--otlp-json"], "disagree"),
    ] {
        let out = plan(&args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let env = [("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon".to_string())];
    let err = stderr(&plan(&[], &env));
    assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_through_nginx_with_the_key_as_metadata() {
    let mock = MockProc::start(&["--api-key", "sk-grpc-test"]);
    let Some(nginx) = Nginx::tls_grpc_proxy(&mock.addr.to_string()) else {
        return;
    };
    let tls = nginx.base().replace("/v1", "");
    assert!(tls.starts_with("https://"), "{tls}");
    let cert = nginx.cert();
    let run = |key: Option<&'static str>, n: &'static str| {
        let dir = tempfile::tempdir().unwrap();
        let json = temp_json(&dir, "r.json");
        let args = s(&[
            "run",
            "otlp-traces",
            "--otlp-protocol",
            "grpc",
            "--endpoint",
            &tls,
            "--cacert",
            cert.to_str().unwrap(),
            "--mix",
            "small",
            "--iterations",
            n,
            "--no-preflight",
            "--json",
            &json,
        ]);
        let env: Vec<(&str, String)> = key
            .map(|k| {
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    format!("authorization=Bearer%20{k}"),
                )
            })
            .into_iter()
            .collect();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                periscope_with_env(&refs, &env)
            })
            .await
            .unwrap();
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{err}");
            assert!(
                !stdout(&out).contains("sk-grpc-test"),
                "the key is never printed"
            );
            let r = read_json(&json);
            drop(dir);
            r
        }
    };
    // The key in the metadata: every export accepted, over TLS and HTTP/2.
    let r = run(Some("sk-grpc-test"), "40").await;
    assert_eq!(
        u(&r["summary"]["ok"]),
        40,
        "{}\n{}",
        r["errors"],
        nginx.error_log()
    );
    assert_eq!(u(&r["summary"]["http2"]), 40);
    let st = mock.stats().await;
    assert_eq!(r["otlp"]["traces"], st["otlp"]["traces"], "{st}");
    assert_eq!(r["otlp"]["payload_bytes"], st["otlp"]["payload_bytes"]);
    // Without it: UNAUTHENTICATED, as the mock answers.
    let r = run(None, "5").await;
    assert_eq!(u(&r["summary"]["errors"]), 5, "{r}");
    assert_eq!(
        r["errors"][0]["class"], "grpc_unauthenticated",
        "{}",
        r["errors"]
    );
}
