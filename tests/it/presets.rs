//! The seeds' named presets, listed by `periscope scenarios` and run from
//! there against the mock, shortened with `--duration`: the AIOps load
//! test's `http-light|medium|heavy` (the health check, then the mixed
//! endpoints, at their request rate) and the Tempo suite's legacy trace
//! profiles `otlp-small|medium|large|xlarge` (MB/s of their trace shape and
//! queries/s beside). Each rate is judged by the receiver's stamps.

use std::collections::BTreeSet;

use crate::common::*;
use crate::otlp_queries::query_server;

/// Requests per second of `n` stamps (µs) spread over their span.
fn rate_of(stamps_us: &[u64]) -> f64 {
    let span = (stamps_us[stamps_us.len() - 1] - stamps_us[0]) as f64 / 1e6;
    (stamps_us.len() - 1) as f64 / span
}

/// `periscope scenarios` names the preset: runs are started from its list.
fn listed(name: &str) -> bool {
    let out = periscope(&["scenarios"]);
    stdout(&out)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

const MIXED: [&str; 4] = [
    "GET /",
    "GET /health",
    "GET /api/v1/llm/providers",
    "GET /api/v1/webhooks/status",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_presets_hold_their_rate_and_send_the_health_check_then_the_mixed_endpoints() {
    for (name, rps) in [
        ("http-light", 10.0),
        ("http-medium", 20.0),
        ("http-heavy", 50.0),
    ] {
        assert!(listed(name), "{name} is not in `periscope scenarios`");
        let mock = MockProc::start(&[
            "--ok-path",
            "/,/api/v1/llm/providers,/api/v1/webhooks/status",
        ]);
        let dir = tempfile::tempdir().unwrap();
        let (json, csv) = (temp_json(&dir, "r.json"), temp_json(&dir, "r.csv"));
        let out = periscope_async(s(&[
            "run",
            "--scenario",
            name,
            "--target",
            &mock.base(),
            "--duration",
            "4s",
            "--no-preflight",
            "--json",
            &json,
            "--csv",
            &csv,
        ]))
        .await;
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let md = stdout(&out);
        let r = read_json(&json);

        // The rate, by the mock's arrival stamps.
        let stamps = mock.arrivals().await;
        assert_eq!(
            stamps.len() as u64,
            r["summary"]["requests"].as_u64().unwrap()
        );
        let got = rate_of(&stamps);
        assert!(
            (got / rps - 1.0).abs() <= 0.05,
            "{name}: {got:.2} req/s by the mock's stamps for {rps}"
        );
        assert_eq!(r["summary"]["errors"], 0, "{name}: {md}");

        // Two phases of equal length: only the health check, then the mix.
        let stages = r["stages"].as_array().unwrap();
        let phases: Vec<&str> = stages
            .iter()
            .map(|s| s["phase"].as_str().unwrap())
            .collect();
        assert_eq!(phases, ["health", "mixed"], "{name}");
        let mut reader = csv::Reader::from_path(&csv).unwrap();
        let header = reader.headers().unwrap().clone();
        let col = |n: &str| header.iter().position(|h| h == n).unwrap();
        let (mut health, mut mixed) = (BTreeSet::new(), BTreeSet::new());
        for row in reader.records() {
            let row = row.unwrap();
            // The group column names the group's kind: `endpoint GET /`.
            let group = row[col("group")]
                .trim_start_matches("endpoint ")
                .to_string();
            match &row[col("stage")] {
                "0" => health.insert(group),
                "1" => mixed.insert(group),
                other => panic!("{name}: stage {other}"),
            };
        }
        assert_eq!(
            health,
            BTreeSet::from(["GET /health".to_string()]),
            "{name}"
        );
        assert!(
            mixed.len() >= 3 && mixed.iter().all(|g| MIXED.contains(&g.as_str())),
            "{name}: {mixed:?}"
        );
        // The report shows each phase and each endpoint, and nothing of an
        // LLM's (no model, tokens or ttft for plain HTTP requests).
        assert!(
            md.contains("### By stage") && md.contains("| mixed "),
            "{md}"
        );
        assert!(md.contains("### By endpoint"), "{md}");
        for absent in ["model `", "max_tokens", "ttft", "tokens/s"] {
            assert!(!md.contains(absent), "{name}: {absent}: {md}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_legacy_presets_hold_their_megabytes_and_queries_per_second() {
    for (name, mb, qps) in [
        ("otlp-small", 0.1, 5.0),
        ("otlp-medium", 1.0, 25.0),
        ("otlp-large", 5.0, 50.0),
        ("otlp-xlarge", 20.0, 100.0),
    ] {
        assert!(listed(name), "{name} is not in `periscope scenarios`");
        let mock = MockProc::start(&[]);
        let (query_url, seen) = query_server(std::time::Duration::ZERO).await;
        let dir = tempfile::tempdir().unwrap();
        let json = temp_json(&dir, "r.json");
        let out = periscope_async(s(&[
            "run",
            "--scenario",
            name,
            "--endpoint",
            &mock.url("/v1/traces"),
            "--query-endpoint",
            &query_url,
            "--duration",
            "4s",
            "--no-preflight",
            "--json",
            &json,
        ]))
        .await;
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let r = read_json(&json);

        // MB/s by the receiver: export k arrives when the bytes before it
        // are sent at the rate.
        let o = &mock.stats().await["otlp"];
        let bytes =
            o["payload_bytes"].as_f64().unwrap() - o["last_payload_bytes"].as_f64().unwrap();
        let secs = o["arrival_span_us"].as_f64().unwrap() / 1e6;
        let got = bytes / secs / 1e6;
        assert!(
            (got / mb - 1.0).abs() <= 0.05,
            "{name}: {got:.3} MB/s by the mock's stamps for {mb}"
        );
        assert_eq!(r["otlp"]["payload_bytes"], o["payload_bytes"], "{name}");
        // The trace shape of the same name.
        let mix = r["otlp"]["mix"].as_array().unwrap();
        let short = name.trim_start_matches("otlp-");
        assert!(
            mix.len() == 1 && mix[0]["scenario"] == short,
            "{name}: {mix:?}"
        );

        // Queries per second, by the query server's arrival stamps.
        let mut at: Vec<std::time::Instant> = seen.lock().unwrap().iter().map(|q| q.1).collect();
        at.sort();
        let first = at[0];
        let stamps: Vec<u64> = at
            .iter()
            .map(|t| t.duration_since(first).as_micros() as u64)
            .collect();
        let got = rate_of(&stamps);
        assert!(
            (got / qps - 1.0).abs() <= 0.05,
            "{name}: {got:.2} queries/s by the server's stamps for {qps} ({} queries)",
            at.len()
        );
    }
}
