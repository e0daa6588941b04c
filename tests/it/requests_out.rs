//! `--requests-out FILE.jsonl|FILE.parquet`: a row per request, written
//! during the run, whose sums are the result's and the mock's; a killed run
//! leaves whole JSONL lines.

use std::time::Duration;

use crate::common::*;
use serde_json::Value;

fn jsonl(path: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_a_row_and_the_rows_add_up_to_the_result_and_the_mock() {
    let m = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let (json, rows_jsonl, rows_parquet) = (
        temp_json(&dir, "r"),
        temp_json(&dir, "rows.jsonl"),
        temp_json(&dir, "rows.parquet"),
    );
    for (rows, lora) in [(&rows_jsonl, "a,b"), (&rows_parquet, "a")] {
        let out = periscope(&[
            "run",
            "--target",
            &m.base(),
            "--vus",
            "4",
            "--duration",
            "2s",
            "--lora",
            lora,
            "--requests-out",
            rows,
            "--json",
            &json,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("requests-out={rows}: ")),
            "{}",
            stdout(&out)
        );
    }
    let r = read_json(&json);

    // JSONL: one line per request, no text, the adapters of the run.
    let lines = jsonl(&rows_jsonl);
    assert!(lines.len() > 20, "{}", lines.len());
    for l in &lines {
        assert!(l["run_id"].is_string() && l["e2e_ms"].is_number(), "{l}");
        assert!(
            l.get("prompt").is_none() && l.get("output_text").is_none(),
            "{l}"
        );
        assert!(["a", "b"].contains(&l["adapter"].as_str().unwrap()), "{l}");
    }

    // Parquet: the same columns, read by the parquet crate's own reader;
    // its rows are the second run's requests, as its result and the mock count.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(std::fs::File::open(&rows_parquet).unwrap()).unwrap();
    let rows: Vec<_> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        rows.len() as u64,
        r["summary"]["requests"].as_u64().unwrap()
    );
    let output: i64 = rows
        .iter()
        .map(|row| {
            match row
                .get_column_iter()
                .find(|(n, _)| n.as_str() == "output_tokens")
            {
                Some((_, Field::Int(n))) => *n as i64,
                other => panic!("{other:?}"),
            }
        })
        .sum();
    assert_eq!(
        output as u64,
        r["summary"]["output_tokens"].as_u64().unwrap()
    );
    // Both runs' rows and their preflights are every request the mock served.
    let served = m.stats().await["requests"].as_u64().unwrap();
    assert_eq!(served, (lines.len() + rows.len() + 2) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_leaves_whole_lines() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let rows = temp_json(&dir, "r.jsonl");
    let args = [
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--duration",
        "60s",
        "--requests-out",
        &rows,
    ];
    crate::common::periscope_signalled(&args, Duration::from_millis(3500), libc::SIGKILL).await;
    let lines = jsonl(&rows);
    let served = mock.stats().await["requests"].as_u64().unwrap();
    assert!(
        lines.len() as u64 >= served / 3,
        "{} rows of {served} served",
        lines.len()
    );
    assert!(lines.iter().all(|l| l["ok"] == true));
}

#[test]
fn a_requests_file_of_another_kind_is_refused() {
    let out = periscope(&["run", "--mock", "--requests-out", "rows.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("name a .jsonl or a .parquet file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn texts_are_in_the_rows_only_when_asked() {
    let m = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let rows = temp_json(&dir, "rows.jsonl");
    let out = periscope(&[
        "run",
        "--target",
        &m.base(),
        "--vus",
        "2",
        "--iterations",
        "6",
        "--prompt",
        "Name three rivers.",
        "--requests-out",
        &rows,
        "--requests-text",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = jsonl(&rows);
    assert_eq!(lines.len(), 6);
    for l in &lines {
        let body: Value = serde_json::from_str(l["request_body"].as_str().unwrap()).unwrap();
        assert_eq!(body["messages"][0]["content"], "Name three rivers.", "{l}");
        assert!(!l["answer"].as_str().unwrap().is_empty(), "{l}");
    }
    let out = periscope(&["run", "--mock", "--requests-text"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--requests-text puts texts in the rows of --requests-out"));
}
