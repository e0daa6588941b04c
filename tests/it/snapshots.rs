//! Snapshots of reports whose shape depends on the workload: what is shown
//! for an otlp-traces run and for a run where every request failed. The
//! figures vary from run to run, so numbers become `N`, the run id `RUN` and
//! table cells lose their padding; the rest — which tables, columns, notes
//! and lines there are — must match `tests/it/snapshots/NAME.md` exactly.
//! `UPDATE_SNAPSHOTS=1` rewrites the files (review the diff).

use crate::common::*;

/// The report's shape: numbers, the run id and the padding taken out.
fn shape(md: &str) -> String {
    // Digits not inside a word (p95, e2e stay).
    let number = regex::Regex::new(r"(^|[^A-Za-z0-9_.])\d+(\.\d+)?").unwrap();
    let run = regex::Regex::new(r"run `[0-9a-z]+`").unwrap();
    md.lines()
        .map(|l| {
            let l = run.replace_all(l, "run `RUN`");
            let l = number.replace_all(&l, "${1}N");
            if l.starts_with('|') {
                let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
                if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                    format!("|{}|", vec!["-"; cells.len()].join("|"))
                } else {
                    format!("| {} |", cells.join(" | "))
                }
            } else {
                l.trim_end().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(name: &str, md: &str) {
    let got = shape(md);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/snapshots")
        .join(format!("{name}.md"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, format!("{got}\n")).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
    assert_eq!(
        got.trim_end(),
        want.trim_end(),
        "the shape of the {name} report changed (UPDATE_SNAPSHOTS=1 rewrites {}):\n{md}",
        path.display()
    );
}

#[test]
fn the_shape_is_normalized_but_kept() {
    assert_eq!(
        shape("| a  | b   |\n|----|-----|\n| 12 | 3.5 |\nrun `ab12cd` p95 e2e 7ms"),
        "| a | b |\n|-|-|\n| N | N |\nrun `RUN` p95 e2e Nms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_traces_report_shows_traces_not_tokens() {
    let mock = MockProc::start(&["--ttft", "0ms"]);
    let out = periscope_async(s(&[
        "run",
        "otlp-traces",
        "--endpoint",
        &mock.url("/v1/traces"),
        "--mix",
        "simple_query:1",
        "--vus",
        "2",
        "--iterations",
        "20",
        "--progress-every",
        "100",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let md = stdout(&out);
    for absent in [
        "tokens/s",
        "input tokens",
        "output tokens",
        "ttft",
        "tokenizer",
        "cl100k",
    ] {
        assert!(!md.contains(absent), "{absent}: {md}");
    }
    assert!(md.contains("### OTLP ingestion"), "{md}");
    check("otlp_traces", &md);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_of_only_errors_has_no_empty_tables_or_lines() {
    let mock = MockProc::start(&["--ttft", "0ms", "--error-rate", "1"]);
    let out = periscope_async(s(&[
        "run",
        "--target",
        &mock.base(),
        "--no-preflight",
        "--vus",
        "2",
        "--iterations",
        "10",
        "--progress-every",
        "100",
    ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let md = stdout(&out);
    for absent in ["Definitions: .", "### Latency", "| - |"] {
        assert!(!md.contains(absent), "{absent}: {md}");
    }
    assert!(md.contains("### Errors"), "{md}");
    check("all_errors", &md);
}
