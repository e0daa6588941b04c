//! HTTP/2 to LLM targets: h2c to the mock (prior knowledge) and HTTPS with
//! ALPN h2 to nginx holding a self-signed certificate made by the test;
//! many streams over few connections, timed as over HTTP/1.1.

use crate::common::*;

/// The mock's ttft p50 (ms) and periscope's, for one run.
fn ttft_p50s(r: &serde_json::Value, stats: &serde_json::Value) -> (f64, f64) {
    (
        f(&latency(r, "ttft")["p50"]),
        f(&stats["ttft_us"]["p50"]) / 1000.0,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_streams_share_one_connection_to_the_mock_timed_by_its_stamps() {
    for connections in [1u64, 4] {
        let mock = MockProc::start(&["--ttft", "30ms", "--itl", "3ms", "--output-tokens", "16"]);
        let (out, r) = run_ok(&[
            "run",
            "--target",
            &mock.base(),
            "--http2",
            "--connections",
            &connections.to_string(),
            "--vus",
            "64",
            "--duration",
            "3s",
            "--no-preflight",
        ])
        .await;
        let stats = mock.stats().await;
        let s = &r["summary"];
        assert_eq!(s["errors"], 0, "{s}");
        assert!(s["ok"].as_u64().unwrap() > 64 * 10, "{s}");
        // Every request came over HTTP/2, over the connections asked for
        // (the stats request itself is one more, over HTTP/1.1).
        assert_eq!(s["http2"], s["requests"], "{s}");
        assert_eq!(stats["http2_requests"], s["requests"], "{stats}");
        assert_eq!(f(&stats["connections"]) as u64 - 1, connections, "{stats}");
        let (ours, mocks) = ttft_p50s(&r, &stats);
        assert!(
            (ours - mocks).abs() <= 2.0,
            "ttft p50 {ours} vs the mock's {mocks}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("protocol: HTTP/2 for"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_h2_to_nginx_with_a_self_signed_certificate() {
    let mock = MockProc::start(&["--ttft", "30ms", "--itl", "3ms", "--output-tokens", "16"]);
    let Some(nginx) = Nginx::tls_h2_proxy(&mock.addr) else {
        return;
    };
    let cert = nginx.cert();
    let (_, r) = run_ok(&[
        "run",
        "--target",
        &nginx.base(),
        "--http2",
        "--cacert",
        cert.to_str().unwrap(),
        "--vus",
        "64",
        "--duration",
        "3s",
        "--no-preflight",
    ])
    .await;
    let stats = mock.stats().await;
    let sum = &r["summary"];
    assert_eq!(sum["errors"], 0, "{sum}");
    assert_eq!(sum["http2"], sum["requests"], "{sum}");
    assert_eq!(stats["requests"], sum["requests"], "{stats}");
    let (ours, mocks) = ttft_p50s(&r, &stats);
    assert!(
        (ours - mocks).abs() <= 2.0,
        "ttft p50 {ours} vs the mock's {mocks}"
    );
    // nginx accepted one connection for the 64 streams (besides the
    // readiness probe of its start and this question).
    let status = periscope::client::http_builder()
        .tls_certs_merge(
            reqwest::Certificate::from_pem_bundle(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("https://127.0.0.1:{}/nginx_status", nginx.port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let accepts: u64 = status
        .lines()
        .nth(2)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(accepts - 2, 1, "{status} {sum}");
    // Without the certificate the server is not trusted: connect errors
    // that say so, not a panic.
    let dir = tempfile::tempdir().unwrap();
    let json = temp_json(&dir, "r.json");
    let out = periscope_async(s(&[
        "run",
        "--target",
        &nginx.base(),
        "--http2",
        "--vus",
        "1",
        "--duration",
        "1s",
        "--no-preflight",
        "--json",
        &json,
    ]))
    .await;
    let r = read_json(&json);
    assert_eq!(r["summary"]["ok"], 0, "{}", r["summary"]);
    let e = &r["errors"][0];
    assert_eq!(e["class"], "connect", "{}", r["errors"]);
    assert!(!stderr(&out).contains("panicked"));
}
