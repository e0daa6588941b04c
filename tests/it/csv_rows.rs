//! `--csv`'s per-request rows are written while the run goes on: memory
//! stays flat however many requests (checked at 2M against nginx answering
//! at once), every request has its row, and a run killed mid-way leaves the
//! rows so far, whole and parseable.

use crate::common::*;
use std::time::Duration;

/// Every row of a per-request CSV: its header and records, each checked to
/// have every column.
fn rows(path: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().clone();
    let records: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    for rec in &records {
        assert_eq!(rec.len(), header.len(), "a whole row: {rec:?}");
    }
    (header, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_million_rows_cost_no_memory_and_each_request_has_one() {
    let Some(nginx) = Nginx::static_ok() else {
        return;
    };
    let target = format!("http://127.0.0.1:{}", nginx.port);
    let dir = tempfile::tempdir().unwrap();
    let csv = temp_json(&dir, "r.csv");
    let n: u64 = 2_000_000;
    let run = |extra: Vec<String>| {
        let mut args = s(&[
            "run",
            "http",
            "--target",
            &target,
            "--endpoint",
            "GET:/",
            "--vus",
            "32",
            "--iterations",
            &n.to_string(),
            "--no-preflight",
            "--progress-every",
            "100",
        ]);
        args.extend(extra);
        args
    };
    let plain = temp_json(&dir, "plain.json");
    let out = periscope_async(run(s(&["--json", &plain]))).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let with = temp_json(&dir, "csv.json");
    let out = periscope_async(run(s(&["--json", &with, "--csv", &csv]))).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (plain, with) = (read_json(&plain), read_json(&with));
    for r in [&plain, &with] {
        assert_eq!(r["summary"]["requests"], n, "{}", r["summary"]);
        assert_eq!(r["summary"]["ok"], n);
    }
    let rss = |r: &serde_json::Value| f(&r["generator"]["peak_rss_mib"]);
    eprintln!(
        "peak RSS: {:.1} MiB without --csv, {:.1} MiB with ({} rows)",
        rss(&plain),
        rss(&with),
        n
    );
    assert!(
        rss(&with) <= rss(&plain) + 20.0,
        "--csv costs {:.1} MiB over {:.1}",
        rss(&with) - rss(&plain),
        rss(&plain)
    );
    // One row per request, and the output says so.
    let lines = std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&csv).unwrap()))
        .count() as u64;
    assert_eq!(lines, n + 1, "a header and one row per request");
    let csv_out = with["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["label"].as_str().unwrap().starts_with("csv="))
        .unwrap();
    assert_eq!(csv_out["written"], n, "{csv_out}");
    assert_eq!(csv_out["dropped"], 0, "{csv_out}");
    assert!(std::path::Path::new(&csv.replace(".csv", "-summary.csv")).exists());
    assert!(std::path::Path::new(&csv.replace(".csv", "-series.csv")).exists());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_leaves_its_rows_so_far_parseable() {
    let mock = MockProc::start(&["--ttft", "5ms", "--itl", "1ms", "--output-tokens", "8"]);
    let dir = tempfile::tempdir().unwrap();
    let csv = temp_json(&dir, "r.csv");
    let args = [
        "run",
        "--target",
        &mock.base(),
        "--vus",
        "8",
        "--duration",
        "60s",
        "--csv",
        &csv,
    ];
    // SIGKILL: nothing of it runs after.
    crate::common::periscope_signalled(&args, Duration::from_millis(3500), libc::SIGKILL).await;
    let (header, records) = rows(&csv);
    assert_eq!(&header[0], "run_id");
    let served = mock.stats().await["requests"].as_u64().unwrap();
    // Rows reach the file at least every second: all but the last second's.
    assert!(
        records.len() as u64 >= served / 3,
        "{} rows of {served} requests served",
        records.len()
    );
    assert!(records.len() as u64 <= served, "no row without a request");
    assert!(records.iter().all(|r| &r[7] == "true"), "ok rows");
}
