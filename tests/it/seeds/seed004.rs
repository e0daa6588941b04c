//! The Tempo performance suite's documented commands: its make targets
//! (`perf-test` with PROFILES and TEST_TYPE, the dry run, validation, the
//! standalone k6-* targets with TEMPO_ENDPOINT and TEMPO_QUERY_ENDPOINT),
//! its custom profile file as written, and the output files its runner
//! wrote; the exports the runs report are those the mock received.

use super::{repo, text, Shell};
use crate::common::{f, read_json, MockProc, BIN};

/// The README's custom profile, as written.
const CUSTOM: &str = r#"# profiles/custom.yaml
name: custom
description: "Custom high-throughput profile"

tempo:
  variant: stack
  resources:
    memory: "16Gi"
    cpu: "2000m"

k6:
  duration: "10m"
  vus:
    min: 30
    max: 150
  ingestion:
    mbPerSecond: 10
    traceProfile: large
  query:
    queriesPerSecond: 75
"#;

fn suite() -> Shell {
    let sh = Shell::new();
    std::fs::write(
        sh.path().join("Makefile"),
        format!("include {}/Makefile\n", repo().display()),
    )
    .unwrap();
    std::fs::create_dir(sh.path().join("profiles")).unwrap();
    std::fs::write(sh.path().join("profiles/custom.yaml"), CUSTOM).unwrap();
    sh
}

fn env(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut e = vec![
        ("PERISCOPE", BIN.to_string()),
        ("DURATION", "2s".to_string()),
    ];
    e.extend(extra.iter().cloned());
    e
}

fn files(sh: &Shell) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sh.path().join("results"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn the_dry_run_validation_and_development_targets() {
    let sh = suite();
    let out = sh.run("make perf-test-dry-run", &env(&[]));
    assert!(out.status.success(), "{}", text(&out));
    let s = text(&out);
    // Every built-in profile and the folder's custom one, planned.
    for p in [
        "1x-demo",
        "1x-extra-small",
        "1x-small",
        "1x-medium",
        "small",
        "medium",
        "large",
        "xlarge",
        "custom",
    ] {
        assert!(
            s.contains(&format!(
                "\"scenario\": \"{}\"",
                if p == "custom" {
                    p.to_string()
                } else {
                    format!("otlp-{p}")
                }
            )),
            "{p}: {s}"
        );
    }
    // The custom profile as written: 10 MB/s of large traces, 75 queries/s.
    assert!(s.contains("\"mix\": \"large:1\""), "{s}");
    let out = sh.run(
        "DURATION=30m make perf-test-dry-run PROFILES=1x-small",
        &env(&[]),
    );
    assert!(text(&out).contains("for 30m"), "{}", text(&out));
    let out = sh.run("make validate-profiles", &env(&[]));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("\nok    ").count() + usize::from(text(&out).starts_with("ok    ")),
        9,
        "{}",
        text(&out)
    );
    // A broken profile is named.
    std::fs::write(
        sh.path().join("profiles/broken.yaml"),
        "k6:\n  ingestion:\n    mbPerSec: 1\n",
    )
    .unwrap();
    let out = sh.run("make validate-profiles", &env(&[]));
    assert!(!out.status.success());
    assert!(
        text(&out).contains("FAIL  profiles/broken.yaml"),
        "{}",
        text(&out)
    );
    for t in [
        "check",
        "format",
        "deps",
        "k6-ingestion",
        "k6-query",
        "k6-combined",
    ] {
        let out = sh.run(&format!("make -n {t}"), &env(&[]));
        assert!(out.status.success(), "make {t}: {}", text(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_test_writes_the_runners_files_and_its_exports_reach_the_backend() {
    let sh = suite();
    let out = sh.run(
        "make perf-test PROFILES=1x-extra-small,1x-small",
        &env(&[("MOCK", "1".into())]),
    );
    assert!(out.status.success(), "{}", text(&out));
    let want: Vec<String> = ["1x-extra-small", "1x-small"]
        .iter()
        .flat_map(|p| {
            [
                "dashboard.html",
                "k6-ingestion-metrics.json",
                "k6-ingestion.log",
                "k6-query-metrics.json",
                "k6-query.log",
                "metrics.csv",
            ]
            .map(|f| format!("{p}-{f}"))
        })
        .collect();
    assert_eq!(files(&sh), want);
    for p in ["1x-extra-small", "1x-small"] {
        let ing = read_json(
            sh.path()
                .join(format!("results/{p}-k6-ingestion-metrics.json"))
                .to_str()
                .unwrap(),
        );
        let q = read_json(
            sh.path()
                .join(format!("results/{p}-k6-query-metrics.json"))
                .to_str()
                .unwrap(),
        );
        assert_eq!(ing["plan"]["otlp"]["test_type"], "ingestion");
        assert_eq!(q["plan"]["otlp"]["test_type"], "query");
        assert_eq!(ing["summary"]["errors"], 0, "{}", ing["errors"]);
        // Byte-paced at the profile's MB/s (held over longer runs: see the
        // OTLP tests; over 2 s one 2.3 MB trace is a second of budget).
        let mb = f(&ing["plan"]["otlp"]["mb_per_s"]);
        let sent = f(&ing["otlp"]["payload_bytes"]) / 1e6 / f(&ing["duration_s"]);
        assert!(
            sent > 0.2 * mb && sent < 3.0 * mb,
            "{p}: {sent} MB/s for {mb}"
        );
        assert_eq!(ing["otlp"]["failed_exports"], 0, "{}", ing["otlp"]);
        let log = std::fs::read_to_string(sh.path().join(format!("results/{p}-k6-ingestion.log")))
            .unwrap();
        assert!(log.contains("### OTLP ingestion"), "{log}");
        let csv =
            std::fs::read_to_string(sh.path().join(format!("results/{p}-metrics.csv"))).unwrap();
        assert!(csv.lines().count() > 2, "{csv}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_targets_against_a_running_backend() {
    let mock = MockProc::start(&[]);
    let sh = suite();
    let backend = [
        ("TEMPO_ENDPOINT", mock.addr.clone()),
        ("TEMPO_QUERY_ENDPOINT", format!("http://{}", mock.addr)),
    ];
    let out = sh.run("make k6-ingestion K6_SIZE=small", &env(&backend));
    assert!(out.status.success(), "{}", text(&out));
    let r = read_json(
        sh.path()
            .join("results/small-k6-ingestion-metrics.json")
            .to_str()
            .unwrap(),
    );
    // TEMPO_ENDPOINT is an OTLP gRPC address: exports went over gRPC.
    assert_eq!(
        r["plan"]["otlp"]["protocol"], "grpc",
        "{}",
        r["plan"]["otlp"]
    );
    let st = mock.stats().await;
    assert_eq!(r["otlp"]["traces"], st["otlp"]["traces"], "{}", st["otlp"]);
    assert_eq!(r["otlp"]["payload_bytes"], st["otlp"]["payload_bytes"]);
    assert!(
        !files(&sh).iter().any(|f| f.contains("query")),
        "{:?}",
        files(&sh)
    );
    let out = sh.run("make k6-query K6_SIZE=medium", &env(&backend));
    assert!(out.status.success(), "{}", text(&out));
    let q = read_json(
        sh.path()
            .join("results/medium-k6-query-metrics.json")
            .to_str()
            .unwrap(),
    );
    assert_eq!(q["summary"]["errors"], 0, "{}", q["errors"]);
    // 25 queries/s of the medium profile for 2 s.
    assert!(
        (40.0..=52.0).contains(&f(&q["summary"]["requests"])),
        "{}",
        q["summary"]
    );
    mock.reset().await;
    let out = sh.run("make k6-combined K6_SIZE=small", &env(&backend));
    assert!(out.status.success(), "{}", text(&out));
    let ing = read_json(
        sh.path()
            .join("results/small-k6-ingestion-metrics.json")
            .to_str()
            .unwrap(),
    );
    let st = mock.stats().await;
    assert_eq!(ing["otlp"]["traces"], st["otlp"]["traces"]);
    assert!(files(&sh).contains(&"small-k6-query.log".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_types_and_the_custom_profile() {
    let sh = suite();
    let out = sh.run(
        "make perf-test TEST_TYPE=ingestion PROFILES=1x-small",
        &env(&[("MOCK", "1".into())]),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        files(&sh).iter().all(|f| !f.contains("query")),
        "{:?}",
        files(&sh)
    );
    let _ = std::fs::remove_dir_all(sh.path().join("results"));
    let out = sh.run(
        "make perf-test TEST_TYPE=query PROFILES=1x-medium",
        &env(&[("MOCK", "1".into())]),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        files(&sh),
        ["1x-medium-k6-query-metrics.json", "1x-medium-k6-query.log"]
    );
    let _ = std::fs::remove_dir_all(sh.path().join("results"));
    let out = sh.run(
        "make perf-test PROFILES=custom",
        &env(&[("MOCK", "1".into())]),
    );
    assert!(out.status.success(), "{}", text(&out));
    let r = read_json(
        sh.path()
            .join("results/custom-k6-ingestion-metrics.json")
            .to_str()
            .unwrap(),
    );
    assert_eq!(r["plan"]["otlp"]["mix"], "large:1");
    assert_eq!(r["plan"]["load"]["max_in_flight"], 150);
    assert_eq!(r["summary"]["errors"], 0, "{}", r["errors"]);
    let spans = f(&r["otlp"]["spans_accepted"]) / f(&r["otlp"]["traces"]);
    assert!(
        (50.0..=80.0).contains(&spans),
        "large: 50-80 spans a trace, {spans}"
    );
}
